/* Unit tests of src/notify against a temporary SQLite file and real local endpoints: webhook CRUD
 * and validation, who gets which notification, the signature, retry with backoff, per-target
 * order, isolation from an endpoint that accepts and never answers, delivery after a restart
 * (and again after a simulated crash between sending and recording: at-least-once, same delivery
 * id and body), and MQTT (retained, superseded, PUBACK) against a real Mosquitto broker when one
 * is installed. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mosquitto.h>

#include "auth/auth.h"
#include "core/clock.h"
#include "db/db.h"
#include "ews/ews.h"
#include "notify/notify.h"
#include "notify/notify_int.h"
#include "regions/regions.h"
#include "sensors/sensors.h"
#include "unit.h"

static const struct db_migration *const lists[] = {auth_migrations,    regions_migrations,
                                                   sensors_migrations, ews_migrations,
                                                   notify_migrations,  NULL};

/* ---- waiting for conditions ----------------------------------------------------------------- */
static void nap_ms(int ms)
{
    nanosleep(&(struct timespec){ms / 1000, (long)(ms % 1000) * 1000000L}, NULL);
}

/* Polls cond(ctx) every 10 ms until true or `timeout_ms` passed. */
static bool wait_for(bool (*cond)(void *), void *ctx, int timeout_ms)
{
    int64_t deadline = clock_now_ms() + timeout_ms;
    while (!cond(ctx)) {
        if (clock_now_ms() > deadline)
            return false;
        nap_ms(10);
    }
    return true;
}

/* ---- a tiny HTTP receiver ------------------------------------------------------------------- */
enum { MAX_REQS = 64, REQ_MAX = 16384 };

struct request {
    char delivery[64], signature[128], ctype[64];
    char *body;
    int64_t at_ms;
    int status; /* what it was answered */
};

struct receiver {
    int fd, port;
    pthread_t thread;
    atomic_bool stop;
    pthread_mutex_t lock;
    int fail_next; /* answer this many requests with 500 */
    struct request reqs[MAX_REQS];
    int n;
};

static int listen_any(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 16) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        return -1;
    *port = ntohs(a.sin_port);
    return fd;
}

static void header_value(const char *head, const char *name, char *out, size_t n)
{
    out[0] = 0;
    size_t nl = strlen(name);
    for (const char *p = head; (p = strstr(p, "\r\n")) != NULL; p += 2)
        if (strncasecmp(p + 2, name, nl) == 0 && p[2 + nl] == ':') {
            const char *v = p + 3 + nl, *e = strstr(v, "\r\n");
            while (*v == ' ')
                v++;
            snprintf(out, n, "%.*s", (int)(e ? e - v : (long)strlen(v)), v);
            return;
        }
}

/* Reads one request (headers and Content-Length body) from `fd`; false on error. */
static bool read_request(int fd, struct request *r)
{
    char buf[REQ_MAX + 1];
    size_t len = 0;
    char *end = NULL;
    long clen = -1;
    while (len < REQ_MAX) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 5000) <= 0)
            return false;
        ssize_t k = read(fd, buf + len, REQ_MAX - len);
        if (k <= 0)
            return false;
        len += (size_t)k;
        buf[len] = 0;
        if (!end && (end = strstr(buf, "\r\n\r\n")) != NULL) {
            char v[32];
            *end = 0;
            header_value(buf, "Content-Length", v, sizeof v);
            clen = strtol(v, NULL, 10);
            header_value(buf, "X-Sinergi-Delivery", r->delivery, sizeof r->delivery);
            header_value(buf, "X-Sinergi-Signature", r->signature, sizeof r->signature);
            header_value(buf, "Content-Type", r->ctype, sizeof r->ctype);
        }
        if (end && (long)(len - (size_t)(end + 4 - buf)) >= clen) {
            r->body = strndup(end + 4, (size_t)clen);
            return true;
        }
    }
    return false;
}

