"""Sensors over HTTP against the real daemon: stations (create, conflicts, validation, OPD
access), SenML ingest (device tokens, other stations, malformed packs, units, non-numbers, batch
limits, duplicates, time windows), raw and rolled-up readings, QC flags, stale stations shown as
UNKNOWN, and the live event stream with resume from Last-Event-ID.
"""
import calendar
import contextlib
import json
import socket
import sqlite3
import time
import unittest

from tests.api.harness import DaemonTest, wait_until

SENML = "application/senml+json"


def iso(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def unix(text):
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))


def station_body(code, kind="water_level", opd="bpbd", interval_s=600, **extra):
    b = {"code": code, "name": "TEST " + code, "kind": kind, "lat": -2.5569, "lon": 120.3304,
         "region": "73.22.03.1002", "river": "Sungai Masamba", "opd": opd,
         "interval_s": interval_s}
    if kind == "water_level":
        b["thresholds"] = {"waspada": 2.0, "siaga": 3.0, "awas": 4.0}
    b.update(extra)
    return b


def rollup_rows(db_path, code, step):
    """(bucket, n, n_bad, vmin, vmax, vsum) of a station's first sensor, read from the database
    file while the daemon runs (WAL: readers do not block the writer)."""
    with contextlib.closing(sqlite3.connect("file:%s?mode=ro" % db_path, uri=True,
                                            timeout=10)) as c:
        return c.execute(
            "SELECT r.bucket, r.n, r.n_bad, r.vmin, r.vmax, r.vsum FROM rollups r"
            " JOIN sensors s ON s.id = r.sensor_id JOIN stations st ON st.id = s.station_id"
            " WHERE st.code = ? AND r.step = ? ORDER BY r.bucket", (code, step)).fetchall()


class SensorsBase(DaemonTest):
    env = {"SINERGI_SEED_DEMO": "0"}

    def create(self, code, token=None, **kw):
        r = self.d.request("POST", "/api/v1/stations", station_body(code, **kw),
                           token=token or self.admin)
        self.assertEqual(r.status, 201, r)
        return r.json, r.json["device_token"]

    def ingest(self, device_token, pack, content_type=SENML, headers=None):
        body = pack if isinstance(pack, (str, bytes)) else json.dumps(pack)
        return self.d.request("POST", "/api/v1/ingest", body, token=device_token,
                              content_type=content_type, headers=headers)

    def ingest_ok(self, device_token, pack):
        r = self.ingest(device_token, pack)
        self.assertEqual(r.status, 200, r)
        return r.json

    def readings(self, code, frm, to, step="raw", sensor=None, status=200):
        q = "/api/v1/stations/%s/readings?from=%d&to=%d&step=%s" % (code, frm, to, step)
        if sensor:
            q += "&sensor=" + sensor
        r = self.d.request("GET", q, token=self.admin)
        self.assertEqual(r.status, status, r)
        return r.json

    def raw_points(self, code, frm=None, to=None):
        now = int(time.time())
        return self.readings(code, frm or now - 40 * 86400, to or now + 86400)["points"]


