/* clock: UTC wall time, monotonic durations and RFC 3339 text. */
#define _GNU_SOURCE
#include "core/clock.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/banned.h"

int64_t clock_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec;
}

int64_t clock_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t clock_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct timespec clock_deadline(clockid_t clock, uint64_t ns)
{
    struct timespec t;
    clock_gettime(clock, &t);
    uint64_t n = (uint64_t)t.tv_nsec + ns;
    t.tv_sec += (time_t)(n / 1000000000u);
    t.tv_nsec = (long)(n % 1000000000u);
    return t;
}

static void fmt(char out[CLOCK_FMT_LEN], int64_t t, int offset_s, const char *suffix)
{
    time_t tt = (time_t)(t + offset_s);
    struct tm tm;
    if (!gmtime_r(&tt, &tm)) {
        snprintf(out, CLOCK_FMT_LEN, "invalid");
        return;
    }
    size_t n = strftime(out, CLOCK_FMT_LEN, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, CLOCK_FMT_LEN - n, "%s", suffix);
}

void clock_fmt_utc(char out[CLOCK_FMT_LEN], int64_t unix_s)
{
    fmt(out, unix_s, 0, "Z");
}

void clock_fmt_wita(char out[CLOCK_FMT_LEN], int64_t unix_s)
{
    fmt(out, unix_s, 8 * 3600, "+08:00");
}

static bool digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

bool clock_parse(const char *s, int64_t *out_unix_s)
{
    if (!s || !*s)
        return false;
    size_t len = strlen(s);
    bool all_digits = true;
    for (size_t i = 0; i < len; i++)
        if (!isdigit((unsigned char)s[i]) && !(i == 0 && s[i] == '-'))
            all_digits = false;
    if (all_digits) {
        errno = 0;
        char *end;
        long long v = strtoll(s, &end, 10);
        if (errno || *end)
            return false;
        *out_unix_s = v;
        return true;
    }
    int Y, M, D, h, m, sec;
    if (len < 20 || !digits(s, 4, &Y) || s[4] != '-' || !digits(s + 5, 2, &M) || s[7] != '-' ||
        !digits(s + 8, 2, &D) || (s[10] != 'T' && s[10] != ' ') || !digits(s + 11, 2, &h) ||
        s[13] != ':' || !digits(s + 14, 2, &m) || s[16] != ':' || !digits(s + 17, 2, &sec))
        return false;
    const char *p = s + 19;
    if (*p == '.') { /* fractional seconds are accepted and dropped */
        p++;
        while (isdigit((unsigned char)*p))
            p++;
    }
    int off = 0;
    if (*p == 'Z' && p[1] == 0) {
        off = 0;
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
        int oh, om;
        if (!digits(p + 1, 2, &oh) || !digits(p + 4, 2, &om) || oh > 14 || om > 59)
            return false;
        off = (oh * 3600 + om * 60) * (*p == '-' ? -1 : 1);
    } else {
        return false;
    }
    if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60)
        return false;
    struct tm tm = {.tm_year = Y - 1900, .tm_mon = M - 1, .tm_mday = D,
                    .tm_hour = h, .tm_min = m, .tm_sec = sec};
    time_t t = timegm(&tm);
    if (tm.tm_mday != D) /* 31 February and friends */
        return false;
    *out_unix_s = (int64_t)t - off;
    return true;
}
