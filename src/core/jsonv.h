/* jsonv: validating readers of JSON input fields; errors name the field and what it accepts. */
#ifndef SINERGI_JSONV_H
#define SINERGI_JSONV_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* A string of at most `max` bytes without NUL; required strings must not be empty.
 * Absent or null optional fields leave *out NULL. *out is borrowed from `obj`. */
enum err_code jsonv_str(json_t *obj, const char *field, size_t max, bool required,
                        const char **out, struct err *err);
/* A finite number in [min, max]. *present (may be NULL) says whether the field was given. */
enum err_code jsonv_num(json_t *obj, const char *field, double min, double max, bool required,
                        double *out, bool *present, struct err *err);
enum err_code jsonv_int(json_t *obj, const char *field, int64_t min, int64_t max, bool required,
                        int64_t *out, bool *present, struct err *err);
enum err_code jsonv_bool(json_t *obj, const char *field, bool required, bool *out, bool *present,
                         struct err *err);
/* Refuses members not in the NULL-terminated `allowed` list, so typos are not silently ignored. */
enum err_code jsonv_only(json_t *obj, const char *const *allowed, struct err *err);

#endif
