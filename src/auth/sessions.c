/* sessions: sign-in, opaque tokens stored as SHA-256, idle and absolute expiry, revocation. */
#include <pthread.h>
#include <stdatomic.h>
#include <sodium.h>
#include <string.h>

#include "auth/auth_int.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/banned.h"

/* Unknown users are checked against this hash so that timing does not tell which names exist. */
static char dummy_hash[crypto_pwhash_STRBYTES];
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;

static void make_dummy(void)
{
    char pw[33];
    auth_random_password(pw, 32);
    if (crypto_pwhash_str_alg(dummy_hash, pw, strlen(pw), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                              crypto_pwhash_MEMLIMIT_INTERACTIVE, crypto_pwhash_ALG_ARGON2ID13))
        dummy_hash[0] = 0;
}

struct user_row {
    int64_t id;
    char hash[crypto_pwhash_STRBYTES];
    enum role role;
    char opd[AUTH_OPD_MAX + 1];
    bool disabled;
};

static enum err_code load_user(struct db_conn *c, const char *username, struct user_row *u,
                               bool *found, struct err *err)
{
    struct db_stmt *s;
    if (db_prepare(c, &s,
                   "SELECT id, password_hash, role, opd_code, disabled FROM users WHERE username = ?",
                   err))
        return err->code;
    db_bind_text(s, 1, username);
    if (db_step(s, found, err))
        return err->code;
    if (*found) {
        u->id = db_col_int64(s, 0);
        snprintf(u->hash, sizeof u->hash, "%s", db_col_text(s, 1));
        if (!auth_role_parse(db_col_text(s, 2), &u->role))
            u->role = ROLE_VIEWER;
        snprintf(u->opd, sizeof u->opd, "%s", db_col_text(s, 3));
        u->disabled = db_col_int64(s, 4) != 0;
    }
    db_done(s);
    return ERR_OK;
}

