/* sinergi: command line, startup, signals and the wiring of the rooms. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app.h"
#include "auth/auth.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "db/db.h"
#include "events/events.h"
#include "ews/ews.h"
#include "http/http.h"
#include "mqtt/mqtt.h"
#include "notify/notify.h"
#include "regions/regions.h"
#include "sensors/sensors.h"
#include "sim/sim.h"
#include "core/banned.h"

static const struct db_migration *const migrations[] = {auth_migrations, regions_migrations,
                                                        sensors_migrations, ews_migrations,
                                                        notify_migrations, NULL};

static int usage(FILE *f)
{
    fprintf(f, "usage: sinergi COMMAND [settings]\n\n"
               "commands:\n"
               "  serve                                   run the HTTP server\n"
               "  migrate                                 create or upgrade the database, load regions\n"
               "  user add USERNAME --role ROLE --opd OPD  add a user; password read from stdin\n"
               "  user passwd USERNAME                    set a password read from stdin\n"
               "  audit verify                            check the audit log's hash chain\n"
               "  readings count                          how many raw readings are stored\n"
               "  readings export                         every raw reading as CSV on stdout\n"
               "                                          (read-only; safe beside a running daemon)\n"
               "  simulate [--speed N] [--duration S] [--qos 0|1] [--seed N]\n"
               "                                          publish demo stations' readings over MQTT,\n"
               "                                          N times faster than real time, for S seconds\n"
               "  simulate masamba-2020 [--speed N]       replay a reconstruction (not data) of the\n"
               "                                          Masamba flash flood of 13 July 2020 on the\n"
               "                                          demo gauges (docs/MASAMBA_2020.md)\n\n");
    config_print_help(f);
    return f == stderr ? 2 : 0;
}

static int fail(const struct err *e)
{
    fprintf(stderr, "sinergi: %s\n", e->msg[0] ? e->msg : err_code_name(e->code));
    return 1;
}

/* Creates the directory that holds the database file, if it has one. */
static void ensure_db_dir(const char *path)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return;
    *slash = 0;
    if (mkdir(dir, 0750) != 0 && errno != EEXIST)
        fprintf(stderr, "sinergi: cannot create %s: %s\n", dir, strerror(errno));
}

static enum err_code open_app(struct app *app, const struct config *cfg, int pool, struct err *err)
{
    memset(app, 0, sizeof *app);
    app->cfg = cfg;
    app->started_at = clock_now_s();
    if (!log_set_level(cfg->log_level))
        return err_set(err, ERR_INVALID, "setting 'log_level' must be error, warn, info or debug");
    struct auth_settings as = {cfg->session_idle_s, cfg->session_max_s, cfg->login_fail_user_max,
                               cfg->login_fail_addr_max, cfg->login_window_s};
    auth_configure(&as);
    ensure_db_dir(cfg->db);
    struct db_options o = {.path = cfg->db, .pool_size = pool, .busy_timeout_ms = 5000,
                           .sync_full = cfg->db_sync_full != 0};
    if (db_open(&app->db, &o, err))
        return err->code;
    struct db_conn *c = db_acquire(app->db);
    bool import = false;
    int imported;
    if (db_migrate(c, migrations, err) == ERR_OK &&
        regions_import_needed(c, &import, err) == ERR_OK && import)
        regions_import(c, cfg->data_dir, &imported, err);
    int seeded = 0;
    if (!err->code && cfg->seed_demo &&
        sensors_seed_demo(c, cfg->data_dir, cfg->regency, &seeded, err) == ERR_OK && seeded)
        log_info("event=demo_stations_seeded count=%d", seeded);
    db_release(app->db, c);
    if (err->code) {
        db_close(app->db);
        app->db = NULL;
    }
    return err->code;
}

/* Reads one line (the password) from stdin without keeping it longer than needed. */
static enum err_code read_password(char *out, size_t n, struct err *err)
{
    if (!fgets(out, (int)n, stdin))
        return err_set(err, ERR_INVALID, "no password on standard input");
    out[strcspn(out, "\r\n")] = 0;
    return auth_password_check(out, err);
}

