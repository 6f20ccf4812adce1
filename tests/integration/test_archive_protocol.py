#!/usr/bin/env python3
"""d4-analyzer-archive in protocol mode.

Against a scripted dispatcher (fake_dispatcher.py's framing): the queue params set the
options; two sessions of one sensor and type at once go to separate files; what an ACK covers
is in the file (flushed before the ACK); a file open --rotate seconds of wall-clock time is
closed and compressed at a boundary while the session goes on (a line is never cut); an
unknown param stops the analyzer.

Behind the real pipeline (d4-ingest -> d4-dispatch -> archive queue, a sensor over TLS), when
d4-dispatch is built: a pcap streamed in frames that cut records comes out byte for byte.
"""
import glob
import gzip
import os
import random
import struct
import sys
import tempfile
import shutil
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from fake_dispatcher import ScriptedDispatcher, END, UUID_A, msg, start  # noqa: E402

BIN = os.environ.get("D4_BIN", "")
ARCHIVE = os.path.join(BIN, "d4-analyzer-archive")
if not os.access(ARCHIVE, os.X_OK):
    print("SKIP: d4-analyzer-archive is not built")
    sys.exit(77)
UUID_STR = "cd980d75-dcf1-47da-bb60-aabe94fea6b2"
T = 1700000000


def content(path):
    with open(path, "rb") as f:
        data = f.read()
    return gzip.decompress(data) if path.endswith(".gz") else data


def all_files(out):
    return sorted(p for p in glob.glob(os.path.join(out, "**", "*"), recursive=True)
                  if os.path.isfile(p))


def pcap_bytes(seed, n):
    rnd = random.Random(seed)
    out = struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1)
    for i in range(n):
        size = rnd.randint(0, 700)
        out += struct.pack("<IIII", T + i, i, size, size) + rnd.randbytes(size)
    return out


class Dispatcher(ScriptedDispatcher):
    """The dispatcher side: HELLO with params, then DATA numbered from 1 (fake_dispatcher.py)."""

    def __init__(self, params):
        super().__init__(ARCHIVE, "archive", params, ts=T)


class Protocol(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="d4-archive-proto.")
        self.out = os.path.join(self.tmp, "out")

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def test_two_sessions_one_sensor(self):
        d = Dispatcher({"dir": self.out, "max-size": "1M"})
        self.addCleanup(d.close)
        self.assertTrue(d.registered(), d.stderr())
        a, b = pcap_bytes(1, 80), pcap_bytes(2, 60)
        raw = start(1, 1, UUID_A, 1000) + start(2, 1, UUID_A, 1001)
        ca = [a[i:i + 333] for i in range(0, len(a), 333)]
        cb = [b[i:i + 251] for i in range(0, len(b), 251)]
        for i in range(max(len(ca), len(cb))):
            if i < len(ca):
                raw += d.data(1, 1, ca[i])
            if i < len(cb):
                raw += d.data(2, 1, cb[i])
            if i == 20:
                d.send(raw)
                raw = b""
                # acknowledged means flushed: the open files hold every whole record so far
                files = all_files(self.out)
                self.assertEqual(len(files), 2, files)
                self.assertTrue(all(x.endswith(".pcap") for x in files), files)
                got = sorted(content(x) for x in files)
                want = sorted((a[:333 * 21], b[:251 * 21]))
                for g, w in zip(got, want):
                    self.assertTrue(w.startswith(g) and len(w) - len(g) < 800, (len(g), len(w)))
        raw += msg(END, struct.pack("<QQB", 1, T + 5, 0)) + msg(END, struct.pack("<QQB", 2, T + 5, 0))
        d.send(raw)
        d.bye()
        day = os.path.join(self.out, UUID_STR, "1", "2023", "11", "14")
        files = all_files(self.out)
        self.assertEqual(files, [os.path.join(day, UUID_STR + "-2023-11-14-221320-1.pcap.gz"),
                                 os.path.join(day, UUID_STR + "-2023-11-14-221320.pcap.gz")])
        self.assertEqual(sorted(content(x) for x in files), sorted((a, b)))

    def test_wall_clock_rotation(self):
        d = Dispatcher({"dir": self.out, "rotate": "1", "compress": "gzip"})
        self.addCleanup(d.close)
        self.assertTrue(d.registered(), d.stderr())
        d.send(start(7, 3, UUID_A, 1000) + d.data(7, 3, b"first\nsecond\n"))
        time.sleep(2.5)
        files = all_files(self.out)
        self.assertEqual(len(files), 1, files)
        self.assertTrue(files[0].endswith(".txt.gz"), files)  # closed while the session goes on
        d.send(d.data(7, 3, b"third without end"))
        time.sleep(2.5)
        self.assertEqual(len(all_files(self.out)), 2)
        self.assertEqual(len([x for x in all_files(self.out) if x.endswith(".txt")]), 1)  # not cut
        d.send(d.data(7, 3, b" of line\nfourth\n"))
        d.send(msg(END, struct.pack("<QQB", 7, T + 5, 0)), wait_ack=False)
        d.bye()
        files = all_files(self.out)
        # names from the frame time: all frames carry T, so -1 and -2 follow the first
        self.assertEqual([os.path.basename(x) for x in files],
                         [UUID_STR + "-2023-11-14-221320-1.txt.gz",
                          UUID_STR + "-2023-11-14-221320-2.txt.gz",
                          UUID_STR + "-2023-11-14-221320.txt.gz"])
        self.assertEqual([content(x) for x in files],
                         [b"third without end of line\n", b"fourth\n", b"first\nsecond\n"])

    def test_unknown_param(self):
        d = Dispatcher({"dir": self.out, "colour": "blue"})
        self.addCleanup(d.close)
        self.assertEqual(d.proc.wait(10), 1)
        self.assertIn("colour", d.stderr())


