/* auth_http: translates HTTP to the auth room's calls; no SQL here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth_http.h"
#include "core/clock.h"
#include "core/jsonv.h"
#include "core/banned.h"

static json_t *principal_json(const struct principal *p)
{
    return json_pack("{s:s,s:s,s:s}", "username", p->username, "role", auth_role_name(p->role),
                     "opd", p->opd);
}

static void set_session_cookie(struct http_req *r, const char *token, int64_t max_age)
{
    char cookie[256];
    snprintf(cookie, sizeof cookie,
             "sinergi_session=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%lld%s", token,
             (long long)max_age, http_app(r)->cfg->cookie_secure ? "; Secure" : "");
    http_add_header(r, "Set-Cookie", cookie);
}

enum err_code auth_http_login(struct http_req *r, struct err *err)
{
    static const char *const fields[] = {"username", "password", NULL};
    json_t *in;
    const char *username, *password;
    if (http_body_json(r, &in, err))
        return err->code;
    if (jsonv_only(in, fields, err) || jsonv_str(in, "username", 256, true, &username, err) ||
        jsonv_str(in, "password", 1024, true, &password, err)) {
        json_decref(in);
        return err->code;
    }
    char token[AUTH_TOKEN_LEN + 1];
    struct principal p;
    int64_t retry = 0;
    struct actor a = http_actor(r);
    enum err_code rc = auth_login(http_db(r), &a, username, password, token, &p, &retry, err);
    json_decref(in);
    if (rc == ERR_RATE_LIMITED) {
        char s[24];
        snprintf(s, sizeof s, "%lld", (long long)retry);
        http_add_header(r, "Retry-After", s);
    }
    if (rc)
        return rc;
    set_session_cookie(r, token, http_app(r)->cfg->session_max_s);
    char expires[CLOCK_FMT_LEN];
    clock_fmt_utc(expires, clock_now_s() + http_app(r)->cfg->session_max_s);
    http_reply_json(r, 200,
                    json_pack("{s:s,s:s,s:s,s:I,s:o}", "token", token, "csrf_token", p.csrf,
                              "expires_at", expires, "idle_timeout_s",
                              (json_int_t)http_app(r)->cfg->session_idle_s, "user",
                              principal_json(&p)));
    return ERR_OK;
}

enum err_code auth_http_logout(struct http_req *r, struct err *err)
{
    struct actor a = http_actor(r);
    if (auth_logout(http_db(r), &a, err))
        return err->code;
    set_session_cookie(r, "", 0);
    http_reply_empty(r, 204);
    return ERR_OK;
}

enum err_code auth_http_me(struct http_req *r, struct err *err)
{
    (void)err;
    const struct principal *p = http_principal(r);
    json_t *j = principal_json(p);
    json_object_set_new(j, "csrf_token", json_string(p->csrf));
    http_reply_json(r, 200, j);
    return ERR_OK;
}

/* ---- OPDs -------------------------------------------------------------------------------- */
enum err_code auth_http_opd_list(struct http_req *r, struct err *err)
{
    json_t *a;
    if (auth_opd_list(http_db(r), &a, err))
        return err->code;
    http_reply_json(r, 200, a);
    return ERR_OK;
}

enum err_code auth_http_opd_get(struct http_req *r, struct err *err)
{
    json_t *o;
    if (auth_opd_get(http_db(r), http_param(r, 0), &o, err))
        return err->code;
    http_reply_json(r, 200, o);
    return ERR_OK;
}

static const char *const opd_fields[] = {"code", "name", "description", NULL};

enum err_code auth_http_opd_create(struct http_req *r, struct err *err)
{
    json_t *in, *out;
    struct actor a = http_actor(r);
    if (http_body_json(r, &in, err))
        return err->code;
    if (jsonv_only(in, opd_fields, err) == ERR_OK &&
        auth_opd_create(http_db(r), &a, in, &out, err) == ERR_OK)
        http_reply_json(r, 201, out);
    json_decref(in);
    return err->code;
}

enum err_code auth_http_opd_update(struct http_req *r, struct err *err)
{
    json_t *in, *out;
    struct actor a = http_actor(r);
    if (http_body_json(r, &in, err))
        return err->code;
    if (jsonv_only(in, opd_fields, err) == ERR_OK &&
        auth_opd_update(http_db(r), &a, http_param(r, 0), in, &out, err) == ERR_OK)
        http_reply_json(r, 200, out);
    json_decref(in);
    return err->code;
}

enum err_code auth_http_opd_delete(struct http_req *r, struct err *err)
{
    struct actor a = http_actor(r);
    if (auth_opd_delete(http_db(r), &a, http_param(r, 0), err))
        return err->code;
    http_reply_empty(r, 204);
    return ERR_OK;
}

