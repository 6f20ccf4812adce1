#!/usr/bin/env python3
"""The web UI in headless Chromium: log in, change the first password, approve a pending sensor,
see it connected with a chart of its traffic, block it; screenshots at each step.

Real processes on loopback: d4-ingest with d4-sink (ingestlib.py) and d4-web (weblib.py) on the
same data directory. The browser half is web_ui_driver.js (playwright-core from npm, driving
Debian's /usr/bin/chromium: no browser download); this script answers what it needs: a sensor
registered through the REST API, D4 frames streamed into d4-ingest (types log and passivedns,
so the chart stacks two types), and checks through the API that the UI's actions took effect.

Skips (77) without node, npm or /usr/bin/chromium, or when playwright-core cannot be installed
(it goes into <build>/web-ui-node, installed once). Screenshots: <build>/test-artifacts/web-ui/.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from ingestlib import BIN, Sensor, Server, frame, new_uuid, wait_for  # noqa: E402
from weblib import Client, Web  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.abspath(os.path.join(BIN, ".."))
ARTIFACTS = os.path.join(BUILD, "test-artifacts", "web-ui")
NODE_DIR = os.path.join(BUILD, "web-ui-node")
CHROMIUM = "/usr/bin/chromium"
KEY = "ui-test-sensor-key-0123456789"
NEW_PW = "a-new-password-for-the-ui"


def skip(why):
    print("SKIP: " + why)
    sys.exit(77)


def playwright_core():
    """The playwright-core package directory, installed with npm on first use."""
    pkg = os.path.join(NODE_DIR, "node_modules", "playwright-core")
    if os.path.exists(os.path.join(pkg, "package.json")):
        return pkg
    os.makedirs(NODE_DIR, exist_ok=True)
    p = subprocess.run(["npm", "install", "--prefix", NODE_DIR, "--no-audit", "--no-fund",
                        "--no-save", "playwright-core@1"], capture_output=True, text=True,
                       timeout=240)
    if p.returncode != 0 or not os.path.exists(os.path.join(pkg, "package.json")):
        skip("npm install playwright-core failed:\n" + p.stdout[-2000:] + p.stderr[-2000:])
    return pkg


class Streams:
    """Sensor connections into d4-ingest, one per type, kept open (the sensor is 'connected')."""

    def __init__(self, port, uuid):
        self.port = port
        self.uuid = uuid
        self.socks = {}

    def send(self, ftype, payloads):
        s = self.socks.get(ftype)
        if s is None:
            s = self.socks[ftype] = Sensor(self.port)
        for p in payloads:
            s.send(frame(self.uuid, ftype, KEY, p))
        return s

    def start(self):
        """Streams until d4-ingest accepts (it sees an approval within a second)."""
        def try_once():
            s = self.send(3, [b"2026-01-01 sshd[1]: Failed password for root\n" * 20] * 5)
            if s.alive(0.5):
                return True
            self.close()
            return False
        wait_for(try_once, timeout=15, step=0.5, what="d4-ingest to accept the approved sensor")
        self.send(8, [b"1700000000||198.51.100.7|8.8.8.8|IN|example.org.|A|93.184.216.34|300|1\n"
                      * 30] * 3)

    def more(self, seconds=12):
        """Streams for a while in the background, so that the dashboard shows a throughput."""
        def run():
            end = time.time() + seconds
            try:
                while time.time() < end:
                    self.send(3, [os.urandom(2000)] * 10)
                    self.send(8, [b"1700000001||198.51.100.7|8.8.8.8|IN|example.net.|A|192.0.2.1"
                                  b"|60|1\n" * 40])
                    time.sleep(0.25)
            except OSError:
                pass  # blocked and kicked meanwhile
        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def wait(self):
        if getattr(self, "thread", None) is not None:
            self.thread.join()
            self.thread = None

    def close(self):
        for s in self.socks.values():
            s.close()
        self.socks = {}


def main():
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            skip(tool + " is not installed")
    if not os.access(CHROMIUM, os.X_OK):
        skip(CHROMIUM + " is not installed (Debian package chromium)")
    pkg = playwright_core()
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    os.makedirs(ARTIFACTS)
    profile = tempfile.mkdtemp(prefix="d4-web-ui-profile-")
    ok = False
    with Server() as srv:
        # d4-web on the same data directory (store and TLS certificate) as d4-ingest
        with Web(sets=["d4.data_dir=" + srv.data]) as web:
            rc, first_pw, _, err = web.create_admin("admin")
            assert rc == 0 and first_pw, err
            web.start()
            url = "https://127.0.0.1:%d" % web.port
            api = Client(web)
            streams = None
            env = dict(os.environ, D4_UI_URL=url, D4_UI_USER="admin", D4_UI_PASSWORD=first_pw,
                       D4_UI_NEW_PASSWORD=NEW_PW, D4_UI_ARTIFACTS=ARTIFACTS,
                       D4_UI_PLAYWRIGHT=pkg, D4_UI_PROFILE=profile)
            drv = subprocess.Popen(["node", os.path.join(HERE, "web_ui_driver.js")], env=env,
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            try:
                for line in drv.stdout:
                    line = line.rstrip("\n")
                    print(line, flush=True)
                    if not line.startswith("NEED "):
                        continue
                    _, what, data = line.split(" ", 2)
                    data = json.loads(data)
                    reply = {}
                    try:
                        if what == "register":
                            # the UI changed the password: the API user logs in with the new one
                            r = api.login("admin", NEW_PW)
                            assert r.status == 200, r
                            uid = new_uuid()
                            r = api.post("/api/v1/add/sensor/register",
                                         {"uuid": uid, "hmac_key": KEY,
                                          "description": "honeypot in the DMZ (ui test)"})
                            assert r.status == 200, r
                            reply = {"uuid": uid}
                        elif what == "stream":
                            r = api.get("/api/v1/sensors/" + data["uuid"])
                            assert r.json["registration"]["state"] == "approved", r
                            streams = Streams(srv.port, data["uuid"])
                            streams.start()
                            wait_for(lambda: (lambda st: st and st.get("active_sessions", 0) >= 2
                                              and st.get("packets", 0) >= 8)(
                                api.get("/api/v1/sensors/" + data["uuid"]).json["statistics"]),
                                timeout=15, what="statistics in the store")
                        elif what == "stream-more":
                            streams.more()
                        elif what == "check-blocked":
                            r = api.get("/api/v1/sensors/" + data["uuid"])
                            assert r.json["blocked"] is not None, r
                            assert r.json["blocked"]["comment"] == "ui test", r
                            streams.wait()
                            # the UI also kicked it: its sessions end
                            for s in streams.socks.values():
                                assert s.closed_by_server(5), "a session survived the block"
                            streams.close()
                            # and a new session is refused
                            s = Sensor(srv.port)
                            s.send(frame(data["uuid"], 3, KEY, b"after the block\n"))
                            assert s.closed_by_server(5), "a blocked sensor was accepted"
                            s.close()
                        elif what == "user":
                            # a user of that role, made by the admin through the API, with a
                            # password of its own (so no change is required at first login)
                            name = data["role"].replace("-", "") + "1"
                            pw = "password-of-" + name
                            r = api.post("/api/v1/users", {"name": name, "role": data["role"],
                                                           "password": pw})
                            assert r.status in (200, 201), r
                            reply = {"name": name, "password": pw}
                        elif what == "check-token":
                            r = Client(web, token=data["token"]).get("/api/v1/info")
                            assert r.status == 200 and r.json["you"]["user"] == "admin", r
                        else:
                            reply = {"error": "unknown request " + what}
                    except AssertionError as e:
                        reply = {"error": "%s: %s" % (what, e)}
                    drv.stdin.write(json.dumps(reply) + "\n")
                    drv.stdin.flush()
                drv.stdin.close()
                rc = drv.wait(timeout=60)
                ok = rc == 0
                if not ok:
                    print("the browser driver failed (exit %d); d4-web log:\n%s" %
                          (rc, web.log_text()[-4000:]))
            finally:
                if drv.poll() is None:
                    drv.kill()
                    drv.wait()
                if streams is not None:
                    streams.wait()
                    streams.close()
    shutil.rmtree(profile, ignore_errors=True)
    shots = sorted(f for f in os.listdir(ARTIFACTS) if f.endswith(".png"))
    print("screenshots (%d) in %s:" % (len(shots), ARTIFACTS))
    for f in shots:
        print("  " + f)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
