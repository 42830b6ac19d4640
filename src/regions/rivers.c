/* rivers: the rivers' reference points shipped in rivers_reference_points.csv (approximate
 * points, not river lines), each placed in the desa or kelurahan whose boundary holds it, and the
 * query behind GET /api/v1/rivers. */
#define _GNU_SOURCE
#include "regions/regions_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/banned.h"

enum { RIVER_POINTS_MAX = 1000, CODE_LEN = 32 };

enum { F_RIVER, F_REGENCY, F_DESCRIPTION, F_LAT, F_LON, F_BASIS, F_CONFIDENCE, F_SOURCE, F__COUNT };
static const char *const rivers_header[F__COUNT] = {
    "river", "regency", "point_description", "lat", "lon", "basis", "confidence", "source"};

struct river_point {
    char *field[F__COUNT]; /* owned */
    double lat, lon;
    char regency[CODE_LEN];
    char region[CODE_LEN]; /* the desa/kelurahan holding it; "" when none does */
};

struct rivers_load {
    struct db_conn *c;
    const char *path;
    struct river_point *pts;
    int n;
};

/* ---- import ------------------------------------------------------------------------------ */
static bool parse_coord(const char *s, double min, double max, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !isfinite(v) || v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* The code of the regency the file names ("Luwu Utara" is "Kabupaten Luwu Utara", 73.22). */
static enum err_code regency_code(struct db_conn *c, const char *name, char out[CODE_LEN],
                                  struct err *err)
{
    char full[160];
    struct db_stmt *s;
    bool row;
    snprintf(full, sizeof full, "Kabupaten %s", name);
    if (db_prepare(c, &s,
                   "SELECT code FROM regions WHERE level = 'kabupaten' AND (name = ? OR name = ?)",
                   err))
        return err->code;
    db_bind_text(s, 1, name);
    db_bind_text(s, 2, full);
    if (db_step(s, &row, err))
        return err->code;
    if (row)
        snprintf(out, CODE_LEN, "%s", db_col_text(s, 0));
    db_done(s);
    return row ? ERR_OK : err_set(err, ERR_NOT_FOUND, "no such regency");
}

static enum err_code add_point(char *const *field, int record, void *ctx, struct err *err)
{
    struct rivers_load *x = ctx;
    if (x->n >= RIVER_POINTS_MAX)
        return err_set(err, ERR_TOO_BIG, "%s has more than %d points", x->path, RIVER_POINTS_MAX);
    struct river_point p = {0};
    if (!field[F_RIVER][0] || !field[F_DESCRIPTION][0] || !field[F_CONFIDENCE][0])
        return err_set(err, ERR_INVALID, "%s row %d: river, point_description and confidence "
                       "must not be empty", x->path, record);
    if (!parse_coord(field[F_LAT], -90, 90, &p.lat) ||
        !parse_coord(field[F_LON], -180, 180, &p.lon))
        return err_set(err, ERR_INVALID, "%s row %d: lat and lon must be decimal degrees",
                       x->path, record);
    struct err e = ERR_INIT;
    if (regency_code(x->c, field[F_REGENCY], p.regency, &e))
        return err_set(err, e.code == ERR_NOT_FOUND ? ERR_INVALID : e.code,
                       "%s row %d: regency '%s' is not in the region data", x->path, record,
                       field[F_REGENCY]);
    for (int i = 0; i < F__COUNT; i++)
        if (!(p.field[i] = strdup(field[i]))) {
            for (int k = 0; k < i; k++)
                free(p.field[k]);
            return err_set(err, ERR_INTERNAL, "out of memory reading %s", x->path);
        }
    x->pts[x->n++] = p;
    return ERR_OK;
}

/* Even-odd rule over one ring of [lon, lat] positions: toggles `in` per edge the ray crosses. */
static bool ring_toggles(json_t *ring, double lon, double lat)
{
    size_t n = json_array_size(ring);
    bool in = false;
    for (size_t k = 0, l = n ? n - 1 : 0; k < n; l = k++) {
        json_t *a = json_array_get(ring, k), *b = json_array_get(ring, l);
        double xa = json_number_value(json_array_get(a, 0)), ya = json_number_value(json_array_get(a, 1));
        double xb = json_number_value(json_array_get(b, 0)), yb = json_number_value(json_array_get(b, 1));
        if ((ya > lat) != (yb > lat) && lon < (xb - xa) * (lat - ya) / (yb - ya) + xa)
            in = !in;
    }
    return in;
}

/* A GeoJSON Polygon or MultiPolygon holds the point: inside an outer ring, outside its holes. */
static bool geometry_holds(json_t *g, double lon, double lat)
{
    const char *type = json_string_value(json_object_get(g, "type"));
    json_t *coords = json_object_get(g, "coordinates");
    bool multi = type && strcmp(type, "MultiPolygon") == 0;
    if (!type || (!multi && strcmp(type, "Polygon") != 0))
        return false;
    bool in = false;
    for (size_t i = 0; i < (multi ? json_array_size(coords) : 1); i++) {
        json_t *poly = multi ? json_array_get(coords, i) : coords;
        for (size_t r = 0; r < json_array_size(poly); r++)
            in ^= ring_toggles(json_array_get(poly, r), lon, lat);
    }
    return in;
}

/* Each point's desa or kelurahan, from the boundaries already imported. */
static enum err_code place_points(struct rivers_load *x, struct err *err)
{
    struct db_stmt *s;
    bool row;
    if (db_prepare(x->c, &s,
                   "SELECT code, geometry FROM regions WHERE level IN ('desa', 'kelurahan') "
                   "AND geometry IS NOT NULL ORDER BY code",
                   err))
        return err->code;
    while (db_step(s, &row, err) == ERR_OK && row) {
        const char *code = db_col_text(s, 0);
        json_t *g = NULL;
        for (int i = 0; i < x->n; i++) {
            struct river_point *p = &x->pts[i];
            if (p->region[0] || !regions_within(code, p->regency))
                continue;
            if (!g && !(g = json_loads(db_col_text(s, 1), 0, NULL)))
                break;
            if (geometry_holds(g, p->lon, p->lat))
                snprintf(p->region, sizeof p->region, "%s", code);
        }
        json_decref(g);
    }
    return err->code;
}

/* "medium (river passes through ...)" is the level "medium" and its note. */
static void split_confidence(const char *s, char *level, size_t n, const char **note,
                             size_t *note_len)
{
    const char *open = strstr(s, " (");
    size_t len = strlen(s);
    *note = NULL;
    *note_len = 0;
    if (open && len > 0 && s[len - 1] == ')') {
        *note = open + 2;
        *note_len = (size_t)(s + len - 1 - *note);
        len = (size_t)(open - s);
    }
    snprintf(level, n, "%.*s", (int)len, s);
}

static enum err_code store_points(struct rivers_load *x, struct err *err)
{
    struct db_stmt *s;
    if (db_prepare(x->c, &s, "DELETE FROM river_points", err) || db_run(s, err))
        return err->code;
    for (int i = 0; i < x->n && !err->code; i++) {
        struct river_point *p = &x->pts[i];
        char level[64];
        const char *note;
        size_t note_len;
        split_confidence(p->field[F_CONFIDENCE], level, sizeof level, &note, &note_len);
        if (db_prepare(x->c, &s,
                       "INSERT INTO river_points (id, river, regency_code, region_code, "
                       "description, lat, lon, confidence, confidence_note, basis, source) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       err))
            break;
        db_bind_int64(s, 1, i + 1);
        db_bind_text(s, 2, p->field[F_RIVER]);
        db_bind_text(s, 3, p->regency);
        db_bind_text(s, 4, p->region[0] ? p->region : NULL);
        db_bind_text(s, 5, p->field[F_DESCRIPTION]);
        db_bind_double(s, 6, p->lat);
        db_bind_double(s, 7, p->lon);
        db_bind_text(s, 8, level);
        if (note)
            db_bind_textn(s, 9, note, note_len);
        db_bind_text(s, 10, p->field[F_BASIS]);
        db_bind_text(s, 11, p->field[F_SOURCE]);
        db_run(s, err);
    }
    return err->code;
}

enum err_code regions__import_rivers(struct db_conn *c, const char *data_dir, int *count_out,
                                     struct err *err)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/rivers_reference_points.csv", data_dir);
    struct rivers_load x = {.c = c, .path = path, .pts = calloc(RIVER_POINTS_MAX, sizeof *x.pts)};
    if (!x.pts)
        return err_set(err, ERR_INTERNAL, "out of memory reading %s", path);
    if (regions__csv_read(path, rivers_header, F__COUNT, add_point, &x, err) == ERR_OK &&
        place_points(&x, err) == ERR_OK && store_points(&x, err) == ERR_OK) {
        int placed = 0;
        for (int i = 0; i < x.n; i++)
            placed += x.pts[i].region[0] != 0;
        *count_out = x.n;
        log_info("event=river_points_imported points=%d placed_in_desa=%d", x.n, placed);
    }
    for (int i = 0; i < x.n; i++)
        for (int k = 0; k < F__COUNT; k++)
            free(x.pts[i].field[k]);
    free(x.pts);
    return err->code;
}

/* ---- query ------------------------------------------------------------------------------- */
/* Columns: id, river, description, lat, lon, confidence, confidence_note, basis, source,
 * regency_code, desa code, name, level, kecamatan code, name */
static json_t *point_json(struct db_stmt *s, bool geojson)
{
    json_t *o = json_pack("{s:I,s:s,s:s,s:f,s:f,s:s,s:s?,s:s,s:s,s:s}", "id",
                          (json_int_t)db_col_int64(s, 0), "river", db_col_text(s, 1),
                          "description", db_col_text(s, 2), "lat", db_col_double(s, 3), "lon",
                          db_col_double(s, 4), "confidence", db_col_text(s, 5),
                          "confidence_note", db_col_text(s, 6), "basis", db_col_text(s, 7),
                          "source", db_col_text(s, 8), "regency", db_col_text(s, 9));
    json_object_set_new(o, "region",
                        db_col_is_null(s, 10)
                            ? json_null()
                            : json_pack("{s:s,s:s,s:s}", "code", db_col_text(s, 10), "name",
                                        db_col_text(s, 11), "level", db_col_text(s, 12)));
    json_object_set_new(o, "kecamatan",
                        db_col_is_null(s, 13) ? json_null()
                                              : json_pack("{s:s,s:s}", "code", db_col_text(s, 13),
                                                          "name", db_col_text(s, 14)));
    if (!geojson)
        return o;
    return json_pack("{s:s,s:I,s:{s:s,s:[f,f]},s:o}", "type", "Feature", "id",
                     (json_int_t)db_col_int64(s, 0), "geometry", "type", "Point", "coordinates",
                     db_col_double(s, 4), db_col_double(s, 3), "properties", o);
}

enum err_code regions_rivers(struct db_conn *c, const char *regency, bool geojson, json_t **out,
                             struct err *err)
{
    struct db_stmt *s;
    bool row;
    if (db_prepare(c, &s,
                   "SELECT p.id, p.river, p.description, p.lat, p.lon, p.confidence, "
                   "p.confidence_note, p.basis, p.source, p.regency_code, d.code, d.name, "
                   "d.level, k.code, k.name FROM river_points p "
                   "LEFT JOIN regions d ON d.code = p.region_code "
                   "LEFT JOIN regions k ON k.code = d.parent_code "
                   "WHERE p.regency_code = ? ORDER BY p.id",
                   err))
        return err->code;
    db_bind_text(s, 1, regency);
    json_t *a = json_array();
    while (db_step(s, &row, err) == ERR_OK && row)
        json_array_append_new(a, point_json(s, geojson));
    if (err->code) {
        json_decref(a);
        return err->code;
    }
    *out = geojson ? json_pack("{s:s,s:o}", "type", "FeatureCollection", "features", a) : a;
    return ERR_OK;
}
