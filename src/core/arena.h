/* arena: a capped bump allocator owned by one request; everything in it dies together. */
#ifndef SINERGI_ARENA_H
#define SINERGI_ARENA_H

#include <stddef.h>

struct arena;

/* Owned; `max` caps the total bytes the arena may hand out (0 = 64 MiB). NULL on OOM. */
struct arena *arena_new(size_t max);
void arena_free(struct arena *a);

/* Aligned memory from the arena, or NULL when the cap would be passed. Never freed alone. */
void *arena_alloc(struct arena *a, size_t n);
char *arena_strdup(struct arena *a, const char *s);
char *arena_strndup(struct arena *a, const char *s, size_t n);
size_t arena_used(const struct arena *a);

#endif
