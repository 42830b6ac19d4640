"""The Masamba 2020 scenario end to end (docs/MASAMBA_2020.md): a real Mosquitto broker, the real
daemon with MQTT on and the DEMO gauges seeded, and `sinergi simulate masamba-2020` publishing the
reconstruction over MQTT as each device, so the whole path runs: broker, spool, writer, QC, rules,
alerts, outbox, webhooks and retained MQTT, CAP, the live stream.

While it runs: two relay gateways forward every reading again, from two threads, each its own
broker client (the same gauges' messages arrive three times, concurrently); a webhook receiver
(tier 0) and an escalation receiver (tier 1) are registered beside an endpoint that accepts and
never answers; an SSE client watches. The receiver holds the Awas notification of the Masamba
unanswered, and sinergi is killed with SIGKILL right then (decided and committed, delivery in
flight, not recorded), restarted, and must deliver it again.

Then it asserts the exact alert timeline of every demo station against the scenario's schedule
(the reading each decision was made at), that the 20:45 drop cleared nothing and raised the
operators' sudden-fall alarm, one alert per station and rule, the frozen Rongkong gauge's silent
alarm, the Radda spike flagged and not alerted, escalation, every CAP document valid against the
OASIS schema, and every signed notification received exactly once per version after dedupe.

Reading time vs wall time: the simulator stamps readings so that the scenario ends when the
replay ends (it prints the shift); at SPEED the evening is published up to ~3.5 h after its
stamps, so the daemon runs with ews_live_window_s = 2 days: the whole replay is live (with the
default 3600 s its warnings would be recorded as backfill and sent to nobody).
"""
import calendar
import hashlib
import hmac
import http.server
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from tests.api.harness import BIN, DATA_DIR, Daemon, wait_until
from tests.api.test_cap import XSD, xmllint
from tests.api.test_sensors import SSE

try:
    from tests.api.mqtt_broker import Broker, Client
except ImportError:  # no paho
    Broker = None

SPEED = 6000  # 33.5 scenario hours in ~20 s
TIMEOUT_MS = 2000  # notify_timeout_ms: what the hanging endpoint costs per attempt
ESCALATE_S = 3
CODES = ["demo-arr-masamba", "demo-arr-rongkong", "demo-pda-masamba", "demo-pda-radda",
         "demo-pda-rongkong"]
MASAMBA, RADDA, RONGKONG = "demo-pda-masamba", "demo-pda-radda", "demo-pda-rongkong"
ENV = {"SINERGI_SEED_DEMO": "1", "SINERGI_EWS_LIVE_WINDOW_S": "172800",
       "SINERGI_EWS_ESCALATE_AFTER_S": str(ESCALATE_S),
       "SINERGI_NOTIFY_TIMEOUT_MS": str(TIMEOUT_MS), "SINERGI_NOTIFY_BACKOFF_MIN_MS": "200",
       "SINERGI_NOTIFY_BACKOFF_MAX_S": "2"}
RULE_ACTIONS = ("raised", "level", "cleared")

# The schedule: every rule decision of the scenario, (WITA day hh:mm of the reading, station,
# rule, level). docs/MASAMBA_2020.md tells the story of each line.
TIMELINE = [
    ("12 20:20", "demo-arr-rongkong", "rain_24h", 1),  # 50.8 mm in 24 h upstream
    ("12 21:40", "demo-arr-masamba", "rain_24h", 1),   # 52.2 mm in town
    ("12 23:20", "demo-arr-rongkong", "rain_24h", 2),  # 101.2 mm upstream
    ("13 19:10", RONGKONG, "level", 1),                # Waspada, 2.503 m
    ("13 19:15", MASAMBA, "level", 1),                 # Waspada, 2.064 m
    ("13 19:25", RADDA, "level", 1),                   # Waspada, 1.836 m
    ("13 19:40", MASAMBA, "rate_of_rise", 2),          # +0.53 m in 10 min, still below Siaga
    ("13 19:45", MASAMBA, "level", 2),                 # Siaga, 3.180 m
    ("13 20:10", RADDA, "level", 2),                   # Siaga, 2.736 m
    ("13 20:15", MASAMBA, "level", 3),                 # overflow: Awas, 4.286 m
    (None, RONGKONG, "silent", 1),                     # the jammed float: see silent_at()
    ("13 20:30", "demo-arr-rongkong", "rain_1h", 1),   # 20.6 mm in an hour upstream
    ("13 20:45", MASAMBA, "sudden_fall", 2),           # the drop: 4.512 -> 3.847 m while it rains
    ("13 20:50", RADDA, "level", 3),                   # Awas, 3.642 m
    ("13 21:00", RADDA, "rate_of_rise", 2),            # the surge reaches Radda
]
MASAMBA_LEVELS = [("Alert", 1, "13 19:15", 2.064), ("Update", 2, "13 19:45", 3.18),
                  ("Update", 3, "13 20:15", 4.286)]


