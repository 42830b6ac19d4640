/* publik internals: the view the page is drawn from (gathered in publik.c, drawn in render.c,
 * so the drawing can be tested without a database) and the escaping HTML writer. */
#ifndef SINERGI_PUBLIK_INT_H
#define SINERGI_PUBLIK_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

/* ---- the view: every string is borrowed from whoever built the view ---------------------- */
struct publik_station {
    const char *code, *name, *river; /* river "" when the station names none */
    const char *desa, *kecamatan;    /* "Kelurahan Bone", "Kecamatan Masamba"; "" unknown */
    bool demo;
    bool live;       /* reported within two intervals; otherwise "tidak ada data" */
    bool rain;       /* a rain gauge (value in mm), else a water-level gauge (m) */
    bool thresholds; /* a water-level gauge with warning thresholds set */
    double th[3];    /* waspada, siaga, awas (m) */
    int level;       /* highest public warning in force at this station, 0 = none */
    bool has_value;  /* a current (live, not bad) newest reading */
    bool suspect;    /* that reading failed a quality test */
    double value;
    int64_t at_s; /* time of the newest reading, 0 = never reported */
};

struct publik_warning {
    int64_t id;
    int64_t cap_version; /* newest CAP message of the alert, 0 = none published yet */
    int level;           /* 1..3 */
    const char *rule;    /* level, rate_of_rise, rain_1h, rain_24h */
    int station;         /* index into publik_view.st */
    bool demo;           /* of a DEMO station: a drill */
    int64_t since_s;     /* raised at (reading time) */
    bool has_value;
    double value; /* what the rule last decided on: m, or mm of rain */
};

struct publik_view {
    const char *regency_name; /* "Kabupaten Luwu Utara" */
    int64_t now_s;
    struct publik_station *st; /* every station, sorted by river, kecamatan, desa, name */
    int nst, nst_shown;        /* the first nst_shown are listed on the page */
    struct publik_warning *w;  /* highest level first, real before DEMO */
    int nw, w_more;
};

/* Draws the page. *out as publik_render. */
enum err_code publik__draw(const struct publik_view *v, char **out, size_t *len_out,
                           struct err *err);

/* "13 Juli 2020 pukul 20.15 WITA" */
enum { PUBLIK_WHEN_LEN = 64 };
void publik__fmt_when(char out[PUBLIK_WHEN_LEN], int64_t unix_s);
/* "pukul 20.15 WITA" on the WITA day of now_s, else as publik__fmt_when. */
void publik__fmt_recent(char out[PUBLIK_WHEN_LEN], int64_t unix_s, int64_t now_s);
/* "3,12": the Indonesian decimal comma. */
void publik__fmt_num(char *out, size_t n, double v, int decimals);

/* ---- the HTML writer ----------------------------------------------------------------------
 * Markup only ever comes from string literals (html_lit refuses anything else at compile
 * time); every other string goes through html_text, which escapes & < > " ' and drops control
 * characters, so text is safe both between tags and inside a quoted attribute value. The first
 * failure (over the cap, out of memory) sticks and is reported by html_finish. */
struct html {
    struct buf b;
    enum err_code rc;
};

void html_init(struct html *h, size_t max);
#define html_lit(h, markup) html__markup((h), "" markup "")
void html__markup(struct html *h, const char *literal);
void html_text(struct html *h, const char *text);
/* Formats, then escapes the result as html_text does. */
void html_textf(struct html *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands over the page (free()) or reports the first failure. */
enum err_code html_finish(struct html *h, char **out, size_t *len_out, struct err *err);

#endif
