/* Unit tests of src/events (the hub: order, ids, filters, coalescing, reset, byte limits,
 * concurrency, against a reference model) and of src/http/sse.c on a real libmicrohttpd daemon
 * (suspend/resume, wake-up, heartbeat, resume from an id, closed clients, shutdown). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "events/events.h"
#include "http/sse.h"
#include "unit.h"

static char buf[1 << 20];

static size_t read_all(uint64_t *cursor, const struct events_filter *f)
{
    size_t n = events_read(cursor, f, buf, sizeof buf - 1);
    buf[n] = 0;
    return n;
}

static void test_order_and_ids(void)
{
    events_init(8);
    CHECK(events_last_id() == 0);
    uint64_t c = 0;
    CHECK(read_all(&c, NULL) == 0 && c == 0);
    CHECK(events_publish("reading", "masamba-1", "water_level", "{\"v\":1}", false) == 1);
    CHECK(events_publish("station", "masamba-1", "water_level", "{\"s\":\"ok\"}", false) == 2);
    CHECK(events_publish("reading", "radda-1", "rain", "{\"v\":2}", false) == 3);
    CHECK(events_last_id() == 3);
    read_all(&c, NULL);
    CHECK_STR(buf, "id: 1\nevent: reading\ndata: {\"v\":1}\n\n"
                   "id: 2\nevent: station\ndata: {\"s\":\"ok\"}\n\n"
                   "id: 3\nevent: reading\ndata: {\"v\":2}\n\n");
    CHECK(c == 3);
    CHECK(read_all(&c, NULL) == 0 && c == 3);
    c = 2; /* resume after id 2 */
    read_all(&c, NULL);
    CHECK_STR(buf, "id: 3\nevent: reading\ndata: {\"v\":2}\n\n");
    CHECK(events_publish("reading", NULL, NULL, "{}", false) == 4); /* NULL key, kind: "" */
    events_shutdown();
}

static void test_refused(void)
{
    CHECK(events_publish("reading", "a", "rain", "{}", false) == 0); /* not started */
    events_init(4);
    char longkey[EVENTS_KEY_MAX + 1];
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = 0;
    CHECK(events_publish("reading", longkey, "rain", "{}", false) == 0);
    CHECK(events_publish("reading", "a", "rain", "{\n}", false) == 0);
    CHECK(events_publish("read\ning", "a", "rain", "{}", false) == 0);
    CHECK(events_publish("", "a", "rain", "{}", false) == 0);
    char *big = malloc(EVENTS_DATA_MAX + 2);
    memset(big, 'x', EVENTS_DATA_MAX + 1);
    big[EVENTS_DATA_MAX + 1] = 0;
    CHECK(events_publish("reading", "a", "rain", big, false) == 0);
    big[EVENTS_DATA_MAX] = 0; /* exactly the limit is fine, and its frame fits FRAME_MAX */
    CHECK(events_publish("reading", "a", "rain", big, false) == 1);
    uint64_t c = 0;
    static char frame[EVENTS_FRAME_MAX];
    CHECK(events_read(&c, NULL, frame, sizeof frame) > EVENTS_DATA_MAX && c == 1);
    free(big);
    CHECK(events_last_id() == 1);
    events_shutdown();
}

static void filter_add(struct events_filter *f, const char *key, const char *kind)
{
    if (key)
        snprintf(f->keys[f->nkeys++], EVENTS_KEY_MAX, "%s", key);
    if (kind)
        snprintf(f->kinds[f->nkinds++], EVENTS_KIND_MAX, "%s", kind);
}

