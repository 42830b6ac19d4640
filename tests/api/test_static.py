"""The web app's files (src/http/static.c) over HTTP, from a web directory the test writes itself:
types, ETag and 304, cache lifetimes by name, the precompressed gzip sibling (and a stale one
ignored), names that must not reach the file system, the size cap, config.json from the
settings, and that API responses keep Cache-Control: no-store."""
import gzip
import http.client
import json
import os
import shutil
import tempfile
import unittest

from tests.api.harness import Daemon

INDEX = b"<!doctype html><title>COC</title><form id=\"login-form\"></form>\n"
APP_JS = b"export const answer = 42;\n" * 200
LIB_CSS = b".lib{color:red}\n" * 100


def write(path, data, mtime=None):
    with open(path, "wb") as f:
        f.write(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


class StaticFilesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.web = tempfile.mkdtemp(prefix="sinergi-web-")
        assets = os.path.join(cls.web, "assets")
        os.mkdir(assets)
        write(os.path.join(cls.web, "index.html"), INDEX)
        write(os.path.join(assets, "app.js"), APP_JS, 1_700_000_000)
        write(os.path.join(assets, "app.js.gz"), gzip.compress(APP_JS), 1_700_000_000)
        write(os.path.join(assets, "lib-1.2.3.min.css"), LIB_CSS, 1_700_000_000)
        # a .gz older than its source (the source was edited after `make web`): not used
        write(os.path.join(assets, "lib-1.2.3.min.css.gz"), gzip.compress(b"stale"), 1_600_000_000)
        write(os.path.join(assets, ".hidden.js"), b"secret")
        write(os.path.join(cls.web, "secret.js"), b"outside assets")
        os.mkdir(os.path.join(assets, "dir.js"))
        with open(os.path.join(assets, "huge.js"), "wb") as f:
            f.truncate(8 * 1024 * 1024 + 1)  # one byte over STATIC_MAX_BYTES (sparse)
        cls.d = Daemon(args=["--web-dir", cls.web, "--tile-url",
                             "https://tiles.example/{z}/{x}/{y}.png"]).start()

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()
        shutil.rmtree(cls.web, ignore_errors=True)

    def get(self, path, headers=None, method="GET"):
        c = http.client.HTTPConnection("127.0.0.1", self.d.port, timeout=10)
        try:
            c.request(method, path, headers=headers or {})
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def test_index(self):
        status, h, body = self.get("/")
        self.assertEqual(status, 200)
        self.assertEqual(body, INDEX)
        self.assertEqual(h["content-type"], "text/html; charset=utf-8")
        self.assertEqual(h["cache-control"], "no-cache")
        self.assertEqual(h["x-content-type-options"], "nosniff")
        self.assertIn("default-src 'self'", h["content-security-policy"])
        self.assertIn("img-src 'self' data: blob: https:", h["content-security-policy"])
        self.assertTrue(h["etag"].startswith('"'))
        self.assertEqual(h["vary"], "Accept-Encoding")

    def test_etag_revalidation(self):
        _, h, _ = self.get("/assets/app.js")
        status, h304, body = self.get("/assets/app.js", {"If-None-Match": h["etag"]})
        self.assertEqual(status, 304)
        self.assertEqual(body, b"")
        self.assertEqual(h304["etag"], h["etag"])
        self.assertEqual(h304["cache-control"], "no-cache")
        status, _, _ = self.get("/assets/app.js", {"If-None-Match": 'W/' + h["etag"] + ', "x"'})
        self.assertEqual(status, 304)
        status, _, body = self.get("/assets/app.js", {"If-None-Match": '"something-else"'})
        self.assertEqual(status, 200)
        self.assertEqual(body, APP_JS)

    def test_gzip_sibling(self):
        status, h, body = self.get("/assets/app.js", {"Accept-Encoding": "gzip, deflate, br"})
        self.assertEqual(status, 200)
        self.assertEqual(h["content-encoding"], "gzip")
        self.assertEqual(h["content-type"], "text/javascript; charset=utf-8")
        self.assertEqual(gzip.decompress(body), APP_JS)
        _, plain, _ = self.get("/assets/app.js")
        self.assertNotEqual(h["etag"], plain["etag"], "each encoding has its own ETag")
        self.assertNotIn("content-encoding", plain)
        status, h, body = self.get("/assets/app.js", {"Accept-Encoding": "gzip;q=0, identity"})
        self.assertNotIn("content-encoding", h)
        self.assertEqual(body, APP_JS)

    def test_stale_gzip_sibling_is_ignored(self):
        status, h, body = self.get("/assets/lib-1.2.3.min.css", {"Accept-Encoding": "gzip"})
        self.assertEqual(status, 200)
        self.assertNotIn("content-encoding", h)
        self.assertEqual(body, LIB_CSS)

    def test_cache_lifetimes(self):
        _, h, _ = self.get("/assets/lib-1.2.3.min.css")
        self.assertEqual(h["cache-control"], "public, max-age=31536000, immutable")
        self.assertEqual(h["content-type"], "text/css; charset=utf-8")
        _, h, _ = self.get("/assets/app.js")
        self.assertEqual(h["cache-control"], "no-cache")
        # API answers keep no-store
        _, h, _ = self.get("/healthz")
        self.assertEqual(h["cache-control"], "no-store")

    def test_names_that_never_reach_a_file(self):
        for path in ("/assets/.hidden.js", "/assets/../secret.js", "/assets/..%2fsecret.js",
                     "/assets/%2e%2e%2fsecret.js", "/assets/app.js.gz", "/assets/APP.js",
                     "/assets/missing.js", "/assets/dir.js", "/assets/huge.js", "/assets/",
                     "/assets/a%00.js", "/index.html", "/assets/app.js/x"):
            with self.subTest(path=path):
                status, h, body = self.get(path)
                self.assertEqual(status, 404, body[:200])
                self.assertEqual(json.loads(body)["error"]["code"], "not_found")

    def test_head_and_methods(self):
        status, h, body = self.get("/assets/app.js", method="HEAD")
        self.assertEqual(status, 200)
        self.assertEqual(body, b"")
        self.assertEqual(int(h["content-length"]), len(APP_JS))
        status, h, _ = self.get("/", method="POST")
        self.assertEqual(status, 405)
        self.assertEqual(h["allow"], "GET")

    def test_config_json(self):
        status, h, body = self.get("/assets/config.json")
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body), {"regency": "73.22",
                                            "tile_url": "https://tiles.example/{z}/{x}/{y}.png"})
        self.assertEqual(h["cache-control"], "no-cache")
        status, _, _ = self.get("/assets/config.json", {"If-None-Match": h["etag"]})
        self.assertEqual(status, 304)


class NoWebDirTest(unittest.TestCase):
    """Without a tile server (the default) the page may load images only from itself."""

    def test_default_settings(self):
        web = tempfile.mkdtemp(prefix="sinergi-web-")
        write(os.path.join(web, "index.html"), INDEX)
        d = Daemon(args=["--web-dir", web]).start()
        try:
            c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
            c.request("GET", "/")
            r = c.getresponse()
            r.read()
            self.assertIn("img-src 'self' data: blob:;", r.getheader("Content-Security-Policy"))
            c.request("GET", "/assets/config.json")
            r = c.getresponse()
            self.assertEqual(json.loads(r.read())["tile_url"], "")
            c.request("GET", "/assets/app.js")  # no assets directory at all
            r = c.getresponse()
            r.read()
            self.assertEqual(r.status, 404)
            c.close()
        finally:
            d.cleanup()
            shutil.rmtree(web, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
