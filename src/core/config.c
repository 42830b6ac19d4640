/* config: table-driven settings (nginx ngx_command_t, Redis static_configs[]). */
#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/banned.h"

#define STR(field, def, help)                                                                      \
    {#field, CONFIG_STR, offsetof(struct config, field), sizeof(((struct config *)0)->field), def, 0, \
     0, help}
#define INT(field, def, lo, hi, help)                                                              \
    {#field, CONFIG_INT, offsetof(struct config, field), sizeof(long), def, lo, hi, help}

const struct config_setting config_settings[] = {
    STR(listen, "127.0.0.1:8080", "address and port to serve HTTP on"),
    STR(db, "var/sinergi.db", "path of the SQLite database (created if missing)"),
    STR(data_dir, "data", "directory of the shipped reference data (regions, boundaries)"),
    STR(web_dir, "web", "directory of the web pages served at /"),
    STR(tile_url, "", "map tile URL template for the COC map, e.g. https://tile.example/{z}/{x}/{y}.png; empty = no tiles (boundaries only, for servers without internet)"),
    STR(regency, "73.22", "kode wilayah of the regency this deployment serves (73.22 or 73.24)"),
    STR(log_level, "info", "error, warn, info or debug"),
    STR(config_file, "", "config file of 'name = value' lines, read before environment and flags"),
    INT(threads, "0", 0, 256, "HTTP worker threads; 0 = one per core"),
    INT(max_body, "1048576", 1024, 64L << 20, "largest request body accepted, in bytes"),
    INT(conn_timeout_s, "30", 1, 3600, "idle connection timeout, in seconds"),
    INT(max_connections, "1024", 16, 65536, "most concurrent HTTP connections"),
    INT(session_idle_s, "1800", 1, 86400, "a session unused this long expires, in seconds"),
    INT(session_max_s, "43200", 1, 604800, "a session expires this long after login, in seconds"),
    INT(login_fail_user_max, "5", 1, 1000, "failed logins per account within the window before throttling"),
    INT(login_fail_addr_max, "20", 1, 100000, "failed logins per client address within the window before throttling"),
    INT(login_window_s, "900", 1, 86400, "login throttling window, in seconds"),
    INT(shutdown_timeout_s, "10", 0, 600, "on SIGTERM, wait this long for in-flight requests"),
    INT(db_sync_full, "1", 0, 1, "1 = fsync every commit (durable on power loss); 0 = WAL NORMAL"),
    INT(cookie_secure, "0", 0, 1, "mark the session cookie Secure (set when served over HTTPS)"),
    INT(trust_proxy, "0", 0, 1, "take the client address from X-Forwarded-For (behind a proxy)"),
    INT(sse_heartbeat_s, "15", 1, 3600, "comment heartbeat on idle live event streams, in seconds"),
    INT(ingest_backfill_s, "2592000", 60, 31622400, "oldest reading accepted, in seconds before now (loggers backfill after outages)"),
    INT(ingest_clock_skew_s, "300", 0, 86400, "newest reading accepted, in seconds after now (device clock skew)"),
    INT(ingest_max_records, "10000", 1, 100000, "most SenML records in one ingest request"),
    INT(ews_escalate_after_s, "900", 1, 86400, "an active alert nobody acknowledges escalates to the next contact tier after this, in seconds"),
    INT(ews_escalate_max, "2", 0, 9, "escalation tiers (webhooks of tier 1..N)"),
    INT(ews_live_window_s, "3600", 60, 31622400, "rule decisions from readings older than this are backfill: recorded, not sent to the public"),
    INT(seed_demo, "1", 0, 1, "on an empty database, create the DEMO stations of data/demo_stations.json"),
    INT(raw_retention_days, "0", 0, 36500, "delete raw readings older than this many days (rollups stay); 0 = keep"),
    INT(readings_compact_after, "1000000", 1, 50000000, "readings held in memory (and in the log) before they are packed into per-sensor blocks"),
    INT(readings_compact_age_s, "60", 1, 86400, "the longest a reading waits in memory (and in the log) before it is packed into blocks, in seconds"),
    INT(mqtt_enabled, "0", 0, 1, "1 = ingest over MQTT from the Mosquitto broker and keep its device accounts in step with stations"),
    STR(mqtt_host, "127.0.0.1", "address of the Mosquitto broker"),
    INT(mqtt_port, "18830", 1, 65535, "port of the Mosquitto broker (scripts/mqtt-broker.sh start DIR PORT)"),
    STR(mqtt_username, "sinergi.admin", "the broker's dynamic-security admin account"),
    STR(mqtt_password_file, "var/mosquitto/admin.pw", "file holding that admin's password (written by scripts/mqtt-broker.sh)"),
    STR(mqtt_spool_dir, "var/mqtt-spool", "directory of MQTT messages received and not yet committed (replayed after a crash)"),
    INT(mqtt_spool_fsync_ms, "1000", 0, 60000, "fdatasync the MQTT spool this often, in ms (power-loss window); 0 = before each PUBACK (after every burst of messages)"),
    INT(notify_timeout_ms, "10000", 100, 600000, "one notification attempt (webhook response, broker PUBACK) fails after this, in ms"),
    INT(notify_backoff_min_ms, "1000", 10, 600000, "first retry of a failed notification after this, in ms; doubled per failure"),
    INT(notify_backoff_max_s, "300", 1, 86400, "longest wait between retries of a failed notification, in seconds"),
};
const size_t config_nsettings = sizeof config_settings / sizeof config_settings[0];

static const struct config_setting *find(const char *name, size_t len)
{
    for (size_t i = 0; i < config_nsettings; i++) {
        const char *n = config_settings[i].name;
        if (strlen(n) != len)
            continue;
        size_t j = 0;
        for (; j < len; j++) {
            char ch = name[j] == '-' ? '_' : name[j];
            if (ch != n[j])
                break;
        }
        if (j == len)
            return &config_settings[i];
    }
    return NULL;
}

static enum err_code set(struct config *c, const struct config_setting *s, const char *v,
                         const char *from, struct err *err)
{
    char *field = (char *)c + s->offset;
    if (s->type == CONFIG_STR) {
        size_t n = strlen(v);
        if (n >= s->size)
            return err_set(err, ERR_INVALID, "setting '%s' from %s is longer than %zu bytes",
                           s->name, from, s->size - 1);
        memcpy(field, v, n + 1);
        return ERR_OK;
    }
    errno = 0;
    char *end;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < s->min || n > s->max)
        return err_set(err, ERR_INVALID, "setting '%s' from %s must be an integer from %ld to %ld",
                       s->name, from, s->min, s->max);
    memcpy(field, &n, sizeof n);
    return ERR_OK;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = 0;
    return s;
}

