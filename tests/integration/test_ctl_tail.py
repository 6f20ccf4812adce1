#!/usr/bin/env python3
"""d4ctl tail: a live copy of one sensor's frames, which never slows the pipeline.

- `d4ctl tail --uuid U --payload --count N` prints exactly U's payloads, not another sensor's;
- the frame lines carry the type and uuid, as `d4ctl decode` prints them;
- a tap client that never reads does not hold anything back: every frame still reaches the
  analyzer, and the skipped copies are counted in dispatch's log.
"""
import os
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from ingestlib import BIN, Sensor, Server, frame, wait_for, write_analyzer  # noqa: E402

KEY = "tail key"


class Tail(unittest.TestCase):
    def test_tail(self):
        srv = Server(dispatch_conf="")
        analyzer = write_analyzer(srv.dir)
        out = os.path.join(srv.dir, "q")
        os.makedirs(out)
        srv.write_conf("[queue.q]\ntypes = 3 8\ncommand = %s\n[queue.q.param]\nout = %s\n" % (analyzer, out))
        with srv:
            a, b = srv.register(KEY), srv.register(KEY)
            tap = os.path.join(srv.data, "run/tap.sock")
            wait_for(lambda: os.path.exists(tap), what="the tap socket")
            ctl = [os.path.join(BIN, "d4ctl"), "--set", "d4.data_dir=" + srv.data]
            payloads = subprocess.Popen(ctl + ["tail", "--uuid", a, "--payload", "--count", "5"],
                                        stdout=subprocess.PIPE)
            lines = subprocess.Popen(ctl + ["tail", "--type", "8", "--count", "2", "--key", KEY],
                                     stdout=subprocess.PIPE)
            # a tap that never reads
            stuck = socket.socket(socket.AF_UNIX)
            stuck.connect(tap)
            stuck.sendall(b"tap * *\n")
            wait_for(lambda: srv.read_dispatch_log().count("tap-opened") == 3, what="three taps")
            sa, sb = Sensor(srv.port), Sensor(srv.port)
            for i in range(5):
                sa.send(frame(a, 3, KEY, b"from a %d\n" % i))
                sb.send(frame(b, 3, KEY, b"from b %d\n" % i))
            sb8 = Sensor(srv.port)
            sb8.send(frame(b, 8, KEY, b"x" * 100))
            sb8.send(frame(b, 8, KEY, b"y" * 100))
            big = b"z" * 60000
            for _ in range(100):  # 6 MB for the stuck tap to choke on
                sa.send(frame(a, 3, KEY, big))
            for s in (sa, sb, sb8):
                s.close()
            self.assertEqual(payloads.communicate(timeout=30)[0],
                             b"".join(b"from a %d\n" % i for i in range(5)))
            out_lines = lines.communicate(timeout=30)[0].decode().splitlines()
            self.assertEqual(len(out_lines), 2)
            for ln in out_lines:
                self.assertIn("type=8(passivedns) uuid=%s" % b, ln)
                self.assertIn("hmac=ok", ln)
            path = os.path.join(out, a.replace("-", "") + "-3.bin")
            want = 5 * len(b"from a 0\n") + 100 * len(big)
            wait_for(lambda: os.path.exists(path) and os.path.getsize(path) == want, timeout=30,
                     what="every frame at the analyzer despite the stuck tap")
            stuck.close()
            wait_for(lambda: srv.read_dispatch_log().count("tap-closed") == 3, what="the stuck tap closed")
            self.assertRegex(srv.read_dispatch_log(), r"tap-closed frames=\d+ skipped=[1-9]")


if __name__ == "__main__":
    unittest.main(verbosity=2)
