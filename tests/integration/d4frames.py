#!/usr/bin/env python3
"""d4frames.py — decode a D4 v1 stream and verify every HMAC (standard library only).

A D4 frame is a 62-byte header (version u8, type u8, uuid 16 bytes, timestamp u64 LE,
hmac 32 bytes, size u32 LE) followed by `size` payload bytes; the HMAC-SHA256 covers
the header with its hmac bytes zeroed, then the payload.

As a program:

    d4frames.py --key KEY [--key-file F] [--payload OUT] [--json] [--allow-partial] FILE|-

prints one line per frame ("type=1 size=4096 ts=... uuid=..."), or a JSON summary with
--json, writes the concatenated payloads of the data frames (every type but 2) to OUT,
and exits 1 on a bad HMAC, a bad version or a truncated last frame (unless
--allow-partial, for a stream cut by a lost connection).

As a module (tests in Python): parse(data, key) -> (frames, leftover_bytes), each
frame a dict with version, type, uuid (hex), timestamp, size, payload, hmac_ok.
"""
import argparse
import hashlib
import hmac
import json
import struct
import sys

HEADER = struct.Struct("<BB16sQ32sI")
assert HEADER.size == 62


def parse(data, key):
    """Splits a byte string into frames; returns (frames, number of trailing bytes)."""
    frames = []
    off = 0
    while len(data) - off >= HEADER.size:
        version, ftype, uuid, ts, mac, size = HEADER.unpack_from(data, off)
        if len(data) - off - HEADER.size < size:
            break
        header = bytearray(data[off:off + HEADER.size])
        header[26:58] = bytes(32)
        payload = bytes(data[off + HEADER.size:off + HEADER.size + size])
        want = hmac.new(key, bytes(header) + payload, hashlib.sha256).digest()
        frames.append({
            "version": version,
            "type": ftype,
            "uuid": uuid.hex(),
            "timestamp": ts,
            "size": size,
            "payload": payload,
            "hmac": bytes(mac),
            "hmac_ok": hmac.compare_digest(want, mac),
        })
        off += HEADER.size + size
    return frames, len(data) - off


def main():
    ap = argparse.ArgumentParser(description="Decode a D4 stream and verify its HMACs.")
    ap.add_argument("file", help="D4 stream, - for stdin")
    ap.add_argument("--key", help="HMAC key (text)")
    ap.add_argument("--key-file", help="HMAC key file (trailing newline dropped)")
    ap.add_argument("--payload", help="write the data frames' payloads, concatenated, here")
    ap.add_argument("--json", action="store_true", help="print a JSON summary")
    ap.add_argument("--allow-partial", action="store_true",
                    help="a truncated last frame is not an error")
    args = ap.parse_args()

    if args.key_file:
        with open(args.key_file, "rb") as f:
            key = f.read().rstrip(b"\r\n")
    elif args.key is not None:
        key = args.key.encode()
    else:
        ap.error("--key or --key-file is required")

    if args.file == "-":
        data = sys.stdin.buffer.read()
    else:
        with open(args.file, "rb") as f:
            data = f.read()

    frames, leftover = parse(data, key)
    bad = [i for i, fr in enumerate(frames) if not fr["hmac_ok"] or fr["version"] != 1]
    if args.payload:
        with open(args.payload, "wb") as f:
            for fr in frames:
                if fr["type"] != 2:
                    f.write(fr["payload"])
    if args.json:
        summary = {
            "frames": len(frames),
            "leftover": leftover,
            "bad": bad,
            "types": [fr["type"] for fr in frames],
            "sizes": [fr["size"] for fr in frames],
            "uuids": sorted({fr["uuid"] for fr in frames}),
            "timestamps": [fr["timestamp"] for fr in frames],
            "meta": [fr["payload"].decode("utf-8", "replace") for fr in frames if fr["type"] == 2],
        }
        print(json.dumps(summary))
    else:
        for i, fr in enumerate(frames):
            print("%d version=%d type=%d size=%d ts=%d uuid=%s hmac=%s" % (
                i, fr["version"], fr["type"], fr["size"], fr["timestamp"], fr["uuid"],
                "ok" if fr["hmac_ok"] else "BAD"))
        print("frames=%d leftover=%d bad=%d" % (len(frames), leftover, len(bad)))
    if bad:
        print("d4frames: %d frame(s) with a bad HMAC or version: %s" % (len(bad), bad),
              file=sys.stderr)
        return 1
    if leftover and not args.allow_partial:
        print("d4frames: %d trailing bytes (truncated frame)" % leftover, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
