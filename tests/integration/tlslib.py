"""tlslib.py — helpers for the TLS analyzer tests: run d4-analyzer-tls, read its JSON lines and
its summary counters, write pcap files and D4 streams (standard library only)."""
import json
import os
import re
import struct
import subprocess
import sys

BIN = os.environ.get("D4_BIN", os.path.join(os.path.dirname(__file__), "../../build/bin"))
TEST_DATA = os.environ.get("D4_TEST_DATA", os.path.join(os.path.dirname(__file__), "../data"))
SHARED = os.environ.get("D4_SHARED_VECTORS", os.path.join(os.path.dirname(__file__), "../../../shared/vectors"))
ANALYZER = os.path.join(BIN, "d4-analyzer-tls")


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def ok(msg):
    print("ok: " + msg)


def run(args, stdin=None, timeout=120):
    """Runs the analyzer; returns (json lines, counters dict, stderr text)."""
    p = subprocess.run([ANALYZER] + args, input=stdin, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    err = p.stderr.decode("utf-8", "replace")
    if p.returncode != 0:
        fail("%s exited %d: %s" % (" ".join(args), p.returncode, err[-2000:]))
    lines = [json.loads(l) for l in p.stdout.decode().splitlines() if l.startswith("{")]
    return lines, counters(err), err


def counters(err):
    c = {}
    for line in err.splitlines():
        if not line.startswith("d4-analyzer-tls: "):
            continue
        for k, v in re.findall(r"(\w+)=(\d+)", line):
            c.setdefault(k, int(v))
    return c


def flow_key(src, sport, dst, dport):
    return (src, int(sport), dst, int(dport))


def by_flow(lines):
    return {flow_key(l["client"], l["client_port"], l["server"], l["server_port"]): l for l in lines}


def pcap_global(linktype=1, snaplen=65535):
    return struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, snaplen, linktype)


def pcap_record(ts, data, usec=0):
    return struct.pack("<IIII", ts, usec, len(data), len(data)) + data


def read_pcap(path):
    """(global header bytes, [(ts_sec, ts_usec, data)]) of a little-endian pcap file."""
    with open(path, "rb") as f:
        b = f.read()
    magic = struct.unpack_from("<I", b)[0]
    if magic not in (0xa1b2c3d4, 0xa1b23c4d):
        return None, None
    recs, off = [], 24
    while off + 16 <= len(b):
        ts, us, cap, ln = struct.unpack_from("<IIII", b, off)
        recs.append((ts, us, b[off + 16:off + 16 + cap]))
        off += 16 + cap
    return b[:24], recs


def ipv4_tcp_parts(data):
    """Ethernet/IPv4/TCP packet → (eth+ip header bytes, ihl offset, tcp header, payload) or None."""
    if len(data) < 34 or data[12:14] != b"\x08\x00":
        return None
    ip = data[14:]
    ihl = (ip[0] & 15) * 4
    total = struct.unpack(">H", ip[2:4])[0]
    tcp = ip[ihl:total]
    doff = (tcp[12] >> 4) * 4
    return data[:14 + ihl], tcp[:doff], tcp[doff:]


def make_ipv4_tcp(l2ip, tcph, payload, seq=None):
    """Rebuilds an Ethernet/IPv4/TCP packet with another payload (and seq); checksums are not
    recomputed (the analyzer does not check them)."""
    ip = bytearray(l2ip[14:])
    ihl = len(ip)
    struct.pack_into(">H", ip, 2, ihl + len(tcph) + len(payload))
    tcph = bytearray(tcph)
    if seq is not None:
        struct.pack_into(">I", tcph, 4, seq & 0xffffffff)
    return l2ip[:14] + bytes(ip) + bytes(tcph) + payload


def d4_stream(pcap_bytes, cuts, uuid="5b642239-4db4-4580-adf4-4ebd950d210f", ftype=1, ts=1574419900,
              key="private key to change"):
    """A saved D4 stream (d4-client --destination stdout) carrying pcap_bytes, cut into frames at
    the given offsets."""
    sys.path.insert(0, os.path.dirname(__file__))
    from ingestlib import frame  # noqa: E402
    out, prev = [], 0
    for c in sorted(set(cuts)) + [len(pcap_bytes)]:
        if c <= prev or c > len(pcap_bytes):
            continue
        out.append(frame(uuid, ftype, key, pcap_bytes[prev:c], ts=ts))
        prev = c
    return b"".join(out)


# ---- TLS and packet builders for our own vectors ----

def u8(v):
    return struct.pack(">B", v)


def u16(v):
    return struct.pack(">H", v)


def u24(v):
    return struct.pack(">I", v)[1:]


def ext(t, data):
    return u16(t) + u16(len(data)) + data


def sni_ext(name):
    n = name.encode()
    entry = u8(0) + u16(len(n)) + n
    return ext(0, u16(len(entry)) + entry)


def alpn_ext(protos):
    body = b"".join(u8(len(p)) + p.encode() for p in protos)
    return ext(16, u16(len(body)) + body)


def groups_ext(groups):
    return ext(10, u16(2 * len(groups)) + b"".join(u16(g) for g in groups))


def points_ext(points):
    return ext(11, u8(len(points)) + bytes(points))


