/* mqtt_accounts: the broker's accounts follow the stations. sinergi is the admin of Mosquitto's
 * dynamic-security plugin: JSON commands go to $CONTROL/dynamic-security/v1, answers come back
 * on .../response. Per station: client <code> (password = device token) with role
 * station-<code>, which may publish to sinergi/ingest/<code> and nothing else. One thread applies
 * changes in order and retries while the broker is away; the station hook queues a change and
 * waits (bounded) for the broker, so once POST /stations answers the device can connect.
 *
 * The ingest client uses its own account, sinergi.service, with a random password set afresh at
 * every start and kept only in memory (no file to leak; the broker keeps the persistent session
 * by client id, not by password). The admin account is used for account changes only. */
#include <mosquitto.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "core/clock.h"
#include "core/log.h"
#include "mqtt/mqtt_int.h"
#include "sensors/sensors.h"
#include "core/banned.h"

#define CONTROL_TOPIC "$CONTROL/dynamic-security/v1"
#define RESPONSE_TOPIC "$CONTROL/dynamic-security/v1/response"

/* One station change waiting for the broker. `token` NULL-string means delete. */
struct op {
    struct op *next;
    uint64_t seq;
    bool busy, del;
    char code[MQTT_CODE_MAX + 1];
    char token[MQTT_PASSWORD_MAX];
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;    /* CLOCK_MONOTONIC */
    struct mqtt__conn conn; /* the admin connection */
    pthread_t thread;
    bool running, stopping, ready, refused_logged;
    bool service, service_ready, reconciled;
    char service_password[MQTT_PASSWORD_MAX];
    struct op *head, *tail;
    uint64_t next_seq, done_seq;
    char nonce[17];
    uint64_t req_id, resp_id;
    json_t *response;
} a = {.lock = PTHREAD_MUTEX_INITIALIZER};

static struct timespec deadline_in(int ms)
{
    return clock_deadline(CLOCK_MONOTONIC, (uint64_t)ms * 1000000u); /* a.cond's clock */
}

/* ---- the admin connection (its own network thread) ---------------------------------------- */
static void on_connect(struct mosquitto *m, void *ctx, int rc)
{
    if (rc != 0) {
        pthread_mutex_lock(&a.lock);
        bool logged = a.refused_logged;
        a.refused_logged = true;
        pthread_mutex_unlock(&a.lock);
        if (!logged)
            log_error("event=mqtt_admin_refused user=%s reason=\"%s\" hint=\"check "
                      "mqtt_username and mqtt_password_file against the broker\"",
                      mqtt__conf.username, mosquitto_connack_string(rc));
        return;
    }
    atomic_store(&a.conn.up, true);
    mosquitto_subscribe(m, NULL, RESPONSE_TOPIC, 1);
}

static void on_subscribe(struct mosquitto *m, void *ctx, int mid, int n, const int *granted)
{
    pthread_mutex_lock(&a.lock);
    a.ready = n > 0 && granted[0] <= 2;
    a.refused_logged = false;
    pthread_cond_broadcast(&a.cond);
    pthread_mutex_unlock(&a.lock);
    log_info("event=mqtt_admin_connected broker=%s:%d", mqtt__conf.host, mqtt__conf.port);
}

static void on_disconnect(struct mosquitto *m, void *ctx, int rc)
{
    pthread_mutex_lock(&a.lock);
    bool was = a.ready && !a.stopping;
    a.ready = false;
    pthread_cond_broadcast(&a.cond);
    pthread_mutex_unlock(&a.lock);
    if (was)
        log_warn("event=mqtt_admin_disconnected broker=%s:%d", mqtt__conf.host, mqtt__conf.port);
}

/* A response names the request by the correlationData "<nonce>-<id>" of its first command. */
static void on_message(struct mosquitto *m, void *ctx, const struct mosquitto_message *msg)
{
    if (strcmp(msg->topic, RESPONSE_TOPIC) != 0 || msg->payloadlen <= 0)
        return;
    json_t *j = json_loadb(msg->payload, (size_t)msg->payloadlen, 0, NULL);
    json_t *responses = json_object_get(j, "responses");
    const char *corr =
        json_string_value(json_object_get(json_array_get(responses, 0), "correlationData"));
    size_t nl = strlen(a.nonce);
    if (corr && strncmp(corr, a.nonce, nl) == 0 && corr[nl] == '-') {
        uint64_t id = strtoull(corr + nl + 1, NULL, 10);
        pthread_mutex_lock(&a.lock);
        if (id == a.req_id) {
            json_decref(a.response);
            a.response = json_incref(responses);
            a.resp_id = id;
            pthread_cond_broadcast(&a.cond);
        }
        pthread_mutex_unlock(&a.lock);
    }
    json_decref(j);
}

