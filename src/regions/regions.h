/* regions: Kemendagri kode wilayah (province, regency, kecamatan, desa/kelurahan) with their
 * boundaries, imported from the shipped data directory. */
#ifndef SINERGI_REGIONS_H
#define SINERGI_REGIONS_H

#include <jansson.h>
#include <stdbool.h>

#include "core/err.h"
#include "db/db.h"

extern const struct db_migration regions_migrations[];

/* Loads data_dir/kode_wilayah_*.csv and data_dir/boundaries_*.geojson (upsert, idempotent) and
 * data_dir/rivers_reference_points.csv (replacing the points held), in one transaction.
 * `count_out` is the number of region rows read. */
enum err_code regions_import(struct db_conn *c, const char *data_dir, int *count_out,
                             struct err *err);
/* True when the regions or the river points are still empty (a new database, or one made before
 * a table existed): then regions_import should run. */
enum err_code regions_import_needed(struct db_conn *c, bool *out, struct err *err);

/* True when `code` is `regency` or lies under it. */
bool regions_within(const char *code, const char *regency);

/* One region. With `geometry` the result is a GeoJSON Feature, else a plain object. */
enum err_code regions_get(struct db_conn *c, const char *code, bool geometry, json_t **out,
                          struct err *err);
/* Children of `parent`: an array, or a GeoJSON FeatureCollection with `geometry`. */
enum err_code regions_children(struct db_conn *c, const char *parent, bool geometry, json_t **out,
                               struct err *err);

/* The reference points of the rivers of `regency`, in the shipped file's order: an array of
 * {id, river, description, lat, lon, confidence, confidence_note?, basis, source, regency,
 * region: {code, name, level} | null, kecamatan: {code, name} | null}, or with `geojson` a
 * FeatureCollection of Points with those properties. The caller owns *out. */
enum err_code regions_rivers(struct db_conn *c, const char *regency, bool geojson, json_t **out,
                             struct err *err);

#endif
