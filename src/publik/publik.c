/* publik: gathers what the public page shows from the rooms that own it (the sensors' public
 * latest view, the open alerts of the early warning, region names) into a view, and draws it.
 * The warnings are those of the CAP feed: open, public rule, level >= 1. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/clock.h"
#include "ews/ews.h"
#include "publik/publik.h"
#include "publik/publik_int.h"
#include "regions/regions.h"
#include "sensors/sensors.h"
#include "core/banned.h"

enum { OPEN_ALERTS_MAX = 2000 }; /* open alerts read, of every rule (operators' too) */

struct gather {
    json_t *latest;  /* the sensors' public latest view */
    json_t *alerts;  /* open alerts */
    json_t *regions; /* code -> region object, or null when unknown */
    json_t *words;   /* strings composed here ("Kelurahan Bone"), kept for the view */
    struct publik_view v;
};

static void gather_release(struct gather *g)
{
    json_decref(g->latest);
    json_decref(g->alerts);
    json_decref(g->regions);
    json_decref(g->words);
    free(g->v.st);
    free(g->v.w);
}

static const char *str_or(json_t *o, const char *key, const char *def)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : def;
}

/* A string that lives as long as the gather. */
static const char *keep(struct gather *g, json_t *s)
{
    if (!s || json_array_append_new(g->words, s))
        return "";
    return json_string_value(s);
}

/* ---- regions ---------------------------------------------------------------------------- */
/* The region `code`, looked up once per page; NULL when unknown. A failed lookup only costs
 * the name on the page. */
static json_t *region(struct gather *g, struct db_conn *c, const char *code)
{
    if (!code || !*code)
        return NULL;
    json_t *r = json_object_get(g->regions, code);
    if (!r) {
        struct err e = ERR_INIT;
        if (regions_get(c, code, false, &r, &e))
            r = json_null();
        json_object_set_new(g->regions, code, r);
    }
    return json_is_object(r) ? r : NULL;
}

/* "Kelurahan Bone": the region's name with the word for its level. */
static const char *region_name(struct gather *g, json_t *r)
{
    static const char *const words[][2] = {{"provinsi", "Provinsi"},   {"kabupaten", "Kabupaten"},
                                           {"kota", "Kota"},           {"kecamatan", "Kecamatan"},
                                           {"kelurahan", "Kelurahan"}, {"desa", "Desa"}};
    const char *level = str_or(r, "level", ""), *word = "";
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strcmp(words[i][0], level) == 0)
            word = words[i][1];
    const char *name = str_or(r, "name", str_or(r, "code", ""));
    size_t n = strlen(word);
    /* the kode wilayah lists name regencies in full ("Kabupaten Luwu Utara") */
    if (!n || (strncasecmp(name, word, n) == 0 && name[n] == ' '))
        return keep(g, json_string(name));
    return keep(g, json_sprintf("%s %s", word, name));
}

/* The desa and kecamatan of a station's region (a desa, or a kecamatan itself). */
static void station_place(struct gather *g, struct db_conn *c, const char *code,
                          struct publik_station *s)
{
    s->desa = s->kecamatan = "";
    json_t *r = region(g, c, code);
    const char *level = str_or(r, "level", "");
    if (strcmp(level, "desa") == 0 || strcmp(level, "kelurahan") == 0) {
        s->desa = region_name(g, r);
        json_t *k = region(g, c, str_or(r, "parent", ""));
        if (k && strcmp(str_or(k, "level", ""), "kecamatan") == 0)
            s->kecamatan = region_name(g, k);
    } else if (strcmp(level, "kecamatan") == 0) {
        s->kecamatan = region_name(g, r);
    }
}

/* ---- stations --------------------------------------------------------------------------- */
static int64_t time_of(json_t *t)
{
    int64_t s = 0;
    const char *text = json_string_value(t);
    return text && clock_parse(text, &s) ? s : 0;
}

