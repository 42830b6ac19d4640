/* opds: the departments (Organisasi Perangkat Daerah) that own users and objects. */
#include <string.h>

#include "auth/auth_int.h"
#include "core/clock.h"
#include "core/jsonv.h"
#include "core/banned.h"

static json_t *opd_json(struct db_stmt *s)
{
    char created[CLOCK_FMT_LEN], updated[CLOCK_FMT_LEN];
    clock_fmt_utc(created, db_col_int64(s, 3));
    clock_fmt_utc(updated, db_col_int64(s, 4));
    return json_pack("{s:s,s:s,s:s,s:s,s:s}", "code", db_col_text(s, 0), "name",
                     db_col_text(s, 1), "description", db_col_text(s, 2), "created_at", created,
                     "updated_at", updated);
}

enum err_code auth_opd_list(struct db_conn *c, json_t **out, struct err *err)
{
    struct db_stmt *s;
    bool row;
    if (db_prepare(c, &s,
                   "SELECT code, name, description, created_at, updated_at FROM opds ORDER BY code",
                   err))
        return err->code;
    json_t *a = json_array();
    while (db_step(s, &row, err) == ERR_OK && row)
        json_array_append_new(a, opd_json(s));
    if (err->code) {
        json_decref(a);
        return err->code;
    }
    *out = a;
    return ERR_OK;
}

enum err_code auth_opd_get(struct db_conn *c, const char *code, json_t **out, struct err *err)
{
    struct db_stmt *s;
    bool row;
    if (db_prepare(c, &s,
                   "SELECT code, name, description, created_at, updated_at FROM opds WHERE code = ?",
                   err))
        return err->code;
    db_bind_text(s, 1, code);
    if (db_step(s, &row, err))
        return err->code;
    if (!row)
        return err_set(err, ERR_NOT_FOUND, "no OPD with code '%s'", code);
    *out = opd_json(s);
    db_done(s);
    return ERR_OK;
}

enum err_code auth__opd_exists(struct db_conn *c, const char *code, struct err *err)
{
    json_t *j;
    struct err e = ERR_INIT;
    if (auth_opd_get(c, code, &j, &e)) {
        if (e.code == ERR_NOT_FOUND)
            return err_set(err, ERR_INVALID, "field 'opd' names no OPD: '%s'", code);
        return err_set(err, e.code, "%s", e.msg);
    }
    json_decref(j);
    return ERR_OK;
}

enum err_code auth_opd_create(struct db_conn *c, const struct actor *a, json_t *in, json_t **out,
                              struct err *err)
{
    const char *code, *name, *desc;
    if (jsonv_str(in, "code", AUTH_OPD_MAX, true, &code, err) ||
        auth__check_name("code", code, 2, AUTH_OPD_MAX, err) ||
        jsonv_str(in, "name", 200, true, &name, err) ||
        jsonv_str(in, "description", 1000, false, &desc, err))
        return err->code;
    struct db_stmt *s;
    int64_t now = clock_now_s();
    if (db_begin(c, err))
        return err->code;
    if (db_prepare(c, &s,
                   "INSERT INTO opds (code, name, description, created_at, updated_at) "
                   "VALUES (?, ?, ?, ?, ?)",
                   err) == ERR_OK) {
        db_bind_text(s, 1, code);
        db_bind_text(s, 2, name);
        db_bind_text(s, 3, desc ? desc : "");
        db_bind_int64(s, 4, now);
        db_bind_int64(s, 5, now);
        db_run(s, err);
    }
    if (err->code == ERR_CONFLICT) {
        err_clear(err);
        err_set(err, ERR_CONFLICT, "an OPD with code '%s' already exists", code);
    }
    json_t *detail = json_pack("{s:s}", "name", name);
    if (err->code || audit_record(c, a, "opd.create", "opd", code, detail, err) ||
        db_commit(c, err)) {
        json_decref(detail);
        db_rollback(c);
        return err->code;
    }
    json_decref(detail);
    return auth_opd_get(c, code, out, err);
}

enum err_code auth_opd_update(struct db_conn *c, const struct actor *a, const char *code, json_t *in,
                              json_t **out, struct err *err)
{
    const char *name, *desc;
    json_t *jc = json_object_get(in, "code");
    if (jc && !(json_is_string(jc) && strcmp(json_string_value(jc), code) == 0))
        return err_set(err, ERR_INVALID, "field 'code' cannot be changed");
    if (jsonv_str(in, "name", 200, false, &name, err) ||
        jsonv_str(in, "description", 1000, false, &desc, err))
        return err->code;
    if (name && !*name)
        return err_set(err, ERR_INVALID, "field 'name' must not be empty");
    struct db_stmt *s;
    if (db_begin(c, err))
        return err->code;
    if (db_prepare(c, &s,
                   "UPDATE opds SET name = COALESCE(?, name), description = COALESCE(?, "
                   "description), updated_at = ? WHERE code = ?",
                   err) == ERR_OK) {
        db_bind_text(s, 1, name);
        db_bind_text(s, 2, desc);
        db_bind_int64(s, 3, clock_now_s());
        db_bind_text(s, 4, code);
        if (db_run(s, err) == ERR_OK && db_changes(c) == 0)
            err_set(err, ERR_NOT_FOUND, "no OPD with code '%s'", code);
    }
    json_t *detail = json_object();
    if (name)
        json_object_set_new(detail, "name", json_string(name));
    if (desc)
        json_object_set_new(detail, "description", json_string(desc));
    if (err->code || audit_record(c, a, "opd.update", "opd", code, detail, err) ||
        db_commit(c, err)) {
        json_decref(detail);
        db_rollback(c);
        return err->code;
    }
    json_decref(detail);
    return auth_opd_get(c, code, out, err);
}

enum err_code auth_opd_delete(struct db_conn *c, const struct actor *a, const char *code,
                              struct err *err)
{
    struct db_stmt *s;
    if (db_begin(c, err))
        return err->code;
    if (db_prepare(c, &s, "DELETE FROM opds WHERE code = ?", err) == ERR_OK) {
        db_bind_text(s, 1, code);
        if (db_run(s, err) == ERR_OK && db_changes(c) == 0)
            err_set(err, ERR_NOT_FOUND, "no OPD with code '%s'", code);
    }
    if (err->code == ERR_CONFLICT) {
        err_clear(err);
        err_set(err, ERR_CONFLICT,
                "OPD '%s' still has users or objects; move or delete them first", code);
    }
    if (err->code || audit_record(c, a, "opd.delete", "opd", code, NULL, err) ||
        db_commit(c, err)) {
        db_rollback(c);
        return err->code;
    }
    return ERR_OK;
}
