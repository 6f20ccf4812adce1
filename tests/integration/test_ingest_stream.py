#!/usr/bin/env python3
"""d4-ingest end to end on loopback: valid streams arrive byte for byte.

- frames of many sizes (0, 1, 4 KiB, 64 KiB, 1,000,000) from a registered sensor;
- a pcap stream sent the way the C reference client sends it (header and payload in separate
  writes, cut at snaplen 4096, a zero-length frame at EOF);
- a type 2 + 254 session whose meta header spans two frames;
- shared-secret mode with the configured key;
- two workers on one port.
"""
import os
import random
import struct
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from ingestlib import Server, Sensor, frame, new_uuid, parse_frames, wait_for  # noqa: E402

KEY = "a sensor key"


def pcap_stream(n_packets, seed=1):
    """A libpcap 2.4 stream of n packets of random sizes."""
    rnd = random.Random(seed)
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for i in range(n_packets):
        size = rnd.choice([60, 64, 590, 1514, rnd.randint(40, 1514)])
        out += struct.pack("<IIII", 1700000000 + i, i % 1000000, size, size)
        out += bytes(rnd.getrandbits(8) for _ in range(size))
    return bytes(out)


class Stream(unittest.TestCase):
    def test_sizes_byte_for_byte(self):
        with Server() as srv:
            uid = srv.register(KEY)
            sent = b""
            s = Sensor(srv.port)
            for size in (0, 1, 62, 4096, 65536, 1000000, 7):
                f = frame(uid, 3, KEY, os.urandom(size))
                sent += f
                s.send(f)
            s.close()
            wait_for(lambda: len(srv.received()) == len(sent), what="every frame at the sink")
            self.assertEqual(srv.received(), sent)
            wait_for(lambda: any(e.startswith("close ") for e in srv.events()), what="close")
            # statistics reach the store within a second or two
            st = wait_for(lambda: (lambda j: j if j.get("packets") == 7 else None)(srv.stats(uid)),
                          what="statistics")
            self.assertEqual(st["bytes"], 0 + 1 + 62 + 4096 + 65536 + 1000000 + 7)
            self.assertEqual(st["types"][0]["name"], "log")
            self.assertEqual(st["last_addresses"][0]["address"], "127.0.0.1")

    def test_reference_client_pcap(self):
        data = pcap_stream(300)
        with Server() as srv:
            uid = srv.register(KEY)
            s = Sensor(srv.port)
            for off in range(0, len(data), 4096):
                f = frame(uid, 1, KEY, data[off:off + 4096])
                # the C client writes the header and the payload separately
                s.send(f[:62])
                s.send(f[62:])
            s.send(frame(uid, 1, KEY, b""))  # EOF marker of the C client
            s.close()
            n = (len(data) + 4095) // 4096 + 1
            wait_for(lambda: len(parse_frames(srv.received())) == n, what="all pcap frames")
            got = b"".join(p for _, p in parse_frames(srv.received()))
            self.assertEqual(got, data)

    def test_meta_header_across_frames(self):
        with Server() as srv:
            uid = srv.register(KEY)
            meta = b'{"type": "ja3-jl", "note": "split across frames"}'
            s = Sensor(srv.port)
            s.send(frame(uid, 2, KEY, meta[:10]))
            s.send(frame(uid, 2, KEY, meta[10:]))
            for i in range(5):
                s.send(frame(uid, 254, KEY, b'{"ja3": "%d"}\n' % i))
            self.assertTrue(s.alive())
            s.close()
            wait_for(lambda: len(parse_frames(srv.received())) == 7, what="7 frames")
            types = [h["type"] for h, _ in parse_frames(srv.received())]
            self.assertEqual(types, [2, 2, 254, 254, 254, 254, 254])
            metas = [e for e in srv.events() if e.startswith("meta ")]
            self.assertEqual(len(metas), 1)
            self.assertIn("type=ja3-jl", metas[0])

    def test_shared_secret_mode(self):
        with Server(mode="shared-secret", shared_key="the shared key") as srv:
            uid = new_uuid()  # not registered
            s = Sensor(srv.port)
            s.send(frame(uid, 8, "the shared key", b"line one\n"))
            s.close()
            wait_for(lambda: len(parse_frames(srv.received())) == 1, what="the frame")
            bad = Sensor(srv.port)
            bad.send(frame(new_uuid(), 8, "not the key", b"x\n"))
            self.assertTrue(bad.closed_by_server())
            bad.close()
            srv.wait_log(r"reason=hmac_mismatch")

    def test_two_workers(self):
        with Server(sets=["ingest.workers=2"]) as srv:
            uids = [srv.register(KEY) for _ in range(6)]
            sensors = [Sensor(srv.port) for _ in uids]
            for round_ in range(3):
                for uid, s in zip(uids, sensors):
                    s.send(frame(uid, 3, KEY, b"round %d\n" % round_))
            for s in sensors:
                s.close()
            wait_for(lambda: len(parse_frames(srv.received())) == 18, what="18 frames")
            # a duplicate (uuid, type) is refused whichever worker takes it
            a = Sensor(srv.port)
            a.send(frame(uids[0], 3, KEY, b"first\n"))
            self.assertTrue(a.alive())
            for _ in range(4):
                b = Sensor(srv.port)
                b.send(frame(uids[0], 3, KEY, b"second\n"))
                self.assertTrue(b.closed_by_server())
                b.close()
            self.assertTrue(a.alive())
            a.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
