/* bench/ingest/mqtt_load.c: MQTT load for bench/ingest (run.sh section 6).
 *
 *   pub  the devices: one connection per station (username = station code, password = its
 *        device token, as sinergi provisions them in the broker's dynamic security), each
 *        publishing one SenML reading per message to sinergi/ingest/<code> at --qos, with at
 *        most --window messages in flight per connection (QoS 1: published and not yet
 *        PUBACKed; QoS 0: not yet written to the socket). MQTT 3.1.1 written by hand, one
 *        write(2) per message (see struct device). The readings are the single-reading data set
 *        of dataset.h: message k of station s is reading (start_step + k) * 1000 + s, the
 *        one-record pack the HTTP single-reading benchmark posts. Every device is connected
 *        before the clock starts. With --metrics-port (sinergi) it then polls sinergi's /metrics
 *        every 20 ms until every message written (QoS 0) or acknowledged (QoS 1) is accounted
 *        for: committed (sinergi_mqtt_readings_stored_total), refused, or dropped by the broker;
 *        the time of that poll ends the measurement (at most --max-seconds after the start).
 *   sub  the reference: a bare subscriber with libmosquitto, the library sinergi's ingest client
 *        uses, with the subscriptions that client makes (sinergi/ingest/+ at QoS 1, and the
 *        broker's dropped-messages counter) and the same kind of session (persistent), driven
 *        by libmosquitto's standard loop (mosquitto_loop(…, 100 ms, 1) over and over, as
 *        mosquitto_sub's mosquitto_loop_forever does; sinergi reads in bursts with the
 *        external-loop API, in threaded mode, so that its PUBACKs leave after its spool
 *        write). It only counts messages and notes when the last one came. It writes --ready FILE once subscribed and stops at
 *        --expect messages, after --idle seconds without one, or after --max-seconds.
 *
 * usage: mqtt_load pub --port P --tokens FILE --qos 0|1 [--conns N (1000)] [--messages M
 *            (200000)] [--window W (1)] [--t0 UNIX_S] [--start-step K (0)] [--max-seconds S
 *            (20)] [--metrics-port HTTP_PORT]
 *        mqtt_load sub --port P --user U --password-file F --expect N --ready FILE
 *            [--client-id ID] [--qos Q (1)] [--max-seconds S (40)] [--idle S (5)]
 * Times are CLOCK_MONOTONIC nanoseconds, comparable between the two processes. Prints one line
 * of key=value results on stdout, diagnostics on stderr; exit 1 when a connection is refused or
 * lost, 2 on bad usage. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <mosquitto.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dataset.h"

#define INGEST_PREFIX "sinergi/ingest/"
#define DROPPED_TOPIC "$SYS/broker/publish/messages/dropped"

enum { MID_SLOTS = 1024 }; /* per-connection send times by mid; the window stays below this */

static struct {
    int port, qos, conns, window, metrics_port, idle;
    int64_t messages, t0, start_step, expect;
    double max_seconds;
    const char *tokens_file, *user, *password_file, *ready, *client_id;
} opt = {.qos = -1, .conns = 1000, .window = 1, .messages = 200000, .max_seconds = 20, .idle = 5};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void die(const char *what, const char *arg)
{
    fprintf(stderr, "mqtt_load: %s%s%s\n", what, arg ? ": " : "", arg ? arg : "");
    exit(2);
}

/* ---- pub: the devices --------------------------------------------------------------------- */
/* MQTT 3.1.1 by hand: CONNECT (clean session, username, password), PUBLISH, PUBACK, DISCONNECT.
 * One write(2) per message, as a device sends it; PUBACKs parsed from whatever one read(2)
 * returns. libmosquitto's client makes five system calls per QoS 1 message here (a wake-up byte
 * to its internal socketpair on every publish, three reads per PUBACK) and used about 19 µs of
 * CPU per QoS 1 message and 6-7 µs per QoS 0 message on this machine, against 12-18 and 2-4 µs
 * for this code (most of the rest is the kernel's loopback TCP work, charged to the writer):
 * the devices share the two cores with the broker and the subscriber being measured. */
