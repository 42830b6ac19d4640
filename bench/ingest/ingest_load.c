/* bench/ingest/ingest_load.c: load generator for bench/ingest. Plain sockets, HTTP/1.1
 * keep-alive, epoll event loops (a few threads, many connections, one request in flight on
 * each, like wrk); every response is checked (status, and for
 * sinergi that every reading of the request was stored), every request's latency kept.
 *
 * usage: ingest_load MODE --port P [options]
 *   setup-batch   create the 125 weather stations x 8 sensors of the batch data set and the
 *                 gateway that sends their batches (--out gets the gateway's token)
 *   setup-single  create the 1,000 water-level stations of the single-reading data set
 *                   --admin TOKEN (session token) --out FILE (writes "code token" lines)
 *   senml         POST /api/v1/ingest, 1,000 readings per request (dataset.h, batch data set)
 *   single        POST /api/v1/ingest, one reading per request (single-reading data set)
 *   influx        POST /write?db=DB&precision=s, line protocol, --points per request (batch
 *                 data set: the same rows as senml, in the same order)
 *   sample        print request --start of each kind (body as sent) and exit
 * options: --tokens FILE  --t0 UNIX_S  --conns N (8)  --threads N (2, event loops sharing the
 *          connections)  --duration S (10)  --rate READINGS_PER_S
 *          (0 = as fast as the server answers)  --start INDEX (first request/reading index, 0)
 *          --points N (influx, 5000)  --db NAME (influx, bench)
 * Prints one line of key=value results on stdout; diagnostics on stderr. Exit 1 on any error
 * response, so a run that lost or rejected anything cannot pass unnoticed. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "dataset.h"

enum mode { M_SETUP_BATCH, M_SETUP_SINGLE, M_SENML, M_SINGLE, M_INFLUX, M_SAMPLE };

static struct {
    enum mode mode;
    int port, conns, threads, points;
    double duration, rate;
    int64_t t0, start, limit;
    const char *tokens_file, *admin, *out, *db;
} opt = {.conns = 8, .threads = 2, .points = 5000, .duration = 10, .db = "bench"};

static char (*tokens)[64]; /* device token per station, index = station */
static int ntokens;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *fmt, const char *arg)
{
    fprintf(stderr, "ingest_load: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    exit(2);
}

/* ---- a keep-alive HTTP/1.1 connection ---------------------------------------------------- */
struct conn {
    int fd;
    char *buf;
    size_t cap, len; /* bytes received and not yet consumed */
    char *body;      /* dechunked or in-place body of the last response */
    size_t body_len;
    char *chunked;   /* scratch for chunked bodies */
    size_t chunked_cap;
};

static int conn_open(struct conn *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    c->len = 0;
    return 0;
}

static void conn_close(struct conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->len = 0;
}

static int send_all(int fd, struct iovec *iov, int n)
{
    while (n > 0) {
        ssize_t w = writev(fd, iov, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        while (n > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return 0;
}

static int fill(struct conn *c)
{
    if (c->cap - c->len < 16384) {
        size_t cap = c->cap ? c->cap * 2 : 65536;
        char *b = realloc(c->buf, cap);
        if (!b)
            return -1;
        c->buf = b;
        c->cap = cap;
    }
    for (;;) {
        ssize_t r = read(c->fd, c->buf + c->len, c->cap - c->len - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        c->len += (size_t)r;
        c->buf[c->len] = 0;
        return 0;
    }
}

static const char *header_value(const char *hdrs, const char *end, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = hdrs; p && p < end;) {
        const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
        if (!eol)
            break;
        if ((size_t)(eol - p) > n && strncasecmp(p, name, n) == 0 && p[n] == ':') {
            p += n + 1;
            while (*p == ' ')
                p++;
            return p;
        }
        p = eol + 2;
    }
    return NULL;
}

/* Parses one complete response at the start of c->buf; its body becomes c->body
 * (NUL-terminated) and it is consumed. Returns the status, 0 when more bytes are needed, or -1
 * on a malformed response. */
static int parse_response(struct conn *c)
{
    char *hend = c->len ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
    if (!hend)
        return 0;
    int status = 0;
    if (sscanf(c->buf, "HTTP/1.%*d %d", &status) != 1 || status <= 0)
        return -1;
    char *first_eol = memmem(c->buf, (size_t)(hend - c->buf), "\r\n", 2);
    const char *hdrs = first_eol + 2, *hdr_end = hend + 2;
    size_t head = (size_t)(hend + 4 - c->buf), consumed, out = 0;
    const char *cl = header_value(hdrs, hdr_end, "Content-Length");
    const char *te = header_value(hdrs, hdr_end, "Transfer-Encoding");
    const char *cn = header_value(hdrs, hdr_end, "Connection");
    bool must_close = cn && strncasecmp(cn, "close", 5) == 0;
    if (status == 204 || status == 304 || status < 200) {
        consumed = head;
    } else if (te && strncasecmp(te, "chunked", 7) == 0) {
        size_t pos = head;
        for (;;) { /* first make sure every chunk is here */
            char *eol = memmem(c->buf + pos, c->len - pos, "\r\n", 2);
            if (!eol)
                return 0;
            size_t sz = strtoul(c->buf + pos, NULL, 16);
            pos = (size_t)(eol + 2 - c->buf);
            if (c->len < pos + sz + 2)
                return 0;
            pos += sz + 2;
            out += sz;
            if (sz == 0)
                break; /* no trailers expected */
        }
        consumed = pos;
    } else if (cl) {
        out = strtoul(cl, NULL, 10);
        if (c->len < head + out)
            return 0;
        consumed = head + out;
    } else {
        return -1; /* a body delimited by close: not expected from any target */
    }
    if (c->chunked_cap < out + 1) {
        char *b = realloc(c->chunked, out + 1);
        if (!b)
            return -1;
        c->chunked = b;
        c->chunked_cap = out + 1;
    }
    if (te && strncasecmp(te, "chunked", 7) == 0) {
        size_t pos = head, o = 0;
        for (;;) {
            char *eol = memmem(c->buf + pos, c->len - pos, "\r\n", 2);
            size_t sz = strtoul(c->buf + pos, NULL, 16);
            pos = (size_t)(eol + 2 - c->buf);
            memcpy(c->chunked + o, c->buf + pos, sz);
            o += sz;
            pos += sz + 2;
            if (sz == 0)
                break;
        }
    } else if (out) {
        memcpy(c->chunked, c->buf + head, out);
    }
    c->chunked[out] = 0;
    c->body = c->chunked;
    c->body_len = out;
    memmove(c->buf, c->buf + consumed, c->len - consumed);
    c->len -= consumed;
    c->buf[c->len] = 0;
    if (must_close)
        conn_close(c);
    return status;
}

/* Reads one response, blocking. Returns the status or -1. */
static int read_response(struct conn *c)
{
    for (;;) {
        int st = parse_response(c);
        if (st)
            return st;
        if (fill(c))
            return -1;
    }
}

/* Sends one request over the connection and reads the answer. A failure on a reused
 * keep-alive connection (the server closed it while idle) is retried once on a fresh one.
 * Returns the status or -1. */
static int request(struct conn *c, const char *method, const char *path, const char *ctype,
                   const char *auth, const char *body, size_t len)
{
    char head[1024];
    for (int attempt = 0; attempt < 2; attempt++) {
        bool reused = c->fd >= 0;
        if (!reused && conn_open(c))
            return -1;
        int n = snprintf(head, sizeof head,
                         "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s%s%s%s%s%s"
                         "Content-Length: %zu\r\n\r\n",
                         method, path, opt.port, ctype ? "Content-Type: " : "", ctype ? ctype : "",
                         ctype ? "\r\n" : "", auth ? "Authorization: Bearer " : "",
                         auth ? auth : "", auth ? "\r\n" : "", len);
        struct iovec iov[2] = {{head, (size_t)n}, {(void *)body, len}};
        if (send_all(c->fd, iov, len ? 2 : 1) == 0) {
            int st = read_response(c);
            if (st > 0)
                return st;
        }
        conn_close(c);
        if (!reused)
            break;
    }
    return -1;
}

/* ---- request bodies ------------------------------------------------------------------------ */
struct body {
    char *p;
    size_t len, cap;
};

static void put(struct body *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            die("%s", "out of memory");
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}
#define PUTS(b, s) put((b), (s), sizeof(s) - 1)

static void put_str(struct body *b, const char *s)
{
    put(b, s, strlen(s));
}

static void put_int(struct body *b, int64_t v)
{
    char t[24];
    put(b, t, (size_t)ds_fmt_int(t, v));
}

static void put_milli(struct body *b, int64_t v)
{
    char t[32];
    put(b, t, (size_t)ds_fmt_milli(t, v));
}

/* Batch request j: one reading of each of the 1,000 sensors (125 stations x 8) at minute j, as
 * a gateway forwards them: full names, the unit on every record, the base time on the first.
 * Sent with the gateway's token (token index 0). */
static int senml_batch(struct body *b, int64_t j)
{
    b->len = 0;
    int64_t n0 = j * DS_BATCH;
    struct ds_row first = ds_batch_row(n0, opt.t0);
    PUTS(b, "[{\"bt\":");
    put_int(b, first.t_s);
    for (int r = 0; r < DS_BATCH; r++) {
        struct ds_row row = ds_batch_row(n0 + r, opt.t0);
        char code[8];
        ds_batch_code(code, row.station);
        put_str(b, r ? ",{\"n\":\"" : ",\"n\":\"");
        put_str(b, code);
        PUTS(b, ":");
        put_str(b, ds_sensors[row.sensor].name);
        PUTS(b, "\",\"u\":\"");
        put_str(b, ds_sensors[row.sensor].unit);
        PUTS(b, "\",\"v\":");
        put_milli(b, row.v_milli);
        PUTS(b, "}");
    }
    PUTS(b, "]");
    return 0;
}

/* Single reading i: what a cheap logger sends, a one-record pack with full name and time. */
static int senml_single(struct body *b, int64_t i)
{
    b->len = 0;
    struct ds_row row = ds_single_row(i, opt.t0);
    char code[8];
    ds_single_code(code, row.station);
    PUTS(b, "[{\"n\":\"");
    put_str(b, code);
    PUTS(b, ":level\",\"u\":\"m\",\"t\":");
    put_int(b, row.t_s);
    PUTS(b, ",\"v\":");
    put_milli(b, row.v_milli);
    PUTS(b, "}]");
    return row.station;
}

/* InfluxDB request j: rows j*points .. of the batch data set as line protocol. */
static void influx_lines(struct body *b, int64_t j)
{
    b->len = 0;
    int64_t n0 = j * opt.points;
    for (int k = 0; k < opt.points; k++) {
        struct ds_row row = ds_batch_row(n0 + k, opt.t0);
        char code[8];
        ds_batch_code(code, row.station);
        PUTS(b, "readings,station=");
        put_str(b, code);
        PUTS(b, ",sensor=");
        put_str(b, ds_sensors[row.sensor].name);
        PUTS(b, " v=");
        put_milli(b, row.v_milli);
        PUTS(b, " ");
        put_int(b, row.t_s);
        PUTS(b, "\n");
    }
}

/* ---- the load ------------------------------------------------------------------------------ */
/* --threads event-loop threads (default 2) share --conns connections; each connection has one
 * request in flight at a time (closed loop), or, with --rate, sends when its turn is due. */
static atomic_llong next_index;
static double t_start, t_deadline;
static atomic_int failed_print;
static char target_path[256];

struct econn {
    struct conn c;
    struct body b;
    char head[512];
    size_t head_len, sent;
    int64_t index; /* request in flight, -1 when idle */
    int id;        /* 0 .. conns-1 */
    int64_t k;     /* requests started by this connection */
    double t_send;
    bool done;
};

struct worker {
    pthread_t th;
    int first, n; /* its connections */
    int64_t requests, readings, stored, duplicates, errors;
    uint32_t *lat_us;
    size_t nlat, lat_cap;
    double last_done;
};

static struct econn *econns;

static int64_t per_request(void)
{
    return opt.mode == M_SENML ? DS_BATCH : opt.mode == M_SINGLE ? 1 : opt.points;
}

static double period_s(void) /* paced mode: time between two sends of one connection */
{
    return opt.rate > 0 ? (double)opt.conns * (double)per_request() / opt.rate : 0;
}

static double due_at(const struct econn *e)
{
    return t_start + period_s() * ((double)e->id / opt.conns + (double)e->k);
}

static int64_t json_int_field(const char *body, const char *key)
{
    const char *p = strstr(body, key);
    return p ? strtoll(p + strlen(key), NULL, 10) : -1;
}

static void report_failure(int status, const char *body, int64_t index)
{
    if (atomic_fetch_add(&failed_print, 1) < 5)
        fprintf(stderr, "ingest_load: request %lld: status %d: %.300s\n", (long long)index, status,
                body ? body : "(no response)");
}

static int nb_connect(struct econn *e, int ep)
{
    if (conn_open(&e->c))
        return -1;
    int fl = fcntl(e->c.fd, F_GETFL);
    fcntl(e->c.fd, F_SETFL, fl | O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = e};
    return epoll_ctl(ep, EPOLL_CTL_ADD, e->c.fd, &ev);
}

/* Writes what is left of the request; 0 when all sent or the socket is full, -1 on error. */
static int pump_send(struct econn *e, int ep)
{
    while (e->sent < e->head_len + e->b.len) {
        struct iovec iov[2];
        int n = 0;
        if (e->sent < e->head_len)
            iov[n++] = (struct iovec){e->head + e->sent, e->head_len - e->sent};
        size_t bo = e->sent > e->head_len ? e->sent - e->head_len : 0;
        if (e->b.len > bo)
            iov[n++] = (struct iovec){e->b.p + bo, e->b.len - bo};
        ssize_t w = writev(e->c.fd, iov, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = e};
            epoll_ctl(ep, EPOLL_CTL_MOD, e->c.fd, &ev);
            return 0;
        }
        if (w < 0)
            return -1;
        e->sent += (size_t)w;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = e};
    epoll_ctl(ep, EPOLL_CTL_MOD, e->c.fd, &ev);
    return 0;
}

/* Builds and starts this connection's next request. false: nothing more to send. */
static bool start_next(struct econn *e, int ep)
{
    if (now_s() >= t_deadline)
        return false;
    int64_t j = atomic_fetch_add(&next_index, 1);
    if (j >= opt.limit) {
        if (j == opt.limit)
            fprintf(stderr, "ingest_load: the data set ends at index %lld (move --t0 back)\n",
                    (long long)j);
        return false;
    }
    const char *token = NULL;
    if (opt.mode == M_SENML)
        token = tokens[senml_batch(&e->b, j) % ntokens];
    else if (opt.mode == M_SINGLE)
        token = tokens[senml_single(&e->b, j) % ntokens];
    else
        influx_lines(&e->b, j);
    const char *ctype = opt.mode == M_INFLUX ? "text/plain; charset=utf-8" : "application/senml+json";
    e->head_len = (size_t)snprintf(e->head, sizeof e->head,
                                   "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: %s\r\n"
                                   "%s%s%sContent-Length: %zu\r\n\r\n",
                                   target_path, opt.port, ctype, token ? "Authorization: Bearer " : "",
                                   token ? token : "", token ? "\r\n" : "", e->b.len);
    e->sent = 0;
    e->index = j;
    e->k++;
    if (e->c.fd < 0 && nb_connect(e, ep)) {
        e->index = -1;
        return false;
    }
    e->t_send = now_s();
    return true;
}

static void record(struct worker *wk, struct econn *e, int status, double t1)
{
    int64_t per = per_request();
    bool ok;
    wk->requests++;
    if (opt.mode == M_INFLUX) {
        ok = status == 204;
    } else {
        int64_t stored = status == 200 ? json_int_field(e->c.body, "\"stored\":") : -1;
        int64_t dups = status == 200 ? json_int_field(e->c.body, "\"duplicates\":") : -1;
        ok = status == 200 && stored >= 0 && dups >= 0 && stored + dups == per &&
             strstr(e->c.body, "\"rejected\":[]");
        if (ok) {
            wk->stored += stored;
            wk->duplicates += dups;
        }
    }
    if (!ok) {
        wk->errors++;
        report_failure(status, status > 0 ? e->c.body : NULL, e->index);
        return;
    }
    wk->readings += per;
    wk->last_done = t1;
    if (wk->nlat == wk->lat_cap) {
        wk->lat_cap = wk->lat_cap ? wk->lat_cap * 2 : 65536;
        wk->lat_us = realloc(wk->lat_us, wk->lat_cap * sizeof *wk->lat_us);
        if (!wk->lat_us)
            die("%s", "out of memory");
    }
    double us = (t1 - e->t_send) * 1e6;
    wk->lat_us[wk->nlat++] = us > 4e9 ? 4000000000u : (uint32_t)us;
}

/* Next step of an idle connection: send now, wait for its turn (paced), or finish. */
static void next_or_done(struct econn *e, int ep, int *active)
{
    e->index = -1;
    if (period_s() > 0 && due_at(e) > now_s()) {
        if (due_at(e) >= t_deadline) {
            e->done = true;
            (*active)--;
        }
        return; /* the loop's timeout wakes it */
    }
    if (!start_next(e, ep) || pump_send(e, ep)) {
        if (e->index >= 0) { /* started but could not be sent */
            report_failure(-1, NULL, e->index);
            conn_close(&e->c);
        }
        e->index = -1;
        e->done = true;
        (*active)--;
    }
}

static void fail_conn(struct worker *wk, struct econn *e, int ep, int *active)
{
    if (e->index >= 0) {
        wk->requests++;
        wk->errors++;
        report_failure(-1, NULL, e->index);
    }
    conn_close(&e->c); /* closing the fd removes it from the epoll set */
    next_or_done(e, ep, active);
}

static void *worker_main(void *arg)
{
    struct worker *wk = arg;
    int ep = epoll_create1(EPOLL_CLOEXEC), active = wk->n;
    struct epoll_event evs[256];
    for (int i = 0; i < wk->n; i++) {
        struct econn *e = &econns[wk->first + i];
        if (nb_connect(e, ep)) {
            report_failure(-1, "connect failed", -1);
            wk->errors++;
            e->done = true;
            active--;
            continue;
        }
        next_or_done(e, ep, &active);
    }
    while (active > 0) {
        int timeout = 50;
        if (period_s() > 0) {
            double soonest = t_deadline;
            for (int i = 0; i < wk->n; i++) {
                struct econn *e = &econns[wk->first + i];
                if (!e->done && e->index < 0 && due_at(e) < soonest)
                    soonest = due_at(e);
            }
            double ms = (soonest - now_s()) * 1000;
            timeout = ms <= 0 ? 0 : ms < 50 ? (int)ms + 1 : 50;
        }
        int n = epoll_wait(ep, evs, 256, timeout);
        for (int i = 0; i < n; i++) {
            struct econn *e = evs[i].data.ptr;
            if (e->done || e->c.fd < 0)
                continue;
            if ((evs[i].events & EPOLLOUT) && e->index >= 0 && pump_send(e, ep)) {
                fail_conn(wk, e, ep, &active);
                continue;
            }
            if (!(evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
                continue;
            int got = 0;
            for (;;) { /* drain the socket */
                if (e->c.cap - e->c.len < 16384) {
                    size_t cap = e->c.cap ? e->c.cap * 2 : 65536;
                    char *b = realloc(e->c.buf, cap);
                    if (!b)
                        die("%s", "out of memory");
                    e->c.buf = b;
                    e->c.cap = cap;
                }
                ssize_t r = read(e->c.fd, e->c.buf + e->c.len, e->c.cap - e->c.len - 1);
                if (r > 0) {
                    e->c.len += (size_t)r;
                    e->c.buf[e->c.len] = 0;
                    got = 1;
                    continue;
                }
                if (r < 0 && errno == EINTR)
                    continue;
                if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                    break;
                got = got ? got : -1; /* EOF or error */
                if (r == 0 && got == 1)
                    got = 2; /* data, then the server closed */
                break;
            }
            if (got < 0) {
                fail_conn(wk, e, ep, &active);
                continue;
            }
            int st = e->index >= 0 ? parse_response(&e->c) : 0;
            if (st < 0) {
                fail_conn(wk, e, ep, &active);
                continue;
            }
            if (st > 0) {
                record(wk, e, st, now_s());
                if (got == 2)
                    conn_close(&e->c);
                next_or_done(e, ep, &active);
            } else if (got == 2) {
                fail_conn(wk, e, ep, &active);
            }
        }
        if (period_s() > 0) /* connections whose turn has come */
            for (int i = 0; i < wk->n; i++) {
                struct econn *e = &econns[wk->first + i];
                if (!e->done && e->index < 0)
                    next_or_done(e, ep, &active);
            }
    }
    for (int i = 0; i < wk->n; i++) {
        struct econn *e = &econns[wk->first + i];
        conn_close(&e->c);
        free(e->c.buf);
        free(e->c.chunked);
        free(e->b.p);
    }
    close(ep);
    return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_ms(const uint32_t *v, size_t n, double p)
{
    if (!n)
        return 0;
    size_t i = (size_t)(p / 100.0 * (double)n);
    if (i >= n)
        i = n - 1;
    return v[i] / 1000.0;
}

static void load_tokens(void)
{
    FILE *f = fopen(opt.tokens_file, "r");
    if (!f)
        die("cannot read tokens file %s", opt.tokens_file);
    char code[32], tok[64];
    int cap = 0;
    while (fscanf(f, "%31s %63s", code, tok) == 2) {
        if (ntokens == cap) {
            cap = cap ? cap * 2 : 1024;
            tokens = realloc(tokens, (size_t)cap * sizeof *tokens);
        }
        snprintf(tokens[ntokens++], sizeof tokens[0], "%s", tok);
    }
    fclose(f);
    if (ntokens == 0)
        die("no tokens in %s", opt.tokens_file);
}

static int run_load(void)
{
    if (opt.mode != M_INFLUX) {
        if (!opt.tokens_file)
            die("%s", "--tokens FILE is required");
        load_tokens();
        int want = opt.mode == M_SENML ? 1 : SG_STATIONS; /* batches: the gateway's token */
        if (ntokens != want) {
            char m[64];
            snprintf(m, sizeof m, "%d tokens, want %d", ntokens, want);
            die("%s", m);
        }
    }
    if (!opt.t0)
        die("%s", "--t0 UNIX_SECONDS is required (the same for every target)");
    /* The data set must stay inside sinergi's backfill window and before now. */
    int64_t now = (int64_t)time(NULL);
    if (opt.mode == M_SINGLE)
        opt.limit = (now - 60 - opt.t0) / SG_STEP_S * SG_STATIONS;
    else
        opt.limit = ds_batch_max_requests(opt.t0, now - 600) * DS_BATCH / per_request();
    if (opt.limit <= opt.start)
        die("%s", "--t0 leaves no room for readings before now");
    atomic_store(&next_index, opt.start);
    if (opt.mode == M_INFLUX)
        snprintf(target_path, sizeof target_path, "/write?db=%s&precision=s", opt.db);
    else
        snprintf(target_path, sizeof target_path, "/api/v1/ingest");
    int nthreads = opt.threads < opt.conns ? opt.threads : opt.conns;
    econns = calloc((size_t)opt.conns, sizeof *econns);
    struct worker *w = calloc((size_t)nthreads, sizeof *w);
    for (int i = 0; i < opt.conns; i++) {
        econns[i].c.fd = -1;
        econns[i].id = i;
        econns[i].index = -1;
    }
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    t_start = now_s();
    t_deadline = t_start + opt.duration;
    for (int i = 0, at = 0; i < nthreads; i++) {
        w[i].first = at;
        w[i].n = opt.conns / nthreads + (i < opt.conns % nthreads);
        at += w[i].n;
        if (pthread_create(&w[i].th, NULL, worker_main, &w[i]) != 0)
            die("%s", "pthread_create failed");
    }
    int64_t requests = 0, readings = 0, stored = 0, dups = 0, errors = 0;
    size_t nlat = 0;
    double end = t_start;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(w[i].th, NULL);
        requests += w[i].requests;
        readings += w[i].readings;
        stored += w[i].stored;
        dups += w[i].duplicates;
        errors += w[i].errors;
        nlat += w[i].nlat;
        if (w[i].last_done > end)
            end = w[i].last_done;
    }
    getrusage(RUSAGE_SELF, &ru1);
    uint32_t *all = malloc((nlat ? nlat : 1) * sizeof *all);
    size_t at = 0;
    for (int i = 0; i < nthreads; i++) {
        memcpy(all + at, w[i].lat_us, w[i].nlat * sizeof *all);
        at += w[i].nlat;
        free(w[i].lat_us);
    }
    qsort(all, nlat, sizeof *all, cmp_u32);
    double secs = end - t_start;
    double cpu = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec + ru1.ru_stime.tv_sec -
                          ru0.ru_stime.tv_sec) +
                 (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec + ru1.ru_stime.tv_usec -
                          ru0.ru_stime.tv_usec) / 1e6;
    static const char *const names[] = {"setup-batch", "setup-single", "senml", "single", "influx",
                                         "sample"};
    printf("mode=%s conns=%d threads=%d rate=%.0f requests=%lld ok_readings=%lld stored=%lld duplicates=%lld "
           "errors=%lld seconds=%.3f readings_per_s=%.0f requests_per_s=%.0f p50_ms=%.2f "
           "p90_ms=%.2f p99_ms=%.2f max_ms=%.2f client_cpu_s=%.2f next_index=%lld\n",
           names[opt.mode], opt.conns, nthreads, opt.rate, (long long)requests, (long long)readings,
           (long long)stored, (long long)dups, (long long)errors, secs,
           secs > 0 ? (double)readings / secs : 0, secs > 0 ? (double)(requests - errors) / secs : 0,
           pct_ms(all, nlat, 50), pct_ms(all, nlat, 90), pct_ms(all, nlat, 99),
           nlat ? all[nlat - 1] / 1000.0 : 0, cpu, (long long)atomic_load(&next_index));
    free(all);
    free(w);
    free(econns);
    return errors ? 1 : 0;
}

/* ---- setup: stations and their device tokens ---------------------------------------------- */
static int run_setup(void)
{
    if (!opt.admin || !opt.out)
        die("%s", "setup needs --admin TOKEN and --out FILE");
    FILE *f = fopen(opt.out, "w");
    if (!f)
        die("cannot write %s", opt.out);
    struct conn c = {.fd = -1};
    struct body b = {0};
    bool batch = opt.mode == M_SETUP_BATCH;
    int n = batch ? DS_STATIONS : SG_STATIONS;
    for (int i = 0; i < n; i++) {
        char code[8], num[64];
        b.len = 0;
        if (batch)
            ds_batch_code(code, i);
        else
            ds_single_code(code, i);
        PUTS(&b, "{\"code\":\"");
        put_str(&b, code);
        PUTS(&b, "\",\"name\":\"bench ");
        put_str(&b, code);
        /* Spread over the regency, ~ -2.0..-3.0 lat, 119.8..120.8 lon. */
        snprintf(num, sizeof num, "\",\"lat\":%.4f,\"lon\":%.4f,", -2.0 - (i % 40) * 0.025,
                 119.8 + (i / 40) * 0.025);
        put_str(&b, num);
        if (batch) {
            PUTS(&b, "\"kind\":\"weather\",\"opd\":\"bpbd\",\"interval_s\":60,\"sensors\":[");
            for (int s = 0; s < DS_PER_STATION; s++) {
                if (s)
                    PUTS(&b, ",");
                PUTS(&b, "{\"name\":\"");
                put_str(&b, ds_sensors[s].name);
                PUTS(&b, "\",\"unit\":\"");
                put_str(&b, ds_sensors[s].unit);
                PUTS(&b, "\"}");
            }
            PUTS(&b, "]}");
        } else {
            /* Hourly loggers: the readings of the last hour keep every station "ok". */
            PUTS(&b, "\"kind\":\"water_level\",\"opd\":\"bpbd\",\"river\":\"Bench\","
                     "\"interval_s\":3600,\"thresholds\":{\"waspada\":2,\"siaga\":3,\"awas\":4}}");
        }
        int status = request(&c, "POST", "/api/v1/stations", "application/json", opt.admin, b.p,
                             b.len);
        const char *tok = status == 201 ? strstr(c.body, "\"device_token\":\"") : NULL;
        if (!tok) {
            fprintf(stderr, "ingest_load: creating %s: status %d: %.300s\n", code, status,
                    status > 0 ? c.body : "(no response)");
            return 1;
        }
        tok += strlen("\"device_token\":\"");
        const char *q = strchr(tok, '"');
        fprintf(f, "%s %.*s\n", code, (int)(q - tok), tok);
    }
    if (batch) { /* the batches come through one gateway of the stations' OPD */
        fclose(f);
        if (!(f = fopen(opt.out, "w")))
            die("cannot write %s", opt.out);
        static const char gw[] = "{\"code\":\"bench-gateway\",\"name\":\"bench gateway\","
                                 "\"opd\":\"bpbd\"}";
        int status = request(&c, "POST", "/api/v1/gateways", "application/json", opt.admin, gw,
                             strlen(gw));
        const char *tok = status == 201 ? strstr(c.body, "\"device_token\":\"") : NULL;
        if (!tok) {
            fprintf(stderr, "ingest_load: creating the gateway: status %d: %.300s\n", status,
                    status > 0 ? c.body : "(no response)");
            return 1;
        }
        tok += strlen("\"device_token\":\"");
        const char *q = strchr(tok, '"');
        fprintf(f, "bench-gateway %.*s\n", (int)(q - tok), tok);
    }
    conn_close(&c);
    free(c.buf);
    free(c.chunked);
    free(b.p);
    return fclose(f) == 0 ? 0 : 1;
}

/* sample: prints request --start of each kind (bodies as sent), to see what is measured. */
static int run_sample(void)
{
    struct body b = {0};
    if (!opt.t0)
        opt.t0 = (int64_t)time(NULL) - 25 * 86400;
    senml_batch(&b, opt.start);
    printf("senml request %lld (%zu bytes):\n%s\n\n", (long long)opt.start, b.len, b.p);
    senml_single(&b, opt.start);
    printf("single request %lld (%zu bytes):\n%s\n\n", (long long)opt.start, b.len, b.p);
    influx_lines(&b, opt.start);
    printf("influx request %lld (%zu bytes, first lines):\n%.300s...\n", (long long)opt.start, b.len,
           b.p);
    free(b.p);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        die("%s", "usage: ingest_load setup-batch|setup-single|senml|single|influx --port P ...");
    static const char *const modes[] = {"setup-batch", "setup-single", "senml", "single", "influx",
                                        "sample"};
    int m = -1;
    for (int i = 0; i < 6; i++)
        if (strcmp(argv[1], modes[i]) == 0)
            m = i;
    if (m < 0)
        die("unknown mode '%s'", argv[1]);
    opt.mode = (enum mode)m;
    for (int i = 2; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            die("option %s needs a value", k);
        i++;
        if (!strcmp(k, "--port"))
            opt.port = atoi(v);
        else if (!strcmp(k, "--conns"))
            opt.conns = atoi(v);
        else if (!strcmp(k, "--threads"))
            opt.threads = atoi(v);
        else if (!strcmp(k, "--duration"))
            opt.duration = atof(v);
        else if (!strcmp(k, "--rate"))
            opt.rate = atof(v);
        else if (!strcmp(k, "--t0"))
            opt.t0 = atoll(v);
        else if (!strcmp(k, "--start"))
            opt.start = atoll(v);
        else if (!strcmp(k, "--points"))
            opt.points = atoi(v);
        else if (!strcmp(k, "--tokens"))
            opt.tokens_file = v;
        else if (!strcmp(k, "--admin"))
            opt.admin = v;
        else if (!strcmp(k, "--out"))
            opt.out = v;
        else if (!strcmp(k, "--db"))
            opt.db = v;
        else
            die("unknown option %s", k);
    }
    if (opt.mode == M_SAMPLE)
        return run_sample();
    if (opt.port <= 0 || opt.conns <= 0 || opt.conns > 1024 || opt.threads <= 0 || opt.duration <= 0 ||
        opt.points <= 0)
        die("%s", "bad --port, --conns, --duration or --points");
    if (opt.mode == M_SETUP_BATCH || opt.mode == M_SETUP_SINGLE)
        return run_setup();
    return run_load();
}
