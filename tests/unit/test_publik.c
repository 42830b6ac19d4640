/* Unit tests of src/publik without a database: the escaping writer, the Indonesian formats of
 * times and numbers, and the page drawn from hand-made views (calm, nothing reporting, a
 * warning at a hostile-named station that went silent). */
#include <stdlib.h>
#include <string.h>

#include "publik/publik.h"
#include "publik/publik_int.h"
#include "unit.h"

/* 2020-07-13T12:15:00Z = 20:15 WITA, when the Masamba overflowed */
#define T0 1594642500

static char *render(const struct publik_view *v, size_t *len)
{
    char *page = NULL;
    struct err e = ERR_INIT;
    CHECK(publik__draw(v, &page, len, &e) == ERR_OK);
    CHECK(page && strlen(page) == *len);
    return page;
}

static void test_writer(void)
{
    struct html h;
    char *out;
    size_t len;
    struct err e = ERR_INIT;
    html_init(&h, 1024);
    html_lit(&h, "<p>");
    html_text(&h, "<script>alert('x')</script> & \"q\"\x01\x7f\tok");
    html_textf(&h, " %s=%d", "<b>", 3);
    html_text(&h, NULL);
    html_lit(&h, "</p>");
    CHECK(html_finish(&h, &out, &len, &e) == ERR_OK);
    CHECK_STR(out, "<p>&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;\tok"
                   " &lt;b&gt;=3</p>");
    CHECK(len == strlen(out));
    free(out);

    /* a long formatted text is escaped whole, not cut */
    char big[600];
    memset(big, '<', sizeof big - 1);
    big[sizeof big - 1] = 0;
    html_init(&h, 8192);
    html_textf(&h, "%s", big);
    CHECK(html_finish(&h, &out, &len, &e) == ERR_OK);
    CHECK(len == 4 * (sizeof big - 1));
    free(out);

    /* over the cap: the first failure sticks and nothing is handed out */
    html_init(&h, 8);
    html_lit(&h, "<p>0123456789</p>");
    html_lit(&h, "x");
    out = NULL;
    CHECK(html_finish(&h, &out, &len, &e) == ERR_INTERNAL);
    CHECK(out == NULL);
}

static void test_formats(void)
{
    char when[PUBLIK_WHEN_LEN], num[32];
    publik__fmt_when(when, T0);
    CHECK_STR(when, "13 Juli 2020 pukul 20.15 WITA");
    publik__fmt_when(when, 1795356000); /* 2026-11-22T14:00:00Z */
    CHECK_STR(when, "22 November 2026 pukul 22.00 WITA");
    publik__fmt_recent(when, T0 + 30 * 60, T0 + 3600);
    CHECK_STR(when, "pukul 20.45 WITA");
    /* 23:59 WITA is 15:59 UTC: the same UTC day, another WITA day */
    publik__fmt_recent(when, 1594655940, 1594656060);
    CHECK_STR(when, "13 Juli 2020 pukul 23.59 WITA");
    publik__fmt_num(num, sizeof num, 3.126, 2);
    CHECK_STR(num, "3,13");
    publik__fmt_num(num, sizeof num, 25, 1);
    CHECK_STR(num, "25,0");
}

static void test_calm_and_empty(void)
{
    size_t len;
    struct publik_station st[1] = {{.code = "pda-1",
                                    .name = "Pos Masamba",
                                    .river = "Sungai Masamba",
                                    .desa = "Kelurahan Bone",
                                    .kecamatan = "Kecamatan Masamba",
                                    .live = true,
                                    .thresholds = true,
                                    .th = {2, 3, 4},
                                    .has_value = true,
                                    .value = 1.2,
                                    .at_s = T0}};
    struct publik_view v = {.regency_name = "Kabupaten Luwu Utara", .now_s = T0 + 60};
    char *page = render(&v, &len);
    CHECK(strstr(page, "<html lang=\"id\">") != NULL);
    CHECK(strstr(page, "Tidak ada peringatan banjir saat ini") != NULL);
    CHECK(strstr(page, "class=\"box u\"") != NULL); /* nothing reports: not green */
    CHECK(strstr(page, "Belum ada pos pemantauan") != NULL);
    CHECK(strstr(page, "<script") == NULL);
    free(page);

    v.st = st;
    v.nst = v.nst_shown = 1;
    page = render(&v, &len);
    CHECK(strstr(page, "class=\"box l0\"") != NULL);
    CHECK(strstr(page, "Semua pos berstatus Normal") != NULL);
    CHECK(strstr(page, "1,20 m") != NULL);
    CHECK(strstr(page, "pukul 20.15 WITA") != NULL);
    CHECK(strstr(page, "Normal (Siaga&nbsp;4)") != NULL);
    CHECK(len < 16 * 1024);
    free(page);
}

