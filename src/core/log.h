/* log: one line per event, key=value fields, level checked before formatting. Never log personal
 * data (NIK, names, addresses, phone numbers, passwords, tokens). */
#ifndef SINERGI_LOG_H
#define SINERGI_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

extern enum log_level log_level_current;

/* Returns false for an unknown name. */
int log_set_level(const char *name);
void log__write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_at(level, ...)                                                                         \
    do {                                                                                           \
        if ((level) <= log_level_current)                                                          \
            log__write((level), __VA_ARGS__);                                                      \
    } while (0)
#define log_error(...) log_at(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_at(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_at(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_at(LOG_DEBUG, __VA_ARGS__)

#endif
