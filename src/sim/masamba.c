/* masamba: `sinergi simulate masamba-2020` — a plausible reconstruction, NOT data, of the
 * Masamba flash flood of Monday 13 July 2020 (data/masamba_flood_2020.md), replayed on the DEMO
 * gauges of Luwu Utara over MQTT, as each device, so the whole path runs: broker, spool, writer,
 * QC, rules, alerts, outbox, webhooks, MQTT, CAP and the live stream. No water-level series of
 * the Masamba, Radda or Rongkong was published; every number below is invented to follow the
 * reported timeline. docs/MASAMBA_2020.md explains each choice.
 *
 * Scenario time runs from Sun 12 July 12:00 to Mon 13 July 21:30 WITA:
 *   - rain: 12 July afternoon showers and heavy rain 20:00-01:00 (in town ~84 mm on the 12th,
 *     40 mm on the 13th, more upstream), and again from 18:00 on the 13th;
 *   - Masamba (demo thresholds 2.0 / 3.0 / 4.0 m): a night rise below Waspada, then on the
 *     evening of the 13th Waspada 19:15, a fast rise 19:40, Siaga 19:45, overflow (Awas) 20:15,
 *     the drop 20:45 (0.67 m in 30 min, under the Awas threshold but not for the hold time) and
 *     the surge of logs and mud at 21:00, ~4 m above its dry-weather level;
 *   - Radda rises too (Awas 20:50, surge 21:00); at 15:00 its gauge spikes once by +2.6 m (a
 *     strike or a glitch: QC must flag it, the rules must not warn on it);
 *   - Rongkong rises to Waspada (19:10) and its float jams at 19:30: the same value until the
 *     end (flat line: QC flags it from the 6th equal reading, the rules alarm operators).
 * Level gauges report every 5 minutes, rain gauges every 10 minutes (rain of the 10 minutes).
 *
 * Reading time vs wall time: readings are stamped scenario time + shift, where the shift puts
 * the scenario's last reading at the wall-clock moment the replay ends (rounded down to 5
 * minutes). A reading at scenario offset x is published when (wall - start) * speed >= x, so no
 * reading is ever in the future, and the stamps are minutes apart as in the scenario (QC
 * rates, windows and the hold time see real minutes). The price: a reading is published about
 * (end - x) * (1 - 1/speed) after its stamp; decisions from readings older than the daemon's
 * ews_live_window_s are recorded as backfill and not sent to the public, so a replay whose
 * evening should warn runs the daemon with a live window of at least the printed lag. */
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

enum {
    LEVEL_STEP_S = 300,
    RAIN_STEP_S = 600,
    EVENING = SIM_MASAMBA_START + 30 * 3600, /* 13 July 18:00 WITA: the evening tables begin */
    EVENING_N = 43,                          /* 18:00 .. 21:30 every 5 minutes */
    SPIKE_T = SIM_MASAMBA_START + 27 * 3600, /* 13 July 15:00 WITA, Radda */
    HOURS = 34,                              /* rain per hour, 12 July 12:00 .. 13 July 21:30 */
};

const char *const sim_masamba_codes[SIM_MASAMBA_NSTATIONS] = {
    "demo-arr-masamba", "demo-arr-rongkong", "demo-pda-masamba", "demo-pda-radda",
    "demo-pda-rongkong"};
enum { ARR_MASAMBA, ARR_RONGKONG, PDA_MASAMBA, PDA_RADDA, PDA_RONGKONG };

