/* mqtt_pub: one thread publishes public warnings, retained with QoS 1, to sinergi/alerts/<station>
 * and records each as delivered when the broker's PUBACK accepts it (MQTT 5 reason code < 128).
 *
 * It publishes as its own broker account, sinergi.notify, allowed to publish to sinergi/alerts/#
 * and nothing else: before connecting it asks the broker's dynamic-security plugin, as the admin
 * of the mqtt_* settings, to create the account (or set its password) with a random password
 * chosen at every start and kept in memory only. When the connection is lost or a PUBACK does
 * not come within notify_timeout_ms, the connection is dropped with everything in flight (which
 * is retried, never resent behind a newer message by the library: a retained topic must end on
 * the newest message). */
#include <mosquitto.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "core/clock.h"
#include "core/log.h"
#include "notify/notify_int.h"
#include "core/banned.h"

#define CONTROL_TOPIC "$CONTROL/dynamic-security/v1"
#define RESPONSE_TOPIC "$CONTROL/dynamic-security/v1/response"
#define NOTIFY_ROLE "sinergi.notify"

enum {
    LOOP_MS = 50,
    KEEPALIVE_S = 30,
    SETUP_WAIT_MS = 5000,
    BACKOFF_MIN_MS = 200,
    BACKOFF_MAX_MS = 5000
};

static struct {
    pthread_t thread;
    bool running;
    atomic_bool stopping, kicked;
    /* the publisher connection; only the thread touches what follows */
    struct mosquitto *pub;
    int connack; /* -1 until the CONNACK */
    bool lost;
    bool account_ready;
    char password[64];
    struct notify__job *inflight[NOTIFY_MAX_INFLIGHT];
    int n;
    bool logged_down;
} q;

/* ---- setup of the account, as the admin ---------------------------------------------------- */
struct setup {
    int connack, suback;
    bool answered;
    char corr[40];
};

static void setup_on_connect(struct mosquitto *m, void *ctx, int rc)
{
    struct setup *s = ctx;
    s->connack = rc;
    if (rc == 0)
        mosquitto_subscribe(m, NULL, RESPONSE_TOPIC, 1);
}

static void setup_on_subscribe(struct mosquitto *m, void *ctx, int mid, int n, const int *granted)
{
    struct setup *s = ctx;
    s->suback = n > 0 && granted[0] <= 2 ? 1 : 0;
}

static void setup_on_message(struct mosquitto *m, void *ctx, const struct mosquitto_message *msg)
{
    struct setup *s = ctx;
    if (strcmp(msg->topic, RESPONSE_TOPIC) != 0 || msg->payloadlen <= 0)
        return;
    json_t *j = json_loadb(msg->payload, (size_t)msg->payloadlen, 0, NULL);
    json_t *rs = json_object_get(j, "responses");
    size_t i;
    json_t *r;
    json_array_foreach(rs, i, r)
    {
        const char *corr = json_string_value(json_object_get(r, "correlationData"));
        if (corr && strcmp(corr, s->corr) == 0)
            s->answered = true;
    }
    json_decref(j);
}

static json_t *acl(void)
{
    return json_pack("{s:s,s:s,s:b}", "acltype", "publishClientSend", "topic",
                     NOTIFY_TOPIC_PREFIX "#", "allow", 1);
}