static void test_warning_at_silent_station(void)
{
    size_t len;
    struct publik_station st[2] = {
        {.code = "x",
         .name = "<script>alert(1)</script>",
         .river = "Sungai \"Radda\"",
         .desa = "Desa Radda",
         .kecamatan = "Kecamatan Baebunta",
         .live = false,
         .thresholds = true,
         .th = {1.8, 2.7, 3.6},
         .level = 3,
         .at_s = T0 + 1800},
        {.code = "y",
         .name = "DEMO Pos",
         .river = "Sungai Masamba",
         .desa = "",
         .kecamatan = "",
         .demo = true,
         .live = true,
         .thresholds = true,
         .th = {2, 3, 4},
         .level = 1,
         .has_value = true,
         .suspect = true,
         .value = 2.3,
         .at_s = T0 + 3500},
    };
    struct publik_warning w[3] = {
        {.id = 7,
         .cap_version = 4,
         .level = 3,
         .rule = "level",
         .station = 0,
         .since_s = T0,
         .has_value = true,
         .value = 3.9},
        {.id = 8,
         .cap_version = 0,
         .level = 2,
         .rule = "rate_of_rise",
         .station = 0,
         .since_s = T0 - 600,
         .has_value = true,
         .value = 3.0},
        {.id = 9,
         .cap_version = 1,
         .level = 1,
         .rule = "level",
         .station = 1,
         .demo = true,
         .since_s = T0,
         .has_value = true,
         .value = 2.1},
    };
    struct publik_view v = {.regency_name = "Kabupaten <Luwu> Utara",
                            .now_s = T0 + 3600,
                            .st = st,
                            .nst = 2,
                            .nst_shown = 2,
                            .w = w,
                            .nw = 3};
    char *page = render(&v, &len);
    CHECK(strstr(page, "<script") == NULL);
    CHECK(strstr(page, "&lt;script&gt;alert(1)&lt;/script&gt;") != NULL);
    CHECK(strstr(page, "Kabupaten &lt;Luwu&gt; Utara") != NULL);
    CHECK(strstr(page, "Sungai &quot;Radda&quot;") != NULL);
    CHECK(strstr(page, "class=\"box l3\"") != NULL);
    CHECK(strstr(page, "Awas (Siaga&nbsp;1)") != NULL);
    CHECK(strstr(page, "Jangan kembali walaupun air tampak surut") != NULL);
    CHECK(strstr(page, "href=\"/cap/alerts/7-4.xml\"") != NULL);
    CHECK(strstr(page, "href=\"/cap/alerts/8-") == NULL); /* no message yet: no link */
    CHECK(strstr(page, "air naik cepat (belum diterbitkan)") != NULL);
    CHECK(strstr(page, "href=\"/cap/alerts/9-1.xml\"") != NULL);
    /* one item per station, since its earliest warning */
    CHECK(strstr(page, "<li class=\"l3\">") != NULL);
    CHECK(strstr(page, "<li class=\"l2\">") == NULL);
    CHECK(strstr(page, "13 Juli 2020 pukul 20.05 WITA") != NULL);
    /* silent: the decided value is named as such, never as the water now */
    CHECK(strstr(page, "Pos tidak mengirim data sejak 13 Juli 2020 pukul 20.45 WITA") != NULL);
    CHECK(strstr(page, "Saat status ini ditetapkan: 3,90 m") != NULL);
    CHECK(strstr(page, "Tinggi muka air 3,90") == NULL);
    CHECK(strstr(page, "Tidak ada data</span><br><small>Peringatan Awas") != NULL);
    /* the drill is marked, and the live reading flagged suspect */
    CHECK(strstr(page, "LATIHAN: pos DEMO") != NULL);
    CHECK(strstr(page, "2,30 m (diragukan)") != NULL);
    CHECK(strstr(page, "lokasi tidak tercatat") != NULL);
    CHECK(strstr(page, "1 dari 2 pos tidak mengirim data") != NULL);
    free(page);
}

int main(void)
{
    test_writer();
    test_formats();
    test_calm_and_empty();
    test_warning_at_silent_station();
    return unit_report("test_publik");
}
