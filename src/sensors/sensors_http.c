/* sensors_http: HTTP to the sensors room. Staff write only their own OPD's stations (another
 * OPD's station answers 404); every signed-in user reads; devices ingest with their token. */
#include <stdlib.h>
#include <string.h>

#include "core/jsonv.h"
#include "sensors/sensors.h"
#include "sensors/sensors_http.h"
#include "core/banned.h"

enum err_code sensors_http_list(struct http_req *r, struct err *err)
{
    json_t *a;
    if (sensors_station_list(http_db(r), true, &a, err))
        return err->code;
    http_reply_json(r, 200, a);
    return ERR_OK;
}

/* The cached document, or its cached gzip copy for a client that takes gzip (compressing ~335 KB
 * for each of many pollers would cost more than the render it avoids). */
static enum err_code reply_latest(struct http_req *r, bool internal, struct err *err)
{
    static const char ctype[] = "application/json; charset=utf-8";
    size_t len;
    bool fresh = http_wants_fresh(r);
    char *s = http_accepts_gzip(r) ? sensors_latest_gzip(internal, fresh, &len) : NULL;
    if (s) {
        http_reply_gzipped(r, 200, ctype, s, len); /* the copy is taken, not copied again */
        return ERR_OK;
    }
    if (!(s = sensors_latest_json(internal, fresh, &len)))
        return err_set(err, ERR_INTERNAL, "out of memory rendering the latest values");
    http_reply_take(r, 200, ctype, s, len);
    return ERR_OK;
}

enum err_code sensors_http_public_list(struct http_req *r, struct err *err)
{
    return reply_latest(r, false, err);
}

enum err_code sensors_http_latest(struct http_req *r, struct err *err)
{
    return reply_latest(r, true, err);
}

/* Stations and gateways are owned by an OPD, and reached by code the same way. */
struct owned {
    const char *what; /* "station", "gateway" */
    enum err_code (*create)(struct db_conn *c, const struct actor *a, json_t *in, json_t **out,
                            struct err *err);
    enum err_code (*get)(struct db_conn *c, const char *code, json_t **out,
                         char opd_out[AUTH_OPD_MAX + 1], struct err *err);
};

static enum err_code station_get_internal(struct db_conn *c, const char *code, json_t **out,
                                          char opd_out[AUTH_OPD_MAX + 1], struct err *err)
{
    return sensors_station_get(c, code, true, out, opd_out, err);
}

static const struct owned STATION = {"station", sensors_station_create, station_get_internal};
static const struct owned GATEWAY = {"gateway", sensors_gateway_create, sensors_gateway_get};

/* POST: staff create for their own OPD only. */
static enum err_code create_owned(struct http_req *r, const struct owned *k, struct err *err)
{
    json_t *in, *out;
    const char *opd = NULL;
    struct actor a = http_actor(r);
    if (http_body_json(r, &in, err))
        return err->code;
    if (jsonv_str(in, "opd", AUTH_OPD_MAX, false, &opd, err) == ERR_OK && opd &&
        !http_may_touch_opd(r, opd))
        err_set(err, ERR_FORBIDDEN, "staff create %ss for their own OPD only ('%s')", k->what,
                http_principal(r)->opd);
    if (!err->code && k->create(http_db(r), &a, in, &out, err) == ERR_OK)
        http_reply_json(r, 201, out);
    json_decref(in);
    return err->code;
}

/* The item named by the path if the caller may touch it (*out may be NULL); another OPD's is
 * answered as absent. */
static enum err_code visible_owned(struct http_req *r, const struct owned *k, json_t **out,
                                   struct err *err)
{
    char opd[AUTH_OPD_MAX + 1];
    const char *code = http_param(r, 0);
    json_t *j = NULL;
    if (k->get(http_db(r), code, &j, opd, err))
        return err->code;
    if (!http_may_touch_opd(r, opd)) {
        json_decref(j);
        return err_set(err, ERR_NOT_FOUND, "no %s with code '%s'", k->what, code);
    }
    if (out)
        *out = j;
    else
        json_decref(j);
    return ERR_OK;
}

enum err_code sensors_http_create(struct http_req *r, struct err *err)
{
    return create_owned(r, &STATION, err);
}

enum err_code sensors_http_get(struct http_req *r, struct err *err)
{
    json_t *j;
    if (visible_owned(r, &STATION, &j, err))
        return err->code;
    http_reply_json(r, 200, j);
    return ERR_OK;
}

enum err_code sensors_http_update(struct http_req *r, struct err *err)
{
    json_t *in, *out;
    const char *opd = NULL;
    struct actor a = http_actor(r);
    if (visible_owned(r, &STATION, NULL, err) || http_body_json(r, &in, err))
        return err->code;
    if (jsonv_str(in, "opd", AUTH_OPD_MAX, false, &opd, err) == ERR_OK && opd &&
        !http_may_touch_opd(r, opd))
        err_set(err, ERR_FORBIDDEN, "staff cannot hand a station to another OPD");
    if (!err->code &&
        sensors_station_update(http_db(r), &a, http_param(r, 0), in, &out, err) == ERR_OK)
        http_reply_json(r, 200, out);
    json_decref(in);
    return err->code;
}

enum err_code sensors_http_delete(struct http_req *r, struct err *err)
{
    struct actor a = http_actor(r);
    if (visible_owned(r, &STATION, NULL, err) ||
        sensors_station_delete(http_db(r), &a, http_param(r, 0), err))
        return err->code;
    http_reply_empty(r, 204);
    return ERR_OK;
}

