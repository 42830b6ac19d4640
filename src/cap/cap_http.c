/* cap_http: HTTP to the CAP room. Public: warnings are for everyone, and only public alerts
 * (alerts.public = 1) have documents. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cap/cap.h"
#include "cap/cap_http.h"
#include "core/clock.h"
#include "core/banned.h"

/* "http://<listen>": absolute links for <web> and the feed. A wildcard listen address names no
 * host, so the Host the client used is taken instead when it is a plain host[:port]. */
static void base_url(struct http_req *r, char *out, size_t n)
{
    const char *listen = http_app(r)->cfg->listen;
    const char *port = strrchr(listen, ':');
    if (strncmp(listen, "0.0.0.0:", 8) != 0) {
        snprintf(out, n, "http://%s", listen);
        return;
    }
    const char *host = http_header(r, "Host");
    size_t len = host ? strlen(host) : 0;
    bool plain = len > 0 && len < 256 &&
                 strspn(host, "abcdefghijklmnopqrstuvwxyz"
                              "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                              "0123456789.-:[]") == len;
    if (plain)
        snprintf(out, n, "http://%s", host);
    else
        snprintf(out, n, "http://localhost%s", port ? port : "");
}

/* "<digits>-<digits>", each a positive 64-bit number without sign or leading zero. */
static bool parse_message_id(const char *s, int64_t *alert_id, int64_t *version)
{
    int64_t v[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        if (*s < '1' || *s > '9')
            return false;
        for (; *s >= '0' && *s <= '9'; s++) {
            if (v[k] > (INT64_MAX - (*s - '0')) / 10)
                return false;
            v[k] = v[k] * 10 + (*s - '0');
        }
        if (*s++ != (k == 0 ? '-' : '\0'))
            return false;
    }
    *alert_id = v[0];
    *version = v[1];
    return true;
}

enum err_code cap_http_alert(struct http_req *r, struct err *err)
{
    int64_t id, version;
    const char *param = http_param(r, 0);
    char base[300];
    char *doc;
    size_t len;
    if (!parse_message_id(param, &id, &version))
        return err_set(err, ERR_NOT_FOUND, "no CAP message '%.64s': use <alert id>-<version>",
                       param);
    base_url(r, base, sizeof base);
    struct cap_site site = {http_app(r)->cfg->regency, base};
    if (cap_render_alert(http_db(r), &site, id, version, &doc, &len, err))
        return err->code;
    http_reply_take(r, 200, "application/cap+xml; charset=utf-8", doc, len);
    return ERR_OK;
}

enum err_code cap_http_feed(struct http_req *r, struct err *err)
{
    char base[300];
    char *doc;
    size_t len;
    base_url(r, base, sizeof base);
    struct cap_site site = {http_app(r)->cfg->regency, base};
    if (cap_render_feed(http_db(r), &site, clock_now_s(), &doc, &len, err))
        return err->code;
    http_reply_take(r, 200, "application/atom+xml; charset=utf-8", doc, len);
    return ERR_OK;
}
