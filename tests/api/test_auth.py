"""Identity over HTTP: sign-in, throttling, session expiry and revocation, cookies and CSRF,
cross-OPD refusals, no default password, and no secrets in the log."""
import datetime
import os
import time
import unittest

from tests.api.harness import Daemon, DaemonTest, wait_until

LOGIN = "/api/v1/auth/login"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/me"
TOKEN_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def parse_time(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def login_raw(d, username, password, headers=None):
    return d.request("POST", LOGIN, {"username": username, "password": password}, headers=headers)


def cookie(token):
    return {"Cookie": "sinergi_session=" + token}


class OwnDaemon:
    """Starts a daemon with `env` for one test and stops it (sanitizer check included)."""

    def start_daemon(self, env):
        d = Daemon(env=env).start()
        self.addCleanup(d.cleanup)
        return d


class AuthTest(DaemonTest, OwnDaemon):
    """One daemon with default settings. Fewer than 20 failed sign-ins happen here in all, so the
    per-address throttle (default 20) is not reached; the throttle tests start their own."""

    secrets = []  # every password and token this class used: none may reach the log

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.secrets.extend([cls.d.admin_password, cls.admin])

    def new_user(self, username, role="staff", opd="bpbd"):
        pw, tok = self.d.add_user(self.admin, username, role, opd)
        self.secrets.extend([pw, tok])
        return pw, tok

    def login(self, username, password):
        r = login_raw(self.d, username, password)
        self.assertEqual(r.status, 200, r)
        self.secrets.extend([password, r.json["token"], r.json["csrf_token"]])
        return r.json

    def me(self, token):
        return self.d.request("GET", ME, token=token)

    def assertSignedOut(self, token):
        self.assertError(self.me(token), 401, "unauthenticated")

    # -- sign-in ----------------------------------------------------------------------------
    def test_login_success_shape(self):
        pw, _ = self.new_user("au-shape", "operator", "pupr")
        before = time.time()
        r = login_raw(self.d, "au-shape", pw)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.header("Content-Type").startswith("application/json"))
        j = r.json
        self.secrets.extend([j["token"], j["csrf_token"]])
        self.assertEqual(set(j), {"token", "csrf_token", "expires_at", "idle_timeout_s", "user"})
        self.assertEqual(j["user"], {"username": "au-shape", "role": "operator", "opd": "pupr"})
        for key in ("token", "csrf_token"):
            self.assertGreaterEqual(len(j[key]), 43, key)  # >= 256 bits in base64url
            self.assertTrue(set(j[key]) <= TOKEN_CHARS, key)
        self.assertNotEqual(j["token"], j["csrf_token"])
        self.assertEqual(j["idle_timeout_s"], 1800)
        self.assertAlmostEqual(parse_time(j["expires_at"]), before + 43200, delta=5)
        c = r.header("Set-Cookie")
        self.assertTrue(c.startswith("sinergi_session=" + j["token"] + ";"), c)
        attrs = {a.strip().split("=")[0] for a in c.split(";")[1:]}
        self.assertTrue({"HttpOnly", "SameSite", "Path"} <= attrs, c)
        self.assertIn("SameSite=Strict", c)
        self.assertEqual(self.me(j["token"]).json["username"], "au-shape")
        # every sign-in is its own session
        self.assertNotEqual(self.login("au-shape", pw)["token"], j["token"])

    def test_wrong_password_is_401(self):
        pw, _ = self.new_user("au-wrong")
        r = login_raw(self.d, "au-wrong", pw + "x")
        self.assertError(r, 401, "unauthenticated")
        self.assertIsNone(r.header("Set-Cookie"))
        self.assertNotIn("token", r.json)

    def test_unknown_user_same_answer_as_wrong_password(self):
        pw, _ = self.new_user("au-known")
        wrong = login_raw(self.d, "au-known", "wrong-password-123")
        unknown = login_raw(self.d, "au-nobody", "wrong-password-123")
        self.assertError(wrong, 401, "unauthenticated")
        self.assertError(unknown, 401, "unauthenticated")
        self.assertEqual(wrong.json["error"]["message"], unknown.json["error"]["message"])

    def test_login_body_is_validated(self):
        for body in ({"username": "admin"}, {"password": "x" * 12}, {"username": 1, "password": 2},
                     {"username": "admin", "password": "x" * 12, "extra": 1}):
            with self.subTest(body=body):
                self.assertError(self.d.request("POST", LOGIN, body), 400, "invalid")

    def test_password_shorter_than_12_is_refused(self):
        body = {"username": "au-short", "password": "x" * 11, "role": "viewer", "opd": "dlh"}
        self.assertError(self.d.request("POST", "/api/v1/users", body, token=self.admin), 400,
                         "invalid")
        self.assertError(self.d.request("GET", "/api/v1/users/au-short", token=self.admin), 404)
        body["password"] = "x" * 12
        self.assertEqual(self.d.request("POST", "/api/v1/users", body, token=self.admin).status,
                         201)
        r = self.d.request("PATCH", "/api/v1/users/au-short", {"password": "y" * 11},
                           token=self.admin)
        self.assertError(r, 400, "invalid")
        self.login("au-short", "x" * 12)  # the refused change left the password as it was

    # -- sessions ---------------------------------------------------------------------------
    def test_logout_revokes_only_that_token(self):
        pw, first = self.new_user("au-logout")
        second = self.login("au-logout", pw)["token"]
        r = self.d.request("POST", LOGOUT, token=first)
        self.assertEqual(r.status, 204, r)
        self.assertIn("Max-Age=0", r.header("Set-Cookie") or "")
        self.assertSignedOut(first)
        self.assertIn("signed out", self.me(first).json["error"]["message"])
        self.assertError(self.d.request("POST", LOGOUT, token=first), 401, "unauthenticated")
        self.assertEqual(self.me(second).status, 200)

    def test_unknown_and_malformed_tokens_are_refused(self):
        for tok in ("A" * 43, "short", "x" * 500, self.admin[:-1] + "%"):
            with self.subTest(token=tok[:20]):
                self.assertSignedOut(tok)
        r = self.d.request("GET", ME, headers={"Authorization": "Basic YWRtaW46YWRtaW4="})
        self.assertError(r, 401, "unauthenticated")

    def test_password_change_by_admin_revokes_sessions(self):
        pw, first = self.new_user("au-passwd")
        second = self.login("au-passwd", pw)["token"]
        new_pw = "a-brand-new-password-42"
        self.secrets.append(new_pw)
        r = self.d.request("PATCH", "/api/v1/users/au-passwd", {"password": new_pw},
                           token=self.admin)
        self.assertEqual(r.status, 200, r)
        self.assertNotIn("password", r.json)
        self.assertNotIn("password_hash", r.json)
        self.assertSignedOut(first)
        self.assertSignedOut(second)
        self.assertError(login_raw(self.d, "au-passwd", pw), 401, "unauthenticated")
        self.assertEqual(self.me(self.login("au-passwd", new_pw)["token"]).status, 200)

    def test_role_and_opd_change_revoke_sessions(self):
        pw, tok = self.new_user("au-move")
        for change in ({"role": "viewer"}, {"opd": "dlh"}):
            with self.subTest(change=change):
                r = self.d.request("PATCH", "/api/v1/users/au-move", change, token=self.admin)
                self.assertEqual(r.status, 200, r)
                self.assertSignedOut(tok)
                j = self.login("au-move", pw)
                tok = j["token"]
                for k, v in change.items():
                    self.assertEqual(j["user"][k], v)
        # a display-name change is not a security change: the session stays
        r = self.d.request("PATCH", "/api/v1/users/au-move", {"display_name": "Moved"},
                           token=self.admin)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.me(tok).status, 200)

    def test_disabled_user_cannot_sign_in(self):
        pw, tok = self.new_user("au-disabled")
        r = self.d.request("PATCH", "/api/v1/users/au-disabled", {"disabled": True},
                           token=self.admin)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.json["disabled"])
        self.assertSignedOut(tok)
        r = login_raw(self.d, "au-disabled", pw)
        self.assertError(r, 401, "unauthenticated")
        self.assertIsNone(r.header("Set-Cookie"))
        self.d.request("PATCH", "/api/v1/users/au-disabled", {"disabled": False},
                       token=self.admin)
        self.login("au-disabled", pw)

    def test_deleted_user_sessions_end(self):
        pw, tok = self.new_user("au-deleted")
        r = self.d.request("DELETE", "/api/v1/users/au-deleted", token=self.admin)
        self.assertEqual(r.status, 204, r)
        self.assertSignedOut(tok)

    def test_admin_cannot_lock_themself_out(self):
        for change in ({"role": "viewer"}, {"disabled": True}):
            r = self.d.request("PATCH", "/api/v1/users/admin", change, token=self.admin)
            self.assertError(r, 409, "conflict")
        self.assertError(self.d.request("DELETE", "/api/v1/users/admin", token=self.admin), 409,
                         "conflict")
        self.assertEqual(self.me(self.admin).json["role"], "admin")

    # -- cookies and CSRF -------------------------------------------------------------------
    def test_cookie_authenticates_reads(self):
        pw, _ = self.new_user("au-cookie", "viewer", "dinkes")
        j = self.login("au-cookie", pw)
        r = self.d.request("GET", ME, headers=cookie(j["token"]))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["username"], "au-cookie")
        self.assertEqual(r.json["csrf_token"], j["csrf_token"])
        self.assertEqual(self.d.request("GET", "/api/v1/opds", headers=cookie(j["token"])).status,
                         200)
        # among other cookies too
        r = self.d.request("GET", ME, headers={
            "Cookie": "theme=dark; sinergi_session=%s; lang=id" % j["token"]})
        self.assertEqual(r.status, 200, r)
        self.assertError(self.d.request("GET", ME, headers=cookie("A" * 43)), 401,
                         "unauthenticated")

    def test_cookie_writes_need_csrf_token(self):
        j = self.login("admin", self.d.admin_password)
        tok, csrf = j["token"], j["csrf_token"]
        body = {"code": "au-csrf", "name": "CSRF test"}
        for h in ({}, {"X-CSRF-Token": ""}, {"X-CSRF-Token": "A" * len(csrf)},
                  {"X-CSRF-Token": self.login("admin", self.d.admin_password)["csrf_token"]}):
            with self.subTest(header=h):
                r = self.d.request("POST", "/api/v1/opds", body, headers=dict(cookie(tok), **h))
                self.assertError(r, 403, "forbidden")
                self.assertError(self.d.request("GET", "/api/v1/opds/au-csrf", token=tok), 404)
        r = self.d.request("POST", "/api/v1/opds", body,
                           headers=dict(cookie(tok), **{"X-CSRF-Token": csrf}))
        self.assertEqual(r.status, 201, r)
        for method, ok, b in (("PATCH", 200, {"description": "changed"}), ("DELETE", 204, None)):
            with self.subTest(method=method):
                r = self.d.request(method, "/api/v1/opds/au-csrf", b, headers=cookie(tok))
                self.assertError(r, 403, "forbidden")
                r = self.d.request(method, "/api/v1/opds/au-csrf", b,
                                   headers=dict(cookie(tok), **{"X-CSRF-Token": csrf}))
                self.assertEqual(r.status, ok, r)
        # a Bearer token is not sent by browsers on their own: it needs no CSRF header
        r = self.d.request("POST", "/api/v1/opds", body, token=tok)
        self.assertEqual(r.status, 201, r)

    def test_cookie_logout_needs_csrf_token(self):
        pw, _ = self.new_user("au-cookie-out", "viewer", "dispar")
        j = self.login("au-cookie-out", pw)
        r = self.d.request("POST", LOGOUT, headers=cookie(j["token"]))
        self.assertError(r, 403, "forbidden")
        self.assertEqual(self.me(j["token"]).status, 200)  # a forged sign-out did nothing
        r = self.d.request("POST", LOGOUT, headers=dict(cookie(j["token"]),
                                                         **{"X-CSRF-Token": j["csrf_token"]}))
        self.assertEqual(r.status, 204, r)
        self.assertSignedOut(j["token"])

    # -- cross-OPD --------------------------------------------------------------------------
    def test_staff_cannot_read_or_write_another_opds_users(self):
        bpbd_pw, _ = self.new_user("au-bpbd-staff", "staff", "bpbd")
        _, dlh = self.new_user("au-dlh-staff", "staff", "dlh")
        target = "/api/v1/users/au-bpbd-staff"
        self.assertError(self.d.request("GET", target, token=dlh), 404, "not_found")
        r = self.d.request("GET", "/api/v1/users?opd=bpbd", token=dlh)
        self.assertEqual(r.status, 200, r)
        self.assertNotIn("au-bpbd-staff", [u["username"] for u in r.json])
        writes = (("PATCH", target, {"display_name": "hijacked"}),
                  ("PATCH", target, {"password": "hijacked-password-1"}),
                  ("PATCH", target, {"disabled": True}),
                  ("DELETE", target, None),
                  ("POST", "/api/v1/users", {"username": "au-planted", "role": "staff",
                                             "opd": "bpbd", "password": "planted-password-1"}),
                  ("PATCH", "/api/v1/opds/bpbd", {"name": "hijacked"}))
        for method, path, body in writes:
            with self.subTest(method=method, body=body):
                self.assertError(self.d.request(method, path, body, token=dlh), 403, "forbidden")
        u = self.d.request("GET", target, token=self.admin).json
        self.assertEqual((u["display_name"], u["disabled"]), ("", False))
        self.login("au-bpbd-staff", bpbd_pw)
        self.assertError(self.d.request("GET", "/api/v1/users/au-planted", token=self.admin), 404)
        self.assertNotEqual(
            self.d.request("GET", "/api/v1/opds/bpbd", token=self.admin).json["name"], "hijacked")
        # staff may not make themselves admin either
        _, bpbd = self.new_user("au-bpbd-self", "staff", "bpbd")
        r = self.d.request("PATCH", "/api/v1/users/au-bpbd-self", {"role": "admin"}, token=bpbd)
        self.assertError(r, 403, "forbidden")

    # -- the log ----------------------------------------------------------------------------
    def test_log_holds_no_passwords_or_tokens(self):
        pw, tok = self.new_user("au-logcheck", "staff", "dinsos")
        j = self.login("au-logcheck", pw)
        self.assertError(login_raw(self.d, "au-logcheck", "not-the-password-" + pw), 401)
        self.secrets.append("not-the-password-" + pw)
        self.d.request("GET", ME, headers=cookie(j["token"]))
        self.d.request("GET", ME + "?token=" + tok)
        self.d.request("PATCH", "/api/v1/users/au-logcheck", {"password": pw + "-v2"},
                       token=self.admin)
        self.secrets.append(pw + "-v2")
        last = self.d.request("GET", "/healthz")
        rid = last.header("X-Request-Id")
        log = wait_until(lambda: rid in self.d.log_text() and self.d.log_text(),
                         what="the access log line of the last request")
        self.assertIn("event=http", log)
        for s in self.secrets:
            self.assertTrue(s and len(s) >= 12, "secret too short to search for")
            self.assertNotIn(s, log)
        # the printed admin password went to stdout, once
        printed = [l for l in self.d.stdout_lines if self.d.admin_password in l]
        self.assertEqual(len(printed), 1, self.d.stdout_lines)


