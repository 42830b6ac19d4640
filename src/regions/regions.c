/* regions: import of the shipped kode wilayah CSVs (libcsv) and boundary GeoJSON (jansson),
 * and the queries behind /api/v1/regions. */
#define _GNU_SOURCE
#include "regions/regions_int.h"

#include <assert.h>
#include <csv.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/banned.h"

const struct db_migration regions_migrations[] = {
    {10, "regions: kode wilayah and boundaries",
     "CREATE TABLE regions ("
     "  code TEXT PRIMARY KEY,"
     "  name TEXT NOT NULL,"
     "  level TEXT NOT NULL CHECK (level IN "
     "    ('provinsi','kabupaten','kota','kecamatan','kelurahan','desa')),"
     "  parent_code TEXT REFERENCES regions(code),"
     "  lat REAL,"
     "  lon REAL,"
     "  area_km2 REAL,"
     "  geometry TEXT);"
     "CREATE INDEX regions_parent ON regions(parent_code);"},
    /* Approximate points on the regencies' rivers (not river lines), from the shipped
     * rivers_reference_points.csv; `id` is the row's place in that file. */
    {11, "regions: river reference points",
     "CREATE TABLE river_points ("
     "  id INTEGER PRIMARY KEY,"
     "  river TEXT NOT NULL,"
     "  regency_code TEXT NOT NULL REFERENCES regions(code),"
     "  region_code TEXT REFERENCES regions(code),"
     "  description TEXT NOT NULL,"
     "  lat REAL NOT NULL,"
     "  lon REAL NOT NULL,"
     "  confidence TEXT NOT NULL,"
     "  confidence_note TEXT,"
     "  basis TEXT NOT NULL,"
     "  source TEXT NOT NULL);"
     "CREATE INDEX river_points_regency ON river_points(regency_code, id);"},
    {0, NULL, NULL},
};

bool regions_within(const char *code, const char *regency)
{
    size_t n = strlen(regency);
    return strncmp(code, regency, n) == 0 && (code[n] == 0 || code[n] == '.');
}

/* ---- import: CSV ------------------------------------------------------------------------- */
struct csv_reader {
    const char *path;
    const char *const *header;
    int nfields;
    regions__csv_row_fn row;
    void *ctx;
    struct err *err;
    char *field[REGIONS_CSV_MAX_FIELDS];
    int nfield;
    int record;
};

static void on_field(void *s, size_t len, void *data)
{
    struct csv_reader *x = data;
    if (x->nfield < x->nfields)
        x->field[x->nfield] = strndup(s, len);
    x->nfield++;
}

static void on_row(int ch, void *data)
{
    (void)ch;
    struct csv_reader *x = data;
    x->record++;
    if (x->err->code) {
        /* a row after the first failure: dropped */
    } else if (x->nfield != x->nfields) {
        err_set(x->err, ERR_INVALID, "%s row %d has %d fields, expected %d", x->path, x->record,
                x->nfield, x->nfields);
    } else if (x->record == 1) {
        for (int i = 0; i < x->nfields; i++)
            if (!x->field[i] || strcmp(x->field[i], x->header[i]) != 0) {
                err_set(x->err, ERR_INVALID, "%s: column %d must be '%s'", x->path, i + 1,
                        x->header[i]);
                break;
            }
    } else {
        for (int i = 0; i < x->nfields; i++)
            if (!x->field[i]) {
                err_set(x->err, ERR_INTERNAL, "out of memory reading %s", x->path);
                break;
            }
        if (!x->err->code)
            x->row(x->field, x->record, x->ctx, x->err);
    }
    for (int i = 0; i < REGIONS_CSV_MAX_FIELDS; i++) {
        free(x->field[i]);
        x->field[i] = NULL;
    }
    x->nfield = 0;
}

enum err_code regions__csv_read(const char *path, const char *const *header, int nfields,
                                regions__csv_row_fn row, void *ctx, struct err *err)
{
    assert(nfields > 0 && nfields <= REGIONS_CSV_MAX_FIELDS);
    FILE *f = fopen(path, "rb");
    if (!f)
        return err_set(err, ERR_INVALID, "cannot read %s: %s", path, strerror(errno));
    struct csv_parser p;
    struct csv_reader x = {.path = path, .header = header, .nfields = nfields, .row = row,
                           .ctx = ctx, .err = err};
    csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL);
    char chunk[8192];
    size_t n;
    while (!err->code && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (csv_parse(&p, chunk, n, on_field, on_row, &x) != n)
            err_set(err, ERR_INVALID, "%s: %s", path, csv_strerror(csv_error(&p)));
    if (!err->code && csv_fini(&p, on_field, on_row, &x) != 0)
        err_set(err, ERR_INVALID, "%s: %s", path, csv_strerror(csv_error(&p)));
    for (int i = 0; i < REGIONS_CSV_MAX_FIELDS; i++)
        free(x.field[i]);
    csv_free(&p);
    fclose(f);
    return err->code;
}

