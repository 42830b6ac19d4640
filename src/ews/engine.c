/* engine: the rules, evaluated in reading time on the ingest writer thread as each reading is
 * stored. Only readings that pass QC move public warnings: a suspect reading never raises or
 * clears one on its own (a real surge is confirmed by the next reading, which QC judges against
 * the surged value). Raising is immediate; lowering waits until the value has stayed below the
 * threshold minus a hysteresis margin for a hold time, so a short drop — Masamba, 20:45 — never
 * clears a warning. Decisions from readings older than the live window are recorded as backfill
 * and not sent to the public again. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "ews/ews_int.h"
#include "sensors/sensors.h"
#include "core/banned.h"

enum { HIST = 2048, MAX_RAIN = 4, QC_GOOD = 1, QC_FLAT_BIT = 8 };

struct st_state {
    char code[33];
    char kind[24];
    uint64_t params_gen;
    struct ews_params p;
    int64_t t[HIST];
    double v[HIST];
    int head, n;          /* ring of good readings in time order; head = next slot */
    /* the sliding minimum (rate of rise) and maximum (sudden fall) of the ring's newest
     * readings: monotonic queues of push numbers (slot = number % HIST), so a reading costs
     * O(1) however many readings its window holds (a 1 s logger: 600 in a 10-minute window) */
    uint32_t pushed;
    uint32_t qmin[HIST], qmax[HIST];
    int qmin_head, qmin_n, qmax_head, qmax_n;
    int64_t newest_ms;    /* newest reading evaluated */
    int64_t heard_ms;     /* wall clock of the last reading received (backfilled ones too) */
    int level[RULE__COUNT];
    int64_t below_since[RULE__COUNT];
    int flat_run;
    int nrain;
    char rain[MAX_RAIN][33]; /* upstream rain gauges for sudden_fall */
};

static struct {
    struct st_state **st;
    int n, cap;
    int *index, slots; /* open addressing by code: E.st position + 1, 0 = empty */
    struct db *db;
    int64_t started_ms; /* wall clock of ews_start: what was heard before is not known */
} E;

/* ---- state ------------------------------------------------------------------------------------ */
/* A monotonic queue over push numbers: `keep(v_back, v)` says whether the back entry stays in
 * front of a new value v (min queue: v_back < v; max queue: v_back > v). */
static void queue_push(const struct st_state *s, uint32_t *q, int *head, int *n, uint32_t seq,
                       double v, bool is_min)
{
    while (*n > 0 && q[*head] + HIST <= seq) { /* overwritten in the ring */
        *head = (*head + 1) % HIST;
        (*n)--;
    }
    while (*n > 0) {
        double back = s->v[q[(*head + *n - 1) % HIST] % HIST];
        if (is_min ? back < v : back > v)
            break;
        (*n)--;
    }
    q[(*head + *n) % HIST] = seq;
    (*n)++;
}

static void push(struct st_state *s, int64_t t, double v)
{
    uint32_t seq = s->pushed++;
    s->t[s->head] = t;
    s->v[s->head] = v;
    s->head = (s->head + 1) % HIST;
    if (s->n < HIST)
        s->n++;
    queue_push(s, s->qmin, &s->qmin_head, &s->qmin_n, seq, v, true);
    queue_push(s, s->qmax, &s->qmax_head, &s->qmax_n, seq, v, false);
}

/* The windows changed (rule parameters): the queues are rebuilt from the ring. */
static void queues_rebuild(struct st_state *s)
{
    s->qmin_head = s->qmin_n = s->qmax_head = s->qmax_n = 0;
    for (int i = s->n - 1; i >= 0; i--) {
        uint32_t seq = s->pushed - 1 - (uint32_t)i;
        double v = s->v[seq % HIST];
        queue_push(s, s->qmin, &s->qmin_head, &s->qmin_n, seq, v, true);
        queue_push(s, s->qmax, &s->qmax_head, &s->qmax_n, seq, v, false);
    }
}

/* Minimum or maximum over [t - window, t], t being the newest reading's time (rules do not
 * rewind); INFINITY / -INFINITY when the window is empty. Drops what fell out of the window. */