static struct mqtt_settings mqtt_settings_of(const struct config *cfg)
{
    struct mqtt_settings m = {.host = cfg->mqtt_host,
                              .port = (int)cfg->mqtt_port,
                              .username = cfg->mqtt_username,
                              .password_file = cfg->mqtt_password_file,
                              .spool_dir = cfg->mqtt_spool_dir,
                              .spool_fsync_ms = (int)cfg->mqtt_spool_fsync_ms};
    return m;
}

static struct notify_settings notify_settings_of(const struct config *cfg)
{
    struct notify_settings n = {.timeout_ms = cfg->notify_timeout_ms,
                                .backoff_min_ms = cfg->notify_backoff_min_ms,
                                .backoff_max_s = cfg->notify_backoff_max_s};
    if (cfg->mqtt_enabled) { /* sirens: MQTT notifications go to the broker ingest uses */
        n.mqtt_host = cfg->mqtt_host;
        n.mqtt_port = (int)cfg->mqtt_port;
        n.mqtt_username = cfg->mqtt_username;
        n.mqtt_password_file = cfg->mqtt_password_file;
    }
    return n;
}

static int cmd_serve(struct config *cfg)
{
    struct err err = ERR_INIT;
    struct app app;
    long threads = cfg->threads > 0 ? cfg->threads : sysconf(_SC_NPROCESSORS_ONLN);
    /* Ingest allocates and frees a few hundred KB per request on every worker thread. glibc's
     * defaults give that memory back to the kernel after each request (trim, mmap of large
     * blocks) and take it again, page fault by page fault: bench/ingest measured 10-50% less
     * CPU per reading on the HTTP threads with these two set. */
    mallopt(M_TRIM_THRESHOLD, 128 << 20);
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    /* before anything is created: a typo must not use up the one-time admin password */
    if (http_check_listen(cfg->listen, &err) || open_app(&app, cfg, (int)threads + 4, &err))
        return fail(&err);
    struct db_conn *c = db_acquire(app.db);
    json_t *probe = NULL;
    int64_t users = 0;
    if (regions_get(c, cfg->regency, false, &probe, &err) == ERR_OK)
        json_decref(probe);
    else
        err_set(&err, ERR_INVALID, "regency '%s' is not in the shipped region data (%s)",
                cfg->regency, cfg->data_dir);
    if (!err.code && auth_user_count(c, &users, &err) == ERR_OK && users == 0) {
        char pw[21];
        auth_random_password(pw, 20);
        if (auth_user_create(c, NULL, "admin", "Administrator", ROLE_ADMIN, "diskominfo", pw,
                             &err) == ERR_OK) {
            printf("sinergi: first start: created user 'admin' (role admin, OPD diskominfo)\n"
                   "sinergi: admin password: %s\n"
                   "sinergi: it is shown only this once; change it with 'sinergi user passwd admin'\n",
                   pw);
            fflush(stdout);
        }
        sodium_memzero(pw, sizeof pw);
    }
    db_release(app.db, c);
    if (err.code) {
        db_close(app.db);
        return fail(&err);
    }

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* before any thread starts: all inherit it */
    signal(SIGPIPE, SIG_IGN);

    events_init(16384); /* live events held for Last-Event-ID resume; before any publisher */
    struct sensors_settings ss = {cfg->ingest_backfill_s, cfg->ingest_clock_skew_s,
                                  cfg->raw_retention_days, cfg->ingest_max_records,
                                  cfg->readings_compact_after, cfg->readings_compact_age_s};
    struct ews_settings es = {cfg->ews_escalate_after_s, cfg->ews_escalate_max,
                              cfg->ews_live_window_s};
    struct notify_settings ns = notify_settings_of(cfg);
    /* the outbox deliverers before the rule engine, which queues notifications from its start;
     * what an earlier run left in the outbox is delivered from here on */
    if (notify_start(app.db, &ns, &err)) {
        db_close(app.db);
        return fail(&err);
    }
    struct ews_notifier en = {notify_enqueue, notify_kick};
    ews_set_notifier(&en);
    /* the rule engine watches the ingest writer: registered before the writer starts */
    if (ews_start(app.db, &es, &err) || sensors_start(app.db, &ss, &err)) {
        ews_stop();
        notify_stop();
        db_close(app.db);
        return fail(&err);
    }
    struct mqtt_settings ms = mqtt_settings_of(cfg);
    if (cfg->mqtt_enabled && mqtt_start(&ms, &err)) { /* replays the spool before serving */
        sensors_stop();
        ews_stop();
        notify_stop();
        db_close(app.db);
        return fail(&err);
    }
    struct http_server *srv;
    if (http_server_start(&srv, &app, &err)) {
        mqtt_stop();
        sensors_stop();
        ews_stop();
        notify_stop();
        db_close(app.db);
        return fail(&err);
    }
    printf("sinergi: serving on http://%s (regency %s)\n", cfg->listen, cfg->regency);
    fflush(stdout);
    int sig = 0;
    sigwait(&set, &sig);
    log_info("event=shutdown signal=%s", sig == SIGTERM ? "TERM" : "INT");
    http_server_stop(srv); /* in-flight ingest completes: the writer is still running */
    mqtt_stop();           /* after HTTP (no station hook runs), before the writer stops */
    sensors_stop();        /* drains the queue, flushes open rollups */
    ews_stop();            /* after the writer: it calls the engine */
    notify_stop();         /* after the last enqueuer; what is in flight is sent at next start */
    events_shutdown();     /* after the last publisher */
    db_close(app.db);
    return 0;
}