# ---- stations ------------------------------------------------------------------------------------
class StationsTest(SensorsBase):

    def test_create_returns_token_once_and_defaults(self):
        st, token = self.create("st-create")
        self.assertEqual(st["code"], "st-create")
        self.assertEqual(st["kind"], "water_level")
        self.assertEqual(st["opd"], "bpbd")
        self.assertEqual(st["interval_s"], 600)
        self.assertEqual(st["thresholds"], {"waspada": 2.0, "siaga": 3.0, "awas": 4.0})
        self.assertEqual(st["sensors"], [{"name": "level", "unit": "m"}])
        self.assertGreaterEqual(len(token), 20)
        # The token is shown once: reading the station again never shows it.
        r = self.d.request("GET", "/api/v1/stations/st-create", token=self.admin)
        self.assertEqual(r.status, 200, r)
        self.assertNotIn("device_token", r.json)
        self.assertNotIn(token, r.body)
        r = self.d.request("GET", "/api/v1/stations", token=self.admin)
        self.assertNotIn(token, r.body)
        # A rain gauge gets a rain sensor in mm; given sensors replace the defaults.
        rain, _ = self.create("st-create-rain", kind="rain")
        self.assertEqual(rain["sensors"], [{"name": "rain", "unit": "mm"}])
        self.assertIsNone(rain["thresholds"])
        w, _ = self.create("st-create-wx", kind="weather",
                           sensors=[{"name": "temperature", "unit": "Cel"},
                                    {"name": "pressure", "unit": "hPa"}])
        self.assertEqual([s["name"] for s in w["sensors"]], ["temperature", "pressure"])

    def test_duplicate_code_is_409(self):
        self.create("st-dup")
        r = self.d.request("POST", "/api/v1/stations", station_body("st-dup"), token=self.admin)
        self.assertError(r, 409, "conflict")
        self.assertIn("st-dup", r.json["error"]["message"])

    def test_invalid_bodies_name_the_field(self):
        def bad(mutate, field, drop=()):
            body = station_body("st-bad")
            for k in drop:
                body.pop(k, None)
            body.update(mutate)
            r = self.d.request("POST", "/api/v1/stations", body, token=self.admin)
            self.assertError(r, 400, "invalid")
            self.assertIn(field, r.json["error"]["message"], (mutate, drop))

        bad({}, "'name'", drop=("name",))
        bad({}, "'code'", drop=("code",))
        bad({"code": "Upper Case"}, "'code'")
        bad({"code": "x"}, "'code'")
        bad({"kind": "volcano"}, "'kind'")
        bad({"lat": 91}, "'lat'")
        bad({"lon": "east"}, "'lon'")
        bad({"interval_s": 5}, "'interval_s'")
        bad({"interval_s": 1.5}, "'interval_s'")
        bad({"region": "99.99.99.9999"}, "'region'")
        bad({"opd": "no-such-opd"}, "'opd'")
        bad({}, "thresholds", drop=("thresholds",))  # water_level needs them
        bad({"thresholds": {"waspada": 3, "siaga": 2, "awas": 4}}, "thresholds")  # must rise
        bad({"thresholds": {"waspada": 1, "siaga": 2}}, "thresholds.awas")
        bad({"thresholds": {"waspada": 1, "siaga": 2, "awas": "high"}}, "thresholds.awas")
        bad({"thresholds": [1, 2, 3]}, "'thresholds'")
        bad({"kind": "rain"}, "thresholds")  # only water_level has them
        bad({"colour": "blue"}, "'colour'")
        bad({"demo": "yes"}, "'demo'")
        bad({"sensors": {"name": "level"}}, "'sensors'")
        bad({"sensors": [{"name": "level", "unit": "furlong"}]}, "unit 'furlong'")
        bad({"sensors": [{"name": "level"}]}, "'unit'")
        bad({"sensors": [{"name": "level", "unit": "m"}, {"name": "level", "unit": "cm"}]},
            "'level' is given twice")
        # None of them left anything behind.
        r = self.d.request("GET", "/api/v1/stations/st-bad", token=self.admin)
        self.assertError(r, 404, "not_found")
        r = self.d.request("POST", "/api/v1/stations", "[1,2]", token=self.admin)
        self.assertError(r, 400)

    def test_staff_write_only_their_own_opd(self):
        _, staff_bpbd = self.d.add_user(self.admin, "st-staff-bpbd", "staff", "bpbd")
        _, staff_dlh = self.d.add_user(self.admin, "st-staff-dlh", "staff", "dlh")
        # Staff create for their own OPD, not for another.
        self.create("st-own", token=staff_bpbd)
        r = self.d.request("POST", "/api/v1/stations", station_body("st-other", opd="bpbd"),
                           token=staff_dlh)
        self.assertError(r, 403, "forbidden")
        r = self.d.request("GET", "/api/v1/stations/st-other", token=self.admin)
        self.assertError(r, 404)
        # Another OPD's station is absent to them for every write; they still read it.
        for method, path, body in (("PATCH", "/api/v1/stations/st-own", {"name": "hijacked"}),
                                   ("DELETE", "/api/v1/stations/st-own", None),
                                   ("POST", "/api/v1/stations/st-own/token", None)):
            r = self.d.request(method, path, body, token=staff_dlh)
            self.assertError(r, 404, "not_found")
        r = self.d.request("GET", "/api/v1/stations/st-own", token=staff_dlh)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["name"], "TEST st-own")
        # The owner patches; and cannot hand the station to another OPD.
        r = self.d.request("PATCH", "/api/v1/stations/st-own",
                           {"name": "TEST renamed", "thresholds": {"waspada": 1.5, "siaga": 2.5,
                                                                   "awas": 3.5}},
                           token=staff_bpbd)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["name"], "TEST renamed")
        self.assertEqual(r.json["thresholds"]["awas"], 3.5)
        r = self.d.request("PATCH", "/api/v1/stations/st-own", {"opd": "dlh"}, token=staff_bpbd)
        self.assertError(r, 403, "forbidden")
        r = self.d.request("PATCH", "/api/v1/stations/st-own", {"kind": "rain"}, token=staff_bpbd)
        self.assertError(r, 400)
        self.assertIn("'kind'", r.json["error"]["message"])

    def test_rotate_token(self):
        _, old = self.create("st-rot")
        now = int(time.time())
        self.ingest_ok(old, [{"n": "st-rot:level", "v": 1.0, "t": now - 60}])
        r = self.d.request("POST", "/api/v1/stations/st-rot/token", token=self.admin)
        self.assertEqual(r.status, 200, r)
        new = r.json["device_token"]
        self.assertNotEqual(new, old)
        r = self.ingest(old, [{"n": "st-rot:level", "v": 1.1, "t": now - 50}])
        self.assertError(r, 401)
        self.assertEqual(self.ingest_ok(new, [{"n": "st-rot:level", "v": 1.1,
                                               "t": now - 50}])["stored"], 1)
        self.assertEqual(len(self.raw_points("st-rot")), 2)

    def test_public_view_has_no_internal_fields(self):
        self.create("st-pub")
        r = self.d.request("GET", "/api/v1/public/stations")
        self.assertEqual(r.status, 200, r)
        st = [s for s in r.json["stations"] if s["code"] == "st-pub"]
        self.assertEqual(len(st), 1)
        self.assertNotIn("opd", st[0])
        self.assertNotIn("device_token", r.body)
        r = self.d.request("GET", "/api/v1/stations/latest", token=self.admin)
        st = [s for s in r.json["stations"] if s["code"] == "st-pub"][0]
        self.assertEqual(st["opd"], "bpbd")
        # A station that never reported is unknown, with no value.
        self.assertEqual(st["state"], "unknown")
        self.assertIsNone(st["sensors"]["level"]["v"])


