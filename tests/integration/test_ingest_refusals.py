#!/usr/bin/env python3
"""d4-ingest refuses every bad stream with its own reason, and a good sensor streaming all
along is never touched.

Each case: connect, send the offending bytes, expect the server to close the connection,
a log line `refused ... reason=<name>`, and (for a registered sensor) the refusal counted
in its statistics. Between cases the good sensor sends a frame and must still be connected;
at the end every one of its frames is at the sink.
"""
import os
import socket
import ssl
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from ingestlib import Server, Sensor, frame, new_uuid, parse_frames, wait_for  # noqa: E402

KEY = "the right key"


def have_ipv6():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


class Refusals(unittest.TestCase):
    def setUp(self):
        listen = "127.0.0.1:0,[::1]:0" if have_ipv6() else "127.0.0.1:0"
        self.srv = Server(listen=listen, sets=["ingest.header_timeout=1s",
                                               "ingest.meta_header_max=1k",
                                               "ingest.kick_ban=30s"])
        self.srv.start()
        self.good_uuid = self.srv.register(KEY)
        self.good = Sensor(self.srv.port)
        self.good_frames = 0
        self.good_beat()

    def tearDown(self):
        try:
            self.good.close()
            n = self.good_frames
            wait_for(lambda: sum(1 for h, _ in parse_frames(self.srv.received())
                                 if h["uuid"] == self.good_uuid) == n,
                     what="every frame of the good sensor at the sink")
        finally:
            self.srv.__exit__(None, None, None)

    def good_beat(self):
        self.good.send(frame(self.good_uuid, 3, KEY, b"still here %d\n" % self.good_frames))
        self.good_frames += 1
        self.assertTrue(self.good.alive(0.2), "the good sensor was disconnected")

    def expect_refusal(self, reason, data, uid=None, sensor=None, count_on_sensor=True):
        s = sensor or Sensor(self.srv.port)
        try:
            if data:
                s.send(data)
            closed = s.closed_by_server(5)
        except (ssl.SSLError, ConnectionError):
            closed = True  # closed while we were still sending (a refused header)
        self.assertTrue(closed, "not closed for " + reason)
        s.close()
        self.srv.wait_log(r"refused uuid=%s .*reason=%s" % (uid or r"\S+", reason))
        if uid and count_on_sensor:
            wait_for(lambda: self.srv.stats(uid).get("refusals", {}).get(reason, 0) >= 1,
                     what="refusal %s counted on the sensor" % reason)
        self.good_beat()

    # ---- from the bytes alone ----

    def test_wire_refusals(self):
        uid = self.srv.register(KEY)
        self.expect_refusal("bad_version", frame(uid, 3, KEY, b"x", version=2), uid)
        self.expect_refusal("unknown_type", frame(uid, 9, KEY, b"x"), uid)
        not_v4 = "cd980d75-dcf1-17da-bb60-aabe94fea6b2"
        self.expect_refusal("uuid_not_v4", frame(not_v4, 3, KEY, b"x"), not_v4, count_on_sensor=False)
        self.expect_refusal("payload_too_large", frame(uid, 3, KEY, b"x" * 1000001), uid)
        self.expect_refusal("hmac_mismatch", frame(uid, 3, "wrong key", b"x"), uid)
        self.expect_refusal("hmac_mismatch", frame(uid, 3, KEY, b"x", corrupt_hmac=True), uid)

    # ---- session rules ----

    def test_session_rules(self):
        uid = self.srv.register(KEY)
        other = self.srv.register(KEY)
        self.expect_refusal("uuid_changed",
                            frame(uid, 3, KEY, b"a") + frame(other, 3, KEY, b"b"), uid)
        self.expect_refusal("type_changed", frame(uid, 3, KEY, b"a") + frame(uid, 8, KEY, b"b"), uid)
        self.expect_refusal("type_not_accepted", frame(uid, 5, KEY, b"pcapng"), uid)
        self.expect_refusal("meta_header_missing", frame(uid, 254, KEY, b"{}"), uid)
        self.expect_refusal("meta_header_invalid", frame(uid, 2, KEY, b'["type"]'), uid)
        self.expect_refusal("meta_header_invalid", frame(uid, 2, KEY, b'{"type": 5}'), uid)
        self.expect_refusal("meta_header_too_large", frame(uid, 2, KEY, b'{"type": "' + b"a" * 1100), uid)
        self.expect_refusal("meta_type_not_accepted", frame(uid, 2, KEY, b'{"type": "no-such-type"}'), uid)
        # one connection per (uuid, type): the newer one is refused, the first goes on
        first = Sensor(self.srv.port)
        first.send(frame(uid, 8, KEY, b"first\n"))
        self.assertTrue(first.alive())
        self.expect_refusal("duplicate_session", frame(uid, 8, KEY, b"second\n"), uid)
        self.assertTrue(first.alive())
        first.close()
        # no complete header within header_timeout (1 s here)
        self.expect_refusal("header_timeout", frame(uid, 3, KEY, b"x")[:30])
        self.expect_refusal("header_timeout", b"")

    # ---- registrations and blocklists, changed while running ----

    def test_policy(self):
        self.expect_refusal("sensor_not_registered", frame(new_uuid(), 3, KEY, b"x"))
        pending = self.srv.register(KEY, approve=False)
        self.expect_refusal("sensor_pending", frame(pending, 3, KEY, b"x"), pending)
        self.srv.ctl("sensor", "reject", pending)
        time.sleep(1.2)  # policy reload
        self.expect_refusal("sensor_rejected", frame(pending, 3, KEY, b"x"), pending)

        blocked = self.srv.register(KEY)
        self.srv.ctl("sensor", "block", blocked)
        time.sleep(1.2)
        self.expect_refusal("uuid_blocked", frame(blocked, 3, KEY, b"x"), blocked)

        # a kick closes a live session within a second, then the sensor is banned for a while
        kicked = self.srv.register(KEY)
        k = Sensor(self.srv.port)
        k.send(frame(kicked, 3, KEY, b"hello\n"))
        self.assertTrue(k.alive())
        self.srv.ctl("sensor", "kick", kicked)
        self.assertTrue(k.closed_by_server(3))
        k.close()
        self.srv.wait_log(r"reason=kicked")
        self.expect_refusal("temporary_ban", frame(kicked, 3, KEY, b"again\n"), kicked)

        # a new key applies without a restart
        rotated = self.srv.register(KEY)
        self.srv.ctl("sensor", "set-key", rotated, "--key", "a new key")
        time.sleep(1.2)
        self.expect_refusal("hmac_mismatch", frame(rotated, 3, KEY, b"old key\n"), rotated)
        ok = Sensor(self.srv.port)
        ok.send(frame(rotated, 3, "a new key", b"new key\n"))
        self.assertTrue(ok.alive())
        ok.close()

    @unittest.skipUnless(have_ipv6(), "no IPv6 loopback")
    def test_address_blocked(self):
        # block ::1 only: the good sensor (127.0.0.1) must stay connected
        self.srv.ctl("block", "ip", "add", "::1/128", "--comment", "test")
        time.sleep(1.2)
        uid = self.srv.register(KEY)
        try:  # closed before TLS: the handshake itself fails
            s = Sensor(self.srv.ports[1], host="::1", family=socket.AF_INET6)
            self.assertTrue(s.closed_by_server(3))
            s.close()
        except (ssl.SSLError, ConnectionError):
            pass
        self.srv.wait_log(r"refused uuid=- peer=\[::1\]:\d+ reason=address_blocked")
        self.good_beat()
        self.srv.ctl("block", "ip", "del", "::1/128")
        time.sleep(1.2)
        s = Sensor(self.srv.ports[1], host="::1", family=socket.AF_INET6)
        s.send(frame(uid, 3, KEY, b"over v6\n"))
        self.assertTrue(s.alive())
        s.close()


