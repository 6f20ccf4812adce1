#!/usr/bin/env python3
"""d4-dispatch disk spool (docs/dispatch.md, "Disk spool").

- a stalled analyzer with memory = 1M and spool = 64M: the queue spools instead of pausing
  ingest (no PAUSE while the spool has room), segment files appear under
  <data_dir>/spool/q/0/ and `spooled` > 0 in the store; once the analyzer is replaced every
  record arrives, in order (the only repeat is the replay of what the killed process had not
  acknowledged), and the spool directory is empty again;
- memory and spool both full: when_full = pause pauses ingest (nothing dropped, everything
  arrives in order afterwards); when_full = drop-oldest drops and counts, never pauses, keeps
  memory and spool within their limits, and what arrives is in order.
"""
import glob
import os
import re
import signal
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from ingestlib import Sensor, Server, frame, wait_for, write_analyzer  # noqa: E402

KEY = "a sensor key"


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return b""


def pids(srv, q):
    return [int(p) for p in re.findall(r"analyzer-ready queue=%s instance=\d+ pid=(\d+)" % q,
                                       srv.read_dispatch_log())]


def stat_is(srv, pred):
    """A waiter: the queue's store record once pred(record) holds."""
    return lambda: (lambda q: q if q and pred(q) else None)(srv.queue_stats("q"))


