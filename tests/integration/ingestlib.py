"""ingestlib.py — run a real d4-ingest (with d4-sink, or d4-dispatch, as its dispatcher) on loopback
for tests.

Standard library only. A test gets a fresh data directory, a self-signed certificate, a
d4-sink listening on the dispatch socket and a d4-ingest listening on a port the kernel
picked (read back from its log), registers sensors with d4ctl, and talks D4 over TLS with
`Sensor`. Everything is stopped and removed at the end (use `with Server(...) as srv:`).

With `dispatch_conf=TEXT` the dispatcher is a real d4-dispatch started with that configuration
file (plus --set d4.data_dir=...); `ANALYZER_PY` is a tiny analyzer for it (docs/analyzer-protocol.md)
and `queue_stats()` reads the queue counters from the store with mdb_dump.

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
    """[(header fields dict, payload)] of a stream of frames (no HMAC check). A frame the sink
    is still writing at the end (the tests poll its file) is left out, not an error."""
    out, off = [], 0
    while off + HEADER.size <= len(data):
        v, t, u, ts, mac, size = HEADER.unpack_from(data, off)
        if off + HEADER.size + size > len(data):
            break
        out.append(({"version": v, "type": t, "uuid": str(uuidlib.UUID(bytes=u)), "ts": ts,
                     "size": size}, data[off + HEADER.size:off + HEADER.size + size]))
        off += HEADER.size + size
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
                 listen="127.0.0.1:0", start_sink=True, dispatch_conf=None, dispatch_sets=()):
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
        # d4-dispatch instead of d4-sink
        self.dispatch_conf = dispatch_conf
        self.dispatch_sets = list(dispatch_sets)
        self.dispatch = None
        self.dispatch_rc = None  # exit status at stop(): a clean stop (and ASan) says 0
        self.dispatch_log_path = os.path.join(self.dir, "dispatch.log")
        self.dispatch_log = None
        self.conf_path = os.path.join(self.dir, "d4.conf")
        if dispatch_conf is not None:
            self.write_conf(dispatch_conf)
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

    # ---- d4-dispatch (when dispatch_conf was given) ----

    def write_conf(self, text):
        with open(self.conf_path, "w") as f:
            f.write(text)

    def start_dispatch(self):
        sock = os.path.join(self.data, "run/dispatch.sock")
        if self.dispatch_log is None:
            self.dispatch_log = open(self.dispatch_log_path, "ab")
        args = [os.path.join(BIN, "d4-dispatch"), "-c", self.conf_path, "--set",
                "d4.data_dir=" + self.data, "--set", "d4.log_level=debug"]
        for s in self.dispatch_sets:
            args += ["--set", s]
        mark = len(self.read_dispatch_log())
        self.dispatch = subprocess.Popen(args, stdout=self.dispatch_log, stderr=subprocess.STDOUT)
        wait_for(lambda: " started " in self.read_dispatch_log()[mark:] or
                 self.dispatch.poll() is not None, what="d4-dispatch to start")
        if self.dispatch.poll() is not None:
            raise AssertionError("d4-dispatch exited: " + self.read_dispatch_log())
        wait_for(lambda: os.path.exists(sock), what="the dispatch socket")

    def stop_dispatch(self, sig=signal.SIGTERM, timeout=30):
        """Stops d4-dispatch (SIGTERM: drains; SIGKILL: a crash); returns its exit status."""
        if self.dispatch is None:
            return None
        if self.dispatch.poll() is None:
            self.dispatch.send_signal(sig)
        try:
            rc = self.dispatch.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.dispatch.kill()
            rc = self.dispatch.wait()
        self.dispatch = None
        return rc

    def reload_dispatch(self):
        mark = len(self.read_dispatch_log())
        self.dispatch.send_signal(signal.SIGHUP)
        wait_for(lambda: " reload" in self.read_dispatch_log()[mark:], what="the reload")
        return mark

    def read_dispatch_log(self):
        try:
            with open(self.dispatch_log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_dispatch_log(self, pattern, timeout=10.0, start=0):
        return wait_for(lambda: re.search(pattern, self.read_dispatch_log()[start:]), timeout,
                        what=pattern)

    def queue_stats(self, name):
        """The queue's counters record from the store ({} when absent), decoded as
        docs/store.md describes queue v1."""
        p = subprocess.run(["mdb_dump", "-s", "queues", os.path.join(self.data, "store")],
                           capture_output=True, timeout=30)
        if p.returncode != 0:
            return {}
        lines = p.stdout.decode().splitlines()
        i = lines.index("HEADER=END") + 1 if "HEADER=END" in lines else 0
        while i + 1 < len(lines) and lines[i] != "DATA=END":
            key, val = bytes.fromhex(lines[i].strip()), bytes.fromhex(lines[i + 1].strip())
            i += 2
            if key.decode() != name:
                continue
            ver, rec, dlv, ack, mem, spool, drop, restarts, state, upd, et = struct.unpack_from(
                "<HQQQQQQIBQQ", val)
            (n,) = struct.unpack_from("<H", val, 71)
            return {"version": ver, "received": rec, "delivered": dlv, "acknowledged": ack,
                    "in_memory": mem, "spooled": spool, "dropped": drop, "restarts": restarts,
                    "state": ["stopped", "running", "backoff", "failed"][state], "updated": upd,
                    "last_error_time": et, "last_error": val[73:73 + n].decode()}
        return {}

    def start(self):
        try:
            return self._start()
        except BaseException:
            # `with Server()` does not call __exit__ when __enter__ fails: stop what started
            self.stop()
            shutil.rmtree(self.dir, ignore_errors=True)
            raise

    def _start(self):
        if self.dispatch_conf is not None:
            self.start_dispatch()
        elif self.start_sink:
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
        if self.dispatch is not None:
            self.dispatch_rc = self.stop_dispatch()
        if self.dispatch_log is not None:
            self.dispatch_log.close()
            self.dispatch_log = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        if exc[0] is None and self.dispatch_rc not in (None, 0):
            log = self.read_dispatch_log()[-8000:]
            shutil.rmtree(self.dir, ignore_errors=True)
            raise AssertionError("d4-dispatch exited with status %s:\n%s" % (self.dispatch_rc, log))
        if exc[0] is not None:
            sys.stderr.write("---- ingest log ----\n" + self.read_log()[-6000:] + "\n")
            if self.dispatch_conf is not None:
                sys.stderr.write("---- dispatch log ----\n" + self.read_dispatch_log()[-8000:] +
                                 "\n")
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


# A tiny analyzer (docs/analyzer-protocol.md) for the dispatch tests, standard library only.
# Params: out (a directory: <uuid>-<type>.bin gets the payloads of each sensor stream, in order;
# events.txt one line per START/END/BYE), ack (every | none: registers "no ack"),
# stall_after (while the file <out>/stall exists: stop reading after N DATA records of this
# process, without acknowledging the last one),
# slow_ms (sleep that long before each acknowledgement), garbage_after (while the file
# <out>/garbage exists: after N DATA records, remove it and send a message of an unknown kind).
ANALYZER_PY = r"""#!/usr/bin/env python3
import os, socket, struct, sys, time
sock = socket.socket(fileno=0)
rf = sock.makefile("rb")

