/* ops_http: /healthz (database reachable), /metrics (Prometheus), /api/v1/routes (the table). */
#include <stdlib.h>

#include "core/clock.h"
#include "http/ops_http.h"
#include "core/banned.h"

#ifndef SINERGI_VERSION
#define SINERGI_VERSION "dev"
#endif

enum err_code ops_http_healthz(struct http_req *r, struct err *err)
{
    struct db_stmt *s;
    bool row;
    if (db_prepare(http_db(r), &s, "SELECT 1", err) || db_step(s, &row, err))
        return err_set(err, ERR_UNAVAILABLE, "database unreachable");
    db_done(s);
    http_reply_json(r, 200,
                    json_pack("{s:s,s:s,s:s,s:I}", "status", "ok", "version", SINERGI_VERSION,
                              "regency", http_app(r)->cfg->regency, "uptime_s",
                              (json_int_t)(clock_now_s() - http_app(r)->started_at)));
    return ERR_OK;
}

enum err_code ops_http_metrics(struct http_req *r, struct err *err)
{
    size_t len;
    char *text = http_metrics_render(&len);
    if (!text)
        return err_set(err, ERR_INTERNAL, "out of memory rendering metrics");
    http_reply_take(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    return ERR_OK;
}

static json_t *role_list(unsigned mask)
{
    static const enum role all[] = {ROLE_ADMIN, ROLE_OPERATOR, ROLE_STAFF, ROLE_VIEWER};
    json_t *a = json_array();
    if (mask & ACCESS_PUBLIC)
        json_array_append_new(a, json_string("public"));
    if (mask & ACCESS_DEVICE)
        json_array_append_new(a, json_string("device"));
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (mask & (unsigned)all[i])
            json_array_append_new(a, json_string(auth_role_name(all[i])));
    return a;
}

enum err_code ops_http_routes(struct http_req *r, struct err *err)
{
    (void)err;
    json_t *a = json_array();
    for (size_t i = 0; i < http_nroutes; i++) {
        const struct route *rt = &http_routes[i];
        json_array_append_new(a, json_pack("{s:s,s:s,s:o,s:o}", "method", rt->method, "pattern",
                                           rt->pattern, "roles", role_list(rt->access.roles),
                                           "own_opd_only", role_list(rt->access.own_opd)));
    }
    http_reply_json(r, 200, a);
    return ERR_OK;
}
