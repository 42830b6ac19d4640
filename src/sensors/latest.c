/* latest: each sensor's newest reading in memory, and the cached JSON of every station's
 * current values behind GET /api/v1/stations/latest. It is rebuilt on a request that finds
 * newer readings or a new second, at most once per RENDER_GAP_MS, so many dashboards polling
 * every second beside busy ingest cost a few renders a second (each with one gzip compression:
 * the cache keeps a gzip copy beside the text). The document is therefore at most ~250 ms
 * behind the commits (plus one render). A station that missed two reporting intervals is
 * "unknown" and shows no current value. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/gzip.h"
#include "core/i64map.h"
#include "events/events.h"
#include "sensors/sensors_int.h"
#include "core/banned.h"

enum { RENDER_GAP_MS = 250 };

struct latest {
    int64_t sensor_id, t_ms;
    double v;
    int qc;
};

static struct {
    pthread_mutex_t lock;
    struct i64map items; /* of struct latest, by sensor id */
    uint64_t generation;
    uint64_t stations_gen; /* the generation of the last change to the set of stations */
    /* render cache, one per view */
    pthread_mutex_t render_lock;
    char *json[2];
    size_t len[2];
    char *gz[2]; /* gzip of json[], NULL when it did not compress */
    size_t gzlen[2];
    uint64_t json_gen[2];
    int64_t json_at[2];
    uint64_t rendered_ns[2]; /* when the render in json[] started (monotonic) */
    pthread_mutex_t renderer[2]; /* held by the one request rendering a view */
    /* station states last published, by code */
    char (*state_code)[CODE_MAX + 1];
    bool *state_stale;
    int nstates;
} L = {.lock = PTHREAD_MUTEX_INITIALIZER,
       .items = {.item_size = sizeof(struct latest)},
       .render_lock = PTHREAD_MUTEX_INITIALIZER,
       .renderer = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER}};

void sensors__latest_note(int64_t sensor_id, int64_t t_ms, double v, int qc)
{
    pthread_mutex_lock(&L.lock);
    struct latest *l = i64map_put(&L.items, sensor_id, NULL);
    if (l && (l->t_ms == 0 || t_ms >= l->t_ms)) {
        l->t_ms = t_ms;
        l->v = v;
        l->qc = qc;
    }
    pthread_mutex_unlock(&L.lock);
}

bool sensors__latest_get(int64_t sensor_id, int64_t *t_ms, double *v, int *qc)
{
    pthread_mutex_lock(&L.lock);
    struct latest *l = i64map_get(&L.items, sensor_id);
    bool ok = l && l->t_ms;
    if (ok) {
        *t_ms = l->t_ms;
        *v = l->v;
        *qc = l->qc;
    }
    pthread_mutex_unlock(&L.lock);
    return ok;
}

void sensors__latest_dirty(bool stations)
{
    uint64_t gen = __atomic_add_fetch(&L.generation, 1, __ATOMIC_RELEASE);
    if (stations)
        __atomic_store_n(&L.stations_gen, gen, __ATOMIC_RELEASE);
}

/* Newest reading time of a station, 0 when it never reported. */
static int64_t station_newest(const struct station_def *st)
{
    int64_t newest = 0, t;
    double v;
    int qc;
    for (int k = 0; k < st->nsensors; k++)
        if (sensors__latest_get(st->sensors[k].id, &t, &v, &qc) && t > newest)
            newest = t;
    return newest;
}

static bool is_stale(const struct station_def *st, int64_t newest_ms, int64_t now_s)
{
    return newest_ms == 0 || now_s * 1000 - newest_ms > 2 * (int64_t)st->interval_s * 1000;
}

