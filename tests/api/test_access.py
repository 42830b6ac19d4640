"""Access matrix: every route x every kind of caller, against the real daemon.

MATRIX below is the written access policy. The test fails when the server has a route the table
does not list, when the table lists a route the server lacks, when the server's declared roles
differ from the table, and when calling a route as a caller gives anything but the table's outcome.
"""
import itertools
import re
import unittest

from tests.api.harness import DaemonTest

# Outcomes: ALLOW = the call succeeds (the route's success status); 401 and 403 = refused with the
# error shape; HIDDEN = the caller may use the route but not another OPD's objects: a single object
# is answered 404 (so ids do not leak), a list is filtered to the caller's own OPD.
ALLOW, UNAUTH, FORBID, HIDDEN = "allow", 401, 403, "hidden"
# OTHER_OPD = creating an object for another OPD is refused (403); DEVICE = a route for devices
# (station device token, not a person's session): every session caller gets 401.
OTHER_OPD, DEVICE = "other-opd", "device"
A, U, F, H, O, D = ALLOW, UNAUTH, FORBID, HIDDEN, OTHER_OPD, DEVICE

CALLERS = ("anon", "admin", "operator", "staff_own", "staff_other", "viewer")

# The object under test belongs to OPD bpbd: staff_own is staff of bpbd, staff_other staff of dlh.
MATRIX = {
    # route                                     anon admin oper staff_own staff_other viewer
    ("GET", "/healthz"):                        (A,  A,    A,   A,        A,          A),
    ("GET", "/metrics"):                        (A,  A,    A,   A,        A,          A),
    ("GET", "/api/v1/routes"):                  (U,  A,    F,   F,        F,          F),
    ("POST", "/api/v1/auth/login"):             (A,  A,    A,   A,        A,          A),
    ("POST", "/api/v1/auth/logout"):            (U,  A,    A,   A,        A,          A),
    ("GET", "/api/v1/me"):                      (U,  A,    A,   A,        A,          A),
    ("GET", "/api/v1/opds"):                    (U,  A,    A,   A,        A,          A),
    ("POST", "/api/v1/opds"):                   (U,  A,    F,   F,        F,          F),
    ("GET", "/api/v1/opds/{code}"):             (U,  A,    A,   A,        A,          A),
    ("PATCH", "/api/v1/opds/{code}"):           (U,  A,    F,   F,        F,          F),
    ("DELETE", "/api/v1/opds/{code}"):          (U,  A,    F,   F,        F,          F),
    ("GET", "/api/v1/users"):                   (U,  A,    A,   A,        H,          F),
    ("POST", "/api/v1/users"):                  (U,  A,    F,   F,        F,          F),
    ("GET", "/api/v1/users/{username}"):        (U,  A,    A,   A,        H,          F),
    ("PATCH", "/api/v1/users/{username}"):      (U,  A,    F,   F,        F,          F),
    ("DELETE", "/api/v1/users/{username}"):     (U,  A,    F,   F,        F,          F),
    ("GET", "/api/v1/audit"):                   (U,  A,    F,   F,        F,          F),
    ("GET", "/api/v1/regions"):                 (A,  A,    A,   A,        A,          A),
    ("GET", "/api/v1/regions/{code}"):          (A,  A,    A,   A,        A,          A),
    ("GET", "/api/v1/rivers"):                  (A,  A,    A,   A,        A,          A),
    ("GET", "/api/v1/stations"):                (U,  A,    A,   A,        A,          A),
    ("POST", "/api/v1/stations"):               (U,  A,    F,   A,        O,          F),
    ("GET", "/api/v1/stations/latest"):         (U,  A,    A,   A,        A,          A),
    ("GET", "/api/v1/stations/{code}"):         (U,  A,    A,   A,        A,          A),
    ("PATCH", "/api/v1/stations/{code}"):       (U,  A,    F,   A,        H,          F),
    ("DELETE", "/api/v1/stations/{code}"):      (U,  A,    F,   A,        H,          F),
    ("POST", "/api/v1/stations/{code}/token"):  (U,  A,    F,   A,        H,          F),
    ("GET", "/api/v1/stations/{code}/readings"): (U, A,    A,   A,        A,          A),
    ("GET", "/api/v1/public/stations"):         (A,  A,    A,   A,        A,          A),
    ("POST", "/api/v1/ingest"):                 (D,  D,    D,   D,        D,          D),
    ("GET", "/api/v1/gateways"):                (U,  A,    A,   A,        H,          F),
    ("POST", "/api/v1/gateways"):               (U,  A,    F,   A,        O,          F),
    ("GET", "/api/v1/gateways/{code}"):         (U,  A,    A,   A,        H,          F),
    ("DELETE", "/api/v1/gateways/{code}"):      (U,  A,    F,   A,        H,          F),
    ("POST", "/api/v1/gateways/{code}/token"):  (U,  A,    F,   A,        H,          F),
    ("GET", "/api/v1/events"):                  (U,  A,    A,   A,        A,          A),
    ("GET", "/api/v1/alerts"):                  (U,  A,    A,   A,        A,          A),
    ("GET", "/api/v1/alerts/{id}"):             (U,  A,    A,   A,        A,          A),
    ("POST", "/api/v1/alerts/{id}/ack"):        (U,  A,    A,   A,        H,          F),
    ("POST", "/api/v1/alerts/{id}/shelve"):     (U,  A,    A,   A,        H,          F),
    ("GET", "/api/v1/stations/{code}/rules"):   (U,  A,    A,   A,        A,          A),
    ("PUT", "/api/v1/stations/{code}/rules/{rule}"): (U, A, F,  A,        H,          F),
    ("GET", "/cap/alerts.atom"):                (A,  A,    A,   A,        A,          A),
    ("GET", "/cap/alerts/{id}.xml"):            (A,  A,    A,   A,        A,          A),
    ("GET", "/publik"):                         (A,  A,    A,   A,        A,          A),
    ("GET", "/api/v1/webhooks"):                (U,  A,    F,   F,        F,          F),
    ("POST", "/api/v1/webhooks"):               (U,  A,    F,   F,        F,          F),
    ("DELETE", "/api/v1/webhooks/{id}"):        (U,  A,    F,   F,        F,          F),
    ("GET", "/"):                               (A,  A,    A,   A,        A,          A),
    ("GET", "/assets/{file}"):                  (A,  A,    A,   A,        A,          A),
}