struct region_rows {
    struct db_conn *c;
    int *rows;
};

/* One row of kode_wilayah_*.csv: code,name,level,parent_code. */
static enum err_code upsert_region(char *const *field, int record, void *ctx, struct err *err)
{
    (void)record;
    struct region_rows *x = ctx;
    struct db_stmt *s;
    if (db_prepare(x->c, &s,
                   "INSERT INTO regions (code, name, level, parent_code) "
                   "VALUES (?, ?, ?, ?) ON CONFLICT (code) DO UPDATE SET "
                   "name = excluded.name, level = excluded.level, "
                   "parent_code = excluded.parent_code",
                   err))
        return err->code;
    for (int i = 0; i < 4; i++)
        db_bind_text(s, i + 1, field[i]);
    if (db_run(s, err) == ERR_OK)
        (*x->rows)++;
    return err->code;
}

static enum err_code import_csv(struct db_conn *c, const char *path, int *rows, struct err *err)
{
    static const char *const header[] = {"code", "name", "level", "parent_code"};
    struct region_rows x = {c, rows};
    return regions__csv_read(path, header, 4, upsert_region, &x, err);
}

/* ---- import: GeoJSON --------------------------------------------------------------------- */
static enum err_code import_geojson(struct db_conn *c, const char *path, struct err *err)
{
    json_error_t je;
    json_t *fc = json_load_file(path, 0, &je);
    if (!fc)
        return err_set(err, ERR_INVALID, "%s: %s at line %d", path, je.text, je.line);
    size_t i;
    json_t *feat;
    json_array_foreach(json_object_get(fc, "features"), i, feat)
    {
        json_t *props = json_object_get(feat, "properties");
        const char *code = json_string_value(json_object_get(props, "kode"));
        json_t *geom = json_object_get(feat, "geometry");
        if (!code || !geom)
            continue;
        char *g = json_dumps(geom, JSON_COMPACT);
        struct db_stmt *s;
        if (g && db_prepare(c, &s,
                            "UPDATE regions SET lat = ?, lon = ?, area_km2 = ?, geometry = ? "
                            "WHERE code = ?",
                            err) == ERR_OK) {
            json_t *lat = json_object_get(props, "centroid_lat");
            json_t *lon = json_object_get(props, "centroid_lng");
            json_t *area = json_object_get(props, "area_km2_computed");
            if (lat && lon) {
                db_bind_double(s, 1, json_number_value(lat));
                db_bind_double(s, 2, json_number_value(lon));
            }
            if (area)
                db_bind_double(s, 3, json_number_value(area));
            db_bind_text(s, 4, g);
            db_bind_text(s, 5, code);
            db_run(s, err);
        }
        free(g);
        if (err->code)
            break;
    }
    json_decref(fc);
    return err->code;
}

static int has_prefix_suffix(const char *name, const char *prefix, const char *suffix)
{
    size_t n = strlen(name), p = strlen(prefix), s = strlen(suffix);
    return n > p + s && strncmp(name, prefix, p) == 0 && strcmp(name + n - s, suffix) == 0;
}

/* Files in a fixed order so kecamatan rows exist before their desa, and regencies before both. */
static enum err_code each_file(const char *dir, const char *prefix, const char *suffix,
                               enum err_code (*fn)(struct db_conn *, const char *, int *,
                                                   struct err *),
                               struct db_conn *c, int *rows, struct err *err)
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    if (n < 0)
        return err_set(err, ERR_INVALID, "cannot list data directory %s: %s", dir,
                       strerror(errno));
    int found = 0;
    for (int i = 0; i < n; i++) {
        if (!err->code && has_prefix_suffix(names[i]->d_name, prefix, suffix)) {
            char path[1024];
            snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
            fn(c, path, rows, err);
            found++;
        }
        free(names[i]);
    }
    free(names);
    if (!err->code && !found)
        err_set(err, ERR_INVALID, "no %s*%s files in data directory %s", prefix, suffix, dir);
    return err->code;
}

static enum err_code geojson_file(struct db_conn *c, const char *path, int *rows, struct err *err)
{
    (void)rows;
    return import_geojson(c, path, err);
}

