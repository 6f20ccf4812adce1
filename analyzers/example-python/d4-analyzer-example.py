#!/usr/bin/env python3
"""d4-analyzer-example.py: a complete D4 analyzer in Python, standard library only.

Counts the lines of line-typed sessions (3, 6, 8, and 254 with a "-jl" meta-type) and prints
them per sensor when a session ends. Speaks docs/analyzer-protocol.md when d4-dispatch starts
it (stdin: a socket that begins with "D4AP"), or reads a saved D4 stream:
    d4-analyzer-example.py < capture.d4
"""
import json
import os
import struct
import sys

NAME = b"example"
MAGIC = b"D4AP"
HELLO, REGISTER, START, DATA, END, ACK, BYE = range(32, 39)
HDR = 62  # D4 header: version, type, uuid[16], u64 timestamp, hmac[32], u32 size


def die(msg):
    sys.stderr.write("d4-analyzer-example: %s\n" % msg)
    sys.exit(1)


class Input:  # buffered reads of fd 0 (we answer on the same socket, so no sys.stdin)
    def __init__(self):
        self.buf = bytearray()

    def fill(self, n):
        while len(self.buf) < n:
            chunk = os.read(0, max(65536, n - len(self.buf)))
            if not chunk:
                return False
            self.buf += chunk
        return True

    def read(self, n):  # n bytes, b"" at a clean EOF
        if not self.fill(n) and self.buf:
            die("input ends inside a message or frame")
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data


class Counter:
    def __init__(self):
        self.sessions = {}  # id -> [uuid, type, counted, lines, last byte]
        self.totals = {}  # uuid -> lines

    def start(self, sid, uuid, typ, meta_type):
        counted = typ in (3, 6, 8) or (typ == 254 and meta_type.endswith("-jl"))
        self.sessions[sid] = [uuid.hex(), typ, counted, 0, b"\n"]

    def data(self, sid, dtype, payload):
        s = self.sessions[sid]
        if s[2] and dtype != 2 and payload:
            s[3] += payload.count(b"\n")
            s[4] = payload[-1:]

    def end(self, sid):
        uuid, typ, counted, lines, last = self.sessions.pop(sid)
        if counted:
            lines += last != b"\n"  # a last line without its newline
            self.totals[uuid] = self.totals.get(uuid, 0) + lines
            print("%s type=%d lines=%d sensor_total=%d" % (uuid, typ, lines, self.totals[uuid]))


def send(kind, body=b""):
    msg = struct.pack("<IB", len(body) + 1, kind) + body
    while msg:
        msg = msg[os.write(0, msg):]


def protocol(inp, c):
    last_seq = acked = 0
    hello = False
    while True:
        prefix = inp.read(5)
        if not prefix:
            die("the dispatcher closed the connection without BYE")
        length, kind = struct.unpack("<IB", prefix)
        body = inp.read(length - 1) if length > 1 else b""
        if length < 1 or len(body) != length - 1:
            die("message cut short")
        if not hello and kind != HELLO:
            die("message %d before HELLO" % kind)
        if kind == HELLO:
            (version,) = struct.unpack_from("<H", body)
            if version != 1:
                die("dispatcher speaks version %d, this analyzer speaks 1" % version)
            hello = True
            send(REGISTER, struct.pack("<HBH", 1, 0, len(NAME)) + NAME)
        elif kind == START:
            sid, _, uuid, typ = struct.unpack_from("<QQ16sB", body)
            (n,) = struct.unpack_from("<H", body, 51)  # meta-type: after addr[16], u16 port
            c.start(sid, uuid, typ, body[53:53 + n].decode("utf-8", "replace"))
        elif kind == DATA:
            sid, seq = struct.unpack_from("<QQ", body)
            if seq != last_seq + 1 or sid not in c.sessions or len(body) < 16 + HDR:
                die("bad DATA (session %d, seq %d after %d)" % (sid, seq, last_seq))
            last_seq = seq
            c.data(sid, body[17], body[16 + HDR:])
        elif kind == END:
            (sid,) = struct.unpack_from("<Q", body)
            if sid in c.sessions:
                c.end(sid)
        elif kind == BYE:
            for sid in list(c.sessions):
                c.end(sid)
        else:
            die("unexpected message kind %d" % kind)
        # once the batch read is used up: flush what was printed, acknowledge what is new
        if kind == BYE or not inp.buf:
            sys.stdout.flush()
        if (kind == BYE or not inp.buf) and last_seq != acked:
            send(ACK, struct.pack("<Q", last_seq))
            acked = last_seq
        if kind == BYE:
            send(BYE)
            return 0


def offline(inp, c):
    sid = 0
    cur = None  # (uuid, type) of the open session
    meta = b""  # type-2 payloads gathered before a 254 session starts
    while True:
        hdr = inp.read(HDR)
        if not hdr:
            break
        version, typ, uuid, _ts, _hmac, size = struct.unpack("<BB16sQ32sI", hdr)
        if version != 1:
            die("frame with version %d" % version)
        payload = inp.read(size)
        if len(payload) != size:
            die("input ends inside a frame")
        if cur and cur[0] == uuid and (cur[1] == typ or (cur[1] == 2 and typ == 254)):
            if cur[1] == 2 and typ == 254:
                cur = (uuid, 254)
                c.start(sid, uuid, 254, meta_type_of(meta))
        else:
            if cur:
                c.end(sid)
            sid, cur, meta = sid + 1, (uuid, typ), b""
            if typ != 2:
                c.start(sid, uuid, typ, "")
        if cur[1] == 2:
            meta += payload
        else:
            c.data(sid, typ, payload)
    if cur and cur[1] == 2:
        c.start(sid, cur[0], 254, meta_type_of(meta))
    if cur:
        c.end(sid)
    return 0


def meta_type_of(meta):
    try:
        return str(json.loads(meta.decode("utf-8")).get("type", ""))
    except (ValueError, AttributeError):
        return ""


def main():
    inp, c = Input(), Counter()
    if not inp.fill(1):
        return 0
    if inp.buf[0] == 1:
        return offline(inp, c)
    if inp.read(4) != MAGIC:
        die("input is neither a D4 stream nor the analyzer protocol")
    return protocol(inp, c)


if __name__ == "__main__":
    sys.exit(main())
