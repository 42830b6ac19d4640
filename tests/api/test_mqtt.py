"""Ingest over MQTT against a real Mosquitto broker and the real daemon.

Devices connect as username = station code, password = device token, and may publish only to
sinergi/ingest/<code>; sinergi keeps the broker's accounts in step with its stations (create,
rotate, delete, and reconciliation at start). QoS 1 readings the broker acknowledged survive
kill -9 of sinergi (broker queue + sinergi's spool), are stored exactly once, and what the broker
drops under a burst is counted on /metrics, never silent.
"""
import json
import os
import re
import struct
import subprocess
import tempfile
import threading
import time
import unittest
import zlib

from tests.api.harness import BIN, DATA_DIR, Daemon, wait_until
from tests.api.mqtt_broker import Broker, Client

_codes = iter(range(1, 10_000))


def senml(code, t, v, sensor="level", unit="m"):
    return json.dumps([{"bn": code + ":", "bt": t, "n": sensor, "u": unit, "v": v}])


def metrics(d):
    """The sinergi_mqtt_* values of /metrics."""
    text = d.request("GET", "/metrics").body
    out = {}
    for line in text.splitlines():
        m = re.match(r"^(sinergi_mqtt_\w+) (\d+)$", line)
        if m:
            out[m.group(1)] = int(m.group(2))
    if "sinergi_mqtt_messages_received_total" not in out:
        raise AssertionError("/metrics has no sinergi_mqtt_* counters: mqtt_metrics_text() must "
                             "be appended by http_metrics_render")
    return out


class MqttEnv:
    """A broker, a daemon pointed at it, and helpers to make stations and read readings."""

    def start_env(self, max_queued=None):
        self.broker = Broker(max_queued=max_queued).start()
        self.workdir = tempfile.mkdtemp(prefix="sinergi-test-")
        self.spool = os.path.join(self.workdir, "spool")
        self.d = Daemon(env=self.broker.daemon_env(self.spool), workdir=self.workdir)
        try:
            self.d.start()
            self.admin = self.d.admin_token()
        except BaseException:  # setUp failed: tearDown will not run, stop the broker here
            self.d.cleanup()
            self.broker.cleanup()
            raise

    def stop_env(self):
        try:
            self.d.cleanup()
        finally:
            self.broker.cleanup()

    def new_station(self, prefix="mq"):
        code = "%s-%d" % (prefix, next(_codes))
        r = self.d.request("POST", "/api/v1/stations", {
            "code": code, "name": "MQTT test gauge " + code, "kind": "water_level",
            "lat": -2.55, "lon": 120.33, "opd": "bpbd", "interval_s": 600,
            "thresholds": {"waspada": 2.0, "siaga": 3.0, "awas": 4.0}}, token=self.admin)
        if r.status != 201:
            raise AssertionError("create station: %r" % r)
        return code, r.json["device_token"]

    def device(self, code, token):
        dev = Client(self.broker.port, code, token)
        rc = dev.connect()
        if rc != 0:
            raise AssertionError("device %s refused by the broker: %d" % (code, rc))
        return dev

    def points(self, code, frm, to):
        r = self.d.request("GET", "/api/v1/stations/%s/readings?sensor=level&from=%d&to=%d"
                           "&step=raw&limit=100000" % (code, frm, to), token=self.admin)
        if r.status != 200:
            raise AssertionError("readings: %r" % r)
        return r.json["points"]

    def wait_points(self, code, frm, to, n, timeout=30):
        return wait_until(lambda: (lambda p: p if len(p) >= n else None)(self.points(code, frm, to)),
                          timeout, what="%d readings of %s" % (n, code))


