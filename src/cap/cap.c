/* cap: CAP 1.2 documents and the Atom feed of public flood warnings (see cap.h for which
 * versions are messages and how they are named). Texts are plain Bahasa Indonesia. */
#include <libxml/xmlwriter.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cap/cap.h"
#include "core/buf.h"
#include "core/clock.h"
#include "ews/ews.h"
#include "regions/regions.h"
#include "sensors/sensors.h"
#include "core/banned.h"

#define CAP_NS "urn:oasis:names:tc:emergency:cap:1.2"
#define ATOM_NS "http://www.w3.org/2005/Atom"

enum {
    MAX_MESSAGES = 1000, /* of one alert: hysteresis and hold time keep real alerts far below */
    FEED_MAX = 200,      /* entries in the feed */
    DOC_MAX = 1 << 20,   /* bytes of one document */
};

/* ---- reading the warnings (tables of src/ews, read only) ------------------------------------ */
enum kind { K_ALERT, K_UPDATE, K_CANCEL };
static const char *const kind_names[] = {"Alert", "Update", "Cancel"};

struct message {
    int64_t version, at_s;
    int level; /* 0 for a Cancel */
    bool has_value;
    double value;
    enum kind kind;
};

/* A public alert with its CAP messages, oldest first. */
struct warning {
    int64_t id;
    char station[33], rule[24];
    int n;
    struct message *m; /* owned */
};

static void warning_release(struct warning *w)
{
    free(w->m);
    w->m = NULL;
    w->n = 0;
}

static enum err_code add_message(struct warning *w, struct db_stmt *s, struct err *err)
{
    const char *action = db_col_text(s, 4);
    enum kind k = strcmp(action, "cleared") == 0 ? K_CANCEL : w->n == 0 ? K_ALERT : K_UPDATE;
    int level = (int)db_col_int64(s, 2);
    if (k == K_CANCEL ? w->n == 0 : level < 1)
        return ERR_OK; /* nothing was published to cancel; or not a warning level */
    if (w->n == MAX_MESSAGES)
        return err_set(err, ERR_INTERNAL, "alert %lld has over %d public versions",
                       (long long)w->id, MAX_MESSAGES);
    if ((w->n & (w->n - 1)) == 0) { /* grow at 0, 1, 2, 4, ... */
        struct message *m = realloc(w->m, (size_t)(w->n ? 2 * w->n : 1) * sizeof *m);
        if (!m)
            return err_set(err, ERR_INTERNAL, "out of memory reading alert versions");
        w->m = m;
    }
    struct message *m = &w->m[w->n++];
    m->version = db_col_int64(s, 0);
    m->at_s = db_col_int64(s, 1) / 1000;
    m->level = k == K_CANCEL ? 0 : level;
    m->has_value = !db_col_is_null(s, 3);
    m->value = m->has_value ? db_col_double(s, 3) : 0;
    m->kind = k;
    return ERR_OK;
}

/* Loads alert `id` with its messages; ERR_NOT_FOUND unless it is a public warning. */
static enum err_code warning_load(struct db_conn *c, int64_t id, struct warning *w, struct err *err)
{
    struct db_stmt *s;
    bool row;
    memset(w, 0, sizeof *w);
    w->id = id;
    if (db_prepare(c, &s, "SELECT station_code, rule FROM alerts WHERE id = ? AND public = 1", err))
        return err->code;
    db_bind_int64(s, 1, id);
    if (db_step(s, &row, err))
        return err->code;
    if (!row)
        return err_set(err, ERR_NOT_FOUND, "no public warning with id %lld", (long long)id);
    snprintf(w->station, sizeof w->station, "%s", db_col_text(s, 0));
    snprintf(w->rule, sizeof w->rule, "%s", db_col_text(s, 1));
    db_done(s);
    if (db_prepare(c, &s,
                   "SELECT version, at, level, value, action FROM alert_versions WHERE "
                   "alert_id = ? AND backfill = 0 AND action IN ('raised', 'level', 'cleared') "
                   "ORDER BY version",
                   err))
        return err->code;
    db_bind_int64(s, 1, id);
    while (db_step(s, &row, err) == ERR_OK && row)
        if (add_message(w, s, err))
            break;
    db_done(s);
    if (err->code)
        warning_release(w);
    return err->code;
}

