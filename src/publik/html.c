/* html: the escaping writer the public page is built with, and the Indonesian formats of times
 * and numbers it shows. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "publik/publik_int.h"
#include "core/banned.h"

void html_init(struct html *h, size_t max)
{
    buf_init(&h->b, max);
    h->rc = ERR_OK;
}

static void put(struct html *h, const char *p, size_t n)
{
    if (!h->rc && n)
        h->rc = buf_append(&h->b, p, n);
}

void html__markup(struct html *h, const char *literal)
{
    put(h, literal, strlen(literal));
}

void html_text(struct html *h, const char *text)
{
    const char *run = text;
    for (const char *p = text; p && *p; p++) {
        const char *ent = NULL;
        unsigned char ch = (unsigned char)*p;
        switch (ch) {
        case '&':
            ent = "&amp;";
            break;
        case '<':
            ent = "&lt;";
            break;
        case '>':
            ent = "&gt;";
            break;
        case '"':
            ent = "&quot;";
            break;
        case '\'':
            ent = "&#39;";
            break;
        default:
            /* C0 controls (but tab and newlines) and DEL are not allowed in HTML text */
            if ((ch < 0x20 && ch != '\t' && ch != '\n' && ch != '\r') || ch == 0x7f)
                ent = "";
        }
        if (!ent)
            continue;
        put(h, run, (size_t)(p - run));
        put(h, ent, strlen(ent));
        run = p + 1;
    }
    if (run)
        put(h, run, strlen(run));
}

void html_textf(struct html *h, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        if (!h->rc)
            h->rc = ERR_INTERNAL;
        return;
    }
    if ((size_t)n < sizeof small) {
        html_text(h, small);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        if (!h->rc)
            h->rc = ERR_INTERNAL;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    html_text(h, big);
    free(big);
}

enum err_code html_finish(struct html *h, char **out, size_t *len_out, struct err *err)
{
    if (h->rc) {
        enum err_code rc = h->rc;
        buf_release(&h->b);
        return rc == ERR_TOO_BIG
                   ? err_set(err, ERR_INTERNAL, "public page is larger than %zu bytes", h->b.max)
                   : err_set(err, ERR_INTERNAL, "out of memory rendering the public page");
    }
    *out = buf_detach(&h->b, len_out);
    if (!*out)
        return err_set(err, ERR_INTERNAL, "out of memory rendering the public page");
    return ERR_OK;
}

/* ---- formats ---------------------------------------------------------------------------- */
static const char *const months[] = {"Januari",   "Februari", "Maret",    "April",
                                     "Mei",       "Juni",     "Juli",     "Agustus",
                                     "September", "Oktober",  "November", "Desember"};

void publik__fmt_when(char out[PUBLIK_WHEN_LEN], int64_t unix_s)
{
    char t[CLOCK_FMT_LEN]; /* 2020-07-13T20:15:00+08:00 */
    clock_fmt_wita(t, unix_s);
    int mon = (t[5] - '0') * 10 + (t[6] - '0'), day = (t[8] - '0') * 10 + (t[9] - '0');
    snprintf(out, PUBLIK_WHEN_LEN, "%d %s %.4s pukul %.2s.%.2s WITA", day,
             mon >= 1 && mon <= 12 ? months[mon - 1] : "?", t, t + 11, t + 14);
}

void publik__fmt_recent(char out[PUBLIK_WHEN_LEN], int64_t unix_s, int64_t now_s)
{
    char t[CLOCK_FMT_LEN], n[CLOCK_FMT_LEN];
    clock_fmt_wita(t, unix_s);
    clock_fmt_wita(n, now_s);
    if (memcmp(t, n, 10) == 0)
        snprintf(out, PUBLIK_WHEN_LEN, "pukul %.2s.%.2s WITA", t + 11, t + 14);
    else
        publik__fmt_when(out, unix_s);
}

void publik__fmt_num(char *out, size_t n, double v, int decimals)
{
    snprintf(out, n, "%.*f", decimals, v);
    for (char *p = out; *p; p++)
        if (*p == '.')
            *p = ',';
}
