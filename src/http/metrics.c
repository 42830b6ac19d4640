/* metrics: request counts by route and status, latency histograms by route, database errors;
 * lock-free counters rendered in the Prometheus text exposition format. */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/buf.h"
#include "db/db.h"
#include "http/http.h"
#include "mqtt/mqtt.h"
#include "core/banned.h"

enum { MAX_ROUTES = 128, NBUCKETS = 12 };

static const unsigned statuses[] = {200, 201, 204, 207, 304, 400, 401, 403, 404,
                                    405, 409, 413, 415, 429, 500, 503, 0};
#define NSTATUS (sizeof statuses / sizeof statuses[0]) /* last slot: any other status */

static const double bucket_s[NBUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                          0.05,   0.1,   0.25,   0.5,   1.0,  2.5};

/* Slot MAX_ROUTES collects requests that matched no route. */
static atomic_uint_fast64_t counts[MAX_ROUTES + 1][NSTATUS];
static atomic_uint_fast64_t buckets[MAX_ROUTES + 1][NBUCKETS + 1];
static atomic_uint_fast64_t sum_us[MAX_ROUTES + 1];

static size_t slot(int route_index)
{
    return route_index >= 0 && route_index < MAX_ROUTES ? (size_t)route_index : MAX_ROUTES;
}

void http_metrics_observe(int route_index, unsigned status, uint64_t duration_ns)
{
    size_t r = slot(route_index), s = NSTATUS - 1;
    for (size_t i = 0; i + 1 < NSTATUS; i++)
        if (statuses[i] == status) {
            s = i;
            break;
        }
    atomic_fetch_add_explicit(&counts[r][s], 1, memory_order_relaxed);
    double secs = (double)duration_ns / 1e9;
    size_t b = 0;
    while (b < NBUCKETS && secs > bucket_s[b])
        b++;
    atomic_fetch_add_explicit(&buckets[r][b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&sum_us[r], duration_ns / 1000, memory_order_relaxed);
}

static const char *route_label(size_t r, const char **method)
{
    if (r < http_nroutes && r < MAX_ROUTES) {
        *method = http_routes[r].method;
        return http_routes[r].pattern;
    }
    *method = "-";
    return "unmatched";
}

char *http_metrics_render(size_t *len)
{
    struct buf b;
    buf_init(&b, 4u << 20);
    buf_appends(&b, "# HELP sinergi_http_requests_total HTTP requests by route and status.\n"
                    "# TYPE sinergi_http_requests_total counter\n");
    for (size_t r = 0; r <= MAX_ROUTES; r++)
        for (size_t s = 0; s < NSTATUS; s++) {
            uint64_t n = atomic_load(&counts[r][s]);
            if (!n)
                continue;
            const char *m, *label = route_label(r, &m);
            char st[16] = "other";
            if (statuses[s])
                snprintf(st, sizeof st, "%u", statuses[s]);
            buf_appendf(&b,
                        "sinergi_http_requests_total{method=\"%s\",route=\"%s\",status=\"%s\"} "
                        "%llu\n",
                        m, label, st, (unsigned long long)n);
        }
    buf_appends(&b, "# HELP sinergi_http_request_duration_seconds Time from request to response.\n"
                    "# TYPE sinergi_http_request_duration_seconds histogram\n");
    for (size_t r = 0; r <= MAX_ROUTES; r++) {
        uint64_t total = 0;
        for (size_t k = 0; k <= NBUCKETS; k++)
            total += atomic_load(&buckets[r][k]);
        if (!total)
            continue;
        const char *m, *label = route_label(r, &m);
        uint64_t cum = 0;
        for (size_t k = 0; k <= NBUCKETS; k++) {
            cum += atomic_load(&buckets[r][k]);
            if (k < NBUCKETS)
                buf_appendf(&b,
                            "sinergi_http_request_duration_seconds_bucket{method=\"%s\",route=\"%s\","
                            "le=\"%g\"} %llu\n",
                            m, label, bucket_s[k], (unsigned long long)cum);
            else
                buf_appendf(&b,
                            "sinergi_http_request_duration_seconds_bucket{method=\"%s\",route=\"%s\","
                            "le=\"+Inf\"} %llu\n",
                            m, label, (unsigned long long)cum);
        }
        buf_appendf(&b,
                    "sinergi_http_request_duration_seconds_sum{method=\"%s\",route=\"%s\"} %.6f\n"
                    "sinergi_http_request_duration_seconds_count{method=\"%s\",route=\"%s\"} %llu\n",
                    m, label, (double)atomic_load(&sum_us[r]) / 1e6, m, label,
                    (unsigned long long)total);
    }
    buf_appendf(&b,
                "# HELP sinergi_db_errors_total Database errors (busy, I/O, internal).\n"
                "# TYPE sinergi_db_errors_total counter\nsinergi_db_errors_total %llu\n",
                (unsigned long long)db_errors_total());
    size_t mlen;
    char *mq = mqtt_metrics_text(&mlen); /* nothing when MQTT is off */
    if (mq) {
        buf_append(&b, mq, mlen);
        free(mq);
    }
    return buf_detach(&b, len);
}
