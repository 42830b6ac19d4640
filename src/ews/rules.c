/* rules: the early-warning rules of each station and their parameters, as data. Defaults are
 * demo values (documented in docs/ARCHITECTURE.md); the owning OPD tunes them per station
 * through the API. One table describes every parameter: its rule, name, bounds and default. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/jsonv.h"
#include "ews/ews_int.h"
#include "sensors/sensors.h"
#include "core/banned.h"

atomic_uint_fast64_t ews__params_generation;

static const char *const rule_names[RULE__COUNT] = {
    "level", "rate_of_rise", "sudden_fall", "rain_1h", "rain_24h", "silent"};
static const bool rule_public[RULE__COUNT] = {true, true, false, true, true, false};

const char *ews__rule_name(enum ews_rule r)
{
    return r < RULE__COUNT ? rule_names[r] : "unknown";
}

bool ews__rule_parse(const char *s, enum ews_rule *out)
{
    for (int i = 0; s && i < RULE__COUNT; i++)
        if (strcmp(rule_names[i], s) == 0) {
            *out = (enum ews_rule)i;
            return true;
        }
    return false;
}

bool ews__rule_public(enum ews_rule r)
{
    return r < RULE__COUNT && rule_public[r];
}

/* Which rules a kind of station has. */
static bool rule_applies(enum ews_rule r, const char *kind)
{
    if (r == RULE_SILENT)
        return true;
    if (strcmp(kind, "water_level") == 0)
        return r == RULE_LEVEL || r == RULE_RATE_OF_RISE || r == RULE_SUDDEN_FALL;
    if (strcmp(kind, "rain") == 0)
        return r == RULE_RAIN_1H || r == RULE_RAIN_24H;
    return false;
}

enum ptype { P_NUM, P_INT, P_STR, P_NUM3 };

static const struct param {
    enum ews_rule rule;
    const char *name;
    enum ptype type;
    size_t offset;
    double min, max;
    double def[3];
    const char *help;
} params[] = {
#define OFF(f) offsetof(struct ews_params, f)
    {RULE_LEVEL, "hysteresis_m", P_NUM, OFF(hysteresis_m), 0, 5, {0.10}, "lowering needs the level this far below the threshold"},
    {RULE_LEVEL, "hold_s", P_NUM, OFF(hold_s), 0, 86400, {3600}, "and staying there this long (reading time)"},
    {RULE_RATE_OF_RISE, "rise_m", P_NUM, OFF(rise_m), 0.01, 20, {0.5}, "a rise of this much within window_s raises"},
    {RULE_RATE_OF_RISE, "window_s", P_NUM, OFF(rise_window_s), 60, 86400, {600}, "the window of the rise"},
    {RULE_RATE_OF_RISE, "level", P_INT, OFF(rise_level), 1, 3, {2}, "the level a fast rise raises to"},
    {RULE_SUDDEN_FALL, "drop_m", P_NUM, OFF(drop_m), 0.01, 20, {0.5}, "a fall of this much below the window's peak"},
    {RULE_SUDDEN_FALL, "window_s", P_NUM, OFF(drop_window_s), 60, 86400, {1800}, "the window of the fall"},
    {RULE_SUDDEN_FALL, "rain_mm", P_NUM, OFF(drop_rain_mm), 0, 500, {5}, "while upstream rain over the last hour is at least this"},
    {RULE_SUDDEN_FALL, "rain_station", P_STR, OFF(rain_station), 0, 32, {0}, "upstream rain gauge; empty = rain gauges on the same river"},
    {RULE_RAIN_1H, "thresholds_mm", P_NUM3, OFF(rain1h), 0, 1000, {20, 30, 50}, "rain in 1 h for Waspada, Siaga, Awas"},
    {RULE_RAIN_24H, "thresholds_mm", P_NUM3, OFF(rain24h), 0, 5000, {50, 100, 150}, "rain in 24 h for Waspada, Siaga, Awas"},
    {RULE_RAIN_1H, "hysteresis_mm", P_NUM, OFF(rain_hysteresis_mm), 0, 500, {2}, "lowering needs the sum this far below the threshold"},
    {RULE_SILENT, "flat_readings", P_INT, OFF(flat_readings), 1, 1000, {1}, "this many readings flagged flat-line by QC (equal for 6 reports) in a row count as silent"},
#undef OFF
};
#define NPARAMS (sizeof params / sizeof params[0])

static void set_default(struct ews_params *p, const struct param *d)
{
    char *f = (char *)p + d->offset;
    switch (d->type) {
    case P_NUM:
        *(double *)f = d->def[0];
        break;
    case P_INT:
        *(int *)f = (int)d->def[0];
        break;
    case P_STR:
        f[0] = 0;
        break;
    case P_NUM3:
        memcpy(f, d->def, 3 * sizeof(double));
        break;
    }
}

