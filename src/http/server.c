/* server: the libmicrohttpd daemon, request lifecycle, routing, access checks and responses. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/gzip.h"
#include "core/log.h"
#include "http/http.h"
#include "http/http_int.h"
#include "http/sse.h"
#include "http/static.h"
#include "core/banned.h"

enum { MAX_HEADERS = 8, JSON_MAX_DEPTH = 32 };

struct http_server {
    struct MHD_Daemon *d;
    struct app *app;
    atomic_int inflight;
    atomic_bool stopping;
    char id_prefix[9];
    atomic_uint_fast64_t id_next;
};

struct http_req {
    struct http_server *srv;
    struct MHD_Connection *mhd;
    struct arena *arena;
    struct db_conn *conn;
    const struct route *route;
    int route_index; /* -1 when no route matched */
    const char *method;
    char *path;
    const char *params[HTTP_MAX_PARAMS];
    struct buf body;
    size_t body_cap;
    size_t received; /* body bytes read, kept or dropped */
    struct err early; /* found before the body was read: answered once it is */
    char id[24];
    char client[INET6_ADDRSTRLEN];
    struct principal who;
    bool authed;
    uint64_t t0;
    /* response */
    unsigned status;
    char *resp_body; /* malloc'd, handed to MHD */
    struct MHD_Response *resp_mhd; /* ready-made (http__reply_mhd): wins over resp_body */
    size_t resp_len;
    const char *resp_type;
    bool resp_gzip; /* resp_body is gzip-compressed (Content-Encoding: gzip) */
    bool resp_vary; /* the body depends on Accept-Encoding (Vary) */
    int nheaders;
    const char *hname[MAX_HEADERS], *hvalue[MAX_HEADERS];
    bool responded;
    bool queued;    /* handed to MHD */
    bool suspended; /* waiting for another thread to reply */
};

/* ---- error statuses ---------------------------------------------------------------------- */
static const unsigned status_of[ERR__COUNT] = {
    [ERR_OK] = 200,           [ERR_INVALID] = 400,      [ERR_UNAUTHENTICATED] = 401,
    [ERR_FORBIDDEN] = 403,    [ERR_NOT_FOUND] = 404,    [ERR_METHOD] = 405,
    [ERR_CONFLICT] = 409,     [ERR_TOO_BIG] = 413,      [ERR_UNSUPPORTED] = 415,
    [ERR_RATE_LIMITED] = 429, [ERR_INTERNAL] = 500,     [ERR_UNAVAILABLE] = 503,
};

unsigned http_status_of(enum err_code code)
{
    return code > 0 && code < ERR__COUNT ? status_of[code] : 500;
}

/* ---- handler accessors ------------------------------------------------------------------- */
struct app *http_app(struct http_req *r)
{
    return r->srv->app;
}

struct arena *http_arena(struct http_req *r)
{
    return r->arena;
}

struct db_conn *http_db(struct http_req *r)
{
    if (!r->conn)
        r->conn = db_acquire(r->srv->app->db);
    return r->conn;
}

const char *http_param(struct http_req *r, int i)
{
    return i >= 0 && i < HTTP_MAX_PARAMS ? r->params[i] : NULL;
}

const char *http_query(struct http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->mhd, MHD_GET_ARGUMENT_KIND, name);
}

const char *http_header(struct http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->mhd, MHD_HEADER_KIND, name);
}

enum err_code http_query_int(struct http_req *r, const char *name, int64_t def, int64_t min,
                             int64_t max, int64_t *out, struct err *err)
{
    const char *v = http_query(r, name);
    *out = def;
    if (!v)
        return ERR_OK;
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (!*v || *end || errno || n < min || n > max)
        return err_set(err, ERR_INVALID, "query '%s' must be a whole number from %lld to %lld",
                       name, (long long)min, (long long)max);
    *out = n;
    return ERR_OK;
}

enum err_code http_query_time(struct http_req *r, const char *name, int64_t *out,
                              struct err *err)
{
    const char *v = http_query(r, name);
    *out = 0;
    if (v && !clock_parse(v, out))
        return err_set(err, ERR_INVALID,
                       "query '%s' must be a time like 2026-11-22T09:00:00+08:00", name);
    return ERR_OK;
}

