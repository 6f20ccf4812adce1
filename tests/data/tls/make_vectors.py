#!/usr/bin/env python3
"""Builds the small TLS vectors of tests/data/tls/ and their expected fingerprints.

Each .bin is the client-to-server (or server-to-client) byte stream of TLS records holding
one hello. expected.json gives what test_tls_hello must compute, derived here independently
of the C code: JA3 per salesforce/ja3, JA4 per FoxIO's JA4.md (BSD part). Re-run to
regenerate: python3 make_vectors.py (writes next to itself). Deterministic.
"""
import hashlib, json, os, struct

HERE = os.path.dirname(os.path.abspath(__file__))
def grease(v): return (v & 0x0f0f) == 0x0a0a and (v >> 8) == (v & 0xff)
def u8(v): return struct.pack('!B', v)
def u16(v): return struct.pack('!H', v)
def u24(v): return struct.pack('!I', v)[1:]
def ext(t, body): return u16(t) + u16(len(body)) + body
def u16list(vals, len8=False):
    b = b''.join(u16(v) for v in vals)
    return (u8(len(b)) if len8 else u16(len(b))) + b

def client_hello(legacy, ciphers, exts):
    body = u16(legacy) + bytes(range(32)) + u8(32) + bytes([0x55] * 32)
    body += u16list(ciphers) + u8(1) + u8(0)
    if exts is not None:
        eb = b''.join(ext(t, b) for t, b in exts)
        body += u16(len(eb)) + eb
    return u8(1) + u24(len(body)) + body

def server_hello(legacy, cipher, exts, random=bytes(range(32, 64))):
    body = u16(legacy) + random + u8(0) + u16(cipher) + u8(0)
    if exts is not None:
        eb = b''.join(ext(t, b) for t, b in exts)
        body += u16(len(eb)) + eb
    return u8(2) + u24(len(body)) + body

def records(msg, rec_version=0x0301, ctype=22, max_frag=16384):
    out = b''
    for i in range(0, len(msg), max_frag):
        frag = msg[i:i + max_frag]
        out += u8(ctype) + u16(rec_version) + u16(len(frag)) + frag
    return out

def sni(name): n = name.encode(); return u16(len(n) + 3) + u8(0) + u16(len(n)) + n
def alpn(protos):
    l = b''.join(u8(len(p)) + p for p in protos)
    return u16(len(l)) + l