BUILT = all(os.access(os.path.join(BIN, p), os.X_OK) for p in ("d4-dispatch", "d4-ingest", "d4ctl"))


@unittest.skipUnless(BUILT, "d4-dispatch, d4-ingest or d4ctl is not built")
class Pipeline(unittest.TestCase):
    def test_pcap_through_dispatch(self):
        from ingestlib import Sensor, Server, frame as d4frame, wait_for
        srv = Server(dispatch_conf="")
        tmp = tempfile.mkdtemp(prefix="d4-archive-pipe.")
        self.addCleanup(shutil.rmtree, tmp)
        out = os.path.join(tmp, "archive")
        srv.write_conf("[dispatch]\nrestart_backoff_max = 500ms\n\n[queue.arc]\ntypes = 1\n"
                       "command = %s --out %s --max-size 16k\n" % (ARCHIVE, out))
        data = pcap_bytes(3, 150)
        with srv:
            key = "a sensor key"
            uid = srv.register(key)
            s = Sensor(srv.port)
            for off in range(0, len(data), 1000):
                s.send(d4frame(uid, 1, key, data[off:off + 1000]))
            s.close()
            wait_for(lambda: len([x for x in all_files(out) if x.endswith(".gz")]) >= 3,
                     what="rotated archive files")
            srv.stop_dispatch()
            log = srv.read_dispatch_log()
            self.assertNotIn("Sanitizer", log)
            self.assertNotIn("runtime error", log)
        files = all_files(out)
        self.assertTrue(files, srv.read_dispatch_log()[-2000:])
        self.assertTrue(all(x.endswith(".pcap.gz") for x in files), files)

        def order(path):
            base = os.path.basename(path).split(".")[0]
            tail = base[len(uid) + 18:]
            return (base[:len(uid) + 18], int(tail[1:]) if tail else 0)
        files.sort(key=order)
        head, recs = data[:24], b""
        for x in files:
            c = content(x)
            self.assertEqual(c[:24], head, x)
            recs += c[24:]
        self.assertEqual(head + recs, data)
        day = time.strftime("%Y/%m/%d", time.gmtime(os.stat(files[0]).st_mtime))
        self.assertIn(os.path.join(out, uid, "1", day), files[0])


if __name__ == "__main__":
    unittest.main()