class NoDefaultPasswordTest(unittest.TestCase, OwnDaemon):
    def test_only_the_printed_password_works(self):
        d = self.start_daemon({"SINERGI_LOGIN_FAIL_USER_MAX": "1000"})
        pw = d.admin_password
        self.assertTrue(pw and len(pw) >= 12, d.stdout_lines)
        guesses = [("admin", g) for g in ("admin", "password", "admin123", "administrator",
                                          "sinergi", "sinergi-admin", "changeme", "123456789012",
                                          "", pw.upper() if pw.upper() != pw else pw.lower())]
        guesses += [(u, pw) for u in ("root", "administrator", "sinergi", "Admin")]
        for user, guess in guesses:
            with self.subTest(user=user, guess=guess[:4]):
                r = login_raw(d, user, guess)
                self.assertIn(r.status, (400, 401), r)  # "" fails validation or sign-in
                self.assertNotIn("token", r.json or {})
        tok = d.login("admin", pw)
        users = d.request("GET", "/api/v1/users", token=tok).json
        self.assertEqual([u["username"] for u in users], ["admin"], "no other seeded account")

        # a second deployment gets a different password
        other = self.start_daemon({})
        self.assertTrue(other.admin_password)
        self.assertNotEqual(other.admin_password, pw)
        self.assertEqual(login_raw(other, "admin", pw).status, 401)

        # a restart on the same database prints no new password and keeps the old one
        d.stop()
        d.admin_password = None
        d.stdout_lines.clear()
        d.start()
        self.assertIsNone(d.admin_password, d.stdout_lines)
        d.login("admin", pw)
        for name in os.listdir(d.dir):
            if name.startswith("stderr."):
                with open(os.path.join(d.dir, name)) as f:
                    self.assertNotIn(pw, f.read(), name)


