/* render: draws the public page from a view. Plain HTML5 with a small inline style: headings,
 * lists and captioned tables for screen readers; every level in words (both names), never
 * colour alone; readable at 320 px. Only literals are markup; every other string is escaped. */
#include <stdio.h>
#include <string.h>

#include "ews/ews.h"
#include "publik/publik.h"
#include "publik/publik_int.h"
#include "core/banned.h"

/* Colours pass WCAG AA as text on their background (contrast 5.9:1 to 12:1). */
#define STYLE                                                                                      \
    "body{font:1rem/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,Arial,sans-serif;"             \
    "color:#111;background:#fff;margin:0 auto;max-width:46rem;padding:0 .75rem 1rem}"              \
    "h1{font-size:1.4rem;margin:.75rem 0 .25rem}"                                                  \
    "h2{font-size:1.2rem;margin:1.5rem 0 .5rem;padding-bottom:.15rem;border-bottom:2px solid "     \
    "#333}"                                                                                        \
    "h3{font-size:1.05rem;margin:0 0 .35rem}"                                                      \
    "a{color:#0645ad}"                                                                             \
    "p,ul,dl{margin:.4rem 0}"                                                                      \
    ".box{padding:.5rem .75rem;margin:.5rem 0;border:2px solid #111}"                              \
    ".big{font-size:1.2rem;font-weight:bold}"                                                      \
    ".tag{display:inline-block;padding:0 .3rem;border:1px solid #111;font-weight:bold}"            \
    ".l0{background:#1e6b30;color:#fff}.l1{background:#ffd60a;color:#000}"                         \
    ".l2{background:#f76707;color:#000}.l3{background:#b00020;color:#fff}"                         \
    ".u{background:#555;color:#fff}"                                                               \
    ".w{list-style:none;padding:0}"                                                                \
    ".w>li{border:1px solid #777;border-left:.5rem solid #111;padding:.5rem .75rem;margin:.75rem " \
    "0}"                                                                                           \
    ".w>li.l1,.w>li.l2,.w>li.l3{background:#fff;color:#111}"                                       \
    ".w>li.l1{border-left-color:#e0b000}.w>li.l2{border-left-color:#f76707}"                       \
    ".w>li.l3{border-left-color:#b00020}"                                                          \
    "dt{font-weight:bold}dd{margin:0 0 .3rem}"                                                     \
    "table{border-collapse:collapse;width:100%}"                                                   \
    "caption{text-align:left;padding:.25rem 0}"                                                    \
    "th,td{text-align:left;vertical-align:top;padding:.3rem .25rem;border-bottom:1px solid #888;"  \
    "overflow-wrap:break-word}"                                                                    \
    "tbody th{font-weight:normal}"                                                                 \
    "small{font-size:.875rem}"                                                                     \
    ".demo{font-weight:bold}"

/* ---- words ------------------------------------------------------------------------------ */
static int clamp_level(int level)
{
    return level < 0 ? 0 : level > 3 ? 3 : level;
}

/* Text whose spaces must not break a line ("Siaga 3" split at 320 px reads as two things). */
static void text_nobreak(struct html *h, const char *text)
{
    for (const char *sp; (sp = strchr(text, ' ')); text = sp + 1) {
        html_textf(h, "%.*s", (int)(sp - text), text);
        html_lit(h, "&nbsp;");
    }
    html_text(h, text);
}

/* The class of a level, "l0".."l3" (every piece of markup is a literal). */
static void level_class(struct html *h, int level)
{
    switch (clamp_level(level)) {
    case 0:
        html_lit(h, "l0");
        break;
    case 1:
        html_lit(h, "l1");
        break;
    case 2:
        html_lit(h, "l2");
        break;
    default:
        html_lit(h, "l3");
        break;
    }
}