/* ---- the reconstruction ------------------------------------------------------------------- */
/* Rain in mm per hour, hour h starting at 12 July 12:00 + h hours (the last is a half hour). */
static const double rain_mm_h[2][HOURS] = {
    /* Masamba town (Kel. Bone): 12 July 12-24 h: 84 mm; 13 July until 21:30: 40 mm */
    {0, 2, 8, 8, 4, 2, 0, 5, 12, 16, 15, 12,               /* 12 July 12:00 .. 23:00 */
     8, 3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,         /* 13 July 00:00 .. 14:00 */
     2, 1, 0, 3, 6, 12, 8},                               /* 15:00 .. 21:00 (to 21:30) */
    /* upstream, Hulu Rongkong (rain was heaviest in the hills): 111 mm, then 92 mm */
    {0, 4, 10, 13, 8, 3, 0, 8, 16, 18, 17, 14,
     10, 5, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
     6, 5, 4, 8, 15, 26, 22},
};
/* How an hour's rain falls over its six 10-minute slots (sums to 6). */
static const double rain_shape[6] = {0.8, 1.0, 1.2, 1.2, 1.0, 0.8};

/* Levels (m) before the evening: knots (hours since 12 July 12:00, level), linear between. */
struct knot {
    double h, v;
};
static const struct knot knots[3][9] = {
    /* Masamba: the night rise of 12-13 July stays below Waspada (see docs) */
    {{0, 0.92}, {8, 1.00}, {9, 1.05}, {11, 1.45}, {13, 1.78}, {16, 1.55}, {22, 1.32}, {27, 1.22},
     {30, 1.30}},
    /* Radda */
    {{0, 0.85}, {8, 0.90}, {9, 0.93}, {11, 1.22}, {13, 1.45}, {16, 1.28}, {22, 1.12}, {27, 1.06},
     {30, 1.25}},
    /* Rongkong */
    {{0, 1.20}, {8, 1.30}, {9, 1.38}, {11, 1.85}, {13, 2.20}, {18, 1.95}, {24, 1.75}, {28, 1.78},
     {30, 1.95}},
};

/* The evening of 13 July, every 5 minutes from 18:00 to 21:30, exact (no noise): these are the
 * readings the alert timeline of docs/MASAMBA_2020.md and tests/api/test_masamba.py is about. */
static const double evening[3][EVENING_N] = {
    /* Masamba: Waspada 19:15, rise >= 0.5 m in 10 min at 19:40, Siaga 19:45, Awas 20:15 (and a
     * fast rise again), the drop 20:45, the surge 21:00 (+1.43 m in 5 min: within QC's rate) */
    {1.300, 1.318, 1.337, 1.361, 1.388, 1.420, 1.456, 1.497, 1.545, 1.598, 1.655, 1.716, /* 18:55 */
     1.781, 1.850, 1.927, 2.064, 2.168, 2.281, 2.405, 2.620, 2.935, 3.180, 3.362, 3.515, /* 19:55 */
     3.648, 3.772, 3.951, 4.286, 4.402, 4.463, 4.497, 4.512, 4.468, 3.847, 3.702, 3.655, /* 20:55 */
     5.080, 5.342, 5.415, 5.360, 5.268, 5.170, 5.066},                                   /* 21:30 */
    /* Radda: Waspada 19:25, Siaga 20:10, Awas 20:50, surge 21:00 */
    {1.250, 1.262, 1.276, 1.293, 1.313, 1.336, 1.362, 1.391, 1.424, 1.460, 1.500, 1.544,
     1.592, 1.644, 1.700, 1.752, 1.791, 1.836, 1.905, 1.982, 2.066, 2.157, 2.255, 2.362,
     2.478, 2.604, 2.736, 2.871, 3.005, 3.139, 3.268, 3.392, 3.505, 3.587, 3.642, 3.690,
     4.920, 5.105, 5.160, 5.120, 5.050, 4.975, 4.900},
    /* Rongkong: Waspada 19:10; the float jams at 19:30 and reports 2.734 m from then on */
    {1.950, 1.972, 1.996, 2.022, 2.050, 2.080, 2.112, 2.146, 2.183, 2.222, 2.264, 2.309,
     2.357, 2.421, 2.503, 2.571, 2.640, 2.697, 2.734, 2.734, 2.734, 2.734, 2.734, 2.734,
     2.734, 2.734, 2.734, 2.734, 2.734, 2.734, 2.734, 2.734, 2.734, 2.734, 2.734, 2.734,
     2.734, 2.734, 2.734, 2.734, 2.734, 2.734, 2.734},
};

