/* db over SQLite: WAL, foreign keys, busy timeout, a pool of connections with cached statements. */
#include "db/db.h"

#include <assert.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/banned.h"

enum { STMT_SLOTS = 256 };

struct db_stmt {
    const char *sql; /* cache key: address of the caller's literal */
    sqlite3_stmt *st;
    struct db_conn *conn;
};

struct db_conn {
    sqlite3 *h;
    struct db *db;
    struct db_conn *next_free;
    bool gated;               /* holds the write gate: a transaction of db_begin ... */
    struct db_stmt *gate_stmt; /* ... or this single-statement write */
    struct db_stmt cache[STMT_SLOTS];
};

/* The write gate. SQLite lets one connection write at a time and makes the others poll with
 * sleeps (its busy handler backs off 1, 2, 5 ... 100 ms): beside the ingest writer, which holds
 * the lock almost all the time, a webhook deliverer's one-row update waited up to ~2 s. Writers
 * in this process take the gate first, in arrival order, each handed it by the one before; the
 * SQLite lock is then free when they ask for it. Other processes (the CLI) still meet SQLite's
 * busy timeout. */
struct gate_waiter {
    struct gate_waiter *next;
    pthread_cond_t turn;
    bool granted;
};

struct db {
    pthread_mutex_t lock;
    pthread_cond_t freed;
    struct db_conn *free_list;
    struct db_conn **all;
    int n;
    int busy_timeout_ms;
    pthread_mutex_t gate_lock;
    pthread_cond_t gate_queued; /* a writer joined the queue */
    bool gate_held;
    struct gate_waiter *gate_head, *gate_tail;
};

static atomic_uint_fast64_t errors_total;

uint64_t db_errors_total(void)
{
    return atomic_load(&errors_total);
}

/* Maps an SQLite result to an err_code; the library text goes to err->msg for the log only
 * (5xx bodies never show it). */
static enum err_code fail(struct db_conn *c, int rc, const char *what, struct err *err)
{
    int ext = c ? sqlite3_extended_errcode(c->h) : rc;
    const char *msg = c ? sqlite3_errmsg(c->h) : sqlite3_errstr(rc);
    switch (rc & 0xff) {
    case SQLITE_CONSTRAINT:
        if (ext == SQLITE_CONSTRAINT_FOREIGNKEY)
            return err_set(err, ERR_CONFLICT, "the object is referenced by or refers to another");
        if (ext == SQLITE_CONSTRAINT_UNIQUE || ext == SQLITE_CONSTRAINT_PRIMARYKEY)
            return err_set(err, ERR_CONFLICT, "an object with this key already exists");
        return err_set(err, ERR_INVALID, "the value breaks a rule of the data: %s", msg);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        atomic_fetch_add(&errors_total, 1);
        return err_set(err, ERR_UNAVAILABLE, "the database is busy, try again shortly");
    default:
        atomic_fetch_add(&errors_total, 1);
        return err_set(err, ERR_INTERNAL, "database error in %s: %s (%d)", what, msg, ext);
    }
}

/* Waits for the write gate, at most the busy timeout (ERR_UNAVAILABLE then, as SQLite's busy
 * timeout would have said). */
static enum err_code gate_enter(struct db *db, struct err *err)
{
    pthread_mutex_lock(&db->gate_lock);
    if (!db->gate_held) {
        db->gate_held = true;
        pthread_mutex_unlock(&db->gate_lock);
        return ERR_OK;
    }
    struct gate_waiter me = {0};
    pthread_cond_init(&me.turn, NULL);
    if (db->gate_tail)
        db->gate_tail->next = &me;
    else
        db->gate_head = &me;
    db->gate_tail = &me;
    pthread_cond_broadcast(&db->gate_queued); /* db_write_waiters; no waiter: no system call */
    struct timespec until = clock_deadline(CLOCK_REALTIME, (uint64_t)db->busy_timeout_ms * 1000000u);
    while (!me.granted)
        if (pthread_cond_timedwait(&me.turn, &db->gate_lock, &until) != 0 && !me.granted)
            break;
    if (!me.granted) { /* timed out: leave the queue */
        struct gate_waiter *prev = NULL;
        for (struct gate_waiter *w = db->gate_head; w; prev = w, w = w->next)
            if (w == &me) {
                if (prev)
                    prev->next = me.next;
                else
                    db->gate_head = me.next;
                if (db->gate_tail == &me)
                    db->gate_tail = prev;
                break;
            }
    }
    pthread_mutex_unlock(&db->gate_lock);
    pthread_cond_destroy(&me.turn);
    if (me.granted)
        return ERR_OK;
    atomic_fetch_add(&errors_total, 1);
    return err_set(err, ERR_UNAVAILABLE, "the database is busy, try again shortly");
}