struct device {
    int fd;
    int station; /* 0-based index in the data set and the tokens file */
    char code[33], token[256];
    uint8_t topic[64]; /* 2-byte length + sinergi/ingest/<code> */
    size_t topic_len;
    int64_t next_k, total; /* messages published so far / to publish */
    int inflight;          /* QoS 1: not yet PUBACKed; QoS 0: not yet written */
    int connack;           /* -1 until the broker answers */
    bool out_armed, eof;
    uint16_t next_id;
    uint8_t out[8192]; /* bytes not yet written (the socket was full) */
    size_t out_len;
    int out_msgs; /* QoS 0: messages whose last byte is in out[] */
    uint8_t in[4096];
    size_t in_len;
    uint64_t sent_at[MID_SLOTS];
};

static struct device *devs;
static int64_t n_published, n_done; /* done: written (QoS 0) or PUBACKed (QoS 1) */
static int n_connacked, n_lost;
static uint32_t *lat_us; /* PUBACK latency per QoS 1 message */
static int64_t n_lat;

/* Remaining length, MQTT's variable-length integer; returns its size. */
static size_t put_varint(uint8_t *p, size_t v)
{
    size_t n = 0;
    do {
        uint8_t b = v % 128;
        v /= 128;
        p[n++] = (uint8_t)(b | (v ? 128 : 0));
    } while (v);
    return n;
}

static size_t put_str16(uint8_t *p, const char *s)
{
    size_t n = strlen(s);
    p[0] = (uint8_t)(n >> 8);
    p[1] = (uint8_t)n;
    memcpy(p + 2, s, n);
    return n + 2;
}

/* The pack a cheap logger sends, as the HTTP single-reading benchmark posts it. */
static int payload(char *out, size_t cap, const struct device *d, int64_t k)
{
    struct ds_row row = ds_single_row((opt.start_step + k) * SG_STATIONS + d->station, opt.t0);
    char t[24], v[32];
    t[ds_fmt_int(t, row.t_s)] = 0;
    v[ds_fmt_milli(v, row.v_milli)] = 0;
    return snprintf(out, cap, "[{\"n\":\"%s:level\",\"u\":\"m\",\"t\":%s,\"v\":%s}]", d->code, t,
                    v);
}

static void load_tokens(void)
{
    FILE *f = fopen(opt.tokens_file, "r");
    if (!f)
        die("cannot read the tokens file", opt.tokens_file);
    devs = calloc((size_t)opt.conns, sizeof *devs);
    int n = 0;
    while (n < opt.conns && fscanf(f, "%32s %255s", devs[n].code, devs[n].token) == 2) {
        struct device *d = &devs[n];
        char want[8];
        ds_single_code(want, n % SG_STATIONS);
        if (strcmp(d->code, want) != 0)
            die("the tokens file must list the single-reading stations in order, from", want);
        d->station = n;
        char topic[64];
        snprintf(topic, sizeof topic, INGEST_PREFIX "%s", d->code);
        d->topic_len = put_str16(d->topic, topic);
        d->connack = -1;
        d->fd = -1;
        d->next_id = 1;
        n++;
    }
    fclose(f);
    if (n < opt.conns)
        die("the tokens file has fewer stations than --conns", opt.tokens_file);
    for (int i = 0; i < n; i++) /* the first messages % conns stations send one more */
        devs[i].total = opt.messages / n + (i < opt.messages % n ? 1 : 0);
}

static void arm(int ep, struct device *d)
{
    bool want = d->out_len > 0;
    if (want == d->out_armed)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = d};
    epoll_ctl(ep, EPOLL_CTL_MOD, d->fd, &ev);
    d->out_armed = want;
}

static void lose(struct device *d, const char *why)
{
    if (d->eof)
        return;
    d->eof = true;
    n_lost++;
    fprintf(stderr, "mqtt_load: %s lost its connection (%s) with %d in flight\n", d->code, why,
            d->inflight);
}

/* Writes what out[] holds; QoS 0 messages count as sent once their last byte is written. */
static void flush(int ep, struct device *d)
{
    while (d->out_len) {
        ssize_t w = write(d->fd, d->out, d->out_len);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR)
                break;
            lose(d, strerror(errno));
            return;
        }
        memmove(d->out, d->out + w, d->out_len - (size_t)w);
        d->out_len -= (size_t)w;
    }
    if (d->out_len == 0 && d->out_msgs) {
        d->inflight -= d->out_msgs;
        n_done += d->out_msgs;
        d->out_msgs = 0;
    }
    arm(ep, d);
}