class ThrottleTest(unittest.TestCase, OwnDaemon):
    def test_per_account(self):
        d = self.start_daemon({"SINERGI_LOGIN_FAIL_USER_MAX": "3"})
        admin = d.admin_token()
        pw, _ = d.add_user(admin, "th-victim", "staff", "bpbd")
        other_pw, _ = d.add_user(admin, "th-bystander", "staff", "bpbd")
        for _ in range(3):
            self.assertEqual(login_raw(d, "th-victim", "wrong-password-00").status, 401)
        for guess in ("wrong-password-00", pw):  # even the right password is refused now
            with self.subTest(right=guess == pw):
                r = login_raw(d, "th-victim", guess)
                DaemonTest.assertError(self, r, 429, "rate_limited")
                retry = int(r.header("Retry-After"))
                self.assertTrue(0 < retry <= 900, retry)
                self.assertIn(str(retry), r.json["error"]["message"])
        # the account is throttled, not the address: another account signs in
        d.login("th-bystander", other_pw)

    def test_per_account_window_ends(self):
        d = self.start_daemon({"SINERGI_LOGIN_FAIL_USER_MAX": "2",
                               "SINERGI_LOGIN_WINDOW_S": "4"})
        pw, _ = d.add_user(d.admin_token(), "th-window", "viewer", "dlh")
        t0 = time.monotonic()
        for _ in range(2):
            self.assertEqual(login_raw(d, "th-window", "wrong-password-00").status, 401)
        r = login_raw(d, "th-window", pw)
        if time.monotonic() - t0 < 3:  # still inside the window on a slow machine
            self.assertEqual(r.status, 429, r)
            self.assertLessEqual(int(r.header("Retry-After")), 4)
        # refused attempts while throttled do not extend it: the right password gets in
        wait_until(lambda: login_raw(d, "th-window", pw).status == 200, timeout=15,
                   interval=0.25, what="the throttle window to end")

    def test_per_address(self):
        d = self.start_daemon({"SINERGI_LOGIN_FAIL_ADDR_MAX": "5",
                               "SINERGI_LOGIN_FAIL_USER_MAX": "100"})
        admin = d.admin_token()
        pw, _ = d.add_user(admin, "th-real", "staff", "bpbd")
        for i in range(5):
            r = login_raw(d, "th-spray-%d" % i, "spray-password-%d" % i)
            self.assertEqual(r.status, 401, r)
        # each guess names a new account, and claims another address (no proxy is trusted)
        r = login_raw(d, "th-spray-new", "spray-password-x",
                      headers={"X-Forwarded-For": "203.0.113.9"})
        DaemonTest.assertError(self, r, 429, "rate_limited")
        self.assertGreater(int(r.header("Retry-After")), 0)
        r = login_raw(d, "th-real", pw)
        DaemonTest.assertError(self, r, 429, "rate_limited")
        # sessions that exist keep working: the throttle guards sign-in only
        self.assertEqual(d.request("GET", ME, token=admin).status, 200)