static json_t *station_latest(const struct station_def *st, bool internal, int64_t now_s)
{
    int64_t newest = station_newest(st);
    bool stale = is_stale(st, newest, now_s);
    json_t *sensors = json_object();
    for (int k = 0; k < st->nsensors; k++) {
        int64_t t;
        double v;
        int qc;
        const struct sensor_def *sd = &st->sensors[k];
        json_t *o = json_pack("{s:s}", "unit", sd->unit);
        if (sensors__latest_get(sd->id, &t, &v, &qc)) {
            char ts[CLOCK_FMT_LEN];
            clock_fmt_utc(ts, t / 1000);
            /* A silent station never shows its last value as current. */
            json_object_set_new(o, "v", stale ? json_null() : json_real(v));
            json_object_set_new(o, "qc", json_string(sensors__qc_name(qc)));
            json_object_set_new(o, "last", json_pack("{s:f,s:s,s:I}", "v", v, "t", ts, "age_s",
                                                     (json_int_t)(now_s - t / 1000)));
        } else {
            json_object_set_new(o, "v", json_null());
        }
        json_object_set_new(sensors, sd->name, o);
    }
    json_t *th = st->has_thresholds ? json_pack("{s:f,s:f,s:f}", "waspada", st->th[0], "siaga",
                                                st->th[1], "awas", st->th[2])
                                    : json_null();
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:f,s:f,s:I,s:b,s:s,s:o,s:o}", "code", st->code,
                          "name", st->name, "kind", sensors__kind_name(st->kind), "river",
                          st->river, "region", st->region, "lat", st->lat, "lon", st->lon,
                          "interval_s", (json_int_t)st->interval_s, "demo", st->demo, "state",
                          stale ? "unknown" : "ok", "thresholds", th, "sensors", sensors);
    if (internal)
        json_object_set_new(o, "opd", json_string(st->opd));
    return o;
}

static char *render(bool internal, int64_t now)
{
    json_t *a = json_array();
    sensors__registry_rdlock();
    for (int i = 0; i < sensors__registry_count(); i++)
        json_array_append_new(a, station_latest(sensors__station_at(i), internal, now));
    sensors__registry_unlock();
    char at[CLOCK_FMT_LEN];
    clock_fmt_utc(at, now);
    json_t *doc = json_pack("{s:s,s:o}", "generated_at", at, "stations", a);
    char *s = json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(10));
    json_decref(doc);
    return s;
}

/* Renders `view` as of generation `gen`; the caller holds L.renderer[view]. */
static void render_view(int view, bool internal, int64_t now, uint64_t gen, uint64_t mono)
{
    char *s = render(internal, now);
    size_t n = s ? strlen(s) : 0, gzn = 0;
    char *gz = s ? gzip_compress(s, n, GZIP_LEVEL, &gzn) : NULL;
    pthread_mutex_lock(&L.render_lock);
    if (s) {
        free(L.json[view]);
        free(L.gz[view]);
        L.json[view] = s;
        L.len[view] = n;
        L.gz[view] = gz;
        L.gzlen[view] = gzn;
        L.json_gen[view] = gen;
        L.json_at[view] = now;
        L.rendered_ns[view] = mono;
    }
    pthread_mutex_unlock(&L.render_lock);
}

/* Brings the cached document of `view` up to date: renders when readings arrived since, or a
 * new second began (freshness), but at most once per RENDER_GAP_MS. One render at a time,
 * outside the lock readers take: while one request renders, others serve the document they
 * find (at most one render old) instead of queueing behind it. `fresh` (the client sent
 * Cache-Control: no-cache) waits for a document that holds every reading committed before the
 * request, so a client can read its own writes; so does a request after a change to the set of
 * stations. */
static void refresh(int view, bool internal, bool fresh)
{
    int64_t now = clock_now_s();
    uint64_t gen = __atomic_load_n(&L.generation, __ATOMIC_ACQUIRE);
    uint64_t stations_gen = __atomic_load_n(&L.stations_gen, __ATOMIC_ACQUIRE);
    uint64_t mono = clock_mono_ns();
    pthread_mutex_lock(&L.render_lock);
    /* no document yet, or one without a station added, changed or removed since: wait */
    bool must = !L.json[view] || L.json_gen[view] < stations_gen;
    bool stale = must || L.json_gen[view] < gen || L.json_at[view] != now;
    bool early = mono - L.rendered_ns[view] < RENDER_GAP_MS * 1000000ull;
    pthread_mutex_unlock(&L.render_lock);
    if (!stale || (early && !fresh && !must))
        return;
    if (fresh || must) {
        pthread_mutex_lock(&L.renderer[view]);
        pthread_mutex_lock(&L.render_lock); /* another request may have rendered meanwhile */
        stale = !L.json[view] || L.json_gen[view] < gen || L.json_at[view] != now;
        pthread_mutex_unlock(&L.render_lock);
        if (stale)
            render_view(view, internal, now, gen, mono);
        pthread_mutex_unlock(&L.renderer[view]);
    } else if (pthread_mutex_trylock(&L.renderer[view]) == 0) {
        render_view(view, internal, now, gen, mono);
        pthread_mutex_unlock(&L.renderer[view]);
    }
}

