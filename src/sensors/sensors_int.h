/* Private to src/sensors/: units, SenML records, QC, the in-memory registry and the writer. */
#ifndef SINERGI_SENSORS_INT_H
#define SINERGI_SENSORS_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "sensors/sensors.h"

enum { CODE_MAX = 32, SENSOR_NAME_MAX = 32, UNIT_MAX = 16 };

/* ---- kinds of station -------------------------------------------------------------------- */
enum station_kind { KIND_WATER_LEVEL, KIND_RAIN, KIND_WEATHER, KIND_WASTE_BIN, KIND__COUNT };
const char *sensors__kind_name(enum station_kind k);
bool sensors__kind_parse(const char *s, enum station_kind *out);

/* ---- units (SenML, RFC 8428 and RFC 8798 secondary units) -------------------------------- */
/* Factor that converts a value in `from` to `to`; false when they measure different things or
 * either is unknown. */
bool sensors__unit_factor(const char *from, const char *to, double *factor);
bool sensors__unit_known(const char *unit);

/* ---- SenML ------------------------------------------------------------------------------- */
struct senml_record {
    char name[2 * CODE_MAX + SENSOR_NAME_MAX + 2]; /* resolved bn + n */
    char unit[UNIT_MAX];                           /* resolved bu / u, "" if none */
    double value;
    int64_t t_ms; /* resolved absolute time */
    const char *error; /* why this record is unusable, or NULL */
};
/* Parses a SenML JSON pack; relative times resolve against `now_ms`. Structural errors fail the
 * whole pack (ERR_INVALID); per-record problems land in record.error. *out is malloc'd. What
 * fails a pack first: a body that is not JSON (anywhere in it), then more than `max_records`
 * elements (ERR_TOO_BIG), then the first record that cannot be read. */
enum err_code senml_parse(const char *body, size_t len, int64_t now_ms, size_t max_records,
                          struct senml_record **out, size_t *n, struct err *err);

/* ---- quality control (QARTOD-style) ------------------------------------------------------ */
enum qc_flag { QC_GOOD = 1, QC_SUSPECT = 3, QC_BAD = 4 };
enum qc_test { QC_RANGE = 1, QC_SPIKE = 2, QC_RATE = 4, QC_FLAT = 8, QC_GAP = 16 };
const char *sensors__qc_name(int flag);

struct qc_limits {
    double min, max;        /* gross range: outside is bad */
    double spike;           /* jump from the previous reading that is suspect */
    double rate_per_s;      /* |dv/dt| above this is suspect */
    int flat_count;         /* this many equal readings in a row are suspect (0 = off) */
    double flat_eps;
};
const struct qc_limits *sensors__qc_limits(enum station_kind kind, const char *sensor);

/* What QC remembers of a sensor: the newest readings in time order. */
struct qc_history {
    bool has_last;
    int64_t last_t_ms;
    double last_v;
    int flat_run; /* readings equal to last_v so far, including it */
};
/* Flags a reading at t_ms with value v that follows `h` in time; tests run is a bitmask of
 * failed tests. `interval_s` is the station's expected reporting interval. */
enum qc_flag sensors__qc_eval(const struct qc_limits *l, const struct qc_history *h,
                              int interval_s, int64_t t_ms, double v, int *failed);
void sensors__qc_push(struct qc_history *h, int64_t t_ms, double v, const struct qc_limits *l);

/* ---- registry: stations and sensors in memory -------------------------------------------- */
struct sensor_def {
    int64_t id;
    char name[SENSOR_NAME_MAX + 1];
    char unit[UNIT_MAX];
};

struct station_def {
    int64_t id;
    char code[CODE_MAX + 1];
    char name[128];
    enum station_kind kind;
    char opd[AUTH_OPD_MAX + 1];
    char region[24];
    char river[64];
    double lat, lon;
    int interval_s;
    bool has_thresholds;
    double th[3]; /* waspada, siaga, awas (m) */
    bool demo;
    char token_hash[65];
    int nsensors;
    struct sensor_def sensors[8];
};

/* Field checks shared by stations and gateways (stations.c). */
enum err_code sensors__check_code(const char *field, const char *v, size_t max, struct err *err);
enum err_code sensors__check_opd(struct db_conn *c, const char *opd, struct err *err);

/* A gateway: forwards readings of every station of its OPD (gateways.c). */
struct gateway_def {
    char code[CODE_MAX + 1];
    char opd[AUTH_OPD_MAX + 1];
    char token_hash[65];
};

/* Rebuilds the registry from the database; call after any station write commits. */
enum err_code sensors__registry_load(struct db_conn *c, struct err *err);
void sensors__registry_free(void);

/* Read access: the registry cannot change between lock and unlock. */
void sensors__registry_rdlock(void);
void sensors__registry_unlock(void);
int sensors__registry_count(void);
const struct station_def *sensors__station_at(int i);
const struct station_def *sensors__station_by_code(const char *code, size_t len);
const struct station_def *sensors__station_by_token_hash(const char *hash);
const struct gateway_def *sensors__gateway_by_token_hash(const char *hash);
/* The station's position in the registry: 0 .. sensors__registry_count() - 1. */
int sensors__station_index(const struct station_def *st);