/* ---- users ------------------------------------------------------------------------------- */
/* A user the caller may not see is answered as absent, so names do not leak across OPDs. */
static enum err_code visible_user(struct http_req *r, const char *username, json_t **out,
                                  struct err *err)
{
    char opd[AUTH_OPD_MAX + 1];
    if (auth_user_get(http_db(r), username, out, opd, err))
        return err->code;
    if (!http_may_touch_opd(r, opd)) {
        if (out)
            json_decref(*out);
        return err_set(err, ERR_NOT_FOUND, "no user named '%s'", username);
    }
    return ERR_OK;
}

enum err_code auth_http_user_list(struct http_req *r, struct err *err)
{
    const struct principal *p = http_principal(r);
    const char *opd = http_query(r, "opd");
    if (!http_may_touch_opd(r, opd ? opd : ""))
        opd = p->opd; /* staff see their own OPD only */
    json_t *a;
    if (auth_user_list(http_db(r), opd, &a, err))
        return err->code;
    http_reply_json(r, 200, a);
    return ERR_OK;
}

enum err_code auth_http_user_get(struct http_req *r, struct err *err)
{
    json_t *u;
    if (visible_user(r, http_param(r, 0), &u, err))
        return err->code;
    http_reply_json(r, 200, u);
    return ERR_OK;
}

enum err_code auth_http_user_create(struct http_req *r, struct err *err)
{
    static const char *const fields[] = {"username", "display_name", "role", "opd", "password",
                                         NULL};
    json_t *in;
    const char *username, *display, *role_s, *opd, *password;
    enum role role;
    struct actor a = http_actor(r);
    if (http_body_json(r, &in, err))
        return err->code;
    if (jsonv_only(in, fields, err) || jsonv_str(in, "username", 64, true, &username, err) ||
        jsonv_str(in, "display_name", 200, false, &display, err) ||
        jsonv_str(in, "role", 16, true, &role_s, err) ||
        jsonv_str(in, "opd", AUTH_OPD_MAX, true, &opd, err) ||
        jsonv_str(in, "password", 256, true, &password, err)) {
        json_decref(in);
        return err->code;
    }
    if (!auth_role_parse(role_s, &role)) {
        json_decref(in);
        return err_set(err, ERR_INVALID, "field 'role' must be admin, operator, staff or viewer");
    }
    json_t *out = NULL;
    if (auth_user_create(http_db(r), &a, username, display, role, opd, password, err) == ERR_OK &&
        auth_user_get(http_db(r), username, &out, NULL, err) == ERR_OK) {
        char loc[128];
        snprintf(loc, sizeof loc, "/api/v1/users/%s", username);
        http_add_header(r, "Location", loc);
        http_reply_json(r, 201, out);
    }
    json_decref(in);
    return err->code;
}

enum err_code auth_http_user_update(struct http_req *r, struct err *err)
{
    json_t *in, *out;
    struct actor a = http_actor(r);
    const char *username = http_param(r, 0);
    if (http_body_json(r, &in, err))
        return err->code;
    if (auth_user_update(http_db(r), &a, username, in, err) == ERR_OK &&
        auth_user_get(http_db(r), username, &out, NULL, err) == ERR_OK)
        http_reply_json(r, 200, out);
    json_decref(in);
    return err->code;
}

enum err_code auth_http_user_delete(struct http_req *r, struct err *err)
{
    struct actor a = http_actor(r);
    if (auth_user_delete(http_db(r), &a, http_param(r, 0), err))
        return err->code;
    http_reply_empty(r, 204);
    return ERR_OK;
}

/* ---- audit ------------------------------------------------------------------------------- */
enum err_code auth_http_audit_list(struct http_req *r, struct err *err)
{
    struct audit_filter f = {
        .actor = http_query(r, "actor"),
        .action = http_query(r, "action"),
        .object_type = http_query(r, "object_type"),
        .object_id = http_query(r, "object_id"),
        .opd = http_query(r, "opd"),
    };
    json_t *items;
    if (http_query_time(r, "from", &f.from, err) || http_query_time(r, "to", &f.to, err) ||
        http_query_int(r, "limit", 100, 1, 1000, &f.limit, err) ||
        http_query_int(r, "before_id", 0, 0, INT64_MAX, &f.before_id, err) ||
        audit_list(http_db(r), &f, &items, err))
        return err->code;
    json_t *out = json_pack("{s:o}", "items", items);
    size_t n = json_array_size(items);
    if (n == (size_t)f.limit)
        json_object_set_new(out, "next_before_id",
                            json_integer(json_integer_value(
                                json_object_get(json_array_get(items, n - 1), "id"))));
    http_reply_json(r, 200, out);
    return ERR_OK;
}
