/* Unit tests of src/sensors/store.c against a temporary SQLite file: the log and the caches,
 * what other threads may see, rollback, compaction into blocks, backfill merged into existing
 * blocks, duplicates across all of them, replay of the log after a crash, the export, the
 * conversion of the old one-row-per-reading table, deleted sensors and retention. */
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "auth/auth.h"
#include "db/db.h"
#include "regions/regions.h"
#include "sensors/sensors_int.h"
#include "unit.h"

static const struct db_migration *const lists[] = {auth_migrations, regions_migrations,
                                                   sensors_migrations, NULL};
static struct db *db;
static struct db_conn *wc, *rc; /* the writer's connection, a reader's */

static const int64_t T0 = 1790000000000; /* ms */

static bool open_db(const char *path)
{
    unlink(path);
    struct err e = ERR_INIT;
    struct db_options o = {.path = path, .pool_size = 2, .busy_timeout_ms = 1000};
    if (db_open(&db, &o, &e))
        return false;
    wc = db_acquire(db);
    rc = db_acquire(db);
    db_migrate(wc, lists, &e);
    /* sensors without their stations: the store only asks whether a sensor exists */
    db_exec(wc, "PRAGMA foreign_keys = OFF", &e);
    for (int id = 1; id <= 4 && !e.code; id++) {
        struct db_stmt *s;
        static const char sql[] =
            "INSERT INTO sensors (id, station_id, name, unit) VALUES (?, 1, ?, 'm')";
        char name[16];
        snprintf(name, sizeof name, "s%d", id);
        if (db_prepare(wc, &s, sql, &e) == ERR_OK) {
            db_bind_int64(s, 1, id);
            db_bind_text(s, 2, name);
            db_run(s, &e);
        }
    }
    return e.code == ERR_OK;
}

/* One writer transaction storing `n` readings of `id` (t = T0 + t_step * k, v = k). */
static enum err_code store_n(int64_t id, const int64_t *t, const double *v, size_t n,
                             bool commit, size_t *dups)
{
    struct err e = ERR_INIT;
    store__writer_thread(true);
    struct series *s = store__series(wc, id, &e);
    *dups = 0;
    if (s && db_begin(wc, &e) == ERR_OK) {
        for (size_t i = 0; i < n && !e.code; i++) {
            bool dup;
            if (store__has(wc, s, t[i], &dup, &e) == ERR_OK && !dup)
                store__append(s, t[i], v[i], QC_GOOD, 0, &e);
            *dups += dup;
        }
        if (!e.code)
            store__write_log(wc, &e);
        if (commit && !e.code && db_commit(wc, &e) == ERR_OK) {
            store__committed();
        } else {
            db_rollback(wc);
            store__rolled_back();
        }
    }
    store__writer_thread(false);
    return e.code;
}

static size_t count_range(struct db_conn *c, bool as_writer, int64_t id, int64_t from,
                          int64_t to, bool *sorted)
{
    struct err e = ERR_INIT;
    struct store_pt *p;
    size_t n = 0;
    store__writer_thread(as_writer);
    if (store__read(c, id, from, to, SIZE_MAX, &p, &n, &e))
        return (size_t)-1;
    store__writer_thread(false);
    *sorted = true;
    for (size_t i = 1; i < n; i++)
        if (p[i].t_ms <= p[i - 1].t_ms)
            *sorted = false;
    free(p);
    return n;
}

static int64_t stored(void)
{
    struct err e = ERR_INIT;
    int64_t n = -1;
    store__count(rc, &n, &e);
    return n;
}

static bool blocks_disjoint(void)
{
    struct err e = ERR_INIT;
    struct db_stmt *s;
    bool row;
    static const char sql[] = "SELECT sensor_id, t0, t1, n FROM reading_blocks ORDER BY "
                              "sensor_id, t0";
    int64_t last_id = -1, last_t1 = 0;
    bool ok = true;
    if (db_prepare(rc, &s, sql, &e))
        return false;
    while (db_step(s, &row, &e) == ERR_OK && row) {
        int64_t id = db_col_int64(s, 0), t0 = db_col_int64(s, 1), t1 = db_col_int64(s, 2);
        if ((id == last_id && t0 <= last_t1) || t1 < t0 || db_col_int64(s, 3) > 1024)
            ok = false;
        last_id = id;
        last_t1 = t1;
    }
    db_done(s);
    return ok && !e.code;
}

static bool compact_now(void)
{
    struct err e = ERR_INIT;
    store__writer_thread(true);
    store__maintain(wc, 0, true, &e);
    store__writer_thread(false);
    return e.code == ERR_OK;
}