/* ---- the place and the issuer --------------------------------------------------------------- */
struct place {
    struct sensors_station_info st;
    char area[400];        /* areaDesc: "Kelurahan Bone, Kecamatan Masamba, Kabupaten Luwu Utara" */
    char short_area[200];  /* for headlines: "Bone, Masamba" */
    char subject[128];     /* the river, or the station when it names none */
    char sender_name[192]; /* "BPBD Kabupaten Luwu Utara" */
};

static const char *level_word(const char *level)
{
    static const char *const words[][2] = {{"provinsi", "Provinsi"},   {"kabupaten", "Kabupaten"},
                                           {"kota", "Kota"},           {"kecamatan", "Kecamatan"},
                                           {"kelurahan", "Kelurahan"}, {"desa", "Desa"}};
    for (size_t i = 0; level && i < sizeof words / sizeof words[0]; i++)
        if (strcmp(words[i][0], level) == 0)
            return words[i][1];
    return "";
}

/* "Kecamatan Masamba" into out, the bare name into name, the parent's code into parent. */
static bool region_names(struct db_conn *c, const char *code, char *out, size_t n, char *name,
                         size_t name_n, char parent[24])
{
    struct err e = ERR_INIT;
    json_t *j;
    if (!code || !*code || regions_get(c, code, false, &j, &e))
        return false;
    const char *nm = json_string_value(json_object_get(j, "name"));
    const char *word = level_word(json_string_value(json_object_get(j, "level")));
    const char *par = json_string_value(json_object_get(j, "parent"));
    if (nm && *word && strncmp(nm, word, strlen(word)) == 0)
        word = ""; /* the data already says "Kabupaten Luwu Utara" */
    snprintf(out, n, "%s%s%s", word, *word ? " " : "", nm ? nm : code);
    snprintf(name, name_n, "%s", nm ? nm : code);
    snprintf(parent, 24, "%s", par ? par : "");
    json_decref(j);
    return true;
}

/* The station of the warning and the names around it. False when the station is gone: its
 * messages are no longer served, since whether it was a demo station cannot be told. */
static bool place_load(struct db_conn *c, const struct cap_site *site, const char *station,
                       struct place *p)
{
    memset(p, 0, sizeof *p);
    char name[128], full[160], parent[24], code[24];
    if (region_names(c, site->regency, full, sizeof full, name, sizeof name, parent))
        snprintf(p->sender_name, sizeof p->sender_name, "BPBD %s", full);
    else
        snprintf(p->sender_name, sizeof p->sender_name, "BPBD %s", site->regency);
    if (!sensors_station_info(station, &p->st))
        return false;
    snprintf(p->subject, sizeof p->subject, "%s", p->st.river[0] ? p->st.river : p->st.name);
    /* desa -> kecamatan -> kabupaten, each named with its level */
    snprintf(code, sizeof code, "%s", p->st.region);
    size_t used = 0, sused = 0;
    for (int hop = 0;
         hop < 3 && region_names(c, code, full, sizeof full, name, sizeof name, parent); hop++) {
        used +=
            (size_t)snprintf(p->area + used, sizeof p->area - used, "%s%s", used ? ", " : "", full);
        if (hop < 2)
            sused += (size_t)snprintf(p->short_area + sused, sizeof p->short_area - sused, "%s%s",
                                      sused ? ", " : "", name);
        if (used >= sizeof p->area || sused >= sizeof p->short_area ||
            strcmp(code, site->regency) == 0)
            break;
        snprintf(code, sizeof code, "%s", parent);
    }
    if (!p->area[0]) {
        snprintf(p->area, sizeof p->area, "Sekitar pos %s", p->st.name);
        snprintf(p->short_area, sizeof p->short_area, "pos %s", p->st.name);
    }
    return true;
}

