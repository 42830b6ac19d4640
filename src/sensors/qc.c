/* qc: quality control of each reading, after IOOS QARTOD: gross range, spike, rate of change,
 * flat line and gap. Limits are per kind and sensor; they are demo defaults, documented in
 * docs/ARCHITECTURE.md, and a deployment tunes them. */
#include <math.h>
#include <string.h>

#include "sensors/sensors_int.h"
#include "core/banned.h"

static const struct {
    enum station_kind kind;
    const char *sensor; /* NULL: any sensor of the kind */
    struct qc_limits l;
} limits[] = {
    /* River level in m: a 2 m jump between reports is a spike; 3 m per 10 min is not water. */
    {KIND_WATER_LEVEL, "level", {-2.0, 30.0, 2.0, 3.0 / 600.0, 6, 0.0005}},
    /* Rain per report in mm: no flat-line test (zero rain for days is normal). */
    {KIND_RAIN, "rain", {0.0, 300.0, 150.0, 0, 0, 0}},
    {KIND_WEATHER, "temperature", {5.0, 45.0, 8.0, 8.0 / 600.0, 12, 0.001}},
    {KIND_WEATHER, "humidity", {0.0, 100.0, 40.0, 0, 12, 0.001}},
    {KIND_WASTE_BIN, "fill", {0.0, 100.0, 80.0, 0, 0, 0}},
};

static const struct qc_limits any = {-1e12, 1e12, 0, 0, 0, 0};

const struct qc_limits *sensors__qc_limits(enum station_kind kind, const char *sensor)
{
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++)
        if (limits[i].kind == kind && (!limits[i].sensor || strcmp(limits[i].sensor, sensor) == 0))
            return &limits[i].l;
    return &any;
}

const char *sensors__qc_name(int flag)
{
    switch (flag) {
    case QC_GOOD:
        return "good";
    case QC_SUSPECT:
        return "suspect";
    case QC_BAD:
        return "bad";
    default:
        return "unknown";
    }
}

enum qc_flag sensors__qc_eval(const struct qc_limits *l, const struct qc_history *h,
                              int interval_s, int64_t t_ms, double v, int *failed)
{
    *failed = 0;
    if (v < l->min || v > l->max) {
        *failed = QC_RANGE;
        return QC_BAD;
    }
    if (!h->has_last || t_ms <= h->last_t_ms)
        return QC_GOOD; /* first reading, or a backfilled one older than the newest */
    double dt = (double)(t_ms - h->last_t_ms) / 1000.0;
    double dv = fabs(v - h->last_v);
    if (interval_s > 0 && dt > 2.0 * interval_s)
        *failed |= QC_GAP; /* tests against the previous reading are void across a gap */
    else {
        if (l->spike > 0 && dv > l->spike)
            *failed |= QC_SPIKE;
        if (l->rate_per_s > 0 && dt > 0 && dv / dt > l->rate_per_s)
            *failed |= QC_RATE;
    }
    if (l->flat_count > 0 && h->flat_run + 1 >= l->flat_count && fabs(v - h->last_v) <= l->flat_eps)
        *failed |= QC_FLAT;
    return *failed ? QC_SUSPECT : QC_GOOD;
}

void sensors__qc_push(struct qc_history *h, int64_t t_ms, double v, const struct qc_limits *l)
{
    if (h->has_last && t_ms <= h->last_t_ms)
        return; /* history follows time; a backfilled reading does not move it */
    if (h->has_last && fabs(v - h->last_v) <= l->flat_eps)
        h->flat_run++;
    else
        h->flat_run = 1;
    h->has_last = true;
    h->last_t_ms = t_ms;
    h->last_v = v;
}
