/* static: serves the COC web app from the web_dir setting: index.html and the flat assets
 * directory, with ETag revalidation, cache lifetimes by name and precompressed gzip siblings. */
#include "http/static.h"

#include <ctype.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "http/http_int.h"
#include "core/banned.h"

enum { NAME_MAX_LEN = 128 };

static const char cache_immutable[] = "public, max-age=31536000, immutable";
static const char cache_revalidate[] = "no-cache";

static const struct {
    const char *ext;
    const char *type;
} types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".json", "application/json; charset=utf-8"},
    {".geojson", "application/geo+json"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".woff2", "font/woff2"},
    {".txt", "text/plain; charset=utf-8"},
    {".webmanifest", "application/manifest+json"},
};

/* ---- pure helpers ------------------------------------------------------------------------ */
bool static__name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    return n > 0 && n <= NAME_MAX_LEN && name[0] != '.' &&
           strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

const char *static__content_type(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot)
        return NULL;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return NULL;
}

bool static__fingerprinted(const char *name)
{
    for (const char *p = name; *p; p++) {
        if (*p != '-' && *p != '.')
            continue;
        const char *q = p + 1;
        if (*p == '-' && isdigit((unsigned char)*q)) { /* a version: -1.9.4 */
            const char *s = q;
            while (isdigit((unsigned char)*s))
                s++;
            if (*s == '.' && isdigit((unsigned char)s[1]))
                return true;
        }
        size_t n = strspn(q, "0123456789abcdef"); /* a content hash: .3f9a0c1d. */
        if (n >= 8 && (q[n] == '.' || q[n] == '-'))
            return true;
    }
    return false;
}

/* q=0, q=0., q=0.0 ... refuse a coding (RFC 9110 12.4.2); `v` points after "q=". */
static bool q_is_zero(const char *v, const char *end)
{
    if (v >= end || *v != '0')
        return false;
    v++;
    if (v < end && *v == '.')
        for (v++; v < end && *v == '0'; v++)
            ;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    return v == end;
}

bool static__accepts_gzip(const char *ae)
{
    int gzip = -1, star = -1; /* -1 absent, 0 refused, 1 accepted */
    for (const char *p = ae; p && *p;) {
        p += strspn(p, " \t,");
        const char *end = p + strcspn(p, ",");
        size_t n = strcspn(p, "; \t,");
        bool refused = false;
        for (const char *s = memchr(p, ';', (size_t)(end - p)); s && s < end;
             s = memchr(s + 1, ';', (size_t)(end - s - 1))) {
            const char *k = s + 1 + strspn(s + 1, " \t");
            if ((*k == 'q' || *k == 'Q') && k[1] == '=')
                refused = q_is_zero(k + 2, end);
        }
        if ((n == 4 && strncasecmp(p, "gzip", 4) == 0) ||
            (n == 6 && strncasecmp(p, "x-gzip", 6) == 0))
            gzip = !refused;
        else if (n == 1 && *p == '*')
            star = !refused;
        p = end;
    }
    return gzip >= 0 ? gzip == 1 : star == 1;
}

bool static__etag_matches(const char *inm, const char *etag)
{
    size_t elen = strlen(etag);
    for (const char *p = inm; p && *p;) {
        p += strspn(p, " \t,");
        size_t n = strcspn(p, ",");
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n == 1 && *p == '*')
            return true;
        const char *tag = p;
        size_t tn = n;
        if (tn >= 2 && tag[0] == 'W' && tag[1] == '/') { /* weak comparison */
            tag += 2;
            tn -= 2;
        }
        if (tn == elen && memcmp(tag, etag, elen) == 0)
            return true;
        p += n;
        p += strcspn(p, ",");
    }
    return false;
}

/* ---- serving ----------------------------------------------------------------------------- */
/* An open regular file within the size cap, or -1 (absent, not regular, too big). */
static int open_file(const char *path, struct stat *st)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        close(fd);
        return -1;
    }
    if (st->st_size > STATIC_MAX_BYTES) {
        log_warn("event=static_too_big size=%lld cap=%d", (long long)st->st_size, STATIC_MAX_BYTES);
        close(fd);
        return -1;
    }
    return fd;
}

static void add_cache_headers(struct http_req *r, const char *etag, const char *cache)
{
    http_add_header(r, MHD_HTTP_HEADER_ETAG, etag);
    http_add_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, cache);
    http_add_header(r, MHD_HTTP_HEADER_VARY, "Accept-Encoding");
}

/* True (and the 304 set) when the client's copy is current. */
static bool not_modified(struct http_req *r, const char *etag, const char *cache)
{
    const char *inm = http_header(r, MHD_HTTP_HEADER_IF_NONE_MATCH);
    if (!inm || !static__etag_matches(inm, etag))
        return false;
    add_cache_headers(r, etag, cache);
    http_reply_empty(r, 304);
    return true;
}

