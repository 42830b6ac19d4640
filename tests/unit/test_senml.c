/* Unit tests of the streaming SenML parser as a JSON parser: strings and escapes, UTF-8,
 * numbers to the bit, nesting and its limit, duplicate keys, what breaks a pack first, and NUL
 * bytes. SenML semantics (base fields, times, names) are in test_sensors.c. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sensors/sensors_int.h"
#include "unit.h"

static const int64_t NOW_MS = 1594645200000;

/* Parses len bytes; on success the records stay in *out (caller frees). */
static enum err_code parse_n(const char *body, size_t len, size_t max, struct senml_record **out,
                             size_t *n, struct err *err)
{
    *out = NULL;
    *n = 0;
    *err = (struct err)ERR_INIT;
    return senml_parse(body, len, NOW_MS, max, out, n, err);
}

/* A one-record pack must parse; returns its record (a copy) for checks. */
static struct senml_record one(const char *body)
{
    struct senml_record *r, copy = {.error = "(pack failed)"};
    size_t n;
    struct err err;
    enum err_code rc = parse_n(body, strlen(body), 10, &r, &n, &err);
    CHECK(rc == ERR_OK && n == 1);
    if (rc != ERR_OK)
        fprintf(stderr, "pack %s: %s\n", body, err.msg);
    else if (n == 1)
        copy = r[0];
    if (rc == ERR_OK)
        free(r);
    return copy;
}

/* The body must fail whole with `code` and a message containing `needle`. */
static void refused_n(const char *body, size_t len, enum err_code code, const char *needle)
{
    struct senml_record *r;
    size_t n;
    struct err err;
    enum err_code rc = parse_n(body, len, 10, &r, &n, &err);
    CHECK(rc == code);
    if (rc == ERR_OK)
        free(r);
    unit_checks++;
    if (rc != code || !strstr(err.msg, needle)) {
        unit_failures++;
        fprintf(stderr, "pack %.*s: rc %d message \"%s\", want %d with \"%s\"\n", (int)len, body,
                rc, err.msg, code, needle);
    }
}

static void refused(const char *body, enum err_code code, const char *needle)
{
    refused_n(body, strlen(body), code, needle);
}

static void not_json(const char *body)
{
    refused(body, ERR_INVALID, "body is not valid JSON");
}

static void test_strings(void)
{
    struct senml_record r = one("[{\"n\":\"a\\/b:\\u0063\\u0044\",\"u\":\"\\u0025RH\",\"v\":1}]");
    CHECK_STR(r.name, "a/b:cD");
    CHECK_STR(r.unit, "%RH");
    CHECK(r.error == NULL);
    /* Keys are decoded too: these are "n" and "v". */
    r = one("[{\"\\u006e\":\"a:b\",\"\\u0076\":2}]");
    CHECK(r.error == NULL && r.value == 2);
    /* Every short escape decodes; the name is then not a name, but the pack is fine. */
    r = one("[{\"n\":\"a\\\"\\\\\\b\\f\\n\\r\\t\",\"v\":1}]");
    CHECK_STR(r.name, "a\"\\\b\f\n\r\t");
    CHECK(r.error && strstr(r.error, "name must be"));
    /* A surrogate pair is one code point: U+1F600, four bytes of UTF-8. */
    r = one("[{\"n\":\"x\\ud83d\\ude00\",\"v\":1}]");
    CHECK_STR(r.name, "x\xf0\x9f\x98\x80");
    r = one("[{\"n\":\"\xc3\xa9\xe4\xb8\xad\xf4\x8f\xbf\xbf\",\"v\":1}]"); /* raw UTF-8 */
    CHECK_STR(r.name, "\xc3\xa9\xe4\xb8\xad\xf4\x8f\xbf\xbf");

    not_json("[{\"n\":\"a\\x\",\"v\":1}]");                  /* unknown escape */
    not_json("[{\"n\":\"a\\u12\",\"v\":1}]");                /* short \u */
    not_json("[{\"n\":\"a\\u12g4\",\"v\":1}]");              /* not hex */
    not_json("[{\"n\":\"a\\ud800\",\"v\":1}]");              /* high surrogate alone */
    not_json("[{\"n\":\"a\\ud800\\u0041\",\"v\":1}]");       /* high then not low */
    not_json("[{\"n\":\"a\\udc00\",\"v\":1}]");              /* low surrogate alone */
    not_json("[{\"n\":\"a\\u0000\",\"v\":1}]");              /* NUL in a value */
    not_json("[{\"n\\u0000\":\"a:b\",\"v\":1}]");            /* NUL in a key */
    not_json("[{\"x\":\"\\u0000\",\"n\":\"a:b\",\"v\":1}]"); /* even in a field we ignore */
    not_json("[{\"n\":\"a\tb\",\"v\":1}]");                  /* raw control character */
    not_json("[{\"n\":\"a\nb\",\"v\":1}]");
    not_json("[{\"n\":\"a:b\",\"v\":1,\"x\":\"a\\"); /* escape at the end of the body */
    not_json("[{\"n\":\"a:b\",\"v\":1,\"x\":\"abc"); /* string at the end of the body */
    /* UTF-8 as RFC 3629 has it, like jansson: no overlong forms, no surrogates, nothing past
     * U+10FFFF, no stray continuation bytes, no sequence cut short. */
    not_json("[{\"n\":\"a:\xc3\x28\",\"v\":1}]");
    not_json("[{\"n\":\"a:\xc0\xaf\",\"v\":1}]");
    not_json("[{\"n\":\"a:\xe0\x80\xaf\",\"v\":1}]");
    not_json("[{\"n\":\"a:\xed\xa0\x80\",\"v\":1}]");
    not_json("[{\"n\":\"a:\xf4\x90\x80\x80\",\"v\":1}]");
    not_json("[{\"n\":\"a:\x80\",\"v\":1}]");
    not_json("[{\"n\":\"a:\xe4\xb8\",\"v\":1}]");
    not_json("[{\"n\":\"a:b\",\"v\":1}]\xc3\xa9");
}

/* The value of `text` in a one-record pack, bit for bit equal to strtod's (bv -0.0 keeps the
 * sign of a zero: v + -0.0 is v). */
static void number_is_strtod(const char *text)
{
    char body[256];
    snprintf(body, sizeof body, "[{\"bv\":-0.0,\"n\":\"a:b\",\"v\":%s}]", text);
    struct senml_record r = one(body);
    double want = strtod(text, NULL);
    CHECK(r.error == NULL);
    unit_checks++;
    if (memcmp(&r.value, &want, sizeof want) != 0) {
        unit_failures++;
        fprintf(stderr, "number %s: %a, strtod says %a\n", text, r.value, want);
    }
}

static void test_numbers(void)
{
    static const char *const exact[] = {"0",
                                        "1",
                                        "-1",
                                        "1.234",
                                        "25.010",
                                        "1010.010",
                                        "0.1",
                                        "0.30000000000000004",
                                        "-0.0",
                                        "1e22",
                                        "1E22",
                                        "1e23",
                                        "1e+2",
                                        "1e-2",
                                        "123456789012345678",
                                        "9007199254740993",
                                        "9007199254740993.0",
                                        "1.7976931348623157e308",
                                        "4.9e-324",
                                        "2.2250738585072011e-308",
                                        "1e-400",
                                        "-1e-400",
                                        "0.1000000000000000055511151231257827021181583404541015625",
                                        "123456789012345678901234567890.0",
                                        "9223372036854775807",
                                        "-9223372036854775808",
                                        "0.000001234",
                                        "1234567.891e-3",
                                        "0e999999999",
                                        "100000000000000000000000e-10"};
    for (size_t i = 0; i < sizeof exact / sizeof *exact; i++)
        number_is_strtod(exact[i]);
    /* An integer converts as jansson's json_integer does: -0 is the integer 0, so +0.0. */
    struct senml_record r = one("[{\"n\":\"a:b\",\"v\":-0}]");
    CHECK(r.value == 0 && !signbit(r.value));
    r = one("[{\"n\":\"a:b\",\"v\":-0.0}]");
    CHECK(r.value == 0 && signbit(r.value) == 0); /* -0.0 + bv (+0.0) is +0.0 */
    r = one("[{\"bv\":-0.0,\"n\":\"a:b\",\"v\":-0.0}]");
    CHECK(r.value == 0 && signbit(r.value));

    static const char *const bad[] = {"01",
                                      "-01",
                                      "00",
                                      "-",
                                      "+1",
                                      ".5",
                                      "1.",
                                      "1.e5",
                                      "1e",
                                      "1e+",
                                      "--1",
                                      "0x10",
                                      "1e400",
                                      "-1e400",
                                      "Infinity",
                                      "NaN",
                                      "9223372036854775808",
                                      "-9223372036854775809",
                                      "123456789012345678901234567890",
                                      "1..2",
                                      "1e5.5"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char body[128];
        snprintf(body, sizeof body, "[{\"n\":\"a:b\",\"v\":%s}]", bad[i]);
        not_json(body);
    }
    /* A number cannot end the body: the array is open. */
    not_json("[{\"n\":\"a:b\",\"v\":1.5");
    not_json("[1");
    /* bver is read as jansson's integer: 10.0 and 1e1 are reals. */
    refused("[{\"bver\":10.0,\"n\":\"a:b\",\"v\":1}]", ERR_INVALID, "bver");
    refused("[{\"bver\":1e1,\"n\":\"a:b\",\"v\":1}]", ERR_INVALID, "bver");
    refused("[{\"bver\":null,\"n\":\"a:b\",\"v\":1}]", ERR_INVALID, "bver");
    CHECK(one("[{\"bver\":-3,\"n\":\"a:b\",\"v\":1}]").error == NULL);
}

/* A pack whose record has an unknown field holding `open` arrays nested around `inner`. */
static char *nested(int open, const char *inner)
{
    size_t len = 64 + 2 * (size_t)open + strlen(inner);
    char *s = malloc(len), *p = s;
    p += snprintf(p, len, "[{\"n\":\"a:b\",\"v\":1,\"x\":");
    memset(p, '[', (size_t)open);
    p += open;
    p += snprintf(p, len - (size_t)(p - s), "%s", inner);
    memset(p, ']', (size_t)open);
    p += open;
    snprintf(p, len - (size_t)(p - s), "}]");
    return s;
}

static void test_structure(void)
{
    /* Unknown fields may hold any JSON value; they are checked and skipped. */
    struct senml_record r = one(" \r\n\t[ { \"n\" : \"a:b\" ,\t\"x\":{\"a\":[1,{\"b\":[]},true,"
                                "null,false,\"s\",-2.5e-3],\"c\":{}},\"v\"\r:\n7 } ] \n");
    CHECK(r.error == NULL && r.value == 7);
    /* jansson's depth limit, 2048: the field's value is at depth 3. */
    char *s = nested(2046, "");
    CHECK(one(s).error == NULL);
    free(s);
    s = nested(2047, "");
    not_json(s);
    free(s);
    s = nested(2045, "1");
    CHECK(one(s).error == NULL);
    free(s);
    s = nested(2046, "1");
    not_json(s);
    free(s);
    s = nested(100000, ""); /* deep beyond the limit: refused, and no recursion to blow */
    not_json(s);
    free(s);

    not_json("");
    not_json(" \n");
    not_json("\xef\xbb\xbf[]"); /* a byte order mark is not JSON either */
    not_json("[]]");
    not_json("[] x");
    not_json("[],");
    not_json("[{\"n\":\"a:b\",\"v\":1},]");
    not_json("[{\"n\":\"a:b\",\"v\":1,}]");
    not_json("[{\"n\" \"a:b\",\"v\":1}]");
    not_json("[{\"n\":\"a:b\" \"v\":1}]");
    not_json("[{\"n\":\"a:b\",\"v\":1,\"x\":[1,]}]");
    not_json("[{\"n\":\"a:b\",\"v\":1,\"x\":{\"a\"}}]");
    not_json("[{\"n\":\"a:b\",\"v\":1,\"x\":{\"a\":1,}}]");
    not_json("[{\"n\":\"a:b\",\"v\":1,\"x\":tru}]");
    not_json("[{\"n\":\"a:b\",\"v\":1,\"x\":nulls}]");
    not_json("[{'n':'a:b'}]");
    not_json("{\"n\":\"a:b\",\"v\":1} x"); /* an object, but first of all not JSON */
    not_json("{\"n\":\"a:b\",\"v\":1");
    refused("{\"n\":\"a:b\",\"v\":{\"x\":[]}}", ERR_INVALID, "JSON array");
    /* Where the syntax error is. */
    refused("[{\"n\":\"a:b\",\n \"v\":tru}]", ERR_INVALID, "at line 2 column 6");
}

static void test_duplicates_and_order(void)
{
    /* Of a repeated key the last value counts, as in jansson's object. */
    struct senml_record r = one("[{\"n\":5,\"n\":\"a:b\",\"v\":\"x\",\"v\":2}]");
    CHECK(r.error == NULL && r.value == 2);
    refused("[{\"n\":\"a:b\",\"n\":5,\"v\":1}]", ERR_INVALID, "'n' must be a string");
    r = one("[{\"bn\":\"x:\",\"n\":\"a\",\"bn\":\"y:\",\"v\":1}]");
    CHECK_STR(r.name, "y:a");
    /* bn applies to its own record wherever it stands in it. */
    r = one("[{\"n\":\"level\",\"v\":1,\"bn\":\"st:\"}]");
    CHECK_STR(r.name, "st:level");
    /* A present "u", even empty, overrides the base unit. */
    r = one("[{\"bu\":\"m\",\"n\":\"a:b\",\"u\":\"\",\"v\":1}]");
    CHECK_STR(r.unit, "");
    /* Checks run in a fixed order, not the order of the fields: 'n' before 'v'. */
    refused("[{\"v\":\"x\",\"n\":5}]", ERR_INVALID, "'n' must be a string");
    refused("[{\"v\":\"x\",\"bt\":\"y\"}]", ERR_INVALID, "'bt' must be a number");
    refused("[{\"bn\":1,\"x_\":1}]", ERR_INVALID, "'x_' must be understood");
    refused("[{\"bver\":99,\"x_\":1}]", ERR_INVALID, "bver");
    /* The first field ending in '_' is named, however long, cut to fit the message. */
    refused("[{\"b_\":1,\"a_\":2}]", ERR_INVALID, "field 'b_'");
    char body[700] = "[{\"";
    memset(body + 3, 'k', 500);
    snprintf(body + 503, sizeof body - 503, "_\":1}]");
    refused(body, ERR_INVALID, "record 0: field 'kkkkkkkkkk");

    /* What breaks a pack first: bad JSON anywhere, then too many records, then the first
     * broken record. */
    not_json("[5,{\"n\":\"a:b\",\"v\":1},tru]");
    not_json("[{\"n\":\"a:b\",\"v\":1,\"x_\":1},1e400]");
    not_json("[{\"n\":7},{\"x\":\"\\q\"}]");
    struct senml_record *rs;
    size_t n;
    struct err err;
    CHECK(parse_n("[5,1,2]", 7, 2, &rs, &n, &err) == ERR_TOO_BIG);
    CHECK(parse_n("[{\"n\":7},{},{}]", 15, 2, &rs, &n, &err) == ERR_TOO_BIG);
    CHECK(parse_n("[{\"n\":7},{},{},tru]", 19, 2, &rs, &n, &err) == ERR_INVALID &&
          strstr(err.msg, "not valid JSON"));
    CHECK(parse_n("[{},{\"n\":7},{}]", 15, 3, &rs, &n, &err) == ERR_INVALID &&
          strstr(err.msg, "record 1: 'n' must be a string"));
    CHECK(parse_n("[]", 2, 0, &rs, &n, &err) == ERR_OK && n == 0);
    free(rs);
    CHECK(parse_n("[{}]", 4, 0, &rs, &n, &err) == ERR_TOO_BIG);
}

/* refused() of a literal that holds NUL bytes. */
#define REFUSED_BYTES(lit, code, needle) refused_n(lit, sizeof lit - 1, code, needle)

static void test_nul_bytes(void)
{
    /* JSON has no NUL outside a string and none raw inside one. jansson drops a NUL right
     * after a number or literal by accident and so loaded "[1\0]"; the parser refuses it. */
    REFUSED_BYTES("[{\"n\":\"a:b\",\"v\":1\0}]", ERR_INVALID, "not valid JSON");
    REFUSED_BYTES("[{\"n\":\"a:b\",\"v\":1,\"x\":true\0}]", ERR_INVALID, "not valid JSON");
    REFUSED_BYTES("[1\0]", ERR_INVALID, "not valid JSON");
    REFUSED_BYTES("[{\"n\":\"a\0:b\",\"v\":1}]", ERR_INVALID, "not valid JSON");
    REFUSED_BYTES("[{\"n\":\"a:b\",\"v\":1}]\0", ERR_INVALID, "not valid JSON");
    REFUSED_BYTES("\0[]", ERR_INVALID, "not valid JSON");
}

static void test_many_records(void)
{
    /* More records than the first guess at the array's size (a body byte count / 32): the
     * array grows, and every record is there. */
    enum { N = 5000 };
    size_t cap = 32 + (size_t)N * 12, len = 0;
    char *body = malloc(cap);
    len += (size_t)snprintf(body, cap, "[{\"bn\":\"s:x\",\"v\":0}");
    for (int i = 1; i < N; i++)
        len += (size_t)snprintf(body + len, cap - len, ",{\"v\":%d}", i % 10);
    len += (size_t)snprintf(body + len, cap - len, "]");
    struct senml_record *r;
    size_t n;
    struct err err;
    CHECK(parse_n(body, len, N, &r, &n, &err) == ERR_OK && n == N);
    bool all = n == N;
    for (size_t i = 0; all && i < n; i++)
        all = r[i].error == NULL && r[i].value == (double)(i % 10) && strcmp(r[i].name, "s:x") == 0;
    CHECK(all);
    free(r);
    CHECK(parse_n(body, len, N - 1, &r, &n, &err) == ERR_TOO_BIG);
    free(body);
}

int main(void)
{
    test_strings();
    test_numbers();
    test_structure();
    test_duplicates_and_order();
    test_nul_bytes();
    test_many_records();
    return unit_report("test_senml");
}
