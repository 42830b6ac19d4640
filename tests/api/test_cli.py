"""The command-line contract other tools rely on: `user add` and `user passwd` read the password
from stdin, `migrate` is idempotent, `serve --help` lists every setting with its SINERGI_
variable, bad settings stop the daemon with a clear message; and /metrics counts requests."""
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import unittest

from tests.api.harness import BIN, DATA_DIR, Daemon, DaemonTest, free_port, wait_until


def run(args, env=None, stdin=None, timeout=30):
    """Runs the binary directly (no --db appended); a daemon that starts by mistake times out."""
    e = dict(os.environ)
    e.update(env or {})
    try:
        return subprocess.run([BIN] + list(args), input=stdin, capture_output=True, text=True,
                              env=e, timeout=timeout)
    except subprocess.TimeoutExpired as x:
        raise AssertionError("%s did not exit: %s" % (args, x.stdout)) from None


class UserCommandsTest(DaemonTest):
    def refused(self, p, *words):
        self.assertNotEqual(p.returncode, 0, p.stdout + p.stderr)
        for w in words:
            self.assertIn(w, p.stderr, p.stderr)
        self.assertNotIn("Traceback", p.stderr)
        self.assertNotIn("AddressSanitizer", p.stderr)

    def assertNoUser(self, username):
        r = self.d.request("GET", "/api/v1/users/" + username, token=self.admin)
        self.assertEqual(r.status, 404, r)

    def assertLoginFails(self, username, password):
        r = self.d.request("POST", "/api/v1/auth/login",
                           {"username": username, "password": password})
        self.assertEqual(r.status, 401, r)

    def test_user_add_reads_password_from_stdin(self):
        pw = "budi-password-2026"
        p = self.d.cli("user", "add", "cli-budi", "--role", "staff", "--opd", "bpbd",
                       "--display-name", "Budi Santoso", stdin=pw + "\n")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("cli-budi", p.stdout)
        self.assertNotIn(pw, p.stdout + p.stderr)
        token = self.d.login("cli-budi", pw)
        me = self.d.request("GET", "/api/v1/me", token=token).json
        self.assertEqual((me["username"], me["role"], me["opd"]), ("cli-budi", "staff", "bpbd"))
        u = self.d.request("GET", "/api/v1/users/cli-budi", token=self.admin).json
        self.assertEqual(u["display_name"], "Budi Santoso")

    def test_password_without_trailing_newline(self):
        pw = "no-newline-password"
        p = self.d.cli("user", "add", "cli-nonl", "--role", "viewer", "--opd", "dinsos",
                       stdin=pw)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.d.login("cli-nonl", pw)

    def test_short_password_is_refused(self):
        p = self.d.cli("user", "add", "cli-short", "--role", "staff", "--opd", "bpbd",
                       stdin="short-pw\n")
        self.refused(p, "password", "12")
        self.assertNoUser("cli-short")

    def test_missing_password_is_refused(self):
        p = self.d.cli("user", "add", "cli-nopw", "--role", "staff", "--opd", "bpbd", stdin="")
        self.refused(p, "password")
        self.assertNoUser("cli-nopw")

    def test_bad_role_and_opd_are_refused(self):
        pw = "a-good-long-password\n"
        for args, words in [
                (["--role", "superuser", "--opd", "bpbd"], ["--role"]),
                (["--opd", "bpbd"], ["--role"]),
                (["--role", "staff"], ["--opd"]),
                (["--role", "staff", "--opd", "no-such-opd"], ["no-such-opd"])]:
            with self.subTest(args=args):
                p = self.d.cli("user", "add", "cli-bad", *args, stdin=pw)
                self.refused(p, *words)
        self.assertNoUser("cli-bad")

    def test_bad_username_and_duplicate_are_refused(self):
        pw = "a-good-long-password\n"
        for name in ("x", "has space", "UPPER", "a" * 40):
            with self.subTest(name=name):
                p = self.d.cli("user", "add", name, "--role", "staff", "--opd", "bpbd", stdin=pw)
                self.refused(p, "username")
        p = self.d.cli("user", "add", "admin", "--role", "staff", "--opd", "bpbd", stdin=pw)
        self.refused(p, "already exists")
        me = self.d.request("GET", "/api/v1/me", token=self.admin).json
        self.assertEqual(me["role"], "admin")

    def test_user_passwd_changes_the_password(self):
        old, new = "cli-old-password-1", "cli-new-password-2"
        self.d.cli("user", "add", "cli-pass", "--role", "operator", "--opd", "diskominfo",
                   stdin=old + "\n", check=True)
        session = self.d.login("cli-pass", old)
        p = self.d.cli("user", "passwd", "cli-pass", stdin=new + "\n")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertLoginFails("cli-pass", old)
        self.d.login("cli-pass", new)
        # A new password ends the sessions opened with the old one.
        r = self.d.request("GET", "/api/v1/me", token=session)
        self.assertEqual(r.status, 401, r)

        p = self.d.cli("user", "passwd", "cli-pass", stdin="tiny\n")
        self.refused(p, "password")
        self.d.login("cli-pass", new)

    def test_user_passwd_of_unknown_user_is_refused(self):
        p = self.d.cli("user", "passwd", "cli-ghost", stdin="a-good-long-password\n")
        self.refused(p, "cli-ghost")

    def test_user_without_verb_shows_usage(self):
        for args in (["user"], ["user", "add"], ["user", "rename", "x"]):
            with self.subTest(args=args):
                p = self.d.cli(*args, stdin="a-good-long-password\n")
                self.assertNotEqual(p.returncode, 0)
                self.assertIn("usage", p.stderr)

    def test_audit_verify_on_a_running_daemon(self):
        p = self.d.cli("audit", "verify")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("intact", p.stdout)