static int cmd_migrate(struct config *cfg)
{
    struct err err = ERR_INIT;
    struct app app;
    int n = 0;
    if (open_app(&app, cfg, 1, &err))
        return fail(&err);
    struct db_conn *c = db_acquire(app.db);
    regions_import(c, cfg->data_dir, &n, &err);
    db_release(app.db, c);
    db_close(app.db);
    if (err.code)
        return fail(&err);
    printf("sinergi: database %s is up to date; %d regions loaded\n", cfg->db, n);
    return 0;
}

static int cmd_user(struct config *cfg, const struct config_args *args)
{
    struct err err = ERR_INIT;
    struct app app;
    if (args->npos < 3)
        return usage(stderr);
    const char *verb = args->pos[1], *username = args->pos[2];
    const char *role_s = args->extra_value[0], *opd = args->extra_value[1];
    const char *display = args->extra_value[2];
    enum role role;
    char pw[300];
    if (strcmp(verb, "add") == 0) {
        if (!role_s || !auth_role_parse(role_s, &role))
            err_set(&err, ERR_INVALID, "--role must be admin, operator, staff or viewer");
        else if (!opd)
            err_set(&err, ERR_INVALID, "--opd OPD_CODE is required (see GET /api/v1/opds)");
    } else if (strcmp(verb, "passwd") != 0) {
        return usage(stderr);
    }
    if (err.code || read_password(pw, sizeof pw, &err) || open_app(&app, cfg, 1, &err)) {
        sodium_memzero(pw, sizeof pw);
        return fail(&err);
    }
    struct db_conn *c = db_acquire(app.db);
    if (strcmp(verb, "add") == 0)
        auth_user_create(c, NULL, username, display, role, opd, pw, &err);
    else
        auth_user_set_password(c, NULL, username, pw, &err);
    sodium_memzero(pw, sizeof pw);
    db_release(app.db, c);
    db_close(app.db);
    if (err.code)
        return fail(&err);
    printf("sinergi: user '%s' %s\n", username, strcmp(verb, "add") == 0 ? "added" : "password set");
    return 0;
}

static int cmd_audit(struct config *cfg, const struct config_args *args)
{
    struct err err = ERR_INIT;
    struct app app;
    if (args->npos < 2 || strcmp(args->pos[1], "verify") != 0)
        return usage(stderr);
    if (open_app(&app, cfg, 1, &err))
        return fail(&err);
    struct db_conn *c = db_acquire(app.db);
    int64_t rows = 0, bad = 0;
    char why[160] = "";
    audit_verify(c, &rows, &bad, why, sizeof why, &err);
    db_release(app.db, c);
    db_close(app.db);
    if (err.code)
        return fail(&err);
    if (bad) {
        printf("sinergi: audit log TAMPERED at row %lld: %s\n", (long long)bad, why);
        return 1;
    }
    printf("sinergi: audit log intact: %lld rows verified\n", (long long)rows);
    return 0;
}

