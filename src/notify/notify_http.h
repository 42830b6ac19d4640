/* HTTP handlers of the notify room: webhook targets (admin only). */
#ifndef SINERGI_NOTIFY_HTTP_H
#define SINERGI_NOTIFY_HTTP_H

#include "http/http.h"

enum err_code notify_http_webhook_list(struct http_req *r, struct err *err);
enum err_code notify_http_webhook_create(struct http_req *r, struct err *err);
enum err_code notify_http_webhook_delete(struct http_req *r, struct err *err);

#endif