class MigrateTest(unittest.TestCase):
    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="sinergi-migrate-")
        self.addCleanup(shutil.rmtree, self.work, True)
        self.d = Daemon(workdir=self.work)

    def snapshot(self):
        db = sqlite3.connect(self.d.db)
        try:
            return {
                "schema": db.execute("SELECT type, name, sql FROM sqlite_master "
                                     "ORDER BY type, name").fetchall(),
                "migrations": db.execute("SELECT version, name FROM schema_migrations "
                                         "ORDER BY version").fetchall(),
                "regions": db.execute("SELECT code, name, level, parent_code, geometry IS NULL "
                                      "FROM regions ORDER BY code").fetchall(),
                "rivers": db.execute("SELECT * FROM river_points ORDER BY id").fetchall(),
                "opds": db.execute("SELECT code, name FROM opds ORDER BY code").fetchall(),
                "users": db.execute("SELECT username, password_hash FROM users").fetchall(),
                "audit": db.execute("SELECT * FROM audit_log ORDER BY id").fetchall(),
            }
        finally:
            db.close()

    def test_migrate_twice_is_idempotent(self):
        p = self.d.cli("migrate")
        self.assertEqual(p.returncode, 0, p.stderr)
        first = self.snapshot()
        self.assertEqual(len(first["regions"]), 1 + 189 + 140)  # province + both CSVs
        self.assertEqual(len(first["rivers"]), 8)  # rivers_reference_points.csv
        self.assertEqual(len(first["opds"]), 12)
        self.assertTrue(first["migrations"])
        p = self.d.cli("migrate")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.snapshot(), first)

    def test_migrate_keeps_data(self):
        self.d.cli("migrate", check=True)
        self.d.cli("user", "add", "kept-user", "--role", "viewer", "--opd", "dlh",
                   stdin="kept-user-password\n", check=True)
        before = self.snapshot()
        self.d.cli("migrate", check=True)
        self.assertEqual(self.snapshot(), before)
        p = self.d.cli("audit", "verify")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        # The daemon then serves it; accounts exist, so no first-start admin is made.
        d = Daemon(workdir=self.work).start()
        try:
            self.assertIsNone(d.admin_password)
            d.login("kept-user", "kept-user-password")
        finally:
            d.stop()