static void test_log_cache_and_visibility(void)
{
    int64_t t[100];
    double v[100];
    size_t dups;
    bool sorted;
    for (int i = 0; i < 100; i++) {
        t[i] = T0 + i * 60000;
        v[i] = i * 0.25;
    }
    CHECK(store_n(1, t, v, 100, true, &dups) == ERR_OK && dups == 0);
    CHECK(stored() == 100); /* in the log */
    CHECK(count_range(rc, false, 1, INT64_MIN, INT64_MAX, &sorted) == 100 && sorted);
    CHECK(count_range(rc, false, 1, T0 + 60000, T0 + 10 * 60000, &sorted) == 10);
    /* the same readings again: every one a duplicate, nothing stored */
    CHECK(store_n(1, t, v, 100, true, &dups) == ERR_OK && dups == 100);
    CHECK(stored() == 100);
    /* rolled back: not stored, not visible, and not a duplicate next time */
    int64_t t2[3] = {T0 + 200 * 60000, T0 + 201 * 60000, T0 + 202 * 60000};
    double v2[3] = {1, 2, 3};
    CHECK(store_n(1, t2, v2, 3, false, &dups) == ERR_OK);
    CHECK(count_range(rc, false, 1, INT64_MIN, INT64_MAX, &sorted) == 100);
    CHECK(count_range(wc, true, 1, INT64_MIN, INT64_MAX, &sorted) == 100);
    CHECK(store_n(1, t2, v2, 3, true, &dups) == ERR_OK && dups == 0);
    CHECK(count_range(rc, false, 1, INT64_MIN, INT64_MAX, &sorted) == 103);
    /* the newest readings, bad ones skipped when asked */
    struct err e = ERR_INIT;
    struct store_pt *p;
    size_t n;
    CHECK(store__tail(rc, 1, 2, false, &p, &n, &e) == ERR_OK && n == 2 &&
          p[0].t_ms == t2[1] && p[1].t_ms == t2[2] && p[1].v == 3);
    free(p);
}

static void test_compaction_and_backfill(void)
{
    bool sorted;
    size_t dups;
    CHECK(compact_now());
    CHECK(stored() == 103);
    CHECK(blocks_disjoint());
    CHECK(count_range(rc, false, 1, INT64_MIN, INT64_MAX, &sorted) == 103 && sorted);
    /* duplicates are found in the blocks too */
    int64_t t1[2] = {T0 + 5 * 60000, T0 + 201 * 60000};
    double v1[2] = {9, 9};
    CHECK(store_n(1, t1, v1, 2, true, &dups) == ERR_OK && dups == 2);
    /* a logger backfills between and before stored readings, out of order, plus new ones;
     * 3,000 readings of another sensor fill several blocks */
    int64_t bt[5] = {T0 + 150 * 60000, T0 - 60000, T0 + 30500, T0 + 300 * 60000, T0 - 120000};
    double bv[5] = {1, 2, 3, 4, 5};
    CHECK(store_n(1, bt, bv, 5, true, &dups) == ERR_OK && dups == 0);
    CHECK(count_range(rc, false, 1, INT64_MIN, INT64_MAX, &sorted) == 108 && sorted);
    static int64_t big_t[3000];
    static double big_v[3000];
    for (int i = 0; i < 3000; i++) {
        big_t[i] = T0 + (int64_t)i * 1000;
        big_v[i] = sin(i / 10.0);
    }
    CHECK(store_n(2, big_t, big_v, 3000, true, &dups) == ERR_OK);
    CHECK(compact_now());
    CHECK(blocks_disjoint());
    CHECK(stored() == 3108);
    CHECK(count_range(rc, false, 1, INT64_MIN, INT64_MAX, &sorted) == 108 && sorted);
    CHECK(count_range(rc, false, 2, INT64_MIN, INT64_MAX, &sorted) == 3000 && sorted);
    CHECK(count_range(rc, false, 2, T0 + 1000 * 1000, T0 + 1999 * 1000, &sorted) == 1000);
    /* values come back bit for bit */
    struct err e = ERR_INIT;
    struct store_pt *p;
    size_t n;
    CHECK(store__read(rc, 2, INT64_MIN, INT64_MAX, SIZE_MAX, &p, &n, &e) == ERR_OK && n == 3000);
    bool same = true;
    for (size_t i = 0; i < n; i++)
        same = same && p[i].t_ms == big_t[i] && p[i].v == big_v[i] && p[i].qc == QC_GOOD;
    CHECK(same);
    free(p);
    /* the limit keeps the first readings of the range */
    CHECK(store__read(rc, 2, INT64_MIN, INT64_MAX, 5, &p, &n, &e) == ERR_OK && n == 5 &&
          p[4].t_ms == big_t[4]);
    free(p);
    /* a second backfill into the middle of full blocks */
    int64_t mid[2] = {T0 + 1500 * 1000 + 500, T0 + 10 * 1000 + 1};
    double mv[2] = {7, 8};
    CHECK(store_n(2, mid, mv, 2, true, &dups) == ERR_OK && dups == 0);
    CHECK(store_n(2, big_t + 1500, big_v + 1500, 1, true, &dups) == ERR_OK && dups == 1);
    CHECK(compact_now());
    CHECK(blocks_disjoint());
    CHECK(count_range(rc, false, 2, INT64_MIN, INT64_MAX, &sorted) == 3002 && sorted);
}

