/* HTTP handlers of the early warning: alerts and per-station rules. */
#ifndef SINERGI_EWS_HTTP_H
#define SINERGI_EWS_HTTP_H

#include "http/http.h"

enum err_code ews_http_alert_list(struct http_req *r, struct err *err);
enum err_code ews_http_alert_get(struct http_req *r, struct err *err);
enum err_code ews_http_alert_ack(struct http_req *r, struct err *err);
enum err_code ews_http_alert_shelve(struct http_req *r, struct err *err);
enum err_code ews_http_rules_get(struct http_req *r, struct err *err);
enum err_code ews_http_rule_update(struct http_req *r, struct err *err);

#endif