class ExpiryTest(unittest.TestCase, OwnDaemon):
    def assertSignedOut(self, d, token, why):
        r = d.request("GET", ME, token=token)
        DaemonTest.assertError(self, r, 401, "unauthenticated")
        self.assertIn(why, r.json["error"]["message"])

    def test_idle_expiry(self):
        d = self.start_daemon({"SINERGI_SESSION_IDLE_S": "3"})
        admin = d.admin_token()
        pw, busy = d.add_user(admin, "ex-idle", "viewer", "dlh")
        r = login_raw(d, "ex-idle", pw)
        self.assertEqual(r.json["idle_timeout_s"], 3)
        idle = r.json["token"]
        # a session in use outlives the idle limit ...
        t0 = time.monotonic()

        def busy_for_5s():
            self.assertEqual(d.request("GET", ME, token=busy).status, 200)
            return time.monotonic() - t0 > 5

        wait_until(busy_for_5s, timeout=20, interval=0.25, what="5 s of use")
        # ... one left alone does not
        self.assertSignedOut(d, idle, "inactivity")
        # Asking with the token would refresh it, so wait on the clock: the server counts whole
        # seconds, so 4 s of rest is past a 3 s limit.
        last_use = time.monotonic()
        wait_until(lambda: time.monotonic() - last_use > 4.0, timeout=10, interval=0.1,
                   what="4 s without using the session")
        self.assertSignedOut(d, busy, "inactivity")

    def test_absolute_expiry(self):
        d = self.start_daemon({"SINERGI_SESSION_MAX_S": "3"})
        admin = d.admin_token()
        pw, _ = d.add_user(admin, "ex-max", "viewer", "dlh")
        before = time.time()
        r = login_raw(d, "ex-max", pw)
        tok = r.json["token"]
        self.assertAlmostEqual(parse_time(r.json["expires_at"]), before + 3, delta=2)
        self.assertIn("Max-Age=3", r.header("Set-Cookie"))
        t0 = time.monotonic()
        # used all the time, it still ends
        wait_until(lambda: d.request("GET", ME, token=tok).status == 401, timeout=15,
                   interval=0.2, what="the session to reach its limit")
        self.assertGreaterEqual(time.monotonic() - t0, 1.5)
        r = d.request("GET", ME, token=tok)
        DaemonTest.assertError(self, r, 401, "unauthenticated")
        msg = r.json["error"]["message"]
        self.assertIn("limit", msg)
        self.assertNotIn("inactivity", msg)
        self.assertNotIn("12-hour", msg)  # the limit here is 3 s: say no other number
        d.login("ex-max", pw)  # signing in again gives a new session


if __name__ == "__main__":
    unittest.main()