class Hostile(unittest.TestCase):
    def test_garbage_never_hurts_others(self):
        """Random bytes, truncated frames and oversize claims from 300 connections: each is
        refused or times out on its own, the good sensor streams on, ingest stays up."""
        import random
        rnd = random.Random(4)
        with Server(sets=["ingest.header_timeout=1s"]) as srv:
            uid = srv.register(KEY)
            good = Sensor(srv.port)
            sent = 0
            for i in range(300):
                kind = i % 5
                if kind == 0:
                    data = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 4000)))
                elif kind == 1:
                    data = frame(uid, 3, KEY, b"x" * 500)[:rnd.randint(1, 561)]
                elif kind == 2:
                    f = bytearray(frame(uid, 3, KEY, b"y" * 100))
                    f[rnd.randint(0, len(f) - 1)] ^= 1 << rnd.randint(0, 7)
                    data = bytes(f)
                elif kind == 3:
                    data = frame(uid, rnd.choice([0, 9, 200, 255]), KEY, b"z")
                else:
                    data = b"\x01" * 62 + b"\xff" * 4
                try:
                    s = Sensor(srv.port)
                    s.send(data)
                    s.close()
                except (OSError, ssl.SSLError):
                    pass
                if i % 30 == 0:
                    good.send(frame(uid, 8, KEY, b"good %d\n" % i))
                    sent += 1
            self.assertTrue(good.alive())
            good.close()
            wait_for(lambda: sum(1 for h, _ in parse_frames(srv.received()) if h["type"] == 8) == sent,
                     what="every good frame")
            self.assertIsNone(srv.ingest.poll(), "d4-ingest died")


class TimestampWindow(unittest.TestCase):
    def test_skew(self):
        with Server(sets=["ingest.timestamp_window=1h"]) as srv:
            uid = srv.register(KEY)
            s = Sensor(srv.port)
            s.send(frame(uid, 3, KEY, b"now\n"))
            self.assertTrue(s.alive())
            s.send(frame(uid, 3, KEY, b"then\n", ts=int(time.time()) - 7200))
            self.assertTrue(s.closed_by_server())
            s.close()
            srv.wait_log(r"reason=timestamp_skew")

    def test_skew_counted_when_off(self):
        with Server() as srv:
            uid = srv.register(KEY)
            s = Sensor(srv.port)
            s.send(frame(uid, 3, KEY, b"old\n", ts=1629453011))
            self.assertTrue(s.alive())
            s.close()
            wait_for(lambda: srv.stats(uid).get("skewed_frames", 0) == 1, what="skew counted")


if __name__ == "__main__":
    unittest.main(verbosity=2)
