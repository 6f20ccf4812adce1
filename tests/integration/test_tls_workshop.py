"""The workshop capture (../shared/vectors/tls/d4-workshop-stripped.pcap, 12 TLS handshakes to one
server) through d4-analyzer-tls, twice:
  1. --pcap FILE into a store, read back through the query API (--query/--sessions/--findings);
  2. the same packets as a saved D4 type-1 stream on standard input (offline mode of the analyzer
     library), with every ClientHello split across two TCP segments (one flow with its halves out of
     order, one with a retransmitted half) and the stream cut into D4 frames in the middle of a
     ClientHello: the same sessions must come out.
The certificate the capture really carries (checked independently with `openssl x509`) is
CN=EndEntity (a Huawei test certificate), SHA-1 55a880f1..., RSA-1024, in the 6 TLS 1.1
handshakes; the 6 others resume a session and show no certificate. Skips (77) without the vector."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from tlslib import (SHARED, ANALYZER, fail, ok, run, read_pcap, pcap_record, ipv4_tcp_parts,  # noqa: E402
                    make_ipv4_tcp, d4_stream)

PCAP = os.path.join(SHARED, "tls", "d4-workshop-stripped.pcap")
if not os.path.exists(PCAP):
    print("skip: no " + PCAP)
    sys.exit(77)
CERT_SHA1 = "55a880f116cf92d7ab02326279da349df26658fd"
SERVER = "60.243.245.99"

tmp = tempfile.mkdtemp(prefix="d4-tls-ws-")
try:
    def query(db, *args):
        p = subprocess.run([ANALYZER, "--db", db] + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        if p.returncode != 0:
            fail("query %s: exit %d %s" % (args, p.returncode, p.stderr.decode()))
        return json.loads(p.stdout)

    def check_store(db, label):
        summ = query(db, "--summary")
        if summ["sessions"] != 12:
            fail("%s: %d sessions stored, expected 12" % (label, summ["sessions"]))
        cert = query(db, "--query", "cert=" + CERT_SHA1)
        ci = cert["cert"]
        if ci["sha1"] != CERT_SHA1 or ci.get("cn") != "EndEntity" or ci["key_type"] != "rsa" or ci["key_bits"] != 1024:
            fail("%s: certificate %s" % (label, ci))
        if cert["count"] != 6:
            fail("%s: certificate seen %d times, expected 6" % (label, cert["count"]))
        servers = [l["value"] for l in cert["links"] if l["kind"] == "server"]
        if servers != [SERVER]:
            fail("%s: certificate linked to servers %s" % (label, servers))
        key = query(db, "--query", "key=" + ci["key"])
        if key["key"]["bits"] != 1024 or key["key"]["type"] != "rsa" or len(key["key"]["n"]) != 256:
            fail("%s: key %s" % (label, key["key"]))
        sess = query(db, "--sessions", "server=" + SERVER, "--limit", "5")
        seen = list(sess["sessions"])
        pages = 1
        while sess["next"] and pages < 10:
            sess = query(db, "--sessions", "server=" + SERVER, "--limit", "5", "--cursor", sess["next"])
            seen += sess["sessions"]
            pages += 1
        if len(seen) != 12 or pages != 3 or len({s["id"] for s in seen}) != 12:
            fail("%s: paging gave %d sessions in %d pages" % (label, len(seen), pages))
        with_cert = [s for s in seen if s["certs"]]
        if len(with_cert) != 6 or any(s["certs"] != [ci["sha256"]] for s in with_cert):
            fail("%s: sessions with the certificate: %d" % (label, len(with_cert)))
        findings = query(db, "--findings")["findings"]
        kinds = sorted(f["kind"] for f in findings if f["key"] == ci["key"])
        if "rsa-small" not in kinds:
            fail("%s: no rsa-small finding for the RSA-1024 key: %s" % (label, kinds))
        return sorted((s["client_port"], s["ja3_md5"], s["ja3s_md5"], s["ja4"], tuple(s["certs"])) for s in seen)

    # 1. --pcap FILE
    db1 = os.path.join(tmp, "db1")
    lines, c, _ = run(["--pcap", PCAP, "--db", db1, "--json"])
    if c["handshakes"] != 12 or c["complete"] != 12 or len(lines) != 12:
        fail("pcap: handshakes=%d complete=%d lines=%d" % (c["handshakes"], c["complete"], len(lines)))
    ref = check_store(db1, "pcap")
    ok("pcap file: 12 handshakes, certificate %s (CN=EndEntity, RSA-1024) through the query API" % CERT_SHA1)

    # 2. a D4 type-1 stream, ClientHellos split across TCP segments and D4 frames
    glob, recs = read_pcap(PCAP)
    out = [glob]
    cuts = []
    first_payload = {}
    nflow = 0
    for ts, us, data in recs:
        parts = ipv4_tcp_parts(data)
        if parts:
            l2ip, tcph, payload = parts
            sport = (tcph[0] << 8) | tcph[1]
            if payload and sport != 443 and sport not in first_payload:
                first_payload[sport] = True
                seq = int.from_bytes(tcph[4:8], "big")
                half = len(payload) // 2
                a = make_ipv4_tcp(l2ip, tcph, payload[:half], seq)
                b = make_ipv4_tcp(l2ip, tcph, payload[half:], seq + half)
                order = [a, b]
                if nflow == 1:
                    order = [b, a]  # out of order
                elif nflow == 2:
                    order = [a, a, b]  # a retransmission
                nflow += 1
                for pkt in order:
                    if not cuts:  # a D4 frame ends in the middle of the first ClientHello
                        cuts.append(sum(len(x) for x in out) + 16 + 14 + 20 + 32 + 40)
                    out.append(pcap_record(ts, pkt, us))
                continue
        out.append(pcap_record(ts, data, us))
    stream_bytes = b"".join(out)
    cuts += list(range(4096, len(stream_bytes), 4096))
    d4 = d4_stream(stream_bytes, cuts)
    db2 = os.path.join(tmp, "db2")
    lines2, c2, _ = run(["--db", db2, "--json", "--key", "private key to change"], stdin=d4)
    if c2["handshakes"] != 12 or c2["out_of_order"] < 1 or c2["retransmits"] < 1 or c2.get("pcap_sessions", 1) < 1:
        fail("d4 stream: counters %s" % c2)
    got = check_store(db2, "d4 stream")
    if got != ref:
        fail("d4 stream: sessions differ from the pcap file's:\n%s\n%s" % (got, ref))
    sensors = {s["sensor"] for s in query(db2, "--sessions", "server=" + SERVER)["sessions"]}
    if sensors != {"5b6422394db44580adf44ebd950d210f"}:
        fail("d4 stream: sensor %s" % sensors)
    ok("D4 type-1 stream (%d frames, ClientHellos split, out of order, retransmitted): same 12 sessions"
       % (len(cuts) + 1))
finally:
    shutil.rmtree(tmp, ignore_errors=True)
print("PASS")
