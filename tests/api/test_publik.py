"""The public flood page GET /publik against the real daemon: plain HTML without sign-in and
without any script, small enough for a weak signal, well-formed; calm when nothing is in force;
a reading above Siaga puts the warning on the page with both level names, the instruction for
that level and a link to its CAP document; Awas carries the Masamba lesson; a silent station is
"tidak ada data" and its old value is not shown as current; station names are escaped.
"""
import html
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from tests.api.harness import DaemonTest

SENML = "application/senml+json"
ENV = {"SINERGI_SEED_DEMO": "0"}
BUDGET = 100 * 1024  # issue 5: under 100 KB transferred
TARGET = 30 * 1024   # this room's own target for 10 stations, uncompressed
HTML5_TAGS = ("header", "main", "section", "footer", "nav", "article")


def xmllint_html(text):
    """xmllint --html --noout messages other than libxml2 not knowing HTML5 tags."""
    with tempfile.NamedTemporaryFile("w", suffix=".html", delete=False, encoding="utf-8") as f:
        f.write(text)
        path = f.name
    try:
        p = subprocess.run(["xmllint", "--html", "--noout", path], capture_output=True,
                           text=True, timeout=60)
    finally:
        os.unlink(path)
    out = (p.stdout + p.stderr).splitlines()
    bad, skip = [], 0
    for i, line in enumerate(out):
        if skip:  # the two lines that quote the source and point at it
            skip -= 1
            continue
        m = re.search(r"HTML parser error : Tag (\w+) invalid", line)
        if m and m.group(1) in HTML5_TAGS:
            skip = 2
            continue
        bad.append(line)
    return p.returncode, bad


def text(fragment):
    """What a reader gets from a piece of the page: tags dropped, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", fragment)).replace("\xa0", " ")


class PublikBase(DaemonTest):
    env = ENV

    def page(self):
        """GET /publik without a session: checked for what every render must be."""
        r = self.d.request("GET", "/publik")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Content-Type"), "text/html; charset=utf-8")
        self.assertLess(len(r.body.encode()), BUDGET)
        self.assertNotIn("<script", r.body.lower())
        self.assertIn('<html lang="id">', r.body)
        return r

    def station(self, code, name=None, river="Sungai Masamba", region="73.22.03.1002",
                interval_s=600, demo=False, kind="water_level"):
        body = {"code": code, "name": name or ("TEST " + code), "kind": kind, "lat": -2.5569,
                "lon": 120.3304, "region": region, "river": river, "opd": "bpbd",
                "interval_s": interval_s, "demo": demo}
        if kind == "water_level":
            body["thresholds"] = {"waspada": 2.0, "siaga": 3.0, "awas": 4.0}
        r = self.d.request("POST", "/api/v1/stations", body, token=self.admin)
        self.assertEqual(r.status, 201, r)
        return r.json["device_token"]

    def ingest(self, token, code, points, sensor="level"):
        """Readings [(t, v)]: t seconds from now (negative: in the past)."""
        pack = [{"n": "%s:%s" % (code, sensor), "t": t, "v": v} for t, v in points]
        r = self.d.request("POST", "/api/v1/ingest", json.dumps(pack), token=token,
                           content_type=SENML)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["accepted"], len(points), r)

    def open_alert(self, code, rule="level"):
        r = self.d.request("GET", "/api/v1/alerts?state=open&station=" + code, token=self.admin)
        self.assertEqual(r.status, 200, r)
        found = [a for a in r.json if a["rule"] == rule]
        self.assertEqual(len(found), 1, r.json)
        return found[0]

    @staticmethod
    def row(body, name):
        """The station table row that names `name` (escaped as the page writes it)."""
        rows = [m for m in re.findall(r"<tr>.*?</tr>", body, re.S) if html.escape(name) in m]
        assert len(rows) == 1, (name, rows)
        return rows[0]

    @staticmethod
    def warning(body, name):
        """The warning item of the station called `name`."""
        items = [m for m in re.findall(r'<li class="l\d">.*?</li>', body, re.S)
                 if html.escape(name) in m]
        assert len(items) == 1, (name, items)
        return items[0]


class PublikCalmTest(PublikBase):
    def test_calm_page_without_sign_in(self):
        r = self.page()
        # nothing reports yet: no warning, but not shown as green either
        self.assertIn("Tidak ada peringatan banjir saat ini", r.body)
        self.assertIn('class="box u"', r.body)
        tok = self.station("calm-pda-01")
        self.ingest(tok, "calm-pda-01", [(-60, 1.2)])
        body = self.page().body
        self.assertIn("Tidak ada peringatan banjir saat ini", body)
        self.assertIn('class="box l0"', body)
        self.assertIn("Tidak ada peringatan banjir yang berlaku", body)
        row = text(self.row(body, "TEST calm-pda-01"))
        self.assertIn("Normal (Siaga 4)", row)
        self.assertIn("1,20 m", row)
        self.assertIn("Kelurahan Bone, Kecamatan Masamba", row)
        # the regency is named once, as the kode wilayah writes it
        self.assertIn("<h1>Status Banjir Kabupaten Luwu Utara</h1>", body)
        # what the levels mean, both names, in words; feed and demo note; numbers marked
        for words in ("Normal (Siaga 4)", "Waspada (Siaga 3)", "Siaga (Siaga 2)",
                      "Awas (Siaga 1)", "DEMO adalah data demonstrasi", "112", "CONTOH"):
            self.assertIn(words, text(body))
        self.assertIn('href="/cap/alerts.atom"', body)

    def test_headers(self):
        r = self.page()
        cache = [v for k, v in r.headers if k.lower() == "cache-control"]
        self.assertIn("public, max-age=30", cache)
        csp = r.header("Content-Security-Policy")
        self.assertIn("default-src 'none'", csp)
        self.assertNotIn("script-src", csp)

    def test_page_may_be_cached_briefly(self):
        """Needs server.c to let a handler's own Cache-Control replace its default no-store."""
        r = self.page()
        cache = [v for k, v in r.headers if k.lower() == "cache-control"]
        self.assertEqual(cache, ["public, max-age=30"])

    def test_accessible_structure(self):
        body = self.page().body
        self.assertEqual(body.count("<h1>"), 1)
        self.assertEqual(body.count("<table>"), body.count("<caption>"))
        self.assertIn('<meta name="viewport"', body)
        # no external resources of any kind
        self.assertNotRegex(body, r'(src|href)="(https?:)?//')
        self.assertNotIn("<img", body)
        self.assertNotIn("<link rel=\"stylesheet\"", body)


