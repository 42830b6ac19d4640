/* sensors: schema, start and stop of the room, and the readings query (raw or rollups). */
#include <errno.h>
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
    /* Readings packed: a log row per writer transaction and per-sensor blocks (store.c).
     * Rows of the old `readings` table are packed into blocks by store.c on first start. */
    {22, "sensors: readings packed in a log and per-sensor blocks",
     "CREATE TABLE reading_log ("
     "  seq INTEGER PRIMARY KEY,"
     "  n INTEGER NOT NULL,"
     "  data BLOB NOT NULL);"
     "CREATE TABLE reading_blocks ("
     "  sensor_id INTEGER NOT NULL,"
     "  t0 INTEGER NOT NULL,"
     "  t1 INTEGER NOT NULL,"
     "  n INTEGER NOT NULL,"
     "  data BLOB NOT NULL,"
     "  PRIMARY KEY (sensor_id, t0)) WITHOUT ROWID;"
     "CREATE INDEX reading_blocks_t1 ON reading_blocks(t1);"},
    /* A gateway (a data concentrator, a LoRaWAN network server, a Node-RED flow) forwards the
     * readings of every station of its OPD with one token. */
    {23, "sensors: gateways",
     "CREATE TABLE gateways ("
     "  id INTEGER PRIMARY KEY,"
     "  code TEXT NOT NULL UNIQUE,"
     "  name TEXT NOT NULL,"
     "  opd_code TEXT NOT NULL REFERENCES opds(code),"
     "  token_hash TEXT NOT NULL UNIQUE,"
     "  created_at INTEGER NOT NULL,"
     "  updated_at INTEGER NOT NULL);"},
    {0, NULL, NULL},
};

static enum err_code load_latest(struct db_conn *c, struct err *err)
{
    static const char sql[] = "SELECT id FROM sensors";
    struct db_stmt *s;
    bool row;
    if (db_prepare(c, &s, sql, err))
        return err->code;
    while (db_step(s, &row, err) == ERR_OK && row) {
        int64_t id = db_col_int64(s, 0);
        struct store_pt *p;
        size_t n;
        if (store__tail(c, id, 1, false, &p, &n, err))
            break;
        if (n)
            sensors__latest_note(id, p[0].t_ms, p[0].v, p[0].qc);
        free(p);
    }
    db_done(s);
    return err->code;
}

