#!/usr/bin/env python3
"""d4-web over the analyzers' own stores: passive DNS and TLS, through the REST API and the UI.

The analyzers fill their stores offline where d4-web looks by default (<data_dir>/analyzers/
pdns and .../tls): the passive DNS sample CSV as a D4 type-8 stream, and a capture built here
with two TLS handshakes (a certificate of tests/data/tls_flows) read with --pcap. Then, against a
real d4-web:
- /api/v1/pdns/query, /fquery, /info answer COF records (validated against the schema), with
  filters, pages (next cursor, every record once), 400 for bad input and 401/403 by role;
- /api/v1/tls/summary, /pivot (JA3, certificate by SHA-1, server), /sessions, /findings and
  /cert (the DER) answer what the analyzer stored;
- without a store, both answer 404 with the option to set;
- in headless Chromium (when node, npm and /usr/bin/chromium are there; skipped otherwise), the
  passive DNS search box and the TLS search and certificate views show those records.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_pdns_ingest as pdns  # noqa: E402
import tlslib  # noqa: E402
from weblib import Client, Web  # noqa: E402
from test_web_api import NEW_PW, admin_session, make_token  # noqa: E402

BIN = os.environ.get("D4_BIN", "")
TEST_DATA = os.environ.get("D4_TEST_DATA", os.path.join(HERE, "../data"))
TLS_ANALYZER = os.path.join(BIN, "d4-analyzer-tls")
CERT = open(os.path.join(TEST_DATA, "tls_flows", "cert-a.der"), "rb").read()
CERT_SHA1 = hashlib.sha1(CERT).hexdigest()
CIPHERS = [0x1301, 0x1302, 0xc02b, 0xc02f]
GROUPS = [29, 23]


def tls_capture(path):
    """Two handshakes to 198.51.100.7:443 with SNI web.example and the certificate CERT."""
    packets = []
    ja3 = None
    for port in (41000, 41001):
        c = tlslib.Conn("192.0.2.10", "198.51.100.7", port)
        exts = [tlslib.sni_ext("web.example"), tlslib.groups_ext(GROUPS), tlslib.points_ext([0])]
        ch = tlslib.records(tlslib.handshake(1, tlslib.client_hello_body(CIPHERS, exts)))
        ja3 = tlslib.ja3_of(0x0303, CIPHERS, [0, 10, 11], GROUPS, [0])
        sh = tlslib.handshake(2, tlslib.server_hello_body(0xc02f, [])) + \
            tlslib.handshake(11, tlslib.certificate_body([CERT])) + tlslib.handshake(14, b"")
        packets += c.handshake_tcp() + c.data(True, ch) + \
            c.data(False, tlslib.records(sh, version=0x0303)) + c.fin()
    tlslib.write_pcap(path, packets)
    return ja3


class WebAnalyzers(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.web = Web()
        data = cls.web.data
        # passive DNS: the sample CSV through the analyzer, into d4-web's default pdns_db
        csv = open(pdns.data_file("passivedns-sample.csv"), "rb").read()
        cls.lines = [ln for ln in csv.splitlines() if ln.strip()]
        pdns.run_analyzer(os.path.join(data, "analyzers", "pdns"), pdns.frames([csv]))
        # TLS: a capture through the analyzer, into the default tls_db
        cap = os.path.join(cls.web.dir, "two.pcap")
        ja3 = tls_capture(cap)
        cls.ja3_md5 = hashlib.md5(ja3.encode()).hexdigest()
        p = subprocess.run([TLS_ANALYZER, "--pcap", cap, "--db", os.path.join(data, "analyzers", "tls")],
                           capture_output=True, timeout=60)
        assert p.returncode == 0, p.stderr
        cls.web.start()
        cls.admin = admin_session(cls.web)

    @classmethod
    def tearDownClass(cls):
        cls.web.__exit__(None, None, None)

    # ---- passive DNS ----

    def test_pdns_query(self):
        first = self.lines[0].decode().split("||")
        name = first[4].rstrip(".").lower()
        r = self.admin.get("/api/v1/pdns/query?q=" + name)
        self.assertEqual(r.status, 200, r)
        recs = r.json["records"]
        self.assertTrue(recs)
        for rec in recs:
            pdns.validate_cof(rec)
            self.assertEqual(rec["rrname"], name)
        want = {ln.decode().split("||")[6] for ln in self.lines if ln.decode().split("||")[4].rstrip(".").lower() == name}
        self.assertEqual({d for rec in recs for d in rec["rdata"]}, want)
        self.assertIsNone(r.json["next"])
        # the same name spelled with capitals and a trailing dot
        r2 = self.admin.get("/api/v1/pdns/query?q=" + name.upper() + ".")
        self.assertEqual(r2.json["records"], recs)
        # an address of that name: its names
        addr = first[6]
        r = self.admin.get("/api/v1/pdns/query?q=" + addr)
        self.assertIn(name, {rec["rrname"] for rec in r.json["records"]})
        # a type filter that matches nothing, a miss
        self.assertEqual(self.admin.get("/api/v1/pdns/query?q=%s&rrtype=MX" % name).json["records"], [])
        self.assertEqual(self.admin.get("/api/v1/pdns/query?q=nothing.invalid").json["records"], [])

    def test_pdns_pages_and_errors(self):
        # every record of the sample under the wildcard, one a page, each once
        seen, cursor = [], None
        for _ in range(100):
            path = "/api/v1/pdns/query?q=*.com&limit=1" + ("&cursor=" + cursor if cursor else "")
            r = self.admin.get(path)
            self.assertEqual(r.status, 200, r)
            seen += [(x["rrname"], x["rrtype"], tuple(x["rdata"])) for x in r.json["records"]]
            cursor = r.json["next"]
            if cursor is None:
                break
        self.assertEqual(len(seen), len(set(seen)))
        coms = {(ln.decode().split("||")[4].rstrip(".").lower(), ln.decode().split("||")[6].rstrip("."))
                for ln in self.lines if ln.decode().split("||")[4].rstrip(".").endswith(".com")}
        self.assertEqual({(n, d) for n, _, rd in seen for d in rd}, coms)
        # fquery: the exact rdata
        rd = self.lines[0].decode().split("||")[6]
        r = self.admin.get("/api/v1/pdns/fquery?q=" + rd)
        self.assertTrue(all(x["rdata"] == [rd] for x in r.json["records"]) and r.json["records"])
        for bad in ("/api/v1/pdns/query", "/api/v1/pdns/query?q=", "/api/v1/pdns/query?q=a.b&limit=0",
                    "/api/v1/pdns/query?q=a.b&rrtype=NOPE", "/api/v1/pdns/query?q=a.b&cursor=zz"):
            r = self.admin.get(bad)
            self.assertEqual(r.status, 400, bad)
            self.assertEqual(r.json["status"], "error")
        info = self.admin.get("/api/v1/pdns/info")
        self.assertEqual(info.status, 200)
        self.assertTrue(json.dumps(info.json))
        self.assertEqual(Client(self.web).get("/api/v1/pdns/info").status, 401)

    # ---- TLS ----

    def test_tls_pivots(self):
        s = self.admin.get("/api/v1/tls/summary")
        self.assertEqual(s.status, 200, s)
        self.assertEqual(s.json["sessions"], 2)
        r = self.admin.get("/api/v1/tls/pivot?kind=ja3&value=" + self.ja3_md5)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["count"], 2)
        kinds = {(link["kind"], link["value"]) for link in r.json["links"]}
        self.assertIn(("server", "198.51.100.7"), kinds)
        self.assertIn(("sni", "web.example"), kinds)
        # the certificate by its SHA-1, with its key, and its DER
        r = self.admin.get("/api/v1/tls/pivot?kind=cert&value=" + CERT_SHA1)
        self.assertEqual(r.status, 200, r)
        cert = r.json["cert"]
        self.assertEqual(cert["sha1"], CERT_SHA1)
        der = self.admin.get("/api/v1/tls/cert?hash=" + cert["sha256"])
        self.assertEqual(der.status, 200)
        self.assertEqual(der.header("Content-Type"), "application/pkix-cert")
        self.assertEqual(der.body, CERT)
        r = self.admin.get("/api/v1/tls/sessions?kind=server&value=198.51.100.7&limit=1")
        self.assertEqual(len(r.json["sessions"]), 1)
        self.assertIsNotNone(r.json["next"])
        r2 = self.admin.get("/api/v1/tls/sessions?kind=server&value=198.51.100.7&limit=1&cursor=" +
                            r.json["next"])
        self.assertEqual(len(r2.json["sessions"]), 1)
        self.assertNotEqual(r.json["sessions"][0]["client_port"], r2.json["sessions"][0]["client_port"])
        self.assertEqual(self.admin.get("/api/v1/tls/findings").status, 200)
        self.assertEqual(self.admin.get("/api/v1/tls/pivot?kind=ja3&value=" + "0" * 32).status, 404)
        self.assertEqual(self.admin.get("/api/v1/tls/pivot?kind=bogus&value=x").status, 400)
        self.assertEqual(self.admin.get("/api/v1/tls/pivot?kind=ja3").status, 400)
        self.assertEqual(self.admin.get("/api/v1/tls/findings?limit=0").status, 400)

    def test_roles(self):
        tok = make_token(self.admin, "admin")
        self.assertEqual(Client(self.web, token=tok).get("/api/v1/tls/summary").status, 200)
        r = self.admin.post("/api/v1/users", {"name": "reg", "role": "sensor-register",
                                             "password": "a password for reg"})
        self.assertEqual(r.status, 201, r)
        reg = Client(self.web)
        self.assertEqual(reg.login("reg", "a password for reg").status, 200)
        self.assertEqual(reg.get("/api/v1/pdns/query?q=a.b").status, 403)


    def test_ui(self):
        import test_web_ui as ui
        for tool in ("node", "npm"):
            if shutil.which(tool) is None:
                self.skipTest(tool + " is not installed")
        if not os.access(ui.CHROMIUM, os.X_OK):
            self.skipTest(ui.CHROMIUM + " is not installed")
        try:
            pkg = ui.playwright_core()
        except SystemExit:
            self.skipTest("playwright-core could not be installed")
        artifacts = os.path.join(ui.BUILD, "test-artifacts", "web-ui-analyzers")
        shutil.rmtree(artifacts, ignore_errors=True)
        os.makedirs(artifacts)
        profile = tempfile.mkdtemp(prefix="d4-web-ui-analyzers-")
        first = self.lines[0].decode().split("||")
        env = dict(os.environ, D4_UI_URL="https://127.0.0.1:%d" % self.web.port,
                   D4_UI_USER="admin", D4_UI_PASSWORD=NEW_PW, D4_UI_ARTIFACTS=artifacts,
                   D4_UI_PLAYWRIGHT=pkg, D4_UI_PROFILE=profile,
                   D4_UI_NAME=first[4].rstrip(".").lower(), D4_UI_ADDR=first[6],
                   D4_UI_CERT_SHA1=CERT_SHA1, D4_UI_SNI="web.example")
        try:
            p = subprocess.run(["node", os.path.join(HERE, "web_ui_analyzers.js")], env=env,
                               capture_output=True, text=True, timeout=180)
        finally:
            shutil.rmtree(profile, ignore_errors=True)
        print(p.stdout)
        self.assertEqual(p.returncode, 0, p.stdout[-3000:] + p.stderr[-2000:])


class WithoutStores(unittest.TestCase):
    def test_not_set_up(self):
        with Web() as web:
            web.start()
            admin = admin_session(web)
            for path, opt in (("/api/v1/pdns/query?q=a.example", "web.pdns_db"),
                              ("/api/v1/tls/summary", "web.tls_db")):
                r = admin.get(path)
                self.assertEqual(r.status, 404, r)
                self.assertIn(opt, r.json["reason"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
