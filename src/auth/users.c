/* users: accounts, each in one OPD with one role; passwords hashed with argon2id. */
#include <sodium.h>
#include <string.h>

#include "auth/auth_int.h"
#include "core/clock.h"
#include "core/jsonv.h"
#include "core/banned.h"

enum { PASSWORD_MIN = 12, PASSWORD_MAX = 256 };

enum err_code auth_password_check(const char *password, struct err *err)
{
    size_t n = password ? strlen(password) : 0;
    if (n < PASSWORD_MIN || n > PASSWORD_MAX)
        return err_set(err, ERR_INVALID, "password must be %d to %d characters", PASSWORD_MIN,
                       PASSWORD_MAX);
    return ERR_OK;
}

static enum err_code hash_password(char out[crypto_pwhash_STRBYTES], const char *password,
                                   struct err *err)
{
    if (crypto_pwhash_str_alg(out, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                              crypto_pwhash_MEMLIMIT_INTERACTIVE, crypto_pwhash_ALG_ARGON2ID13))
        return err_set(err, ERR_UNAVAILABLE, "not enough memory to hash the password, try again");
    return ERR_OK;
}

static json_t *user_json(struct db_stmt *s)
{
    char created[CLOCK_FMT_LEN], updated[CLOCK_FMT_LEN];
    clock_fmt_utc(created, db_col_int64(s, 5));
    clock_fmt_utc(updated, db_col_int64(s, 6));
    return json_pack("{s:s,s:s,s:s,s:s,s:b,s:s,s:s}", "username", db_col_text(s, 0),
                     "display_name", db_col_text(s, 1), "role", db_col_text(s, 2), "opd",
                     db_col_text(s, 3), "disabled", (int)db_col_int64(s, 4), "created_at", created,
                     "updated_at", updated);
}

enum err_code auth_user_list(struct db_conn *c, const char *opd_filter, json_t **out,
                             struct err *err)
{
    struct db_stmt *s;
    bool row;
    if (db_prepare(c, &s,
                   "SELECT username, display_name, role, opd_code, disabled, created_at, updated_at "
                   "FROM users WHERE (? IS NULL OR opd_code = ?) ORDER BY username",
                   err))
        return err->code;
    db_bind_text(s, 1, opd_filter);
    db_bind_text(s, 2, opd_filter);
    json_t *a = json_array();
    while (db_step(s, &row, err) == ERR_OK && row)
        json_array_append_new(a, user_json(s));
    if (err->code) {
        json_decref(a);
        return err->code;
    }
    *out = a;
    return ERR_OK;
}

enum err_code auth_user_get(struct db_conn *c, const char *username, json_t **out,
                            char opd_out[AUTH_OPD_MAX + 1], struct err *err)
{
    struct db_stmt *s;
    bool row;
    if (db_prepare(c, &s,
                   "SELECT username, display_name, role, opd_code, disabled, created_at, updated_at "
                   "FROM users WHERE username = ?",
                   err))
        return err->code;
    db_bind_text(s, 1, username);
    if (db_step(s, &row, err))
        return err->code;
    if (!row)
        return err_set(err, ERR_NOT_FOUND, "no user named '%s'", username);
    if (out)
        *out = user_json(s);
    if (opd_out)
        snprintf(opd_out, AUTH_OPD_MAX + 1, "%s", db_col_text(s, 3));
    db_done(s);
    return ERR_OK;
}

enum err_code auth_user_count(struct db_conn *c, int64_t *out, struct err *err)
{
    struct db_stmt *s;
    bool row;
    if (db_prepare(c, &s, "SELECT COUNT(*) FROM users", err) || db_step(s, &row, err))
        return err->code;
    *out = row ? db_col_int64(s, 0) : 0;
    db_done(s);
    return ERR_OK;
}