class PublikWarningTest(PublikBase):
    def test_siaga_then_awas_with_instructions_and_cap_link(self):
        code = "pub-pda-masamba"
        tok = self.station(code)
        # rising, 500 s apart and never faster than QC allows: Siaga at 3.2 m
        self.ingest(tok, code, [(-3000, 1.5), (-2500, 1.8), (-2000, 2.2), (-1500, 2.6),
                                (-1000, 2.9), (-500, 3.2)])
        alert = self.open_alert(code)
        self.assertEqual(alert["level"], 2, alert)
        body = self.page().body
        w = self.warning(body, "TEST " + code)
        t = text(w)
        self.assertIn("Siaga (Siaga 2)", t)
        self.assertIn("Sungai Masamba – Kecamatan Masamba", t)
        self.assertIn("Bersiap mengungsi", t)
        self.assertIn("lansia", t)
        self.assertIn("penyandang disabilitas", t)
        self.assertIn("3,20 m", t)
        self.assertRegex(t, r"\d{1,2} \w+ 20\d\d pukul \d\d\.\d\d WITA")
        self.assertNotIn("Tidak ada peringatan banjir saat ini", body)
        # the headline is this warning
        kini = body[body.index('id="h-kini"'):body.index('id="h-peringatan"')]
        self.assertIn('class="box l2"', kini)
        self.assertIn("Siaga (Siaga 2)", text(kini))
        # the CAP document it links to exists and is this alert's
        m = re.search(r'href="(/cap/alerts/(\d+)-(\d+)\.xml)"', w)
        self.assertIsNotNone(m, w)
        self.assertEqual(int(m.group(2)), alert["id"])
        r = self.d.request("GET", m.group(1))
        self.assertEqual(r.status, 200, r)
        self.assertIn("Siaga 2", r.body)
        # the feed lists the same document
        self.assertIn(m.group(1), self.d.request("GET", "/cap/alerts.atom").body)
        self.assertIn("Siaga (Siaga 2)", text(self.row(body, "TEST " + code)))

        # Awas at 4.2 m: evacuate now, and do not come back when the water drops
        self.ingest(tok, code, [(-250, 3.6), (-100, 4.2)])
        self.assertEqual(self.open_alert(code)["level"], 3)
        body = self.page().body
        w = self.warning(body, "TEST " + code)
        t = text(w)
        self.assertIn("Awas (Siaga 1)", t)
        self.assertIn("Segera mengungsi", t)
        self.assertIn("Jangan kembali walaupun air tampak surut", t)
        self.assertIn("20.45", t)
        self.assertIn("4,20 m", t)
        m2 = re.search(r'href="/cap/alerts/%d-(\d+)\.xml"' % alert["id"], w)
        self.assertIsNotNone(m2, w)
        self.assertGreater(int(m2.group(1)), int(m.group(3)), "links the newest CAP message")
        kini = body[body.index('id="h-kini"'):body.index('id="h-peringatan"')]
        self.assertIn('class="box l3"', kini)
        self.assertIn("Awas (Siaga 1)", text(kini))

    def test_silent_station_shows_no_data(self):
        never = "pub-pda-never"
        self.station(never, river="Sungai Rongkong", region="73.22.04.2007", interval_s=60)
        stale = "pub-pda-stale"
        tok = self.station(stale, river="Sungai Radda", region="73.22.11.2003", interval_s=60)
        self.ingest(tok, stale, [(-900, 1.37)])  # 15 min ago, reporting every minute
        body = self.page().body
        row = text(self.row(body, "TEST " + stale))
        self.assertIn("Tidak ada data", row)
        self.assertNotIn("Normal", row)
        self.assertIn("Data terakhir", row)
        self.assertNotIn("1,37", body)
        row = text(self.row(body, "TEST " + never))
        self.assertIn("Tidak ada data", row)
        self.assertIn("Belum pernah mengirim data", row)
        self.assertIn("tidak mengirim data", text(body[:body.index('id="h-peringatan"')]))

    def test_warning_of_a_station_gone_silent(self):
        code = "pub-pda-silent"
        tok = self.station(code, river="Sungai Baliase", interval_s=60)
        # one minute apart, within QC's rate limit, Siaga at 3.25 m, then nothing for 18 min
        self.ingest(tok, code, [(-1500 + 60 * k, 1.5 + 0.25 * k) for k in range(8)])
        self.assertEqual(self.open_alert(code)["level"], 2)
        body = self.page().body
        row = text(self.row(body, "TEST " + code))
        self.assertIn("Tidak ada data", row)
        self.assertIn("Siaga (Siaga 2)", row)  # the warning still stands
        self.assertNotIn("3,25", row)
        w = text(self.warning(body, "TEST " + code))
        self.assertIn("Pos tidak mengirim data sejak", w)
        # the value the rule decided Siaga on, said to be that, not the water now
        self.assertIn("Saat status ini ditetapkan: 3,00 m", w)
        self.assertNotIn("3,25", w)

    def test_station_name_is_escaped(self):
        name = "<script>alert(1)</script> & \"Pos\" 'x'"
        self.station("pub-pda-xss", name=name, river="<b>Sungai</b>")
        body = self.page().body
        self.assertNotIn("<script", body.lower())
        self.assertNotIn("<b>Sungai", body)
        self.assertIn("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;Pos&quot; &#39;x&#39;",
                      body)
        self.assertIn("&lt;b&gt;Sungai&lt;/b&gt;", body)

    def test_demo_warning_is_marked_and_real_ones_lead(self):
        code = "demo-pub-radda"
        tok = self.station(code, name="DEMO Pos Radda", river="Sungai Radda",
                           region="73.22.11.2003", demo=True)
        self.ingest(tok, code, [(-3000, 1.5), (-2500, 1.8), (-2000, 2.2), (-1500, 2.6),
                                (-1000, 2.9), (-500, 3.3), (-250, 3.7), (-100, 4.3)])
        self.assertEqual(self.open_alert(code)["level"], 3)
        body = self.page().body
        self.assertIn("LATIHAN", self.warning(body, "DEMO Pos Radda"))
        kini = body[body.index('id="h-kini"'):body.index('id="h-peringatan"')]
        real = [a for a in self.d.request("GET", "/api/v1/alerts?state=open",
                                          token=self.admin).json
                if a["public"] and a["level"] >= 1 and not a["station"].startswith("demo-")]
        if real:  # a real warning (of another test) leads; the drill does not hide it
            self.assertNotIn("LATIHAN", kini)
        else:
            self.assertIn("LATIHAN (DEMO)", kini)

    @unittest.skipUnless(shutil.which("xmllint"), "xmllint (libxml2-utils) is not installed")
    def test_well_formed_html(self):
        self.station("pub-pda-lint", name="Pos <lint> & co")
        rc, bad = xmllint_html(self.page().body)
        self.assertEqual(bad, [])
        self.assertEqual(rc, 0)