static void *receiver_main(void *arg)
{
    struct receiver *rv = arg;
    while (!atomic_load(&rv->stop)) {
        struct pollfd p = {rv->fd, POLLIN, 0};
        if (poll(&p, 1, 20) <= 0)
            continue;
        int c = accept(rv->fd, NULL, NULL);
        if (c < 0)
            continue;
        struct request r = {0};
        if (read_request(c, &r)) {
            pthread_mutex_lock(&rv->lock);
            r.status = rv->fail_next > 0 ? 500 : 200;
            if (rv->fail_next > 0)
                rv->fail_next--;
            r.at_ms = clock_now_ms();
            char resp[128];
            int n = snprintf(resp, sizeof resp,
                             "HTTP/1.1 %d X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                             r.status);
            if (write(c, resp, (size_t)n) != n)
                r.status = 0;
            if (rv->n < MAX_REQS)
                rv->reqs[rv->n++] = r;
            else
                free(r.body);
            pthread_mutex_unlock(&rv->lock);
        } else {
            free(r.body);
        }
        close(c);
    }
    return NULL;
}

static bool receiver_start(struct receiver *rv)
{
    memset(rv, 0, sizeof *rv);
    pthread_mutex_init(&rv->lock, NULL);
    rv->fd = listen_any(&rv->port);
    return rv->fd >= 0 && pthread_create(&rv->thread, NULL, receiver_main, rv) == 0;
}

static void receiver_stop(struct receiver *rv)
{
    atomic_store(&rv->stop, true);
    pthread_join(rv->thread, NULL);
    close(rv->fd);
    for (int i = 0; i < rv->n; i++)
        free(rv->reqs[i].body);
    pthread_mutex_destroy(&rv->lock);
}

static int received(struct receiver *rv)
{
    pthread_mutex_lock(&rv->lock);
    int n = rv->n;
    pthread_mutex_unlock(&rv->lock);
    return n;
}

struct count_ctx {
    struct receiver *rv;
    int n;
};

static bool has_n(void *ctx)
{
    struct count_ctx *c = ctx;
    return received(c->rv) >= c->n;
}

static bool wait_received(struct receiver *rv, int n, int timeout_ms)
{
    struct count_ctx c = {rv, n};
    return wait_for(has_n, &c, timeout_ms);
}

/* ---- database helpers ----------------------------------------------------------------------- */
static struct db *db;

static struct db *open_temp(char *path, size_t n)
{
    snprintf(path, n, "/tmp/sinergi-unit-notify-%d.db", (int)getpid());
    unlink(path);
    struct db *d;
    struct err e = ERR_INIT;
    struct db_options o = {.path = path, .pool_size = 4, .busy_timeout_ms = 5000, .sync_full = 0};
    if (db_open(&d, &o, &e))
        return NULL;
    struct db_conn *c = db_acquire(d);
    db_migrate(c, lists, &e);
    db_release(d, c);
    return e.code ? NULL : d;
}

/* An integer from one SQL query with up to two integer parameters (-1 on error or no row). */
static int64_t q_int(const char *sql, int64_t a, int64_t b)
{
    struct err e = ERR_INIT;
    struct db_conn *c = db_acquire(db);
    struct db_stmt *s;
    bool row = false;
    int64_t v = -1;
    if (db_prepare(c, &s, sql, &e) == ERR_OK) {
        const char *first = strchr(sql, '?');
        if (first)
            db_bind_int64(s, 1, a);
        if (first && strchr(first + 1, '?'))
            db_bind_int64(s, 2, b);
        if (db_step(s, &row, &e) == ERR_OK && row)
            v = db_col_int64(s, 0);
        db_done(s);
    }
    db_release(db, c);
    return v;
}

static const char STATE_OF[] =
    "SELECT CASE d.state WHEN 'pending' THEN 0 WHEN 'delivered' THEN 1 ELSE 2 END "
    "FROM deliveries d JOIN outbox o ON o.id = d.outbox_id "
    "WHERE o.alert_id = ? AND o.version = ? AND d.webhook_id = ?";
static const char ATTEMPTS_OF[] =
    "SELECT d.attempts FROM deliveries d JOIN outbox o ON o.id = d.outbox_id "
    "WHERE o.alert_id = ? AND o.version = ? AND d.webhook_id = ?";

/* State (0 pending, 1 delivered, 2 superseded) or attempts of one delivery. */
static int64_t delivery_int(const char *sql, int64_t alert, int64_t version, int64_t webhook)
{
    struct err e = ERR_INIT;
    struct db_conn *c = db_acquire(db);
    struct db_stmt *s;
    bool row = false;
    int64_t v = -1;
    if (db_prepare(c, &s, sql, &e) == ERR_OK) {
        db_bind_int64(s, 1, alert);
        db_bind_int64(s, 2, version);
        db_bind_int64(s, 3, webhook);
        if (db_step(s, &row, &e) == ERR_OK && row)
            v = db_col_int64(s, 0);
        db_done(s);
    }
    db_release(db, c);
    return v;
}

struct state_ctx {
    int64_t alert, version, webhook, want;
    const char *sql;
};

static bool state_is(void *ctx)
{
    struct state_ctx *s = ctx;
    return delivery_int(s->sql, s->alert, s->version, s->webhook) >= s->want;
}

static int64_t webhook_new(const char *url, const char *secret, int tier, bool public_only,
                           char secret_out[128])
{
    struct err e = ERR_INIT;
    json_t *in = json_pack("{s:s,s:i,s:b}", "url", url, "tier", tier, "public_only", public_only);
    if (secret)
        json_object_set_new(in, "secret", json_string(secret));
    json_t *out = NULL;
    struct db_conn *c = db_acquire(db);
    enum err_code rc = notify_webhook_create(c, NULL, in, &out, &e);
    db_release(db, c);
    json_decref(in);
    CHECK(rc == ERR_OK);
    if (rc)
        return 0;
    int64_t id = json_integer_value(json_object_get(out, "id"));
    if (secret_out)
        snprintf(secret_out, 128, "%s", json_string_value(json_object_get(out, "secret")));
    json_decref(out);
    return id;
}

static void url_of(char *out, size_t n, int port)
{
    snprintf(out, n, "http://127.0.0.1:%d/hook", port);
}

/* Queues one notification in its own transaction, as the alert model does, and kicks. */
static enum err_code enqueue(int64_t alert, int64_t version, const char *station, int tier,
                             bool public_warning)
{
    struct err e = ERR_INIT;
    json_t *payload =
        json_pack("{s:s,s:{s:I,s:I,s:s,s:i}}", "action", "raised", "alert", "id", (json_int_t)alert,
                  "version", (json_int_t)version, "station", station, "level", 1);
    struct notify_item it = {.alert_id = alert,
                             .version = version,
                             .station = station,
                             .tier = tier,
                             .public_warning = public_warning,
                             .payload = payload};
    struct db_conn *c = db_acquire(db);
    if (db_begin(c, &e) == ERR_OK && notify_enqueue(c, &it, &e) == ERR_OK)
        db_commit(c, &e);
    if (e.code)
        db_rollback(c);
    db_release(db, c);
    json_decref(payload);
    notify_kick();
    return e.code;
}

static bool signature_ok(const struct request *r, const char *secret)
{
    char want[NOTIFY_SIG_LEN + 1];
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret, strlen(secret));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)r->body, strlen(r->body));
    crypto_auth_hmacsha256_final(&st, mac);
    memcpy(want, "sha256=", 7);
    sodium_bin2hex(want + 7, sizeof want - 7, mac, sizeof mac);
    return strcmp(want, r->signature) == 0;
}

