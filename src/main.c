/* sinergi: command line, startup, signals and the wiring of the rooms. */
#define _GNU_SOURCE
#include <errno.h>
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
#include "http/http.h"
#include "regions/regions.h"
#include "sensors/sensors.h"
#include "core/banned.h"

static const struct db_migration *const migrations[] = {auth_migrations, regions_migrations,
                                                        sensors_migrations, NULL};

static int usage(FILE *f)
{
    fprintf(f, "usage: sinergi COMMAND [settings]\n\n"
               "commands:\n"
               "  serve                                   run the HTTP server\n"
               "  migrate                                 create or upgrade the database, load regions\n"
               "  user add USERNAME --role ROLE --opd OPD  add a user; password read from stdin\n"
               "  user passwd USERNAME                    set a password read from stdin\n"
               "  audit verify                            check the audit log's hash chain\n\n");
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
    int64_t regions = 0;
    int imported;
    if (db_migrate(c, migrations, err) == ERR_OK && regions_count(c, &regions, err) == ERR_OK &&
        regions == 0)
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

static int cmd_serve(struct config *cfg)
{
    struct err err = ERR_INIT;
    struct app app;
    long threads = cfg->threads > 0 ? cfg->threads : sysconf(_SC_NPROCESSORS_ONLN);
    if (open_app(&app, cfg, (int)threads + 4, &err))
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
                                  cfg->raw_retention_days, cfg->ingest_max_records};
    if (sensors_start(app.db, &ss, &err)) {
        db_close(app.db);
        return fail(&err);
    }
    struct http_server *srv;
    if (http_server_start(&srv, &app, &err)) {
        sensors_stop();
        db_close(app.db);
        return fail(&err);
    }
    printf("sinergi: serving on http://%s (regency %s)\n", cfg->listen, cfg->regency);
    fflush(stdout);
    int sig = 0;
    sigwait(&set, &sig);
    log_info("event=shutdown signal=%s", sig == SIGTERM ? "TERM" : "INT");
    http_server_stop(srv); /* in-flight ingest completes: the writer is still running */
    sensors_stop();        /* drains the queue, flushes open rollups */
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

int main(int argc, char **argv)
{
    static const char *const extra[] = {"role", "opd", "display-name", NULL};
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
    if (strcmp(cmd, "help") == 0)
        return usage(stdout);
    fprintf(stderr, "sinergi: unknown command '%s'\n", cmd);
    return usage(stderr);
}
