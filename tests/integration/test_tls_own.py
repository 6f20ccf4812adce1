"""d4-analyzer-tls on vectors built here (tests/data/tls_flows holds the certificates): the flow
layer (IPv4, IPv6 with an extension header, 802.1Q, Linux SLL; ClientHellos split and out of order;
a flow without its SYN), hostile and malformed inputs (counted and skipped, never a crash), the flow
table limits (counted, and every evicted handshake still stored), the shared-key finding, and the
ja3-jl records of D4's Go sensor (indented JSON objects back to back, as it writes them, and JSON
lines) through a D4 type-254 stream."""
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from tlslib import *  # noqa: F401,F403,E402
from tlslib import (TEST_DATA, ANALYZER, fail, ok, run, Conn, write_pcap, client_hello_body, handshake,  # noqa: E402
                    records, server_hello_body, certificate_body, sni_ext, alpn_ext, groups_ext,
                    points_ext, ext, ja3_of, ipv4_packet, ether, tcp_header, u16, d4_stream)

if not os.path.exists(ANALYZER):
    fail("no " + ANALYZER)
CERT_A = open(os.path.join(TEST_DATA, "tls_flows", "cert-a.der"), "rb").read()
CERT_B = open(os.path.join(TEST_DATA, "tls_flows", "cert-b.der"), "rb").read()
SHA1_A = hashlib.sha1(CERT_A).hexdigest()
SHA1_B = hashlib.sha1(CERT_B).hexdigest()

CIPHERS = [0x1a1a, 0x1301, 0x1302, 0xc02b, 0xc02f, 0x009c]
GROUPS = [0x2a2a, 29, 23, 24]


def ch_record(sni, extra_ext=None):
    exts = [ext(0x3a3a, b""), sni_ext(sni), groups_ext(GROUPS), points_ext([0]), alpn_ext(["h2", "http/1.1"]),
            ext(23, b""), ext(65281, b"\x00")]
    if extra_ext:
        exts.append(extra_ext)
    body = client_hello_body(CIPHERS, exts)
    types = [0x3a3a, 0, 10, 11, 16, 23, 65281] + ([0x1234] if extra_ext else [])
    return records(handshake(1, body)), ja3_of(0x0303, CIPHERS, types, GROUPS, [0])


def sh_records(certs):
    sh = handshake(2, server_hello_body(0xc02f, [ext(65281, b"\x00"), ext(23, b"")]))
    msgs = sh + (handshake(11, certificate_body(certs)) if certs else b"") + handshake(14, b"")
    return records(msgs, version=0x0303)


def full_flow(conn, sni, certs, split=None, order=None, syn=True, extra_ext=None):
    ch, ja3 = ch_record(sni, extra_ext)
    pk = conn.handshake_tcp() if syn else []
    pk += conn.data(True, ch, split, order)
    pk += conn.data(False, sh_records(certs), split=[100] if len(certs) else None)
    pk += conn.data(True, records(b"\x01", ctype=20, version=0x0303))  # ChangeCipherSpec
    pk += conn.data(False, records(b"\x01", ctype=20, version=0x0303))
    pk += conn.data(True, records(b"x" * 3000, ctype=23, version=0x0303))  # bulk the fast path drops
    pk += conn.fin()
    return pk, ja3


