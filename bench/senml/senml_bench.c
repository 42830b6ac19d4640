/* senml_bench: ns per record of the streaming SenML parser (src/sensors/senml.c) and of the
 * jansson-based one it replaced (tests/fuzz/senml_jansson.c), on the bodies that
 * bench/ingest/ingest_load.c sends: 1,000 records of one weather station, 36 KB each.
 *
 * usage: senml_bench [--rounds N (5)] [--ms MS per parser per round (400)] [--t0 UNIX_S]
 *                    [--only old|new]  (one parser, e.g. under perf)
 *        senml_bench --body J --t0 UNIX_S     prints batch request J, as ingest_load sample does
 * Each round times each parser over the 125 bodies of requests 0..124 (every station) in turn,
 * including the malloc and free of the records array; the report is each round's ns of this
 * thread's CPU time per record (time spent descheduled by other load does not count) and the
 * median. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../ingest/dataset.h"
#include "sensors/sensors_int.h"
#include "senml_jansson.h"

typedef enum err_code (*parse_fn)(const char *, size_t, int64_t, size_t, struct senml_record **,
                                  size_t *, struct err *);

struct body {
    char *p;
    size_t len, cap;
};

static void put(struct body *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        if (!(b->p = realloc(b->p, b->cap)))
            abort();
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}
#define PUTS(b, s) put((b), (s), sizeof(s) - 1)

static void put_str(struct body *b, const char *s)
{
    put(b, s, strlen(s));
}

/* Batch request j, byte for byte what ingest_load.c's senml_batch() writes. */
static void senml_batch(struct body *b, int64_t j, int64_t t0)
{
    char t[32];
    b->len = 0;
    int64_t n0 = j * DS_BATCH;
    struct ds_row first = ds_batch_row(n0, t0);
    char code[8];
    ds_batch_code(code, first.station);
    PUTS(b, "[{\"bn\":\"");
    put_str(b, code);
    PUTS(b, ":\",\"bt\":");
    put(b, t, (size_t)ds_fmt_int(t, first.t_s));
    for (int r = 0; r < DS_BATCH; r++) {
        struct ds_row row = ds_batch_row(n0 + r, t0);
        if (r)
            PUTS(b, ",{");
        else
            PUTS(b, ",");
        PUTS(b, "\"n\":\"");
        put_str(b, ds_sensors[row.sensor].name);
        PUTS(b, "\",");
        if (r < DS_PER_STATION) {
            PUTS(b, "\"u\":\"");
            put_str(b, ds_sensors[row.sensor].unit);
            PUTS(b, "\",");
        }
        if (row.t_s != first.t_s) {
            PUTS(b, "\"t\":");
            put(b, t, (size_t)ds_fmt_int(t, row.t_s - first.t_s));
            PUTS(b, ",");
        }
        PUTS(b, "\"v\":");
        put(b, t, (size_t)ds_fmt_milli(t, row.v_milli));
        PUTS(b, "}");
    }
    PUTS(b, "]");
}

static double cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* Parses the bodies round-robin for about `ms`; returns ns per record. */
static double measure(parse_fn parse, struct body *bodies, int nbodies, int64_t now_ms, double ms)
{
    size_t records = 0;
    double start = cpu_ns(), end = start + ms * 1e6, t;
    int i = 0;
    do {
        for (int k = 0; k < 25; k++, i = (i + 1) % nbodies) {
            struct senml_record *r;
            size_t n;
            struct err err = ERR_INIT;
            if (parse(bodies[i].p, bodies[i].len, now_ms, 10000, &r, &n, &err)) {
                fprintf(stderr, "senml_bench: body %d: %s\n", i, err.msg);
                exit(1);
            }
            records += n;
            free(r);
        }
    } while ((t = cpu_ns()) < end);
    return (t - start) / (double)records;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int rounds = 5, body_j = -1, first = 0, last = 1;
    double ms = 400;
    int64_t t0 = (int64_t)time(NULL) - 25 * 86400;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--rounds"))
            rounds = (int)strtol(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--ms"))
            ms = strtod(argv[i + 1], NULL);
        else if (!strcmp(argv[i], "--t0"))
            t0 = strtoll(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--body"))
            body_j = (int)strtol(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--only"))
            first = last = strcmp(argv[i + 1], "old") != 0;
    }
    if (rounds < 1 || rounds > 100 || ms <= 0)
        return fprintf(stderr, "senml_bench: --rounds 1..100, --ms > 0\n"), 2;
    enum { NBODIES = DS_STATIONS };
    static struct body bodies[NBODIES];
    if (body_j >= 0) {
        senml_batch(&bodies[0], body_j, t0);
        printf("%s\n", bodies[0].p);
        return 0;
    }
    size_t bytes = 0;
    for (int j = 0; j < NBODIES; j++) {
        senml_batch(&bodies[j], j, t0);
        bytes += bodies[j].len;
    }
    int64_t now_ms = (t0 + 25 * 86400) * 1000;
    printf("senml_bench: %d bodies of %d records, %zu bytes on average; %d rounds of %.0f ms\n",
           NBODIES, DS_BATCH, bytes / NBODIES, rounds, ms);
    static const struct {
        const char *name;
        parse_fn fn;
    } parsers[] = {{"jansson (old)", senml_parse_jansson}, {"streaming (new)", senml_parse}};
    double res[2][100];
    for (int r = 0; r < rounds; r++)
        for (int p = first; p <= last; p++)
            res[p][r] = measure(parsers[p].fn, bodies, NBODIES, now_ms, ms);
    for (int p = first; p <= last; p++) {
        printf("%-16s ns/record:", parsers[p].name);
        for (int r = 0; r < rounds; r++)
            printf(" %6.1f", res[p][r]);
        qsort(res[p], (size_t)rounds, sizeof res[p][0], by_value);
        printf("   median %6.1f\n", res[p][rounds / 2]);
    }
    if (first != last)
        printf("speed-up (medians): %.1fx\n", res[0][rounds / 2] / res[1][rounds / 2]);
    return 0;
}