/* ---- tests ---------------------------------------------------------------------------------- */
static void test_sign_and_backoff(void)
{
    char sig[NOTIFY_SIG_LEN + 1];
    const char *msg = "The quick brown fox jumps over the lazy dog";
    notify__sign("key", msg, strlen(msg), sig); /* RFC 4231-style known answer (Wikipedia) */
    CHECK_STR(sig, "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8");
    notify__conf.backoff_min_ms = 1000;
    notify__conf.backoff_max_ms = 300000;
    CHECK(notify__backoff_ms(1) == 1000);
    CHECK(notify__backoff_ms(2) == 2000);
    CHECK(notify__backoff_ms(5) == 16000);
    CHECK(notify__backoff_ms(9) == 256000);
    CHECK(notify__backoff_ms(10) == 300000);
    CHECK(notify__backoff_ms(1000) == 300000);
}

static enum err_code create_raw(const char *json, json_t **out, struct err *e)
{
    json_t *in = json_loads(json, 0, NULL);
    struct db_conn *c = db_acquire(db);
    enum err_code rc = notify_webhook_create(c, NULL, in, out, e);
    db_release(db, c);
    json_decref(in);
    return rc;
}

static void test_crud(void)
{
    static const char *const bad[] = {
        "{\"url\":\"ftp://example.org/x\"}",
        "{\"url\":\"not a url\"}",
        "{\"url\":\"http://\"}",
        "{\"url\":\"http://example.org/a b\"}",
        "{\"url\":\"http://example.org/\",\"secret\":\"short\"}",
        "{\"url\":\"http://example.org/\",\"secret\":\"has space in it, long enough\"}",
        "{\"url\":\"http://example.org/\",\"tier\":10}",
        "{\"url\":\"http://example.org/\",\"tier\":\"1\"}",
        "{\"url\":\"http://example.org/\",\"colour\":\"red\"}",
        "{}",
        NULL};
    struct err e = ERR_INIT;
    json_t *out = NULL;
    for (int i = 0; bad[i]; i++) {
        err_clear(&e);
        CHECK(create_raw(bad[i], &out, &e) == ERR_INVALID);
        CHECK(e.msg[0] != 0);
    }
    err_clear(&e);
    CHECK(create_raw("{\"url\":\"https://gw.example.org/sms?token=abc\",\"tier\":2,"
                     "\"description\":\"SMS BPBD\"}",
                     &out, &e) == ERR_OK);
    const char *secret = json_string_value(json_object_get(out, "secret"));
    CHECK(secret && strlen(secret) == 43); /* 32 random bytes, base64url */
    int64_t id = json_integer_value(json_object_get(out, "id"));
    CHECK(id > 0);
    CHECK(json_integer_value(json_object_get(out, "tier")) == 2);
    CHECK(json_is_false(json_object_get(out, "public_only")));
    json_decref(out);
    err_clear(&e);
    CHECK(create_raw("{\"url\":\"http://10.0.0.5:8080/wa\",\"secret\":\"given-secret-0123456789\"}",
                     &out, &e) == ERR_OK);
    CHECK_STR(json_string_value(json_object_get(out, "secret")), "given-secret-0123456789");
    int64_t id2 = json_integer_value(json_object_get(out, "id"));
    json_decref(out);

    struct db_conn *c = db_acquire(db);
    json_t *list = NULL;
    CHECK(notify_webhook_list(c, &list, &e) == ERR_OK);
    CHECK(json_array_size(list) == 2);
    size_t i;
    json_t *w;
    json_array_foreach(list, i, w)
    {
        CHECK(json_object_get(w, "secret") == NULL);
        CHECK(json_integer_value(json_object_get(w, "pending")) == 0);
        CHECK(json_is_null(json_object_get(w, "last_error")));
    }
    char *text = json_dumps(list, 0);
    CHECK(text && !strstr(text, "given-secret"));
    free(text);
    json_decref(list);
    CHECK(notify_webhook_delete(c, NULL, id, &e) == ERR_OK);
    CHECK(notify_webhook_delete(c, NULL, id2, &e) == ERR_OK);
    CHECK(notify_webhook_delete(c, NULL, id, &e) == ERR_NOT_FOUND);
    err_clear(&e);
    CHECK(notify_webhook_list(c, &list, &e) == ERR_OK);
    CHECK(json_array_size(list) == 0);
    json_decref(list);
    db_release(db, c);
}

