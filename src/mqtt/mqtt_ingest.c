/* mqtt_ingest: sinergi's subscription to sinergi/ingest/+ . A fixed client id with
 * clean_session = false, so the broker keeps the subscription and queues QoS 1 messages while
 * sinergi is down. The connection reads messages in bursts (mqtt_conn.c); each is checked and
 * staged, and at the burst's end all are spooled with one write (mqtt_spool.c) before any of
 * their PUBACKs leave (threaded mode only queues them). The payload goes through the same
 * SenML checks as HTTP ingest, for the station named by the topic (the broker authenticated the
 * device and enforced the topic). A second connection, on a clean session, reads what the broker
 * reports as dropped. */
#include <mosquitto.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/log.h"
#include "mqtt/mqtt_int.h"
#include "sensors/sensors.h"
#include "core/banned.h"

enum { BURST_MESSAGES = 512, BURST_BYTES = 1 << 20 };

static struct {
    struct mqtt__conn conn;
    struct mqtt__conn drops; /* the broker's drop counter, on a clean session */
    struct { /* messages read in this burst, staged and not yet submitted */
        struct ingest_batch *b;
        bool spooled;
    } burst[BURST_MESSAGES];
    int nburst;
    uint64_t last_bad_log_ns; /* the connection's thread only */
    uint64_t bad_suppressed;
} in;

/* Logs a refused message at most once a second; the counters have every one. */
static void log_refused(const char *code, const char *what, enum err_code rc)
{
    uint64_t now = clock_mono_ns();
    if (in.last_bad_log_ns && now - in.last_bad_log_ns < 1000000000ull) {
        in.bad_suppressed++;
        return;
    }
    log_warn("event=mqtt_message_refused station=%s reason=%s code=%s suppressed=%llu", code, what,
             err_code_name(rc), (unsigned long long)in.bad_suppressed);
    in.last_bad_log_ns = now;
    in.bad_suppressed = 0;
}

/* Runs on the writer thread after commit (or on this thread when nothing was to be stored). */
static void on_committed(const struct ingest_result *res, void *ctx)
{
    struct mqtt__counters *c = &mqtt__counters;
    if (res->rc) {
        atomic_fetch_add(&c->commit_failures, 1);
    } else {
        atomic_fetch_add(&c->stored, (uint64_t)res->accepted);
        atomic_fetch_add(&c->duplicates, (uint64_t)res->duplicates);
        atomic_fetch_add(&c->rejected, json_array_size(res->rejected));
    }
    mqtt__spool_done(ctx, res->rc != ERR_OK);
}

/* The payload as a batch for the writer, or NULL when it is refused (counted). */
static struct ingest_batch *prepare(const char *code, const char *payload, size_t len,
                                    bool replay)
{
    struct err err = ERR_INIT;
    struct ingest_batch *b;
    if (ingest_prepare(NULL, code, payload, len, &b, &err) == ERR_OK) {
        ingest_batch_unhurried(b); /* spooled: the device's PUBACK does not wait for it */
        return b;
    }
    if (err.code == ERR_UNAUTHENTICATED) { /* the station was deleted */
        atomic_fetch_add(&mqtt__counters.unknown_station, 1);
        if (!replay)
            log_refused(code, "unknown_station", err.code);
    } else {
        atomic_fetch_add(&mqtt__counters.malformed, 1);
        if (!replay)
            log_refused(code, "not_senml", err.code);
    }
    return NULL;
}

void mqtt__ingest_payload(const char *code, const char *payload, size_t len, struct spool_seg *seg,
                          bool replay)
{
    if (replay)
        atomic_fetch_add(&mqtt__counters.replayed, 1);
    struct ingest_batch *b = prepare(code, payload, len, replay);
    if (b)
        ingest_submit(b, on_committed, seg);
    else
        mqtt__spool_done(seg, false);
}

