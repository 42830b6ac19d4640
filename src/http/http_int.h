/* http_int: what the files of src/http share beyond http.h; handlers outside src/http never
 * include it (they do not see libmicrohttpd). */
#ifndef SINERGI_HTTP_INT_H
#define SINERGI_HTTP_INT_H

#include "http/http.h"

struct MHD_Connection;
struct MHD_Response;

/* The libmicrohttpd connection of a request (borrowed; valid until the request completes). */
struct MHD_Connection *http__mhd_connection(struct http_req *r);

/* Answers with a ready-made response (a streaming one, for instance) instead of a body. The
 * server adds its common headers and queues it; `resp` is stolen. A later http_reply_* or error
 * replaces it (and destroys it). */
void http__reply_mhd(struct http_req *r, unsigned status, struct MHD_Response *resp);

#endif
