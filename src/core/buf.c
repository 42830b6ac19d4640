/* buf: capped growable buffer. */
#include "core/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/banned.h"

void buf_init(struct buf *b, size_t max)
{
    b->ptr = NULL;
    b->len = b->alloc = 0;
    b->max = max;
}

void buf_release(struct buf *b)
{
    free(b->ptr);
    buf_init(b, b->max);
}

static enum err_code grow(struct buf *b, size_t extra)
{
    if (extra > b->max || b->len > b->max - extra)
        return ERR_TOO_BIG;
    size_t need = b->len + extra + 1;
    if (need <= b->alloc)
        return ERR_OK;
    size_t n = b->alloc ? b->alloc : 256;
    while (n < need)
        n *= 2;
    char *p = realloc(b->ptr, n);
    if (!p)
        return ERR_INTERNAL;
    b->ptr = p;
    b->alloc = n;
    return ERR_OK;
}

enum err_code buf_append(struct buf *b, const void *data, size_t n)
{
    enum err_code rc = grow(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->ptr + b->len, data, n);
    b->len += n;
    b->ptr[b->len] = 0;
    return ERR_OK;
}

enum err_code buf_appends(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

enum err_code buf_appendf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return ERR_INTERNAL;
    enum err_code rc = grow(b, (size_t)n);
    if (rc)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->ptr + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return ERR_OK;
}

char *buf_detach(struct buf *b, size_t *len_out)
{
    if (!b->ptr && grow(b, 0) != ERR_OK)
        return NULL;
    char *p = b->ptr;
    if (len_out)
        *len_out = b->len;
    buf_init(b, b->max);
    return p;
}