enum err_code regions_import(struct db_conn *c, const char *data_dir, int *count_out,
                             struct err *err)
{
    int rows = 0, points = 0;
    struct db_stmt *s;
    if (db_begin(c, err))
        return err->code;
    /* Sulawesi Selatan: the parent of both regencies. */
    if (db_prepare(c, &s,
                   "INSERT INTO regions (code, name, level, parent_code) VALUES "
                   "('73', 'Sulawesi Selatan', 'provinsi', NULL) ON CONFLICT (code) DO NOTHING",
                   err) ||
        db_run(s, err) ||
        each_file(data_dir, "kode_wilayah_luwu", ".csv", import_csv, c, &rows, err) ||
        each_file(data_dir, "boundaries_", ".geojson", geojson_file, c, &rows, err) ||
        regions__import_rivers(c, data_dir, &points, err) || db_commit(c, err)) {
        db_rollback(c);
        return err->code;
    }
    *count_out = rows;
    log_info("event=regions_imported rows=%d river_points=%d", rows, points);
    return ERR_OK;
}

enum err_code regions_import_needed(struct db_conn *c, bool *out, struct err *err)
{
    struct db_stmt *s;
    bool row;
    if (db_prepare(c, &s,
                   "SELECT (SELECT COUNT(*) FROM regions), (SELECT COUNT(*) FROM river_points)",
                   err) ||
        db_step(s, &row, err))
        return err->code;
    *out = !row || db_col_int64(s, 0) == 0 || db_col_int64(s, 1) == 0;
    db_done(s);
    return ERR_OK;
}

/* ---- queries ----------------------------------------------------------------------------- */
/* Columns: code, name, level, parent_code, lat, lon, area_km2, children, geometry */
static json_t *region_json(struct db_stmt *s, bool geometry)
{
    json_t *o = json_pack("{s:s,s:s,s:s,s:s?,s:I}", "code", db_col_text(s, 0), "name",
                          db_col_text(s, 1), "level", db_col_text(s, 2), "parent",
                          db_col_text(s, 3), "children", (json_int_t)db_col_int64(s, 7));
    if (!db_col_is_null(s, 4))
        json_object_set_new(o, "centroid",
                            json_pack("{s:f,s:f}", "lat", db_col_double(s, 4), "lon",
                                      db_col_double(s, 5)));
    if (!db_col_is_null(s, 6))
        json_object_set_new(o, "area_km2", json_real(db_col_double(s, 6)));
    if (!geometry)
        return o;
    const char *g = db_col_text(s, 8);
    json_t *geom = g ? json_loads(g, 0, NULL) : NULL;
    return json_pack("{s:s,s:s,s:o,s:o}", "type", "Feature", "id", db_col_text(s, 0),
                     "properties", o, "geometry", geom ? geom : json_null());
}

enum err_code regions_get(struct db_conn *c, const char *code, bool geometry, json_t **out,
                          struct err *err)
{
    struct db_stmt *s;
    bool row;
    if (db_prepare(c, &s,
                   "SELECT r.code, r.name, r.level, r.parent_code, r.lat, r.lon, r.area_km2, "
                   "(SELECT COUNT(*) FROM regions k WHERE k.parent_code = r.code), r.geometry "
                   "FROM regions r WHERE r.code = ?",
                   err))
        return err->code;
    db_bind_text(s, 1, code);
    if (db_step(s, &row, err))
        return err->code;
    if (!row)
        return err_set(err, ERR_NOT_FOUND, "no region with code '%s'", code);
    *out = region_json(s, geometry);
    db_done(s);
    return ERR_OK;
}

enum err_code regions_children(struct db_conn *c, const char *parent, bool geometry, json_t **out,
                               struct err *err)
{
    struct db_stmt *s;
    bool row;
    json_t *probe;
    if (regions_get(c, parent, false, &probe, err))
        return err->code;
    json_decref(probe);
    if (db_prepare(c, &s,
                   "SELECT r.code, r.name, r.level, r.parent_code, r.lat, r.lon, r.area_km2, "
                   "(SELECT COUNT(*) FROM regions k WHERE k.parent_code = r.code), r.geometry "
                   "FROM regions r WHERE r.parent_code = ? ORDER BY r.code",
                   err))
        return err->code;
    db_bind_text(s, 1, parent);
    json_t *a = json_array();
    while (db_step(s, &row, err) == ERR_OK && row)
        json_array_append_new(a, region_json(s, geometry));
    if (err->code) {
        json_decref(a);
        return err->code;
    }
    *out = geometry ? json_pack("{s:s,s:o}", "type", "FeatureCollection", "features", a) : a;
    return ERR_OK;
}
