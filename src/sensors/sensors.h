/* sensors: stations and their sensors, ingest of SenML readings (HTTP and MQTT), quality
 * control, the time-series store (raw readings plus 10-minute and hourly rollups) and the
 * latest-value view. One writer thread owns every write to readings and every piece of
 * per-sensor state, so ingest needs no locks on the hot path beyond its queue. */
#ifndef SINERGI_SENSORS_H
#define SINERGI_SENSORS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>

#include "auth/auth.h"
#include "core/err.h"
#include "db/db.h"

extern const struct db_migration sensors_migrations[];

struct sensors_settings {
    int64_t backfill_s;      /* oldest reading accepted, seconds before now */
    int64_t clock_skew_s;    /* newest reading accepted, seconds after now */
    int64_t raw_retention_days;
    int64_t max_records;     /* records per ingest request */
    int64_t compact_after;   /* cached readings that trigger a compaction (store.c) */
    int64_t compact_age_s;   /* ... or the age of the oldest of them */
};

/* Loads stations into memory, repairs rollups left open by a crash, starts the writer. */
enum err_code sensors_start(struct db *db, const struct sensors_settings *s, struct err *err);
/* Drains the queue (every acknowledged batch is committed) and stops the writer. */
void sensors_stop(void);

/* ---- stations (JSON in, JSON out) -------------------------------------------------------- */
/* Creates a station and its sensors. *out is the station plus "device_token", shown once. */
enum err_code sensors_station_create(struct db_conn *c, const struct actor *a, json_t *in,
                                     json_t **out, struct err *err);
/* `opd_out` (may be NULL) receives the owning OPD for access checks. `internal` false gives
 * the public view (no owner, no token facts, no internal notes). */
enum err_code sensors_station_get(struct db_conn *c, const char *code, bool internal,
                                  json_t **out, char opd_out[AUTH_OPD_MAX + 1], struct err *err);
enum err_code sensors_station_list(struct db_conn *c, bool internal, json_t **out,
                                   struct err *err);
enum err_code sensors_station_update(struct db_conn *c, const struct actor *a, const char *code,
                                     json_t *in, json_t **out, struct err *err);
enum err_code sensors_station_delete(struct db_conn *c, const struct actor *a, const char *code,
                                     struct err *err);
/* New device token; the old one stops working at once. *out holds "device_token". */
enum err_code sensors_station_rotate_token(struct db_conn *c, const struct actor *a,
                                           const char *code, json_t **out, struct err *err);

/* Called after a station's device credentials change, on the writer of the change, after commit:
 * `token` is the new plaintext device token on create and rotate, NULL when the station was
 * deleted. The MQTT room uses it to keep the broker's accounts in step. One hook; set at start. */
typedef void (*sensors_station_hook)(const char *code, const char *token, void *ctx);
void sensors_set_station_hook(sensors_station_hook fn, void *ctx);
/* Station codes, for reconciling outside systems (e.g. broker accounts). Caller frees with
 * json_decref. */
json_t *sensors_station_codes(void);

/* On a database without stations, creates the DEMO stations of data_dir/demo_stations.json that
 * lie in `regency` (their device tokens are not kept: rotate one to use it). *count_out gets the
 * number created; 0 when stations already exist. */
enum err_code sensors_seed_demo(struct db_conn *c, const char *data_dir, const char *regency,
                                int *count_out, struct err *err);

/* ---- ingest ------------------------------------------------------------------------------ */
struct ingest_batch;

/* Result of a batch, reported once its accepted readings are durably committed (or not). */
struct ingest_result {
    enum err_code rc; /* ERR_OK when committed */
    int records, accepted, duplicates;
    json_t *rejected; /* borrowed: [{"index","reason"}] */
};
typedef void (*ingest_done_fn)(const struct ingest_result *res, void *ctx);

/* Parses and checks a SenML pack sent by the device holding `device_token` (or, when
 * `device_token` is NULL, by station `station_code` already authenticated elsewhere: the MQTT
 * broker checks the device's credentials and topic). Records that fail
 * (unknown sensor, wrong unit, non-finite value, time out of window, another station) are
 * listed, not stored. ERR_UNAUTHENTICATED for an unknown token; ERR_INVALID for a pack that is
 * not SenML; ERR_TOO_BIG beyond max_records. On success *out is owned by the caller until
 * passed to ingest_submit (or ingest_batch_free). `station_code` (may be NULL) restricts the
 * pack to one station, as the MQTT topic does. */
