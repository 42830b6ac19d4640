/* sse: the live event stream. Each stream is a libmicrohttpd callback response reading the
 * events hub from its own cursor. With nothing to send it suspends its connection and waits on
 * the waiting list, so no worker thread is held; a timer thread resumes it when the hub's
 * waker reports a publish (batched) or when its heartbeat is due. Every transition of a stream
 * between running and waiting happens under `lock`, so a connection is resumed only after it
 * was suspended, and exactly once. */
#define _GNU_SOURCE
#include "http/sse.h"

#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/log.h"
#include "http/http_int.h"
#include "core/banned.h"

#define NS_PER_S 1000000000ull
#define BATCH_NS ((uint64_t)SSE_BATCH_MS * 1000000ull)

static const char hello_frame[] = "retry: 3000\n\n"; /* SSE_RETRY_MS */
static const char ping_frame[] = ": ping\n\n";

struct stream {
    struct stream *prev, *next; /* on `waiting` while suspended */
    struct MHD_Connection *conn;
    bool suspended; /* under `lock` */
    /* the rest belongs to whichever worker thread runs the connection */
    bool hello_sent;
    uint64_t cursor;
    struct events_filter filter;
    uint64_t heartbeat_ns, next_ping_ns;
    char *stage; /* EVENTS_FRAME_MAX bytes, for what did not fit MHD's buffer; rarely used */
    size_t stage_off, stage_len;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t tick;    /* wakes the timer; CLOCK_MONOTONIC */
static struct stream *waiting; /* suspended streams */
static bool started;           /* timer running, waker set */
static pthread_t timer;
static uint64_t last_resume_ns;   /* when the timer last resumed streams for a publish */
static bool wake_pending;         /* published since: the timer resumes the waiting streams */
static uint64_t timer_due_ns;     /* when the timer looks next */
static _Atomic uint64_t wake_gen; /* bumped by every publish, under `lock` */
static _Atomic uint64_t urgent_gen; /* bumped by every urgent (non-coalescing) publish */
static bool urgent_pending;         /* the timer resumes the waiting streams at once */
static atomic_bool stopping;
static atomic_int nstreams;

/* ---- the waiting list (under lock) ------------------------------------------------------- */
static void wait_push(struct stream *s)
{
    s->prev = NULL;
    s->next = waiting;
    if (waiting)
        waiting->prev = s;
    waiting = s;
    s->suspended = true;
}

static void wait_remove(struct stream *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        waiting = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    s->suspended = false;
}

/* The connection cannot be processed, hence not freed, until this resume is seen by its worker:
 * the stream is still valid here. MHD_resume_connection is thread-safe. */
static void resume(struct stream *s)
{
    wait_remove(s);
    MHD_resume_connection(s->conn);
}

static void resume_all(void)
{
    while (waiting)
        resume(waiting);
}

/* ---- waker and heartbeat timer ----------------------------------------------------------- */
/* The hub's waker, on the publisher's thread: O(1) whatever the number of streams. The timer
 * thread does the resuming, at most every SSE_BATCH_MS, so a burst of publishes costs each
 * stream one wake-up and readers, a little behind, get coalesced events; the first publish after
 * a quiet spell is handed over at once. */
static void wake(void *ctx, bool urgent)
{
    (void)ctx;
    pthread_mutex_lock(&lock);
    atomic_fetch_add(&wake_gen, 1); /* running streams read again instead of suspending */
    if (urgent)
        atomic_fetch_add(&urgent_gen, 1);
    if (waiting && (!wake_pending || (urgent && !urgent_pending))) {
        wake_pending = true;
        urgent_pending = urgent_pending || urgent;
        pthread_cond_signal(&tick);
    }
    pthread_mutex_unlock(&lock);
}

static void *timer_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&lock);
    while (!atomic_load(&stopping)) {
        uint64_t now = clock_mono_ns();
        if (wake_pending && (urgent_pending || now - last_resume_ns >= BATCH_NS)) {
            wake_pending = false;
            urgent_pending = false;
            last_resume_ns = now;
            resume_all();
        }
        uint64_t due = now + NS_PER_S;
        for (struct stream *s = waiting, *next; s; s = next) {
            next = s->next;
            if (s->next_ping_ns <= now)
                resume(s); /* it writes the ping, and finds out if the client is gone */
            else if (s->next_ping_ns < due)
                due = s->next_ping_ns;
        }
        if (wake_pending && last_resume_ns + BATCH_NS < due)
            due = last_resume_ns + BATCH_NS;
        timer_due_ns = due;
        struct timespec ts = {(time_t)(due / NS_PER_S), (long)(due % NS_PER_S)};
        pthread_cond_timedwait(&tick, &lock, &ts);
    }
    pthread_mutex_unlock(&lock);
    return NULL;
}

