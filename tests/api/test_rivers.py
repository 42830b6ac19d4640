"""The rivers' reference points over HTTP: GET /api/v1/rivers serves the points of the shipped
data/rivers_reference_points.csv for the served regency only, each placed in the desa or
kelurahan whose boundary holds it, as JSON and as GeoJSON; a database made before the table
existed gets them at start; a broken file stops the import naming its row."""
import csv
import os
import shutil
import sqlite3
import subprocess
import tempfile
import unittest

from tests.api.checks import assert_error_shape
from tests.api.harness import BIN, DATA_DIR, Daemon, DaemonTest

REGENCY_NAMES = {"73.22": "Luwu Utara", "73.24": "Luwu Timur"}
FIELDS = {"id", "river", "description", "lat", "lon", "confidence", "confidence_note", "basis",
          "source", "regency", "region", "kecamatan"}


def csv_points(regency):
    """The file's rows of one regency, with their 1-based place in the file."""
    with open(os.path.join(DATA_DIR, "rivers_reference_points.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    return [(i + 1, row) for i, row in enumerate(rows) if row["regency"] == REGENCY_NAMES[regency]]


def ring_toggles(ring, lon, lat):
    inside = False
    for (xa, ya), (xb, yb) in zip(ring, ring[-1:] + ring[:-1]):
        if (ya > lat) != (yb > lat) and lon < (xb - xa) * (lat - ya) / (yb - ya) + xa:
            inside = not inside
    return inside


def holds(geometry, lon, lat):
    polys = [geometry["coordinates"]] if geometry["type"] == "Polygon" \
        else geometry["coordinates"]
    inside = False
    for poly in polys:
        for ring in poly:
            inside ^= ring_toggles(ring, lon, lat)
    return inside


class RiverChecks:
    regency = "73.22"

    def get(self, path):
        r = self.d.request("GET", path)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.header("Content-Type").startswith("application/json"), r.headers)
        return r.json

    def check_points_are_the_files(self):
        want = csv_points(self.regency)
        got = self.get("/api/v1/rivers")
        self.assertEqual(len(got), len(want))
        self.assertTrue(got, "the shipped file has points for " + self.regency)
        for p, (n, row) in zip(got, want):
            with self.subTest(point=n):
                self.assertEqual(set(p), FIELDS, p)
                self.assertEqual(p["id"], n)
                self.assertEqual(p["river"], row["river"])
                self.assertEqual(p["description"], row["point_description"])
                self.assertAlmostEqual(p["lat"], float(row["lat"]), places=6)
                self.assertAlmostEqual(p["lon"], float(row["lon"]), places=6)
                self.assertEqual(p["basis"], row["basis"])
                self.assertEqual(p["source"], row["source"])
                self.assertEqual(p["regency"], self.regency)
                # "medium (river passes ...)": the level and its note
                conf = p["confidence"] + (" (%s)" % p["confidence_note"]
                                          if p["confidence_note"] else "")
                self.assertEqual(conf, row["confidence"])
                self.assertIn(p["confidence"], ("low", "low-medium", "medium", "high"))

    def check_points_lie_in_their_desa(self):
        for p in self.get("/api/v1/rivers"):
            with self.subTest(point=p["id"]):
                region, kec = p["region"], p["kecamatan"]
                self.assertIsNotNone(region, "every shipped point lies in a desa polygon")
                self.assertIn(region["level"], ("desa", "kelurahan"))
                self.assertTrue(region["code"].startswith(kec["code"] + "."), p)
                self.assertTrue(kec["code"].startswith(self.regency + "."), p)
                # the same names the regions API gives, and its polygon holds the point
                f = self.get("/api/v1/regions/%s?geometry=1" % region["code"])
                self.assertEqual(f["properties"]["name"], region["name"])
                self.assertEqual(f["properties"]["parent"], kec["code"])
                self.assertTrue(holds(f["geometry"], p["lon"], p["lat"]), p)
                self.assertEqual(self.get("/api/v1/regions/" + kec["code"])["name"], kec["name"])

    def check_geojson(self):
        plain = self.get("/api/v1/rivers")
        fc = self.get("/api/v1/rivers?geometry=1")
        self.assertEqual(fc["type"], "FeatureCollection")
        self.assertEqual(len(fc["features"]), len(plain))
        for f, p in zip(fc["features"], plain):
            self.assertEqual(f["type"], "Feature")
            self.assertEqual(f["id"], p["id"])
            self.assertEqual(f["geometry"], {"type": "Point", "coordinates": [p["lon"], p["lat"]]})
            self.assertEqual(f["properties"], p)


class LuwuUtaraRiversTest(RiverChecks, DaemonTest):
    def test_points_are_the_shipped_files(self):
        self.check_points_are_the_files()

    def test_points_lie_in_their_desa(self):
        self.check_points_lie_in_their_desa()

    def test_geojson(self):
        self.check_geojson()

    def test_masamba(self):
        # the river of the 13 July 2020 flash flood runs through the town of Masamba
        p = self.get("/api/v1/rivers")[0]
        self.assertEqual(p["river"], "Sungai Masamba")
        self.assertEqual(p["kecamatan"]["name"], "Masamba")
        rivers = {x["river"] for x in self.get("/api/v1/rivers")}
        self.assertIn("Sungai Rongkong", rivers)
        self.assertNotIn("Sungai Malili", rivers)  # Luwu Timur's

    def test_public_and_read_only(self):
        r = self.d.request("GET", "/api/v1/rivers", headers={"Authorization": "Bearer nope"})
        self.assertEqual(r.status, 200, r)
        for method in ("POST", "PUT", "DELETE"):
            with self.subTest(method=method):
                r = self.d.request(method, "/api/v1/rivers", {}, token=self.admin)
                assert_error_shape(self, r, 405, "method_not_allowed")
                self.assertEqual(r.header("Allow"), "GET")


class LuwuTimurRiversTest(RiverChecks, DaemonTest):
    regency = "73.24"
    env = {"SINERGI_REGENCY": "73.24"}

    def test_points_are_the_shipped_files(self):
        self.check_points_are_the_files()
        self.assertEqual({p["river"] for p in self.get("/api/v1/rivers")},
                         {"Sungai Malili", "Sungai Larona"})

    def test_points_lie_in_their_desa(self):
        self.check_points_lie_in_their_desa()

    def test_geojson(self):
        self.check_geojson()


class RiverImportTest(unittest.TestCase):
    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="sinergi-rivers-")
        self.addCleanup(shutil.rmtree, self.work, True)

    def test_a_database_made_before_the_table_gets_the_points(self):
        d = Daemon(workdir=os.path.join(self.work, "db"))
        os.makedirs(d.dir)
        d.cli("migrate", check=True)
        db = sqlite3.connect(d.db)
        db.execute("DROP TABLE river_points")
        db.execute("DELETE FROM schema_migrations WHERE version = 11")
        db.commit()
        db.close()
        d.start()
        try:
            r = d.request("GET", "/api/v1/rivers")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(len(r.json), len(csv_points("73.22")))
        finally:
            d.stop()

    def broken_data_dir(self, edit):
        data = os.path.join(self.work, "data")
        shutil.copytree(DATA_DIR, data)
        path = os.path.join(data, "rivers_reference_points.csv")
        with open(path) as f:
            lines = f.read().splitlines()
        lines = edit(lines)
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return data

    def migrate_with(self, data):
        return subprocess.run([BIN, "migrate", "--db", os.path.join(self.work, "sinergi.db"),
                               "--data-dir", data], capture_output=True, text=True, timeout=60)

    def test_a_broken_file_stops_the_import_naming_its_row(self):
        cases = {
            "unknown regency": (lambda ls: ls[:3] + [ls[3].replace("Luwu Utara", "Luwu Tengah")]
                                + ls[4:], "row 4: regency 'Luwu Tengah'"),
            "bad latitude": (lambda ls: ls[:2] + [ls[2].replace("-2.56334", "-2.5x")] + ls[3:],
                             "row 3: lat and lon"),
            "missing column": (lambda ls: ls[:5] + [ls[5].rsplit(",", 1)[0]] + ls[6:],
                               "row 6 has 7 fields"),
            "renamed column": (lambda ls: [ls[0].replace("lat,lon", "latitude,lon")] + ls[1:],
                               "column 4 must be 'lat'"),
        }
        for name, (edit, message) in cases.items():
            with self.subTest(case=name):
                shutil.rmtree(self.work, True)
                os.makedirs(self.work)
                p = self.migrate_with(self.broken_data_dir(edit))
                self.assertNotEqual(p.returncode, 0, p.stdout)
                self.assertIn(message, p.stderr)
                self.assertIn("rivers_reference_points.csv", p.stderr)


if __name__ == "__main__":
    unittest.main()