/* Sends `cmds` (stolen) and waits for the answers; *out gets the owned "responses" array.
 * ERR_UNAVAILABLE when the broker is not reachable or does not answer in time. */
static enum err_code dynsec(json_t *cmds, json_t **out, struct err *err)
{
    pthread_mutex_lock(&a.lock);
    bool ready = a.ready;
    uint64_t id = ++a.req_id;
    pthread_mutex_unlock(&a.lock);
    if (!ready) {
        json_decref(cmds);
        return err_set(err, ERR_UNAVAILABLE, "the broker is not connected");
    }
    char corr[64];
    snprintf(corr, sizeof corr, "%s-%llu", a.nonce, (unsigned long long)id);
    size_t i;
    json_t *c;
    json_array_foreach(cmds, i, c) json_object_set_new(c, "correlationData", json_string(corr));
    json_t *req = json_pack("{s:o}", "commands", cmds);
    char *payload = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    if (!payload)
        return err_set(err, ERR_INTERNAL, "out of memory");
    int rc = mosquitto_publish(a.conn.mosq, NULL, CONTROL_TOPIC, (int)strlen(payload), payload, 1,
                               false);
    sodium_memzero(payload, strlen(payload)); /* may hold passwords */
    free(payload);
    if (rc != MOSQ_ERR_SUCCESS)
        return err_set(err, ERR_UNAVAILABLE, "publishing to the broker failed: %s",
                       mosquitto_strerror(rc));
    struct timespec until = deadline_in(MQTT_WAIT_MS);
    pthread_mutex_lock(&a.lock);
    while (a.resp_id != id && a.ready && !a.stopping)
        if (pthread_cond_timedwait(&a.cond, &a.lock, &until) != 0)
            break;
    json_t *resp = a.resp_id == id ? a.response : NULL;
    a.response = NULL;
    pthread_mutex_unlock(&a.lock);
    if (!resp)
        return err_set(err, ERR_UNAVAILABLE, "the broker did not answer in time");
    *out = resp;
    return ERR_OK;
}

/* The error of response i, or NULL when it succeeded (or failed only with `tolerated`). */
static const char *resp_error(json_t *responses, size_t i, const char *tolerated)
{
    const char *e = json_string_value(json_object_get(json_array_get(responses, i), "error"));
    if (!json_array_get(responses, i))
        return "no response";
    if (e && tolerated && strstr(e, tolerated))
        return NULL;
    return e;
}

static json_t *acl(const char *type, const char *topic)
{
    return json_pack("{s:s,s:s,s:b}", "acltype", type, "topic", topic, "allow", 1);
}

/* Creates or updates a client with one role; the client's password becomes `password`. */
static enum err_code put_client(const char *user, const char *role, json_t *acls,
                                const char *password, struct err *err)
{
    json_t *cmds = json_array(), *resp = NULL;
    json_array_append_new(
        cmds, json_pack("{s:s,s:s,s:O}", "command", "createRole", "rolename", role, "acls", acls));
    size_t i;
    json_t *x;
    json_array_foreach(acls, i, x) /* converges a role that existed with other ACLs */
    {
        json_t *c = json_deep_copy(x);
        json_object_set_new(c, "command", json_string("addRoleACL"));
        json_object_set_new(c, "rolename", json_string(role));
        json_array_append_new(cmds, c);
    }
    size_t k = json_array_size(cmds);
    json_decref(acls);
    json_array_append_new(cmds, json_pack("{s:s,s:s,s:s,s:[{s:s}]}", "command", "createClient",
                                          "username", user, "password", password, "roles",
                                          "rolename", role));
    json_array_append_new(cmds, json_pack("{s:s,s:s,s:s}", "command", "setClientPassword",
                                          "username", user, "password", password));
    /* addClientRole answers "Internal error" when the client has the role already (2.0.11):
     * take it off first, whatever that answers. */
    json_array_append_new(cmds, json_pack("{s:s,s:s,s:s}", "command", "removeClientRole",
                                          "username", user, "rolename", role));
    json_array_append_new(cmds, json_pack("{s:s,s:s,s:s}", "command", "addClientRole", "username",
                                          user, "rolename", role));
    if (dynsec(cmds, &resp, err))
        return err->code;
    const char *e = resp_error(resp, 0, "already exists");
    if (!e)
        e = resp_error(resp, k, "already exists");
    if (!e)
        e = resp_error(resp, k + 1, NULL);
    if (!e)
        e = resp_error(resp, k + 3, NULL);
    if (e)
        err_set(err, ERR_CONFLICT, "the broker refused account '%s': %s", user, e);
    json_decref(resp);
    return err->code;
}