class MqttIngestTest(unittest.TestCase, MqttEnv):
    @classmethod
    def setUpClass(cls):
        MqttEnv.start_env(cls)

    @classmethod
    def tearDownClass(cls):
        MqttEnv.stop_env(cls)

    def setUp(self):
        self.now = int(time.time())

    def barrier(self, dev, code, t):
        """Publishes a marker reading and waits until it is stored: everything the device sent
        before it has been handled by then (one connection, one subscription, in order)."""
        dev.publish_acked("sinergi/ingest/" + code, senml(code, t, 0.5), qos=1)
        self.wait_points(code, t, t, 1)

    def test_qos0_and_qos1_readings_are_stored(self):
        code, token = self.new_station()
        dev = self.device(code, token)  # the account exists as soon as POST /stations answered
        try:
            t = self.now - 100
            dev.publish_acked("sinergi/ingest/" + code, senml(code, t, 1.25), qos=0)
            dev.publish_acked("sinergi/ingest/" + code, senml(code, t + 10, 1.5), qos=1)
            pack = [{"bn": code + ":", "bt": t + 20, "n": "level", "u": "m", "v": 1.75},
                    {"n": "level", "t": 10, "v": 2.0}, {"n": "level", "t": 20, "u": "cm",
                                                        "v": 210}]
            dev.publish_acked("sinergi/ingest/" + code, json.dumps(pack), qos=1)
            pts = self.wait_points(code, t, t + 40, 5)
            self.assertEqual([p["v"] for p in pts], [1.25, 1.5, 1.75, 2.0, 2.1])
            self.assertTrue(all(p["qc"] in ("good", "suspect") for p in pts), pts)
            latest = self.d.request("GET", "/api/v1/stations/latest", token=self.admin)
            self.assertIn(code, latest.body)
        finally:
            dev.close()

    def test_wrong_password_and_unknown_user_are_refused(self):
        code, token = self.new_station()
        for user, pw in [(code, "not-the-token-" + "x" * 30), (code, ""),
                         ("no-such-station", token), ("sinergi.admin", token),
                         ("sinergi.service", token)]:
            c = Client(self.broker.port, user, pw)
            rc = c.connect()
            self.assertIn(rc, (4, 5), "CONNACK for %s should be 'not authorised', got %r"
                          % (user, rc))

    def test_another_stations_topic_is_neither_delivered_nor_stored(self):
        a_code, a_token = self.new_station()
        b_code, _ = self.new_station()
        dev = self.device(a_code, a_token)
        try:
            t = self.now - 200
            before = metrics(self.d)
            # The broker accepts the PUBLISH (MQTT 3.1.1 cannot refuse one) and drops it.
            dev.publish_acked("sinergi/ingest/" + b_code, senml(b_code, t, 3.3), qos=1)
            dev.publish_acked("sinergi/ingest/" + b_code, senml(a_code, t + 1, 3.3), qos=1)
            dev.publish_acked("sinergi/other", senml(a_code, t + 2, 3.3), qos=1)
            self.barrier(dev, a_code, t + 3)
            self.assertEqual(self.points(b_code, t - 10, t + 10), [])
            self.assertEqual([p["v"] for p in self.points(a_code, t - 10, t + 10)], [0.5])
            after = metrics(self.d)
            self.assertEqual(after["sinergi_mqtt_messages_received_total"]
                             - before["sinergi_mqtt_messages_received_total"], 1)
            # Nor can a device listen to other stations' readings.
            self.assertEqual(dev.subscribe("sinergi/ingest/#"), 128)
        finally:
            dev.close()

    def test_the_station_role_allows_exactly_its_topic(self):
        code, _ = self.new_station()
        admin = self.broker.admin()
        try:
            acls = admin.role_acls("station-" + code)
            self.assertEqual([(a["acltype"], a["topic"], a["allow"]) for a in acls],
                             [("publishClientSend", "sinergi/ingest/" + code, True)])
        finally:
            admin.close()

    def test_malformed_payloads_are_counted_not_stored(self):
        code, token = self.new_station()
        dev = self.device(code, token)
        try:
            t = self.now - 300
            before = metrics(self.d)
            topic = "sinergi/ingest/" + code
            for payload in (b"not json", b"{}", b"", b"\xff\xfe", b"[1, 2]", b"[" * 100000):
                dev.publish_acked(topic, payload, qos=1)
            bad_records = [{"bn": code + ":", "bt": t, "n": "level", "u": "Cel", "v": 1.0},
                           {"n": "flow", "t": 1, "v": 2.0},
                           {"n": "level", "t": 2, "vs": "high"},
                           {"bn": "other-station:", "n": "level", "t": 3, "v": 1.0},
                           {"bn": code + ":", "n": "level", "t": 4, "v": 1.75}]
            dev.publish_acked(topic, json.dumps(bad_records), qos=1)
            self.barrier(dev, code, t + 10)
            after = metrics(self.d)
            delta = {k: after[k] - before[k] for k in after if k.endswith("_total")}
            self.assertEqual(delta["sinergi_mqtt_messages_received_total"], 8, delta)
            self.assertGreaterEqual(delta["sinergi_mqtt_payloads_malformed_total"], 5, delta)
            self.assertEqual(delta["sinergi_mqtt_records_rejected_total"], 4, delta)
            self.assertEqual(delta["sinergi_mqtt_readings_stored_total"], 2, delta)
            self.assertEqual([p["v"] for p in self.points(code, t - 10, t + 20)], [1.75, 0.5])
            self.assertIsNone(self.d.proc.poll(), "the daemon died")
            self.assertNotIn("high", self.d.log_text())  # no payload content in the log
        finally:
            dev.close()

    def test_duplicate_readings_are_stored_once(self):
        code, token = self.new_station()
        dev = self.device(code, token)
        try:
            t = self.now - 400
            before = metrics(self.d)
            for _ in range(3):
                dev.publish_acked("sinergi/ingest/" + code, senml(code, t, 1.1), qos=1)
            self.barrier(dev, code, t + 1)
            self.assertEqual(len(self.points(code, t, t)), 1)
            after = metrics(self.d)
            self.assertEqual(after["sinergi_mqtt_readings_duplicate_total"]
                             - before["sinergi_mqtt_readings_duplicate_total"], 2)
        finally:
            dev.close()

    def test_token_rotation_replaces_the_broker_password(self):
        code, old = self.new_station()
        connected = self.device(code, old)
        r = self.d.request("POST", "/api/v1/stations/%s/token" % code, token=self.admin)
        self.assertEqual(r.status, 200, r)
        new = r.json["device_token"]
        # The connection that used the old password is closed by the broker.
        wait_until(lambda: not connected.c.is_connected() or connected.connack not in (0, None),
                   10, what="the old session to be dropped")
        connected.c.loop_stop()
        self.assertIn(Client(self.broker.port, code, old).connect(), (4, 5))
        dev = self.device(code, new)
        try:
            self.barrier(dev, code, self.now - 500)
        finally:
            dev.close()

    def test_station_deletion_removes_the_broker_account(self):
        code, token = self.new_station()
        admin = self.broker.admin()
        try:
            self.assertIn(code, admin.clients())
            self.assertIn("station-" + code, admin.roles())
            r = self.d.request("DELETE", "/api/v1/stations/" + code, token=self.admin)
            self.assertEqual(r.status, 204, r)
            self.assertNotIn(code, admin.clients())
            self.assertNotIn("station-" + code, admin.roles())
        finally:
            admin.close()
        self.assertIn(Client(self.broker.port, code, token).connect(), (4, 5))

    def test_service_account_cannot_publish_as_a_station_or_administer(self):
        admin = self.broker.admin()
        try:
            acls = admin.role_acls("sinergi.service")
            self.assertNotIn("$CONTROL/dynamic-security/#", [a["topic"] for a in acls])
            self.assertNotIn(("publishClientSend", "sinergi/ingest/#"),
                             [(a["acltype"], a["topic"]) for a in acls])
        finally:
            admin.close()


