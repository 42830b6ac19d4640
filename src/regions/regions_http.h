/* HTTP handlers of the regions room. */
#ifndef SINERGI_REGIONS_HTTP_H
#define SINERGI_REGIONS_HTTP_H

#include "http/http.h"

enum err_code regions_http_list(struct http_req *r, struct err *err);
enum err_code regions_http_get(struct http_req *r, struct err *err);
enum err_code regions_http_rivers(struct http_req *r, struct err *err);

#endif
