#!/usr/bin/env python3
"""bench/dbgate: how long a staff member's write waits beside full-speed ingest.

Starts sinergi (SINERGI_BIN, default build/release/sinergi) on a fresh database, creates 48
water-level stations, and for BENCH_SECONDS (15) keeps the ingest writer busy with 8 keep-alive
connections posting 1,000-reading SenML packs (each its own station and times, so nothing is a
duplicate) while one more connection PATCHes a station's name every 20 ms, each a small write
transaction of its own. Prints the PATCH latency (p50/p90/p99/max) and the ingest rate.

Without a write gate every such write polls SQLite's lock with sleeps (its busy handler backs off
1, 2, 5 ... 100 ms) while the writer commits back to back; with it (src/db/db_sqlite.c) writers
of one process are handed the lock in arrival order.

usage: [SINERGI_BIN=path] [BENCH_SECONDS=15] python3 bench/dbgate/run.py
"""
import json
import os
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
os.environ.setdefault("SINERGI_BIN", os.path.join(ROOT, "build/release/sinergi"))
from tests.api.harness import Daemon  # noqa: E402

SECONDS = float(os.environ.get("BENCH_SECONDS", "15"))
POSTERS, STATIONS, PACK = 8, 48, 1000


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))] if xs else float("nan")


def main():
    d = Daemon(env={"SINERGI_LOG_LEVEL": "warn", "SINERGI_SEED_DEMO": "0"})
    d.start()
    try:
        admin = d.admin_token()
        tokens = []
        for i in range(STATIONS):
            code = "gate-%02d" % i
            r = d.request("POST", "/api/v1/stations", {
                "code": code, "name": "Gate %d" % i, "kind": "water_level", "lat": -2.55,
                "lon": 120.32, "region": "73.22.07.2001", "river": "Masamba", "opd": "bpbd",
                "interval_s": 60, "thresholds": {"waspada": 2, "siaga": 3, "awas": 4}},
                token=admin)
            if r.status != 201:
                raise SystemExit("cannot create station: %r" % r)
            tokens.append((code, r.json["device_token"]))
        stop = threading.Event()
        stored = [0] * POSTERS
        t0 = int(time.time()) - 25 * 86400  # inside the 30-day backfill window

        def poster(k):
            conn = d.connect()
            mine = tokens[k::POSTERS]
            n = 0
            while not stop.is_set():
                code, tok = mine[n % len(mine)]
                base = t0 + (n // len(mine)) * PACK
                pack = [{"bn": code + ":", "n": "level", "u": "m", "bt": base, "t": 0, "v": 1.0}]
                pack += [{"n": "level", "t": j, "v": 1.0 + (j % 7) * 0.01} for j in range(1, PACK)]
                r = d.request("POST", "/api/v1/ingest", pack, token=tok, conn=conn,
                              content_type="application/senml+json")
                if r.status == 200:
                    stored[k] += r.json.get("accepted", 0)
                n += 1

        threads = [threading.Thread(target=poster, args=(k,)) for k in range(POSTERS)]
        for t in threads:
            t.start()
        time.sleep(2)  # the writer busy before timing (a warm-up, not a wait for a condition)
        lat, errors, i = [], 0, 0
        conn = d.connect()
        before = sum(stored)
        start = time.monotonic()
        while time.monotonic() - start < SECONDS:
            t = time.monotonic()
            r = d.request("PATCH", "/api/v1/stations/gate-00", {"name": "Gate 0 (%d)" % i},
                          token=admin, conn=conn)
            lat.append((time.monotonic() - t) * 1000)
            errors += r.status != 200
            i += 1
            time.sleep(0.02)  # the pace of the writes (not a wait for a condition)
        elapsed = time.monotonic() - start
        rate = (sum(stored) - before) / elapsed
        stop.set()
        for t in threads:
            t.join()
        print("bin=%s patches=%d errors=%d p50_ms=%.1f p90_ms=%.1f p99_ms=%.1f max_ms=%.1f "
              "ingest_readings_per_s=%.0f" % (os.environ["SINERGI_BIN"], len(lat), errors,
                                               pct(lat, 50), pct(lat, 90), pct(lat, 99),
                                               max(lat), rate))
    finally:
        d.stop()
        d.cleanup()


if __name__ == "__main__":
    main()
