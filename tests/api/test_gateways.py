"""Gateways against the real daemon: one token that ingests for every station of an OPD (a data
concentrator or a LoRaWAN network server forwarding many stations): create (token shown once),
OPD access for staff, a pack spanning stations stored with per-station live events, records of
another OPD's or an unknown station rejected one by one with the same reason, rotation and
deletion revoking the old token, and the audit trail.
"""
import time

from tests.api.test_sensors import SSE, SensorsBase


class GatewaysTest(SensorsBase):

    def gateway(self, code, opd="bpbd", token=None, status=201):
        r = self.d.request("POST", "/api/v1/gateways", {"code": code, "name": "TEST " + code,
                                                        "opd": opd}, token=token or self.admin)
        self.assertEqual(r.status, status, r)
        return r.json

    def test_a_pack_spanning_stations(self):
        self.create("gw-a")
        self.create("gw-b", kind="rain")
        self.create("gw-dlh", opd="dlh")
        gw = self.gateway("gw-bpbd-lora")
        token = gw["device_token"]
        self.assertEqual((gw["code"], gw["opd"]), ("gw-bpbd-lora", "bpbd"))
        # shown once: never in reads
        r = self.d.request("GET", "/api/v1/gateways", token=self.admin)
        self.assertEqual(r.status, 200, r)
        self.assertIn("gw-bpbd-lora", [g["code"] for g in r.json])
        self.assertNotIn(token, r.body)

        sse = SSE(self.d.port, self.admin, "?station=gw-a,gw-b")
        now = int(time.time())
        pack = [{"bt": now, "n": "gw-a:level", "u": "m", "v": 1.25},
                {"n": "gw-b:rain", "u": "mm", "v": 3.5},
                {"n": "gw-dlh:level", "u": "m", "v": 9},     # another OPD's station
                {"n": "gw-nope:level", "u": "m", "v": 9},    # no such station
                {"n": "gw-a:level", "u": "m", "t": -600, "v": 1.2}]
        res = self.ingest_ok(token, pack)
        self.assertEqual((res["stored"], res["duplicates"]), (3, 0), res)
        self.assertEqual([(x["index"], x["reason"]) for x in res["rejected"]],
                         [(2, "no station of this gateway's OPD has this code"),
                          (3, "no station of this gateway's OPD has this code")])
        # both stations' readings are stored, in time order
        pts = self.readings("gw-a", now - 3600, now + 60)["points"]
        self.assertEqual([p["v"] for p in pts], [1.2, 1.25])
        self.assertEqual([p["v"] for p in self.readings("gw-b", now - 3600, now + 60)["points"]],
                         [3.5])
        # one coalesced reading event per station
        by_station = {}
        for want in ("gw-a", "gw-b"):
            f = sse.wait_for(lambda f, w=want: f.get("event") == "reading" and
                             f["json"]["station"] == w, timeout=5)
            by_station[want] = f["json"]
        self.assertEqual(by_station["gw-a"]["values"]["level"]["v"], 1.25)
        self.assertEqual(by_station["gw-b"]["values"]["rain"]["v"], 3.5)
        self.assertEqual(by_station["gw-b"]["kind"], "rain")
        sse.close()
        # sent again: every reading a duplicate
        res = self.ingest_ok(token, pack)
        self.assertEqual((res["stored"], res["duplicates"]), (0, 3), res)
        # the station's own token still works; a station token cannot speak for another
        _, tok_c = self.create("gw-c")
        r = self.ingest(tok_c, [{"n": "gw-a:level", "u": "m", "v": 1}])
        self.assertEqual(r.json["rejected"][0]["reason"], "not this device's station")

    def test_rotate_and_delete_revoke_the_token(self):
        self.create("gw-r")
        old = self.gateway("gw-rot")["device_token"]
        pack = [{"n": "gw-r:level", "u": "m", "v": 1.0}]
        self.assertEqual(self.ingest_ok(old, pack)["stored"], 1)
        r = self.d.request("POST", "/api/v1/gateways/gw-rot/token", token=self.admin)
        self.assertEqual(r.status, 200, r)
        new = r.json["device_token"]
        self.assertNotEqual(new, old)
        self.assertError(self.ingest(old, pack), 401, "unauthenticated")
        self.assertEqual(self.ingest_ok(new, [{"n": "gw-r:level", "u": "m", "t": -60,
                                               "v": 1.1}])["stored"], 1)
        r = self.d.request("DELETE", "/api/v1/gateways/gw-rot", token=self.admin)
        self.assertEqual(r.status, 204, r)
        self.assertError(self.ingest(new, pack), 401, "unauthenticated")
        self.assertError(self.d.request("GET", "/api/v1/gateways/gw-rot", token=self.admin),
                         404, "not_found")
        # every write is in the audit log
        r = self.d.request("GET", "/api/v1/audit?object_type=gateway", token=self.admin)
        self.assertEqual(r.status, 200, r)
        actions = [e["action"] for e in r.json["items"] if e.get("object_id") == "gw-rot"]
        for a in ("gateway.create", "gateway.rotate_token", "gateway.delete"):
            self.assertIn(a, actions)

    def test_staff_touch_only_their_own_opd(self):
        _, staff_bpbd = self.d.add_user(self.admin, "gw-staff-bpbd", "staff", "bpbd")
        _, staff_dlh = self.d.add_user(self.admin, "gw-staff-dlh", "staff", "dlh")
        _, viewer = self.d.add_user(self.admin, "gw-viewer", "viewer", "bappeda")
        self.gateway("gw-own", token=staff_bpbd)
        r = self.d.request("POST", "/api/v1/gateways", {"code": "gw-x", "name": "x",
                                                        "opd": "bpbd"}, token=staff_dlh)
        self.assertError(r, 403, "forbidden")
        for method, path in (("GET", "/api/v1/gateways/gw-own"),
                             ("DELETE", "/api/v1/gateways/gw-own"),
                             ("POST", "/api/v1/gateways/gw-own/token")):
            self.assertError(self.d.request(method, path, token=staff_dlh), 404, "not_found")
        r = self.d.request("GET", "/api/v1/gateways", token=staff_dlh)
        self.assertEqual(r.status, 200, r)
        self.assertNotIn("gw-own", [g["code"] for g in r.json])
        r = self.d.request("GET", "/api/v1/gateways", token=staff_bpbd)
        self.assertIn("gw-own", [g["code"] for g in r.json])
        self.assertError(self.d.request("GET", "/api/v1/gateways", token=viewer), 403,
                         "forbidden")

    def test_invalid_input(self):
        for body, field in (({"code": "A B", "name": "x", "opd": "bpbd"}, "code"),
                            ({"code": "gw-v", "opd": "bpbd"}, "name"),
                            ({"code": "gw-v", "name": "x", "opd": "nope"}, "opd"),
                            ({"code": "gw-v", "name": "x", "opd": "bpbd", "extra": 1}, "extra")):
            r = self.d.request("POST", "/api/v1/gateways", body, token=self.admin)
            self.assertError(r, 400, "invalid")
            self.assertIn(field, r.json["error"]["message"])
        self.gateway("gw-dup")
        self.gateway("gw-dup", status=409)