bool http_query_flag(struct http_req *r, const char *name)
{
    const char *v = http_query(r, name);
    return v && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0);
}

const char *http_request_id(struct http_req *r)
{
    return r->id;
}

const struct principal *http_principal(struct http_req *r)
{
    return r->authed ? &r->who : NULL;
}

struct actor http_actor(struct http_req *r)
{
    return (struct actor){.who = http_principal(r), .request_id = r->id, .client = r->client};
}

bool http_may_touch_opd(struct http_req *r, const char *opd)
{
    if (!r->authed)
        return false;
    if (!(r->route->access.own_opd & (unsigned)r->who.role))
        return true;
    return opd && strcmp(opd, r->who.opd) == 0;
}

const char *http_body(struct http_req *r, size_t *len)
{
    *len = r->body.len;
    return r->body.ptr ? r->body.ptr : "";
}

/* Rejects documents nested deeper than JSON_MAX_DEPTH before the parser sees them. */
static bool depth_ok(const char *s, size_t n)
{
    int depth = 0;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (in_str) {
            if (ch == '\\')
                i++;
            else if (ch == '"')
                in_str = false;
        } else if (ch == '"') {
            in_str = true;
        } else if (ch == '{' || ch == '[') {
            if (++depth > JSON_MAX_DEPTH)
                return false;
        } else if (ch == '}' || ch == ']') {
            depth--;
        }
    }
    return true;
}

enum err_code http_body_json(struct http_req *r, json_t **out, struct err *err)
{
    size_t n;
    const char *s = http_body(r, &n);
    if (n == 0)
        return err_set(err, ERR_INVALID, "request body must be a JSON object");
    if (!depth_ok(s, n))
        return err_set(err, ERR_INVALID, "request body is nested deeper than %d levels",
                       JSON_MAX_DEPTH);
    json_error_t je;
    json_t *j = json_loadb(s, n, JSON_REJECT_DUPLICATES, &je);
    if (!j)
        return err_set(err, ERR_INVALID, "request body is not valid JSON: %s at line %d column %d",
                       je.text, je.line, je.column);
    if (!json_is_object(j)) {
        json_decref(j);
        return err_set(err, ERR_INVALID, "request body must be a JSON object");
    }
    *out = j;
    return ERR_OK;
}

/* ---- responses --------------------------------------------------------------------------- */
static void set_body(struct http_req *r, unsigned status, const char *type, char *body, size_t len)
{
    free(r->resp_body);
    if (r->resp_mhd)
        MHD_destroy_response(r->resp_mhd);
    r->resp_mhd = NULL;
    r->status = status;
    r->resp_type = type;
    r->resp_body = body;
    r->resp_len = len;
    r->resp_gzip = false;
    r->resp_vary = false;
    r->responded = true;
}

void http_reply_json(struct http_req *r, unsigned status, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(10));
    json_decref(j);
    if (!s) {
        s = strdup("{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}");
        status = 500;
    }
    set_body(r, status, "application/json; charset=utf-8", s, s ? strlen(s) : 0);
}

void http_reply_bytes(struct http_req *r, unsigned status, const char *ctype, const char *body,
                      size_t len)
{
    char *copy = malloc(len ? len : 1);
    if (copy && len)
        memcpy(copy, body, len);
    set_body(r, status, ctype, copy, copy ? len : 0);
}

void http_reply_take(struct http_req *r, unsigned status, const char *ctype, char *body,
                     size_t len)
{
    set_body(r, status, ctype, body, body ? len : 0);
}

void http_reply_gzipped(struct http_req *r, unsigned status, const char *ctype, char *gz,
                        size_t len)
{
    http_reply_take(r, status, ctype, gz, len);
    r->resp_gzip = r->resp_vary = r->resp_body != NULL;
}

bool http_accepts_gzip(struct http_req *r)
{
    return static__accepts_gzip(http_header(r, MHD_HTTP_HEADER_ACCEPT_ENCODING));
}

