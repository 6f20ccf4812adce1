#!/usr/bin/env python3
"""Analyzers behind the real d4-dispatch: d4-ingest -> d4-dispatch -> d4-analyzer-stdout,
d4-analyzer-null and the Python example, on loopback, real processes.

The stdout analyzer's output reaches the dispatcher's log (analyzer-output lines): a type-3
session comes out line by line in order, a 254 ja3-jl session starts with its meta-type and
its lines, and the Python example counts both. Skips (77) when d4-dispatch is not built.
"""
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
BIN = os.environ.get("D4_BIN", "")
if not all(os.access(os.path.join(BIN, p), os.X_OK) for p in ("d4-dispatch", "d4-ingest", "d4ctl")):
    print("SKIP: d4-dispatch, d4-ingest or d4ctl is not built")
    sys.exit(77)
from ingestlib import Sensor, Server, frame, wait_for  # noqa: E402

KEY = "a sensor key"
SRC = os.environ.get("D4_SRC", os.path.join(os.path.dirname(__file__), "..", ".."))
PY = os.path.join(SRC, "analyzers", "example-python", "d4-analyzer-example.py")


def queue(name, command, opts):
    return "\n[queue.%s]\ncommand = %s\n%s\n" % (name, command, opts)


def output(log, q):
    """The analyzer-output lines of queue q, unescaped."""
    out = []
    for m in re.finditer(r'analyzer-output queue=%s analyzer=\S+ line="((?:[^"\\]|\\.)*)"' % q, log):
        out.append(re.sub(r'\\(.)', r'\1', m.group(1)))
    return out


class Behind(unittest.TestCase):
    def test_stdout_null_python(self):
        srv = Server(dispatch_conf="")
        srv.write_conf("[dispatch]\nrestart_backoff_max = 500ms\n" +
                       queue("st", os.path.join(BIN, "d4-analyzer-stdout"),
                             "types = 3\nmeta_types = ja3-jl") +
                       queue("py", PY, "types = 3\nmeta_types = ja3-jl") +
                       queue("nl", os.path.join(BIN, "d4-analyzer-null"), "types = 3"))
        with srv:
            uid = srv.register(KEY)
            tag = uid.replace("-", "")[:8]
            logs = [b"line %d of the log" % i for i in range(300)]
            data = b"".join(x + b"\n" for x in logs)
            s = Sensor(srv.port)
            for off in range(0, len(data), 100):
                s.send(frame(uid, 3, KEY, data[off:off + 100]))
            s.close()
            ja3 = [b'{"ja3": "%d"}' % i for i in range(50)]
            jdata = b"".join(x + b"\n" for x in ja3)
            s = Sensor(srv.port)
            s.send(frame(uid, 2, KEY, b'{"type": "ja3-jl"}'))
            for off in range(0, len(jdata), 30):
                s.send(frame(uid, 254, KEY, jdata[off:off + 30]))
            s.close()
            wait_for(lambda: len([x for x in output(srv.read_dispatch_log(), "py")
                                  if "lines=" in x]) == 2, what="the python example's counts")
            wait_for(lambda: len([x for x in output(srv.read_dispatch_log(), "st")
                                  if " END " in x]) == 2, what="two END lines from stdout")
            log = srv.read_dispatch_log()
        st = output(log, "st")
        self.assertEqual([x[len(tag) + 5:] for x in st if x.startswith(tag + "/3 | ")],
                         [x.decode() for x in logs])
        self.assertEqual([x[len(tag) + 7:] for x in st if x.startswith(tag + "/254 | ")],
                         [x.decode() for x in ja3])
        self.assertTrue(any(x.startswith(tag + "/254 START ") and " meta-type=ja3-jl " in x
                            for x in st), st[:3])
        py = output(log, "py")
        self.assertTrue(any(" type=3 lines=300 " in x for x in py), py)
        self.assertTrue(any(" type=254 lines=50 " in x for x in py), py)


if __name__ == "__main__":
    unittest.main()