def ja3(legacy, ciphers, exts):
    groups, pf = [], []
    for t, b in exts or []:
        if t == 10: groups = [struct.unpack('!H', b[2 + 2*i:4 + 2*i])[0] for i in range((len(b) - 2)//2)]
        if t == 11: pf = list(b[1:])
    f = lambda l: '-'.join(str(v) for v in l if not grease(v))
    s = f'{legacy},{f(ciphers)},{f([t for t, _ in exts or []])},{f(groups)},{"-".join(str(v) for v in pf)}'
    return s, hashlib.md5(s.encode()).hexdigest()

def ja4(legacy, ciphers, exts):
    exts = exts or []
    types = [t for t, _ in exts if not grease(t)]
    vers = legacy
    sigs, alpn_first = [], None
    for t, b in exts:
        if t == 43:
            vs = [struct.unpack('!H', b[1 + 2*i:3 + 2*i])[0] for i in range((len(b) - 1)//2)]
            vs = [v for v in vs if not grease(v)]
            if vs: vers = max(vs)
        if t == 13:
            sigs = [struct.unpack('!H', b[2 + 2*i:4 + 2*i])[0] for i in range((len(b) - 2)//2)]
            sigs = [v for v in sigs if not grease(v)]
        if t == 16 and alpn_first is None and len(b) > 2:
            alpn_first = b[3:3 + b[2]]
    vmap = {0x0304: '13', 0x0303: '12', 0x0302: '11', 0x0301: '10', 0x0300: 's3', 0x0002: 's2'}
    cs = [c for c in ciphers if not grease(c)]
    if not alpn_first: a = '00'
    else:
        f, l = alpn_first[0], alpn_first[-1]
        if chr(f).isalnum() and chr(l).isalnum() and f < 128 and l < 128: a = chr(f) + chr(l)
        else: h = alpn_first.hex(); a = h[0] + h[-1]
    pre = 't' + vmap.get(vers, '00') + ('d' if 0 in types else 'i') + '%02d%02d' % (min(len(cs), 99), min(len(types), 99)) + a
    hx = lambda l: ','.join('%04x' % v for v in l)
    h12 = lambda s: hashlib.sha256(s.encode()).hexdigest()[:12]
    def build(cl, el):
        tail = hx(el) + ('_' + hx(sigs) if sigs else '')
        raw = f'{pre}_{hx(cl)}_{tail}'
        hashed = f'{pre}_{h12(hx(cl)) if cl else "0"*12}_{h12(tail) if el else "0"*12}'
        return hashed, raw
    j4, j4r = build(sorted(cs), sorted(t for t in types if t not in (0, 0x10)))
    j4o, j4ro = build(cs, types)
    return dict(ja4=j4, ja4_r=j4r, ja4_o=j4o, ja4_ro=j4ro)

vectors = []
def add_ch(name, legacy, ciphers, exts, extra=None, rec_version=0x0301, max_frag=16384):
    msg = client_hello(legacy, ciphers, exts)
    open(os.path.join(HERE, name + '.bin'), 'wb').write(records(msg, rec_version, max_frag=max_frag))
    s, m = ja3(legacy, ciphers, exts)
    e = dict(file=name + '.bin', kind='client_hello', ja3=s, ja3_md5=m, **ja4(legacy, ciphers, exts))
    e.update(extra or {})
    vectors.append(e)

# 1. A Chrome-like hello with GREASE everywhere, SNI, two ALPN values, TLS 1.3.
add_ch('ch-grease', 0x0303, [0x0a0a, 0x1301, 0x1302, 0xc02b, 0x002f], [
    (0x1a1a, b''),
    (0, sni('example.com')),
    (10, u16list([0x2a2a, 0x001d, 0x0017])),
    (11, b'\x01\x00'),
    (16, alpn([b'h2', b'http/1.1'])),
    (13, u16list([0x0403, 0x0804, 0x0401])),
    (43, u16list([0x3a3a, 0x0304, 0x0303], len8=True)),
    (0x4a4a, b'\x00'),
], dict(sni='example.com', alpn=['h2', 'http/1.1'], version=0x0304))
# 2. An SSL 3.0 style hello: no extension block at all.
add_ch('ch-noext', 0x0301, [0x002f, 0x0035], None, dict(version=0x0301))
# 3. No SNI, an ALPN value with non-alphanumeric bytes (hex rule), supported_versions of
#    GREASE only (falls back to legacy), no signature algorithms.
add_ch('ch-alpn-hex', 0x0303, [0xc02f], [
    (16, alpn([b'\x30\xab', b'h2'])),
    (43, u16list([0x5a5a], len8=True)),
    (23, b''),
], dict(version=0x0303))
# 4. Only SNI and ALPN: the sorted extension list is empty (twelve zeros), single-char ALPN.
add_ch('ch-sni-alpn-only', 0x0303, [0x1301], [
    (0, sni('a.example')),
    (16, alpn([b'x'])),
], dict(sni='a.example', alpn=['x']))
# 5. A big hello (a 20,000-byte padding extension) fragmented over two records.
add_ch('ch-two-records', 0x0303, [0x1301, 0x1302], [
    (0, sni('big.example')),
    (21, bytes(20000)),
    (43, u16list([0x0304], len8=True)),
], dict(sni='big.example'))

# ServerHellos
def add_sh(name, legacy, cipher, exts, extra=None, random=bytes(range(32, 64))):
    msg = server_hello(legacy, cipher, exts, random)
    open(os.path.join(HERE, name + '.bin'), 'wb').write(records(msg, 0x0303))
    s = f'{legacy},{cipher},' + '-'.join(str(t) for t, _ in exts or [] if not grease(t))
    e = dict(file=name + '.bin', kind='server_hello', ja3s=s, ja3s_md5=hashlib.md5(s.encode()).hexdigest())
    e.update(extra or {})
    vectors.append(e)

add_sh('sh-tls12', 0x0303, 49199, [(0xff01, b'\x00'), (0, b''), (11, b'\x01\x00'), (16, alpn([b'h2']))],
       dict(version=0x0303, alpn='h2', hello_retry=False))
add_sh('sh-tls13', 0x0303, 4865, [(43, u16(0x0304)), (51, u16(29) + u16(32) + bytes(32))],
       dict(version=0x0304, hello_retry=False))
HRR = bytes.fromhex('cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c')
add_sh('sh-hrr', 0x0303, 4865, [(43, u16(0x0304)), (51, u16(29))],
       dict(version=0x0304, hello_retry=True), random=HRR)
add_sh('sh-noext', 0x0300, 10, None, dict(version=0x0300, hello_retry=False))

with open(os.path.join(HERE, 'expected.json'), 'w') as f:
    json.dump(vectors, f, indent=1)
    f.write('\n')