static double queue_extreme(struct st_state *s, bool is_min, int64_t t, double window_s)
{
    uint32_t *q = is_min ? s->qmin : s->qmax;
    int *head = is_min ? &s->qmin_head : &s->qmax_head, *n = is_min ? &s->qmin_n : &s->qmax_n;
    int64_t start = t - (int64_t)(window_s * 1000);
    while (*n > 0 && s->t[q[*head] % HIST] < start) {
        *head = (*head + 1) % HIST;
        (*n)--;
    }
    if (*n == 0)
        return is_min ? INFINITY : -INFINITY;
    return s->v[q[*head] % HIST];
}

/* i-th newest (0 = newest). */
static int at(const struct st_state *s, int i)
{
    return ((s->head - 1 - i) % HIST + HIST) % HIST;
}

static void find_rain_gauges(struct st_state *s, const char *river)
{
    s->nrain = 0;
    if (s->p.rain_station[0]) {
        snprintf(s->rain[0], sizeof s->rain[0], "%s", s->p.rain_station);
        s->nrain = 1;
        return;
    }
    json_t *codes = sensors_station_codes();
    size_t i;
    json_t *c;
    json_array_foreach(codes, i, c)
    {
        struct sensors_station_info info;
        if (s->nrain < MAX_RAIN && sensors_station_info(json_string_value(c), &info) &&
            strcmp(info.kind, "rain") == 0 && river[0] && strcmp(info.river, river) == 0)
            snprintf(s->rain[s->nrain++], sizeof s->rain[0], "%s", info.code);
    }
    json_decref(codes);
}

/* `judging`: the reading at now_ms is the one about to be evaluated (already stored in this
 * transaction); it is left out so that it is judged, not taken for one judged before. */
static enum err_code load_history(struct db_conn *c, struct st_state *s, const char *sensor,
                                  int64_t now_ms, bool judging, struct err *err)
{
    json_t *out;
    struct err e = ERR_INIT;
    if (sensors_readings(c, s->code, sensor, now_ms / 1000 - 86400, now_ms / 1000 + 86400, 0,
                         HIST, &out, &e))
        return e.code == ERR_NOT_FOUND ? ERR_OK : err_set(err, e.code, "%s", e.msg);
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(out, "points"), i, p)
    {
        int64_t t;
        if (strcmp(json_string_value(json_object_get(p, "qc")), "good") == 0 &&
            clock_parse(json_string_value(json_object_get(p, "t")), &t) &&
            !(judging && t == now_ms / 1000))
            push(s, t * 1000, json_number_value(json_object_get(p, "v")));
    }
    json_decref(out);
    return ERR_OK;
}

