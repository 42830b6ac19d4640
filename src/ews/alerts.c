/* alerts: the alert lifecycle (ISA-18.2 style): active-unacknowledged, active-acknowledged,
 * cleared-unacknowledged, closed; shelving with a reason and expiry; escalation of what nobody
 * acknowledges. Every change is a new version row, with its notification queued in the same
 * transaction (src/notify) and its live event published after commit. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "events/events.h"
#include "ews/ews_int.h"
#include "notify/notify.h"
#include "sensors/sensors.h"
#include "core/banned.h"

static struct ews_notifier notifier;

void ews_set_notifier(const struct ews_notifier *n)
{
    if (n)
        notifier = *n;
    else
        memset(&notifier, 0, sizeof notifier);
}

struct ews_settings ews__settings = {.escalate_after_s = 900, .escalate_max = 2,
                                     .live_window_s = 3600};

/* ---- live events held until commit ---------------------------------------------------------- */
struct pending {
    char station[33], kind[24];
    char *json;
};
/* Per thread: the writer thread's rule decisions and an HTTP thread's ack/shelve are different
 * transactions, and one's commit or rollback must not publish or drop the other's events. The
 * list grows as needed (a backfilled batch can change hundreds of alerts) and is freed empty. */
static _Thread_local struct pending *pend;
static _Thread_local int npend, pend_cap;

void ews__pending_event(const char *station, const char *kind, const char *json)
{
    if (npend == pend_cap) {
        int cap = pend_cap ? pend_cap * 2 : 32;
        struct pending *p = realloc(pend, (size_t)cap * sizeof *p);
        if (!p) {
            log_error("event=alert_event_dropped reason=out_of_memory");
            return;
        }
        pend = p;
        pend_cap = cap;
    }
    snprintf(pend[npend].station, sizeof pend[npend].station, "%s", station);
    snprintf(pend[npend].kind, sizeof pend[npend].kind, "%s", kind);
    pend[npend].json = strdup(json);
    npend++;
}

static void pending_clear(void)
{
    for (int i = 0; i < npend; i++)
        free(pend[i].json);
    free(pend);
    pend = NULL;
    npend = pend_cap = 0;
}

void ews__pending_publish(void)
{
    for (int i = 0; i < npend; i++)
        if (pend[i].json)
            events_publish("alert", pend[i].station, pend[i].kind, pend[i].json, false);
    bool any = npend > 0;
    pending_clear();
    if (any && notifier.kick)
        notifier.kick();
}

void ews__pending_drop(void)
{
    pending_clear();
}

/* ---- JSON ----------------------------------------------------------------------------------- */
static json_t *time_or_null(struct db_stmt *s, int col)
{
    if (db_col_is_null(s, col))
        return json_null();
    char t[CLOCK_FMT_LEN];
    clock_fmt_utc(t, db_col_int64(s, col) / 1000);
    return json_string(t);
}

json_t *ews__alert_json(struct db_stmt *s)
{
    int level = (int)db_col_int64(s, 3);
    char label[48];
    snprintf(label, sizeof label, "%s (%s)", ews_level_status(level), ews_level_siaga(level));
    json_t *o = json_pack("{s:I,s:s,s:s,s:i,s:s,s:s,s:s,s:s,s:b,s:I,s:I}", "id",
                          (json_int_t)db_col_int64(s, 0), "station", db_col_text(s, 1), "rule",
                          db_col_text(s, 2), "level", level, "label", label, "status",
                          ews_level_status(level), "siaga", ews_level_siaga(level), "state",
                          db_col_text(s, 4), "public", (int)db_col_int64(s, 5), "version",
                          (json_int_t)db_col_int64(s, 9), "escalation",
                          (json_int_t)db_col_int64(s, 14));
    json_object_set_new(o, "value", db_col_is_null(s, 6) ? json_null()
                                                         : json_real(db_col_double(s, 6)));
    json_object_set_new(o, "raised_at", time_or_null(s, 7));
    json_object_set_new(o, "updated_at", time_or_null(s, 8));
    json_object_set_new(o, "acked_by", db_col_is_null(s, 10) ? json_null()
                                                             : json_string(db_col_text(s, 10)));
    json_object_set_new(o, "acked_at", time_or_null(s, 11));
    json_object_set_new(o, "shelved_until", time_or_null(s, 12));
    json_object_set_new(o, "shelve_reason", db_col_is_null(s, 13)
                                                ? json_null()
                                                : json_string(db_col_text(s, 13)));
    json_object_set_new(o, "cleared_at", time_or_null(s, 15));
    json_object_set_new(o, "closed_at", time_or_null(s, 16));
    return o;
}

