"""Compressed replies: JSON (and the other text replies) of 1 KB or more to GET go gzip-compressed
to a client whose Accept-Encoding takes gzip (q-values honoured), with Vary: Accept-Encoding,
and decompress to exactly the identity body; small replies, writes and the event stream are
never compressed."""
import gzip
import json

from tests.api.harness import DaemonTest

JSON_PATHS = (
    "/api/v1/regions/73.22?geometry=1",
    "/api/v1/regions?parent=73.22&geometry=1",
    "/api/v1/regions?parent=73.22.03&geometry=1",
    "/api/v1/rivers",
    "/api/v1/rivers?geometry=1",
    "/api/v1/stations",
)
# Accept-Encoding values that take gzip, and those that do not
TAKES = ("gzip", "gzip, deflate, br", "br;q=1.0, gzip;q=0.5", "GZIP", "*", "x-gzip",
         "gzip;q=0.001", "deflate, gzip;q=1.0")
REFUSES = (None, "", "identity", "deflate, br", "gzip;q=0", "gzip; q=0.000", "gzip;q=0, *",
           "*;q=0", "gzipx")


def volatile_free(doc):
    """latest without what changes from one second to the next"""
    doc.pop("generated_at", None)
    for st in doc.get("stations", []):
        for s in st["sensors"].values():
            if s.get("last"):
                s["last"].pop("age_s", None)
    return doc