static void test_filters(void)
{
    events_init(16);
    events_publish("reading", "m1", "water_level", "1", false);
    events_publish("reading", "r1", "rain", "2", false);
    events_publish("reading", "m2", "water_level", "3", false);
    events_publish("station", "r1", "rain", "4", false);
    struct events_filter by_key = {0}, by_kind = {0}, both = {0}, none = {0};
    filter_add(&by_key, "r1", NULL);
    filter_add(&by_key, "m2", NULL);
    filter_add(&by_kind, NULL, "water_level");
    filter_add(&both, "r1", "water_level");
    uint64_t c = 0;
    read_all(&c, &by_key);
    CHECK_STR(buf, "id: 2\nevent: reading\ndata: 2\n\nid: 3\nevent: reading\ndata: 3\n\n"
                   "id: 4\nevent: station\ndata: 4\n\n");
    CHECK(c == 4);
    c = 0;
    read_all(&c, &by_kind);
    CHECK_STR(buf, "id: 1\nevent: reading\ndata: 1\n\nid: 3\nevent: reading\ndata: 3\n\n");
    CHECK(c == 4); /* skipped events are consumed too */
    c = 0;
    CHECK(read_all(&c, &both) == 0 && c == 4); /* key and kind must both match */
    c = 0;
    CHECK(read_all(&c, &none) > 0);
    CHECK(strstr(buf, "id: 4\n") != NULL);
    events_shutdown();
}

static void test_coalescing(void)
{
    events_init(64);
    events_publish("reading", "A", "water_level", "a1", true);  /* 1 */
    events_publish("reading", "B", "water_level", "b1", true);  /* 2 */
    events_publish("station", "A", "water_level", "sA", false); /* 3 */
    events_publish("reading", "A", "water_level", "a2", true);  /* 4 */
    events_publish("alert", "A", "water_level", "x1", false);   /* 5 */
    events_publish("reading", "A", "water_level", "a3", true);  /* 6 */
    events_publish("station", "A", "water_level", "sA2", true); /* 7: other type, same key */
    uint64_t c = 0;
    read_all(&c, NULL);
    CHECK_STR(buf, "id: 2\nevent: reading\ndata: b1\n\n"
                   "id: 3\nevent: station\ndata: sA\n\n"
                   "id: 5\nevent: alert\ndata: x1\n\n"
                   "id: 6\nevent: reading\ndata: a3\n\n"
                   "id: 7\nevent: station\ndata: sA2\n\n");
    CHECK(c == 7);
    c = 4; /* a reader that already has a2 */
    read_all(&c, NULL);
    CHECK_STR(buf, "id: 5\nevent: alert\ndata: x1\n\nid: 6\nevent: reading\ndata: a3\n\n"
                   "id: 7\nevent: station\ndata: sA2\n\n");
    /* A reader that is keeping up gets each one as it comes. */
    c = events_last_id();
    events_publish("reading", "B", "water_level", "b2", true);
    read_all(&c, NULL);
    CHECK_STR(buf, "id: 8\nevent: reading\ndata: b2\n\n");
    events_publish("reading", "B", "water_level", "b3", true);
    read_all(&c, NULL);
    CHECK_STR(buf, "id: 9\nevent: reading\ndata: b3\n\n");
    /* Filtered: B's newest only. */
    struct events_filter fb = {0};
    filter_add(&fb, "B", NULL);
    c = 0;
    read_all(&c, &fb);
    CHECK_STR(buf, "id: 9\nevent: reading\ndata: b3\n\n");
    events_shutdown();
}