enum err_code ingest_prepare(const char *device_token, const char *station_code, const char *body,
                             size_t len, struct ingest_batch **out, struct err *err);
/* Queues the batch for the writer, which takes ownership; `done` runs on the writer thread
 * after commit (or failure), then the batch is freed. A batch with nothing to store completes
 * at once, on the caller's thread. */
void ingest_submit(struct ingest_batch *b, ingest_done_fn done, void *ctx);
void ingest_batch_free(struct ingest_batch *b);
/* Accepted readings in a prepared batch. */
int ingest_batch_count(const struct ingest_batch *b);
/* Nobody waits for this batch's answer (its readings are safe elsewhere, as MQTT's spool):
 * the writer may hold it up to 20 ms to commit it together with others. */
void ingest_batch_unhurried(struct ingest_batch *b);

/* ---- observers of stored readings (the early warning) ------------------------------------ */
struct sensors_reading_info {
    const char *station, *kind, *sensor;
    int64_t t_ms;
    double v;
    int qc;     /* 1 good, 3 suspect, 4 bad */
    int failed; /* QC tests failed: 1 range, 2 spike, 4 rate, 8 flat, 16 gap */
};
/* Runs on the writer thread. `reading` is called for each reading stored, inside the writer's
 * transaction and with its connection; an error rolls the whole group commit back. `committed`
 * or `rolled_back` follows each transaction; `tick` runs about once a second (outside any
 * transaction: it may open its own). */
struct sensors_observer {
    enum err_code (*reading)(struct db_conn *c, const struct sensors_reading_info *r, void *ctx,
                             struct err *err);
    void (*committed)(void *ctx);
    void (*rolled_back)(void *ctx);
    void (*tick)(struct db_conn *c, int64_t now_s, void *ctx);
    void *ctx;
};
/* Set before sensors_start, or NULL to remove; not thread-safe against a running writer. */
void sensors_set_observer(const struct sensors_observer *o);

/* What other rooms may know of a station, copied out of the registry. */
struct sensors_station_info {
    char code[33], name[128], kind[24], opd[AUTH_OPD_MAX + 1], region[24], river[64];
    double lat, lon;
    int interval_s;
    bool has_thresholds, demo;
    double thresholds[3]; /* waspada, siaga, awas (m) */
    int64_t newest_ms;    /* newest reading of any sensor, 0 when none */
};
bool sensors_station_info(const char *code, struct sensors_station_info *out);

/* ---- queries ----------------------------------------------------------------------------- */
/* `step`: 0 = raw, 600 or 3600 = rollups, -1 = choose from the range. Times in seconds. */
enum err_code sensors_readings(struct db_conn *c, const char *station, const char *sensor,
                               int64_t from, int64_t to, int64_t step, int64_t limit,
                               json_t **out, struct err *err);
/* Gateways: one device token that ingests for every station of an OPD (gateways.c). The
 * token is returned once, by create and rotate. `opd` NULL lists every OPD's. */
enum err_code sensors_gateway_create(struct db_conn *c, const struct actor *a, json_t *in,
                                     json_t **out, struct err *err);
enum err_code sensors_gateway_list(struct db_conn *c, const char *opd, json_t **out,
                                   struct err *err);
enum err_code sensors_gateway_get(struct db_conn *c, const char *code, json_t **out,
                                  char opd_out[AUTH_OPD_MAX + 1], struct err *err);
enum err_code sensors_gateway_delete(struct db_conn *c, const struct actor *a, const char *code,
                                     struct err *err);
enum err_code sensors_gateway_rotate_token(struct db_conn *c, const struct actor *a,
                                           const char *code, json_t **out, struct err *err);

/* `sinergi readings count|export`: every stored raw reading, read-only, safe beside a
 * running daemon. export writes CSV "sensor_id,station,sensor,t_ms,v,qc,qc_failed" lines,
 * grouped by sensor. */
enum err_code sensors_readings_count(struct db_conn *c, int64_t *out, struct err *err);
enum err_code sensors_readings_export(struct db_conn *c, FILE *out, struct err *err);
/* Every station's latest values as a JSON text, shared and cached; free() the copy. It is
 * rendered at most every 250 ms, so it may miss the newest commits by that much; `fresh` waits
 * for a document holding every reading committed before the call (read your own writes). */
char *sensors_latest_json(bool internal, bool fresh, size_t *len);
/* The same document gzip-compressed (compressed once per render, core/gzip.h), for clients that
 * accept gzip; free() the copy. NULL when out of memory or when it did not compress. */
char *sensors_latest_gzip(bool internal, bool fresh, size_t *len);

#endif