class MqttRestartTest(unittest.TestCase, MqttEnv):
    """Each test stops or kills the daemon: one environment per test."""

    def setUp(self):
        self.start_env(max_queued=getattr(self, "max_queued", None))
        self.now = int(time.time())

    def tearDown(self):
        self.stop_env()

    def restart(self):
        self.d.start()

    def test_qos1_burst_while_sinergi_is_down_is_delivered_after_restart(self):
        code, token = self.new_station()
        dev = self.device(code, token)
        try:
            self.assertEqual(self.d.stop(), 0)
            n, t0 = 3000, self.now - 3600
            infos = [dev.publish("sinergi/ingest/" + code, senml(code, t0 + i, i / 1000.0), 1)
                     for i in range(n)]
            for info in infos:
                info.wait_for_publish(30)
            self.assertTrue(all(i.is_published() for i in infos))
            self.restart()
            pts = self.wait_points(code, t0, t0 + n, n, timeout=60)
            self.assertEqual(len(pts), n)
            m = metrics(self.d)
            self.assertEqual(m["sinergi_mqtt_broker_dropped_messages"], 0)
            self.assertEqual(m["sinergi_mqtt_readings_stored_total"], n)
        finally:
            dev.close()

    def test_spool_left_by_a_crash_is_replayed_at_start(self):
        code, token = self.new_station()
        self.d.stop()
        t = self.now - 700
        os.makedirs(self.spool, exist_ok=True)

        def record(c, payload):
            c, payload = c.encode(), payload.encode()
            lens = struct.pack("<II", len(c), len(payload))
            crc = zlib.crc32(lens + c + payload)
            return struct.pack("<IIII", 0x314C5053, crc, len(c), len(payload)) + c + payload

        seg = os.path.join(self.spool, "seg-%020d.spool" % 7)
        good = record(code, senml(code, t, 1.23)) + record(code, senml(code, t + 1, 1.24))
        with open(seg, "wb") as f:  # two whole records, then one cut short by the "crash"
            f.write(good + record(code, senml(code, t + 2, 9.99))[:-5])
        self.restart()
        # Replay happens before the daemon serves: the readings are there at once.
        self.assertEqual([p["v"] for p in self.points(code, t - 1, t + 5)], [1.23, 1.24])
        self.assertFalse(os.path.exists(seg), "a replayed segment must be deleted")
        self.assertIn("event=mqtt_spool_torn", self.d.log_text())
        m = metrics(self.d)
        self.assertEqual(m["sinergi_mqtt_spool_replayed_messages_total"], 2)

    def test_sinergi_starts_without_the_broker_and_catches_up(self):
        self.d.stop()
        self.broker.stop()
        self.restart()  # serves HTTP although the broker is down
        code, token = self.new_station()  # queued for the broker; HTTP does not wait for it
        self.assertIn("event=mqtt_account_deferred station=" + code, self.d.log_text())
        self.broker.start()

        def connected():
            c = Client(self.broker.port, code, token)
            return c if c.connect() == 0 else None
        dev = wait_until(connected, 30, interval=0.5, what="the deferred account on the broker")
        try:
            dev.publish_acked("sinergi/ingest/" + code, senml(code, self.now - 10, 1.0))
            self.wait_points(code, self.now - 10, self.now - 10, 1)
        finally:
            dev.close()

    def test_ingest_resumes_after_a_broker_restart(self):
        code, token = self.new_station()
        self.broker.stop()
        self.broker.start()  # its persistence keeps sinergi's session and the accounts
        dev = wait_until(lambda: (lambda c: c if c.connect() == 0 else None)(
            Client(self.broker.port, code, token)), 30, interval=0.5, what="device reconnect")
        try:
            for i in range(20):
                dev.publish_acked("sinergi/ingest/" + code, senml(code, self.now - 100 + i, 1.0))
            self.wait_points(code, self.now - 100, self.now, 20)
        finally:
            dev.close()

    def test_reconcile_removes_accounts_of_deleted_stations(self):
        code, _ = self.new_station()
        admin = self.broker.admin()
        try:
            # An account left behind (the station was deleted while sinergi could not reach the
            # broker): removed at the next start. Accounts sinergi does not manage stay.
            admin.dynsec({"command": "createRole", "rolename": "station-ghost-1"},
                         {"command": "createClient", "username": "ghost-1", "password": "x" * 20,
                          "roles": [{"rolename": "station-ghost-1"}]},
                         {"command": "createClient", "username": "operator-tool",
                          "password": "y" * 20})
            self.d.stop()
            self.restart()
            wait_until(lambda: "ghost-1" not in admin.clients(), 15,
                       what="the orphan account to be deleted")
            self.assertNotIn("station-ghost-1", admin.roles())
            self.assertIn("operator-tool", admin.clients())
            self.assertIn(code, admin.clients())
        finally:
            admin.close()

    def test_kill9_during_a_qos1_stream_loses_and_duplicates_nothing(self):
        code, token = self.new_station()
        dev = self.device(code, token)
        n, t0, rate = 3000, self.now - 3 * 3600, 600.0
        published = []
        infos = {}

        def publish():
            start = time.monotonic()
            for i in range(n):
                # A device's pace (a rate, not a wait): the stream spans the kills below.
                ahead = start + i / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
                infos[i] = dev.publish("sinergi/ingest/" + code, senml(code, t0 + i, i / 1000.0),
                                       1)
                published.append(i)

        pub = threading.Thread(target=publish, daemon=True)
        try:
            pub.start()
            for k in (1, 2, 3):
                wait_until(lambda: len(published) >= k * n // 4, 60,
                           what="%d readings published" % (k * n // 4))
                self.d.kill9()
                self.restart()
            pub.join(60)
            self.assertFalse(pub.is_alive())
            for info in infos.values():
                info.wait_for_publish(30)
            acked = [i for i, info in infos.items() if info.is_published()]
            self.assertEqual(len(acked), n, "the broker acknowledged every reading")
            pts = self.wait_points(code, t0, t0 + n, len(acked), timeout=90)
            # Exactly once: one point per time, each with the value sent at that time.
            self.assertEqual(len(pts), n)
            self.assertEqual([p["v"] for p in pts], [i / 1000.0 for i in range(n)])
            log = self.d.log_text()
            self.assertNotIn("level=error", log)
            # Every spool segment is deleted once its messages are committed.
            wait_until(lambda: not [f for f in os.listdir(self.spool) if f.endswith(".spool")],
                       15, what="the spool to empty")
        finally:
            dev.close()


class MqttDropsTest(unittest.TestCase, MqttEnv):
    """A broker with a small queue: what it drops while sinergi is away shows on /metrics."""

    def setUp(self):
        self.start_env(max_queued=50)
        self.now = int(time.time())

    def tearDown(self):
        self.stop_env()

    def test_messages_the_broker_drops_are_counted(self):
        code, token = self.new_station()
        dev = self.device(code, token)
        mon = self.broker.admin()  # the broker's clock: $SYS/broker/uptime, once per interval
        try:
            self.assertLess(mon.subscribe("$SYS/broker/uptime", 0), 128)

            def ticks():
                with mon.lock:
                    return sum(1 for t, _ in mon.messages if t == "$SYS/broker/uptime")
            self.d.stop()
            n, t0 = 400, self.now - 3600
            infos = [dev.publish("sinergi/ingest/" + code, senml(code, t0 + i, 1.0 + i / 1000.0),
                                 1) for i in range(n)]
            for info in infos:
                info.wait_for_publish(30)
            # sinergi stays away for three of the broker's $SYS intervals: a session that held
            # the drop counter's topic would have queued, dropped and counted its updates
            # (stored + dropped > n).
            seen = ticks()
            wait_until(lambda: ticks() >= seen + 3, 15,
                       what="three $SYS intervals of the broker with sinergi away")
            self.d.start()

            def settled():
                m = metrics(self.d)
                stored = m["sinergi_mqtt_readings_stored_total"]
                return m if stored + m["sinergi_mqtt_broker_dropped_messages"] == n else None
            m = wait_until(settled, 30, what="stored + dropped to account for every message")
            self.assertGreater(m["sinergi_mqtt_broker_dropped_messages"], 0)
            self.assertEqual(m["sinergi_mqtt_broker_dropped_known"], 1)
            self.assertLess(m["sinergi_mqtt_readings_stored_total"], n)
            self.assertIn("event=mqtt_broker_dropped", self.d.log_text())
        finally:
            dev.close()
            mon.close()


class SimulateTest(unittest.TestCase, MqttEnv):
    """`sinergi simulate` publishes the demo stations' readings over MQTT as each device."""

    @classmethod
    def setUpClass(cls):
        MqttEnv.start_env(cls)

    @classmethod
    def tearDownClass(cls):
        MqttEnv.stop_env(cls)

    def test_simulate_publishes_realistic_readings_with_staged_faults(self):
        stations = self.d.request("GET", "/api/v1/stations", token=self.admin).json
        demo = [s["code"] for s in stations if s["demo"]]
        self.assertIn("demo-pda-masamba", demo)
        start = int(time.time())
        p = self.d.cli("simulate", "--speed", "7200", "--duration", "3", "--seed", "7")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("published", p.stdout)
        m = re.search(r"published (\d+) readings; 0 not acknowledged", p.stdout)
        self.assertTrue(m, p.stdout)
        total = int(m.group(1))
        # 6 simulated hours, one reading per 10 minutes per station
        self.assertGreaterEqual(total, len(demo) * 30)
        frm = start - 7 * 3600

        def level_points(code):
            r = self.d.request("GET", "/api/v1/stations/%s/readings?from=%d&to=%d&step=raw"
                               % (code, frm, start + 60), token=self.admin)
            return r.json["points"]
        wait_until(lambda: sum(len(level_points(c)) for c in demo) >= total, 30,
                   what="every simulated reading to be stored")
        stuck = level_points("demo-pda-radda")
        spiky = level_points("demo-pda-masamba")
        rain = level_points("demo-arr-masamba")
        self.assertTrue(any("flat" in p.get("qc_tests", []) for p in stuck), stuck)
        self.assertTrue(any("spike" in p.get("qc_tests", []) for p in spiky), spiky)
        self.assertTrue(all(p["v"] >= 0 for p in rain))
        self.assertGreater(max(p["v"] for p in rain), 0, "the first storm reaches the gauge")
        levels = [p["v"] for p in level_points("demo-pda-rongkong")]
        self.assertGreater(max(levels) - min(levels), 0.05, "rivers move")
        # The simulator rotated the demo tokens and told the broker.
        self.assertIn("event=mqtt_account_set station=demo-pda-masamba", p.stderr)

    def test_simulate_without_a_broker_says_so(self):
        env = dict(self.d.env)
        env["SINERGI_MQTT_PORT"] = "1"
        p = subprocess.run([BIN, "simulate", "--duration", "1", "--db", self.d.db, "--data-dir",
                            DATA_DIR], capture_output=True, text=True, env=env, timeout=60)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("broker", p.stderr)


if __name__ == "__main__":
    unittest.main()
