#!/usr/bin/env python3
"""fake_dispatcher.py: the dispatcher side of docs/analyzer-protocol.md, for analyzer tests.

    python3 fake_dispatcher.py [--scenario S] [--out FILE] [--err FILE] -- ANALYZER [ARGS...]

Spawns the analyzer with one end of a socketpair as its stdin (stdout to FILE), sends the
magic and HELLO, checks REGISTER, then per scenario:

  normal      two interleaved sessions (a type-3 log session and a 254 ja3-jl session whose
              type-2 meta frame is delivered as DATA too), in several batches; checks that the
              ACKs are cumulative (increasing, never beyond what was sent) and that the last one
              equals the last seq; sends BYE, expects BYE and exit status 0.
  seq-gap     a DATA with a gap in seq: the analyzer must exit non-zero.
  bad-version HELLO with version 2: the analyzer must exit non-zero without REGISTER.
  eof         closes the socket without BYE: the analyzer must exit non-zero.

Prints "ok ..." lines and exits 0, or prints the failure and exits 1. The expected data
(lines of each session) is written next to FILE as FILE.a and FILE.b.
"""
import socket
import struct
import subprocess
import sys
import threading
import time

HELLO, REGISTER, START, DATA, END, ACK, BYE = range(32, 39)
UUID_A = bytes.fromhex("cd980d75dcf147dabb60aabe94fea6b2")
UUID_B = bytes.fromhex("5b6f8f4e0a3c4d2e9f1a2b3c4d5e6f70")
SESSION_A, SESSION_B = 0x1234567800000001, 0x1234567800000002


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def msg(kind, body=b""):
    return struct.pack("<IB", len(body) + 1, kind) + body


def s16(b):
    return struct.pack("<H", len(b)) + b


def frame(typ, uuid, payload, ts=1700000000):
    return struct.pack("<BB16sQ32sI", 1, typ, uuid, ts, b"\0" * 32, len(payload)) + payload


def start(session, typ, uuid, port, meta_type=b"", meta=b""):
    addr = b"\0" * 10 + b"\xff\xff" + bytes([192, 0, 2, port % 256])
    body = struct.pack("<QQ16sB16sH", session, 1700000000, uuid, typ, addr, port)
    return msg(START, body + s16(meta_type) + s16(meta))


class Reader(threading.Thread):
    """Reads the analyzer's messages into a list."""

    def __init__(self, sock):
        super().__init__(daemon=True)
        self.sock, self.msgs, self.eof = sock, [], False
        self.cond = threading.Condition()

    def run(self):
        buf = b""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                chunk = b""
            with self.cond:
                if not chunk:
                    self.eof = True
                    self.cond.notify_all()
                    return
                buf += chunk
                while len(buf) >= 5:
                    (n,) = struct.unpack_from("<I", buf)
                    if len(buf) < 4 + n:
                        break
                    self.msgs.append((buf[4], buf[5:4 + n]))
                    buf = buf[4 + n:]
                self.cond.notify_all()

    def wait(self, pred, timeout=10):
        end = time.time() + timeout
        with self.cond:
            while not pred():
                left = end - time.time()
                if left <= 0:
                    return False
                self.cond.wait(left)
            return True



class ScriptedDispatcher:
    """The dispatcher side for a test that scripts the messages itself: starts PROGRAM with a
    socketpair as its stdin, sends the magic and HELLO (queue NAME, PARAMS), numbers DATA from 1,
    and waits for the ACKs. For the analyzers' protocol-mode tests."""

    def __init__(self, program, name, params, ts=1700000000):
        import tempfile
        self.ts = ts
        self.ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([program], stdin=theirs, stdout=self.err, stderr=self.err)
        theirs.close()
        self.reader = Reader(self.ours)
        self.reader.start()
        body = struct.pack("<H", 1) + s16(name.encode()) + struct.pack("<H", len(params))
        for k, v in params.items():
            body += s16(k.encode()) + s16(v.encode())
        self.ours.sendall(b"D4AP" + msg(HELLO, body))
        self.seq = 0

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.ours.close()
        self.err.close()

    def stderr(self):
        self.err.seek(0)
        return self.err.read().decode(errors="replace")

    def registered(self):
        return self.reader.wait(lambda: any(k == REGISTER for k, _ in self.reader.msgs), 5)

    def acks(self):
        return [struct.unpack("<Q", b)[0] for k, b in self.reader.msgs if k == ACK]

    def data(self, session, typ, payload, ts=None):
        self.seq += 1
        return msg(DATA, struct.pack("<QQ", session, self.seq) +
                   frame(typ, UUID_A, payload, self.ts if ts is None else ts))

    def send(self, raw, wait_ack=True):
        self.ours.sendall(raw)
        if wait_ack:
            ok = self.reader.wait(lambda: self.acks() and self.acks()[-1] == self.seq, 10)
            assert ok, "no ACK of %d: %r %s" % (self.seq, self.acks()[-3:], self.stderr())

    def bye(self):
        """BYE: the analyzer answers BYE, closes and exits 0."""
        self.ours.sendall(msg(BYE))
        assert self.reader.wait(lambda: self.reader.eof, 10), "no EOF after BYE"
        rc = self.proc.wait(10)
        assert rc == 0, "exit %d: %s" % (rc, self.stderr())
        assert any(k == BYE for k, _ in self.reader.msgs), "no BYE"