static const char COUNT_FOR[] =
    "SELECT COUNT(*) FROM deliveries d JOIN outbox o ON o.id = d.outbox_id "
    "WHERE o.alert_id = ? AND d.webhook_id = ?";

/* Tier 0 gets tier-0 items, tier N escalations to N; public_only only public warnings; no MQTT
 * rows while MQTT is off; a version is queued once. Runs before any deliverer. */
static void test_routing(void)
{
    int64_t all = webhook_new("http://127.0.0.1:9/a", NULL, 0, false, NULL);
    int64_t pub = webhook_new("http://127.0.0.1:9/p", NULL, 0, true, NULL);
    int64_t t1 = webhook_new("http://127.0.0.1:9/t1", NULL, 1, false, NULL);
    CHECK(enqueue(1, 1, "st-a", 0, true) == ERR_OK);  /* public warning */
    CHECK(enqueue(2, 1, "st-a", 0, false) == ERR_OK); /* operators only */
    CHECK(enqueue(3, 1, "st-a", 1, true) == ERR_OK);  /* escalation to tier 1 */
    CHECK(q_int(COUNT_FOR, 1, all) == 1);
    CHECK(q_int(COUNT_FOR, 1, pub) == 1);
    CHECK(q_int(COUNT_FOR, 1, t1) == 0);
    CHECK(q_int(COUNT_FOR, 2, all) == 1);
    CHECK(q_int(COUNT_FOR, 2, pub) == 0);
    CHECK(q_int(COUNT_FOR, 3, all) == 0);
    CHECK(q_int(COUNT_FOR, 3, t1) == 1);
    CHECK(q_int("SELECT COUNT(*) FROM deliveries WHERE channel = 'mqtt'", 0, 0) == 0);
    CHECK(enqueue(1, 1, "st-a", 0, true) == ERR_CONFLICT);
    CHECK(q_int("SELECT COUNT(*) FROM outbox WHERE alert_id = ?", 1, 0) == 1);
    /* the body is the payload plus delivery_id */
    struct err e = ERR_INIT;
    struct db_conn *c = db_acquire(db);
    struct db_stmt *s;
    bool row = false;
    if (db_prepare(c, &s, "SELECT payload FROM outbox WHERE alert_id = 3", &e) == ERR_OK &&
        db_step(s, &row, &e) == ERR_OK && row) {
        json_t *j = json_loads(db_col_text(s, 0), 0, NULL);
        CHECK_STR(json_string_value(json_object_get(j, "delivery_id")), "3.1");
        CHECK_STR(json_string_value(json_object_get(j, "action")), "raised");
        CHECK(json_integer_value(json_object_get(json_object_get(j, "alert"), "id")) == 3);
        json_decref(j);
    }
    CHECK(row);
    db_done(s);
    CHECK(notify_webhook_delete(c, NULL, all, &e) == ERR_OK); /* and what they had waiting */
    CHECK(notify_webhook_delete(c, NULL, pub, &e) == ERR_OK);
    CHECK(notify_webhook_delete(c, NULL, t1, &e) == ERR_OK);
    db_release(db, c);
    CHECK(q_int("SELECT COUNT(*) FROM deliveries", 0, 0) == 0);
}

