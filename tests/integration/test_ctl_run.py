#!/usr/bin/env python3
"""d4ctl run / start / stop / status: the master process.

From an empty data directory: the first run creates the store and a certificate, starts the
server processes that are built, restarts one that is killed (kill -9), reports them in
`status --json`, and `stop` leaves no process behind. A second master on the same data
directory is refused.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from ingestlib import BIN, wait_for  # noqa: E402

CTL = os.path.join(BIN, "d4ctl")


class Master(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="d4-ctl-run-")
        self.data = os.path.join(self.dir, "var")
        self.sets = ["--set", "d4.data_dir=" + self.data, "--set", "ingest.listen=127.0.0.1:0",
                     "--set", "web.listen=127.0.0.1:0", "--set", "d4.log_level=info"]

    def tearDown(self):
        subprocess.run([CTL] + self.sets + ["stop"], capture_output=True, timeout=90)
        shutil.rmtree(self.dir, ignore_errors=True)

    def ctl(self, *args, check=True):
        p = subprocess.run([CTL] + self.sets + list(args), capture_output=True, timeout=90)
        if check and p.returncode != 0:
            raise AssertionError("%s: %d %s %s" % (args, p.returncode, p.stdout, p.stderr))
        return p

    def status(self):
        p = self.ctl("--json", "status", check=False)
        return json.loads(p.stdout)

    def procs(self):
        return {p["name"]: p for p in self.status()["processes"]}

    def test_start_restart_stop(self):
        p = self.ctl("start")
        self.assertIn(b"created a self-signed TLS certificate", p.stdout)
        self.assertTrue(os.path.exists(os.path.join(self.data, "store")))
        self.assertTrue(os.path.exists(os.path.join(self.data, "tls/server.key")))
        self.assertEqual(os.stat(os.path.join(self.data, "tls/server.key")).st_mode & 0o077, 0)
        st = wait_for(lambda: (lambda s: s if s["running"] and s["processes"] else None)(self.status()),
                      what="the master and its processes")
        names = {p["name"] for p in st["processes"]}
        self.assertIn("ingest", names)
        pid = self.procs()["ingest"]["pid"]
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: self.procs()["ingest"]["pid"] != pid and self.procs()["ingest"]["alive"],
                 timeout=15, what="ingest restarted")
        self.assertEqual(self.procs()["ingest"]["restarts"], 1)
        # one master per data directory
        p = self.ctl("start", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"already running", p.stderr)
        pids = [p["pid"] for p in self.status()["processes"] if p["pid"] > 0] + [self.status()["master_pid"]]
        self.ctl("stop")
        for pid in pids:
            with self.assertRaises(ProcessLookupError):
                os.kill(pid, 0)
        self.assertFalse(self.status()["running"])
        # a second start reuses what the first one made
        p = self.ctl("start")
        self.assertNotIn(b"created a self-signed", p.stdout)
        self.ctl("stop")

    def test_foreground_run_stops_on_sigterm(self):
        proc = subprocess.Popen([CTL] + self.sets + ["run"], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        wait_for(lambda: (lambda s: s.get("running") and s["processes"] and
                          all(p["alive"] for p in s["processes"]))(self.status()),
                 what="run with every process up")
        pids = [p["pid"] for p in self.status()["processes"] if p["pid"] > 0]  # 0: not started yet
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 0, out)
        self.assertIn(b"master-stopped", out)
        for pid in pids:
            with self.assertRaises(ProcessLookupError):
                os.kill(pid, 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