tmp = tempfile.mkdtemp(prefix="d4-tls-own-")
try:
    def q(db, *args):
        p = subprocess.run([ANALYZER, "--db", db] + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        if p.returncode != 0:
            fail("query %s: exit %d %s" % (args, p.returncode, p.stderr.decode()))
        return json.loads(p.stdout)

    # --- 1. link layers, IP versions, reassembly ------------------------------------------
    pk, exp = [], {}
    p, ja3 = full_flow(Conn("192.0.2.1", "198.51.100.1", 40001), "a.example", [CERT_A])
    pk += p
    exp[40001] = (ja3, "a.example", [SHA1_A])
    p, ja3 = full_flow(Conn("2001:db8::1", "2001:db8::2", 40002, hop_by_hop=True), "v6.example", [CERT_A],
                       split=[10, 100], order=[2, 0, 1])
    pk += p
    exp[40002] = (ja3, "v6.example", [SHA1_A])
    p, ja3 = full_flow(Conn("192.0.2.3", "198.51.100.3", 40003, link="vlan"), "vlan.example", [CERT_B],
                       split=[5, 6, 7], syn=False)
    pk += p
    exp[40003] = (ja3, "vlan.example", [SHA1_B])
    pcap = os.path.join(tmp, "links.pcap")
    write_pcap(pcap, pk)
    db = os.path.join(tmp, "db")
    lines, c, _ = run(["--pcap", pcap, "--db", db, "--json"])
    got = {l["client_port"]: l for l in lines}
    for port, (ja3, sni, sha1s) in exp.items():
        l = got.get(port)
        if not l:
            fail("flow %d: no handshake" % port)
        if l["client_hellos"][0]["ja3"] != ja3 or l.get("sni") != sni or [x["sha1"] for x in l["certs"]] != sha1s:
            fail("flow %d: %s (expected %s %s %s)" % (port, l, ja3, sni, sha1s))
        if l["ja3_md5"] != hashlib.md5(ja3.encode()).hexdigest():
            fail("flow %d: ja3 md5" % port)
    if c["handshakes"] != 3 or c["out_of_order"] < 1 or c["fast_path"] < 3:
        fail("links: counters %s" % c)
    ok("Ethernet, IPv6 + hop-by-hop (out of order), 802.1Q midstream: JA3, SNI and certificates")

    # SLL link type, a file of its own
    p, ja3 = full_flow(Conn("192.0.2.4", "198.51.100.4", 40004, link="sll"), "sll.example", [CERT_A])
    write_pcap(os.path.join(tmp, "sll.pcap"), p, linktype=113)
    lines, c, _ = run(["--pcap", os.path.join(tmp, "sll.pcap"), "--db", db, "--json"])
    if len(lines) != 1 or lines[0]["client_hellos"][0]["ja3"] != ja3:
        fail("sll: %s" % lines)
    ok("Linux SLL")

    # the store: the same key behind two subjects is a shared-key finding
    f = q(db, "--findings")["findings"]
    kinds = {x["kind"] for x in f}
    if "shared-key" not in kinds:
        fail("no shared-key finding: %s" % f)
    a = q(db, "--query", "cert=" + SHA1_A)
    if a["count"] != 3 or {l["value"] for l in a["links"] if l["kind"] == "sni"} != {"a.example", "v6.example", "sll.example"}:
        fail("cert A: %s" % a)
    srv = q(db, "--query", "server=2001:0db8:0:0::2")
    if srv["value"] != "2001:db8::2":
        fail("server spelling: %s" % srv["value"])
    ok("store: shared-key finding, a certificate's links, IPv6 spelling normalised")

    # --- 2. hostile and malformed ----------------------------------------------------------
    pk = []
    conn = Conn("192.0.2.10", "198.51.100.10", 41001)
    pk += conn.handshake_tcp()
    pk += conn.data(True, b"\x16\x03\x01\xff\xff" + bytes(40))  # record length past what comes
    conn = Conn("192.0.2.11", "198.51.100.11", 41002)
    p, _ = full_flow(conn, "big.example", [CERT_A], extra_ext=ext(0x1234, bytes(65000)))  # 64 KiB extension
    pk += p
    conn = Conn("192.0.2.17", "198.51.100.17", 41006)
    p, _ = full_flow(conn, "huge.example", [CERT_A], extra_ext=ext(0x1234, bytes(40000)) + ext(0x1235, bytes(40000)))  # past every limit
    pk += p
    conn = Conn("192.0.2.12", "198.51.100.12", 41003)
    p, _ = full_flow(conn, "garbage.example", [os.urandom(600)])  # garbage certificate
    pk += p
    conn = Conn("192.0.2.13", "198.51.100.13", 41004, sport=80)
    pk += conn.handshake_tcp() + conn.data(True, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # not TLS
    pk.append(ether(ipv4_packet("192.0.2.14", "198.51.100.14", bytes(40), frag=0x2000), 0x0800))  # fragment
    pk.append(ether(ipv4_packet("192.0.2.15", "198.51.100.15", bytes(8)), 0x0800))  # TCP header cut
    pk.append(ether(bytes(10), 0x0806))  # ARP
    pk.append(bytes(5))  # runt frame
    conn = Conn("192.0.2.16", "198.51.100.16", 41005)
    ch, _ = ch_record("trunc.example")
    bad = bytearray(ch)
    bad[9] = 0x7f  # handshake length past the record, record complete: refused
    pk += conn.handshake_tcp() + conn.data(True, bytes(bad))
    write_pcap(os.path.join(tmp, "hostile.pcap"), pk)
    lines, c, err = run(["--pcap", os.path.join(tmp, "hostile.pcap"), "--db", os.path.join(tmp, "db-h"), "--json"])
    need = {"not_tls": 1, "fragments": 1, "truncated": 2, "not_ip": 1, "cert_errors": 1}
    for k, v in need.items():
        if c.get(k, 0) < v:
            fail("hostile: %s=%s, expected >= %d\n%s" % (k, c.get(k), v, err))
    ports = {l["client_port"] for l in lines}
    if 41003 not in ports or 41002 not in ports:
        fail("hostile: the garbage-certificate or the 64 KiB-extension handshake is not stored")
    if c["refused"] + c["partial"] < 2 or c["refused"] + c["dir_cap_hits"] < 1:
        fail("hostile: refused=%d partial=%d dir_cap_hits=%d" % (c["refused"], c["partial"], c["dir_cap_hits"]))
    ok("hostile inputs counted and skipped: %s" % {k: c.get(k) for k in list(need) + ["refused", "partial", "dir_cap_hits"]})

    # --- 3. limits --------------------------------------------------------------------------
    pk = []
    conns = [Conn("192.0.2.%d" % (20 + i), "198.51.100.20", 42000 + i) for i in range(10)]
    for cn in conns:
        ch, _ = ch_record("lim.example")
        pk += cn.handshake_tcp() + cn.data(True, ch)  # ClientHello, no answer yet
    p, _ = full_flow(Conn("192.0.2.40", "198.51.100.40", 42100), "cap.example", [CERT_A, CERT_B, CERT_A])
    pk += p
    write_pcap(os.path.join(tmp, "limits.pcap"), pk)
    lines, c, err = run(["--pcap", os.path.join(tmp, "limits.pcap"), "--no-store", "--json", "--max-flows", "4",
                         "--max-dir-bytes", "1500"])
    if c["evicted"] < 6 or c["dir_cap_hits"] < 1:
        fail("limits: evicted=%d dir_cap_hits=%d" % (c["evicted"], c["dir_cap_hits"]))
    if len({l["client_port"] for l in lines if 42000 <= l["client_port"] < 42010}) != 10:
        fail("limits: evicted flows lost their ClientHello: %d" % len(lines))
    ok("limits: %d flows evicted and %d direction caps, all counted; every ClientHello still reported"
       % (c["evicted"], c["dir_cap_hits"]))

    # --- 4. ja3-jl lines of D4's Go sensor, as a D4 type-254 stream ---------------------------
    rec = {"ServerIP": "198.51.100.50", "ServerPort": "443", "ClientIP": "192.0.2.50", "ClientPort": "43000",
           "TLSH": "", "Timestamp": "2019-06-03T14:05:22.123456789+02:00",
           "JA3": "771,4865-4866,0-23,29-23,0", "JA3Digest": hashlib.md5(b"771,4865-4866,0-23,29-23,0").hexdigest(),
           "JA3S": "771,4865,43-51", "JA3SDigest": hashlib.md5(b"771,4865,43-51").hexdigest(),
           "Certificates": [{"CertHash": hashlib.sha256(CERT_B).hexdigest(), "Raw": base64.b64encode(CERT_B).decode(),
                             "IsCA": False}]}
    # as the Go sensor writes them: json.MarshalIndent output back to back, no separator; then
    # a compact record on a line, a record without addresses, and bytes outside any object
    bad = {"ClientIP": 1, "Note": "a } and a \\\" in a string"}
    jl = (json.dumps(rec, indent=4) + json.dumps(rec, indent=4) + "\n" + json.dumps(rec) + "\n" +
          json.dumps(bad) + "\ngarbage\n").encode()
    from ingestlib import frame
    uuid = "5b642239-4db4-4580-adf4-4ebd950d210f"
    key = "k"
    d4 = frame(uuid, 2, key, json.dumps({"type": "ja3-jl"}), ts=1559563522)
    half = len(jl) // 2
    d4 += frame(uuid, 254, key, jl[:half], ts=1559563522) + frame(uuid, 254, key, jl[half:], ts=1559563523)
    dbj = os.path.join(tmp, "db-jl")
    lines, c, err = run(["--db", dbj], stdin=d4)
    if c["jl_sessions"] != 3 or c["jl_bad"] != 1 or c["jl_garbage"] != 1:
        fail("ja3-jl: %s\n%s" % (c, err))
    j = q(dbj, "--query", "ja3=" + rec["JA3Digest"])
    if j["count"] != 3 or j.get("detail") != rec["JA3"] or j["first_seen"] != 1559563522:  # 14:05:22+02:00
        fail("ja3-jl: pivot %s" % j)
    cert = q(dbj, "--query", "cert=" + SHA1_B)
    if cert["cert"]["cn"] != "other.example":
        fail("ja3-jl: cert %s" % cert)
    ok("ja3-jl: indented records back to back and JSON lines: 3 sessions, 1 bad record and 1 run of garbage counted")

    # --- 5. weak keys: two certificates whose RSA moduli share a prime -------------------------
    # cert-a.der with its 2048-bit modulus replaced (the signature no longer verifies: a passive
    # analyzer does not check it); p shared, q1 and q2 distinct.
    import random

    def probable_prime(bits, rng):
        while True:
            n = rng.getrandbits(bits) | (1 << (bits - 1)) | (1 << (bits - 2)) | 1
            if all(n % sp for sp in (3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)) and \
                    all(pow(a, n - 1, n) == 1 for a in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29)):
                return n

    rng = random.Random(8)
    pr, q1, q2 = (probable_prime(1024, rng) for _ in range(3))
    at = CERT_A.find(bytes.fromhex("0282010100"))
    if at < 0:
        fail("cert-a.der: no 2048-bit modulus found")
    weak = [CERT_A[:at + 5] + (pr * q).to_bytes(256, "big") + CERT_A[at + 5 + 256:] for q in (q1, q2)]
    pk = []
    for i, der in enumerate(weak):
        p, _ = full_flow(Conn("192.0.2.%d" % (60 + i), "198.51.100.60", 44000 + i), "weak.example", [der])
        pk += p
    write_pcap(os.path.join(tmp, "weak.pcap"), pk)
    dbw = os.path.join(tmp, "db-weak")
    run(["--pcap", os.path.join(tmp, "weak.pcap"), "--db", dbw])
    f = q(dbw, "--findings")["findings"]
    shared = [x for x in f if x["kind"] == "shared-prime"]
    if len({x["key"] for x in shared}) != 2:
        fail("weak keys: shared-prime findings %s" % shared)
    ev = shared[0]["evidence"]
    if int(ev["p"], 16) not in (pr, q1, q2) or not ev["peers"]:
        fail("weak keys: evidence %s" % ev)
    keys = {q(dbw, "--query", "cert=" + hashlib.sha1(d).hexdigest())["cert"]["key"] for d in weak}
    if keys != {x["key"] for x in shared}:
        fail("weak keys: findings name %s, certificates have %s" % ({x["key"] for x in shared}, keys))
    ok("weak keys: both moduli sharing a prime are findings, with the factor and the peer")

    # many new keys in one commit (a first import): one batch GCD instead of one check each
    primes = [int(subprocess.run(["openssl", "prime", "-generate", "-bits", "1024"], check=True,
                                 stdout=subprocess.PIPE).stdout) for _ in range(36)]
    many = [CERT_A[:at + 5] + (primes[2 * i] * primes[2 * i + 1]).to_bytes(256, "big") + CERT_A[at + 5 + 256:]
            for i in range(18)]
    pr2, qa, qb = primes[0], probable_prime(1024, rng), probable_prime(1024, rng)
    many += [CERT_A[:at + 5] + (pr2 * q).to_bytes(256, "big") + CERT_A[at + 5 + 256:] for q in (qa, qb)]
    pk = []
    for i, der in enumerate(many):
        p, _ = full_flow(Conn("192.0.2.%d" % (100 + i), "198.51.100.61", 45000 + i), "many.example", [der])
        pk += p
    write_pcap(os.path.join(tmp, "many.pcap"), pk)
    dbm = os.path.join(tmp, "db-many")
    _, c, err = run(["--pcap", os.path.join(tmp, "many.pcap"), "--db", dbm])
    if c.get("wk_batches") != 1 or c["wk_checked"] != 20:
        fail("batch GCD: counters %s" % c)
    shared = {x["key"] for x in q(dbm, "--findings")["findings"] if x["kind"] == "shared-prime"}
    want = {q(dbm, "--query", "cert=" + hashlib.sha1(d).hexdigest())["cert"]["key"] for d in (many[0], many[18], many[19])}
    if shared != want:
        fail("batch GCD: shared-prime findings for %d keys, expected the 3 sharing a prime" % len(shared))
    ok("weak keys: 20 new keys in one commit, one batch GCD, exactly the 3 moduli sharing a prime")
finally:
    shutil.rmtree(tmp, ignore_errors=True)
print("PASS")