static double knot_level(const struct knot *k, int64_t t)
{
    double h = (double)(t - SIM_MASAMBA_START) / 3600.0;
    int i = 0;
    while (i < 8 && k[i + 1].h < h)
        i++;
    double f = (h - k[i].h) / (k[i + 1].h - k[i].h);
    return k[i].v + (k[i + 1].v - k[i].v) * (f < 0 ? 0 : f > 1 ? 1 : f);
}

static double mm(double v)
{
    return floor(v * 1000 + 0.5) / 1000;
}

static int by_time(const void *a, const void *b)
{
    const struct sim_reading *x = a, *y = b;
    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    return x->station - y->station; /* rain gauges first: a level is judged with its rain */
}

int sim_masamba_readings(struct sim_reading **out)
{
    int nlevel = (SIM_MASAMBA_END - SIM_MASAMBA_START) / LEVEL_STEP_S + 1;
    int nrain = (SIM_MASAMBA_END - SIM_MASAMBA_START) / RAIN_STEP_S;
    struct sim_reading *r = calloc((size_t)(3 * nlevel + 2 * nrain), sizeof *r);
    int n = 0;
    if (!r)
        return -1;
    for (int g = 0; g < 2; g++) { /* tipping buckets of 0.2 mm: whole tips, totals kept */
        double exact = 0;
        long tips = 0;
        for (int k = 0; k < nrain; k++) {
            exact += rain_mm_h[g][k / 6] / 6.0 * rain_shape[k % 6];
            long now = (long)floor(exact / 0.2 + 0.5);
            r[n++] = (struct sim_reading){g == 0 ? ARR_MASAMBA : ARR_RONGKONG,
                                          SIM_MASAMBA_START + (int64_t)(k + 1) * RAIN_STEP_S,
                                          (double)(now - tips) * 0.2};
            tips = now;
        }
    }
    for (int g = 0; g < 3; g++) {
        double prev = -1;
        for (int k = 0; k < nlevel; k++) {
            int64_t t = SIM_MASAMBA_START + (int64_t)k * LEVEL_STEP_S;
            double v;
            if (t >= EVENING) {
                v = evening[g][(t - EVENING) / LEVEL_STEP_S];
            } else {
                /* a few mm of wind and wave on the slow curve, never twice the same value (a
                 * healthy gauge must not look stuck) */
                v = mm(knot_level(knots[g], t) + 0.003 * sin(0.9 * k) + 0.002 * sin(0.23 * k + 1));
                if (fabs(v - prev) < 0.0009)
                    v = mm(prev + (k % 2 ? 0.001 : -0.001));
            }
            prev = v;
            if (g == 1 && t == SPIKE_T)
                v = mm(v + 2.6); /* one reading; the next is the river again */
            r[n++] = (struct sim_reading){PDA_MASAMBA + g, t, v};
        }
    }
    qsort(r, (size_t)n, sizeof *r, by_time);
    *out = r;
    return n;
}

/* ---- the replay ---------------------------------------------------------------------------- */
struct gauge {
    char sensor[33], unit[16], token[64];
    struct mqtt_device *dev;
    long published;
};