enum err_code sensors_http_rotate_token(struct http_req *r, struct err *err)
{
    json_t *out;
    struct actor a = http_actor(r);
    if (visible_owned(r, &STATION, NULL, err) ||
        sensors_station_rotate_token(http_db(r), &a, http_param(r, 0), &out, err))
        return err->code;
    http_reply_json(r, 200, out);
    return ERR_OK;
}

static enum err_code parse_step(const char *s, int64_t *out, struct err *err)
{
    if (!s || strcmp(s, "auto") == 0)
        *out = -1;
    else if (strcmp(s, "raw") == 0 || strcmp(s, "0") == 0)
        *out = 0;
    else if (strcmp(s, "600") == 0 || strcmp(s, "10m") == 0)
        *out = 600;
    else if (strcmp(s, "3600") == 0 || strcmp(s, "1h") == 0)
        *out = 3600;
    else
        return err_set(err, ERR_INVALID, "query 'step' must be raw, 10m, 1h or auto");
    return ERR_OK;
}

enum err_code sensors_http_readings(struct http_req *r, struct err *err)
{
    int64_t from, to, step = -1, limit;
    json_t *out;
    if (http_query_time(r, "from", &from, err) || http_query_time(r, "to", &to, err) ||
        parse_step(http_query(r, "step"), &step, err) ||
        http_query_int(r, "limit", 10000, 1, 100000, &limit, err) ||
        sensors_readings(http_db(r), http_param(r, 0), http_query(r, "sensor"), from, to, step,
                         limit, &out, err))
        return err->code;
    http_reply_json(r, 200, out);
    return ERR_OK;
}

/* ---- ingest -------------------------------------------------------------------------------- */
static json_t *result_json(const struct ingest_result *res)
{
    return json_pack("{s:i,s:i,s:i,s:i,s:O}", "records", res->records, "accepted",
                     res->accepted + res->duplicates, "stored", res->accepted, "duplicates",
                     res->duplicates, "rejected", res->rejected);
}

/* Runs on the writer thread once the batch is committed (or failed). */
static void ingest_done(const struct ingest_result *res, void *ctx)
{
    struct http_req *r = ctx;
    if (res->rc) {
        struct err e = ERR_INIT;
        err_set(&e, res->rc, res->rc == ERR_UNAVAILABLE ? "the database is busy; nothing was "
                                                          "stored, send the batch again"
                                                        : "storing failed; nothing was stored");
        http_reply_err(r, &e);
    } else {
        http_reply_json(r, 200, result_json(res));
    }
    http_resume(r);
}

static void ingest_done_now(const struct ingest_result *res, void *ctx)
{
    http_reply_json(ctx, 200, result_json(res));
}

enum err_code sensors_http_ingest(struct http_req *r, struct err *err)
{
    const char *auth = http_header(r, "Authorization");
    const char *token = auth && strncasecmp(auth, "Bearer ", 7) == 0 ? auth + 7 : NULL;
    size_t len;
    const char *body = http_body(r, &len);
    struct ingest_batch *b;
    if (!token)
        return err_set(err, ERR_UNAUTHENTICATED,
                       "send the station's device token as 'Authorization: Bearer <token>'");
    if (len == 0)
        return err_set(err, ERR_INVALID, "the body must be a SenML pack (a JSON array)");
    if (ingest_prepare(token, NULL, body, len, &b, err))
        return err->code;
    if (ingest_batch_count(b) == 0) { /* nothing to store: answered on this thread */
        ingest_submit(b, ingest_done_now, r);
        return ERR_OK;
    }
    http_suspend(r);
    ingest_submit(b, ingest_done, r);
    return ERR_OK;
}

/* ---- gateways ----------------------------------------------------------------------------- */
enum err_code sensors_http_gateway_list(struct http_req *r, struct err *err)
{
    json_t *a;
    const struct principal *p = http_principal(r);
    if (sensors_gateway_list(http_db(r), p->role == ROLE_STAFF ? p->opd : NULL, &a, err))
        return err->code;
    http_reply_json(r, 200, a);
    return ERR_OK;
}

enum err_code sensors_http_gateway_create(struct http_req *r, struct err *err)
{
    return create_owned(r, &GATEWAY, err);
}

enum err_code sensors_http_gateway_get(struct http_req *r, struct err *err)
{
    json_t *j;
    if (visible_owned(r, &GATEWAY, &j, err))
        return err->code;
    http_reply_json(r, 200, j);
    return ERR_OK;
}

enum err_code sensors_http_gateway_delete(struct http_req *r, struct err *err)
{
    struct actor a = http_actor(r);
    if (visible_owned(r, &GATEWAY, NULL, err) ||
        sensors_gateway_delete(http_db(r), &a, http_param(r, 0), err))
        return err->code;
    http_reply_empty(r, 204);
    return ERR_OK;
}

enum err_code sensors_http_gateway_rotate_token(struct http_req *r, struct err *err)
{
    json_t *out;
    struct actor a = http_actor(r);
    if (visible_owned(r, &GATEWAY, NULL, err) ||
        sensors_gateway_rotate_token(http_db(r), &a, http_param(r, 0), &out, err))
        return err->code;
    http_reply_json(r, 200, out);
    return ERR_OK;
}