/* True when the comma-separated header value holds `token` (case-insensitive, OWS around). */
static bool has_token(const char *v, const char *token)
{
    size_t n = strlen(token);
    while (v && *v) {
        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        const char *end = v;
        while (*end && *end != ',')
            end++;
        const char *e = end;
        while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if ((size_t)(e - v) == n && strncasecmp(v, token, n) == 0)
            return true;
        v = end;
    }
    return false;
}

bool http_wants_fresh(struct http_req *r)
{
    const char *cc = http_header(r, MHD_HTTP_HEADER_CACHE_CONTROL);
    return has_token(cc, "no-cache") || has_token(cc, "max-age=0") ||
           has_token(http_header(r, MHD_HTTP_HEADER_PRAGMA), "no-cache");
}

void http_reply_empty(struct http_req *r, unsigned status)
{
    set_body(r, status, NULL, NULL, 0);
}

void http_add_header(struct http_req *r, const char *name, const char *value)
{
    if (r->nheaders >= MAX_HEADERS)
        return;
    r->hname[r->nheaders] = arena_strdup(r->arena, name);
    r->hvalue[r->nheaders] = arena_strdup(r->arena, value);
    if (r->hname[r->nheaders] && r->hvalue[r->nheaders])
        r->nheaders++;
}

struct MHD_Connection *http__mhd_connection(struct http_req *r)
{
    return r->mhd;
}

void http__reply_mhd(struct http_req *r, unsigned status, struct MHD_Response *resp)
{
    set_body(r, status, NULL, NULL, 0);
    r->resp_mhd = resp;
}

/* The one renderer of errors. A 5xx keeps its detail in the log under the request id. */
void http_reply_err(struct http_req *r, const struct err *e)
{
    unsigned status = http_status_of(e->code);
    const char *msg = e->msg[0] ? e->msg : err_code_name(e->code);
    char generic[160];
    if (e->code == ERR_INTERNAL) {
        log_error("req=%s event=internal_error route=%s detail=\"%s\"", r->id,
                  r->route ? r->route->pattern : "-", e->msg);
        snprintf(generic, sizeof generic,
                 "internal error; give request id %s to the administrator", r->id);
        msg = generic;
    }
    json_t *j = json_pack("{s:{s:s,s:s,s:s}}", "error", "code", err_code_name(e->code), "message",
                          msg, "request_id", r->id);
    http_reply_json(r, status, j);
}

/* ---- routing ----------------------------------------------------------------------------- */
/* Matches `path` against `pattern`, filling params. */
static bool match(struct arena *a, const char *pattern, const char *path,
                  const char *params[HTTP_MAX_PARAMS])
{
    const char *p = pattern, *s = path;
    int np = 0;
    while (*p && *s) {
        if (*p == '{') {
            /* {x} takes the rest of the segment, less a literal suffix the pattern gives
             * within the segment ("{id}.xml") */
            const char *pe = strchr(p, '}');
            const char *se = strchr(s, '/'), *suffix_end = strchr(pe + 1, '/');
            if (!se)
                se = s + strlen(s);
            size_t suffix = suffix_end ? (size_t)(suffix_end - pe - 1) : strlen(pe + 1);
            if ((size_t)(se - s) <= suffix || np >= HTTP_MAX_PARAMS ||
                strncmp(se - suffix, pe + 1, suffix) != 0)
                return false;
            se -= suffix;
            if (params && !(params[np] = arena_strndup(a, s, (size_t)(se - s))))
                return false;
            np++;
            p = pe + 1;
            s = se;
        } else if (*p++ != *s++) {
            return false;
        }
    }
    return *p == 0 && *s == 0;
}

