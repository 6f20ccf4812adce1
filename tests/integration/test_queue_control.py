#!/usr/bin/env python3
"""Analyzer queue control end to end (docs/dispatch.md, "Queue control"): d4-ingest and
d4-dispatch with one queue, the tiny analyzer, and `d4ctl queue ...` writing the requests.

- pause: a sensor's lines stop reaching the analyzer while the counters show them received
  and held (memory, then the spool), the store says paused;
- resume: every held line arrives, in order, none lost, none twice;
- empty while paused: what the queue held (memory and spool) is discarded and counted in
  `emptied`, the spool is left without segments; ingest's acknowledgement moves past the
  discarded frames: with a small ingest.output_buffer, more than that buffer's worth of
  later records still flows through, and arrives;
- a paused queue stays paused across a reload and a dispatch restart, and an empty request
  is carried out once: a restart empties nothing again;
- the consequence of pausing a `when_full = pause` queue: once its memory is full (no spool
  here) d4-dispatch pauses ingest, the store shows `backpressure`, and resuming delivers
  everything, in order, and lets ingest go on.
"""
import glob
import json
import os
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from ingestlib import Sensor, Server, frame, wait_for, write_analyzer  # noqa: E402

KEY = "a sensor key"
PAYLOAD = 4000


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return b""


def records(tag, start, n):
    return [(b"%s%06d " % (tag, i)) + b"x" * (PAYLOAD - 9) + b"\n" for i in range(start, start + n)]