static void start(void)
{
    struct err e = ERR_INIT;
    struct notify_settings s = {.timeout_ms = 1500, .backoff_min_ms = 200, .backoff_max_s = 1};
    CHECK(notify_start(db, &s, &e) == ERR_OK);
}

/* Signed POSTs; a 500 is retried after the backoff with the same bytes; order per target. */
static void test_signed_retry_and_order(struct receiver *rv, int64_t hook, const char *secret)
{
    rv->fail_next = 1;
    CHECK(enqueue(10, 1, "st-b", 0, true) == ERR_OK);
    CHECK(enqueue(10, 2, "st-b", 0, true) == ERR_OK);
    CHECK(enqueue(11, 1, "st-c", 0, false) == ERR_OK);
    CHECK(wait_received(rv, 4, 10000));
    struct state_ctx st = {11, 1, hook, 1, STATE_OF};
    CHECK(wait_for(state_is, &st, 5000));
    pthread_mutex_lock(&rv->lock);
    CHECK(rv->n == 4);
    static const char *const order[] = {"10.1", "10.1", "10.2", "11.1"};
    for (int i = 0; i < rv->n && i < 4; i++) {
        struct request *r = &rv->reqs[i];
        CHECK_STR(r->delivery, order[i]);
        CHECK_STR(r->ctype, "application/json");
        CHECK(signature_ok(r, secret));
        json_t *j = json_loads(r->body, 0, NULL);
        CHECK_STR(json_string_value(json_object_get(j, "delivery_id")), order[i]);
        json_decref(j);
    }
    if (rv->n >= 2) {
        CHECK(rv->reqs[0].status == 500 && rv->reqs[1].status == 200);
        CHECK(strcmp(rv->reqs[0].body, rv->reqs[1].body) == 0); /* the same bytes again */
        CHECK(rv->reqs[1].at_ms - rv->reqs[0].at_ms >= 200);    /* after the backoff */
    }
    pthread_mutex_unlock(&rv->lock);
    CHECK(delivery_int(STATE_OF, 10, 1, hook) == 1);
    CHECK(delivery_int(ATTEMPTS_OF, 10, 1, hook) == 2);
    CHECK(delivery_int(ATTEMPTS_OF, 10, 2, hook) == 1);
    /* a tampered body or another secret does not verify */
    struct request forged = rv->reqs[2];
    CHECK(!signature_ok(&forged, "another-secret-0123456789"));
}

