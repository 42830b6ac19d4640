/* writer: the single thread that stores readings. It takes every queued batch at once and
 * commits them in one transaction (group commit), runs QC in reading-time order per sensor,
 * keeps rollups of the open 10-minute and hourly buckets in memory (flushed when the bucket
 * closes), updates the latest values and publishes live events — all after the commit that
 * makes the readings durable, so nothing is acknowledged that a crash could lose.
 *
 * Crash safety of rollups: in-memory deltas exist only for buckets at or after the persisted
 * watermark (sensors_meta 'rollup_watermark'); on start every rollup from the watermark on is
 * recomputed from raw readings, which are the truth. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/i64map.h"
#include "core/log.h"
#include "events/events.h"
#include "sensors/sensors_int.h"
#include "core/banned.h"

#define NO_WATERMARK INT64_MAX
/* Unhurried batches (nobody waits for them) are committed at most every LINGER_MS while fewer
 * than LINGER_READINGS are queued: a commit costs an fsync and WAL frames whatever its size. */
enum { LINGER_MS = 20, LINGER_READINGS = 10000 };
enum { MAX_TXN_READINGS = 50000, QUEUE_LIMIT = 400000, SWEEP_EVERY_S = 5, NSTEPS = 2,
       CLOSED_MAX = 200000 /* closed buckets held before a sweep is forced */ };
static const int64_t steps[NSTEPS] = {600, 3600};

struct acc { /* unflushed contributions to one rollup bucket */
    int64_t bucket;
    int64_t n, n_bad;
    double vmin, vmax, vsum;
};

struct sstate {
    int64_t sensor_id; /* the key (i64map) */
    struct series *ser; /* its raw readings (store.c) */
    struct qc_history h;
    struct acc acc[NSTEPS];
    uint64_t txn; /* last transaction that saved an undo copy */
};

static struct sensors_observer observer;
static bool has_observer;

void sensors_set_observer(const struct sensors_observer *o)
{
    has_observer = o != NULL;
    if (o)
        observer = *o;
}

static struct {
    struct db *db;
    struct db_conn *conn;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct ingest_batch *head, *tail;
    int64_t queued;
    int hurried;               /* queued batches someone waits for */
    uint64_t last_commit_ns;   /* when the last group commit began (monotonic) */
    bool stopping, running;
    /* owned by the writer thread */
    struct i64map states; /* of struct sstate, by sensor id */
    uint64_t txn;
    struct sstate *undo;
    size_t nundo, undo_cap;
    int64_t watermark;
    int64_t last_sweep;
    /* closed buckets not written yet: the sweep writes them together, so each rollup page is
     * written once per sweep instead of once per group commit */
    struct closed {
        int64_t sensor_id, step;
        struct acc a;
    } *closed;
    size_t nclosed, closed_cap;
    size_t sweep_pos, sweep_end; /* the sweep under way writes closed[sweep_pos..sweep_end) */
    struct buf ev; /* the live event being written (publish), reused */
} w = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

/* ---- per-sensor state --------------------------------------------------------------------- */
/* Per-sensor state back to before the transaction that failed. */
static void undo_states(void)
{
    for (size_t i = 0; i < w.nundo; i++) {
        struct sstate *s = i64map_get(&w.states, w.undo[i].sensor_id);
        if (s) /* always: an undo copy is of a state in the table */
            *s = w.undo[i];
    }
}

/* Loads what QC needs from the newest stored readings of a sensor seen for the first time. */
static void load_history(struct sstate *s, const struct qc_limits *l, struct err *err)
{
    struct store_pt *p;
    size_t n;
    if (store__tail(w.conn, s->sensor_id, 16, true, &p, &n, err))
        return;
    for (size_t i = 0; i < n; i++)
        sensors__qc_push(&s->h, p[i].t_ms, p[i].v, l);
    free(p);
}

/* The first time a transaction touches a sensor, keep a copy to restore if it rolls back. */
static bool save_undo(struct sstate *s)
{
    if (s->txn == w.txn)
        return true;
    if (w.nundo == w.undo_cap) {
        size_t cap = w.undo_cap ? w.undo_cap * 2 : 1024;
        struct sstate *u = realloc(w.undo, cap * sizeof *u);
        if (!u)
            return false;
        w.undo = u;
        w.undo_cap = cap;
    }
    w.undo[w.nundo++] = *s;
    s->txn = w.txn;
    return true;
}

