/* log: timestamped key=value lines on stderr, written with one write() so threads do not mix. */
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/banned.h"

enum log_level log_level_current = LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int log_set_level(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, level_names[i]) == 0) {
            log_level_current = (enum log_level)i;
            return 1;
        }
    return 0;
}

void log__write(enum log_level level, const char *fmt, ...)
{
    char line[2048];
    char ts[CLOCK_FMT_LEN];
    clock_fmt_utc(ts, clock_now_s());
    int n = snprintf(line, sizeof line, "ts=%s level=%s ", ts, level_names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
