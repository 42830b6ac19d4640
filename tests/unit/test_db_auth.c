/* Unit tests of src/db and src/auth against a temporary SQLite file: migrations, error mapping,
 * users and passwords, sessions, the audit chain catching an edited row, and a migration
 * numbered below the newest one still applied, and the write gate (writers take turns in
 * arrival order; one that waits past the busy timeout gives up). */
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <unistd.h>

#include "auth/auth.h"
#include "db/db.h"
#include "regions/regions.h"
#include "unit.h"

static const struct db_migration *const lists[] = {auth_migrations, regions_migrations, NULL};

static struct db *open_temp(char *path, size_t n)
{
    snprintf(path, n, "/tmp/sinergi-unit-%d.db", (int)getpid());
    unlink(path);
    struct db *db;
    struct err e = ERR_INIT;
    struct db_options o = {.path = path, .pool_size = 2, .busy_timeout_ms = 1000, .sync_full = 0};
    if (db_open(&db, &o, &e))
        return NULL;
    struct db_conn *c = db_acquire(db);
    db_migrate(c, lists, &e);
    db_migrate(c, lists, &e); /* twice: idempotent */
    db_release(db, c);
    return e.code ? NULL : db;
}

static void test_users_and_sessions(struct db_conn *c)
{
    struct err e = ERR_INIT;
    CHECK(auth_user_create(c, NULL, "siti", "Siti", ROLE_STAFF, "bpbd", "short", &e) ==
          ERR_INVALID);
    err_clear(&e);
    CHECK(auth_user_create(c, NULL, "siti", "Siti", ROLE_STAFF, "bpbd", "sungai-masamba-2020",
                           &e) == ERR_OK);
    CHECK(auth_user_create(c, NULL, "siti", "Siti", ROLE_STAFF, "bpbd", "sungai-masamba-2020",
                           &e) == ERR_CONFLICT);
    err_clear(&e);
    CHECK(auth_user_create(c, NULL, "budi", "", ROLE_STAFF, "no-such-opd", "sungai-masamba-2020",
                           &e) == ERR_INVALID);
    err_clear(&e);

    char token[AUTH_TOKEN_LEN + 1];
    struct principal p, q;
    int64_t retry;
    struct actor a = {NULL, "req1", "127.0.0.1"};
    CHECK(auth_login(c, &a, "siti", "wrong-password-x", token, &p, &retry, &e) ==
          ERR_UNAUTHENTICATED);
    err_clear(&e);
    CHECK(auth_login(c, &a, "siti", "sungai-masamba-2020", token, &p, &retry, &e) == ERR_OK);
    CHECK(strlen(token) == AUTH_TOKEN_LEN);
    CHECK(auth_session_resolve(c, token, &q, &e) == ERR_OK);
    CHECK_STR(q.username, "siti");
    CHECK(q.role == ROLE_STAFF);
    CHECK_STR(q.opd, "bpbd");
    struct actor self = {&q, "req2", "127.0.0.1"};
    CHECK(auth_logout(c, &self, &e) == ERR_OK);
    CHECK(auth_session_resolve(c, token, &q, &e) == ERR_UNAUTHENTICATED);
    err_clear(&e);
    CHECK(auth_session_resolve(c, "not-a-token", &q, &e) == ERR_UNAUTHENTICATED);
}

static void test_audit_chain(struct db_conn *c)
{
    struct err e = ERR_INIT;
    int64_t rows, bad;
    char why[128];
    CHECK(audit_verify(c, &rows, &bad, why, sizeof why, &e) == ERR_OK);
    CHECK(bad == 0);
    CHECK(rows >= 3); /* user.create, auth.login, auth.logout */
    CHECK(db_exec(c, "UPDATE audit_log SET actor = 'mallory' WHERE id = 2", &e) == ERR_OK);
    CHECK(audit_verify(c, &rows, &bad, why, sizeof why, &e) == ERR_OK);
    CHECK(bad == 2);
}

static void test_throttle(struct db_conn *c)
{
    struct auth_settings s = {1800, 43200, 3, 100, 900};
    auth_configure(&s);
    struct err e = ERR_INIT;
    char token[AUTH_TOKEN_LEN + 1];
    struct principal p;
    int64_t retry = 0;
    struct actor a = {NULL, "r", "10.0.0.9"};
    for (int i = 0; i < 3; i++) {
        err_clear(&e);
        auth_login(c, &a, "siti", "wrong-password-x", token, &p, &retry, &e);
    }
    err_clear(&e);
    CHECK(auth_login(c, &a, "siti", "sungai-masamba-2020", token, &p, &retry, &e) ==
          ERR_RATE_LIMITED);
    CHECK(retry > 0 && retry <= 900);
}

