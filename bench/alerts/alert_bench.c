/* bench/alerts/alert_bench.c: latency of sinergi's alerts, from the MQTT publish of a reading that
 * crosses a threshold to (a) the `event: alert` on the live event stream (SSE) and (b) the webhook
 * POST, without and with a paced background load of readings over MQTT. One process, one clock
 * (CLOCK_MONOTONIC), so every latency is a difference of two readings of the same clock.
 *
 * Threads:
 *   main        orchestrates the phases and publishes the probes (threshold-crossing readings),
 *               one libmosquitto client per probe station (threaded mode, QoS 1)
 *   background  paces the background readings over MQTT (one connection per background station,
 *               non-threaded libmosquitto clients on one epoll loop), one reading per message
 *   sse x2      GET /api/v1/events as admin over a plain socket: one stream with no filter (what
 *               an operator dashboard opens), one filtered to the probe stations
 *   hook        a small HTTP/1.1 server (keep-alive) that receives the webhook POSTs
 *   tap         (optional) an MQTT subscriber to the probe stations' ingest topics: when the
 *               broker hands a probe to a subscriber, i.e. roughly when sinergi receives it
 *
 * A probe is matched by station and reading time: every probe of a station has its own reading
 * time (whole seconds, DT_PROBE apart), and an alert's `updated_at` is the reading time of the
 * decision. The probe stations have thresholds 2.00/2.02/2.04 m, hysteresis 0.001 m and
 * hold_s 0, and the probes alternate 2.025 m (Siaga) and 2.005 m (Waspada), so every probe is one
 * rule decision: one new alert version, one `alert` event, one webhook delivery.
 *
 * usage: alert_bench --mqtt-port P --http-port P --hook-port P --token T --probes FILE
 *                    --background FILE --out DIR [--rate 10000] [--duration 20] [--warmup 3]
 *                    [--gap-min-ms 100] [--gap-max-ms 250] [--qos 1] [--phases idle,load]
 *                    [--tap-user U --tap-pass P] [--pids name=PID,...] [--wait-quiet S]
 * --phases: a list of idle and load; a phase given again is named idle2, load2, ...
 * --wait-quiet: before each phase, wait up to S s for the machine to be nearly idle
 * FILE: "code token" lines. Writes DIR/probes.csv (one row per probe) and DIR/summary.txt
 * (key=value lines, read by run.sh); progress on stderr. Exit 1 when setup fails. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <mosquitto.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { MAX_PROBE_STATIONS = 16, MAX_PROBES = 20000, MAX_K = 4096, DT_PROBE = 10, DT_BG = 10 };
enum { PATH_PUBACK, PATH_TAP, PATH_SSE_ALL, PATH_SSE_STA, PATH_HOOK, NPATHS };
static const char *const path_name[NPATHS] = {"puback", "tap", "sse_all", "sse_probe_stations",
                                              "webhook"};

static struct {
    int mqtt_port, http_port, hook_port, qos;
    double rate, duration, warmup, gap_min_ms, gap_max_ms, wait_quiet;
    const char *token, *probes_file, *bg_file, *out, *phases, *tap_user, *tap_pass, *pids;
} opt = {.qos = 1, .rate = 10000, .duration = 20, .warmup = 3, .gap_min_ms = 100,
         .gap_max_ms = 250, .phases = "idle,load"};

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "alert_bench: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "alert_bench: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_until_ns(uint64_t t)
{
    struct timespec ts = {(time_t)(t / 1000000000ull), (long)(t % 1000000000ull)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static double rnd(void) /* [0, 1), xorshift64*, main thread only */
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

/* ---- stations ------------------------------------------------------------------------------ */
struct station {
    char code[40], token[80];
};

static struct station *read_stations(const char *path, int *n)
{
    FILE *f = fopen(path, "r");
    if (!f)
        die("cannot read %s: %s", path, strerror(errno));
    int cap = 64;
    struct station *s = malloc((size_t)cap * sizeof *s);
    *n = 0;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        if (*n == cap)
            s = realloc(s, (size_t)(cap *= 2) * sizeof *s);
        if (sscanf(line, "%39s %79s", s[*n].code, s[*n].token) == 2)
            (*n)++;
    }
    fclose(f);
    return s;
}

static struct station *pst, *bst; /* probe and background stations */
static int npst, nbst;

static int probe_station_of(const char *code)
{
    for (int i = 0; i < npst; i++)
        if (strcmp(pst[i].code, code) == 0)
            return i;
    return -1;
}

