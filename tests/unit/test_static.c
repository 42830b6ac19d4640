/* Unit tests of src/http/static.c: asset names, types, cache lifetimes by name, Accept-Encoding
 * and If-None-Match parsing. Serving itself is tested over HTTP (tests/api/test_static.py). */
#include "http/static.h"
#include "unit.h"

static void test_names(void)
{
    CHECK(static__name_ok("app.js"));
    CHECK(static__name_ok("leaflet-1.9.4.css"));
    CHECK(static__name_ok("a_b-c.0.svg"));
    CHECK(!static__name_ok(""));
    CHECK(!static__name_ok(NULL));
    CHECK(!static__name_ok(".."));
    CHECK(!static__name_ok(".hidden.js"));
    CHECK(!static__name_ok("../index.html"));
    CHECK(!static__name_ok("a/b.js"));
    CHECK(!static__name_ok("App.js")); /* lowercase only: one spelling per file */
    CHECK(!static__name_ok("a b.js"));
    CHECK(!static__name_ok("a%2e.js"));
    char longname[200];
    memset(longname, 'a', sizeof longname);
    memcpy(longname + sizeof longname - 4, ".js", 4);
    CHECK(!static__name_ok(longname));
}

static void test_types(void)
{
    CHECK_STR(static__content_type("app.js"), "text/javascript; charset=utf-8");
    CHECK_STR(static__content_type("app.css"), "text/css; charset=utf-8");
    CHECK_STR(static__content_type("x.json"), "application/json; charset=utf-8");
    CHECK_STR(static__content_type("icon.svg"), "image/svg+xml");
    CHECK(static__content_type("app.js.gz") == NULL); /* siblings are not addressable */
    CHECK(static__content_type("notes") == NULL);
    CHECK(static__content_type("run.sh") == NULL);
    CHECK(static__content_type("x.jsx") == NULL);
}

static void test_fingerprinted(void)
{
    CHECK(static__fingerprinted("leaflet-1.9.4.js"));
    CHECK(static__fingerprinted("uplot-1.6.32.min.css"));
    CHECK(static__fingerprinted("app.3f9a0c1d.js"));
    CHECK(static__fingerprinted("app-0123456789abcdef.css"));
    CHECK(!static__fingerprinted("app.js"));
    CHECK(!static__fingerprinted("app.css"));
    CHECK(!static__fingerprinted("i18n-1.js"));
    CHECK(!static__fingerprinted("app.3f9a0c.js")); /* too short for a hash */
    CHECK(!static__fingerprinted("config.json"));
}

static void test_accepts_gzip(void)
{
    CHECK(static__accepts_gzip("gzip"));
    CHECK(static__accepts_gzip("gzip, deflate, br"));
    CHECK(static__accepts_gzip("br;q=1.0, GZIP;q=0.5"));
    CHECK(static__accepts_gzip("*"));
    CHECK(static__accepts_gzip("x-gzip"));
    CHECK(!static__accepts_gzip(NULL));
    CHECK(!static__accepts_gzip(""));
    CHECK(!static__accepts_gzip("identity"));
    CHECK(!static__accepts_gzip("deflate, br"));
    CHECK(!static__accepts_gzip("gzip;q=0"));
    CHECK(!static__accepts_gzip("gzip; q=0.000"));
    CHECK(!static__accepts_gzip("gzip;q=0, *")); /* explicit refusal wins over * */
    CHECK(!static__accepts_gzip("*;q=0"));
    CHECK(static__accepts_gzip("gzip;q=0.001"));
    CHECK(!static__accepts_gzip("gzipx"));
}

static void test_etag_matches(void)
{
    const char *e = "\"3a-17f\"";
    CHECK(static__etag_matches("\"3a-17f\"", e));
    CHECK(static__etag_matches("W/\"3a-17f\"", e));
    CHECK(static__etag_matches("\"x\", \"3a-17f\" ", e));
    CHECK(static__etag_matches("*", e));
    CHECK(!static__etag_matches("\"3a-17f-gz\"", e));
    CHECK(!static__etag_matches("\"3a-17\"", e));
    CHECK(!static__etag_matches("3a-17f", e));
    CHECK(!static__etag_matches("", e));
}

int main(void)
{
    test_names();
    test_types();
    test_fingerprinted();
    test_accepts_gzip();
    test_etag_matches();
    return unit_report("test_static");
}