/* A crash: the store is dropped without compacting; the next open replays the log. */
static void test_replay_after_crash(void)
{
    struct err e = ERR_INIT;
    bool sorted;
    size_t dups;
    int64_t t[3] = {T0 + 400 * 60000, T0 + 401 * 60000, T0 - 10 * 60000};
    double v[3] = {4, 5, 6};
    CHECK(store_n(3, t, v, 3, true, &dups) == ERR_OK);
    CHECK(store_n(1, t, v, 3, true, &dups) == ERR_OK && dups == 0);
    int64_t before = stored();
    store__close(NULL); /* no compaction: what a kill -9 leaves */
    store__writer_thread(true);
    CHECK(store__open(wc, 0, &e) == ERR_OK);
    store__writer_thread(false);
    CHECK(stored() == before);
    CHECK(count_range(rc, false, 3, INT64_MIN, INT64_MAX, &sorted) == 3 && sorted);
    CHECK(count_range(rc, false, 1, INT64_MIN, INT64_MAX, &sorted) == 111 && sorted);
    CHECK(store_n(3, t, v, 3, true, &dups) == ERR_OK && dups == 3);
    CHECK(blocks_disjoint());
}

static int64_t log_rows(void)
{
    struct err e = ERR_INIT;
    struct db_stmt *s;
    bool row;
    static const char sql[] = "SELECT COUNT(*) FROM reading_log";
    int64_t n = -1;
    if (db_prepare(rc, &s, sql, &e) == ERR_OK && db_step(s, &row, &e) == ERR_OK && row)
        n = db_col_int64(s, 0);
    db_done(s);
    return n;
}

/* Compaction in rounds of small steps: the log goes only when a round has visited every
 * series; a crash in the middle of a round neither loses nor doubles a reading. */
static void test_rounds_and_crash_mid_round(void)
{
    struct err e = ERR_INIT;
    size_t dups;
    bool sorted;
    int64_t t[4] = {T0 + 600 * 60000, T0 + 601 * 60000, T0 + 602 * 60000, T0 + 603 * 60000};
    double v[4] = {1, 2, 3, 4};
    int64_t before = stored();
    for (int id = 1; id <= 3; id++)
        CHECK(store_n(id, t, v, 4, true, &dups) == ERR_OK && dups == 0);
    CHECK(log_rows() == 3);
    sensors__settings.compact_after = 10; /* a step moves 1 reading: one series per step */
    store__writer_thread(true);
    CHECK(store__maintain(wc, 0, false, &e) == ERR_OK); /* 12 cached >= 10: a round, step 1 */
    store__writer_thread(false);
    CHECK(log_rows() == 3); /* the round has not visited every series yet */
    CHECK(stored() == before + 12); /* once each, though the log still holds what moved */
    /* readings that arrive during the round stay in the log after it */
    int64_t t2[1] = {T0 + 700 * 60000};
    CHECK(store_n(1, t2, v, 1, true, &dups) == ERR_OK);
    /* a crash now: the replay finds the moved readings in blocks and skips them */
    store__close(NULL);
    store__writer_thread(true);
    CHECK(store__open(wc, 0, &e) == ERR_OK); /* replays, then compacts all */
    store__writer_thread(false);
    CHECK(stored() == before + 13);
    CHECK(log_rows() == 0);
    CHECK(blocks_disjoint());
    for (int id = 1; id <= 3; id++)
        CHECK(count_range(rc, false, id, T0 + 600 * 60000, INT64_MAX, &sorted) == (id == 1 ? 5 : 4));
    /* a whole round in steps, without a crash */
    int64_t t3[4] = {T0 + 800 * 60000, T0 + 801 * 60000, T0 + 802 * 60000, T0 + 803 * 60000};
    for (int id = 1; id <= 3; id++)
        CHECK(store_n(id, t3, v, 4, true, &dups) == ERR_OK);
    store__writer_thread(true);
    for (int k = 0; k < 10 && log_rows() > 0; k++)
        CHECK(store__maintain(wc, 0, false, &e) == ERR_OK);
    store__writer_thread(false);
    CHECK(log_rows() == 0);
    CHECK(stored() == before + 25);
    CHECK(blocks_disjoint());
    sensors__settings.compact_after = 1000000;
}

static enum err_code count_cb(int64_t id, const struct store_pt *p, void *ctx, struct err *err)
{
    (void)id;
    (void)p;
    (void)err;
    (*(int64_t *)ctx)++;
    return ERR_OK;
}

