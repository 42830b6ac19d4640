/* sensors: schema, start and stop of the room, and the readings query (raw or rollups). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "sensors/sensors_int.h"
#include "core/banned.h"

const struct db_migration sensors_migrations[] = {
    {20, "sensors: stations, sensors, readings, rollups",
     "CREATE TABLE stations ("
     "  id INTEGER PRIMARY KEY,"
     "  code TEXT NOT NULL UNIQUE,"
     "  name TEXT NOT NULL,"
     "  kind TEXT NOT NULL CHECK (kind IN ('water_level','rain','weather','waste_bin')),"
     "  lat REAL NOT NULL,"
     "  lon REAL NOT NULL,"
     "  region TEXT REFERENCES regions(code),"
     "  river TEXT NOT NULL DEFAULT '',"
     "  opd_code TEXT NOT NULL REFERENCES opds(code),"
     "  interval_s INTEGER NOT NULL,"
     "  th_waspada REAL, th_siaga REAL, th_awas REAL,"
     "  demo INTEGER NOT NULL DEFAULT 0,"
     "  token_hash TEXT NOT NULL UNIQUE,"
     "  created_at INTEGER NOT NULL,"
     "  updated_at INTEGER NOT NULL);"
     "CREATE INDEX stations_opd ON stations(opd_code);"
     "CREATE TABLE sensors ("
     "  id INTEGER PRIMARY KEY,"
     "  station_id INTEGER NOT NULL REFERENCES stations(id) ON DELETE CASCADE,"
     "  name TEXT NOT NULL,"
     "  unit TEXT NOT NULL,"
     "  UNIQUE (station_id, name));"
     /* Clustered by (sensor, time): one B-tree per reading, range scans per sensor, and the
      * primary key makes a reading sent twice a no-op. No foreign key: ingest speed. */
     "CREATE TABLE readings ("
     "  sensor_id INTEGER NOT NULL,"
     "  t INTEGER NOT NULL,"
     "  v REAL NOT NULL,"
     "  qc INTEGER NOT NULL,"
     "  qc_failed INTEGER NOT NULL,"
     "  PRIMARY KEY (sensor_id, t)) WITHOUT ROWID;"
     "CREATE TABLE rollups ("
     "  sensor_id INTEGER NOT NULL,"
     "  step INTEGER NOT NULL,"
     "  bucket INTEGER NOT NULL,"
     "  n INTEGER NOT NULL,"
     "  n_bad INTEGER NOT NULL,"
     "  vmin REAL NOT NULL,"
     "  vmax REAL NOT NULL,"
     "  vsum REAL NOT NULL,"
     "  PRIMARY KEY (sensor_id, step, bucket)) WITHOUT ROWID;"
     "CREATE TABLE sensors_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"},
    /* Sensor ids are never reused (stations.c next_sensor_id): the writer's QC history and open
     * rollups and the latest values are kept by sensor id, and SQLite would hand a deleted
     * sensor's id (the largest rowid) to the next sensor created. */
    {21, "sensors: sensor ids are never reused",
     "INSERT INTO sensors_meta (key, value) SELECT 'sensor_id_last', COALESCE(MAX(id), 0) "
     "FROM sensors;"},
    {0, NULL, NULL},
};

static enum err_code load_latest(struct db_conn *c, struct err *err)
{
    struct db_stmt *s;
    bool row;
    if (db_prepare(c, &s,
                   "SELECT s.id, r.t, r.v, r.qc FROM sensors s JOIN readings r ON r.sensor_id = "
                   "s.id AND r.t = (SELECT MAX(t) FROM readings m WHERE m.sensor_id = s.id)",
                   err))
        return err->code;
    while (db_step(s, &row, err) == ERR_OK && row)
        sensors__latest_note(db_col_int64(s, 0), db_col_int64(s, 1), db_col_double(s, 2),
                             (int)db_col_int64(s, 3));
    return err->code;
}