static void test_overwrite_reset(void)
{
    static const char reset[] = "event: reset\ndata: {\"reason\":\"behind\"}\n\n";
    events_init(4);
    char data[16];
    for (int i = 1; i <= 10; i++) {
        snprintf(data, sizeof data, "%d", i);
        events_publish("reading", "k", "rain", data, false);
    }
    uint64_t c = 0;
    read_all(&c, NULL);
    CHECK(strncmp(buf, reset, sizeof reset - 1) == 0);
    CHECK(strstr(buf, "id: 6\n") == NULL);
    CHECK_STR(buf + sizeof reset - 1, "id: 7\nevent: reading\ndata: 7\n\nid: 8\nevent: reading\n"
                                      "data: 8\n\nid: 9\nevent: reading\ndata: 9\n\n"
                                      "id: 10\nevent: reading\ndata: 10\n\n");
    CHECK(c == 10);
    c = 6; /* next wanted is 7, the oldest held: no reset */
    read_all(&c, NULL);
    CHECK(strncmp(buf, "id: 7\n", 6) == 0);
    c = 5;
    read_all(&c, NULL);
    CHECK(strncmp(buf, reset, sizeof reset - 1) == 0 && c == 10);
    c = 500; /* an id from before a restart */
    read_all(&c, NULL);
    CHECK(strncmp(buf, reset, sizeof reset - 1) == 0 && c == 10);
    CHECK(strstr(buf, "id: 7\n") != NULL);
    /* Too small for even the reset frame: nothing written, cursor kept. */
    c = 1;
    char small[8];
    CHECK(events_read(&c, NULL, small, sizeof small) == 0 && c == 1);
    events_shutdown();
}

static void test_max_bytes(void)
{
    events_init(32);
    for (int i = 0; i < 20; i++)
        events_publish("reading", "k", "rain", "{\"v\":12345}", false);
    uint64_t c = 0;
    char full[4096];
    size_t nfull = events_read(&c, NULL, full, sizeof full);
    full[nfull] = 0;
    size_t f1 = strlen("id: 1\nevent: reading\ndata: {\"v\":12345}\n\n");
    CHECK(c == 20);
    /* Read again in pieces of two and a half frames (then one frame less than needed). */
    for (size_t max = f1 / 2; max <= 3 * f1; max += f1 / 2) {
        char out[4096], piece[4096];
        size_t nout = 0;
        int calls = 0;
        c = 0;
        for (;;) {
            size_t n = events_read(&c, NULL, piece, max);
            CHECK(n <= max);
            if (n == 0)
                break;
            CHECK(piece[n - 1] == '\n' && piece[n - 2] == '\n'); /* whole frames */
            memcpy(out + nout, piece, n);
            nout += n;
            calls++;
        }
        out[nout] = 0;
        if (max < f1) {
            CHECK(nout == 0 && c == 0); /* no progress, nothing skipped */
        } else if (max < f1 + 1) {      /* ids 10 and up take one byte more */
            CHECK(c == 9 && strncmp(out, full, nout) == 0);
        } else {
            CHECK_STR(out, full);
            CHECK(c == 20);
        }
    }
    events_shutdown();
}

/* Random publishes and reads against a model that knows every event ever published. */
struct model_ev {
    int type, key, kind;
    bool coalesce;
};

static uint32_t rng_state = 12345;
static uint32_t rnd(uint32_t n)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return (rng_state >> 8) % n;
}

static void expected_read(const struct model_ev *all, uint64_t last, size_t cap, uint64_t cursor,
                          int fkey, char *out)
{
    static const char *types[] = {"reading", "station"};
    uint64_t oldest = last > cap ? last - cap + 1 : 1;
    size_t n = 0;
    out[0] = 0;
    if (cursor > last || cursor + 1 < oldest) {
        n += (size_t)snprintf(out + n, 64, "event: reset\ndata: {\"reason\":\"behind\"}\n\n");
        cursor = oldest - 1;
    }
    for (uint64_t id = cursor + 1; id <= last; id++) {
        const struct model_ev *e = &all[id];
        if (fkey >= 0 && e->key != fkey)
            continue;
        bool newer = false;
        for (uint64_t j = id + 1; e->coalesce && j <= last && !newer; j++)
            newer = all[j].coalesce && all[j].type == e->type && all[j].key == e->key;
        if (!newer)
            n += (size_t)snprintf(out + n, 128, "id: %llu\nevent: %s\ndata: d%llu\n\n",
                                  (unsigned long long)id, types[e->type], (unsigned long long)id);
    }
}

