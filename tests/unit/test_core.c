/* Unit tests of src/core: arena caps, buffer caps, time parsing and formatting, config table,
 * gzip compression. */
#include <stdlib.h>
#include <zlib.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/err.h"
#include "core/gzip.h"
#include "core/i64map.h"
#include "core/jsonv.h"
#include "unit.h"

static void test_arena(void)
{
    struct arena *a = arena_new(1000);
    CHECK(arena_alloc(a, 500) != NULL);
    CHECK(arena_alloc(a, 600) == NULL); /* over the cap */
    char *s = arena_strdup(a, "kode");
    CHECK_STR(s, "kode");
    CHECK(arena_alloc(a, (size_t)-1) == NULL);
    arena_free(a);
}

static void test_buf(void)
{
    struct buf b;
    buf_init(&b, 10);
    CHECK(buf_appends(&b, "12345") == ERR_OK);
    CHECK(buf_appendf(&b, "%d", 678) == ERR_OK);
    CHECK_STR(b.ptr, "12345678");
    CHECK(buf_appends(&b, "abc") == ERR_TOO_BIG);
    CHECK(b.len == 8);
    buf_release(&b);
}

static void test_clock(void)
{
    int64_t t;
    char s[CLOCK_FMT_LEN];
    CHECK(clock_parse("2020-07-13T21:00:00+08:00", &t));
    CHECK(t == 1594645200);
    clock_fmt_utc(s, t);
    CHECK_STR(s, "2020-07-13T13:00:00Z");
    clock_fmt_wita(s, t);
    CHECK_STR(s, "2020-07-13T21:00:00+08:00");
    CHECK(clock_parse("2020-07-13T13:00:00.250Z", &t) && t == 1594645200);
    CHECK(clock_parse("1594645200", &t) && t == 1594645200);
    CHECK(!clock_parse("2020-02-31T00:00:00Z", &t));
    CHECK(!clock_parse("2020-07-13 13:00", &t));
    CHECK(!clock_parse("2020-07-13T13:00:00", &t)); /* no offset: ambiguous, refused */
    CHECK(!clock_parse("", &t));
    /* deadlines carry nanoseconds into seconds */
    for (uint64_t ns = 0; ns < 3000000000ull; ns += 999999999ull) {
        struct timespec now, d = clock_deadline(CLOCK_MONOTONIC, ns);
        clock_gettime(CLOCK_MONOTONIC, &now);
        int64_t ahead = (int64_t)(d.tv_sec - now.tv_sec) * 1000000000 + (d.tv_nsec - now.tv_nsec);
        CHECK(d.tv_nsec >= 0 && d.tv_nsec < 1000000000L);
        CHECK(ahead <= (int64_t)ns && ahead > (int64_t)ns - 1000000000); /* less than 1 s passed */
    }
}

static void test_config(void)
{
    struct config c;
    struct config_args a;
    struct err e = ERR_INIT;
    char *argv[] = {"serve", "--listen", "127.0.0.1:9", "--max-body=2048", "--db", "x.db"};
    CHECK(config_load(&c, 6, argv, NULL, &a, &e) == ERR_OK);
    CHECK_STR(c.listen, "127.0.0.1:9");
    CHECK(c.max_body == 2048);
    CHECK_STR(c.db, "x.db");
    CHECK(a.npos == 1);
    CHECK_STR(c.regency, "73.22"); /* default */

    char *bad[] = {"serve", "--max-body", "12"}; /* below the minimum */
    err_clear(&e);
    CHECK(config_load(&c, 3, bad, NULL, &a, &e) == ERR_INVALID);
    CHECK(strstr(e.msg, "max_body") != NULL);

    char *unknown[] = {"serve", "--nope", "1"};
    err_clear(&e);
    CHECK(config_load(&c, 3, unknown, NULL, &a, &e) == ERR_INVALID);

    setenv("SINERGI_REGENCY", "73.24", 1);
    err_clear(&e);
    CHECK(config_load(&c, 1, argv, NULL, &a, &e) == ERR_OK);
    CHECK_STR(c.regency, "73.24");
    unsetenv("SINERGI_REGENCY");

    static const char *const extra[] = {"role", NULL};
    char *user[] = {"user", "add", "siti", "--role", "staff"};
    err_clear(&e);
    CHECK(config_load(&c, 5, user, extra, &a, &e) == ERR_OK);
    CHECK_STR(a.extra_value[0], "staff");
    CHECK(a.npos == 3);
}

static void test_err(void)
{
    struct err e = ERR_INIT;
    err_set(&e, ERR_INVALID, "field '%s' is wrong", "level");
    err_set(&e, ERR_INTERNAL, "second");
    CHECK(e.code == ERR_INVALID); /* first error wins */
    CHECK_STR(e.msg, "field 'level' is wrong");
    CHECK_STR(err_code_name(ERR_NOT_FOUND), "not_found");
}