def iso(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class Receiver:
    """A webhook endpoint that records every POST (monotonic time, headers, raw body) and answers
    200. `hold(payload)`: the first POST it matches is recorded, then left unanswered until
    `release` is set (sinergi is killed meanwhile: decided, sent, never recorded as delivered)."""

    def __init__(self, hold=None):
        self.posts = []
        self.lock = threading.Lock()
        self.hold = hold
        self.held = threading.Event()
        self.release = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with outer.lock:
                    outer.posts.append((time.monotonic(), dict(self.headers), body))
                    hold = (outer.hold is not None and not outer.held.is_set() and
                            outer.hold(json.loads(body)))
                    if hold:
                        outer.held.set()
                if hold:
                    outer.release.wait(120)
                try:
                    self.send_response(200)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:  # the sinergi that sent it is dead
                    pass

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d/hook" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def by_delivery(self):
        out = {}
        with self.lock:
            for at, headers, body in self.posts:
                out.setdefault(headers.get("X-Sinergi-Delivery"), []).append((at, headers, body))
        return out

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class Hanging:
    """Accepts connections (the kernel does, from the backlog) and never answers a byte."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.url = "http://127.0.0.1:%d/hook" % self.sock.getsockname()[1]

    def close(self):
        self.sock.close()


class Watcher:
    """An SSE client read on its own thread; frames get their arrival time. Ends with the
    daemon (a new Watcher follows a restart)."""

    def __init__(self, port, token):
        self.sse = SSE(port, token, "?station=" + ",".join(CODES))
        self.frames = []
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        seen = 0
        while not self.done.is_set():
            try:
                self.sse._fill(time.monotonic() + 0.2)
                self.sse._parse()
            except (AssertionError, OSError, ValueError):
                return  # the daemon went away
            with self.lock:
                for f in self.sse.frames[seen:]:
                    f["arrived"] = time.monotonic()
                    self.frames.append(f)
            seen = len(self.sse.frames)

    def alerts(self):
        with self.lock:
            return [f for f in self.frames if f.get("event") == "alert"]

    def close(self):
        self.done.set()
        self.thread.join(5)
        self.sse.close()


class Relays:
    """Two gateways forwarding the same gauges: a tap (the broker's admin) sees every reading
    published on sinergi/ingest/<code>, and two threads, each its own broker client holding the
    stations' roles, publish each one again at once."""

    def __init__(self, broker):
        self.broker = broker
        admin = broker.admin()
        try:
            for code in CODES:  # sinergi makes them with the device accounts; either comes first
                admin.dynsec({"command": "createRole", "rolename": "station-" + code,
                              "acls": [{"acltype": "publishClientSend", "allow": True,
                                        "topic": "sinergi/ingest/" + code}]})
            self.password = "relay-" + os.urandom(12).hex()
            for name in ("relay-a", "relay-b"):
                admin.dynsec({"command": "createClient", "username": name,
                              "password": self.password,
                              "roles": [{"rolename": "station-" + c} for c in CODES]})
        finally:
            admin.close()
        self.seen = set()
        self.queues = [queue.Queue(), queue.Queue()]
        self.forwarded = [0, 0]
        self.errors = []
        self.stop = threading.Event()
        self.infos = []
        with open(broker.password_file) as f:
            self.tap = Client(broker.port, "sinergi.admin", f.read().strip())
        self.tap.c.on_message = self._on_message
        if self.tap.connect() != 0:
            raise AssertionError("the broker refused its admin")
        granted = self.tap.subscribe("sinergi/ingest/#", qos=1)
        if granted >= 128:
            raise AssertionError("the admin may not subscribe to sinergi/ingest/#")
        self.clients = []
        for name in ("relay-a", "relay-b"):
            c = Client(broker.port, name, self.password)
            if c.connect() != 0:
                raise AssertionError("the broker refused relay " + name)
            self.clients.append(c)
        self.threads = [threading.Thread(target=self._forward, args=(i,), daemon=True)
                        for i in range(2)]
        for t in self.threads:
            t.start()

    def _on_message(self, client, userdata, msg):
        key = (msg.topic, bytes(msg.payload))
        if key in self.seen:  # our own copies coming back
            return
        self.seen.add(key)
        for q in self.queues:
            q.put(key)

    def _forward(self, i):
        while not self.stop.is_set() or not self.queues[i].empty():
            try:
                topic, payload = self.queues[i].get(timeout=0.1)
            except queue.Empty:
                continue
            try:
                self.infos.append(self.clients[i].publish(topic, payload, qos=1))
                self.forwarded[i] += 1
            except AssertionError as e:
                self.errors.append(e)

    def close(self):
        self.stop.set()
        for t in self.threads:
            t.join(30)
        for info in list(self.infos):
            info.wait_for_publish(10)
        for c in self.clients + [self.tap]:
            c.close()


def is_masamba_awas(payload):
    a = payload.get("alert", {})
    return (payload.get("station", {}).get("code") == MASAMBA and a.get("rule") == "level"
            and a.get("level") == 3)


@unittest.skipUnless(Broker is not None and (shutil.which("mosquitto") or
                                             os.path.exists("/usr/sbin/mosquitto")),
                     "mosquitto and paho-mqtt are needed")
@unittest.skipUnless(shutil.which("xmllint"), "xmllint (libxml2-utils) is not installed")
class Masamba2020Test(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.broker = Broker().start()
        self.addCleanup(self.broker.cleanup)
        self.workdir = tempfile.mkdtemp(prefix="sinergi-masamba-")
        self.addCleanup(shutil.rmtree, self.workdir, True)
        env = dict(ENV, **self.broker.daemon_env(os.path.join(self.workdir, "spool")))
        self.d = Daemon(env=env, workdir=self.workdir)
        self.addCleanup(self.d.stop)
        self.d.start()
        self.admin = self.d.admin_token()

    def tearDown(self):
        # the sanitizer reports of every daemon this test ran, the killed one included
        for name in os.listdir(self.workdir):
            if name.startswith("stderr."):
                with open(os.path.join(self.workdir, name)) as f:
                    Daemon._check_sanitizer(f.read())

    # -- helpers --------------------------------------------------------------------------------
    def get(self, path):
        r = self.d.request("GET", path, token=self.admin)
        self.assertEqual(r.status, 200, r)
        return r.json

    def webhook(self, url, tier, description):
        r = self.d.request("POST", "/api/v1/webhooks", {"url": url, "tier": tier,
                                                        "description": description},
                           token=self.admin)
        self.assertEqual(r.status, 201, r)
        return r.json

    def alerts(self, code, state="all"):
        return self.get("/api/v1/alerts?state=%s&station=%s&limit=1000" % (state, code))

    def alert(self, aid):
        return self.get("/api/v1/alerts/%d" % aid)

    def points(self, code, frm, to):
        return self.get("/api/v1/stations/%s/readings?from=%d&to=%d&step=raw&limit=100000"
                        % (code, frm, to))["points"]

    def stamp(self, when):
        """Reading time of the scenario's WITA 'dd hh:mm' (July 2020)."""
        day, hm = when.split()
        hh, mm = map(int, hm.split(":"))
        return calendar.timegm((2020, 7, int(day), hh, mm, 0)) - 8 * 3600 + self.shift

    def silent_at(self):
        """The reading the frozen Rongkong gauge's silent alarm is due at: QC flags the 6th equal
        reading (19:55, the float jammed at 19:30) and after it every one; the rule counts
        `flat_readings` flagged readings in a row."""
        rules = self.get("/api/v1/stations/%s/rules" % RONGKONG)["rules"]
        [silent] = [r for r in rules if r["rule"] == "silent"]
        return self.stamp("13 19:55") + 300 * (silent["params"]["flat_readings"] - 1)

    def simulate(self):
        p = subprocess.Popen([BIN, "simulate", "masamba-2020", "--speed", str(SPEED), "--db",
                              self.d.db, "--data-dir", DATA_DIR], env=self.d.env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.sim_out, self.sim_err = [], []

        def read(stream, into):
            for line in stream:
                into.append(line)
        threading.Thread(target=read, args=(p.stdout, self.sim_out), daemon=True).start()
        threading.Thread(target=read, args=(p.stderr, self.sim_err), daemon=True).start()

        def end():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(30)
            p.stdout.close()
            p.stderr.close()
        self.addCleanup(end)

        def shift():
            m = re.search(r"\(shift (-?\d+) s\)", "".join(self.sim_out))
            return int(m.group(1)) if m else None
        self.shift = wait_until(lambda: shift() is not None or p.poll() is not None, 60,
                                what="the simulator to start") and shift()
        self.assertIsNotNone(self.shift, "".join(self.sim_out + self.sim_err))
        return p

    def sim_text(self):
        return "".join(self.sim_out) + "".join(self.sim_err)

    # -- the scenario ---------------------------------------------------------------------------
    def test_masamba_2020(self):
        receiver = Receiver(hold=is_masamba_awas)
        escalations = Receiver()
        hanging = Hanging()
        for x in (receiver, escalations, hanging):
            self.addCleanup(x.close)
        good = self.webhook(receiver.url, 0, "BPBD SMS gateway")
        tier1 = self.webhook(escalations.url, 1, "Kalaksa BPBD (escalation)")
        hang = self.webhook(hanging.url, 0, "WhatsApp gateway that hangs")
        relays = Relays(self.broker)
        self.addCleanup(relays.close)
        watcher = Watcher(self.d.port, self.admin)
        self.addCleanup(watcher.close)
        wait_until(lambda: watcher.sse.status == 200, 10, what="the event stream")

        sim = self.simulate()
        self.assertIn("a reconstruction, not data", self.sim_text())

        # 20:15: the overflow. Awas is decided, on the stream, and its notification is in flight
        # to the receiver, which does not answer: kill -9 now, then start again.
        try:
            wait_until(receiver.held.is_set, 90, what="the Masamba Awas notification")
        except AssertionError as e:
            raise AssertionError("%s; simulator: %s" % (e, self.sim_text())) from None
        awas_ev = wait_until(lambda: [f for f in watcher.alerts()
                                      if f["json"]["station"] == MASAMBA
                                      and f["json"]["alert"]["rule"] == "level"
                                      and f["json"]["alert"]["level"] == 3], 10,
                             what="Awas on the event stream")[0]
        [level] = [a for a in self.alerts(MASAMBA, "open") if a["rule"] == "level"]
        self.assertEqual((level["level"], level["label"]), (3, "Awas (Siaga 1)"))
        self.d.kill9()
        killed_at = time.monotonic()
        receiver.release.set()
        watcher.close()
        self.d.start()
        watcher2 = Watcher(self.d.port, self.admin)
        self.addCleanup(watcher2.close)

        # the replay ends (the broker queued what was published while sinergi was down)
        self.assertEqual(sim.wait(90), 0, self.sim_text())
        Daemon._check_sanitizer(self.sim_text())
        m = re.search(r"published (\d+) readings; 0 not acknowledged", self.sim_text())
        self.assertTrue(m, self.sim_text())
        n = int(m.group(1))
        self.assertEqual(n, 3 * 403 + 2 * 201)
        wait_until(lambda: len(relays.seen) >= n, 30, what="the relays to see every reading")
        relays.close()
        self.assertEqual(relays.errors, [])
        self.assertEqual(relays.forwarded, [n, n], "each relay forwarded every reading")

        first, last = self.stamp("12 12:00"), self.stamp("13 21:30")
        counts = {c: 403 if "-pda-" in c else 201 for c in CODES}
        pts = {}

        def stored():
            for c in CODES:
                pts[c] = self.points(c, first - 1, last)
            return all(len(pts[c]) == counts[c] for c in CODES)
        wait_until(stored, 60, interval=0.5, what="every reading, once: %r"
                   % {c: len(p) for c, p in pts.items()})

        # ---- the exact timeline: every rule decision, at the reading it was made at ----
        alerts = {c: self.alerts(c) for c in CODES}
        full = {a["id"]: self.alert(a["id"]) for c in CODES for a in alerts[c]}
        decided = sorted((h["at"], a["station"], a["rule"], h["level"])
                         for a in full.values() for h in a["history"]
                         if h["actor"] == "rules" and h["action"] in RULE_ACTIONS)
        want = sorted((iso(self.stamp(w) if w else self.silent_at()), c, r, lv)
                      for w, c, r, lv in TIMELINE)
        self.assertEqual(decided, want)
        for a in full.values():  # decided from live readings: the whole replay is in the window
            self.assertFalse(any(h["backfill"] for h in a["history"]), a)

        # Masamba: Waspada, Siaga, Awas at the right readings; the 20:45 drop cleared nothing
        by_rule = {a["rule"]: full[a["id"]] for a in alerts[MASAMBA]}
        self.assertEqual(sorted(by_rule), ["level", "rate_of_rise", "sudden_fall"])
        lv = by_rule["level"]
        steps = [(h["msg_type"], h["level"], h["at"], h["value"]) for h in lv["history"]
                 if h["actor"] == "rules" and h["action"] in RULE_ACTIONS]
        self.assertEqual(steps, [(t, level_, iso(self.stamp(w)), v)
                                 for t, level_, w, v in MASAMBA_LEVELS])
        self.assertEqual((lv["level"], lv["label"], lv["raised_at"]),
                         (3, "Awas (Siaga 1)", iso(self.stamp("13 19:15"))))
        self.assertIn(lv["state"], ("active_unack", "active_ack"))
        self.assertIsNone(lv["cleared_at"])
        drop = {p["t"]: p for p in pts[MASAMBA]}
        for when, v in (("13 20:40", 4.468), ("13 20:45", 3.847), ("13 20:50", 3.702),
                        ("13 20:55", 3.655), ("13 21:00", 5.08)):
            p = drop[iso(self.stamp(when))]
            self.assertEqual((p["v"], p["qc"]), (v, "good"), when)  # judged, and not enough
        for a in by_rule.values():
            self.assertNotIn("cleared", [h["action"] for h in a["history"]])
        # the drop while it rains upstream: the operators' debris-dam warning
        sf = by_rule["sudden_fall"]
        self.assertEqual((sf["level"], sf["public"], sf["raised_at"], sf["value"]),
                         (2, False, iso(self.stamp("13 20:45")), 3.847))
        rain = sum(p["v"] for p in pts["demo-arr-masamba"]
                   if self.stamp("13 19:45") < calendar.timegm(time.strptime(
                       p["t"], "%Y-%m-%dT%H:%M:%SZ")) <= self.stamp("13 20:45"))
        self.assertGreaterEqual(rain, 5.0)

        # one alert per station and rule: the replay, two relays and a kill made no second one
        for c in CODES:
            rules = [a["rule"] for a in alerts[c]]
            self.assertEqual(len(rules), len(set(rules)), (c, rules))
            open_rules = [a["rule"] for a in self.alerts(c, "open")]
            self.assertEqual(len(open_rules), len(set(open_rules)), (c, open_rules))

        # Rongkong: the float jams at 19:30; QC calls it flat from the 6th equal reading, the
        # 6th flat one raises the silent alarm (operators), and the river's rise goes unseen
        flat = [p for p in pts[RONGKONG] if "flat" in p.get("qc_tests", [])]
        self.assertEqual(flat[0]["t"], iso(self.stamp("13 19:55")))
        self.assertEqual({p["v"] for p in flat}, {2.734})
        self.assertEqual(len(flat), 20)  # 19:55 .. 21:30
        [silent] = [full[a["id"]] for a in alerts[RONGKONG] if a["rule"] == "silent"]
        self.assertEqual((silent["level"], silent["public"], silent["raised_at"]),
                         (1, False, iso(self.silent_at())))
        [rl] = [a for a in alerts[RONGKONG] if a["rule"] == "level"]
        self.assertEqual(rl["level"], 1)

        # Radda: the 15:00 spike is flagged, never alerted; its first warning is at 19:25
        spike = {p["t"]: p for p in pts[RADDA]}[iso(self.stamp("13 15:00"))]
        self.assertEqual((spike["v"], spike["qc"]), (3.662, "suspect"))
        self.assertIn("spike", spike["qc_tests"])
        radda = [h for a in alerts[RADDA] for h in full[a["id"]]["history"]]
        self.assertEqual(min(h["at"] for h in radda), iso(self.stamp("13 19:25")))
        for a in alerts.values():
            for x in a:
                self.assertNotEqual(x["raised_at"], iso(self.stamp("13 15:00")))

        # ---- escalation: nobody acknowledged the Masamba warning since it became Awas ----
        awas_v = [h["version"] for h in lv["history"] if h["action"] == "level"
                  and h["level"] == 3][0]

        def escalated():
            a = self.alert(lv["id"])
            return [h for h in a["history"] if h["action"] == "escalate"
                    and h["version"] > awas_v] if a["escalation"] >= 1 else None
        tiers = wait_until(escalated, 30, what="the Masamba warning to escalate")
        self.assertEqual((tiers[0]["actor"], tiers[0]["note"]),
                         ("rules", "nobody acknowledged: escalated to tier 1"))

        # ---- CAP: every message of every public warning validates against CAP 1.2 ----
        ndocs = 0
        for a in full.values():
            versions = [h for h in a["history"] if h["actor"] == "rules"
                        and h["action"] in RULE_ACTIONS and not h["backfill"]]
            for i, h in enumerate(versions):
                r = self.d.request("GET", "/cap/alerts/%d-%d.xml" % (a["id"], h["version"]))
                if not a["public"]:
                    self.assertEqual(r.status, 404, r)
                    continue
                self.assertEqual(r.status, 200, r)
                rc, out = xmllint(r.body)
                self.assertEqual(rc, 0, "CAP %d-%d does not validate against %s:\n%s\n%s"
                                 % (a["id"], h["version"], XSD, out, r.body))
                self.assertIn("<msgType>%s</msgType>" % ("Alert" if i == 0 else h["msg_type"]),
                              r.body)
                ndocs += 1
        self.assertEqual(ndocs, 13)  # the TIMELINE less the two operator alarms
        feed = self.d.request("GET", "/cap/alerts.atom")
        self.assertEqual(feed.status, 200, feed)
        self.assertEqual(xmllint(feed.body, schema=False)[0], 0, feed.body)
        self.assertIn("/cap/alerts/%d-%d.xml" % (lv["id"], awas_v), feed.body)

        # ---- webhooks: every signed notification once per version, after dedupe ----
        expected = {"%d.%d" % (a["id"], h["version"]) for a in full.values()
                    for h in a["history"] if h["actor"] == "rules"
                    and h["action"] in RULE_ACTIONS}
        wait_until(lambda: expected <= set(receiver.by_delivery()), 30,
                   what="every notification at the receiver; missing %s"
                   % sorted(expected - set(receiver.by_delivery())))
        got = receiver.by_delivery()
        self.assertEqual(set(got), expected)
        awas_id = "%d.%d" % (lv["id"], awas_v)
        for delivery, copies in got.items():
            with self.subTest(delivery=delivery):
                self.assertEqual(len({body for _, _, body in copies}), 1, "different bodies")
                for _, headers, body in copies:
                    self.assertEqual(headers["X-Sinergi-Signature"],
                                     "sha256=" + hmac_hex(good["secret"], body))
                    self.assertEqual(json.loads(body)["delivery_id"], delivery)
                if delivery == awas_id:  # held across the kill: sent again after the restart
                    self.assertTrue(copies[0][0] < killed_at < copies[-1][0], copies)
                else:  # a second copy only of what a kill caught in flight
                    self.assertTrue(len(copies) == 1 or copies[0][0] < killed_at < copies[1][0],
                                    copies)
        payload = json.loads(got[awas_id][0][2])
        self.assertEqual((payload["alert"]["level"], payload["station_level"]["level"],
                          payload["station"]["demo"]), (3, 3, True))
        # the hanging endpoint delayed nobody: Waspada reached the receiver as it reached the
        # stream, although every attempt at the other endpoint waits TIMEOUT_MS
        wasp = "%d.%d" % (lv["id"], lv["history"][0]["version"])
        wasp_ev = [f for f in watcher.alerts() if f["json"]["alert"]["id"] == lv["id"]
                   and f["json"]["alert"]["version"] == lv["history"][0]["version"]]
        self.assertTrue(wasp_ev, "Waspada on the event stream")
        self.assertLess(got[wasp][0][0] - wasp_ev[0]["arrived"], TIMEOUT_MS / 1000.0)

        def owed():
            w = {x["id"]: x for x in self.get("/api/v1/webhooks")}[hang["id"]]
            return w if w["pending"] > 0 and w["last_error"] else None
        self.assertIn("imeout", wait_until(owed, 3 * TIMEOUT_MS / 1000.0 + 5,
                                          what="the hanging webhook's error")["last_error"])
        # escalations go to the tier-1 contacts, once per version, signed
        want_esc = "%d.%d" % (lv["id"], tiers[0]["version"])
        wait_until(lambda: want_esc in escalations.by_delivery(), 15,
                   what="the escalation at the tier-1 webhook")
        esc_got = escalations.by_delivery()
        for delivery, copies in esc_got.items():
            aid, version = map(int, delivery.split("."))
            h = {x["version"]: x for x in self.alert(aid)["history"]}[version]
            self.assertEqual((h["action"], h["note"]),
                             ("escalate", "nobody acknowledged: escalated to tier 1"))
            self.assertEqual(len({body for _, _, body in copies}), 1)
            for _, headers, body in copies:
                self.assertEqual(headers["X-Sinergi-Signature"],
                                 "sha256=" + hmac_hex(tier1["secret"], body))

        # ---- MQTT: the sirens' retained message is the station's state: Awas ----
        with open(self.broker.password_file) as f:
            siren = Client(self.broker.port, "sinergi.admin", f.read().strip())
        self.assertEqual(siren.connect(), 0)
        try:
            siren.subscribe("sinergi/alerts/" + MASAMBA)

            def awas():  # retained, or published while we listen (the outbox may still send it)
                with siren.lock:
                    msgs = [json.loads(p) for t, p in siren.messages]
                return [m for m in msgs if m["station_level"]["level"] == 3]
            msg = wait_until(awas, 15, what="the siren message: Awas")[-1]
            self.assertEqual((msg["station"]["code"], msg["alert"]["rule"]), (MASAMBA, "level"))
        finally:
            siren.close()

        # ---- live: Waspada, Siaga, Awas reached the stream before the kill; after the restart
        # the new stream carries what people do ----
        seen = [(f["json"]["action"], f["json"]["alert"]["level"]) for f in watcher.alerts()
                if f["json"]["alert"]["id"] == lv["id"]]
        self.assertEqual([s for s in seen if s[0] in RULE_ACTIONS],
                         [("raised", 1), ("level", 2), ("level", 3)])
        self.assertEqual(awas_ev["json"]["alert"]["id"], lv["id"])
        r = self.d.request("POST", "/api/v1/alerts/%d/ack" % lv["id"],
                           {"note": "evakuasi Kel. Bone dan Bone Tua"}, token=self.admin)
        self.assertEqual(r.status, 200, r)
        ack = wait_until(lambda: [f for f in watcher2.alerts()
                                  if f["json"]["alert"]["id"] == lv["id"]
                                  and f["json"]["action"] == "ack"], 10, what="the ack event")[0]
        self.assertEqual(ack["json"]["alert"]["state"], "active_ack")


def hmac_hex(secret, body):
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


if __name__ == "__main__":
    unittest.main()