static size_t code_hash(const char *code)
{
    uint64_t h = 1469598103934665603u;
    for (const char *p = code; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211u;
    return (size_t)h;
}

/* The position in E.st of a station's state, or -1: every reading asks, so not a scan. */
static int find_state(const char *code)
{
    if (!E.slots)
        return -1;
    for (size_t i = code_hash(code) & (size_t)(E.slots - 1); E.index[i];
         i = (i + 1) & (size_t)(E.slots - 1))
        if (strcmp(E.st[E.index[i] - 1]->code, code) == 0)
            return E.index[i] - 1;
    return -1;
}

/* Adds E.st[E.n - 1] to the index, growing it to keep it at most half full. */
static bool index_add(void)
{
    if (E.n * 2 > E.slots) {
        int slots = E.slots ? E.slots * 2 : 64;
        int *idx = calloc((size_t)slots, sizeof *idx);
        if (!idx)
            return false;
        free(E.index);
        E.index = idx;
        E.slots = slots;
        for (int k = 0; k < E.n; k++) {
            size_t i = code_hash(E.st[k]->code) & (size_t)(slots - 1);
            while (E.index[i])
                i = (i + 1) & (size_t)(slots - 1);
            E.index[i] = k + 1;
        }
        return true;
    }
    size_t i = code_hash(E.st[E.n - 1]->code) & (size_t)(E.slots - 1);
    while (E.index[i])
        i = (i + 1) & (size_t)(E.slots - 1);
    E.index[i] = E.n;
    return true;
}

static struct st_state *state_of(struct db_conn *c, const char *code, const char *kind,
                                 const char *sensor, int64_t t_ms, bool judging, struct err *err)
{
    int found = find_state(code);
    if (found >= 0) {
        struct st_state *s = E.st[found];
        uint64_t gen = atomic_load(&ews__params_generation);
        if (s->params_gen != gen) {
            struct sensors_station_info info;
            if (ews__params_load(c, code, kind, &s->p, err))
                return NULL;
            s->params_gen = gen;
            queues_rebuild(s); /* the windows may have grown */
            if (sensors_station_info(code, &info))
                find_rain_gauges(s, info.river);
        }
        return s;
    }
    if (E.n == E.cap) {
        int cap = E.cap ? E.cap * 2 : 64;
        struct st_state **p = realloc(E.st, (size_t)cap * sizeof *p);
        if (!p) {
            err_set(err, ERR_INTERNAL, "out of memory in the rule engine");
            return NULL;
        }
        E.st = p;
        E.cap = cap;
    }
    struct st_state *s = calloc(1, sizeof *s);
    struct sensors_station_info info;
    if (!s) {
        err_set(err, ERR_INTERNAL, "out of memory in the rule engine");
        return NULL;
    }
    snprintf(s->code, sizeof s->code, "%s", code);
    snprintf(s->kind, sizeof s->kind, "%s", kind);
    s->params_gen = atomic_load(&ews__params_generation);
    if (ews__params_load(c, code, kind, &s->p, err) ||
        load_history(c, s, sensor, t_ms, judging, err)) {
        free(s);
        return NULL;
    }
    if (sensors_station_info(code, &info))
        find_rain_gauges(s, info.river);
    for (int r = 0; r < RULE__COUNT; r++) {
        int64_t id;
        if (ews__open_alert(c, code, (enum ews_rule)r, &id, &s->level[r], err)) {
            free(s);
            return NULL;
        }
    }
    if (s->n)
        s->newest_ms = s->t[at(s, 0)];
    E.st[E.n++] = s;
    if (!index_add()) {
        free(s);
        E.n--;
        err_set(err, ERR_INTERNAL, "out of memory in the rule engine");
        return NULL;
    }
    return s;
}

static void forget_all(void)
{
    for (int i = 0; i < E.n; i++)
        free(E.st[i]);
    E.n = 0;
    if (E.index)
        memset(E.index, 0, (size_t)E.slots * sizeof *E.index);
}

/* ---- rule arithmetic -------------------------------------------------------------------------- */
/* A level from thresholds, with hysteresis and hold on the way down. */
static int with_hold(const double th[3], double x, double hyst, double hold_s, int cur, int64_t t,
                     int64_t *below_since)
{
    int raw = 0;
    for (int k = 0; k < 3; k++)
        if (x >= th[k])
            raw = k + 1;
    if (raw >= cur) {
        *below_since = 0;
        return raw;
    }
    if (x >= th[cur - 1] - hyst) { /* within the margin: not yet below */
        *below_since = 0;
        return cur;
    }
    if (!*below_since)
        *below_since = t;
    if (t - *below_since < (int64_t)(hold_s * 1000))
        return cur;
    int lvl = 0;
    for (int k = 0; k < 3; k++)
        if (x >= th[k] - hyst)
            lvl = k + 1;
    *below_since = lvl > 0 ? t : 0; /* each further step down needs its own hold */
    return lvl;
}

/* A condition-driven level: `on` raises to `level` at once; off for hold_s clears. */
static int latch(bool on, int level, double hold_s, int cur, int64_t t, int64_t *since)
{
    if (on) {
        *since = 0;
        return level > cur ? level : cur;
    }
    if (cur == 0)
        return 0;
    if (!*since)
        *since = t;
    return t - *since >= (int64_t)(hold_s * 1000) ? 0 : cur;
}

/* Sum, min and max of the ring over (t - window, t], or [t - window, t] when `inclusive`
 * (a rise "within 10 minutes" compares with the reading 10 minutes before). */
static void window_stats(const struct st_state *s, int64_t t, double window_s, bool inclusive,
                         double *sum, double *lo, double *hi)
{
    *sum = 0;
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int i = 0; i < s->n; i++) {
        int k = at(s, i);
        if (s->t[k] > t)
            continue;
        int64_t start = t - (int64_t)(window_s * 1000);
        if (s->t[k] < start || (!inclusive && s->t[k] == start))
            break;
        *sum += s->v[k];
        if (s->v[k] < *lo)
            *lo = s->v[k];
        if (s->v[k] > *hi)
            *hi = s->v[k];
    }
}

