/* Private to src/ews/: rule parameters, alert storage used by the engine and the API. */
#ifndef SINERGI_EWS_INT_H
#define SINERGI_EWS_INT_H

#include <stdatomic.h>

#include "ews/ews.h"

/* The rules. Public rules make warnings for the public (CAP, sirens); the others are alarms for
 * operators only. */
enum ews_rule {
    RULE_LEVEL,        /* water level against the station's thresholds (public) */
    RULE_RATE_OF_RISE, /* rise over a window raises early (public) */
    RULE_SUDDEN_FALL,  /* level falls fast while rain continues upstream: debris dam? (operators) */
    RULE_RAIN_1H,      /* rain accumulated over 1 h (public) */
    RULE_RAIN_24H,     /* rain accumulated over 24 h (public) */
    RULE_SILENT,       /* no usable data: silent for two intervals, or stuck (operators) */
    RULE__COUNT
};
const char *ews__rule_name(enum ews_rule r);
bool ews__rule_parse(const char *s, enum ews_rule *out);
bool ews__rule_public(enum ews_rule r);

/* All parameters of all rules; each rule reads the ones it needs. Times in seconds. */
struct ews_params {
    bool enabled[RULE__COUNT];
    double hysteresis_m, hold_s;             /* level, rate_of_rise */
    double rise_m, rise_window_s;            /* rate_of_rise */
    int rise_level;
    double drop_m, drop_window_s, drop_rain_mm; /* sudden_fall */
    char rain_station[33];                      /* sudden_fall: upstream rain gauge, "" = none */
    double rain1h[3], rain24h[3], rain_hysteresis_mm; /* rain_1h, rain_24h thresholds (mm) */
    int flat_readings;                          /* silent: this many suspect-flat readings */
};

/* Loads the station's parameters (defaults by kind overlaid with its ews_rules rows). */
enum err_code ews__params_load(struct db_conn *c, const char *station, const char *kind,
                               struct ews_params *out, struct err *err);
/* Bumped by every rule update, so the engine reloads parameters. */
extern atomic_uint_fast64_t ews__params_generation;

extern struct ews_settings ews__settings;

/* Alert storage, inside the caller's transaction. `at_ms` is the decision time (reading time
 * for rules). `backfill` suppresses notifications. */
struct ews_decision {
    const char *station;
    enum ews_rule rule;
    int level; /* new level; 0 = clear */
    double value;
    int64_t at_ms;
    bool backfill;
};
/* Applies a rule decision to the open alert of (station, rule), if any. *alert_id gets the open
 * alert afterwards (0 when none). Publishes and notifies through the pending list. */
enum err_code ews__decide(struct db_conn *c, const struct ews_decision *d, int64_t *alert_id,
                          struct err *err);
/* The open alert of (station, rule): id and level, or id 0. */
enum err_code ews__open_alert(struct db_conn *c, const char *station, enum ews_rule rule,
                              int64_t *id, int *level, struct err *err);
/* Escalates unacknowledged alerts and ends expired shelving; own transaction. */
void ews__tick_alerts(struct db_conn *c, int64_t now_s);

/* Live events decided in the current transaction: published on commit, dropped on rollback. */
void ews__pending_event(const char *station, const char *kind, const char *json);
void ews__pending_publish(void);
void ews__pending_drop(void);

json_t *ews__alert_json(struct db_stmt *s);
#define EWS_ALERT_COLUMNS                                                                          \
    "SELECT id, station_code, rule, level, state, public, value, raised_at, updated_at, "         \
    "version, acked_by, acked_at, shelved_until, shelve_reason, escalation, cleared_at, "         \
    "closed_at FROM alerts "

#endif
