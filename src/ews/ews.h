/* ews: the flood early warning. Rules per station, evaluated in reading time as each reading is
 * stored (on the ingest writer thread, inside its transaction), decide alert levels; alerts are
 * handled by people on duty (acknowledge, shelve, escalation); every change of an alert is a new
 * version, recorded with the notifications it causes in the same transaction.
 *
 * Levels are the neutral ordinal of DOMAIN.md §2: 0 Normal (Siaga 4), 1 Waspada (Siaga 3),
 * 2 Siaga (Siaga 2), 3 Awas (Siaga 1).
 *
 * Tables (owned here):
 *   ews_rules(station_code, rule, enabled, params JSON)
 *   alerts(id, station_code, rule, level, state, public, value, raised_at, updated_at, version,
 *          acked_by, acked_at, shelved_until, shelve_reason, escalation, cleared_at, closed_at)
 *   alert_versions(alert_id, version, at, level, state, msg_type, value, actor, note, backfill)
 *     one row per change: msg_type 'Alert' (raised), 'Update' (level or state changed),
 *     'Cancel' (ended); `backfill` = 1 when decided from readings older than the live window,
 *     so nothing is sent to the public for it. CAP documents are rendered from these rows.
 */
#ifndef SINERGI_EWS_H
#define SINERGI_EWS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "auth/auth.h"
#include "core/err.h"
#include "db/db.h"

extern const struct db_migration ews_migrations[];

enum ews_state {
    EWS_ACTIVE_UNACK, /* "active_unack" */
    EWS_ACTIVE_ACK,   /* "active_ack" */
    EWS_CLEARED_UNACK,/* "cleared_unack" */
    EWS_CLOSED,       /* "closed" */
};
const char *ews_state_name(enum ews_state s);
/* "Waspada (Siaga 3)" etc.; level 0..3. */
const char *ews_level_status(int level); /* Normal, Waspada, Siaga, Awas */
const char *ews_level_siaga(int level);  /* Siaga 4, Siaga 3, Siaga 2, Siaga 1 */
const char *ews_level_colour(int level); /* green, yellow, orange, red */

struct ews_settings {
    int64_t escalate_after_s; /* an unacknowledged active alert escalates after this */
    int64_t escalate_max;     /* tiers of contacts */
    int64_t live_window_s;    /* decisions from readings older than this are backfill */
};

/* Where alert notifications go (src/notify): `enqueue` runs inside the alert's transaction,
 * `kick` after commit. Wired by main; without it alerts are recorded but nobody is notified. */
struct notify_item;
struct ews_notifier {
    enum err_code (*enqueue)(struct db_conn *c, const struct notify_item *n, struct err *err);
    void (*kick)(void);
};
void ews_set_notifier(const struct ews_notifier *n);

/* Registers the rule engine with the ingest writer (sensors_set_observer). */
enum err_code ews_start(struct db *db, const struct ews_settings *s, struct err *err);
void ews_stop(void);

/* ---- alerts (HTTP-facing) ----------------------------------------------------------------- */
/* `state`: "open" (not closed) or "all"; `station` may be NULL. */
enum err_code ews_alert_list(struct db_conn *c, const char *state, const char *station,
                             int64_t limit, json_t **out, struct err *err);
/* With its history. `opd_out` receives the owning OPD of the station. */
enum err_code ews_alert_get(struct db_conn *c, int64_t id, json_t **out,
                            char opd_out[AUTH_OPD_MAX + 1], struct err *err);
enum err_code ews_alert_ack(struct db_conn *c, const struct actor *a, int64_t id,
                            const char *note, json_t **out, struct err *err);
/* Shelving hides an alert from the active list until `until` (unix s) with a reason; it keeps
 * being evaluated, and notifications of a shelved alert go to operators only. */
enum err_code ews_alert_shelve(struct db_conn *c, const struct actor *a, int64_t id,
                               const char *reason, int64_t until, json_t **out, struct err *err);

/* ---- rules (per station, data not code) -------------------------------------------------- */
enum err_code ews_rules_get(struct db_conn *c, const char *station, json_t **out,
                            struct err *err);
/* `in`: {"enabled"?: bool, "params"?: {...}} for one rule; unknown params are refused. */
enum err_code ews_rule_update(struct db_conn *c, const struct actor *a, const char *station,
                              const char *rule, json_t *in, json_t **out, struct err *err);

#endif
