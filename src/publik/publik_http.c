/* publik_http: HTTP to the public page. Short public caching (a page every resident fetches
 * at once during a flood should be served by any cache in between) and a policy that lets the
 * page run no script and load nothing: even a missed escape could not execute. */
#include <stdlib.h>

#include "core/clock.h"
#include "publik/publik.h"
#include "publik/publik_http.h"
#include "core/banned.h"

enum err_code publik_http_page(struct http_req *r, struct err *err)
{
    char *page;
    size_t len;
    if (publik_render(http_db(r), http_app(r)->cfg->regency, clock_now_s(), &page, &len, err))
        return err->code;
    /* Effective once the server stops adding its default "no-store" when a handler sets its
     * own Cache-Control (until then both are sent and no-store wins, which is safe). */
    http_add_header(r, "Cache-Control", "public, max-age=30");
    http_add_header(r, "Content-Security-Policy",
                    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
                    "form-action 'none'; frame-ancestors 'none'");
    http_reply_take(r, 200, "text/html; charset=utf-8", page, len);
    return ERR_OK;
}