static int waiters_locked(struct db *db)
{
    int n = 0;
    for (struct gate_waiter *w = db->gate_head; w; w = w->next)
        n++;
    return n;
}

int db_write_waiters(struct db *db, int at_least, int timeout_ms)
{
    struct timespec until = clock_deadline(CLOCK_REALTIME, (uint64_t)timeout_ms * 1000000u);
    pthread_mutex_lock(&db->gate_lock);
    int n;
    while ((n = waiters_locked(db)) < at_least)
        if (pthread_cond_timedwait(&db->gate_queued, &db->gate_lock, &until) != 0)
            break;
    n = waiters_locked(db);
    pthread_mutex_unlock(&db->gate_lock);
    return n;
}

/* Hands the gate to the writer waiting longest, or opens it. */
static void gate_leave(struct db *db)
{
    pthread_mutex_lock(&db->gate_lock);
    struct gate_waiter *w = db->gate_head;
    if (w) {
        db->gate_head = w->next;
        if (!db->gate_head)
            db->gate_tail = NULL;
        w->granted = true; /* gate_held stays true: it passes to w */
        pthread_cond_signal(&w->turn);
    } else {
        db->gate_held = false;
    }
    pthread_mutex_unlock(&db->gate_lock);
}

/* The connection's single-statement write finished (or was reset): the gate goes on. */
static void stmt_gate_leave(struct db_stmt *s)
{
    if (s->conn->gate_stmt == s) {
        s->conn->gate_stmt = NULL;
        gate_leave(s->conn->db);
    }
}

static enum err_code open_one(struct db_conn **out, const struct db_options *o, struct err *err)
{
    struct db_conn *c = calloc(1, sizeof *c);
    if (!c)
        return err_set(err, ERR_INTERNAL, "out of memory opening the database");
    int rc = sqlite3_open_v2(o->path, &c->h,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             NULL);
    if (rc != SQLITE_OK) {
        err_set(err, ERR_INTERNAL, "cannot open database %s: %s", o->path,
                c->h ? sqlite3_errmsg(c->h) : sqlite3_errstr(rc));
        sqlite3_close(c->h);
        free(c);
        return err->code;
    }
    sqlite3_busy_timeout(c->h, o->busy_timeout_ms);
    sqlite3_extended_result_codes(c->h, 1);
    /* 32 MiB of page cache per connection keeps the hot B-tree pages of a few thousand sensors
     * in memory; a larger WAL before checkpointing spreads checkpoint cost over more commits. */
    const char *pragmas = o->sync_full ? "PRAGMA page_size=16384; PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                                         "PRAGMA foreign_keys=ON; PRAGMA cache_size=-32768;"
                                         "PRAGMA wal_autocheckpoint=1000;"
                                       : "PRAGMA page_size=16384; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                                         "PRAGMA foreign_keys=ON; PRAGMA cache_size=-32768;"
                                         "PRAGMA wal_autocheckpoint=1000;";
    if (db_exec(c, pragmas, err)) {
        sqlite3_close(c->h);
        free(c);
        return err->code;
    }
    *out = c;
    return ERR_OK;
}

static void close_one(struct db_conn *c)
{
    for (int i = 0; i < STMT_SLOTS; i++)
        if (c->cache[i].st)
            sqlite3_finalize(c->cache[i].st);
    sqlite3_close(c->h);
    free(c);
}

enum err_code db_open(struct db **out, const struct db_options *o, struct err *err)
{
    struct db *db = calloc(1, sizeof *db);
    int n = o->pool_size > 0 ? o->pool_size : 4;
    if (!db || !(db->all = calloc((size_t)n, sizeof *db->all))) {
        free(db);
        return err_set(err, ERR_INTERNAL, "out of memory opening the database");
    }
    pthread_mutex_init(&db->lock, NULL);
    pthread_cond_init(&db->freed, NULL);
    pthread_mutex_init(&db->gate_lock, NULL);
    pthread_cond_init(&db->gate_queued, NULL);
    db->busy_timeout_ms = o->busy_timeout_ms;
    for (int i = 0; i < n; i++) {
        if (open_one(&db->all[i], o, err)) {
            db->n = i;
            db_close(db);
            return err->code;
        }
        db->all[i]->db = db;
        db->all[i]->next_free = db->free_list;
        db->free_list = db->all[i];
    }
    db->n = n;
    *out = db;
    return ERR_OK;
}

void db_close(struct db *db)
{
    if (!db)
        return;
    for (int i = 0; i < db->n; i++)
        close_one(db->all[i]);
    free(db->all);
    pthread_mutex_destroy(&db->lock);
    pthread_cond_destroy(&db->freed);
    pthread_mutex_destroy(&db->gate_lock);
    pthread_cond_destroy(&db->gate_queued);
    free(db);
}