static double upstream_rain(const struct st_state *s, int64_t t, bool *known)
{
    double total = 0;
    *known = false;
    for (int r = 0; r < s->nrain; r++) {
        int i = find_state(s->rain[r]);
        if (i >= 0) {
            double sum, lo, hi;
            window_stats(E.st[i], t, 3600, false, &sum, &lo, &hi);
            total += sum;
            *known = true;
        }
    }
    return total;
}

/* ---- decisions -------------------------------------------------------------------------------- */
static enum err_code decide(struct db_conn *c, struct st_state *s, enum ews_rule rule, int level,
                            double value, int64_t t, struct err *err)
{
    if (level == s->level[rule])
        return ERR_OK;
    struct ews_decision d = {.station = s->code, .rule = rule, .level = level, .value = value,
                             .at_ms = t,
                             .backfill = clock_now_ms() - t > ews__settings.live_window_s * 1000};
    int64_t id;
    if (ews__decide(c, &d, &id, err))
        return err->code;
    s->level[rule] = level;
    return ERR_OK;
}

static enum err_code eval_water(struct db_conn *c, struct st_state *s, int64_t t, double v,
                                struct err *err)
{
    struct sensors_station_info info;
    const struct ews_params *p = &s->p;
    if (p->enabled[RULE_LEVEL] && sensors_station_info(s->code, &info) && info.has_thresholds &&
        decide(c, s, RULE_LEVEL,
               with_hold(info.thresholds, v, p->hysteresis_m, p->hold_s, s->level[RULE_LEVEL], t,
                         &s->below_since[RULE_LEVEL]),
               v, t, err))
        return err->code;
    if (p->enabled[RULE_RATE_OF_RISE]) {
        double lo = queue_extreme(s, true, t, p->rise_window_s);
        bool rising = isfinite(lo) && v - lo >= p->rise_m;
        if (decide(c, s, RULE_RATE_OF_RISE,
                   latch(rising, p->rise_level, p->hold_s, s->level[RULE_RATE_OF_RISE], t,
                         &s->below_since[RULE_RATE_OF_RISE]),
                   v, t, err))
            return err->code;
    }
    if (p->enabled[RULE_SUDDEN_FALL]) {
        double hi = queue_extreme(s, false, t, p->drop_window_s);
        bool known;
        double rain = upstream_rain(s, t, &known);
        /* without a rain gauge the fall alone is reported: operators judge */
        bool falling = isfinite(hi) && hi - v >= p->drop_m && (!known || rain >= p->drop_rain_mm);
        if (decide(c, s, RULE_SUDDEN_FALL,
                   latch(falling, 2, p->hold_s, s->level[RULE_SUDDEN_FALL], t,
                         &s->below_since[RULE_SUDDEN_FALL]),
                   v, t, err))
            return err->code;
    }
    return ERR_OK;
}

static enum err_code eval_rain(struct db_conn *c, struct st_state *s, int64_t t, struct err *err)
{
    const struct ews_params *p = &s->p;
    double sum, lo, hi;
    if (p->enabled[RULE_RAIN_1H]) {
        window_stats(s, t, 3600, false, &sum, &lo, &hi);
        if (decide(c, s, RULE_RAIN_1H,
                   with_hold(p->rain1h, sum, p->rain_hysteresis_mm, p->hold_s,
                             s->level[RULE_RAIN_1H], t, &s->below_since[RULE_RAIN_1H]),
                   sum, t, err))
            return err->code;
    }
    if (p->enabled[RULE_RAIN_24H]) {
        window_stats(s, t, 86400, false, &sum, &lo, &hi);
        if (decide(c, s, RULE_RAIN_24H,
                   with_hold(p->rain24h, sum, p->rain_hysteresis_mm, p->hold_s,
                             s->level[RULE_RAIN_24H], t, &s->below_since[RULE_RAIN_24H]),
                   sum, t, err))
            return err->code;
    }
    return ERR_OK;
}