static enum err_code load_file(struct config *c, const char *path, struct err *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return err_set(err, ERR_INVALID, "config file %s cannot be read: %s", path,
                       strerror(errno));
    char line[1024];
    int lineno = 0;
    enum err_code rc = ERR_OK;
    while (rc == ERR_OK && fgets(line, sizeof line, f)) {
        lineno++;
        char *s = trim(line);
        if (!*s || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            rc = err_set(err, ERR_INVALID, "%s:%d: expected 'name = value'", path, lineno);
            break;
        }
        *eq = 0;
        char *name = trim(s), *val = trim(eq + 1);
        const struct config_setting *st = find(name, strlen(name));
        if (!st) {
            rc = err_set(err, ERR_INVALID, "%s:%d: unknown setting '%s'", path, lineno, name);
            break;
        }
        rc = set(c, st, val, path, err);
    }
    fclose(f);
    return rc;
}

static void env_name(char *out, size_t n, const char *name)
{
    size_t i = 0;
    const char *prefix = "SINERGI_";
    for (; prefix[i] && i < n - 1; i++)
        out[i] = prefix[i];
    for (size_t j = 0; name[j] && i < n - 1; j++)
        out[i++] = (char)toupper((unsigned char)name[j]);
    out[i] = 0;
}

static int extra_index(const char *const *extra, const char *name, size_t len)
{
    for (int i = 0; extra && extra[i]; i++)
        if (strlen(extra[i]) == len && strncmp(extra[i], name, len) == 0)
            return i;
    return -1;
}

enum err_code config_load(struct config *c, int argc, char **argv, const char *const *extra_flags,
                          struct config_args *out, struct err *err)
{
    memset(c, 0, sizeof *c);
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < config_nsettings; i++)
        if (set(c, &config_settings[i], config_settings[i].def, "defaults", err))
            return err->code;

    /* The config file is named by flag or environment and read before both. */
    const char *file = getenv("SINERGI_CONFIG_FILE");
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "--config-file") == 0)
            file = i + 1 < argc ? argv[i + 1] : NULL;
        else if (strncmp(argv[i], "--config=", 9) == 0)
            file = argv[i] + 9;
    }
    if (file && *file && load_file(c, file, err))
        return err->code;

    for (size_t i = 0; i < config_nsettings; i++) {
        char name[64];
        env_name(name, sizeof name, config_settings[i].name);
        const char *v = getenv(name);
        if (v && set(c, &config_settings[i], v, name, err))
            return err->code;
    }

    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            out->help = true;
            continue;
        }
        if (strncmp(a, "--", 2) != 0 || a[2] == 0) {
            if (out->npos >= CONFIG_MAX_POSITIONAL)
                return err_set(err, ERR_INVALID, "too many arguments");
            out->pos[out->npos++] = a;
            continue;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const char *val = eq ? eq + 1 : (i + 1 < argc ? argv[i + 1] : NULL);
        if (!val)
            return err_set(err, ERR_INVALID, "flag --%.*s needs a value", (int)len, name);
        if (!eq)
            i++;
        if (len == 6 && strncmp(name, "config", 6) == 0) {
            if (set(c, find("config_file", 11), val, "--config", err))
                return err->code;
            continue;
        }
        int x = extra_index(extra_flags, name, len);
        if (x >= 0 && x < CONFIG_MAX_EXTRA) {
            out->extra_value[x] = val;
            continue;
        }
        const struct config_setting *s = find(name, len);
        if (!s)
            return err_set(err, ERR_INVALID, "unknown flag --%.*s (see --help)", (int)len, name);
        if (set(c, s, val, "the command line", err))
            return err->code;
    }
    return ERR_OK;
}

void config_print_help(FILE *f)
{
    fprintf(f, "Settings (flag, environment variable, default):\n");
    for (size_t i = 0; i < config_nsettings; i++) {
        const struct config_setting *s = &config_settings[i];
        char flag[64], env[64];
        size_t j = 0;
        for (; s->name[j] && j < sizeof flag - 1; j++)
            flag[j] = s->name[j] == '_' ? '-' : s->name[j];
        flag[j] = 0;
        env_name(env, sizeof env, s->name);
        fprintf(f, "  --%-22s %-30s default: %s\n      %s\n", flag, env,
                *s->def ? s->def : "(none)", s->help);
    }
}