enum err_code sensors_start(struct db *db, const struct sensors_settings *st, struct err *err)
{
    sensors__settings = *st;
    struct db_conn *c = db_acquire(db);
    enum err_code rc = sensors__registry_load(c, err);
    if (rc == ERR_OK)
        rc = sensors__writer_start(db, err); /* the store: the last run's log is read back */
    if (rc == ERR_OK)
        rc = load_latest(c, err);
    db_release(db, c);
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
    struct store_pt *pts;
    size_t n;
    if (store__read(c, id, from * 1000, to * 1000 + 999, limit > 0 ? (size_t)limit : 0, &pts,
                    &n, err))
        return err->code;
    for (size_t i = 0; i < n; i++) {
        char t[CLOCK_FMT_LEN];
        clock_fmt_utc(t, pts[i].t_ms / 1000);
        json_t *p = json_pack("{s:s,s:f,s:s}", "t", t, "v", pts[i].v, "qc",
                              sensors__qc_name(pts[i].qc));
        int failed = pts[i].failed;
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
    free(pts);
    return ERR_OK;
}

struct bucket {
    int64_t bucket, n, n_bad;
    double vmin, vmax, vsum;
};

static void bucket_point(json_t *points, const struct bucket *b)
{
    char t[CLOCK_FMT_LEN];
    clock_fmt_utc(t, b->bucket);
    json_t *p = json_pack("{s:s,s:I,s:I}", "t", t, "n", (json_int_t)b->n, "n_bad",
                          (json_int_t)b->n_bad);
    if (b->n > 0) {
        json_object_set_new(p, "min", json_real(b->vmin));
        json_object_set_new(p, "max", json_real(b->vmax));
        json_object_set_new(p, "mean", json_real(b->vsum / (double)b->n));
    }
    json_array_append_new(points, p);
}

/* Flushed buckets from `rollups`, then the buckets after the newest flushed one aggregated
 * from raw readings (they are still open in the writer's memory). */
static enum err_code rollup_points(struct db_conn *c, int64_t id, int64_t step, int64_t from,
                                   int64_t to, int64_t limit, json_t *points, struct err *err)
{
    static const char sql[] =
        "SELECT bucket, n, n_bad, vmin, vmax, vsum FROM rollups WHERE sensor_id = ? AND step = ? "
        "AND bucket >= ? AND bucket <= ? ORDER BY bucket LIMIT ?";
    static const char sql_last[] =
        "SELECT MAX(bucket) FROM rollups WHERE sensor_id = ? AND step = ?";
    struct db_stmt *s;
    bool row;
    int64_t first = from - ((from % step) + step) % step, open_from = first, count = 0;
    if (db_prepare(c, &s, sql_last, err))
        return err->code;
    db_bind_int64(s, 1, id);
    db_bind_int64(s, 2, step);
    if (db_step(s, &row, err))
        return err->code;
    if (row && !db_col_is_null(s, 0) && db_col_int64(s, 0) + step > open_from)
        open_from = db_col_int64(s, 0) + step;
    db_done(s);
    if (db_prepare(c, &s, sql, err))
        return err->code;
    db_bind_int64(s, 1, id);
    db_bind_int64(s, 2, step);
    db_bind_int64(s, 3, first);
    db_bind_int64(s, 4, to);
    db_bind_int64(s, 5, limit);
    while (db_step(s, &row, err) == ERR_OK && row) {
        struct bucket b = {db_col_int64(s, 0), db_col_int64(s, 1), db_col_int64(s, 2),
                           db_col_double(s, 3), db_col_double(s, 4), db_col_double(s, 5)};
        bucket_point(points, &b);
        count++;
    }
    db_done(s);
    if (err->code || count >= limit || open_from > to)
        return err->code;
    struct store_pt *pts;
    size_t n;
    int64_t raw_from = (open_from > from ? open_from : from) * 1000;
    if (store__read(c, id, raw_from, to * 1000 + 999, SIZE_MAX, &pts, &n, err))
        return err->code;
    struct bucket b = {.bucket = INT64_MIN};
    for (size_t i = 0; i <= n && count < limit; i++) {
        int64_t t = i < n ? pts[i].t_ms / 1000 : 0;
        int64_t bk = t - ((t % step) + step) % step;
        if (b.bucket != INT64_MIN && (i == n || bk != b.bucket)) {
            bucket_point(points, &b);
            count++;
        }
        if (i == n)
            break;
        if (bk != b.bucket)
            b = (struct bucket){.bucket = bk};
        if (pts[i].qc == QC_BAD) {
            b.n_bad++;
            continue;
        }
        if (b.n == 0 || pts[i].v < b.vmin)
            b.vmin = pts[i].v;
        if (b.n == 0 || pts[i].v > b.vmax)
            b.vmax = pts[i].v;
        b.vsum += pts[i].v;
        b.n++;
    }
    free(pts);
    return ERR_OK;
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

/* ---- export ------------------------------------------------------------------------------- */
enum err_code sensors_readings_count(struct db_conn *c, int64_t *out, struct err *err)
{
    return store__count(c, out, err);
}

struct export_ctx {
    FILE *out;
    struct db_conn *c;
    int64_t sensor_id;
    char station[CODE_MAX + 1], sensor[SENSOR_NAME_MAX + 1];
};

static enum err_code export_row(int64_t sensor_id, const struct store_pt *p, void *ctx,
                                struct err *err)
{
    static const char sql[] = "SELECT st.code, s.name FROM sensors s JOIN stations st ON st.id = "
                              "s.station_id WHERE s.id = ?";
    struct export_ctx *x = ctx;
    if (sensor_id != x->sensor_id) {
        struct db_stmt *s;
        bool row;
        x->sensor_id = sensor_id;
        x->station[0] = x->sensor[0] = 0;
        if (db_prepare(x->c, &s, sql, err))
            return err->code;
        db_bind_int64(s, 1, sensor_id);
        if (db_step(s, &row, err))
            return err->code;
        if (row) {
            snprintf(x->station, sizeof x->station, "%s", db_col_text(s, 0));
            snprintf(x->sensor, sizeof x->sensor, "%s", db_col_text(s, 1));
        }
        db_done(s);
    }
    if (fprintf(x->out, "%lld,%s,%s,%lld,%.17g,%d,%d\n", (long long)sensor_id, x->station,
                x->sensor, (long long)p->t_ms, p->v, p->qc, p->failed) < 0)
        return err_set(err, ERR_INTERNAL, "cannot write the export: %s", strerror(errno));
    return ERR_OK;
}

enum err_code sensors_readings_export(struct db_conn *c, FILE *out, struct err *err)
{
    struct export_ctx x = {.out = out, .c = c};
    fputs("sensor_id,station,sensor,t_ms,v,qc,qc_failed\n", out);
    return store__export(c, export_row, &x, err);
}
