/* static: the COC web app's files. GET / is <web_dir>/index.html; GET /assets/{file} is one file
 * of the flat directory <web_dir>/assets. Files are opened at request time (a deploy needs no
 * restart), sent from their descriptor, validated by ETag, and sent as their precompressed
 * `.gz` sibling (made by `make web`) when the client accepts gzip. */
#ifndef SINERGI_STATIC_H
#define SINERGI_STATIC_H

#include <stdbool.h>
#include <stddef.h>

#include "http/http.h"

/* Largest file served; a bigger one is answered 404 and logged (it was not meant to be here). */
enum { STATIC_MAX_BYTES = 8 << 20 };

/* GET /: index.html, `Cache-Control: no-cache` (always revalidated, so a deploy shows at the
 * next load) and a Content-Security-Policy that allows only this origin (and the tile server's
 * scheme when the tile_url setting is set). */
enum err_code static_http_index(struct http_req *r, struct err *err);

/* GET /assets/{file}: names of [a-z0-9._-] only, not starting with a dot, with a known
 * extension; anything else is 404 without touching the file system. Fingerprinted names
 * (static__fingerprinted) are cached for a year as immutable, others revalidated (no-cache).
 * `config.json` is not a file: it is the browser's view of the settings ({"tile_url","regency"}).
 */
enum err_code static_http_asset(struct http_req *r, struct err *err);

/* ---- internal, for tests/unit/test_static.c ------------------------------------------------ */
/* True when `name` may name a file of the assets directory. */
bool static__name_ok(const char *name);
/* Content-Type for the name's extension; NULL when the extension is not served. */
const char *static__content_type(const char *name);
/* True when the name carries a version or content hash ("leaflet-1.9.4.js", "app.3f9a0c1d.js"),
 * so its content never changes under that name. */
bool static__fingerprinted(const char *name);
/* True when an Accept-Encoding header value accepts gzip (a "gzip" or "*" coding, q > 0). */
bool static__accepts_gzip(const char *accept_encoding);
/* True when an If-None-Match header value matches `etag` (a quoted strong tag), weakly. */
bool static__etag_matches(const char *if_none_match, const char *etag);

#endif