class GzipTest(DaemonTest):
    env = {"SINERGI_SEED_DEMO": "1"}

    def get(self, path, accept=None, token=None, method="GET", fresh=False):
        headers = {} if accept is None else {"Accept-Encoding": accept}
        if fresh:
            headers["Cache-Control"] = "no-cache"  # read your own writes (latest)
        c = self.d.connect()
        try:
            if token:
                headers["Authorization"] = "Bearer " + token
            c.request(method, path, headers=headers)
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def assertGzipped(self, path, accept="gzip", token=None, fresh=False):
        status, h, body = self.get(path, accept, token, fresh=fresh)
        self.assertEqual(status, 200, body[:200])
        self.assertEqual(h.get("content-encoding"), "gzip", (path, accept, h))
        self.assertEqual(h.get("vary"), "Accept-Encoding", h)
        self.assertEqual(int(h["content-length"]), len(body))
        return h, gzip.decompress(body)

    def assertIdentity(self, path, accept=None, token=None):
        status, h, body = self.get(path, accept, token)
        self.assertEqual(status, 200, body[:200])
        self.assertNotIn("content-encoding", h, (path, accept))
        return h, body

    def test_large_json_is_gzipped_and_decompresses_to_the_identity_body(self):
        for path in JSON_PATHS:
            with self.subTest(path=path):
                h_id, plain = self.assertIdentity(path, token=self.admin)
                self.assertGreaterEqual(len(plain), 1024, "a path that is worth compressing")
                self.assertEqual(h_id.get("vary"), "Accept-Encoding", "the body varies by it")
                h_gz, unzipped = self.assertGzipped(path, token=self.admin)
                self.assertEqual(unzipped, plain)
                self.assertLess(int(h_gz["content-length"]), len(plain) * 0.7)
                self.assertEqual(h_gz["content-type"], h_id["content-type"])

    def test_latest_values_from_the_cached_gzip_copy(self):
        for path in ("/api/v1/stations/latest", "/api/v1/public/stations"):
            with self.subTest(path=path):
                _, plain = self.assertIdentity(path, token=self.admin)
                _, unzipped = self.assertGzipped(path, token=self.admin)
                self.assertEqual(volatile_free(json.loads(unzipped)),
                                 volatile_free(json.loads(plain)))
                self.assertEqual(len(json.loads(plain)["stations"]), 5)  # Luwu Utara's DEMO

    def test_a_reading_shows_in_the_gzip_copy_at_once(self):
        # a client asking for no-cache reads its own writes through the compressed copy too
        r = self.d.request("POST", "/api/v1/stations/demo-pda-rongkong/token", token=self.admin)
        self.assertEqual(r.status, 200, r)
        dev = r.json["device_token"]
        for v in (1.23, 1.24):
            r = self.d.request("POST", "/api/v1/ingest", [{"n": "demo-pda-rongkong:level", "v": v}],
                               token=dev, content_type="application/senml+json")
            self.assertEqual(r.status, 200, r)
            _, unzipped = self.assertGzipped("/api/v1/stations/latest", token=self.admin,
                                             fresh=True)
            st = {s["code"]: s for s in json.loads(unzipped)["stations"]}["demo-pda-rongkong"]
            self.assertEqual(st["sensors"]["level"]["v"], v)

    def test_accept_encoding_q_values(self):
        path = "/api/v1/regions?parent=73.22&geometry=1"
        _, plain = self.assertIdentity(path)
        for accept in TAKES:
            with self.subTest(accept=accept):
                _, unzipped = self.assertGzipped(path, accept)
                self.assertEqual(unzipped, plain)
        for accept in REFUSES:
            with self.subTest(accept=accept):
                h, body = self.assertIdentity(path, accept)
                self.assertEqual(body, plain)
                self.assertEqual(h.get("vary"), "Accept-Encoding")

    def test_other_text_replies(self):
        for path in ("/publik", "/metrics"):
            with self.subTest(path=path):
                h_id, plain = self.assertIdentity(path)
                self.assertGreaterEqual(len(plain), 1024)
                h, unzipped = self.assertGzipped(path)
                self.assertEqual(h["content-type"], h_id["content-type"])
                if path == "/publik":
                    self.assertEqual(unzipped, plain)
                    self.assertEqual(h["cache-control"], "public, max-age=30")

    def test_small_replies_are_not_compressed(self):
        for path in ("/healthz", "/api/v1/me", "/api/v1/nope"):
            with self.subTest(path=path):
                status, h, body = self.get(path, "gzip", self.admin)
                self.assertLess(len(body), 1024)
                self.assertNotIn("content-encoding", h)
                self.assertNotIn("vary", h)
                json.loads(body)

    def test_writes_are_not_compressed(self):
        # a write's reply may hold a secret beside what the client sent (BREACH): never
        desc = "Badan Penanggulangan Bencana Daerah, pos Masamba. " * 19
        c = self.d.connect()
        try:
            c.request("POST", "/api/v1/opds",
                      body=json.dumps({"code": "gz-opd", "name": "Uji gzip", "description": desc}),
                      headers={"Authorization": "Bearer " + self.admin,
                               "Content-Type": "application/json", "Accept-Encoding": "gzip"})
            resp = c.getresponse()
            body = resp.read()
        finally:
            c.close()
        self.assertEqual(resp.status, 201, body)
        self.assertGreaterEqual(len(body), 1024, "a reply large enough to be compressed on a GET")
        self.assertIsNone(resp.getheader("Content-Encoding"))
        self.assertEqual(json.loads(body)["description"], desc)
        # the same object read back is
        _, unzipped = self.assertGzipped("/api/v1/opds/gz-opd", token=self.admin)
        self.assertEqual(json.loads(unzipped)["description"], desc)

    def test_event_stream_is_not_compressed(self):
        c = self.d.connect(timeout=10)
        try:
            c.request("GET", "/api/v1/events", headers={"Authorization": "Bearer " + self.admin,
                                                        "Accept-Encoding": "gzip"})
            r = c.getresponse()
            self.assertEqual(r.status, 200)
            self.assertTrue(r.getheader("Content-Type").startswith("text/event-stream"))
            self.assertIsNone(r.getheader("Content-Encoding"))
            self.assertEqual(r.read(len(b"retry: 3000\n")), b"retry: 3000\n")
        finally:
            c.close()

    def test_head_matches_get(self):
        path = "/api/v1/regions?parent=73.22&geometry=1"
        _, h_get, body = self.get(path, "gzip")
        status, h_head, head_body = self.get(path, "gzip", method="HEAD")
        self.assertEqual(status, 200)
        self.assertEqual(head_body, b"")
        self.assertEqual(h_head.get("content-encoding"), "gzip")
        self.assertEqual(h_head["content-length"], h_get["content-length"])
