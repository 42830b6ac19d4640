/* Reference for bench/ingest: a plain C program inserting readings into SQLite in 10,000-row
 * transactions, with an index on (sensor, time) — what a straightforward logger backend does.
 * Durable like sinergi: WAL with synchronous=FULL, so every COMMIT is fsynced.
 *
 * usage: plain_sqlite DB_PATH READINGS T0 [MAX_SECONDS [ORDER]]
 * Inserts rows 0 .. READINGS-1 of the batch data set (dataset.h): the same (sensor, time, value)
 * rows, in the same order, that bench/ingest sends to sinergi and InfluxDB (ORDER "sent", the
 * default: time-major, one reading of every sensor per minute), or the same rows sorted by
 * (sensor, time) (ORDER "sensor": each transaction appends to few index pages, the order that
 * suits SQLite best). Stops early, at a transaction boundary, after MAX_SECONDS (default 20).
 * Counts the rows afterwards. */
#define _POSIX_C_SOURCE 200809L
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dataset.h"

enum { TXN_ROWS = 10000 };

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fail(sqlite3 *db, const char *what)
{
    fprintf(stderr, "plain_sqlite: %s: %s\n", what, sqlite3_errmsg(db));
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s DB READINGS T0 [MAX_SECONDS]\n", argv[0]);
        return 2;
    }
    long long total = strtoll(argv[2], NULL, 10), t0 = strtoll(argv[3], NULL, 10);
    double max_s = argc > 4 ? strtod(argv[4], NULL) : 20.0;
    int by_sensor = argc > 5 && strcmp(argv[5], "sensor") == 0;
    if (argc > 5 && !by_sensor && strcmp(argv[5], "sent") != 0) {
        fprintf(stderr, "plain_sqlite: ORDER must be 'sent' or 'sensor'\n");
        return 2;
    }
    long long g = 0, step = 0; /* ORDER sensor: the next row is sensor g at step `step` */
    sqlite3 *db;
    if (sqlite3_open(argv[1], &db) != SQLITE_OK)
        return fail(db, "open");
    if (sqlite3_exec(db,
                     "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                     "CREATE TABLE IF NOT EXISTS readings (sensor INTEGER NOT NULL,"
                     " t INTEGER NOT NULL, v REAL NOT NULL);"
                     "CREATE INDEX IF NOT EXISTS readings_sensor_t ON readings(sensor, t);",
                     NULL, NULL, NULL) != SQLITE_OK)
        return fail(db, "schema");
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "INSERT INTO readings (sensor, t, v) VALUES (?, ?, ?)", -1, &st,
                           NULL) != SQLITE_OK)
        return fail(db, "prepare");
    double start = now_s(), secs;
    long long n = 0;
    while (n < total && now_s() - start < max_s) {
        if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
            return fail(db, "begin");
        for (int i = 0; i < TXN_ROWS && n < total; i++, n++) {
            long long row = n;
            if (by_sensor) { /* rows g, g + 1000, g + 2000, ... below total, then g + 1 */
                while (step * DS_BATCH + g >= total) {
                    g++;
                    step = 0;
                }
                row = step * DS_BATCH + g;
                step++;
            }
            struct ds_row r = ds_batch_row(row, t0);
            sqlite3_bind_int64(st, 1, r.global + 1);
            sqlite3_bind_int64(st, 2, r.t_s * 1000); /* ms, as sinergi stores it */
            sqlite3_bind_double(st, 3, (double)r.v_milli / 1000.0);
            if (sqlite3_step(st) != SQLITE_DONE)
                return fail(db, "insert");
            sqlite3_reset(st);
        }
        if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
            return fail(db, "commit");
    }
    secs = now_s() - start;
    sqlite3_finalize(st);
    long long counted = -1;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM readings", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        counted = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    printf("plain_sqlite readings=%lld seconds=%.3f readings_per_s=%.0f counted=%lld\n", n, secs,
           secs > 0 ? (double)n / secs : 0, counted);
    return counted == n ? 0 : 1;
}
