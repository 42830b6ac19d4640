"""CAP 1.2 and Atom against the real daemon: a water-level station crosses Waspada then Siaga,
falls back and clears; every public message is fetched as /cap/alerts/{id}-{version}.xml and
validated with xmllint against the OASIS schema (data/cap-v1.2.xsd); people's actions and
operator alarms have no document; the Atom feed lists the warning while it is in force.
"""
import os
import shutil
import subprocess
import tempfile
import unittest
import xml.etree.ElementTree as ET

from tests.api.harness import ROOT, DaemonTest

CAP = "{urn:oasis:names:tc:emergency:cap:1.2}"
ATOM = "{http://www.w3.org/2005/Atom}"
XSD = os.path.join(ROOT, "data", "cap-v1.2.xsd")
SENML = "application/senml+json"
CODE = "cap-pda-01"


def xmllint(text, schema=True):
    """(exit status, output) of xmllint --noout [--schema XSD] on `text`."""
    with tempfile.NamedTemporaryFile("w", suffix=".xml", delete=False) as f:
        f.write(text)
        path = f.name
    try:
        cmd = ["xmllint", "--noout"] + (["--schema", XSD] if schema else []) + [path]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        return p.returncode, p.stdout + p.stderr
    finally:
        os.unlink(path)


@unittest.skipUnless(shutil.which("xmllint"), "xmllint (libxml2-utils) is not installed")
class CapTest(DaemonTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        r = cls.d.request("GET", "/api/v1/alerts", token=cls.admin)
        if r.status != 200:
            cls.tearDownClass()
            raise unittest.SkipTest("GET /api/v1/alerts is not served yet: %r" % r)

    # -- helpers ------------------------------------------------------------------------------
    def ingest(self, token, t, v):
        """One level reading `t` seconds from now (negative: in the past)."""
        r = self.d.request("POST", "/api/v1/ingest", [{"n": CODE + ":level", "u": "m",
                                                        "t": t, "v": v}],
                           token=token, content_type=SENML)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["accepted"], 1, r)

    def alerts(self, rule=None):
        r = self.d.request("GET", "/api/v1/alerts?state=all&station=" + CODE, token=self.admin)
        self.assertEqual(r.status, 200, r)
        return [a for a in r.json if rule is None or a["rule"] == rule]

    def the_alert(self, rule="level"):
        found = self.alerts(rule)
        self.assertEqual(len(found), 1, found)
        r = self.d.request("GET", "/api/v1/alerts/%d" % found[0]["id"], token=self.admin)
        self.assertEqual(r.status, 200, r)
        return r.json

    def cap(self, alert_id, version):
        """The validated document of (alert, version), parsed."""
        r = self.d.request("GET", "/cap/alerts/%d-%d.xml" % (alert_id, version))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Content-Type"), "application/cap+xml; charset=utf-8")
        rc, out = xmllint(r.body)
        self.assertEqual(rc, 0, "CAP %d-%d does not validate:\n%s\n%s"
                         % (alert_id, version, out, r.body))
        return ET.fromstring(r.body.encode())

    def feed(self):
        r = self.d.request("GET", "/cap/alerts.atom")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Content-Type"), "application/atom+xml; charset=utf-8")
        rc, out = xmllint(r.body, schema=False)
        self.assertEqual(rc, 0, out)
        return ET.fromstring(r.body.encode())

    def feed_links(self):
        return [link.get("href") for e in self.feed().iter(ATOM + "entry")
                for link in e.iter(ATOM + "link")
                if link.get("rel") == "alternate" and link.get("type") == "application/cap+xml"]

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.d.port, path)

    # -- the scenario -------------------------------------------------------------------------
    def test_warning_from_waspada_to_all_clear(self):
        r = self.d.request("POST", "/api/v1/stations", {
            "code": CODE, "name": "TEST Pos Duga Air Masamba", "kind": "water_level",
            "lat": -2.5569, "lon": 120.3304, "region": "73.22.03.1002", "river": "Sungai Masamba",
            "opd": "bpbd", "interval_s": 600, "demo": False,
            "thresholds": {"waspada": 2.0, "siaga": 3.0, "awas": 4.0}}, token=self.admin)
        self.assertEqual(r.status, 201, r)
        r = self.d.request("POST", "/api/v1/stations/%s/token" % CODE, token=self.admin)
        self.assertEqual(r.status, 200, r)
        dev = r.json["device_token"]
        # lowering at once (no hold time), so the test can see the all-clear in reading time
        r = self.d.request("PUT", "/api/v1/stations/%s/rules/level" % CODE,
                           {"params": {"hold_s": 0}}, token=self.admin)
        self.assertEqual(r.status, 200, r)

        # rising, 500 s apart and never faster than QC allows: Waspada at 2.2 m
        for t, v in ((-3000, 1.5), (-2500, 1.8), (-2000, 2.2), (-1500, 2.6), (-1000, 2.9)):
            self.ingest(dev, t, v)
        a = self.the_alert()
        self.assertEqual(a["level"], 1, a)
        first = [h for h in a["history"] if h["action"] == "raised"][0]["version"]
        doc = self.cap(a["id"], first)
        self.assertEqual(doc.findtext(CAP + "msgType"), "Alert")
        self.assertEqual(doc.findtext(CAP + "status"), "Actual")
        self.assertEqual(doc.findtext(CAP + "identifier"),
                         "urn:sinergi:73.22:alert:%d:%d" % (a["id"], first))
        self.assertIsNone(doc.find(CAP + "references"))
        info = doc.find(CAP + "info")
        self.assertEqual(info.findtext(CAP + "language"), "id-ID")
        self.assertEqual(info.findtext(CAP + "responseType"), "Monitor")
        self.assertIn("Siaga 3 (Waspada)", info.findtext(CAP + "headline"))
        self.assertIn("Sungai Masamba", info.findtext(CAP + "headline"))
        self.assertEqual(info.findtext(CAP + "web"), self.url("/publik"))
        area = info.find(CAP + "area")
        self.assertEqual(area.findtext(CAP + "circle"), "-2.55690,120.33040 3")
        self.assertEqual(area.find(CAP + "geocode").findtext(CAP + "value"), "73.22.03.1002")
        self.assertIn("Bone", area.findtext(CAP + "areaDesc"))
        self.assertTrue(doc.findtext(CAP + "sent").endswith("+08:00"))
        self.assertIn(self.url("/cap/alerts/%d-%d.xml" % (a["id"], first)), self.feed_links())

        # Siaga at 3.2 m; then a person acknowledges: that is no CAP message
        self.ingest(dev, -500, 3.2)
        a = self.the_alert()
        self.assertEqual(a["level"], 2, a)
        r = self.d.request("POST", "/api/v1/alerts/%d/ack" % a["id"], {"note": "dipantau"},
                           token=self.admin)
        self.assertEqual(r.status, 200, r)
        links = self.feed_links()
        self.assertIn(self.url("/cap/alerts/%d-%d.xml" % (a["id"], a["version"])), links)
        self.assertEqual(len([x for x in links if "/cap/alerts/%d-" % a["id"] in x]), 1)

        # down to Waspada, then below it: an Update and the Cancel
        self.ingest(dev, -300, 2.6)
        self.ingest(dev, -100, 1.8)
        a = self.the_alert()
        self.assertEqual(a["level"], 0, a)
        history = a["history"]
        public = [h for h in history if h["action"] in ("raised", "level", "cleared")]
        self.assertEqual([h["msg_type"] for h in public], ["Alert", "Update", "Update", "Cancel"])
        sent = []
        for i, h in enumerate(public):
            doc = self.cap(a["id"], h["version"])
            self.assertEqual(doc.findtext(CAP + "msgType"), h["msg_type"])
            refs = (doc.findtext(CAP + "references") or "").split()
            self.assertEqual(refs, sent, "message %d references every earlier one" % i)
            sent.append("%s,%s,%s" % (doc.findtext(CAP + "sender"),
                                      doc.findtext(CAP + "identifier"),
                                      doc.findtext(CAP + "sent")))
        self.assertEqual(doc.find(CAP + "info").findtext(CAP + "responseType"), "AllClear")
        for h in history:
            if h["action"] not in ("raised", "level", "cleared"):
                r = self.d.request("GET", "/cap/alerts/%d-%d.xml" % (a["id"], h["version"]))
                self.assertError(r, 404, "not_found")
        self.assertFalse([x for x in self.feed_links() if "/cap/alerts/%d-" % a["id"] in x])

        # the fall from 3.2 m raised an operator alarm (sudden_fall): never public
        for op in self.alerts("sudden_fall"):
            self.assertFalse(op["public"])
            r = self.d.request("GET", "/cap/alerts/%d-1.xml" % op["id"])
            self.assertError(r, 404, "not_found")

    def test_not_found(self):
        for path in ("/cap/alerts/abc.xml", "/cap/alerts/0-1.xml", "/cap/alerts/1-0.xml",
                     "/cap/alerts/999999-1.xml", "/cap/alerts/1-1-1.xml", "/cap/alerts/-1.xml",
                     "/cap/alerts/01-1.xml", "/cap/alerts/99999999999999999999-1.xml"):
            with self.subTest(path=path):
                self.assertError(self.d.request("GET", path), 404, "not_found")

    def test_feed_is_public_and_well_formed(self):
        f = self.feed()
        self.assertEqual(f.tag, ATOM + "feed")
        self.assertTrue(f.findtext(ATOM + "id"))
        self.assertTrue(f.findtext(ATOM + "title"))
        self.assertRegex(f.findtext(ATOM + "updated"),
                         r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00$")
        self.assertTrue(f.find(ATOM + "author").findtext(ATOM + "name"))


if __name__ == "__main__":
    unittest.main()