class Spool(unittest.TestCase):
    def server(self, opts, sets=()):
        srv = Server(dispatch_conf="", sets=sets)
        analyzer = write_analyzer(srv.dir)
        out = os.path.join(srv.dir, "q")
        os.makedirs(out)
        open(os.path.join(out, "stall"), "w").close()
        srv.write_conf("[dispatch]\nrestart_backoff_max = 300ms\nwindow = 64k\n"
                       "\n[queue.q]\ncommand = %s\ntypes = 3\n%s\n"
                       "[queue.q.param]\nout = %s\nstall_after = 5\n" % (analyzer, opts, out))
        return srv, out

    def segments(self, srv):
        return glob.glob(os.path.join(srv.data, "spool", "q", "0", "*.seg"))

    def send_in_thread(self, uid, port, records):
        s = Sensor(port)
        s.sock.settimeout(120)
        errors = []

        def run():
            try:
                for r in records:
                    s.send(frame(uid, 3, KEY, r))
                s.close()
            except OSError as e:  # reported by the test, not lost in the thread
                errors.append(e)
        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t, errors

    def unstall(self, srv, out):
        os.unlink(os.path.join(out, "stall"))
        os.kill(pids(srv, "q")[0], signal.SIGKILL)

    def assert_in_order(self, lines, records):
        """lines is records[:k] + records[j:m] with j <= k: in order, and the only repeat is
        the new process getting what the killed one had not acknowledged."""
        index = {r: i for i, r in enumerate(records)}
        got = [index[line] for line in lines]  # KeyError: a line that was never sent
        k = 0
        while k < len(got) and got[k] == k:
            k += 1
        if k < len(got):
            self.assertLessEqual(got[k], k, "a gap before the restart")
            tail = got[k:]
            self.assertEqual(tail, list(range(tail[0], tail[0] + len(tail))),
                             "out of order after the restart")

    def test_spool_fills_and_drains_in_order(self):
        srv, out = self.server("memory = 1M\nspool = 64M\nwhen_full = pause")
        with srv:
            uid = srv.register(KEY)
            path = os.path.join(out, uid.replace("-", "") + "-3.bin")
            records = [(b"%06d " % i) + b"s" * 3990 + b"\n" for i in range(2000)]
            t, errors = self.send_in_thread(uid, srv.port, records)
            # ingest is never paused: every record reaches the queue although nothing drains
            st = wait_for(stat_is(srv, lambda q: q["received"] == len(records) and
                                  q["spooled"] > 0), timeout=60, what="every record received")
            t.join(30)
            self.assertFalse(t.is_alive())
            self.assertEqual(errors, [])
            self.assertNotIn("notice backpressure ", srv.read_dispatch_log())
            self.assertEqual(st["dropped"], 0)
            self.assertLessEqual(st["in_memory"], (1 << 20) + 4096)
            self.assertGreater(st["spooled"], 5 * 1000 * 1000)
            self.assertTrue(self.segments(srv), "no segment file under the data directory")
            self.assertRegex(srv.read_dispatch_log(), r"spool-start queue=q instance=0")

            self.unstall(srv, out)
            wait_for(lambda: read(path).count(b"\n") >= len(records), timeout=60,
                     what="every record")
            st = wait_for(stat_is(srv, lambda q: q["acknowledged"] == len(records) and
                                  q["spooled"] == 0 and q["in_memory"] == 0),
                          timeout=30, what="all acknowledged, the spool empty")
            self.assertEqual(st["dropped"], 0)
            self.assert_in_order(read(path).splitlines(keepends=True), records)
            self.assertEqual(set(read(path).splitlines(keepends=True)), set(records))
            self.assertEqual(self.segments(srv), [])
            self.assertRegex(srv.read_dispatch_log(), r"spool-stop queue=q instance=0")

    def test_memory_and_spool_full_pause(self):
        # PAUSE stops ingest reading sensors, not sending what it holds: a small ingest
        # buffer makes "received" show the pause
        srv, out = self.server("memory = 64k\nspool = 256k\nwhen_full = pause",
                               sets=["ingest.output_buffer=1M"])
        with srv:
            uid = srv.register(KEY)
            path = os.path.join(out, uid.replace("-", "") + "-3.bin")
            records = [(b"%06d " % i) + b"p" * 3990 + b"\n" for i in range(1500)]
            t, errors = self.send_in_thread(uid, srv.port, records)
            srv.wait_dispatch_log(r"notice backpressure ", timeout=30)
            st = wait_for(stat_is(srv, lambda q: q["spooled"] >= 256 * 1024),
                          what="the spool full in the store")
            self.assertEqual(st["dropped"], 0)
            self.assertLess(st["received"], len(records) // 2)
            self.assertTrue(self.segments(srv))

            self.unstall(srv, out)
            t.join(60)
            self.assertFalse(t.is_alive())
            self.assertEqual(errors, [])
            wait_for(lambda: read(path).count(b"\n") >= len(records), timeout=60,
                     what="every record")
            srv.wait_dispatch_log(r"backpressure-over")
            st = wait_for(stat_is(srv, lambda q: q["acknowledged"] == len(records) and
                                  q["spooled"] == 0), timeout=30, what="all acknowledged")
            self.assertEqual(st["dropped"], 0)
            self.assertEqual(st["received"], len(records))
            self.assert_in_order(read(path).splitlines(keepends=True), records)
            self.assertEqual(self.segments(srv), [])

    def test_memory_and_spool_full_drop_oldest(self):
        srv, out = self.server("memory = 64k\nspool = 256k\nwhen_full = drop-oldest")
        with srv:
            uid = srv.register(KEY)
            path = os.path.join(out, uid.replace("-", "") + "-3.bin")
            records = [(b"%06d " % i) + b"d" * 990 + b"\n" for i in range(1500)]
            t, errors = self.send_in_thread(uid, srv.port, records)
            st = wait_for(stat_is(srv, lambda q: q["received"] == len(records)), timeout=30,
                          what="every record received")
            t.join(30)
            self.assertEqual(errors, [])
            self.assertGreater(st["dropped"], 0)
            self.assertLessEqual(st["in_memory"], 65536 + 4096)
            self.assertLessEqual(st["spooled"], 256 * 1024 + 2048)
            self.assertGreater(st["spooled"], 128 * 1024)
            self.assertNotIn("notice backpressure ", srv.read_dispatch_log())

            self.unstall(srv, out)
            st = wait_for(stat_is(srv, lambda q: q["in_memory"] == 0 and q["spooled"] == 0 and
                                  q["acknowledged"] + q["dropped"] == len(records)),
                          timeout=30, what="acknowledged + dropped = received")
            lines = read(path).splitlines(keepends=True)
            index = {r: i for i, r in enumerate(records)}
            got = [index[line] for line in lines]
            # the oldest were dropped: what arrives is in order, the newest records included
            first = [i for n, i in enumerate(got) if i not in got[:n]]
            self.assertEqual(first, sorted(first))
            self.assertEqual(first[-1], len(records) - 1)
            self.assertGreaterEqual(len(first), st["acknowledged"] - 5)
            self.assertEqual(self.segments(srv), [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
