/* i64map: see i64map.h. Fibonacci hashing of the key; at most half full, so probes stay short. */
#include <stdlib.h>
#include <string.h>

#include "core/i64map.h"
#include "core/banned.h"

enum { FIRST_SLOTS = 1024 };

static int64_t key_at(const char *item)
{
    int64_t k;
    memcpy(&k, item, sizeof k);
    return k;
}

static size_t home(int64_t key, size_t slots)
{
    return (size_t)((uint64_t)key * 0x9E3779B97F4A7C15ull >> 20) & (slots - 1);
}

/* The slot holding `key`, or the empty slot where it would go. */
static char *probe(char *items, size_t slots, size_t item_size, int64_t key)
{
    for (size_t i = home(key, slots);; i = (i + 1) & (slots - 1)) {
        char *it = items + i * item_size;
        int64_t k = key_at(it);
        if (k == key || k == 0)
            return it;
    }
}

void i64map_init(struct i64map *m, size_t item_size)
{
    *m = (struct i64map){.item_size = item_size};
}

void i64map_free(struct i64map *m)
{
    free(m->items);
    i64map_init(m, m->item_size);
}

void *i64map_get(const struct i64map *m, int64_t key)
{
    if (!m->slots || key == 0)
        return NULL;
    char *it = probe(m->items, m->slots, m->item_size, key);
    return key_at(it) == key ? it : NULL;
}

static bool grow(struct i64map *m)
{
    size_t slots = m->slots ? m->slots * 2 : FIRST_SLOTS;
    char *items = calloc(slots, m->item_size);
    if (!items)
        return false;
    for (size_t i = 0; i < m->slots; i++) {
        const char *it = m->items + i * m->item_size;
        if (key_at(it))
            memcpy(probe(items, slots, m->item_size, key_at(it)), it, m->item_size);
    }
    free(m->items);
    m->items = items;
    m->slots = slots;
    m->gen++;
    return true;
}

void *i64map_put(struct i64map *m, int64_t key, bool *created)
{
    if (created)
        *created = false;
    if (key == 0)
        return NULL;
    char *it = i64map_get(m, key);
    if (it)
        return it;
    if ((m->used + 1) * 2 > m->slots && !grow(m))
        return NULL;
    it = probe(m->items, m->slots, m->item_size, key);
    memset(it, 0, m->item_size);
    memcpy(it, &key, sizeof key);
    m->used++;
    if (created)
        *created = true;
    return it;
}

void i64map_unput(struct i64map *m, void *item)
{
    memset(item, 0, m->item_size);
    m->used--;
}

void *i64map_slot(const struct i64map *m, size_t i)
{
    if (i >= m->slots)
        return NULL;
    char *it = m->items + i * m->item_size;
    return key_at(it) ? it : NULL;
}
