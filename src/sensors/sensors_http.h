/* HTTP handlers of the sensors room: stations, ingest, readings, latest values. */
#ifndef SINERGI_SENSORS_HTTP_H
#define SINERGI_SENSORS_HTTP_H

#include "http/http.h"

enum err_code sensors_http_list(struct http_req *r, struct err *err);
enum err_code sensors_http_public_list(struct http_req *r, struct err *err);
enum err_code sensors_http_create(struct http_req *r, struct err *err);
enum err_code sensors_http_get(struct http_req *r, struct err *err);
enum err_code sensors_http_update(struct http_req *r, struct err *err);
enum err_code sensors_http_delete(struct http_req *r, struct err *err);
enum err_code sensors_http_rotate_token(struct http_req *r, struct err *err);
enum err_code sensors_http_latest(struct http_req *r, struct err *err);
enum err_code sensors_http_readings(struct http_req *r, struct err *err);
enum err_code sensors_http_ingest(struct http_req *r, struct err *err);
enum err_code sensors_http_gateway_list(struct http_req *r, struct err *err);
enum err_code sensors_http_gateway_create(struct http_req *r, struct err *err);
enum err_code sensors_http_gateway_get(struct http_req *r, struct err *err);
enum err_code sensors_http_gateway_delete(struct http_req *r, struct err *err);
enum err_code sensors_http_gateway_rotate_token(struct http_req *r, struct err *err);

#endif