class HelpTest(unittest.TestCase):
    SETTINGS = {"listen": "SINERGI_LISTEN", "db": "SINERGI_DB", "data-dir": "SINERGI_DATA_DIR",
                "regency": "SINERGI_REGENCY", "max-body": "SINERGI_MAX_BODY",
                "shutdown-timeout-s": "SINERGI_SHUTDOWN_TIMEOUT_S",
                "log-level": "SINERGI_LOG_LEVEL"}

    def test_serve_help_lists_every_setting(self):
        p = run(["serve", "--help"])
        self.assertEqual(p.returncode, 0, p.stderr)
        for flag, env in self.SETTINGS.items():
            with self.subTest(flag=flag):
                self.assertRegex(p.stdout, r"--%s\s+%s\b" % (re.escape(flag), env))
        for cmd in ("serve", "migrate", "user add", "user passwd", "audit verify"):
            self.assertIn(cmd, p.stdout)

    def test_every_flag_in_help_has_an_env_name(self):
        p = run(["serve", "--help"])
        flags = re.findall(r"^\s+--([a-z0-9-]+)\s+(SINERGI_[A-Z0-9_]+)", p.stdout, re.M)
        self.assertGreaterEqual(len(flags), len(self.SETTINGS))
        for flag, env in flags:
            self.assertEqual(env, "SINERGI_" + flag.upper().replace("-", "_"))

    def test_help_forms(self):
        for args in (["--help"], ["help"], ["-h"]):
            with self.subTest(args=args):
                p = run(args)
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertIn("SINERGI_LISTEN", p.stdout)


class BadSettingsTest(unittest.TestCase):
    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="sinergi-flags-")
        self.addCleanup(shutil.rmtree, self.work, True)

    def serve(self, *extra, env=None):
        return run(["serve", "--listen", "127.0.0.1:%d" % free_port(), "--db",
                    os.path.join(self.work, "s.db"), "--data-dir", DATA_DIR] + list(extra),
                   env=env)

    def refused(self, p, *words):
        self.assertNotEqual(p.returncode, 0, p.stdout)
        self.assertNotIn("serving on", p.stdout)
        for w in words:
            self.assertIn(w, p.stderr)
        said = [ln for ln in p.stderr.splitlines() if ln.startswith("sinergi:")]
        self.assertEqual(len(said), 1, "one clear line: " + p.stderr)
        for w in words:
            self.assertIn(w, said[0])

    def test_unknown_flag(self):
        self.refused(self.serve("--bogus-flag", "1"), "unknown flag --bogus-flag")
        self.refused(self.serve("--bogus-flag=1"), "unknown flag --bogus-flag")

    def test_flag_without_value(self):
        self.refused(self.serve("--threads"), "--threads", "value")

    def test_out_of_range_and_malformed_values(self):
        self.refused(self.serve("--max-body", "10"), "max_body")
        self.refused(self.serve("--threads", "many"), "threads")
        self.refused(self.serve("--listen", "localhost"), "listen")
        self.refused(self.serve("--listen", "127.0.0.1:99999"), "listen")

    def test_bad_environment_value_names_the_variable(self):
        self.refused(self.serve(env={"SINERGI_MAX_BODY": "lots"}), "SINERGI_MAX_BODY")

    def test_unknown_command(self):
        p = run(["frobnicate"])
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("unknown command", p.stderr)

    def test_port_in_use(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen(1)
            port = s.getsockname()[1]
            p = run(["serve", "--listen", "127.0.0.1:%d" % port, "--db",
                     os.path.join(self.work, "s.db"), "--data-dir", DATA_DIR])
        self.assertNotEqual(p.returncode, 0, p.stdout)
        self.assertIn("127.0.0.1:%d" % port, p.stderr)

    def test_missing_data_dir(self):
        p = self.serve("--data-dir", os.path.join(self.work, "nowhere"))
        self.assertNotEqual(p.returncode, 0, p.stdout)
        self.assertIn("nowhere", p.stderr)


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)'
                    r'(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})?'
                    r' (-?[0-9.e+-]+|\+Inf|NaN)$')


