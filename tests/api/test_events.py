"""GET /api/v1/events, the live stream (Server-Sent Events), against the real daemon: sign-in,
headers, the retry frame, heartbeats, filters and ids parsed, a reset for an id the server does
not hold, disconnects noticed, idle streams not holding worker threads, and a prompt SIGTERM.

Nothing publishes readings here yet; tests/unit/test_events.c drives delivery, coalescing and
resume through a real libmicrohttpd daemon.
"""
import json
import re
import signal
import time
import unittest

from tests.api.harness import Daemon, DaemonTest, wait_until

PATH = "/api/v1/events"


class Stream:
    """One open event stream, read frame by frame (a frame ends with a blank line)."""

    def __init__(self, d, path=PATH, token=None, headers=None, timeout=10):
        self.conn = d.connect(timeout=timeout)
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        self.conn.request("GET", path, headers=h)
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.buf = b""

    def header(self, name):
        return self.resp.getheader(name)

    def frame(self, timeout=5.0):
        """The next frame's text, or None when the server ended the stream."""
        self.conn.sock.settimeout(timeout)
        while b"\n\n" not in self.buf:
            chunk = self.resp.read1(65536)
            if not chunk:
                return None
            self.buf += chunk
        f, self.buf = self.buf.split(b"\n\n", 1)
        return f.decode()

    def ping(self, timeout=5.0):
        """Reads up to the next heartbeat, skipping events (demo stations publish state)."""
        deadline = time.monotonic() + timeout
        while True:
            f = self.frame(timeout=max(0.01, deadline - time.monotonic()))
            if f is None or f == ": ping":
                return f

    def events(self, want, timeout=5.0):
        """Reads until `want(frames)` holds; returns the event frames as dicts."""
        got = []
        deadline = time.monotonic() + timeout
        while not want(got):
            f = self.frame(timeout=max(0.01, deadline - time.monotonic()))
            if f is None:
                break
            if f.startswith(":") or f.startswith("retry:"):
                continue
            ev = dict(line.split(": ", 1) for line in f.split("\n"))
            if "data" in ev:
                ev["data"] = json.loads(ev["data"])
            got.append(ev)
        return got

    def close(self):
        self.conn.close()


