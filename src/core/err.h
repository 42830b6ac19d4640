/* The one error type of sinergi: a code that maps to an HTTP status and a message for a person. */
#ifndef SINERGI_ERR_H
#define SINERGI_ERR_H

enum err_code {
    ERR_OK = 0,
    ERR_INVALID,         /* 400: the input is wrong; message names the field and the fix */
    ERR_UNAUTHENTICATED, /* 401 */
    ERR_FORBIDDEN,       /* 403 */
    ERR_NOT_FOUND,       /* 404 */
    ERR_METHOD,          /* 405 */
    ERR_CONFLICT,        /* 409 */
    ERR_TOO_BIG,         /* 413 */
    ERR_UNSUPPORTED,     /* 415 */
    ERR_RATE_LIMITED,    /* 429 */
    ERR_INTERNAL,        /* 500: message is logged, never shown */
    ERR_UNAVAILABLE,     /* 503 */
    ERR__COUNT
};

struct err {
    enum err_code code;
    char msg[256];
};

#define ERR_INIT {ERR_OK, {0}}

/* Records the error unless one is already recorded (the first error wins) and returns `code`,
 * so `return err_set(err, ERR_INVALID, "field 'x' ...");` reads naturally. */
enum err_code err_set(struct err *err, enum err_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Stable lowercase identifier of a code, e.g. "not_found"; used in JSON error bodies. */
const char *err_code_name(enum err_code code);

void err_clear(struct err *err);

#endif