/* ---- texts ---------------------------------------------------------------------------------- */
static void fmt_label(char out[48], int level)
{
    snprintf(out, 48, "%s (%s)", ews_level_siaga(level), ews_level_status(level));
}

/* "3,12": Indonesian decimal comma, for people. */
static void fmt_num(char *out, size_t n, double v, int decimals)
{
    snprintf(out, n, "%.*f", decimals, v);
    for (char *p = out; *p; p++)
        if (*p == '.')
            *p = ',';
}

/* "13 Juli 2020 pukul 20.15 WITA" */
static void fmt_when(char *out, size_t n, int64_t unix_s)
{
    static const char *const months[] = {"Januari",   "Februari", "Maret",    "April",
                                         "Mei",       "Juni",     "Juli",     "Agustus",
                                         "September", "Oktober",  "November", "Desember"};
    char t[CLOCK_FMT_LEN]; /* 2020-07-13T20:15:00+08:00 */
    clock_fmt_wita(t, unix_s);
    int mon = (t[5] - '0') * 10 + (t[6] - '0'), day = (t[8] - '0') * 10 + (t[9] - '0');
    snprintf(out, n, "%d %s %.4s pukul %.2s.%.2s WITA", day,
             mon >= 1 && mon <= 12 ? months[mon - 1] : "?", t, t + 11, t + 14);
}

static bool is_rain(const struct warning *w)
{
    return strncmp(w->rule, "rain_", 5) == 0;
}

struct texts {
    char headline[512], description[1536], instruction[1536], note[200];
    const char *status, *urgency, *severity, *certainty, *response;
};

/* What was measured: "Tinggi muka air Sungai Masamba di Pos Duga Air X 3,12 m pada ...". */
static void measured(char *out, size_t n, const struct warning *w, const struct place *p,
                     const struct message *m)
{
    char when[64], v[32] = "-";
    fmt_when(when, sizeof when, m->at_s);
    if (m->has_value)
        fmt_num(v, sizeof v, m->value, is_rain(w) ? 1 : 2);
    if (strcmp(w->rule, "rain_1h") == 0 || strcmp(w->rule, "rain_24h") == 0)
        snprintf(out, n, "Curah hujan di %s %s mm dalam %s terakhir, %s.", p->st.name, v,
                 strcmp(w->rule, "rain_1h") == 0 ? "1 jam" : "24 jam", when);
    else if (strcmp(w->rule, "rate_of_rise") == 0)
        snprintf(out, n, "Tinggi muka air %s di %s naik cepat, %s m pada %s.", p->subject,
                 p->st.name, v, when);
    else
        snprintf(out, n, "Tinggi muka air %s di %s %s m pada %s.", p->subject, p->st.name, v, when);
}

static const char *const advice[4] = {
    "",
    "Pantau tinggi air dan informasi BPBD. Jauhi bantaran sungai. Siapkan tas siaga (dokumen "
    "penting, obat, senter, air minum) dan kenali jalur evakuasi serta titik kumpul terdekat.",
    "Bersiap mengungsi. Pindahkan dokumen dan barang berharga ke tempat tinggi. Lansia, "
    "anak-anak, ibu hamil, orang sakit dan penyandang disabilitas mengungsi lebih dulu. Jangan "
    "beraktivitas di sungai atau menyeberanginya. Ikuti arahan BPBD dan aparat desa.",
    "Segera mengungsi sekarang ke tempat tinggi atau titik kumpul. Jangan menunggu air masuk "
    "rumah. Jauhi sungai dan jembatan. Jangan kembali walaupun air tampak surut: banjir bandang "
    "susulan bisa datang tiba-tiba. Ikuti arahan BPBD dan aparat desa.",
};

