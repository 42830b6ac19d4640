"""Errors over HTTP: malformed, deep, duplicate-keyed and oversized bodies, wrong content types,
unknown routes and methods each get the one error shape with the right status, and keep-alive
survives every error that does not need the connection closed."""
import json
import sqlite3
import unittest

from tests.api.checks import assert_error_shape
from tests.api.harness import DaemonTest, wait_until
from tests.api.rawhttp import RawConnection

DEPTH_MAX = 32  # the server's JSON nesting limit


def nested(depth, leaf="1"):
    """A JSON object whose innermost value sits `depth` containers deep (the object is one)."""
    return '{"code":"deep","name":"deep","description":' + "[" * (depth - 1) + leaf + \
        "]" * (depth - 1) + "}"


class ShapeMixin:
    def shape(self, r, status, code=None):
        return assert_error_shape(self, r, status, code)


class BodyErrorsTest(ShapeMixin, DaemonTest):
    def post(self, body, path="/api/v1/opds", **kw):
        return self.d.request("POST", path, body, token=self.admin, **kw)

    def test_malformed_json_is_400(self):
        for body in ['{bad', '{"code":', '{"code":"x",}', "nul", "{'code':'x'}", "{}}",
                     b'{"code":"\xff\xfe","name":"x"}', "\x00"]:
            with self.subTest(body=body):
                e = self.shape(self.post(body), 400, "invalid")
                self.assertIn("JSON", e["message"])

    def test_empty_body_is_400(self):
        r = self.d.request("POST", "/api/v1/opds", b"", token=self.admin)
        self.shape(r, 400, "invalid")

    def test_non_object_json_is_400(self):
        for body in ["[]", '[{"code":"x","name":"y"}]']:
            with self.subTest(body=body):
                e = self.shape(self.post(body), 400, "invalid")
                self.assertIn("object", e["message"])
        # Bare scalars are not JSON texts to the parser at all; still a 400 in the one shape.
        for body in ['"text"', "42", "null", "true"]:
            with self.subTest(body=body):
                self.shape(self.post(body), 400, "invalid")

    def test_too_deep_is_400(self):
        e = self.shape(self.post(nested(DEPTH_MAX + 1)), 400, "invalid")
        self.assertIn("nested", e["message"])
        e = self.shape(self.post(nested(500)), 400, "invalid")
        self.assertIn("nested", e["message"])
        # The login route reads JSON the same way, before any password check.
        deep = '{"username":' + "[" * 40 + "]" * 40 + ',"password":"x"}'
        e = self.shape(self.d.request("POST", "/api/v1/auth/login", deep), 400, "invalid")
        self.assertIn("nested", e["message"])

    def test_depth_at_the_limit_reaches_validation(self):
        # Exactly 32 deep passes the depth check; the handler then names the bad field.
        e = self.shape(self.post(nested(DEPTH_MAX)), 400, "invalid")
        self.assertNotIn("nested", e["message"])
        self.assertIn("description", e["message"])

    def test_brackets_inside_strings_do_not_count_as_depth(self):
        name = "[" * 60 + '\\"{' * 20 + "\\\\"  # 60 + 60 + 2 characters once decoded
        r = self.post('{"code":"brackets","name":"%s"}' % name)
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["name"], json.loads('"%s"' % name))

    def test_duplicate_keys_are_400(self):
        e = self.shape(self.post('{"code":"dup-key","name":"a","name":"b"}'), 400, "invalid")
        self.assertIn("name", e["message"])
        r = self.d.request("GET", "/api/v1/opds/dup-key", token=self.admin)
        self.shape(r, 404, "not_found")

    def test_unknown_fields_are_400(self):
        e = self.shape(self.post({"code": "unk-f", "name": "x", "colour": "red"}), 400, "invalid")
        self.assertIn("colour", e["message"])
        e = self.shape(self.post({"username": "unk-user", "password": "long-enough-pass",
                                  "role": "staff", "opd": "bpbd", "is_admin": True},
                                 "/api/v1/users"), 400, "invalid")
        self.assertIn("is_admin", e["message"])
        r = self.d.request("PATCH", "/api/v1/opds/bpbd", {"nme": "typo"}, token=self.admin)
        self.shape(r, 400, "invalid")
        r = self.d.request("PATCH", "/api/v1/users/admin", {"rol": "viewer"}, token=self.admin)
        self.shape(r, 400, "invalid")

    def test_wrong_types_are_400(self):
        for body in [{"code": 7, "name": "x"}, {"code": "ok-code", "name": ["x"]},
                     {"code": "ok-code", "name": None}, {"code": "ok-code"}]:
            with self.subTest(body=body):
                self.shape(self.post(body), 400, "invalid")

    def test_wrong_content_type_is_415(self):
        body = json.dumps({"code": "ctype", "name": "x"}).encode()
        for ctype in ["text/plain", "application/x-www-form-urlencoded", "application/jsonp",
                      "application/xml", "multipart/form-data; boundary=x", None]:
            with self.subTest(ctype=ctype):
                r = self.d.request("POST", "/api/v1/opds", body, token=self.admin,
                                   content_type=ctype)
                e = self.shape(r, 415, "unsupported_media_type")
                self.assertIn("application/json", e["message"])
        self.shape(self.d.request("GET", "/api/v1/opds/ctype", token=self.admin), 404)

    def test_json_content_type_variants_are_accepted(self):
        for i, ctype in enumerate(["application/json; charset=utf-8", "Application/JSON",
                                   "application/json;charset=UTF-8"]):
            with self.subTest(ctype=ctype):
                r = self.d.request("POST", "/api/v1/opds", {"code": "ct-ok-%d" % i, "name": "x"},
                                   token=self.admin, content_type=ctype)
                self.assertEqual(r.status, 201, r)

    def test_conflict_is_409(self):
        self.assertEqual(self.post({"code": "twice", "name": "x"}).status, 201)
        e = self.shape(self.post({"code": "twice", "name": "y"}), 409, "conflict")
        self.assertIn("twice", e["message"])
        self.d.add_user(self.admin, "holder", "staff", "twice")
        r = self.d.request("DELETE", "/api/v1/opds/twice", token=self.admin)
        self.shape(r, 409, "conflict")
        r = self.d.request("GET", "/api/v1/opds/twice", token=self.admin)
        self.assertEqual(r.status, 200, r)

    def test_unauthenticated_is_401(self):
        self.shape(self.d.request("GET", "/api/v1/me"), 401, "unauthenticated")
        self.shape(self.d.request("GET", "/api/v1/me", headers={"Authorization": "Bearer x"}),
                   401, "unauthenticated")
        self.shape(self.d.request("GET", "/api/v1/me", token="A" * 43), 401, "unauthenticated")
        self.shape(self.d.request("POST", "/api/v1/opds", {"code": "anon", "name": "x"}), 401,
                   "unauthenticated")