/* ---- probes -------------------------------------------------------------------------------- */
struct probe {
    int phase; /* index into phases[] */
    bool counted; /* published in the measured window (not warm-up) */
    int station, k;
    int64_t t_s; /* reading time */
    double v;
    uint64_t pub_ns;
    uint64_t at[NPATHS]; /* arrival times, 0 = not seen */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER; /* probes, matching, counters */
static struct probe probes[MAX_PROBES];
static int nprobes;
static int probe_at[MAX_PROBE_STATIONS][MAX_K]; /* (station, k) -> probe index + 1 */
static int64_t probe_t0;                        /* reading time of k = 0 */
static int next_k[MAX_PROBE_STATIONS];
static int mid_probe[MAX_PROBE_STATIONS][65536]; /* MQTT message id -> probe index + 1 */
static long unmatched[NPATHS], duplicates[NPATHS];

/* Marks the arrival of probe (station, reading time) on `path`. Under no lock. */
static void arrived(int path, int station, int64_t t_s, uint64_t at)
{
    pthread_mutex_lock(&lock);
    int64_t d = t_s - probe_t0;
    int k = d >= 0 && d % DT_PROBE == 0 ? (int)(d / DT_PROBE) : -1;
    int id = station >= 0 && k >= 0 && k < MAX_K ? probe_at[station][k] - 1 : -1;
    if (id < 0)
        unmatched[path]++;
    else if (probes[id].at[path])
        duplicates[path]++;
    else
        probes[id].at[path] = at;
    pthread_mutex_unlock(&lock);
}

/* "2026-11-22T10:00:00Z" -> unix seconds; -1 if not that. */
static int64_t parse_utc(const char *s)
{
    struct tm tm = {0};
    if (!s || sscanf(s, "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                     &tm.tm_min, &tm.tm_sec) != 6)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm);
}

/* An alert object (SSE data's "alert", or the webhook body's "alert") -> arrival of its probe.
 * Only decisions of the level rule on probe stations count; anything else is ignored. */
static void alert_arrived(int path, json_t *alert, uint64_t at)
{
    const char *rule = json_string_value(json_object_get(alert, "rule"));
    const char *code = json_string_value(json_object_get(alert, "station"));
    if (!rule || !code || strcmp(rule, "level") != 0)
        return;
    int st = probe_station_of(code);
    if (st < 0) {
        pthread_mutex_lock(&lock);
        unmatched[path]++;
        pthread_mutex_unlock(&lock);
        return;
    }
    arrived(path, st, parse_utc(json_string_value(json_object_get(alert, "updated_at"))), at);
}

/* ---- plain HTTP client helpers ------------------------------------------------------------- */
static int connect_local(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
        die("cannot connect to 127.0.0.1:%d: %s", port, strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            die("send: %s", strerror(errno));
        p += w;
        n -= (size_t)w;
    }
}

/* GET /metrics (Connection: close) and returns the value of one counter, -1 if absent. */
static long long metric(const char *name)
{
    int fd = connect_local(opt.http_port);
    const char req[] = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    send_all(fd, req, sizeof req - 1);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (len + 1 >= cap)
            buf = realloc(buf, cap *= 2);
        ssize_t r = recv(fd, buf + len, cap - len - 1, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = 0;
    long long v = -1;
    size_t nl = strlen(name);
    for (char *p = buf; (p = strstr(p, name)); p += nl)
        if ((p == buf || p[-1] == '\n') && p[nl] == ' ') {
            v = strtoll(p + nl + 1, NULL, 10);
            break;
        }
    free(buf);
    return v;
}

/* ---- SSE streams --------------------------------------------------------------------------- */
struct sse {
    int path;
    char query[1024];
    int fd;
    /* counters, this thread only until the end */
    long frames, alerts, resets, bytes;
    atomic_bool ready;
    /* when data arrived after at least BURST_GAP_NS of silence: under a steady stream of
     * events this is the cadence at which sinergi resumes the stream */
    uint64_t *bursts;
    int nbursts, cap_bursts;
    uint64_t last_recv;
};
enum { BURST_GAP_NS = 5000000 };

/* One complete SSE frame. */
static void sse_frame(struct sse *s, const char *event, const char *data, uint64_t at)
{
    s->frames++;
    if (strcmp(event, "reset") == 0)
        s->resets++;
    if (strcmp(event, "alert") != 0)
        return;
    s->alerts++;
    json_t *o = json_loads(data, 0, NULL);
    if (o)
        alert_arrived(s->path, json_object_get(o, "alert"), at);
    json_decref(o);
}

static void *sse_main(void *arg)
{
    struct sse *s = arg;
    s->fd = connect_local(opt.http_port);
    char req[2048];
    int n = snprintf(req, sizeof req,
                     "GET /api/v1/events%s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: "
                     "text/event-stream\r\nAuthorization: Bearer %s\r\n\r\n",
                     s->query, opt.token);
    send_all(s->fd, req, (size_t)n);
    /* response head */
    char head[4096];
    size_t hl = 0;
    char *end = NULL;
    while (!end) {
        ssize_t r = recv(s->fd, head + hl, sizeof head - 1 - hl, 0);
        if (r <= 0)
            die("SSE stream%s: connection closed before the response head", s->query);
        hl += (size_t)r;
        head[hl] = 0;
        end = strstr(head, "\r\n\r\n");
        if (!end && hl >= sizeof head - 1)
            die("SSE response head too long");
    }
    if (strncmp(head, "HTTP/1.1 200", 12) != 0)
        die("SSE stream%s: %.*s", s->query, (int)strcspn(head, "\r\n"), head);
    bool chunked = strcasestr(head, "transfer-encoding: chunked") != NULL;
    /* decoder state */
    enum { C_SIZE, C_DATA, C_CRLF } cs = C_SIZE;
    size_t chunk_left = 0;
    char sizeline[32];
    size_t sl = 0;
    /* SSE line state */
    size_t lcap = 1 << 16, ll = 0, dcap = 1 << 16, dl = 0;
    char *line = malloc(lcap), *data = malloc(dcap), event[32] = "message";
    char buf[1 << 16];
    size_t pre = hl - (size_t)(end + 4 - head);
    memcpy(buf, end + 4, pre);
    size_t blen = pre;
    atomic_store(&s->ready, true);
    for (;;) {
        uint64_t at = now_ns();
        if (blen == 0) {
            ssize_t r = recv(s->fd, buf, sizeof buf, 0);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break; /* closed by us at the end, or by the server */
            at = now_ns();
            blen = (size_t)r;
            s->bytes += r;
            if (at - s->last_recv >= BURST_GAP_NS) {
                if (s->nbursts == s->cap_bursts)
                    s->bursts = realloc(s->bursts, sizeof *s->bursts *
                                                       (size_t)(s->cap_bursts = s->cap_bursts * 2 + 1024));
                s->bursts[s->nbursts++] = at;
            }
            s->last_recv = at;
        }
        for (size_t i = 0; i < blen; i++) {
            char c = buf[i];
            if (chunked) {
                if (cs == C_SIZE) {
                    if (c == '\n') {
                        sizeline[sl] = 0;
                        chunk_left = strtoul(sizeline, NULL, 16);
                        sl = 0;
                        cs = chunk_left ? C_DATA : C_CRLF;
                        if (!chunk_left)
                            goto done; /* last chunk: the stream ended */
                    } else if (c != '\r' && sl < sizeof sizeline - 1)
                        sizeline[sl++] = c;
                    continue;
                }
                if (cs == C_CRLF) {
                    if (c == '\n')
                        cs = C_SIZE;
                    continue;
                }
                if (--chunk_left == 0)
                    cs = C_CRLF;
            }
            /* c is stream content */
            if (c != '\n') {
                if (ll + 1 >= lcap)
                    line = realloc(line, lcap *= 2);
                line[ll++] = c;
                continue;
            }
            if (ll && line[ll - 1] == '\r')
                ll--;
            line[ll] = 0;
            if (ll == 0) { /* end of frame */
                data[dl] = 0;
                if (dl || strcmp(event, "message") != 0)
                    sse_frame(s, event, data, at);
                dl = 0;
                snprintf(event, sizeof event, "message");
            } else if (strncmp(line, "event:", 6) == 0) {
                snprintf(event, sizeof event, "%s", line + 6 + (line[6] == ' '));
            } else if (strncmp(line, "data:", 5) == 0) {
                const char *d = line + 5 + (line[5] == ' ');
                size_t n2 = strlen(d);
                if (dl + n2 + 2 >= dcap)
                    data = realloc(data, dcap = (dl + n2 + 2) * 2);
                if (dl)
                    data[dl++] = '\n';
                memcpy(data + dl, d, n2);
                dl += n2;
            }
            ll = 0;
        }
        blen = 0;
    }
done:
    free(line);
    free(data);
    return NULL;
}

/* ---- webhook receiver ---------------------------------------------------------------------- */
static int hook_listen_fd;
static atomic_long hook_posts, hook_conns;
static atomic_bool stopping;

struct hconn {
    int fd;
    char *buf;
    size_t len, cap;
};

/* Handles the complete requests in c->buf; false when the connection must close. */
static bool hook_requests(struct hconn *c, uint64_t at)
{
    for (;;) {
        char *hend = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (!hend)
            return true;
        size_t hlen = (size_t)(hend + 4 - c->buf);
        size_t clen = 0;
        for (char *p = c->buf; p < hend; p++)
            if ((p == c->buf || p[-1] == '\n') && strncasecmp(p, "content-length:", 15) == 0)
                clen = strtoul(p + 15, NULL, 10);
        if (c->len < hlen + clen)
            return true;
        atomic_fetch_add(&hook_posts, 1);
        json_t *o = json_loadb(c->buf + hlen, clen, 0, NULL);
        if (o)
            alert_arrived(PATH_HOOK, json_object_get(o, "alert"), at);
        json_decref(o);
        static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        if (send(c->fd, ok, sizeof ok - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof ok - 1))
            return false;
        memmove(c->buf, c->buf + hlen + clen, c->len - hlen - clen);
        c->len -= hlen + clen;
    }
}

static void *hook_main(void *arg)
{
    (void)arg;
    enum { MAXC = 64 };
    struct pollfd pf[MAXC + 1];
    struct hconn cs[MAXC];
    int n = 0;
    while (!atomic_load(&stopping)) {
        pf[0] = (struct pollfd){.fd = hook_listen_fd, .events = POLLIN};
        for (int i = 0; i < n; i++)
            pf[i + 1] = (struct pollfd){.fd = cs[i].fd, .events = POLLIN};
        int r = poll(pf, (nfds_t)n + 1, 100);
        if (r <= 0)
            continue;
        uint64_t at = now_ns();
        for (int i = n - 1; i >= 0; i--) {
            if (!(pf[i + 1].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            struct hconn *c = &cs[i];
            if (c->len + 65536 > c->cap)
                c->buf = realloc(c->buf, c->cap = (c->len + 65536) * 2);
            ssize_t got = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
            if (got > 0) {
                c->len += (size_t)got;
                if (hook_requests(c, at))
                    continue;
            }
            close(c->fd);
            free(c->buf);
            cs[i] = cs[--n];
        }
        if ((pf[0].revents & POLLIN) && n < MAXC) {
            int fd = accept(hook_listen_fd, NULL, NULL);
            if (fd >= 0) {
                int one = 1;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                cs[n++] = (struct hconn){.fd = fd};
                atomic_fetch_add(&hook_conns, 1);
            }
        }
    }
    for (int i = 0; i < n; i++) {
        close(cs[i].fd);
        free(cs[i].buf);
    }
    return NULL;
}

/* ---- MQTT: probe clients and the tap ------------------------------------------------------- */
static struct mosquitto *probe_cli[MAX_PROBE_STATIONS];
static int probe_idx[MAX_PROBE_STATIONS]; /* user data (libmosquitto replaces NULL by the client) */
static atomic_int probe_connected, tap_ready;

static void on_connect_count(struct mosquitto *m, void *ud, int rc)
{
    (void)m;
    if (rc != 0)
        die("the broker refused probe station %s: %s", pst[*(int *)ud].code,
            mosquitto_connack_string(rc));
    atomic_fetch_add(&probe_connected, 1);
}

static void on_probe_puback(struct mosquitto *m, void *ud, int mid)
{
    (void)m;
    uint64_t at = now_ns();
    int st = *(int *)ud;
    pthread_mutex_lock(&lock);
    int id = mid_probe[st][mid & 0xffff] - 1;
    if (id >= 0 && !probes[id].at[PATH_PUBACK])
        probes[id].at[PATH_PUBACK] = at;
    pthread_mutex_unlock(&lock);
}

static void on_tap_connect(struct mosquitto *m, void *ud, int rc)
{
    (void)ud;
    if (rc != 0)
        die("the broker refused the tap: %s", mosquitto_connack_string(rc));
    for (int i = 0; i < npst; i++) {
        char topic[80];
        snprintf(topic, sizeof topic, "sinergi/ingest/%s", pst[i].code);
        mosquitto_subscribe(m, NULL, topic, 1);
    }
}

static void on_tap_subscribe(struct mosquitto *m, void *ud, int mid, int n, const int *granted)
{
    (void)m;
    (void)ud;
    (void)mid;
    for (int i = 0; i < n; i++)
        if (granted[i] > 2)
            die("the broker refused the tap's subscription");
    atomic_fetch_add(&tap_ready, 1);
}

static void on_tap_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg)
{
    (void)m;
    (void)ud;
    uint64_t at = now_ns();
    const char *code = strrchr(msg->topic, '/');
    int st = code ? probe_station_of(code + 1) : -1;
    char p[512];
    size_t n = msg->payloadlen < (int)sizeof p - 1 ? (size_t)msg->payloadlen : sizeof p - 1;
    memcpy(p, msg->payload, n);
    p[n] = 0;
    const char *bt = strstr(p, "\"bt\":");
    if (st >= 0 && bt)
        arrived(PATH_TAP, st, strtoll(bt + 5, NULL, 10), at);
}

static struct mosquitto *tap;

static void mqtt_clients_start(void)
{
    for (int i = 0; i < npst; i++) {
        char id[64];
        snprintf(id, sizeof id, "bench-probe-%s", pst[i].code);
        probe_idx[i] = i;
        struct mosquitto *m = mosquitto_new(id, true, &probe_idx[i]);
        if (!m)
            die("mosquitto_new failed");
        mosquitto_username_pw_set(m, pst[i].code, pst[i].token);
        mosquitto_connect_callback_set(m, on_connect_count);
        mosquitto_publish_callback_set(m, on_probe_puback);
        if (mosquitto_connect(m, "127.0.0.1", opt.mqtt_port, 60) != MOSQ_ERR_SUCCESS)
            die("probe client %s cannot connect", pst[i].code);
        probe_cli[i] = m;
    }
    for (int i = 0; i < npst; i++)
        if (mosquitto_loop_start(probe_cli[i]) != MOSQ_ERR_SUCCESS)
            die("mosquitto_loop_start failed");
    if (opt.tap_user) {
        tap = mosquitto_new("bench-tap", true, NULL);
        mosquitto_username_pw_set(tap, opt.tap_user, opt.tap_pass);
        mosquitto_connect_callback_set(tap, on_tap_connect);
        mosquitto_subscribe_callback_set(tap, on_tap_subscribe);
        mosquitto_message_callback_set(tap, on_tap_message);
        if (mosquitto_connect(tap, "127.0.0.1", opt.mqtt_port, 60) != MOSQ_ERR_SUCCESS ||
            mosquitto_loop_start(tap) != MOSQ_ERR_SUCCESS)
            die("the tap cannot connect");
    }
    uint64_t deadline = now_ns() + 10000000000ull;
    while (atomic_load(&probe_connected) < npst || (tap && atomic_load(&tap_ready) < npst)) {
        if (now_ns() > deadline)
            die("probe clients not connected after 10 s (%d of %d)",
                atomic_load(&probe_connected), npst);
        usleep(10000);
    }
}

/* Publishes one probe reading; `phase` < 0: warm-up, not counted. */
static void publish_probe(int station, int phase, bool counted)
{
    pthread_mutex_lock(&lock);
    if (nprobes == MAX_PROBES || next_k[station] >= MAX_K) {
        pthread_mutex_unlock(&lock);
        die("too many probes");
    }
    int k = next_k[station]++;
    struct probe *p = &probes[nprobes];
    *p = (struct probe){.phase = phase, .counted = counted, .station = station, .k = k,
                        .t_s = probe_t0 + (int64_t)k * DT_PROBE,
                        /* k = 0 raises Waspada; then Siaga, Waspada, ...: each a decision */
                        .v = k % 2 ? 2.025 : 2.005};
    probe_at[station][k] = nprobes + 1;
    int id = nprobes++;
    char payload[256];
    int n = snprintf(payload, sizeof payload,
                     "[{\"bn\":\"%s:\",\"bt\":%lld,\"n\":\"level\",\"u\":\"m\",\"v\":%.3f}]",
                     pst[station].code, (long long)p->t_s, p->v);
    char topic[80];
    snprintf(topic, sizeof topic, "sinergi/ingest/%s", pst[station].code);
    int mid = 0;
    p->pub_ns = now_ns();
    int rc = mosquitto_publish(probe_cli[station], &mid, topic, n, payload, opt.qos, false);
    if (rc != MOSQ_ERR_SUCCESS) {
        pthread_mutex_unlock(&lock);
        die("probe publish failed: %s", mosquitto_strerror(rc));
    }
    mid_probe[station][mid & 0xffff] = id + 1;
    pthread_mutex_unlock(&lock);
}

/* ---- background load ----------------------------------------------------------------------- */
struct bgc {
    struct mosquitto *m;
    int fd;
    bool connected;
    int64_t k;
    double v;
    uint64_t rng;
};

static struct bgc *bg;
static int bg_epfd;
static int64_t bg_t0;                /* reading time of each background station's first reading */
static atomic_llong bg_acked;        /* PUBACKs from the broker */
static long long bg_sent;            /* background thread only; read after it stops */
static atomic_bool bg_run, bg_quit;  /* pacing on; thread exit */
static atomic_llong bg_sent_shared;  /* bg_sent, published for the main thread */
static atomic_llong bg_lag_max_ns;   /* largest delay of a paced publish behind its schedule */
static pthread_t bg_thread;

static void on_bg_connect(struct mosquitto *m, void *ud, int rc)
{
    (void)m;
    struct bgc *c = ud;
    if (rc != 0)
        die("the broker refused a background station: %s", mosquitto_connack_string(rc));
    c->connected = true;
}

static void on_bg_puback(struct mosquitto *m, void *ud, int mid)
{
    (void)m;
    (void)ud;
    (void)mid;
    atomic_fetch_add(&bg_acked, 1);
}

static void bg_service(int timeout_ms)
{
    struct epoll_event ev[256];
    int n = epoll_wait(bg_epfd, ev, 256, timeout_ms);
    for (int i = 0; i < n; i++) {
        struct bgc *c = ev[i].data.ptr;
        if (ev[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
            int rc = mosquitto_loop_read(c->m, 1);
            if (rc != MOSQ_ERR_SUCCESS && !atomic_load(&bg_quit))
                die("background connection lost: %s", mosquitto_strerror(rc));
        }
        if (ev[i].events & EPOLLOUT)
            mosquitto_loop_write(c->m, 1);
    }
}

static void bg_flush_writes(void)
{
    for (int i = 0; i < nbst; i++)
        if (mosquitto_want_write(bg[i].m))
            mosquitto_loop_write(bg[i].m, 1);
}

static void bg_connect_all(void)
{
    bg = calloc((size_t)nbst, sizeof *bg);
    bg_epfd = epoll_create1(0);
    uint64_t seed = 12345;
    for (int i = 0; i < nbst; i++) {
        struct bgc *c = &bg[i];
        char id[64];
        snprintf(id, sizeof id, "bench-bg-%s", bst[i].code);
        c->m = mosquitto_new(id, true, c);
        mosquitto_username_pw_set(c->m, bst[i].code, bst[i].token);
        mosquitto_connect_callback_set(c->m, on_bg_connect);
        mosquitto_publish_callback_set(c->m, on_bg_puback);
        mosquitto_max_inflight_messages_set(c->m, 100);
        if (mosquitto_connect(c->m, "127.0.0.1", opt.mqtt_port, 60) != MOSQ_ERR_SUCCESS)
            die("background station %s cannot connect", bst[i].code);
        c->fd = mosquitto_socket(c->m);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(bg_epfd, EPOLL_CTL_ADD, c->fd, &ev);
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        c->v = 0.8 + (double)(seed >> 40) / (double)(1ull << 24) * 0.6; /* 0.8 .. 1.4 m */
        c->rng = seed ^ (uint64_t)i;
        if (i % 64 == 63)
            bg_service(0);
    }
    uint64_t deadline = now_ns() + 30000000000ull;
    for (;;) {
        int up = 0;
        for (int i = 0; i < nbst; i++)
            up += bg[i].connected;
        if (up == nbst)
            break;
        if (now_ns() > deadline)
            die("only %d of %d background stations connected after 30 s", up, nbst);
        bg_flush_writes();
        bg_service(10);
    }
}

/* One background reading: a random walk of 4 mm steps, DT_BG s apart in reading time, between
 * 0.7 and 1.5 m (thresholds 2/3/4 m), never flat (QC's flat-line test: 0.5 mm) and never faster
 * than QC's rate limit (5 mm/s): QC good, no rule decision. */
static void bg_publish(struct bgc *c, int idx)
{
    c->rng = c->rng * 6364136223846793005ull + 1442695040888963407ull;
    double step = (c->rng >> 63) ? 0.004 : -0.004;
    if (c->v + step > 1.5 || c->v + step < 0.7)
        step = -step;
    c->v += step;
    char payload[256];
    int n = snprintf(payload, sizeof payload,
                     "[{\"bn\":\"%s:\",\"bt\":%lld,\"n\":\"level\",\"u\":\"m\",\"v\":%.4f}]",
                     bst[idx].code, (long long)(bg_t0 + c->k * DT_BG), c->v);
    char topic[80];
    snprintf(topic, sizeof topic, "sinergi/ingest/%s", bst[idx].code);
    int rc = mosquitto_publish(c->m, NULL, topic, n, payload, opt.qos, false);
    if (rc != MOSQ_ERR_SUCCESS)
        die("background publish failed: %s", mosquitto_strerror(rc));
    c->k++;
    bg_sent++;
}

static void *bg_main(void *arg)
{
    (void)arg;
    uint64_t start = 0, last_misc = now_ns();
    long long base = 0;
    int rr = 0;
    while (!atomic_load(&bg_quit)) {
        uint64_t now = now_ns();
        if (atomic_load(&bg_run)) {
            if (!start) {
                start = now;
                base = bg_sent;
            }
            /* paced: the readings due by now, round robin over the stations */
            long long due = base + (long long)((double)(now - start) * opt.rate / 1e9);
            if (due - bg_sent > 1) {
                long long lag = (long long)((double)(due - bg_sent) / opt.rate * 1e9);
                if (lag > atomic_load(&bg_lag_max_ns))
                    atomic_store(&bg_lag_max_ns, lag);
            }
            while (bg_sent < due) {
                bg_publish(&bg[rr], rr);
                rr = (rr + 1) % nbst;
            }
            atomic_store(&bg_sent_shared, bg_sent);
        } else {
            start = 0;
        }
        if (now - last_misc > 1000000000ull) {
            for (int i = 0; i < nbst; i++)
                mosquitto_loop_misc(bg[i].m);
            bg_flush_writes();
            last_misc = now;
        }
        bg_service(atomic_load(&bg_run) ? 1 : 50);
    }
    return NULL;
}

/* ---- CPU accounting ------------------------------------------------------------------------ */
struct cpu_sample {
    long long busy, total, steal, softirq;
    long long pid[8];
};
static struct {
    char name[32];
    int pid;
} pids[8];
static int npids;

static long long pid_ticks(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    long long ut = 0, st = 0;
    if (p)
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lld %lld", &ut, &st);
    return ut + st;
}

static void cpu_sample(struct cpu_sample *s)
{
    FILE *f = fopen("/proc/stat", "r");
    long long v[10] = {0};
    if (f) {
        if (fscanf(f, "cpu %lld %lld %lld %lld %lld %lld %lld %lld", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]) != 8)
            memset(v, 0, sizeof v);
        fclose(f);
    }
    s->busy = v[0] + v[1] + v[2] + v[5] + v[6]; /* user nice system irq softirq */
    s->steal = v[7];
    s->softirq = v[5] + v[6];
    s->total = s->busy + v[3] + v[4] + v[7];
    for (int i = 0; i < npids; i++)
        s->pid[i] = pid_ticks(pids[i].pid);
}

/* Per-thread CPU of the first pid (sinergi), to see which thread is busy. */
static void threads_snapshot(int pid, long long *tid, long long *ticks, char (*comm)[20], int *n)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", pid);
    DIR *d = opendir(path);
    *n = 0;
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) && *n < 128) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        long long t = atoll(e->d_name);
        char p2[96], buf[1024];
        snprintf(p2, sizeof p2, "/proc/%d/task/%lld/stat", pid, t);
        FILE *f = fopen(p2, "r");
        if (!f)
            continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = 0;
        char *o = strchr(buf, '('), *c = strrchr(buf, ')');
        long long ut = 0, st = 0;
        if (!o || !c)
            continue;
        snprintf(comm[*n], sizeof comm[*n], "%.*s", (int)(c - o - 1), o + 1);
        sscanf(c + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lld %lld", &ut, &st);
        tid[*n] = t;
        ticks[*n] = ut + st;
        (*n)++;
    }
    closedir(d);
}

/* ---- results ------------------------------------------------------------------------------- */
static FILE *summary;
static struct {
    char name[16];
    uint64_t m0, m1;
} windows[16];
static int nwindows;

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(const uint64_t *v, int n, double q) /* nearest rank, ms */
{
    if (n == 0)
        return NAN;
    int i = (int)ceil(q * n) - 1;
    if (i < 0)
        i = 0;
    if (i >= n)
        i = n - 1;
    return (double)v[i] / 1e6;
}

static void report_phase(int phase, const char *name)
{
    uint64_t *lat = malloc(sizeof *lat * (size_t)(nprobes + 1));
    pthread_mutex_lock(&lock);
    int counted = 0;
    for (int i = 0; i < nprobes; i++)
        counted += probes[i].phase == phase && probes[i].counted;
    for (int path = 0; path < NPATHS; path++) {
        if (path == PATH_TAP && !tap)
            continue;
        int n = 0;
        for (int i = 0; i < nprobes; i++)
            if (probes[i].phase == phase && probes[i].counted && probes[i].at[path])
                lat[n++] = probes[i].at[path] - probes[i].pub_ns;
        qsort(lat, (size_t)n, sizeof *lat, cmp_u64);
        double mean = 0;
        for (int i = 0; i < n; i++)
            mean += (double)lat[i] / 1e6;
        mean = n ? mean / n : NAN;
        fprintf(summary,
                "phase=%s path=%s probes=%d arrived=%d missing=%d p50=%.2f p90=%.2f p99=%.2f "
                "max=%.2f mean=%.2f min=%.2f\n",
                name, path_name[path], counted, n, counted - n, pct(lat, n, 0.50),
                pct(lat, n, 0.90), pct(lat, n, 0.99), n ? (double)lat[n - 1] / 1e6 : NAN, mean,
                n ? (double)lat[0] / 1e6 : NAN);
        say("%-5s %-18s n=%4d missing=%d p50 %7.2f  p90 %7.2f  p99 %7.2f  max %7.2f ms", name,
            path_name[path], n, counted - n, pct(lat, n, 0.5), pct(lat, n, 0.9),
            pct(lat, n, 0.99), n ? (double)lat[n - 1] / 1e6 : NAN);
    }
    pthread_mutex_unlock(&lock);
    free(lat);
}

static bool all_arrived(int phase)
{
    bool done = true;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < nprobes && done; i++) {
        if (probes[i].phase != phase)
            continue;
        for (int path = PATH_SSE_ALL; path < NPATHS; path++)
            if (!probes[i].at[path])
                done = false;
    }
    pthread_mutex_unlock(&lock);
    return done;
}

/* Waits up to opt.wait_quiet seconds until the machine is nearly idle (< 0.3 cores busy over
 * 1 s); returns the last busy figure and the seconds waited. */
static double wait_quiet(double *waited)
{
    long hz = sysconf(_SC_CLK_TCK);
    uint64_t t0 = now_ns();
    double busy = 0;
    for (;;) {
        struct cpu_sample a, b;
        cpu_sample(&a);
        usleep(1000000);
        cpu_sample(&b);
        busy = (double)(b.busy - a.busy) / hz;
        *waited = (double)(now_ns() - t0) / 1e9;
        if (busy < 0.3 || *waited >= opt.wait_quiet)
            return busy;
    }
}

static void loadavg(char *out, size_t n)
{
    FILE *f = fopen("/proc/loadavg", "r");
    out[0] = 0;
    if (f) {
        if (fgets(out, (int)n, f))
            out[strcspn(out, " ")] = 0; /* 1-minute load */
        fclose(f);
    }
}

/* Runs one phase: warm-up, then `duration` seconds of probes at random gaps, background load
 * on or off; then waits for late arrivals and for sinergi to store the backlog. */
static void run_phase(int phase, const char *name, bool load)
{
    long hz = sysconf(_SC_CLK_TCK);
    double waited = 0, quiet = -1;
    if (opt.wait_quiet > 0) {
        quiet = wait_quiet(&waited);
        fprintf(summary, "phase=%s kind=quiet busy_before=%.2f waited_s=%.0f\n", name, quiet,
                waited);
    }
    say("phase %s: %s background load, %.0f s warm-up, %.0f s measured%s", name,
        load ? "with" : "without", opt.warmup, opt.duration,
        quiet >= 0.3 ? " (the machine did not get quiet)" : "");
    long long stored0_all = metric("sinergi_mqtt_readings_stored_total");
    long long sent_before = atomic_load(&bg_sent_shared);
    if (load)
        atomic_store(&bg_run, true);
    uint64_t t = now_ns(), warm_end = t + (uint64_t)(opt.warmup * 1e9);
    int rr = 0;
    /* warm-up: probes too, so every path is warm; not counted */
    while ((t = now_ns()) < warm_end) {
        publish_probe(rr, phase, false);
        rr = (rr + 1) % npst;
        sleep_until_ns(t + (uint64_t)((opt.gap_min_ms + rnd() * (opt.gap_max_ms - opt.gap_min_ms)) * 1e6));
    }
    struct cpu_sample c0, c1;
    long long tid0[128], tk0[128], tid1[128], tk1[128];
    char comm0[128][20], comm1[128][20];
    int nt0 = 0, nt1 = 0;
    char la0[32], la1[32];
    loadavg(la0, sizeof la0);
    cpu_sample(&c0);
    if (npids)
        threads_snapshot(pids[0].pid, tid0, tk0, comm0, &nt0);
    long long stored0 = metric("sinergi_mqtt_readings_stored_total");
    long long recv0 = metric("sinergi_mqtt_messages_received_total");
    long long sent0 = atomic_load(&bg_sent_shared), acked0 = atomic_load(&bg_acked);
    uint64_t m0 = now_ns(), m_end = m0 + (uint64_t)(opt.duration * 1e9);
    while ((t = now_ns()) < m_end) {
        publish_probe(rr, phase, true);
        rr = (rr + 1) % npst;
        sleep_until_ns(t + (uint64_t)((opt.gap_min_ms + rnd() * (opt.gap_max_ms - opt.gap_min_ms)) * 1e6));
    }
    uint64_t m1 = now_ns();
    if (nwindows < 16) {
        snprintf(windows[nwindows].name, sizeof windows[nwindows].name, "%s", name);
        windows[nwindows].m0 = m0;
        windows[nwindows].m1 = m1;
        nwindows++;
    }
    long long sent1 = atomic_load(&bg_sent_shared), acked1 = atomic_load(&bg_acked);
    long long stored1 = metric("sinergi_mqtt_readings_stored_total");
    long long recv1 = metric("sinergi_mqtt_messages_received_total");
    cpu_sample(&c1);
    if (npids)
        threads_snapshot(pids[0].pid, tid1, tk1, comm1, &nt1);
    loadavg(la1, sizeof la1);
    atomic_store(&bg_run, false);
    double secs = (double)(m1 - m0) / 1e9;
    /* late arrivals, and the backlog sinergi still has to store */
    uint64_t wait_end = now_ns() + 30000000000ull;
    long long want_stored = -1, stored_now = stored1;
    uint64_t drained_ns = 0;
    for (;;) {
        usleep(50000);
        long long sent = atomic_load(&bg_sent_shared) - sent_before;
        /* every probe and background reading published since the phase began */
        int nph = 0;
        pthread_mutex_lock(&lock);
        for (int i = 0; i < nprobes; i++)
            nph += probes[i].phase == phase;
        pthread_mutex_unlock(&lock);
        want_stored = stored0_all + sent + nph;
        stored_now = metric("sinergi_mqtt_readings_stored_total");
        if (stored_now >= want_stored && !drained_ns)
            drained_ns = now_ns();
        if ((stored_now >= want_stored && all_arrived(phase)) || now_ns() > wait_end)
            break;
    }
    fprintf(summary,
            "phase=%s kind=load seconds=%.2f bg_sent=%lld bg_acked=%lld bg_rate_sent=%.0f "
            "bg_rate_acked=%.0f received_rate=%.0f stored_rate=%.0f bg_lag_max_ms=%.1f "
            "stored_all_in_phase=%lld stored_expected=%lld drain_after_end_s=%.2f\n",
            name, secs, sent1 - sent0, acked1 - acked0, (double)(sent1 - sent0) / secs,
            (double)(acked1 - acked0) / secs, (double)(recv1 - recv0) / secs,
            (double)(stored1 - stored0) / secs, (double)atomic_load(&bg_lag_max_ns) / 1e6,
            stored_now - stored0_all, want_stored - stored0_all,
            drained_ns ? (double)(drained_ns - m1) / 1e9 : -1.0);
    double total = (double)(c1.total - c0.total) / hz / secs, busy = (double)(c1.busy - c0.busy) / hz / secs;
    fprintf(summary,
            "phase=%s kind=cpu loadavg_start=%s loadavg_end=%s cores_busy=%.2f cores=%.2f "
            "steal=%.2f irq=%.2f",
            name, la0, la1, busy, total, (double)(c1.steal - c0.steal) / hz / secs,
            (double)(c1.softirq - c0.softirq) / hz / secs);
    double ours = 0;
    for (int i = 0; i < npids; i++) {
        double c = (double)(c1.pid[i] - c0.pid[i]) / hz / secs;
        ours += c;
        fprintf(summary, " %s=%.2f", pids[i].name, c);
    }
    /* irq/softirq time (loopback TCP of this benchmark, mostly) is charged to no process */
    double irq = (double)(c1.softirq - c0.softirq) / hz / secs;
    fprintf(summary, " other=%.2f\n", busy - irq - ours > 0 ? busy - irq - ours : 0);
    if (npids) {
        fprintf(summary, "phase=%s kind=threads", name);
        for (int i = 0; i < nt1; i++)
            for (int j = 0; j < nt0; j++)
                if (tid1[i] == tid0[j] && tk1[i] - tk0[j] > 0)
                    fprintf(summary, " %s/%lld=%.2f", comm1[i], tid1[i],
                            (double)(tk1[i] - tk0[j]) / hz / secs);
        fprintf(summary, "\n");
    }
    report_phase(phase, name);
    atomic_store(&bg_lag_max_ns, 0);
}

/* ---- main ---------------------------------------------------------------------------------- */
static void usage(void)
{
    fprintf(stderr, "usage: alert_bench --mqtt-port P --http-port P --hook-port P --token T "
                    "--probes FILE --background FILE --out DIR [--rate R] [--duration S] "
                    "[--warmup S] [--gap-min-ms MS] [--gap-max-ms MS] [--qos 0|1] "
                    "[--phases idle,load] [--tap-user U --tap-pass P] [--pids name=PID,...] "
                    "[--wait-quiet S]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            usage();
        i++;
        if (!strcmp(a, "--mqtt-port"))
            opt.mqtt_port = atoi(v);
        else if (!strcmp(a, "--http-port"))
            opt.http_port = atoi(v);
        else if (!strcmp(a, "--hook-port"))
            opt.hook_port = atoi(v);
        else if (!strcmp(a, "--token"))
            opt.token = v;
        else if (!strcmp(a, "--probes"))
            opt.probes_file = v;
        else if (!strcmp(a, "--background"))
            opt.bg_file = v;
        else if (!strcmp(a, "--out"))
            opt.out = v;
        else if (!strcmp(a, "--rate"))
            opt.rate = atof(v);
        else if (!strcmp(a, "--duration"))
            opt.duration = atof(v);
        else if (!strcmp(a, "--warmup"))
            opt.warmup = atof(v);
        else if (!strcmp(a, "--gap-min-ms"))
            opt.gap_min_ms = atof(v);
        else if (!strcmp(a, "--gap-max-ms"))
            opt.gap_max_ms = atof(v);
        else if (!strcmp(a, "--qos"))
            opt.qos = atoi(v);
        else if (!strcmp(a, "--phases"))
            opt.phases = v;
        else if (!strcmp(a, "--tap-user"))
            opt.tap_user = v;
        else if (!strcmp(a, "--tap-pass"))
            opt.tap_pass = v;
        else if (!strcmp(a, "--pids"))
            opt.pids = v;
        else if (!strcmp(a, "--wait-quiet"))
            opt.wait_quiet = atof(v);
        else
            usage();
    }
    if (!opt.mqtt_port || !opt.http_port || !opt.hook_port || !opt.token || !opt.probes_file ||
        !opt.bg_file || !opt.out)
        usage();
    if (opt.gap_max_ms < opt.gap_min_ms || opt.gap_min_ms <= 0 || opt.rate < 0)
        die("bad --gap-*/--rate");
    pst = read_stations(opt.probes_file, &npst);
    bst = read_stations(opt.bg_file, &nbst);
    if (npst < 1 || npst > MAX_PROBE_STATIONS)
        die("need 1 to %d probe stations, got %d", MAX_PROBE_STATIONS, npst);
    if (opt.pids) {
        char *s = strdup(opt.pids), *save = NULL;
        for (char *t = strtok_r(s, ",", &save); t && npids < 8; t = strtok_r(NULL, ",", &save)) {
            char *eq = strchr(t, '=');
            if (!eq)
                continue;
            *eq = 0;
            snprintf(pids[npids].name, sizeof pids[npids].name, "%s", t);
            pids[npids].pid = atoi(eq + 1);
            npids++;
        }
        free(s);
        snprintf(pids[npids].name, sizeof pids[npids].name, "alert_bench");
        pids[npids++].pid = getpid();
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/summary.txt", opt.out);
    summary = fopen(path, "w");
    if (!summary)
        die("cannot write %s", path);
    setvbuf(summary, NULL, _IOLBF, 0);

    /* Reading times. Probes: from 50 min ago, DT_PROBE s apart per station (inside sinergi's
     * live window of 1 h, so decisions are live, not backfill). Background: DT_BG s apart per
     * station, ending before now. */
    int64_t wall = (int64_t)time(NULL);
    probe_t0 = wall - 3000;
    int nphases = 1;
    for (const char *p = opt.phases; *p; p++)
        nphases += *p == ',';
    double per_station = opt.rate * (opt.warmup + opt.duration) * nphases / (nbst ? nbst : 1) + 10;
    bg_t0 = wall - (int64_t)(per_station * DT_BG) - 120;
    double probes_per_station = (opt.warmup + opt.duration) * nphases * 1000 / opt.gap_min_ms / npst + 2;
    if (probe_t0 + (int64_t)(probes_per_station * DT_PROBE) > wall + 200)
        die("too many probes per station for the reading-time window: use more probe stations "
            "or a larger --gap-min-ms");
    fprintf(summary, "probe_stations=%d background_stations=%d rate=%.0f duration=%.0f warmup=%.0f "
                     "gap_ms=%.0f..%.0f qos=%d bg_reading_span_s=%lld\n",
            npst, nbst, opt.rate, opt.duration, opt.warmup, opt.gap_min_ms, opt.gap_max_ms,
            opt.qos, (long long)(wall - bg_t0));

    /* webhook receiver */
    hook_listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(hook_listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.hook_port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(hook_listen_fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        listen(hook_listen_fd, 64) != 0)
        die("webhook receiver cannot listen on 127.0.0.1:%d: %s", opt.hook_port, strerror(errno));
    pthread_t hook_thread, sse_threads[2];
    pthread_create(&hook_thread, NULL, hook_main, NULL);

    /* live event streams */
    static struct sse streams[2];
    streams[0].path = PATH_SSE_ALL;
    streams[1].path = PATH_SSE_STA;
    int ql = snprintf(streams[1].query, sizeof streams[1].query, "?station=");
    for (int i = 0; i < npst; i++)
        ql += snprintf(streams[1].query + ql, sizeof streams[1].query - (size_t)ql, "%s%s",
                       i ? "," : "", pst[i].code);
    for (int i = 0; i < 2; i++)
        pthread_create(&sse_threads[i], NULL, sse_main, &streams[i]);
    while (!atomic_load(&streams[0].ready) || !atomic_load(&streams[1].ready))
        usleep(1000);

    mosquitto_lib_init();
    mqtt_clients_start();
    uint64_t t_conn = now_ns();
    if (nbst) {
        bg_connect_all();
        say("%d background stations connected in %.1f s", nbst, (double)(now_ns() - t_conn) / 1e9);
    }
    pthread_create(&bg_thread, NULL, bg_main, NULL);

    /* first reading of every probe station: raises Waspada, loads the rule engine's state */
    for (int i = 0; i < npst; i++)
        publish_probe(i, -1, false);
    usleep(500000);

    char *ph = strdup(opt.phases), *save = NULL;
    int phase = 0;
    int nidle = 0, nload = 0;
    for (char *t = strtok_r(ph, ",", &save); t; t = strtok_r(NULL, ",", &save), phase++) {
        char name[16];
        bool load = !strcmp(t, "load");
        if (!load && strcmp(t, "idle"))
            die("unknown phase '%s' (idle, load)", t);
        int nth = load ? ++nload : ++nidle;
        if (nth == 1)
            snprintf(name, sizeof name, "%s", t);
        else
            snprintf(name, sizeof name, "%s%d", t, nth);
        run_phase(phase, name, load);
    }
    free(ph);

    atomic_store(&bg_quit, true);
    pthread_join(bg_thread, NULL);
    for (int i = 0; i < 2; i++) {
        shutdown(streams[i].fd, SHUT_RDWR);
        pthread_join(sse_threads[i], NULL);
        struct sse *st = &streams[i];
        for (int w = 0; w < nwindows; w++) {
            uint64_t *gaps = malloc(sizeof *gaps * (size_t)(st->nbursts + 1));
            int ng = 0;
            for (int b = 1; b < st->nbursts; b++)
                if (st->bursts[b - 1] >= windows[w].m0 && st->bursts[b] <= windows[w].m1)
                    gaps[ng++] = st->bursts[b] - st->bursts[b - 1];
            qsort(gaps, (size_t)ng, sizeof *gaps, cmp_u64);
            fprintf(summary,
                    "phase=%s kind=bursts stream=%s bursts=%d interval_p10=%.1f interval_p50=%.1f "
                    "interval_p90=%.1f\n",
                    windows[w].name, path_name[st->path], ng, pct(gaps, ng, 0.1),
                    pct(gaps, ng, 0.5), pct(gaps, ng, 0.9));
            free(gaps);
        }
    }
    for (int i = 0; i < 2; i++) {
        fprintf(summary, "stream=%s frames=%ld alerts=%ld resets=%ld bytes=%ld\n",
                path_name[streams[i].path], streams[i].frames, streams[i].alerts,
                streams[i].resets, streams[i].bytes);
    }
    atomic_store(&stopping, true);
    pthread_join(hook_thread, NULL);
    fprintf(summary, "webhook posts=%ld connections=%ld\n", atomic_load(&hook_posts),
            atomic_load(&hook_conns));
    for (int p = 0; p < NPATHS; p++)
        fprintf(summary, "matching path=%s unmatched=%ld duplicates=%ld\n", path_name[p],
                unmatched[p], duplicates[p]);
    fprintf(summary, "bg_total_sent=%lld bg_total_acked=%lld\n", bg_sent,
            (long long)atomic_load(&bg_acked));

    /* raw rows */
    snprintf(path, sizeof path, "%s/probes.csv", opt.out);
    FILE *csv = fopen(path, "w");
    if (csv) {
        fprintf(csv, "probe,phase,counted,station,reading_time,value,published_ms,puback_ms,tap_ms,"
                     "sse_all_ms,sse_probe_stations_ms,webhook_ms,published_monotonic_s\n");
        for (int i = 0; i < nprobes; i++) {
            struct probe *p = &probes[i];
            fprintf(csv, "%d,%d,%d,%s,%lld,%.3f,%.3f", i, p->phase, p->counted,
                    pst[p->station].code, (long long)p->t_s, p->v,
                    (double)(p->pub_ns - probes[0].pub_ns) / 1e6);
            for (int k = 0; k < NPATHS; k++)
                if (p->at[k])
                    fprintf(csv, ",%.3f", (double)(p->at[k] - p->pub_ns) / 1e6);
                else
                    fprintf(csv, ",");
            fprintf(csv, ",%.6f\n", (double)p->pub_ns / 1e9);
        }
        fclose(csv);
    }
    for (int i = 0; i < npst; i++) {
        mosquitto_disconnect(probe_cli[i]);
        mosquitto_loop_stop(probe_cli[i], false);
    }
    if (tap) {
        mosquitto_disconnect(tap);
        mosquitto_loop_stop(tap, false);
    }
    for (int i = 0; i < nbst; i++)
        mosquitto_disconnect(bg[i].m);
    fclose(summary);
    return 0;
}
