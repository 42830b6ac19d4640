"""Crash test of HTTP ingest: kill -9 sinergi repeatedly while devices send SenML batches.

Two device threads (one per station) send batches of readings with distinct times and keep every
batch the daemon acknowledged with a 2xx. Meanwhile the daemon is killed with SIGKILL three times
at random points of the run and restarted on the same database; a device whose request failed
sends the same batch again (safe: a reading (sensor, time) is stored once). At the end:

- every acknowledged reading is in the database with its value, and no (sensor, time) twice;
- every batch was eventually acknowledged with all of its readings accepted;
- the 10-minute and hourly rollups equal the aggregation of the raw readings, over the API while
  running and in the rollup table after a clean stop (the writer rebuilds the rollup buckets that
  were open in memory from raw readings when it starts after a crash).
"""
import calendar
import contextlib
import http.client
import json
import os
import random
import sqlite3
import threading
import time
import unittest

from tests.api.harness import Daemon, wait_until

BATCHES_PER_STATION = 100  # two stations: 200 batches
READINGS_PER_BATCH = 50
SPACING_S = 5
KILLS = 3
RUN_DEADLINE_S = 240
SEED = int(os.environ.get("SINERGI_CRASH_SEED", str(int(time.time()))))


def level_value(i):
    # Varied but plausible river levels (0.8 .. 2.3 m); a few out of range, QC 'bad'.
    if i % 97 == 13:
        return 35.0
    return round(0.8 + ((i * 37) % 151) / 100.0, 2)


def rain_value(i):
    return round(((i * 13) % 40) / 4.0, 2)


class Device(threading.Thread):
    """Sends its batches in order; retries a batch until the daemon answers it with a 2xx."""

    def __init__(self, daemon, token, batches, deadline):
        super().__init__(daemon=True)
        self.d = daemon
        self.token = token
        self.batches = batches
        self.deadline = deadline
        self.acked = []      # (batch index, response json), in order
        self.attempts = 0
        self.failures = []   # connection errors and 503s seen (retried)
        self.error = None    # a response that is neither 2xx nor retryable: the test fails

    def run(self):
        for i, batch in enumerate(self.batches):
            body = json.dumps(batch).encode()
            while True:
                if time.monotonic() > self.deadline:
                    self.error = "batch %d not acknowledged before the deadline" % i
                    return
                self.attempts += 1
                port = self.d.port
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                try:
                    conn.request("POST", "/api/v1/ingest", body=body, headers={
                        "Content-Type": "application/senml+json",
                        "Authorization": "Bearer " + self.token})
                    r = conn.getresponse()
                    text = r.read().decode()
                except (OSError, http.client.HTTPException) as e:
                    self.failures.append(type(e).__name__)
                    time.sleep(0.02)  # poll interval while the daemon restarts
                    continue
                finally:
                    conn.close()
                if 200 <= r.status < 300:
                    self.acked.append((i, json.loads(text)))
                    break
                if r.status == 503:
                    self.failures.append("503")
                    continue
                self.error = "batch %d: %d %s" % (i, r.status, text[:300])
                return


def read_raw(d):
    """Every stored raw reading as (sensor_id, t_ms, v, qc), from `sinergi readings export`."""
    out = d.cli("readings", "export", check=True).stdout.splitlines()
    assert out[0] == "sensor_id,station,sensor,t_ms,v,qc,qc_failed", out[0]
    rows = []
    for line in out[1:]:
        sid, _, _, t, v, qc, _ = line.split(",")
        rows.append((int(sid), int(t), float(v), int(qc)))
    return rows


