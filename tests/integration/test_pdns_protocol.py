#!/usr/bin/env python3
"""d4-analyzer-passivedns in protocol mode, and behind the real pipeline.

Against a scripted dispatcher (fake_dispatcher.py's framing): the queue params set the options
(db, exclude, expire); what an ACK covers is committed — d4-pdns-lookup, started while the
analyzer runs, answers it — including a line split across two DATA messages, stored once; a
COF import session under the pdns-cof meta-type; an unknown param stops the analyzer.

Behind d4-ingest -> d4-dispatch -> a passivedns queue (a sensor over TLS), when d4-dispatch
is built: CSV lines cut anywhere by the frames come out as records in the store.
"""
import os
import shutil
import struct
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_dispatcher import ScriptedDispatcher, END, UUID_A, msg, start  # noqa: E402
from test_pdns_ingest import ANALYZER, LOOKUP, Lookup  # noqa: E402

BIN = os.environ.get("D4_BIN", "")
T = 1700000000
UUID_STR = "cd980d75-dcf1-47da-bb60-aabe94fea6b2"


class Dispatcher(ScriptedDispatcher):
    """The dispatcher side: HELLO with params, then DATA numbered from 1 (fake_dispatcher.py)."""

    def __init__(self, params):
        super().__init__(ANALYZER, "pdns", params, ts=T)


class Protocol(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="pdns-proto.")
        self.db = os.path.join(self.tmp, "db")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_ack_means_committed(self):
        d = Dispatcher({"db": self.db, "exclude": "ads.example", "expire": "TXT=24000",
                        "batch": "1000000"})
        self.addCleanup(d.close)
        self.assertTrue(d.registered(), d.stderr())
        line = b"%d||c||s||IN||split.example||A||192.0.2.77||60||2\n" % T
        raw = start(1, 8, UUID_A, 1000)
        raw += d.data(1, 8, b"%d||c||s||IN||one.example||A||192.0.2.1||60||1\n" % T + line[:30])
        raw += d.data(1, 8, line[30:] + b"%d||c||s||IN||x.ads.example||A||192.0.2.9||60||1\n" % T)
        raw += d.data(1, 8, b"garbage line\n")
        d.send(raw)
        # acknowledged: committed, visible to a reader while the analyzer still runs
        with Lookup(self.db) as lk:
            recs, _ = lk.cof("/query/split.example")
            self.assertEqual([(r["rdata"], r["count"], r["sensor_id"]) for r in recs],
                             [(["192.0.2.77"], 2, UUID_STR)])
            self.assertEqual(len(lk.cof("/query/one.example")[0]), 1)
            self.assertEqual(lk.cof("/query/x.ads.example")[0], [])
            info = lk.info()
            self.assertEqual(info["stats"]["rejected.fields"], 1)
            self.assertEqual(info["stats"]["excluded"], 1)
            self.assertEqual(info["expire"], {"TXT": 24000})
            # a COF import session, then more CSV: each ACK makes it visible
            cof = (b'{"rrname":"cof.example","rrtype":"AAAA","time_first":%d,"time_last":%d,'
                   b'"count":5,"rdata":["2001:DB8::5"]}\n' % (T, T + 9))
            raw = start(2, 254, UUID_A, 1001, b"pdns-cof", b'{"type":"pdns-cof"}')
            raw += d.data(2, 2, b'{"type":"pdns-cof"}') + d.data(2, 254, cof)
            d.send(raw)
            recs, _ = lk.cof("/query/2001:db8::5")
            self.assertEqual([(r["rrname"], r["count"], r["time_last"]) for r in recs],
                             [("cof.example", 5, T + 9)])
            d.send(d.data(1, 8, line))
            self.assertEqual(lk.cof("/query/split.example")[0][0]["count"], 4)
        d.send(msg(END, struct.pack("<QQB", 1, T + 5, 0)) + msg(END, struct.pack("<QQB", 2, T + 5, 0)),
               wait_ack=False)
        d.bye()
        self.assertIn("lines=6 records=4", d.stderr())

    def test_unknown_param_stops(self):
        d = Dispatcher({"db": self.db, "exlude": "typo.example"})
        self.addCleanup(d.close)
        rc = d.proc.wait(10)
        self.assertNotEqual(rc, 0)
        self.assertIn("exlude", d.stderr())


BUILT = all(os.access(os.path.join(BIN, p), os.X_OK) for p in ("d4-dispatch", "d4-ingest", "d4ctl"))


@unittest.skipUnless(BUILT, "d4-dispatch, d4-ingest or d4ctl is not built")
class Pipeline(unittest.TestCase):
    def test_csv_through_dispatch(self):
        from ingestlib import Sensor, Server, frame as d4frame
        tmp = tempfile.mkdtemp(prefix="pdns-pipe.")
        self.addCleanup(shutil.rmtree, tmp, True)
        db = os.path.join(tmp, "pdns")
        srv = Server(dispatch_conf="")
        srv.write_conf("[dispatch]\nrestart_backoff_max = 500ms\n\n[queue.pdns]\ntypes = 8\n"
                       "command = %s\n[queue.pdns.param]\ndb = %s\n" % (ANALYZER, db))
        lines = b"".join(b"%d||10.0.0.1||10.0.0.2||IN||h%d.pipe.example.||A||198.51.100.%d||60||1\n"
                         % (T, i, i) for i in range(200))
        with srv:
            key = "a sensor key"
            uid = srv.register(key)
            s = Sensor(srv.port)
            for off in range(0, len(lines), 777):
                s.send(d4frame(uid, 8, key, lines[off:off + 777]))
            s.close()
            deadline = time.time() + 20
            while time.time() < deadline and not os.path.exists(os.path.join(db, "data.mdb")):
                time.sleep(0.1)
            # the records arrive as the queue is acknowledged
            got = 0
            while time.time() < deadline:
                with Lookup(db) as lk:
                    got = int(lk.get("/query/*.pipe.example?limit=1000")[1]["X-Result-Count"])
                if got == 200:
                    break
                time.sleep(0.3)
            self.assertEqual(got, 200, srv.read_dispatch_log()[-2000:])
            srv.stop_dispatch()
            log = srv.read_dispatch_log()
            self.assertNotIn("Sanitizer", log)
            self.assertNotIn("runtime error", log)
        with Lookup(db) as lk:
            recs, _ = lk.cof("/query/h7.pipe.example")
            self.assertEqual([(r["rdata"], r["sensor_id"]) for r in recs], [(["198.51.100.7"], uid)])
            self.assertEqual(lk.info()["stats"]["lines"], 200)


if __name__ == "__main__":
    if not (os.access(ANALYZER, os.X_OK) and os.access(LOOKUP, os.X_OK)):
        print("SKIP: d4-analyzer-passivedns or d4-pdns-lookup is not built")
        sys.exit(77)
    unittest.main(verbosity=2)