/* Reads one parameter from JSON into p; ERR_INVALID names it. */
static enum err_code read_param(struct ews_params *p, const struct param *d, json_t *v,
                                struct err *err)
{
    char *f = (char *)p + d->offset;
    switch (d->type) {
    case P_NUM:
    case P_INT:
        if (!json_is_number(v) || json_number_value(v) < d->min || json_number_value(v) > d->max ||
            (d->type == P_INT && !json_is_integer(v)))
            return err_set(err, ERR_INVALID, "rule '%s': '%s' must be a %s from %g to %g",
                           rule_names[d->rule], d->name,
                           d->type == P_INT ? "whole number" : "number", d->min, d->max);
        if (d->type == P_NUM)
            *(double *)f = json_number_value(v);
        else
            *(int *)f = (int)json_integer_value(v);
        return ERR_OK;
    case P_STR:
        if (!json_is_string(v) || json_string_length(v) > (size_t)d->max)
            return err_set(err, ERR_INVALID, "rule '%s': '%s' must be a station code",
                           rule_names[d->rule], d->name);
        snprintf(f, (size_t)d->max + 1, "%s", json_string_value(v));
        return ERR_OK;
    case P_NUM3: {
        double t[3];
        for (size_t i = 0; i < 3; i++) {
            json_t *x = json_array_get(v, i);
            if (!json_is_array(v) || json_array_size(v) != 3 || !json_is_number(x) ||
                json_number_value(x) < d->min || json_number_value(x) > d->max)
                return err_set(err, ERR_INVALID,
                               "rule '%s': '%s' must be three rising numbers [waspada, siaga, awas]",
                               rule_names[d->rule], d->name);
            t[i] = json_number_value(x);
        }
        if (!(t[0] < t[1] && t[1] < t[2]))
            return err_set(err, ERR_INVALID, "rule '%s': '%s' must rise: waspada < siaga < awas",
                           rule_names[d->rule], d->name);
        memcpy(f, t, sizeof t);
        return ERR_OK;
    }
    }
    return ERR_OK;
}

static json_t *param_json(const struct ews_params *p, const struct param *d)
{
    const char *f = (const char *)p + d->offset;
    switch (d->type) {
    case P_NUM:
        return json_real(*(const double *)f);
    case P_INT:
        return json_integer(*(const int *)f);
    case P_STR:
        return json_string(f);
    case P_NUM3: {
        const double *t = (const double *)f;
        return json_pack("[f,f,f]", t[0], t[1], t[2]);
    }
    }
    return json_null();
}

/* Overlays one rule's stored params over p. */
static enum err_code overlay(struct ews_params *p, enum ews_rule rule, json_t *stored,
                             struct err *err)
{
    const char *key;
    json_t *v;
    json_object_foreach(stored, key, v)
    {
        const struct param *d = NULL;
        for (size_t i = 0; i < NPARAMS && !d; i++)
            if (params[i].rule == rule && strcmp(params[i].name, key) == 0)
                d = &params[i];
        if (!d)
            return err_set(err, ERR_INVALID, "rule '%s' has no parameter '%s'", rule_names[rule],
                           key);
        if (read_param(p, d, v, err))
            return err->code;
    }
    return ERR_OK;
}

enum err_code ews__params_load(struct db_conn *c, const char *station, const char *kind,
                               struct ews_params *out, struct err *err)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < NPARAMS; i++)
        set_default(out, &params[i]);
    for (int r = 0; r < RULE__COUNT; r++)
        out->enabled[r] = rule_applies((enum ews_rule)r, kind);
    struct db_stmt *s;
    bool row;
    if (db_prepare(c, &s, "SELECT rule, enabled, params FROM ews_rules WHERE station_code = ?",
                   err))
        return err->code;
    db_bind_text(s, 1, station);
    while (db_step(s, &row, err) == ERR_OK && row) {
        enum ews_rule r;
        if (!ews__rule_parse(db_col_text(s, 0), &r))
            continue;
        out->enabled[r] = db_col_int64(s, 1) != 0 && rule_applies(r, kind);
        json_t *stored = json_loads(db_col_text(s, 2), 0, NULL);
        struct err e = ERR_INIT; /* a stored value the bounds no longer allow keeps the default */
        if (stored)
            overlay(out, r, stored, &e);
        json_decref(stored);
    }
    return err->code;
}

