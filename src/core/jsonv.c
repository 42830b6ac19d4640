/* jsonv: field readers for request bodies. */
#include "core/jsonv.h"

#include <math.h>
#include <string.h>

#include "core/banned.h"

enum err_code jsonv_str(json_t *obj, const char *field, size_t max, bool required,
                        const char **out, struct err *err)
{
    json_t *v = json_object_get(obj, field);
    *out = NULL;
    if (!v || json_is_null(v))
        return required ? err_set(err, ERR_INVALID, "field '%s' is required", field) : ERR_OK;
    if (!json_is_string(v) || json_string_length(v) > max ||
        strlen(json_string_value(v)) != json_string_length(v))
        return err_set(err, ERR_INVALID, "field '%s' must be text of at most %zu characters",
                       field, max);
    *out = json_string_value(v);
    if (required && !**out)
        return err_set(err, ERR_INVALID, "field '%s' must not be empty", field);
    return ERR_OK;
}

enum err_code jsonv_num(json_t *obj, const char *field, double min, double max, bool required,
                        double *out, bool *present, struct err *err)
{
    json_t *v = json_object_get(obj, field);
    if (present)
        *present = v && !json_is_null(v);
    if (!v || json_is_null(v))
        return required ? err_set(err, ERR_INVALID, "field '%s' is required", field) : ERR_OK;
    if (!json_is_number(v) || !isfinite(json_number_value(v)) || json_number_value(v) < min ||
        json_number_value(v) > max)
        return err_set(err, ERR_INVALID, "field '%s' must be a number from %g to %g", field, min,
                       max);
    *out = json_number_value(v);
    return ERR_OK;
}

enum err_code jsonv_int(json_t *obj, const char *field, int64_t min, int64_t max, bool required,
                        int64_t *out, bool *present, struct err *err)
{
    json_t *v = json_object_get(obj, field);
    if (present)
        *present = v && !json_is_null(v);
    if (!v || json_is_null(v))
        return required ? err_set(err, ERR_INVALID, "field '%s' is required", field) : ERR_OK;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return err_set(err, ERR_INVALID, "field '%s' must be a whole number from %lld to %lld",
                       field, (long long)min, (long long)max);
    *out = json_integer_value(v);
    return ERR_OK;
}

enum err_code jsonv_bool(json_t *obj, const char *field, bool required, bool *out, bool *present,
                         struct err *err)
{
    json_t *v = json_object_get(obj, field);
    if (present)
        *present = v && !json_is_null(v);
    if (!v || json_is_null(v))
        return required ? err_set(err, ERR_INVALID, "field '%s' is required", field) : ERR_OK;
    if (!json_is_boolean(v))
        return err_set(err, ERR_INVALID, "field '%s' must be true or false", field);
    *out = json_is_true(v);
    return ERR_OK;
}

enum err_code jsonv_only(json_t *obj, const char *const *allowed, struct err *err)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        bool ok = false;
        for (size_t i = 0; allowed[i] && !ok; i++)
            ok = strcmp(allowed[i], key) == 0;
        if (!ok)
            return err_set(err, ERR_INVALID, "unknown field '%s'", key);
    }
    return ERR_OK;
}
