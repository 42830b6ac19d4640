"""Graceful shutdown: SIGTERM during a write load loses no acknowledged write, lets a request
already in flight finish with its response, and the daemon exits 0 within its shutdown
timeout; a restart on the same database finds every acknowledged object."""
import http.client
import json
import signal
import socket
import threading
import time
import unittest

from tests.api.harness import Daemon, wait_until
from tests.api.rawhttp import RawConnection

TIMEOUT_S = 5  # SINERGI_SHUTDOWN_TIMEOUT_S for these daemons


class ShutdownTest(unittest.TestCase):
    def daemon(self, timeout_s=TIMEOUT_S):
        d = Daemon(env={"SINERGI_SHUTDOWN_TIMEOUT_S": str(timeout_s)}).start()
        self.addCleanup(d.cleanup)
        return d

    def restart(self, d):
        """The same database, a new process; the admin password is only printed once."""
        d2 = Daemon(workdir=d.dir).start()
        self.addCleanup(d2.stop)
        self.assertIsNone(d2.admin_password, "admin recreated on restart")
        d2.admin_password = d.admin_password
        return d2

    def terminate(self, d, sig=signal.SIGTERM, timeout_s=TIMEOUT_S):
        """Sends `sig` and returns (exit code, seconds to exit)."""
        t0 = time.monotonic()
        rc = d.stop(sig, timeout=timeout_s + 20)
        return rc, time.monotonic() - t0

    def refuses_connections(self, d):
        try:
            socket.create_connection(("127.0.0.1", d.port), timeout=1).close()
            return False
        except OSError:
            return True

    def test_sigterm_during_load_loses_no_acknowledged_write(self):
        d = self.daemon()
        token = d.admin_token()
        acked, other, lock = [], [], threading.Lock()
        stop = threading.Event()

        def writer(n):
            conn = d.connect(timeout=15)
            i = 0
            try:
                while not stop.is_set():
                    code = "sd-%d-%d" % (n, i)
                    i += 1
                    try:
                        r = d.request("POST", "/api/v1/opds", {"code": code, "name": "load"},
                                      token=token, conn=conn)
                    except (OSError, http.client.HTTPException):
                        return  # the server has gone: nothing more to acknowledge
                    with lock:
                        (acked if r.status == 201 else other).append((code, r.status, r.body))
            finally:
                conn.close()

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
        for th in threads:
            th.start()
        try:
            wait_until(lambda: len(acked) >= 60, 30, what="60 acknowledged writes")
            rc, took = self.terminate(d)
        finally:
            stop.set()
            for th in threads:
                th.join(30)
        self.assertEqual(rc, 0, d.log_text()[-2000:])
        self.assertLess(took, TIMEOUT_S + 3, "shutdown took %.1fs" % took)
        # A write refused while stopping is fine (it was not acknowledged); anything else is not.
        self.assertTrue(all(status == 503 for _, status, _ in other), other[:5])
        self.assertIn("event=stopped inflight_left=0", d.log_text())

        d2 = self.restart(d)
        r = d2.request("GET", "/api/v1/opds", token=d2.admin_token())
        self.assertEqual(r.status, 200, r)
        stored = {o["code"] for o in r.json}
        lost = [code for code, _, _ in acked if code not in stored]
        self.assertEqual(lost, [], "%d of %d acknowledged writes lost" % (len(lost), len(acked)))
        p = d2.cli("audit", "verify")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_inflight_request_completes(self):
        d = self.daemon(timeout_s=20)
        token = d.admin_token()
        body = json.dumps({"code": "in-flight", "name": "started before SIGTERM"}).encode()
        with RawConnection(d.port, timeout=30) as c:
            c.send_head("POST", "/api/v1/opds", {"Content-Type": "application/json",
                                                 "Content-Length": str(len(body)),
                                                 "Expect": "100-continue",
                                                 "Authorization": "Bearer " + token})
            # 100 Continue: the server has the request and waits for its body.
            self.assertEqual(c.read_interim(), 100)
            t0 = time.monotonic()
            d.proc.send_signal(signal.SIGTERM)
            wait_until(lambda: "event=shutdown" in d.log_text(), 10, what="shutdown begun")
            wait_until(lambda: self.refuses_connections(d), 10, what="listener closed")
            self.assertIsNone(d.proc.poll(), "exited with a request in flight")
            c.send(body)
            r = c.read_response()
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["code"], "in-flight")
        self.assertEqual((r.header("Connection") or "").lower(), "close", r.headers)
        rc = d.stop(timeout=30)
        self.assertEqual(rc, 0)
        self.assertLess(time.monotonic() - t0, 15, "waited for the timeout, not the request")
        d2 = self.restart(d)
        r = d2.request("GET", "/api/v1/opds/in-flight", token=d2.admin_token())
        self.assertEqual(r.status, 200, r)

    def test_idle_keepalive_connection_does_not_delay_shutdown(self):
        d = self.daemon(timeout_s=20)
        conn = d.connect()
        try:
            self.assertEqual(d.request("GET", "/healthz", conn=conn).status, 200)
            rc, took = self.terminate(d, timeout_s=20)
        finally:
            conn.close()
        self.assertEqual(rc, 0)
        self.assertLess(took, 5, "an idle connection held shutdown for %.1fs" % took)

    def test_stalled_client_is_cut_off_at_the_timeout(self):
        d = self.daemon(timeout_s=2)
        with RawConnection(d.port, timeout=30) as c:
            c.send_head("POST", "/api/v1/opds", {"Content-Type": "application/json",
                                                 "Content-Length": "100",
                                                 "Expect": "100-continue"})
            self.assertEqual(c.read_interim(), 100)
            c.send(b'{"code":')  # and never the rest
            rc, took = self.terminate(d, timeout_s=2)
        self.assertEqual(rc, 0)
        self.assertGreaterEqual(took, 1.5, "did not wait for the in-flight request")
        self.assertLess(took, 2 + 4, "shutdown overran its timeout: %.1fs" % took)
        self.assertIn("inflight_left=1", d.log_text())

    def test_sigint_stops_cleanly(self):
        d = self.daemon()
        self.assertEqual(d.request("GET", "/healthz").status, 200)
        rc, took = self.terminate(d, signal.SIGINT)
        self.assertEqual(rc, 0)
        self.assertLess(took, TIMEOUT_S)


if __name__ == "__main__":
    unittest.main()