# The signed-in callers: (username, role, OPD).
ACCOUNTS = {
    "admin": ("admin", "admin", "diskominfo"),  # the first-start account
    "operator": ("mx-operator", "operator", "pupr"),
    "staff_own": ("mx-staff-bpbd", "staff", "bpbd"),
    "staff_other": ("mx-staff-dlh", "staff", "dlh"),
    "viewer": ("mx-viewer", "viewer", "bappeda"),
}
OBJECT_OPD = "bpbd"
TARGET_USER = "mx-target-bpbd"


def station_body(code, opd=None):
    return {"code": code, "name": "DEMO matrix " + code, "kind": "water_level", "lat": -2.5569,
            "lon": 120.3304, "opd": opd or OBJECT_OPD, "interval_s": 600,
            "thresholds": {"waspada": 2.0, "siaga": 3.0, "awas": 4.0}, "demo": True}


def gateway_body(code, opd=None):
    return {"code": code, "name": "DEMO matrix " + code, "opd": opd or OBJECT_OPD}


def expected(route):
    return dict(zip(CALLERS, MATRIX[route]))


def declared_by_table(route):
    """The (roles, own_opd_only) that GET /api/v1/routes must report for `route`."""
    e = expected(route)
    for v in e.values():
        assert v in (A, U, F, H, O, D), (route, v)
    if e["anon"] == D:
        assert all(v == D for v in e.values()), route
        return {"device"}, set()
    assert (e["staff_own"] == F) == (e["staff_other"] == F), route
    if e["anon"] == A:
        assert all(v == A for v in e.values()), route
        return {"public"}, set()
    roles = set()
    for caller, role in (("admin", "admin"), ("operator", "operator"), ("staff_own", "staff"),
                         ("viewer", "viewer")):
        if e[caller] in (A, H, O):
            roles.add(role)
    own = {"staff"} if e["staff_other"] in (H, O) else set()
    return roles, own