static void on_dropped(const struct mosquitto_message *msg)
{
    char num[32];
    size_t n =
        msg->payloadlen > 0 && (size_t)msg->payloadlen < sizeof num ? (size_t)msg->payloadlen : 0;
    memcpy(num, msg->payload, n);
    num[n] = 0;
    char *end;
    unsigned long long v = strtoull(num, &end, 10);
    if (end == num)
        return;
    uint64_t old = atomic_exchange(&mqtt__counters.broker_dropped, v);
    atomic_store(&mqtt__counters.broker_dropped_known, 1);
    if (v > old)
        log_warn("event=mqtt_broker_dropped total=%llu new=%llu hint=\"raise max_queued_messages "
                 "in etc/mosquitto.conf.in or keep sinergi connected\"",
                 v, v - (unsigned long long)old);
}

static void on_burst_end(void);

static void on_message(struct mosquitto *m, void *ctx, const struct mosquitto_message *msg)
{
    size_t np = strlen(MQTT_INGEST_PREFIX);
    if (strncmp(msg->topic, MQTT_INGEST_PREFIX, np) != 0)
        return;
    atomic_fetch_add(&mqtt__counters.received, 1);
    const char *code = msg->topic + np;
    size_t len = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0;
    if (!mqtt__code_valid(code, strlen(code)) || len == 0 || len > MQTT_PAYLOAD_MAX) {
        atomic_fetch_add(&mqtt__counters.malformed, 1);
        log_refused(mqtt__code_valid(code, strlen(code)) ? code : "-",
                    len ? "too_big_or_bad_topic" : "empty", ERR_INVALID);
        return;
    }
    /* Refused messages are not spooled: a replay would refuse them again. */
    struct ingest_batch *b = prepare(code, msg->payload, len, false);
    if (!b)
        return;
    if (in.nburst == BURST_MESSAGES) /* burst_full keeps this from happening */
        on_burst_end();
    in.burst[in.nburst].b = b;
    in.burst[in.nburst].spooled = mqtt__spool_stage(code, msg->payload, len);
    in.nburst++;
}

/* The end of a read burst, before any of its PUBACKs leave: the staged messages reach the spool
 * with one write, then go to the writer. */
static void on_burst_end(void)
{
    struct spool_seg *seg = mqtt__spool_flush();
    for (int i = 0; i < in.nburst; i++)
        ingest_submit(in.burst[i].b, on_committed, in.burst[i].spooled ? seg : NULL);
    in.nburst = 0;
}

/* A burst ends early when it holds many messages or many bytes. */
static bool burst_full(void)
{
    return in.nburst >= BURST_MESSAGES || mqtt__spool_staged_bytes() >= BURST_BYTES;
}

static void on_connect(struct mosquitto *m, void *ctx, int rc, int flags)
{
    if (rc != 0) {
        log_error("event=mqtt_ingest_refused reason=\"%s\"", mosquitto_connack_string(rc));
        return;
    }
    atomic_store(&mqtt__counters.connected, 1);
    atomic_store(&in.conn.up, true);
    /* Subscribed again each time: harmless when the session kept it, needed when it did not. */
    mosquitto_subscribe(m, NULL, MQTT_INGEST_PREFIX "+", 1);
    /* Sessions kept by earlier versions also held the drop counter's topic: while sinergi was
     * away its updates queued behind the readings, were dropped once the queue was full, and
     * so counted themselves as drops, one more each second. The drops connection reads it. */
    mosquitto_unsubscribe(m, NULL, MQTT_DROPPED_TOPIC);
    if (flags & 1)
        log_info("event=mqtt_ingest_connected session=resumed");
    else
        log_warn("event=mqtt_ingest_connected session=new note=\"the broker held no session for "
                 "sinergi: readings sent before this moment while sinergi was away were not "
                 "queued for it\"");
}

static void on_subscribe(struct mosquitto *m, void *ctx, int mid, int n, const int *granted)
{
    for (int i = 0; i < n; i++)
        if (granted[i] > 2)
            log_error("event=mqtt_subscribe_refused user=" MQTT_SERVICE_USER " hint=\"the "
                      "broker's role " MQTT_SERVICE_ROLE " lacks an ACL; restart sinergi to "
                      "recreate it\"");
}

static void on_disconnect(struct mosquitto *m, void *ctx, int rc)
{
    atomic_store(&mqtt__counters.connected, 0);
}