/* The dynamic-security commands that converge the account, whatever existed before. */
static char *setup_commands(const char *corr)
{
    json_t *cmds = json_pack(
        "[{s:s,s:s,s:[o]},{s:s,s:s,s:s,s:s,s:b},{s:s,s:s,s:s,s:[{s:s}]},{s:s,s:s,s:s},"
        "{s:s,s:s,s:s}]",
        "command", "createRole", "rolename", NOTIFY_ROLE, "acls", acl(), /**/
        "command", "addRoleACL", "rolename", NOTIFY_ROLE, "acltype", "publishClientSend", "topic",
        NOTIFY_TOPIC_PREFIX "#", "allow", 1, /**/
        "command", "createClient", "username", NOTIFY_MQTT_USER, "password", q.password, "roles",
        "rolename", NOTIFY_ROLE, /**/
        "command", "setClientPassword", "username", NOTIFY_MQTT_USER, "password", q.password,
        /**/
        "command", "addClientRole", "username", NOTIFY_MQTT_USER, "rolename", NOTIFY_ROLE);
    size_t i;
    json_t *c;
    json_array_foreach(cmds, i, c) json_object_set_new(c, "correlationData", json_string(corr));
    json_t *req = json_pack("{s:o}", "commands", cmds);
    char *text = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    return text;
}

/* Runs `m`'s loop until `done(ctx)`, the deadline, a network error or stop. */
static bool loop_until(struct mosquitto *m, bool (*done)(void *), void *ctx, int64_t deadline)
{
    while (!done(ctx)) {
        if (atomic_load(&q.stopping) || clock_now_ms() > deadline)
            return false;
        if (mosquitto_loop(m, LOOP_MS, 1) != MOSQ_ERR_SUCCESS)
            return false;
    }
    return true;
}

static bool setup_connected(void *ctx)
{
    struct setup *s = ctx;
    return s->connack > 0 || s->suback >= 0;
}

static bool setup_answered(void *ctx)
{
    return ((struct setup *)ctx)->answered;
}