class RouteErrorsTest(ShapeMixin, DaemonTest):
    def test_unknown_route_is_404(self):
        for path in ["/nope", "/api/v1/nope", "/api/v2/opds", "/api/v1/opds/", "/api/v1/opds/a/b",
                     "/api/v1//opds", "/api/v1/opds/%00", "/" + "x" * 3000]:
            with self.subTest(path=path[:40]):
                self.shape(self.d.request("GET", path, token=self.admin), 404, "not_found")
        r = self.d.request("POST", "/api/v1/nothing", {"a": 1}, token=self.admin)
        self.shape(r, 404, "not_found")

    def test_nul_does_not_cut_a_name_short(self):
        # "bpbd%00x" must not be read as "bpbd", in the path or in the query.
        self.assertEqual(self.d.request("GET", "/api/v1/opds/bpbd", token=self.admin).status,
                         200)
        for path in ["/api/v1/opds/bpbd%00", "/api/v1/opds/bpbd%00x", "/api/v1/opds/%00",
                     "/api/v1/regions/73.22%00.99", "/healthz%00"]:
            with self.subTest(path=path):
                self.shape(self.d.request("GET", path, token=self.admin), 404, "not_found")
        r = self.d.request("GET", "/api/v1/regions?parent=73.22%00")
        self.shape(r, 404, "not_found")
        # %2500 decodes to a literal "%00"; a second decoding of the segment once crashed the
        # daemon (a NULL route parameter reached the handler).
        for path in ["/api/v1/regions/73.22%2500", "/api/v1/opds/x%2500",
                     "/api/v1/users/%2500", "/api/v1/regions/%25%30%30"]:
            with self.subTest(path=path):
                self.shape(self.d.request("GET", path, token=self.admin), 404, "not_found")
        self.assertEqual(self.d.request("GET", "/healthz").status, 200)
        r = self.d.request("GET", "/api/v1/audit?actor=admin%00x", token=self.admin)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["items"], [])

    def test_wrong_method_is_405_with_allow(self):
        cases = [("PUT", "/api/v1/opds", {"GET", "POST"}),
                 ("DELETE", "/api/v1/opds", {"GET", "POST"}),
                 ("POST", "/api/v1/opds/bpbd", {"GET", "PATCH", "DELETE"}),
                 ("DELETE", "/healthz", {"GET"}),
                 ("POST", "/api/v1/regions/73.22", {"GET"}),
                 ("PATCH", "/api/v1/audit", {"GET"}),
                 ("GET", "/api/v1/auth/login", {"POST"})]
        for method, path, allowed in cases:
            with self.subTest(method=method, path=path):
                r = self.d.request(method, path, {"x": 1} if method != "GET" else None,
                                   token=self.admin)
                self.shape(r, 405, "method_not_allowed")
                allow = r.header("Allow")
                self.assertIsNotNone(allow, r.headers)
                self.assertEqual({m.strip() for m in allow.split(",")}, allowed)

    def test_405_comes_before_authentication(self):
        # A caller learns nothing but the method list; still the same shape.
        r = self.d.request("DELETE", "/api/v1/users")
        self.shape(r, 405, "method_not_allowed")

    def test_every_response_has_a_unique_request_id(self):
        ids = set()
        for method, path in [("GET", "/healthz"), ("GET", "/metrics"), ("GET", "/nope"),
                             ("GET", "/api/v1/me"), ("GET", "/api/v1/regions")]:
            r = self.d.request(method, path)
            rid = r.header("X-Request-Id")
            self.assertTrue(rid, (method, path, r.headers))
            self.assertNotIn(rid, ids)
            ids.add(rid)