static bool ingest_stopping(void)
{
    return mqtt__conn_stopping(&in.conn);
}

static bool drops_stopping(void)
{
    return mqtt__conn_stopping(&in.drops);
}

/* Before the first connect: the account keeper has set the service account's password. */
static bool prepare_client(struct mqtt__conn *c)
{
    char pw[MQTT_PASSWORD_MAX];
    if (!mqtt__service_password(pw, c == &in.drops ? drops_stopping : ingest_stopping))
        return false;
    mosquitto_username_pw_set(c->mosq, MQTT_SERVICE_USER, pw);
    sodium_memzero(pw, sizeof pw);
    return true;
}

/* The drops connection: a clean session subscribed to the broker's drop counter only, so
 * nothing is queued for it while sinergi is away (a persistent session would queue the counter's
 * own updates behind the readings, and drop and count them). */
static void drops_on_connect(struct mosquitto *m, void *ctx, int rc)
{
    if (rc != 0) {
        log_error("event=mqtt_drops_refused reason=\"%s\"", mosquitto_connack_string(rc));
        return;
    }
    atomic_store(&mqtt__counters.broker_dropped_known, 0); /* until the broker says it again */
    atomic_store(&in.drops.up, true);
    mosquitto_subscribe(m, NULL, MQTT_DROPPED_TOPIC, 0);
}

static void drops_on_message(struct mosquitto *m, void *ctx, const struct mosquitto_message *msg)
{
    if (strcmp(msg->topic, MQTT_DROPPED_TOPIC) == 0)
        on_dropped(msg);
}

static enum err_code drops_start(struct err *err)
{
    struct mosquitto *m = mosquitto_new(MQTT_DROPS_CLIENT_ID, true, NULL);
    if (!m)
        return err_set(err, ERR_INTERNAL, "cannot create the broker drops client");
    mosquitto_connect_callback_set(m, drops_on_connect);
    mosquitto_subscribe_callback_set(m, on_subscribe);
    mosquitto_message_callback_set(m, drops_on_message);
    in.drops = (struct mqtt__conn){.mosq = m, .what = "drops", .prepare = prepare_client};
    if (mqtt__conn_start(&in.drops, err)) {
        mosquitto_destroy(m);
        return err->code;
    }
    return ERR_OK;
}

static void conn_close(struct mqtt__conn *c)
{
    if (!c->running)
        return;
    mqtt__conn_stop(c);
    mosquitto_destroy(c->mosq);
    c->mosq = NULL;
}

enum err_code mqtt__ingest_start(struct err *err)
{
    if (drops_start(err))
        return err->code;
    struct mosquitto *m = mosquitto_new(MQTT_INGEST_CLIENT_ID, false, NULL);
    if (!m) {
        conn_close(&in.drops);
        return err_set(err, ERR_INTERNAL, "cannot create the broker ingest client");
    }
    /* The connection's loop runs libmosquitto in threaded mode, where reading a QoS 1 message
     * only queues its PUBACK; the burst loop writes it after the spool write. (Otherwise
     * libmosquitto 2.0 writes the PUBACK before calling on_message, and a crash in between
     * would lose an acknowledged message.) */
    mosquitto_connect_with_flags_callback_set(m, on_connect);
    mosquitto_disconnect_callback_set(m, on_disconnect);
    mosquitto_subscribe_callback_set(m, on_subscribe);
    mosquitto_message_callback_set(m, on_message);
    in.conn = (struct mqtt__conn){
        .mosq = m, .what = "ingest", .prepare = prepare_client, .tick = mqtt__spool_tick,
        .burst_end = on_burst_end, .burst_full = burst_full};
    if (mqtt__conn_start(&in.conn, err)) {
        mosquitto_destroy(m);
        conn_close(&in.drops);
        return err->code;
    }
    return ERR_OK;
}

void mqtt__ingest_stop(void)
{
    bool was = in.conn.running;
    conn_close(&in.conn);
    conn_close(&in.drops);
    if (was)
        atomic_store(&mqtt__counters.connected, 0);
}