class EventsTest(DaemonTest):
    env = {"SINERGI_SSE_HEARTBEAT_S": "1"}

    def open(self, path=PATH, **kw):
        s = Stream(self.d, path, token=kw.pop("token", self.admin), **kw)
        self.addCleanup(s.close)
        return s

    def test_requires_sign_in(self):
        r = self.d.request("GET", PATH)
        self.assertError(r, 401, "unauthenticated")
        r = self.d.request("GET", PATH, token="not-a-session")
        self.assertError(r, 401)

    def test_headers_and_retry_frame(self):
        s = self.open()
        self.assertEqual(s.status, 200)
        self.assertTrue(s.header("Content-Type").startswith("text/event-stream"))
        self.assertEqual(s.header("Cache-Control"), "no-store")
        self.assertEqual(s.header("X-Accel-Buffering"), "no")
        self.assertEqual(s.header("Transfer-Encoding"), "chunked")
        self.assertTrue(s.header("X-Request-Id"))
        self.assertEqual(s.frame(), "retry: 3000")

    def test_every_signed_in_role_may_stream(self):
        _, token = self.d.add_user(self.admin, "viewer-ev", "viewer", "diskominfo")
        s = self.open(token=token)
        self.assertEqual(s.status, 200)
        self.assertEqual(s.frame(), "retry: 3000")

    def test_heartbeat(self):
        s = self.open()
        self.assertEqual(s.frame(), "retry: 3000")
        t0 = time.monotonic()
        self.assertEqual(s.ping(timeout=4), ": ping")
        t1 = time.monotonic()
        self.assertEqual(s.ping(timeout=4), ": ping")
        gap = time.monotonic() - t1
        self.assertLess(t1 - t0, 3.0)
        self.assertGreater(gap, 0.5)  # paced, not a busy loop
        self.assertLess(gap, 3.0)

    def test_filters_accepted(self):
        s = self.open(PATH + "?station=masamba-1,radda-2&kind=water_level,rain")
        self.assertEqual(s.status, 200)
        self.assertEqual(s.frame(), "retry: 3000")
        many = ",".join("s%d" % i for i in range(16))
        s = self.open(PATH + "?station=" + many)
        self.assertEqual(s.status, 200)

    def test_bad_filters_and_ids(self):
        bad = [
            "?station=",
            "?station=a,,b",
            "?station=a,",
            "?station=" + ",".join("s%d" % i for i in range(17)),
            "?station=" + "x" * 48,
            "?kind=" + "k" * 24,
            "?last_event_id=abc",
            "?last_event_id=-1",
            "?last_event_id=99999999999999999999999",
        ]
        for q in bad:
            with self.subTest(q=q):
                r = self.d.request("GET", PATH + q, token=self.admin)
                self.assertError(r, 400, "invalid")
        r = self.d.request("GET", PATH, token=self.admin, headers={"Last-Event-ID": "x1"})
        self.assertError(r, 400, "invalid")
        self.assertIn("Last-Event-ID", r.json["error"]["message"])

    def test_unknown_last_event_id_resets(self):
        # An id this run never issued (ids restart at 1 on every start): reload, then follow.
        for kw in ({"headers": {"Last-Event-ID": "1000000000000"}},
                   {"path": PATH + "?last_event_id=1000000000000"}):
            with self.subTest(kw=kw):
                s = self.open(**kw)
                self.assertEqual(s.frame(), "retry: 3000")
                self.assertEqual(s.frame(), 'event: reset\ndata: {"reason":"behind"}')

    def test_disconnect_is_noticed(self):
        def ended():
            return len(re.findall(r"route=/api/v1/events status=200 .*aborted=1",
                                  self.d.log_text()))
        before = ended()
        streams = [Stream(self.d, token=self.admin) for _ in range(5)]
        for s in streams:
            self.assertEqual(s.frame(), "retry: 3000")
        for s in streams:
            s.close()
        # Suspended streams find out at their next heartbeat (1 s here) and are freed.
        wait_until(lambda: ended() >= before + 5, timeout=8, what="closed streams to end")
        self.assertEqual(self.d.request("GET", "/healthz").status, 200)

    def test_idle_streams_do_not_hold_workers(self):
        # Two worker threads, fifty idle streams: ordinary requests stay fast.
        streams = []
        for _ in range(50):
            s = Stream(self.d, token=self.admin)
            self.addCleanup(s.close)
            self.assertEqual(s.status, 200)
            self.assertEqual(s.frame(), "retry: 3000")
            streams.append(s)
        conn = self.d.connect(timeout=5)
        self.addCleanup(conn.close)
        slowest = 0.0
        for _ in range(20):
            t0 = time.monotonic()
            r = self.d.request("GET", "/healthz", conn=conn)
            slowest = max(slowest, time.monotonic() - t0)
            self.assertEqual(r.status, 200)
        self.assertLess(slowest, 0.5)
        me = self.d.request("GET", "/api/v1/me", token=self.admin)
        self.assertEqual(me.status, 200)
        for s in streams[::10]:  # and the streams are alive
            self.assertEqual(s.ping(timeout=4), ": ping")