static void queue(int ep, struct device *d, const uint8_t *p, size_t n, bool qos0_msg)
{
    if (d->out_len + n > sizeof d->out)
        die("output buffer full", d->code);
    memcpy(d->out + d->out_len, p, n);
    d->out_len += n;
    if (qos0_msg)
        d->out_msgs++;
    flush(ep, d);
}

static void send_connect(int ep, struct device *d)
{
    uint8_t body[600], pkt[610];
    size_t n = 0;
    char id[64];
    snprintf(id, sizeof id, "bench-%s-%d", d->code, (int)getpid());
    n += put_str16(body + n, "MQTT");
    body[n++] = 4;    /* 3.1.1 */
    body[n++] = 0xC2; /* username, password, clean session */
    body[n++] = 0;
    body[n++] = 240; /* keep-alive 240 s: longer than any run, no PINGREQ needed */
    n += put_str16(body + n, id);
    n += put_str16(body + n, d->code);
    n += put_str16(body + n, d->token);
    pkt[0] = 0x10;
    size_t h = 1 + put_varint(pkt + 1, n);
    memcpy(pkt + h, body, n);
    queue(ep, d, pkt, h + n, false);
}

static void publish(int ep, struct device *d)
{
    char pl[256];
    int plen = payload(pl, sizeof pl, d, d->next_k);
    uint8_t pkt[400];
    size_t rem = d->topic_len + (opt.qos ? 2 : 0) + (size_t)plen;
    pkt[0] = (uint8_t)(0x30 | opt.qos << 1);
    size_t n = 1 + put_varint(pkt + 1, rem);
    memcpy(pkt + n, d->topic, d->topic_len);
    n += d->topic_len;
    if (opt.qos) {
        uint16_t id = d->next_id;
        d->next_id = (uint16_t)(id == 65535 ? 1 : id + 1);
        pkt[n++] = (uint8_t)(id >> 8);
        pkt[n++] = (uint8_t)id;
        d->sent_at[id % MID_SLOTS] = now_ns();
    }
    memcpy(pkt + n, pl, (size_t)plen);
    n += (size_t)plen;
    d->inflight++;
    d->next_k++;
    n_published++;
    queue(ep, d, pkt, n, opt.qos == 0);
}

/* Size of a packet's fixed header (type byte and remaining length) and its remaining length;
 * 0 when the bytes so far do not hold the whole remaining length. */
static size_t fixed_header(const uint8_t *p, size_t n, size_t *rem)
{
    size_t mult = 1;
    *rem = 0;
    for (size_t h = 1; h < n && h < 5; h++) {
        *rem += (size_t)(p[h] & 127) * mult;
        mult *= 128;
        if (!(p[h] & 128))
            return h + 1;
    }
    return 0;
}

/* Parses the packets one read returned: CONNACK, PUBACK; anything else is ignored. */
static void receive(struct device *d)
{
    ssize_t r = read(d->fd, d->in + d->in_len, sizeof d->in - d->in_len);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
        lose(d, r == 0 ? "closed by the broker" : strerror(errno));
        return;
    }
    if (r < 0)
        return;
    d->in_len += (size_t)r;
    size_t p = 0;
    for (;;) {
        size_t rem, h = fixed_header(d->in + p, d->in_len - p, &rem);
        if (h == 0 || d->in_len - p < h + rem)
            break; /* the rest comes with the next read */
        const uint8_t *pk = d->in + p;
        uint8_t type = pk[0] >> 4;
        if (type == 2 && rem >= 2) { /* CONNACK */
            d->connack = pk[h + 1];
            n_connacked++;
            if (d->connack)
                fprintf(stderr, "mqtt_load: broker refused %s: CONNACK code %d\n", d->code,
                        d->connack);
        } else if (type == 4 && rem >= 2) { /* PUBACK */
            uint16_t id = (uint16_t)(pk[h] << 8 | pk[h + 1]);
            d->inflight--;
            n_done++;
            if (lat_us)
                lat_us[n_lat++] = (uint32_t)((now_ns() - d->sent_at[id % MID_SLOTS]) / 1000);
        }
        p += h + rem;
    }
    memmove(d->in, d->in + p, d->in_len - p);
    d->in_len -= p;
}

