/* sim: `sinergi simulate` — realistic readings for the demo stations, published over MQTT as
 * each device. A regional rain process (storms that reach catchments at different times and
 * strengths) drives the rain gauges and, through a lagged linear reservoir, the river levels;
 * levels also follow a small diurnal cycle and sensor noise. Two faults are staged: one gauge
 * sticks (flat line) for a while and one reading spikes. Time runs `speed` times faster than the
 * wall clock, starting in the past so that no reading is ever in the future. */
#ifndef SINERGI_SIM_H
#define SINERGI_SIM_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "core/err.h"
#include "db/db.h"
#include "mqtt/mqtt.h"

struct sim_options {
    double speed;      /* simulated seconds per wall-clock second, >= 1 */
    double duration_s; /* wall-clock seconds to run; 0 = until *stop */
    int qos;           /* 0 or 1 */
    uint64_t seed;
    const char *scenario;  /* NULL: the weather model; "masamba-2020": the replay below */
    int64_t live_window_s; /* the ews_live_window_s in force, for a hint (0 = unknown) */
};

/* Rotates every demo station's device token (the broker learns the new passwords through the
 * account keeper, which the caller has started), connects as each device and publishes until
 * the duration ends or *stop becomes non-zero. ERR_NOT_FOUND when there are no demo stations. */
enum err_code sim_run(struct db *db, const struct mqtt_settings *broker,
                      const struct sim_options *o, volatile sig_atomic_t *stop, struct err *err);

/* ---- the model (deterministic for a seed; no I/O) ---------------------------------------- */
enum sim_kind { SIM_LEVEL, SIM_RAIN };

struct sim_station {
    char code[33];
    enum sim_kind kind;
    int interval_s;
    int catchment; /* index into the rain process's catchments */
    double base_m; /* dry-weather level */
    double gain_m_per_mm;
    double lag_s, tau_s; /* runoff delay and reservoir time constant */
    double storage_mm;   /* reservoir state */
    int64_t last_t;      /* time of the previous step */
    /* staged faults, in simulated unix seconds (0 = none) */
    int64_t stuck_from, stuck_to, spike_at;
    double stuck_value;
    bool stuck_set;
};

struct sim_model {
    uint64_t rng;
    int64_t t0; /* simulated start */
    int ncatchments;
    int nstorms;
    struct sim_storm {
        int64_t start; /* at the first catchment */
        double duration_s, peak_mm_h;
        double delay_s[8], factor[8]; /* per catchment */
    } storms[256];
};

/* Plans storms over [t0, t0 + span_s]. */
void sim_model_init(struct sim_model *m, uint64_t seed, int64_t t0, double span_s, int ncatchments);
/* Rain intensity in mm/h at time t over catchment c. */
double sim_rain_rate(const struct sim_model *m, int c, double t);
/* Rainfall in mm over (t - dt, t] at catchment c. */
double sim_rain_mm(const struct sim_model *m, int c, int64_t t, int dt);
/* Advances a level station to time t (monotonic) and returns the level it reports. */
double sim_level_step(struct sim_model *m, struct sim_station *s, int64_t t);
double sim_gauss(uint64_t *rng);
double sim_uniform(uint64_t *rng, double lo, double hi);

/* ---- the Masamba 2020 scenario (masamba.c) ------------------------------------------------- */
/* A reconstruction, not data: docs/MASAMBA_2020.md. Scenario time is 2020 unix time. */
#define SIM_MASAMBA_NAME "masamba-2020"
enum {
    SIM_MASAMBA_START = 1594526400, /* 2020-07-12T12:00:00+08:00 */
    SIM_MASAMBA_END = 1594647000,   /* 2020-07-13T21:30:00+08:00, the last readings */
    SIM_MASAMBA_NSTATIONS = 5,
};
/* The DEMO stations it plays, in the order of sim_reading.station (rain gauges first). */
extern const char *const sim_masamba_codes[SIM_MASAMBA_NSTATIONS];
struct sim_reading {
    int station; /* index into sim_masamba_codes */
    int64_t t;   /* scenario time */
    double v;    /* m, or mm of rain over the 10 minutes before t */
};
/* Every reading of the scenario in time order (rain before levels at the same time); returns
 * the count, -1 when out of memory. Deterministic. Caller frees *out. */
int sim_masamba_readings(struct sim_reading **out);
/* Replays the scenario over MQTT on the demo gauges (tokens rotated as sim_run does), readings
 * stamped so that the scenario ends when the replay ends. */
enum err_code sim_masamba_run(struct db *db, const struct mqtt_settings *broker,
                              const struct sim_options *o, volatile sig_atomic_t *stop,
                              struct err *err);

#endif
