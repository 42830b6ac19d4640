/* fuzz_senml: differential fuzzing of the streaming SenML parser (src/sensors/senml.c) against
 * the jansson-based one it replaced (senml_jansson.c). Each input is parsed by both, with a
 * large and a small record limit; any difference aborts with both results printed.
 *
 * Equal means: the same error code; the same message, except that two "body is not valid
 * JSON: ..." messages may differ after the colon (jansson's wording and positions are its own);
 * and on success the same records, field by field, values compared bit for bit.
 *
 * One deliberate difference: a body with a NUL byte. JSON has no place for one outside a string
 * and forbids it raw inside one, and the streaming parser refuses it everywhere; jansson's lexer
 * silently drops a NUL that directly follows a number or true/false/null (its one-byte unget
 * buffer reads the NUL as "empty"), so it accepts "[1\0]". For such bodies the check is that the
 * streaming parser says the body is not valid JSON.
 *
 * Built by `make fuzz` with clang's libFuzzer; built without -DFUZZ_LIBFUZZER (any compiler)
 * it is a replay program: each argument is a file (or a directory of files) to check. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sensors/sensors_int.h"
#include "senml_jansson.h"

static const int64_t NOW_MS = 1594645200000;
static const char INVALID_JSON[] = "body is not valid JSON";

static void dump(const char *who, enum err_code rc, const struct err *err,
                 const struct senml_record *r, size_t n)
{
    fprintf(stderr, "%s: rc=%d msg=\"%s\" n=%zu\n", who, rc, rc ? err->msg : "", rc ? 0 : n);
    for (size_t i = 0; !rc && i < n; i++)
        fprintf(stderr, "  [%zu] name=\"%s\" unit=\"%s\" value=%a t_ms=%lld error=%s\n", i,
                r[i].name, r[i].unit, r[i].value, (long long)r[i].t_ms,
                r[i].error ? r[i].error : "(none)");
}

static bool same_record(const struct senml_record *a, const struct senml_record *b)
{
    if ((a->error == NULL) != (b->error == NULL) || (a->error && strcmp(a->error, b->error)))
        return false;
    return strcmp(a->name, b->name) == 0 && strcmp(a->unit, b->unit) == 0 &&
           memcmp(&a->value, &b->value, sizeof a->value) == 0 && a->t_ms == b->t_ms;
}

static bool same_error(const struct err *a, const struct err *b)
{
    size_t k = sizeof INVALID_JSON - 1;
    if (strncmp(a->msg, INVALID_JSON, k) == 0 && strncmp(b->msg, INVALID_JSON, k) == 0)
        return true;
    return strcmp(a->msg, b->msg) == 0;
}

static void check(const char *body, size_t len, size_t max)
{
    struct senml_record *ra = NULL, *rb = NULL;
    size_t na = 0, nb = 0;
    struct err ea = ERR_INIT, eb = ERR_INIT;
    enum err_code a = senml_parse(body, len, NOW_MS, max, &ra, &na, &ea);
    if (memchr(body, 0, len)) {
        if (a != ERR_INVALID || strncmp(ea.msg, INVALID_JSON, sizeof INVALID_JSON - 1) != 0) {
            fprintf(stderr, "fuzz_senml: a body with a NUL byte is not refused as JSON\n");
            dump("streaming", a, &ea, ra, na);
            abort();
        }
        return;
    }
    enum err_code b = senml_parse_jansson(body, len, NOW_MS, max, &rb, &nb, &eb);
    bool same = a == b && (a ? same_error(&ea, &eb) : na == nb);
    for (size_t i = 0; same && !a && i < na; i++)
        same = same_record(&ra[i], &rb[i]);
    if (!same) {
        fprintf(stderr, "fuzz_senml: the parsers differ (max_records %zu) on %zu bytes:\n%.*s\n",
                max, len, (int)(len < 2000 ? len : 2000), body);
        dump("streaming", a, &ea, ra, na);
        dump("jansson", b, &eb, rb, nb);
        abort();
    }
    if (!a)
        free(ra);
    if (!b)
        free(rb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly `size` bytes, so that ASan catches a read past the end of the body. */
    char *body = malloc(size ? size : 1);
    if (!body)
        return 0;
    memcpy(body, data, size);
    check(body, size, 10000);
    check(body, size, 3); /* the record limit, before and after broken records */
    free(body);
    return 0;
}

#ifndef FUZZ_LIBFUZZER
static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return 1;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0, got;
    do {
        if (len + 4096 > cap && !(buf = realloc(buf, cap = (len + 4096) * 2)))
            abort();
        got = fread(buf + len, 1, cap - len, f);
        len += got;
    } while (got);
    fclose(f);
    LLVMFuzzerTestOneInput((const uint8_t *)buf, len);
    free(buf);
    return 0;
}

static int replay(const char *path, int *files)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        perror(path);
        return 1;
    }
    if (!S_ISDIR(st.st_mode))
        return ++*files, replay_file(path);
    DIR *d = opendir(path);
    if (!d) {
        perror(path);
        return 1;
    }
    int bad = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char sub[4096];
        snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
        bad |= replay(sub, files);
    }
    closedir(d);
    return bad;
}

int main(int argc, char **argv)
{
    int bad = 0, files = 0;
    for (int i = 1; i < argc; i++)
        bad |= replay(argv[i], &files);
    if (!bad)
        fprintf(stderr, "fuzz_senml: %d inputs replayed, both parsers agree\n", files);
    return bad;
}
#endif
