/* events: the live event hub. A bounded ring of events under one mutex, read through per-stream
 * cursors, plus an index (type, key) -> id of the newest coalescing event so a reader that is
 * behind skips superseded ones. Publishers hold the mutex only to copy one event in. */
#include "events/events.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/banned.h"

static const char reset_frame[] = "event: reset\ndata: {\"reason\":\"behind\"}\n\n";

struct event {
    uint64_t id;   /* 0: slot never used */
    uint32_t hash; /* of type and key: the coalescing index's key */
    bool coalesce;
    unsigned char type_len;
    char type[EVENTS_TYPE_MAX], key[EVENTS_KEY_MAX], kind[EVENTS_KIND_MAX];
    char *data; /* owned */
    size_t len;
};

/* Invariant: `index` holds exactly one entry per (type, key) that has a coalescing event in the
 * ring, the id of the newest such event; so it never holds more than `cap` entries and every id
 * in it names an event still in the ring. Linear probing, at most half full, no tombstones. */
static struct {
    pthread_mutex_t lock;
    bool started;
    struct event *ring;
    size_t cap;
    uint64_t *index; /* 0: empty */
    size_t index_mask;
    _Atomic uint64_t last; /* written under lock; read without it by events_last_id */
    void (*wake)(void *ctx, bool urgent);
    void *wake_ctx;
} hub = {.lock = PTHREAD_MUTEX_INITIALIZER};

static struct event *slot_of(uint64_t id)
{
    return &hub.ring[(id - 1) % hub.cap];
}

