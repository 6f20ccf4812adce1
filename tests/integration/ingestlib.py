"""ingestlib.py — run a real d4-ingest (with d4-sink as its dispatcher) on loopback for tests.

Standard library only. A test gets a fresh data directory, a self-signed certificate, a
d4-sink listening on the dispatch socket and a d4-ingest listening on a port the kernel
picked (read back from its log), registers sensors with d4ctl, and talks D4 over TLS with
`Sensor`. Everything is stopped and removed at the end (use `with Server(...) as srv:`).

Environment (set by ctest): D4_BIN (build/bin), D4_TEST_DATA (tests/data).
"""
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import uuid as uuidlib

BIN = os.environ.get("D4_BIN", os.path.join(os.path.dirname(__file__), "../../build/bin"))
TEST_DATA = os.environ.get("D4_TEST_DATA", os.path.join(os.path.dirname(__file__), "../data"))

HEADER = struct.Struct("<BB16sQ32sI")


def frame(uuid, ftype, key, payload, ts=None, version=1, corrupt_hmac=False):
    """One D4 frame: 62-byte header (HMAC over the header with zeroed hmac, then payload) + payload."""
    if isinstance(uuid, str):
        uuid = uuidlib.UUID(uuid).bytes
    if isinstance(key, str):
        key = key.encode()
    if isinstance(payload, str):
        payload = payload.encode()
    ts = int(time.time()) if ts is None else ts
    hdr = HEADER.pack(version, ftype, uuid, ts, bytes(32), len(payload))
    mac = hmac.new(key, hdr + payload, hashlib.sha256).digest()
    if corrupt_hmac:
        mac = bytes([mac[0] ^ 1]) + mac[1:]
    return HEADER.pack(version, ftype, uuid, ts, mac, len(payload)) + payload


def parse_frames(data):
    """[(header fields dict, payload)] of a stream of frames (no HMAC check)."""
    out, off = [], 0
    while off + HEADER.size <= len(data):
        v, t, u, ts, mac, size = HEADER.unpack_from(data, off)
        out.append(({"version": v, "type": t, "uuid": str(uuidlib.UUID(bytes=u)), "ts": ts,
                     "size": size}, data[off + HEADER.size:off + HEADER.size + size]))
        off += HEADER.size + size
    assert off == len(data), "trailing bytes in the sink's output"
    return out


def new_uuid():
    return str(uuidlib.uuid4())


def wait_for(cond, timeout=10.0, step=0.05, what="condition"):
    end = time.time() + timeout
    while time.time() < end:
        v = cond()
        if v:
            return v
        time.sleep(step)
    raise AssertionError("timed out waiting for " + what)


