/* http: libmicrohttpd glue. One route table states every route and who may call it; each request
 * owns an arena; every error leaves through one renderer with one JSON shape. */
#ifndef SINERGI_HTTP_H
#define SINERGI_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "app.h"
#include "auth/auth.h"
#include "core/arena.h"
#include "core/err.h"

struct http_req;
struct http_server;

typedef enum err_code (*http_handler_fn)(struct http_req *r, struct err *err);

/* The access rule of a route. `roles` lists who may call it (ACCESS_PUBLIC: anyone, signed in
 * or not); `own_opd` lists the roles that may only touch objects of their own OPD: handlers
 * check that with http_may_touch_opd and answer 404 otherwise, so ids do not leak. */
#define ACCESS_PUBLIC 0x100u
/* Called by devices, not people: the handler checks the station's device token itself. */
#define ACCESS_DEVICE 0x200u
struct access {
    unsigned roles;
    unsigned own_opd;
};

struct route {
    const char *method;  /* "GET", "POST", "PATCH", "PUT", "DELETE" */
    const char *pattern; /* "/api/v1/users/{username}": {x} matches one segment */
    http_handler_fn fn;
    struct access access;
    const char *body_type; /* accepted Content-Type of the body; NULL = application/json */
    size_t max_body;       /* 0 = the max_body setting */
};

extern const struct route http_routes[];
extern const size_t http_nroutes;

enum { HTTP_MAX_PARAMS = 4 };

/* ---- for handlers ------------------------------------------------------------------------ */
struct app *http_app(struct http_req *r);
struct arena *http_arena(struct http_req *r);
/* A connection held for the rest of the request (released by the server). */
struct db_conn *http_db(struct http_req *r);
/* i-th {param} of the route pattern, percent-decoded. */
const char *http_param(struct http_req *r, int i);
const char *http_query(struct http_req *r, const char *name);
const char *http_header(struct http_req *r, const char *name);
/* Optional query parameters: absent leaves the default; malformed is ERR_INVALID naming it. */
enum err_code http_query_int(struct http_req *r, const char *name, int64_t def, int64_t min,
                             int64_t max, int64_t *out, struct err *err);
/* RFC 3339 or epoch seconds; absent gives 0. */
enum err_code http_query_time(struct http_req *r, const char *name, int64_t *out,
                              struct err *err);
bool http_query_flag(struct http_req *r, const char *name);
const char *http_request_id(struct http_req *r);
/* NULL on a public route called without a session. */
const struct principal *http_principal(struct http_req *r);
struct actor http_actor(struct http_req *r);
/* False when the caller's role is limited to its own OPD by the route and `opd` is another. */
bool http_may_touch_opd(struct http_req *r, const char *opd);
/* The body as a JSON object, depth-checked; ERR_INVALID names what is wrong. The caller owns it. */
enum err_code http_body_json(struct http_req *r, json_t **out, struct err *err);
const char *http_body(struct http_req *r, size_t *len);

/* Set the response. `j` is stolen. */
void http_reply_json(struct http_req *r, unsigned status, json_t *j);
/* `body` is copied. */
void http_reply_bytes(struct http_req *r, unsigned status, const char *ctype, const char *body,
                      size_t len);
/* `body` (malloc'ed; may be NULL only with len 0) is taken: the server frees it once sent. */
void http_reply_take(struct http_req *r, unsigned status, const char *ctype, char *body,
                     size_t len);
void http_reply_empty(struct http_req *r, unsigned status);
/* Replies of http_reply_json and http_reply_bytes to GET and HEAD of at least this many bytes in
 * a text format (JSON, GeoJSON, Atom, CAP, HTML, plain text) are sent gzip-compressed
 * (Content-Encoding: gzip) when the request's Accept-Encoding takes gzip, q-values honoured;
 * they carry Vary: Accept-Encoding either way. Replies to writes are never compressed. */
enum { HTTP_GZIP_MIN_BYTES = 1024 };
/* True when the request's Accept-Encoding takes gzip ("gzip;q=0" does not). */
bool http_accepts_gzip(struct http_req *r);
/* True when the client asks for a reply not served from a cache: Cache-Control: no-cache (or
 * max-age=0) or Pragma: no-cache (RFC 9111 §5.2.1). */
bool http_wants_fresh(struct http_req *r);
/* A body the caller already gzip-compressed (a cached copy, core/gzip.h), for a request that
 * http_accepts_gzip: sent as it is with Content-Encoding: gzip. `gz` (malloc'ed) is taken. */
void http_reply_gzipped(struct http_req *r, unsigned status, const char *ctype, char *gz,
                        size_t len);
/* The error body of every route, for handlers that answer after a suspend. */
void http_reply_err(struct http_req *r, const struct err *e);
/* Lets a handler answer later from another thread. Call http_suspend before handing the request
 * to the other thread and return ERR_OK without replying; that thread sets the reply with
 * http_reply_* and then calls http_resume exactly once. The request stays valid until then. */
void http_suspend(struct http_req *r);
void http_resume(struct http_req *r);
/* Extra response header; both strings are copied. */
void http_add_header(struct http_req *r, const char *name, const char *value);

/* ---- server ------------------------------------------------------------------------------
 * Paths reach handlers already percent-decoded by libmicrohttpd (text holding %00 is left as
 * it is, so it matches nothing). */
/* Checks the listen setting (IPv4ADDR:PORT) without binding; for startup before side effects. */
enum err_code http_check_listen(const char *listen, struct err *err);
/* Binds the listen address and starts the worker threads. */
enum err_code http_server_start(struct http_server **out, struct app *app, struct err *err);
/* Stops accepting, lets in-flight requests finish (up to the shutdown timeout), then stops. */
void http_server_stop(struct http_server *s);

/* HTTP status of an error code: the only place status numbers for errors live. */
unsigned http_status_of(enum err_code code);

/* Metrics, rendered in the Prometheus text format. */
void http_metrics_observe(int route_index, unsigned status, uint64_t duration_ns);
char *http_metrics_render(size_t *len);

#endif
