/* regions_int: what the files of src/regions share beyond regions.h. */
#ifndef SINERGI_REGIONS_INT_H
#define SINERGI_REGIONS_INT_H

#include "regions/regions.h"

enum { REGIONS_CSV_MAX_FIELDS = 8 };

/* Called for each data row of a CSV file: `fields` holds exactly the header's number of
 * NUL-terminated fields, borrowed until it returns; `record` is the row's 1-based number
 * counting the header. A failure stops the reading. */
typedef enum err_code (*regions__csv_row_fn)(char *const *fields, int record, void *ctx,
                                             struct err *err);

/* Reads `path` with libcsv (strict quoting). The first row must be exactly `header` (nfields
 * names, at most REGIONS_CSV_MAX_FIELDS) and every other row must have nfields fields; otherwise
 * ERR_INVALID naming the file and the row. */
enum err_code regions__csv_read(const char *path, const char *const *header, int nfields,
                                regions__csv_row_fn row, void *ctx, struct err *err);

/* Loads data_dir/rivers_reference_points.csv into river_points, replacing what was there; runs
 * inside regions_import's transaction, after the regions and their boundaries. */
enum err_code regions__import_rivers(struct db_conn *c, const char *data_dir, int *count_out,
                                     struct err *err);

#endif
