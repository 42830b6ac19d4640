/* config: every setting is one row of a table that feeds defaults, the config file, the
 * environment (SINERGI_<NAME>), command-line flags (--name), --help and validation. */
#ifndef SINERGI_CONFIG_H
#define SINERGI_CONFIG_H

#include <stdbool.h>
#include <stdio.h>

#include "core/err.h"

struct config {
    char listen[64];        /* ADDR:PORT */
    char db[512];           /* SQLite database path */
    char data_dir[512];     /* shipped reference data (regions, boundaries) */
    char web_dir[512];      /* static pages */
    char tile_url[512];     /* map tile URL template for the COC; "" = boundaries only */
    char regency[16];       /* kode wilayah of the regency served, e.g. 73.22 */
    char log_level[8];
    char config_file[512];
    long threads;           /* 0 = number of cores */
    long max_body;          /* bytes, default request-body cap */
    long conn_timeout_s;
    long max_connections;
    long session_idle_s;
    long session_max_s;
    long login_fail_user_max;
    long login_fail_addr_max;
    long login_window_s;
    long shutdown_timeout_s;
    long db_sync_full;
    long cookie_secure;
    long trust_proxy;
    long sse_heartbeat_s;
    long ingest_backfill_s;
    long ingest_clock_skew_s;
    long ingest_max_records;
    long raw_retention_days;
    long readings_compact_after, readings_compact_age_s;
    long seed_demo;
    long ews_escalate_after_s;
    long ews_escalate_max;
    long ews_live_window_s;
    long mqtt_enabled;
    char mqtt_host[256];
    long mqtt_port;
    char mqtt_username[128];
    char mqtt_password_file[512];
    char mqtt_spool_dir[512];
    long mqtt_spool_fsync_ms;
    long notify_timeout_ms;
    long notify_backoff_min_ms;
    long notify_backoff_max_s;
};

enum config_type { CONFIG_STR, CONFIG_INT };

struct config_setting {
    const char *name; /* lowercase, underscores; flag is --name with dashes */
    enum config_type type;
    size_t offset, size;
    const char *def;
    long min, max;
    const char *help;
};

extern const struct config_setting config_settings[];
extern const size_t config_nsettings;

enum { CONFIG_MAX_POSITIONAL = 16, CONFIG_MAX_EXTRA = 8 };

/* What the command line held besides settings: positional words and command-specific flags. */
struct config_args {
    int npos;
    const char *pos[CONFIG_MAX_POSITIONAL];
    const char *extra_value[CONFIG_MAX_EXTRA]; /* parallel to the extra_flags given, NULL if unset */
    bool help;
};

/* Fills `c` from defaults, then the config file (--config or SINERGI_CONFIG), then the
 * environment, then argv (argv[0] is not skipped: pass the words after the subcommand).
 * `extra_flags` is a NULL-terminated list of command-specific flag names (without "--").
 * On error `err` names the bad setting and what it accepts. */
enum err_code config_load(struct config *c, int argc, char **argv, const char *const *extra_flags,
                          struct config_args *out, struct err *err);

/* Prints every setting: flag, environment variable, default and help. */
void config_print_help(FILE *f);

#endif