static void route_request(struct http_req *r)
{
    const char *method = strcmp(r->method, "HEAD") == 0 ? "GET" : r->method;
    bool path_known = false;
    for (size_t i = 0; i < http_nroutes; i++) {
        const struct route *rt = &http_routes[i];
        if (!match(r->arena, rt->pattern, r->path, NULL))
            continue;
        path_known = true;
        if (strcmp(rt->method, method) == 0) {
            /* A segment that does not decode (a %00) leaves its param NULL: no such resource. */
            if (!match(r->arena, rt->pattern, r->path, r->params)) {
                err_set(&r->early, ERR_NOT_FOUND, "no such resource; see docs/API.md for the routes");
                return;
            }
            r->route = rt;
            r->route_index = (int)i;
            return;
        }
    }
    if (path_known) {
        char allow[64] = "";
        size_t n = 0;
        for (size_t i = 0; i < http_nroutes; i++)
            if (match(r->arena, http_routes[i].pattern, r->path, NULL))
                n += (size_t)snprintf(allow + n, n < sizeof allow ? sizeof allow - n : 0, "%s%s",
                                      n ? ", " : "", http_routes[i].method);
        http_add_header(r, "Allow", allow);
        err_set(&r->early, ERR_METHOD, "method %s is not allowed here; allowed: %s", r->method,
                allow);
    } else {
        err_set(&r->early, ERR_NOT_FOUND, "no such resource; see docs/API.md for the routes");
    }
}

/* ---- auth -------------------------------------------------------------------------------- */
static const char *session_token(struct http_req *r, bool *via_cookie)
{
    const char *h = http_header(r, MHD_HTTP_HEADER_AUTHORIZATION);
    *via_cookie = false;
    if (h && strncasecmp(h, "Bearer ", 7) == 0)
        return h + 7;
    const char *c = MHD_lookup_connection_value(r->mhd, MHD_COOKIE_KIND, "sinergi_session");
    if (c)
        *via_cookie = true;
    return c;
}

void http_suspend(struct http_req *r)
{
    r->suspended = true;
    MHD_suspend_connection(r->mhd);
}

void http_resume(struct http_req *r)
{
    MHD_resume_connection(r->mhd);
}

static bool is_write(const char *method)
{
    return strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0 &&
           strcmp(method, "OPTIONS") != 0;
}

/* Resolves the caller and applies the route's access rule. */
static enum err_code authorize(struct http_req *r, struct err *err)
{
    const struct access *ac = &r->route->access;
    bool via_cookie;
    /* public and device routes never look at a session: a browser's cookie costs nothing there */
    const char *token = ac->roles & (ACCESS_DEVICE | ACCESS_PUBLIC) ? NULL
                                                                    : session_token(r, &via_cookie);
    if (token) {
        struct err e = ERR_INIT;
        if (auth_session_resolve(http_db(r), token, &r->who, &e) == ERR_OK) {
            r->authed = true;
            r->who.via_cookie = via_cookie;
        } else if (!(ac->roles & ACCESS_PUBLIC) || e.code != ERR_UNAUTHENTICATED) {
            return err_set(err, e.code, "%s", e.msg);
        }
    }
    if (ac->roles & (ACCESS_PUBLIC | ACCESS_DEVICE))
        return ERR_OK;
    if (!r->authed)
        return err_set(err, ERR_UNAUTHENTICATED,
                       "sign in first: send 'Authorization: Bearer <token>' from POST /api/v1/auth/login");
    if (!(ac->roles & (unsigned)r->who.role))
        return err_set(err, ERR_FORBIDDEN, "role '%s' may not %s %s", auth_role_name(r->who.role),
                       r->route->method, r->route->pattern);
    if (r->who.via_cookie && is_write(r->method) &&
        !auth_csrf_matches(&r->who, http_header(r, "X-CSRF-Token")))
        return err_set(err, ERR_FORBIDDEN,
                       "cookie-authenticated writes need the X-CSRF-Token header from the login response");
    return ERR_OK;
}

static bool type_matches(const char *ctype, const char *want)
{
    if (!ctype)
        return false;
    size_t n = strlen(want);
    return strncasecmp(ctype, want, n) == 0 &&
           (ctype[n] == 0 || ctype[n] == ';' || ctype[n] == ' ');
}