struct db_conn *db_acquire(struct db *db)
{
    pthread_mutex_lock(&db->lock);
    while (!db->free_list)
        pthread_cond_wait(&db->freed, &db->lock);
    struct db_conn *c = db->free_list;
    db->free_list = c->next_free;
    pthread_mutex_unlock(&db->lock);
    return c;
}

void db_release(struct db *db, struct db_conn *c)
{
    if (!sqlite3_get_autocommit(c->h) || c->gated) {
        log_error("event=db_leaked_transaction action=rollback");
        db_rollback(c);
    }
    if (c->gate_stmt) { /* a write whose rows were not read to the end */
        sqlite3_reset(c->gate_stmt->st);
        stmt_gate_leave(c->gate_stmt);
    }
    pthread_mutex_lock(&db->lock);
    c->next_free = db->free_list;
    db->free_list = c;
    pthread_cond_signal(&db->freed);
    pthread_mutex_unlock(&db->lock);
}

enum err_code db_exec(struct db_conn *c, const char *sql, struct err *err)
{
    int rc = sqlite3_exec(c->h, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? ERR_OK : fail(c, rc, "exec", err);
}

enum err_code db_begin(struct db_conn *c, struct err *err)
{
    struct db_stmt *s;
    if (db_prepare(c, &s, "BEGIN IMMEDIATE", err) || gate_enter(c->db, err))
        return err->code;
    c->gated = true;
    if (db_run(s, err)) {
        c->gated = false;
        gate_leave(c->db);
    }
    return err->code;
}

enum err_code db_begin_read(struct db_conn *c, struct err *err)
{
    struct db_stmt *s;
    if (db_prepare(c, &s, "BEGIN DEFERRED", err))
        return err->code;
    return db_run(s, err);
}

enum err_code db_commit(struct db_conn *c, struct err *err)
{
    struct db_stmt *s;
    if (db_prepare(c, &s, "COMMIT", err))
        return err->code;
    if (db_run(s, err)) {
        db_rollback(c);
        return err->code;
    }
    if (c->gated) {
        c->gated = false;
        gate_leave(c->db);
    }
    return ERR_OK;
}

void db_rollback(struct db_conn *c)
{
    if (!sqlite3_get_autocommit(c->h))
        sqlite3_exec(c->h, "ROLLBACK", NULL, NULL, NULL);
    if (c->gated) {
        c->gated = false;
        gate_leave(c->db);
    }
}

enum err_code db_prepare(struct db_conn *c, struct db_stmt **out, const char *sql, struct err *err)
{
    uintptr_t h = (uintptr_t)sql;
    h ^= h >> 17;
    h *= 0x9E3779B97F4A7C15u;
    size_t i = (size_t)(h >> 56) % STMT_SLOTS;
    for (size_t probe = 0; probe < STMT_SLOTS; probe++, i = (i + 1) % STMT_SLOTS) {
        struct db_stmt *s = &c->cache[i];
        if (s->sql == sql) {
            sqlite3_reset(s->st);
            stmt_gate_leave(s);
            sqlite3_clear_bindings(s->st);
            *out = s;
            return ERR_OK;
        }
        if (!s->sql) {
            int rc = sqlite3_prepare_v3(c->h, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->st, NULL);
            if (rc != SQLITE_OK) {
                s->st = NULL;
                return fail(c, rc, "prepare", err);
            }
            s->sql = sql;
            s->conn = c;
            *out = s;
            return ERR_OK;
        }
    }
    return err_set(err, ERR_INTERNAL, "statement cache full");
}

void db_bind_text(struct db_stmt *s, int i, const char *v)
{
    int rc = v ? sqlite3_bind_text(s->st, i, v, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(s->st, i);
    assert(rc == SQLITE_OK);
    (void)rc;
}

void db_bind_textn(struct db_stmt *s, int i, const char *v, size_t n)
{
    int rc = sqlite3_bind_text(s->st, i, v, (int)n, SQLITE_TRANSIENT);
    assert(rc == SQLITE_OK);
    (void)rc;
}

void db_bind_int64(struct db_stmt *s, int i, int64_t v)
{
    int rc = sqlite3_bind_int64(s->st, i, v);
    assert(rc == SQLITE_OK);
    (void)rc;
}

void db_bind_double(struct db_stmt *s, int i, double v)
{
    int rc = sqlite3_bind_double(s->st, i, v);
    assert(rc == SQLITE_OK);
    (void)rc;
}

void db_bind_null(struct db_stmt *s, int i)
{
    int rc = sqlite3_bind_null(s->st, i);
    assert(rc == SQLITE_OK);
    (void)rc;
}

void db_bind_blob(struct db_stmt *s, int i, const void *v, size_t n)
{
    int rc = sqlite3_bind_blob(s->st, i, v, (int)n, SQLITE_TRANSIENT);
    assert(rc == SQLITE_OK);
    (void)rc;
}

enum err_code db_step(struct db_stmt *s, bool *row, struct err *err)
{
    struct db_conn *c = s->conn;
    *row = false;
    /* A write outside a transaction takes the gate for its own duration. */
    if (!c->gated && !c->gate_stmt && !sqlite3_stmt_busy(s->st) &&
        !sqlite3_stmt_readonly(s->st) && sqlite3_get_autocommit(c->h)) {
        if (gate_enter(c->db, err))
            return err->code;
        c->gate_stmt = s;
    }
    int rc = sqlite3_step(s->st);
    if (rc == SQLITE_ROW) {
        *row = true;
        return ERR_OK;
    }
    if (rc == SQLITE_DONE) {
        stmt_gate_leave(s);
        return ERR_OK;
    }
    enum err_code e = fail(c, rc, "step", err);
    sqlite3_reset(s->st);
    stmt_gate_leave(s);
    return e;
}

enum err_code db_run(struct db_stmt *s, struct err *err)
{
    bool row;
    do {
        if (db_step(s, &row, err))
            return err->code;
    } while (row);
    sqlite3_reset(s->st);
    return ERR_OK;
}

void db_done(struct db_stmt *s)
{
    sqlite3_reset(s->st);
    stmt_gate_leave(s);
}

const char *db_col_text(struct db_stmt *s, int i)
{
    return (const char *)sqlite3_column_text(s->st, i);
}

int64_t db_col_int64(struct db_stmt *s, int i)
{
    return sqlite3_column_int64(s->st, i);
}

double db_col_double(struct db_stmt *s, int i)
{
    return sqlite3_column_double(s->st, i);
}

bool db_col_is_null(struct db_stmt *s, int i)
{
    return sqlite3_column_type(s->st, i) == SQLITE_NULL;
}

const void *db_col_blob(struct db_stmt *s, int i, size_t *len)
{
    const void *p = sqlite3_column_blob(s->st, i);
    *len = (size_t)sqlite3_column_bytes(s->st, i);
    return p;
}

int64_t db_changes(struct db_conn *c)
{
    return sqlite3_changes64(c->h);
}

static enum err_code migration_applied(struct db_conn *c, int version, bool *out, struct err *err)
{
    struct db_stmt *s;
    if (db_prepare(c, &s, "SELECT 1 FROM schema_migrations WHERE version = ?", err))
        return err->code;
    db_bind_int64(s, 1, version);
    if (db_step(s, out, err))
        return err->code;
    db_done(s);
    return ERR_OK;
}

static const struct db_migration *next_migration(const struct db_migration *const *lists, int after)
{
    const struct db_migration *best = NULL;
    for (int l = 0; lists[l]; l++)
        for (const struct db_migration *m = lists[l]; m->version; m++)
            if (m->version > after && (!best || m->version < best->version))
                best = m;
    return best;
}

/* Every migration not yet recorded runs, in version order: each room numbers its own range, so
 * a room's new migration may sort below another room's newest one and must still run on a
 * database made before it. */
enum err_code db_migrate(struct db_conn *c, const struct db_migration *const *lists, struct err *err)
{
    for (int l = 0; lists[l]; l++)
        for (const struct db_migration *m = lists[l]; m->version; m++)
            for (int k = 0; lists[k]; k++)
                for (const struct db_migration *o = lists[k]; o->version; o++)
                    assert(o == m || o->version != m->version);
    if (db_exec(c,
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                "name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
                err))
        return err->code;
    for (const struct db_migration *m = next_migration(lists, 0); m;
         m = next_migration(lists, m->version)) {
        struct db_stmt *s;
        bool done = false;
        if (migration_applied(c, m->version, &done, err))
            return err->code;
        if (done)
            continue;
        if (db_begin(c, err) || db_exec(c, m->sql, err) ||
            db_prepare(c, &s,
                       "INSERT INTO schema_migrations (version, name, applied_at) "
                       "VALUES (?, ?, ?)",
                       err)) {
            db_rollback(c);
            return err->code;
        }
        db_bind_int64(s, 1, m->version);
        db_bind_text(s, 2, m->name);
        db_bind_int64(s, 3, clock_now_s());
        if (db_run(s, err) || db_commit(c, err)) {
            db_rollback(c);
            return err->code;
        }
        log_info("event=migration version=%d name=%s", m->version, m->name);
    }
    return ERR_OK;
}
