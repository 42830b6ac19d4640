/* Private helpers shared by the files of src/auth/. */
#ifndef SINERGI_AUTH_INT_H
#define SINERGI_AUTH_INT_H

#include <stdint.h>

#include "auth/auth.h"

extern struct auth_settings auth__settings;

/* base64url without padding of `n` random bytes into out (size >= 4*n/3+2). */
void auth__random_token(char *out, size_t outsz, size_t nbytes);
/* Lowercase hex SHA-256 of s: 64 characters and a NUL. */
void auth__sha256_hex(char out[65], const void *data, size_t n);

/* Throttling of failed logins, in memory (it restarts empty with the process). */
int64_t auth__throttle_wait(const char *kind, const char *key, int64_t max, int64_t now);
void auth__throttle_fail(const char *kind, const char *key, int64_t now);
void auth__throttle_clear(const char *kind, const char *key);

/* Empties the cache of resolved sessions; call after any revocation commits. */
void auth__sessions_changed(void);

/* Validation shared by users and OPDs. */
enum err_code auth__check_name(const char *field, const char *v, size_t min, size_t max,
                               struct err *err);
enum err_code auth__opd_exists(struct db_conn *c, const char *code, struct err *err);

#endif