# ---- ingest --------------------------------------------------------------------------------------
class IngestTest(SensorsBase):

    def test_ingest_and_read_back_raw(self):
        _, tok = self.create("in-raw")
        now = int(time.time())
        t0 = now - 3600
        pack = [{"bn": "in-raw:", "bt": t0, "bu": "m", "n": "level", "v": 1.25},
                {"n": "level", "t": 600, "v": 1.5},
                {"n": "level", "t": 1200, "v": 1.75}]
        res = self.ingest_ok(tok, pack)
        self.assertEqual(res, {"records": 3, "accepted": 3, "stored": 3, "duplicates": 0,
                               "rejected": []})
        # A 2xx means committed: the readings are there at once, in time order.
        body = self.readings("in-raw", t0 - 1, now, "raw", sensor="level")
        self.assertEqual(body["station"], "in-raw")
        self.assertEqual(body["sensor"], "level")
        self.assertEqual(body["unit"], "m")
        self.assertEqual(body["step"], "raw")
        pts = body["points"]
        self.assertEqual([(unix(p["t"]), p["v"], p["qc"]) for p in pts],
                         [(t0, 1.25, "good"), (t0 + 600, 1.5, "good"),
                          (t0 + 1200, 1.75, "good")])
        for p in pts:
            self.assertNotIn("qc_tests", p)
        # Relative times (|t| < 2^28) count from now; no time at all is now.
        res = self.ingest_ok(tok, [{"n": "in-raw:level", "v": 2.0, "t": -30},
                                   {"n": "in-raw:level", "v": 2.01}])
        self.assertEqual(res["stored"], 2)
        pts = self.raw_points("in-raw")
        self.assertEqual(len(pts), 5)
        self.assertLessEqual(abs(unix(pts[3]["t"]) - (now - 30)), 5)
        self.assertLessEqual(abs(unix(pts[4]["t"]) - now), 5)
        # from/to select; an unknown station or sensor is an error.
        self.assertEqual(len(self.readings("in-raw", t0 + 1, t0 + 1200)["points"]), 2)
        self.readings("no-such-station", t0, now, status=404)
        self.readings("in-raw", t0, now, sensor="temperature", status=400)
        self.readings("in-raw", now, t0, status=400)

    def test_rollups_10m_and_1h(self):
        _, tok = self.create("in-roll")
        now = int(time.time())
        hour = (now - 3 * 3600) // 3600 * 3600
        # One reading a minute for an hour, rising 1 cm a minute, and one out-of-range reading
        # in the last 10 minutes: bad readings count in n_bad, not in min/max/mean.
        pack = [{"n": "in-roll:level", "t": hour + 60 * k, "v": round(1.0 + 0.01 * k, 2)}
                for k in range(60)]
        pack.append({"n": "in-roll:level", "t": hour + 3590, "v": -5.0})
        res = self.ingest_ok(tok, pack)
        self.assertEqual((res["stored"], res["rejected"]), (61, []))
        raw = self.readings("in-roll", hour, hour + 3599)["points"]
        self.assertEqual(len(raw), 61)
        self.assertEqual(raw[-1]["qc"], "bad")
        self.assertEqual(raw[-1]["qc_tests"], ["range"])
        self.assertEqual({p["qc"] for p in raw[:-1]}, {"good"})

        def expect_10m():
            out = []
            for b in range(6):
                vs = [round(1.0 + 0.01 * k, 2) for k in range(10 * b, 10 * b + 10)]
                out.append({"t": iso(hour + 600 * b), "n": 10, "n_bad": 1 if b == 5 else 0,
                            "min": min(vs), "max": max(vs), "mean": sum(vs) / 10})
            return out

        def close(got, want):
            if len(got) != len(want):
                return False
            for g, w in zip(got, want):
                if set(g) != set(w):
                    return False
                for k in w:
                    if isinstance(w[k], float):
                        if abs(g[k] - w[k]) > 1e-9:
                            return False
                    elif g[k] != w[k]:
                        return False
            return True

        want10 = expect_10m()
        vs = [round(1.0 + 0.01 * k, 2) for k in range(60)]
        want1h = [{"t": iso(hour), "n": 60, "n_bad": 1, "min": 1.0, "max": 1.59,
                   "mean": sum(vs) / 60}]
        # Right away (buckets still open in the writer are aggregated from raw readings), and
        # after the writer has flushed them to the rollup table (its sweep runs every 5 s): the
        # same answer both times.
        def check_api():
            got10 = self.readings("in-roll", hour, hour + 3599, "10m")
            self.assertEqual(got10["step"], 600)
            self.assertTrue(close(got10["points"], want10), (got10["points"], want10))
            got1h = self.readings("in-roll", hour, hour + 3599, "1h")
            self.assertEqual(got1h["step"], 3600)
            self.assertTrue(close(got1h["points"], want1h), (got1h["points"], want1h))
            self.assertTrue(close(self.readings("in-roll", hour, hour + 3599, "600")["points"],
                                  want10))

        check_api()
        wait_until(lambda: len(rollup_rows(self.d.db, "in-roll", 600)) == 6 and
                   len(rollup_rows(self.d.db, "in-roll", 3600)) == 1, timeout=30,
                   what="the writer to flush the closed rollup buckets")
        table10 = rollup_rows(self.d.db, "in-roll", 600)
        self.assertEqual([r[0] for r in table10], [hour + 600 * b for b in range(6)])
        self.assertEqual([(r[1], r[2]) for r in table10], [(10, 0)] * 5 + [(10, 1)])
        check_api()
        # A reading arriving late into a closed bucket is merged into it (the API may lag by
        # one writer sweep for a bucket older than the newest flushed one).
        self.ingest_ok(tok, [{"n": "in-roll:level", "t": hour + 30, "v": 0.5}])
        wait_until(lambda: self.readings("in-roll", hour, hour + 599, "10m")["points"][0]["n"]
                   == 11, timeout=30, what="the late reading in its 10-minute bucket")
        got10 = self.readings("in-roll", hour, hour + 599, "10m")["points"]
        self.assertEqual(got10[0]["min"], 0.5)
        wait_until(lambda: self.readings("in-roll", hour, hour + 3599, "1h")["points"][0]["n"]
                   == 61, timeout=30, what="the late reading in its hour")
        self.readings("in-roll", hour, hour + 3599, "5m", status=400)

    def test_wrong_token_and_auth(self):
        _, tok = self.create("in-auth")
        pack = [{"n": "in-auth:level", "v": 1.0}]
        r = self.ingest("x" * len(tok), pack)
        self.assertError(r, 401)
        r = self.ingest("not-a-token", pack)
        self.assertError(r, 401)
        r = self.d.request("POST", "/api/v1/ingest", json.dumps(pack), content_type=SENML)
        self.assertError(r, 401)
        # A person's session is not a device token.
        r = self.ingest(self.admin, pack)
        self.assertError(r, 401)
        r = self.ingest(tok, pack, content_type="application/json")
        self.assertError(r, 415)
        self.assertEqual(self.raw_points("in-auth"), [])

    def test_another_stations_records_are_rejected(self):
        _, tok_a = self.create("in-a")
        self.create("in-b")
        now = int(time.time())
        res = self.ingest_ok(tok_a, [{"n": "in-a:level", "v": 1.0, "t": now - 10},
                                     {"n": "in-b:level", "v": 9.0, "t": now - 10},
                                     {"bn": "in-b:", "n": "level", "v": 9.0, "t": now - 20},
                                     {"bn": "", "n": "in-ab:level", "v": 9.0}])
        self.assertEqual(res["records"], 4)
        self.assertEqual(res["stored"], 1)
        self.assertEqual([x["index"] for x in res["rejected"]], [1, 2, 3])
        for x in res["rejected"]:
            self.assertEqual(x["reason"], "not this device's station")
        self.assertEqual(len(self.raw_points("in-a")), 1)
        self.assertEqual(self.raw_points("in-b"), [])

    def test_malformed_senml_is_400_and_nothing_stored(self):
        _, tok = self.create("in-mal")
        now = int(time.time())
        good = [{"n": "in-mal:level", "v": 1.0 + i / 10, "t": now - 100 + i} for i in range(3)]
        cases = [
            json.dumps(good)[:-1],                                   # truncated JSON
            json.dumps({"n": "in-mal:level", "v": 1.0}),              # not an array
            json.dumps(good + [5]),                                  # a record not an object
            json.dumps(good + [{"n": "in-mal:level", "v": 1, "x_": 1}]),  # must-understand
            json.dumps(good + [{"n": 7, "v": 1}]),                    # name not a string
            json.dumps(good + [{"bver": 99, "n": "in-mal:level", "v": 1}]),
            # NaN and infinities cannot be written in JSON: the pack is not JSON.
            json.dumps(good)[:-1] + ',{"n":"in-mal:level","v":NaN}]',
            json.dumps(good)[:-1] + ',{"n":"in-mal:level","v":Infinity}]',
            json.dumps(good)[:-1] + ',{"n":"in-mal:level","v":1e999}]',
            # A value that is a string or a boolean is not a number.
            json.dumps(good + [{"n": "in-mal:level", "v": "1.5"}]),
            json.dumps(good + [{"n": "in-mal:level", "v": True}]),
        ]
        for body in cases:
            r = self.ingest(tok, body)
            self.assertError(r, 400, "invalid")
            self.assertNotIn("\n", r.json["error"]["message"])
        r = self.ingest(tok, "")
        self.assertError(r, 400)
        self.assertEqual(self.raw_points("in-mal"), [])

    def test_per_record_rejections(self):
        _, tok = self.create("in-rec")
        now = int(time.time())
        pack = [
            {"n": "in-rec:level", "v": 1.0, "t": now - 100},                  # 0 ok
            {"n": "in-rec:level", "u": "Cel", "v": 20, "t": now - 90},        # 1 wrong unit
            {"n": "in-rec:level", "u": "cm", "v": 250, "t": now - 80},        # 2 cm -> 2.5 m
            {"n": "in-rec:level", "u": "mm", "v": 1250, "t": now - 70},       # 3 mm -> 1.25 m
            {"n": "in-rec:temperature", "u": "Cel", "v": 20, "t": now - 60},  # 4 unknown sensor
            {"n": "in-rec:level", "vs": "1.5", "t": now - 50},                # 5 string value
            {"n": "in-rec:level", "vb": True, "t": now - 40},                 # 6 boolean value
            {"n": "in-rec:level", "t": now - 30},                             # 7 no value
            {"bv": 1.7e308, "n": "in-rec:level", "v": 1.7e308, "t": now},     # 8 overflows
            {"bv": 0, "n": "in rec:level", "v": 1},                           # 9 bad name
            {"n": "in-rec:level", "u": "furlong", "v": 1, "t": now - 20},     # 10 unknown unit
            {"n": "in-rec", "v": 1, "t": now - 10},                           # 11 no sensor
        ]
        res = self.ingest_ok(tok, pack)
        self.assertEqual(res["records"], 12)
        self.assertEqual(res["accepted"], 3)
        self.assertEqual(res["stored"], 3)
        reasons = {x["index"]: x["reason"] for x in res["rejected"]}
        self.assertEqual(sorted(reasons), [1, 4, 5, 6, 7, 8, 9, 10, 11])
        self.assertIn("unit", reasons[1])
        self.assertIn("unknown sensor", reasons[4])
        self.assertIn("numeric", reasons[5])
        self.assertIn("numeric", reasons[6])
        self.assertIn("no value", reasons[7])
        self.assertIn("finite", reasons[8])
        self.assertIn("name", reasons[9])
        self.assertIn("unit", reasons[10])
        self.assertIn("name", reasons[11])
        pts = self.raw_points("in-rec")
        self.assertEqual([(unix(p["t"]), p["v"]) for p in pts],
                         [(now - 100, 1.0), (now - 80, 2.5), (now - 70, 1.25)])
        # A rain gauge in mm takes cm.
        _, rtok = self.create("in-rec-rain", kind="rain")
        self.assertEqual(self.ingest_ok(rtok, [{"n": "in-rec-rain:rain", "u": "cm", "v": 1.5,
                                                "t": now - 5}])["stored"], 1)
        self.assertEqual(self.raw_points("in-rec-rain")[0]["v"], 15.0)

    def test_batch_limit_413_and_nothing_stored(self):
        _, tok = self.create("in-big")
        now = int(time.time())
        pack = [{"n": "in-big:level", "v": 1.0 + (i % 7) / 100, "t": now - 20000 + i}
                for i in range(10001)]
        r = self.ingest(tok, pack)
        self.assertError(r, 413, "too_big")
        self.assertIn("10000", r.json["error"]["message"])
        self.assertEqual(self.raw_points("in-big"), [])
        # Exactly the limit is one request, all stored.
        res = self.ingest_ok(tok, pack[:10000])
        self.assertEqual((res["records"], res["stored"], res["rejected"]), (10000, 10000, []))
        self.assertEqual(len(self.readings("in-big", now - 30000, now, "raw")["points"]), 10000)

    def test_duplicates_are_stored_once(self):
        _, tok = self.create("in-dup")
        now = int(time.time())
        pack = [{"n": "in-dup:level", "v": 1.0 + i / 100, "t": now - 600 + 10 * i}
                for i in range(20)]
        first = self.ingest_ok(tok, pack)
        self.assertEqual((first["accepted"], first["stored"], first["duplicates"]), (20, 20, 0))
        again = self.ingest_ok(tok, pack)
        self.assertEqual((again["records"], again["accepted"], again["stored"],
                          again["duplicates"]), (20, 20, 0, 20))
        # The same (sensor, time) with another value is still the same reading: first one wins.
        changed = self.ingest_ok(tok, [{"n": "in-dup:level", "v": 7.0, "t": now - 600}])
        self.assertEqual((changed["stored"], changed["duplicates"]), (0, 1))
        # Twice within one pack.
        twice = self.ingest_ok(tok, [{"n": "in-dup:level", "v": 2.0, "t": now - 5},
                                     {"n": "in-dup:level", "v": 2.0, "t": now - 5}])
        self.assertEqual((twice["stored"], twice["duplicates"]), (1, 1))
        # Out of time order within one pack: still the first sent is the one stored.
        mixed = self.ingest_ok(tok, [{"n": "in-dup:level", "v": 5.0, "t": now - 3},
                                     {"n": "in-dup:level", "v": 1.0, "t": now - 4},
                                     {"n": "in-dup:level", "v": 6.0, "t": now - 3}])
        self.assertEqual((mixed["stored"], mixed["duplicates"]), (2, 1))
        pts = self.raw_points("in-dup")
        self.assertEqual(len(pts), 23)
        self.assertEqual(pts[0]["v"], 1.0)
        self.assertEqual([p["v"] for p in pts[-3:]], [2.0, 1.0, 5.0])
        self.assertEqual(len({p["t"] for p in pts}), 23)

    def test_time_window(self):
        _, tok = self.create("in-time")
        now = int(time.time())
        res = self.ingest_ok(tok, [
            {"n": "in-time:level", "v": 1.0, "t": now + 3600},            # 0 future
            {"n": "in-time:level", "v": 1.0, "t": now + 120},             # 1 within skew
            {"n": "in-time:level", "v": 1.0, "t": now - 31 * 86400},      # 2 too old
            {"n": "in-time:level", "v": 1.0, "t": now - 29 * 86400},      # 3 backfill
            {"n": "in-time:level", "v": 1.0, "t": 0.5e9},                 # 4 1985
            {"n": "in-time:level", "v": 1.0, "t": 4e9},                   # 5 2096
        ])
        reasons = {x["index"]: x["reason"] for x in res["rejected"]}
        self.assertEqual(sorted(reasons), [0, 2, 4, 5])
        self.assertIn("future", reasons[0])
        self.assertIn("future", reasons[5])
        self.assertIn("backfill", reasons[2])
        self.assertIn("backfill", reasons[4])
        self.assertEqual(res["stored"], 2)
        self.assertEqual(sorted(unix(p["t"]) for p in self.raw_points("in-time")),
                         [now - 29 * 86400, now + 120])