class EventsIngestTest(DaemonTest):
    """Readings ingested over HTTP reach the stream (uses the sensors API of issue 3)."""
    env = {"SINERGI_SSE_HEARTBEAT_S": "1"}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tokens = {}
        for code, kind in (("ev-level-1", "water_level"), ("ev-level-2", "water_level"),
                           ("ev-rain-1", "rain")):
            body = {"code": code, "name": "events test " + code, "kind": kind, "lat": -2.55,
                    "lon": 120.33, "region": "73.22", "opd": "diskominfo", "interval_s": 600}
            if kind == "water_level":
                body.update(river="Masamba",
                            thresholds={"waspada": 2.0, "siaga": 3.0, "awas": 4.0})
            r = cls.d.request("POST", "/api/v1/stations", body, token=cls.admin)
            assert r.status == 201, r
            cls.tokens[code] = r.json["device_token"]
        cls.t = time.time() - 3600

    def ingest(self, code, value):
        sensor, unit = ("rain", "mm") if code.startswith("ev-rain") else ("level", "m")
        EventsIngestTest.t += 1
        body = [{"bn": code + ":", "n": sensor, "u": unit, "v": value, "t": self.t}]
        r = self.d.request("POST", "/api/v1/ingest", body, token=self.tokens[code],
                           content_type="application/senml+json")
        self.assertEqual(r.status, 200, r)

    def open(self, path=PATH, **kw):
        s = Stream(self.d, path, token=self.admin, **kw)
        self.addCleanup(s.close)
        self.assertEqual(s.frame(), "retry: 3000")
        return s

    @staticmethod
    def readings(evs):
        return [e for e in evs if e.get("event") == "reading"]

    def test_filters_and_resume(self):
        one = self.open(PATH + "?station=ev-level-1")
        rain = self.open(PATH + "?kind=rain")
        every = self.open()
        self.ingest("ev-level-1", 1.5)
        self.ingest("ev-rain-1", 0.5)
        self.ingest("ev-level-2", 2.5)
        got = self.readings(one.events(lambda g: self.readings(g), timeout=5))
        self.assertEqual([e["data"]["station"] for e in got], ["ev-level-1"])
        self.assertEqual(got[0]["data"]["values"]["level"]["v"], 1.5)
        got = self.readings(rain.events(lambda g: self.readings(g), timeout=5))
        self.assertEqual([e["data"]["station"] for e in got], ["ev-rain-1"])
        got = every.events(lambda g: len(self.readings(g)) >= 3, timeout=5)
        stations = [e["data"]["station"] for e in self.readings(got)]
        self.assertEqual(stations, ["ev-level-1", "ev-rain-1", "ev-level-2"])
        ids = [int(e["id"]) for e in got]
        self.assertEqual(ids, sorted(set(ids)))

        # The client drops; two more readings; it comes back with the last id it saw.
        seen = int(self.readings(got)[0]["id"])  # pretend it saw only the first
        every.close()
        self.ingest("ev-level-2", 2.75)
        back = self.open(headers={"Last-Event-ID": str(seen)})
        got = self.readings(back.events(
            lambda g: any(e["data"]["values"].get("level", {}).get("v") == 2.75
                          for e in self.readings(g)), timeout=5))
        self.assertEqual([e["data"]["station"] for e in got],
                         ["ev-rain-1", "ev-level-2"])  # level-2's older reading coalesced away
        self.assertTrue(all(int(e["id"]) > seen for e in got))

    def test_behind_reader_gets_newest_per_station(self):
        s = self.open()
        self.ingest("ev-level-1", 0.1)
        first = self.readings(s.events(lambda g: self.readings(g), timeout=5))
        start = int(first[-1]["id"])
        for i in range(20):
            self.ingest("ev-level-1", 1.0 + i / 10)
        late = self.open(PATH + "?station=ev-level-1&last_event_id=%d" % start)
        got = self.readings(late.events(
            lambda g: any(e["data"]["values"]["level"]["v"] == 2.9 for e in self.readings(g)),
            timeout=5))
        self.assertEqual(len(got), 1, got)  # twenty readings, one event: the newest
        # The live reader got each in order, ending with the newest (some may be coalesced).
        live = self.readings(s.events(
            lambda g: any(e["data"]["values"]["level"]["v"] == 2.9 for e in self.readings(g)),
            timeout=5))
        values = [e["data"]["values"]["level"]["v"] for e in live]
        self.assertEqual(values[-1], 2.9)
        self.assertEqual(values, sorted(values))


class EventsShutdownTest(unittest.TestCase):
    def test_sigterm_with_open_streams_exits_promptly(self):
        d = Daemon(args=["--threads", "2"])
        self.addCleanup(d.cleanup)
        d.start()
        token = d.admin_token()
        streams = [Stream(d, token=token) for _ in range(10)]
        for s in streams:
            self.assertEqual(s.frame(), "retry: 3000")
        t0 = time.monotonic()
        rc = d.stop(signal.SIGTERM, timeout=15)
        elapsed = time.monotonic() - t0
        self.assertEqual(rc, 0)
        self.assertLess(elapsed, 5.0)  # not the 10 s in-flight deadline
        for s in streams:  # each stream was ended, cleanly or by the close
            try:
                self.assertIsNone(s.frame(timeout=2))
            except ConnectionError:
                pass
            s.close()
        self.assertIn("event=sse_shutdown", d.log_text())


if __name__ == "__main__":
    unittest.main()
