/* stations: create, read, update and delete stations and their sensors; device tokens. Every
 * write is audited in its transaction and reloads the in-memory registry after commit. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/jsonv.h"
#include "regions/regions.h"
#include "sensors/sensors_int.h"
#include "core/banned.h"

static const char *const kind_names[KIND__COUNT] = {"water_level", "rain", "weather",
                                                    "waste_bin"};

const char *sensors__kind_name(enum station_kind k)
{
    return k < KIND__COUNT ? kind_names[k] : "unknown";
}

bool sensors__kind_parse(const char *s, enum station_kind *out)
{
    for (int i = 0; s && i < KIND__COUNT; i++)
        if (strcmp(kind_names[i], s) == 0) {
            *out = (enum station_kind)i;
            return true;
        }
    return false;
}

/* Sensors a station gets when the request names none. */
static const struct {
    enum station_kind kind;
    const char *name, *unit;
} default_sensors[] = {
    {KIND_WATER_LEVEL, "level", "m"},    {KIND_RAIN, "rain", "mm"},
    {KIND_WEATHER, "temperature", "Cel"}, {KIND_WEATHER, "humidity", "%RH"},
    {KIND_WEATHER, "rain", "mm"},        {KIND_WASTE_BIN, "fill", "%"},
};

static const char *const station_fields[] = {"code", "name",       "kind",       "lat",
                                             "lon",  "region",     "river",      "opd",
                                             "interval_s", "thresholds", "sensors", "demo",
                                             NULL};

