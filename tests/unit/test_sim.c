/* Unit tests of src/sim's model: deterministic for a seed, rain in 0.2 mm tips, rivers that rise
 * after the first storm with a lag, and the staged faults (one spike, one flat line). */
#include <math.h>
#include <stdlib.h>

#include "sim/sim.h"
#include "unit.h"

static struct sim_station river(int64_t t0)
{
    struct sim_station s = {.kind = SIM_LEVEL,
                            .interval_s = 600,
                            .catchment = 0,
                            .base_m = 0.7,
                            .gain_m_per_mm = (3.0 - 0.7) / 45.0,
                            .lag_s = 2 * 3600,
                            .tau_s = 6 * 3600};
    s.last_t = t0;
    return s;
}

static void test_deterministic(void)
{
    static struct sim_model a, b;
    int64_t t0 = 1700000000;
    sim_model_init(&a, 42, t0, 12 * 3600, 2);
    sim_model_init(&b, 42, t0, 12 * 3600, 2);
    struct sim_station ra = river(t0), rb = river(t0);
    for (int64_t t = t0; t < t0 + 12 * 3600; t += 600) {
        CHECK(sim_level_step(&a, &ra, t) == sim_level_step(&b, &rb, t));
        CHECK(sim_rain_mm(&a, 1, t, 600) == sim_rain_mm(&b, 1, t, 600));
    }
}

static void test_rain_and_rise(void)
{
    static struct sim_model m;
    int64_t t0 = 1700000000;
    double span = 12 * 3600;
    sim_model_init(&m, 7, t0, span, 1);
    struct sim_station r = river(t0);
    double total = 0, before = 0, peak = 0;
    int64_t storm = t0 + (int64_t)(0.2 * span);
    for (int64_t t = t0 + 600; t <= t0 + (int64_t)span; t += 600) {
        double mm = sim_rain_mm(&m, 0, t, 600);
        CHECK(mm >= 0);
        CHECK(fabs(mm / 0.2 - floor(mm / 0.2 + 0.5)) < 1e-9); /* whole tips */
        total += mm;
        double level = sim_level_step(&m, &r, t);
        CHECK(level > 0 && level < 30);
        if (t <= storm)
            before = level > before ? level : before;
        else if (level > peak)
            peak = level;
    }
    CHECK(total > 10);          /* the first storm is heavy */
    CHECK(before < 0.8);        /* dry weather: base level, diurnal cycle, noise */
    CHECK(peak > before + 0.5); /* then the river rises */
}

static void test_faults(void)
{
    static struct sim_model m;
    int64_t t0 = 1700000000;
    sim_model_init(&m, 3, t0, 12 * 3600, 1);
    struct sim_station r = river(t0);
    r.spike_at = t0 + 3600;
    r.stuck_from = t0 + 2 * 3600;
    r.stuck_to = t0 + 3 * 3600;
    double prev = 0, stuck = -1;
    int spikes = 0, flat = 0;
    for (int64_t t = t0 + 600; t <= t0 + 4 * 3600; t += 600) {
        double v = sim_level_step(&m, &r, t);
        if (prev && v - prev > 2.0)
            spikes++;
        if (t >= r.stuck_from && t <= r.stuck_to) {
            if (stuck < 0)
                stuck = v;
            flat += v == stuck;
        }
        prev = v;
    }
    CHECK(spikes == 1);
    CHECK(flat == 7); /* every reading in the window is the same value */
}

int main(void)
{
    test_deterministic();
    test_rain_and_rise();
    test_faults();
    return unit_report("test_sim");
}