/* "Waspada (Siaga 3)": the status word first, the river-post name after it. */
static void label(struct html *h, int level)
{
    html_text(h, ews_level_status(clamp_level(level)));
    html_lit(h, " (");
    text_nobreak(h, ews_level_siaga(clamp_level(level)));
    html_lit(h, ")");
}

static const char *const meaning[4] = {
    "Air sungai normal.",
    "Air sungai naik; banjir mungkin terjadi.",
    "Air sungai tinggi; banjir mengancam permukiman.",
    "Bahaya banjir: air sangat tinggi atau naik sangat cepat.",
};

/* The short form, for the table of levels. */
static const char *const advice_short[4] = {
    "Ikuti informasi BPBD, terutama saat hujan deras.",
    "Pantau sungai, jauhi bantaran sungai, siapkan tas siaga.",
    "Bersiap mengungsi; dahulukan lansia, anak-anak dan penyandang disabilitas.",
    "Segera mengungsi ke tempat tinggi; jangan kembali walaupun air surut.",
};

/* What to do at each level, in plain Indonesian. Awas carries the Masamba lesson: the water
 * dropped at 20:45 and the surge came at 21:00, so a drop is no all-clear. */
static const char *const advice[4] = {
    "Tidak ada peringatan. Tetap ikuti informasi BPBD, terutama saat hujan deras.",
    "Pantau sungai dan informasi BPBD. Jauhi bantaran sungai. Siapkan tas siaga (dokumen "
    "penting, obat, senter, air minum, pakaian) dan kenali jalur evakuasi serta titik kumpul "
    "terdekat.",
    "Bersiap mengungsi. Pindahkan dokumen dan barang berharga ke tempat tinggi. Dahulukan "
    "lansia, anak-anak, ibu hamil, orang sakit dan penyandang disabilitas: mereka mengungsi "
    "lebih dulu. Jangan beraktivitas di sungai atau menyeberanginya. Ikuti arahan BPBD dan "
    "aparat desa.",
    "Segera mengungsi sekarang ke tempat tinggi atau titik kumpul. Jangan menunggu air masuk "
    "rumah. Jauhi sungai dan jembatan. Jangan kembali walaupun air tampak surut: pada banjir "
    "bandang Masamba 13 Juli 2020 air sempat surut pukul 20.45, lalu banjir besar datang pukul "
    "21.00. Ikuti arahan BPBD dan aparat desa.",
};

static bool is_rain_rule(const char *rule)
{
    return rule && strncmp(rule, "rain_", 5) == 0;
}

/* "Sungai Masamba", or what stands in for a station without a river. */
static void river_name(struct html *h, const struct publik_station *s)
{
    if (s->river[0])
        html_text(h, s->river);
    else
        html_text(h, s->rain ? "Penakar hujan" : "Sungai tidak disebut");
}

/* "Kelurahan Bone, Kecamatan Masamba" */
static void place(struct html *h, const struct publik_station *s)
{
    if (!s->desa[0] && !s->kecamatan[0]) {
        html_lit(h, "lokasi tidak tercatat");
        return;
    }
    html_text(h, s->desa);
    if (s->desa[0] && s->kecamatan[0])
        html_lit(h, ", ");
    html_text(h, s->kecamatan);
}

static void level_tag(struct html *h, int level)
{
    html_lit(h, "<span class=\"tag ");
    level_class(h, level);
    html_lit(h, "\">");
    label(h, level);
    html_lit(h, "</span>");
}