/* A copy of the current document of a view, as text or as its gzip copy. */
static char *latest_copy(bool internal, bool gzip, bool fresh, size_t *len)
{
    int view = internal ? 1 : 0;
    refresh(view, internal, fresh);
    pthread_mutex_lock(&L.render_lock);
    const char *doc = gzip ? L.gz[view] : L.json[view];
    size_t n = gzip ? L.gzlen[view] : L.len[view];
    char *copy = doc ? malloc(n + 1) : NULL;
    if (copy) {
        memcpy(copy, doc, n);
        copy[n] = 0;
        *len = n;
    }
    pthread_mutex_unlock(&L.render_lock);
    return copy;
}

char *sensors_latest_json(bool internal, bool fresh, size_t *len)
{
    return latest_copy(internal, false, fresh, len);
}

char *sensors_latest_gzip(bool internal, bool fresh, size_t *len)
{
    return latest_copy(internal, true, fresh, len);
}

static int state_index(const char *code)
{
    for (int i = 0; i < L.nstates; i++)
        if (strcmp(L.state_code[i], code) == 0)
            return i;
    return -1;
}

void sensors__states_check(int64_t now_s)
{
    static int64_t last;
    if (now_s == last)
        return;
    last = now_s;
    sensors__registry_rdlock();
    int n = sensors__registry_count();
    for (int i = 0; i < n; i++) {
        const struct station_def *st = sensors__station_at(i);
        bool stale = is_stale(st, station_newest(st), now_s);
        int k = state_index(st->code);
        if (k < 0) {
            void *c = realloc(L.state_code, (size_t)(L.nstates + 1) * sizeof *L.state_code);
            void *b = c ? realloc(L.state_stale, (size_t)(L.nstates + 1) * sizeof(bool)) : NULL;
            if (c)
                L.state_code = c;
            if (!b)
                continue;
            L.state_stale = b;
            k = L.nstates++;
            memcpy(L.state_code[k], st->code, sizeof L.state_code[k]);
            L.state_stale[k] = !stale; /* force the first event */
        }
        if (L.state_stale[k] == stale)
            continue;
        L.state_stale[k] = stale;
        json_t *ev = json_pack("{s:s,s:s,s:s}", "station", st->code, "kind",
                               sensors__kind_name(st->kind), "state", stale ? "unknown" : "ok");
        char *data = json_dumps(ev, JSON_COMPACT | JSON_REAL_PRECISION(10));
        json_decref(ev);
        if (data)
            events_publish("station", st->code, sensors__kind_name(st->kind), data, false);
        free(data);
        sensors__latest_dirty(false);
    }
    sensors__registry_unlock();
}

void sensors__latest_free(void)
{
    pthread_mutex_lock(&L.lock);
    i64map_free(&L.items);
    pthread_mutex_unlock(&L.lock);
    for (int v = 0; v < 2; v++) {
        free(L.json[v]);
        free(L.gz[v]);
        L.json[v] = L.gz[v] = NULL;
    }
    free(L.state_code);
    free(L.state_stale);
    L.state_code = NULL;
    L.state_stale = NULL;
    L.nstates = 0;
}

bool sensors_station_info(const char *code, struct sensors_station_info *out)
{
    sensors__registry_rdlock();
    const struct station_def *st = sensors__station_by_code(code, strlen(code));
    if (st) {
        memset(out, 0, sizeof *out);
        snprintf(out->code, sizeof out->code, "%s", st->code);
        snprintf(out->name, sizeof out->name, "%s", st->name);
        snprintf(out->kind, sizeof out->kind, "%s", sensors__kind_name(st->kind));
        snprintf(out->opd, sizeof out->opd, "%s", st->opd);
        snprintf(out->region, sizeof out->region, "%s", st->region);
        snprintf(out->river, sizeof out->river, "%s", st->river);
        out->lat = st->lat;
        out->lon = st->lon;
        out->interval_s = st->interval_s;
        out->has_thresholds = st->has_thresholds;
        out->demo = st->demo;
        memcpy(out->thresholds, st->th, sizeof out->thresholds);
        out->newest_ms = station_newest(st);
    }
    sensors__registry_unlock();
    return st != NULL;
}
