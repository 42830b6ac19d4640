/* Operational endpoints: health, metrics and the route table itself. */
#ifndef SINERGI_OPS_HTTP_H
#define SINERGI_OPS_HTTP_H

#include "http/http.h"

enum err_code ops_http_healthz(struct http_req *r, struct err *err);
enum err_code ops_http_metrics(struct http_req *r, struct err *err);
enum err_code ops_http_routes(struct http_req *r, struct err *err);

#endif