def pattern_regex(pattern):
    return re.compile("^" + re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(pattern)) + "$")


class Call:
    """One request a caller makes on a route, and what to check after it.

    ok: the success status. fresh_session: sign the caller in anew for this call (logout).
    check(r): on success. hidden(r): for HIDDEN when the route answers a filtered 200.
    after_denied(): the refused call changed nothing. after_allowed(): the change happened.
    """

    def __init__(self, path, body=None, ok=200, fresh_session=False, check=None, hidden=None,
                 after_denied=None, after_allowed=None, stream=False, content_type=None):
        self.stream = stream  # an endless response (SSE): only the status and headers are read
        self.content_type = content_type
        self.path = path
        self.body = body
        self.ok = ok
        self.fresh_session = fresh_session
        self.check = check
        self.hidden = hidden
        self.after_denied = after_denied
        self.after_allowed = after_allowed


class AccessMatrixTest(DaemonTest):
    counter = itertools.count(1)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.passwords = {"admin": cls.d.admin_password}
        cls.tokens = {"anon": None, "admin": cls.admin}
        for caller, (username, role, opd) in ACCOUNTS.items():
            if caller == "admin":
                continue
            pw, tok = cls.d.add_user(cls.admin, username, role, opd)
            cls.passwords[caller] = pw
            cls.tokens[caller] = tok
        cls.d.add_user(cls.admin, TARGET_USER, "staff", OBJECT_OPD)
        r = cls.d.request("POST", "/api/v1/stations", station_body("mx-st-bpbd"), token=cls.admin)
        assert r.status == 201, r
        r = cls.d.request("POST", "/api/v1/gateways", gateway_body("mx-gw-bpbd"), token=cls.admin)
        assert r.status == 201, r
        cls.login_user = "mx-login"
        cls.login_password, _ = cls.d.add_user(cls.admin, cls.login_user, "viewer", "dinsos")

    # -- helpers ----------------------------------------------------------------------------
    def req(self, method, path, body=None, token=None):
        return self.d.request(method, path, body, token=token)

    def as_admin(self, method, path, body=None):
        return self.req(method, path, body, self.admin)

    def unique(self, prefix):
        return "%s-%d" % (prefix, next(self.counter))

    def fresh_opd(self):
        code = self.unique("mxo")
        r = self.as_admin("POST", "/api/v1/opds", {"code": code, "name": "Matrix " + code})
        self.assertEqual(r.status, 201, r)
        return code

    def fresh_user(self):
        """A user of OPD bpbd, so staff of bpbd own it and staff of dlh do not."""
        name = self.unique("mxu")
        r = self.as_admin("POST", "/api/v1/users",
                          {"username": name, "password": "pw-" + name + "-0123456789",
                           "role": "viewer", "opd": OBJECT_OPD, "display_name": "Before"})
        self.assertEqual(r.status, 201, r)
        return name

    def fresh_station(self):
        code = self.unique("mxs")
        r = self.as_admin("POST", "/api/v1/stations", station_body(code))
        self.assertEqual(r.status, 201, r)
        return code

    def fresh_gateway(self):
        code = self.unique("mxg")
        r = self.as_admin("POST", "/api/v1/gateways", gateway_body(code))
        self.assertEqual(r.status, 201, r)
        return code

    def check_gateway_list(self, r, caller):
        self.assertStatus(r, 200)
        if caller in ("staff_own", "staff_other"):
            self.assertTrue(all(g["opd"] == ACCOUNTS[caller][2] for g in r.json), r.json)
        self.assertEqual("mx-gw-bpbd" in [g["code"] for g in r.json], caller != "staff_other")

    def fresh_alert(self):
        """An open Waspada alert of a fresh bpbd station: a reading above its threshold."""
        code = self.unique("mxa")
        r = self.as_admin("POST", "/api/v1/stations", station_body(code))
        self.assertEqual(r.status, 201, r)
        r = self.d.request("POST", "/api/v1/ingest", [{"n": code + ":level", "v": 2.5}],
                           token=r.json["device_token"], content_type="application/senml+json")
        self.assertEqual(r.status, 200, r)
        r = self.as_admin("GET", "/api/v1/alerts?station=" + code)
        self.assertEqual(len(r.json), 1, r)
        return r.json[0]["id"]

    def assertStatus(self, r, status):
        self.assertEqual(r.status, status, r)

    def assertExists(self, path, yes=True):
        r = self.as_admin("GET", path)
        self.assertEqual(r.status, 200 if yes else 404, "%s: %r" % (path, r))
        return r

    # -- the request each route gets --------------------------------------------------------
    def call_for(self, route, caller):
        method, pattern = route
        me = ACCOUNTS.get(caller, (None,))[0]
        if route == ("GET", "/healthz"):
            return Call("/healthz", check=lambda r: self.assertEqual(r.json["status"], "ok"))
        if route == ("GET", "/metrics"):
            return Call("/metrics", check=lambda r: self.assertIn(
                "sinergi_http_requests_total", r.body))
        if route == ("GET", "/api/v1/routes"):
            return Call("/api/v1/routes", check=lambda r: self.assertIsInstance(r.json, list))
        if route == ("POST", "/api/v1/auth/login"):
            return Call(pattern, {"username": self.login_user, "password": self.login_password},
                        check=lambda r: self.assertEqual(r.json["user"]["username"],
                                                         self.login_user))
        if route == ("POST", "/api/v1/auth/logout"):
            return Call(pattern, ok=204, fresh_session=True)
        if route == ("GET", "/api/v1/me"):
            return Call(pattern, check=lambda r: self.assertEqual(r.json["username"], me))
        if route == ("GET", "/api/v1/opds"):
            return Call(pattern, check=lambda r: self.assertIn(
                OBJECT_OPD, [o["code"] for o in r.json]))
        if route == ("POST", "/api/v1/opds"):
            code = self.unique("mxn")
            path = "/api/v1/opds/" + code
            return Call(pattern, {"code": code, "name": "New " + code}, ok=201,
                        check=lambda r: self.assertEqual(r.json["code"], code),
                        after_denied=lambda: self.assertExists(path, False),
                        after_allowed=lambda: self.assertExists(path))
        if route == ("GET", "/api/v1/opds/{code}"):
            return Call("/api/v1/opds/" + OBJECT_OPD,
                        check=lambda r: self.assertEqual(r.json["code"], OBJECT_OPD))
        if route == ("PATCH", "/api/v1/opds/{code}"):
            path = "/api/v1/opds/" + self.fresh_opd()
            desc = "patched by " + caller
            return Call(path, {"description": desc},
                        check=lambda r: self.assertEqual(r.json["description"], desc),
                        after_denied=lambda: self.assertNotEqual(
                            self.assertExists(path).json["description"], desc))
        if route == ("DELETE", "/api/v1/opds/{code}"):
            path = "/api/v1/opds/" + self.fresh_opd()
            return Call(path, ok=204, after_denied=lambda: self.assertExists(path),
                        after_allowed=lambda: self.assertExists(path, False))
        if route == ("GET", "/api/v1/users"):
            return Call(pattern, check=lambda r: self.check_user_list(r, caller),
                        hidden=lambda r: self.check_user_list(r, caller))
        if route == ("POST", "/api/v1/users"):
            name = self.unique("mxc")
            path = "/api/v1/users/" + name
            return Call(pattern, {"username": name, "password": "pw-" + name + "-0123456789",
                                  "role": "viewer", "opd": OBJECT_OPD}, ok=201,
                        check=lambda r: self.assertEqual(r.json["opd"], OBJECT_OPD),
                        after_denied=lambda: self.assertExists(path, False),
                        after_allowed=lambda: self.assertExists(path))
        if route == ("GET", "/api/v1/users/{username}"):
            return Call("/api/v1/users/" + TARGET_USER,
                        check=lambda r: self.assertEqual(r.json["username"], TARGET_USER))
        if route == ("PATCH", "/api/v1/users/{username}"):
            path = "/api/v1/users/" + self.fresh_user()
            return Call(path, {"display_name": "After"},
                        check=lambda r: self.assertEqual(r.json["display_name"], "After"),
                        after_denied=lambda: self.assertEqual(
                            self.assertExists(path).json["display_name"], "Before"))
        if route == ("DELETE", "/api/v1/users/{username}"):
            path = "/api/v1/users/" + self.fresh_user()
            return Call(path, ok=204, after_denied=lambda: self.assertExists(path),
                        after_allowed=lambda: self.assertExists(path, False))
        if route == ("GET", "/api/v1/audit"):
            return Call(pattern, check=lambda r: self.assertIsInstance(r.json["items"], list))
        if route == ("GET", "/api/v1/regions"):
            return Call(pattern + "?parent=73.22", check=lambda r: self.assertTrue(r.json))
        if route == ("GET", "/api/v1/regions/{code}"):
            return Call("/api/v1/regions/73.22", check=lambda r: self.assertTrue(r.json))
        if route == ("GET", "/api/v1/rivers"):
            return Call(pattern, check=lambda r: self.assertIn(
                "Sungai Masamba", [p["river"] for p in r.json]))
        return self.call_for_sensors(route, caller)

    def call_for_sensors(self, route, caller):
        method, pattern = route
        st = "/api/v1/stations/mx-st-bpbd"
        if route == ("GET", "/api/v1/stations"):
            return Call(pattern, check=lambda r: self.assertIn(
                "mx-st-bpbd", [x["code"] for x in r.json]))
        if route == ("POST", "/api/v1/stations"):
            code = self.unique("mxn")
            path = "/api/v1/stations/" + code
            return Call(pattern, station_body(code), ok=201,
                        check=lambda r: self.assertTrue(r.json["device_token"]),
                        after_denied=lambda: self.assertExists(path, False),
                        after_allowed=lambda: self.assertExists(path))
        if route == ("GET", "/api/v1/stations/latest"):
            return Call(pattern, check=lambda r: self.assertIn(
                "mx-st-bpbd", [x["code"] for x in r.json["stations"]]))
        if route == ("GET", "/api/v1/stations/{code}"):
            return Call(st, check=lambda r: self.assertEqual(r.json["code"], "mx-st-bpbd"))
        if route == ("PATCH", "/api/v1/stations/{code}"):
            path = "/api/v1/stations/" + self.fresh_station()
            name = "DEMO patched by " + caller
            return Call(path, {"name": name},
                        check=lambda r: self.assertEqual(r.json["name"], name),
                        after_denied=lambda: self.assertNotEqual(
                            self.assertExists(path).json["name"], name))
        if route == ("DELETE", "/api/v1/stations/{code}"):
            path = "/api/v1/stations/" + self.fresh_station()
            return Call(path, ok=204, after_denied=lambda: self.assertExists(path),
                        after_allowed=lambda: self.assertExists(path, False))
        if route == ("POST", "/api/v1/stations/{code}/token"):
            return Call("/api/v1/stations/" + self.fresh_station() + "/token",
                        check=lambda r: self.assertTrue(r.json["device_token"]))
        if route == ("GET", "/api/v1/stations/{code}/readings"):
            return Call(st + "/readings?sensor=level",
                        check=lambda r: self.assertEqual(r.json["points"], []))
        if route == ("GET", "/api/v1/public/stations"):
            return Call(pattern, check=lambda r: self.assertNotIn(
                "opd", r.json["stations"][0]))
        if route == ("POST", "/api/v1/ingest"):
            return Call(pattern, [{"n": "mx-st-bpbd:level", "v": 1.0}],
                        content_type="application/senml+json")
        if route == ("GET", "/api/v1/gateways"):
            return Call(pattern, check=lambda r: self.check_gateway_list(r, caller),
                        hidden=lambda r: self.check_gateway_list(r, caller))
        if route == ("POST", "/api/v1/gateways"):
            code = self.unique("mxgn")
            path = "/api/v1/gateways/" + code
            return Call(pattern, gateway_body(code), ok=201,
                        check=lambda r: self.assertTrue(r.json["device_token"]),
                        after_denied=lambda: self.assertExists(path, False),
                        after_allowed=lambda: self.assertExists(path))
        if route == ("GET", "/api/v1/gateways/{code}"):
            return Call("/api/v1/gateways/mx-gw-bpbd",
                        check=lambda r: self.assertEqual(r.json["opd"], OBJECT_OPD))
        if route == ("DELETE", "/api/v1/gateways/{code}"):
            path = "/api/v1/gateways/" + self.fresh_gateway()
            return Call(path, ok=204, after_denied=lambda: self.assertExists(path),
                        after_allowed=lambda: self.assertExists(path, False))
        if route == ("POST", "/api/v1/gateways/{code}/token"):
            return Call("/api/v1/gateways/" + self.fresh_gateway() + "/token",
                        check=lambda r: self.assertTrue(r.json["device_token"]))
        if route == ("GET", "/api/v1/events"):
            return Call(pattern, stream=True, check=lambda r: self.assertTrue(
                r.header("Content-Type").startswith("text/event-stream")))
        if route == ("GET", "/cap/alerts.atom"):
            return Call(pattern, check=lambda r: self.assertTrue(
                r.header("Content-Type").startswith("application/atom+xml")))
        if route == ("GET", "/cap/alerts/{id}.xml"):  # version 1 of an alert: its CAP Alert
            return Call("/cap/alerts/%d-1.xml" % self.fresh_alert(), check=lambda r: (
                self.assertTrue(r.header("Content-Type").startswith("application/cap+xml")),
                self.assertIn("<msgType>Alert</msgType>", r.body)))
        return self.call_for_ews(route, caller)

    def call_for_ews(self, route, caller):
        method, pattern = route
        if route == ("GET", "/api/v1/alerts"):
            return Call(pattern, check=lambda r: self.assertIsInstance(r.json, list))
        if route == ("GET", "/api/v1/alerts/{id}"):
            return Call("/api/v1/alerts/%d" % self.fresh_alert(),
                        check=lambda r: self.assertTrue(r.json["history"]))
        if route == ("POST", "/api/v1/alerts/{id}/ack"):
            path = "/api/v1/alerts/%d" % self.fresh_alert()
            return Call(path + "/ack", {"note": "seen by " + caller},
                        check=lambda r: self.assertEqual(r.json["state"], "active_ack"),
                        after_denied=lambda: self.assertEqual(
                            self.assertExists(path).json["state"], "active_unack"))
        if route == ("POST", "/api/v1/alerts/{id}/shelve"):
            path = "/api/v1/alerts/%d" % self.fresh_alert()
            return Call(path + "/shelve", {"reason": "sensor maintenance", "minutes": 30},
                        check=lambda r: self.assertEqual(r.json["shelve_reason"],
                                                         "sensor maintenance"),
                        after_denied=lambda: self.assertIsNone(
                            self.assertExists(path).json["shelve_reason"]))
        if route == ("GET", "/api/v1/stations/{code}/rules"):
            return Call("/api/v1/stations/mx-st-bpbd/rules",
                        check=lambda r: self.assertIn("level", [x["rule"] for x in r.json["rules"]]))
        if route == ("PUT", "/api/v1/stations/{code}/rules/{rule}"):
            path = "/api/v1/stations/" + self.fresh_station() + "/rules"
            return Call(path + "/level", {"params": {"hold_s": 1800}},
                        check=lambda r: self.assertEqual(
                            r.json["rules"][0]["params"]["hold_s"], 1800),
                        after_denied=lambda: self.assertEqual(
                            self.assertExists(path).json["rules"][0]["params"]["hold_s"], 3600))
        return self.call_for_notify(route, caller)

    def webhook_descriptions(self):
        r = self.as_admin("GET", "/api/v1/webhooks")
        self.assertStatus(r, 200)
        return {w["description"]: w["id"] for w in r.json}

    def fresh_webhook(self):
        desc = self.unique("mxw")
        r = self.as_admin("POST", "/api/v1/webhooks",
                          {"url": "http://127.0.0.1:9/" + desc, "description": desc})
        self.assertEqual(r.status, 201, r)
        return r.json["id"], desc

    def call_for_notify(self, route, caller):
        method, pattern = route
        if route == ("GET", "/api/v1/webhooks"):
            self.fresh_webhook()
            return Call(pattern, check=lambda r: (
                self.assertTrue(r.json),
                self.assertFalse([w for w in r.json if "secret" in w], "a list shows secrets")))
        if route == ("POST", "/api/v1/webhooks"):
            desc = self.unique("mxw")
            return Call(pattern, {"url": "http://127.0.0.1:9/" + desc, "description": desc},
                        ok=201, check=lambda r: self.assertTrue(r.json["secret"]),
                        after_denied=lambda: self.assertNotIn(desc, self.webhook_descriptions()),
                        after_allowed=lambda: self.assertIn(desc, self.webhook_descriptions()))
        if route == ("DELETE", "/api/v1/webhooks/{id}"):
            wid, desc = self.fresh_webhook()
            return Call("/api/v1/webhooks/%d" % wid, ok=204,
                        after_denied=lambda: self.assertIn(desc, self.webhook_descriptions()),
                        after_allowed=lambda: self.assertNotIn(desc,
                                                               self.webhook_descriptions()))
        return self.call_for_publik(route, caller)

    def call_for_publik(self, route, caller):
        if route == ("GET", "/publik"):
            return Call("/publik", check=lambda r: (
                self.assertEqual(r.header("Content-Type"), "text/html; charset=utf-8"),
                self.assertIn("<h1>Status Banjir", r.body)))
        return self.call_for_web(route, caller)

    def call_for_web(self, route, caller):
        # the COC's files are public: the page signs in through the API
        if route == ("GET", "/"):
            return Call("/", check=lambda r: (
                self.assertEqual(r.header("Content-Type"), "text/html; charset=utf-8"),
                self.assertIn('id="login-form"', r.body)))
        if route == ("GET", "/assets/{file}"):
            return Call("/assets/app.css", check=lambda r: self.assertEqual(
                r.header("Content-Type"), "text/css; charset=utf-8"))
        return None

    def check_user_list(self, r, caller):
        self.assertStatus(r, 200)
        opds = {u["opd"] for u in r.json}
        names = {u["username"] for u in r.json}
        if caller in ("staff_own", "staff_other"):
            own = ACCOUNTS[caller][2]
            self.assertEqual(opds, {own}, "staff see only their own OPD's users")
            self.assertIn(ACCOUNTS[caller][0], names)
        else:
            self.assertGreater(len(opds), 1, "admin and operator see every OPD")
        self.assertEqual(TARGET_USER in names, caller != "staff_other")

    def send(self, method, call, token):
        if not call.stream:
            kw = {"content_type": call.content_type} if call.content_type else {}
            return self.d.request(method, call.path, call.body, token=token, **kw)
        # (streams below)
        from tests.api.harness import Response
        conn = self.d.connect(timeout=10)
        try:
            conn.request(method, call.path,
                         headers={"Authorization": "Bearer " + token} if token else {})
            r = conn.getresponse()
            body = r.read().decode() if r.status != 200 else ""
            return Response(r.status, r.getheaders(), body)
        finally:
            conn.close()

    # -- running one route as every caller --------------------------------------------------
    def token_for(self, caller, fresh):
        if caller == "anon" or not fresh:
            return self.tokens[caller]
        return self.d.login(ACCOUNTS[caller][0], self.passwords[caller])

    def run_route(self, route):
        self.assertIn(route, MATRIX)
        rx = pattern_regex(route[1])
        for caller, want in expected(route).items():
            with self.subTest(caller=caller, expect=want):
                call = self.call_for(route, caller)
                self.assertIsNotNone(call, "no request written for %s %s" % route)
                self.assertRegex(call.path.split("?")[0], rx)
                token = self.token_for(caller, call.fresh_session)
                r = self.send(route[0], call, token)
                if want == A:
                    self.assertStatus(r, call.ok)
                    if call.check:
                        call.check(r)
                    if call.after_allowed:
                        call.after_allowed()
                    if call.fresh_session:  # the signed-out session is refused from now on
                        self.assertError(self.req("GET", "/api/v1/me", token=token), 401,
                                         "unauthenticated")
                    continue
                if want == H and call.hidden:
                    call.hidden(r)
                    continue
                status, code = {U: (401, "unauthenticated"), F: (403, "forbidden"),
                                H: (404, "not_found"), O: (403, "forbidden"),
                                D: (401, "unauthenticated")}[want]
                self.assertError(r, status, code)
                if call.after_denied:
                    call.after_denied()
                if want == U:  # an unknown or malformed token is no better than none
                    for bogus in ("A" * 43, "not-a-token"):
                        self.assertError(self.req(route[0], call.path, call.body, bogus), 401,
                                         "unauthenticated")

    # -- the table against the server -------------------------------------------------------
    def server_routes(self):
        r = self.as_admin("GET", "/api/v1/routes")
        self.assertStatus(r, 200)
        routes = {(x["method"], x["pattern"]): x for x in r.json}
        self.assertEqual(len(routes), len(r.json), "a route is listed twice by the server")
        return routes

    def test_table_lists_exactly_the_server_routes(self):
        server = set(self.server_routes())
        table = set(MATRIX)
        missing = sorted(server - table)
        extra = sorted(table - server)
        self.assertFalse(missing, "routes without a row in MATRIX (add the access rule): %s"
                         % missing)
        self.assertFalse(extra, "MATRIX rows for routes the server does not have: %s" % extra)

    def test_declared_roles_match_table(self):
        for route, x in self.server_routes().items():
            if route not in MATRIX:
                continue  # reported by test_table_lists_exactly_the_server_routes
            with self.subTest(route=route):
                roles, own = declared_by_table(route)
                self.assertEqual(set(x["roles"]), roles)
                self.assertEqual(set(x["own_opd_only"]), own)

    def test_every_route_has_a_request(self):
        for route in MATRIX:
            with self.subTest(route=route):
                self.assertIsNotNone(self.call_for(route, "admin"))

    # -- cross-OPD details the matrix does not show -----------------------------------------
    def test_foreign_user_is_indistinguishable_from_absent(self):
        tok = self.tokens["staff_other"]
        foreign = self.req("GET", "/api/v1/users/" + TARGET_USER, token=tok)
        absent = self.req("GET", "/api/v1/users/mx-nobody-at-all", token=tok)
        self.assertError(foreign, 404, "not_found")
        self.assertError(absent, 404, "not_found")
        self.assertEqual(foreign.json["error"]["message"].replace(TARGET_USER, "X"),
                         absent.json["error"]["message"].replace("mx-nobody-at-all", "X"))

    def test_staff_cannot_list_another_opd_by_query(self):
        r = self.req("GET", "/api/v1/users?opd=" + OBJECT_OPD, token=self.tokens["staff_other"])
        self.assertStatus(r, 200)
        self.assertEqual({u["opd"] for u in r.json}, {"dlh"})
        self.assertNotIn(TARGET_USER, {u["username"] for u in r.json})
        # the same query from staff of bpbd and from the operator does return bpbd's users
        for caller in ("staff_own", "operator"):
            r = self.req("GET", "/api/v1/users?opd=" + OBJECT_OPD, token=self.tokens[caller])
            self.assertStatus(r, 200)
            self.assertEqual({u["opd"] for u in r.json}, {OBJECT_OPD})
            self.assertIn(TARGET_USER, {u["username"] for u in r.json})

    def test_path_encoding_does_not_bypass_own_opd(self):
        tok = self.tokens["staff_other"]
        encoded = "".join("%%%02X" % ord(c) for c in TARGET_USER)
        self.assertError(self.req("GET", "/api/v1/users/" + encoded, token=tok), 404,
                         "not_found")
        r = self.req("GET", "/api/v1/users/" + encoded, token=self.tokens["staff_own"])
        self.assertStatus(r, 200)
        self.assertEqual(r.json["username"], TARGET_USER)


def _route_test(route):
    def test(self):
        self.run_route(route)
    test.__doc__ = "%s %s as every caller" % route
    return test


for _route in MATRIX:
    _name = "test_route_%s_%s" % (_route[0], re.sub(r"[^a-z0-9]+", "_", _route[1]).strip("_"))
    setattr(AccessMatrixTest, _name, _route_test(_route))


if __name__ == "__main__":
    unittest.main()