class PublikSizeTest(PublikBase):
    def test_ten_stations_fit_the_budget(self):
        rivers = ["Sungai Masamba", "Sungai Radda", "Sungai Rongkong", "Sungai Meli",
                  "Sungai Baliase"]
        for i in range(10):
            code = "size-pda-%02d" % i
            tok = self.station(code, name="Pos Duga Air %s %d (Kelurahan Bone)"
                               % (rivers[i % 5], i), river=rivers[i % 5], interval_s=600)
            if i < 3:  # three of them at Awas, so the page carries warnings too
                self.ingest(tok, code, [(-3000, 1.5), (-2500, 1.8), (-2000, 2.2), (-1500, 2.6),
                                        (-1000, 2.9), (-500, 3.3), (-250, 3.7), (-100, 4.3)])
            elif i < 8:
                self.ingest(tok, code, [(-60, 1.0 + i / 10)])
        body = self.page().body
        size = len(body.encode())
        print("\n/publik with 10 stations and 3 warnings: %d bytes" % size)
        self.assertLess(size, TARGET)
        self.assertEqual(body.count('<tr><th scope="row"><strong>Sungai'), 10)
        self.assertEqual(len(re.findall(r'<li class="l3">', body)), 3)


if __name__ == "__main__":
    unittest.main()