/* Under lock. Starts the timer and registers the waker with the first stream. */
static bool ensure_started(void)
{
    if (started)
        return true;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&tick, &ca);
    pthread_condattr_destroy(&ca);
    int rc = pthread_create(&timer, NULL, timer_main, NULL);
    if (rc != 0) {
        log_error("event=sse_timer_failed detail=\"%s\"", strerror(rc));
        pthread_cond_destroy(&tick);
        return false;
    }
    events_set_waker(wake, NULL);
    started = true;
    return true;
}

void sse_shutdown(void)
{
    pthread_mutex_lock(&lock);
    atomic_store(&stopping, true);
    resume_all(); /* each ends its stream when its worker runs it */
    bool join = started;
    started = false;
    if (join)
        pthread_cond_signal(&tick);
    pthread_mutex_unlock(&lock);
    if (join)
        pthread_join(timer, NULL);
    log_info("event=sse_shutdown streams_left=%d", atomic_load(&nstreams));
}

int sse__nstreams(void)
{
    return atomic_load(&nstreams);
}

/* ---- one stream -------------------------------------------------------------------------- */
static void wrote(struct stream *s)
{
    s->next_ping_ns = clock_mono_ns() + s->heartbeat_ns;
}

static ssize_t drain(struct stream *s, char *buf, size_t max)
{
    size_t n = s->stage_len - s->stage_off;
    if (n > max)
        n = max;
    memcpy(buf, s->stage + s->stage_off, n);
    s->stage_off += n;
    if (s->stage_off == s->stage_len)
        s->stage_off = s->stage_len = 0;
    return (ssize_t)n;
}

static bool stage_ready(struct stream *s)
{
    if (!s->stage)
        s->stage = malloc(EVENTS_FRAME_MAX);
    return s->stage != NULL;
}

/* Writes `len` bytes (len <= EVENTS_FRAME_MAX), staging what does not fit. */
static ssize_t emit(struct stream *s, char *buf, size_t max, const char *text, size_t len)
{
    wrote(s);
    if (len <= max) {
        memcpy(buf, text, len);
        return (ssize_t)len;
    }
    if (!stage_ready(s))
        return MHD_CONTENT_READER_END_WITH_ERROR;
    memcpy(s->stage, text, len);
    s->stage_off = 0;
    s->stage_len = len;
    return drain(s, buf, max);
}

/* New events into buf; 0 when none are pending. */
static ssize_t read_events(struct stream *s, char *buf, size_t max)
{
    size_t n = events_read(&s->cursor, &s->filter, buf, max);
    if (n == 0 && s->cursor < events_last_id()) {
        /* The next frame is larger than MHD's buffer (or has just been published): read into
         * the stage, which takes any frame, and hand it over in pieces. */
        if (!stage_ready(s))
            return MHD_CONTENT_READER_END_WITH_ERROR;
        s->stage_off = 0;
        s->stage_len = events_read(&s->cursor, &s->filter, s->stage, EVENTS_FRAME_MAX);
        if (s->stage_len == 0)
            return 0;
        wrote(s);
        return drain(s, buf, max);
    }
    if (n)
        wrote(s);
    return (ssize_t)n;
}

/* libmicrohttpd's content reader: returns bytes, END_OF_STREAM, or 0 after suspending. */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct stream *s = cls;
    (void)pos;
    if (atomic_load(&stopping))
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (s->stage_off < s->stage_len)
        return drain(s, buf, max);
    if (!s->hello_sent) {
        s->hello_sent = true;
        return emit(s, buf, max, hello_frame, sizeof hello_frame - 1);
    }
    for (int tries = 1;; tries++) {
        uint64_t gen = atomic_load(&wake_gen); /* before reading: a publish after bumps it */
        uint64_t ugen = atomic_load(&urgent_gen);
        ssize_t n = read_events(s, buf, max);
        if (n != 0)
            return n;
        if (clock_mono_ns() >= s->next_ping_ns)
            return emit(s, buf, max, ping_frame, sizeof ping_frame - 1);
        pthread_mutex_lock(&lock);
        if (atomic_load(&stopping)) {
            pthread_mutex_unlock(&lock);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        bool missed = atomic_load(&wake_gen) != gen; /* published while we read */
        if (missed && (tries < 4 || atomic_load(&urgent_gen) != ugen)) {
            pthread_mutex_unlock(&lock);
            continue;
        }
        wait_push(s);
        MHD_suspend_connection(s->conn); /* allowed from the content reader */
        if (missed) /* a storm of events this stream skips: come back with the next batch */
            wake_pending = true;
        if (missed || s->next_ping_ns < timer_due_ns)
            pthread_cond_signal(&tick);
        pthread_mutex_unlock(&lock);
        return 0;
    }
}