static enum err_code find_gauges(struct db *db, struct gauge *g, struct err *err)
{
    json_t *list = NULL;
    struct db_conn *c = db_acquire(db);
    sensors_station_list(c, true, &list, err);
    db_release(db, c);
    if (err->code)
        return err->code;
    for (int i = 0; i < SIM_MASAMBA_NSTATIONS && !err->code; i++) {
        json_t *found = NULL, *s;
        size_t k;
        json_array_foreach(list, k, s)
        {
            const char *code = json_string_value(json_object_get(s, "code"));
            if (code && strcmp(code, sim_masamba_codes[i]) == 0)
                found = s;
        }
        json_t *sensor = json_array_get(json_object_get(found, "sensors"), 0);
        const char *name = json_string_value(json_object_get(sensor, "name"));
        const char *unit = json_string_value(json_object_get(sensor, "unit"));
        if (!found || !json_is_true(json_object_get(found, "demo")) || !name || !unit)
            err_set(err, ERR_NOT_FOUND,
                    "masamba-2020 replays on the DEMO gauges of Luwu Utara (regency 73.22, "
                    "seed_demo=1); '%s' is missing or not a demo station",
                    sim_masamba_codes[i]);
        else {
            snprintf(g[i].sensor, sizeof g[i].sensor, "%s", name);
            snprintf(g[i].unit, sizeof g[i].unit, "%s", unit);
        }
    }
    json_decref(list);
    return err->code;
}

static enum err_code rotate(struct db *db, struct gauge *g, struct err *err)
{
    struct db_conn *c = db_acquire(db);
    struct actor system = {NULL, NULL, "simulate"};
    for (int i = 0; i < SIM_MASAMBA_NSTATIONS && !err->code; i++) {
        json_t *out;
        if (sensors_station_rotate_token(c, &system, sim_masamba_codes[i], &out, err) == ERR_OK) {
            snprintf(g[i].token, sizeof g[i].token, "%s",
                     json_string_value(json_object_get(out, "device_token")));
            json_decref(out);
        }
    }
    db_release(db, c);
    return err->code;
}

static void publish(struct gauge *g, const struct sim_reading *r, int64_t shift, int qos,
                    long *failed)
{
    struct gauge *d = &g[r->station];
    const char *code = sim_masamba_codes[r->station];
    char bn[40], topic[64];
    snprintf(bn, sizeof bn, "%.32s:", code);
    snprintf(topic, sizeof topic, "sinergi/ingest/%.32s", code);
    json_t *pack = json_pack("[{s:s,s:I,s:s,s:s,s:f}]", "bn", bn, "bt", (json_int_t)(r->t + shift),
                             "n", d->sensor, "u", d->unit, "v", r->v);
    char *text = json_dumps(pack, JSON_COMPACT | JSON_REAL_PRECISION(8));
    json_decref(pack);
    struct err e = ERR_INIT;
    if (!text || mqtt_device_publish(d->dev, topic, text, strlen(text), qos, &e)) {
        if ((*failed)++ == 0)
            fprintf(stderr, "sinergi: simulate: %s\n", e.msg[0] ? e.msg : "out of memory");
    } else {
        d->published++;
    }
    free(text);
}

static void nap(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - floor(s)) * 1e9)};
    nanosleep(&ts, NULL);
}

static void say_when(const char *what, int64_t scenario_t, int64_t shift)
{
    char a[CLOCK_FMT_LEN], b[CLOCK_FMT_LEN];
    clock_fmt_wita(a, scenario_t);
    clock_fmt_utc(b, scenario_t + shift);
    printf("sinergi: simulate: masamba-2020:   %.16s %s -> reading time %s\n", a, what, b);
}