/* ---- the writer and the latest view ------------------------------------------------------ */
struct reading {
    int64_t sensor_id;
    int64_t t_ms;
    double v;
    const struct qc_limits *limits; /* static table: outlives any registry reload */
    char sensor[SENSOR_NAME_MAX + 1];
    int qc;      /* set by the writer: enum qc_flag, 0 when not stored (duplicate) */
    int failed;  /* set by the writer: enum qc_test bits */
    int index;   /* record index in the pack: keeps the order sent among equal times */
    int st;      /* its station: an index into the batch's stations */
};

/* A station a batch has readings of, copied from the registry. */
struct batch_station {
    char code[CODE_MAX + 1];
    enum station_kind kind;
    int interval_s;
};

/* One device's pack on its way to the writer: readings of one station, or of several when a
 * gateway sent it; items are sorted by (station, sensor, time). */
struct ingest_batch {
    struct ingest_batch *next;
    struct batch_station *stations;
    int nstations;
    int n, records;
    struct reading *items;
    json_t *rejected;
    /* nobody waits for this batch's answer (MQTT: spooled and acknowledged already), so the
     * writer may hold it a little to commit it with more */
    bool unhurried;
    /* filled by the writer */
    int inserted, duplicates;
    ingest_done_fn done;
    void *ctx;
};

/* ---- store: raw readings (store.c) ------------------------------------------------------- */
struct store_pt {
    int64_t t_ms;
    double v;
    uint8_t qc, failed;
};
struct series;
/* Writer thread only (and the thread that starts it, before it runs). */
void store__writer_thread(bool is_writer);
enum err_code store__open(struct db_conn *c, int64_t raw_retention_days, struct err *err);
void store__close(struct db_conn *c);
struct series *store__series(struct db_conn *c, int64_t sensor_id, struct err *err);
enum err_code store__has(struct db_conn *c, struct series *s, int64_t t_ms, bool *out,
                         struct err *err);
enum err_code store__append(struct series *s, int64_t t_ms, double v, int qc, int failed,
                            struct err *err);
/* Inside the writer's transaction, before COMMIT: the transaction's readings, durably. */
enum err_code store__write_log(struct db_conn *c, struct err *err);
void store__committed(void);
void store__rolled_back(void);
/* Between transactions: compaction when due (or `force`), raw retention. */
enum err_code store__maintain(struct db_conn *c, int64_t now_s, bool force, struct err *err);
/* Every reading at or after from_ms (blocks, then the caches); writer thread. */
enum err_code store__scan_since(struct db_conn *c, int64_t from_ms,
                                enum err_code (*cb)(int64_t sensor_id, const struct store_pt *p,
                                                    void *ctx, struct err *err),
                                void *ctx, struct err *err);
/* Any thread; `c` outside a transaction (on the writer: inside its own). *out is malloc'd,
 * ascending by time. The writer thread also sees its pending transaction. */
enum err_code store__read(struct db_conn *c, int64_t sensor_id, int64_t from_ms, int64_t to_ms,
                          size_t limit, struct store_pt **out, size_t *n, struct err *err);
/* The newest `want` readings (skipping bad ones when asked), ascending. */
enum err_code store__tail(struct db_conn *c, int64_t sensor_id, size_t want, bool skip_bad,
                          struct store_pt **out, size_t *n, struct err *err);
/* Every stored reading, blocks and log, read-only (safe beside a running daemon): for tools
 * and tests, not hot paths. Grouped by sensor, in time order within a sensor; each stored
 * reading once, wherever it is kept. */
enum err_code store__export(struct db_conn *c,
                            enum err_code (*cb)(int64_t sensor_id, const struct store_pt *p,
                                                void *ctx, struct err *err),
                            void *ctx, struct err *err);
/* Readings stored (blocks and log): for tools and tests, not hot paths. */
enum err_code store__count(struct db_conn *c, int64_t *out, struct err *err);

/* The writer: one thread, one connection, all per-sensor state. */
enum err_code sensors__writer_start(struct db *db, struct err *err);
void sensors__writer_stop(void);
void sensors__writer_enqueue(struct ingest_batch *b);

void sensors__latest_note(int64_t sensor_id, int64_t t_ms, double v, int qc);
bool sensors__latest_get(int64_t sensor_id, int64_t *t_ms, double *v, int *qc);
/* The latest-value document is out of date: new readings (`stations` false: rendered again
 * within ~250 ms) or a changed set of stations (true: the next request renders it). */
void sensors__latest_dirty(bool stations);
/* Publishes a "station" event for each station whose state (ok / unknown) changed; called by
 * the writer about once a second. */
void sensors__states_check(int64_t now_s);
void sensors__latest_free(void);
extern struct sensors_settings sensors__settings;

#endif
