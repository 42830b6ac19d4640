/* senml_jansson: the jansson-based SenML parser that src/sensors/senml.c replaced, kept verbatim
 * (but for its name) as the oracle of tests/fuzz/fuzz_senml.c and the baseline of bench/senml/.
 * Not linked into sinergi. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sensors/sensors_int.h"
#include "senml_jansson.h"
#include "core/banned.h"

/* Times below 2^28 are relative to now (RFC 8428 §4.5.3). */
#define SENML_RELATIVE_LIMIT 268435456.0

static bool name_ok(const char *s)
{
    if (!*s)
        return false;
    for (const char *p = s; *p; p++) {
        char ch = *p;
        bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        if (!alnum && (p == s || !strchr("-:._/", ch)))
            return false;
    }
    return true;
}

struct base {
    const char *bn, *bu;
    double bt, bv;
};

static enum err_code get_num(json_t *rec, const char *k, double *out, bool *has, size_t i,
                             struct err *err)
{
    json_t *v = json_object_get(rec, k);
    *has = v != NULL;
    if (!v)
        return ERR_OK;
    if (!json_is_number(v))
        return err_set(err, ERR_INVALID, "record %zu: '%s' must be a number", i, k);
    *out = json_number_value(v);
    return ERR_OK;
}

static enum err_code get_str(json_t *rec, const char *k, const char **out, size_t i,
                             struct err *err)
{
    json_t *v = json_object_get(rec, k);
    if (!v)
        return ERR_OK;
    if (!json_is_string(v))
        return err_set(err, ERR_INVALID, "record %zu: '%s' must be a string", i, k);
    *out = json_string_value(v);
    return ERR_OK;
}

/* Fields ending in '_' must be understood (RFC 8428 §4.4); we understand none. */
static enum err_code check_must_understand(json_t *rec, size_t i, struct err *err)
{
    const char *key;
    json_t *v;
    json_object_foreach(rec, key, v)
    {
        size_t n = strlen(key);
        if (n && key[n - 1] == '_')
            return err_set(err, ERR_INVALID, "record %zu: field '%s' must be understood but is not "
                                             "supported",
                           i, key);
    }
    return ERR_OK;
}

static void resolve(json_t *rec, struct base *b, struct senml_record *r, int64_t now_ms,
                    size_t i, struct err *err)
{
    const char *n = "", *u = NULL;
    double t = 0, v = 0;
    bool has_t, has_v;
    get_str(rec, "n", &n, i, err);
    get_str(rec, "u", &u, i, err);
    get_num(rec, "t", &t, &has_t, i, err);
    get_num(rec, "v", &v, &has_v, i, err);
    if (err->code)
        return;
    int w = snprintf(r->name, sizeof r->name, "%s%s", b->bn ? b->bn : "", n);
    const char *unit = u ? u : (b->bu ? b->bu : "");
    snprintf(r->unit, sizeof r->unit, "%s", unit);
    double abs_t = b->bt + t;
    if (w < 0 || (size_t)w >= sizeof r->name || !name_ok(r->name))
        r->error = "name must be '<station-code>:<sensor>' of letters, digits and - : . _ /";
    else if (strlen(unit) >= sizeof r->unit)
        r->error = "unit is too long";
    else if (json_object_get(rec, "vs") || json_object_get(rec, "vb") ||
             json_object_get(rec, "vd") || json_object_get(rec, "s"))
        r->error = "only numeric values ('v') are stored";
    else if (!has_v)
        r->error = "record has no value 'v'";
    else if (!isfinite(v + b->bv))
        r->error = "value is not a finite number";
    else if (!isfinite(abs_t))
        r->error = "time is not a finite number";
    r->value = v + b->bv;
    if (!r->error) {
        double ms = fabs(abs_t) < SENML_RELATIVE_LIMIT ? (double)now_ms + abs_t * 1000.0
                                                       : abs_t * 1000.0;
        if (ms < 0 || ms > 9.2e15)
            r->error = "time is out of range";
        else
            r->t_ms = (int64_t)llround(ms);
    }
}

enum err_code senml_parse_jansson(const char *body, size_t len, int64_t now_ms, size_t max_records,
                          struct senml_record **out, size_t *n, struct err *err)
{
    json_error_t je;
    json_t *pack = json_loadb(body, len, 0, &je);
    if (!pack)
        return err_set(err, ERR_INVALID, "body is not valid JSON: %s at line %d column %d",
                       je.text, je.line, je.column);
    if (!json_is_array(pack)) {
        json_decref(pack);
        return err_set(err, ERR_INVALID, "a SenML pack must be a JSON array of records");
    }
    size_t count = json_array_size(pack);
    if (count > max_records) {
        json_decref(pack);
        return err_set(err, ERR_TOO_BIG, "the pack holds %zu records; send at most %zu per request",
                       count, max_records);
    }
    struct senml_record *recs = calloc(count ? count : 1, sizeof *recs);
    if (!recs) {
        json_decref(pack);
        return err_set(err, ERR_INTERNAL, "out of memory parsing SenML");
    }
    struct base b = {0};
    size_t i;
    json_t *rec;
    json_array_foreach(pack, i, rec)
    {
        if (!json_is_object(rec)) {
            err_set(err, ERR_INVALID, "record %zu is not a JSON object", i);
            break;
        }
        bool has;
        json_t *ver = json_object_get(rec, "bver");
        if (ver && (!json_is_integer(ver) || json_integer_value(ver) > 10)) {
            err_set(err, ERR_INVALID, "record %zu: SenML version 'bver' is not supported", i);
            break;
        }
        if (check_must_understand(rec, i, err) || get_str(rec, "bn", &b.bn, i, err) ||
            get_str(rec, "bu", &b.bu, i, err) || get_num(rec, "bt", &b.bt, &has, i, err) ||
            get_num(rec, "bv", &b.bv, &has, i, err))
            break;
        resolve(rec, &b, &recs[i], now_ms, i, err);
        if (err->code)
            break;
    }
    /* Base names are borrowed from the pack, which dies here: records hold copies only. */
    json_decref(pack);
    if (err->code) {
        free(recs);
        return err->code;
    }
    *out = recs;
    *n = count;
    return ERR_OK;
}