/* The CAP codes of a message: by level (Cancel is level 0). */
static void codes(struct texts *t, const struct warning *w, const struct place *p,
                  const struct message *m)
{
    static const char *const urgency[4] = {"Past", "Expected", "Immediate", "Immediate"};
    static const char *const severity[4] = {"Minor", "Moderate", "Severe", "Extreme"};
    static const char *const response[4] = {"AllClear", "Monitor", "Prepare", "Evacuate"};
    /* demo gauges and thresholds are invented: receivers must not act on them */
    t->status = p->st.demo ? "Exercise" : "Actual";
    snprintf(t->note, sizeof t->note, "%s",
             p->st.demo ? "LATIHAN: pos DEMO dengan ambang batas contoh, bukan pengukuran nyata. "
                          "Jangan ditindaklanjuti."
                        : "");
    t->urgency = urgency[m->level];
    t->severity = severity[m->level];
    t->response = response[m->level];
    /* Observed only when the gauge itself measured the water above the Awas threshold; a fast
     * rise or heavy rain makes the flood likely, not yet observed */
    t->certainty =
        m->level == 0 || (m->level == 3 && strcmp(w->rule, "level") == 0) ? "Observed" : "Likely";
}

/* The texts and codes of message i of w. */
static void compose(struct texts *t, const struct warning *w, const struct place *p, int i)
{
    const struct message *m = &w->m[i];
    int prev = i > 0 ? w->m[i - 1].level : 0;
    bool up = m->level > prev, rain = is_rain(w);
    char label[48], prev_label[48], what[400];
    fmt_label(label, m->level);
    fmt_label(prev_label, prev);
    measured(what, sizeof what, w, p, m);
    codes(t, w, p, m);
    const char *drill = p->st.demo ? "LATIHAN (DEMO) - " : "";
    switch (m->kind) {
    case K_ALERT:
        snprintf(t->headline, sizeof t->headline, "%s%s: banjir %s di %s", drill, label, p->subject,
                 p->short_area);
        snprintf(t->description, sizeof t->description, "%s Status peringatan banjir: %s.", what,
                 label);
        break;
    case K_UPDATE: /* a fall is no all-clear: the Masamba surge came after the water dropped */
        snprintf(t->headline, sizeof t->headline, "%s%s ke %s%s: banjir %s di %s", drill,
                 up ? "Naik" : "Turun", label, up ? "" : ", belum aman", p->subject, p->short_area);
        snprintf(t->description, sizeof t->description, "%s Status %s dari %s ke %s.%s", what,
                 up ? "naik" : "turun", prev_label, label,
                 up || rain ? ""
                            : " Air yang turun saat hujan belum reda bisa berarti sungai "
                              "tersumbat di hulu: tetap waspada.");
        break;
    case K_CANCEL:
        snprintf(t->headline, sizeof t->headline, "%sPeringatan banjir %s di %s dicabut", drill,
                 p->subject, p->short_area);
        snprintf(t->description, sizeof t->description,
                 "%s %s bertahan di bawah batas peringatan; status kembali %s dan peringatan %s "
                 "dicabut.",
                 what, rain ? "Curah hujan" : "Air", label, prev_label);
        snprintf(t->instruction, sizeof t->instruction,
                 "Peringatan banjir %s dicabut. Kembali dengan hati-hati: periksa rumah, listrik "
                 "dan air bersih sebelum masuk, jauhi lumpur dan kayu hanyutan, dan ikuti arahan "
                 "BPBD dan aparat desa.",
                 p->subject);
        return;
    }
    snprintf(t->instruction, sizeof t->instruction, "%s %s: %s%s", label, p->subject,
             m->kind == K_UPDATE && !up
                 ? (rain ? "Hujan berkurang tetapi belum aman: jangan kembali ke bantaran sungai "
                           "sebelum peringatan dicabut. "
                         : "Air turun tetapi belum aman: jangan kembali ke bantaran sungai "
                           "sebelum peringatan dicabut. ")
                 : "",
             advice[m->level]);
}