def exact(n):
    b = rf.read(n)
    if b is None or len(b) < n:
        sys.exit(0)
    return b

def msg():
    ln, kind = struct.unpack("<IB", exact(5))
    return kind, exact(ln - 1)

def send(kind, body=b""):
    sock.sendall(struct.pack("<IB", len(body) + 1, kind) + body)

def s16(b, o):
    (n,) = struct.unpack_from("<H", b, o)
    return b[o + 2:o + 2 + n].decode(), o + 2 + n

if exact(4) != b"D4AP":
    sys.exit("no magic")
kind, body = msg()
if kind != 32:
    sys.exit("no hello")
(version,) = struct.unpack_from("<H", body, 0)
queue, o = s16(body, 2)
(n,) = struct.unpack_from("<H", body, o)
o += 2
params = {}
for _ in range(n):
    k, o = s16(body, o)
    v, o = s16(body, o)
    params[k] = v
out = params.get("out", ".")
noack = params.get("ack") == "none"
stall_after = int(params.get("stall_after", "0"))
slow = int(params.get("slow_ms", "0")) / 1000.0
name = b"tiny"
send(33, struct.pack("<HB", 1, 1 if noack else 0) + struct.pack("<H", len(name)) + name)
sys.stderr.write("tiny analyzer ready queue=%s pid=%d\n" % (queue, os.getpid()))
sys.stderr.flush()
events = open(os.path.join(out, "events.txt"), "a")
sessions = {}
files = {}
ndata = 0
while True:
    kind, body = msg()
    if kind == 34:
        sid, t = struct.unpack_from("<QQ", body, 0)
        uuid = body[16:32].hex()
        typ = body[32]
        mt, o = s16(body, 51)
        js, o = s16(body, o)
        sessions[sid] = (uuid, typ)
        events.write("start %016x %s %d %s %d\n" % (sid, uuid, typ, mt, os.getpid()))
        events.flush()
    elif kind == 35:
        sid, seq = struct.unpack_from("<QQ", body, 0)
        frame = body[16:]
        uuid, typ = sessions[sid]
        key = "%s-%d" % (uuid, frame[1])
        f = files.get(key)
        if f is None:
            f = files[key] = open(os.path.join(out, key + ".bin"), "ab")
        f.write(frame[62:])
        f.flush()
        ndata += 1
        if stall_after and ndata >= stall_after and os.path.exists(os.path.join(out, "stall")):
            events.write("stalled %d\n" % os.getpid())
            events.flush()
            while True:
                time.sleep(3600)
        garbage = os.path.join(out, "garbage")
        if ndata == int(params.get("garbage_after", "0")) and os.path.exists(garbage):
            os.unlink(garbage)
            send(99, b"x")
        if slow:
            time.sleep(slow)
        if not noack:
            send(37, struct.pack("<Q", seq))
    elif kind == 36:
        sid, t, reason = struct.unpack_from("<QQB", body, 0)
        events.write("end %016x %d\n" % (sid, reason))
        events.flush()
    elif kind == 38:
        events.write("bye %d\n" % os.getpid())
        events.flush()
        send(38)
        sys.exit(0)
    else:
        sys.exit("unexpected kind %d" % kind)
"""


def write_analyzer(directory):
    """Writes ANALYZER_PY as an executable file in directory; returns its path."""
    path = os.path.join(directory, "tiny-analyzer.py")
    with open(path, "w") as f:
        f.write(ANALYZER_PY)
    os.chmod(path, 0o755)
    return path