static enum err_code on_reading(struct db_conn *c, const struct sensors_reading_info *r, void *ctx,
                                struct err *err)
{
    (void)ctx;
    bool water = strcmp(r->kind, "water_level") == 0 && strcmp(r->sensor, "level") == 0;
    bool rain = strcmp(r->kind, "rain") == 0 && strcmp(r->sensor, "rain") == 0;
    if (!water && !rain)
        return ERR_OK;
    struct st_state *s = state_of(c, r->station, r->kind, r->sensor, r->t_ms, true, err);
    if (!s)
        return err->code;
    s->heard_ms = clock_now_ms(); /* the station speaks, even when it sends old readings */
    if (r->t_ms <= s->newest_ms)
        return ERR_OK; /* rules do not rewind: a reading older than one already judged */
    s->newest_ms = r->t_ms;
    if (r->qc != QC_GOOD) {
        if (r->failed & QC_FLAT_BIT)
            s->flat_run++;
        /* a stuck gauge is as useless as a silent one */
        if (s->p.enabled[RULE_SILENT] && s->flat_run >= s->p.flat_readings)
            return decide(c, s, RULE_SILENT, 1, r->v, r->t_ms, err);
        return ERR_OK;
    }
    s->flat_run = 0;
    if (s->level[RULE_SILENT] && decide(c, s, RULE_SILENT, 0, r->v, r->t_ms, err))
        return err->code;
    push(s, r->t_ms, r->v);
    return water ? eval_water(c, s, r->t_ms, r->v, err) : eval_rain(c, s, r->t_ms, err);
}

static void on_committed(void *ctx)
{
    (void)ctx;
    ews__pending_publish();
}

static void on_rolled_back(void *ctx)
{
    (void)ctx;
    ews__pending_drop();
    forget_all(); /* rebuilt from the database on next use */
}

/* Silent stations (wall clock): no reading for two intervals raises an operator alarm. Only
 * stations that have reported at least once: a new gauge is unknown, not alarming. Silent means
 * nothing received: a logger backfilling hours-old readings after an outage (or a replay) is
 * speaking, and is not alarmed on and off with every reading it sends; after a start, a station
 * gets two intervals to speak before its old newest reading counts against it. */
static void check_silent(struct db_conn *c, int64_t now_s)
{
    json_t *codes = sensors_station_codes();
    size_t i;
    json_t *code;
    struct err err = ERR_INIT;
    bool began = false;
    json_array_foreach(codes, i, code)
    {
        struct sensors_station_info info;
        if (!sensors_station_info(json_string_value(code), &info) || info.newest_ms == 0)
            continue;
        int k = find_state(info.code);
        struct st_state *s = k >= 0 ? E.st[k] : NULL;
        int64_t limit_ms = 2 * (int64_t)info.interval_s * 1000;
        int64_t heard = s && s->heard_ms > E.started_ms ? s->heard_ms : E.started_ms;
        bool silent = now_s * 1000 - info.newest_ms > limit_ms && now_s * 1000 - heard > limit_ms;
        if (!silent && (!s || s->level[RULE_SILENT] == 0))
            continue;
        if (!began && db_begin(c, &err))
            break;
        began = true;
        if (!s && !(s = state_of(c, info.code, info.kind,
                                 strcmp(info.kind, "rain") == 0 ? "rain" : "level",
                                 info.newest_ms, false, &err)))
            break;
        if (!s->p.enabled[RULE_SILENT] || (silent && s->level[RULE_SILENT]) ||
            (!silent && s->flat_run >= s->p.flat_readings))
            continue;
        if (decide(c, s, RULE_SILENT, silent ? 1 : 0, 0, now_s * 1000, &err))
            break;
    }
    json_decref(codes);
    if (!began)
        return;
    if (err.code || db_commit(c, &err)) {
        db_rollback(c);
        on_rolled_back(NULL);
        log_error("event=ews_silent_check_failed detail=\"%s\"", err.msg);
        return;
    }
    ews__pending_publish();
}

static void on_tick(struct db_conn *c, int64_t now_s, void *ctx)
{
    (void)ctx;
    static int64_t last;
    if (now_s == last)
        return;
    last = now_s;
    check_silent(c, now_s);
    ews__tick_alerts(c, now_s);
}

enum err_code ews_start(struct db *db, const struct ews_settings *s, struct err *err)
{
    (void)err;
    E.db = db;
    E.started_ms = clock_now_ms();
    ews__settings = *s;
    static const struct sensors_observer o = {on_reading, on_committed, on_rolled_back, on_tick,
                                              NULL};
    sensors_set_observer(&o);
    return ERR_OK;
}

void ews_stop(void)
{
    sensors_set_observer(NULL);
    forget_all();
    free(E.st);
    E.st = NULL;
    free(E.index);
    E.index = NULL;
    E.slots = 0;
    E.cap = 0;
}
