"""d4-analyzer-tls in protocol mode.
1. Under tests/integration/fake_dispatcher.py: REGISTER, cumulative ACKs after its flush, BYE, a queue
   parameter it does not know ignored, and a seq gap stops it. The scenario's 254 ja3-jl session
   carries 30 JSON lines that are no ja3-jl records: each is counted as bad.
2. A type-1 session whose last flow (a ClientHello, no answer) stays open while the sensor is quiet:
   with param.idle_timeout=1 the handshake is in the store (queried while the analyzer runs) within
   a few seconds, before any further data, END or BYE."""
import os
import subprocess
import sys
import tempfile
import shutil

sys.path.insert(0, os.path.dirname(__file__))
from tlslib import ANALYZER, fail, ok, counters  # noqa: E402

FAKE = os.path.join(os.path.dirname(__file__), "fake_dispatcher.py")
if not os.path.exists(ANALYZER):
    fail("no " + ANALYZER)
tmp = tempfile.mkdtemp(prefix="d4-tls-proto-")
try:
    for scenario in ("normal", "seq-gap", "eof"):
        out, err = os.path.join(tmp, scenario + ".out"), os.path.join(tmp, scenario + ".err")
        p = subprocess.run([sys.executable, FAKE, "--scenario", scenario, "--out", out, "--err", err, "--",
                            ANALYZER, "--db", os.path.join(tmp, "db")], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=120)
        if p.returncode != 0:
            fail("%s: %s\n%s" % (scenario, p.stdout.decode(), open(err).read() if os.path.exists(err) else ""))
        if scenario == "normal":
            c = counters(open(err).read())
            if c.get("jl_records", 0) != 30 or c["jl_records"] != c["jl_bad"] or c["jl_sessions"] != 0:
                fail("normal: counters %s" % c)
        ok("fake dispatcher, scenario %s" % scenario)

    # --- 2. a quiet sensor's last handshake is stored by idle_cb ---------------------------
    import json
    import socket
    import struct
    import time
    sys.path.insert(0, os.path.dirname(FAKE))
    import fake_dispatcher as fd
    from tlslib import Conn, pcap_global, pcap_record, records, handshake, client_hello_body, sni_ext, u16

    db = os.path.join(tmp, "db-idle")
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    errf = open(os.path.join(tmp, "idle.err"), "wb")
    proc = subprocess.Popen([ANALYZER], stdin=theirs, stdout=subprocess.DEVNULL, stderr=errf)
    theirs.close()
    try:
        reader = fd.Reader(ours)
        reader.start()
        params = fd.s16(b"db") + fd.s16(db.encode()) + fd.s16(b"idle_timeout") + fd.s16(b"1")
        ours.sendall(b"D4AP" + fd.msg(fd.HELLO, struct.pack("<H", 1) + fd.s16(b"q-tls") + struct.pack("<H", 2) + params))
        if not reader.wait(lambda: reader.msgs):
            fail("idle: no REGISTER")
        conn = Conn("192.0.2.70", "198.51.100.70", 46000)
        ch = records(handshake(1, client_hello_body([0x1301, 0xc02f], [sni_ext("quiet.example")])))
        now = int(time.time())
        pcap = pcap_global() + b"".join(pcap_record(now, p) for p in conn.handshake_tcp() + conn.data(True, ch))
        uuid = bytes.fromhex("5b6422394db44580adf44ebd950d210f")
        ours.sendall(fd.start(7, 1, uuid, 4000) + fd.msg(fd.DATA, struct.pack("<QQ", 7, 1) + fd.frame(1, uuid, pcap, ts=now)))
        if not reader.wait(lambda: any(k == fd.ACK for k, _ in reader.msgs)):
            fail("idle: no ACK")
        found = None
        end = time.time() + 15
        while time.time() < end and not found:
            time.sleep(0.5)
            if not os.path.isdir(db):
                continue
            p = subprocess.run([ANALYZER, "--db", db, "--sessions", "sni=quiet.example"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=30)
            if p.returncode == 0:
                found = json.loads(p.stdout)["sessions"]
            elif os.environ.get("TLS_DEBUG"):
                print(p.returncode, p.stderr, reader.msgs)
        if not found or found[0]["client_port"] != 46000:
            fail("idle: the quiet sensor's handshake is not in the store: %s" % found)
        ours.sendall(fd.msg(fd.END, struct.pack("<QQB", 7, now, 0)) + fd.msg(fd.BYE))
        if proc.wait(20) != 0:
            fail("idle: exit %d" % proc.returncode)
        ok("a quiet sensor's open handshake is stored after the idle timeout, before END")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        ours.close()
        errf.close()
finally:
    shutil.rmtree(tmp, ignore_errors=True)
print("PASS")