/* ---- head and headline ------------------------------------------------------------------ */
static void head(struct html *h, const struct publik_view *v)
{
    char when[PUBLIK_WHEN_LEN];
    html_lit(h, "<!DOCTYPE html>\n<html lang=\"id\">\n<head>\n<meta charset=\"utf-8\">\n"
                "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\n"
                "<title>Status Banjir ");
    html_text(h, v->regency_name);
    html_lit(h, "</title>\n<link rel=\"alternate\" type=\"application/atom+xml\" "
                "title=\"Peringatan banjir (CAP)\" href=\"/cap/alerts.atom\">\n<style>");
    html_lit(h, STYLE);
    html_lit(h, "</style>\n</head>\n<body>\n<header>\n<h1>Status Banjir ");
    html_text(h, v->regency_name);
    publik__fmt_when(when, v->now_s);
    html_lit(h, "</h1>\n<p>Diperbarui ");
    html_text(h, when);
    html_lit(h, ". Halaman ini tidak memperbarui diri sendiri: muat ulang untuk data terbaru.</p>\n"
                "</header>\n<main>\n");
}

static int silent_count(const struct publik_view *v)
{
    int n = 0;
    for (int i = 0; i < v->nst; i++)
        n += !v->st[i].live;
    return n;
}

/* True for the first (highest) warning of its station in the sorted list. */
static bool first_of_station(const struct publik_view *v, int i)
{
    for (int k = 0; k < i; k++)
        if (v->w[k].station == v->w[i].station)
            return false;
    return true;
}

static int stations_warned(const struct publik_view *v)
{
    int n = 0;
    for (int i = 0; i < v->nw; i++)
        n += first_of_station(v, i);
    return n;
}

static void headline(struct html *h, const struct publik_view *v)
{
    int silent = silent_count(v);
    html_lit(h, "<section aria-labelledby=\"h-kini\">\n<h2 id=\"h-kini\">Status saat ini</h2>\n");
    if (v->nw == 0 && silent == v->nst) { /* calm only as far as anyone can tell: not green */
        html_lit(h, "<div class=\"box u\">\n<p class=\"big\">Tidak ada peringatan banjir saat "
                    "ini.</p>\n<p>");
        if (v->nst == 0)
            html_lit(h, "Belum ada pos pemantauan yang terpasang, jadi keadaan sungai belum bisa "
                        "ditampilkan di sini.");
        else
            html_lit(h, "Tetapi tidak ada pos yang mengirim data saat ini, jadi keadaan sungai "
                        "tidak diketahui. Tetap waspada saat hujan deras.");
        html_lit(h, "</p>\n</div>\n</section>\n");
        return;
    }
    if (v->nw == 0) {
        html_lit(h, "<div class=\"box l0\">\n<p class=\"big\">Tidak ada peringatan banjir saat "
                    "ini.</p>\n<p>");
        if (silent)
            html_lit(h, "Pos yang mengirim data berstatus Normal (Siaga 4).");
        else
            html_lit(h, "Semua pos berstatus Normal (Siaga 4).");
        html_lit(h, "</p>\n</div>\n");
    } else {
        const struct publik_warning *w = &v->w[0];
        const struct publik_station *s = &v->st[w->station];
        html_lit(h, "<div class=\"box ");
        level_class(h, w->level);
        html_lit(h, "\">\n<p class=\"big\">");
        if (s->demo)
            html_lit(h, "LATIHAN (DEMO) &ndash; ");
        label(h, w->level);
        html_lit(h, ": banjir ");
        river_name(h, s);
        if (s->kecamatan[0]) {
            html_lit(h, ", ");
            html_text(h, s->kecamatan);
        }
        html_lit(h, "</p>\n");
        if (s->demo)
            html_lit(h, "<p>Ini data demonstrasi dari pos DEMO, bukan pengukuran nyata.</p>\n");
        html_lit(h, "<p>");
        html_text(h, advice[clamp_level(w->level)]);
        html_lit(h, "</p>\n<p><a href=\"#h-peringatan\">");
        html_textf(h, "Peringatan berlaku di %d pos: lihat rinciannya", stations_warned(v));
        html_lit(h, "</a></p>\n</div>\n");
    }
    if (silent) {
        html_lit(h, "<p class=\"box\"><strong>Perhatian:</strong> ");
        html_textf(h, "%d dari %d pos tidak mengirim data", silent, v->nst);
        html_lit(h, ", jadi keadaan sungai di pos itu tidak diketahui (lihat tabel pos di bawah). "
                    "Tetap waspada saat hujan deras.</p>\n");
    }
    html_lit(h, "</section>\n");
}