def main():
    args = sys.argv[1:]
    scenario, out, err = "normal", "/dev/null", None
    while args and args[0] != "--":
        opt, val, args = args[0], args[1], args[2:]
        if opt == "--scenario":
            scenario = val
        elif opt == "--out":
            out = val
        elif opt == "--err":
            err = val
    cmd = args[1:]
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with open(out, "wb") as fout, open(err or "/dev/null", "wb") as ferr:
        proc = subprocess.Popen(cmd, stdin=theirs, stdout=fout, stderr=ferr if err else None)
    theirs.close()
    reader = Reader(ours)
    reader.start()
    version = 2 if scenario == "bad-version" else 1
    params = s16(b"flavour") + s16(b"test")
    ours.sendall(b"D4AP" + msg(HELLO, struct.pack("<H", version) + s16(b"q-test") +
                               struct.pack("<H", 1) + params))
    if scenario == "bad-version":
        rc = proc.wait(10)
        if rc == 0 or any(k == REGISTER for k, _ in reader.msgs):
            fail("bad version: exit %d, messages %r" % (rc, reader.msgs))
        print("ok - version 2 refused (exit %d)" % rc)
        return
    if not reader.wait(lambda: reader.msgs):
        fail("no REGISTER")
    kind, body = reader.msgs[0]
    if kind != REGISTER:
        fail("first message is kind %d, not REGISTER" % kind)
    ver, flags, n = struct.unpack_from("<HBH", body)
    name = body[5:5 + n]
    if ver != 1 or len(body) != 5 + n or not name:
        fail("bad REGISTER %r" % body)
    print("ok - REGISTER version=%d flags=%d name=%s" % (ver, flags, name.decode()))
    no_ack = flags & 1

    if scenario == "eof":
        ours.sendall(start(SESSION_A, 3, UUID_A, 4242))
        ours.shutdown(socket.SHUT_WR)
        rc = proc.wait(10)
        if rc == 0:
            fail("EOF without BYE: exit 0")
        print("ok - EOF without BYE: exit %d" % rc)
        return

    lines_a = b"".join(b"line %03d of the log session A, some words to span frames\n" % i
                       for i in range(40))
    lines_b = b"".join(b'{"ja3": "%032x", "n": %d}\n' % (i * 7919, i) for i in range(30))
    meta = b'{"type": "ja3-jl"}'
    open(out + ".a", "wb").write(lines_a)
    open(out + ".b", "wb").write(lines_b)
    chunks_a = [lines_a[i:i + 100] for i in range(0, len(lines_a), 100)]
    chunks_b = [lines_b[i:i + 77] for i in range(0, len(lines_b), 77)]
    seq = 0
    batch = start(SESSION_A, 3, UUID_A, 4242) + start(SESSION_B, 254, UUID_B, 4343, b"ja3-jl", meta)
    seq += 1
    batch += msg(DATA, struct.pack("<QQ", SESSION_B, seq) + frame(2, UUID_B, meta))
    gap_sent = False
    for i in range(max(len(chunks_a), len(chunks_b))):
        for sess, uuid, typ, chunks in ((SESSION_A, UUID_A, 3, chunks_a),
                                        (SESSION_B, UUID_B, 254, chunks_b)):
            if i < len(chunks):
                seq += 1
                if scenario == "seq-gap" and i == 3 and not gap_sent:
                    seq += 1
                    gap_sent = True
                batch += msg(DATA, struct.pack("<QQ", sess, seq) + frame(typ, uuid, chunks[i]))
        if i % 5 == 4:
            try:
                ours.sendall(batch)
            except OSError:
                if scenario != "seq-gap":
                    raise
            batch = b""
            time.sleep(0.05)
    batch += msg(END, struct.pack("<QQB", SESSION_A, 1700000100, 0))
    batch += msg(END, struct.pack("<QQB", SESSION_B, 1700000100, 0))
    try:
        ours.sendall(batch)
    except OSError:
        pass
    if scenario == "seq-gap":
        rc = proc.wait(10)
        if rc == 0:
            fail("seq gap: exit 0")
        print("ok - seq gap refused (exit %d)" % rc)
        return

    def acks():
        return [struct.unpack("<Q", b)[0] for k, b in reader.msgs if k == ACK]

    if not no_ack:
        if not reader.wait(lambda: acks() and acks()[-1] == seq):
            fail("last ACK %r, want %d" % (acks()[-1:], seq))
        a = acks()
        if a != sorted(set(a)) or a[-1] > seq:
            fail("ACKs not cumulative: %r" % a)
        print("ok - %d cumulative ACKs, last = last seq %d" % (len(a), seq))
    ours.sendall(msg(BYE))
    if not reader.wait(lambda: reader.eof):
        fail("no EOF after BYE")
    kinds = [k for k, _ in reader.msgs]
    if kinds[-1] != BYE or kinds.count(BYE) != 1:
        fail("answer to BYE: %r" % kinds[-3:])
    if not no_ack and acks()[-1] != seq:
        fail("final ACK %d, want %d" % (acks()[-1], seq))
    try:
        rc = proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        fail("analyzer still running after BYE")
    if rc != 0:
        fail("exit status %d after BYE" % rc)
    print("ok - BYE answered, exit 0 (%d records)" % seq)


if __name__ == "__main__":
    main()
