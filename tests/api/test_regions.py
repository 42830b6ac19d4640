"""Regions over HTTP: the served regency, its kecamatan and desa with the counts of
data/SOURCES.md, GeoJSON boundaries inside the regency's box, and codes of the other regency
answered 404 unless the deployment serves it (setting regency / SINERGI_REGENCY)."""
import csv
import os
import shutil
import subprocess
import tempfile
import unittest

from tests.api.checks import assert_error_shape
from tests.api.harness import BIN, DATA_DIR, Daemon, DaemonTest, free_port

LON = (119.0, 122.5)
LAT = (-3.5, -1.5)
# data/SOURCES.md: kecamatan and desa/kelurahan per regency, and the one desa of each regency
# that has no polygon in the boundary files.
REGENCIES = {
    "73.22": {"name": "Luwu Utara", "kecamatan": 15, "desa": 173, "no_polygon": "73.22.11.2002"},
    "73.24": {"name": "Luwu Timur", "kecamatan": 11, "desa": 128, "no_polygon": "73.24.06.2017"},
}


def csv_rows(regency):
    name = "kode_wilayah_luwu_%s_%s.csv" % (
        "utara" if regency == "73.22" else "timur", regency.replace(".", ""))
    with open(os.path.join(DATA_DIR, name), newline="") as f:
        return list(csv.DictReader(f))


def positions(geometry):
    """Every [lon, lat] of a Polygon or MultiPolygon, and its rings."""
    polys = [geometry["coordinates"]] if geometry["type"] == "Polygon" \
        else geometry["coordinates"]
    rings = [ring for poly in polys for ring in poly]
    return [p for ring in rings for p in ring], rings


class RegionChecks:
    regency = "73.22"

    def get(self, path):
        r = self.d.request("GET", path)
        self.assertEqual(r.status, 200, r)
        return r.json

    def assertGeometryInside(self, geometry, what):
        self.assertIn(geometry["type"], ("Polygon", "MultiPolygon"), what)
        points, rings = positions(geometry)
        self.assertTrue(points, what)
        for ring in rings:
            self.assertGreaterEqual(len(ring), 4, what)
            self.assertEqual(ring[0], ring[-1], "ring not closed: " + what)
        for lon, lat in points:
            self.assertTrue(LON[0] <= lon <= LON[1] and LAT[0] <= lat <= LAT[1],
                            "%s: point %r outside the box" % (what, (lon, lat)))

    def check_tree(self):
        facts = REGENCIES[self.regency]
        top = self.get("/api/v1/regions")
        self.assertEqual(len(top), 1, top)
        self.assertEqual(top[0]["code"], self.regency)
        self.assertEqual(top[0]["level"], "kabupaten")
        self.assertIn(facts["name"], top[0]["name"])
        self.assertEqual(top[0]["children"], facts["kecamatan"])

        kec = self.get("/api/v1/regions?parent=" + self.regency)
        self.assertEqual(len(kec), facts["kecamatan"])
        self.assertEqual(len({k["code"] for k in kec}), len(kec))
        total = 0
        for k in kec:
            self.assertEqual(k["level"], "kecamatan", k)
            self.assertEqual(k["parent"], self.regency, k)
            self.assertTrue(k["code"].startswith(self.regency + "."), k)
            desa = self.get("/api/v1/regions?parent=" + k["code"])
            self.assertEqual(len(desa), k["children"], k["code"])
            for v in desa:
                self.assertIn(v["level"], ("desa", "kelurahan"), v)
                self.assertEqual(v["parent"], k["code"], v)
                self.assertEqual(v["children"], 0, v)
            total += len(desa)
        self.assertEqual(total, facts["desa"])
        self.assertEqual(sum(k["children"] for k in kec), facts["desa"])

        # The API says what the shipped CSV says, name for name.
        want = {row["code"]: row for row in csv_rows(self.regency)}
        got = {k["code"]: k for k in kec}
        for code, k in got.items():
            self.assertEqual(k["name"], want[code]["name"], code)

    def check_geometry(self):
        f = self.get("/api/v1/regions/%s?geometry=1" % self.regency)
        self.assertEqual(f["type"], "Feature")
        self.assertEqual(f["id"], self.regency)
        self.assertEqual(f["properties"]["code"], self.regency)
        self.assertGeometryInside(f["geometry"], self.regency)

        fc = self.get("/api/v1/regions?parent=%s&geometry=1" % self.regency)
        self.assertEqual(fc["type"], "FeatureCollection")
        self.assertEqual(len(fc["features"]), REGENCIES[self.regency]["kecamatan"])
        for feat in fc["features"]:
            self.assertEqual(feat["type"], "Feature")
            self.assertGeometryInside(feat["geometry"], feat["id"])
            c = feat["properties"]["centroid"]
            self.assertTrue(LON[0] <= c["lon"] <= LON[1] and LAT[0] <= c["lat"] <= LAT[1], c)

        top = self.get("/api/v1/regions?geometry=1")
        self.assertEqual(top["type"], "FeatureCollection")
        self.assertEqual([x["id"] for x in top["features"]], [self.regency])

    def check_desa_geometry(self):
        kec = self.get("/api/v1/regions?parent=" + self.regency)
        first = kec[0]["code"]
        fc = self.get("/api/v1/regions?parent=%s&geometry=1" % first)
        self.assertEqual(len(fc["features"]), kec[0]["children"])
        for feat in fc["features"]:
            self.assertGeometryInside(feat["geometry"], feat["id"])
        # The one desa without a polygon in the source is still served, with null geometry.
        missing = REGENCIES[self.regency]["no_polygon"]
        f = self.get("/api/v1/regions/%s?geometry=1" % missing)
        self.assertEqual(f["type"], "Feature")
        self.assertIsNone(f["geometry"])
        self.assertEqual(f["properties"]["code"], missing)