/* ---- the warnings in force -------------------------------------------------------------- */
static void cause(struct html *h, const struct publik_warning *w, const struct publik_station *s)
{
    char num[32];
    const char *r = w->rule ? w->rule : "";
    if (strcmp(r, "level") == 0 && s->thresholds) {
        publik__fmt_num(num, sizeof num, s->th[clamp_level(w->level) - 1], 2);
        html_textf(h, "Tinggi muka air mencapai batas %s (%s m).",
                   ews_level_status(clamp_level(w->level)), num);
    } else if (strcmp(r, "level") == 0) {
        html_lit(h, "Tinggi muka air melewati batas peringatan.");
    } else if (strcmp(r, "rate_of_rise") == 0) {
        html_lit(h, "Air sungai naik dengan cepat.");
    } else if (strcmp(r, "rain_1h") == 0) {
        html_lit(h, "Hujan lebat dalam 1 jam terakhir.");
    } else if (strcmp(r, "rain_24h") == 0) {
        html_lit(h, "Hujan lebat dalam 24 jam terakhir.");
    } else {
        html_lit(h, "Peringatan banjir.");
    }
}

/* What was measured. Never a silent station's last value as if it were current. */
static void measured(struct html *h, const struct publik_warning *w, const struct publik_station *s,
                     int64_t now_s)
{
    char num[32], when[PUBLIK_WHEN_LEN];
    if (is_rain_rule(w->rule)) {
        if (!w->has_value) {
            html_lit(h, "nilai tidak tercatat");
            return;
        }
        publik__fmt_num(num, sizeof num, w->value, 1);
        html_textf(h, "Curah hujan %s mm dalam %s", num,
                   strcmp(w->rule, "rain_1h") == 0 ? "1 jam" : "24 jam");
        return;
    }
    if (s->live && s->has_value && !s->rain) {
        publik__fmt_num(num, sizeof num, s->value, 2);
        publik__fmt_recent(when, s->at_s, now_s);
        html_textf(h, "Tinggi muka air %s m, %s", num, when);
        if (s->suspect)
            html_lit(h, " (data diragukan, sedang diperiksa)");
        return;
    }
    if (!s->live) {
        html_lit(h, "Pos tidak mengirim data");
        if (s->at_s) {
            publik__fmt_when(when, s->at_s);
            html_textf(h, " sejak %s", when);
        }
        html_lit(h, ". ");
    }
    if (w->has_value) {
        publik__fmt_num(num, sizeof num, w->value, 2);
        html_textf(h, "Saat status ini ditetapkan: %s m.", num);
    }
}

static const char *rule_short(const char *rule)
{
    static const char *const names[][2] = {{"level", "tinggi muka air"},
                                           {"rate_of_rise", "air naik cepat"},
                                           {"rain_1h", "hujan 1 jam"},
                                           {"rain_24h", "hujan 24 jam"}};
    for (size_t i = 0; rule && i < sizeof names / sizeof names[0]; i++)
        if (strcmp(names[i][0], rule) == 0)
            return names[i][1];
    return "peringatan";
}

/* The causes of a station's warnings, each with its level when there are several. */
static void causes(struct html *h, const struct publik_view *v, int first, int n)
{
    const struct publik_warning *top = &v->w[first];
    for (int k = first, i = 0; k < v->nw; k++) {
        if (v->w[k].station != top->station)
            continue;
        if (i++)
            html_lit(h, "<br>");
        if (n > 1) {
            label(h, v->w[k].level);
            html_lit(h, ": ");
        }
        cause(h, &v->w[k], &v->st[top->station]);
    }
}