/* A target that accepts TCP and never answers holds only itself. */
static void test_hanging_target(struct receiver *rv, int64_t hook, int hang_port)
{
    char url[96];
    url_of(url, sizeof url, hang_port);
    int64_t hang = webhook_new(url, NULL, 0, false, NULL);
    int before = received(rv);
    int64_t t0 = clock_now_ms();
    CHECK(enqueue(20, 1, "st-d", 0, true) == ERR_OK);
    CHECK(wait_received(rv, before + 1, 5000));
    int64_t took = clock_now_ms() - t0;
    CHECK(took < 1000); /* well inside the 1500 ms the hanging attempt takes */
    CHECK(delivery_int(STATE_OF, 20, 1, hang) == 0);
    struct state_ctx st = {20, 1, hook, 1, STATE_OF};
    CHECK(wait_for(state_is, &st, 5000));
    /* the next notification is not held either, while the hanging one times out and retries */
    CHECK(enqueue(20, 2, "st-d", 0, true) == ERR_OK);
    CHECK(wait_received(rv, before + 2, 5000));
    struct state_ctx timed_out = {20, 1, hang, 1, ATTEMPTS_OF};
    CHECK(wait_for(state_is, &timed_out, 8000));
    CHECK(delivery_int(STATE_OF, 20, 1, hang) == 0);
    CHECK(q_int("SELECT COUNT(*) FROM deliveries WHERE webhook_id = ? AND last_error LIKE "
                "'%Timeout%'",
                hang, 0) == 1);
    struct err e = ERR_INIT;
    struct db_conn *c = db_acquire(db);
    json_t *list = NULL;
    CHECK(notify_webhook_list(c, &list, &e) == ERR_OK);
    json_t *h = json_array_get(list, 1);
    CHECK(json_integer_value(json_object_get(h, "id")) == hang);
    CHECK(json_integer_value(json_object_get(h, "pending")) == 2);
    CHECK(json_is_string(json_object_get(h, "last_error")));
    CHECK(json_is_string(json_object_get(json_array_get(list, 0), "last_delivered_at")));
    json_decref(list);
    CHECK(notify_webhook_delete(c, NULL, hang, &e) == ERR_OK);
    db_release(db, c);
}

/* What is queued while stopped, or was sent but not recorded when the process died, is
 * delivered after the next start (the receiver sees the same delivery id and body again). */
static void test_restart(struct receiver *rv, int64_t hook, const char *secret)
{
    notify_stop();
    notify_kick(); /* harmless when stopped */
    int before = received(rv);
    CHECK(enqueue(30, 1, "st-e", 0, true) == ERR_OK);
    /* a crash after the receiver got 10.2 and before it was recorded */
    q_int("UPDATE deliveries SET state = 'pending', delivered_at = NULL WHERE outbox_id = "
          "(SELECT id FROM outbox WHERE alert_id = ? AND version = ?) RETURNING id",
          10, 2);
    CHECK(received(rv) == before);
    start();
    CHECK(wait_received(rv, before + 2, 5000));
    pthread_mutex_lock(&rv->lock);
    if (rv->n >= before + 2) {
        CHECK_STR(rv->reqs[before].delivery, "10.2"); /* the older first: order per target */
        CHECK_STR(rv->reqs[before + 1].delivery, "30.1");
        CHECK(signature_ok(&rv->reqs[before + 1], secret));
        CHECK(strcmp(rv->reqs[before].body, rv->reqs[2].body) == 0);
    }
    pthread_mutex_unlock(&rv->lock);
    struct state_ctx st = {30, 1, hook, 1, STATE_OF};
    CHECK(wait_for(state_is, &st, 5000));
}