class IngestWindowSettingsTest(SensorsBase):
    """The backfill window and clock skew are settings."""
    env = {"SINERGI_SEED_DEMO": "0", "SINERGI_INGEST_BACKFILL_S": "3600",
           "SINERGI_INGEST_CLOCK_SKEW_S": "0", "SINERGI_INGEST_MAX_RECORDS": "5"}

    def test_settings_apply(self):
        _, tok = self.create("win-1")
        now = int(time.time())
        res = self.ingest_ok(tok, [{"n": "win-1:level", "v": 1.0, "t": now - 3000},
                                   {"n": "win-1:level", "v": 1.0, "t": now - 4000},
                                   {"n": "win-1:level", "v": 1.0, "t": now + 60}])
        self.assertEqual(res["stored"], 1)
        self.assertEqual({x["index"] for x in res["rejected"]}, {1, 2})
        r = self.ingest(tok, [{"n": "win-1:level", "v": 1.0, "t": now - i} for i in range(6)])
        self.assertError(r, 413)
        self.assertEqual(len(self.raw_points("win-1")), 1)


# ---- quality control -----------------------------------------------------------------------------
class QualityControlTest(SensorsBase):

    def qc(self, code):
        return [(p["v"], p["qc"], p.get("qc_tests", [])) for p in self.raw_points(code)]

    def test_spike(self):
        _, tok = self.create("qc-spike")
        t0 = int(time.time()) - 6000
        vals = [1.0, 1.1, 4.0, 1.2, 1.3]
        self.ingest_ok(tok, [{"n": "qc-spike:level", "v": v, "t": t0 + 600 * i}
                             for i, v in enumerate(vals)])
        self.assertEqual(self.qc("qc-spike"), [
            (1.0, "good", []), (1.1, "good", []), (4.0, "suspect", ["spike"]),
            (1.2, "suspect", ["spike"]), (1.3, "good", [])])

    def test_rate_of_change(self):
        _, tok = self.create("qc-rate", interval_s=60)
        t0 = int(time.time()) - 600
        self.ingest_ok(tok, [{"n": "qc-rate:level", "v": v, "t": t0 + 60 * i}
                             for i, v in enumerate([1.0, 1.1, 2.6, 2.7])])
        self.assertEqual(self.qc("qc-rate"), [
            (1.0, "good", []), (1.1, "good", []), (2.6, "suspect", ["rate"]),
            (2.7, "good", [])])

    def test_flat_line(self):
        _, tok = self.create("qc-flat")
        t0 = int(time.time()) - 8000
        vals = [1.5] * 7 + [1.6]
        self.ingest_ok(tok, [{"n": "qc-flat:level", "v": v, "t": t0 + 600 * i}
                             for i, v in enumerate(vals)])
        self.assertEqual(self.qc("qc-flat"), [(1.5, "good", [])] * 5 +
                         [(1.5, "suspect", ["flat"])] * 2 + [(1.6, "good", [])])

    def test_gap(self):
        _, tok = self.create("qc-gap")
        t0 = int(time.time()) - 8000
        times = [t0, t0 + 600, t0 + 600 + 1201, t0 + 600 + 1201 + 1200]
        self.ingest_ok(tok, [{"n": "qc-gap:level", "v": 1.0 + i / 10, "t": t}
                             for i, t in enumerate(times)])
        self.assertEqual(self.qc("qc-gap"), [
            (1.0, "good", []), (1.1, "good", []), (1.2, "suspect", ["gap"]), (1.3, "good", [])])

    def test_range_is_bad(self):
        _, tok = self.create("qc-range")
        t0 = int(time.time()) - 3000
        self.ingest_ok(tok, [{"n": "qc-range:level", "v": v, "t": t0 + 600 * i}
                             for i, v in enumerate([1.0, 31.0, -2.5])])
        got = self.qc("qc-range")
        self.assertEqual(got[0], (1.0, "good", []))
        self.assertEqual([g[1:] for g in got[1:]], [("bad", ["range"])] * 2)

    def test_bad_reading_is_no_reference(self):
        # 99 m is out of range (bad); the next reading is judged against 1.0, not against 99.
        _, tok = self.create("qc-badref")
        t0 = int(time.time()) - 3000
        self.ingest_ok(tok, [{"n": "qc-badref:level", "v": v, "t": t0 + 600 * i}
                             for i, v in enumerate([1.0, 99.0, 1.05])])
        self.assertEqual(self.qc("qc-badref"), [
            (1.0, "good", []), (99.0, "bad", ["range"]), (1.05, "good", [])])

    def test_qc_across_requests(self):
        # QC history carries over from one request to the next.
        _, tok = self.create("qc-across")
        t0 = int(time.time()) - 3000
        self.ingest_ok(tok, [{"n": "qc-across:level", "v": 1.0, "t": t0}])
        self.ingest_ok(tok, [{"n": "qc-across:level", "v": 3.5, "t": t0 + 600}])
        self.assertEqual(self.qc("qc-across")[1], (3.5, "suspect", ["spike"]))

    def test_qc_does_not_depend_on_record_order(self):
        # The writer runs QC in reading-time order per sensor: a logger that backfills newest
        # first gets the same flags as one that sends oldest first.
        _, tok = self.create("qc-order")
        t0 = int(time.time()) - 8000
        vals = [1.0, 1.1, 4.0, 1.2] + [1.5] * 6
        pack = [{"n": "qc-order:level", "v": v, "t": t0 + 600 * i} for i, v in enumerate(vals)]
        self.ingest_ok(tok, list(reversed(pack)))
        got = self.qc("qc-order")
        self.assertEqual([g[2] for g in got],
                         [[], [], ["spike"], ["spike"], [], [], [], [], [], ["flat"]])