static void test_against_model(void)
{
    static const char *types[] = {"reading", "station"};
    static struct model_ev all[6001];
    static char want[1 << 20];
    const size_t caps[] = {1, 3, 7, 64};
    for (size_t ci = 0; ci < sizeof caps / sizeof caps[0]; ci++) {
        size_t cap = caps[ci];
        events_init(cap);
        uint64_t last = 0;
        int mismatches = 0;
        for (int step = 0; step < 1500; step++) {
            struct model_ev e = {(int)rnd(2), (int)rnd(6), 0, rnd(4) != 0};
            char key[8], data[24];
            snprintf(key, sizeof key, "k%d", e.key);
            snprintf(data, sizeof data, "d%llu", (unsigned long long)last + 1);
            uint64_t id = events_publish(types[e.type], key, "rain", data, e.coalesce);
            if (id != last + 1)
                mismatches++;
            all[++last] = e;
            if (rnd(5) == 0) {
                uint64_t cursor = rnd((uint32_t)last + 3);
                int fkey = rnd(3) == 0 ? (int)rnd(6) : -1;
                struct events_filter f = {0};
                if (fkey >= 0)
                    snprintf(f.keys[f.nkeys++], EVENTS_KEY_MAX, "k%d", fkey);
                uint64_t c = cursor;
                read_all(&c, fkey >= 0 ? &f : NULL);
                expected_read(all, last, cap, cursor, fkey, want);
                if (strcmp(buf, want) != 0 || c != last) {
                    mismatches++;
                    if (mismatches < 3)
                        fprintf(stderr, "cap %zu last %llu cursor %llu:\n got  %s\n want %s\n", cap,
                                (unsigned long long)last, (unsigned long long)cursor, buf, want);
                }
            }
        }
        CHECK(mismatches == 0);
        events_shutdown();
    }
}

static atomic_int wakes;
static void count_wake(void *ctx, bool urgent)
{
    (void)ctx;
    (void)urgent;
    atomic_fetch_add(&wakes, 1);
}

static void test_waker(void)
{
    events_init(4);
    events_set_waker(count_wake, NULL);
    events_publish("reading", "a", "rain", "1", false);
    events_publish("reading", "a", "rain", "2", true);
    CHECK(atomic_load(&wakes) == 2);
    CHECK(events_publish("reading", "a", "rain", "\n", true) == 0);
    CHECK(atomic_load(&wakes) == 2); /* refused: nobody woken */
    events_set_waker(NULL, NULL);
    events_shutdown();
}

/* ---- concurrency: two publishers and a reader ------------------------------------------- */
enum { PER_THREAD = 50000 };

static void *publisher(void *arg)
{
    const char *key = arg;
    char data[32];
    for (int i = 0; i < PER_THREAD; i++) {
        snprintf(data, sizeof data, "%d", i);
        events_publish("reading", key, "rain", data, false);
    }
    return NULL;
}

struct reader_result {
    uint64_t seen, prev, resets, out_of_order;
};

/* Reads until the last id, counting frames and checking that ids strictly increase. */
static void *reader(void *arg)
{
    struct reader_result *rr = arg;
    static char rbuf[8192];
    uint64_t c = 0, until = 2 * PER_THREAD;
    while (c < until) {
        size_t n = events_read(&c, NULL, rbuf, sizeof rbuf - 1);
        rbuf[n] = 0;
        for (char *p = rbuf; *p; p = strstr(p, "\n\n") + 2) { /* one frame per turn */
            if (strncmp(p, "event: reset\n", 13) == 0) {
                rr->resets++;
                continue;
            }
            uint64_t id = strtoull(p + 4, NULL, 10); /* "id: N" */
            if (id <= rr->prev)
                rr->out_of_order++;
            rr->prev = id;
            rr->seen++;
        }
    }
    return NULL;
}