enum err_code sensors__check_code(const char *field, const char *v, size_t max, struct err *err)
{
    size_t n = strlen(v);
    if (n < 2 || n > max)
        return err_set(err, ERR_INVALID, "field '%s' must be 2 to %zu characters", field, max);
    for (size_t i = 0; i < n; i++) {
        char ch = v[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
            return err_set(err, ERR_INVALID, "field '%s' may hold only a-z, 0-9, '-' and '_'",
                           field);
    }
    return ERR_OK;
}

struct station_in {
    const char *code, *name, *kind_s, *region, *river, *opd;
    enum station_kind kind;
    double lat, lon;
    bool has_lat, has_lon;
    int64_t interval_s;
    bool has_interval;
    bool thresholds_given, thresholds_null;
    double th[3];
    bool demo, has_demo;
    json_t *sensors;
};

static enum err_code parse_thresholds(json_t *in, struct station_in *s, struct err *err)
{
    json_t *t = json_object_get(in, "thresholds");
    s->thresholds_given = t != NULL;
    s->thresholds_null = t && json_is_null(t);
    if (!t || json_is_null(t))
        return ERR_OK;
    if (!json_is_object(t))
        return err_set(err, ERR_INVALID,
                       "field 'thresholds' must be {\"waspada\":m,\"siaga\":m,\"awas\":m}");
    static const char *const names[3] = {"waspada", "siaga", "awas"};
    static const char *const allowed[] = {"waspada", "siaga", "awas", NULL};
    if (jsonv_only(t, allowed, err))
        return err->code;
    for (int i = 0; i < 3; i++) {
        struct err e = ERR_INIT; /* jsonv's message would name 'awas', not 'thresholds.awas' */
        if (jsonv_num(t, names[i], -100, 1000, true, &s->th[i], NULL, &e))
            return err_set(err, ERR_INVALID, "field 'thresholds.%s' must be a level in metres",
                           names[i]);
    }
    if (!(s->th[0] < s->th[1] && s->th[1] < s->th[2]))
        return err_set(err, ERR_INVALID,
                       "thresholds must rise: waspada < siaga < awas (Siaga 3 < 2 < 1)");
    return ERR_OK;
}

static enum err_code parse_station(json_t *in, bool create, struct station_in *s, struct err *err)
{
    memset(s, 0, sizeof *s);
    bool req = create;
    if (jsonv_only(in, station_fields, err) ||
        jsonv_str(in, "code", CODE_MAX, req, &s->code, err) ||
        (s->code && sensors__check_code("code", s->code, CODE_MAX, err)) ||
        jsonv_str(in, "name", 120, req, &s->name, err) ||
        jsonv_str(in, "kind", 24, req, &s->kind_s, err) ||
        jsonv_num(in, "lat", -90, 90, req, &s->lat, &s->has_lat, err) ||
        jsonv_num(in, "lon", -180, 180, req, &s->lon, &s->has_lon, err) ||
        jsonv_str(in, "region", 20, false, &s->region, err) ||
        jsonv_str(in, "river", 60, false, &s->river, err) ||
        jsonv_str(in, "opd", AUTH_OPD_MAX, req, &s->opd, err) ||
        jsonv_int(in, "interval_s", 10, 86400, false, &s->interval_s, &s->has_interval, err) ||
        jsonv_bool(in, "demo", false, &s->demo, &s->has_demo, err) || parse_thresholds(in, s, err))
        return err->code;
    if (s->kind_s && !sensors__kind_parse(s->kind_s, &s->kind))
        return err_set(err, ERR_INVALID,
                       "field 'kind' must be water_level, rain, weather or waste_bin");
    s->sensors = json_object_get(in, "sensors");
    if (s->sensors && (!create || !json_is_array(s->sensors) || json_array_size(s->sensors) > 8))
        return err_set(err, ERR_INVALID, create ? "field 'sensors' must be a list of at most 8 "
                                                  "{\"name\",\"unit\"}"
                                                : "field 'sensors' cannot be changed");
    if (!s->has_interval && create)
        s->interval_s = 600;
    return ERR_OK;
}

static enum err_code check_region(struct db_conn *c, const char *region, struct err *err)
{
    json_t *j;
    struct err e = ERR_INIT;
    if (!region)
        return ERR_OK;
    if (regions_get(c, region, false, &j, &e) == ERR_OK) {
        json_decref(j);
        return ERR_OK;
    }
    if (e.code == ERR_NOT_FOUND)
        return err_set(err, ERR_INVALID, "field 'region' must be a kode wilayah, e.g. 73.22.03.1002");
    return err_set(err, e.code, "%s", e.msg);
}

enum err_code sensors__check_opd(struct db_conn *c, const char *opd, struct err *err)
{
    json_t *j;
    struct err e = ERR_INIT;
    if (!opd)
        return ERR_OK;
    if (auth_opd_get(c, opd, &j, &e) == ERR_OK) {
        json_decref(j);
        return ERR_OK;
    }
    if (e.code == ERR_NOT_FOUND)
        return err_set(err, ERR_INVALID, "field 'opd' names no OPD: '%s'", opd);
    return err_set(err, e.code, "%s", e.msg);
}

/* A new sensor must not inherit a deleted one's latest value, QC history or open rollups, which
 * are kept by sensor id: ids come from a counter that only grows (migration 21). */
static enum err_code next_sensor_id(struct db_conn *c, int64_t *out, struct err *err)
{
    struct db_stmt *s;
    bool row;
    if (db_prepare(c, &s,
                   "UPDATE sensors_meta SET value = value + 1 WHERE key = 'sensor_id_last' "
                   "RETURNING value",
                   err) ||
        db_step(s, &row, err))
        return err->code;
    if (row)
        *out = db_col_int64(s, 0);
    db_done(s);
    return row ? ERR_OK : err_set(err, ERR_INTERNAL, "the sensor id counter is missing");
}

static enum err_code insert_sensor(struct db_conn *c, int64_t station_id, const char *name,
                                   const char *unit, struct err *err)
{
    struct db_stmt *s;
    int64_t id = 0;
    if (sensors__check_code("sensors.name", name, SENSOR_NAME_MAX, err))
        return err->code;
    if (!sensors__unit_known(unit))
        return err_set(err, ERR_INVALID, "sensor '%s': unit '%s' is not a SenML unit (m, mm, Cel, "
                                         "%%RH, ...)",
                       name, unit);
    if (next_sensor_id(c, &id, err) ||
        db_prepare(c, &s, "INSERT INTO sensors (id, station_id, name, unit) VALUES (?, ?, ?, ?)",
                   err))
        return err->code;
    db_bind_int64(s, 1, id);
    db_bind_int64(s, 2, station_id);
    db_bind_text(s, 3, name);
    db_bind_text(s, 4, unit);
    if (db_run(s, err) == ERR_CONFLICT) {
        err_clear(err);
        err_set(err, ERR_INVALID, "sensor name '%s' is given twice", name);
    }
    return err->code;
}

static enum err_code insert_sensors(struct db_conn *c, int64_t id, const struct station_in *in,
                                    struct err *err)
{
    if (!in->sensors || json_array_size(in->sensors) == 0) {
        for (size_t i = 0; i < sizeof default_sensors / sizeof default_sensors[0]; i++)
            if (default_sensors[i].kind == in->kind &&
                insert_sensor(c, id, default_sensors[i].name, default_sensors[i].unit, err))
                return err->code;
        return ERR_OK;
    }
    size_t i;
    json_t *sj;
    json_array_foreach(in->sensors, i, sj)
    {
        const char *name, *unit;
        if (!json_is_object(sj) || jsonv_str(sj, "name", SENSOR_NAME_MAX, true, &name, err) ||
            jsonv_str(sj, "unit", UNIT_MAX - 1, true, &unit, err))
            return err->code ? err->code
                             : err_set(err, ERR_INVALID, "sensors[%zu] must be {\"name\",\"unit\"}", i);
        if (insert_sensor(c, id, name, unit, err))
            return err->code;
    }
    return ERR_OK;
}

static void bind_thresholds(struct db_stmt *s, int first, const struct station_in *in)
{
    for (int k = 0; k < 3; k++)
        if (in->thresholds_given && !in->thresholds_null)
            db_bind_double(s, first + k, in->th[k]);
        else
            db_bind_null(s, first + k);
}

static sensors_station_hook station_hook;
static void *station_hook_ctx;

void sensors_set_station_hook(sensors_station_hook fn, void *ctx)
{
    station_hook = fn;
    station_hook_ctx = ctx;
}

static void notify(const char *code, const char *token)
{
    if (station_hook)
        station_hook(code, token, station_hook_ctx);
}

json_t *sensors_station_codes(void)
{
    json_t *a = json_array();
    sensors__registry_rdlock();
    for (int i = 0; i < sensors__registry_count(); i++)
        json_array_append_new(a, json_string(sensors__station_at(i)->code));
    sensors__registry_unlock();
    return a;
}

static enum err_code finish_write(struct db_conn *c, const struct actor *a, const char *action,
                                  const char *code, json_t *detail, struct err *err)
{
    if (err->code || audit_record(c, a, action, "station", code, detail, err) ||
        db_commit(c, err)) {
        json_decref(detail);
        db_rollback(c);
        return err->code;
    }
    json_decref(detail);
    return sensors__registry_load(c, err);
}

enum err_code sensors_station_create(struct db_conn *c, const struct actor *a, json_t *in,
                                     json_t **out, struct err *err)
{
    struct station_in s;
    if (parse_station(in, true, &s, err))
        return err->code;
    if (s.kind == KIND_WATER_LEVEL && (!s.thresholds_given || s.thresholds_null))
        return err_set(err, ERR_INVALID, "a water_level station needs 'thresholds' "
                                         "{\"waspada\",\"siaga\",\"awas\"} in metres");
    if (s.kind != KIND_WATER_LEVEL && s.thresholds_given && !s.thresholds_null)
        return err_set(err, ERR_INVALID, "only water_level stations have level thresholds");
    char token[AUTH_TOKEN_LEN + 1], hash[65];
    auth_token_new(token, hash);
    int64_t now = clock_now_s(), id = 0;
    struct db_stmt *st;
    bool row;
    if (db_begin(c, err))
        return err->code;
    if (check_region(c, s.region, err) == ERR_OK && sensors__check_opd(c, s.opd, err) == ERR_OK &&
        db_prepare(c, &st,
                   "INSERT INTO stations (code, name, kind, lat, lon, region, river, opd_code, "
                   "interval_s, th_waspada, th_siaga, th_awas, demo, token_hash, created_at, "
                   "updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) RETURNING id",
                   err) == ERR_OK) {
        db_bind_text(st, 1, s.code);
        db_bind_text(st, 2, s.name);
        db_bind_text(st, 3, sensors__kind_name(s.kind));
        db_bind_double(st, 4, s.lat);
        db_bind_double(st, 5, s.lon);
        db_bind_text(st, 6, s.region);
        db_bind_text(st, 7, s.river ? s.river : "");
        db_bind_text(st, 8, s.opd);
        db_bind_int64(st, 9, s.interval_s);
        bind_thresholds(st, 10, &s);
        db_bind_int64(st, 13, s.demo);
        db_bind_text(st, 14, hash);
        db_bind_int64(st, 15, now);
        db_bind_int64(st, 16, now);
        if (db_step(st, &row, err) == ERR_OK && row)
            id = db_col_int64(st, 0);
        db_done(st);
        if (err->code == ERR_CONFLICT) {
            err_clear(err);
            err_set(err, ERR_CONFLICT, "a station with code '%s' already exists", s.code);
        }
    }
    if (!err->code)
        insert_sensors(c, id, &s, err);
    if (finish_write(c, a, "station.create", s.code,
                     json_pack("{s:s,s:s}", "kind", sensors__kind_name(s.kind), "opd", s.opd),
                     err))
        return err->code;
    notify(s.code, token);
    if (sensors_station_get(c, s.code, true, out, NULL, err))
        return err->code;
    json_object_set_new(*out, "device_token", json_string(token));
    return ERR_OK;
}

static json_t *sensors_json(struct db_conn *c, int64_t station_id, struct err *err)
{
    struct db_stmt *s;
    bool row;
    json_t *a = json_array();
    if (db_prepare(c, &s, "SELECT name, unit FROM sensors WHERE station_id = ? ORDER BY id", err))
        return a;
    db_bind_int64(s, 1, station_id);
    while (db_step(s, &row, err) == ERR_OK && row)
        json_array_append_new(a, json_pack("{s:s,s:s}", "name", db_col_text(s, 0), "unit",
                                           db_col_text(s, 1)));
    return a;
}

/* Columns: id, code, name, kind, lat, lon, region, river, opd_code, interval_s, th_waspada,
 * th_siaga, th_awas, demo, created_at, updated_at */
#define STATION_COLUMNS                                                                            \
    "SELECT id, code, name, kind, lat, lon, region, river, opd_code, interval_s, th_waspada, "    \
    "th_siaga, th_awas, demo, created_at, updated_at FROM stations "

static json_t *station_json(struct db_conn *c, struct db_stmt *s, bool internal, struct err *err)
{
    json_t *th = json_null();
    if (!db_col_is_null(s, 10))
        th = json_pack("{s:f,s:f,s:f}", "waspada", db_col_double(s, 10), "siaga",
                       db_col_double(s, 11), "awas", db_col_double(s, 12));
    json_t *o = json_pack("{s:s,s:s,s:s,s:f,s:f,s:s?,s:s,s:I,s:o,s:b}", "code", db_col_text(s, 1),
                          "name", db_col_text(s, 2), "kind", db_col_text(s, 3), "lat",
                          db_col_double(s, 4), "lon", db_col_double(s, 5), "region",
                          db_col_text(s, 6), "river", db_col_text(s, 7), "interval_s",
                          (json_int_t)db_col_int64(s, 9), "thresholds", th, "demo",
                          (int)db_col_int64(s, 13));
    if (internal) {
        char created[CLOCK_FMT_LEN], updated[CLOCK_FMT_LEN];
        clock_fmt_utc(created, db_col_int64(s, 14));
        clock_fmt_utc(updated, db_col_int64(s, 15));
        json_object_set_new(o, "opd", json_string(db_col_text(s, 8)));
        json_object_set_new(o, "created_at", json_string(created));
        json_object_set_new(o, "updated_at", json_string(updated));
    }
    (void)c;
    (void)err;
    return o;
}

enum err_code sensors_station_get(struct db_conn *c, const char *code, bool internal,
                                  json_t **out, char opd_out[AUTH_OPD_MAX + 1], struct err *err)
{
    struct db_stmt *s;
    bool row;
    if (db_prepare(c, &s, STATION_COLUMNS "WHERE code = ?", err))
        return err->code;
    db_bind_text(s, 1, code);
    if (db_step(s, &row, err))
        return err->code;
    if (!row)
        return err_set(err, ERR_NOT_FOUND, "no station with code '%s'", code);
    int64_t id = db_col_int64(s, 0);
    json_t *o = station_json(c, s, internal, err);
    if (opd_out)
        snprintf(opd_out, AUTH_OPD_MAX + 1, "%s", db_col_text(s, 8));
    db_done(s);
    json_object_set_new(o, "sensors", sensors_json(c, id, err));
    *out = o;
    return err->code;
}

enum err_code sensors_station_list(struct db_conn *c, bool internal, json_t **out, struct err *err)
{
    struct db_stmt *s;
    bool row;
    if (db_prepare(c, &s, STATION_COLUMNS "ORDER BY code", err))
        return err->code;
    json_t *a = json_array();
    json_t *ids = json_array();
    while (db_step(s, &row, err) == ERR_OK && row) {
        json_array_append_new(a, station_json(c, s, internal, err));
        json_array_append_new(ids, json_integer(db_col_int64(s, 0)));
    }
    size_t i;
    json_t *st;
    json_array_foreach(a, i, st) /* after the loop: one statement at a time per connection */
        json_object_set_new(st, "sensors",
                            sensors_json(c, json_integer_value(json_array_get(ids, i)), err));
    json_decref(ids);
    if (err->code) {
        json_decref(a);
        return err->code;
    }
    *out = a;
    return ERR_OK;
}

enum err_code sensors_station_update(struct db_conn *c, const struct actor *a, const char *code,
                                     json_t *in, json_t **out, struct err *err)
{
    struct station_in s;
    if (parse_station(in, false, &s, err))
        return err->code;
    if (s.code && strcmp(s.code, code) != 0)
        return err_set(err, ERR_INVALID, "field 'code' cannot be changed");
    if (s.kind_s)
        return err_set(err, ERR_INVALID, "field 'kind' cannot be changed; create a new station");
    struct db_stmt *st;
    if (db_begin(c, err))
        return err->code;
    if (check_region(c, s.region, err) == ERR_OK && sensors__check_opd(c, s.opd, err) == ERR_OK &&
        db_prepare(c, &st,
                   "UPDATE stations SET name = COALESCE(?, name), lat = COALESCE(?, lat), "
                   "lon = COALESCE(?, lon), region = COALESCE(?, region), "
                   "river = COALESCE(?, river), opd_code = COALESCE(?, opd_code), "
                   "interval_s = COALESCE(?, interval_s), "
                   "th_waspada = CASE WHEN ? THEN ? ELSE th_waspada END, "
                   "th_siaga = CASE WHEN ? THEN ? ELSE th_siaga END, "
                   "th_awas = CASE WHEN ? THEN ? ELSE th_awas END, "
                   "demo = COALESCE(?, demo), updated_at = ? WHERE code = ?",
                   err) == ERR_OK) {
        db_bind_text(st, 1, s.name);
        if (s.has_lat)
            db_bind_double(st, 2, s.lat);
        if (s.has_lon)
            db_bind_double(st, 3, s.lon);
        db_bind_text(st, 4, s.region);
        db_bind_text(st, 5, s.river);
        db_bind_text(st, 6, s.opd);
        if (s.has_interval)
            db_bind_int64(st, 7, s.interval_s);
        for (int k = 0; k < 3; k++) {
            db_bind_int64(st, 8 + 2 * k, s.thresholds_given);
            if (s.thresholds_given && !s.thresholds_null)
                db_bind_double(st, 9 + 2 * k, s.th[k]);
        }
        if (s.has_demo)
            db_bind_int64(st, 14, s.demo);
        db_bind_int64(st, 15, clock_now_s());
        db_bind_text(st, 16, code);
        if (db_run(st, err) == ERR_OK && db_changes(c) == 0)
            err_set(err, ERR_NOT_FOUND, "no station with code '%s'", code);
    }
    json_t *detail = json_deep_copy(in);
    json_object_del(detail, "code");
    if (finish_write(c, a, "station.update", code, detail, err))
        return err->code;
    return sensors_station_get(c, code, true, out, NULL, err);
}

enum err_code sensors_station_delete(struct db_conn *c, const struct actor *a, const char *code,
                                     struct err *err)
{
    struct db_stmt *s;
    if (db_begin(c, err))
        return err->code;
    /* Readings carry no foreign key (ingest speed): remove them with their sensors. Those
     * still in the store's log are dropped by its next compaction (their sensors are gone). */
    static const char *const cleanup[] = {
        "DELETE FROM reading_blocks WHERE sensor_id IN (SELECT s.id FROM sensors s JOIN stations st ON "
        "st.id = s.station_id WHERE st.code = ?)",
        "DELETE FROM rollups WHERE sensor_id IN (SELECT s.id FROM sensors s JOIN stations st ON "
        "st.id = s.station_id WHERE st.code = ?)",
        "DELETE FROM stations WHERE code = ?",
    };
    for (size_t i = 0; i < 3 && !err->code; i++)
        if (db_prepare(c, &s, cleanup[i], err) == ERR_OK) {
            db_bind_text(s, 1, code);
            if (db_run(s, err) == ERR_OK && i == 2 && db_changes(c) == 0)
                err_set(err, ERR_NOT_FOUND, "no station with code '%s'", code);
        }
    if (finish_write(c, a, "station.delete", code, NULL, err))
        return err->code;
    notify(code, NULL);
    return ERR_OK;
}

enum err_code sensors_station_rotate_token(struct db_conn *c, const struct actor *a,
                                           const char *code, json_t **out, struct err *err)
{
    char token[AUTH_TOKEN_LEN + 1], hash[65];
    auth_token_new(token, hash);
    struct db_stmt *s;
    if (db_begin(c, err))
        return err->code;
    if (db_prepare(c, &s, "UPDATE stations SET token_hash = ?, updated_at = ? WHERE code = ?",
                   err) == ERR_OK) {
        db_bind_text(s, 1, hash);
        db_bind_int64(s, 2, clock_now_s());
        db_bind_text(s, 3, code);
        if (db_run(s, err) == ERR_OK && db_changes(c) == 0)
            err_set(err, ERR_NOT_FOUND, "no station with code '%s'", code);
    }
    if (finish_write(c, a, "station.rotate_token", code, NULL, err))
        return err->code;
    notify(code, token);
    *out = json_pack("{s:s,s:s}", "code", code, "device_token", token);
    return ERR_OK;
}

enum err_code sensors_seed_demo(struct db_conn *c, const char *data_dir, const char *regency,
                                int *count_out, struct err *err)
{
    struct db_stmt *s;
    bool row;
    *count_out = 0;
    if (db_prepare(c, &s, "SELECT COUNT(*) FROM stations", err) || db_step(s, &row, err))
        return err->code;
    int64_t existing = row ? db_col_int64(s, 0) : 0;
    db_done(s);
    if (existing > 0)
        return ERR_OK;
    char path[1024];
    snprintf(path, sizeof path, "%s/demo_stations.json", data_dir);
    json_error_t je;
    json_t *doc = json_load_file(path, 0, &je);
    if (!doc)
        return err_set(err, ERR_INVALID, "%s: %s", path, je.text);
    size_t i;
    json_t *st;
    json_array_foreach(json_object_get(doc, "stations"), i, st)
    {
        const char *region = json_string_value(json_object_get(st, "region"));
        if (!region || !regions_within(region, regency))
            continue;
        json_t *out;
        if (sensors_station_create(c, NULL, st, &out, err))
            break;
        json_decref(out);
        (*count_out)++;
    }
    json_decref(doc);
    return err->code;
}