static int cmd_readings(struct config *cfg, const struct config_args *args)
{
    struct err err = ERR_INIT;
    struct app app;
    bool count = args->npos == 2 && strcmp(args->pos[1], "count") == 0;
    if (!count && !(args->npos == 2 && strcmp(args->pos[1], "export") == 0))
        return usage(stderr);
    if (open_app(&app, cfg, 1, &err))
        return fail(&err);
    struct db_conn *c = db_acquire(app.db);
    int64_t n = 0;
    if (count && sensors_readings_count(c, &n, &err) == ERR_OK)
        printf("%lld\n", (long long)n);
    else if (!count)
        sensors_readings_export(c, stdout, &err);
    db_release(app.db, c);
    db_close(app.db);
    if (fflush(stdout) != 0 && !err.code)
        err_set(&err, ERR_INTERNAL, "cannot write to stdout");
    return err.code ? fail(&err) : 0;
}

static volatile sig_atomic_t sim_stop;

static void on_sim_signal(int sig)
{
    (void)sig;
    sim_stop = 1;
}

/* A number flag of `simulate` within [lo, hi]; `def` when absent. */
static enum err_code number_flag(const char *name, const char *v, double def, double lo, double hi,
                                 double *out, struct err *err)
{
    char *end;
    *out = v ? strtod(v, &end) : def;
    if (v && (end == v || *end || !(*out >= lo && *out <= hi)))
        return err_set(err, ERR_INVALID, "--%s must be a number from %g to %g", name, lo, hi);
    return ERR_OK;
}

static int cmd_simulate(struct config *cfg, const struct config_args *args)
{
    struct err err = ERR_INIT;
    struct app app;
    struct sim_options o = {0};
    double qos, seed;
    if (number_flag("speed", args->extra_value[3], 1, 1, 1e6, &o.speed, &err) ||
        number_flag("duration", args->extra_value[4], 0, 0, 1e9, &o.duration_s, &err) ||
        number_flag("qos", args->extra_value[5], 1, 0, 1, &qos, &err) ||
        number_flag("seed", args->extra_value[6], 1, 0, 4e9, &seed, &err))
        return fail(&err);
    o.qos = (int)qos;
    o.seed = (uint64_t)seed;
    o.scenario = args->npos > 1 ? args->pos[1] : NULL;
    o.live_window_s = cfg->ews_live_window_s;
    struct sigaction sa = {.sa_handler = on_sim_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (open_app(&app, cfg, 2, &err))
        return fail(&err);
    /* No sensors_start: a serving daemon may own the database; rotation needs only the
     * registry, and the account keeper tells the broker the new device passwords. */
    struct mqtt_settings ms = mqtt_settings_of(cfg);
    if (mqtt_accounts_start(&ms, &err) == ERR_OK) {
        sim_run(app.db, &ms, &o, &sim_stop, &err);
        mqtt_accounts_stop();
    }
    sensors_stop();
    db_close(app.db);
    return err.code ? fail(&err) : 0;
}

int main(int argc, char **argv)
{
    static const char *const extra[] = {"role",     "opd", "display-name", "speed",
                                        "duration", "qos", "seed",         NULL};
    struct config cfg;
    struct config_args args;
    struct err err = ERR_INIT;
    if (sodium_init() < 0) {
        fprintf(stderr, "sinergi: libsodium failed to start\n");
        return 1;
    }
    if (argc < 2)
        return usage(stderr);
    if (config_load(&cfg, argc - 1, argv + 1, extra, &args, &err))
        return fail(&err);
    if (args.help || args.npos == 0)
        return usage(args.help ? stdout : stderr);
    const char *cmd = args.pos[0];
    if (strcmp(cmd, "serve") == 0)
        return cmd_serve(&cfg);
    if (strcmp(cmd, "migrate") == 0)
        return cmd_migrate(&cfg);
    if (strcmp(cmd, "user") == 0)
        return cmd_user(&cfg, &args);
    if (strcmp(cmd, "audit") == 0)
        return cmd_audit(&cfg, &args);
    if (strcmp(cmd, "readings") == 0)
        return cmd_readings(&cfg, &args);
    if (strcmp(cmd, "simulate") == 0)
        return cmd_simulate(&cfg, &args);
    if (strcmp(cmd, "help") == 0)
        return usage(stdout);
    fprintf(stderr, "sinergi: unknown command '%s'\n", cmd);
    return usage(stderr);
}