enum err_code ews_rules_get(struct db_conn *c, const char *station, json_t **out,
                            struct err *err)
{
    struct sensors_station_info info;
    if (!sensors_station_info(station, &info))
        return err_set(err, ERR_NOT_FOUND, "no station with code '%s'", station);
    struct ews_params p;
    if (ews__params_load(c, station, info.kind, &p, err))
        return err->code;
    json_t *rules = json_array();
    for (int r = 0; r < RULE__COUNT; r++) {
        if (!rule_applies((enum ews_rule)r, info.kind))
            continue;
        json_t *ps = json_object();
        for (size_t i = 0; i < NPARAMS; i++)
            if (params[i].rule == (enum ews_rule)r)
                json_object_set_new(ps, params[i].name, param_json(&p, &params[i]));
        if (r == RULE_LEVEL && info.has_thresholds)
            json_object_set_new(ps, "thresholds_m",
                                json_pack("[f,f,f]", info.thresholds[0], info.thresholds[1],
                                          info.thresholds[2]));
        json_array_append_new(rules, json_pack("{s:s,s:b,s:b,s:o}", "rule", rule_names[r],
                                               "enabled", p.enabled[r], "public", rule_public[r],
                                               "params", ps));
    }
    *out = json_pack("{s:s,s:o}", "station", station, "rules", rules);
    return ERR_OK;
}

enum err_code ews_rule_update(struct db_conn *c, const struct actor *a, const char *station,
                              const char *rule, json_t *in, json_t **out, struct err *err)
{
    static const char *const fields[] = {"enabled", "params", NULL};
    struct sensors_station_info info;
    enum ews_rule r;
    bool enabled = true, has_enabled;
    if (!sensors_station_info(station, &info))
        return err_set(err, ERR_NOT_FOUND, "no station with code '%s'", station);
    if (!ews__rule_parse(rule, &r) || !rule_applies(r, info.kind))
        return err_set(err, ERR_NOT_FOUND, "a %s station has no rule '%s'", info.kind, rule);
    json_t *given = json_object_get(in, "params");
    if (jsonv_only(in, fields, err) ||
        jsonv_bool(in, "enabled", false, &enabled, &has_enabled, err))
        return err->code;
    if (given && !json_is_object(given))
        return err_set(err, ERR_INVALID, "field 'params' must be an object");

    struct db_stmt *s;
    bool row;
    json_t *stored = NULL;
    int64_t old_enabled = 1;
    if (db_begin(c, err))
        return err->code;
    if (db_prepare(c, &s, "SELECT enabled, params FROM ews_rules WHERE station_code = ? AND "
                          "rule = ?",
                   err) == ERR_OK) {
        db_bind_text(s, 1, station);
        db_bind_text(s, 2, rule);
        if (db_step(s, &row, err) == ERR_OK && row) {
            old_enabled = db_col_int64(s, 0);
            stored = json_loads(db_col_text(s, 1), 0, NULL);
        }
        db_done(s);
    }
    if (!stored)
        stored = json_object();
    if (given)
        json_object_update(stored, given);
    struct ews_params check;
    memset(&check, 0, sizeof check);
    for (size_t i = 0; i < NPARAMS; i++)
        set_default(&check, &params[i]);
    char *text = NULL;
    if (!err->code && overlay(&check, r, stored, err) == ERR_OK &&
        (text = json_dumps(stored, JSON_COMPACT | JSON_SORT_KEYS)) &&
        db_prepare(c, &s,
                   "INSERT INTO ews_rules (station_code, rule, enabled, params, updated_at) "
                   "VALUES (?, ?, ?, ?, ?) ON CONFLICT (station_code, rule) DO UPDATE SET "
                   "enabled = excluded.enabled, params = excluded.params, "
                   "updated_at = excluded.updated_at",
                   err) == ERR_OK) {
        db_bind_text(s, 1, station);
        db_bind_text(s, 2, rule);
        db_bind_int64(s, 3, has_enabled ? enabled : old_enabled);
        db_bind_text(s, 4, text);
        db_bind_int64(s, 5, clock_now_s());
        db_run(s, err);
    }
    char object[96];
    snprintf(object, sizeof object, "%s/%s", station, rule);
    json_t *detail = json_pack("{s:O}", "params", stored);
    if (has_enabled)
        json_object_set_new(detail, "enabled", json_boolean(enabled));
    if (err->code || audit_record(c, a, "ews.rule_update", "ews_rule", object, detail, err) ||
        db_commit(c, err))
        db_rollback(c);
    json_decref(detail);
    json_decref(stored);
    free(text);
    if (err->code)
        return err->code;
    atomic_fetch_add(&ews__params_generation, 1);
    return ews_rules_get(c, station, out, err);
}
