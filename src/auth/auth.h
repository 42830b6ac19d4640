/* auth: OPDs (tenants), users and roles, sessions, login throttling and the hash-chained audit
 * log. Every write here records an audit row in the same transaction as the change. */
#ifndef SINERGI_AUTH_H
#define SINERGI_AUTH_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"
#include "db/db.h"

enum role {
    ROLE_ADMIN = 1,    /* platform administration */
    ROLE_OPERATOR = 2, /* COC duty officer: reads everything, handles alerts */
    ROLE_STAFF = 4,    /* works on their own OPD's objects only */
    ROLE_VIEWER = 8,   /* read-only */
};
#define ROLE_ANY (ROLE_ADMIN | ROLE_OPERATOR | ROLE_STAFF | ROLE_VIEWER)

const char *auth_role_name(enum role r);
bool auth_role_parse(const char *s, enum role *out);

enum { AUTH_TOKEN_LEN = 43, AUTH_NAME_MAX = 32, AUTH_OPD_MAX = 32 };

/* Who is calling: a signed-in user, resolved from a session token. */
struct principal {
    int64_t user_id, session_id;
    char username[AUTH_NAME_MAX + 1];
    enum role role;
    char opd[AUTH_OPD_MAX + 1];
    char csrf[AUTH_TOKEN_LEN + 1];
    bool via_cookie;
};

/* Who did a write, as the audit log records it. `who` NULL means the command line. */
struct actor {
    const struct principal *who;
    const char *request_id;
    const char *client;
};

struct auth_settings {
    int64_t session_idle_s, session_max_s;
    int64_t fail_user_max, fail_addr_max, window_s;
};
void auth_configure(const struct auth_settings *s);

extern const struct db_migration auth_migrations[];

/* ---- OPDs -------------------------------------------------------------------------------- */
enum err_code auth_opd_list(struct db_conn *c, json_t **out, struct err *err);
enum err_code auth_opd_get(struct db_conn *c, const char *code, json_t **out, struct err *err);
/* `in` holds code, name and optionally description. */
enum err_code auth_opd_create(struct db_conn *c, const struct actor *a, json_t *in, json_t **out,
                              struct err *err);
enum err_code auth_opd_update(struct db_conn *c, const struct actor *a, const char *code, json_t *in,
                              json_t **out, struct err *err);
/* ERR_CONFLICT while users or other objects still belong to the OPD. */
enum err_code auth_opd_delete(struct db_conn *c, const struct actor *a, const char *code,
                              struct err *err);

/* ---- users ------------------------------------------------------------------------------- */
/* Passwords: 12 to 256 bytes, hashed with argon2id. */
enum err_code auth_password_check(const char *password, struct err *err);
/* `opd_filter` NULL lists every user. */
enum err_code auth_user_list(struct db_conn *c, const char *opd_filter, json_t **out,
                             struct err *err);
/* *out gets the user JSON; `opd_out` (may be NULL) the user's OPD, for access checks. */
enum err_code auth_user_get(struct db_conn *c, const char *username, json_t **out,
                            char opd_out[AUTH_OPD_MAX + 1], struct err *err);
enum err_code auth_user_create(struct db_conn *c, const struct actor *a, const char *username,
                               const char *display_name, enum role role, const char *opd,
                               const char *password, struct err *err);
/* `in` may hold display_name, role, opd, password, disabled. A new password, role, OPD or
 * disabling revokes the user's sessions. */
enum err_code auth_user_update(struct db_conn *c, const struct actor *a, const char *username,
                               json_t *in, struct err *err);
enum err_code auth_user_set_password(struct db_conn *c, const struct actor *a,
                                     const char *username, const char *password, struct err *err);
enum err_code auth_user_delete(struct db_conn *c, const struct actor *a, const char *username,
                               struct err *err);
enum err_code auth_user_count(struct db_conn *c, int64_t *out, struct err *err);
/* Makes a random password of `len` characters (len < size of out). */
void auth_random_password(char *out, size_t len);

/* ---- tokens ------------------------------------------------------------------------------ */
/* A new random opaque token (shown once) and its SHA-256 hex (the only form stored). Used for
 * sessions and for device tokens of stations. */
void auth_token_new(char token[AUTH_TOKEN_LEN + 1], char hash[65]);
void auth_token_hash(const char *token, char hash[65]);
/* True when `t` has the shape of a token (43 base64url characters). */
bool auth_token_well_formed(const char *t);

/* ---- sessions ---------------------------------------------------------------------------- */
/* Checks the throttle, the password, then opens a session. On success fills `token` (shown to
 * the client once, stored hashed) and `p`. ERR_RATE_LIMITED sets *retry_after_s. */
enum err_code auth_login(struct db_conn *c, const struct actor *a, const char *username,
                         const char *password, char token[AUTH_TOKEN_LEN + 1], struct principal *p,
                         int64_t *retry_after_s, struct err *err);
/* ERR_UNAUTHENTICATED for an unknown, expired, revoked or disabled session. */
enum err_code auth_session_resolve(struct db_conn *c, const char *token, struct principal *p,
                                   struct err *err);
enum err_code auth_logout(struct db_conn *c, const struct actor *a, struct err *err);
bool auth_csrf_matches(const struct principal *p, const char *header_value);

/* ---- audit ------------------------------------------------------------------------------- */
/* Appends one hash-chained row; call inside the transaction that makes the change. `detail` is
 * borrowed and must hold no personal data. */
enum err_code audit_record(struct db_conn *c, const struct actor *a, const char *action,
                           const char *object_type, const char *object_id, json_t *detail,
                           struct err *err);

struct audit_filter {
    const char *actor, *action, *object_type, *object_id, *opd;
    int64_t from, to; /* unix seconds; 0 = open */
    int64_t before_id;
    int64_t limit;
};
enum err_code audit_list(struct db_conn *c, const struct audit_filter *f, json_t **out,
                         struct err *err);
/* Recomputes the chain. *bad_id is 0 when intact, else the first row that does not match. */
enum err_code audit_verify(struct db_conn *c, int64_t *rows, int64_t *bad_id, char *why,
                           size_t why_len, struct err *err);

#endif