static void test_concurrent(size_t cap, bool expect_dense)
{
    events_init(cap);
    struct reader_result rr = {0};
    pthread_t p1, p2, rd;
    pthread_create(&rd, NULL, reader, &rr);
    pthread_create(&p1, NULL, publisher, "one");
    pthread_create(&p2, NULL, publisher, "two");
    pthread_join(p1, NULL);
    pthread_join(p2, NULL);
    pthread_join(rd, NULL);
    CHECK(events_last_id() == 2 * PER_THREAD);
    CHECK(rr.out_of_order == 0);
    CHECK(rr.prev == 2 * PER_THREAD);
    if (expect_dense) {
        CHECK(rr.seen == 2 * PER_THREAD); /* none lost, none twice */
        CHECK(rr.resets == 0);
    } else {
        CHECK(rr.seen <= 2 * PER_THREAD);
        fprintf(stderr, "small ring: reader saw %llu of %d events, %llu resets\n",
                (unsigned long long)rr.seen, 2 * PER_THREAD, (unsigned long long)rr.resets);
    }
    events_shutdown();
}

/* Checks the exact per-publisher sequence over a complete (no reset) read. */
static void test_concurrent_sequences(void)
{
    events_init(2 * PER_THREAD);
    pthread_t p1, p2;
    pthread_create(&p1, NULL, publisher, "one");
    pthread_create(&p2, NULL, publisher, "two");
    pthread_join(p1, NULL);
    pthread_join(p2, NULL);
    struct events_filter f = {0};
    filter_add(&f, "two", NULL);
    uint64_t c = 0;
    int next = 0, bad = 0;
    while (read_all(&c, &f) > 0)
        for (char *p = buf; (p = strstr(p, "data: ")) != NULL; p++)
            if (strtol(p + 6, NULL, 10) != next++)
                bad++;
    CHECK(bad == 0 && next == PER_THREAD);
    events_shutdown();
}

/* ---- SSE over a real libmicrohttpd daemon ----------------------------------------------- */
static enum MHD_Result on_sse(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
    (void)cls, (void)url, (void)method, (void)version, (void)upload, (void)upload_size;
    if (!*con_cls) {
        *con_cls = conn;
        return MHD_YES;
    }
    struct sse_params p = {.heartbeat_s = 1};
    const char *v = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "cursor");
    p.cursor = v ? strtoull(v, NULL, 10) : events_last_id();
    v = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "station");
    if (v)
        snprintf(p.filter.keys[p.filter.nkeys++], EVENTS_KEY_MAX, "%s", v);
    struct MHD_Response *resp = sse__response_new(conn, &p);
    if (!resp)
        return MHD_NO;
    enum MHD_Result ret = MHD_queue_response(conn, 200, resp);
    MHD_destroy_response(resp);
    return ret;
}

struct client {
    int fd;
    bool head_done, ended, closed;
    size_t rlen, blen;
    char raw[1 << 16];
    char body[1 << 20];
};

static struct client *client_open(int port, const char *query)
{
    struct client *c = calloc(1, sizeof *c);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        c->closed = true;
    char req[256];
    int n = snprintf(req, sizeof req, "GET /events%s HTTP/1.1\r\nHost: t\r\n\r\n", query);
    if (write(c->fd, req, (size_t)n) != n)
        c->closed = true;
    return c;
}

/* Moves complete chunks from raw into body. */
static void client_parse(struct client *c)
{
    if (!c->head_done) {
        char *e = memmem(c->raw, c->rlen, "\r\n\r\n", 4);
        if (!e)
            return;
        size_t hl = (size_t)(e + 4 - c->raw);
        c->head_done = strncmp(c->raw, "HTTP/1.1 200", 12) == 0;
        if (!c->head_done)
            c->ended = true;
        memmove(c->raw, c->raw + hl, c->rlen - hl);
        c->rlen -= hl;
    }
    while (!c->ended) {
        char *crlf = memmem(c->raw, c->rlen, "\r\n", 2);
        if (!crlf)
            return;
        size_t size = strtoul(c->raw, NULL, 16), hl = (size_t)(crlf + 2 - c->raw);
        if (c->rlen < hl + size + 2)
            return;
        if (size == 0)
            c->ended = true;
        if (c->blen + size < sizeof c->body) {
            memcpy(c->body + c->blen, c->raw + hl, size);
            c->blen += size;
        }
        memmove(c->raw, c->raw + hl + size + 2, c->rlen - hl - size - 2);
        c->rlen -= hl + size + 2;
    }
    c->body[c->blen] = 0;
}

