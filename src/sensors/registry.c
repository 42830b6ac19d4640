/* registry: every station and sensor in memory, rebuilt from the database after each station
 * write, so ingest resolves names and device tokens without touching SQL. */
#include <stdlib.h>
#include <string.h>

#include "sensors/sensors_int.h"
#include "core/log.h"
#include "core/banned.h"

struct registry {
    int n, ngateways;
    struct station_def *stations;
    struct gateway_def *gateways; /* few: searched in order */
    int slots; /* power of two; two open-addressing tables of station indexes + 1 (0 = empty) */
    int *by_code, *by_token;
};

static struct registry *current;
static pthread_rwlock_t lock = PTHREAD_RWLOCK_INITIALIZER;
static pthread_mutex_t reload_lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211u;
    return h;
}

static void index_put(int *table, int slots, const char *key, int idx)
{
    size_t i = hash_bytes(key, strlen(key)) & (size_t)(slots - 1);
    while (table[i])
        i = (i + 1) & (size_t)(slots - 1);
    table[i] = idx + 1;
}

static void registry_free(struct registry *r)
{
    if (!r)
        return;
    free(r->stations);
    free(r->gateways);
    free(r->by_code);
    free(r->by_token);
    free(r);
}

static void copy_text(char *dst, size_t n, const char *src)
{
    size_t len = src ? strlen(src) : 0;
    if (len >= n)
        len = n - 1;
    if (len)
        memcpy(dst, src, len);
    dst[len] = 0;
}

static enum err_code load_stations(struct db_conn *c, struct registry *r, struct err *err)
{
    struct db_stmt *s;
    bool row;
    int cap = 64;
    r->stations = calloc((size_t)cap, sizeof *r->stations);
    if (!r->stations ||
        db_prepare(c, &s,
                   "SELECT id, code, name, kind, opd_code, COALESCE(region, ''), river, lat, lon, "
                   "interval_s, th_waspada, th_siaga, th_awas, demo, token_hash FROM stations "
                   "ORDER BY code",
                   err))
        return err->code ? err->code : err_set(err, ERR_INTERNAL, "out of memory");
    while (db_step(s, &row, err) == ERR_OK && row) {
        if (r->n == cap) {
            struct station_def *p = realloc(r->stations, (size_t)cap * 2 * sizeof *p);
            if (!p) {
                db_done(s);
                return err_set(err, ERR_INTERNAL, "out of memory loading stations");
            }
            r->stations = p;
            cap *= 2;
        }
        struct station_def *st = &r->stations[r->n++];
        memset(st, 0, sizeof *st);
        st->id = db_col_int64(s, 0);
        copy_text(st->code, sizeof st->code, db_col_text(s, 1));
        copy_text(st->name, sizeof st->name, db_col_text(s, 2));
        if (!sensors__kind_parse(db_col_text(s, 3), &st->kind))
            st->kind = KIND_WEATHER;
        copy_text(st->opd, sizeof st->opd, db_col_text(s, 4));
        copy_text(st->region, sizeof st->region, db_col_text(s, 5));
        copy_text(st->river, sizeof st->river, db_col_text(s, 6));
        st->lat = db_col_double(s, 7);
        st->lon = db_col_double(s, 8);
        st->interval_s = (int)db_col_int64(s, 9);
        st->has_thresholds = !db_col_is_null(s, 10);
        for (int k = 0; k < 3; k++)
            st->th[k] = db_col_double(s, 10 + k);
        st->demo = db_col_int64(s, 13) != 0;
        copy_text(st->token_hash, sizeof st->token_hash, db_col_text(s, 14));
    }
    return err->code;
}

static int by_id(const struct registry *r, int64_t id)
{
    for (int i = 0; i < r->n; i++) /* only while loading: a scan keeps it simple */
        if (r->stations[i].id == id)
            return i;
    return -1;
}

static enum err_code load_sensors(struct db_conn *c, struct registry *r, struct err *err)
{
    struct db_stmt *s;
    bool row;
    if (db_prepare(c, &s, "SELECT id, station_id, name, unit FROM sensors ORDER BY station_id, id",
                   err))
        return err->code;
    while (db_step(s, &row, err) == ERR_OK && row) {
        int i = by_id(r, db_col_int64(s, 1));
        if (i < 0 || r->stations[i].nsensors >= 8)
            continue;
        struct sensor_def *d = &r->stations[i].sensors[r->stations[i].nsensors++];
        d->id = db_col_int64(s, 0);
        copy_text(d->name, sizeof d->name, db_col_text(s, 2));
        copy_text(d->unit, sizeof d->unit, db_col_text(s, 3));
    }
    return err->code;
}