enum err_code sensors_start(struct db *db, const struct sensors_settings *st, struct err *err)
{
    sensors__settings = *st;
    struct db_conn *c = db_acquire(db);
    enum err_code rc = sensors__registry_load(c, err);
    if (rc == ERR_OK)
        rc = load_latest(c, err);
    db_release(db, c);
    if (rc == ERR_OK)
        rc = sensors__writer_start(db, err);
    return rc;
}

void sensors_stop(void)
{
    sensors__writer_stop();
    sensors__registry_free();
    sensors__latest_free();
}

/* ---- readings ----------------------------------------------------------------------------- */
static enum err_code find_sensor(const char *station, const char *sensor, int64_t *id,
                                 char unit[UNIT_MAX], char name_out[SENSOR_NAME_MAX + 1],
                                 struct err *err)
{
    sensors__registry_rdlock();
    const struct station_def *st = sensors__station_by_code(station, strlen(station));
    const struct sensor_def *sd = NULL;
    for (int k = 0; st && k < st->nsensors && !sd; k++)
        if (!sensor || strcmp(st->sensors[k].name, sensor) == 0)
            sd = &st->sensors[k];
    if (sd) {
        *id = sd->id;
        memcpy(unit, sd->unit, UNIT_MAX);
        memcpy(name_out, sd->name, SENSOR_NAME_MAX + 1);
    }
    sensors__registry_unlock();
    if (!st)
        return err_set(err, ERR_NOT_FOUND, "no station with code '%s'", station);
    if (!sd)
        return err_set(err, ERR_INVALID, "station '%s' has no sensor '%s'", station, sensor);
    return ERR_OK;
}

static int64_t choose_step(int64_t from, int64_t to)
{
    int64_t span = to - from;
    if (span <= 2 * 86400)
        return 0;
    if (span <= 31 * 86400)
        return 600;
    return 3600;
}

static enum err_code raw_points(struct db_conn *c, int64_t id, int64_t from, int64_t to,
                                int64_t limit, json_t *points, struct err *err)
{
    struct db_stmt *s;
    bool row;
    if (db_prepare(c, &s,
                   "SELECT t, v, qc, qc_failed FROM readings WHERE sensor_id = ? AND t >= ? AND "
                   "t <= ? ORDER BY t LIMIT ?",
                   err))
        return err->code;
    db_bind_int64(s, 1, id);
    db_bind_int64(s, 2, from * 1000);
    db_bind_int64(s, 3, to * 1000 + 999);
    db_bind_int64(s, 4, limit);
    while (db_step(s, &row, err) == ERR_OK && row) {
        char t[CLOCK_FMT_LEN];
        int64_t ms = db_col_int64(s, 0);
        clock_fmt_utc(t, ms / 1000);
        json_t *p = json_pack("{s:s,s:f,s:s}", "t", t, "v", db_col_double(s, 1), "qc",
                              sensors__qc_name((int)db_col_int64(s, 2)));
        int failed = (int)db_col_int64(s, 3);
        if (failed) {
            json_t *tests = json_array();
            static const struct {
                int bit;
                const char *name;
            } names[] = {{QC_RANGE, "range"}, {QC_SPIKE, "spike"}, {QC_RATE, "rate"},
                         {QC_FLAT, "flat"},   {QC_GAP, "gap"}};
            for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
                if (failed & names[k].bit)
                    json_array_append_new(tests, json_string(names[k].name));
            json_object_set_new(p, "qc_tests", tests);
        }
        json_array_append_new(points, p);
    }
    return err->code;
}

