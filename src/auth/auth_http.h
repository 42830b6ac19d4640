/* HTTP handlers of the auth room: sign-in, OPDs, users, audit. */
#ifndef SINERGI_AUTH_HTTP_H
#define SINERGI_AUTH_HTTP_H

#include "http/http.h"

enum err_code auth_http_login(struct http_req *r, struct err *err);
enum err_code auth_http_logout(struct http_req *r, struct err *err);
enum err_code auth_http_me(struct http_req *r, struct err *err);
enum err_code auth_http_opd_list(struct http_req *r, struct err *err);
enum err_code auth_http_opd_get(struct http_req *r, struct err *err);
enum err_code auth_http_opd_create(struct http_req *r, struct err *err);
enum err_code auth_http_opd_update(struct http_req *r, struct err *err);
enum err_code auth_http_opd_delete(struct http_req *r, struct err *err);
enum err_code auth_http_user_list(struct http_req *r, struct err *err);
enum err_code auth_http_user_get(struct http_req *r, struct err *err);
enum err_code auth_http_user_create(struct http_req *r, struct err *err);
enum err_code auth_http_user_update(struct http_req *r, struct err *err);
enum err_code auth_http_user_delete(struct http_req *r, struct err *err);
enum err_code auth_http_audit_list(struct http_req *r, struct err *err);

#endif
