"""Notifications over the real daemon: webhook targets (admin only, secrets shown once), and end
to end — a reading above a station's threshold raises an alert, and a webhook receiver gets each
alert version as one signed JSON POST, even when sinergi is killed with SIGKILL right after the
ingest returned and while another webhook hangs; MQTT subscribers get the retained warning.

Receivers deduplicate by delivery id ("<alert id>.<version>", header and body): delivery is at
least once, so a copy may come twice (same id, same bytes, same signature), never two different
bodies for one id. The outbox itself (retry, backoff, order, restart) is unit-tested in C
(tests/unit/test_notify.c).
"""
import hashlib
import hmac
import http.server
import json
import os
import shutil
import socket
import tempfile
import threading
import time
import unittest

from tests.api.harness import Daemon, DaemonTest, wait_until

TIMEOUT_MS = 3000  # notify_timeout_ms of these daemons: what a hanging webhook costs per attempt
NOTIFY_ENV = {"SINERGI_NOTIFY_TIMEOUT_MS": str(TIMEOUT_MS), "SINERGI_NOTIFY_BACKOFF_MIN_MS": "200",
              "SINERGI_NOTIFY_BACKOFF_MAX_S": "2"}
_codes = iter(range(1, 10_000))


class Receiver:
    """A webhook endpoint on 127.0.0.1 that records every POST and answers 200, or 503 while
    `refusing` is set (a gateway that is down)."""

    def __init__(self):
        self.posts = []  # (monotonic time, headers, raw body) of the POSTs answered 200
        self.refused = []  # the same, of those answered 503
        self.refusing = False
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with outer.lock:
                    status = 503 if outer.refusing else 200
                    (outer.refused if outer.refusing else outer.posts).append(
                        (time.monotonic(), dict(self.headers), body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/hook" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def received(self):
        with self.lock:
            return list(self.posts)

    def by_delivery(self):
        """delivery id -> every POST accepted with it."""
        out = {}
        for at, headers, body in self.received():
            out.setdefault(headers.get("X-Sinergi-Delivery"), []).append((at, headers, body))
        return out

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Hanging:
    """An endpoint that accepts TCP connections (the kernel does, from the backlog) and never
    answers a byte."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = "http://127.0.0.1:%d/hook" % self.sock.getsockname()[1]

    def close(self):
        self.sock.close()


def signature(secret, body):
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def station_body(code):
    return {"code": code, "name": "DEMO notify " + code, "kind": "water_level", "lat": -2.5569,
            "lon": 120.3304, "opd": "bpbd", "interval_s": 600,
            "thresholds": {"waspada": 2.0, "siaga": 3.0, "awas": 4.0}, "demo": True}


def senml(code, points):
    """points: [(seconds before now, level in m)], 10 minutes and at most 0.4 m apart, so QC
    passes them and no rate-of-rise alarm joins in."""
    now = time.time()
    return [{"n": code + ":level", "u": "m", "t": now - ago, "v": v} for ago, v in points]


class WebhookApiTest(DaemonTest):
    env = NOTIFY_ENV

    def create(self, body, token=None):
        return self.d.request("POST", "/api/v1/webhooks", body, token=token or self.admin)

    def listing(self):
        r = self.d.request("GET", "/api/v1/webhooks", token=self.admin)
        self.assertEqual(r.status, 200, r)
        return r.json

    def test_create_shows_the_secret_once_and_lists_never_do(self):
        r = self.create({"url": "https://sms.example.org/hook?token=gw-token-123", "tier": 1,
                         "public_only": True, "description": "SMS gateway BPBD"})
        self.assertEqual(r.status, 201, r)
        w = r.json
        self.assertEqual(len(w["secret"]), 43)
        self.assertEqual((w["tier"], w["public_only"], w["enabled"]), (1, True, True))
        self.assertEqual(w["created_by"], "admin")
        given = self.create({"url": "http://127.0.0.1:9/wa", "secret": "given-secret-0123456789"})
        self.assertEqual(given.status, 201, given)
        self.assertEqual(given.json["secret"], "given-secret-0123456789")
        listed = {x["id"]: x for x in self.listing()}
        self.assertIn(w["id"], listed)
        for x in listed.values():
            self.assertNotIn("secret", x)
            self.assertEqual(x["pending"], 0)
        text = json.dumps(listed)
        self.assertNotIn(w["secret"], text)
        self.assertNotIn("given-secret", text)
        # the audit row names the host, not the URL (which may hold a gateway's token)
        r = self.d.request("GET", "/api/v1/audit?action=webhook.create", token=self.admin)
        self.assertEqual(r.status, 200, r)
        self.assertNotIn("gw-token-123", r.body)
        self.assertNotIn(w["secret"], r.body)
        self.assertIn("sms.example.org", r.body)

    def test_delete(self):
        wid = self.create({"url": "http://127.0.0.1:9/x"}).json["id"]
        r = self.d.request("DELETE", "/api/v1/webhooks/%d" % wid, token=self.admin)
        self.assertEqual(r.status, 204, r)
        self.assertNotIn(wid, [x["id"] for x in self.listing()])
        self.assertError(self.d.request("DELETE", "/api/v1/webhooks/%d" % wid, token=self.admin),
                         404, "not_found")
        for bad in ("abc", "0", "-1", "1x", "99999999999999999999"):
            self.assertError(self.d.request("DELETE", "/api/v1/webhooks/" + bad,
                                            token=self.admin), 404, "not_found")

    def test_invalid_input_names_the_field(self):
        cases = [({"url": "ftp://example.org/x"}, "url"), ({"url": "not a url"}, "url"),
                 ({}, "url"), ({"url": "http://example.org/", "secret": "short"}, "secret"),
                 ({"url": "http://example.org/", "tier": 10}, "tier"),
                 ({"url": "http://example.org/", "public_only": "yes"}, "public_only"),
                 ({"url": "http://example.org/", "colour": "red"}, "colour"),
                 ({"url": "http://example.org/", "description": "x" * 501}, "description")]
        before = len(self.listing())
        for body, field in cases:
            with self.subTest(body=body):
                r = self.create(body)
                self.assertError(r, 400, "invalid")
                self.assertIn(field, r.json["error"]["message"])
        self.assertError(self.d.request("POST", "/api/v1/webhooks", "[1]", token=self.admin),
                         400, "invalid")
        self.assertEqual(len(self.listing()), before)


class EndToEnd:
    """A daemon with its own directory (restartable), a receiver and a hanging endpoint."""

    def start_env(self, env=None, workdir=None):
        self.receiver = Receiver()
        self.hanging = Hanging()
        self.d = Daemon(env=dict(NOTIFY_ENV, **(env or {})), workdir=workdir).start()
        self.admin = self.d.admin_token()
        r = self.d.request("GET", "/api/v1/routes", token=self.admin)
        if ("GET", "/api/v1/alerts") not in {(x["method"], x["pattern"]) for x in r.json}:
            self.stop_env()
            raise unittest.SkipTest("the rule engine (GET /api/v1/alerts) is not built in yet")

    def stop_env(self):
        try:
            self.d.cleanup()
        finally:
            self.receiver.close()
            self.hanging.close()

    def webhook(self, url, **kw):
        r = self.d.request("POST", "/api/v1/webhooks", dict(url=url, **kw), token=self.admin)
        self.assertEqual(r.status, 201, r)
        return r.json

    def station(self):
        code = "nt-%d" % next(_codes)
        r = self.d.request("POST", "/api/v1/stations", station_body(code), token=self.admin)
        self.assertEqual(r.status, 201, r)
        return code, r.json["device_token"]

    def ingest(self, token, code, points):
        r = self.d.request("POST", "/api/v1/ingest", senml(code, points), token=token,
                           content_type="application/senml+json")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["accepted"], len(points), r)

    def level_alert(self, code):
        [alert] = [a for a in self.alerts(code) if a["rule"] == "level"]
        return alert

    def alerts(self, code):
        r = self.d.request("GET", "/api/v1/alerts?state=all&station=" + code, token=self.admin)
        self.assertEqual(r.status, 200, r)
        return r.json

    def versions(self, alert_id):
        r = self.d.request("GET", "/api/v1/alerts/%d" % alert_id, token=self.admin)
        self.assertEqual(r.status, 200, r)
        return {h["version"]: h for h in r.json["history"]}

    def assertSignedCopies(self, copies, secret, delivery):
        """Every copy of one delivery: the same bytes, signed with the secret, ids agreeing."""
        bodies = {body for _, _, body in copies}
        self.assertEqual(len(bodies), 1, "two different bodies for delivery %s" % delivery)
        for _, headers, body in copies:
            self.assertEqual(headers["Content-Type"], "application/json")
            self.assertEqual(headers["X-Sinergi-Signature"], signature(secret, body))
            self.assertEqual(json.loads(body)["delivery_id"], delivery)


class WebhookEndToEndTest(unittest.TestCase, EndToEnd):
    def setUp(self):
        self.workdir = tempfile.mkdtemp(prefix="sinergi-test-")
        self.start_env(workdir=self.workdir)

    def tearDown(self):
        self.stop_env()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def test_signed_once_per_version_across_sigkill_and_beside_a_hanging_webhook(self):
        good = self.webhook(self.receiver.url, description="gateway")
        hang = self.webhook(self.hanging.url, description="hangs")
        code, token = self.station()

        # Waspada: delivered at once although the other webhook hangs for TIMEOUT_MS per attempt
        t0 = time.monotonic()
        self.ingest(token, code, [(3000, 2.5)])
        alert = self.level_alert(code)
        self.assertEqual((alert["level"], alert["version"]), (1, 1))
        first = "%d.%d" % (alert["id"], alert["version"])
        wait_until(lambda: first in self.receiver.by_delivery(), 10, what="the Waspada POST")
        at, headers, body = self.receiver.by_delivery()[first][0]
        self.assertLess(at - t0, TIMEOUT_MS / 1000.0, "the hanging webhook delayed the other")
        payload = json.loads(body)
        self.assertEqual(payload["alert"]["id"], alert["id"])
        self.assertEqual(payload["alert"]["version"], 1)
        self.assertEqual(payload["alert"]["level"], 1)
        self.assertEqual(payload["station"]["code"], code)

        # Siaga, decided and committed when the ingest returns; SIGKILL at once: before it was
        # sent, or after (then the receiver may get it twice and dedupes by id)
        self.ingest(token, code, [(2400, 2.9), (1800, 3.3)])
        self.d.kill9()
        kills = [time.monotonic()]
        self.d.start()  # same database: the admin's session is still valid
        alert = self.level_alert(code)
        self.assertEqual(alert["level"], 2)
        second = "%d.%d" % (alert["id"], alert["version"])
        wait_until(lambda: second in self.receiver.by_delivery(), 15,
                   what="the Siaga POST after the restart")

        # Awas while the gateway is down: certainly not delivered when sinergi is killed
        self.receiver.refusing = True
        self.ingest(token, code, [(1200, 3.7), (600, 4.1)])
        self.d.kill9()
        kills.append(time.monotonic())
        self.receiver.refusing = False
        self.d.start()
        alert = self.level_alert(code)
        self.assertEqual(alert["level"], 3)
        third = "%d.%d" % (alert["id"], alert["version"])
        wait_until(lambda: third in self.receiver.by_delivery(), 15,
                   what="the Awas POST after the restart")

        # every POST is a version of one of the station's alerts (the level alert, and the
        # operators' silent-station alarm of a gauge that had not reported for a while)
        got = self.receiver.by_delivery()
        histories = {a["id"]: self.versions(a["id"]) for a in self.alerts(code)}
        for delivery, copies in got.items():
            with self.subTest(delivery=delivery):
                aid, version = map(int, delivery.split("."))
                self.assertIn(aid, histories)
                self.assertIn(version, histories[aid])
                self.assertFalse(histories[aid][version]["backfill"])
                self.assertSignedCopies(copies + self.refused_copies(delivery), good["secret"],
                                        delivery)
        for delivery, level in ((first, 1), (second, 2), (third, 3)):
            self.assertEqual(json.loads(got[delivery][0][2])["alert"]["level"], level)
        # once per version; a second copy only of what a kill caught between the receiver's
        # answer and sinergi's record of it: the first before the kill, the second after
        for delivery, copies in got.items():
            with self.subTest(delivery=delivery):
                self.assertLessEqual(len(copies), 2)
                if len(copies) == 2:
                    self.assertTrue(any(copies[0][0] < k < copies[1][0] for k in kills),
                                    "delivery %s came twice without a kill between" % delivery)

        # the hanging webhook is still owed everything, and says why
        def owed():
            w = {x["id"]: x for x in self.d.request("GET", "/api/v1/webhooks",
                                                    token=self.admin).json}[hang["id"]]
            return w if w["pending"] >= len(got) and w["last_error"] else None
        w = wait_until(owed, 2 * TIMEOUT_MS / 1000.0 + 5, what="the hanging webhook's error")
        self.assertIn("Timeout", w["last_error"])

        # neither the secret nor the payload reaches the log
        log = ""
        for name in os.listdir(self.workdir):
            if name.startswith("stderr."):
                with open(os.path.join(self.workdir, name)) as f:
                    log += f.read()
        self.assertNotIn(good["secret"], log)
        self.assertNotIn('"delivery_id"', log)
        # (a line may be lost to SIGKILL between the record and the log: any delivery will do)
        self.assertRegex(log, r"event=webhook_delivered webhook=%d delivery=\d+\.\d+ "
                         % good["id"])

    def refused_copies(self, delivery):
        with self.receiver.lock:
            return [p for p in self.receiver.refused if p[1].get("X-Sinergi-Delivery") == delivery]


try:
    from tests.api.mqtt_broker import Broker, Client
except ImportError:  # no paho: the MQTT half is skipped below
    Broker = None


@unittest.skipUnless(Broker is not None and (shutil.which("mosquitto") or
                                             os.path.exists("/usr/sbin/mosquitto")),
                     "mosquitto and paho-mqtt are needed")
class MqttEndToEndTest(unittest.TestCase, EndToEnd):
    def setUp(self):
        self.broker = Broker().start()
        self.workdir = tempfile.mkdtemp(prefix="sinergi-test-")
        env = self.broker.daemon_env(os.path.join(self.workdir, "spool"))
        try:
            self.start_env(env=env, workdir=self.workdir)
        except BaseException:
            self.broker.cleanup()
            raise

    def tearDown(self):
        try:
            self.stop_env()
        finally:
            self.broker.cleanup()
            shutil.rmtree(self.workdir, ignore_errors=True)

    def subscriber(self):
        with open(self.broker.password_file) as f:
            c = Client(self.broker.port, "sinergi.admin", f.read().strip())
        self.assertEqual(c.connect(), 0)
        self.assertLess(c.subscribe("sinergi/alerts/#"), 128)
        return c

    def test_public_warning_is_retained_on_the_station_topic(self):
        code, token = self.station()
        live = self.subscriber()
        try:
            self.ingest(token, code, [(3000, 2.5)])
            alert = self.level_alert(code)
            want = "%d.%d" % (alert["id"], alert["version"])

            def message():
                with live.lock:
                    return [p for t, p in live.messages if t == "sinergi/alerts/" + code]
            [payload] = wait_until(message, 15, what="the MQTT warning")
            body = json.loads(payload)
            self.assertEqual(body["delivery_id"], want)
            self.assertEqual(body["alert"]["level"], 1)
        finally:
            live.close()
        # a siren that connects later gets it too: the message is retained
        late = self.subscriber()
        try:
            def retained():
                with late.lock:
                    return [p for t, p in late.messages if t == "sinergi/alerts/" + code]
            [payload] = wait_until(retained, 10, what="the retained warning")
            self.assertEqual(json.loads(payload)["delivery_id"], want)
        finally:
            late.close()


if __name__ == "__main__":
    unittest.main()