/* Sends `path` (or its .gz sibling when the client takes gzip and the sibling is not older). */
static enum err_code send_file(struct http_req *r, const char *path, const char *ctype,
                               const char *cache, struct err *err)
{
    struct stat st, gst;
    int fd = open_file(path, &st);
    if (fd < 0)
        return err_set(err, ERR_NOT_FOUND, "no such file; the web app is built by 'make web'");
    bool gz = false;
    if (static__accepts_gzip(http_header(r, MHD_HTTP_HEADER_ACCEPT_ENCODING))) {
        char gzpath[sizeof http_app(r)->cfg->web_dir + NAME_MAX_LEN + 16];
        snprintf(gzpath, sizeof gzpath, "%s.gz", path);
        int gfd = open_file(gzpath, &gst);
        /* `gzip -k` keeps the source's mtime: an older .gz is stale (the source was edited) */
        if (gfd >= 0 && gst.st_mtime >= st.st_mtime) {
            close(fd);
            fd = gfd;
            st = gst;
            gz = true;
        } else if (gfd >= 0) {
            close(gfd);
        }
    }
    char etag[64];
    snprintf(etag, sizeof etag, "\"%llx-%llx%s\"", (unsigned long long)st.st_size,
             (unsigned long long)st.st_mtim.tv_sec * 1000000000ull +
                 (unsigned long long)st.st_mtim.tv_nsec,
             gz ? "-gz" : "");
    if (not_modified(r, etag, cache)) {
        close(fd);
        return ERR_OK;
    }
    struct MHD_Response *resp = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
    if (!resp) {
        close(fd);
        return err_set(err, ERR_INTERNAL, "cannot create a file response");
    }
    http__reply_mhd(r, 200, resp); /* resp owns fd now */
    http_add_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (gz)
        http_add_header(r, MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip");
    add_cache_headers(r, etag, cache);
    return ERR_OK;
}

/* The scheme of the tile server ("https:"), so the map's images may come from it; "" if none. */
static void tile_scheme(const char *tile_url, char *out, size_t n)
{
    size_t len = strspn(tile_url, "abcdefghijklmnopqrstuvwxyz");
    out[0] = 0;
    if (len > 0 && len < 8 && strncmp(tile_url + len, "://", 3) == 0)
        snprintf(out, n, " %.*s:", (int)len, tile_url);
}

enum err_code static_http_index(struct http_req *r, struct err *err)
{
    const struct config *cfg = http_app(r)->cfg;
    char path[sizeof cfg->web_dir + 16], scheme[16], csp[400];
    snprintf(path, sizeof path, "%s/index.html", cfg->web_dir);
    tile_scheme(cfg->tile_url, scheme, sizeof scheme);
    snprintf(csp, sizeof csp,
             "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
             "img-src 'self' data: blob:%s; connect-src 'self'; object-src 'none'; "
             "base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
             scheme);
    if (send_file(r, path, "text/html; charset=utf-8", cache_revalidate, err))
        return err->code;
    http_add_header(r, "Content-Security-Policy", csp);
    return ERR_OK;
}

/* 64-bit FNV-1a: an ETag for generated bodies. */
static unsigned long long fnv1a(const char *s, size_t n)
{
    unsigned long long h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

/* config.json: what the page needs of the settings; small, and never a secret. */
static enum err_code send_config(struct http_req *r, struct err *err)
{
    const struct config *cfg = http_app(r)->cfg;
    json_t *j = json_pack("{s:s,s:s}", "tile_url", cfg->tile_url, "regency", cfg->regency);
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII) : NULL;
    json_decref(j);
    if (!s)
        return err_set(err, ERR_INTERNAL, "out of memory rendering config.json");
    size_t n = strlen(s);
    char etag[32];
    snprintf(etag, sizeof etag, "\"c%016llx\"", fnv1a(s, n));
    if (!not_modified(r, etag, cache_revalidate)) {
        http_reply_bytes(r, 200, "application/json; charset=utf-8", s, n);
        http_add_header(r, MHD_HTTP_HEADER_ETAG, etag);
        http_add_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, cache_revalidate);
    }
    free(s);
    return ERR_OK;
}

enum err_code static_http_asset(struct http_req *r, struct err *err)
{
    const char *name = http_param(r, 0);
    const char *ctype = static__name_ok(name) ? static__content_type(name) : NULL;
    if (!ctype)
        return err_set(err, ERR_NOT_FOUND, "no such asset");
    if (strcmp(name, "config.json") == 0)
        return send_config(r, err);
    const struct config *cfg = http_app(r)->cfg;
    char path[sizeof cfg->web_dir + NAME_MAX_LEN + 16];
    snprintf(path, sizeof path, "%s/assets/%s", cfg->web_dir, name);
    return send_file(r, path, ctype,
                     static__fingerprinted(name) ? cache_immutable : cache_revalidate, err);
}