/* Reads what arrives within timeout_ms; returns once `want` is in the body (if given). */
static bool client_wait(struct client *c, const char *want, int timeout_ms)
{
    uint64_t deadline = clock_mono_ns() + (uint64_t)timeout_ms * 1000000u;
    for (;;) {
        client_parse(c);
        c->body[c->blen] = 0;
        if (want && strstr(c->body, want))
            return true;
        uint64_t now = clock_mono_ns();
        if (now >= deadline || c->closed)
            return false;
        struct pollfd pf = {c->fd, POLLIN, 0};
        if (poll(&pf, 1, (int)((deadline - now) / 1000000u) + 1) <= 0)
            continue;
        ssize_t n = read(c->fd, c->raw + c->rlen, sizeof c->raw - c->rlen);
        if (n <= 0)
            c->closed = true;
        else
            c->rlen += (size_t)n;
    }
}

static void client_close(struct client *c)
{
    close(c->fd);
    free(c);
}

/* Ids of the frames in the body, in order; returns how many. */
static size_t body_ids(const struct client *c, uint64_t *ids, size_t max)
{
    size_t n = 0;
    for (const char *p = c->body; (p = strstr(p, "id: ")) != NULL && n < max; p++)
        if (p == c->body || p[-1] == '\n')
            ids[n++] = strtoull(p + 4, NULL, 10);
    return n;
}

static const char *without_pings(const char *body)
{
    static char out[1 << 20];
    size_t n = 0;
    for (const char *p = body; *p;) {
        if (strncmp(p, ": ping\n\n", 8) == 0) {
            p += 8;
            continue;
        }
        out[n++] = *p++;
    }
    out[n] = 0;
    return out;
}

static void *burst(void *arg)
{
    const char *key = arg;
    for (int i = 0; i < 2000; i++)
        events_publish("reading", key, "rain", "{}", false);
    return NULL;
}

static int wait_nstreams(int want, int timeout_ms)
{
    uint64_t deadline = clock_mono_ns() + (uint64_t)timeout_ms * 1000000u;
    while (sse__nstreams() != want && clock_mono_ns() < deadline)
        usleep(10000);
    return sse__nstreams();
}