class LuwuUtaraTest(RegionChecks, DaemonTest):
    def test_regency_kecamatan_and_desa_counts(self):
        self.check_tree()

    def test_geometry_is_geojson_inside_the_regency(self):
        self.check_geometry()

    def test_desa_geometry(self):
        self.check_desa_geometry()

    def test_kecamatan_lists_its_desa(self):
        # Masamba (73.22.03), the town of the 2020 flash flood.
        k = self.get("/api/v1/regions/73.22.03")
        self.assertEqual(k["name"], "Masamba")
        self.assertEqual(k["level"], "kecamatan")
        desa = self.get("/api/v1/regions?parent=73.22.03")
        want = sorted(row["code"] for row in csv_rows("73.22") if row["parent_code"] == "73.22.03")
        self.assertEqual([v["code"] for v in desa], want)
        self.assertEqual(len(desa), k["children"])
        names = {v["name"] for v in desa}
        self.assertIn("Kappuna", names)
        one = self.get("/api/v1/regions/" + desa[0]["code"])
        self.assertEqual(one["parent"], "73.22.03")

    def test_without_geometry_flag_no_geometry(self):
        for path in ("/api/v1/regions/73.22", "/api/v1/regions/73.22?geometry=0",
                     "/api/v1/regions/73.22?geometry=no"):
            with self.subTest(path=path):
                r = self.get(path)
                self.assertNotIn("geometry", r)
                self.assertEqual(r["code"], "73.22")

    def test_other_regency_is_404(self):
        for path in ("/api/v1/regions/73.24", "/api/v1/regions/73.24.01",
                     "/api/v1/regions/73.24.01.2001", "/api/v1/regions/73.24?geometry=1",
                     "/api/v1/regions?parent=73.24", "/api/v1/regions?parent=73.24.01"):
            with self.subTest(path=path):
                assert_error_shape(self, self.d.request("GET", path), 404, "not_found")

    def test_unknown_and_outside_codes_are_404(self):
        for code in ("73.22.99", "73.22.03.9999", "73.22.", "73.221", "73.22x", "73", "73.2",
                     "74.01", "..%2F..%2Fetc", "%2573.22", "73.22%00", "x" * 200):
            with self.subTest(code=code):
                r = self.d.request("GET", "/api/v1/regions/" + code)
                assert_error_shape(self, r, 404, "not_found")
                r = self.d.request("GET", "/api/v1/regions?parent=" + code)
                assert_error_shape(self, r, 404, "not_found")

    def test_public_without_sign_in(self):
        # Kode wilayah and boundaries are open data: no session needed, a bad one is ignored.
        r = self.d.request("GET", "/api/v1/regions", headers={"Authorization": "Bearer nope"})
        self.assertEqual(r.status, 200, r)


class LuwuTimurTest(RegionChecks, DaemonTest):
    regency = "73.24"
    env = {"SINERGI_REGENCY": "73.24"}

    def test_served_regency_follows_the_setting(self):
        self.assertEqual(self.get("/healthz")["regency"], "73.24")

    def test_regency_kecamatan_and_desa_counts(self):
        self.check_tree()

    def test_geometry_is_geojson_inside_the_regency(self):
        self.check_geometry()

    def test_desa_geometry(self):
        self.check_desa_geometry()

    def test_luwu_utara_is_404_here(self):
        for path in ("/api/v1/regions/73.22", "/api/v1/regions/73.22.03",
                     "/api/v1/regions?parent=73.22"):
            with self.subTest(path=path):
                assert_error_shape(self, self.d.request("GET", path), 404, "not_found")


class RegencySettingTest(unittest.TestCase):
    def test_flag_selects_the_regency(self):
        d = Daemon(args=["--regency", "73.24"]).start()
        try:
            r = d.request("GET", "/api/v1/regions")
            self.assertEqual([x["code"] for x in r.json], ["73.24"])
        finally:
            d.cleanup()

    def test_unknown_regency_refuses_to_start(self):
        work = tempfile.mkdtemp(prefix="sinergi-regency-")
        self.addCleanup(shutil.rmtree, work, True)
        env = dict(os.environ, SINERGI_REGENCY="73.99")
        p = subprocess.run([BIN, "serve", "--listen", "127.0.0.1:%d" % free_port(), "--db",
                            os.path.join(work, "sinergi.db"), "--data-dir", DATA_DIR],
                           capture_output=True, text=True, env=env, timeout=60)
        self.assertNotEqual(p.returncode, 0, p.stdout)
        self.assertIn("73.99", p.stderr)
        self.assertNotIn("serving on", p.stdout)

if __name__ == "__main__":
    unittest.main()
