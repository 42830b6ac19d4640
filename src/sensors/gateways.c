/* gateways: one device token for every station of an OPD. A data concentrator, a LoRaWAN
 * network server or a Node-RED flow forwards readings of many stations in one SenML pack;
 * each record names its station (`<station-code>:<sensor>`), and records of stations outside
 * the gateway's OPD are rejected one by one. Every write is audited, like stations'. */
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/jsonv.h"
#include "sensors/sensors_int.h"
#include "core/banned.h"

static const char *const gateway_fields[] = {"code", "name", "opd", NULL};

static enum err_code finish(struct db_conn *c, const struct actor *a, const char *action,
                            const char *code, struct err *err)
{
    if (err->code || audit_record(c, a, action, "gateway", code, NULL, err) ||
        db_commit(c, err)) {
        db_rollback(c);
        return err->code;
    }
    return sensors__registry_load(c, err);
}

enum err_code sensors_gateway_create(struct db_conn *c, const struct actor *a, json_t *in,
                                     json_t **out, struct err *err)
{
    static const char sql[] = "INSERT INTO gateways (code, name, opd_code, token_hash, "
                              "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)";
    const char *code = NULL, *name = NULL, *opd = NULL;
    if (jsonv_only(in, gateway_fields, err) || jsonv_str(in, "code", CODE_MAX, true, &code, err) ||
        sensors__check_code("code", code, CODE_MAX, err) ||
        jsonv_str(in, "name", 127, true, &name, err) ||
        jsonv_str(in, "opd", AUTH_OPD_MAX, true, &opd, err) || sensors__check_opd(c, opd, err))
        return err->code;
    char token[AUTH_TOKEN_LEN + 1], hash[65];
    auth_token_new(token, hash);
    int64_t now = clock_now_s();
    struct db_stmt *s;
    if (db_begin(c, err))
        return err->code;
    if (db_prepare(c, &s, sql, err) == ERR_OK) {
        db_bind_text(s, 1, code);
        db_bind_text(s, 2, name);
        db_bind_text(s, 3, opd);
        db_bind_text(s, 4, hash);
        db_bind_int64(s, 5, now);
        db_bind_int64(s, 6, now);
        if (db_run(s, err) == ERR_CONFLICT) {
            err_clear(err);
            err_set(err, ERR_CONFLICT, "a gateway with code '%s' already exists", code);
        }
    }
    if (finish(c, a, "gateway.create", code, err))
        return err->code;
    char t[CLOCK_FMT_LEN];
    clock_fmt_utc(t, now);
    *out = json_pack("{s:s,s:s,s:s,s:s,s:s}", "code", code, "name", name, "opd", opd,
                     "created_at", t, "device_token", token);
    return ERR_OK;
}

static json_t *gateway_json(struct db_stmt *s)
{
    char t[CLOCK_FMT_LEN];
    clock_fmt_utc(t, db_col_int64(s, 3));
    return json_pack("{s:s,s:s,s:s,s:s}", "code", db_col_text(s, 0), "name", db_col_text(s, 1),
                     "opd", db_col_text(s, 2), "created_at", t);
}

enum err_code sensors_gateway_list(struct db_conn *c, const char *opd, json_t **out,
                                   struct err *err)
{
    static const char sql[] = "SELECT code, name, opd_code, created_at FROM gateways WHERE "
                              "? IS NULL OR opd_code = ? ORDER BY code";
    struct db_stmt *s;
    bool row;
    if (db_prepare(c, &s, sql, err))
        return err->code;
    db_bind_text(s, 1, opd);
    db_bind_text(s, 2, opd);
    json_t *a = json_array();
    while (db_step(s, &row, err) == ERR_OK && row)
        json_array_append_new(a, gateway_json(s));
    if (err->code) {
        json_decref(a);
        return err->code;
    }
    *out = a;
    return ERR_OK;
}

enum err_code sensors_gateway_get(struct db_conn *c, const char *code, json_t **out,
                                  char opd_out[AUTH_OPD_MAX + 1], struct err *err)
{
    static const char sql[] =
        "SELECT code, name, opd_code, created_at FROM gateways WHERE code = ?";
    struct db_stmt *s;
    bool row;
    if (db_prepare(c, &s, sql, err))
        return err->code;
    db_bind_text(s, 1, code);
    if (db_step(s, &row, err))
        return err->code;
    if (!row)
        return err_set(err, ERR_NOT_FOUND, "no gateway with code '%s'", code);
    snprintf(opd_out, AUTH_OPD_MAX + 1, "%s", db_col_text(s, 2));
    if (out)
        *out = gateway_json(s);
    db_done(s);
    return ERR_OK;
}

enum err_code sensors_gateway_delete(struct db_conn *c, const struct actor *a, const char *code,
                                     struct err *err)
{
    static const char sql[] = "DELETE FROM gateways WHERE code = ?";
    struct db_stmt *s;
    if (db_begin(c, err))
        return err->code;
    if (db_prepare(c, &s, sql, err) == ERR_OK) {
        db_bind_text(s, 1, code);
        if (db_run(s, err) == ERR_OK && db_changes(c) == 0)
            err_set(err, ERR_NOT_FOUND, "no gateway with code '%s'", code);
    }
    return finish(c, a, "gateway.delete", code, err);
}

enum err_code sensors_gateway_rotate_token(struct db_conn *c, const struct actor *a,
                                           const char *code, json_t **out, struct err *err)
{
    static const char sql[] = "UPDATE gateways SET token_hash = ?, updated_at = ? WHERE code = ?";
    char token[AUTH_TOKEN_LEN + 1], hash[65];
    auth_token_new(token, hash);
    struct db_stmt *s;
    if (db_begin(c, err))
        return err->code;
    if (db_prepare(c, &s, sql, err) == ERR_OK) {
        db_bind_text(s, 1, hash);
        db_bind_int64(s, 2, clock_now_s());
        db_bind_text(s, 3, code);
        if (db_run(s, err) == ERR_OK && db_changes(c) == 0)
            err_set(err, ERR_NOT_FOUND, "no gateway with code '%s'", code);
    }
    if (finish(c, a, "gateway.rotate_token", code, err))
        return err->code;
    *out = json_pack("{s:s,s:s}", "code", code, "device_token", token);
    return ERR_OK;
}