enum err_code auth_user_create(struct db_conn *c, const struct actor *a, const char *username,
                               const char *display_name, enum role role, const char *opd,
                               const char *password, struct err *err)
{
    char hash[crypto_pwhash_STRBYTES];
    if (auth__check_name("username", username, 3, AUTH_NAME_MAX, err) ||
        auth_password_check(password, err) || hash_password(hash, password, err))
        return err->code;
    if (display_name && strlen(display_name) > 200)
        return err_set(err, ERR_INVALID, "field 'display_name' must be at most 200 characters");
    struct db_stmt *s;
    int64_t now = clock_now_s();
    if (db_begin(c, err))
        return err->code;
    if (auth__opd_exists(c, opd, err) == ERR_OK &&
        db_prepare(c, &s,
                   "INSERT INTO users (username, display_name, role, opd_code, password_hash, "
                   "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                   err) == ERR_OK) {
        db_bind_text(s, 1, username);
        db_bind_text(s, 2, display_name ? display_name : "");
        db_bind_text(s, 3, auth_role_name(role));
        db_bind_text(s, 4, opd);
        db_bind_text(s, 5, hash);
        db_bind_int64(s, 6, now);
        db_bind_int64(s, 7, now);
        if (db_run(s, err) == ERR_CONFLICT) {
            err_clear(err);
            err_set(err, ERR_CONFLICT, "a user named '%s' already exists", username);
        }
    }
    sodium_memzero(hash, sizeof hash);
    json_t *detail = json_pack("{s:s,s:s}", "role", auth_role_name(role), "opd", opd);
    if (err->code || audit_record(c, a, "user.create", "user", username, detail, err) ||
        db_commit(c, err)) {
        json_decref(detail);
        db_rollback(c);
        return err->code;
    }
    json_decref(detail);
    return ERR_OK;
}

static enum err_code revoke_sessions(struct db_conn *c, const char *username, struct err *err)
{
    struct db_stmt *s;
    if (db_prepare(c, &s,
                   "UPDATE sessions SET revoked_at = ? WHERE revoked_at IS NULL AND user_id = "
                   "(SELECT id FROM users WHERE username = ?)",
                   err))
        return err->code;
    db_bind_int64(s, 1, clock_now_s());
    db_bind_text(s, 2, username);
    return db_run(s, err);
}

static const char *const user_fields[] = {"username", "display_name", "role", "opd",
                                          "password", "disabled",     NULL};

enum err_code auth_user_update(struct db_conn *c, const struct actor *a, const char *username,
                               json_t *in, struct err *err)
{
    const char *display_name, *role_s, *opd, *password, *uname;
    bool disabled = false, has_disabled;
    enum role role = ROLE_VIEWER;
    char hash[crypto_pwhash_STRBYTES] = "";
    if (jsonv_only(in, user_fields, err) ||
        jsonv_str(in, "username", AUTH_NAME_MAX, false, &uname, err) ||
        jsonv_str(in, "display_name", 200, false, &display_name, err) ||
        jsonv_str(in, "role", 16, false, &role_s, err) ||
        jsonv_str(in, "opd", AUTH_OPD_MAX, false, &opd, err) ||
        jsonv_str(in, "password", 256, false, &password, err) ||
        jsonv_bool(in, "disabled", false, &disabled, &has_disabled, err))
        return err->code;
    if (uname && strcmp(uname, username) != 0)
        return err_set(err, ERR_INVALID, "field 'username' cannot be changed");
    if (role_s && !auth_role_parse(role_s, &role))
        return err_set(err, ERR_INVALID, "field 'role' must be admin, operator, staff or viewer");
    if (password && (auth_password_check(password, err) || hash_password(hash, password, err)))
        return err->code;
    if (a && a->who && strcmp(a->who->username, username) == 0 &&
        ((role_s && role != ROLE_ADMIN) || (has_disabled && disabled)))
        return err_set(err, ERR_CONFLICT, "you cannot demote or disable your own account");
    struct db_stmt *s;
    if (db_begin(c, err))
        return err->code;
    if ((!opd || auth__opd_exists(c, opd, err) == ERR_OK) &&
        db_prepare(c, &s,
                   "UPDATE users SET display_name = COALESCE(?, display_name), "
                   "role = COALESCE(?, role), opd_code = COALESCE(?, opd_code), "
                   "password_hash = COALESCE(?, password_hash), "
                   "disabled = COALESCE(?, disabled), updated_at = ? WHERE username = ?",
                   err) == ERR_OK) {
        db_bind_text(s, 1, display_name);
        db_bind_text(s, 2, role_s ? auth_role_name(role) : NULL);
        db_bind_text(s, 3, opd);
        db_bind_text(s, 4, *hash ? hash : NULL);
        if (has_disabled)
            db_bind_int64(s, 5, disabled);
        else
            db_bind_null(s, 5);
        db_bind_int64(s, 6, clock_now_s());
        db_bind_text(s, 7, username);
        if (db_run(s, err) == ERR_OK && db_changes(c) == 0)
            err_set(err, ERR_NOT_FOUND, "no user named '%s'", username);
    }
    sodium_memzero(hash, sizeof hash);
    if (!err->code && (password || role_s || opd || (has_disabled && disabled)))
        revoke_sessions(c, username, err);
    json_t *detail = json_object();
    if (display_name)
        json_object_set_new(detail, "display_name", json_true());
    if (role_s)
        json_object_set_new(detail, "role", json_string(auth_role_name(role)));
    if (opd)
        json_object_set_new(detail, "opd", json_string(opd));
    if (password)
        json_object_set_new(detail, "password", json_string("changed"));
    if (has_disabled)
        json_object_set_new(detail, "disabled", json_boolean(disabled));
    if (err->code || audit_record(c, a, "user.update", "user", username, detail, err) ||
        db_commit(c, err)) {
        json_decref(detail);
        db_rollback(c);
        return err->code;
    }
    json_decref(detail);
    auth__sessions_changed();
    return ERR_OK;
}

enum err_code auth_user_set_password(struct db_conn *c, const struct actor *a,
                                     const char *username, const char *password, struct err *err)
{
    json_t *in = json_pack("{s:s}", "password", password);
    enum err_code rc = auth_user_update(c, a, username, in, err);
    json_decref(in);
    return rc;
}

enum err_code auth_user_delete(struct db_conn *c, const struct actor *a, const char *username,
                               struct err *err)
{
    if (a && a->who && strcmp(a->who->username, username) == 0)
        return err_set(err, ERR_CONFLICT, "you cannot delete your own account");
    struct db_stmt *s;
    if (db_begin(c, err))
        return err->code;
    if (db_prepare(c, &s, "DELETE FROM users WHERE username = ?", err) == ERR_OK) {
        db_bind_text(s, 1, username);
        if (db_run(s, err) == ERR_OK && db_changes(c) == 0)
            err_set(err, ERR_NOT_FOUND, "no user named '%s'", username);
    }
    if (err->code || audit_record(c, a, "user.delete", "user", username, NULL, err) ||
        db_commit(c, err)) {
        db_rollback(c);
        return err->code;
    }
    auth__sessions_changed();
    return ERR_OK;
}