static uint32_t hash_of(const char *type, const char *key)
{
    uint32_t h = 2166136261u; /* FNV-1a over type, a 0 byte, key */
    for (const char *p = type; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    h *= 16777619u;
    for (const char *p = key; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h;
}

/* Position of the entry for ev's (type, key), or of the empty slot where it would go. */
static size_t index_find(const struct event *ev, bool *found)
{
    size_t i = ev->hash & hub.index_mask;
    for (; hub.index[i]; i = (i + 1) & hub.index_mask) {
        const struct event *o = slot_of(hub.index[i]);
        if (o->hash == ev->hash && strcmp(o->type, ev->type) == 0 && strcmp(o->key, ev->key) == 0) {
            *found = true;
            return i;
        }
    }
    *found = false;
    return i;
}

/* Empties index slot i and shifts later entries of the same probe run back over it. */
static void index_remove_at(size_t i)
{
    size_t j = i;
    hub.index[i] = 0;
    for (;;) {
        j = (j + 1) & hub.index_mask;
        if (!hub.index[j])
            return;
        size_t home = slot_of(hub.index[j])->hash & hub.index_mask;
        /* The entry at j may move to i unless its home lies cyclically in (i, j]. */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            hub.index[i] = hub.index[j];
            hub.index[j] = 0;
            i = j;
        }
    }
}

void events_init(size_t capacity)
{
    assert(capacity > 0);
    size_t isize = 2;
    while (isize < 2 * capacity)
        isize *= 2;
    struct event *ring = calloc(capacity, sizeof *ring);
    uint64_t *index = calloc(isize, sizeof *index);
    if (!ring || !index) {
        log_error("event=events_init_failed capacity=%zu detail=\"out of memory\"", capacity);
        free(ring);
        free(index);
        return; /* publishes are dropped (id 0); streams see nothing */
    }
    pthread_mutex_lock(&hub.lock);
    assert(!hub.started);
    hub.ring = ring;
    hub.cap = capacity;
    hub.index = index;
    hub.index_mask = isize - 1;
    atomic_store(&hub.last, 0);
    hub.started = true;
    pthread_mutex_unlock(&hub.lock);
}

void events_shutdown(void)
{
    pthread_mutex_lock(&hub.lock);
    if (hub.started) {
        for (size_t i = 0; i < hub.cap; i++)
            free(hub.ring[i].data);
        free(hub.ring);
        free(hub.index);
        hub.ring = NULL;
        hub.index = NULL;
        hub.cap = 0;
        hub.started = false;
        atomic_store(&hub.last, 0);
    }
    pthread_mutex_unlock(&hub.lock);
}

void events_set_waker(void (*wake)(void *ctx, bool urgent), void *ctx)
{
    pthread_mutex_lock(&hub.lock);
    hub.wake = wake;
    hub.wake_ctx = ctx;
    pthread_mutex_unlock(&hub.lock);
}

uint64_t events_last_id(void)
{
    return atomic_load(&hub.last);
}

static bool publish_args_ok(const char *type, const char *key, const char *kind, const char *json,
                            size_t len)
{
    const char *why = NULL;
    if (strlen(type) >= EVENTS_TYPE_MAX || !*type)
        why = "type empty or too long";
    else if (strlen(key) >= EVENTS_KEY_MAX)
        why = "key too long";
    else if (strlen(kind) >= EVENTS_KIND_MAX)
        why = "kind too long";
    else if (len > EVENTS_DATA_MAX)
        why = "data too long";
    else if (strpbrk(json, "\r\n") || strpbrk(type, "\r\n"))
        why = "newline in data or type";
    if (why)
        log_warn("event=events_publish_refused reason=\"%s\"", why); /* type may be unsafe */
    return !why;
}

uint64_t events_publish(const char *type, const char *key, const char *kind, const char *json,
                        bool coalesce)
{
    key = key ? key : "";
    kind = kind ? kind : "";
    size_t len = strlen(json);
    if (!publish_args_ok(type, key, kind, json, len))
        return 0;
    char *copy = malloc(len + 1);
    if (!copy)
        return 0;
    memcpy(copy, json, len + 1);

    pthread_mutex_lock(&hub.lock);
    if (!hub.started) {
        pthread_mutex_unlock(&hub.lock);
        free(copy);
        return 0;
    }
    uint64_t id = atomic_load(&hub.last) + 1;
    struct event *ev = slot_of(id);
    char *old = ev->data;
    bool found;
    if (ev->id && ev->coalesce) { /* drop the index entry of the event being overwritten */
        size_t i = index_find(ev, &found);
        if (found && hub.index[i] == ev->id)
            index_remove_at(i);
    }
    ev->id = id;
    ev->coalesce = coalesce;
    ev->type_len = (unsigned char)strlen(type);
    memcpy(ev->type, type, ev->type_len + 1u);
    memcpy(ev->key, key, strlen(key) + 1);
    memcpy(ev->kind, kind, strlen(kind) + 1);
    ev->hash = hash_of(type, key);
    ev->data = copy;
    ev->len = len;
    if (coalesce)
        hub.index[index_find(ev, &found)] = id; /* insert, or supersede the older one */
    atomic_store(&hub.last, id);
    void (*wake)(void *, bool) = hub.wake;
    void *wake_ctx = hub.wake_ctx;
    pthread_mutex_unlock(&hub.lock);

    free(old);
    if (wake)
        wake(wake_ctx, !coalesce);
    return id;
}

static bool in_list(const char *v, int n, const char *list, size_t width)
{
    for (int i = 0; i < n; i++)
        if (strcmp(v, list + (size_t)i * width) == 0)
            return true;
    return false;
}

static bool passes(const struct event *ev, const struct events_filter *f)
{
    if (!f)
        return true;
    return (f->nkeys == 0 || in_list(ev->key, f->nkeys, &f->keys[0][0], EVENTS_KEY_MAX)) &&
           (f->nkinds == 0 || in_list(ev->kind, f->nkinds, &f->kinds[0][0], EVENTS_KIND_MAX));
}

/* A coalescing event is superseded when a newer one of the same type and key exists (it is
 * then necessarily after the reader's cursor) and this reader would receive that one. */
static bool superseded(const struct event *ev, const struct events_filter *f)
{
    if (!ev->coalesce)
        return false;
    bool found;
    size_t i = index_find(ev, &found);
    return found && hub.index[i] > ev->id && passes(slot_of(hub.index[i]), f);
}

static size_t u64_digits(uint64_t v, char out[20])
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

/* "id: N\nevent: T\ndata: J\n\n" into buf if it fits in `room`; returns the length, or 0. */
static size_t write_frame(char *buf, size_t room, const struct event *ev)
{
    char digits[20];
    size_t nd = u64_digits(ev->id, digits);
    size_t need = 4 + nd + 8 + ev->type_len + 7 + ev->len + 2;
    if (need > room)
        return 0;
    char *p = put(buf, "id: ", 4);
    p = put(p, digits, nd);
    p = put(p, "\nevent: ", 8);
    p = put(p, ev->type, ev->type_len);
    p = put(p, "\ndata: ", 7);
    p = put(p, ev->data, ev->len);
    put(p, "\n\n", 2);
    return need;
}

size_t events_read(uint64_t *cursor, const struct events_filter *f, char *buf, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&hub.lock);
    uint64_t last = atomic_load(&hub.last);
    if (!hub.started) {
        pthread_mutex_unlock(&hub.lock);
        return 0;
    }
    uint64_t oldest = last > hub.cap ? last - hub.cap + 1 : 1;
    /* Behind the ring, or ahead of it (an id from before a restart): the reader must reload. */
    if (*cursor > last || *cursor + 1 < oldest) {
        if (sizeof reset_frame - 1 > max) {
            pthread_mutex_unlock(&hub.lock);
            return 0;
        }
        memcpy(buf, reset_frame, sizeof reset_frame - 1);
        n = sizeof reset_frame - 1;
        *cursor = oldest - 1;
    }
    for (uint64_t id = *cursor + 1; id <= last; id++) {
        const struct event *ev = slot_of(id);
        if (passes(ev, f) && !superseded(ev, f)) {
            size_t w = write_frame(buf + n, max - n, ev);
            if (!w)
                break; /* whole frames only: the rest waits for the next call */
            n += w;
        }
        *cursor = id;
    }
    pthread_mutex_unlock(&hub.lock);
    return n;
}