enum err_code auth_login(struct db_conn *c, const struct actor *a, const char *username,
                         const char *password, char token[AUTH_TOKEN_LEN + 1], struct principal *p,
                         int64_t *retry_after_s, struct err *err)
{
    int64_t now = clock_now_s();
    const char *addr = a && a->client ? a->client : "local";
    int64_t wait_user = auth__throttle_wait("u", username, auth__settings.fail_user_max, now);
    int64_t wait_addr = auth__throttle_wait("a", addr, auth__settings.fail_addr_max, now);
    int64_t wait = wait_user > wait_addr ? wait_user : wait_addr;
    if (wait > 0) {
        *retry_after_s = wait;
        log_warn("event=login_throttled by=%s", wait_user > 0 ? "account" : "address");
        return err_set(err, ERR_RATE_LIMITED,
                       "too many failed sign-ins; try again in %lld seconds", (long long)wait);
    }
    struct user_row u = {0};
    bool found = false;
    if (strlen(username) > AUTH_NAME_MAX || strlen(password) > 256)
        found = false;
    else if (load_user(c, username, &u, &found, err))
        return err->code;
    bool ok;
    if (found) {
        ok = crypto_pwhash_str_verify(u.hash, password, strlen(password)) == 0 && !u.disabled;
    } else {
        pthread_once(&dummy_once, make_dummy);
        if (crypto_pwhash_str_verify(dummy_hash, password, strlen(password)) == 0)
            log_error("event=dummy_hash_matched"); /* cannot happen: the password is random */
        ok = false;
        ok = false;
    }
    sodium_memzero(u.hash, sizeof u.hash);
    if (!ok) {
        auth__throttle_fail("u", username, now);
        auth__throttle_fail("a", addr, now);
        log_info("event=login_failed");
        return err_set(err, ERR_UNAUTHENTICATED, "username or password is wrong");
    }
    auth__throttle_clear("u", username);

    char hash[65];
    memset(p, 0, sizeof *p);
    auth_token_new(token, hash);
    auth__random_token(p->csrf, sizeof p->csrf, 32);
    p->user_id = u.id;
    p->role = u.role;
    snprintf(p->username, sizeof p->username, "%s", username);
    snprintf(p->opd, sizeof p->opd, "%s", u.opd);

    struct db_stmt *s;
    if (db_begin(c, err))
        return err->code;
    if (db_prepare(c, &s,
                   "INSERT INTO sessions (token_hash, user_id, csrf, created_at, last_seen_at, "
                   "expires_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                   err) == ERR_OK) {
        bool row;
        db_bind_text(s, 1, hash);
        db_bind_int64(s, 2, u.id);
        db_bind_text(s, 3, p->csrf);
        db_bind_int64(s, 4, now);
        db_bind_int64(s, 5, now);
        db_bind_int64(s, 6, now + auth__settings.session_max_s);
        if (db_step(s, &row, err) == ERR_OK && row)
            p->session_id = db_col_int64(s, 0);
        db_done(s);
    }
    struct actor self = {.who = p, .request_id = a ? a->request_id : NULL, .client = addr};
    char sid[24];
    snprintf(sid, sizeof sid, "%lld", (long long)p->session_id);
    if (err->code || audit_record(c, &self, "auth.login", "session", sid, NULL, err) ||
        db_commit(c, err)) {
        db_rollback(c);
        return err->code;
    }
    return ERR_OK;
}

/* ---- resolved sessions, cached ----------------------------------------------------------------
 * Resolving a token on every request would open a database read transaction each time (lock
 * calls and a shared mutex: a third of the server's CPU on GET /api/v1/me). A resolved session
 * is kept for SESSION_CACHE_S seconds; any revocation in this process (logout, password, role or
 * OPD change, disabling, deletion) bumps a generation that empties the cache at once. A change
 * made by another process (the command line) takes effect within SESSION_CACHE_S. */
enum { SESSION_SLOTS = 1024, SESSION_CACHE_S = 5 };

struct cached_session {
    char hash[65];
    struct principal p;
    int64_t last_seen, expires_at, cached_at;
    uint64_t generation;
};

static struct cached_session session_cache[SESSION_SLOTS];
static pthread_mutex_t session_cache_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_uint_fast64_t session_generation = 1;

void auth__sessions_changed(void)
{
    atomic_fetch_add(&session_generation, 1);
}

static struct cached_session *cache_slot(const char hash[65])
{
    uint64_t h = 0;
    for (int i = 0; i < 16; i++) /* the hash is hex of SHA-256: any bits are uniform */
        h = h * 16 + (uint64_t)(hash[i] <= '9' ? hash[i] - '0' : hash[i] - 'a' + 10);
    return &session_cache[h % SESSION_SLOTS];
}

static int64_t touch_step(void)
{
    int64_t step = auth__settings.session_idle_s / 4;
    return step > 60 ? 60 : step;
}

static bool cache_get(const char hash[65], int64_t now, struct principal *p)
{
    bool hit = false;
    pthread_mutex_lock(&session_cache_lock);
    struct cached_session *c = cache_slot(hash);
    if (c->generation == atomic_load(&session_generation) && strcmp(c->hash, hash) == 0 &&
        now - c->cached_at < SESSION_CACHE_S && now - c->last_seen < touch_step() &&
        now < c->expires_at) {
        *p = c->p;
        hit = true;
    }
    pthread_mutex_unlock(&session_cache_lock);
    return hit;
}

static void cache_put(const char hash[65], const struct principal *p, int64_t last_seen,
                      int64_t expires_at, int64_t now, uint64_t generation)
{
    pthread_mutex_lock(&session_cache_lock);
    struct cached_session *c = cache_slot(hash);
    memcpy(c->hash, hash, 65);
    c->p = *p;
    c->last_seen = last_seen;
    c->expires_at = expires_at;
    c->cached_at = now;
    c->generation = generation;
    pthread_mutex_unlock(&session_cache_lock);
}

enum err_code auth_session_resolve(struct db_conn *c, const char *token, struct principal *p,
                                   struct err *err)
{
    if (!auth_token_well_formed(token))
        return err_set(err, ERR_UNAUTHENTICATED, "the session token is malformed; sign in again");
    char hash[65];
    auth_token_hash(token, hash);
    int64_t now = clock_now_s();
    if (cache_get(hash, now, p))
        return ERR_OK;
    /* read before the lookup: a revocation during it makes the entry stale, not wrong */
    uint64_t generation = atomic_load(&session_generation);
    struct db_stmt *s;
    bool row;
    if (db_prepare(c, &s,
                   "SELECT s.id, s.user_id, s.csrf, s.last_seen_at, s.expires_at, s.revoked_at, "
                   "u.username, u.role, u.opd_code, u.disabled FROM sessions s "
                   "JOIN users u ON u.id = s.user_id WHERE s.token_hash = ?",
                   err))
        return err->code;
    db_bind_text(s, 1, hash);
    if (db_step(s, &row, err))
        return err->code;
    if (!row)
        return err_set(err, ERR_UNAUTHENTICATED, "the session is unknown; sign in again");
    int64_t last_seen = db_col_int64(s, 3), expires_at = db_col_int64(s, 4);
    const char *why = NULL;
    if (!db_col_is_null(s, 5))
        why = "the session was signed out; sign in again";
    else if (now >= expires_at)
        why = "the session reached its time limit; sign in again";
    else if (now - last_seen >= auth__settings.session_idle_s)
        why = "the session expired after inactivity; sign in again";
    else if (db_col_int64(s, 9))
        why = "the account is disabled";
    if (why) {
        db_done(s);
        return err_set(err, ERR_UNAUTHENTICATED, "%s", why);
    }
    memset(p, 0, sizeof *p);
    p->session_id = db_col_int64(s, 0);
    p->user_id = db_col_int64(s, 1);
    snprintf(p->csrf, sizeof p->csrf, "%s", db_col_text(s, 2));
    snprintf(p->username, sizeof p->username, "%s", db_col_text(s, 6));
    if (!auth_role_parse(db_col_text(s, 7), &p->role))
        p->role = ROLE_VIEWER;
    snprintf(p->opd, sizeof p->opd, "%s", db_col_text(s, 8));
    db_done(s);

    /* Idle expiry needs last use; writing it on every request would serialise reads on the
     * write lock, so it is refreshed at a granularity well below the idle limit. */
    if (now - last_seen >= touch_step()) {
        struct err e = ERR_INIT;
        if (db_prepare(c, &s, "UPDATE sessions SET last_seen_at = ? WHERE id = ?", &e) == ERR_OK) {
            db_bind_int64(s, 1, now);
            db_bind_int64(s, 2, p->session_id);
            if (db_run(s, &e))
                log_warn("event=session_touch_failed detail=\"%s\"", e.msg);
            else
                last_seen = now;
        }
    }
    cache_put(hash, p, last_seen, expires_at, now, generation);
    return ERR_OK;
}

enum err_code auth_logout(struct db_conn *c, const struct actor *a, struct err *err)
{
    struct db_stmt *s;
    char sid[24];
    snprintf(sid, sizeof sid, "%lld", (long long)a->who->session_id);
    if (db_begin(c, err))
        return err->code;
    if (db_prepare(c, &s, "UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                   err) == ERR_OK) {
        db_bind_int64(s, 1, clock_now_s());
        db_bind_int64(s, 2, a->who->session_id);
        db_run(s, err);
    }
    if (err->code || audit_record(c, a, "auth.logout", "session", sid, NULL, err) ||
        db_commit(c, err)) {
        db_rollback(c);
        return err->code;
    }
    auth__sessions_changed();
    return ERR_OK;
}

bool auth_csrf_matches(const struct principal *p, const char *header_value)
{
    size_t n = strlen(p->csrf);
    return header_value && strlen(header_value) == n && n > 0 &&
           sodium_memcmp(p->csrf, header_value, n) == 0;
}
