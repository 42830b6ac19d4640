"""Starts the real sinergi daemon on 127.0.0.1 with a temporary database and talks HTTP to it.

Every test module uses this: nothing here fakes the server. SINERGI_BIN picks the binary (the
release or the AddressSanitizer build); the daemon's stderr is scanned for sanitizer reports
when it stops, so a memory error fails the test that caused it.
"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("SINERGI_BIN", os.path.join(ROOT, "sinergi"))
DATA_DIR = os.path.join(ROOT, "data")
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(cond, timeout=10.0, interval=0.02, what="condition"):
    """Polls `cond` until it returns a true value or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(interval)


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def json(self):
        return json.loads(self.body) if self.body else None

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def __repr__(self):
        return "<%d %s>" % (self.status, self.body[:300])


class Daemon:
    """One sinergi process with its own database directory."""

    def __init__(self, env=None, args=(), workdir=None):
        self.dir = workdir or tempfile.mkdtemp(prefix="sinergi-test-")
        self.db = os.path.join(self.dir, "sinergi.db")
        self.env = dict(os.environ)
        self.env.update({"SINERGI_LOG_LEVEL": "info"})
        self.env.update(env or {})
        self.args = list(args)
        self.port = None
        self.proc = None
        self.admin_password = None
        self.stdout_lines = []

    # -- process ------------------------------------------------------------------------------
    def cli(self, *argv, stdin=None, check=False):
        """Runs a sinergi subcommand against this daemon's database."""
        cmd = [BIN] + list(argv) + ["--db", self.db, "--data-dir", DATA_DIR]
        p = subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=self.env,
                           timeout=60)
        if check and p.returncode != 0:
            raise AssertionError("%s failed: %s %s" % (argv, p.stdout, p.stderr))
        self._check_sanitizer(p.stderr)
        return p

    def start(self, timeout=30):
        self.port = free_port()
        self.stderr_path = os.path.join(self.dir, "stderr.%d.log" % self.port)
        self.stderr = open(self.stderr_path, "w")
        cmd = [BIN, "serve", "--listen", "127.0.0.1:%d" % self.port, "--db", self.db,
               "--data-dir", DATA_DIR] + self.args
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.stderr,
                                     text=True, env=self.env)
        ready = threading.Event()

        def read():
            for line in self.proc.stdout:
                self.stdout_lines.append(line)
                m = re.search(r"admin password: (\S+)", line)
                if m:
                    self.admin_password = m.group(1)
                if "serving on" in line:
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(timeout):
            self.proc.kill()
            raise AssertionError("sinergi did not start: " + open(self.stderr_path).read()[-2000:])
        return self

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if not self.proc:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.stderr.close()
        if self.proc.stdout:
            self.proc.stdout.close()
        self.proc = None
        with open(self.stderr_path) as f:
            self._check_sanitizer(f.read())
        return rc

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.stderr.close()
        if self.proc.stdout:
            self.proc.stdout.close()
        self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    @staticmethod
    def _check_sanitizer(text):
        for mark in SANITIZER_MARKS:
            if mark in text:
                i = text.index(mark)
                raise AssertionError("sanitizer report:\n" + text[max(0, i - 200):i + 3000])

    def log_text(self):
        with open(self.stderr_path) as f:
            return f.read()

    # -- HTTP ---------------------------------------------------------------------------------
    def connect(self, timeout=30):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, token=None, headers=None, conn=None,
                content_type="application/json"):
        """One request; `body` may be a dict/list (sent as JSON), str or bytes."""
        h = dict(headers or {})
        data = None
        if body is not None:
            if isinstance(body, (dict, list)):
                data = json.dumps(body).encode()
            elif isinstance(body, str):
                data = body.encode()
            else:
                data = body
            if content_type and "Content-Type" not in h:
                h["Content-Type"] = content_type
        if token:
            h["Authorization"] = "Bearer " + token
        own = conn is None
        c = conn or self.connect()
        try:
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            return Response(r.status, r.getheaders(), r.read().decode("utf-8", "replace"))
        finally:
            if own:
                c.close()

    def login(self, username, password):
        r = self.request("POST", "/api/v1/auth/login",
                         {"username": username, "password": password})
        if r.status != 200:
            raise AssertionError("login %s: %r" % (username, r))
        return r.json["token"]

    def admin_token(self):
        return self.login("admin", self.admin_password)

    def add_user(self, admin_token, username, role, opd, password=None):
        """Creates a user through the API and returns (password, token)."""
        password = password or ("pw-" + username + "-0123456789")
        r = self.request("POST", "/api/v1/users", {"username": username, "password": password,
                                                   "role": role, "opd": opd}, token=admin_token)
        if r.status != 201:
            raise AssertionError("create user %s: %r" % (username, r))
        return password, self.login(username, password)


class DaemonTest(unittest.TestCase):
    """One daemon for the whole class; tests that need their own start one themselves."""
    env = {}

    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(env=cls.env).start()
        cls.admin = cls.d.admin_token()

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()

    def assertError(self, r, status, code=None):
        """The one error shape: {"error":{"code","message"}} with the right status."""
        self.assertEqual(r.status, status, r)
        self.assertTrue(r.header("Content-Type").startswith("application/json"), r.headers)
        e = r.json["error"]
        self.assertIsInstance(e["message"], str)
        self.assertTrue(e["message"])
        if code:
            self.assertEqual(e["code"], code, r)
        self.assertTrue(r.header("X-Request-Id"))