static enum err_code load_gateways(struct db_conn *c, struct registry *r, struct err *err)
{
    static const char sql[] = "SELECT code, opd_code, token_hash FROM gateways ORDER BY code";
    struct db_stmt *s;
    bool row;
    if (db_prepare(c, &s, sql, err))
        return err->code;
    while (db_step(s, &row, err) == ERR_OK && row) {
        if (r->ngateways % 16 == 0) {
            struct gateway_def *g =
                realloc(r->gateways, (size_t)(r->ngateways + 16) * sizeof *g);
            if (!g) {
                err_set(err, ERR_INTERNAL, "out of memory");
                break;
            }
            r->gateways = g;
        }
        struct gateway_def *g = &r->gateways[r->ngateways++];
        copy_text(g->code, sizeof g->code, db_col_text(s, 0));
        copy_text(g->opd, sizeof g->opd, db_col_text(s, 1));
        copy_text(g->token_hash, sizeof g->token_hash, db_col_text(s, 2));
    }
    db_done(s);
    return err->code;
}

enum err_code sensors__registry_load(struct db_conn *c, struct err *err)
{
    /* Reloads are serialised and read the database inside the lock, so a later reload always
     * sees a snapshot at least as new as an earlier one. */
    pthread_mutex_lock(&reload_lock);
    struct registry *r = calloc(1, sizeof *r);
    if (!r) {
        pthread_mutex_unlock(&reload_lock);
        return err_set(err, ERR_INTERNAL, "out of memory");
    }
    if (load_stations(c, r, err) == ERR_OK && load_sensors(c, r, err) == ERR_OK &&
        load_gateways(c, r, err) == ERR_OK) {
        r->slots = 16;
        while (r->slots < 2 * r->n + 2)
            r->slots *= 2;
        r->by_code = calloc((size_t)r->slots, sizeof(int));
        r->by_token = calloc((size_t)r->slots, sizeof(int));
        if (!r->by_code || !r->by_token)
            err_set(err, ERR_INTERNAL, "out of memory");
        for (int i = 0; !err->code && i < r->n; i++) {
            index_put(r->by_code, r->slots, r->stations[i].code, i);
            index_put(r->by_token, r->slots, r->stations[i].token_hash, i);
        }
    }
    if (err->code) {
        registry_free(r);
        pthread_mutex_unlock(&reload_lock);
        return err->code;
    }
    pthread_rwlock_wrlock(&lock);
    struct registry *old = current;
    current = r;
    pthread_rwlock_unlock(&lock);
    registry_free(old);
    pthread_mutex_unlock(&reload_lock);
    sensors__latest_dirty(true);
    log_debug("event=registry_loaded stations=%d", r->n);
    return ERR_OK;
}

void sensors__registry_free(void)
{
    pthread_rwlock_wrlock(&lock);
    registry_free(current);
    current = NULL;
    pthread_rwlock_unlock(&lock);
}

void sensors__registry_rdlock(void)
{
    pthread_rwlock_rdlock(&lock);
}

void sensors__registry_unlock(void)
{
    pthread_rwlock_unlock(&lock);
}

int sensors__registry_count(void)
{
    return current ? current->n : 0;
}

const struct station_def *sensors__station_at(int i)
{
    return current && i >= 0 && i < current->n ? &current->stations[i] : NULL;
}

static const struct station_def *lookup(const int *table, const char *key, size_t len,
                                        bool token)
{
    if (!current || !table)
        return NULL;
    size_t mask = (size_t)current->slots - 1;
    for (size_t i = hash_bytes(key, len) & mask; table[i]; i = (i + 1) & mask) {
        const struct station_def *st = &current->stations[table[i] - 1];
        const char *k = token ? st->token_hash : st->code;
        if (strlen(k) == len && memcmp(k, key, len) == 0)
            return st;
    }
    return NULL;
}

const struct station_def *sensors__station_by_code(const char *code, size_t len)
{
    return lookup(current ? current->by_code : NULL, code, len, false);
}

const struct station_def *sensors__station_by_token_hash(const char *hash)
{
    return lookup(current ? current->by_token : NULL, hash, strlen(hash), true);
}

const struct gateway_def *sensors__gateway_by_token_hash(const char *hash)
{
    for (int i = 0; current && i < current->ngateways; i++)
        if (strcmp(current->gateways[i].token_hash, hash) == 0)
            return &current->gateways[i];
    return NULL;
}

int sensors__station_index(const struct station_def *st)
{
    return (int)(st - current->stations);
}
