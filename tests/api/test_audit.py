"""The audit log over HTTP and from the command line: every write leaves one row naming who,
role, OPD, action, object, request id and client; failed writes leave none; admins filter and
page it; `sinergi audit verify` finds an edited, deleted or truncated row."""
import calendar
import json
import os
import re
import shutil
import sqlite3
import tempfile
import time
import unittest
import urllib.parse

from tests.api.checks import assert_error_shape
from tests.api.harness import Daemon, DaemonTest

ITEM_FIELDS = {"id", "at", "actor", "role", "opd", "action", "object_type", "object_id",
               "request_id", "client", "detail"}


def parse_at(s):
    return calendar.timegm(time.strptime(s, "%Y-%m-%dT%H:%M:%SZ"))


class AuditApiTest(DaemonTest):
    def audit(self, token=None, **filters):
        q = urllib.parse.urlencode(filters)
        return self.d.request("GET", "/api/v1/audit" + ("?" + q if q else ""),
                              token=token or self.admin)

    def items(self, **filters):
        r = self.audit(**filters)
        self.assertEqual(r.status, 200, r)
        for it in r.json["items"]:
            self.assertEqual(set(it), ITEM_FIELDS, it)
        return r.json["items"]

    def last_id(self):
        items = self.items(limit=1)
        return items[0]["id"] if items else 0

    def row_for(self, r, action, object_type, object_id, actor="admin", role="admin",
                opd="diskominfo"):
        """The audit row written by response `r`, checked field by field."""
        rid = r.header("X-Request-Id")
        rows = [it for it in self.items(action=action, object_type=object_type,
                                        object_id=object_id, limit=1000)
                if it["request_id"] == rid]
        self.assertEqual(len(rows), 1, "one %s row for request %s: %r" % (action, rid, rows))
        row = rows[0]
        self.assertEqual(row["actor"], actor, row)
        self.assertEqual(row["role"], role, row)
        self.assertEqual(row["opd"], opd, row)
        self.assertEqual(row["client"], "127.0.0.1", row)
        self.assertLess(abs(parse_at(row["at"]) - time.time()), 120, row)
        self.assertIsInstance(row["detail"], dict, row)
        return row

    def test_every_write_is_recorded(self):
        d, t = self.d, self.admin
        seen = []

        r = d.request("POST", "/api/v1/opds", {"code": "aud-opd", "name": "Audit OPD"}, token=t)
        self.assertEqual(r.status, 201, r)
        row = self.row_for(r, "opd.create", "opd", "aud-opd")
        self.assertEqual(row["detail"].get("name"), "Audit OPD")
        seen.append(row)

        r = d.request("PATCH", "/api/v1/opds/aud-opd", {"description": "changed"}, token=t)
        self.assertEqual(r.status, 200, r)
        seen.append(self.row_for(r, "opd.update", "opd", "aud-opd"))

        pw = "aud-user-password-1"
        r = d.request("POST", "/api/v1/users", {"username": "aud-user", "password": pw,
                                                "role": "staff", "opd": "aud-opd"}, token=t)
        self.assertEqual(r.status, 201, r)
        row = self.row_for(r, "user.create", "user", "aud-user")
        self.assertEqual(row["detail"], {"role": "staff", "opd": "aud-opd"})
        seen.append(row)

        r = d.request("PATCH", "/api/v1/users/aud-user", {"display_name": "Audit User"},
                      token=t)
        self.assertEqual(r.status, 200, r)
        seen.append(self.row_for(r, "user.update", "user", "aud-user"))

        r = d.request("POST", "/api/v1/auth/login", {"username": "aud-user", "password": pw})
        self.assertEqual(r.status, 200, r)
        user_token = r.json["token"]
        # The session id is the object; the actor is the user who signed in.
        rows = [it for it in self.items(action="auth.login", actor="aud-user")
                if it["request_id"] == r.header("X-Request-Id")]
        self.assertEqual(len(rows), 1, rows)
        login = self.row_for(r, "auth.login", "session", rows[0]["object_id"], actor="aud-user",
                             role="staff", opd="aud-opd")
        seen.append(login)

        r = d.request("POST", "/api/v1/auth/logout", token=user_token)
        self.assertEqual(r.status, 204, r)
        logout = self.row_for(r, "auth.logout", "session", login["object_id"],
                              actor="aud-user", role="staff", opd="aud-opd")
        seen.append(logout)

        r = d.request("DELETE", "/api/v1/users/aud-user", token=t)
        self.assertEqual(r.status, 204, r)
        seen.append(self.row_for(r, "user.delete", "user", "aud-user"))

        r = d.request("DELETE", "/api/v1/opds/aud-opd", token=t)
        self.assertEqual(r.status, 204, r)
        seen.append(self.row_for(r, "opd.delete", "opd", "aud-opd"))

        ids = [row["id"] for row in seen]
        self.assertEqual(ids, sorted(ids), "rows appear in the order of the writes")
        self.assertEqual(len(set(ids)), len(ids))

    def test_failed_writes_leave_no_row(self):
        d, t = self.d, self.admin
        _, staff = d.add_user(t, "aud-nowrite", "staff", "bpbd")
        before = self.last_id()
        attempts = [
            d.request("POST", "/api/v1/opds", {"code": "diskominfo", "name": "dup"}, token=t),
            d.request("POST", "/api/v1/opds", {"code": "x", "name": "too short code"}, token=t),
            d.request("POST", "/api/v1/opds", "{broken", token=t),
            d.request("PATCH", "/api/v1/opds/no-such-opd", {"name": "x"}, token=t),
            d.request("DELETE", "/api/v1/opds/no-such-opd", token=t),
            d.request("DELETE", "/api/v1/opds/bpbd", token=t),  # still has users: 409
            d.request("POST", "/api/v1/users", {"username": "aud-short", "password": "short",
                                                "role": "staff", "opd": "bpbd"}, token=t),
            d.request("POST", "/api/v1/users", {"username": "aud-nowrite",
                                                "password": "long-enough-password",
                                                "role": "staff", "opd": "bpbd"}, token=t),
            d.request("DELETE", "/api/v1/users/nobody-here", token=t),
            d.request("POST", "/api/v1/opds", {"code": "by-staff", "name": "x"}, token=staff),
            d.request("POST", "/api/v1/auth/login", {"username": "aud-nowrite",
                                                     "password": "wrong-password-xx"}),
        ]
        for r in attempts:
            self.assertGreaterEqual(r.status, 400, r)
        self.assertEqual(self.last_id(), before, "a refused write left an audit row")

    def test_filters(self):
        d, t = self.d, self.admin
        start = int(time.time()) - 2
        for code in ("flt-a", "flt-b"):
            r = d.request("POST", "/api/v1/opds", {"code": code, "name": code}, token=t)
            self.assertEqual(r.status, 201, r)
        pw, _ = d.add_user(t, "flt-user", "viewer", "flt-a")
        d.login("flt-user", pw)

        by_actor = self.items(actor="flt-user")
        self.assertEqual({it["action"] for it in by_actor}, {"auth.login"})
        self.assertEqual(len(by_actor), 2)  # add_user signs in once, then once more above

        by_opd = self.items(opd="flt-a")
        self.assertTrue(by_opd)
        self.assertTrue(all(it["opd"] == "flt-a" for it in by_opd), by_opd)

        creates = self.items(action="opd.create", actor="admin")
        self.assertTrue({"flt-a", "flt-b"} <= {it["object_id"] for it in creates})
        self.assertTrue(all(it["action"] == "opd.create" for it in creates))

        obj = self.items(object_type="opd", object_id="flt-b")
        self.assertEqual([it["action"] for it in obj], ["opd.create"])
        self.assertEqual(self.items(object_type="user", object_id="flt-b"), [])
        self.assertEqual(self.items(actor="nobody-at-all"), [])

        users = self.items(object_type="user")
        self.assertTrue(users and all(it["object_type"] == "user" for it in users))

        iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start))
        for since in (str(start), iso, time.strftime("%Y-%m-%dT%H:%M:%S+08:00",
                                                      time.gmtime(start + 8 * 3600))):
            with self.subTest(since=since):
                recent = self.items(**{"from": since, "object_id": "flt-a"})
                self.assertEqual([it["action"] for it in recent], ["opd.create"])
        self.assertEqual(self.items(**{"from": str(int(time.time()) + 3600)}), [])
        self.assertEqual(self.items(to="2001-01-01T00:00:00Z"), [])
        window = self.items(**{"from": str(start), "to": str(int(time.time()) + 5)})
        self.assertTrue(all(start <= parse_at(it["at"]) for it in window))

    def test_paging(self):
        d, t = self.d, self.admin
        for i in range(7):
            r = d.request("POST", "/api/v1/opds", {"code": "page-%d" % i, "name": "p"}, token=t)
            self.assertEqual(r.status, 201, r)
        everything = self.items(limit=1000)
        ids = [it["id"] for it in everything]
        self.assertEqual(ids, sorted(ids, reverse=True), "newest first")
        walked, before = [], None
        for _ in range(len(ids) + 2):
            q = {"limit": 3}
            if before:
                q["before_id"] = before
            r = self.audit(**q)
            self.assertEqual(r.status, 200, r)
            page = r.json["items"]
            self.assertLessEqual(len(page), 3)
            walked += [it["id"] for it in page]
            before = r.json.get("next_before_id")
            if before is None:
                break
            self.assertEqual(before, page[-1]["id"])
        self.assertEqual(walked, ids)
        self.assertEqual(len(self.items(limit=1)), 1)

    def test_bad_queries_are_400(self):
        for q in [{"limit": 0}, {"limit": 1001}, {"limit": "ten"}, {"limit": ""},
                  {"before_id": -1}, {"before_id": "x"}, {"from": "yesterday"},
                  {"to": "2026-13-01T00:00:00Z"}, {"from": "2026-01-01"}]:
            with self.subTest(q=q):
                assert_error_shape(self, self.audit(**q), 400, "invalid")

    def test_only_admins_read_the_log(self):
        d, t = self.d, self.admin
        for role in ("operator", "staff", "viewer"):
            with self.subTest(role=role):
                _, tok = d.add_user(t, "aud-" + role, role, "bpbd")
                assert_error_shape(self, self.audit(token=tok), 403, "forbidden")
        assert_error_shape(self, d.request("GET", "/api/v1/audit"), 401, "unauthenticated")

    def test_passwords_never_recorded(self):
        d, t = self.d, self.admin
        p1, p2, p3 = "first-Secret-7781", "second-Secret-7782", "third-Secret-7783"
        wrong = "wrong-Secret-7784"
        r = d.request("POST", "/api/v1/users", {"username": "aud-pw", "password": p1,
                                                "role": "staff", "opd": "dinkes"}, token=t)
        self.assertEqual(r.status, 201, r)
        r = d.request("PATCH", "/api/v1/users/aud-pw", {"password": p2}, token=t)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.row_for(r, "user.update", "user", "aud-pw")["detail"],
                         {"password": "changed"})
        d.login("aud-pw", p2)
        self.assertEqual(d.request("POST", "/api/v1/auth/login",
                                   {"username": "aud-pw", "password": wrong}).status, 401)
        d.cli("user", "passwd", "aud-pw", stdin=p3 + "\n", check=True)
        d.login("aud-pw", p3)

        api = json.dumps(self.items(limit=1000))
        db = sqlite3.connect("file:%s?mode=ro" % d.db, uri=True, timeout=10)
        try:
            raw = json.dumps(db.execute("SELECT * FROM audit_log").fetchall())
        finally:
            db.close()
        for secret in (p1, p2, p3, wrong, self.d.admin_password):
            self.assertNotIn(secret, api)
            self.assertNotIn(secret, raw)
            self.assertNotIn(secret, d.log_text())

    def test_command_line_writes_are_recorded_as_system(self):
        d = self.d
        d.cli("user", "add", "aud-cli", "--role", "viewer", "--opd", "dishub",
              stdin="cli-password-12345\n", check=True)
        rows = self.items(action="user.create", object_id="aud-cli")
        self.assertEqual(len(rows), 1, rows)
        row = rows[0]
        self.assertEqual((row["actor"], row["role"], row["request_id"], row["client"]),
                         ("system", "system", "cli", "local"), row)