static enum err_code load_alert(struct db_conn *c, int64_t id, json_t **out, struct err *err)
{
    struct db_stmt *s;
    bool row;
    if (db_prepare(c, &s, EWS_ALERT_COLUMNS "WHERE id = ?", err))
        return err->code;
    db_bind_int64(s, 1, id);
    if (db_step(s, &row, err))
        return err->code;
    if (!row)
        return err_set(err, ERR_NOT_FOUND, "no alert with id %lld", (long long)id);
    *out = ews__alert_json(s);
    db_done(s);
    return ERR_OK;
}

/* ---- versions, notifications, events -------------------------------------------------------- */
struct change {
    int64_t alert_id;
    const char *station;
    enum ews_rule rule;
    const char *msg_type, *action, *actor, *note;
    int64_t at_ms;
    bool backfill, notify;
    int tier;
};

/* Records the new version of an alert (already updated) and what follows from it. */
static enum err_code record_change(struct db_conn *c, const struct change *ch, struct err *err)
{
    json_t *alert;
    struct db_stmt *s;
    if (load_alert(c, ch->alert_id, &alert, err))
        return err->code;
    int64_t version = json_integer_value(json_object_get(alert, "version"));
    int level = (int)json_integer_value(json_object_get(alert, "level"));
    if (db_prepare(c, &s,
                   "INSERT INTO alert_versions (alert_id, version, at, level, state, msg_type, "
                   "value, actor, action, note, backfill) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                   err) == ERR_OK) {
        db_bind_int64(s, 1, ch->alert_id);
        db_bind_int64(s, 2, version);
        db_bind_int64(s, 3, ch->at_ms);
        db_bind_int64(s, 4, level);
        db_bind_text(s, 5, json_string_value(json_object_get(alert, "state")));
        db_bind_text(s, 6, ch->msg_type);
        json_t *v = json_object_get(alert, "value");
        if (json_is_number(v))
            db_bind_double(s, 7, json_number_value(v));
        db_bind_text(s, 8, ch->actor);
        db_bind_text(s, 9, ch->action);
        db_bind_text(s, 10, ch->note ? ch->note : "");
        db_bind_int64(s, 11, ch->backfill);
        db_run(s, err);
    }
    struct sensors_station_info info;
    bool known = sensors_station_info(ch->station, &info);
    json_t *ev = json_pack("{s:s,s:s,s:s,s:s,s:O}", "station", ch->station, "kind",
                           known ? info.kind : "", "action", ch->action, "actor", ch->actor,
                           "alert", alert);
    if (!err->code && ch->notify && !ch->backfill && notifier.enqueue) {
        json_t *payload = json_deep_copy(ev);
        if (known)
            json_object_set_new(payload, "station",
                                json_pack("{s:s,s:s,s:s,s:s,s:f,s:f,s:b}", "code", info.code,
                                          "name", info.name, "river", info.river, "region",
                                          info.region, "lat", info.lat, "lon", info.lon, "demo",
                                          info.demo));
        /* the station's overall public level, so a retained message (sirens) is the state of
         * the station, not of the one rule that changed last */
        struct db_stmt *q;
        bool row;
        int station_level = 0;
        if (db_prepare(c, &q, "SELECT COALESCE(MAX(level), 0) FROM alerts WHERE station_code = ? "
                              "AND public = 1 AND state IN ('active_unack', 'active_ack')",
                       err) == ERR_OK) {
            db_bind_text(q, 1, ch->station);
            if (db_step(q, &row, err) == ERR_OK && row)
                station_level = (int)db_col_int64(q, 0);
            db_done(q);
        }
        json_object_set_new(payload, "station_level",
                            json_pack("{s:i,s:s,s:s,s:s}", "level", station_level, "status",
                                      ews_level_status(station_level), "siaga",
                                      ews_level_siaga(station_level), "colour",
                                      ews_level_colour(station_level)));
        struct notify_item n = {.alert_id = ch->alert_id, .version = version,
                                .station = ch->station, .tier = ch->tier,
                                .public_warning = ews__rule_public(ch->rule), .payload = payload};
        notifier.enqueue(c, &n, err);
        json_decref(payload);
    }
    char *text = json_dumps(ev, JSON_COMPACT | JSON_REAL_PRECISION(10));
    if (text && !err->code)
        ews__pending_event(ch->station, known ? info.kind : "", text);
    free(text);
    json_decref(ev);
    json_decref(alert);
    return err->code;
}

enum err_code ews__open_alert(struct db_conn *c, const char *station, enum ews_rule rule,
                              int64_t *id, int *level, struct err *err)
{
    struct db_stmt *s;
    bool row;
    *id = 0;
    *level = 0;
    if (db_prepare(c, &s, "SELECT id, level, state FROM alerts WHERE station_code = ? AND "
                          "rule = ? AND state <> 'closed'",
                   err))
        return err->code;
    db_bind_text(s, 1, station);
    db_bind_text(s, 2, ews__rule_name(rule));
    if (db_step(s, &row, err) == ERR_OK && row) {
        *id = db_col_int64(s, 0);
        /* a cleared alert waiting for acknowledgement is at level 0 for the rules */
        *level = strcmp(db_col_text(s, 2), "cleared_unack") == 0 ? 0 : (int)db_col_int64(s, 1);
    }
    db_done(s);
    return err->code;
}

/* Ends a cleared, never acknowledged alert because its rule fired again. */
static enum err_code close_superseded(struct db_conn *c, int64_t id, struct err *err)
{
    struct db_stmt *s;
    if (db_prepare(c, &s, "UPDATE alerts SET version = version + 1, state = 'closed', "
                          "closed_at = ? WHERE id = ?",
                   err))
        return err->code;
    db_bind_int64(s, 1, clock_now_ms());
    db_bind_int64(s, 2, id);
    return db_run(s, err);
}

enum err_code ews__decide(struct db_conn *c, const struct ews_decision *d, int64_t *alert_id,
                          struct err *err)
{
    int64_t id;
    int level;
    struct db_stmt *s;
    bool row;
    const char *rule = ews__rule_name(d->rule);
    if (ews__open_alert(c, d->station, d->rule, &id, &level, err))
        return err->code;
    struct change ch = {.station = d->station, .rule = d->rule, .actor = "rules",
                        .at_ms = d->at_ms, .backfill = d->backfill, .notify = true};
    *alert_id = id;
    if (d->level == level)
        return ERR_OK;
    if (d->level > 0 && (id == 0 || level == 0)) {
        if (id) { /* cleared but never acknowledged: that one ends, a new one starts */
            if (close_superseded(c, id, err))
                return err->code;
            ch.alert_id = id;
            ch.msg_type = "Update";
            ch.action = "closed";
            ch.note = "raised again before it was acknowledged";
            ch.notify = false;
            if (record_change(c, &ch, err))
                return err->code;
            ch.notify = true;
            ch.note = NULL;
        }
        if (db_prepare(c, &s,
                       "INSERT INTO alerts (station_code, rule, level, state, public, value, "
                       "raised_at, updated_at, version, unack_since) VALUES "
                       "(?, ?, ?, 'active_unack', ?, ?, ?, ?, 1, ?) RETURNING id",
                       err))
            return err->code;
        db_bind_text(s, 1, d->station);
        db_bind_text(s, 2, rule);
        db_bind_int64(s, 3, d->level);
        db_bind_int64(s, 4, ews__rule_public(d->rule));
        db_bind_double(s, 5, d->value);
        db_bind_int64(s, 6, d->at_ms);
        db_bind_int64(s, 7, d->at_ms);
        db_bind_int64(s, 8, clock_now_ms());
        if (db_step(s, &row, err) == ERR_OK && row)
            id = db_col_int64(s, 0);
        db_done(s);
        if (err->code)
            return err->code;
        ch.alert_id = id;
        ch.msg_type = "Alert";
        ch.action = "raised";
        *alert_id = id;
        return record_change(c, &ch, err);
    }
    ch.alert_id = id;
    if (d->level > 0) { /* level changed while active; a rise needs acknowledging again */
        if (db_prepare(c, &s,
                       "UPDATE alerts SET level = ?, value = ?, updated_at = ?, version = version "
                       "+ 1, state = CASE WHEN ? > level THEN 'active_unack' ELSE state END, "
                       "unack_since = CASE WHEN ? > level THEN ? ELSE unack_since END, "
                       "acked_by = CASE WHEN state = 'active_ack' AND ? > level THEN NULL ELSE "
                       "acked_by END, acked_at = CASE WHEN state = 'active_ack' AND ? > level "
                       "THEN NULL ELSE acked_at END, "
                       "escalation = CASE WHEN ? > level THEN 0 ELSE escalation END WHERE id = ?",
                       err))
            return err->code;
        int64_t now = clock_now_ms();
        db_bind_int64(s, 1, d->level);
        db_bind_double(s, 2, d->value);
        db_bind_int64(s, 3, d->at_ms);
        db_bind_int64(s, 4, d->level);
        db_bind_int64(s, 5, d->level);
        db_bind_int64(s, 6, now);
        db_bind_int64(s, 7, d->level);
        db_bind_int64(s, 8, d->level);
        db_bind_int64(s, 9, d->level);
        db_bind_int64(s, 10, id);
        if (db_run(s, err))
            return err->code;
        ch.msg_type = "Update";
        ch.action = "level";
        return record_change(c, &ch, err);
    }
    /* cleared: an acknowledged alert closes, an unacknowledged one waits for a person */
    if (db_prepare(c, &s,
                   "UPDATE alerts SET level = 0, value = ?, updated_at = ?, version = version + 1, "
                   "cleared_at = ?, state = CASE WHEN state = 'active_ack' THEN 'closed' ELSE "
                   "'cleared_unack' END, closed_at = CASE WHEN state = 'active_ack' THEN ? ELSE "
                   "NULL END WHERE id = ?",
                   err))
        return err->code;
    db_bind_double(s, 1, d->value);
    db_bind_int64(s, 2, d->at_ms);
    db_bind_int64(s, 3, d->at_ms);
    db_bind_int64(s, 4, clock_now_ms());
    db_bind_int64(s, 5, id);
    if (db_run(s, err))
        return err->code;
    ch.msg_type = "Cancel";
    ch.action = "cleared";
    return record_change(c, &ch, err);
}

/* ---- people --------------------------------------------------------------------------------- */
static enum err_code station_of(struct db_conn *c, int64_t id, char station[33], char *state,
                                size_t state_len, enum ews_rule *rule, struct err *err)
{
    struct db_stmt *s;
    bool row;
    if (db_prepare(c, &s, "SELECT station_code, state, rule FROM alerts WHERE id = ?", err))
        return err->code;
    db_bind_int64(s, 1, id);
    if (db_step(s, &row, err))
        return err->code;
    if (!row)
        return err_set(err, ERR_NOT_FOUND, "no alert with id %lld", (long long)id);
    snprintf(station, 33, "%s", db_col_text(s, 0));
    snprintf(state, state_len, "%s", db_col_text(s, 1));
    if (!ews__rule_parse(db_col_text(s, 2), rule))
        *rule = RULE_SILENT;
    db_done(s);
    return ERR_OK;
}

/* The update a person's action makes; binds follow the statement. */
static enum err_code apply_ack(struct db_conn *c, int64_t id, const char *who, int64_t until,
                               struct err *err)
{
    struct db_stmt *s;
    (void)until;
    if (db_prepare(c, &s,
                   "UPDATE alerts SET acked_by = ?, acked_at = ?, version = version + 1, "
                   "unack_since = NULL, state = CASE state WHEN 'active_unack' THEN 'active_ack' "
                   "ELSE 'closed' END, closed_at = CASE state WHEN 'cleared_unack' THEN ? ELSE "
                   "closed_at END WHERE id = ?",
                   err))
        return err->code;
    int64_t now = clock_now_ms();
    db_bind_text(s, 1, who);
    db_bind_int64(s, 2, now);
    db_bind_int64(s, 3, now);
    db_bind_int64(s, 4, id);
    return db_run(s, err);
}

static enum err_code apply_shelve(struct db_conn *c, int64_t id, const char *reason,
                                  int64_t until, struct err *err)
{
    struct db_stmt *s;
    if (db_prepare(c, &s, "UPDATE alerts SET version = version + 1, shelve_reason = ?, "
                          "shelved_until = ? WHERE id = ?",
                   err))
        return err->code;
    db_bind_text(s, 1, reason);
    db_bind_int64(s, 2, until * 1000);
    db_bind_int64(s, 3, id);
    return db_run(s, err);
}

static enum err_code person_change(struct db_conn *c, const struct actor *a, int64_t id,
                                   const char *action, const char *note, int64_t until,
                                   json_t **out, struct err *err)
{
    char station[33], state[24];
    enum ews_rule rule;
    bool ack = strcmp(action, "ack") == 0;
    const char *who = a->who ? a->who->username : "system";
    if (db_begin(c, err))
        return err->code;
    if (station_of(c, id, station, state, sizeof state, &rule, err) == ERR_OK) {
        if (ack && strcmp(state, "active_unack") != 0 && strcmp(state, "cleared_unack") != 0)
            err_set(err, ERR_CONFLICT, "alert %lld is %s: nothing to acknowledge", (long long)id,
                    state);
        else if (strcmp(state, "closed") == 0)
            err_set(err, ERR_CONFLICT, "alert %lld is closed", (long long)id);
    }
    if (!err->code)
        (ack ? apply_ack(c, id, who, 0, err) : apply_shelve(c, id, note, until, err));
    struct change ch = {.alert_id = id, .station = station, .rule = rule, .msg_type = "Update",
                        .action = action, .actor = who, .note = note, .at_ms = clock_now_ms(),
                        .notify = false};
    char object[24];
    snprintf(object, sizeof object, "%lld", (long long)id);
    if (err->code || record_change(c, &ch, err) ||
        audit_record(c, a, ack ? "alert.ack" : "alert.shelve", "alert", object, NULL, err) ||
        db_commit(c, err)) {
        db_rollback(c);
        ews__pending_drop();
        return err->code;
    }
    ews__pending_publish();
    return ews_alert_get(c, id, out, NULL, err);
}

enum err_code ews_alert_ack(struct db_conn *c, const struct actor *a, int64_t id,
                            const char *note, json_t **out, struct err *err)
{
    return person_change(c, a, id, "ack", note ? note : "", 0, out, err);
}

enum err_code ews_alert_shelve(struct db_conn *c, const struct actor *a, int64_t id,
                               const char *reason, int64_t until, json_t **out, struct err *err)
{
    if (!reason || !*reason)
        return err_set(err, ERR_INVALID, "field 'reason' is required to shelve an alert");
    if (until <= clock_now_s())
        return err_set(err, ERR_INVALID, "field 'until' must be in the future");
    return person_change(c, a, id, "shelve", reason, until, out, err);
}

/* ---- escalation and shelving expiry (writer thread, its own transaction) --------------------- */
void ews__tick_alerts(struct db_conn *c, int64_t now_s)
{
    struct err err = ERR_INIT;
    struct db_stmt *s;
    bool row;
    int64_t ids[64];
    int n = 0, tiers[64];
    char stations[64][33];
    enum ews_rule rules[64];
    int64_t now_ms = now_s * 1000, after_ms = ews__settings.escalate_after_s * 1000;
    if (db_prepare(c, &s,
                   "SELECT id, escalation, station_code, rule FROM alerts WHERE state = "
                   "'active_unack' AND escalation < ? AND unack_since IS NOT NULL AND "
                   "(shelved_until IS NULL OR shelved_until < ?) AND "
                   "unack_since + (escalation + 1) * ? <= ? LIMIT 64",
                   &err))
        return;
    db_bind_int64(s, 1, ews__settings.escalate_max);
    db_bind_int64(s, 2, now_ms);
    db_bind_int64(s, 3, after_ms);
    db_bind_int64(s, 4, now_ms);
    while (n < 64 && db_step(s, &row, &err) == ERR_OK && row) {
        ids[n] = db_col_int64(s, 0);
        tiers[n] = (int)db_col_int64(s, 1) + 1;
        snprintf(stations[n], 33, "%s", db_col_text(s, 2));
        if (!ews__rule_parse(db_col_text(s, 3), &rules[n]))
            rules[n] = RULE_SILENT;
        n++;
    }
    db_done(s);
    bool expired = false;
    if (db_prepare(c, &s, "SELECT 1 FROM alerts WHERE shelved_until IS NOT NULL AND "
                          "shelved_until < ? LIMIT 1",
                   &err) == ERR_OK) {
        db_bind_int64(s, 1, now_ms);
        expired = db_step(s, &row, &err) == ERR_OK && row;
        db_done(s);
    }
    if ((n == 0 && !expired) || err.code || db_begin(c, &err))
        return;
    for (int i = 0; i < n && !err.code; i++) {
        if (db_prepare(c, &s, "UPDATE alerts SET escalation = ?, version = version + 1 WHERE id = ?",
                       &err))
            break;
        db_bind_int64(s, 1, tiers[i]);
        db_bind_int64(s, 2, ids[i]);
        if (db_run(s, &err))
            break;
        struct change ch = {.alert_id = ids[i], .station = stations[i], .rule = rules[i],
                            .msg_type = "Update", .action = "escalate", .actor = "rules",
                            .at_ms = now_ms, .notify = true, .tier = tiers[i]};
        char note[64];
        snprintf(note, sizeof note, "nobody acknowledged: escalated to tier %d", tiers[i]);
        ch.note = note;
        record_change(c, &ch, &err);
    }
    if (!err.code && expired &&
        db_prepare(c, &s, "UPDATE alerts SET shelved_until = NULL, shelve_reason = NULL WHERE "
                          "shelved_until IS NOT NULL AND shelved_until < ?",
                   &err) == ERR_OK) {
        db_bind_int64(s, 1, now_ms);
        db_run(s, &err);
    }
    if (err.code || db_commit(c, &err)) {
        db_rollback(c);
        ews__pending_drop();
        log_error("event=ews_tick_failed detail=\"%s\"", err.msg);
        return;
    }
    ews__pending_publish();
}

/* ---- reads ---------------------------------------------------------------------------------- */
enum err_code ews_alert_list(struct db_conn *c, const char *state, const char *station,
                             int64_t limit, json_t **out, struct err *err)
{
    struct db_stmt *s;
    bool row;
    bool all = state && strcmp(state, "all") == 0;
    if (state && !all && strcmp(state, "open") != 0)
        return err_set(err, ERR_INVALID, "query 'state' must be open or all");
    if (db_prepare(c, &s,
                   EWS_ALERT_COLUMNS "WHERE (? OR state <> 'closed') AND (? IS NULL OR "
                                     "station_code = ?) ORDER BY level DESC, id DESC LIMIT ?",
                   err))
        return err->code;
    db_bind_int64(s, 1, all);
    db_bind_text(s, 2, station);
    db_bind_text(s, 3, station);
    db_bind_int64(s, 4, limit);
    json_t *a = json_array();
    while (db_step(s, &row, err) == ERR_OK && row)
        json_array_append_new(a, ews__alert_json(s));
    if (err->code) {
        json_decref(a);
        return err->code;
    }
    *out = a;
    return ERR_OK;
}

enum err_code ews_alert_get(struct db_conn *c, int64_t id, json_t **out,
                            char opd_out[AUTH_OPD_MAX + 1], struct err *err)
{
    json_t *alert;
    struct db_stmt *s;
    bool row;
    if (load_alert(c, id, &alert, err))
        return err->code;
    if (opd_out) {
        struct sensors_station_info info;
        const char *code = json_string_value(json_object_get(alert, "station"));
        snprintf(opd_out, AUTH_OPD_MAX + 1, "%s",
                 code && sensors_station_info(code, &info) ? info.opd : "");
    }
    json_t *history = json_array();
    if (db_prepare(c, &s,
                   "SELECT version, at, level, state, msg_type, value, actor, action, note, "
                   "backfill FROM alert_versions WHERE alert_id = ? ORDER BY version",
                   err) == ERR_OK) {
        db_bind_int64(s, 1, id);
        while (db_step(s, &row, err) == ERR_OK && row) {
            char at[CLOCK_FMT_LEN];
            clock_fmt_utc(at, db_col_int64(s, 1) / 1000);
            json_array_append_new(
                history, json_pack("{s:I,s:s,s:i,s:s,s:s,s:o,s:s,s:s,s:s,s:b}", "version",
                                   (json_int_t)db_col_int64(s, 0), "at", at, "level",
                                   (int)db_col_int64(s, 2), "state", db_col_text(s, 3),
                                   "msg_type", db_col_text(s, 4), "value",
                                   db_col_is_null(s, 5) ? json_null()
                                                        : json_real(db_col_double(s, 5)),
                                   "actor", db_col_text(s, 6), "action", db_col_text(s, 7),
                                   "note", db_col_text(s, 8), "backfill",
                                   (int)db_col_int64(s, 9)));
        }
    }
    json_object_set_new(alert, "history", history);
    *out = alert;
    return err->code;
}