class QueueControl(unittest.TestCase):
    def server(self, queue_opts="memory = 64k\nspool = 64M"):
        # memory 64k: what a paused queue holds goes to the spool soon; ingest's buffer
        # (1M, its minimum) is what bounds a paused `pause` queue before its own limits
        srv = Server(dispatch_conf="", sets=["ingest.output_buffer=1M"])
        analyzer = write_analyzer(srv.dir)
        out = os.path.join(srv.dir, "q")
        os.makedirs(out)
        srv.write_conf("[dispatch]\nrestart_backoff_max = 300ms\nwindow = 64k\n"
                       "\n[queue.q]\ncommand = %s\ntypes = 3\n%s\n"
                       "when_full = pause\n[queue.q.param]\nout = %s\n"
                       % (analyzer, queue_opts, out))
        return srv, out

    def queue(self, srv):
        """The queue as `d4ctl --json queue list` shows it ({} when absent)."""
        p = srv.ctl("--json", "queue", "list")
        for q in json.loads(p.stdout):
            if q["name"] == "q":
                return q
        return {}

    def wait_queue(self, srv, pred, what, timeout=30):
        return wait_for(lambda: (lambda q: q if q and pred(q) else None)(self.queue(srv)),
                        timeout=timeout, what=what)

    def send(self, sensor, uid, recs):
        for r in recs:
            sensor.send(frame(uid, 3, KEY, r))

    def send_in_thread(self, sensor, uid, recs):
        errors = []

        def run():
            try:
                self.send(sensor, uid, recs)
            except OSError as e:
                errors.append(e)
        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t, errors

    def lines(self, path):
        return read(path).splitlines(keepends=True)

    def segments(self, srv):
        return glob.glob(os.path.join(srv.data, "spool", "q", "*", "*.seg"))

    def test_pause_resume_empty(self):
        srv, out = self.server()
        with srv:
            uid = srv.register(KEY)
            path = os.path.join(out, uid.replace("-", "") + "-3.bin")
            s = Sensor(srv.port)
            s.sock.settimeout(120)

            # running: lines arrive
            a = records(b"a", 0, 20)
            self.send(s, uid, a)
            wait_for(lambda: len(self.lines(path)) >= len(a), what="batch a delivered")
            q = self.wait_queue(srv, lambda q: q["acknowledged"] == 20, "batch a acknowledged")
            self.assertFalse(q["paused"])
            self.assertEqual(q["emptied"], 0)

            # pause: held, not delivered, counted as received
            mark = len(srv.read_dispatch_log())
            p = srv.ctl("queue", "pause", "q")
            self.assertIn(b"pause requested", p.stdout)
            self.assertIn(b"pauses ingest", p.stdout)  # the consequence, said at once
            srv.wait_dispatch_log(r"queue-paused queue=q by=d4ctl:", start=mark)
            q = self.wait_queue(srv, lambda q: q["paused"], "paused in the store")
            self.assertTrue(q["control"]["paused"])
            self.assertTrue(q["control"]["by"].startswith("d4ctl:"))
            b = records(b"b", 20, 50)  # 200k: past the 64k memory, into the spool
            self.send(s, uid, b)
            q = self.wait_queue(srv, lambda q: q["received"] == 70 and q["spooled"] > 0,
                                "batch b received and spooled")
            self.assertEqual(q["delivered"], 20)
            self.assertGreater(q["in_memory"] + q["spooled"], 50 * PAYLOAD)
            self.assertTrue(self.segments(srv))
            self.assertEqual(self.lines(path), a)  # nothing of b reached the analyzer
            self.assertEqual(q["dropped"], 0)

            # resume: all of b, in order, once
            mark = len(srv.read_dispatch_log())
            srv.ctl("queue", "resume", "q")
            srv.wait_dispatch_log(r"queue-resumed queue=q", start=mark)
            wait_for(lambda: len(self.lines(path)) >= 70, what="batch b delivered")
            q = self.wait_queue(srv, lambda q: q["acknowledged"] == 70 and q["in_memory"] == 0
                                and q["spooled"] == 0, "batch b acknowledged")
            self.assertFalse(q["paused"])
            self.assertEqual(self.lines(path), a + b)

            # empty while paused: discarded, counted, the spool cleared
            srv.ctl("queue", "pause", "q")
            self.wait_queue(srv, lambda q: q["paused"], "paused again")
            c = records(b"c", 70, 60)  # 240k of a 1M ingest buffer
            self.send(s, uid, c)
            q = self.wait_queue(srv, lambda q: q["received"] == 130 and q["spooled"] > 0,
                                "batch c held")
            held = q["in_memory"] + q["spooled"]
            mark = len(srv.read_dispatch_log())
            p = srv.ctl("queue", "empty", "q")
            self.assertIn(b"empty requested (request 1;", p.stdout)
            srv.wait_dispatch_log(r"queue-emptied queue=q records=60 ", start=mark)
            q = self.wait_queue(srv, lambda q: q["emptied"] == 60, "emptied counted")
            self.assertEqual(q["in_memory"], 0)
            self.assertEqual(q["spooled"], 0)
            self.assertEqual(q["dropped"], 0)
            self.assertTrue(q["paused"])
            self.assertEqual(q["control"]["empty_requested"], 1)
            self.assertEqual(q["control"]["empty_applied"], 1)
            self.assertGreater(held, 0)
            self.assertEqual(self.segments(srv), [])
            self.assertEqual(self.lines(path), a + b)

            # acks released: after resume, more than ingest's whole buffer flows through;
            # had the discarded frames kept their slots, ingest's acknowledgement would stop
            # at them and the sensor would be paused for good half-way
            srv.ctl("queue", "resume", "q")
            self.wait_queue(srv, lambda q: not q["paused"], "resumed")
            d = records(b"d", 130, 300)  # 1.2M > 1M
            t, errors = self.send_in_thread(s, uid, d)
            wait_for(lambda: len(self.lines(path)) >= 370, timeout=60, what="batch d delivered")
            t.join(30)
            self.assertFalse(t.is_alive())
            self.assertEqual(errors, [])
            self.assertEqual(self.lines(path), a + b + d)
            q = self.wait_queue(srv, lambda q: q["acknowledged"] == 370, "batch d acknowledged")
            self.assertEqual(q["emptied"], 60)
            self.assertEqual(q["dropped"], 0)
            s.close()

    def test_pause_survives_reload_and_restart(self):
        srv, out = self.server()
        with srv:
            uid = srv.register(KEY)
            path = os.path.join(out, uid.replace("-", "") + "-3.bin")
            s = Sensor(srv.port)
            s.sock.settimeout(120)
            a = records(b"a", 0, 10)
            self.send(s, uid, a)
            wait_for(lambda: len(self.lines(path)) >= 10, what="batch a delivered")

            # an unknown queue is refused, and leaves no record
            p = srv.ctl("queue", "pause", "nope", check=False)
            self.assertEqual(p.returncode, 1)
            self.assertIn(b"no queue 'nope'", p.stderr)

            srv.ctl("queue", "pause", "q")
            srv.ctl("queue", "empty", "q")  # nothing held: carried out, discards nothing
            self.wait_queue(srv, lambda q: q["paused"] and q["control"]["empty_applied"] == 1,
                            "paused, empty carried out")
            b = records(b"b", 10, 10)
            self.send(s, uid, b)
            self.wait_queue(srv, lambda q: q["received"] == 20, "batch b received")

            # reload: still paused
            mark = srv.reload_dispatch()
            srv.wait_dispatch_log(r"notice reload", start=mark)
            self.wait_queue(srv, lambda q: q["paused"] and q["updated"], "paused after reload")
            self.assertNotIn("queue-resumed", srv.read_dispatch_log()[mark:])

            # restart: still paused (the stop does not wait for a paused queue), the held
            # records come again from ingest and stay held; request 1 is not carried out again
            self.assertEqual(srv.stop_dispatch(), 0)
            mark = len(srv.read_dispatch_log())
            srv.start_dispatch()
            srv.wait_dispatch_log(r"queue-paused queue=q", start=mark)
            q = self.wait_queue(srv, lambda q: q["paused"] and q["received"] >= 10,
                                "the replay held by the paused queue")
            self.assertEqual(q["emptied"], 0)
            self.assertEqual(q["delivered"], 0)
            self.assertNotIn("queue-emptied", srv.read_dispatch_log()[mark:])
            self.assertEqual(self.lines(path), a)

            # resume: b arrives, once, after a
            srv.ctl("queue", "resume", "q")
            wait_for(lambda: len(self.lines(path)) >= 20, timeout=30, what="batch b delivered")
            self.wait_queue(srv, lambda q: q["in_memory"] == 0 and q["spooled"] == 0 and
                            q["acknowledged"] >= 10, "drained")
            self.assertEqual(self.lines(path), a + b)

            # an empty request made while dispatch is stopped is void at its start
            self.assertEqual(srv.stop_dispatch(), 0)
            srv.ctl("queue", "empty", "q")
            mark = len(srv.read_dispatch_log())
            srv.start_dispatch()
            srv.wait_dispatch_log(r"queue-empty-void queue=q request=2", start=mark)
            q = self.wait_queue(srv, lambda q: q["control"]["empty_applied"] == 2, "void recorded")
            self.assertFalse(q["paused"])
            c = records(b"c", 20, 5)
            self.send(s, uid, c)
            wait_for(lambda: len(self.lines(path)) >= 25, timeout=30, what="batch c delivered")
            self.assertEqual(self.lines(path), a + b + c)
            s.close()

    def test_paused_queue_holds_back_ingest(self):
        srv, out = self.server("memory = 64k\nspool = 0")
        with srv:
            uid = srv.register(KEY)
            path = os.path.join(out, uid.replace("-", "") + "-3.bin")
            s = Sensor(srv.port)
            s.sock.settimeout(120)
            srv.ctl("queue", "pause", "q")
            q = self.wait_queue(srv, lambda q: q["paused"], "paused")
            self.assertFalse(q["backpressure"])
            a = records(b"a", 0, 60)  # 240k: far past the 64k memory
            t, errors = self.send_in_thread(s, uid, a)
            srv.wait_dispatch_log(r"notice backpressure ", timeout=30)
            q = self.wait_queue(srv, lambda q: q["backpressure"], "backpressure in the store")
            self.assertTrue(q["paused"])
            self.assertGreaterEqual(q["in_memory"], 64 * 1024)
            self.assertEqual(q["dropped"], 0)
            self.assertEqual(self.lines(path), [])
            mark = len(srv.read_dispatch_log())
            srv.ctl("queue", "resume", "q")
            wait_for(lambda: len(self.lines(path)) >= len(a), timeout=60, what="every record")
            t.join(30)
            self.assertFalse(t.is_alive())
            self.assertEqual(errors, [])
            self.assertEqual(self.lines(path), a)
            srv.wait_dispatch_log(r"backpressure-over", start=mark)
            q = self.wait_queue(srv, lambda q: not q["backpressure"] and q["acknowledged"] == 60,
                                "all acknowledged, no backpressure")
            self.assertEqual(q["dropped"], 0)
            s.close()


if __name__ == "__main__":
    unittest.main()
