#!/usr/bin/env python3
"""d4-ingest under load and backpressure (bounded in count and time, never timed).

- a slow dispatcher: the sink stops reading; ingest pauses its sensors instead of dropping,
  and every frame arrives once the sink reads again;
- dispatch restarts in the middle of a stream: nothing is lost (at-least-once, the sink
  de-duplicates what it had taken in);
- 1,000 concurrent sensors (d4-loadgen), every frame arrives.
"""
import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from ingestlib import BIN, Server, Sensor, frame, parse_frames, wait_for  # noqa: E402

KEY = "load key"


def loadgen(srv, *args, timeout=120):
    cmd = [os.path.join(BIN, "d4-loadgen"), "-c", "127.0.0.1:%d" % srv.port, "--key", KEY] + list(args)
    p = subprocess.run(cmd, capture_output=True, timeout=timeout)
    out = p.stdout.decode()
    line = [l for l in out.splitlines() if l.startswith("connections=")]
    if p.returncode != 0 or not line:
        raise AssertionError("d4-loadgen failed: %s %s" % (out, p.stderr.decode()[-2000:]))
    return dict(kv.split("=", 1) for kv in line[-1].split() if "=" in kv)


class Load(unittest.TestCase):
    def test_slow_dispatcher(self):
        # the sink reads nothing for 3 s; ingest holds at most 1 MiB before pausing
        with Server(sets=["ingest.output_buffer=1M"],
                    sink_args=["--pause-after", "0", "--stall-seconds", "3"]) as srv:
            uid = srv.register(KEY)
            s = Sensor(srv.port)
            payload = b"z" * 60000
            start = time.time()
            for _ in range(200):  # 12 MB: far more than ingest may hold
                s.send(frame(uid, 3, KEY, payload))
            s.close()
            self.assertGreater(time.time() - start, 1.0, "the sensor was never paused")
            srv.wait_log(r"backpressure")
            wait_for(lambda: len(srv.received()) == 200 * (62 + 60000), timeout=60,
                     what="all 200 frames after the stall")

    def test_dispatch_restart(self):
        with Server() as srv:
            uid = srv.register(KEY)
            s = Sensor(srv.port)
            sent = []
            for i in range(300):
                f = frame(uid, 3, KEY, b"%06d" % i + b"." * 2000)
                sent.append(f)
                s.send(f)
                if i == 100:
                    srv.stop_sink()
                    srv.start_sink_process()
            s.close()
            want = [b"%06d" % i for i in range(300)]

            def numbers():
                return sorted({p[:6] for _, p in parse_frames(srv.received())})
            # what the first sink wrote plus what the second wrote holds every frame, each at
            # least once (the second may repeat what the first took in but did not acknowledge)
            wait_for(lambda: numbers() == want, timeout=30, what="every frame after the restart")
            self.assertIn("dispatch-disconnected", srv.read_log())

    def test_thousand_sensors(self):
        with Server(mode="shared-secret", shared_key=KEY,
                    sets=["ingest.max_connections=2000"]) as srv:
            r = loadgen(srv, "-n", "1000", "-s", "512", "--frames", "5", "-d", "60", "-t", "3")
            self.assertEqual(r["established"], "1000")
            wait_for(lambda: len(srv.received()) == 5000 * (62 + 512), timeout=60,
                     what="5000 frames from 1000 sensors")
            uuids = {h["uuid"] for h, _ in parse_frames(srv.received())}
            self.assertEqual(len(uuids), 1000)


if __name__ == "__main__":
    unittest.main(verbosity=2)
