/* notify: the outbox (tables, enqueue inside the caller's transaction), the queries the
 * deliverers share (due jobs, recording attempts, backoff), signing, and start/stop. */
#include <assert.h>
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "notify/notify_int.h"
#include "core/banned.h"

const struct db_migration notify_migrations[] = {
    {40, "notify: webhooks, outbox, deliveries",
     "CREATE TABLE webhooks ("
     "  id INTEGER PRIMARY KEY,"
     "  url TEXT NOT NULL,"
     "  secret TEXT NOT NULL,"
     "  tier INTEGER NOT NULL DEFAULT 0,"
     "  public_only INTEGER NOT NULL DEFAULT 0,"
     "  description TEXT NOT NULL DEFAULT '',"
     "  enabled INTEGER NOT NULL DEFAULT 1,"
     "  created_at INTEGER NOT NULL," /* unix s */
     "  created_by TEXT NOT NULL DEFAULT '');"
     "CREATE TABLE outbox ("
     "  id INTEGER PRIMARY KEY,"
     "  alert_id INTEGER NOT NULL,"
     "  version INTEGER NOT NULL,"
     "  station TEXT NOT NULL,"
     "  tier INTEGER NOT NULL,"
     "  public INTEGER NOT NULL,"
     "  payload TEXT NOT NULL,"       /* the exact body sent, signed as it is */
     "  created_at INTEGER NOT NULL," /* ms */
     "  UNIQUE (alert_id, version));"
     "CREATE TABLE deliveries ("
     "  id INTEGER PRIMARY KEY,"
     "  outbox_id INTEGER NOT NULL REFERENCES outbox(id) ON DELETE CASCADE,"
     "  channel TEXT NOT NULL CHECK (channel IN ('webhook','mqtt')),"
     "  target TEXT NOT NULL," /* 'webhook:<id>' or 'mqtt:<station>': the unit of order */
     "  webhook_id INTEGER REFERENCES webhooks(id) ON DELETE CASCADE,"
     "  state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN "
     "('pending','delivered','superseded')),"
     "  attempts INTEGER NOT NULL DEFAULT 0,"
     "  next_at INTEGER NOT NULL," /* ms */
     "  delivered_at INTEGER,"     /* ms */
     "  last_error TEXT,"
     "  UNIQUE (outbox_id, target));"
     "CREATE INDEX deliveries_pending ON deliveries(channel, target, id) WHERE state = 'pending';"
     "CREATE INDEX deliveries_webhook ON deliveries(webhook_id, id);"},
    {0, NULL, NULL},
};

struct notify__conf notify__conf;
struct db *notify__db;
static atomic_bool mqtt_on; /* read by enqueuers on other threads */
static bool running;

/* ---- enqueue ------------------------------------------------------------------------------ */
static char *body_of(const struct notify_item *n, const char *delivery)
{
    json_t *body = json_copy(n->payload); /* shallow: adds one member, shares the rest */
    if (!body)
        return NULL;
    json_object_set_new(body, "delivery_id", json_string(delivery));
    char *text = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(10));
    json_decref(body);
    return text;
}

