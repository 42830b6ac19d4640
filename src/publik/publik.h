/* publik: the public flood status page (GET /publik) for residents on a cheap phone and a weak
 * signal: plain HTML rendered here, no JavaScript, no outside files, Bahasa Indonesia, WITA.
 * It shows what the CAP feed says (public warnings in force, level >= 1) and each station's
 * state; a station that stopped reporting is "tidak ada data", never its last value. */
#ifndef SINERGI_PUBLIK_H
#define SINERGI_PUBLIK_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "db/db.h"

/* Upper bound of the page in bytes; the page lists at most PUBLIK_MAX_WARNINGS warnings and
 * PUBLIK_MAX_STATIONS stations (the rest are counted, and the feed has every warning). */
enum { PUBLIK_PAGE_MAX = 256 * 1024, PUBLIK_MAX_WARNINGS = 40, PUBLIK_MAX_STATIONS = 150 };

/* Renders the page of regency `regency` (kode wilayah, e.g. "73.22") as of `now_s`. *out
 * (NUL-terminated, *len_out bytes) is owned by the caller: free(). Fails rather than render
 * a calm page when the warnings cannot be read (a missing warning must not look like none). */
enum err_code publik_render(struct db_conn *c, const char *regency, int64_t now_s, char **out,
                            size_t *len_out, struct err *err);

#endif
