/* sim: the `simulate` command. Finds the demo stations, gives each a fresh device token (the
 * account keeper tells the broker), connects as each device and publishes the model's readings
 * on the simulated clock. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/log.h"
#include "sensors/sensors.h"
#include "sim/sim.h"
#include "core/banned.h"

enum { MAX_STATIONS = 64, BACKFILL_LIMIT_S = 29 * 86400 };

struct device {
    struct sim_station st;
    char sensor[33], unit[16];
    char token[64];
    struct mqtt_device *dev;
    int64_t next_t;
    long published;
};

/* Demo stations of the kinds the model knows, with their sensor and a catchment per river. */
static int pick_stations(json_t *list, struct device *out, int max, int *ncatch)
{
    char rivers[8][64];
    int n = 0, nr = 0;
    size_t i;
    json_t *s;
    json_array_foreach(list, i, s)
    {
        const char *kind = json_string_value(json_object_get(s, "kind"));
        json_t *sensor = json_array_get(json_object_get(s, "sensors"), 0);
        if (!json_is_true(json_object_get(s, "demo")) || !kind || !sensor || n >= max)
            continue;
        bool level = strcmp(kind, "water_level") == 0;
        if (!level && strcmp(kind, "rain") != 0)
            continue;
        struct device *d = &out[n++];
        memset(d, 0, sizeof *d);
        snprintf(d->st.code, sizeof d->st.code, "%s",
                 json_string_value(json_object_get(s, "code")));
        snprintf(d->sensor, sizeof d->sensor, "%s",
                 json_string_value(json_object_get(sensor, "name")));
        snprintf(d->unit, sizeof d->unit, "%s", json_string_value(json_object_get(sensor, "unit")));
        d->st.kind = level ? SIM_LEVEL : SIM_RAIN;
        d->st.interval_s = (int)json_integer_value(json_object_get(s, "interval_s"));
        if (d->st.interval_s <= 0)
            d->st.interval_s = 600;
        const char *river = json_string_value(json_object_get(s, "river"));
        river = river ? river : "";
        int c = 0;
        while (c < nr && strcmp(rivers[c], river) != 0)
            c++;
        if (c == nr && nr < 8)
            snprintf(rivers[nr++], sizeof rivers[0], "%s", river);
        d->st.catchment = c < 8 ? c : 7;
        json_t *th = json_object_get(s, "thresholds");
        double waspada = json_real_value(json_object_get(th, "waspada"));
        double siaga = json_real_value(json_object_get(th, "siaga"));
        if (!(waspada > 0 && siaga > waspada)) {
            waspada = 2.0;
            siaga = 3.0;
        }
        d->st.base_m = 0.35 * waspada;
        /* about 45 mm held in the catchment brings the river to Siaga */
        d->st.gain_m_per_mm = (siaga - d->st.base_m) / 45.0;
    }
    *ncatch = nr ? nr : 1;
    return n;
}

static enum err_code rotate_tokens(struct db *db, struct device *d, int n, struct err *err)
{
    struct db_conn *c = db_acquire(db);
    struct actor system = {NULL, NULL, "simulate"};
    for (int i = 0; i < n && !err->code; i++) {
        json_t *out;
        if (sensors_station_rotate_token(c, &system, d[i].st.code, &out, err) == ERR_OK) {
            snprintf(d[i].token, sizeof d[i].token, "%s",
                     json_string_value(json_object_get(out, "device_token")));
            json_decref(out);
        }
    }
    db_release(db, c);
    return err->code;
}

static void stage_faults(struct sim_model *m, struct device *d, int n, int64_t t0, double span)
{
    int levels[MAX_STATIONS], nl = 0;
    for (int i = 0; i < n; i++) {
        if (d[i].st.kind != SIM_LEVEL)
            continue;
        levels[nl++] = i;
        d[i].st.lag_s = sim_uniform(&m->rng, 3600, 3 * 3600);
        d[i].st.tau_s = sim_uniform(&m->rng, 4 * 3600, 8 * 3600);
    }
    if (nl == 0)
        return;
    struct sim_station *spike = &d[levels[0]].st, *stuck = &d[levels[nl > 1 ? 1 : 0]].st;
    spike->spike_at = t0 + (int64_t)(0.15 * span);
    stuck->stuck_from = t0 + (int64_t)(0.35 * span);
    stuck->stuck_to = t0 + (int64_t)(0.60 * span);
    char a[CLOCK_FMT_LEN], b[CLOCK_FMT_LEN], c[CLOCK_FMT_LEN];
    clock_fmt_utc(a, spike->spike_at);
    clock_fmt_utc(b, stuck->stuck_from);
    clock_fmt_utc(c, stuck->stuck_to);
    printf("sinergi: simulate: staged faults: spike on %s near %s; %s stuck from %s to %s\n",
           spike->code, a, stuck->code, b, c);
}

static enum err_code connect_all(const struct mqtt_settings *b, struct device *d, int n,
                                 struct err *err)
{
    for (int i = 0; i < n; i++)
        if (mqtt_device_connect(&d[i].dev, b->host, b->port, d[i].st.code, d[i].token, err))
            return err->code;
    return ERR_OK;
}