static void test_jsonv(void)
{
    json_t *j = json_pack("{s:s,s:f,s:i,s:b}", "name", "pos", "level", 2.5, "n", 7, "ok", 1);
    struct err e = ERR_INIT;
    const char *s;
    double d;
    int64_t n;
    bool b, present;
    CHECK(jsonv_str(j, "name", 10, true, &s, &e) == ERR_OK && strcmp(s, "pos") == 0);
    CHECK(jsonv_num(j, "level", 0, 10, true, &d, &present, &e) == ERR_OK && d == 2.5);
    CHECK(jsonv_int(j, "n", 0, 5, true, &n, NULL, &e) == ERR_INVALID);
    err_clear(&e);
    CHECK(jsonv_bool(j, "ok", true, &b, NULL, &e) == ERR_OK && b);
    CHECK(jsonv_str(j, "missing", 10, true, &s, &e) == ERR_INVALID);
    err_clear(&e);
    static const char *const allowed[] = {"name", "level", NULL};
    CHECK(jsonv_only(j, allowed, &e) == ERR_INVALID);
    json_decref(j);
}

/* gzip_compress gives one gzip member that zlib reads back to the input, for bodies of every
 * window size; nothing when it would not be smaller. */
static void test_gzip(void)
{
    static char text[200000];
    size_t n = 0;
    while (n + 80 < sizeof text)
        n += (size_t)snprintf(text + n, sizeof text - n,
                              "{\"code\":\"pda-%05zu\",\"v\":%zu.%02zu,\"qc\":\"good\"},", n, n % 7, n % 100);
    size_t sizes[] = {1, 600, 1024, 5000, 70000, n};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t gzlen = 0;
        char *gz = gzip_compress(text, sizes[i], GZIP_LEVEL, &gzlen);
        if (sizes[i] < 64) { /* header and trailer alone are 18 bytes */
            CHECK(gz == NULL);
            continue;
        }
        CHECK(gz != NULL && gzlen < sizes[i]);
        if (!gz)
            continue;
        CHECK((unsigned char)gz[0] == 0x1f && (unsigned char)gz[1] == 0x8b); /* gzip magic */
        char *back = malloc(sizes[i] + 1);
        z_stream z = {0};
        CHECK(inflateInit2(&z, 16 + 15) == Z_OK);
        z.next_in = (unsigned char *)gz;
        z.avail_in = (uInt)gzlen;
        z.next_out = (unsigned char *)back;
        z.avail_out = (uInt)sizes[i] + 1;
        CHECK(inflate(&z, Z_FINISH) == Z_STREAM_END);
        CHECK(z.total_out == sizes[i] && memcmp(back, text, sizes[i]) == 0);
        inflateEnd(&z);
        free(back);
        free(gz);
    }
    unsigned char noise[4096]; /* does not compress: no copy */
    unsigned x = 2463534242u;
    for (size_t i = 0; i < sizeof noise; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        noise[i] = (unsigned char)x;
    }
    size_t gzlen = 0;
    CHECK(gzip_compress(noise, sizeof noise, GZIP_LEVEL, &gzlen) == NULL);
    CHECK(gzip_compress(text, 0, GZIP_LEVEL, &gzlen) == NULL);
}

struct i64item {
    int64_t key;
    double v;
    char tag[12];
};

static void test_i64map(void)
{
    struct i64map m;
    i64map_init(&m, sizeof(struct i64item));
    CHECK(i64map_get(&m, 7) == NULL); /* empty table */
    CHECK(i64map_put(&m, 0, NULL) == NULL); /* 0 is no key */
    bool created;
    struct i64item *a = i64map_put(&m, 7, &created);
    CHECK(a && created && a->key == 7 && a->v == 0 && a->tag[0] == 0);
    a->v = 1.5;
    CHECK(i64map_put(&m, 7, &created) == a && !created);
    /* enough keys to grow several times, some colliding in the low bits, negatives too */
    uint64_t gen = m.gen;
    for (int64_t k = 1; k <= 5000; k++) {
        int64_t key = k % 3 ? k * 4096 : -k;
        struct i64item *it = i64map_put(&m, key, &created);
        CHECK(it && (created || key == 7));
        if (it)
            it->v = (double)key;
    }
    CHECK(m.gen > gen);
    CHECK(m.used == 5001); /* 7 was never among them: 7 % 3 != 0 and 7 * 4096 != 7 */
    size_t seen = 0;
    for (size_t i = 0; i < m.slots; i++) {
        struct i64item *it = i64map_slot(&m, i);
        if (it) {
            seen++;
            CHECK(it->key == 7 ? it->v == 1.5 : it->v == (double)it->key);
        }
    }
    CHECK(seen == m.used);
    CHECK(i64map_slot(&m, m.slots) == NULL);
    for (int64_t k = 1; k <= 5000; k++) {
        int64_t key = k % 3 ? k * 4096 : -k;
        struct i64item *it = i64map_get(&m, key);
        CHECK(it && it->key == key);
    }
    CHECK(((struct i64item *)i64map_get(&m, 7))->v == 1.5);
    CHECK(i64map_get(&m, 8) == NULL);
    /* undoing the insert just made */
    struct i64item *b = i64map_put(&m, 123456789, &created);
    CHECK(b && created);
    i64map_unput(&m, b);
    CHECK(i64map_get(&m, 123456789) == NULL && m.used == 5001);
    i64map_free(&m);
    CHECK(m.slots == 0 && m.used == 0 && i64map_get(&m, 7) == NULL);
}

int main(void)
{
    test_arena();
    test_buf();
    test_clock();
    test_config();
    test_err();
    test_jsonv();
    test_gzip();
    test_i64map();
    return unit_report("test_core");
}
