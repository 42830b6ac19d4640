/* sse: GET /api/v1/events, the live event stream (Server-Sent Events) over the events hub.
 * A stream with nothing to send suspends its connection instead of holding a worker thread;
 * a timer thread resumes it after a publish (batched, SSE_BATCH_MS) or for its heartbeat. */
#ifndef SINERGI_SSE_H
#define SINERGI_SSE_H

#include <stdint.h>

#include "events/events.h"
#include "http/http.h"

/* GET /api/v1/events?station=a,b&kind=water_level,rain, resuming after the Last-Event-ID
 * header (or the last_event_id query, for EventSource polyfills); without one, only events
 * published from now on. ERR_INVALID names a bad filter or id; ERR_UNAVAILABLE when shutting
 * down or when too many streams are open. */
enum err_code sse_http_stream(struct http_req *r, struct err *err);

/* Ends every stream (cleanly: the chunked body is terminated, so EventSource reconnects after
 * its retry delay) and refuses new ones. Call when the server stops: after it stops accepting
 * and before it waits for in-flight requests (a stream is in flight until it ends), and in any
 * case before MHD_stop_daemon, which must not meet a suspended connection. Idempotent. */
void sse_shutdown(void);

/* ---- internal: the stream without the route (tests/unit/test_events.c drives it directly) */
struct MHD_Connection;
struct MHD_Response;

enum { SSE_RETRY_MS = 3000, SSE_BATCH_MS = 100 };

struct sse_params {
    uint64_t cursor; /* deliver events after this id */
    struct events_filter filter;
    unsigned heartbeat_s; /* >= 1 */
};

/* A chunked text/event-stream response for `conn` (owned by the caller until queued, then by
 * libmicrohttpd). NULL when shutting down or out of memory. The connection's daemon must have
 * MHD_ALLOW_SUSPEND_RESUME. */
struct MHD_Response *sse__response_new(struct MHD_Connection *conn, const struct sse_params *p);

/* Streams alive now (borrowed by a connection, not yet freed). */
int sse__nstreams(void);

#endif