static void publish_reading(struct sim_model *m, struct device *d, int qos, long *failed)
{
    int64_t t = d->next_t;
    double v = d->st.kind == SIM_LEVEL ? sim_level_step(m, &d->st, t)
                                       : sim_rain_mm(m, d->st.catchment, t, d->st.interval_s);
    char bn[40];
    snprintf(bn, sizeof bn, "%.32s:", d->st.code);
    json_t *pack = json_pack("[{s:s,s:I,s:s,s:s,s:f}]", "bn", bn, "bt", (json_int_t)t, "n",
                             d->sensor, "u", d->unit, "v", v);
    char *text = json_dumps(pack, JSON_COMPACT | JSON_REAL_PRECISION(8));
    json_decref(pack);
    char topic[64];
    snprintf(topic, sizeof topic, "sinergi/ingest/%.32s", d->st.code);
    struct err e = ERR_INIT;
    if (!text || mqtt_device_publish(d->dev, topic, text, strlen(text), qos, &e)) {
        if ((*failed)++ == 0)
            fprintf(stderr, "sinergi: simulate: %s\n", e.msg[0] ? e.msg : "out of memory");
    } else {
        d->published++;
    }
    free(text);
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - floor(s)) * 1e9)};
    nanosleep(&ts, NULL);
}

/* Publishes every reading due by the simulated clock until the end or a stop signal. */
static long run_clock(struct sim_model *m, struct device *d, int n, const struct sim_options *o,
                      int64_t t0, volatile sig_atomic_t *stop)
{
    double wall0 = (double)clock_now_ms() / 1000.0;
    long failed = 0, total = 0;
    for (int i = 0; i < n; i++)
        d[i].next_t = (t0 + d[i].st.interval_s - 1) / d[i].st.interval_s * d[i].st.interval_s;
    while (!*stop) {
        double wall = (double)clock_now_ms() / 1000.0;
        if (o->duration_s > 0 && wall - wall0 >= o->duration_s)
            break;
        double sim = (double)t0 + (wall - wall0) * o->speed;
        if (sim > wall) /* caught up with the present: real time from here on */
            sim = wall;
        double next = INFINITY;
        for (int i = 0; i < n; i++) {
            while ((double)d[i].next_t <= sim && !*stop) {
                publish_reading(m, &d[i], o->qos, &failed);
                d[i].next_t += d[i].st.interval_s;
            }
            if ((double)d[i].next_t < next)
                next = (double)d[i].next_t;
        }
        double wait = (next - sim) / (sim >= wall ? 1.0 : o->speed);
        sleep_s(wait < 0.001 ? 0.001 : wait > 0.2 ? 0.2 : wait);
    }
    for (int i = 0; i < n; i++)
        total += d[i].published;
    if (failed)
        fprintf(stderr, "sinergi: simulate: %ld readings could not be published\n", failed);
    return total;
}

enum err_code sim_run(struct db *db, const struct mqtt_settings *broker,
                      const struct sim_options *o, volatile sig_atomic_t *stop, struct err *err)
{
    static struct device d[MAX_STATIONS];
    json_t *list = NULL;
    int ncatch = 1, n = 0;
    if (o->scenario && strcmp(o->scenario, SIM_MASAMBA_NAME) == 0)
        return sim_masamba_run(db, broker, o, stop, err);
    if (o->scenario)
        return err_set(err, ERR_INVALID, "unknown scenario '%s' (known: " SIM_MASAMBA_NAME ")",
                       o->scenario);
    struct db_conn *c = db_acquire(db);
    sensors_station_list(c, true, &list, err);
    db_release(db, c);
    if (err->code)
        return err->code;
    n = pick_stations(list, d, MAX_STATIONS, &ncatch);
    json_decref(list);
    if (n == 0)
        return err_set(err, ERR_NOT_FOUND,
                       "no demo stations: they are seeded on an empty "
                       "database (seed_demo=1), or create stations with "
                       "\"demo\": true");
    double back = o->duration_s > 0 ? (o->speed - 1) * o->duration_s : (o->speed - 1) * 600;
    if (back > BACKFILL_LIMIT_S) {
        if (o->duration_s > 0)
            return err_set(err, ERR_INVALID,
                           "--speed x --duration reaches %.0f days into the "
                           "past; keep it within 29 days (the backfill window)",
                           back / 86400);
        back = BACKFILL_LIMIT_S;
    }
    int64_t now = clock_now_s(), t0 = now - (int64_t)back;
    double span = o->duration_s > 0 ? o->speed * o->duration_s : back + 12 * 3600;
    struct sim_model *m = calloc(1, sizeof *m);
    if (!m)
        return err_set(err, ERR_INTERNAL, "out of memory");
    sim_model_init(m, o->seed, t0, span, ncatch);
    stage_faults(m, d, n, t0, span);
    if (!mqtt_accounts_ready(5000))
        err_set(err, ERR_UNAVAILABLE,
                "cannot reach the broker at %s:%d as '%s'; is it running "
                "(scripts/mqtt-broker.sh start DIR PORT)?",
                broker->host, broker->port, broker->username);
    else if (rotate_tokens(db, d, n, err) == ERR_OK && !mqtt_accounts_flush(15000))
        err_set(err, ERR_UNAVAILABLE,
                "the broker at %s:%d did not take the new device passwords; "
                "is it running (scripts/mqtt-broker.sh start)?",
                broker->host, broker->port);
    if (!err->code && connect_all(broker, d, n, err) == ERR_OK) {
        char from[CLOCK_FMT_LEN];
        clock_fmt_utc(from, t0);
        printf("sinergi: simulate: %d demo stations, speed %gx, simulated clock from %s\n", n,
               o->speed, from);
        fflush(stdout);
        long total = run_clock(m, d, n, o, t0, stop);
        int unacked = 0;
        for (int i = 0; i < n; i++)
            unacked += mqtt_device_close(d[i].dev, 10000);
        printf("sinergi: simulate: published %ld readings; %d not acknowledged by the broker\n",
               total, unacked);
    } else {
        for (int i = 0; i < n; i++)
            mqtt_device_close(d[i].dev, 0);
    }
    for (int i = 0; i < n; i++) {
        d[i].dev = NULL;
        memset(d[i].token, 0, sizeof d[i].token);
    }
    free(m);
    return err->code;
}