class AuditVerifyTest(unittest.TestCase):
    """Tampering is done with sqlite3 on a stopped daemon's database, one copy per case."""

    @classmethod
    def setUpClass(cls):
        d = cls.d = Daemon().start()
        t = d.admin_token()
        for i in range(4):
            assert d.request("POST", "/api/v1/opds", {"code": "vfy-%d" % i, "name": "v"},
                             token=t).status == 201
            assert d.request("PATCH", "/api/v1/opds/vfy-%d" % i, {"name": "w"},
                             token=t).status == 200
        d.add_user(t, "vfy-user", "staff", "vfy-0")
        assert d.request("DELETE", "/api/v1/opds/vfy-3", token=t).status == 204
        running = d.cli("audit", "verify")
        assert running.returncode == 0, running.stdout + running.stderr
        rc = d.stop()
        assert rc == 0, rc
        db = sqlite3.connect(d.db)
        cls.nrows = db.execute("SELECT COUNT(*) FROM audit_log").fetchone()[0]
        db.close()
        assert cls.nrows >= 12, cls.nrows

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()

    def copy(self):
        """A daemon handle (never started) on a private copy of the stopped database."""
        work = tempfile.mkdtemp(prefix="sinergi-audit-")
        self.addCleanup(shutil.rmtree, work, True)
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(self.d.db + suffix):
                shutil.copy(self.d.db + suffix, os.path.join(work, "sinergi.db" + suffix))
        return Daemon(workdir=work)

    def tamper(self, *statements):
        c = self.copy()
        db = sqlite3.connect(c.db)
        for sql, args in statements:
            db.execute(sql, args)
        db.commit()
        db.close()
        return c.cli("audit", "verify")

    def assertTampered(self, p, rows):
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        m = re.search(r"TAMPERED at row (\d+)", p.stdout + p.stderr)
        self.assertIsNotNone(m, p.stdout + p.stderr)
        self.assertIn(int(m.group(1)), rows, p.stdout)

    def test_intact_log_verifies(self):
        p = self.copy().cli("audit", "verify")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("intact", p.stdout)
        self.assertIn("%d rows" % self.nrows, p.stdout)

    def test_edited_field_is_found(self):
        mid = self.nrows // 2
        edits = {"detail": '{"name":"forged"}', "actor": "mallory", "role": "viewer",
                 "opd": "dinsos", "action": "opd.read", "object_type": "user",
                 "object_id": "vfy-9", "request_id": "0000000000000000",
                 "client": "10.0.0.1", "hash": "0" * 64, "prev_hash": "f" * 64}
        for col, value in edits.items():
            with self.subTest(column=col):
                p = self.tamper(("UPDATE audit_log SET %s = ? WHERE id = ?" % col,
                                 (value, mid)))
                self.assertTampered(p, {mid})
        with self.subTest(column="at"):
            p = self.tamper(("UPDATE audit_log SET at = at - 86400 WHERE id = ?", (mid,)))
            self.assertTampered(p, {mid})

    def test_edit_of_the_first_and_last_rows_is_found(self):
        for row in (1, self.nrows):
            with self.subTest(row=row):
                p = self.tamper(("UPDATE audit_log SET actor = 'mallory' WHERE id = ?", (row,)))
                self.assertTampered(p, {row})

    def test_deleted_middle_row_is_found(self):
        mid = self.nrows // 2
        p = self.tamper(("DELETE FROM audit_log WHERE id = ?", (mid,)))
        self.assertTampered(p, {mid, mid + 1})

    def test_deleted_first_row_is_found(self):
        p = self.tamper(("DELETE FROM audit_log WHERE id = 1", ()))
        self.assertTampered(p, {1, 2})

    def test_deleted_last_row_is_found(self):
        p = self.tamper(("DELETE FROM audit_log WHERE id = ?", (self.nrows,)))
        self.assertTampered(p, {self.nrows})

    def test_deleted_tail_is_found(self):
        keep = self.nrows // 2
        p = self.tamper(("DELETE FROM audit_log WHERE id > ?", (keep,)))
        self.assertTampered(p, {keep + 1})

    def test_emptied_log_is_found(self):
        p = self.tamper(("DELETE FROM audit_log", ()))
        self.assertTampered(p, {1})

    def test_renumbered_rows_are_found(self):
        # Close the gap left by a deleted row by shifting the later ids down.
        mid = self.nrows // 2
        p = self.tamper(("DELETE FROM audit_log WHERE id = ?", (mid,)),
                        ("UPDATE audit_log SET id = id - 1 WHERE id > ?", (mid,)))
        self.assertTampered(p, {mid})

    def test_swapped_rows_are_found(self):
        a, b = 3, 4
        p = self.tamper(
            ("UPDATE audit_log SET id = -1 WHERE id = ?", (a,)),
            ("UPDATE audit_log SET id = ? WHERE id = ?", (a, b)),
            ("UPDATE audit_log SET id = ? WHERE id = -1", (b,)))
        self.assertTampered(p, {a, b})


if __name__ == "__main__":
    unittest.main()
