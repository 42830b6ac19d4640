/* publik_http: GET /publik, the public flood status page (no sign-in). */
#ifndef SINERGI_PUBLIK_HTTP_H
#define SINERGI_PUBLIK_HTTP_H

#include "http/http.h"

enum err_code publik_http_page(struct http_req *r, struct err *err);

#endif
