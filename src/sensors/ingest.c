/* ingest: turns a SenML pack from a device into a batch of checked readings for the writer.
 * Runs on the caller's thread (HTTP worker or MQTT loop), touching only the registry. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "sensors/sensors_int.h"
#include "core/banned.h"

struct sensors_settings sensors__settings = {
    .backfill_s = 30 * 86400, .clock_skew_s = 300, .raw_retention_days = 0, .max_records = 10000,
    .compact_after = 1000000, .compact_age_s = 60,
};

static void reject(struct ingest_batch *b, size_t index, const char *reason)
{
    json_array_append_new(b->rejected, json_pack("{s:I,s:s}", "index", (json_int_t)index,
                                                 "reason", reason));
}

static struct ingest_batch *batch_new(size_t cap)
{
    struct ingest_batch *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->items = calloc(cap ? cap : 1, sizeof *b->items);
    b->rejected = json_array();
    if (!b->items || !b->rejected) {
        ingest_batch_free(b);
        return NULL;
    }
    return b;
}

void ingest_batch_free(struct ingest_batch *b)
{
    if (!b)
        return;
    free(b->items);
    free(b->stations);
    json_decref(b->rejected);
    free(b);
}

int ingest_batch_count(const struct ingest_batch *b)
{
    return b->n;
}

void ingest_batch_unhurried(struct ingest_batch *b)
{
    b->unhurried = true;
}

/* Who sent the pack: one station's device, or a gateway of an OPD. */
struct sender {
    const struct station_def *station; /* NULL for a gateway */
    const struct gateway_def *gateway;
    int *slot; /* gateway: registry index -> batch station index + 1 (0 = none yet) */
};

/* The batch's index of a station, added on first use. */
static int station_slot(struct ingest_batch *b, struct sender *who, const struct station_def *st)
{
    int *slot = who->slot ? &who->slot[sensors__station_index(st)] : NULL;
    if (slot && *slot)
        return *slot - 1;
    if (!slot && b->nstations) /* a station's own device: one station */
        return 0;
    if (b->nstations % 16 == 0) {
        struct batch_station *a =
            realloc(b->stations, (size_t)(b->nstations + 16) * sizeof *a);
        if (!a)
            return -1;
        b->stations = a;
    }
    struct batch_station *bs = &b->stations[b->nstations];
    snprintf(bs->code, sizeof bs->code, "%s", st->code);
    bs->kind = st->kind;
    bs->interval_s = st->interval_s;
    if (slot)
        *slot = b->nstations + 1;
    return b->nstations++;
}

/* Checks one record against the sender; adds it to the batch or says why not. */
static void admit(struct ingest_batch *b, struct sender *who, size_t i,
                  const struct senml_record *r, int64_t now_ms)
{
    if (r->error) {
        reject(b, i, r->error);
        return;
    }
    const char *colon = strrchr(r->name, ':');
    if (!colon || colon == r->name || !colon[1]) {
        reject(b, i, "name must be '<station-code>:<sensor>'");
        return;
    }
    size_t code_len = (size_t)(colon - r->name);
    const struct station_def *st = who->station;
    if (st && (code_len != strlen(st->code) || memcmp(r->name, st->code, code_len) != 0)) {
        reject(b, i, "not this device's station");
        return;
    }
    if (!st) {
        st = sensors__station_by_code(r->name, code_len);
        /* one answer for absent and foreign stations: a gateway learns nothing of other OPDs */
        if (!st || strcmp(st->opd, who->gateway->opd) != 0) {
            reject(b, i, "no station of this gateway's OPD has this code");
            return;
        }
    }
    const struct sensor_def *sd = NULL;
    for (int k = 0; k < st->nsensors && !sd; k++)
        if (strcmp(st->sensors[k].name, colon + 1) == 0)
            sd = &st->sensors[k];
    if (!sd) {
        reject(b, i, "unknown sensor for this station");
        return;
    }
    double factor = 1.0;
    if (r->unit[0] && !sensors__unit_factor(r->unit, sd->unit, &factor)) {
        reject(b, i, "wrong unit for this sensor");
        return;
    }
    if (r->t_ms > now_ms + sensors__settings.clock_skew_s * 1000) {
        reject(b, i, "time is in the future beyond the allowed clock skew");
        return;
    }
    if (r->t_ms < now_ms - sensors__settings.backfill_s * 1000) {
        reject(b, i, "time is older than the backfill window");
        return;
    }
    int k = station_slot(b, who, st);
    if (k < 0) {
        reject(b, i, "out of memory");
        return;
    }
    struct reading *out = &b->items[b->n++];
    out->st = k;
    out->sensor_id = sd->id;
    out->t_ms = r->t_ms;
    out->v = r->value * factor;
    out->limits = sensors__qc_limits(st->kind, sd->name);
    out->index = (int)i;
    snprintf(out->sensor, sizeof out->sensor, "%s", sd->name);
}

