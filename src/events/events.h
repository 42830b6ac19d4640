/* events: the live event hub behind GET /api/v1/events (Server-Sent Events). Publishers (the
 * ingest writer, later the early-warning rules) append events to a bounded ring; each stream
 * reads from its own cursor, so a slow client never slows a publisher: it falls behind, and if
 * the ring overwrites what it has not read it is told to reload ("reset" event).
 *
 * Coalescing: an event published with `coalesce` set (e.g. a station's latest readings) is
 * superseded by a later coalescing event with the same type and key. A reader that is behind
 * skips superseded events and gets only the newest one per key; events without `coalesce`
 * (state changes, alerts) are always delivered in order. */
#ifndef SINERGI_EVENTS_H
#define SINERGI_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { EVENTS_KEY_MAX = 48, EVENTS_KIND_MAX = 24, EVENTS_TYPE_MAX = 24 };
/* Largest `json` a publish takes, and so the largest frame events_read writes. */
enum { EVENTS_DATA_MAX = 16384, EVENTS_FRAME_MAX = EVENTS_DATA_MAX + 64 };

/* Starts the hub with room for `capacity` events (a power of two is not required). */
void events_init(size_t capacity);
void events_shutdown(void);

/* Appends an event and wakes waiting readers. `type` is the SSE event name ("reading",
 * "station", "alert"), `key` the object it is about (a station code), `kind` a filterable
 * category (station kind), `json` the data line (copied; must not contain newlines).
 * Returns the event id (monotonic, starts at 1). Thread-safe; never blocks on readers.
 * Returns 0 and publishes nothing when the hub is not started, or (logged) when a string is
 * longer than its EVENTS_*_MAX, `json` is longer than EVENTS_DATA_MAX, or `json` or `type`
 * holds a newline. NULL `key` or `kind` mean "". */
uint64_t events_publish(const char *type, const char *key, const char *kind, const char *json,
                        bool coalesce);

/* What a stream wants: empty lists mean everything. Values are compared exactly. */
enum { EVENTS_FILTER_MAX = 16 };
struct events_filter {
    int nkeys, nkinds;
    char keys[EVENTS_FILTER_MAX][EVENTS_KEY_MAX];
    char kinds[EVENTS_FILTER_MAX][EVENTS_KIND_MAX];
};

/* Formats the events after *cursor that pass `f` as SSE frames ("id: N\nevent: T\ndata: J\n\n")
 * into buf (at most `max` bytes, whole frames only) and advances *cursor past every event it
 * looked at. If events after *cursor were already overwritten, writes one "reset" frame and moves
 * the cursor to the oldest event still held. Returns the bytes written (0: nothing new).
 * Precisely: the reset frame has no id line, and the cursor moves to just before the oldest
 * event held, so the events still held follow it. A cursor ahead of the newest id (an id from
 * before a restart: ids start at 1 each run) is reset the same way. A `max` of at least
 * EVENTS_FRAME_MAX always makes progress; a smaller one may return 0 with events pending. */
size_t events_read(uint64_t *cursor, const struct events_filter *f, char *buf, size_t max);

/* The id of the newest event (0 when none): where a new stream without Last-Event-ID starts. */
uint64_t events_last_id(void);

/* Called (from the publisher's thread) after each publish; the SSE layer uses it to resume
 * suspended streams. One waker; set once at start. */
void events_set_waker(void (*wake)(void *ctx, bool urgent), void *ctx);

#endif