/* One station of the latest view; false for kinds the flood page does not show. */
static bool station_from(struct gather *g, struct db_conn *c, json_t *j, struct publik_station *s)
{
    const char *kind = str_or(j, "kind", "");
    memset(s, 0, sizeof *s);
    if (strcmp(kind, "water_level") != 0 && strcmp(kind, "rain") != 0)
        return false;
    s->rain = strcmp(kind, "rain") == 0;
    s->code = str_or(j, "code", "");
    s->name = str_or(j, "name", s->code);
    s->river = str_or(j, "river", "");
    s->demo = json_is_true(json_object_get(j, "demo"));
    s->live = strcmp(str_or(j, "state", ""), "ok") == 0;
    json_t *th = json_object_get(j, "thresholds");
    if (!s->rain && json_is_object(th)) {
        s->thresholds = true;
        s->th[0] = json_number_value(json_object_get(th, "waspada"));
        s->th[1] = json_number_value(json_object_get(th, "siaga"));
        s->th[2] = json_number_value(json_object_get(th, "awas"));
    }
    json_t *sensors = json_object_get(j, "sensors"), *sensor;
    json_t *primary = json_object_get(sensors, s->rain ? "rain" : "level");
    const char *name;
    json_object_foreach(sensors, name, sensor)
    { /* newest reading of any sensor */
        int64_t t = time_of(json_object_get(json_object_get(sensor, "last"), "t"));
        if (t > s->at_s)
            s->at_s = t;
    }
    json_t *v = json_object_get(primary, "v");
    const char *qc = str_or(primary, "qc", "");
    /* the view already hides a silent station's value; checked here again all the same */
    if (s->live && json_is_number(v) && strcmp(qc, "bad") != 0) {
        s->has_value = true;
        s->value = json_number_value(v);
        s->suspect = strcmp(qc, "suspect") == 0;
        s->at_s = time_of(json_object_get(json_object_get(primary, "last"), "t"));
    }
    station_place(g, c, str_or(j, "region", ""), s);
    return true;
}

static int by_place(const void *a, const void *b)
{
    const struct publik_station *x = a, *y = b;
    int c;
    if (!x->river[0] != !y->river[0]) /* stations without a river last */
        return x->river[0] ? -1 : 1;
    if ((c = strcmp(x->river, y->river)) || (c = strcmp(x->kecamatan, y->kecamatan)) ||
        (c = strcmp(x->desa, y->desa)) || (c = strcmp(x->name, y->name)))
        return c;
    return strcmp(x->code, y->code);
}

static enum err_code load_stations(struct gather *g, struct db_conn *c, struct err *err)
{
    size_t len;
    /* fresh: the page shows alerts read from the database just now, and the measurements beside
     * them must be at least as new (an Awas warning beside the level before it is wrong) */
    char *text = sensors_latest_json(false, true, &len);
    if (!text)
        return err_set(err, ERR_INTERNAL, "out of memory reading the latest values");
    g->latest = json_loadb(text, len, 0, NULL);
    free(text);
    json_t *all = json_object_get(g->latest, "stations");
    if (!json_is_array(all))
        return err_set(err, ERR_INTERNAL, "the latest values are not a list of stations");
    g->v.st = calloc(json_array_size(all) + 1, sizeof *g->v.st);
    if (!g->v.st)
        return err_set(err, ERR_INTERNAL, "out of memory reading the stations");
    size_t i;
    json_t *j;
    json_array_foreach(all, i, j) if (station_from(g, c, j, &g->v.st[g->v.nst])) g->v.nst++;
    qsort(g->v.st, (size_t)g->v.nst, sizeof *g->v.st, by_place);
    g->v.nst_shown = g->v.nst < PUBLIK_MAX_STATIONS ? g->v.nst : PUBLIK_MAX_STATIONS;
    return ERR_OK;
}

static int station_index(const struct publik_view *v, const char *code)
{
    for (int i = 0; code && i < v->nst; i++)
        if (strcmp(v->st[i].code, code) == 0)
            return i;
    return -1;
}

/* ---- warnings --------------------------------------------------------------------------- */
/* Real warnings first (DEMO ones are drills), then the highest level, the water level itself
 * before the other rules, then the newest. */
