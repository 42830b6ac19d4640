/* store: where raw readings live. A reading is made durable by one row per writer transaction
 * in `reading_log` (all readings of the transaction packed in one BLOB: one B-tree insert per
 * group commit instead of one per reading), and kept in memory, per sensor, until a compaction
 * moves the cached readings into `reading_blocks`: per sensor, time-ordered, non-overlapping
 * blocks of up to BLOCK_MAX readings packed in a BLOB (one row per ~1,000 readings), then
 * empties the log. This is the write-ahead log + memory cache + compacted blocks layout of
 * time-series stores (InfluxDB's WAL/cache/TSM), with SQLite as the durable medium, so the
 * readings still commit in the same transaction as the alerts and notifications they cause.
 *
 * Threads. Only the writer thread appends, compacts and rolls back. Readers on other threads
 * see committed readings only: the cache of a series is an append-only array whose first
 * `n_committed` entries are committed; `lock` guards every move of an array (growth, the
 * compaction's swap), `n_committed`, and the series map. A reader takes `lock`, copies the
 * committed cache entries and starts its SQLite read snapshot before letting go, and the
 * compaction commits and empties the caches under `lock`: a reader sees either the old blocks
 * and the cache, or the new blocks and an empty cache, never both or neither.
 *
 * Block encoding, per reading: zigzag varint of t - previous t (the first against t0, so 0),
 * the value as 8 little-endian bytes of an IEEE double, one byte qc | failed << 3.
 * Log encoding, per reading: sensor id (4 bytes), t (8), v (8), that same qc byte. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/i64map.h"
#include "core/log.h"
#include "sensors/sensors_int.h"
#include "core/banned.h"

enum {
    BLOCK_MAX = 1024,           /* readings per block */
    LOG_REC = 21,               /* bytes per reading in the log */
    RETENTION_EVERY_S = 3600,
};

struct series {
    int64_t sensor_id;
    struct store_pt *a; /* cached, not yet in blocks, arrival order */
    size_t n, n_committed, cap;
    int64_t newest_ms;       /* newest time stored anywhere, pending included; INT64_MIN none */
    int64_t block_newest_ms; /* newest time in blocks; INT64_MIN none */
    /* a[0..n_committed) is always in time order (store__committed sorts the transaction's
     * readings in); a[n_committed..n), this transaction's, in arrival order */
    bool loaded;             /* block_newest_ms read from the database */
    /* as of the last commit, to roll back to */
    int64_t newest_committed_ms;
    uint64_t txn;
    struct series *next_touched;
};

struct sref { /* an item of the series map */
    int64_t sensor_id;
    struct series *s;
};

static struct {
    pthread_mutex_t lock;
    struct i64map map; /* of struct sref, by sensor id; the series never move, and only the
                        * writer changes the map (it reads it without the lock) */
    /* writer thread only */
    unsigned char *log;
    size_t log_len, log_cap, log_n;
    struct series *touched;
    uint64_t txn;
    size_t cached; /* committed readings in the caches */
    int64_t oldest_cached_s, last_retention_s;
    bool round_active;
    size_t round_cursor;
    uint64_t round_gen;
    int64_t round_seq;
    int64_t trim_seq; /* log rows below this are in blocks: deleted a few at a time */
    /* the last block decoded for a duplicate check */
    int64_t dec_sensor, dec_t0, dec_t1;
    struct store_pt *dec;
    size_t ndec, dec_cap;
} S = {.lock = PTHREAD_MUTEX_INITIALIZER, .txn = 1, .map = {.item_size = sizeof(struct sref)}};

static _Thread_local bool on_writer;
static atomic_int_fast64_t retention_ms; /* 0 = keep */

/* ---- encoding ----------------------------------------------------------------------------- */
static unsigned char qc_byte(int qc, int failed)
{
    return (unsigned char)((qc & 7) | (failed & 31) << 3);
}

static void put_le64(unsigned char *p, uint64_t x)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(x >> (8 * i));
}

static uint64_t get_le64(const unsigned char *p)
{
    uint64_t x = 0;
    for (int i = 0; i < 8; i++)
        x |= (uint64_t)p[i] << (8 * i);
    return x;
}

static uint64_t dbl_bits(double v)
{
    uint64_t x;
    memcpy(&x, &v, 8);
    return x;
}

static double bits_dbl(uint64_t x)
{
    double v;
    memcpy(&v, &x, 8);
    return v;
}

/* Appends the block encoding of pts[0..n) to out (room: n * 19 bytes). Returns bytes. */
static size_t block_encode(unsigned char *out, const struct store_pt *pts, size_t n)
{
    unsigned char *p = out;
    int64_t prev = n ? pts[0].t_ms : 0;
    for (size_t i = 0; i < n; i++) {
        int64_t d = pts[i].t_ms - prev;
        uint64_t z = ((uint64_t)d << 1) ^ (uint64_t)(d >> 63);
        while (z >= 0x80) {
            *p++ = (unsigned char)(z | 0x80);
            z >>= 7;
        }
        *p++ = (unsigned char)z;
        put_le64(p, dbl_bits(pts[i].v));
        p += 8;
        *p++ = qc_byte(pts[i].qc, pts[i].failed);
        prev = pts[i].t_ms;
    }
    return (size_t)(p - out);
}