static void test_sse_daemon(void)
{
    enum { NCLIENTS = 20 };
    events_init(8192);
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    socklen_t sl = sizeof sa;
    CHECK(bind(lfd, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(lfd, 128) == 0);
    getsockname(lfd, (struct sockaddr *)&sa, &sl);
    int port = ntohs(sa.sin_port);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME, 0, NULL, NULL,
        on_sse, NULL, MHD_OPTION_LISTEN_SOCKET, lfd, MHD_OPTION_THREAD_POOL_SIZE, 2u,
        MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
    CHECK(d != NULL);
    if (!d)
        return;

    /* Idle streams: each gets the retry frame, then sits suspended. */
    struct client *cl[NCLIENTS];
    for (int i = 0; i < NCLIENTS; i++)
        cl[i] = client_open(port, i % 2 ? "?station=one" : "");
    int hello = 0;
    for (int i = 0; i < NCLIENTS; i++)
        hello += client_wait(cl[i], "retry: 3000\n\n", 3000);
    CHECK(hello == NCLIENTS);
    CHECK(wait_nstreams(NCLIENTS, 2000) == NCLIENTS);

    /* Two publishers burst while all are idle: everyone gets every id it asked for, once, in
     * order, although the resumes are batched. */
    pthread_t p1, p2;
    pthread_create(&p1, NULL, burst, "one");
    pthread_create(&p2, NULL, burst, "two");
    pthread_join(p1, NULL);
    pthread_join(p2, NULL);
    uint64_t last = events_last_id();
    CHECK(last == 4000);
    char want[64];
    snprintf(want, sizeof want, "id: %llu\n", (unsigned long long)last);
    static uint64_t ids[8192];
    int complete = 0, ordered = 0, filtered_ok = 0;
    for (int i = 0; i < NCLIENTS; i++) {
        bool all_seen = i % 2 == 0 ? client_wait(cl[i], want, 10000) : true;
        if (i % 2) { /* station=one: wait for the last of "one" (not necessarily 4000) */
            uint64_t c = 0;
            struct events_filter f = {0};
            filter_add(&f, "one", NULL);
            read_all(&c, &f);
            char *lastid = NULL;
            for (char *p = buf; (p = strstr(p, "id: ")) != NULL; p++)
                lastid = p;
            char w[40];
            snprintf(w, sizeof w, "id: %llu\n", lastid ? strtoull(lastid + 4, NULL, 10) : 0ull);
            all_seen = client_wait(cl[i], w, 10000);
            filtered_ok += strstr(without_pings(cl[i]->body), buf) != NULL; /* as the hub says */
        }
        size_t n = body_ids(cl[i], ids, sizeof ids / sizeof ids[0]);
        bool inc = true;
        for (size_t k = 1; k < n; k++)
            inc = inc && ids[k] > ids[k - 1];
        ordered += inc;
        complete += all_seen && (i % 2 || n == last);
    }
    CHECK(complete == NCLIENTS);
    CHECK(ordered == NCLIENTS);
    CHECK(filtered_ok == NCLIENTS / 2);

    /* Heartbeat (1 s here) on an idle stream. */
    CHECK(client_wait(cl[0], ": ping\n\n", 3000));

    /* Resume after an id: a new stream gets exactly what followed it. */
    struct client *late = client_open(port, "?cursor=3990");
    CHECK(client_wait(late, "id: 4000\n", 3000));
    size_t n = body_ids(late, ids, 64);
    CHECK(n == 10 && ids[0] == 3991);
    client_close(late);

    /* Coalescing through the stream: a burst on one key reaches an idle reader as its newest. */
    for (int i = 0; i < 500; i++)
        events_publish("reading", "gauge", "water_level", "{}", true);
    snprintf(want, sizeof want, "id: %llu\n", (unsigned long long)events_last_id());
    CHECK(client_wait(cl[2], want, 3000));

    /* Clients that go away while suspended are found by the heartbeat and freed. */
    for (int i = NCLIENTS - 5; i < NCLIENTS; i++)
        client_close(cl[i]);
    CHECK(wait_nstreams(NCLIENTS - 5, 5000) == NCLIENTS - 5);

    /* Shutdown: every stream ends cleanly and the daemon stops without hanging. */
    alarm(20);
    sse_shutdown();
    int ended = 0;
    for (int i = 0; i < NCLIENTS - 5; i++) {
        client_wait(cl[i], NULL, 0);
        for (int k = 0; k < 100 && !cl[i]->ended; k++)
            client_wait(cl[i], NULL, 20);
        ended += cl[i]->ended;
    }
    CHECK(ended == NCLIENTS - 5);
    CHECK(sse__response_new(NULL, &(struct sse_params){0}) == NULL); /* refused from now on */
    MHD_stop_daemon(d);
    alarm(0);
    CHECK(sse__nstreams() == 0);
    for (int i = 0; i < NCLIENTS - 5; i++)
        client_close(cl[i]);
    close(lfd);
    events_set_waker(NULL, NULL);
    events_shutdown();
}

int main(void)
{
    test_order_and_ids();
    test_refused();
    test_filters();
    test_coalescing();
    test_overwrite_reset();
    test_max_bytes();
    test_against_model();
    test_waker();
    test_concurrent(4 * PER_THREAD, true);
    test_concurrent(1024, false);
    test_concurrent_sequences();
    test_sse_daemon();
    return unit_report("test_events");
}