/* ---- MQTT against a real broker --------------------------------------------------------- */
struct sub {
    pthread_mutex_t lock;
    int connack, messages;
    bool retained;
    char last[2048], topic[128];
};

static void sub_on_connect(struct mosquitto *m, void *ctx, int rc)
{
    struct sub *s = ctx;
    pthread_mutex_lock(&s->lock);
    s->connack = rc;
    pthread_mutex_unlock(&s->lock);
}

static void sub_on_message(struct mosquitto *m, void *ctx, const struct mosquitto_message *msg)
{
    struct sub *s = ctx;
    pthread_mutex_lock(&s->lock);
    s->messages++;
    s->retained = msg->retain;
    snprintf(s->topic, sizeof s->topic, "%s", msg->topic);
    snprintf(s->last, sizeof s->last, "%.*s", msg->payloadlen, (const char *)msg->payload);
    pthread_mutex_unlock(&s->lock);
}

static bool sub_has_message(void *ctx)
{
    struct sub *s = ctx;
    pthread_mutex_lock(&s->lock);
    bool v = s->messages > 0;
    pthread_mutex_unlock(&s->lock);
    return v;
}

static bool mqtt_delivered(void *ctx)
{
    return q_int("SELECT COUNT(*) FROM deliveries WHERE channel = 'mqtt' AND state = "
                 "'delivered'",
                 0, 0) >= *(int *)ctx;
}

static bool run_script(const char *verb, const char *dir, int port)
{
    char cmd[768];
    snprintf(cmd, sizeof cmd, "scripts/mqtt-broker.sh %s %s %d >/dev/null 2>&1", verb, dir, port);
    if (port == 0)
        snprintf(cmd, sizeof cmd, "scripts/mqtt-broker.sh %s %s >/dev/null 2>&1", verb, dir);
    return system(cmd) == 0;
}