/* A water gauge has one current level; a rain gauge one sum per rule. */
static void measurements(struct html *h, const struct publik_view *v, int first)
{
    const struct publik_warning *top = &v->w[first];
    for (int k = first, i = 0; k < v->nw; k++) {
        if (v->w[k].station != top->station || (i > 0 && !is_rain_rule(v->w[k].rule)))
            continue;
        if (i++)
            html_lit(h, "<br>");
        measured(h, &v->w[k], &v->st[top->station], v->now_s);
    }
}

/* A link to the newest CAP message of each warning of the station. */
static void cap_links(struct html *h, const struct publik_view *v, int first)
{
    const struct publik_warning *top = &v->w[first];
    html_lit(h, "<p>Dokumen peringatan resmi (CAP): ");
    for (int k = first, i = 0; k < v->nw; k++) {
        const struct publik_warning *w = &v->w[k];
        if (w->station != top->station)
            continue;
        if (i++)
            html_lit(h, ", ");
        if (w->cap_version > 0) {
            html_lit(h, "<a href=\"");
            html_textf(h, "/cap/alerts/%lld-%lld.xml", (long long)w->id, (long long)w->cap_version);
            html_lit(h, "\">");
            html_text(h, rule_short(w->rule));
            html_lit(h, "</a>");
        } else {
            html_text(h, rule_short(w->rule));
            html_lit(h, " (belum diterbitkan)");
        }
    }
    html_lit(h, ".</p>\n");
}

/* The warnings of one station (w[first] is its highest), as one item: a station under two
 * rules (level and rate of rise) is one place to act on, with one instruction. */
static void station_warnings(struct html *h, const struct publik_view *v, int first)
{
    const struct publik_warning *top = &v->w[first];
    const struct publik_station *s = &v->st[top->station];
    int n = 0;
    int64_t since = top->since_s;
    char when[PUBLIK_WHEN_LEN];
    for (int k = first; k < v->nw; k++)
        if (v->w[k].station == top->station) {
            n++;
            if (v->w[k].since_s && v->w[k].since_s < since)
                since = v->w[k].since_s;
        }
    html_lit(h, "<li class=\"");
    level_class(h, top->level);
    html_lit(h, "\">\n<h3>");
    level_tag(h, top->level);
    html_lit(h, " ");
    river_name(h, s);
    if (s->kecamatan[0]) {
        html_lit(h, " &ndash; ");
        html_text(h, s->kecamatan);
    }
    html_lit(h, "</h3>\n");
    if (s->demo)
        html_lit(h, "<p class=\"demo\">LATIHAN: pos DEMO dengan ambang batas contoh, bukan "
                    "pengukuran nyata.</p>\n");
    html_lit(h, "<dl>\n<dt>Lokasi</dt><dd>");
    place(h, s);
    html_lit(h, "</dd>\n<dt>Pos</dt><dd>");
    html_text(h, s->name);
    html_lit(h, "</dd>\n<dt>Penyebab</dt><dd>");
    causes(h, v, first, n);
    html_lit(h, "</dd>\n<dt>Sejak</dt><dd>");
    publik__fmt_when(when, since);
    html_text(h, when);
    html_lit(h, "</dd>\n<dt>Terukur</dt><dd>");
    measurements(h, v, first);
    html_lit(h, "</dd>\n<dt>Yang harus dilakukan</dt><dd>");
    html_text(h, advice[clamp_level(top->level)]);
    html_lit(h, "</dd>\n</dl>\n");
    cap_links(h, v, first);
    html_lit(h, "</li>\n");
}

