/* throttle: counts failed sign-ins per account and per client address in a fixed window.
 * Bounded memory: a fixed table where the oldest entry in a probe run is evicted. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "auth/auth_int.h"
#include "core/banned.h"

enum { SLOTS = 8192, PROBE = 8, KEY_MAX = 80 };

struct slot {
    char key[KEY_MAX];
    int64_t window_start;
    int64_t failures;
};

static struct slot table[SLOTS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

static void make_key(char out[KEY_MAX], const char *kind, const char *key)
{
    snprintf(out, KEY_MAX, "%s:%s", kind, key ? key : "");
}

/* Finds the slot of `k` (or claims one when `create`); caller holds the lock. */
static struct slot *find(const char *k, int64_t now, bool create)
{
    size_t base = (size_t)(fnv1a(k) % SLOTS);
    struct slot *victim = NULL;
    for (size_t i = 0; i < PROBE; i++) {
        struct slot *s = &table[(base + i) % SLOTS];
        if (strcmp(s->key, k) == 0)
            return s;
        bool expired = !s->key[0] || now - s->window_start >= auth__settings.window_s;
        if (!victim || (expired && victim->key[0]) || s->window_start < victim->window_start)
            victim = s;
    }
    if (!create)
        return NULL;
    snprintf(victim->key, KEY_MAX, "%s", k);
    victim->window_start = now;
    victim->failures = 0;
    return victim;
}

int64_t auth__throttle_wait(const char *kind, const char *key, int64_t max, int64_t now)
{
    char k[KEY_MAX];
    make_key(k, kind, key);
    int64_t wait = 0;
    pthread_mutex_lock(&lock);
    struct slot *s = find(k, now, false);
    if (s && s->failures >= max) {
        wait = s->window_start + auth__settings.window_s - now;
        if (wait <= 0) {
            s->failures = 0;
            s->window_start = now;
            wait = 0;
        }
    }
    pthread_mutex_unlock(&lock);
    return wait;
}

void auth__throttle_fail(const char *kind, const char *key, int64_t now)
{
    char k[KEY_MAX];
    make_key(k, kind, key);
    pthread_mutex_lock(&lock);
    struct slot *s = find(k, now, true);
    if (now - s->window_start >= auth__settings.window_s) {
        s->window_start = now;
        s->failures = 0;
    }
    s->failures++;
    pthread_mutex_unlock(&lock);
}

void auth__throttle_clear(const char *kind, const char *key)
{
    char k[KEY_MAX];
    make_key(k, kind, key);
    pthread_mutex_lock(&lock);
    struct slot *s = find(k, 0, false);
    if (s)
        memset(s, 0, sizeof *s);
    pthread_mutex_unlock(&lock);
}
