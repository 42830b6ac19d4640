/* i64map: an open-addressing hash table of fixed-size items whose first member is a nonzero
 * int64_t key (sensor ids): linear probing over a power-of-two number of slots, never more
 * than half full, items stored in the slots themselves (so a pointer to an item lives until
 * the table grows). No removal except undoing the insert just made. Not thread-safe: callers
 * lock as they need. */
#ifndef SINERGI_I64MAP_H
#define SINERGI_I64MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct i64map {
    char *items;      /* slots * item_size bytes; a slot whose key is 0 is empty */
    size_t item_size; /* the item's first member is its int64_t key */
    size_t slots, used;
    uint64_t gen; /* bumped when the table grows: slots move, pointers to items go stale */
};

void i64map_init(struct i64map *m, size_t item_size);
void i64map_free(struct i64map *m);
/* The item of `key` (nonzero), or NULL. */
void *i64map_get(const struct i64map *m, int64_t key);
/* The item of `key` (nonzero), created zeroed with its key set when absent (*created true);
 * NULL when out of memory. May grow the table. */
void *i64map_put(struct i64map *m, int64_t key, bool *created);
/* Removes `item`, which the last i64map_put just created (its probe chain ends there). */
void i64map_unput(struct i64map *m, void *item);
/* The item in slot `i` (0 <= i < m->slots), or NULL when the slot is empty: for iterating. */
void *i64map_slot(const struct i64map *m, size_t i);

#endif