static void warnings(struct html *h, const struct publik_view *v)
{
    html_lit(h, "<section aria-labelledby=\"h-peringatan\">\n"
                "<h2 id=\"h-peringatan\">Peringatan yang berlaku</h2>\n");
    if (v->nw == 0) {
        html_lit(h, "<p>Tidak ada peringatan banjir yang berlaku.</p>\n</section>\n");
        return;
    }
    html_lit(h, "<ul class=\"w\">\n");
    for (int i = 0; i < v->nw; i++)
        if (first_of_station(v, i))
            station_warnings(h, v, i);
    html_lit(h, "</ul>\n");
    if (v->w_more) {
        html_lit(h, "<p>");
        html_textf(h, "Dan %d peringatan lain", v->w_more);
        html_lit(h, ": lihat <a href=\"/cap/alerts.atom\">umpan peringatan</a>.</p>\n");
    }
    html_lit(h, "</section>\n");
}

/* ---- stations --------------------------------------------------------------------------- */
static void station_state(struct html *h, const struct publik_station *s)
{
    if (!s->live) {
        html_lit(h, "<span class=\"tag u\">Tidak ada data</span>");
        if (s->level > 0) {
            html_lit(h, "<br><small>Peringatan ");
            label(h, s->level);
            html_lit(h, " tetap berlaku</small>");
        }
    } else if (s->level > 0) {
        level_tag(h, s->level);
    } else if (!s->rain && !s->thresholds) {
        html_lit(h, "<span class=\"tag u\">Belum ada ambang batas</span>");
    } else {
        level_tag(h, 0);
    }
}

static void station_reading(struct html *h, const struct publik_station *s, int64_t now_s)
{
    char num[32], when[PUBLIK_WHEN_LEN];
    if (!s->at_s) {
        html_lit(h, "Belum pernah mengirim data");
        return;
    }
    publik__fmt_recent(when, s->at_s, now_s);
    if (!s->live) { /* the time only: a silent station's value is not current */
        html_lit(h, "Data terakhir ");
        html_text(h, when);
        return;
    }
    if (!s->has_value) {
        html_lit(h, "Data terakhir tidak valid");
    } else {
        publik__fmt_num(num, sizeof num, s->value, s->rain ? 1 : 2);
        html_textf(h, s->rain ? "Hujan %s mm" : "%s m", num);
        if (s->suspect)
            html_lit(h, " (diragukan)");
    }
    html_lit(h, "<br><small>");
    html_text(h, when);
    html_lit(h, "</small>");
}

static void stations(struct html *h, const struct publik_view *v)
{
    html_lit(h,
             "<section aria-labelledby=\"h-pos\">\n<h2 id=\"h-pos\">Status pos pemantauan</h2>\n");
    if (v->nst == 0) {
        html_lit(h, "<p>Belum ada pos pemantauan.</p>\n</section>\n");
        return;
    }
    html_lit(h, "<table>\n<caption>Setiap pos per sungai dan kecamatan. &ldquo;Tidak ada "
                "data&rdquo;: pos tidak mengirim data, jadi nilai lamanya tidak ditampilkan."
                "</caption>\n<thead><tr><th scope=\"col\">Sungai dan lokasi</th>"
                "<th scope=\"col\">Status dan pengukuran</th></tr></thead>\n<tbody>\n");
    for (int i = 0; i < v->nst_shown; i++) {
        const struct publik_station *s = &v->st[i];
        html_lit(h, "<tr><th scope=\"row\"><strong>");
        river_name(h, s);
        html_lit(h, "</strong><br>");
        place(h, s);
        html_lit(h, "<br><small>");
        html_text(h, s->name);
        if (s->demo && !strstr(s->name, "DEMO"))
            html_lit(h, " &middot; <strong>DEMO</strong>");
        html_lit(h, "</small></th><td>");
        station_state(h, s);
        html_lit(h, "<br>");
        station_reading(h, s, v->now_s);
        html_lit(h, "</td></tr>\n");
    }
    html_lit(h, "</tbody>\n</table>\n");
    if (v->nst > v->nst_shown) {
        html_lit(h, "<p>");
        html_textf(h, "Dan %d pos lain yang tidak ditampilkan di sini.", v->nst - v->nst_shown);
        html_lit(h, "</p>\n");
    }
    html_lit(h, "</section>\n");
}