static int by_urgency(const void *a, const void *b)
{
    const struct publik_warning *x = a, *y = b;
    bool lx = strcmp(x->rule, "level") == 0, ly = strcmp(y->rule, "level") == 0;
    if (x->demo != y->demo)
        return x->demo ? 1 : -1;
    if (x->level != y->level)
        return y->level - x->level;
    if (lx != ly)
        return lx ? -1 : 1;
    if (x->since_s != y->since_s)
        return x->since_s > y->since_s ? -1 : 1;
    return x->id > y->id ? -1 : x->id < y->id;
}

/* The newest version of alert `id` that is a CAP message (cap.h: live, decided by the rules,
 * raised or changed level, at a warning level); 0 when none is. */
static enum err_code newest_message(struct db_conn *c, int64_t id, int64_t *out, struct err *err)
{
    json_t *a, *h;
    size_t i;
    *out = 0;
    if (ews_alert_get(c, id, &a, NULL, err))
        return err->code;
    json_array_foreach(json_object_get(a, "history"), i, h)
    {
        const char *action = str_or(h, "action", "");
        if (!json_is_true(json_object_get(h, "backfill")) &&
            json_integer_value(json_object_get(h, "level")) >= 1 &&
            (strcmp(action, "raised") == 0 || strcmp(action, "level") == 0))
            *out = json_integer_value(json_object_get(h, "version"));
    }
    json_decref(a);
    return ERR_OK;
}

static enum err_code load_warnings(struct gather *g, struct db_conn *c, struct err *err)
{
    if (ews_alert_list(c, "open", NULL, OPEN_ALERTS_MAX, &g->alerts, err))
        return err->code;
    g->v.w = calloc(json_array_size(g->alerts) + 1, sizeof *g->v.w);
    if (!g->v.w)
        return err_set(err, ERR_INTERNAL, "out of memory reading the warnings");
    size_t i;
    json_t *a;
    int n = 0;
    json_array_foreach(g->alerts, i, a)
    {
        int level = (int)json_integer_value(json_object_get(a, "level"));
        int st = station_index(&g->v, str_or(a, "station", NULL));
        /* as the CAP feed: a station that is gone has no warning served */
        if (!json_is_true(json_object_get(a, "public")) || level < 1 || st < 0)
            continue;
        struct publik_warning *w = &g->v.w[n++];
        w->id = json_integer_value(json_object_get(a, "id"));
        w->level = level > 3 ? 3 : level;
        w->rule = str_or(a, "rule", "");
        w->station = st;
        w->demo = g->v.st[st].demo;
        w->since_s = time_of(json_object_get(a, "raised_at"));
        w->has_value = json_is_number(json_object_get(a, "value"));
        w->value = json_number_value(json_object_get(a, "value"));
        if (w->level > g->v.st[st].level)
            g->v.st[st].level = w->level;
    }
    qsort(g->v.w, (size_t)n, sizeof *g->v.w, by_urgency);
    g->v.nw = n < PUBLIK_MAX_WARNINGS ? n : PUBLIK_MAX_WARNINGS;
    g->v.w_more = n - g->v.nw;
    for (int k = 0; k < g->v.nw; k++)
        if (newest_message(c, g->v.w[k].id, &g->v.w[k].cap_version, err) == ERR_NOT_FOUND)
            err_clear(err); /* closed since the list was read: no link */
        else if (err->code)
            return err->code;
    return ERR_OK;
}

enum err_code publik_render(struct db_conn *c, const char *regency, int64_t now_s, char **out,
                            size_t *len_out, struct err *err)
{
    struct gather g = {.regions = json_object(), .words = json_array(), .v.now_s = now_s};
    if (!g.regions || !g.words) {
        gather_release(&g);
        return err_set(err, ERR_INTERNAL, "out of memory rendering the public page");
    }
    json_t *r = region(&g, c, regency);
    g.v.regency_name = r ? region_name(&g, r) : keep(&g, json_sprintf("wilayah %s", regency));
    if (load_stations(&g, c, err) == ERR_OK && load_warnings(&g, c, err) == ERR_OK)
        publik__draw(&g.v, out, len_out, err);
    gather_release(&g);
    return err->code;
}