# ---- latest and stale stations -------------------------------------------------------------------
class LatestTest(SensorsBase):

    def latest(self, code, public=False, fresh=True):
        # These tests read their own writes: Cache-Control: no-cache asks for a document that
        # holds every commit made before the request (without it: at most ~250 ms behind).
        h = {"Cache-Control": "no-cache"} if fresh else None
        if public:
            r = self.d.request("GET", "/api/v1/public/stations", headers=h)
        else:
            r = self.d.request("GET", "/api/v1/stations/latest", token=self.admin, headers=h)
        self.assertEqual(r.status, 200, r)
        return [s for s in r.json["stations"] if s["code"] == code][0]

    def test_latest_is_rendered_at_most_every_quarter_second_unless_asked_fresh(self):
        _, tok = self.create("lt-gap")
        now = int(time.time())
        self.ingest_ok(tok, [{"n": "lt-gap:level", "v": 1.0, "t": now - 2}])
        first = self.latest("lt-gap", fresh=False)  # a station added since: rendered at once
        self.assertEqual(first["sensors"]["level"]["v"], 1.0)
        # Each new reading shows without no-cache too, within a bounded delay ...
        for k, v in enumerate((1.5, 2.0, 2.5)):  # each reading newer than the one before
            self.ingest_ok(tok, [{"n": "lt-gap:level", "v": v, "t": now - 1 + 0.1 * k}])
            wait_until(lambda: self.latest("lt-gap", fresh=False)["sensors"]["level"]["v"] == v,
                       timeout=5, what="the new reading in the cached latest document")
            # ... and at once with Cache-Control: no-cache (or Pragma: no-cache).
            self.ingest_ok(tok, [{"n": "lt-gap:level", "v": v + 0.1, "t": now - 1 + 0.1 * k + 0.05}])
            for h in ({"Cache-Control": "no-cache"}, {"Cache-Control": "max-age=0"},
                      {"Pragma": "no-cache"}):
                r = self.d.request("GET", "/api/v1/stations/latest", token=self.admin, headers=h)
                st = [s for s in r.json["stations"] if s["code"] == "lt-gap"][0]
                self.assertEqual(st["sensors"]["level"]["v"], v + 0.1, h)

    def test_latest_value_and_stale_station_is_unknown(self):
        _, tok = self.create("lt-stale", interval_s=10)
        events = SSE(self.d.port, self.admin, "?station=lt-stale")
        self.addCleanup(events.close)
        events.wait_for(lambda f: f.get("retry") == "3000")
        now = int(time.time())
        # Newest reading 8 s old with a 10 s interval: ok now, unknown once it is 20 s old.
        self.ingest_ok(tok, [{"n": "lt-stale:level", "v": 1.74, "t": now - 15},
                             {"n": "lt-stale:level", "v": 1.75, "t": now - 8}])
        st = self.latest("lt-stale")
        self.assertEqual(st["state"], "ok", st)
        self.assertEqual(st["sensors"]["level"]["v"], 1.75)
        self.assertEqual(st["sensors"]["level"]["qc"], "good")
        self.assertEqual(st["sensors"]["level"]["last"]["t"], iso(now - 8))
        # A backfilled older reading does not replace the latest value.
        self.ingest_ok(tok, [{"n": "lt-stale:level", "v": 1.6, "t": now - 20}])
        self.assertEqual(self.latest("lt-stale")["sensors"]["level"]["v"], 1.75)

        st = wait_until(lambda: (lambda s: s if s["state"] == "unknown" else None)(
            self.latest("lt-stale")), timeout=40, what="the silent station to turn unknown")
        lvl = st["sensors"]["level"]
        self.assertIsNone(lvl["v"])
        self.assertEqual(lvl["last"]["v"], 1.75)
        self.assertGreater(lvl["last"]["age_s"], 20)
        # The state change is on the live stream too (after the one to "ok").
        ok = events.wait_for(lambda f: f.get("event") == "station" and
                             f["json"]["state"] == "ok")
        gone = events.wait_for(lambda f: f.get("event") == "station" and f["id"] > ok["id"] and
                               f["json"]["state"] == "unknown", timeout=20)
        self.assertEqual(gone["json"]["station"], "lt-stale")
        pub = self.latest("lt-stale", public=True)
        self.assertEqual(pub["state"], "unknown")
        self.assertIsNone(pub["sensors"]["level"]["v"])
        self.assertNotIn("opd", pub)
        # A fresh reading brings it back.
        self.ingest_ok(tok, [{"n": "lt-stale:level", "v": 1.8}])
        st = self.latest("lt-stale")
        self.assertEqual(st["state"], "ok")
        self.assertEqual(st["sensors"]["level"]["v"], 1.8)

    def test_new_station_inherits_nothing_from_a_deleted_one(self):
        # A new gauge must never show a value it did not send: the latest values, QC history
        # and open rollups are kept per sensor, and a deleted station's sensor must not pass
        # them on to the next sensor created (SQLite would reuse the largest rowid).
        _, tok = self.create("lt-gone")
        now = int(time.time())
        self.ingest_ok(tok, [{"n": "lt-gone:level", "v": 3.25, "t": now - 5}])
        self.assertEqual(self.latest("lt-gone")["sensors"]["level"]["v"], 3.25)
        r = self.d.request("DELETE", "/api/v1/stations/lt-gone", token=self.admin)
        self.assertEqual(r.status, 204, r)
        _, tok2 = self.create("lt-next")
        st = self.latest("lt-next")
        self.assertEqual(st["state"], "unknown", st)
        self.assertIsNone(st["sensors"]["level"]["v"])
        self.assertNotIn("last", st["sensors"]["level"])
        # Its first reading is judged on its own (no spike against the deleted gauge's 3.25).
        self.ingest_ok(tok2, [{"n": "lt-next:level", "v": 0.5, "t": now - 3}])
        self.assertEqual([(p["v"], p["qc"]) for p in self.raw_points("lt-next")], [(0.5, "good")])
        self.assertEqual(self.readings("lt-next", now - 3600, now, "1h")["points"][0]["n"], 1)
        # The same code created again is a new station too.
        _, tok3 = self.create("lt-gone")
        self.assertIsNone(self.latest("lt-gone")["sensors"]["level"]["v"])
        self.assertEqual(self.raw_points("lt-gone"), [])

    def test_backdated_reading_shows_unknown_at_once(self):
        _, tok = self.create("lt-old", interval_s=10)
        self.ingest_ok(tok, [{"n": "lt-old:level", "v": 2.5, "t": int(time.time()) - 3600}])
        st = self.latest("lt-old")
        self.assertEqual(st["state"], "unknown")
        self.assertIsNone(st["sensors"]["level"]["v"])
        self.assertEqual(st["sensors"]["level"]["last"]["v"], 2.5)