/* The response is destroyed: the connection is done with the stream. A suspended connection is
 * never closed by libmicrohttpd (it panics in MHD_stop_daemon instead), so the stream is not on
 * the waiting list here unless something went badly wrong; take it off anyway. */
static void stream_free(void *cls)
{
    struct stream *s = cls;
    pthread_mutex_lock(&lock);
    if (s->suspended)
        wait_remove(s);
    pthread_mutex_unlock(&lock);
    free(s->stage);
    free(s);
    atomic_fetch_sub(&nstreams, 1);
}

struct MHD_Response *sse__response_new(struct MHD_Connection *conn, const struct sse_params *p)
{
    pthread_mutex_lock(&lock);
    bool ok = !atomic_load(&stopping) && ensure_started();
    pthread_mutex_unlock(&lock);
    struct stream *s = ok ? calloc(1, sizeof *s) : NULL;
    if (!s)
        return NULL;
    s->conn = conn;
    s->cursor = p->cursor;
    s->filter = p->filter;
    s->heartbeat_ns = (uint64_t)(p->heartbeat_s ? p->heartbeat_s : 15) * NS_PER_S;
    wrote(s);
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, s, stream_free);
    if (!resp) {
        free(s);
        return NULL;
    }
    atomic_fetch_add(&nstreams, 1);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no"); /* nginx: do not buffer */
    return resp;
}

/* ---- the route --------------------------------------------------------------------------- */
/* "a,b,c" into `n` rows of `width` bytes; `what` names the query parameter in the error. */
static enum err_code parse_list(const char *v, const char *what, char *rows, size_t width, int *n,
                                struct err *err)
{
    *n = 0;
    if (!v)
        return ERR_OK;
    for (const char *p = v;;) {
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= width || *n >= EVENTS_FILTER_MAX)
            return err_set(err, ERR_INVALID,
                           "query '%s' must be up to %d comma-separated values of 1 to %zu "
                           "characters",
                           what, EVENTS_FILTER_MAX, width - 1);
        memcpy(rows + (size_t)*n * width, p, len);
        rows[(size_t)*n * width + len] = 0;
        (*n)++;
        if (!p[len])
            return ERR_OK;
        p += len + 1;
    }
}

/* Where the stream starts: after Last-Event-ID if given, else after the newest event. */
static enum err_code parse_cursor(struct http_req *r, uint64_t *out, struct err *err)
{
    const char *what = "header 'Last-Event-ID'";
    const char *v = http_header(r, "Last-Event-ID");
    if (!v || !*v) {
        what = "query 'last_event_id'";
        v = http_query(r, "last_event_id");
    }
    if (!v || !*v) {
        *out = events_last_id();
        return ERR_OK;
    }
    char *end;
    errno = 0;
    unsigned long long id = strtoull(v, &end, 10);
    if (*v < '0' || *v > '9' || *end || errno)
        return err_set(err, ERR_INVALID, "%s must be an event id (a whole number)", what);
    *out = id;
    return ERR_OK;
}

enum err_code sse_http_stream(struct http_req *r, struct err *err)
{
    const struct config *cfg = http_app(r)->cfg;
    struct sse_params p = {.heartbeat_s = (unsigned)cfg->sse_heartbeat_s};
    if (parse_list(http_query(r, "station"), "station", &p.filter.keys[0][0], EVENTS_KEY_MAX,
                   &p.filter.nkeys, err) ||
        parse_list(http_query(r, "kind"), "kind", &p.filter.kinds[0][0], EVENTS_KIND_MAX,
                   &p.filter.nkinds, err) ||
        parse_cursor(r, &p.cursor, err))
        return err->code;
    /* Streams hold connections for long: keep a quarter of them for ordinary requests. */
    if (sse__nstreams() >= cfg->max_connections - cfg->max_connections / 4)
        return err_set(err, ERR_UNAVAILABLE, "too many live event streams are open; retry later");
    struct MHD_Response *resp = sse__response_new(http__mhd_connection(r), &p);
    if (!resp)
        return err_set(err, ERR_UNAVAILABLE, "the server is shutting down; reconnect shortly");
    http__reply_mhd(r, 200, resp);
    return ERR_OK;
}
