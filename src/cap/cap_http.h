/* cap_http: the public CAP endpoints, GET /cap/alerts/{id}.xml and GET /cap/alerts.atom. */
#ifndef SINERGI_CAP_HTTP_H
#define SINERGI_CAP_HTTP_H

#include "http/http.h"

/* {id} is "<alert id>-<version>"; anything that is not a CAP message is 404. */
enum err_code cap_http_alert(struct http_req *r, struct err *err);
enum err_code cap_http_feed(struct http_req *r, struct err *err);

#endif