def aggregate(rows, step):
    """Rollups from raw (sensor_id, t_ms, v, qc) rows, as the writer defines them: bad readings
    (qc 4) count in n_bad only."""
    out = {}
    for sid, t_ms, v, qc in rows:
        key = (sid, t_ms // 1000 // step * step)
        a = out.setdefault(key, [0, 0, None, None, 0.0])
        if qc == 4:
            a[1] += 1
            continue
        a[0] += 1
        a[2] = v if a[2] is None else min(a[2], v)
        a[3] = v if a[3] is None else max(a[3], v)
        a[4] += v
    return {k: (a[0], a[1], a[2] if a[0] else 0.0, a[3] if a[0] else 0.0, a[4])
            for k, a in out.items()}


class IngestCrashTest(unittest.TestCase):

    def setUp(self):
        # Compactions (log -> per-sensor blocks) every few hundred readings, so kills land
        # before, during and after them as well as between group commits.
        self.d = Daemon(env={"SINERGI_SEED_DEMO": "0", "SINERGI_READINGS_COMPACT_AFTER": "700",
                             "SINERGI_READINGS_COMPACT_AGE_S": "1"})
        self.addCleanup(self.d.cleanup)
        self.d.start()

    def create_station(self, admin, code, kind):
        body = {"code": code, "name": "TEST crash " + code, "kind": kind, "lat": -2.5569,
                "lon": 120.3304, "opd": "bpbd", "interval_s": 60}
        if kind == "water_level":
            body["thresholds"] = {"waspada": 2.0, "siaga": 3.0, "awas": 4.0}
        r = self.d.request("POST", "/api/v1/stations", body, token=admin)
        self.assertEqual(r.status, 201, r)
        return r.json["device_token"]

    def make_batches(self, code, sensor, value, t0):
        batches = []
        for b in range(BATCHES_PER_STATION):
            batches.append([{"n": "%s:%s" % (code, sensor), "t": t0 + (b * READINGS_PER_BATCH + k) *
                             SPACING_S, "v": value(b * READINGS_PER_BATCH + k)}
                            for k in range(READINGS_PER_BATCH)])
        return batches

    def test_kill9_during_http_ingest(self):
        rng = random.Random(SEED)
        admin = self.d.admin_token()
        tok_a = self.create_station(admin, "crash-level", "water_level")
        tok_b = self.create_station(admin, "crash-rain", "rain")
        span = BATCHES_PER_STATION * READINGS_PER_BATCH * SPACING_S
        t0 = int(time.time()) - span - 3600
        batches = {"crash-level": self.make_batches("crash-level", "level", level_value, t0),
                   "crash-rain": self.make_batches("crash-rain", "rain", rain_value, t0 + 2)}
        deadline = time.monotonic() + RUN_DEADLINE_S
        devices = [Device(self.d, tok_a, batches["crash-level"], deadline),
                   Device(self.d, tok_b, batches["crash-rain"], deadline)]
        total_batches = 2 * BATCHES_PER_STATION

        def acked():
            return sum(len(dev.acked) for dev in devices)

        # Kill at random points of the run: after a random number of acknowledged batches plus a
        # random number of further attempts, so the kill lands anywhere in a request's life.
        points = sorted(rng.sample(range(total_batches * 15 // 100, total_batches * 85 // 100),
                                   KILLS))
        for dev in devices:
            dev.start()
        killed_logs, kill_points = [], []
        floor = 0
        for n in points:
            # Each instance acknowledges a few batches of its own before it is killed.
            n = max(n, floor + rng.randint(1, 5))
            wait_until(lambda: acked() >= n or not any(dev.is_alive() for dev in devices),
                       timeout=RUN_DEADLINE_S, what="%d acknowledged batches" % n)
            extra = rng.randrange(0, 4)
            attempts = sum(dev.attempts for dev in devices)
            wait_until(lambda: sum(dev.attempts for dev in devices) >= attempts + extra or
                       not any(dev.is_alive() for dev in devices), timeout=RUN_DEADLINE_S,
                       what="more ingest attempts")
            killed_logs.append(self.d.stderr_path)
            kill_points.append(acked())
            self.d.kill9()
            floor = acked()
            self.d.start()
        for dev in devices:
            dev.join(max(1.0, deadline - time.monotonic()))
            self.assertFalse(dev.is_alive(), "device thread still running at the deadline")
            self.assertIsNone(dev.error, "seed %d: %s" % (SEED, dev.error))
        # Killed instances must not have reported memory errors before they died; restarted ones
        # rebuilt the rollup buckets that were open in memory (there always are some during a
        # run: each new bucket a reading opens sets the watermark).
        recovered = 0
        for path in killed_logs + [self.d.stderr_path]:
            with open(path) as f:
                text = f.read()
            Daemon._check_sanitizer(text)
            recovered += "event=rollups_recovered" in text
        self.assertGreaterEqual(recovered, 1, "no restart rebuilt open rollup buckets")

        # Every batch acknowledged once, in order, with all readings accepted. A batch whose
        # first attempt was committed but not answered is answered as duplicates on retry.
        retried = 0
        for dev in devices:
            self.assertEqual([i for i, _ in dev.acked], list(range(BATCHES_PER_STATION)))
            for i, res in dev.acked:
                self.assertEqual(res["records"], READINGS_PER_BATCH, res)
                self.assertEqual(res["accepted"], READINGS_PER_BATCH, res)
                self.assertEqual(res["rejected"], [], res)
                self.assertEqual(res["stored"] + res["duplicates"], READINGS_PER_BATCH, res)
                retried += res["duplicates"] > 0
        self.assertGreaterEqual(sum(len(dev.failures) for dev in devices), 1,
                                "no request was interrupted: the kills missed the run")

        # Over the API, on the restarted daemon: raw readings and rollups.
        admin = self.d.admin_token()
        sent = {}
        for code, bl in batches.items():
            sent[code] = {rec["t"]: rec["v"] for b in bl for rec in b}
            r = self.d.request("GET", "/api/v1/stations/%s/readings?from=%d&to=%d&step=raw"
                               "&limit=100000" % (code, t0 - 10, t0 + span + 10), token=admin)
            self.assertEqual(r.status, 200, r)
            pts = r.json["points"]
            got = [(p["t"], p["v"]) for p in pts]
            self.assertEqual(len(got), len(sent[code]), code)
            self.assertEqual(len({t for t, _ in got}), len(got), "a reading stored twice")
            for step, name in ((600, "10m"), (3600, "1h")):
                want = self.api_rollups(pts, step)

                def api_matches():
                    r = self.d.request(
                        "GET", "/api/v1/stations/%s/readings?from=%d&to=%d&step=%s&limit=100000"
                        % (code, t0 - 10, t0 + span + 10, name), token=admin)
                    return self.same_rollups(r.json["points"], want)

                # The API merges flushed buckets with raw readings of the open ones; a bucket
                # reopened after a restart shows in full once the writer's sweep flushes it.
                wait_until(api_matches, timeout=30, interval=0.2,
                           what="%s rollups of %s to equal the raw readings" % (name, code))

        # After a clean stop (which flushes every open bucket): the database itself.
        self.assertEqual(self.d.stop(), 0)
        # Raw readings through the store's own read-only export (blocks and log).
        raw = read_raw(self.d)
        self.assertEqual(len(raw), len({(sid, t) for sid, t, _, _ in raw}),
                         "a reading is stored twice")
        self.assertEqual(int(self.d.cli("readings", "count", check=True).stdout), len(raw))
        with contextlib.closing(sqlite3.connect(self.d.db)) as c:
            ids = dict(c.execute("SELECT st.code, s.id FROM sensors s JOIN stations st ON "
                                 "st.id = s.station_id"))
            for code in batches:
                rows = {t: v for sid, t, v, _ in raw if sid == ids[code]}
                want = {t * 1000: v for t, v in sent[code].items()}
                self.assertEqual(len(rows), len(want), code)
                missing = [t for t in want if t not in rows]
                self.assertEqual(missing, [], "acknowledged readings lost")
                wrong = [t for t in want if abs(rows[t] - want[t]) > 1e-9]
                self.assertEqual(wrong, [], "stored values differ from those sent")
            for step in (600, 3600):
                want = aggregate(raw, step)
                table = {(sid, b): (n, nb, lo, hi, s) for sid, b, n, nb, lo, hi, s in c.execute(
                    "SELECT sensor_id, bucket, n, n_bad, vmin, vmax, vsum FROM rollups "
                    "WHERE step = ?", (step,))}
                self.assertEqual(sorted(table), sorted(want), "step %d: bucket sets differ" % step)
                for k, w in want.items():
                    g = table[k]
                    self.assertEqual(g[:2], w[:2], "step %d bucket %r" % (step, k))
                    for a, b in zip(g[2:], w[2:]):
                        self.assertAlmostEqual(a, b, places=6, msg="step %d bucket %r: %r != %r"
                                               % (step, k, g, w))
            self.assertEqual(c.execute("SELECT COUNT(*) FROM sensors_meta WHERE key = "
                                       "'rollup_watermark' AND value < 9223372036854775807")
                             .fetchone()[0], 0, "open buckets left after a clean stop")
        print("\ncrash test: seed %d, kills after %s batches, %d attempts for %d batches, "
              "%d interrupted requests, %d batches answered as duplicates on retry, %d restarts "
              "rebuilt rollups" % (SEED, kill_points, sum(dev.attempts for dev in devices),
                                   total_batches, sum(len(dev.failures) for dev in devices),
                                   retried, recovered))

    @staticmethod
    def api_rollups(points, step):
        rows = []
        for p in points:
            t = calendar.timegm(time.strptime(p["t"], "%Y-%m-%dT%H:%M:%SZ"))
            rows.append((0, t * 1000, p["v"], 4 if p["qc"] == "bad" else 1))
        agg = aggregate(rows, step)
        return {time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(b)): a
                for (_, b), a in agg.items()}

    @staticmethod
    def same_rollups(points, want):
        if len(points) != len(want):
            return False
        for p in points:
            w = want.get(p["t"])
            if w is None or (p["n"], p["n_bad"]) != w[:2]:
                return False
            if p["n"] and (abs(p["min"] - w[2]) > 1e-9 or abs(p["max"] - w[3]) > 1e-9 or
                           abs(p["mean"] - w[4] / w[0]) > 1e-9):
                return False
        return True


if __name__ == "__main__":
    unittest.main()
