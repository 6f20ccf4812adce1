#!/usr/bin/env python3
"""The framing of the reference clients, accepted and archived correctly.

- d4-core's C client: it writes each header and each payload in separate writes, and its
  README pipes its stdout through a TLS relay (socat); a zero-length packet may end the stream.
  Here: d4-client --destination stdout --eof-frame | socat - OPENSSL:..., and a raw sender that
  writes every header in two pieces and every payload in its own write.
- the Go client (d4-goclient): type 254 sent as a type-2 meta header first, then 254 frames,
  and the meta header sent again after every reconnect (a new session each time).
Both end in the archive byte for byte, the 254 stream under its meta-type.
"""
import glob
import gzip
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from ingestlib import BIN, Server, Sensor, frame, wait_for  # noqa: E402

KEY = "reference client key"
ARCHIVE = os.path.join(BIN, "d4-analyzer-archive")


def archived(out, uid, *parts):
    paths = sorted(glob.glob(os.path.join(out, uid, *parts, "*", "*", "*", "*")))
    data = b""
    for p in paths:
        if p.endswith(".json"):
            continue
        with (gzip.open(p, "rb") if p.endswith(".gz") else open(p, "rb")) as f:
            data += f.read()
    return data


class ReferenceClients(unittest.TestCase):
    def setUp(self):
        if not os.path.exists(ARCHIVE) or shutil.which("socat") is None:
            self.skipTest("d4-analyzer-archive or socat missing")
        self.tmp = tempfile.mkdtemp(prefix="d4-refclients-")
        self.out = os.path.join(self.tmp, "archive")
        self.srv = Server(dispatch_conf="")
        self.srv.write_conf("[queue.arc]\ntypes = 1 3 8 254\ncommand = %s --out %s --rotate 0\n"
                            % (ARCHIVE, self.out))
        self.srv.start()

    def tearDown(self):
        self.srv.__exit__(None, None, None)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def stop(self):
        """Stops ingest then dispatch (which stops the archive: files closed and compressed)."""
        self.srv.stop()

    def test_c_client_framing(self):
        uid = self.srv.register(KEY)
        text = b"".join(b"log line %05d from the C client\n" % i for i in range(2000))
        src = os.path.join(self.tmp, "input.txt")
        with open(src, "wb") as f:
            f.write(text)
        # d4-client | socat, as d4-core's README pipes the C client
        client = subprocess.Popen([os.path.join(BIN, "d4-client"), "--uuid", uid, "--key", KEY,
                                   "--type", "3", "--source", src, "--destination", "stdout",
                                   "--eof-frame"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        relay = subprocess.run(["socat", "-u", "-", "OPENSSL:127.0.0.1:%d,verify=0" % self.srv.port],
                               stdin=client.stdout, capture_output=True, timeout=60)
        client.stdout.close()
        self.assertEqual(client.wait(timeout=30), 0)
        self.assertEqual(relay.returncode, 0, relay.stderr)
        # the C client's writes: header in two pieces, then the payload on its own
        uid2 = self.srv.register(KEY)
        s = Sensor(self.srv.port)
        for off in range(0, len(text), 4096):
            f = frame(uid2, 8, KEY, text[off:off + 4096])
            s.send(f[:26])
            s.send(f[26:62])
            s.send(f[62:])
        s.send(frame(uid2, 8, KEY, b""))
        s.close()
        wait_for(lambda: self.srv.read_log().count("session-closed") >= 2, what="both sessions closed")
        self.stop()
        self.assertEqual(archived(self.out, uid, "3"), text)
        self.assertEqual(archived(self.out, uid2, "8"), text)
        self.assertNotIn("warn refused", self.srv.read_log())

    def test_go_client_meta_header_after_every_reconnect(self):
        uid = self.srv.register(KEY)
        meta = b'{"type": "ja3-jl", "encoding": "utf-8"}'
        lines = [b'{"ja3": "%032d", "n": %d}\n' % (i, i) for i in range(600)]
        for part in range(3):  # three connections, as after two reconnects
            s = Sensor(self.srv.port)
            s.send(frame(uid, 2, KEY, meta))
            for ln in lines[part * 200:(part + 1) * 200]:
                s.send(frame(uid, 254, KEY, ln))
            s.close()
            wait_for(lambda: self.srv.read_log().count("session-closed") >= part + 1,
                     what="session %d closed" % part)
        self.stop()
        # one file per session (three in the same second: -1, -2 suffixes), each whole
        got = archived(self.out, uid, "254", "ja3-jl").splitlines(keepends=True)
        self.assertEqual(sorted(got), sorted(lines))
        metas = glob.glob(os.path.join(self.out, uid, "254", "ja3-jl", "*", "*", "*", "*.json"))
        self.assertEqual(len(metas), 3)
        self.assertNotIn("warn refused", self.srv.read_log())


if __name__ == "__main__":
    unittest.main(verbosity=2)