static int by_sensor_time(const void *pa, const void *pb)
{
    const struct reading *a = pa, *b = pb;
    if (a->st != b->st)
        return a->st < b->st ? -1 : 1;
    if (a->sensor_id != b->sensor_id)
        return a->sensor_id < b->sensor_id ? -1 : 1;
    if (a->t_ms != b->t_ms)
        return a->t_ms < b->t_ms ? -1 : 1;
    return (a->index > b->index) - (a->index < b->index);
}

/* QC judges a reading against the one before it in time, and the writer runs QC in the order
 * of the batch: loggers that send their backlog newest first get the batch in time order per
 * sensor. The index keeps the first-sent of two readings with the same time first (it is the
 * one stored). Most packs are already in order: then this costs one pass. */
static void sort_by_time(struct ingest_batch *b)
{
    for (int i = 1; i < b->n; i++)
        if (by_sensor_time(&b->items[i - 1], &b->items[i]) > 0) {
            qsort(b->items, (size_t)b->n, sizeof *b->items, by_sensor_time);
            return;
        }
}

enum err_code ingest_prepare(const char *device_token, const char *station_code, const char *body,
                             size_t len, struct ingest_batch **out, struct err *err)
{
    char hash[65] = "";
    if (device_token && !auth_token_well_formed(device_token))
        device_token = NULL, station_code = NULL; /* fails below, after the same work */
    if (!device_token && !station_code)
        return err_set(err, ERR_UNAUTHENTICATED,
                       "send the station's device token as 'Authorization: Bearer <token>'");
    if (device_token)
        auth_token_hash(device_token, hash);

    int64_t now_ms = clock_now_ms();
    struct senml_record *recs;
    size_t n;
    if (senml_parse(body, len, now_ms, (size_t)sensors__settings.max_records, &recs, &n, err))
        return err->code;
    struct ingest_batch *b = batch_new(n);
    if (!b) {
        free(recs);
        return err_set(err, ERR_INTERNAL, "out of memory");
    }
    b->records = (int)n;
    sensors__registry_rdlock();
    struct sender who = {0};
    who.station = device_token ? sensors__station_by_token_hash(hash)
                               : sensors__station_by_code(station_code, strlen(station_code));
    if (!who.station && device_token && !station_code)
        who.gateway = sensors__gateway_by_token_hash(hash);
    if (who.gateway)
        who.slot = calloc((size_t)sensors__registry_count() + 1, sizeof *who.slot);
    if ((!who.station && !who.gateway) || (who.gateway && !who.slot) ||
        (who.station && station_code && strcmp(who.station->code, station_code) != 0)) {
        sensors__registry_unlock();
        free(recs);
        ingest_batch_free(b);
        if (who.gateway)
            return err_set(err, ERR_INTERNAL, "out of memory");
        return err_set(err, ERR_UNAUTHENTICATED, "the device token is not valid for this station");
    }
    for (size_t i = 0; i < n; i++)
        admit(b, &who, i, &recs[i], now_ms);
    sensors__registry_unlock();
    free(who.slot);
    free(recs);
    sort_by_time(b);
    *out = b;
    return ERR_OK;
}
