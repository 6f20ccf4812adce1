#!/usr/bin/env python3
"""d4-dispatch end to end: d4-ingest -> d4-dispatch -> analyzers, on loopback, real processes.

- routing by type: a type-3 queue gets the type-3 stream byte for byte and nothing else;
- routing by meta-type: a 254 ja3-jl session goes to the ja3-jl queue (START says 254 and
  names the meta-type; its type-2 meta header frames come first), not to a queue of another
  meta-type;
- fan-out: two queues taking the same type both get every byte;
- the analyzer's stderr is logged under the queue's name; counters reach the store.
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from ingestlib import Sensor, Server, frame, wait_for, write_analyzer  # noqa: E402

KEY = "a sensor key"


def conf(tmp, analyzer, queues):
    text = "[dispatch]\nrestart_backoff_max = 500ms\n"
    for name, opts in queues.items():
        out = os.path.join(tmp, name)
        os.makedirs(out, exist_ok=True)
        text += "\n[queue.%s]\ncommand = %s\n%s\n[queue.%s.param]\nout = %s\n" % (
            name, analyzer, opts, name, out)
    return text


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return b""


class Routing(unittest.TestCase):
    def make(self, queues):
        srv = Server(dispatch_conf="")
        analyzer = write_analyzer(srv.dir)
        srv.write_conf(conf(srv.dir, analyzer, queues))
        return srv

    def test_type_meta_type_and_fan_out(self):
        srv = self.make({"logs": "types = 3", "logs2": "types = 3 8",
                         "ja3": "meta_types = ja3-jl", "other": "meta_types = maltrail"})
        with srv:
            uid = srv.register(KEY)
            hexid = uid.replace("-", "")
            logs = b"".join(b"line %d of the log\n" % i for i in range(2000))
            s = Sensor(srv.port)
            for off in range(0, len(logs), 1000):
                s.send(frame(uid, 3, KEY, logs[off:off + 1000]))
            s.close()
            meta = b'{"type": "ja3-jl"}'
            ja3 = b"".join(b'{"ja3": "%d"}\n' % i for i in range(50))
            s = Sensor(srv.port)
            s.send(frame(uid, 2, KEY, meta))
            for off in range(0, len(ja3), 300):
                s.send(frame(uid, 254, KEY, ja3[off:off + 300]))
            s.close()

            for q in ("logs", "logs2"):
                path = os.path.join(srv.dir, q, hexid + "-3.bin")
                wait_for(lambda: len(read(path)) == len(logs), what="the log stream in " + q)
                self.assertEqual(read(path), logs)
            path = os.path.join(srv.dir, "ja3", hexid + "-254.bin")
            wait_for(lambda: len(read(path)) == len(ja3), what="the ja3 stream")
            self.assertEqual(read(path), ja3)
            self.assertEqual(read(os.path.join(srv.dir, "ja3", hexid + "-2.bin")), meta)
            starts = [e for e in read(os.path.join(srv.dir, "ja3", "events.txt")).decode()
                      .splitlines() if e.startswith("start ")]
            self.assertEqual(len(starts), 1)
            self.assertIn(" 254 ja3-jl ", starts[0])
            # nothing went where it does not belong
            self.assertEqual(os.listdir(os.path.join(srv.dir, "other")), ["events.txt"])
            self.assertFalse(os.path.exists(os.path.join(srv.dir, "logs", hexid + "-254.bin")))
            self.assertFalse(os.path.exists(os.path.join(srv.dir, "ja3", hexid + "-3.bin")))
            # the session ended: END reached the analyzer
            wait_for(lambda: b"end " in read(os.path.join(srv.dir, "logs", "events.txt")),
                     what="END")
            srv.wait_dispatch_log(r"analyzer-output queue=logs .*tiny analyzer ready")
            nlog = (len(logs) + 999) // 1000
            st = wait_for(lambda: (lambda q: q if q.get("acknowledged") == nlog else None)(
                srv.queue_stats("logs")), what="counters in the store")
            self.assertEqual(st["received"], nlog)
            self.assertEqual(st["delivered"], nlog)
            self.assertEqual(st["in_memory"], 0)
            self.assertEqual(st["state"], "running")
            self.assertEqual(st["dropped"], 0)
            wait_for(lambda: srv.queue_stats("ja3").get("acknowledged") == 1 + (len(ja3) + 299) // 300,
                     what="the ja3 counters")


if __name__ == "__main__":
    unittest.main(verbosity=2)
