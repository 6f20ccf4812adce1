"""d4-analyzer-tls --pcap on the shared TLS vectors: every ClientHello of every stream gives the
JA3 (ja3-expected.json) and the JA4, JA4_r, JA4_o, JA4_ro (foxio-*.json) listed with it.
Skips (77) without ../shared/vectors/tls; test_tls_own.py covers our own vectors."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from tlslib import SHARED, ANALYZER, fail, ok, run, by_flow, flow_key  # noqa: E402

VEC = os.path.join(SHARED, "tls")
if not os.path.isdir(VEC):
    print("skip: no %s" % VEC)
    sys.exit(77)
if not os.path.exists(ANALYZER):
    fail("no " + ANALYZER)

# JA3 (salesforce/ja3 reference values)
with open(os.path.join(VEC, "ja3-expected.json")) as f:
    expected = json.load(f)
for e in expected:
    lines, c, _ = run(["--pcap", os.path.join(VEC, e["pcap"]), "--json", "--no-store"])
    got = [l for l in lines if l["server"] == e["dst"]]
    if len(got) != 1:
        fail("%s: %d handshakes to %s, expected 1" % (e["pcap"], len(got), e["dst"]))
    ch = got[0]["client_hellos"][0]
    if ch["ja3"] != e["ja3"] or ch["ja3_md5"] != e["ja3_md5"]:
        fail("%s: ja3 %s / %s, expected %s / %s" % (e["pcap"], ch["ja3"], ch["ja3_md5"], e["ja3"], e["ja3_md5"]))
    ok("%s: JA3 %s" % (e["pcap"], e["ja3_md5"]))

# JA4 (FoxIO reference output: one entry per stream, JA4.n for the n-th ClientHello)
for name in sorted(os.listdir(VEC)):
    if not (name.startswith("foxio-") and name.endswith(".json")):
        continue
    pcap = os.path.join(VEC, name[:-5])
    with open(os.path.join(VEC, name)) as f:
        streams = json.load(f)
    lines, c, _ = run(["--pcap", pcap, "--json", "--no-store"])
    flows = by_flow(lines)
    checked = 0
    for s in streams:
        n = 1
        if "JA4.1" not in s:
            continue
        key = flow_key(s["src"], s["srcport"], s["dst"], s["dstport"])
        if key not in flows:
            fail("%s stream %s: no handshake for %s" % (name, s["stream"], key))
        hellos = flows[key]["client_hellos"]
        while "JA4.%d" % n in s:
            if len(hellos) < n:
                fail("%s stream %s: %d ClientHello(s), expected JA4.%d" % (name, s["stream"], len(hellos), n))
            h = hellos[n - 1]
            for field, mine in (("JA4", "ja4"), ("JA4_r", "ja4_r"), ("JA4_o", "ja4_o"), ("JA4_ro", "ja4_ro")):
                want = s.get("%s.%d" % (field, n))
                if want is not None and h[mine] != want:
                    fail("%s stream %s %s.%d: %s, expected %s" % (name, s["stream"], field, n, h[mine], want))
            checked += 1
            n += 1
        if len(hellos) != n - 1:
            fail("%s stream %s: %d ClientHellos, reference has %d" % (name, s["stream"], len(hellos), n - 1))
    if c.get("handshakes", 0) < len(streams):
        fail("%s: %d handshakes counted, %d streams" % (name, c.get("handshakes", 0), len(streams)))
    ok("%s: %d ClientHellos give the reference JA4, JA4_r, JA4_o, JA4_ro" % (name, checked))
print("PASS")