static enum err_code rollup_points(struct db_conn *c, int64_t id, int64_t step, int64_t from,
                                   int64_t to, int64_t limit, json_t *points, struct err *err)
{
    struct db_stmt *s;
    bool row;
    /* Buckets still open in the writer's memory are not in this table yet; the raw readings
     * of those buckets are, so they are aggregated here and merged. */
    if (db_prepare(c, &s,
                   "SELECT bucket, SUM(n), SUM(n_bad), MIN(vmin), MAX(vmax), SUM(vsum) FROM ("
                   " SELECT bucket, n, n_bad, CASE WHEN n > 0 THEN vmin END AS vmin,"
                   "  CASE WHEN n > 0 THEN vmax END AS vmax, vsum FROM rollups"
                   "  WHERE sensor_id = ? AND step = ? AND bucket >= ? AND bucket <= ?"
                   " UNION ALL"
                   " SELECT (t / 1000 / ?) * ? AS bucket, SUM(qc <> 4), SUM(qc = 4),"
                   "  MIN(CASE WHEN qc <> 4 THEN v END), MAX(CASE WHEN qc <> 4 THEN v END),"
                   "  COALESCE(SUM(CASE WHEN qc <> 4 THEN v END), 0) FROM readings"
                   "  WHERE sensor_id = ? AND t >= (SELECT COALESCE(MAX(bucket) + ?, ?) FROM"
                   "   rollups WHERE sensor_id = ? AND step = ?) * 1000 AND t >= ? * 1000"
                   "   AND t <= ? * 1000 + 999 GROUP BY t / 1000 / ?"
                   ") GROUP BY bucket ORDER BY bucket LIMIT ?",
                   err))
        return err->code;
    int i = 1;
    db_bind_int64(s, i++, id);
    db_bind_int64(s, i++, step);
    db_bind_int64(s, i++, from - ((from % step) + step) % step);
    db_bind_int64(s, i++, to);
    db_bind_int64(s, i++, step);
    db_bind_int64(s, i++, step);
    db_bind_int64(s, i++, id);
    db_bind_int64(s, i++, step);
    db_bind_int64(s, i++, from);
    db_bind_int64(s, i++, id);
    db_bind_int64(s, i++, step);
    db_bind_int64(s, i++, from);
    db_bind_int64(s, i++, to);
    db_bind_int64(s, i++, step);
    db_bind_int64(s, i++, limit);
    while (db_step(s, &row, err) == ERR_OK && row) {
        char t[CLOCK_FMT_LEN];
        clock_fmt_utc(t, db_col_int64(s, 0));
        int64_t n = db_col_int64(s, 1);
        json_t *p = json_pack("{s:s,s:I,s:I}", "t", t, "n", (json_int_t)n, "n_bad",
                              (json_int_t)db_col_int64(s, 2));
        if (n > 0) {
            json_object_set_new(p, "min", json_real(db_col_double(s, 3)));
            json_object_set_new(p, "max", json_real(db_col_double(s, 4)));
            json_object_set_new(p, "mean", json_real(db_col_double(s, 5) / (double)n));
        }
        json_array_append_new(points, p);
    }
    return err->code;
}

enum err_code sensors_readings(struct db_conn *c, const char *station, const char *sensor,
                               int64_t from, int64_t to, int64_t step, int64_t limit,
                               json_t **out, struct err *err)
{
    int64_t id = 0;
    char unit[UNIT_MAX], name[SENSOR_NAME_MAX + 1];
    if (find_sensor(station, sensor, &id, unit, name, err))
        return err->code;
    if (to <= 0)
        to = clock_now_s();
    if (from <= 0)
        from = to - 86400;
    if (from > to)
        return err_set(err, ERR_INVALID, "query 'from' must be before 'to'");
    if (step < 0)
        step = choose_step(from, to);
    if (step != 0 && step != 600 && step != 3600)
        return err_set(err, ERR_INVALID, "query 'step' must be raw, 600, 3600 or auto");
    json_t *points = json_array();
    if ((step == 0 ? raw_points(c, id, from, to, limit, points, err)
                   : rollup_points(c, id, step, from, to, limit, points, err))) {
        json_decref(points);
        return err->code;
    }
    char f[CLOCK_FMT_LEN], t[CLOCK_FMT_LEN];
    clock_fmt_utc(f, from);
    clock_fmt_utc(t, to);
    *out = json_pack("{s:s,s:s,s:s,s:s,s:s,s:o,s:o}", "station", station, "sensor",
                     name, "unit", unit, "from", f, "to", t, "step",
                     step ? json_integer(step) : json_string("raw"), "points", points);
    return ERR_OK;
}