static void test_mqtt(void)
{
    if (system("command -v mosquitto >/dev/null 2>&1 || test -x /usr/sbin/mosquitto") != 0 ||
        access("scripts/mqtt-broker.sh", X_OK) != 0) {
        fprintf(stderr, "test_notify: mosquitto not installed: MQTT part skipped\n");
        return;
    }
    char dir[] = "/tmp/sinergi-unit-mqtt-XXXXXX", pwfile[128], pw[128] = "";
    int port;
    int fd = listen_any(&port);
    close(fd);
    if (!mkdtemp(dir) || !run_script("start", dir, port)) {
        CHECK(!"the broker did not start");
        return;
    }
    snprintf(pwfile, sizeof pwfile, "%s/admin.pw", dir);
    FILE *f = fopen(pwfile, "r");
    if (f) {
        if (fgets(pw, sizeof pw, f))
            pw[strcspn(pw, "\r\n")] = 0;
        fclose(f);
    }
    notify_stop();
    struct err e = ERR_INIT;
    struct notify_settings s = {.timeout_ms = 1500,
                                .backoff_min_ms = 200,
                                .backoff_max_s = 1,
                                .mqtt_host = "127.0.0.1",
                                .mqtt_port = port,
                                .mqtt_username = "sinergi.admin",
                                .mqtt_password_file = pwfile};
    CHECK(notify_start(db, &s, &e) == ERR_OK);
    /* two versions in one transaction: the older is superseded, only the newest is retained */
    json_t *p1 = json_pack("{s:i}", "level", 1), *p2 = json_pack("{s:i}", "level", 2);
    struct notify_item a = {.alert_id = 40,
                            .version = 1,
                            .station = "st-m",
                            .tier = 0,
                            .public_warning = true,
                            .payload = p1};
    struct notify_item b = a, op = a;
    b.version = 2;
    b.payload = p2;
    op.alert_id = 41; /* operators only: no MQTT */
    op.public_warning = false;
    struct db_conn *c = db_acquire(db);
    if (db_begin(c, &e) == ERR_OK && notify_enqueue(c, &a, &e) == ERR_OK &&
        notify_enqueue(c, &b, &e) == ERR_OK && notify_enqueue(c, &op, &e) == ERR_OK)
        db_commit(c, &e);
    CHECK(e.code == ERR_OK);
    db_release(db, c);
    json_decref(p1);
    json_decref(p2);
    notify_kick();
    int one = 1;
    CHECK(wait_for(mqtt_delivered, &one, 15000));
    CHECK(q_int("SELECT COUNT(*) FROM deliveries WHERE channel = 'mqtt'", 0, 0) == 2);
    CHECK(q_int("SELECT COUNT(*) FROM deliveries d JOIN outbox o ON o.id = d.outbox_id "
                "WHERE d.channel = 'mqtt' AND o.version = ? AND d.state = 'superseded'",
                1, 0) == 1);

    /* a subscriber that comes later gets the retained newest version */
    struct sub sb = {.lock = PTHREAD_MUTEX_INITIALIZER, .connack = -1};
    struct mosquitto *m = mosquitto_new(NULL, true, &sb);
    mosquitto_username_pw_set(m, "sinergi.admin", pw);
    mosquitto_connect_callback_set(m, sub_on_connect);
    mosquitto_message_callback_set(m, sub_on_message);
    CHECK(mosquitto_connect(m, "127.0.0.1", port, 30) == MOSQ_ERR_SUCCESS);
    CHECK(mosquitto_subscribe(m, NULL, "sinergi/alerts/#", 1) == MOSQ_ERR_SUCCESS);
    CHECK(mosquitto_loop_start(m) == MOSQ_ERR_SUCCESS);
    CHECK(wait_for(sub_has_message, &sb, 10000));
    pthread_mutex_lock(&sb.lock);
    CHECK_STR(sb.topic, "sinergi/alerts/st-m");
    CHECK(sb.retained);
    json_t *j = json_loads(sb.last, 0, NULL);
    CHECK_STR(json_string_value(json_object_get(j, "delivery_id")), "40.2");
    CHECK(json_integer_value(json_object_get(j, "level")) == 2);
    json_decref(j);
    pthread_mutex_unlock(&sb.lock);
    mosquitto_disconnect(m);
    mosquitto_loop_stop(m, false);
    mosquitto_destroy(m);

    /* queued while sinergi was down: published after the restart */
    notify_stop();
    CHECK(enqueue(42, 1, "st-n", 0, true) == ERR_OK);
    CHECK(notify_start(db, &s, &e) == ERR_OK);
    int two = 2;
    CHECK(wait_for(mqtt_delivered, &two, 15000));
    notify_stop();
    run_script("stop", dir, 0);
    char rm[160];
    snprintf(rm, sizeof rm, "rm -rf %s", dir);
    CHECK(system(rm) == 0);
}

int main(void)
{
    char path[128];
    if (sodium_init() < 0)
        return 1;
    mosquitto_lib_init();
    db = open_temp(path, sizeof path);
    CHECK(db != NULL);
    if (!db)
        return unit_report("test_notify");
    test_sign_and_backoff();
    test_crud();
    test_routing();

    struct receiver rv;
    int hang_port;
    int hang_fd = listen_any(&hang_port); /* listens, never accepts: TCP connects, no answer */
    CHECK(receiver_start(&rv) && hang_fd >= 0);
    char url[96], secret[128];
    url_of(url, sizeof url, rv.port);
    int64_t hook = webhook_new(url, "a-shared-secret-for-tests", 0, false, secret);
    CHECK_STR(secret, "a-shared-secret-for-tests");
    start();
    test_signed_retry_and_order(&rv, hook, secret);
    test_hanging_target(&rv, hook, hang_port);
    test_restart(&rv, hook, secret);
    notify_stop();
    struct err e = ERR_INIT;
    struct db_conn *c = db_acquire(db);
    CHECK(notify_webhook_delete(c, NULL, hook, &e) == ERR_OK);
    db_release(db, c);
    receiver_stop(&rv);
    close(hang_fd);
    test_mqtt();

    db_close(db);
    unlink(path);
    char side[160];
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
    mosquitto_lib_cleanup();
    return unit_report("test_notify");
}