/* Creates or updates the publisher's account; false when the broker could not be asked. */
static bool setup_account(void)
{
    unsigned char raw[24];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2base64(q.password, sizeof q.password, raw, sizeof raw,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    struct setup s = {.connack = -1, .suback = -1};
    snprintf(s.corr, sizeof s.corr, "notify-%d-%u", (int)getpid(), randombytes_random());
    char id[64];
    snprintf(id, sizeof id, "sinergi.notify-setup-%d", (int)getpid());
    struct mosquitto *m = mosquitto_new(id, true, &s);
    if (!m)
        return false;
    mosquitto_username_pw_set(m, notify__conf.mqtt_username, notify__conf.mqtt_password);
    mosquitto_connect_callback_set(m, setup_on_connect);
    mosquitto_subscribe_callback_set(m, setup_on_subscribe);
    mosquitto_message_callback_set(m, setup_on_message);
    int64_t deadline = clock_now_ms() + SETUP_WAIT_MS;
    bool ok = mosquitto_connect(m, notify__conf.mqtt_host, notify__conf.mqtt_port, KEEPALIVE_S) ==
                  MOSQ_ERR_SUCCESS &&
              loop_until(m, setup_connected, &s, deadline) && s.connack == 0 && s.suback == 1;
    if (!ok && s.connack > 0 && !q.logged_down)
        log_error("event=notify_mqtt_admin_refused user=%s reason=\"%s\" hint=\"check "
                  "mqtt_username and mqtt_password_file against the broker\"",
                  notify__conf.mqtt_username, mosquitto_connack_string(s.connack));
    char *cmds = ok ? setup_commands(s.corr) : NULL;
    ok = cmds && mosquitto_publish(m, NULL, CONTROL_TOPIC, (int)strlen(cmds), cmds, 1, false) ==
                     MOSQ_ERR_SUCCESS;
    if (cmds) {
        sodium_memzero(cmds, strlen(cmds)); /* holds the password */
        free(cmds);
    }
    ok = ok && loop_until(m, setup_answered, &s, deadline);
    mosquitto_disconnect(m);
    mosquitto_loop(m, 10, 1);
    mosquitto_destroy(m);
    return ok;
}

/* ---- the publisher connection -------------------------------------------------------------- */
static void fail_inflight(const char *why)
{
    for (int i = 0; i < q.n; i++) {
        notify__record(q.inflight[i], false, why);
        notify__job_free(q.inflight[i]);
    }
    q.n = 0;
}

static void on_connect(struct mosquitto *m, void *ctx, int rc)
{
    q.connack = rc;
}

static void on_disconnect(struct mosquitto *m, void *ctx, int rc)
{
    q.lost = true;
}

static void on_publish(struct mosquitto *m, void *ctx, int mid, int reason,
                       const mosquitto_property *props)
{
    for (int i = 0; i < q.n; i++) {
        struct notify__job *j = q.inflight[i];
        if (j->mid != mid)
            continue;
        bool ok = reason < 128;
        char why[96];
        snprintf(why, sizeof why, "broker refused the message: %s",
                 mosquitto_reason_string(reason));
        notify__record(j, ok, ok ? NULL : why);
        if (ok)
            log_info("event=mqtt_alert_published station=%s delivery=%s attempt=%lld ms=%lld",
                     j->station, j->delivery, (long long)j->attempts + 1,
                     (long long)(clock_now_ms() - j->started_ms));
        else
            log_warn("event=mqtt_alert_refused station=%s delivery=%s attempt=%lld error=\"%s\"",
                     j->station, j->delivery, (long long)j->attempts + 1, why);
        notify__job_free(j);
        q.inflight[i] = q.inflight[--q.n];
        atomic_store(&q.kicked, true); /* a newer message of that topic may be waiting */
        return;
    }
}

static void drop(const char *why)
{
    fail_inflight(why);
    if (q.pub) {
        mosquitto_disconnect(q.pub);
        mosquitto_destroy(q.pub); /* with its queue: nothing old is resent later */
        q.pub = NULL;
    }
}

static bool got_connack(void *ctx)
{
    return q.connack >= 0;
}

static bool connect_pub(void)
{
    q.pub = mosquitto_new(NOTIFY_MQTT_USER, true, NULL);
    if (!q.pub)
        return false;
    q.connack = -1;
    q.lost = false;
    mosquitto_int_option(q.pub, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_username_pw_set(q.pub, NOTIFY_MQTT_USER, q.password);
    mosquitto_connect_callback_set(q.pub, on_connect);
    mosquitto_disconnect_callback_set(q.pub, on_disconnect);
    mosquitto_publish_v5_callback_set(q.pub, on_publish);
    bool ok = mosquitto_connect(q.pub, notify__conf.mqtt_host, notify__conf.mqtt_port,
                                KEEPALIVE_S) == MOSQ_ERR_SUCCESS &&
              loop_until(q.pub, got_connack, NULL, clock_now_ms() + notify__conf.timeout_ms) &&
              q.connack == 0;
    if (!ok) {
        if (q.connack > 0) /* refused: the account is gone or has another password */
            q.account_ready = false;
        mosquitto_destroy(q.pub);
        q.pub = NULL;
    }
    return ok;
}

static bool busy(const char *target, void *ctx)
{
    for (int i = 0; i < q.n; i++)
        if (strcmp(q.inflight[i]->target, target) == 0)
            return true;
    return false;
}

static void publish_due(int64_t *next_ms)
{
    struct notify__job *jobs[NOTIFY_MAX_INFLIGHT];
    int n = notify__due("mqtt", busy, NULL, jobs, NOTIFY_MAX_INFLIGHT - q.n, next_ms);
    for (int i = 0; i < n; i++) {
        struct notify__job *j = jobs[i];
        char topic[sizeof NOTIFY_TOPIC_PREFIX + sizeof j->station];
        snprintf(topic, sizeof topic, NOTIFY_TOPIC_PREFIX "%s", j->station);
        int rc = q.pub ? mosquitto_publish_v5(q.pub, &j->mid, topic, (int)j->len, j->payload, 1,
                                              true, NULL)
                       : MOSQ_ERR_NO_CONN;
        if (rc != MOSQ_ERR_SUCCESS) {
            notify__record(j, false, mosquitto_strerror(rc));
            notify__job_free(j);
            continue;
        }
        j->started_ms = clock_now_ms();
        q.inflight[q.n++] = j;
    }
}

/* Drops the connection when a PUBACK is overdue. */
static bool overdue(void)
{
    int64_t now = clock_now_ms();
    for (int i = 0; i < q.n; i++)
        if (now - q.inflight[i]->started_ms > notify__conf.timeout_ms)
            return true;
    return false;
}

static void pause_ms(int ms)
{
    for (int64_t until = clock_now_ms() + ms; !atomic_load(&q.stopping) && clock_now_ms() < until;)
        nanosleep(&(struct timespec){0, LOOP_MS * 1000000L}, NULL);
}

/* Connects (setting up the account first when needed); false when it must wait and retry. */
static bool ensure_connected(void)
{
    if (q.pub)
        return true;
    if ((q.account_ready || (q.account_ready = setup_account())) && connect_pub()) {
        log_info("event=notify_mqtt_connected broker=%s:%d user=" NOTIFY_MQTT_USER,
                 notify__conf.mqtt_host, notify__conf.mqtt_port);
        q.logged_down = false;
        return true;
    }
    if (!q.logged_down && !atomic_load(&q.stopping))
        log_warn("event=notify_mqtt_unavailable broker=%s:%d retry=background",
                 notify__conf.mqtt_host, notify__conf.mqtt_port);
    q.logged_down = true;
    return false;
}

static void *publish_main(void *arg)
{
    int backoff = BACKOFF_MIN_MS;
    int64_t next_scan = 0;
    while (!atomic_load(&q.stopping)) {
        if (!ensure_connected()) {
            pause_ms(backoff);
            backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
            continue;
        }
        backoff = BACKOFF_MIN_MS;
        int64_t now = clock_now_ms();
        if (atomic_exchange(&q.kicked, false) || now >= next_scan) {
            int64_t due = INT64_MAX;
            publish_due(&due);
            next_scan = now + NOTIFY_POLL_MS < due ? now + NOTIFY_POLL_MS : due;
        }
        int rc = mosquitto_loop(q.pub, LOOP_MS, 1);
        if (rc != MOSQ_ERR_SUCCESS || q.lost) {
            log_warn("event=notify_mqtt_disconnected detail=\"%s\" in_flight=%d retry=background",
                     mosquitto_strerror(rc), q.n);
            drop("connection to the broker lost");
        } else if (overdue()) {
            log_warn("event=notify_mqtt_puback_overdue in_flight=%d timeout_ms=%lld", q.n,
                     (long long)notify__conf.timeout_ms);
            drop("no PUBACK within notify_timeout_ms");
        }
    }
    /* abandoned: what is in flight stays pending in the outbox, sent at the next start */
    for (int i = 0; i < q.n; i++)
        notify__job_free(q.inflight[i]);
    q.n = 0;
    if (q.pub) {
        mosquitto_disconnect(q.pub);
        mosquitto_loop(q.pub, 10, 1);
        mosquitto_destroy(q.pub);
        q.pub = NULL;
    }
    return arg;
}

enum err_code notify__mqtt_start(struct err *err)
{
    mosquitto_lib_init();
    q.account_ready = false;
    q.logged_down = false;
    q.n = 0;
    atomic_store(&q.stopping, false);
    atomic_store(&q.kicked, true);
    if (pthread_create(&q.thread, NULL, publish_main, NULL) != 0) {
        mosquitto_lib_cleanup();
        return err_set(err, ERR_INTERNAL, "cannot start the MQTT alert publisher");
    }
    q.running = true;
    return ERR_OK;
}

void notify__mqtt_stop(void)
{
    if (!q.running)
        return;
    atomic_store(&q.stopping, true);
    pthread_join(q.thread, NULL);
    sodium_memzero(q.password, sizeof q.password);
    mosquitto_lib_cleanup();
    q.running = false;
}

void notify__mqtt_kick(void)
{
    atomic_store(&q.kicked, true);
}