static struct sstate *state_for(const struct reading *r, struct err *err)
{
    bool created;
    struct sstate *s = i64map_put(&w.states, r->sensor_id, &created);
    if (!s)
        return NULL;
    if (created) {
        if (!(s->ser = store__series(w.conn, r->sensor_id, err))) {
            i64map_unput(&w.states, s);
            return NULL;
        }
        load_history(s, r->limits, err);
    }
    return save_undo(s) ? s : NULL;
}

/* ---- rollups ------------------------------------------------------------------------------ */
static enum err_code upsert_rollup(int64_t sensor_id, int64_t step, const struct acc *a,
                                   struct err *err)
{
    struct db_stmt *s;
    if (db_prepare(w.conn, &s,
                   "INSERT INTO rollups (sensor_id, step, bucket, n, n_bad, vmin, vmax, vsum) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (sensor_id, step, bucket) DO "
                   "UPDATE SET n = n + excluded.n, n_bad = n_bad + excluded.n_bad, "
                   "vmin = MIN(vmin, excluded.vmin), vmax = MAX(vmax, excluded.vmax), "
                   "vsum = vsum + excluded.vsum",
                   err))
        return err->code;
    db_bind_int64(s, 1, sensor_id);
    db_bind_int64(s, 2, step);
    db_bind_int64(s, 3, a->bucket);
    db_bind_int64(s, 4, a->n);
    db_bind_int64(s, 5, a->n_bad);
    /* A bucket of only bad readings has no range: store +/-inf-free sentinels via n = 0. */
    db_bind_double(s, 6, a->n ? a->vmin : 0);
    db_bind_double(s, 7, a->n ? a->vmax : 0);
    db_bind_double(s, 8, a->vsum);
    return db_run(s, err);
}

static void acc_add(struct acc *a, double v, bool bad)
{
    if (bad) {
        a->n_bad++;
        return;
    }
    if (a->n == 0 || v < a->vmin)
        a->vmin = v;
    if (a->n == 0 || v > a->vmax)
        a->vmax = v;
    a->vsum += v;
    a->n++;
}

static bool acc_empty(const struct acc *a)
{
    return a->n == 0 && a->n_bad == 0;
}