static enum err_code insert_outbox(struct db_conn *c, const struct notify_item *n,
                                   const char *payload, int64_t now, int64_t *id, struct err *err)
{
    struct db_stmt *s;
    bool row;
    if (db_prepare(c, &s,
                   "INSERT INTO outbox (alert_id, version, station, tier, public, payload, "
                   "created_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                   err))
        return err->code;
    db_bind_int64(s, 1, n->alert_id);
    db_bind_int64(s, 2, n->version);
    db_bind_text(s, 3, n->station);
    db_bind_int64(s, 4, n->tier);
    db_bind_int64(s, 5, n->public_warning);
    db_bind_text(s, 6, payload);
    db_bind_int64(s, 7, now);
    if (db_step(s, &row, err)) {
        if (err->code == ERR_CONFLICT) {
            err_clear(err);
            err_set(err, ERR_CONFLICT, "notification %lld.%lld is queued already",
                    (long long)n->alert_id, (long long)n->version);
        }
        return err->code;
    }
    *id = row ? db_col_int64(s, 0) : 0;
    db_done(s);
    return row ? ERR_OK : err_set(err, ERR_INTERNAL, "outbox insert returned no id");
}

static enum err_code insert_deliveries(struct db_conn *c, const struct notify_item *n,
                                       int64_t outbox_id, int64_t now, struct err *err)
{
    struct db_stmt *s;
    if (db_prepare(c, &s,
                   "INSERT INTO deliveries (outbox_id, channel, target, webhook_id, next_at) "
                   "SELECT ?, 'webhook', 'webhook:' || CAST(id AS TEXT), id, ? FROM webhooks "
                   "WHERE enabled = 1 AND tier = ? AND (public_only = 0 OR ? = 1) ORDER BY id",
                   err))
        return err->code;
    db_bind_int64(s, 1, outbox_id);
    db_bind_int64(s, 2, now);
    db_bind_int64(s, 3, n->tier);
    db_bind_int64(s, 4, n->public_warning);
    if (db_run(s, err))
        return err->code;
    if (!(atomic_load(&mqtt_on) && n->public_warning && n->tier == 0))
        return ERR_OK;
    char target[NOTIFY_TARGET_MAX];
    snprintf(target, sizeof target, "mqtt:%s", n->station);
    if (db_prepare(c, &s,
                   "INSERT INTO deliveries (outbox_id, channel, target, next_at) "
                   "VALUES (?, 'mqtt', ?, ?)",
                   err))
        return err->code;
    db_bind_int64(s, 1, outbox_id);
    db_bind_text(s, 2, target);
    db_bind_int64(s, 3, now);
    return db_run(s, err);
}

enum err_code notify_enqueue(struct db_conn *c, const struct notify_item *n, struct err *err)
{
    assert(n && n->station && json_is_object(n->payload) && n->tier >= 0);
    if (strlen(n->station) > 32)
        return err_set(err, ERR_INVALID, "station code '%.40s' is too long to notify", n->station);
    char delivery[NOTIFY_ID_MAX];
    snprintf(delivery, sizeof delivery, "%lld.%lld", (long long)n->alert_id, (long long)n->version);
    char *payload = body_of(n, delivery);
    if (!payload)
        return err_set(err, ERR_INTERNAL, "out of memory for notification %s", delivery);
    int64_t now = clock_now_ms(), id = 0;
    if (insert_outbox(c, n, payload, now, &id, err) == ERR_OK)
        insert_deliveries(c, n, id, now, err);
    free(payload);
    return err->code;
}

void notify_kick(void)
{
    notify__webhooks_kick();
    notify__mqtt_kick();
}

/* ---- what the deliverers share ------------------------------------------------------------ */
static const char DUE_WEBHOOK[] =
    "SELECT d.id, d.target, d.attempts, o.alert_id, o.version, o.station, o.payload, "
    "d.webhook_id, w.url, w.secret FROM deliveries d "
    "JOIN outbox o ON o.id = d.outbox_id JOIN webhooks w ON w.id = d.webhook_id "
    "WHERE d.id IN (SELECT MIN(id) FROM deliveries WHERE state = 'pending' "
    "AND channel = 'webhook' GROUP BY target) AND d.next_at <= ? AND w.enabled = 1 "
    "ORDER BY d.id";
static const char DUE_MQTT[] =
    "SELECT d.id, d.target, d.attempts, o.alert_id, o.version, o.station, o.payload, "
    "0, NULL, NULL FROM deliveries d JOIN outbox o ON o.id = d.outbox_id "
    "WHERE d.id IN (SELECT MAX(id) FROM deliveries WHERE state = 'pending' "
    "AND channel = 'mqtt' GROUP BY target) AND d.next_at <= ? ORDER BY d.id";

static char *dup_col(struct db_stmt *s, int i)
{
    const char *v = db_col_text(s, i);
    return v ? strdup(v) : NULL;
}

static struct notify__job *job_of(struct db_stmt *s)
{
    struct notify__job *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->id = db_col_int64(s, 0);
    snprintf(j->target, sizeof j->target, "%s", db_col_text(s, 1));
    j->attempts = db_col_int64(s, 2);
    snprintf(j->delivery, sizeof j->delivery, "%lld.%lld", (long long)db_col_int64(s, 3),
             (long long)db_col_int64(s, 4));
    snprintf(j->station, sizeof j->station, "%s", db_col_text(s, 5));
    j->payload = dup_col(s, 6);
    j->len = j->payload ? strlen(j->payload) : 0;
    j->webhook_id = db_col_int64(s, 7);
    j->url = dup_col(s, 8);
    j->secret = dup_col(s, 9);
    if (!j->payload || (j->webhook_id && (!j->url || !j->secret))) {
        notify__job_free(j);
        return NULL;
    }
    return j;
}

void notify__job_free(struct notify__job *j)
{
    if (!j)
        return;
    free(j->payload);
    free(j->url);
    if (j->secret) {
        sodium_memzero(j->secret, strlen(j->secret));
        free(j->secret);
    }
    free(j);
}

/* The time the next not-yet-due delivery of `channel` falls due; INT64_MAX when none. */
static int64_t next_due(struct db_conn *c, const char *channel, int64_t now, struct err *err)
{
    struct db_stmt *s;
    bool row;
    int64_t next = INT64_MAX;
    if (db_prepare(c, &s,
                   "SELECT MIN(next_at) FROM deliveries WHERE state = 'pending' AND channel = ? "
                   "AND next_at > ?",
                   err))
        return next;
    db_bind_text(s, 1, channel);
    db_bind_int64(s, 2, now);
    if (db_step(s, &row, err) == ERR_OK && row && !db_col_is_null(s, 0))
        next = db_col_int64(s, 0);
    db_done(s);
    return next;
}

/* Older waiting deliveries of an MQTT topic: the retained message is only the newest. */
static void supersede(struct db_conn *c, const struct notify__job *j, int64_t now, struct err *err)
{
    struct db_stmt *s;
    if (db_prepare(c, &s,
                   "UPDATE deliveries SET state = 'superseded', delivered_at = ? "
                   "WHERE target = ? AND state = 'pending' AND id < ?",
                   err))
        return;
    db_bind_int64(s, 1, now);
    db_bind_text(s, 2, j->target);
    db_bind_int64(s, 3, j->id);
    db_run(s, err);
}

int notify__due(const char *channel, notify__busy_fn busy, void *ctx, struct notify__job **out,
                int max, int64_t *next_ms)
{
    bool mqtt = strcmp(channel, "mqtt") == 0;
    struct err err = ERR_INIT;
    struct db_conn *c = db_acquire(notify__db);
    struct db_stmt *s;
    bool row;
    int n = 0;
    int64_t now = clock_now_ms();
    if (db_prepare(c, &s, mqtt ? DUE_MQTT : DUE_WEBHOOK, &err) == ERR_OK) {
        db_bind_int64(s, 1, now);
        while (n < max && db_step(s, &row, &err) == ERR_OK && row) {
            if (busy(db_col_text(s, 1), ctx))
                continue;
            struct notify__job *j = job_of(s);
            if (j)
                out[n++] = j;
        }
        db_done(s);
    }
    for (int i = 0; mqtt && i < n && !err.code; i++)
        supersede(c, out[i], now, &err);
    *next_ms = next_due(c, channel, now, &err);
    db_release(notify__db, c);
    if (err.code)
        log_error("event=notify_outbox_read_failed channel=%s detail=\"%s\"", channel, err.msg);
    return n;
}

int64_t notify__backoff_ms(int64_t attempts)
{
    int64_t d = notify__conf.backoff_min_ms > 0 ? notify__conf.backoff_min_ms : 1000;
    int64_t cap = notify__conf.backoff_max_ms > 0 ? notify__conf.backoff_max_ms : 300000;
    for (int64_t i = 1; i < attempts && d < cap; i++)
        d *= 2;
    return d < cap ? d : cap;
}

void notify__record(const struct notify__job *j, bool ok, const char *error)
{
    struct err err = ERR_INIT;
    struct db_conn *c = db_acquire(notify__db);
    struct db_stmt *s;
    int64_t now = clock_now_ms();
    if (ok && db_prepare(c, &s,
                         "UPDATE deliveries SET state = 'delivered', attempts = attempts + 1, "
                         "delivered_at = ?, last_error = NULL WHERE id = ? AND state = 'pending'",
                         &err) == ERR_OK) {
        db_bind_int64(s, 1, now);
        db_bind_int64(s, 2, j->id);
        db_run(s, &err);
    } else if (!ok && db_prepare(c, &s,
                                 "UPDATE deliveries SET attempts = attempts + 1, next_at = ?, "
                                 "last_error = ? WHERE id = ? AND state = 'pending'",
                                 &err) == ERR_OK) {
        db_bind_int64(s, 1, now + notify__backoff_ms(j->attempts + 1));
        db_bind_text(s, 2, error);
        db_bind_int64(s, 3, j->id);
        db_run(s, &err);
    }
    db_release(notify__db, c);
    if (err.code) /* the row stays pending: it is sent again (at-least-once) */
        log_error("event=notify_record_failed delivery=%s target=%s detail=\"%s\"", j->delivery,
                  j->target, err.msg);
}

void notify__sign(const char *secret, const char *body, size_t len, char out[NOTIFY_SIG_LEN + 1])
{
    crypto_auth_hmacsha256_state st;
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret, strlen(secret));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)body, len);
    crypto_auth_hmacsha256_final(&st, mac);
    memcpy(out, "sha256=", 7);
    sodium_bin2hex(out + 7, NOTIFY_SIG_LEN + 1 - 7, mac, sizeof mac);
    sodium_memzero(&st, sizeof st);
}