static void dispatch(struct http_req *r)
{
    struct err err = ERR_INIT;
    if (r->early.code) {
        http_reply_err(r, &r->early);
        return;
    }
    if (r->body.len > 0) {
        const char *want = r->route->body_type ? r->route->body_type : "application/json";
        if (!type_matches(http_header(r, MHD_HTTP_HEADER_CONTENT_TYPE), want)) {
            err_set(&err, ERR_UNSUPPORTED, "send the body as Content-Type: %s", want);
            http_reply_err(r, &err);
            return;
        }
    }
    if (authorize(r, &err) == ERR_OK)
        r->route->fn(r, &err);
    if (r->suspended && !err.code) {
        /* another thread replies; from here on it may touch the response at any time */
        if (r->conn) {
            db_release(r->srv->app->db, r->conn);
            r->conn = NULL;
        }
        return;
    }
    if (err.code)
        http_reply_err(r, &err);
    else if (!r->responded)
        http_reply_empty(r, 204);
    if (r->conn) {
        db_release(r->srv->app->db, r->conn);
        r->conn = NULL;
    }
}

/* ---- libmicrohttpd callbacks ------------------------------------------------------------- */
static void client_address(struct http_req *r)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->mhd, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(r->client, sizeof r->client, "unknown");
    if (r->srv->app->cfg->trust_proxy) {
        const char *xff = http_header(r, "X-Forwarded-For");
        if (xff) {
            size_t n = strcspn(xff, ", ");
            if (n > 0 && n < sizeof r->client) {
                memcpy(r->client, xff, n);
                r->client[n] = 0;
                return;
            }
        }
    }
    if (!ci || !ci->client_addr)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, r->client,
                  sizeof r->client);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, r->client,
                  sizeof r->client);
}

static struct http_req *req_new(struct http_server *srv, struct MHD_Connection *conn,
                                const char *url, const char *method)
{
    struct arena *a = arena_new(0);
    struct http_req *r = a ? arena_alloc(a, sizeof *r) : NULL;
    if (!r) {
        arena_free(a);
        return NULL;
    }
    memset(r, 0, sizeof *r);
    r->srv = srv;
    r->mhd = conn;
    r->arena = a;
    r->route_index = -1;
    r->t0 = clock_mono_ns();
    r->method = arena_strdup(a, method);
    r->path = arena_strdup(a, url);
    if (!r->method || !r->path) {
        arena_free(a);
        return NULL;
    }
    snprintf(r->id, sizeof r->id, "%s%08llx", srv->id_prefix,
             (unsigned long long)(atomic_fetch_add(&srv->id_next, 1) & 0xffffffffu));
    client_address(r);
    atomic_fetch_add(&srv->inflight, 1);
    return r;
}

static void check_declared_length(struct http_req *r)
{
    r->body_cap = r->route && r->route->max_body ? r->route->max_body
                                                 : (size_t)r->srv->app->cfg->max_body;
    buf_init(&r->body, r->body_cap);
    const char *cl = http_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        char *end;
        unsigned long long n = strtoull(cl, &end, 10);
        if (*end == 0 && n > r->body_cap)
            err_set(&r->early, ERR_TOO_BIG, "request body is larger than %zu bytes", r->body_cap);
    }
}

/* ---- compression ------------------------------------------------------------------------- */
static bool compressible(const char *ctype)
{
    static const char *const types[] = {"application/json", "application/geo+json",
                                        "application/atom+xml", "application/cap+xml",
                                        "text/html", "text/plain"};
    for (size_t i = 0; ctype && i < sizeof types / sizeof types[0]; i++)
        if (type_matches(ctype, types[i]))
            return true;
    return false;
}

/* Replies to reads of HTTP_GZIP_MIN_BYTES or more in a text format go gzip-compressed to clients
 * that accept it (and say Vary: Accept-Encoding to everyone). Smaller ones are not worth the
 * CPU, streams (resp_mhd) and files (precompressed by `make web`) never come here, and replies
 * to writes stay as they are: they carry secrets shown once (tokens) beside what the client sent,
 * which is what a compression side channel (BREACH) needs. */
