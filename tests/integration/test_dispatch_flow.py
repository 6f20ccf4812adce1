#!/usr/bin/env python3
"""d4-dispatch flow control and reload.

- a stalled analyzer with when_full = pause: the queue fills to its memory limit, dispatch
  sends PAUSE and ingest stops reading sensors; nothing is dropped, and once the analyzer is
  replaced everything arrives and ingest resumes;
- the same with when_full = drop-oldest: ingest is never paused, the drops are counted in the
  store, and received = acknowledged + dropped in the end;
- SIGHUP: a queue added to the file starts and takes new sessions; a queue removed gets BYE
  and its counters leave the store; a configuration with an error is refused and the running
  one stays.
"""
import os
import re
import signal
import sys
import threading
import time
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


def queue_text(name, analyzer, out, opts, params=""):
    return ("\n[queue.%s]\ncommand = %s\n%s\n[queue.%s.param]\nout = %s\n%s\n" %
            (name, analyzer, opts, name, out, params))


def pids(srv, q):
    return [int(p) for p in re.findall(r"analyzer-ready queue=%s instance=\d+ pid=(\d+)" % q,
                                       srv.read_dispatch_log())]


class Flow(unittest.TestCase):
    def stalled(self, when_full):
        srv = Server(dispatch_conf="", sets=["ingest.output_buffer=1M"])
        analyzer = write_analyzer(srv.dir)
        out = os.path.join(srv.dir, "q")
        os.makedirs(out)
        open(os.path.join(out, "stall"), "w").close()
        srv.write_conf("[dispatch]\nrestart_backoff_max = 300ms\nwindow = 64k\n" +
                       queue_text("q", analyzer, out, "types = 3\nmemory = 64k\nspool = 0\n"
                                  "when_full = " + when_full, "stall_after = 5"))
        return srv, out

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

    def test_stalled_analyzer_pauses_ingest(self):
        srv, out = self.stalled("pause")
        with srv:
            uid = srv.register(KEY)
            path = os.path.join(out, uid.replace("-", "") + "-3.bin")
            records = [(b"%06d " % i) + b"x" * 3990 + b"\n" for i in range(1500)]
            t, errors = self.send_in_thread(uid, srv.port, records)
            srv.wait_dispatch_log(r"notice backpressure ")
            st = wait_for(lambda: (lambda q: q if q.get("in_memory", 0) >= 65536 else None)(
                srv.queue_stats("q")), what="the queue full in the store")
            self.assertEqual(st["dropped"], 0)
            time.sleep(1)
            # paused: what the sensor sent waits in ingest and in TCP, not in dispatch
            self.assertLess(srv.queue_stats("q")["received"], len(records) // 2)
            self.unstall(srv, out)
            t.join(60)
            self.assertFalse(t.is_alive())
            self.assertEqual(errors, [])
            wait_for(lambda: set(read(path).splitlines(keepends=True)) >= set(records),
                     timeout=60, what="every record")
            srv.wait_dispatch_log(r"backpressure-over")
            st = wait_for(lambda: (lambda q: q if q.get("acknowledged") == len(records) else
                                   None)(srv.queue_stats("q")), what="all acknowledged")
            self.assertEqual(st["dropped"], 0)
            self.assertEqual(st["received"], len(records))

    def test_stalled_analyzer_drop_oldest(self):
        srv, out = self.stalled("drop-oldest")
        with srv:
            uid = srv.register(KEY)
            records = [(b"%06d " % i) + b"y" * 990 + b"\n" for i in range(1000)]
            t, errors = self.send_in_thread(uid, srv.port, records)
            st = wait_for(lambda: (lambda q: q if q.get("received") == len(records) else None)(
                srv.queue_stats("q")), timeout=30, what="every record received")
            t.join(30)
            self.assertEqual(errors, [])
            self.assertGreater(st["dropped"], 0)
            self.assertLessEqual(st["in_memory"], 65536 + 4096)
            self.assertNotIn("notice backpressure ", srv.read_dispatch_log())
            self.unstall(srv, out)
            st = wait_for(lambda: (lambda q: q if q.get("in_memory") == 0 and
                                   q["acknowledged"] + q["dropped"] == len(records) else None)(
                srv.queue_stats("q")), timeout=30, what="acknowledged + dropped = received")
            path = os.path.join(out, uid.replace("-", "") + "-3.bin")
            got = set(read(path).splitlines(keepends=True))
            self.assertTrue(got <= set(records))
            self.assertGreaterEqual(len(got), st["acknowledged"] - 5)

    def test_reload_adds_and_removes_queues(self):
        srv = Server(dispatch_conf="")
        analyzer = write_analyzer(srv.dir)
        outs = {q: os.path.join(srv.dir, q) for q in ("a", "b")}
        for d in outs.values():
            os.makedirs(d)
        qa = queue_text("a", analyzer, outs["a"], "types = 3")
        qb = queue_text("b", analyzer, outs["b"], "types = 3")
        srv.write_conf(qa)
        with srv:
            uid = srv.register(KEY)
            name = uid.replace("-", "") + "-3.bin"
            s = Sensor(srv.port)
            s.send(frame(uid, 3, KEY, b"first session\n"))
            s.close()
            wait_for(lambda: read(os.path.join(outs["a"], name)) == b"first session\n",
                     what="queue a")
            srv.write_conf(qa + qb)
            mark = srv.reload_dispatch()
            srv.wait_dispatch_log(r"queue-added queue=b", start=mark)
            srv.wait_dispatch_log(r"analyzer-ready queue=b", start=mark)
            s = Sensor(srv.port)
            s.send(frame(uid, 3, KEY, b"second session\n"))
            s.close()
            wait_for(lambda: read(os.path.join(outs["b"], name)) == b"second session\n",
                     what="queue b")
            wait_for(lambda: read(os.path.join(outs["a"], name)) ==
                     b"first session\nsecond session\n", what="queue a again")
            wait_for(lambda: srv.queue_stats("a") and srv.queue_stats("b"), what="two records")

            # a broken file is refused as a whole
            srv.write_conf(qb + "\n[queue.c]\ntypes = 3\n")
            mark = srv.reload_dispatch()
            srv.wait_dispatch_log(r"reload-failed .*no command", start=mark)

            srv.write_conf(qb)
            mark = srv.reload_dispatch()
            srv.wait_dispatch_log(r"queue-removed queue=a", start=mark)
            wait_for(lambda: b"bye " in read(os.path.join(outs["a"], "events.txt")),
                     what="BYE to the removed queue's analyzer")
            wait_for(lambda: srv.queue_stats("a") == {}, what="queue a gone from the store")
            s = Sensor(srv.port)
            s.send(frame(uid, 3, KEY, b"third session\n"))
            s.close()
            wait_for(lambda: read(os.path.join(outs["b"], name)) ==
                     b"second session\nthird session\n", what="queue b after the removal")
            time.sleep(0.3)
            self.assertEqual(read(os.path.join(outs["a"], name)), b"first session\nsecond session\n")
            self.assertIsNone(srv.dispatch.poll())

    def test_reload_under_load(self):
        """Three reloads while a sensor streams: a queue added, the first queue's analyzer
        changed (restarted), the added queue removed. The first queue gets every line, at
        least once, in order; dispatch never stops."""
        srv = Server(dispatch_conf="")
        analyzer = write_analyzer(srv.dir)
        outs = {q: os.path.join(srv.dir, q) for q in ("a", "b")}
        for d in outs.values():
            os.makedirs(d)
        qa = queue_text("a", analyzer, outs["a"], "types = 3")
        qa2 = queue_text("a", analyzer, outs["a"], "types = 3", "note = changed")
        qb = queue_text("b", analyzer, outs["b"], "types = 3")
        srv.write_conf(qa)
        with srv:
            uid = srv.register(KEY)
            path = os.path.join(outs["a"], uid.replace("-", "") + "-3.bin")
            lines = [b"line %05d under reload\n" % i for i in range(3000)]
            s = Sensor(srv.port)
            for step, conf in enumerate((qa + qb, qa2 + qb, qa2)):
                for ln in lines[step * 750:(step + 1) * 750]:
                    s.send(frame(uid, 3, KEY, ln))
                srv.write_conf(conf)
                srv.reload_dispatch()
            for ln in lines[2250:]:
                s.send(frame(uid, 3, KEY, ln))
            s.close()

            def first_seen():
                seen, order = set(), []
                for ln in read(path).splitlines(keepends=True):
                    if ln not in seen:
                        seen.add(ln)
                        order.append(ln)
                return order
            wait_for(lambda: len(first_seen()) == len(lines), timeout=60, what="every line")
            self.assertEqual(first_seen(), lines)
            self.assertIn("queue-removed queue=b", srv.read_dispatch_log())
            self.assertIsNone(srv.dispatch.poll())


if __name__ == "__main__":
    unittest.main(verbosity=2)