static void test_export_deleted_sensor_and_retention(void)
{
    struct err e = ERR_INIT;
    size_t dups;
    int64_t n = 0;
    int64_t t[2] = {T0 + 500 * 60000, T0 + 501 * 60000};
    double v[2] = {1, 2};
    CHECK(store_n(4, t, v, 2, true, &dups) == ERR_OK); /* in the log, not compacted */
    CHECK(store__export(rc, count_cb, &n, &e) == ERR_OK && n == stored());
    /* sensor 4 is deleted with its station: its logged readings are not compacted into blocks */
    CHECK(db_exec(rc, "DELETE FROM sensors WHERE id = 4", &e) == ERR_OK);
    int64_t before = stored();
    CHECK(compact_now());
    CHECK(stored() == before - 2);
    /* retention: blocks that end before the cut go */
    sensors__settings.raw_retention_days = 0;
    store__close(wc);
    store__writer_thread(true);
    CHECK(store__open(wc, 1, &e) == ERR_OK);
    CHECK(store__maintain(wc, (T0 + 86400000 + 302 * 60000) / 1000, false, &e) == ERR_OK);
    store__writer_thread(false);
    bool sorted;
    /* the cut is T0 + 302 min: sensor 2's first blocks (readings of T0 .. T0 + 50 min) end
     * before it and go; a block that ends after it stays whole */
    struct db_stmt *s;
    bool row;
    static const char sql[] = "SELECT COUNT(*) FROM reading_blocks WHERE t1 < ?";
    CHECK(db_prepare(rc, &s, sql, &e) == ERR_OK);
    db_bind_int64(s, 1, T0 + 302 * 60000);
    CHECK(db_step(s, &row, &e) == ERR_OK && row && db_col_int64(s, 0) == 0);
    db_done(s);
    CHECK(count_range(rc, false, 2, INT64_MIN, INT64_MAX, &sorted) < 3002);
    CHECK(count_range(rc, false, 1, INT64_MIN, INT64_MAX, &sorted) > 0);
}

/* A database from before the store: one row per reading in `readings`. */
static void test_conversion(void)
{
    struct err e = ERR_INIT;
    bool sorted;
    store__close(wc);
    CHECK(db_exec(wc,
                  "DELETE FROM reading_blocks; DELETE FROM reading_log;"
                  "CREATE TABLE readings (sensor_id INTEGER NOT NULL, t INTEGER NOT NULL,"
                  " v REAL NOT NULL, qc INTEGER NOT NULL, qc_failed INTEGER NOT NULL,"
                  " PRIMARY KEY (sensor_id, t)) WITHOUT ROWID;"
                  "WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i < 2499)"
                  " INSERT INTO readings SELECT 1 + i % 2, 1790000000000 + i * 1000, i * 0.5,"
                  " CASE WHEN i % 7 = 0 THEN 3 ELSE 1 END, CASE WHEN i % 7 = 0 THEN 4 ELSE 0 END"
                  " FROM k;",
                  &e) == ERR_OK);
    store__writer_thread(true);
    CHECK(store__open(wc, 0, &e) == ERR_OK);
    store__writer_thread(false);
    CHECK(stored() == 2500);
    CHECK(blocks_disjoint());
    CHECK(count_range(rc, false, 1, INT64_MIN, INT64_MAX, &sorted) == 1250 && sorted);
    struct store_pt *p;
    size_t n;
    CHECK(store__read(rc, 1, INT64_MIN, INT64_MAX, 1, &p, &n, &e) == ERR_OK && n == 1 &&
          p[0].qc == QC_SUSPECT && p[0].failed == 4 && p[0].v == 0);
    free(p);
    struct db_stmt *s;
    bool row = true;
    static const char sql[] = "SELECT 1 FROM sqlite_master WHERE name = 'readings'";
    CHECK(db_prepare(rc, &s, sql, &e) == ERR_OK && db_step(s, &row, &e) == ERR_OK && !row);
    db_done(s);
}

int main(void)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/sinergi-unit-store-%d.db", (int)getpid());
    CHECK(open_db(path));
    struct err e = ERR_INIT;
    store__writer_thread(true);
    CHECK(store__open(wc, 0, &e) == ERR_OK);
    store__writer_thread(false);
    test_log_cache_and_visibility();
    test_compaction_and_backfill();
    test_replay_after_crash();
    test_rounds_and_crash_mid_round();
    test_export_deleted_sensor_and_retention();
    test_conversion();
    store__close(wc);
    db_release(db, wc);
    db_release(db, rc);
    db_close(db);
    unlink(path);
    char aux[80];
    snprintf(aux, sizeof aux, "%s-wal", path);
    unlink(aux);
    snprintf(aux, sizeof aux, "%s-shm", path);
    unlink(aux);
    return unit_report("test_store");
}