# ---- live events ---------------------------------------------------------------------------------
class SSE:
    """A raw Server-Sent Events client: one socket, chunked decoding, frames by id."""

    def __init__(self, port, token, query="", last_event_id=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        head = "GET /api/v1/events%s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n" \
               "Authorization: Bearer %s\r\n" % (query, token)
        if last_event_id is not None:
            head += "Last-Event-ID: %s\r\n" % last_event_id
        self.sock.sendall((head + "\r\n").encode())
        self.raw = b""
        self.body = b""
        self.status = None
        self.chunked = False
        self.frames = []

    def close(self):
        self.sock.close()

    def _fill(self, deadline):
        self.sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return
        if not data:
            raise AssertionError("event stream closed by the server")
        self.raw += data
        if self.status is None and b"\r\n\r\n" in self.raw:
            head, self.raw = self.raw.split(b"\r\n\r\n", 1)
            lines = head.decode().split("\r\n")
            self.status = int(lines[0].split()[1])
            self.chunked = any(l.lower().startswith("transfer-encoding:") and "chunked" in l.lower()
                               for l in lines[1:])
        if self.status is None:
            return
        if not self.chunked:
            self.body += self.raw
            self.raw = b""
            return
        while True:
            if b"\r\n" not in self.raw:
                return
            size_line, rest = self.raw.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            if len(rest) < size + 2:
                return
            self.body += rest[:size]
            self.raw = rest[size + 2:]

    def _parse(self):
        while b"\n\n" in self.body:
            block, self.body = self.body.split(b"\n\n", 1)
            f = {}
            for line in block.decode().split("\n"):
                if line.startswith(":"):
                    continue
                k, _, v = line.partition(": ")
                f[k] = v
            if "event" in f:
                f["json"] = json.loads(f["data"])
                f["id"] = int(f["id"])
            self.frames.append(f)

    def wait_for(self, pred, timeout=10):
        """Reads until a frame satisfies `pred`; returns it."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for f in self.frames[seen:]:
                if pred(f):
                    return f
            seen = len(self.frames)
            if time.monotonic() > deadline:
                raise AssertionError("no matching event; got %r" % self.frames)
            self._fill(deadline)
            self._parse()


class EventsTest(SensorsBase):

    def test_reading_events_and_resume_from_last_event_id(self):
        _, tok_a = self.create("ev-a")
        _, tok_b = self.create("ev-b", kind="rain")
        _, viewer = self.d.add_user(self.admin, "ev-viewer", "viewer", "bappeda")
        q = "?station=ev-a,ev-b"
        s1 = SSE(self.d.port, viewer, q)
        try:
            s1.wait_for(lambda f: f.get("retry") == "3000")
            self.assertEqual(s1.status, 200)
            now = int(time.time())
            self.ingest_ok(tok_a, [{"n": "ev-a:level", "v": 1.25, "t": now - 5}])
            ev = s1.wait_for(lambda f: f.get("event") == "reading")
            self.assertEqual(ev["json"]["station"], "ev-a")
            self.assertEqual(ev["json"]["kind"], "water_level")
            self.assertEqual(ev["json"]["values"]["level"]["v"], 1.25)
            self.assertEqual(ev["json"]["values"]["level"]["qc"], "good")
            self.assertEqual(ev["json"]["values"]["level"]["t"], iso(now - 5))
            last_id = ev["id"]
        finally:
            s1.close()
        # While disconnected: three batches for ev-a, one for ev-b.
        for i, v in enumerate((1.5, 1.75, 2.0)):
            self.ingest_ok(tok_a, [{"n": "ev-a:level", "v": v, "t": now - 4 + i}])
        self.ingest_ok(tok_b, [{"n": "ev-b:rain", "v": 3.5, "t": now - 1}])
        s2 = SSE(self.d.port, viewer, q, last_event_id=last_id)
        try:
            last_b = s2.wait_for(lambda f: f.get("event") == "reading" and
                                 f["json"]["station"] == "ev-b")
            self.assertEqual(last_b["json"]["values"]["rain"]["v"], 3.5)
            events = [f for f in s2.frames if "id" in f]
            ids = [f["id"] for f in events]
            self.assertEqual(ids, sorted(ids))
            self.assertGreater(min(ids), last_id)
            # ev-a's readings are coalesced: only its newest value is delivered.
            a = [f for f in events if f["event"] == "reading" and f["json"]["station"] == "ev-a"]
            self.assertEqual(len(a), 1, events)
            self.assertEqual(a[0]["json"]["values"]["level"]["v"], 2.0)
            self.assertEqual(a[0]["json"]["values"]["level"]["t"], iso(now - 2))
            # Live again after the resume.
            self.ingest_ok(tok_a, [{"n": "ev-a:level", "v": 2.25, "t": now}])
            ev = s2.wait_for(lambda f: f.get("event") == "reading" and
                             f["json"]["station"] == "ev-a" and f["id"] > last_b["id"])
            self.assertEqual(ev["json"]["values"]["level"]["v"], 2.25)
        finally:
            s2.close()

    def test_events_need_sign_in_and_filter(self):
        s = SSE(self.d.port, "x" * 43)
        try:
            deadline = time.monotonic() + 10
            while s.status is None and time.monotonic() < deadline:
                s._fill(deadline)
            self.assertEqual(s.status, 401)
        finally:
            s.close()
        _, tok_c = self.create("ev-c")
        _, tok_d = self.create("ev-d")
        s = SSE(self.d.port, self.admin, "?station=ev-d")
        try:
            s.wait_for(lambda f: f.get("retry") == "3000")
            self.ingest_ok(tok_c, [{"n": "ev-c:level", "v": 1.0}])
            self.ingest_ok(tok_d, [{"n": "ev-d:level", "v": 2.0}])
            s.wait_for(lambda f: f.get("event") == "reading")
            self.assertEqual({f["json"]["station"] for f in s.frames if "event" in f}, {"ev-d"})
        finally:
            s.close()


if __name__ == "__main__":
    unittest.main()
