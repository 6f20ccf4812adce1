#!/usr/bin/env python3
"""d4-ingest's TLS policy and per-sensor settings.

- TLS 1.0 / 1.1 are refused, 1.2 and 1.3 accepted;
- client certificates pinned per sensor (ingest.client_cert=optional): the pinned certificate
  is accepted, another one or none is refused with reason client_cert, and a sensor without
  a pin is unaffected;
- a per-sensor payload limit below the server's;
- a per-sensor rate limit holds the sensor back (TCP backpressure) without losing anything.
"""
import hashlib
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from ingestlib import Server, Sensor, frame, parse_frames, wait_for  # noqa: E402

KEY = "tls test key"


def make_client_cert(directory, name):
    key, crt = os.path.join(directory, name + ".key"), os.path.join(directory, name + ".crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", crt, "-days", "2", "-subj", "/CN=" + name],
                   check=True, capture_output=True)
    der = subprocess.run(["openssl", "x509", "-in", crt, "-outform", "DER"], check=True,
                         capture_output=True).stdout
    return crt, key, hashlib.sha256(der).hexdigest()


def tls_connect(port, version=None, cert=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = version
    if cert is not None:
        ctx.load_cert_chain(*cert)
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    s = Sensor.__new__(Sensor)
    s.sock = ctx.wrap_socket(raw, server_hostname="localhost")
    return s


class Tls(unittest.TestCase):
    def test_versions(self):
        with Server() as srv:
            uid = srv.register(KEY)
            for v in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
                s = tls_connect(srv.port, v)
                s.send(frame(uid, 3, KEY, b"%s\n" % str(v).encode()))
                self.assertTrue(s.alive())
                s.close()
            # the server itself refuses older versions (the client is told to allow them)
            for flag in ("-tls1", "-tls1_1"):
                p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % srv.port,
                                    flag, "-cipher", "DEFAULT@SECLEVEL=0"], input=b"",
                                   capture_output=True, timeout=20)
                self.assertIn(b"alert protocol version", p.stdout + p.stderr, flag)
            wait_for(lambda: len(parse_frames(srv.received())) == 2, what="the two frames")

    def test_client_certificate_pins(self):
        with Server(sets=["ingest.client_cert=optional"]) as srv:
            good = make_client_cert(srv.dir, "sensor-a")
            other = make_client_cert(srv.dir, "sensor-b")
            pinned = srv.register(KEY)
            srv.ctl("sensor", "set", pinned, "--cert-pin", good[2])
            unpinned = srv.register(KEY)

            s = tls_connect(srv.port, cert=good[:2])
            s.send(frame(pinned, 3, KEY, b"pinned and right\n"))
            self.assertTrue(s.alive())
            s.close()
            for cert in (other[:2], None):
                s = tls_connect(srv.port, cert=cert)
                s.send(frame(pinned, 3, KEY, b"pinned and wrong\n"))
                self.assertTrue(s.closed_by_server())
                s.close()
            srv.wait_log(r"reason=client_cert detail=\"?no certificate")
            srv.wait_log(r"reason=client_cert detail=\"?certificate does not match")
            s = tls_connect(srv.port)
            s.send(frame(unpinned, 3, KEY, b"no pin, no certificate\n"))
            self.assertTrue(s.alive())
            s.close()
            wait_for(lambda: len(parse_frames(srv.received())) == 2, what="the accepted frames")

    def test_private_ca_required(self):
        """deploy/gen-certs.sh's CA: a sensor certificate it signed is accepted, a self-signed
        one and none are refused at the handshake (ingest.client_cert = required)."""
        src = os.environ.get("D4_SRC", os.path.join(os.path.dirname(__file__), "../.."))
        ca = tempfile.mkdtemp(prefix="d4-ca-")
        try:
            gen = os.path.join(src, "deploy/gen-certs.sh")
            uid_cert = "0b1d6cbe-6f8e-4d36-9a55-0c3f3a0e2b51"
            subprocess.run([gen, "ca", ca], check=True, capture_output=True)
            out = subprocess.run([gen, "sensor", ca, uid_cert], check=True, capture_output=True).stdout
            self.assertIn(b"--cert-pin", out)
            with Server(sets=["ingest.client_cert=required",
                              "ingest.client_ca=" + os.path.join(ca, "ca.crt")]) as srv:
                uid = srv.register(KEY, uid=uid_cert)
                signed = (os.path.join(ca, "sensors", uid_cert + ".crt"),
                          os.path.join(ca, "sensors", uid_cert + ".key"))
                s = tls_connect(srv.port, cert=signed)
                s.send(frame(uid, 3, KEY, b"signed by the CA\n"))
                self.assertTrue(s.alive())
                s.close()
                selfsigned = make_client_cert(srv.dir, "stranger")
                for cert in (selfsigned[:2], None):
                    try:
                        s = tls_connect(srv.port, cert=cert)
                        s.send(frame(uid, 3, KEY, b"not signed\n"))
                        refused = s.closed_by_server()
                        s.close()
                    except (ssl.SSLError, ConnectionError):
                        refused = True
                    self.assertTrue(refused)
                wait_for(lambda: len(parse_frames(srv.received())) == 1, what="the one good frame")
                time.sleep(0.5)
                self.assertEqual(len(parse_frames(srv.received())), 1)
        finally:
            shutil.rmtree(ca, ignore_errors=True)

    def test_per_sensor_payload_limit(self):
        with Server() as srv:
            uid = srv.register(KEY)
            srv.ctl("sensor", "set", uid, "--max-payload", "1000")
            s = Sensor(srv.port)
            s.send(frame(uid, 3, KEY, b"a" * 1000))
            self.assertTrue(s.alive())
            try:
                s.send(frame(uid, 3, KEY, b"a" * 1001))
                closed = s.closed_by_server()
            except (ssl.SSLError, ConnectionError):
                closed = True
            self.assertTrue(closed)
            s.close()
            srv.wait_log(r"reason=payload_too_large detail=\"1001 bytes, limit 1000\"")

    def test_rate_limit(self):
        with Server() as srv:
            uid = srv.register(KEY)
            srv.ctl("sensor", "set", uid, "--rate-limit", "100000")
            s = Sensor(srv.port)
            start = time.time()
            for i in range(200):  # 800 kB at 100 kB/s
                s.send(frame(uid, 3, KEY, b"%03d" % i + b"r" * 3997))
            s.close()
            wait_for(lambda: len(parse_frames(srv.received())) == 200, timeout=60, what="all frames")
            # reads stop while the sensor is over its rate: beyond one read (256 KiB) and one
            # second's worth (100 kB), the rest waits for the bucket to refill, however fast
            # the machine is: at least (800 - 256 - 100) / 100 = 4.4 s; nothing is dropped
            self.assertGreater(time.time() - start, 3.0)
            self.assertEqual([p[:3] for _, p in parse_frames(srv.received())],
                             [b"%03d" % i for i in range(200)])


if __name__ == "__main__":
    unittest.main(verbosity=2)