def parse_metrics(text):
    """{(name, frozenset(labels)): value} from the Prometheus text format."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            raise AssertionError("not a Prometheus sample line: %r" % line)
        labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


class MetricsTest(DaemonTest):
    def metrics(self):
        r = self.d.request("GET", "/metrics")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.header("Content-Type").startswith("text/plain"), r.headers)
        return r.body

    def count(self, m, method, route, status):
        return m.get(("sinergi_http_requests_total",
                      frozenset({("method", method), ("route", route), ("status", status)})), 0)

    def test_counters_after_requests(self):
        before = parse_metrics(self.metrics())
        for _ in range(3):
            self.assertEqual(self.d.request("GET", "/healthz").status, 200)
        for _ in range(2):
            self.assertEqual(self.d.request("POST", "/api/v1/opds", "{x",
                                            token=self.admin).status, 400)
        self.assertEqual(self.d.request("GET", "/api/v1/me").status, 401)
        self.assertEqual(self.d.request("GET", "/api/v1/users/admin",
                                        token=self.admin).status, 200)
        want = [("GET", "/healthz", "200", 3), ("POST", "/api/v1/opds", "400", 2),
                ("GET", "/api/v1/me", "401", 1), ("GET", "/api/v1/users/{username}", "200", 1)]

        def settled():
            m = parse_metrics(self.metrics())
            return m if all(self.count(m, *w[:3]) - self.count(before, *w[:3]) >= w[3]
                            for w in want) else None
        after = wait_until(settled, 10, what="request counters")
        for method, route, status, n in want:
            self.assertEqual(self.count(after, method, route, status)
                             - self.count(before, method, route, status), n, (method, route))

    def test_unmatched_requests_are_counted_without_their_path(self):
        self.d.request("GET", "/secret-path-of-someone")
        text = wait_until(lambda: (lambda t: t if 'route="unmatched"' in t else None)(
            self.metrics()), 10, what="unmatched route counted")
        self.assertNotIn("secret-path", text)
        self.assertNotIn('route="/api/v1/users/admin"', text)

    def test_latency_histogram_and_db_errors(self):
        for _ in range(2):
            self.d.request("GET", "/healthz")
        text = wait_until(lambda: (lambda t: t if 'route="/healthz"' in t else None)(
            self.metrics()), 10, what="healthz in the histogram")
        self.assertIn("# TYPE sinergi_http_requests_total counter", text)
        self.assertIn("# TYPE sinergi_http_request_duration_seconds histogram", text)
        self.assertIn("# TYPE sinergi_db_errors_total counter", text)
        m = parse_metrics(text)
        label = {("method", "GET"), ("route", "/healthz")}
        buckets = sorted(((float("inf") if dict(k[1])["le"] == "+Inf" else float(dict(k[1])["le"])),
                          v) for k, v in m.items()
                         if k[0] == "sinergi_http_request_duration_seconds_bucket"
                         and label <= k[1])
        self.assertGreater(len(buckets), 3)
        counts = [v for _, v in buckets]
        self.assertEqual(counts, sorted(counts), "buckets are cumulative")
        self.assertEqual(buckets[-1][0], float("inf"))
        total = m[("sinergi_http_request_duration_seconds_count", frozenset(label))]
        self.assertEqual(buckets[-1][1], total)
        self.assertGreaterEqual(total, 2)
        self.assertGreaterEqual(m[("sinergi_http_request_duration_seconds_sum",
                                   frozenset(label))], 0)
        self.assertGreaterEqual(m[("sinergi_db_errors_total", frozenset())], 0)


if __name__ == "__main__":
    unittest.main()
