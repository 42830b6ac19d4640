/* buf: a growable byte buffer with a hard cap, always NUL-terminated (git strbuf, curl dynbuf). */
#ifndef SINERGI_BUF_H
#define SINERGI_BUF_H

#include <stddef.h>

#include "core/err.h"

struct buf {
    char *ptr; /* owned, NUL-terminated when non-NULL */
    size_t len, alloc, max;
};

/* `max` is the largest length the buffer may reach; appends beyond it fail with ERR_TOO_BIG. */
void buf_init(struct buf *b, size_t max);
void buf_release(struct buf *b);
enum err_code buf_append(struct buf *b, const void *data, size_t n);
enum err_code buf_appends(struct buf *b, const char *s);
enum err_code buf_appendf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands the bytes to the caller (free() them) and leaves the buffer empty. */
char *buf_detach(struct buf *b, size_t *len_out);

#endif