static enum err_code delete_client(const char *code, struct err *err)
{
    char role[MQTT_CODE_MAX + 16];
    snprintf(role, sizeof role, MQTT_STATION_ROLE_PREFIX "%s", code);
    json_t *resp = NULL;
    if (dynsec(json_pack("[{s:s,s:s},{s:s,s:s}]", "command", "deleteClient", "username", code,
                         "command", "deleteRole", "rolename", role),
               &resp, err))
        return err->code;
    const char *e = resp_error(resp, 0, "not found");
    if (!e)
        e = resp_error(resp, 1, "not found");
    if (e)
        err_set(err, ERR_CONFLICT, "the broker refused to delete account '%s': %s", code, e);
    json_decref(resp);
    return err->code;
}

static enum err_code apply(const struct op *op, struct err *err)
{
    if (op->del)
        return delete_client(op->code, err);
    char role[MQTT_CODE_MAX + 16], topic[MQTT_CODE_MAX + 32];
    snprintf(role, sizeof role, MQTT_STATION_ROLE_PREFIX "%s", op->code);
    snprintf(topic, sizeof topic, MQTT_INGEST_PREFIX "%s", op->code);
    return put_client(op->code, role, json_pack("[o]", acl("publishClientSend", topic)), op->token,
                      err);
}

/* ---- the service account and reconciliation ----------------------------------------------- */
static enum err_code ensure_service(struct err *err)
{
    unsigned char raw[24];
    char pw[MQTT_PASSWORD_MAX];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2base64(pw, sizeof pw, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    json_t *acls = json_pack("[o,o,o,o,o]", acl("subscribePattern", MQTT_INGEST_PREFIX "#"),
                             acl("publishClientReceive", MQTT_INGEST_PREFIX "#"),
                             acl("subscribePattern", "$SYS/broker/publish/messages/#"),
                             acl("publishClientReceive", "$SYS/broker/publish/messages/#"),
                             acl("publishClientSend", "sinergi/alerts/#"));
    if (put_client(MQTT_SERVICE_USER, MQTT_SERVICE_ROLE, acls, pw, err) == ERR_OK) {
        pthread_mutex_lock(&a.lock);
        memcpy(a.service_password, pw, sizeof pw);
        a.service_ready = true;
        pthread_cond_broadcast(&a.cond);
        pthread_mutex_unlock(&a.lock);
    }
    sodium_memzero(pw, sizeof pw);
    return err->code;
}

static bool in_array(json_t *arr, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) if (json_is_string(v) &&
                                      strcmp(json_string_value(v), s) == 0) return true;
    return false;
}

static void enqueue_locked(const char *code, const char *token);

/* Deletes broker accounts of stations that no longer exist; warns about stations without one
 * (the device token's plaintext is not stored, so only a rotation can create the account). */
static enum err_code reconcile(struct err *err)
{
    json_t *resp = NULL;
    if (dynsec(json_pack("[{s:s,s:i},{s:s,s:i}]", "command", "listClients", "count", -1, "command",
                         "listRoles", "count", -1),
               &resp, err))
        return err->code;
    json_t *clients = json_object_get(json_object_get(json_array_get(resp, 0), "data"), "clients");
    json_t *roles = json_object_get(json_object_get(json_array_get(resp, 1), "data"), "roles");
    if (!json_is_array(clients) || !json_is_array(roles)) {
        json_decref(resp);
        return err_set(err, ERR_CONFLICT, "the broker's account lists are not readable");
    }
    json_t *codes = sensors_station_codes();
    size_t i, np = strlen(MQTT_STATION_ROLE_PREFIX);
    int deleted = 0, missing = 0;
    json_t *v;
    pthread_mutex_lock(&a.lock);
    json_array_foreach(roles, i, v)
    {
        const char *r = json_string_value(v);
        if (r && strncmp(r, MQTT_STATION_ROLE_PREFIX, np) == 0 &&
            mqtt__code_valid(r + np, strlen(r + np)) && !in_array(codes, r + np)) {
            enqueue_locked(r + np, NULL);
            deleted++;
        }
    }
    pthread_mutex_unlock(&a.lock);
    json_array_foreach(codes, i, v)
    {
        if (in_array(clients, json_string_value(v)))
            continue;
        missing++;
        log_warn("event=mqtt_station_without_account station=%s hint=\"the device cannot use "
                 "MQTT until its token is rotated: POST /api/v1/stations/%s/token\"",
                 json_string_value(v), json_string_value(v));
    }
    log_info("event=mqtt_accounts_reconciled stations=%zu deleted=%d without_account=%d",
             json_array_size(codes), deleted, missing);
    json_decref(codes);
    json_decref(resp);
    return ERR_OK;
}