/* ---- writing XML ---------------------------------------------------------------------------- */
static pthread_once_t xml_once = PTHREAD_ONCE_INIT;

static void xml_init(void)
{
    xmlInitParser();
}

struct xw {
    xmlBufferPtr buf;
    xmlTextWriterPtr w;
    bool bad; /* a writer call failed: the document is not returned */
};

/* Copies `in` as XML character data: valid UTF-8 kept, invalid bytes become '?', control
 * characters other than tab, newline and carriage return become spaces. Never longer than
 * `in`. Caller frees. */
static char *xml_text(const char *in)
{
    size_t n = strlen(in);
    unsigned char *out = malloc(n + 1), *o = out;
    const unsigned char *s = (const unsigned char *)in, *end = s + n;
    if (!out)
        return NULL;
    while (s < end) {
        unsigned c = *s;
        int len = c < 0x80                 ? 1
                  : c >= 0xC2 && c <= 0xDF ? 2
                  : c >= 0xE0 && c <= 0xEF ? 3
                  : c >= 0xF0 && c <= 0xF4 ? 4
                                           : 0;
        bool ok = len > 0 && s + len <= end;
        for (int k = 1; ok && k < len; k++)
            ok = (s[k] & 0xC0) == 0x80;
        if (ok && len == 3) /* no overlong forms, surrogates, U+FFFE or U+FFFF */
            ok = !(c == 0xE0 && s[1] < 0xA0) && !(c == 0xED && s[1] >= 0xA0) &&
                 !(c == 0xEF && s[1] == 0xBF && s[2] >= 0xBE);
        if (ok && len == 4)
            ok = !(c == 0xF0 && s[1] < 0x90) && !(c == 0xF4 && s[1] >= 0x90);
        if (!ok) {
            *o++ = '?';
            s++;
        } else if (len == 1 && c < 0x20 && c != '\t' && c != '\n' && c != '\r') {
            *o++ = ' ';
            s++;
        } else {
            memcpy(o, s, (size_t)len);
            o += len;
            s += len;
        }
    }
    *o = 0;
    return (char *)out;
}

static void xw_check(struct xw *x, int rc)
{
    if (rc < 0)
        x->bad = true;
}

static bool xw_open(struct xw *x)
{
    pthread_once(&xml_once, xml_init);
    memset(x, 0, sizeof *x);
    if (!(x->buf = xmlBufferCreate()) || !(x->w = xmlNewTextWriterMemory(x->buf, 0))) {
        if (x->buf)
            xmlBufferFree(x->buf);
        return false;
    }
    xw_check(x, xmlTextWriterSetIndent(x->w, 1));
    xw_check(x, xmlTextWriterSetIndentString(x->w, BAD_CAST "  "));
    xw_check(x, xmlTextWriterStartDocument(x->w, NULL, "UTF-8", NULL));
    return true;
}

static void xw_start(struct xw *x, const char *name)
{
    xw_check(x, xmlTextWriterStartElement(x->w, BAD_CAST name));
}

static void xw_end(struct xw *x)
{
    xw_check(x, xmlTextWriterEndElement(x->w));
}

static void xw_attr(struct xw *x, const char *name, const char *value)
{
    char *v = xml_text(value);
    xw_check(x, v ? xmlTextWriterWriteAttribute(x->w, BAD_CAST name, BAD_CAST v) : -1);
    free(v);
}

/* <name>text</name>, the text escaped by the writer. */
static void xw_el(struct xw *x, const char *name, const char *text)
{
    char *v = xml_text(text);
    xw_check(x, v ? xmlTextWriterWriteElement(x->w, BAD_CAST name, BAD_CAST v) : -1);
    free(v);
}

