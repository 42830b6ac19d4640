"""Smoke: the daemon starts, prints the admin password once, and the password signs in."""
from tests.api.harness import DaemonTest


class SmokeTest(DaemonTest):
    def test_health_and_login(self):
        r = self.d.request("GET", "/healthz")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json["status"], "ok")
        r = self.d.request("GET", "/api/v1/me", token=self.admin)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json["username"], "admin")
        self.assertEqual(r.json["role"], "admin")
        self.assertEqual(r.json["opd"], "diskominfo")
