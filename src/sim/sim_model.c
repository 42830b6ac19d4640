/* sim_model: the weather and the rivers of the simulator. Storms cross the region (each reaches
 * each catchment with its own delay and strength); rain gauges count 0.2 mm tips; a river is a
 * linear reservoir fed by its catchment's rain after a lag, on top of a dry-weather level with a
 * small diurnal cycle and sensor noise. Pure functions of the seed: the same run twice gives
 * the same readings. */
#include <math.h>
#include <string.h>

#include "sim/sim.h"
#include "core/banned.h"

enum { STEP_S = 60 };

static uint64_t next_u64(uint64_t *s) /* xorshift64* */
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

double sim_uniform(uint64_t *s, double lo, double hi)
{
    return lo + (hi - lo) * (double)(next_u64(s) >> 11) / 9007199254740992.0;
}

double sim_gauss(uint64_t *rng)
{
    double u = sim_uniform(rng, 1e-12, 1.0), v = sim_uniform(rng, 0.0, 1.0);
    return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v);
}

static void plan_storm(struct sim_model *m, int64_t start, bool heavy)
{
    if (m->nstorms >= (int)(sizeof m->storms / sizeof m->storms[0]))
        return;
    struct sim_storm *s = &m->storms[m->nstorms++];
    s->start = start;
    s->duration_s = sim_uniform(&m->rng, 3600, 4 * 3600);
    s->peak_mm_h = heavy ? sim_uniform(&m->rng, 25, 50) : sim_uniform(&m->rng, 4, 20);
    for (int c = 0; c < m->ncatchments && c < 8; c++) {
        s->delay_s[c] = sim_uniform(&m->rng, 0, 5400);
        s->factor[c] = sim_uniform(&m->rng, 0.5, 1.4);
    }
}

void sim_model_init(struct sim_model *m, uint64_t seed, int64_t t0, double span_s, int ncatchments)
{
    memset(m, 0, sizeof *m);
    m->rng = seed ? seed : 0x9E3779B97F4A7C15ull;
    m->t0 = t0;
    m->ncatchments = ncatchments < 8 ? ncatchments : 8;
    /* The first storm is heavy and early, so a short demo shows rivers rising. */
    plan_storm(m, t0 + (int64_t)(0.2 * span_s), true);
    double gap = span_s / 3 < 3 * 3600 ? 3 * 3600 : span_s / 3 > 18 * 3600 ? 18 * 3600 : span_s / 3;
    double t = (double)t0 + 0.2 * span_s;
    while (t < (double)t0 + span_s) {
        t += -log(sim_uniform(&m->rng, 1e-9, 1.0)) * gap + 2 * 3600;
        plan_storm(m, (int64_t)t, sim_uniform(&m->rng, 0, 1) < 0.3);
    }
}

double sim_rain_rate(const struct sim_model *m, int c, double t)
{
    double rate = 0;
    for (int i = 0; i < m->nstorms; i++) {
        const struct sim_storm *s = &m->storms[i];
        double x = (t - (double)s->start - s->delay_s[c]) / s->duration_s;
        if (x < 0 || x > 1)
            continue;
        double shape = x < 0.4 ? x / 0.4 : (1 - x) / 0.6; /* quick rise, slower tail */
        rate += s->peak_mm_h * s->factor[c] * shape;
    }
    return rate;
}

double sim_rain_mm(const struct sim_model *m, int c, int64_t t, int dt)
{
    double mm = 0;
    for (int64_t u = t - dt + STEP_S / 2; u < t; u += STEP_S)
        mm += sim_rain_rate(m, c, (double)u) * STEP_S / 3600.0;
    return floor(mm / 0.2 + 0.5) * 0.2; /* tipping bucket: 0.2 mm per tip */
}

double sim_level_step(struct sim_model *m, struct sim_station *s, int64_t t)
{
    if (!s->last_t)
        s->last_t = t;
    for (int64_t u = s->last_t; u < t; u += STEP_S) {
        double dt = (double)(t - u < STEP_S ? t - u : STEP_S);
        double inflow = sim_rain_rate(m, s->catchment, (double)u - s->lag_s); /* mm/h */
        s->storage_mm += (inflow / 3600.0 - s->storage_mm / s->tau_s) * dt;
    }
    bool spike = s->spike_at && s->spike_at > s->last_t && s->spike_at <= t;
    s->last_t = t;
    /* Diurnal cycle: lowest in the afternoon (evaporation, upstream abstraction). */
    double day = 0.03 * cos(2.0 * M_PI * (double)((t + 8 * 3600) % 86400 - 2 * 3600) / 86400.0);
    double level = s->base_m + day + s->storage_mm * s->gain_m_per_mm + 0.004 * sim_gauss(&m->rng);
    if (spike)
        level += 2.5; /* a debris strike or an electrical glitch: one reading */
    level = floor(level * 1000 + 0.5) / 1000;
    if (s->stuck_from && t >= s->stuck_from && t <= s->stuck_to) {
        if (!s->stuck_set) {
            s->stuck_value = level;
            s->stuck_set = true;
        }
        return s->stuck_value; /* the float is jammed: the same value over and over */
    }
    return level;
}