def client_hello_body(ciphers, exts, version=0x0303):
    e = b"".join(exts)
    return (u16(version) + bytes(32) + u8(0) + u16(2 * len(ciphers)) + b"".join(u16(c) for c in ciphers)
            + u8(1) + u8(0) + u16(len(e) & 0xffff) + e)  # a hostile length wraps


def handshake(htype, body):
    return u8(htype) + u24(len(body)) + body


def records(payload, ctype=22, version=0x0301, max_len=16384):
    out = b""
    for i in range(0, len(payload), max_len):
        chunk = payload[i:i + max_len]
        out += u8(ctype) + u16(version) + u16(len(chunk)) + chunk
    return out


def server_hello_body(cipher, exts, version=0x0303):
    e = b"".join(exts)
    return u16(version) + bytes(32) + u8(0) + u16(cipher) + u8(0) + u16(len(e)) + e


def certificate_body(ders):
    entries = b"".join(u24(len(d)) + d for d in ders)
    return u24(len(entries)) + entries


def is_grease(v):
    return (v & 0x0f0f) == 0x0a0a and (v >> 8) == (v & 0xff)


def ja3_of(version, ciphers, ext_types, groups, points):
    f = lambda xs: "-".join(str(x) for x in xs if not is_grease(x))  # noqa: E731
    return "%d,%s,%s,%s,%s" % (version, f(ciphers), f(ext_types), f(groups), "-".join(str(p) for p in points))


def ip4(s):
    return bytes(int(x) for x in s.split("."))


def ip6(s):
    import ipaddress
    return ipaddress.IPv6Address(s).packed


def tcp_header(sport, dport, seq, ack, flags):
    return struct.pack(">HHIIBBHHH", sport, dport, seq & 0xffffffff, ack & 0xffffffff, 5 << 4, flags, 65535, 0, 0)


def ipv4_packet(src, dst, l4, proto=6, frag=0):
    return struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, frag, 64, proto, 0, ip4(src), ip4(dst)) + l4


def ipv6_packet(src, dst, l4, hop_by_hop=False):
    nh, ext_hdr = 6, b""
    if hop_by_hop:
        ext_hdr = bytes([6, 0]) + bytes(6)  # next header TCP, length 0 (8 bytes)
        nh = 0
    body = ext_hdr + l4
    return struct.pack(">IHBB16s16s", 6 << 28, len(body), nh, 64, ip6(src), ip6(dst)) + body


def ether(payload, ethertype, vlan=None):
    hdr = bytes(6) + bytes([2, 0, 0, 0, 0, 1])
    if vlan is not None:
        hdr += u16(0x8100) + u16(vlan)
    return hdr + u16(ethertype) + payload


def sll(payload, ethertype):
    return u16(0) + u16(1) + u16(6) + bytes(8) + u16(ethertype) + payload


class Conn:
    """One TCP connection: builds its packets (link: 'eth', 'vlan', 'sll', 'raw')."""

    def __init__(self, client, server, cport, sport=443, link="eth", hop_by_hop=False):
        self.c, self.s, self.cp, self.sp = client, server, cport, sport
        self.v6 = ":" in client
        self.link, self.hbh = link, hop_by_hop
        self.cseq, self.sseq = 1000, 50000

    def _pkt(self, from_client, flags, payload=b"", seq=None):
        if from_client:
            src, dst, sp, dp = self.c, self.s, self.cp, self.sp
            seq = self.cseq if seq is None else seq
            ack = self.sseq
        else:
            src, dst, sp, dp = self.s, self.c, self.sp, self.cp
            seq = self.sseq if seq is None else seq
            ack = self.cseq
        l4 = tcp_header(sp, dp, seq, ack, flags) + payload
        ip = ipv6_packet(src, dst, l4, self.hbh) if self.v6 else ipv4_packet(src, dst, l4)
        et = 0x86dd if self.v6 else 0x0800
        if self.link == "eth":
            return ether(ip, et)
        if self.link == "vlan":
            return ether(ip, et, vlan=42)
        if self.link == "sll":
            return sll(ip, et)
        return ip

    def handshake_tcp(self):
        p = [self._pkt(True, 0x02, seq=self.cseq - 1), self._pkt(False, 0x12, seq=self.sseq - 1),
             self._pkt(True, 0x10)]
        return p

    def data(self, from_client, payload, split=None, order=None):
        """Packets carrying payload, cut at the offsets in split, sent in the given order."""
        cuts = [0] + (split if split is not None else list(range(1460, len(payload), 1460))) + [len(payload)]
        base = self.cseq if from_client else self.sseq
        segs = [self._pkt(from_client, 0x18, payload[a:b], seq=base + a) for a, b in zip(cuts, cuts[1:])]
        if order:
            segs = [segs[i] for i in order]
        if from_client:
            self.cseq += len(payload)
        else:
            self.sseq += len(payload)
        return segs

    def fin(self):
        return [self._pkt(True, 0x11), self._pkt(False, 0x11)]


def write_pcap(path, packets, linktype=1, t0=1700000000):
    with open(path, "wb") as f:
        f.write(pcap_global(linktype))
        for i, p in enumerate(packets):
            f.write(pcap_record(t0 + i // 100, p, (i % 100) * 1000))
