/* gzip: one-shot gzip compression with zlib (deflate with the gzip wrapper). */
#include "core/gzip.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/banned.h"

char *gzip_compress(const void *in, size_t n, int level, size_t *out_len)
{
    if (n == 0 || n > (size_t)UINT32_MAX)
        return NULL;
    /* The smallest window that holds the whole input (9..15 bits) and a hash table to match:
     * deflateInit allocates and clears both, which dominates the cost for small bodies. */
    int wbits = 9;
    while (wbits < 15 && ((size_t)1 << wbits) < n)
        wbits++;
    int mem = wbits - 7 < 1 ? 1 : wbits - 7 > 8 ? 8 : wbits - 7;
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, level, Z_DEFLATED, wbits + 16, mem, Z_DEFAULT_STRATEGY) != Z_OK)
        return NULL;
    uLong cap = deflateBound(&z, (uLong)n);
    unsigned char *out = cap < n ? malloc(cap) : malloc(n); /* never more than the input */
    size_t room = cap < n ? cap : n;
    int rc = Z_BUF_ERROR;
    if (out) {
        z.next_in = (unsigned char *)(uintptr_t)in;
        z.avail_in = (uInt)n;
        z.next_out = out;
        z.avail_out = (uInt)room;
        rc = deflate(&z, Z_FINISH);
    }
    size_t len = z.total_out;
    deflateEnd(&z);
    if (rc != Z_STREAM_END || len >= n) { /* did not fit in fewer bytes than the input */
        free(out);
        return NULL;
    }
    *out_len = len;
    return (char *)out;
}
