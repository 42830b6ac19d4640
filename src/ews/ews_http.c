/* ews_http: alerts for people on duty (operators and the owning OPD act on them) and the rules
 * of each station (the owning OPD edits them). */
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/jsonv.h"
#include "ews/ews.h"
#include "ews/ews_http.h"
#include "sensors/sensors.h"
#include "core/banned.h"

enum err_code ews_http_alert_list(struct http_req *r, struct err *err)
{
    int64_t limit;
    json_t *out;
    if (http_query_int(r, "limit", 200, 1, 1000, &limit, err) ||
        ews_alert_list(http_db(r), http_query(r, "state"), http_query(r, "station"), limit, &out,
                       err))
        return err->code;
    http_reply_json(r, 200, out);
    return ERR_OK;
}

static enum err_code alert_id(struct http_req *r, int64_t *id, struct err *err)
{
    char *end;
    const char *s = http_param(r, 0);
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || v <= 0)
        return err_set(err, ERR_NOT_FOUND, "no alert with id '%s'", s);
    *id = v;
    return ERR_OK;
}

/* The alert if the caller may act on it: staff only on their own OPD's stations (else 404). */
static enum err_code visible_alert(struct http_req *r, int64_t *id, json_t **out,
                                   struct err *err)
{
    char opd[AUTH_OPD_MAX + 1];
    json_t *j;
    if (alert_id(r, id, err) || ews_alert_get(http_db(r), *id, &j, opd, err))
        return err->code;
    if (!http_may_touch_opd(r, opd)) {
        json_decref(j);
        return err_set(err, ERR_NOT_FOUND, "no alert with id %lld", (long long)*id);
    }
    if (out)
        *out = j;
    else
        json_decref(j);
    return ERR_OK;
}

enum err_code ews_http_alert_get(struct http_req *r, struct err *err)
{
    int64_t id;
    json_t *out;
    if (visible_alert(r, &id, &out, err))
        return err->code;
    http_reply_json(r, 200, out);
    return ERR_OK;
}

enum err_code ews_http_alert_ack(struct http_req *r, struct err *err)
{
    static const char *const fields[] = {"note", NULL};
    int64_t id;
    json_t *in = NULL, *out;
    const char *note = NULL;
    struct actor a = http_actor(r);
    size_t len;
    http_body(r, &len);
    if (visible_alert(r, &id, NULL, err) || (len && http_body_json(r, &in, err)))
        return err->code;
    if ((!in || (jsonv_only(in, fields, err) == ERR_OK &&
                 jsonv_str(in, "note", 1000, false, &note, err) == ERR_OK)) &&
        ews_alert_ack(http_db(r), &a, id, note, &out, err) == ERR_OK)
        http_reply_json(r, 200, out);
    json_decref(in);
    return err->code;
}

enum err_code ews_http_alert_shelve(struct http_req *r, struct err *err)
{
    static const char *const fields[] = {"reason", "until", "minutes", NULL};
    int64_t id, minutes = 0, until = 0;
    bool has_minutes;
    json_t *in, *out;
    const char *reason, *until_s;
    struct actor a = http_actor(r);
    if (visible_alert(r, &id, NULL, err) || http_body_json(r, &in, err))
        return err->code;
    if (jsonv_only(in, fields, err) == ERR_OK &&
        jsonv_str(in, "reason", 1000, true, &reason, err) == ERR_OK &&
        jsonv_str(in, "until", 40, false, &until_s, err) == ERR_OK &&
        jsonv_int(in, "minutes", 1, 7 * 24 * 60, false, &minutes, &has_minutes, err) == ERR_OK) {
        if (until_s && !clock_parse(until_s, &until))
            err_set(err, ERR_INVALID, "field 'until' must be a time like 2026-11-22T21:00:00+08:00");
        else if (!until_s && !has_minutes)
            err_set(err, ERR_INVALID, "give 'until' (a time) or 'minutes' for how long to shelve");
        else if (!until_s)
            until = clock_now_s() + minutes * 60;
        if (!err->code && ews_alert_shelve(http_db(r), &a, id, reason, until, &out, err) == ERR_OK)
            http_reply_json(r, 200, out);
    }
    json_decref(in);
    return err->code;
}

enum err_code ews_http_rules_get(struct http_req *r, struct err *err)
{
    json_t *out;
    if (ews_rules_get(http_db(r), http_param(r, 0), &out, err))
        return err->code;
    http_reply_json(r, 200, out);
    return ERR_OK;
}

enum err_code ews_http_rule_update(struct http_req *r, struct err *err)
{
    struct sensors_station_info info;
    const char *code = http_param(r, 0);
    json_t *in, *out;
    struct actor a = http_actor(r);
    if (!sensors_station_info(code, &info) || !http_may_touch_opd(r, info.opd))
        return err_set(err, ERR_NOT_FOUND, "no station with code '%s'", code);
    if (http_body_json(r, &in, err))
        return err->code;
    if (ews_rule_update(http_db(r), &a, code, http_param(r, 1), in, &out, err) == ERR_OK)
        http_reply_json(r, 200, out);
    json_decref(in);
    return err->code;
}
