#!/usr/bin/env python3
"""The whole server, end to end, as an operator and a sensor meet it.

From an empty data directory, `d4ctl start` with the quick-start configuration (archive and
stdout queues) on ports the kernel picks:

- the first admin logs in with the printed password and must change it;
- an admin makes a sensor-register user and token; with that token a sensor is registered
  through d4-core's call, is seen pending, and is approved;
- a passivedns CSV file and a pcap are streamed with d4-client over TLS (certificate verified);
  the archive's files equal what was sent, byte for byte (pcap: whole records, each file a
  valid pcap; tcpdump reads them when it is installed);
- the REST statistics show the bytes sent, and the passive DNS analyzer of the set has the CSV's
  records (searched through d4-web);
- an unregistered sensor and a sensor with a wrong key are refused, and their refusals are
  counted;
- kill -9 of each of d4-dispatch, d4-web and d4-ingest while a sensor streams: the master
  restarts it, the client reconnects (ingest) and sends its last frames again, dispatch skips
  the copies, and the archive holds every line exactly once, in order;
- `d4ctl stop` leaves no process behind.
"""
import glob
import gzip
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import threading
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from ingestlib import wait_for  # noqa: E402
from weblib import Client  # noqa: E402

BIN = os.environ.get("D4_BIN", os.path.join(os.path.dirname(__file__), "../../build/bin"))
SRC = os.environ.get("D4_SRC", os.path.join(os.path.dirname(__file__), "../.."))
CTL = os.path.join(BIN, "d4ctl")


def pcap_bytes(n, seed):
    rnd = random.Random(seed)
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for i in range(n):
        size = rnd.randint(40, 1514)
        out += struct.pack("<IIII", 1700000000 + i, i, size, size)
        out += bytes(rnd.getrandbits(8) for _ in range(size))
    return bytes(out)


def pcap_records(data):
    """The records of a pcap byte string (header checked), as a list of bytes."""
    assert struct.unpack_from("<I", data, 0)[0] == 0xA1B2C3D4, "not a little-endian pcap"
    recs, off = [], 24
    while off < len(data):
        incl = struct.unpack_from("<I", data, off + 8)[0]
        assert off + 16 + incl <= len(data), "a record is cut at the end of a file"
        recs.append(data[off:off + 16 + incl])
        off += 16 + incl
    return recs


def read_archive(paths):
    out = []
    for p in sorted(paths):
        with (gzip.open(p, "rb") if p.endswith(".gz") else open(p, "rb")) as f:
            out.append(f.read())
    return out