/* ---- what the levels mean, numbers, notes ----------------------------------------------- */
static void levels(struct html *h)
{
    html_lit(h, "<section aria-labelledby=\"h-arti\">\n<h2 id=\"h-arti\">Arti status</h2>\n"
                "<table>\n<caption>Empat tingkat status banjir. Ada dua nama untuk setiap "
                "tingkat: status (Normal sampai Awas) dan tingkat pos sungai (Siaga 4 sampai "
                "Siaga 1). Siaga 1 adalah yang tertinggi.</caption>\n<thead><tr>"
                "<th scope=\"col\">Status</th><th scope=\"col\">Arti dan yang harus dilakukan"
                "</th></tr></thead>\n<tbody>\n");
    for (int level = 0; level <= 3; level++) {
        html_lit(h, "<tr><th scope=\"row\">");
        level_tag(h, level);
        html_lit(h, "</th><td>");
        html_text(h, meaning[level]);
        html_lit(h, "<br><strong>");
        html_text(h, advice_short[level]);
        html_lit(h, "</strong></td></tr>\n");
    }
    html_lit(h, "</tbody>\n</table>\n<p><strong>Air surut belum tentu aman.</strong> Pada banjir "
                "bandang Masamba, 13 Juli 2020, sungai meluap sekitar pukul 20.15 WITA, air "
                "sempat surut pukul 20.45 sehingga warga kembali ke rumah, lalu banjir bandang "
                "setinggi sekitar 4 meter membawa kayu dan lumpur datang pukul 21.00. Tunggu "
                "sampai BPBD mencabut peringatan.</p>\n</section>\n");
}

static void contacts(struct html *h, const struct publik_view *v)
{
    html_lit(h, "<section aria-labelledby=\"h-darurat\">\n<h2 id=\"h-darurat\">Nomor darurat"
                "</h2>\n<p class=\"box\"><strong>CONTOH:</strong> nomor di bawah ini belum "
                "diperiksa. BPBD perlu menggantinya dengan nomor resmi sebelum halaman ini "
                "dipakai.</p>\n<ul>\n<li><strong>112</strong> &ndash; panggilan darurat (contoh)"
                "</li>\n<li>BPBD ");
    html_text(h, v->regency_name);
    html_lit(h, ": <strong>[nomor belum diisi]</strong></li>\n<li>Posko banjir kecamatan: "
                "<strong>[nomor belum diisi]</strong></li>\n</ul>\n</section>\n");
}

static void notes(struct html *h, const struct publik_view *v)
{
    html_lit(h, "<section aria-labelledby=\"h-ket\">\n<h2 id=\"h-ket\">Keterangan</h2>\n<ul>\n"
                "<li><a href=\"/cap/alerts.atom\">Umpan peringatan banjir (Atom, CAP 1.2)</a> "
                "untuk aplikasi, media dan sirene.</li>\n"
                "<li>Pos bertanda DEMO adalah data demonstrasi: lokasinya perkiraan dan ambang "
                "batasnya contoh, bukan pengukuran nyata.</li>\n"
                "<li>Semua waktu dalam WITA (UTC+8).</li>\n</ul>\n</section>\n</main>\n"
                "<footer>\n<p>Peringatan banjir resmi diterbitkan oleh BPBD ");
    html_text(h, v->regency_name);
    html_lit(h, ".</p>\n</footer>\n</body>\n</html>\n");
}

enum err_code publik__draw(const struct publik_view *v, char **out, size_t *len_out,
                           struct err *err)
{
    struct html h;
    html_init(&h, PUBLIK_PAGE_MAX);
    head(&h, v);
    headline(&h, v);
    warnings(&h, v);
    stations(&h, v);
    levels(&h);
    contacts(&h, v);
    notes(&h, v);
    return html_finish(&h, out, len_out, err);
}