class Sensor:
    """A TLS connection to ingest that sends raw bytes and notices when the server closes it."""

    def __init__(self, port, host="127.0.0.1", family=socket.AF_INET):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        raw = socket.socket(family, socket.SOCK_STREAM)
        raw.settimeout(10)
        raw.connect((host, port))
        self.sock = ctx.wrap_socket(raw, server_hostname="localhost")

    def send(self, data):
        self.sock.sendall(data)

    def closed_by_server(self, timeout=5.0):
        """True when the server closes the connection within timeout (EOF or reset)."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, ssl.SSLError, BrokenPipeError, ssl.SSLEOFError):
            return True
        except socket.timeout:
            return False
        except OSError:
            return True

    def alive(self, wait=0.3):
        """True when the server has not closed the connection within `wait` seconds."""
        return not self.closed_by_server(wait)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Server:
    """d4-sink + d4-ingest in a fresh data directory. `sets` are extra --set options."""

    def __init__(self, sets=(), sink_args=(), mode="registration", shared_key=None,
                 listen="127.0.0.1:0", start_sink=True):
        self.dir = tempfile.mkdtemp(prefix="d4-ingest-test-")
        self.data = os.path.join(self.dir, "var")
        os.makedirs(os.path.join(self.data, "tls"))
        os.makedirs(os.path.join(self.data, "run"))
        self.sink_out = os.path.join(self.dir, "frames.d4")
        self.sink_events = os.path.join(self.dir, "events.txt")
        self.ingest_log = os.path.join(self.dir, "ingest.log")
        self.sets = ["d4.data_dir=" + self.data, "ingest.listen=" + listen,
                     "ingest.mode=" + mode, "d4.log_level=debug"]
        if shared_key is not None:
            self.sets.append("ingest.shared_key=" + shared_key)
        self.sets += list(sets)
        self.sink_args = list(sink_args)
        self.start_sink = start_sink
        self.sink = None
        self.ingest = None
        self.ports = []
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                        os.path.join(self.data, "tls/server.key"), "-out",
                        os.path.join(self.data, "tls/server.crt"), "-days", "2", "-subj",
                        "/CN=localhost"], check=True, capture_output=True)

    # ---- processes ----

    def start_sink_process(self):
        sock = os.path.join(self.data, "run/dispatch.sock")
        self.sink = subprocess.Popen([os.path.join(BIN, "d4-sink"), "-s", sock, "-o",
                                      self.sink_out, "-e", self.sink_events] + self.sink_args,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_for(lambda: os.path.exists(sock), what="the sink's socket")

    def stop_sink(self):
        """Stops the sink and returns its summary line as a dict."""
        if self.sink is None:
            return {}
        self.sink.send_signal(signal.SIGTERM)
        out, err = self.sink.communicate(timeout=20)
        self.sink = None
        line = out.decode().strip().splitlines()[-1] if out.strip() else ""
        return dict(kv.split("=", 1) for kv in line.split() if "=" in kv)

    def start(self):
        if self.start_sink:
            self.start_sink_process()
        self.log = open(self.ingest_log, "wb")
        args = [os.path.join(BIN, "d4-ingest")]
        for s in self.sets:
            args += ["--set", s]
        self.ingest = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(lambda: "started" in self.read_log() or self.ingest.poll() is not None,
                 what="d4-ingest to start")
        if self.ingest.poll() is not None:
            raise AssertionError("d4-ingest exited: " + self.read_log())
        self.ports = [int(p) for p in re.findall(r"listening address=\S+ port=(\d+)", self.read_log())]
        return self

    def stop(self):
        if self.ingest is not None and self.ingest.poll() is None:
            self.ingest.send_signal(signal.SIGTERM)
            try:
                self.ingest.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.ingest.kill()
                self.ingest.wait()
        self.ingest = None
        if getattr(self, "log", None) is not None:
            self.log.close()
            self.log = None
        if self.sink is not None:
            self.stop_sink()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        if exc[0] is not None:
            sys.stderr.write("---- ingest log ----\n" + self.read_log()[-6000:] + "\n")
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def port(self):
        return self.ports[0]

    def read_log(self):
        try:
            with open(self.ingest_log, "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, pattern, timeout=10.0):
        return wait_for(lambda: re.search(pattern, self.read_log()), timeout, what=pattern)

    # ---- the store, through d4ctl ----

    def ctl(self, *args, check=True):
        cmd = [os.path.join(BIN, "d4ctl"), "--set", "d4.data_dir=" + self.data] + list(args)
        p = subprocess.run(cmd, capture_output=True, timeout=30)
        if check and p.returncode != 0:
            raise AssertionError("%s: exit %d: %s" % (" ".join(args), p.returncode,
                                                       p.stderr.decode()))
        return p

    def register(self, key, approve=True, uid=None):
        uid = uid or new_uuid()
        args = ["sensor", "register", uid, "--key", key]
        if approve:
            args.append("--approve")
        self.ctl(*args)
        return uid

    def sensor(self, uid):
        return json.loads(self.ctl("--json", "sensor", "show", uid).stdout)

    def stats(self, uid):
        """The sensor's statistics as `d4ctl --json sensor show` gives them ({} before any)."""
        return self.sensor(uid).get("statistics") or {}

    # ---- what the sink received ----

    def received(self):
        try:
            with open(self.sink_out, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return b""

    def events(self):
        try:
            with open(self.sink_events) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []
