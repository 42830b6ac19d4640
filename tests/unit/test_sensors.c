/* Unit tests of src/sensors without a database: SenML packs into resolved records (base fields,
 * relative times, structural errors, must-understand fields, non-finite and out-of-range numbers,
 * names), unit conversion factors, and each QC test with the history it keeps. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sensors/sensors_int.h"
#include "unit.h"

static const int64_t NOW_MS = 1594645200000; /* 2020-07-13T13:00:00Z */

/* Parses `json` with the clock at NOW_MS; returns the code, records in *out (caller frees). */
static enum err_code parse(const char *json, size_t max, struct senml_record **out, size_t *n,
                           struct err *err)
{
    *out = NULL;
    *n = 0;
    return senml_parse(json, strlen(json), NOW_MS, max, out, n, err);
}

static bool near(double a, double b)
{
    return fabs(a - b) <= 1e-9 * (fabs(a) + fabs(b) + 1);
}

static void test_senml_base_fields(void)
{
    struct senml_record *r;
    size_t n;
    struct err err = ERR_INIT;
    /* The example of DOMAIN.md §3 plus base unit and base value, and a record that changes
     * the base name for the records after it. */
    CHECK(parse("[{\"bn\":\"pda-01:\",\"bt\":1594645200,\"bu\":\"m\",\"bv\":0.5,"
                "\"n\":\"level\",\"v\":2.31},"
                "{\"n\":\"level\",\"t\":600,\"v\":2.64},"
                "{\"n\":\"level\",\"t\":1200,\"u\":\"cm\",\"v\":10},"
                "{\"bn\":\"pda-02:\",\"n\":\"rain\",\"t\":-60.5,\"v\":1}]",
                100, &r, &n, &err) == ERR_OK);
    CHECK(err.code == ERR_OK);
    CHECK(n == 4);
    if (n == 4) {
        CHECK_STR(r[0].name, "pda-01:level");
        CHECK_STR(r[0].unit, "m");
        CHECK(near(r[0].value, 2.81)); /* bv + v */
        CHECK(r[0].t_ms == 1594645200000);
        CHECK(r[0].error == NULL);
        CHECK(r[1].t_ms == 1594645800000); /* bt + t */
        CHECK(near(r[1].value, 3.14));
        CHECK_STR(r[2].unit, "cm"); /* u overrides bu; conversion happens at admission */
        CHECK(near(r[2].value, 10.5));
        CHECK_STR(r[3].name, "pda-02:rain");
        CHECK(r[3].t_ms == 1594645200000 - 60500); /* fractional seconds kept as ms */
        for (size_t i = 0; i < n; i++)
            CHECK(r[i].error == NULL);
    }
    free(r);

    /* No base fields at all: full names in n, no unit. */
    CHECK(parse("[{\"n\":\"st-1:level\",\"v\":1,\"t\":1594645000}]", 10, &r, &n, &err) == ERR_OK);
    CHECK(n == 1 && r[0].unit[0] == 0 && r[0].t_ms == 1594645000000 && !r[0].error);
    free(r);

    /* An empty pack is a pack. */
    CHECK(parse("[]", 10, &r, &n, &err) == ERR_OK && n == 0);
    free(r);
    /* bver up to 10 is understood. */
    CHECK(parse("[{\"bver\":10,\"n\":\"a:b\",\"v\":1}]", 10, &r, &n, &err) == ERR_OK && n == 1);
    free(r);
}

static void test_senml_relative_time(void)
{
    struct senml_record *r;
    size_t n;
    struct err err = ERR_INIT;
    /* No time: now. |t| < 2^28: relative to now. A base time that is itself small is relative
     * too, and bt + t is what counts (RFC 8428 §4.5.3). */
    CHECK(parse("[{\"n\":\"a:x\",\"v\":1},"
                "{\"n\":\"a:x\",\"v\":1,\"t\":-600},"
                "{\"n\":\"a:x\",\"v\":1,\"t\":30},"
                "{\"bt\":-3600,\"n\":\"a:x\",\"v\":1,\"t\":60},"
                "{\"bt\":0,\"n\":\"a:x\",\"v\":1,\"t\":268435455},"
                "{\"bt\":0,\"n\":\"a:x\",\"v\":1,\"t\":268435456},"
                "{\"bt\":0,\"n\":\"a:x\",\"v\":1,\"t\":-268435455.5}]",
                10, &r, &n, &err) == ERR_OK);
    CHECK(n == 7);
    if (n == 7) {
        CHECK(r[0].t_ms == NOW_MS);
        CHECK(r[1].t_ms == NOW_MS - 600000);
        CHECK(r[2].t_ms == NOW_MS + 30000);
        CHECK(r[3].t_ms == NOW_MS - 3540000);
        CHECK(r[4].t_ms == NOW_MS + 268435455000LL); /* just below 2^28: still relative */
        CHECK(r[5].t_ms == 268435456000LL);          /* 2^28: absolute (1978) */
        CHECK(r[6].t_ms == NOW_MS - 268435455500LL);
        for (size_t i = 0; i < n; i++)
            CHECK(r[i].error == NULL);
    }
    free(r);
}

/* A pack that must fail as a whole with `code`, and a message that contains `needle`. */
static void expect_pack_error(const char *json, size_t max, enum err_code code, const char *needle)
{
    struct senml_record *r = (struct senml_record *)0x1;
    size_t n = 12345;
    struct err err = ERR_INIT;
    enum err_code rc = senml_parse(json, strlen(json), NOW_MS, max, &r, &n, &err);
    CHECK(rc == code);
    CHECK(err.code == code);
    CHECK(err.msg[0] != 0);
    if (!strstr(err.msg, needle)) {
        unit_failures++;
        fprintf(stderr, "pack %s: message \"%s\" lacks \"%s\"\n", json, err.msg, needle);
    }
    unit_checks++;
    CHECK(r == (struct senml_record *)0x1 && n == 12345); /* outputs untouched on failure */
}

static void test_senml_bad_structures(void)
{
    expect_pack_error("", 10, ERR_INVALID, "not valid JSON");
    expect_pack_error("[{\"n\":\"a:b\",\"v\":1}", 10, ERR_INVALID, "not valid JSON");
    expect_pack_error("{\"n\":\"a:b\",\"v\":1}", 10, ERR_INVALID, "JSON array");
    expect_pack_error("\"a:b\"", 10, ERR_INVALID, "not valid JSON"); /* jansson: no scalars */
    expect_pack_error("{}", 10, ERR_INVALID, "JSON array");
    expect_pack_error("[{\"n\":\"a:b\",\"v\":1}, 5]", 10, ERR_INVALID, "record 1 is not");
    expect_pack_error("[[]]", 10, ERR_INVALID, "record 0 is not");
    expect_pack_error("[null]", 10, ERR_INVALID, "record 0");
    /* Fields of the wrong JSON type break the pack: the record cannot be read at all. */
    expect_pack_error("[{\"n\":5,\"v\":1}]", 10, ERR_INVALID, "'n' must be a string");
    expect_pack_error("[{\"n\":\"a:b\",\"v\":\"1.5\"}]", 10, ERR_INVALID, "'v' must be a number");
    expect_pack_error("[{\"n\":\"a:b\",\"v\":true}]", 10, ERR_INVALID, "'v' must be a number");
    expect_pack_error("[{\"n\":\"a:b\",\"v\":null}]", 10, ERR_INVALID, "'v' must be a number");
    expect_pack_error("[{\"n\":\"a:b\",\"v\":1,\"t\":\"now\"}]", 10, ERR_INVALID,
                      "'t' must be a number");
    expect_pack_error("[{\"bn\":[],\"n\":\"b\",\"v\":1}]", 10, ERR_INVALID,
                      "'bn' must be a string");
    expect_pack_error("[{\"bt\":\"x\",\"n\":\"a:b\",\"v\":1}]", 10, ERR_INVALID,
                      "'bt' must be a number");
    expect_pack_error("[{\"bu\":1,\"n\":\"a:b\",\"v\":1}]", 10, ERR_INVALID,
                      "'bu' must be a string");
    expect_pack_error("[{\"bv\":\"1\",\"n\":\"a:b\",\"v\":1}]", 10, ERR_INVALID,
                      "'bv' must be a number");
    expect_pack_error("[{\"n\":\"a:b\",\"u\":false,\"v\":1}]", 10, ERR_INVALID,
                      "'u' must be a string");
    /* The error names the record that broke it. */
    expect_pack_error("[{\"n\":\"a:b\",\"v\":1},{\"n\":\"a:b\",\"v\":2},{\"n\":\"a:b\",\"v\":[]}]",
                      10, ERR_INVALID, "record 2");
    /* SenML versions above 10 and a non-integer version are not understood. */
    expect_pack_error("[{\"bver\":11,\"n\":\"a:b\",\"v\":1}]", 10, ERR_INVALID, "bver");
    expect_pack_error("[{\"bver\":\"10\",\"n\":\"a:b\",\"v\":1}]", 10, ERR_INVALID, "bver");
    /* Too many records: ERR_TOO_BIG, checked before any record. */
    expect_pack_error("[{\"n\":\"a:b\",\"v\":1},{\"n\":\"a:b\",\"v\":1},{\"n\":\"a:b\",\"v\":1}]",
                      2, ERR_TOO_BIG, "at most 2");
    expect_pack_error("[1,2,3]", 2, ERR_TOO_BIG, "3 records");
    /* Exactly the limit is fine. */
    struct senml_record *r;
    size_t n;
    struct err err = ERR_INIT;
    CHECK(parse("[{\"n\":\"a:b\",\"v\":1},{\"n\":\"a:b\",\"v\":1}]", 2, &r, &n, &err) == ERR_OK &&
          n == 2);
    free(r);
}

static void test_senml_must_understand(void)
{
    /* RFC 8428 §4.4: a field whose name ends in '_' must be understood, or the pack rejected. */
    expect_pack_error("[{\"n\":\"a:b\",\"v\":1,\"foo_\":1}]", 10, ERR_INVALID, "'foo_'");
    expect_pack_error("[{\"n\":\"a:b\",\"v\":1},{\"bx_\":true,\"n\":\"a:b\",\"v\":2}]", 10,
                      ERR_INVALID, "record 1");
    expect_pack_error("[{\"_\":0,\"n\":\"a:b\",\"v\":1}]", 10, ERR_INVALID, "must be understood");
    /* Unknown fields without the suffix are ignored, as are known ones we do not use. */
    struct senml_record *r;
    size_t n;
    struct err err = ERR_INIT;
    CHECK(parse("[{\"n\":\"a:b\",\"v\":1,\"foo\":1,\"_x\":2,\"ut\":60}]", 10, &r, &n, &err) ==
          ERR_OK);
    CHECK(n == 1 && r[0].error == NULL);
    free(r);
}

static void test_senml_values(void)
{
    struct senml_record *r;
    size_t n;
    struct err err = ERR_INIT;
    /* JSON has no NaN or infinity: the parser refuses the literals and numbers that overflow a
     * double, so the whole pack fails. */
    expect_pack_error("[{\"n\":\"a:b\",\"v\":NaN}]", 10, ERR_INVALID, "not valid JSON");
    expect_pack_error("[{\"n\":\"a:b\",\"v\":Infinity}]", 10, ERR_INVALID, "not valid JSON");
    expect_pack_error("[{\"n\":\"a:b\",\"v\":-Infinity}]", 10, ERR_INVALID, "not valid JSON");
    expect_pack_error("[{\"n\":\"a:b\",\"v\":1e400}]", 10, ERR_INVALID, "not valid JSON");
    /* Finite numbers whose sum is not: value and time become non-finite after base values
     * apply, and that record (only) is unusable. Times far beyond any clock are out of range. */
    CHECK(parse("[{\"bv\":1.7e308,\"n\":\"a:b\",\"v\":1.7e308},"
                "{\"bv\":0,\"bt\":1.7e308,\"n\":\"a:b\",\"v\":1,\"t\":1.7e308},"
                "{\"bt\":0,\"n\":\"a:b\",\"v\":1,\"t\":1e300},"
                "{\"n\":\"a:b\",\"v\":1,\"t\":-1e12},"
                "{\"n\":\"a:b\",\"v\":1e308,\"t\":1594645200},"
                "{\"n\":\"a:b\",\"vs\":\"high\"},"
                "{\"n\":\"a:b\",\"vb\":true},"
                "{\"n\":\"a:b\",\"vd\":\"AQID\"},"
                "{\"n\":\"a:b\",\"s\":4.5},"
                "{\"n\":\"a:b\",\"v\":1,\"vs\":\"x\"},"
                "{\"n\":\"a:b\",\"u\":\"m\"},"
                "{\"n\":\"a:b\",\"v\":-0.0,\"t\":1594645200}]",
                20, &r, &n, &err) == ERR_OK);
    CHECK(n == 12);
    if (n == 12) {
        CHECK(r[0].error && strstr(r[0].error, "value is not a finite number"));
        CHECK(r[1].error && strstr(r[1].error, "time is not a finite number"));
        CHECK(r[2].error && strstr(r[2].error, "time is out of range"));
        CHECK(r[3].error && strstr(r[3].error, "time is out of range")); /* before 1970 */
        CHECK(r[4].error == NULL && r[4].value == 1e308); /* huge but finite: QC's business */
        for (int i = 5; i <= 9; i++)
            CHECK(r[i].error && strstr(r[i].error, "only numeric values"));
        CHECK(r[10].error && strstr(r[10].error, "no value"));
        CHECK(r[11].error == NULL && r[11].value == 0);
    }
    free(r);
}

static void test_senml_names(void)
{
    struct senml_record *r;
    size_t n;
    struct err err = ERR_INIT;
    char long_name[200];
    memset(long_name, 'a', sizeof long_name);
    long_name[sizeof long_name - 1] = 0;
    char pack[512];
    snprintf(pack, sizeof pack,
             "[{\"n\":\"st-1:level\",\"v\":1},"      /* 0 ok */
             "{\"n\":\"ST_1.a/b:x-y\",\"v\":1},"     /* 1 ok: letters, digits, - : . _ / */
             "{\"n\":\"\",\"v\":1},"                 /* 2 empty */
             "{\"n\":\":level\",\"v\":1},"           /* 3 starts with ':' */
             "{\"n\":\"st 1:level\",\"v\":1},"       /* 4 space */
             "{\"n\":\"st-1:lev\\u00e9l\",\"v\":1}," /* 5 non-ASCII */
             "{\"n\":\"%s\",\"v\":1},"               /* 6 too long for a name */
             "{\"bn\":\"st-1:\",\"v\":1}]",          /* 7 bn alone is a name (ingest rejects it) */
             long_name);
    CHECK(parse(pack, 20, &r, &n, &err) == ERR_OK);
    CHECK(n == 8);
    if (n == 8) {
        CHECK(r[0].error == NULL);
        CHECK(r[1].error == NULL);
        for (int i = 2; i <= 6; i++)
            CHECK(r[i].error && strstr(r[i].error, "name must be"));
        CHECK(r[7].error == NULL);
        CHECK_STR(r[7].name, "st-1:");
    }
    free(r);

    /* The longest name that fits, and one byte more. */
    char name[sizeof r->name + 1];
    memset(name, 'b', sizeof name);
    name[sizeof r->name - 1] = 0; /* strlen = sizeof - 1: fits */
    snprintf(pack, sizeof pack, "[{\"n\":\"%s\",\"v\":1}]", name);
    CHECK(parse(pack, 20, &r, &n, &err) == ERR_OK && n == 1 && r[0].error == NULL);
    free(r);
    name[sizeof r->name - 1] = 'b';
    name[sizeof r->name] = 0;
    snprintf(pack, sizeof pack, "[{\"n\":\"%s\",\"v\":1}]", name);
    CHECK(parse(pack, 20, &r, &n, &err) == ERR_OK && n == 1 && r[0].error != NULL);
    free(r);

    /* A unit too long to be one. */
    CHECK(parse("[{\"n\":\"a:b\",\"u\":\"abcdefghijklmnopqrstuvwxyz\",\"v\":1}]", 20, &r, &n,
                &err) == ERR_OK);
    CHECK(n == 1 && r[0].error && strstr(r[0].error, "unit"));
    free(r);
}

static void test_unit_factor(void)
{
    double f = -1;
    CHECK(sensors__unit_factor("m", "m", &f) && f == 1.0);
    CHECK(sensors__unit_factor("cm", "m", &f) && near(f, 0.01));
    CHECK(sensors__unit_factor("mm", "m", &f) && near(f, 0.001));
    CHECK(sensors__unit_factor("m", "cm", &f) && near(f, 100));
    CHECK(sensors__unit_factor("cm", "mm", &f) && near(f, 10));
    CHECK(sensors__unit_factor("mm", "mm", &f) && f == 1.0);
    CHECK(sensors__unit_factor("km", "m", &f) && near(f, 1000));
    CHECK(sensors__unit_factor("km/h", "m/s", &f) && near(f, 1 / 3.6));
    CHECK(sensors__unit_factor("hPa", "Pa", &f) && near(f, 100));
    CHECK(sensors__unit_factor("hPa", "kPa", &f) && near(f, 0.1));
    CHECK(sensors__unit_factor("l/s", "m3/s", &f) && near(f, 0.001));
    CHECK(sensors__unit_factor("mV", "V", &f) && near(f, 0.001));
    CHECK(sensors__unit_factor("h", "min", &f) && near(f, 60));
    CHECK(sensors__unit_factor("deg", "rad", &f) && near(f, M_PI / 180));
    /* Different quantities, unknown units, and case: no factor, and *factor untouched. */
    f = -1;
    CHECK(!sensors__unit_factor("m", "Cel", &f) && f == -1);
    CHECK(!sensors__unit_factor("mm/h", "mm", &f) && f == -1);
    CHECK(!sensors__unit_factor("%", "%RH", &f) && f == -1);
    CHECK(!sensors__unit_factor("ft", "m", &f) && f == -1);
    CHECK(!sensors__unit_factor("m", "ft", &f) && f == -1);
    CHECK(!sensors__unit_factor("M", "m", &f) && f == -1);
    CHECK(!sensors__unit_factor("", "m", &f) && f == -1);
    CHECK(sensors__unit_known("Cel") && sensors__unit_known("%RH") && sensors__unit_known("m3/s"));
    CHECK(!sensors__unit_known("celsius") && !sensors__unit_known(""));
}

/* ---- QC ------------------------------------------------------------------------------------ */
static const int64_t T0 = 1594645200000;

/* Evaluates then pushes, as the writer does for a stored reading. */
static enum qc_flag feed(const struct qc_limits *l, struct qc_history *h, int interval_s,
                         int64_t t_ms, double v, int *failed)
{
    enum qc_flag f = sensors__qc_eval(l, h, interval_s, t_ms, v, failed);
    sensors__qc_push(h, t_ms, v, l);
    return f;
}

static void test_qc_limits_and_names(void)
{
    const struct qc_limits *wl = sensors__qc_limits(KIND_WATER_LEVEL, "level");
    CHECK(wl->min == -2.0 && wl->max == 30.0 && wl->spike == 2.0 && wl->flat_count == 6);
    CHECK(near(wl->rate_per_s, 3.0 / 600.0));
    const struct qc_limits *rain = sensors__qc_limits(KIND_RAIN, "rain");
    CHECK(rain->flat_count == 0 && rain->min == 0);
    const struct qc_limits *any = sensors__qc_limits(KIND_WATER_LEVEL, "battery");
    CHECK(any != wl && any->spike == 0 && any->flat_count == 0 && any->min < -1e9);
    CHECK_STR(sensors__qc_name(QC_GOOD), "good");
    CHECK_STR(sensors__qc_name(QC_SUSPECT), "suspect");
    CHECK_STR(sensors__qc_name(QC_BAD), "bad");
    CHECK_STR(sensors__qc_name(0), "unknown");
    enum station_kind k;
    CHECK(sensors__kind_parse("water_level", &k) && k == KIND_WATER_LEVEL);
    CHECK(sensors__kind_parse("waste_bin", &k) && k == KIND_WASTE_BIN);
    CHECK(!sensors__kind_parse("Water_Level", &k) && !sensors__kind_parse(NULL, &k));
    CHECK_STR(sensors__kind_name(KIND_RAIN), "rain");
    CHECK_STR(sensors__kind_name(KIND__COUNT), "unknown");
}

static void test_qc_range(void)
{
    const struct qc_limits *l = sensors__qc_limits(KIND_WATER_LEVEL, "level");
    struct qc_history h = {0};
    int failed = -1;
    CHECK(sensors__qc_eval(l, &h, 600, T0, 30.0, &failed) == QC_GOOD && failed == 0);
    CHECK(sensors__qc_eval(l, &h, 600, T0, -2.0, &failed) == QC_GOOD && failed == 0);
    CHECK(sensors__qc_eval(l, &h, 600, T0, 30.01, &failed) == QC_BAD && failed == QC_RANGE);
    CHECK(sensors__qc_eval(l, &h, 600, T0, -2.5, &failed) == QC_BAD && failed == QC_RANGE);
    CHECK(sensors__qc_eval(l, &h, 600, T0, 1e308, &failed) == QC_BAD && failed == QC_RANGE);
    /* Range applies to a backfilled reading too, and bad is only the range test. */
    feed(l, &h, 600, T0, 1.0, &failed);
    CHECK(sensors__qc_eval(l, &h, 600, T0 - 600000, 99, &failed) == QC_BAD && failed == QC_RANGE);
    CHECK(sensors__qc_eval(l, &h, 600, T0 + 60000, 40, &failed) == QC_BAD && failed == QC_RANGE);
}

static void test_qc_spike_and_rate(void)
{
    const struct qc_limits *l = sensors__qc_limits(KIND_WATER_LEVEL, "level");
    struct qc_history h = {0};
    int failed;
    CHECK(feed(l, &h, 600, T0, 1.0, &failed) == QC_GOOD && failed == 0); /* first: no history */
    /* 2 m in 10 min: exactly the spike limit, and 2/600 < 3/600 m/s: good. */
    CHECK(feed(l, &h, 600, T0 + 600000, 3.0, &failed) == QC_GOOD && failed == 0);
    /* 2.5 m in 10 min: a spike, not a rate (2.5/600 < 3/600). */
    CHECK(feed(l, &h, 600, T0 + 1200000, 5.5, &failed) == QC_SUSPECT && failed == QC_SPIKE);
    /* 1.5 m in 1 min: a rate, not a spike. */
    CHECK(feed(l, &h, 600, T0 + 1260000, 4.0, &failed) == QC_SUSPECT && failed == QC_RATE);
    /* 2.5 m in 1 min: both. */
    CHECK(feed(l, &h, 600, T0 + 1320000, 6.5, &failed) == QC_SUSPECT &&
          failed == (QC_SPIKE | QC_RATE));
    /* Falling counts the same as rising. */
    CHECK(feed(l, &h, 600, T0 + 1920000, 4.0, &failed) == QC_SUSPECT && failed == QC_SPIKE);
    /* A suspect reading still becomes the history: back to 4.1 is a small step. */
    CHECK(feed(l, &h, 600, T0 + 2520000, 4.1, &failed) == QC_GOOD && failed == 0);
    /* A sensor without spike or rate limits never fails them. */
    const struct qc_limits *any = sensors__qc_limits(KIND_WEATHER, "pressure");
    struct qc_history h2 = {0};
    feed(any, &h2, 600, T0, 0, &failed);
    CHECK(feed(any, &h2, 600, T0 + 1000, 1e9, &failed) == QC_GOOD && failed == 0);
}

static void test_qc_flat(void)
{
    const struct qc_limits *l = sensors__qc_limits(KIND_WATER_LEVEL, "level");
    struct qc_history h = {0};
    int failed;
    int64_t t = T0;
    /* Five equal readings are fine; the sixth in a row is a flat line, and so is the seventh. */
    for (int i = 0; i < 5; i++, t += 600000)
        CHECK(feed(l, &h, 600, t, 1.2345, &failed) == QC_GOOD && failed == 0);
    CHECK(h.flat_run == 5);
    CHECK(feed(l, &h, 600, t, 1.2345, &failed) == QC_SUSPECT && failed == QC_FLAT);
    t += 600000;
    /* Within flat_eps counts as equal. */
    CHECK(feed(l, &h, 600, t, 1.2345 + l->flat_eps / 2, &failed) == QC_SUSPECT &&
          failed == QC_FLAT);
    t += 600000;
    /* A change resets the run. */
    CHECK(feed(l, &h, 600, t, 1.30, &failed) == QC_GOOD && failed == 0 && h.flat_run == 1);
    t += 600000;
    for (int i = 0; i < 4; i++, t += 600000)
        CHECK(feed(l, &h, 600, t, 1.30, &failed) == QC_GOOD);
    CHECK(feed(l, &h, 600, t, 1.30, &failed) == QC_SUSPECT && failed == QC_FLAT);
    t += 600000;
    /* Rain has no flat-line test: dry days are normal. */
    const struct qc_limits *rain = sensors__qc_limits(KIND_RAIN, "rain");
    struct qc_history hr = {0};
    for (int i = 0; i < 20; i++)
        CHECK(feed(rain, &hr, 600, T0 + i * 600000LL, 0, &failed) == QC_GOOD && failed == 0);
}

static void test_qc_gap(void)
{
    const struct qc_limits *l = sensors__qc_limits(KIND_WATER_LEVEL, "level");
    struct qc_history h = {0};
    int failed;
    feed(l, &h, 600, T0, 1.0, &failed);
    /* Exactly two intervals later: no gap. */
    CHECK(feed(l, &h, 600, T0 + 1200000, 1.1, &failed) == QC_GOOD && failed == 0);
    /* More than two intervals: a gap; spike and rate are void across it even for a 5 m step. */
    CHECK(feed(l, &h, 600, T0 + 2400001, 6.1, &failed) == QC_SUSPECT && failed == QC_GAP);
    /* interval 0 turns the gap test off. */
    CHECK(sensors__qc_eval(l, &h, 0, T0 + 86400000, 6.2, &failed) == QC_GOOD && failed == 0);
    /* A gap and a flat line together. */
    struct qc_history f = {0};
    for (int i = 0; i < 5; i++)
        feed(l, &f, 60, T0 + i * 60000LL, 2.0, &failed);
    CHECK(feed(l, &f, 60, T0 + 3600000, 2.0, &failed) == QC_SUSPECT &&
          failed == (QC_GAP | QC_FLAT));
}

static void test_qc_history_order(void)
{
    const struct qc_limits *l = sensors__qc_limits(KIND_WATER_LEVEL, "level");
    struct qc_history h = {0};
    int failed;
    feed(l, &h, 600, T0, 1.0, &failed);
    feed(l, &h, 600, T0 + 600000, 1.1, &failed);
    CHECK(h.has_last && h.last_t_ms == T0 + 600000 && h.last_v == 1.1 && h.flat_run == 1);
    /* A backfilled reading (older than the newest, or the same time) is judged by range only
     * and does not move the history. */
    CHECK(feed(l, &h, 600, T0 + 300000, 9.0, &failed) == QC_GOOD && failed == 0);
    CHECK(feed(l, &h, 600, T0 + 600000, 9.0, &failed) == QC_GOOD && failed == 0);
    CHECK(h.last_t_ms == T0 + 600000 && h.last_v == 1.1 && h.flat_run == 1);
    /* The next reading in time is compared with the newest, not with the backfilled one. */
    CHECK(feed(l, &h, 600, T0 + 1200000, 1.2, &failed) == QC_GOOD && failed == 0);
    CHECK(h.last_t_ms == T0 + 1200000 && h.last_v == 1.2);
    /* Pushing equal values counts the run; a first push starts it at 1. */
    struct qc_history e = {0};
    sensors__qc_push(&e, T0, 5, l);
    CHECK(e.has_last && e.flat_run == 1);
    sensors__qc_push(&e, T0 + 1, 5, l);
    sensors__qc_push(&e, T0 + 2, 5, l);
    CHECK(e.flat_run == 3);
    sensors__qc_push(&e, T0 + 1, 7, l); /* older: ignored */
    CHECK(e.flat_run == 3 && e.last_v == 5);
}

int main(void)
{
    test_senml_base_fields();
    test_senml_relative_time();
    test_senml_bad_structures();
    test_senml_must_understand();
    test_senml_values();
    test_senml_names();
    test_unit_factor();
    test_qc_limits_and_names();
    test_qc_range();
    test_qc_spike_and_rate();
    test_qc_flat();
    test_qc_gap();
    test_qc_history_order();
    return unit_report("test_sensors");
}