/* Reads and writes whatever the sockets are ready for; waits up to `timeout_ms`. */
static void pump(int ep, int timeout_ms)
{
    struct epoll_event evs[256];
    int n = epoll_wait(ep, evs, 256, timeout_ms);
    for (int i = 0; i < n; i++) {
        struct device *d = evs[i].data.ptr;
        if (d->eof)
            continue;
        if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
            receive(d);
        if (!d->eof && (evs[i].events & EPOLLOUT))
            flush(ep, d);
    }
}

static int tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* ---- /metrics of sinergi ------------------------------------------------------------------ */
struct counters {
    int64_t stored, duplicates, rejected, malformed, unknown, dropped, received;
};

static bool get_metric(const char *text, const char *name, int64_t *out)
{
    size_t nl = strlen(name);
    for (const char *p = text; (p = strstr(p, name)) != NULL; p += nl)
        if ((p == text || p[-1] == '\n') && p[nl] == ' ') {
            *out = strtoll(p + nl + 1, NULL, 10);
            return true;
        }
    return false;
}

static bool read_metrics(struct counters *c)
{
    static char buf[1 << 20];
    size_t len = 0;
    int fd = tcp_connect(opt.metrics_port);
    if (fd < 0)
        return false;
    static const char req[] =
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if (write(fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1)) {
        close(fd);
        return false;
    }
    ssize_t r;
    while (len < sizeof buf - 1 && (r = read(fd, buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)r;
    close(fd);
    buf[len] = 0;
    return get_metric(buf, "sinergi_mqtt_readings_stored_total", &c->stored) &&
           get_metric(buf, "sinergi_mqtt_readings_duplicate_total", &c->duplicates) &&
           get_metric(buf, "sinergi_mqtt_records_rejected_total", &c->rejected) &&
           get_metric(buf, "sinergi_mqtt_payloads_malformed_total", &c->malformed) &&
           get_metric(buf, "sinergi_mqtt_unknown_station_total", &c->unknown) &&
           get_metric(buf, "sinergi_mqtt_broker_dropped_messages", &c->dropped) &&
           get_metric(buf, "sinergi_mqtt_messages_received_total", &c->received);
}

static struct counters delta(struct counters a, struct counters b)
{
    return (struct counters){b.stored - a.stored,     b.duplicates - a.duplicates,
                             b.rejected - a.rejected, b.malformed - a.malformed,
                             b.unknown - a.unknown,   b.dropped - a.dropped,
                             b.received - a.received};
}

/* Every message is accounted for: committed, refused (counted) or dropped by the broker. */
static bool accounted(struct counters d, int64_t target)
{
    return d.stored + d.duplicates + d.rejected + d.malformed + d.unknown + d.dropped >= target;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_ms(const uint32_t *v, int64_t n, double p)
{
    if (n == 0)
        return 0;
    int64_t i = (int64_t)(p * (double)(n - 1) + 0.5);
    return v[i] / 1000.0;
}

static int run_pub(void)
{
    if (!opt.tokens_file || (opt.qos != 0 && opt.qos != 1) || opt.conns < 1 ||
        opt.conns > SG_STATIONS || opt.window < 1 || opt.window >= MID_SLOTS / 2 ||
        opt.messages < 1)
        die("pub needs --tokens FILE --qos 0|1, --conns 1..1000, --window 1..511", NULL);
    if (!opt.t0)
        opt.t0 = (int64_t)time(NULL) - 86400;
    load_tokens();
    if (opt.qos == 1)
        lat_us = malloc((size_t)opt.messages * sizeof *lat_us);
    struct counters c0 = {0}, c1 = {0}, cd = {0};
    if (opt.metrics_port && !read_metrics(&c0))
        die("cannot read sinergi's MQTT counters on /metrics", NULL);

    /* Connect every device, then wait for every CONNACK (not timed). */
    int ep = epoll_create1(0);
    for (int i = 0; i < opt.conns; i++) {
        struct device *d = &devs[i];
        if ((d->fd = tcp_connect(opt.port)) < 0)
            die("cannot connect to the broker", strerror(errno));
        fcntl(d->fd, F_SETFL, fcntl(d->fd, F_GETFL) | O_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = d};
        epoll_ctl(ep, EPOLL_CTL_ADD, d->fd, &ev);
        send_connect(ep, d);
    }
    uint64_t t_conn = now_ns();
    while (n_connacked < opt.conns && n_lost == 0 && now_ns() - t_conn < 60000000000ull)
        pump(ep, 100);
    for (int i = 0; i < opt.conns; i++)
        if (devs[i].connack != 0) {
            fprintf(stderr, "mqtt_load: %d of %d devices connected\n", n_connacked, opt.conns);
            return 1;
        }
    double cpu0 = cpu_s();

    /* Publish: each pass gives every device with room in its window one more message. */
    uint64_t t_start = now_ns(), deadline = t_start + (uint64_t)(opt.max_seconds * 1e9);
    bool open = true; /* messages left and time left */
    while (n_lost == 0) {
        bool any = false;
        if (open) {
            for (int i = 0; i < opt.conns; i++) {
                struct device *d = &devs[i];
                if (d->next_k < d->total && d->inflight < opt.window && !d->eof) {
                    publish(ep, d);
                    any = true;
                }
            }
            open = n_published < opt.messages && now_ns() < deadline;
        }
        if (!open && n_done >= n_published)
            break;
        /* Past the deadline, messages in flight get 5 s more to be acknowledged. */
        if (!open && now_ns() > deadline + 5000000000ull)
            break;
        pump(ep, any ? 0 : 50);
    }
    uint64_t t_pub_end = now_ns();
    double pub_cpu = cpu_s() - cpu0;

    /* sinergi: until every message sent / acknowledged is accounted for (or the deadline). */
    uint64_t t_end = t_pub_end;
    bool complete = true;
    int64_t target = n_done, stored_timed = 0;
    if (opt.metrics_port) {
        complete = false;
        for (;;) {
            if (read_metrics(&c1)) {
                cd = delta(c0, c1);
                t_end = now_ns();
                stored_timed = cd.stored;
                if (accounted(cd, target)) {
                    complete = true;
                    break;
                }
            }
            if (now_ns() >= deadline)
                break;
            usleep(20000);
        }
        /* Not timed: the rest of the stream, and the broker's dropped counter ($SYS, every 1 s,
         * so read again 1.5 s later). Gives up after 10 s without progress. */
        int64_t last = cd.stored;
        uint64_t last_change = now_ns();
        for (;;) {
            usleep(complete ? 1500000 : 200000);
            if (!read_metrics(&c1))
                continue;
            cd = delta(c0, c1);
            if (complete || accounted(cd, target))
                break;
            if (cd.stored != last)
                last = cd.stored, last_change = now_ns();
            else if (now_ns() - last_change > 10000000000ull)
                break;
        }
    }

    /* Disconnect cleanly: the broker has every message by now. */
    static const uint8_t disconnect[2] = {0xE0, 0};
    for (int i = 0; i < opt.conns; i++) {
        if (!devs[i].eof && write(devs[i].fd, disconnect, 2) != 2)
            fprintf(stderr, "mqtt_load: DISCONNECT of %s not sent\n", devs[i].code);
        close(devs[i].fd);
    }
    double seconds = (double)(t_end - t_start) / 1e9;
    qsort(lat_us, (size_t)n_lat, sizeof *lat_us, cmp_u32);
    printf("qos=%d conns=%d window=%d published=%lld acked=%lld lost_connections=%d "
           "t_start_ns=%llu publish_s=%.3f publish_rate=%.0f client_cpu_s=%.3f",
           opt.qos, opt.conns, opt.window, (long long)n_published, (long long)n_done, n_lost,
           (unsigned long long)t_start, (double)(t_pub_end - t_start) / 1e9,
           (double)n_done / ((double)(t_pub_end - t_start) / 1e9), pub_cpu);
    if (opt.qos == 1)
        printf(" p50_ms=%.2f p99_ms=%.2f", pct_ms(lat_us, n_lat, 0.5), pct_ms(lat_us, n_lat, 0.99));
    if (opt.metrics_port)
        printf(" seconds=%.3f stored_timed=%lld readings_per_s=%.0f complete=%d stored=%lld "
               "received=%lld duplicates=%lld rejected=%lld malformed=%lld unknown=%lld "
               "dropped=%lld",
               seconds, (long long)stored_timed, (double)stored_timed / seconds, complete,
               (long long)cd.stored, (long long)cd.received, (long long)cd.duplicates,
               (long long)cd.rejected, (long long)cd.malformed, (long long)cd.unknown,
               (long long)cd.dropped);
    printf(" next_step=%lld\n",
           (long long)(opt.start_step + (opt.messages + opt.conns - 1) / opt.conns));
    return n_lost ? 1 : 0;
}

/* ---- sub: the bare subscriber ------------------------------------------------------------- */
static struct {
    int64_t received, dropped_first, dropped_last;
    uint64_t t_first, t_last;
    int subacks, unsuback;
    bool refused;
} s = {.dropped_first = -1, .dropped_last = -1};

static void sub_on_connect(struct mosquitto *m, void *ctx, int rc)
{
    if (rc) {
        fprintf(stderr, "mqtt_load: broker refused the subscriber: %s\n",
                mosquitto_connack_string(rc));
        s.refused = true;
        return;
    }
    mosquitto_subscribe(m, NULL, INGEST_PREFIX "+", opt.qos);
    mosquitto_subscribe(m, NULL, DROPPED_TOPIC, 0);
}

static void sub_on_subscribe(struct mosquitto *m, void *ctx, int mid, int n, const int *granted)
{
    for (int i = 0; i < n; i++)
        if (granted[i] > 2) {
            fprintf(stderr, "mqtt_load: subscription refused (ACL)\n");
            s.refused = true;
        }
    s.subacks++;
}

static void sub_on_unsubscribe(struct mosquitto *m, void *ctx, int mid)
{
    s.unsuback++;
}

static void sub_on_message(struct mosquitto *m, void *ctx, const struct mosquitto_message *msg)
{
    if (strncmp(msg->topic, INGEST_PREFIX, sizeof INGEST_PREFIX - 1) == 0) {
        s.t_last = now_ns();
        if (!s.received++)
            s.t_first = s.t_last;
        return;
    }
    if (strcmp(msg->topic, DROPPED_TOPIC) == 0 && msg->payloadlen > 0 && msg->payloadlen < 32) {
        char num[32];
        memcpy(num, msg->payload, (size_t)msg->payloadlen);
        num[msg->payloadlen] = 0;
        s.dropped_last = strtoll(num, NULL, 10);
        if (s.dropped_first < 0)
            s.dropped_first = s.dropped_last;
    }
}

static int run_sub(void)
{
    if (!opt.user || !opt.password_file || !opt.ready || opt.expect < 1 || opt.qos > 2)
        die("sub needs --user --password-file --expect N --ready FILE", NULL);
    if (opt.qos < 0)
        opt.qos = 1;
    char pw[256] = "";
    FILE *f = fopen(opt.password_file, "r");
    if (!f || !fgets(pw, sizeof pw, f))
        die("cannot read", opt.password_file);
    fclose(f);
    pw[strcspn(pw, "\r\n")] = 0;
    char id[64];
    snprintf(id, sizeof id, "%s", opt.client_id ? opt.client_id : "bench.sub");
    /* A persistent session, as sinergi's ingest client has (the broker keeps its state). */
    struct mosquitto *m = mosquitto_new(id, false, NULL);
    mosquitto_username_pw_set(m, opt.user, pw);
    mosquitto_connect_callback_set(m, sub_on_connect);
    mosquitto_subscribe_callback_set(m, sub_on_subscribe);
    mosquitto_unsubscribe_callback_set(m, sub_on_unsubscribe);
    mosquitto_message_callback_set(m, sub_on_message);
    int rc = mosquitto_connect(m, "127.0.0.1", opt.port, 60);
    if (rc != MOSQ_ERR_SUCCESS)
        die("cannot connect to the broker", mosquitto_strerror(rc));
    uint64_t t0 = now_ns();
    while (s.subacks < 2 && !s.refused && now_ns() - t0 < 10000000000ull)
        if (mosquitto_loop(m, 100, 1) != MOSQ_ERR_SUCCESS)
            break;
    if (s.subacks < 2 || s.refused)
        die("the subscriber could not subscribe", NULL);
    f = fopen(opt.ready, "w");
    if (!f)
        die("cannot write", opt.ready);
    fprintf(f, "ready\n");
    fclose(f);

    /* libmosquitto's standard loop: mosquitto_loop(…, 100 ms, 1) over and over. */
    double cpu0 = cpu_s();
    uint64_t ready = now_ns(), deadline = ready + (uint64_t)(opt.max_seconds * 1e9);
    int lost = 0;
    while (s.received < opt.expect) {
        uint64_t now = now_ns();
        if (now > deadline || (s.received && now - s.t_last > (uint64_t)opt.idle * 1000000000u))
            break;
        if (mosquitto_loop(m, 100, 1) != MOSQ_ERR_SUCCESS) {
            fprintf(stderr, "mqtt_load: the subscriber lost its connection\n");
            lost = 1;
            break;
        }
    }
    double cpu = cpu_s() - cpu0;
    /* Leave no subscription behind: the broker must not queue anything for this session later. */
    mosquitto_unsubscribe(m, NULL, INGEST_PREFIX "+");
    mosquitto_unsubscribe(m, NULL, DROPPED_TOPIC);
    for (int i = 0; i < 20 && s.unsuback < 2 && !lost; i++)
        mosquitto_loop(m, 100, 1);
    mosquitto_disconnect(m);
    mosquitto_loop(m, 100, 1);
    mosquitto_destroy(m);
    printf("received=%lld t_first_ns=%llu t_last_ns=%llu dropped=%lld sub_cpu_s=%.3f "
           "lost_connection=%d\n",
           (long long)s.received, (unsigned long long)s.t_first, (unsigned long long)s.t_last,
           (long long)(s.dropped_last >= 0 ? s.dropped_last - s.dropped_first : -1), cpu, lost);
    return lost;
}

int main(int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "pub") && strcmp(argv[1], "sub")))
        die("usage: mqtt_load pub|sub --port P ... (see the top of bench/ingest/mqtt_load.c)",
            NULL);
    bool pub = strcmp(argv[1], "pub") == 0;
    for (int i = 2; i < argc; i += 2) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            die("missing value for", k);
        if (!strcmp(k, "--port"))
            opt.port = atoi(v);
        else if (!strcmp(k, "--qos"))
            opt.qos = atoi(v);
        else if (!strcmp(k, "--conns"))
            opt.conns = atoi(v);
        else if (!strcmp(k, "--window"))
            opt.window = atoi(v);
        else if (!strcmp(k, "--messages"))
            opt.messages = atoll(v);
        else if (!strcmp(k, "--t0"))
            opt.t0 = atoll(v);
        else if (!strcmp(k, "--start-step"))
            opt.start_step = atoll(v);
        else if (!strcmp(k, "--max-seconds"))
            opt.max_seconds = atof(v);
        else if (!strcmp(k, "--metrics-port"))
            opt.metrics_port = atoi(v);
        else if (!strcmp(k, "--tokens"))
            opt.tokens_file = v;
        else if (!strcmp(k, "--user"))
            opt.user = v;
        else if (!strcmp(k, "--password-file"))
            opt.password_file = v;
        else if (!strcmp(k, "--expect"))
            opt.expect = atoll(v);
        else if (!strcmp(k, "--ready"))
            opt.ready = v;
        else if (!strcmp(k, "--client-id"))
            opt.client_id = v;
        else if (!strcmp(k, "--idle"))
            opt.idle = atoi(v);
        else
            die("unknown option", k);
    }
    if (opt.port <= 0)
        die("--port is required", NULL);
    if (!pub && opt.max_seconds == 20)
        opt.max_seconds = 40;
    mosquitto_lib_init();
    int rc = pub ? run_pub() : run_sub();
    mosquitto_lib_cleanup();
    return rc;
}