/* <name><valueName>k</valueName><value>v</value></name>: parameter, geocode. */
static void xw_pair(struct xw *x, const char *name, const char *k, const char *v)
{
    xw_start(x, name);
    xw_el(x, "valueName", k);
    xw_el(x, "value", v);
    xw_end(x);
}

/* <link rel href type?/> */
static void xw_link(struct xw *x, const char *rel, const char *type, const char *href)
{
    xw_start(x, "link");
    xw_attr(x, "rel", rel);
    if (type)
        xw_attr(x, "type", type);
    xw_attr(x, "href", href);
    xw_end(x);
}

static enum err_code xw_close(struct xw *x, char **out, size_t *len_out, struct err *err)
{
    xw_check(x, xmlTextWriterEndDocument(x->w)); /* closes open elements */
    xmlFreeTextWriter(x->w);                     /* flushes into the buffer */
    size_t len = (size_t)xmlBufferLength(x->buf);
    char *s = x->bad || len > DOC_MAX ? NULL : malloc(len + 1);
    if (s) {
        memcpy(s, xmlBufferContent(x->buf), len);
        s[len] = 0;
    }
    xmlBufferFree(x->buf);
    if (!s)
        return err_set(err, ERR_INTERNAL, "rendering an xml document failed");
    *out = s;
    *len_out = len;
    return ERR_OK;
}

static void xw_abort(struct xw *x)
{
    xmlFreeTextWriter(x->w);
    xmlBufferFree(x->buf);
}

/* ---- CAP ------------------------------------------------------------------------------------ */
void cap_identifier(char out[CAP_ID_MAX], const char *regency, int64_t alert_id, int64_t version)
{
    snprintf(out, CAP_ID_MAX, "urn:sinergi:%s:alert:%lld:%lld", regency, (long long)alert_id,
             (long long)version);
}

void cap_sender(char out[CAP_ID_MAX], const char *regency)
{
    snprintf(out, CAP_ID_MAX, "bpbd@sinergi.%s", regency);
}

/* "sender,identifier,sent" of every message before i, space-separated. */
static enum err_code references(struct buf *b, const struct cap_site *site, const struct warning *w,
                                int i, struct err *err)
{
    char sender[CAP_ID_MAX], id[CAP_ID_MAX], sent[CLOCK_FMT_LEN];
    cap_sender(sender, site->regency);
    for (int k = 0; k < i; k++) {
        cap_identifier(id, site->regency, w->id, w->m[k].version);
        clock_fmt_wita(sent, w->m[k].at_s);
        if (buf_appendf(b, "%s%s,%s,%s", k ? " " : "", sender, id, sent))
            return err_set(err, ERR_INTERNAL, "references of alert %lld too long",
                           (long long)w->id);
    }
    return ERR_OK;
}

static void write_parameters(struct xw *x, const struct warning *w, const struct place *p,
                             const struct message *m)
{
    char v[64], label[48];
    xw_pair(x, "parameter", "station", p->st.code);
    if (p->st.river[0])
        xw_pair(x, "parameter", "river", p->st.river);
    if (m->has_value) {
        snprintf(v, sizeof v, "%.*f", is_rain(w) ? 1 : 2, m->value);
        xw_pair(x, "parameter", is_rain(w) ? "value_mm" : "value_m", v);
    }
    snprintf(v, sizeof v, "%d", m->level);
    xw_pair(x, "parameter", "level", v);
    fmt_label(label, m->level);
    xw_pair(x, "parameter", "level_name", label);
    xw_pair(x, "parameter", "rule", w->rule);
}

