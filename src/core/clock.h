/* clock: wall time in UTC, monotonic time, and RFC 3339 formatting (stored UTC, shown WITA). */
#ifndef SINERGI_CLOCK_H
#define SINERGI_CLOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

int64_t clock_now_s(void);   /* seconds since the epoch, UTC */
int64_t clock_now_ms(void);  /* milliseconds since the epoch, UTC */
uint64_t clock_mono_ns(void); /* monotonic nanoseconds, for durations */
/* The time `ns` from now on `clock`: the deadline of a pthread_cond_timedwait (CLOCK_REALTIME
 * unless the condition variable was made for another clock). */
struct timespec clock_deadline(clockid_t clock, uint64_t ns);

enum { CLOCK_FMT_LEN = 32 };
/* "2026-11-22T01:05:00Z" */
void clock_fmt_utc(char out[CLOCK_FMT_LEN], int64_t unix_s);
/* "2026-11-22T09:05:00+08:00": WITA, for people and CAP documents */
void clock_fmt_wita(char out[CLOCK_FMT_LEN], int64_t unix_s);
/* Parses RFC 3339 with 'Z' or a numeric offset, or integer seconds since the epoch. */
bool clock_parse(const char *s, int64_t *out_unix_s);

#endif