class EndToEnd(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="d4-e2e-")
        self.data = os.path.join(self.dir, "var")
        # a fixed port (a restarted ingest must listen where the sensors reconnect)
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        self.sets = ["d4.data_dir=" + self.data, "ingest.listen=127.0.0.1:%d" % port,
                     "web.listen=127.0.0.1:0", "web.argon2_memory=256k", "web.argon2_passes=1",
                     "queue.archive.param.dir=" + os.path.join(self.data, "archive"),
                     "queue.pdns.param.db=" + os.path.join(self.data, "analyzers", "pdns"),
                     "queue.tls.param.db=" + os.path.join(self.data, "analyzers", "tls"),
                     "d4.log_level=info"]

    def tearDown(self):
        subprocess.run(self.ctl_args("stop"), capture_output=True, timeout=90)
        shutil.rmtree(self.dir, ignore_errors=True)

    def ctl_args(self, *args):
        out = [CTL, "-c", os.path.join(SRC, "etc/quickstart.conf")]
        for s in self.sets:
            out += ["--set", s]
        return out + list(args)

    def ctl(self, *args, check=True):
        p = subprocess.run(self.ctl_args(*args), capture_output=True, text=True, timeout=90)
        if check and p.returncode != 0:
            raise AssertionError("d4ctl %s: %d %s %s" % (args, p.returncode, p.stdout, p.stderr))
        return p

    def log(self):
        with open(os.path.join(self.data, "log/d4.log"), errors="replace") as f:
            return f.read()

    def procs(self):
        return {p["name"]: p for p in json.loads(self.ctl("--json", "status", check=False).stdout)["processes"]}

    def client(self, uid, key, ftype, source, *extra):
        cmd = [os.path.join(BIN, "d4-client"), "--uuid", uid, "--key", key, "--type", str(ftype),
               "--source", source, "--destination", "127.0.0.1:%d" % self.ingest_port,
               "--ca", os.path.join(self.data, "tls/server.crt"), "--snaplen", "4096",
               "--flush-timeout", "60s", "--retry-max", "500ms"] + list(extra)
        return cmd

    def test_everything(self):
        # ---- start from nothing ----
        out = self.ctl("start").stdout
        admin_pw = re.search(r"^password: (\S+)$", out, re.M).group(1)
        ports = wait_for(lambda: (lambda m: m if len(m) == 2 else None)(
            dict(re.findall(r"d4-(ingest|web)\[\d+\] notice listening address=\S+ port=(\d+)",
                            self.log()))), what="ingest and web listening")
        self.ingest_port = int(ports["ingest"])

        class W:  # what weblib.Client needs of a server
            def __init__(self, port):
                self.port = port
                self.plain_http = False
                self.replies = []

        from weblib import Web
        web = Web.__new__(Web)
        web.port, web.plain_http, web.replies = int(ports["web"]), False, []
        wait_for(lambda: web.request("GET", "/api/v1/health").status == 200, what="web health")

        admin = Client(web)
        self.assertEqual(admin.login("admin", admin_pw).status, 200)
        self.assertEqual(admin.get("/api/v1/sensors").status, 403)  # must change first
        self.assertEqual(admin.post("/api/v1/password", {"old": admin_pw, "new": "a better admin password"}).status, 200)

        # ---- a registrar token, d4-core's registration call, pending, approved ----
        r = admin.post("/api/v1/users", {"name": "registrar", "role": "sensor-register",
                                         "password": "registrar password"})
        self.assertIn(r.status, (200, 201), r)
        r = admin.post("/api/v1/tokens", {"user": "registrar", "description": "e2e"})
        self.assertIn(r.status, (200, 201), r)
        token = r.json["token"]
        reg = Client(web, token=token, bearer=False)  # d4-core's "Authorization: <token>"
        uid, key = "b7a1e8c2-4d5f-4e6a-9b8c-7d6e5f4a3b21", "e2e sensor key"
        r = reg.post("/api/v1/add/sensor/register", {"uuid": uid, "hmac_key": key,
                                                      "description": "e2e sensor"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json, {"uuid": uid})
        self.assertEqual(reg.post("/api/v1/add/sensor/register", {"uuid": uid, "hmac_key": key}).status, 409)
        self.assertEqual(reg.get("/api/v1/sensors").status, 403)
        self.assertEqual(admin.get("/api/v1/sensors/" + uid).json["registration"]["state"], "pending")
        self.assertEqual(admin.post("/api/v1/sensors/%s/approve" % uid).status, 200)

        # ---- a passivedns CSV and a pcap over TLS ----
        csv_lines = []
        rnd = random.Random(8)
        for i in range(3000):
            csv_lines.append("1700000%03d.%06d||192.0.2.%d||198.51.100.53||IN||host%d.example.com.||A||203.0.113.%d||3600||%d\n"
                             % (i % 1000, i, i % 250, rnd.randint(0, 500), i % 250, 1 + i % 7))
        csv = "".join(csv_lines).encode()
        csv_path = os.path.join(self.dir, "pdns.csv")
        with open(csv_path, "wb") as f:
            f.write(csv)
        pcap = pcap_bytes(400, 1)
        pcap_path = os.path.join(self.dir, "capture.pcap")
        with open(pcap_path, "wb") as f:
            f.write(pcap)
        subprocess.run(self.client(uid, key, 8, csv_path), check=True, capture_output=True, timeout=60)
        subprocess.run(self.client(uid, key, 1, pcap_path), check=True, capture_output=True, timeout=60)

        # ---- refusals: not registered, wrong key ----
        stranger = "c3d4e5f6-a7b8-4c9d-8e0f-1a2b3c4d5e6f"
        subprocess.run(self.client(stranger, key, 3, csv_path, "--flush-timeout", "2s"),
                       capture_output=True, timeout=60)
        wrong = "d1e2f3a4-b5c6-4d7e-8f90-a1b2c3d4e5f6"
        self.assertEqual(admin.post("/api/v1/add/sensor/register", {"uuid": wrong, "hmac_key": "right"}).status, 200)
        admin.post("/api/v1/sensors/%s/approve" % wrong)
        subprocess.run(self.client(wrong, "not the key", 3, csv_path, "--flush-timeout", "2s"),
                       capture_output=True, timeout=60)
        wait_for(lambda: "reason=sensor_not_registered" in self.log() and "reason=hmac_mismatch" in self.log(),
                 what="both refusals logged")
        st = wait_for(lambda: (admin.get("/api/v1/sensors/" + wrong).json.get("statistics") or {}).get("refusals"),
                      what="the wrong key counted on its sensor")
        self.assertGreaterEqual(st.get("hmac_mismatch", 0), 1)

        # ---- the REST statistics show the bytes sent ----
        stats = wait_for(lambda: (lambda s: s if s and s.get("bytes") == len(csv) + len(pcap) else None)(
            admin.get("/api/v1/sensors/" + uid).json.get("statistics")), timeout=15, what="statistics")
        per_type = {t["type"]: t["bytes"] for t in stats["types"]}
        self.assertEqual(per_type[8], len(csv))
        self.assertEqual(per_type[1], len(pcap))
        metrics = web.request("GET", "/metrics", headers={"Authorization": "Bearer " + token})
        self.assertIn(metrics.status, (200, 403))  # the registrar may not read metrics
        m = admin.get("/metrics")
        self.assertEqual(m.status, 200)
        # the same byte counts in the Prometheus text (the only sensor with traffic so far)
        self.assertIn(b'd4_bytes_total{type="8",name="passivedns"} %d\n' % len(csv), m.body)
        self.assertIn(b'd4_bytes_total{type="1",name="pcap"} %d\n' % len(pcap), m.body)
        refused = dict(re.findall(rb'd4_refusals_total\{reason="(\w+)"\} (\d+)', m.body))
        self.assertGreaterEqual(int(refused[b"sensor_not_registered"]), 1)
        self.assertGreaterEqual(int(refused[b"hmac_mismatch"]), 1)

        # ---- the quick-start set's passive DNS analyzer stored the CSV: the UI's API finds
        # each address of a name with the CSV's count column summed ----
        name = csv_lines[0].split("||")[4].rstrip(".")
        want = {}
        for ln in csv_lines:
            f = ln.split("||")
            if f[4].rstrip(".") == name:
                want[f[6]] = want.get(f[6], 0) + int(f[8])

        def pdns_found():
            r = admin.get("/api/v1/pdns/query?q=" + name)
            got = {rec["rdata"][0]: rec["count"] for rec in r.json["records"]} if r.status == 200 else None
            return got if got == want else None
        wait_for(pdns_found, timeout=20, what="the CSV's records in passive DNS")

        # ---- kill -9 of dispatch during a stream, of web, of ingest between bursts ----
        fifo = os.path.join(self.dir, "live")
        os.mkfifo(fifo)
        live_log = open(os.path.join(self.dir, "live.log"), "wb")
        live = subprocess.Popen(self.client(uid, key, 3, fifo), stdout=subprocess.DEVNULL,
                                stderr=live_log)
        w = open(fifo, "wb", buffering=0)
        sent = []

        def burst(tag, n):
            for i in range(n):
                line = b"%s line %05d\n" % (tag, i)
                sent.append(line)
                w.write(line)
                if i % 50 == 0:
                    time.sleep(0.01)
        burst(b"before", 500)
        pid = self.procs()["dispatch"]["pid"]
        os.kill(pid, signal.SIGKILL)
        burst(b"during", 500)
        wait_for(lambda: self.procs()["dispatch"]["pid"] != pid and self.procs()["dispatch"]["alive"],
                 timeout=20, what="dispatch restarted")
        pid = self.procs()["web"]["pid"]
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: self.procs()["web"]["pid"] != pid and self.procs()["web"]["alive"],
                 timeout=20, what="web restarted")
        # ingest dies while the sensor streams: what it held and what sat in the sockets is
        # lost on the wire; the client sends its last frames again after reconnecting and
        # dispatch skips those it already delivered, so the archive has each line once
        pid = self.procs()["ingest"]["pid"]
        writer = threading.Thread(target=burst, args=(b"ingest", 1500))
        writer.start()
        time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
        writer.join()
        wait_for(lambda: self.procs()["ingest"]["pid"] != pid and self.procs()["ingest"]["alive"],
                 timeout=20, what="ingest restarted")
        burst(b"after", 500)
        w.close()
        rc = live.wait(timeout=90)
        live_log.close()
        if rc != 0:
            with open(os.path.join(self.dir, "live.log"), errors="replace") as f:
                sys.stderr.write(f.read()[-3000:])
            sys.stderr.write(self.log()[-6000:])
        self.assertEqual(rc, 0)

        # ---- stop, then the archive ----
        pids = [p["pid"] for p in self.procs().values() if p["pid"] > 0]
        self.ctl("stop")
        for p in pids:
            with self.assertRaises(ProcessLookupError):
                os.kill(p, 0)
        base = os.path.join(self.data, "archive", uid)
        csv_files = glob.glob(os.path.join(base, "8", "*", "*", "*", "*"))
        self.assertTrue(csv_files)
        self.assertEqual(b"".join(read_archive(csv_files)), csv)
        pcap_files = glob.glob(os.path.join(base, "1", "*", "*", "*", "*"))
        self.assertTrue(pcap_files)
        recs = []
        for i, data in enumerate(read_archive(pcap_files)):
            self.assertEqual(data[:24], pcap[:24])
            mine = pcap_records(data)
            recs += mine
            if shutil.which("tcpdump"):  # libpcap reads every file whole
                tmp = os.path.join(self.dir, "check%d.pcap" % i)
                with open(tmp, "wb") as f:
                    f.write(data)
                p = subprocess.run(["tcpdump", "-nr", tmp, "--count"], capture_output=True)
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertIn(b"%d packets" % len(mine), p.stdout + p.stderr)
        self.assertEqual(b"".join(recs), pcap[24:])
        # the live stream: every line at least once, in order. Copies can only come from the
        # dispatcher's restart (ingest replays what it had not acknowledged, and the client's
        # resent window reaches back before that restart); from the ingest kill on, the
        # dispatcher recognised the resent frames: each of those lines exactly once.
        live_files = glob.glob(os.path.join(base, "3", "*", "*", "*", "*"))
        got = b"".join(read_archive(live_files)).splitlines(keepends=True)
        seen, order = set(), []
        for ln in got:
            if ln not in seen:
                seen.add(ln)
                order.append(ln)
        self.assertEqual(order, sent)
        late = [ln for ln in got if ln.startswith((b"ingest ", b"after "))]
        self.assertEqual(late, [ln for ln in sent if ln.startswith((b"ingest ", b"after "))])
        with open(os.path.join(self.dir, "live.log"), errors="replace") as f:
            resent = [int(n) for n in re.findall(r"resend_frames=(\d+)", f.read())]
        self.assertTrue(resent and max(resent) > 0, "the client sent nothing again: %s" % resent)


if __name__ == "__main__":
    unittest.main(verbosity=2)