/* Decodes a block of `n` readings starting at t0 and appends them to *arr. */
static enum err_code block_decode(const unsigned char *p, size_t len, int64_t t0, int64_t n,
                                  struct store_pt **arr, size_t *narr, size_t *cap,
                                  struct err *err)
{
    if (*narr + (size_t)n > *cap) {
        size_t c = *cap ? *cap : 1024;
        while (c < *narr + (size_t)n)
            c *= 2;
        struct store_pt *a = realloc(*arr, c * sizeof *a);
        if (!a)
            return err_set(err, ERR_INTERNAL, "out of memory reading stored readings");
        *arr = a;
        *cap = c;
    }
    const unsigned char *end = p + len;
    int64_t t = t0;
    for (int64_t i = 0; i < n; i++) {
        uint64_t z = 0;
        int shift = 0;
        for (;;) {
            if (p >= end || shift > 63)
                return err_set(err, ERR_INTERNAL, "a stored block of readings is damaged");
            unsigned char b = *p++;
            z |= (uint64_t)(b & 0x7f) << shift;
            shift += 7;
            if (!(b & 0x80))
                break;
        }
        if (end - p < 9)
            return err_set(err, ERR_INTERNAL, "a stored block of readings is damaged");
        t += (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
        struct store_pt *pt = &(*arr)[(*narr)++];
        pt->t_ms = t;
        pt->v = bits_dbl(get_le64(p));
        pt->qc = p[8] & 7;
        pt->failed = p[8] >> 3;
        p += 9;
    }
    return ERR_OK;
}

static int cmp_pt(const void *a, const void *b)
{
    const struct store_pt *x = a, *y = b;
    return (x->t_ms > y->t_ms) - (x->t_ms < y->t_ms);
}

/* ---- the series map ----------------------------------------------------------------------- */
/* The series in slot i of the map, or NULL. */
static struct series *series_at(size_t i)
{
    struct sref *r = i64map_slot(&S.map, i);
    return r ? r->s : NULL;
}

/* Under lock. */
static struct series *map_find(int64_t id)
{
    struct sref *r = i64map_get(&S.map, id);
    return r ? r->s : NULL;
}

/* Under lock. */
static bool map_put(struct series *s)
{
    struct sref *r = i64map_put(&S.map, s->sensor_id, NULL);
    if (r)
        r->s = s;
    return r != NULL;
}

static struct series *series_new(int64_t id)
{
    struct series *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->sensor_id = id;
    s->newest_ms = s->block_newest_ms = s->newest_committed_ms = INT64_MIN;
    pthread_mutex_lock(&S.lock);
    bool ok = map_put(s);
    pthread_mutex_unlock(&S.lock);
    if (!ok) {
        free(s);
        return NULL;
    }
    return s;
}

/* ---- reading blocks ----------------------------------------------------------------------- */
static enum err_code load_block_newest(struct db_conn *c, struct series *s, struct err *err)
{
    static const char sql[] =
        "SELECT t1 FROM reading_blocks WHERE sensor_id = ? ORDER BY t0 DESC LIMIT 1";
    struct db_stmt *st;
    bool row;
    if (db_prepare(c, &st, sql, err))
        return err->code;
    db_bind_int64(st, 1, s->sensor_id);
    if (db_step(st, &row, err))
        return err->code;
    if (row)
        s->block_newest_ms = db_col_int64(st, 0);
    db_done(st);
    s->loaded = true;
    if (s->block_newest_ms > s->newest_ms)
        s->newest_ms = s->newest_committed_ms = s->block_newest_ms;
    return ERR_OK;
}

struct series *store__series(struct db_conn *c, int64_t sensor_id, struct err *err)
{
    pthread_mutex_lock(&S.lock);
    struct series *s = map_find(sensor_id);
    pthread_mutex_unlock(&S.lock);
    if (!s && !(s = series_new(sensor_id))) {
        err_set(err, ERR_INTERNAL, "out of memory in the readings store");
        return NULL;
    }
    if (!s->loaded && load_block_newest(c, s, err))
        return NULL;
    return s;
}

/* Is there a stored reading of `s` at t_ms in the blocks? Keeps the block it decoded. */
static enum err_code blocks_have(struct db_conn *c, struct series *s, int64_t t_ms, bool *out,
                                 struct err *err)
{
    static const char sql[] = "SELECT t0, t1, n, data FROM reading_blocks WHERE sensor_id = ? "
                              "AND t0 <= ? ORDER BY t0 DESC LIMIT 1";
    *out = false;
    if (!(S.dec_sensor == s->sensor_id && t_ms >= S.dec_t0 && t_ms <= S.dec_t1)) {
        struct db_stmt *st;
        bool row;
        S.dec_sensor = 0;
        S.ndec = 0;
        if (db_prepare(c, &st, sql, err))
            return err->code;
        db_bind_int64(st, 1, s->sensor_id);
        db_bind_int64(st, 2, t_ms);
        if (db_step(st, &row, err))
            return err->code;
        if (!row || db_col_int64(st, 1) < t_ms) {
            db_done(st);
            return ERR_OK;
        }
        size_t len;
        const void *data = db_col_blob(st, 3, &len);
        int64_t t0 = db_col_int64(st, 0), t1 = db_col_int64(st, 1);
        enum err_code rc =
            block_decode(data, len, t0, db_col_int64(st, 2), &S.dec, &S.ndec, &S.dec_cap, err);
        db_done(st);
        if (rc)
            return rc;
        S.dec_sensor = s->sensor_id;
        S.dec_t0 = t0;
        S.dec_t1 = t1;
    }
    struct store_pt key = {.t_ms = t_ms};
    *out = S.ndec && bsearch(&key, S.dec, S.ndec, sizeof key, cmp_pt) != NULL;
    return ERR_OK;
}

enum err_code store__has(struct db_conn *c, struct series *s, int64_t t_ms, bool *out,
                         struct err *err)
{
    *out = false;
    if (t_ms > s->newest_ms)
        return ERR_OK; /* the usual case: newer than anything stored */
    struct store_pt key = {.t_ms = t_ms};
    if (s->n_committed && bsearch(&key, s->a, s->n_committed, sizeof key, cmp_pt)) {
        *out = true;
        return ERR_OK;
    }
    for (size_t i = s->n_committed; i < s->n; i++) /* this transaction's: a few */
        if (s->a[i].t_ms == t_ms) {
            *out = true;
            return ERR_OK;
        }
    if (t_ms > s->block_newest_ms)
        return ERR_OK;
    return blocks_have(c, s, t_ms, out, err);
}

/* ---- appending (the writer's transaction) ------------------------------------------------- */
enum err_code store__append(struct series *s, int64_t t_ms, double v, int qc, int failed,
                            struct err *err)
{
    if (s->txn != S.txn) { /* first touch in this transaction: remember what to roll back to */
        s->txn = S.txn;
        s->newest_committed_ms = s->newest_ms;
        s->next_touched = S.touched;
        S.touched = s;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        pthread_mutex_lock(&S.lock); /* readers may be copying the array */
        struct store_pt *a = realloc(s->a, cap * sizeof *a);
        if (a) {
            s->a = a;
            s->cap = cap;
        }
        pthread_mutex_unlock(&S.lock);
        if (!a)
            return err_set(err, ERR_INTERNAL, "out of memory in the readings store");
    }
    if (S.log_len + LOG_REC > S.log_cap) {
        size_t cap = S.log_cap ? S.log_cap * 2 : 65536;
        unsigned char *l = realloc(S.log, cap);
        if (!l)
            return err_set(err, ERR_INTERNAL, "out of memory in the readings store");
        S.log = l;
        S.log_cap = cap;
    }
    s->a[s->n++] = (struct store_pt){t_ms, v, (uint8_t)qc, (uint8_t)failed};
    if (t_ms > s->newest_ms)
        s->newest_ms = t_ms;
    unsigned char *p = S.log + S.log_len;
    uint32_t id = (uint32_t)s->sensor_id;
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(id >> (8 * i));
    put_le64(p + 4, (uint64_t)t_ms);
    put_le64(p + 12, dbl_bits(v));
    p[20] = qc_byte(qc, failed);
    S.log_len += LOG_REC;
    S.log_n++;
    return ERR_OK;
}

enum err_code store__write_log(struct db_conn *c, struct err *err)
{
    static const char sql[] = "INSERT INTO reading_log (n, data) VALUES (?, ?)";
    struct db_stmt *st;
    if (S.log_n == 0)
        return ERR_OK;
    if (db_prepare(c, &st, sql, err))
        return err->code;
    db_bind_int64(st, 1, (int64_t)S.log_n);
    db_bind_blob(st, 2, S.log, S.log_len);
    return db_run(st, err);
}

/* Sorts a[n_committed..n) (this transaction's readings) into the sorted prefix: usually they
 * are all newer (nothing moves); readings that arrived a little late move a little; a backfill
 * behind many cached readings is merged in one pass. Under lock. */
static void sort_in(struct series *s)
{
    size_t m = s->n_committed, k = s->n - m;
    struct store_pt *a = s->a;
    if (k == 0)
        return;
    bool sorted = true;
    for (size_t i = m + 1; i < s->n && sorted; i++)
        sorted = a[i - 1].t_ms <= a[i].t_ms;
    if (!sorted)
        qsort(a + m, k, sizeof *a, cmp_pt);
    if (m == 0 || a[m - 1].t_ms <= a[m].t_ms)
        return;
    size_t lo = m; /* the first committed entry newer than the oldest new one */
    while (lo > 0 && a[lo - 1].t_ms > a[m].t_ms && m - lo < 64)
        lo--;
    if (lo > 0 && a[lo - 1].t_ms > a[m].t_ms) { /* far back: binary search */
        size_t l = 0, h = lo;
        while (l < h) {
            size_t mid = l + (h - l) / 2;
            if (a[mid].t_ms > a[m].t_ms)
                h = mid;
            else
                l = mid + 1;
        }
        lo = l;
    }
    struct store_pt *tmp = malloc((m - lo) * sizeof *tmp);
    if (!tmp) { /* out of memory: slower, in place */
        for (size_t i = m; i < s->n; i++) {
            struct store_pt p = a[i];
            size_t j = i;
            for (; j > 0 && a[j - 1].t_ms > p.t_ms; j--)
                a[j] = a[j - 1];
            a[j] = p;
        }
        return;
    }
    memcpy(tmp, a + lo, (m - lo) * sizeof *tmp);
    size_t i = 0, j = m, w = lo; /* w never passes j: tmp holds the first run */
    while (i < m - lo && j < s->n)
        a[w++] = tmp[i].t_ms <= a[j].t_ms ? tmp[i++] : a[j++];
    while (i < m - lo)
        a[w++] = tmp[i++];
    free(tmp);
}

static void end_txn(void)
{
    S.log_len = S.log_n = 0;
    S.touched = NULL;
    S.txn++;
}

void store__committed(void)
{
    if (S.touched && !S.cached)
        S.oldest_cached_s = clock_now_s();
    pthread_mutex_lock(&S.lock); /* moves committed entries: readers may be copying them */
    for (struct series *s = S.touched; s; s = s->next_touched) {
        sort_in(s);
        S.cached += s->n - s->n_committed;
        s->n_committed = s->n;
    }
    pthread_mutex_unlock(&S.lock);
    end_txn();
}

void store__rolled_back(void)
{
    for (struct series *s = S.touched; s; s = s->next_touched) {
        s->n = s->n_committed;
        s->newest_ms = s->newest_committed_ms;
    }
    end_txn();
}

/* ---- compaction --------------------------------------------------------------------------- */
struct scratch {
    struct store_pt *pts;
    size_t n, cap;
    unsigned char *enc;
    size_t enc_cap;
};

static enum err_code write_blocks(struct db_conn *c, int64_t id, struct scratch *x,
                                  struct err *err)
{
    /* A station deleted meanwhile takes its sensors with it: nothing is written for them. */
    static const char sql[] = "INSERT INTO reading_blocks (sensor_id, t0, t1, n, data) "
                              "SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM sensors WHERE "
                              "id = ?)";
    if (x->enc_cap < (size_t)BLOCK_MAX * 19) {
        unsigned char *e = realloc(x->enc, (size_t)BLOCK_MAX * 19);
        if (!e)
            return err_set(err, ERR_INTERNAL, "out of memory compacting readings");
        x->enc = e;
        x->enc_cap = (size_t)BLOCK_MAX * 19;
    }
    for (size_t i = 0; i < x->n; i += BLOCK_MAX) {
        size_t k = x->n - i < BLOCK_MAX ? x->n - i : BLOCK_MAX;
        size_t len = block_encode(x->enc, x->pts + i, k);
        struct db_stmt *st;
        if (db_prepare(c, &st, sql, err))
            return err->code;
        db_bind_int64(st, 1, id);
        db_bind_int64(st, 2, x->pts[i].t_ms);
        db_bind_int64(st, 3, x->pts[i + k - 1].t_ms);
        db_bind_int64(st, 4, (int64_t)k);
        db_bind_blob(st, 5, x->enc, len);
        db_bind_int64(st, 6, id);
        if (db_run(st, err))
            return err->code;
    }
    return ERR_OK;
}

/* Merges a series' cache into its blocks: the blocks it overlaps (a backfill) and a last block
 * with room are read, merged with the cache, deleted and written again. */
static enum err_code compact_series(struct db_conn *c, struct series *s, struct scratch *x,
                                    struct err *err)
{
    static const char sql_last[] = "SELECT t0, n, data FROM reading_blocks WHERE sensor_id = ? "
                                   "ORDER BY t0 DESC LIMIT 1";
    static const char sql_from[] = "SELECT t0, n, data FROM reading_blocks WHERE sensor_id = ? "
                                   "AND t1 >= ? ORDER BY t0";
    static const char sql_del[] = "DELETE FROM reading_blocks WHERE sensor_id = ? AND t0 >= ?";
    x->n = 0; /* between transactions: the whole cache is committed, hence sorted */
    int64_t from = s->a[0].t_ms, del_from = INT64_MAX;
    bool backfill = from <= s->block_newest_ms;
    struct db_stmt *st;
    bool row;
    if (db_prepare(c, &st, backfill ? sql_from : sql_last, err))
        return err->code;
    db_bind_int64(st, 1, s->sensor_id);
    if (backfill)
        db_bind_int64(st, 2, from);
    while (db_step(st, &row, err) == ERR_OK && row) {
        int64_t n = db_col_int64(st, 1);
        if (!backfill && n >= BLOCK_MAX)
            break; /* the last block is full: the cache starts a new one */
        size_t len;
        const void *data = db_col_blob(st, 2, &len);
        int64_t t0 = db_col_int64(st, 0);
        if (t0 < del_from)
            del_from = t0;
        if (block_decode(data, len, t0, n, &x->pts, &x->n, &x->cap, err))
            break;
    }
    db_done(st);
    if (err->code)
        return err->code;
    if (del_from != INT64_MAX) {
        if (db_prepare(c, &st, sql_del, err))
            return err->code;
        db_bind_int64(st, 1, s->sensor_id);
        db_bind_int64(st, 2, del_from);
        if (db_run(st, err))
            return err->code;
    }
    /* merge the blocks' readings (sorted) with the cache (sorted); a time in both keeps the
     * stored one (cannot happen: the writer checks for duplicates) */
    size_t nb = x->n, need = nb + s->n;
    if (need > x->cap) {
        struct store_pt *p = realloc(x->pts, need * sizeof *p);
        if (!p)
            return err_set(err, ERR_INTERNAL, "out of memory compacting readings");
        x->pts = p;
        x->cap = need;
    }
    memmove(x->pts + s->n, x->pts, nb * sizeof *x->pts);
    size_t i = s->n, j = 0, k = 0;
    while (i < s->n + nb || j < s->n) {
        if (j >= s->n || (i < s->n + nb && x->pts[i].t_ms <= s->a[j].t_ms)) {
            if (j < s->n && x->pts[i].t_ms == s->a[j].t_ms)
                j++;
            x->pts[k++] = x->pts[i++];
        } else {
            x->pts[k++] = s->a[j++];
        }
    }
    x->n = k;
    return write_blocks(c, s->sensor_id, x, err);
}

/* Compaction runs in rounds, a step between two group commits at a time, so ingest never waits
 * for all the caches at once. A round visits every series once, in map order; each step is its
 * own transaction that moves some series' caches into blocks. When the round has visited them
 * all, every reading committed before the round began is in blocks, so the log rows written
 * before it (seq < round_seq) are deleted. Rows written during the round may hold readings of
 * series already moved: the replay after a crash skips readings it finds stored. */
static enum err_code round_begin(struct db_conn *c, struct err *err)
{
    static const char sql[] = "SELECT COALESCE(MAX(seq), 0) + 1 FROM reading_log";
    struct db_stmt *st;
    bool row;
    if (db_prepare(c, &st, sql, err) || db_step(st, &row, err))
        return err->code;
    S.round_seq = db_col_int64(st, 0);
    db_done(st);
    S.round_cursor = 0;
    S.round_gen = S.map.gen;
    S.round_active = true;
    return ERR_OK;
}

/* One step: series from the cursor on until `budget` readings moved (all when budget is 0). */
/* Deletes log rows whose readings are all in blocks: all of them when `all`, else a few (each
 * row is up to MAX_TXN_READINGS * 21 bytes whose pages SQLite frees one by one). */
static enum err_code trim_log(struct db_conn *c, bool all, struct err *err)
{
    static const char sql_all[] = "DELETE FROM reading_log WHERE seq < ?";
    static const char sql_some[] = "DELETE FROM reading_log WHERE seq IN (SELECT seq FROM "
                                   "reading_log WHERE seq < ? ORDER BY seq LIMIT 2)";
    struct db_stmt *st;
    if (!S.trim_seq)
        return ERR_OK;
    if (db_prepare(c, &st, all ? sql_all : sql_some, err))
        return err->code;
    db_bind_int64(st, 1, S.trim_seq);
    if (db_run(st, err))
        return err->code;
    if (all || db_changes(c) == 0)
        S.trim_seq = 0;
    return ERR_OK;
}

static enum err_code compact_step(struct db_conn *c, size_t budget, struct err *err)
{
    struct scratch x = {0};
    size_t moved = 0, from = S.round_cursor, i = from;
    int64_t t0 = clock_mono_ns();
    if (S.round_active && S.round_gen != S.map.gen)
        S.round_active = false; /* the map grew: its order changed, start over */
    if (!S.round_active && round_begin(c, err))
        return err->code;
    from = i = S.round_cursor;
    if (db_begin(c, err))
        return err->code;
    for (; i < S.map.slots && !err->code && (!budget || moved < budget); i++) {
        struct series *s = series_at(i); /* the writer is the only one who changes the map */
        if (s && s->n_committed) {
            compact_series(c, s, &x, err);
            moved += s->n_committed;
        }
    }
    free(x.pts);
    free(x.enc);
    bool round_done = i == S.map.slots;
    int64_t trim_before = S.trim_seq;
    if (round_done)
        S.trim_seq = S.round_seq;
    if (!err->code)
        trim_log(c, budget == 0, err);
    S.dec_sensor = 0; /* blocks were rewritten */
    if (!err->code) {
        pthread_mutex_lock(&S.lock); /* readers: the new blocks and the emptied caches at once */
        if (db_commit(c, err) == ERR_OK)
            for (size_t k = from; k < i; k++) {
                struct series *s = series_at(k);
                if (!s || !s->n_committed)
                    continue;
                if (s->newest_ms > s->block_newest_ms)
                    s->block_newest_ms = s->newest_ms;
                S.cached -= s->n_committed;
                s->n = s->n_committed = 0;
                if (s->cap > 4096) { /* a burst: give the memory back */
                    free(s->a);
                    s->a = NULL;
                    s->cap = 0;
                }
            }
        pthread_mutex_unlock(&S.lock);
    }
    if (err->code) {
        db_rollback(c);
        S.trim_seq = trim_before;
        log_error("event=readings_compaction_failed detail=\"%s\"", err->msg);
        return err->code;
    }
    S.round_cursor = i;
    if (round_done) {
        S.round_active = false;
        S.oldest_cached_s = clock_now_s(); /* what is cached now came during the round */
    }
    log_debug("event=readings_compacted readings=%zu ms=%.1f round_done=%d", moved,
              (double)(clock_mono_ns() - t0) / 1e6, round_done);
    return ERR_OK;
}

/* Every cached reading into blocks and the log emptied (at open and at stop). */
static enum err_code compact(struct db_conn *c, struct err *err)
{
    S.round_active = false;
    if (compact_step(c, 0, err))
        return err->code;
    return ERR_OK;
}

static enum err_code apply_retention(struct db_conn *c, int64_t now_s, struct err *err)
{
    static const char sql[] = "DELETE FROM reading_blocks WHERE t1 < ?";
    int64_t keep = atomic_load(&retention_ms);
    if (keep <= 0)
        return ERR_OK;
    struct db_stmt *st;
    if (db_begin(c, err) || db_prepare(c, &st, sql, err)) {
        db_rollback(c);
        return err->code;
    }
    db_bind_int64(st, 1, now_s * 1000 - keep);
    if (db_run(st, err) || db_commit(c, err)) {
        db_rollback(c);
        return err->code;
    }
    if (db_changes(c))
        log_info("event=raw_retention blocks_deleted=%lld", (long long)db_changes(c));
    return ERR_OK;
}

enum err_code store__maintain(struct db_conn *c, int64_t now_s, bool force, struct err *err)
{
    /* settings readings_compact_after (24 bytes of memory each) and readings_compact_age_s */
    if (force) {
        if (S.cached && compact(c, err))
            return err->code;
    } else if (S.round_active || (S.cached && ((int64_t)S.cached >= sensors__settings.compact_after ||
                                               now_s - S.oldest_cached_s >=
                                                   sensors__settings.compact_age_s))) {
        /* a step moves a twentieth of the threshold: tens of milliseconds between commits */
        size_t budget = (size_t)(sensors__settings.compact_after / 20);
        if (compact_step(c, budget ? budget : 1, err))
            return err->code;
    } else if (S.trim_seq) {
        if (db_begin(c, err) || trim_log(c, false, err) || db_commit(c, err)) {
            db_rollback(c);
            return err->code;
        }
    }
    if (now_s - S.last_retention_s >= RETENTION_EVERY_S) {
        S.last_retention_s = now_s;
        return apply_retention(c, now_s, err);
    }
    return ERR_OK;
}

/* ---- open: readings of an older schema, and the log of the last run ----------------------- */
/* Before the store, readings were one row each in `readings`: pack them into blocks once. */
static enum err_code convert_rows(struct db_conn *c, struct err *err)
{
    static const char sql_has[] =
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'readings'";
    static const char sql_rows[] =
        "SELECT sensor_id, t, v, qc, qc_failed FROM readings ORDER BY sensor_id, t";
    struct db_stmt *st;
    bool row;
    if (db_prepare(c, &st, sql_has, err) || db_step(st, &row, err))
        return err->code;
    db_done(st);
    if (!row)
        return ERR_OK;
    struct scratch x = {0};
    int64_t id = 0, total = 0;
    if (db_begin(c, err) || db_prepare(c, &st, sql_rows, err))
        goto out;
    while (db_step(st, &row, err) == ERR_OK) {
        int64_t sid = row ? db_col_int64(st, 0) : 0;
        if ((!row || sid != id) && x.n) {
            if (write_blocks(c, id, &x, err))
                break;
            total += (int64_t)x.n;
            x.n = 0;
        }
        if (!row)
            break;
        id = sid;
        if (x.n == x.cap) {
            size_t cap = x.cap ? x.cap * 2 : 4096;
            struct store_pt *p = realloc(x.pts, cap * sizeof *p);
            if (!p) {
                err_set(err, ERR_INTERNAL, "out of memory converting readings");
                break;
            }
            x.pts = p;
            x.cap = cap;
        }
        x.pts[x.n++] = (struct store_pt){db_col_int64(st, 1), db_col_double(st, 2),
                                         (uint8_t)db_col_int64(st, 3),
                                         (uint8_t)db_col_int64(st, 4)};
    }
    db_done(st);
    if (!err->code)
        db_exec(c, "DROP TABLE readings", err);
    if (!err->code)
        db_commit(c, err);
out:
    free(x.pts);
    free(x.enc);
    if (err->code) {
        db_rollback(c);
        return err->code;
    }
    if (total)
        log_info("event=readings_converted readings=%lld", (long long)total);
    return ERR_OK;
}

/* Readings committed to the log by the last run and not compacted: back into the caches. */
static enum err_code replay_log(struct db_conn *c, struct err *err)
{
    static const char sql[] = "SELECT data FROM reading_log ORDER BY seq";
    static const char sql_sensor[] = "SELECT 1 FROM sensors WHERE id = ?";
    struct db_stmt *st, *q;
    bool row, exists;
    int64_t n = 0;
    S.txn++;
    if (db_prepare(c, &st, sql, err))
        return err->code;
    while (db_step(st, &row, err) == ERR_OK && row) {
        size_t len;
        const unsigned char *p = db_col_blob(st, 0, &len);
        for (size_t off = 0; off + LOG_REC <= len && !err->code; off += LOG_REC) {
            const unsigned char *r = p + off;
            int64_t id = (int64_t)((uint32_t)r[0] | (uint32_t)r[1] << 8 | (uint32_t)r[2] << 16 |
                                   (uint32_t)r[3] << 24);
            pthread_mutex_lock(&S.lock);
            struct series *s = map_find(id);
            pthread_mutex_unlock(&S.lock);
            if (!s) {
                if (db_prepare(c, &q, sql_sensor, err))
                    break;
                db_bind_int64(q, 1, id);
                if (db_step(q, &exists, err))
                    break;
                db_done(q);
                if (!exists)
                    continue; /* its station was deleted */
                if (!(s = store__series(c, id, err)))
                    break;
            }
            int64_t t = (int64_t)get_le64(r + 4);
            bool dup;
            if (store__has(c, s, t, &dup, err))
                break;
            if (dup) /* compacted before the crash, in a round that had not finished */
                continue;
            if (store__append(s, t, bits_dbl(get_le64(r + 12)), r[20] & 7, r[20] >> 3, err))
                break;
            n++;
        }
    }
    db_done(st);
    S.log_len = S.log_n = 0; /* these are in the log already */
    if (err->code) {
        store__rolled_back();
        return err->code;
    }
    store__committed();
    if (n)
        log_info("event=readings_log_replayed readings=%lld", (long long)n);
    return ERR_OK;
}

void store__writer_thread(bool is_writer)
{
    on_writer = is_writer;
}

enum err_code store__open(struct db_conn *c, int64_t raw_retention_days, struct err *err)
{
    atomic_store(&retention_ms, raw_retention_days * 86400 * 1000);
    S.last_retention_s = 0; /* the first maintenance applies it */
    if (convert_rows(c, err) || replay_log(c, err))
        return err->code;
    /* a clean log makes the next start quick; failing here is not fatal */
    struct err e = ERR_INIT;
    compact(c, &e);
    return ERR_OK;
}

void store__close(struct db_conn *c)
{
    struct err e = ERR_INIT;
    if (c) /* not needed for safety (the log has it all): a quicker start, an empty log */
        compact(c, &e);
    pthread_mutex_lock(&S.lock);
    for (size_t i = 0; i < S.map.slots; i++) {
        struct series *s = series_at(i);
        if (s) {
            free(s->a);
            free(s);
        }
    }
    i64map_free(&S.map);
    pthread_mutex_unlock(&S.lock);
    free(S.log);
    free(S.dec);
    S.log = NULL;
    S.dec = NULL;
    S.log_len = S.log_cap = S.log_n = S.cached = S.ndec = S.dec_cap = 0;
    S.dec_sensor = 0;
    S.touched = NULL;
    S.round_active = false;
    S.trim_seq = 0;
}

/* ---- reading ------------------------------------------------------------------------------ */
/* Copies the cache entries of `id` that a reader may see (pending too on the writer thread). */
static enum err_code copy_cache(int64_t id, struct store_pt **out, size_t *n, struct err *err)
{
    struct series *s = map_find(id);
    size_t k = s ? (on_writer ? s->n : s->n_committed) : 0;
    *out = NULL;
    *n = 0;
    if (!k)
        return ERR_OK;
    if (!(*out = malloc(k * sizeof **out)))
        return err_set(err, ERR_INTERNAL, "out of memory reading readings");
    memcpy(*out, s->a, k * sizeof **out);
    *n = k;
    for (size_t i = 1; i < k; i++)
        if ((*out)[i].t_ms < (*out)[i - 1].t_ms) { /* a backfill arrived out of order */
            qsort(*out, k, sizeof **out, cmp_pt);
            break;
        }
    return ERR_OK;
}

/* Readings of a sensor in [from_ms, to_ms], ascending, at most `limit` (newest first when
 * `newest` is set: the last `limit` of the range, still returned ascending). */
static enum err_code read_range(struct db_conn *c, int64_t id, int64_t from_ms, int64_t to_ms,
                                size_t limit, bool skip_bad, struct store_pt **out, size_t *nout,
                                struct err *err)
{
    static const char sql[] =
        "SELECT t0, n, data FROM reading_blocks WHERE sensor_id = ? AND t0 <= ? AND t0 >= "
        "COALESCE((SELECT MAX(t0) FROM reading_blocks WHERE sensor_id = ? AND t0 <= ?), ?) "
        "ORDER BY t0";
    struct store_pt *cache = NULL, *blk = NULL;
    size_t ncache = 0, nblk = 0, capblk = 0;
    struct db_stmt *st = NULL;
    bool row = false, txn = false;
    *out = NULL;
    *nout = 0;
    if (!on_writer)
        pthread_mutex_lock(&S.lock);
    if (copy_cache(id, &cache, &ncache, err) == ERR_OK && db_prepare(c, &st, sql, err) == ERR_OK) {
        if (!on_writer)
            txn = db_begin_read(c, err) == ERR_OK;
        db_bind_int64(st, 1, id);
        db_bind_int64(st, 2, to_ms);
        db_bind_int64(st, 3, id);
        db_bind_int64(st, 4, from_ms);
        db_bind_int64(st, 5, INT64_MIN);
        if (!err->code)
            db_step(st, &row, err); /* the snapshot starts here, under the lock */
    }
    if (!on_writer)
        pthread_mutex_unlock(&S.lock);
    while (!err->code && row) {
        size_t len;
        const void *data = db_col_blob(st, 2, &len);
        if (block_decode(data, len, db_col_int64(st, 0), db_col_int64(st, 1), &blk, &nblk,
                         &capblk, err))
            break;
        db_step(st, &row, err);
    }
    if (st)
        db_done(st);
    if (txn)
        db_rollback(c);
    struct store_pt *res = NULL;
    size_t k = 0;
    if (!err->code && !(res = malloc((ncache + nblk + 1) * sizeof *res)))
        err_set(err, ERR_INTERNAL, "out of memory reading readings");
    for (size_t i = 0, j = 0; !err->code && (i < nblk || j < ncache);) {
        struct store_pt p;
        if (j >= ncache || (i < nblk && blk[i].t_ms <= cache[j].t_ms))
            p = blk[i++];
        else
            p = cache[j++];
        if (p.t_ms < from_ms || p.t_ms > to_ms || (skip_bad && p.qc == QC_BAD))
            continue;
        res[k++] = p;
    }
    free(cache);
    free(blk);
    if (err->code) {
        free(res);
        return err->code;
    }
    if (k > limit) { /* keep the first `limit` */
        k = limit;
    }
    *out = res;
    *nout = k;
    return ERR_OK;
}

enum err_code store__read(struct db_conn *c, int64_t sensor_id, int64_t from_ms, int64_t to_ms,
                          size_t limit, struct store_pt **out, size_t *n, struct err *err)
{
    return read_range(c, sensor_id, from_ms, to_ms, limit, false, out, n, err);
}

enum err_code store__tail(struct db_conn *c, int64_t sensor_id, size_t want, bool skip_bad,
                          struct store_pt **out, size_t *n, struct err *err)
{
    /* Widen a window back from the newest reading until it holds `want` readings. */
    static const char sql_newest[] =
        "SELECT t1 FROM reading_blocks WHERE sensor_id = ? ORDER BY t0 DESC LIMIT 1";
    int64_t newest = INT64_MIN;
    struct db_stmt *st;
    bool row;
    if (!on_writer)
        pthread_mutex_lock(&S.lock);
    struct series *s = map_find(sensor_id);
    if (s)
        for (size_t i = 0, k = on_writer ? s->n : s->n_committed; i < k; i++)
            if (s->a[i].t_ms > newest)
                newest = s->a[i].t_ms;
    if (!on_writer)
        pthread_mutex_unlock(&S.lock);
    if (db_prepare(c, &st, sql_newest, err))
        return err->code;
    db_bind_int64(st, 1, sensor_id);
    if (db_step(st, &row, err))
        return err->code;
    if (row && db_col_int64(st, 0) > newest)
        newest = db_col_int64(st, 0);
    db_done(st);
    *out = NULL;
    *n = 0;
    if (newest == INT64_MIN)
        return ERR_OK;
    for (int64_t span = 3600 * 1000LL;; span *= 8) {
        struct store_pt *p;
        size_t k;
        int64_t from = newest - span;
        bool all = span > 400LL * 86400 * 1000;
        if (read_range(c, sensor_id, all ? INT64_MIN : from, INT64_MAX, SIZE_MAX, skip_bad, &p,
                       &k, err))
            return err->code;
        if (k >= want || all) {
            size_t skip = k > want ? k - want : 0;
            memmove(p, p + skip, (k - skip) * sizeof *p);
            *out = p;
            *n = k - skip;
            return ERR_OK;
        }
        free(p);
    }
}

enum err_code store__scan_since(struct db_conn *c, int64_t from_ms,
                                enum err_code (*cb)(int64_t sensor_id, const struct store_pt *p,
                                                    void *ctx, struct err *err),
                                void *ctx, struct err *err)
{
    static const char sql[] =
        "SELECT sensor_id, t0, n, data FROM reading_blocks WHERE t1 >= ?";
    struct db_stmt *st;
    bool row;
    struct store_pt *pts = NULL;
    size_t n = 0, cap = 0;
    if (db_prepare(c, &st, sql, err))
        return err->code;
    db_bind_int64(st, 1, from_ms);
    while (db_step(st, &row, err) == ERR_OK && row) {
        size_t len;
        const void *data = db_col_blob(st, 3, &len);
        n = 0;
        if (block_decode(data, len, db_col_int64(st, 1), db_col_int64(st, 2), &pts, &n, &cap,
                         err))
            break;
        int64_t id = db_col_int64(st, 0);
        for (size_t i = 0; i < n && !err->code; i++)
            if (pts[i].t_ms >= from_ms)
                cb(id, &pts[i], ctx, err);
    }
    db_done(st);
    free(pts);
    for (size_t i = 0; i < S.map.slots && !err->code; i++) { /* the writer: the caches too */
        struct series *s = series_at(i);
        for (size_t k = 0; s && k < s->n && !err->code; k++)
            if (s->a[k].t_ms >= from_ms)
                cb(s->sensor_id, &s->a[k], ctx, err);
    }
    return err->code;
}

/* ---- offline export ----------------------------------------------------------------------- */
struct logged {
    int64_t sensor_id;
    struct store_pt p;
};

static int cmp_logged(const void *a, const void *b)
{
    const struct logged *x = a, *y = b;
    if (x->sensor_id != y->sensor_id)
        return (x->sensor_id > y->sensor_id) - (x->sensor_id < y->sensor_id);
    return cmp_pt(&x->p, &y->p);
}

enum err_code store__export(struct db_conn *c,
                            enum err_code (*cb)(int64_t sensor_id, const struct store_pt *p,
                                                void *ctx, struct err *err),
                            void *ctx, struct err *err)
{
    static const char sql_log[] = "SELECT data FROM reading_log ORDER BY seq";
    static const char sql_blocks[] =
        "SELECT sensor_id, t0, n, data FROM reading_blocks ORDER BY sensor_id, t0";
    struct logged *lg = NULL;
    size_t nl = 0, capl = 0, li = 0;
    struct store_pt *pts = NULL;
    size_t n = 0, cap = 0;
    struct db_stmt *st;
    bool row;
    if (db_begin_read(c, err) || db_prepare(c, &st, sql_log, err))
        goto out;
    while (db_step(st, &row, err) == ERR_OK && row) {
        size_t len;
        const unsigned char *p = db_col_blob(st, 0, &len);
        for (size_t off = 0; off + LOG_REC <= len; off += LOG_REC, nl++) {
            if (nl == capl) {
                size_t cp = capl ? capl * 2 : 4096;
                struct logged *l = realloc(lg, cp * sizeof *l);
                if (!l) {
                    err_set(err, ERR_INTERNAL, "out of memory exporting readings");
                    break;
                }
                lg = l;
                capl = cp;
            }
            const unsigned char *r = p + off;
            lg[nl].sensor_id = (int64_t)((uint32_t)r[0] | (uint32_t)r[1] << 8 |
                                         (uint32_t)r[2] << 16 | (uint32_t)r[3] << 24);
            lg[nl].p = (struct store_pt){(int64_t)get_le64(r + 4), bits_dbl(get_le64(r + 12)),
                                         (uint8_t)(r[20] & 7), (uint8_t)(r[20] >> 3)};
        }
        if (err->code)
            break;
    }
    db_done(st);
    if (err->code || db_prepare(c, &st, sql_blocks, err))
        goto out;
    if (nl > 1)
        qsort(lg, nl, sizeof *lg, cmp_logged);
    /* Blocks come in (sensor, t0) order: a sensor's readings are gathered, then merged with its
     * logged ones in time order. A reading in both (the log keeps rows until a compaction round
     * ends; a crash may leave them) is given once. */
    int64_t cur = INT64_MIN;
    for (;;) {
        int64_t id = INT64_MAX;
        if (db_step(st, &row, err))
            break;
        if (row)
            id = db_col_int64(st, 0);
        if (id != cur && cur != INT64_MIN) { /* the sensor's blocks are all read: emit it */
            size_t i = 0;
            for (; li < nl && lg[li].sensor_id < cur && !err->code; li++) /* log only */
                if (!(li > 0 && lg[li - 1].sensor_id == lg[li].sensor_id &&
                      lg[li - 1].p.t_ms == lg[li].p.t_ms))
                    cb(lg[li].sensor_id, &lg[li].p, ctx, err);
            while (!err->code && (i < n || (li < nl && lg[li].sensor_id == cur))) {
                bool from_log = li < nl && lg[li].sensor_id == cur &&
                                (i >= n || lg[li].p.t_ms < pts[i].t_ms);
                if (from_log) {
                    cb(cur, &lg[li++].p, ctx, err);
                } else {
                    while (li < nl && lg[li].sensor_id == cur && lg[li].p.t_ms == pts[i].t_ms)
                        li++; /* also in a block */
                    cb(cur, &pts[i++], ctx, err);
                }
                while (li < nl && lg[li].sensor_id == cur && li > 0 &&
                       lg[li - 1].sensor_id == cur && lg[li - 1].p.t_ms == lg[li].p.t_ms)
                    li++; /* logged twice */
            }
            n = 0;
        }
        if (!row || err->code)
            break;
        cur = id;
        size_t len;
        const void *data = db_col_blob(st, 3, &len);
        if (block_decode(data, len, db_col_int64(st, 1), db_col_int64(st, 2), &pts, &n, &cap,
                         err))
            break;
    }
    for (; li < nl && !err->code; li++) /* sensors with no blocks at all */
        if (!(li > 0 && lg[li - 1].sensor_id == lg[li].sensor_id &&
              lg[li - 1].p.t_ms == lg[li].p.t_ms))
            cb(lg[li].sensor_id, &lg[li].p, ctx, err);
    db_done(st);
out:
    db_rollback(c);
    free(lg);
    free(pts);
    return err->code;
}

static enum err_code count_one(int64_t sensor_id, const struct store_pt *p, void *ctx,
                               struct err *err)
{
    (void)sensor_id;
    (void)p;
    (void)err;
    (*(int64_t *)ctx)++;
    return ERR_OK;
}

enum err_code store__count(struct db_conn *c, int64_t *out, struct err *err)
{
    *out = 0;
    return store__export(c, count_one, out, err);
}