/* ---- start and stop ----------------------------------------------------------------------- */
static enum err_code read_password(const char *path, char *out, size_t n, struct err *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return err_set(err, ERR_INVALID,
                       "mqtt_password_file %s cannot be read: %s (MQTT notifications need the "
                       "broker's admin password)",
                       path, strerror(errno));
    bool ok = fgets(out, (int)n, f) != NULL;
    fclose(f);
    out[ok ? strcspn(out, "\r\n") : 0] = 0;
    if (!*out)
        return err_set(err, ERR_INVALID, "mqtt_password_file %s holds no password", path);
    return ERR_OK;
}

static enum err_code configure(const struct notify_settings *s, struct err *err)
{
    struct notify__conf *k = &notify__conf;
    memset(k, 0, sizeof *k);
    k->timeout_ms = s->timeout_ms > 0 ? s->timeout_ms : 10000;
    k->backoff_min_ms = s->backoff_min_ms > 0 ? s->backoff_min_ms : 1000;
    k->backoff_max_ms = (s->backoff_max_s > 0 ? s->backoff_max_s : 300) * 1000;
    if (!s->mqtt_host || !*s->mqtt_host)
        return ERR_OK;
    k->mqtt = true;
    snprintf(k->mqtt_host, sizeof k->mqtt_host, "%s", s->mqtt_host);
    k->mqtt_port = s->mqtt_port;
    snprintf(k->mqtt_username, sizeof k->mqtt_username, "%s",
             s->mqtt_username ? s->mqtt_username : "");
    return read_password(s->mqtt_password_file ? s->mqtt_password_file : "", k->mqtt_password,
                         sizeof k->mqtt_password, err);
}

enum err_code notify_start(struct db *db, const struct notify_settings *s, struct err *err)
{
    assert(!running);
    if (configure(s, err))
        return err->code;
    notify__db = db;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return err_set(err, ERR_INTERNAL, "libcurl failed to start");
    if (notify__webhooks_start(err)) {
        curl_global_cleanup();
        return err->code;
    }
    if (notify__conf.mqtt && notify__mqtt_start(err)) {
        notify__webhooks_stop();
        curl_global_cleanup();
        return err->code;
    }
    atomic_store(&mqtt_on, notify__conf.mqtt);
    running = true;
    log_info("event=notify_started mqtt=%s timeout_ms=%lld backoff_max_s=%lld",
             notify__conf.mqtt ? "on" : "off", (long long)notify__conf.timeout_ms,
             (long long)(notify__conf.backoff_max_ms / 1000));
    return ERR_OK;
}

void notify_stop(void)
{
    if (!running)
        return;
    /* mqtt_on stays: what is queued after this is delivered at the next start */
    notify__mqtt_stop();
    notify__webhooks_stop();
    curl_global_cleanup();
    sodium_memzero(notify__conf.mqtt_password, sizeof notify__conf.mqtt_password);
    running = false;
}