/* ---- the queue and its thread ------------------------------------------------------------- */
static void op_free(struct op *op)
{
    sodium_memzero(op->token, sizeof op->token);
    free(op);
}

/* Queues a change; an unstarted change of the same station is superseded. Caller holds a.lock. */
static void enqueue_locked(const char *code, const char *token)
{
    for (struct op **pp = &a.head, *prev = NULL; *pp; prev = *pp, pp = &(*pp)->next) {
        struct op *o = *pp;
        if (o->busy || strcmp(o->code, code) != 0)
            continue;
        *pp = o->next;
        if (a.tail == o)
            a.tail = prev;
        op_free(o);
        atomic_fetch_sub(&mqtt__counters.accounts_pending, 1);
        break;
    }
    struct op *op = calloc(1, sizeof *op);
    if (!op) {
        log_error("event=mqtt_account_lost station=%s reason=out_of_memory", code);
        return;
    }
    op->seq = ++a.next_seq;
    op->del = token == NULL;
    snprintf(op->code, sizeof op->code, "%s", code);
    if (token)
        snprintf(op->token, sizeof op->token, "%s", token);
    if (a.tail)
        a.tail->next = op;
    else
        a.head = op;
    a.tail = op;
    atomic_fetch_add(&mqtt__counters.accounts_pending, 1);
    pthread_cond_broadcast(&a.cond);
}

/* The sensors station hook: runs on the thread that changed the station, after commit. */
static void station_changed(const char *code, const char *token, void *ctx)
{
    if (!mqtt__code_valid(code, strlen(code))) {
        log_error("event=mqtt_account_skipped reason=\"station code is not a broker username\"");
        return;
    }
    pthread_mutex_lock(&a.lock);
    enqueue_locked(code, token);
    uint64_t seq = a.next_seq;
    struct timespec until = deadline_in(MQTT_WAIT_MS);
    while (a.ready && !a.stopping && a.done_seq < seq)
        if (pthread_cond_timedwait(&a.cond, &a.lock, &until) != 0)
            break;
    bool done = a.done_seq >= seq;
    pthread_mutex_unlock(&a.lock);
    if (!done)
        log_warn("event=mqtt_account_deferred station=%s reason=\"broker not reachable; the "
                 "change is applied when it is\"",
                 code);
}

static void wait_locked(int ms)
{
    struct timespec until = deadline_in(ms);
    pthread_cond_timedwait(&a.cond, &a.lock, &until);
}

/* Sets up the service account and reconciles once, then applies queued changes in order. */
static void *accounts_main(void *arg)
{
    pthread_mutex_lock(&a.lock);
    while (!a.stopping) {
        if (!a.ready) {
            wait_locked(1000);
            continue;
        }
        struct err err = ERR_INIT;
        if (a.service && (!a.service_ready || !a.reconciled)) {
            bool svc = a.service_ready;
            pthread_mutex_unlock(&a.lock);
            if (!svc)
                ensure_service(&err);
            else if (reconcile(&err) == ERR_OK)
                a.reconciled = true; /* only this thread reads or writes it */
            if (err.code)
                log_warn("event=mqtt_setup_retry detail=\"%s\"", err.msg);
            pthread_mutex_lock(&a.lock);
            if (err.code)
                wait_locked(1000);
            continue;
        }
        if (!a.head) {
            wait_locked(1000);
            continue;
        }
        struct op *op = a.head;
        op->busy = true;
        pthread_mutex_unlock(&a.lock);
        enum err_code rc = apply(op, &err);
        pthread_mutex_lock(&a.lock);
        op->busy = false;
        if (rc == ERR_UNAVAILABLE) { /* the broker went away: retry this change later */
            wait_locked(500);
            continue;
        }
        if (rc) {
            atomic_fetch_add(&mqtt__counters.account_errors, 1);
            log_error("event=mqtt_account_failed station=%s detail=\"%s\"", op->code, err.msg);
        } else {
            log_info("event=mqtt_account_%s station=%s", op->del ? "deleted" : "set", op->code);
        }
        a.head = op->next;
        if (!a.head)
            a.tail = NULL;
        a.done_seq = op->seq;
        atomic_fetch_sub(&mqtt__counters.accounts_pending, 1);
        op_free(op);
        pthread_cond_broadcast(&a.cond);
    }
    pthread_mutex_unlock(&a.lock);
    return NULL;
}