static void compress_reply(struct http_req *r)
{
    if (r->resp_mhd || !r->resp_body || r->resp_gzip || r->resp_len < HTTP_GZIP_MIN_BYTES ||
        is_write(r->method) || !compressible(r->resp_type))
        return;
    r->resp_vary = true;
    size_t n;
    char *gz = http_accepts_gzip(r) ? gzip_compress(r->resp_body, r->resp_len, GZIP_LEVEL, &n)
                                    : NULL;
    if (!gz)
        return;
    free(r->resp_body);
    r->resp_body = gz;
    r->resp_len = n;
    r->resp_gzip = true;
}

static enum MHD_Result queue(struct http_req *r)
{
    compress_reply(r);
    struct MHD_Response *resp = r->resp_mhd ? r->resp_mhd : MHD_create_response_from_buffer(
        r->resp_len, r->resp_body ? r->resp_body : (void *)"", r->resp_body ? MHD_RESPMEM_MUST_FREE
                                                                           : MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    r->resp_body = NULL; /* MHD owns it now */
    r->resp_mhd = NULL;
    if (r->resp_type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->resp_type);
    MHD_add_response_header(resp, "X-Request-Id", r->id);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    bool own_cache = false; /* a handler's own Cache-Control (static files) replaces no-store */
    for (int i = 0; i < r->nheaders; i++) {
        MHD_add_response_header(resp, r->hname[i], r->hvalue[i]);
        own_cache |= strcasecmp(r->hname[i], MHD_HTTP_HEADER_CACHE_CONTROL) == 0;
    }
    if (!own_cache)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (r->resp_gzip)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip");
    if (r->resp_vary)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Accept-Encoding");
    if (atomic_load(&r->srv->stopping))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(r->mhd, r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)version;
    struct http_req *r = *con_cls;
    if (!r) {
        /* First call: headers only. Answering now would cost keep-alive, so only note what is
         * wrong and answer once the body has been read. */
        r = req_new(cls, conn, url, method);
        if (!r)
            return MHD_NO;
        *con_cls = r;
        route_request(r);
        check_declared_length(r);
        if (r->early.code == ERR_TOO_BIG) { /* do not read a body we will refuse */
            http_reply_err(r, &r->early);
            r->queued = true;
            return queue(r);
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        r->received += *upload_data_size;
        if (!r->early.code && buf_append(&r->body, upload_data, *upload_data_size))
            err_set(&r->early, ERR_TOO_BIG, "request body is larger than %zu bytes", r->body_cap);
        *upload_data_size = 0;
        /* libmicrohttpd 0.9 refuses a response queued while the body is still arriving and
         * drops the connection unanswered; so a body found too big only while reading (chunked)
         * is dropped as it comes and answered at its end. Past twice the cap: cut off. */
        return r->received / 2 > r->body_cap ? MHD_NO : MHD_YES;
    }
    if (r->queued)
        return MHD_YES;
    if (r->suspended) { /* resumed: the other thread has set the reply */
        r->queued = true;
        return queue(r);
    }
    dispatch(r);
    if (r->suspended)
        return MHD_YES;
    r->queued = true;
    return queue(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)conn;
    struct http_server *srv = cls;
    struct http_req *r = *con_cls;
    if (!r)
        return;
    uint64_t dur = clock_mono_ns() - r->t0;
    unsigned status = r->responded ? r->status : 0;
    /* A stream's duration is how long someone watched, not how fast we answered: counted, but
     * kept out of the latency histogram. */
    bool streamed = r->route && r->route->fn == sse_http_stream;
    http_metrics_observe(r->route_index, status, streamed ? 0 : dur);
    /* Route pattern, never the raw path or query: they can carry personal data. */
    log_info("req=%s event=http method=%s route=%s status=%u ms=%.3f%s", r->id, r->method,
             r->route ? r->route->pattern : "-", status, (double)dur / 1e6,
             toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " aborted=1");
    if (r->conn)
        db_release(srv->app->db, r->conn);
    free(r->resp_body);
    buf_release(&r->body);
    arena_free(r->arena);
    *con_cls = NULL;
    atomic_fetch_sub(&srv->inflight, 1);
}

/* libmicrohttpd decodes the path and query values in place before any handler sees them, so a
 * %00 would silently cut a name short ("/regions/73.22%00x" read as 73.22). Text holding one is
 * left undecoded: it then matches no route and no stored name. */
static size_t unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    for (const char *p = s; (p = strchr(p, '%')) != NULL; p++)
        if (p[1] == '0' && p[2] == '0')
            return strlen(s);
    return MHD_http_unescape(s);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = 0;
    log_warn("event=mhd detail=\"%s\"", msg);
}

static enum err_code parse_listen(const char *listen, struct sockaddr_in *sa, struct err *err);

enum err_code http_check_listen(const char *listen, struct err *err)
{
    struct sockaddr_in sa;
    return parse_listen(listen, &sa, err);
}

static enum err_code parse_listen(const char *listen, struct sockaddr_in *sa, struct err *err)
{
    char host[64];
    const char *colon = strrchr(listen, ':');
    if (!colon || (size_t)(colon - listen) >= sizeof host)
        return err_set(err, ERR_INVALID, "setting 'listen' must be ADDR:PORT, e.g. 127.0.0.1:8080");
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = 0;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    if (*end || port < 0 || port > 65535 || inet_pton(AF_INET, host, &sa->sin_addr) != 1)
        return err_set(err, ERR_INVALID, "setting 'listen' must be IPv4ADDR:PORT, got '%s'", listen);
    sa->sin_port = htons((uint16_t)port);
    return ERR_OK;
}

static void check_route_table(void)
{
    for (size_t i = 0; i < http_nroutes; i++) {
        const struct route *rt = &http_routes[i];
        if (rt->access.roles == 0 || !rt->fn) {
            log_error("event=route_without_rule method=%s route=%s", rt->method, rt->pattern);
            abort();
        }
    }
}

enum err_code http_server_start(struct http_server **out, struct app *app, struct err *err)
{
    check_route_table();
    struct sockaddr_in sa;
    if (parse_listen(app->cfg->listen, &sa, err))
        return err->code;
    struct http_server *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(err, ERR_INTERNAL, "out of memory");
    s->app = app;
    uint32_t rnd = randombytes_random();
    snprintf(s->id_prefix, sizeof s->id_prefix, "%08x", rnd);
    long threads = app->cfg->threads > 0 ? app->cfg->threads : sysconf(_SC_NPROCESSORS_ONLN);
    if (threads < 1)
        threads = 1;
    s->d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
            MHD_USE_ERROR_LOG,
        0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)threads, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)app->cfg->conn_timeout_s, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)app->cfg->max_connections, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u, MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL,
        MHD_OPTION_END);
    if (!s->d) {
        free(s);
        return err_set(err, ERR_UNAVAILABLE, "cannot listen on %s (in use or not permitted)",
                       app->cfg->listen);
    }
    log_info("event=listening addr=%s threads=%ld", app->cfg->listen, threads);
    *out = s;
    return ERR_OK;
}

void http_server_stop(struct http_server *s)
{
    if (!s)
        return;
    atomic_store(&s->stopping, true);
    MHD_socket fd = MHD_quiesce_daemon(s->d);
    /* Quiesced, the socket still listens: the kernel would take new clients into a backlog that
     * nobody serves until they are reset at exit. Stop listening now so they are refused and go
     * elsewhere; the descriptor itself may be closed only after MHD_stop_daemon. */
    if (fd != MHD_INVALID_SOCKET)
        shutdown(fd, SHUT_RD);
    sse_shutdown(); /* streams end now, not at the deadline; none may be suspended at stop */
    uint64_t deadline = clock_mono_ns() + (uint64_t)s->app->cfg->shutdown_timeout_s * 1000000000u;
    struct timespec tick = {0, 5 * 1000 * 1000};
    while (atomic_load(&s->inflight) > 0 && clock_mono_ns() < deadline)
        nanosleep(&tick, NULL);
    int left = atomic_load(&s->inflight);
    MHD_stop_daemon(s->d);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    log_info("event=stopped inflight_left=%d", left);
    free(s);
}