static enum err_code set_watermark(int64_t wm, struct err *err)
{
    struct db_stmt *s;
    if (db_prepare(w.conn, &s,
                   "INSERT INTO sensors_meta (key, value) VALUES ('rollup_watermark', ?) "
                   "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                   err))
        return err->code;
    db_bind_int64(s, 1, wm);
    if (db_run(s, err) == ERR_OK)
        w.watermark = wm;
    return err->code;
}

/* A bucket to be written by the next sweep. Its time is at or after the watermark (it was
 * open, or set_watermark moved the watermark down to it), so a crash before the sweep loses
 * nothing: the rollups are recomputed from raw readings. */
static enum err_code close_bucket(int64_t sensor_id, int64_t step, const struct acc *a,
                                  struct err *err)
{
    if (a->bucket < w.watermark && set_watermark(a->bucket, err))
        return err->code;
    if (w.nclosed == w.closed_cap) {
        size_t cap = w.closed_cap ? w.closed_cap * 2 : 4096;
        struct closed *c = realloc(w.closed, cap * sizeof *c);
        if (!c)
            return err_set(err, ERR_INTERNAL, "out of memory in the writer");
        w.closed = c;
        w.closed_cap = cap;
    }
    w.closed[w.nclosed++] = (struct closed){sensor_id, step, *a};
    return ERR_OK;
}

static int by_bucket_key(const void *pa, const void *pb)
{
    const struct closed *a = pa, *b = pb;
    if (a->sensor_id != b->sensor_id)
        return a->sensor_id < b->sensor_id ? -1 : 1;
    if (a->step != b->step)
        return a->step < b->step ? -1 : 1;
    return (a->a.bucket > b->a.bucket) - (a->a.bucket < b->a.bucket);
}

static enum err_code rollup_add(struct sstate *s, int64_t t_ms, double v, bool bad,
                                struct err *err)
{
    int64_t t = t_ms >= 0 ? t_ms / 1000 : -((-t_ms + 999) / 1000);
    for (int k = 0; k < NSTEPS; k++) {
        struct acc *a = &s->acc[k];
        int64_t bucket = t - ((t % steps[k]) + steps[k]) % steps[k];
        if (!acc_empty(a) && bucket < a->bucket) { /* older than the open bucket: merged */
            struct acc one = {.bucket = bucket};
            acc_add(&one, v, bad);
            if (close_bucket(s->sensor_id, steps[k], &one, err))
                return err->code;
            continue;
        }
        if (!acc_empty(a) && bucket > a->bucket) {
            if (close_bucket(s->sensor_id, steps[k], a, err))
                return err->code;
            memset(a, 0, sizeof *a);
        }
        if (acc_empty(a)) {
            if (bucket < w.watermark && set_watermark(bucket, err))
                return err->code;
            a->bucket = bucket;
        }
        acc_add(a, v, bad);
    }
    return ERR_OK;
}

/* The sweep writes the closed buckets, in key order so that neighbours share pages, a chunk
 * per writer cycle (writing 200,000 at once held ingest for half a second); its last step
 * also writes buckets left open a while ago and moves the watermark up to the oldest bucket
 * still held only in memory (open, or closed after the sweep began). `all`: in one step. */
enum { SWEEP_CHUNK = 10000 };

static void sweep_step(int64_t now, bool all)
{
    struct err err = ERR_INIT;
    int64_t wm = NO_WATERMARK;
    uint64_t t0 = clock_mono_ns();
    if (w.sweep_pos == w.sweep_end) { /* a new sweep: what is closed now */
        w.sweep_pos = 0;
        w.sweep_end = w.nclosed;
        if (w.sweep_end > 1)
            qsort(w.closed, w.sweep_end, sizeof *w.closed, by_bucket_key);
    }
    size_t to = all || w.sweep_end - w.sweep_pos <= SWEEP_CHUNK ? w.sweep_end
                                                                 : w.sweep_pos + SWEEP_CHUNK;
    bool last = to == w.sweep_end;
    w.txn++;
    w.nundo = 0;
    if (db_begin(w.conn, &err))
        goto fail;
    for (size_t i = w.sweep_pos; i < to && !err.code; i++)
        upsert_rollup(w.closed[i].sensor_id, w.closed[i].step, &w.closed[i].a, &err);
    for (size_t i = 0; last && i < w.states.slots && !err.code; i++) {
        struct sstate *s = i64map_slot(&w.states, i);
        if (!s)
            continue;
        for (int k = 0; k < NSTEPS && !err.code; k++) {
            struct acc *a = &s->acc[k];
            if (acc_empty(a))
                continue;
            if (a->bucket + steps[k] + 60 <= now) {
                if (!save_undo(s)) {
                    err_set(&err, ERR_INTERNAL, "out of memory in the writer");
                    break;
                }
                if (upsert_rollup(s->sensor_id, steps[k], a, &err) == ERR_OK)
                    memset(a, 0, sizeof *a);
            } else if (a->bucket < wm) {
                wm = a->bucket;
            }
        }
    }
    for (size_t i = w.sweep_end; last && i < w.nclosed; i++) /* closed during the sweep */
        if (w.closed[i].a.bucket < wm)
            wm = w.closed[i].a.bucket;
    if (!err.code && last && wm != w.watermark)
        set_watermark(wm, &err);
    if (!err.code && db_commit(w.conn, &err) == ERR_OK) {
        log_debug("event=rollup_sweep written=%zu last=%d ms=%.1f", to - w.sweep_pos, last,
                  (double)(clock_mono_ns() - t0) / 1e6);
        w.sweep_pos = to;
        if (last) { /* keep what closed meanwhile for the next sweep */
            if (w.nclosed > w.sweep_end)
                memmove(w.closed, w.closed + w.sweep_end,
                        (w.nclosed - w.sweep_end) * sizeof *w.closed);
            w.nclosed -= w.sweep_end;
            w.sweep_pos = w.sweep_end = 0;
        }
        return;
    }
fail:
    db_rollback(w.conn);
    undo_states();
    log_error("event=rollup_sweep_failed detail=\"%s\"", err.msg);
}

static enum err_code stage_reading(int64_t sensor_id, const struct store_pt *p, void *ctx,
                                   struct err *err)
{
    static const char sql[] = "INSERT INTO temp.recover_readings (sensor_id, t, v, qc) VALUES "
                              "(?, ?, ?, ?)";
    struct db_stmt *s;
    (void)ctx;
    if (db_prepare(w.conn, &s, sql, err))
        return err->code;
    db_bind_int64(s, 1, sensor_id);
    db_bind_int64(s, 2, p->t_ms);
    db_bind_double(s, 3, p->v);
    db_bind_int64(s, 4, p->qc);
    return db_run(s, err);
}

/* Recomputes every rollup from the watermark on from raw readings (after a crash). */
static enum err_code recover_rollups(struct err *err)
{
    struct db_stmt *s;
    bool row;
    int64_t wm = NO_WATERMARK;
    if (db_prepare(w.conn, &s, "SELECT value FROM sensors_meta WHERE key = 'rollup_watermark'",
                   err) ||
        db_step(s, &row, err))
        return err->code;
    if (row)
        wm = db_col_int64(s, 0);
    db_done(s);
    w.watermark = wm;
    if (wm == NO_WATERMARK)
        return ERR_OK;
    int64_t from = wm - ((wm % 3600) + 3600) % 3600; /* the hour that holds the watermark */
    /* the raw readings from there on, staged where SQL can aggregate them */
    if (db_exec(w.conn,
                "CREATE TEMP TABLE IF NOT EXISTS recover_readings (sensor_id INTEGER, t INTEGER, "
                "v REAL, qc INTEGER)",
                err) ||
        db_begin(w.conn, err))
        return err->code;
    if (store__scan_since(w.conn, from * 1000, stage_reading, NULL, err)) {
        db_rollback(w.conn);
        return err->code;
    }
    static const char *const sql[] = {
        "DELETE FROM rollups WHERE bucket >= ?",
        "INSERT INTO rollups (sensor_id, step, bucket, n, n_bad, vmin, vmax, vsum) "
        "SELECT sensor_id, 600, (t / 600000) * 600, SUM(qc <> 4), SUM(qc = 4), "
        "COALESCE(MIN(CASE WHEN qc <> 4 THEN v END), 0), COALESCE(MAX(CASE WHEN qc <> 4 THEN v "
        "END), 0), COALESCE(SUM(CASE WHEN qc <> 4 THEN v END), 0) FROM temp.recover_readings "
        "WHERE t >= ? * 1000 GROUP BY sensor_id, t / 600000",
        "INSERT INTO rollups (sensor_id, step, bucket, n, n_bad, vmin, vmax, vsum) "
        "SELECT sensor_id, 3600, (t / 3600000) * 3600, SUM(qc <> 4), SUM(qc = 4), "
        "COALESCE(MIN(CASE WHEN qc <> 4 THEN v END), 0), COALESCE(MAX(CASE WHEN qc <> 4 THEN v "
        "END), 0), COALESCE(SUM(CASE WHEN qc <> 4 THEN v END), 0) FROM temp.recover_readings "
        "WHERE t >= ? * 1000 GROUP BY sensor_id, t / 3600000",
    };
    for (size_t i = 0; i < 3 && !err->code; i++)
        if (db_prepare(w.conn, &s, sql[i], err) == ERR_OK) {
            db_bind_int64(s, 1, from);
            db_run(s, err);
        }
    if (!err->code)
        set_watermark(NO_WATERMARK, err);
    if (!err->code)
        db_exec(w.conn, "DELETE FROM temp.recover_readings", err);
    if (err->code || db_commit(w.conn, err)) {
        db_rollback(w.conn);
        return err->code;
    }
    log_info("event=rollups_recovered from=%lld", (long long)from);
    return ERR_OK;
}

/* ---- one group commit --------------------------------------------------------------------- */
static enum err_code store_reading(struct ingest_batch *b, struct reading *r, struct err *err)
{
    struct sstate *s = state_for(r, err);
    if (!s)
        return err->code ? err->code : err_set(err, ERR_INTERNAL, "out of memory in the writer");
    bool dup;
    if (store__has(w.conn, s->ser, r->t_ms, &dup, err))
        return err->code;
    if (dup) { /* the same reading (sensor, time) is stored once */
        b->duplicates++;
        r->qc = 0;
        return ERR_OK;
    }
    int failed;
    const struct batch_station *bs = &b->stations[r->st];
    enum qc_flag flag = sensors__qc_eval(r->limits, &s->h, bs->interval_s, r->t_ms, r->v, &failed);
    if (store__append(s->ser, r->t_ms, r->v, (int)flag, failed, err))
        return err->code;
    b->inserted++;
    r->qc = flag;
    r->failed = failed;
    if (flag != QC_BAD) /* a bad reading is no reference for judging the next one */
        sensors__qc_push(&s->h, r->t_ms, r->v, r->limits);
    if (rollup_add(s, r->t_ms, r->v, flag == QC_BAD, err))
        return err->code;
    if (has_observer && observer.reading) {
        struct sensors_reading_info info = {bs->code, sensors__kind_name(bs->kind), r->sensor,
                                            r->t_ms, r->v, flag, failed};
        return observer.reading(w.conn, &info, observer.ctx, err);
    }
    return ERR_OK;
}

/* The live "reading" event of one station, written directly: with a gateway's packs every
 * reading is its sensor's newest, and building these with jansson was a third of the writer
 * thread. Codes and sensor names are [a-z0-9_-] (checked when created), kind and QC names are
 * constants: nothing needs escaping. */
/* Appends `s`; a failure (no memory, or an event beyond EVENTS_DATA_MAX) sticks in *failed. */
static void ev_puts(struct buf *e, bool *failed, const char *s)
{
    if (!*failed && buf_appends(e, s) != ERR_OK)
        *failed = true;
}

/* A JSON number for a finite double: readings are mostly decimals with a few fractional
 * digits, written exactly and fast; anything else as %.10g, as jansson was asked to. */
static void ev_number(struct buf *e, bool *failed, double v)
{
    char tmp[40];
    int n;
    double r = nearbyint(v * 1000.0);
    if (fabs(r) < 1e12 && r / 1000.0 == v) {
        long long k = (long long)r;
        unsigned long long u = k < 0 ? (unsigned long long)-k : (unsigned long long)k;
        unsigned long long whole = u / 1000;
        char digits[24];
        int nd = 0;
        do {
            digits[nd++] = (char)('0' + whole % 10);
            whole /= 10;
        } while (whole);
        n = 0;
        if (k < 0)
            tmp[n++] = '-';
        while (nd)
            tmp[n++] = digits[--nd];
        unsigned frac = (unsigned)(u % 1000);
        if (frac) {
            char f[5] = {'.', (char)('0' + frac / 100), (char)('0' + frac / 10 % 10),
                         (char)('0' + frac % 10), 0};
            int len = 4;
            while (f[len - 1] == '0')
                len--;
            memcpy(tmp + n, f, (size_t)len);
            n += len;
        }
    } else {
        n = snprintf(tmp, sizeof tmp, "%.10g", v);
    }
    tmp[n] = 0;
    ev_puts(e, failed, tmp);
}

/* After commit: latest values and one coalescing live event per station of each batch. */
static void publish(struct ingest_batch *b)
{
    /* The batch is sorted by (station, sensor, time): the newest stored reading of each sensor
     * is the last stored one of its run. Only those reach the latest view and the live event,
     * so the cost is per sensor, not per reading. */
    struct buf *e = &w.ev;
    bool failed = false;
    int64_t t_cached = INT64_MIN;
    char t[CLOCK_FMT_LEN] = "";
    bool any = false, open = false;
    for (int i = 0; i < b->n; i++) {
        struct reading *r = &b->items[i];
        const struct batch_station *bs = &b->stations[r->st];
        bool last_of_station = i + 1 == b->n || b->items[i + 1].st != r->st;
        if (r->qc && !(i + 1 < b->n && b->items[i + 1].sensor_id == r->sensor_id &&
                       b->items[i + 1].qc)) {
            sensors__latest_note(r->sensor_id, r->t_ms, r->v, r->qc);
            if (r->t_ms / 1000 != t_cached) {
                t_cached = r->t_ms / 1000;
                clock_fmt_utc(t, t_cached);
            }
            if (!open) {
                e->len = 0;
                failed = false;
                ev_puts(e, &failed, "{\"station\":\"");
                ev_puts(e, &failed, bs->code);
                ev_puts(e, &failed, "\",\"kind\":\"");
                ev_puts(e, &failed, sensors__kind_name(bs->kind));
                ev_puts(e, &failed, "\",\"values\":{");
                open = true;
            } else {
                ev_puts(e, &failed, ",");
            }
            ev_puts(e, &failed, "\"");
            ev_puts(e, &failed, r->sensor);
            ev_puts(e, &failed, "\":{\"v\":");
            ev_number(e, &failed, r->v);
            ev_puts(e, &failed, ",\"qc\":\"");
            ev_puts(e, &failed, sensors__qc_name(r->qc));
            ev_puts(e, &failed, "\",\"t\":\"");
            ev_puts(e, &failed, t);
            ev_puts(e, &failed, "\"}");
        }
        if (last_of_station && open) {
            ev_puts(e, &failed, "}}");
            if (!failed)
                events_publish("reading", bs->code, sensors__kind_name(bs->kind), e->ptr, true);
            open = false;
            any = true;
        }
    }
    if (any)
        sensors__latest_dirty(false);
}

static void finish(struct ingest_batch *b, enum err_code rc)
{
    struct ingest_result res = {.rc = rc, .records = b->records, .accepted = b->inserted,
                                .duplicates = b->duplicates, .rejected = b->rejected};
    if (rc) { /* nothing of this batch is stored */
        res.accepted = 0;
        res.duplicates = 0;
    }
    if (b->done)
        b->done(&res, b->ctx);
    ingest_batch_free(b);
}

static void commit_batches(struct ingest_batch *list)
{
    struct err err = ERR_INIT;
    int64_t old_watermark = w.watermark;
    size_t old_nclosed = w.nclosed;
    w.txn++;
    w.nundo = 0;
    if (db_begin(w.conn, &err) == ERR_OK)
        for (struct ingest_batch *b = list; b && !err.code; b = b->next)
            for (int i = 0; i < b->n && !err.code; i++)
                store_reading(b, &b->items[i], &err);
    if (!err.code)
        store__write_log(w.conn, &err);
    if (!err.code)
        db_commit(w.conn, &err);
    if (!err.code)
        store__committed();
    /* Readings go on the live stream before the alerts they caused, so a screen never shows a
     * new level beside the value before it. */
    for (struct ingest_batch *b = list; b && !err.code; b = b->next)
        publish(b);
    if (has_observer && !err.code && observer.committed)
        observer.committed(observer.ctx);
    if (err.code) {
        db_rollback(w.conn);
        store__rolled_back();
        if (has_observer && observer.rolled_back)
            observer.rolled_back(observer.ctx);
        undo_states();
        w.watermark = old_watermark;
        w.nclosed = old_nclosed;
        log_error("event=ingest_commit_failed detail=\"%s\"", err.msg);
    }
    for (struct ingest_batch *b = list, *next; b; b = next) {
        next = b->next;
        finish(b, err.code ? (err.code == ERR_UNAVAILABLE ? ERR_UNAVAILABLE : ERR_INTERNAL) : ERR_OK);
    }
}

/* ---- the thread --------------------------------------------------------------------------- */
static struct ingest_batch *take_queue(void)
{
    struct ingest_batch *list = w.head, *last = NULL;
    int64_t n = 0;
    for (struct ingest_batch *b = w.head; b && n < MAX_TXN_READINGS; b = b->next) {
        n += b->n;
        w.hurried -= !b->unhurried;
        last = b;
    }
    w.head = last->next;
    if (!w.head)
        w.tail = NULL;
    last->next = NULL;
    w.queued -= n;
    return list;
}

static void *writer_main(void *arg)
{
    (void)arg;
    store__writer_thread(true);
    pthread_mutex_lock(&w.lock);
    for (;;) {
        while (!w.head && !w.stopping) {
            struct timespec until = clock_deadline(CLOCK_REALTIME, 1000000000u);
            /* a timeout ends the wait too: the observer's tick (escalation, silent stations)
             * runs about once a second even when nothing arrives */
            if (pthread_cond_timedwait(&w.wake, &w.lock, &until) != 0)
                break;
        }
        /* only unhurried batches, and not many: let more join them */
        while (w.head && !w.hurried && !w.stopping && w.queued < LINGER_READINGS) {
            uint64_t due = w.last_commit_ns + (uint64_t)LINGER_MS * 1000000u;
            uint64_t now_ns = clock_mono_ns();
            if (now_ns >= due)
                break;
            struct timespec until = clock_deadline(CLOCK_REALTIME, due - now_ns);
            pthread_cond_timedwait(&w.wake, &w.lock, &until);
        }
        struct ingest_batch *list = w.head ? take_queue() : NULL;
        if (list)
            w.last_commit_ns = clock_mono_ns();
        bool stop = w.stopping && !w.head && !list;
        pthread_cond_broadcast(&w.wake); /* room in the queue for waiting producers */
        pthread_mutex_unlock(&w.lock);
        if (list)
            commit_batches(list);
        int64_t now = clock_now_s();
        sensors__states_check(now);
        if (has_observer && observer.tick)
            observer.tick(w.conn, now, observer.ctx);
        if (w.sweep_pos < w.sweep_end || now - w.last_sweep >= SWEEP_EVERY_S || stop ||
            w.nclosed >= CLOSED_MAX) {
            if (w.sweep_pos == w.sweep_end)
                w.last_sweep = now;
            sweep_step(stop ? INT64_MAX / 2 : now, stop); /* at stop: every open bucket too */
        }
        struct err err = ERR_INIT; /* logged by the store; the log keeps the readings safe */
        store__maintain(w.conn, now, false, &err);
        pthread_mutex_lock(&w.lock);
        if (stop)
            break;
    }
    pthread_mutex_unlock(&w.lock);
    return NULL;
}

void sensors__writer_enqueue(struct ingest_batch *b)
{
    pthread_mutex_lock(&w.lock);
    /* Backpressure: a producer waits while the queue is full, so memory stays bounded and
     * nothing is dropped. */
    while (w.queued >= QUEUE_LIMIT && !w.stopping)
        pthread_cond_wait(&w.wake, &w.lock);
    /* The writer is woken only when it has a reason: the queue was empty, the first batch
     * somebody waits for, or enough to end its linger. A wake-up per MQTT message cost a
     * context switch each (the writer re-checked and slept again). */
    bool wake = !w.head || (!b->unhurried && w.hurried == 0) ||
                (w.queued < LINGER_READINGS && w.queued + b->n >= LINGER_READINGS);
    b->next = NULL;
    if (w.tail)
        w.tail->next = b;
    else
        w.head = b;
    w.tail = b;
    w.queued += b->n;
    w.hurried += !b->unhurried;
    if (wake)
        pthread_cond_broadcast(&w.wake);
    pthread_mutex_unlock(&w.lock);
}

void ingest_submit(struct ingest_batch *b, ingest_done_fn done, void *ctx)
{
    b->done = done;
    b->ctx = ctx;
    if (b->n == 0) {
        finish(b, ERR_OK);
        return;
    }
    sensors__writer_enqueue(b);
}

enum err_code sensors__writer_start(struct db *db, struct err *err)
{
    w.db = db;
    w.conn = db_acquire(db);
    w.watermark = NO_WATERMARK;
    w.last_sweep = clock_now_s();
    buf_init(&w.ev, EVENTS_DATA_MAX);
    i64map_init(&w.states, sizeof(struct sstate));
    store__writer_thread(true); /* this thread acts as the writer until the writer runs */
    enum err_code rc = store__open(w.conn, sensors__settings.raw_retention_days, err);
    if (rc == ERR_OK)
        rc = recover_rollups(err);
    store__writer_thread(false);
    if (rc) {
        store__close(NULL);
        db_release(db, w.conn);
        return err->code;
    }
    w.stopping = false;
    if (pthread_create(&w.thread, NULL, writer_main, NULL) != 0) {
        db_release(db, w.conn);
        return err_set(err, ERR_INTERNAL, "cannot start the ingest writer thread");
    }
    w.running = true;
    return ERR_OK;
}

void sensors__writer_stop(void)
{
    if (!w.running)
        return;
    pthread_mutex_lock(&w.lock);
    w.stopping = true;
    pthread_cond_broadcast(&w.wake);
    pthread_mutex_unlock(&w.lock);
    pthread_join(w.thread, NULL);
    store__writer_thread(true);
    store__close(w.conn);
    store__writer_thread(false);
    db_release(w.db, w.conn);
    i64map_free(&w.states);
    free(w.undo);
    free(w.closed);
    buf_release(&w.ev);
    w.closed = NULL;
    w.nclosed = w.closed_cap = w.sweep_pos = w.sweep_end = 0;
    w.undo = NULL;
    w.nundo = w.undo_cap = 0;
    w.running = false;
}