enum err_code sim_masamba_run(struct db *db, const struct mqtt_settings *broker,
                              const struct sim_options *o, volatile sig_atomic_t *stop,
                              struct err *err)
{
    static struct gauge g[SIM_MASAMBA_NSTATIONS];
    struct sim_reading *r = NULL;
    memset(g, 0, sizeof g);
    if (find_gauges(db, g, err))
        return err->code;
    int n = sim_masamba_readings(&r);
    if (n < 0)
        return err_set(err, ERR_INTERNAL, "out of memory");
    const double span = (double)(SIM_MASAMBA_END - SIM_MASAMBA_START);
    if (!mqtt_accounts_ready(5000))
        err_set(err, ERR_UNAVAILABLE,
                "cannot reach the broker at %s:%d as '%s'; is it running "
                "(scripts/mqtt-broker.sh start DIR PORT)?",
                broker->host, broker->port, broker->username);
    else if (rotate(db, g, err) == ERR_OK && !mqtt_accounts_flush(15000))
        err_set(err, ERR_UNAVAILABLE, "the broker at %s:%d did not take the new device passwords",
                broker->host, broker->port);
    for (int i = 0; i < SIM_MASAMBA_NSTATIONS && !err->code; i++)
        mqtt_device_connect(&g[i].dev, broker->host, broker->port, sim_masamba_codes[i],
                            g[i].token, err);
    long failed = 0, total = 0;
    if (!err->code) {
        /* The clock starts now: the scenario's end is stamped when the replay ends. */
        double wall0 = (double)clock_now_ms() / 1000.0;
        int64_t end_stamp = (int64_t)floor(wall0 + span / o->speed) / LEVEL_STEP_S * LEVEL_STEP_S;
        int64_t shift = end_stamp - SIM_MASAMBA_END;
        double lag = (double)(SIM_MASAMBA_END - EVENING) * (1.0 - 1.0 / o->speed);
        char from[CLOCK_FMT_LEN], to[CLOCK_FMT_LEN];
        clock_fmt_utc(from, SIM_MASAMBA_START + shift);
        clock_fmt_utc(to, SIM_MASAMBA_END + shift);
        printf("sinergi: simulate: masamba-2020: a reconstruction, not data "
               "(docs/MASAMBA_2020.md)\n"
               "sinergi: simulate: masamba-2020: 2020-07-12T12:00+08:00 .. 2020-07-13T21:30+08:00 "
               "at %gx: %d readings stamped %s .. %s (shift %lld s)\n",
               o->speed, n, from, to, (long long)shift);
        say_when("Masamba Waspada", EVENING + 75 * 60, shift);
        say_when("Masamba Siaga", EVENING + 105 * 60, shift);
        say_when("overflow: Masamba Awas", EVENING + 135 * 60, shift);
        say_when("the drop", EVENING + 165 * 60, shift);
        say_when("the surge of logs and mud", EVENING + 180 * 60, shift);
        if (o->live_window_s > 0 && lag > (double)o->live_window_s)
            printf("sinergi: simulate: masamba-2020: note: the evening's readings are published "
                   "up to %.0f s after their time; with ews_live_window_s %lld the daemon "
                   "records its warnings as backfill and sends none: run it with "
                   "--ews-live-window-s %.0f or more for a live replay\n",
                   lag, (long long)o->live_window_s, ceil(lag / 3600) * 3600);
        fflush(stdout);
        int next = 0;
        while (next < n && !*stop) {
            double wall = (double)clock_now_ms() / 1000.0;
            if (o->duration_s > 0 && wall - wall0 >= o->duration_s)
                break;
            double x = (wall - wall0) * o->speed; /* scenario seconds elapsed */
            while (next < n && (double)(r[next].t - SIM_MASAMBA_START) <= x && !*stop)
                publish(g, &r[next++], shift, o->qos, &failed);
            if (next < n) {
                double wait = ((double)(r[next].t - SIM_MASAMBA_START) - x) / o->speed;
                nap(wait < 0.001 ? 0.001 : wait > 0.2 ? 0.2 : wait);
            }
        }
        for (int i = 0; i < SIM_MASAMBA_NSTATIONS; i++)
            total += g[i].published;
    }
    int unacked = 0;
    for (int i = 0; i < SIM_MASAMBA_NSTATIONS; i++) {
        if (g[i].dev)
            unacked += mqtt_device_close(g[i].dev, err->code ? 0 : 10000);
        g[i].dev = NULL;
        memset(g[i].token, 0, sizeof g[i].token);
    }
    if (failed)
        fprintf(stderr, "sinergi: simulate: %ld readings could not be published\n", failed);
    if (!err->code)
        printf("sinergi: simulate: published %ld readings; %d not acknowledged by the broker\n",
               total, unacked);
    free(r);
    return err->code;
}