/* A room's migration numbered below another room's newest still runs on an older database. */
static void test_migration_below_the_newest(struct db_conn *c)
{
    static const struct db_migration room_a[] = {{900, "a", "CREATE TABLE mt_a (x INTEGER)"},
                                                 {0, NULL, NULL}};
    static const struct db_migration room_b_old[] = {{950, "b", "CREATE TABLE mt_b (x INTEGER)"},
                                                     {0, NULL, NULL}};
    static const struct db_migration room_a_new[] = {{900, "a", "CREATE TABLE mt_a (x INTEGER)"},
                                                     {901, "a2", "CREATE TABLE mt_a2 (x INTEGER)"},
                                                     {0, NULL, NULL}};
    static const struct db_migration *const before[] = {room_a, room_b_old, NULL};
    static const struct db_migration *const after[] = {room_a_new, room_b_old, NULL};
    struct err e = ERR_INIT;
    struct db_stmt *s;
    bool row = false;
    CHECK(db_migrate(c, before, &e) == ERR_OK);
    CHECK(db_migrate(c, after, &e) == ERR_OK);
    CHECK(db_migrate(c, after, &e) == ERR_OK); /* and once only */
    CHECK(db_prepare(c, &s, "SELECT COUNT(*) FROM mt_a2", &e) == ERR_OK &&
          db_step(s, &row, &e) == ERR_OK && row);
    if (row)
        db_done(s);
    CHECK(db_prepare(c, &s, "SELECT COUNT(*) FROM schema_migrations WHERE version >= 900", &e) ==
              ERR_OK &&
          db_step(s, &row, &e) == ERR_OK && row && db_col_int64(s, 0) == 3);
    if (row)
        db_done(s);
    CHECK(e.code == ERR_OK);
}

/* ---- the write gate: writers of one process take turns in arrival order ---------------- */
struct gate_writer {
    struct db *db;
    const char *who;
    bool txn; /* db_begin ... db_commit, else one autocommit INSERT */
    enum err_code rc;
    pthread_t thread;
};

static void *gate_write(void *arg)
{
    struct gate_writer *g = arg;
    static const char sql[] = "INSERT INTO gate_order (who) VALUES (?)";
    struct err e = ERR_INIT;
    struct db_conn *c = db_acquire(g->db);
    struct db_stmt *s;
    if (g->txn && db_begin(c, &e) == ERR_OK) {
        if (db_prepare(c, &s, sql, &e) == ERR_OK) {
            db_bind_text(s, 1, g->who);
            db_run(s, &e);
        }
        if (e.code)
            db_rollback(c);
        else
            db_commit(c, &e);
    } else if (!g->txn && db_prepare(c, &s, sql, &e) == ERR_OK) {
        db_bind_text(s, 1, g->who);
        db_run(s, &e);
    }
    g->rc = e.code;
    db_release(g->db, c);
    return NULL;
}

static void test_write_gate(void)
{
    char path[128];
    snprintf(path, sizeof path, "/tmp/sinergi-unit-gate-%d.db", (int)getpid());
    unlink(path);
    struct db *db;
    struct err e = ERR_INIT;
    struct db_options o = {.path = path, .pool_size = 4, .busy_timeout_ms = 300};
    CHECK(db_open(&db, &o, &e) == ERR_OK);
    if (e.code)
        return;
    struct db_conn *a = db_acquire(db);
    CHECK(db_exec(a, "CREATE TABLE gate_order (id INTEGER PRIMARY KEY, who TEXT)", &e) == ERR_OK);
    CHECK(db_write_waiters(db, 0, 0) == 0);
    /* A holds a write transaction; B (one statement) and C (a transaction) queue behind it. */
    CHECK(db_begin(a, &e) == ERR_OK);
    struct gate_writer b = {db, "B", false, ERR_OK, 0}, c = {db, "C", true, ERR_OK, 0};
    pthread_create(&b.thread, NULL, gate_write, &b);
    CHECK(db_write_waiters(db, 1, 5000) == 1); /* B queued before C starts */
    pthread_create(&c.thread, NULL, gate_write, &c);
    CHECK(db_write_waiters(db, 2, 5000) == 2);
    struct db_stmt *s;
    CHECK(db_prepare(a, &s, "INSERT INTO gate_order (who) VALUES ('A')", &e) == ERR_OK);
    CHECK(db_run(s, &e) == ERR_OK);
    CHECK(db_commit(a, &e) == ERR_OK);
    pthread_join(b.thread, NULL);
    pthread_join(c.thread, NULL);
    CHECK(b.rc == ERR_OK && c.rc == ERR_OK);
    /* handed on in arrival order: A, then B, then C */
    CHECK(db_prepare(a, &s, "SELECT group_concat(who, '') FROM (SELECT who FROM gate_order "
                            "ORDER BY id)", &e) == ERR_OK);
    bool row;
    CHECK(db_step(s, &row, &e) == ERR_OK && row);
    CHECK_STR(db_col_text(s, 0), "ABC");
    db_done(s);
    CHECK(db_write_waiters(db, 0, 0) == 0);
    /* A writer that waits longer than the busy timeout gives up with ERR_UNAVAILABLE, leaves
     * the queue, and the gate still works afterwards. */
    CHECK(db_begin(a, &e) == ERR_OK);
    struct gate_writer d = {db, "D", false, ERR_OK, 0};
    pthread_create(&d.thread, NULL, gate_write, &d);
    pthread_join(d.thread, NULL);
    CHECK(d.rc == ERR_UNAVAILABLE);
    CHECK(db_write_waiters(db, 0, 0) == 0);
    db_rollback(a);
    struct gate_writer f = {db, "F", true, ERR_OK, 0};
    gate_write(&f);
    CHECK(f.rc == ERR_OK);
    db_release(db, a);
    db_close(db);
    unlink(path);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    char path[128];
    struct db *db = open_temp(path, sizeof path);
    CHECK(db != NULL);
    if (!db)
        return unit_report("test_db_auth");
    struct db_conn *c = db_acquire(db);
    test_users_and_sessions(c);
    test_audit_chain(c);
    test_throttle(c);
    test_migration_below_the_newest(c);
    db_release(db, c);
    db_close(db);
    unlink(path);
    test_write_gate();
    return unit_report("test_db_auth");
}
