/* senml_jansson: the jansson-based SenML parser before the streaming one, as a test oracle. */
#ifndef SINERGI_SENML_JANSSON_H
#define SINERGI_SENML_JANSSON_H

#include "sensors/sensors_int.h"

/* Same contract as senml_parse() at commit 1f18ce0: json_loadb, then the same checks. */
enum err_code senml_parse_jansson(const char *body, size_t len, int64_t now_ms,
                                  size_t max_records, struct senml_record **out, size_t *n,
                                  struct err *err);

#endif
