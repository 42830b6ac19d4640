/* bench/ingest/dataset.h: the readings every ingest benchmark sends, defined once, so that
 * sinergi, the plain SQLite program and InfluxDB receive exactly the same (sensor, time, value)
 * rows in the same order.
 *
 * Batch data set (HTTP SenML batches, plain SQLite, InfluxDB): 125 weather stations x 8 sensors
 * = 1,000 sensors. Row n (0-based) belongs to request j = n / 1000, reading r = n % 1000:
 *   step     = j                            (one step = 60 s)
 *   global   = r                            (sensor index 0..999 = station * 8 + sensor)
 *   station  = r / 8, sensor = r % 8
 *   time     = t0 + step * 60 s
 * so each request carries one reading of each of the 1,000 sensors, all at the same minute
 * (what a gateway forwarding 125 weather stations sends), and every (sensor, time) is
 * distinct. sinergi receives it with a gateway token (one token for every station of an OPD).
 *
 * Single-reading data set: 1,000 water-level stations with one sensor "level" each. Reading i:
 *   station = i % 1000, step = i / 1000 (one step = 1 s), time = t0 + step.
 *
 * Values are integers in thousandths so that every target parses the same decimal text to the
 * same double (v_milli / 1000.0 is the correctly rounded double of the decimal). They vary by a
 * little every step, so QC sees plausible series: no flat line, no spike, within gross range. */
#ifndef BENCH_INGEST_DATASET_H
#define BENCH_INGEST_DATASET_H

#include <stdint.h>
#include <stdio.h>

enum {
    DS_STATIONS = 125,          /* batch data set: stations */
    DS_PER_STATION = 8,         /* sensors per station */
    DS_SENSORS = DS_STATIONS * DS_PER_STATION,
    DS_BATCH = 1000,            /* readings per HTTP request */
    DS_STEP_S = 60,
    SG_STATIONS = 1000,         /* single-reading data set */
    SG_STEP_S = 1,
};

static const struct ds_sensor {
    const char *name, *unit;
    int64_t base_milli, scale_milli; /* value = base + scale * triangle(0..100) */
} ds_sensors[DS_PER_STATION] = {
    {"temperature", "Cel", 25000, 10}, /* QC: 5..45 Cel, spike 8, rate 0.8 per minute */
    {"humidity", "%RH", 70000, 100},   /* QC: 0..100 %RH */
    {"pressure", "hPa", 1010000, 10},  {"wind_speed", "m/s", 2000, 20},
    {"wind_dir", "deg", 90000, 1000},  {"solar", "W/m2", 300000, 1000},
    {"rain", "mm", 0, 10},             {"battery", "V", 12600, 5},
};

static inline int64_t ds_triangle(int64_t x)
{
    int64_t m = x % 200;
    return m < 100 ? m : 200 - m;
}

struct ds_row {
    int station;      /* 0-based */
    int sensor;       /* 0-based within the station */
    int global;       /* 0-based sensor index, station * 8 + sensor */
    int64_t t_s;      /* Unix seconds */
    int64_t v_milli;  /* value in thousandths of the sensor's unit */
};

static inline struct ds_row ds_batch_row(int64_t n, int64_t t0)
{
    int64_t step = n / DS_BATCH, r = n % DS_BATCH;
    struct ds_row row;
    row.global = (int)r;
    row.station = (int)(r / DS_PER_STATION);
    row.sensor = (int)(r % DS_PER_STATION);
    row.t_s = t0 + step * DS_STEP_S;
    row.v_milli = ds_sensors[row.sensor].base_milli +
                  ds_sensors[row.sensor].scale_milli * ds_triangle(step + row.global * 7);
    return row;
}

/* Steps of DS_STEP_S available between t0 and `limit_s` bound the number of batch requests. */
static inline int64_t ds_batch_max_requests(int64_t t0, int64_t limit_s)
{
    int64_t steps = (limit_s - t0) / DS_STEP_S;
    return steps <= 0 ? 0 : steps; /* one step per request */
}

static inline struct ds_row ds_single_row(int64_t i, int64_t t0)
{
    struct ds_row row;
    int64_t step = i / SG_STATIONS;
    row.station = (int)(i % SG_STATIONS);
    row.sensor = 0;
    row.global = row.station;
    row.t_s = t0 + step * SG_STEP_S;
    /* River level 1.000..1.200 m, 2 mm a second: under the 5 mm/s rate limit, never flat. */
    row.v_milli = 1000 + 2 * ds_triangle(step + row.station * 7);
    return row;
}

static inline void ds_batch_code(char out[8], int station)
{
    snprintf(out, 8, "w%03d", station + 1);
}

static inline void ds_single_code(char out[8], int station)
{
    snprintf(out, 8, "g%04d", station + 1);
}

/* Writes v_milli as a decimal with exactly three fractional digits; returns the length. */
static inline int ds_fmt_milli(char *out, int64_t v)
{
    char tmp[32];
    int n = 0, len = 0;
    uint64_t u = v < 0 ? (uint64_t)(-v) : (uint64_t)v;
    if (v < 0)
        out[len++] = '-';
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u || n < 4);
    while (n > 3)
        out[len++] = tmp[--n];
    out[len++] = '.';
    while (n > 0)
        out[len++] = tmp[--n];
    return len;
}

/* Writes a non-negative integer; returns the length. */
static inline int ds_fmt_int(char *out, int64_t v)
{
    char tmp[24];
    int n = 0, len = 0;
    uint64_t u = v < 0 ? (uint64_t)(-v) : (uint64_t)v;
    if (v < 0)
        out[len++] = '-';
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    while (n > 0)
        out[len++] = tmp[--n];
    return len;
}

#endif
