/* err: first-error-wins recording and stable names of error codes. */
#include "core/err.h"

#include <stdarg.h>
#include <stdio.h>

#include "core/banned.h"

static const char *const names[ERR__COUNT] = {
    [ERR_OK] = "ok",
    [ERR_INVALID] = "invalid",
    [ERR_UNAUTHENTICATED] = "unauthenticated",
    [ERR_FORBIDDEN] = "forbidden",
    [ERR_NOT_FOUND] = "not_found",
    [ERR_METHOD] = "method_not_allowed",
    [ERR_CONFLICT] = "conflict",
    [ERR_TOO_BIG] = "too_big",
    [ERR_UNSUPPORTED] = "unsupported_media_type",
    [ERR_RATE_LIMITED] = "rate_limited",
    [ERR_INTERNAL] = "internal",
    [ERR_UNAVAILABLE] = "unavailable",
};

enum err_code err_set(struct err *err, enum err_code code, const char *fmt, ...)
{
    if (err && err->code == ERR_OK) {
        va_list ap;
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

const char *err_code_name(enum err_code code)
{
    if (code < 0 || code >= ERR__COUNT)
        return "internal";
    return names[code];
}

void err_clear(struct err *err)
{
    err->code = ERR_OK;
    err->msg[0] = 0;
}