/* <info>, in the order of the schema. */
static void write_info(struct xw *x, const struct cap_site *site, const struct warning *w,
                       const struct place *p, const struct message *m, const struct texts *t)
{
    char v[128];
    xw_start(x, "info");
    xw_el(x, "language", "id-ID");
    xw_el(x, "category", "Met"); /* CAP 1.2: "Met - Meteorological (inc. flood)" */
    xw_el(x, "event", "Banjir");
    xw_el(x, "responseType", t->response);
    xw_el(x, "urgency", t->urgency);
    xw_el(x, "severity", t->severity);
    xw_el(x, "certainty", t->certainty);
    xw_el(x, "senderName", p->sender_name);
    xw_el(x, "headline", t->headline);
    xw_el(x, "description", t->description);
    xw_el(x, "instruction", t->instruction);
    snprintf(v, sizeof v, "%s/publik", site->base_url);
    xw_el(x, "web", v);
    write_parameters(x, w, p, m);
    xw_start(x, "area");
    xw_el(x, "areaDesc", p->area);
    snprintf(v, sizeof v, "%.5f,%.5f %d", p->st.lat, p->st.lon, CAP_CIRCLE_KM); /* lat,lon r */
    xw_el(x, "circle", v);
    if (p->st.region[0])
        xw_pair(x, "geocode", "kode_wilayah", p->st.region);
    xw_end(x);
    xw_end(x);
}

static enum err_code write_alert(struct xw *x, const struct cap_site *site, const struct warning *w,
                                 const struct place *p, int i, struct err *err)
{
    const struct message *m = &w->m[i];
    char id[CAP_ID_MAX], v[CAP_ID_MAX];
    struct texts t;
    struct buf refs;
    compose(&t, w, p, i);
    buf_init(&refs, 256 * 1024);
    if (references(&refs, site, w, i, err)) {
        buf_release(&refs);
        return err->code;
    }
    xw_check(x, xmlTextWriterStartElementNS(x->w, NULL, BAD_CAST "alert", BAD_CAST CAP_NS));
    cap_identifier(id, site->regency, w->id, m->version);
    xw_el(x, "identifier", id);
    cap_sender(v, site->regency);
    xw_el(x, "sender", v);
    clock_fmt_wita(v, m->at_s);
    xw_el(x, "sent", v);
    xw_el(x, "status", t.status);
    xw_el(x, "msgType", kind_names[m->kind]);
    xw_el(x, "scope", "Public");
    if (t.note[0])
        xw_el(x, "note", t.note);
    if (refs.len)
        xw_el(x, "references", refs.ptr);
    buf_release(&refs);
    snprintf(v, sizeof v, "urn:sinergi:%s:alert:%lld", site->regency, (long long)w->id);
    xw_el(x, "incidents", v);
    write_info(x, site, w, p, m, &t);
    xw_end(x);
    return ERR_OK;
}

enum err_code cap_render_alert(struct db_conn *c, const struct cap_site *site, int64_t alert_id,
                               int64_t version, char **out, size_t *len_out, struct err *err)
{
    struct warning w;
    struct place p;
    struct xw x;
    if (warning_load(c, alert_id, &w, err))
        return err->code;
    int i = 0;
    while (i < w.n && w.m[i].version != version)
        i++;
    if (i == w.n || !place_load(c, site, w.station, &p)) {
        warning_release(&w);
        return err_set(err, ERR_NOT_FOUND, "no CAP message %lld-%lld", (long long)alert_id,
                       (long long)version);
    }
    if (!xw_open(&x)) {
        warning_release(&w);
        return err_set(err, ERR_INTERNAL, "out of memory rendering a CAP document");
    }
    write_alert(&x, site, &w, &p, i, err);
    warning_release(&w);
    if (err->code) {
        xw_abort(&x);
        return err->code;
    }
    return xw_close(&x, out, len_out, err);
}

/* ---- Atom ----------------------------------------------------------------------------------- */
/* The ids of the warnings in force, highest level first. */
static enum err_code current_ids(struct db_conn *c, int64_t ids[FEED_MAX], int *n, struct err *err)
{
    struct db_stmt *s;
    bool row;
    *n = 0;
    if (db_prepare(c, &s,
                   "SELECT id FROM alerts WHERE public = 1 AND state <> 'closed' AND level >= 1 "
                   "ORDER BY level DESC, id DESC LIMIT ?",
                   err))
        return err->code;
    db_bind_int64(s, 1, FEED_MAX);
    while (*n < FEED_MAX && db_step(s, &row, err) == ERR_OK && row)
        ids[(*n)++] = db_col_int64(s, 0);
    db_done(s);
    return err->code;
}