bool mqtt__service_password(char out[MQTT_PASSWORD_MAX], bool (*give_up)(void))
{
    pthread_mutex_lock(&a.lock);
    while (!a.service_ready && !a.stopping && !give_up())
        wait_locked(200);
    bool ok = a.service_ready;
    if (ok)
        memcpy(out, a.service_password, MQTT_PASSWORD_MAX);
    pthread_mutex_unlock(&a.lock);
    return ok;
}

bool mqtt_accounts_ready(int timeout_ms)
{
    struct timespec until = deadline_in(timeout_ms);
    pthread_mutex_lock(&a.lock);
    while (!a.ready && !a.stopping)
        if (pthread_cond_timedwait(&a.cond, &a.lock, &until) != 0)
            break;
    bool ready = a.ready;
    pthread_mutex_unlock(&a.lock);
    return ready;
}

bool mqtt_accounts_flush(int timeout_ms)
{
    struct timespec until = deadline_in(timeout_ms);
    pthread_mutex_lock(&a.lock);
    while (a.head && !a.stopping)
        if (pthread_cond_timedwait(&a.cond, &a.lock, &until) != 0)
            break;
    bool empty = a.head == NULL;
    pthread_mutex_unlock(&a.lock);
    return empty;
}

enum err_code mqtt__accounts_start(bool service, struct err *err)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&a.cond, &ca);
    pthread_condattr_destroy(&ca);
    a.stopping = a.ready = a.service_ready = a.reconciled = false;
    a.service = service;
    unsigned char raw[8];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(a.nonce, sizeof a.nonce, raw, sizeof raw);
    /* A generated client id: several sinergi processes (serve, simulate) may be admins at once. */
    struct mosquitto *m = mosquitto_new(NULL, true, NULL);
    if (!m)
        return err_set(err, ERR_INTERNAL, "cannot create the broker admin client");
    mosquitto_username_pw_set(m, mqtt__conf.username, mqtt__conf.password);
    mosquitto_connect_callback_set(m, on_connect);
    mosquitto_subscribe_callback_set(m, on_subscribe);
    mosquitto_disconnect_callback_set(m, on_disconnect);
    mosquitto_message_callback_set(m, on_message);
    a.conn = (struct mqtt__conn){.mosq = m, .what = "admin"};
    if (mqtt__conn_start(&a.conn, err)) {
        mosquitto_destroy(m);
        return err->code;
    }
    if (pthread_create(&a.thread, NULL, accounts_main, NULL) != 0) {
        mqtt__conn_stop(&a.conn);
        mosquitto_destroy(m);
        return err_set(err, ERR_INTERNAL, "cannot start the broker account thread");
    }
    a.running = true;
    sensors_set_station_hook(station_changed, NULL);
    return ERR_OK;
}

void mqtt__accounts_stop(void)
{
    if (!a.running)
        return;
    sensors_set_station_hook(NULL, NULL);
    pthread_mutex_lock(&a.lock);
    a.stopping = true;
    pthread_cond_broadcast(&a.cond);
    pthread_mutex_unlock(&a.lock);
    pthread_join(a.thread, NULL);
    mqtt__conn_stop(&a.conn);
    mosquitto_destroy(a.conn.mosq);
    a.conn.mosq = NULL;
    int left = 0;
    while (a.head) {
        struct op *op = a.head;
        a.head = op->next;
        op_free(op);
        left++;
    }
    a.tail = NULL;
    atomic_store(&mqtt__counters.accounts_pending, 0);
    if (left)
        log_warn("event=mqtt_accounts_unapplied count=%d hint=\"rotate those stations' tokens "
                 "once the broker is back\"",
                 left);
    json_decref(a.response);
    a.response = NULL;
    sodium_memzero(a.service_password, sizeof a.service_password);
    pthread_cond_destroy(&a.cond);
    a.running = false;
}
