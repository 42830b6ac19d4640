/* db: the only room that speaks to the database engine. Connections come from a pool, statements
 * are prepared once per connection and cached, values are always bound, errors become err_code.
 * SQL given here uses the portable subset of SQLite and PostgreSQL with '?' placeholders, so a
 * libpq backend can sit behind the same calls. */
#ifndef SINERGI_DB_H
#define SINERGI_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

struct db;
struct db_conn;
struct db_stmt;

struct db_options {
    const char *path;
    int pool_size;       /* connections kept open */
    int busy_timeout_ms; /* how long a writer waits for the lock before ERR_UNAVAILABLE */
    bool sync_full;      /* fsync on every commit */
};

enum err_code db_open(struct db **out, const struct db_options *o, struct err *err);
/* All connections must have been released. */
void db_close(struct db *db);

/* Borrowed until db_release; blocks while every connection is in use. */
struct db_conn *db_acquire(struct db *db);
void db_release(struct db *db, struct db_conn *c);

/* Statement text without parameters, possibly several statements: migrations and pragmas only. */
enum err_code db_exec(struct db_conn *c, const char *sql, struct err *err);

/* A write transaction: takes the write lock at once so it cannot fail later on upgrade. */
enum err_code db_begin(struct db_conn *c, struct err *err);
/* A read-only transaction: its snapshot is taken by the first statement that reads. */
enum err_code db_begin_read(struct db_conn *c, struct err *err);
enum err_code db_commit(struct db_conn *c, struct err *err);
/* Safe to call when no transaction is open. */
void db_rollback(struct db_conn *c);

/* A prepared statement for `sql`, cached on the connection by the address of `sql` (pass string
 * literals). Returned reset with no bindings; borrowed until the connection is released. */
enum err_code db_prepare(struct db_conn *c, struct db_stmt **out, const char *sql, struct err *err);

/* Parameters are 1-based. Text and blobs are copied. A NULL text binds SQL NULL. */
void db_bind_text(struct db_stmt *s, int i, const char *v);
void db_bind_textn(struct db_stmt *s, int i, const char *v, size_t n);
void db_bind_int64(struct db_stmt *s, int i, int64_t v);
void db_bind_double(struct db_stmt *s, int i, double v);
void db_bind_null(struct db_stmt *s, int i);
void db_bind_blob(struct db_stmt *s, int i, const void *v, size_t n);

/* Steps once: *row is true when a row is available to read with db_col_*. */
enum err_code db_step(struct db_stmt *s, bool *row, struct err *err);
/* Steps to completion ignoring rows: INSERT/UPDATE/DELETE. */
enum err_code db_run(struct db_stmt *s, struct err *err);
/* Resets the statement so it releases its read snapshot; call after reading what you need. */
void db_done(struct db_stmt *s);

/* Column values of the current row, 0-based. Text and blobs are borrowed until the next step. */
const char *db_col_text(struct db_stmt *s, int i); /* NULL for SQL NULL */
int64_t db_col_int64(struct db_stmt *s, int i);
double db_col_double(struct db_stmt *s, int i);
bool db_col_is_null(struct db_stmt *s, int i);
const void *db_col_blob(struct db_stmt *s, int i, size_t *len);

/* Rows changed by the last INSERT/UPDATE/DELETE on this connection. */
int64_t db_changes(struct db_conn *c);

/* Numbered schema changes. Each capability owns a list, terminated by {0}. */
struct db_migration {
    int version;
    const char *name;
    const char *sql;
};

/* Applies, each in its own transaction and in version order, every migration the database has
 * not recorded yet, whatever its place among those applied (rooms number their own ranges).
 * Versions must be unique across all lists. */
enum err_code db_migrate(struct db_conn *c, const struct db_migration *const *lists, struct err *err);

/* Database errors seen since start, for /metrics. */
uint64_t db_errors_total(void);
/* Writers of this process waiting for the write gate (db_begin and single-statement writes take
 * it in arrival order; see db_sqlite.c): waits up to `timeout_ms` until at least `at_least` wait,
 * then returns how many do. For tests and diagnostics. */
int db_write_waiters(struct db *db, int at_least, int timeout_ms);

#endif