static void write_entry(struct xw *x, const struct cap_site *site, const struct warning *w,
                        const struct place *p)
{
    const struct message *last = &w->m[w->n - 1];
    char v[256];
    struct texts t;
    compose(&t, w, p, w->n - 1);
    xw_start(x, "entry");
    /* one entry per alert: a newer message is a revision of the same entry */
    snprintf(v, sizeof v, "urn:sinergi:%s:alert:%lld", site->regency, (long long)w->id);
    xw_el(x, "id", v);
    xw_el(x, "title", t.headline);
    clock_fmt_wita(v, last->at_s);
    xw_el(x, "updated", v);
    clock_fmt_wita(v, w->m[0].at_s);
    xw_el(x, "published", v);
    xw_el(x, "summary", t.description);
    snprintf(v, sizeof v, "%s/cap/alerts/%lld-%lld.xml", site->base_url, (long long)w->id,
             (long long)last->version);
    xw_link(x, "alternate", "application/cap+xml", v);
    xw_end(x);
}

enum err_code cap_render_feed(struct db_conn *c, const struct cap_site *site, int64_t now_s,
                              char **out, size_t *len_out, struct err *err)
{
    int64_t ids[FEED_MAX], newest = 0;
    int n;
    struct place p;
    struct xw x;
    if (current_ids(c, ids, &n, err))
        return err->code;
    struct warning *ws = calloc((size_t)n + 1, sizeof *ws);
    if (!ws)
        return err_set(err, ERR_INTERNAL, "out of memory rendering the feed");
    for (int i = 0; i < n && !err->code; i++) {
        if (warning_load(c, ids[i], &ws[i], err) == ERR_NOT_FOUND)
            err_clear(err); /* closed or changed since the list was read */
        if (ws[i].n && ws[i].m[ws[i].n - 1].at_s > newest)
            newest = ws[i].m[ws[i].n - 1].at_s;
    }
    if (!err->code && !xw_open(&x))
        err_set(err, ERR_INTERNAL, "out of memory rendering the feed");
    if (err->code) {
        for (int i = 0; i < n; i++)
            warning_release(&ws[i]);
        free(ws);
        return err->code;
    }
    place_load(c, site, "", &p); /* the issuer's name only */
    char v[256];
    xw_check(&x, xmlTextWriterStartElementNS(x.w, NULL, BAD_CAST "feed", BAD_CAST ATOM_NS));
    xw_attr(&x, "xml:lang", "id");
    snprintf(v, sizeof v, "urn:sinergi:%s:cap:feed", site->regency);
    xw_el(&x, "id", v);
    snprintf(v, sizeof v, "Peringatan banjir %s", p.sender_name);
    xw_el(&x, "title", v);
    clock_fmt_wita(v, newest ? newest : now_s);
    xw_el(&x, "updated", v);
    xw_start(&x, "author");
    xw_el(&x, "name", p.sender_name);
    xw_end(&x);
    snprintf(v, sizeof v, "%s/cap/alerts.atom", site->base_url);
    xw_link(&x, "self", "application/atom+xml", v);
    snprintf(v, sizeof v, "%s/publik", site->base_url);
    xw_link(&x, "alternate", "text/html", v);
    for (int i = 0; i < n; i++) {
        /* a warning whose last message is a Cancel is over, whatever the row says */
        if (ws[i].n && ws[i].m[ws[i].n - 1].kind != K_CANCEL &&
            place_load(c, site, ws[i].station, &p))
            write_entry(&x, site, &ws[i], &p);
        warning_release(&ws[i]);
    }
    free(ws);
    xw_end(&x);
    return xw_close(&x, out, len_out, err);
}