class BodyCapTest(ShapeMixin, DaemonTest):
    """A daemon with a small body cap (SINERGI_MAX_BODY), so the cap is cheap to cross."""
    CAP = 2048
    env = {"SINERGI_MAX_BODY": str(CAP), "SINERGI_LOGIN_FAIL_USER_MAX": "2"}

    def padded(self, size, code="pad"):
        """A valid OPD body of exactly `size` bytes."""
        base = json.dumps({"code": code, "name": "x", "description": ""})
        return base[:-2] + "x" * (size - len(base)) + '"}'

    def test_body_at_the_cap_is_read(self):
        body = self.padded(self.CAP, "at-cap")
        self.assertEqual(len(body), self.CAP)
        # The description field itself is capped at 1000 characters: a 400, not a 413.
        r = self.d.request("POST", "/api/v1/opds", body, token=self.admin)
        self.shape(r, 400, "invalid")
        self.assertIn("description", r.json["error"]["message"])

    def test_declared_length_over_cap_is_413_without_reading_the_body(self):
        with RawConnection(self.d.port) as c:
            c.send_head("POST", "/api/v1/opds", {"Content-Type": "application/json",
                                                 "Content-Length": str(self.CAP + 1),
                                                 "Authorization": "Bearer " + self.admin})
            r = c.read_response()  # answered before a single body byte is sent
        e = self.shape(r, 413, "too_big")
        self.assertIn(str(self.CAP), e["message"])

    def test_http_client_body_over_cap_is_413(self):
        r = self.d.request("POST", "/api/v1/opds", self.padded(self.CAP + 1), token=self.admin)
        self.shape(r, 413, "too_big")

    def test_huge_declared_length_is_413(self):
        for cl in [str(2 ** 31), str(2 ** 63), str(2 ** 64 - 1)]:
            with self.subTest(cl=cl), RawConnection(self.d.port) as c:
                c.send_head("POST", "/api/v1/opds", {"Content-Type": "application/json",
                                                     "Content-Length": cl})
                self.shape(c.read_response(), 413, "too_big")
        self.assertEqual(self.d.request("GET", "/healthz").status, 200)

    def test_unparseable_declared_length_is_refused(self):
        # libmicrohttpd answers broken framing itself, before any handler runs, so this body
        # is the library's HTML, not the API's shape: only the status and the close are ours
        # to check (a known limit of libmicrohttpd 0.9, which has no hook for it).
        for cl in ["99999999999999999999", "-1", "12 34"]:
            with self.subTest(cl=cl), RawConnection(self.d.port) as c:
                c.send_head("POST", "/api/v1/opds", {"Content-Type": "application/json",
                                                     "Content-Length": cl})
                r = c.read_response()
                self.assertIn(r.status, (400, 413), r)
                self.assertEqual((r.header("Connection") or "").lower(), "close", r.headers)
        self.assertEqual(self.d.request("GET", "/healthz").status, 200)

    def test_login_route_caps_at_4096(self):
        body = json.dumps({"username": "nobody", "password": "p" * 4100})
        self.shape(self.d.request("POST", "/api/v1/auth/login", body), 413, "too_big")
        # Under the route's cap but over nothing else: an ordinary failed sign-in.
        body = json.dumps({"username": "nobody-else", "password": "p" * 1000})
        self.assertLess(len(body), 4096)
        self.shape(self.d.request("POST", "/api/v1/auth/login", body), 401, "unauthenticated")

    def chunks(self, total, size=512):
        sent = 0
        while sent < total:
            n = min(size, total - sent)
            sent += n
            yield b"x" * n

    def test_chunked_body_over_cap_is_413(self):
        # No Content-Length: the server only learns the size while reading.
        conn = self.d.connect()
        try:
            conn.request("POST", "/api/v1/opds", body=self.chunks(self.CAP + 600),
                         headers={"Content-Type": "application/json",
                                  "Authorization": "Bearer " + self.admin},
                         encode_chunked=True)
            r = conn.getresponse()
            body = r.read().decode()
        finally:
            conn.close()
        self.assertEqual(r.status, 413, body)
        e = json.loads(body)["error"]
        self.assertEqual(e["code"], "too_big")
        self.assertEqual(e["request_id"], r.getheader("X-Request-Id"))

    def test_chunked_body_within_cap_is_read(self):
        body = json.dumps({"code": "chunky", "name": "in pieces"}).encode()
        conn = self.d.connect()
        try:
            conn.request("POST", "/api/v1/opds", body=iter([body[:7], body[7:20], body[20:]]),
                         headers={"Content-Type": "application/json",
                                  "Authorization": "Bearer " + self.admin},
                         encode_chunked=True)
            r = conn.getresponse()
            self.assertEqual(r.status, 201, r.read())
            r.read()
        finally:
            conn.close()

    def test_endless_chunked_body_is_cut_off(self):
        # A client that keeps streaming past the cap is answered or disconnected, never
        # buffered: the daemon stays healthy and the stream ends well before it would.
        answered = None
        with RawConnection(self.d.port, timeout=10) as c:
            c.send_head("POST", "/api/v1/opds", {"Content-Type": "application/json",
                                                 "Transfer-Encoding": "chunked"})
            chunk = b"1000\r\n" + b"y" * 4096 + b"\r\n"
            try:
                for _ in range(64 * 1024 * 1024 // 4096):  # at most 64 MiB
                    c.send(chunk)
                c.send(b"0\r\n\r\n")
                answered = c.read_response()
            except ConnectionError:
                pass
        if answered is not None:
            self.shape(answered, 413, "too_big")
        self.assertEqual(self.d.request("GET", "/healthz").status, 200)

    def test_rate_limited_is_429_with_retry_after(self):
        body = {"username": "throttled-one", "password": "wrong-password-1"}
        for _ in range(2):
            self.shape(self.d.request("POST", "/api/v1/auth/login", body), 401)
        r = self.d.request("POST", "/api/v1/auth/login", body)
        self.shape(r, 429, "rate_limited")
        self.assertGreater(int(r.header("Retry-After")), 0)


class KeepAliveTest(DaemonTest):
    """The libmicrohttpd trap: a response queued on the first callback (before the body is
    read) makes the server close the connection. Fifty mixed requests, errors included, must
    all travel over one socket."""

    def test_fifty_requests_on_one_connection(self):
        t = self.admin
        steps = [
            ("GET", "/healthz", None, None, 200),
            ("POST", "/api/v1/opds", {"code": "ka-{i}", "name": "keep"}, t, 201),
            ("POST", "/api/v1/opds", "{not json", t, 400),
            ("GET", "/api/v1/nope", None, t, 404),
            ("POST", "/api/v1/nope", {"x": "body to skip"}, t, 404),
            ("GET", "/api/v1/me", None, None, 401),
            ("POST", "/api/v1/opds", {"code": "ka-anon-{i}", "name": "x"}, None, 401),
            ("PUT", "/api/v1/opds", {"x": 1}, t, 405),
            ("POST", "/api/v1/opds", b"code=ka", t, 415),
            ("POST", "/api/v1/opds", {"code": "ka-{i}", "name": "again"}, t, 409),
            ("PATCH", "/api/v1/opds/ka-{i}", {"name": "patched"}, t, 200),
            ("POST", "/api/v1/opds", nested(40), t, 400),
            ("POST", "/api/v1/opds", [1, 2, 3], t, 400),
            ("GET", "/api/v1/regions/73.24", None, None, 404),
            ("DELETE", "/api/v1/opds/ka-{i}", None, t, 204),
            ("GET", "/api/v1/regions?parent=73.22", None, None, 200),
            ("GET", "/api/v1/audit?limit=5", None, t, 200),
        ]
        conn = self.d.connect()
        try:
            first = self.d.request("GET", "/healthz", conn=conn)
            self.assertEqual(first.status, 200)
            sock = conn.sock
            self.assertIsNotNone(sock)
            local = sock.getsockname()
            ids = {first.header("X-Request-Id")}
            done = 1
            while done < 50:
                method, path, body, token, want = steps[(done - 1) % len(steps)]
                i = done // len(steps)
                path = path.replace("{i}", str(i))
                if isinstance(body, dict):
                    body = {k: v.replace("{i}", str(i)) if isinstance(v, str) else v
                            for k, v in body.items()}
                ctype = "application/x-www-form-urlencoded" if want == 415 else \
                    "application/json"
                r = self.d.request(method, path, body, token=token, conn=conn,
                                   content_type=ctype)
                done += 1
                what = "request %d: %s %s -> %r" % (done, method, path, r)
                self.assertEqual(r.status, want, what)
                self.assertNotEqual((r.header("Connection") or "").lower(), "close", what)
                self.assertIs(conn.sock, sock, "connection replaced after " + what)
                self.assertEqual(conn.sock.getsockname(), local, what)
                rid = r.header("X-Request-Id")
                self.assertNotIn(rid, ids, what)
                ids.add(rid)
                if want >= 400:
                    assert_error_shape(self, r, want)
            self.assertEqual(done, 50)
        finally:
            conn.close()

    def test_http10_client_gets_close(self):
        # The other side of the same rule: a client that cannot keep-alive is not kept.
        with RawConnection(self.d.port) as c:
            c.send(b"GET /healthz HTTP/1.0\r\n\r\n")
            r = c.read_response()
            self.assertEqual(r.status, 200)
            wait_until(c.closed_by_peer, 5, what="HTTP/1.0 connection closed")


class InternalErrorTest(ShapeMixin, DaemonTest):
    """A database failure becomes a 500 that names the request id and nothing else: no SQL,
    no table names, no library text. The detail goes to the log under the request id."""

    def test_500_does_not_leak_sql(self):
        self.assertEqual(self.d.request("GET", "/api/v1/opds", token=self.admin).status, 200)
        db = sqlite3.connect(self.d.db, timeout=10)
        try:
            db.execute("ALTER TABLE opds RENAME TO opds_hidden_for_test")
            db.commit()
            r = self.d.request("GET", "/api/v1/opds", token=self.admin)
            e = self.shape(r, 500, "internal")
            rid = r.header("X-Request-Id")
            self.assertIn(rid, e["message"])
            low = r.body.lower()
            for leak in ["sql", "select", "table", "opds", "no such", "from ", ".db", "/"]:
                self.assertNotIn(leak, low.replace("/api", ""), r.body)
            wait_until(lambda: "req=%s event=internal_error" % rid in self.d.log_text(),
                       what="the internal error logged under its request id")
            m = self.d.request("GET", "/metrics").body
            line = [ln for ln in m.splitlines() if ln.startswith("sinergi_db_errors_total ")]
            self.assertEqual(len(line), 1, m[-500:])
            self.assertGreaterEqual(int(line[0].split()[1]), 1)
        finally:
            db.execute("ALTER TABLE opds_hidden_for_test RENAME TO opds")
            db.commit()
            db.close()
        self.assertEqual(self.d.request("GET", "/api/v1/opds", token=self.admin).status, 200)


if __name__ == "__main__":
    unittest.main()
