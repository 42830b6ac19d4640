/* notify_http: translates HTTP to the notify room's calls; no SQL here. */
#include <errno.h>
#include <stdlib.h>

#include "notify/notify.h"
#include "notify/notify_http.h"
#include "core/banned.h"

enum err_code notify_http_webhook_list(struct http_req *r, struct err *err)
{
    json_t *out;
    if (notify_webhook_list(http_db(r), &out, err))
        return err->code;
    http_reply_json(r, 200, out);
    return ERR_OK;
}

enum err_code notify_http_webhook_create(struct http_req *r, struct err *err)
{
    json_t *in, *out;
    struct actor a = http_actor(r);
    if (http_body_json(r, &in, err))
        return err->code;
    if (notify_webhook_create(http_db(r), &a, in, &out, err) == ERR_OK)
        http_reply_json(r, 201, out);
    json_decref(in);
    return err->code;
}

enum err_code notify_http_webhook_delete(struct http_req *r, struct err *err)
{
    const char *p = http_param(r, 0);
    char *end;
    errno = 0;
    long long id = strtoll(p, &end, 10);
    if (errno || end == p || *end || id < 1)
        return err_set(err, ERR_NOT_FOUND, "no webhook with id '%.40s'", p);
    struct actor a = http_actor(r);
    if (notify_webhook_delete(http_db(r), &a, id, err))
        return err->code;
    http_reply_empty(r, 204);
    return ERR_OK;
}
