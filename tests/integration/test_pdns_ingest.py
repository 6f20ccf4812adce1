#!/usr/bin/env python3
"""d4-analyzer-passivedns run offline on saved D4 streams, its store read back through
d4-pdns-lookup.

The streams are written here, frame by frame (ingestlib.frame), so that a test decides where
the frame boundaries fall: the sample CSV gives the expected records and counts; hostile lines
(wrong field count, non-numeric TTL, binary bytes, invalid UTF-8, 64 KiB fields, unknown
types) are counted by reason and skipped while the good lines around them are stored; a line
split across two frames is stored once; COF NDJSON under the 254 meta-type "pdns-cof" is
imported (IDN names to A-labels); exclusion patterns and the per-type expiry work. Every
answer is validated against the COF JSON schema (jsonschema when importable, else the small
validator below of the subset of JSON schema that cof-schema.json uses).

The helpers (stream writing, running the analyzer and the lookup server, schema checks) are
imported by test_pdns_lookup.py.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ingestlib  # noqa: E402

BIN = os.environ.get("D4_BIN", "")
ANALYZER = os.path.join(BIN, "d4-analyzer-passivedns")
LOOKUP = os.path.join(BIN, "d4-pdns-lookup")
TEST_DATA = os.environ.get("D4_TEST_DATA", os.path.join(os.path.dirname(__file__), "../data"))
SHARED = os.environ.get("D4_SHARED_VECTORS", "")

UUID = "cd980d75-dcf1-47da-bb60-aabe94fea6b2"
UUID2 = "6a2461ce-c29d-44fc-b4fa-947d68826639"
KEY = "private key to change"
T = 1700000000


def data_file(name):
    """A vector from ../shared/vectors/pdns when present, else our copy in tests/data/pdns."""
    if SHARED:
        p = os.path.join(SHARED, "pdns", name)
        if os.path.exists(p):
            return p
    return os.path.join(TEST_DATA, "pdns", name)


# ---- COF schema ----

def _type_ok(v, t):
    if t == "number":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if t == "string":
        return isinstance(v, str)
    if t == "array":
        return isinstance(v, list)
    if t == "object":
        return isinstance(v, dict)
    if t == "integer":
        return isinstance(v, int) and not isinstance(v, bool)
    raise AssertionError("schema type %r not handled by the fallback validator" % t)


def mini_validate(obj, schema, path="$"):
    """The subset of JSON schema cof-schema.json uses: type, required, properties, items,
    anyOf, additionalProperties (true). Raises AssertionError with the path."""
    if "type" in schema:
        assert _type_ok(obj, schema["type"]), "%s: not of type %s: %r" % (path, schema["type"], obj)
    for k in schema.get("required", []):
        assert isinstance(obj, dict) and k in obj, "%s: required %s missing" % (path, k)
    if isinstance(obj, dict):
        for k, sub in schema.get("properties", {}).items():
            if k in obj:
                mini_validate(obj[k], sub, path + "." + k)
        if schema.get("additionalProperties") is False:
            extra = set(obj) - set(schema.get("properties", {}))
            assert not extra, "%s: additional properties %s" % (path, extra)
    if isinstance(obj, list) and "items" in schema:
        for i, el in enumerate(obj):
            mini_validate(el, schema["items"], "%s[%d]" % (path, i))
    if "anyOf" in schema:
        errs = []
        for sub in schema["anyOf"]:
            try:
                mini_validate(obj, sub, path)
                break
            except AssertionError as e:
                errs.append(str(e))
        else:
            raise AssertionError("%s: no anyOf branch matches: %s" % (path, errs))


with open(data_file("cof-schema.json")) as _f:
    COF_SCHEMA = json.load(_f)
try:
    import jsonschema  # noqa: E402

    _VALIDATOR = jsonschema.Draft7Validator(COF_SCHEMA)

    def validate_cof(obj):
        mini_validate(obj, COF_SCHEMA)
        errors = list(_VALIDATOR.iter_errors(obj))
        assert not errors, "COF schema: %s in %r" % ([e.message for e in errors], obj)
except ImportError:
    def validate_cof(obj):
        mini_validate(obj, COF_SCHEMA)


# ---- streams and programs ----

def frames(payloads, ftype=8, uuid=UUID, ts=T):
    """One D4 frame per payload (bytes or str), all of one session."""
    return b"".join(ingestlib.frame(uuid, ftype, KEY, p, ts=ts) for p in payloads)


def chunked(data, size):
    return [data[i:i + size] for i in range(0, len(data), size)]


def meta_session(meta, payloads, uuid=UUID, ts=T):
    return frames([json.dumps(meta)], 2, uuid, ts) + frames(payloads, 254, uuid, ts)


def run_analyzer(db, stream, *args, expect=0):
    p = subprocess.run([ANALYZER, "--db", db] + list(args), input=stream, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=120)
    err = p.stderr.decode(errors="replace")
    if p.returncode != expect:
        raise AssertionError("analyzer exit %d (want %d): %s" % (p.returncode, expect, err))
    return err


def summary(stderr):
    """The analyzer's end-of-run counters: {"lines": n, ..., "rejected.ttl": n}."""
    m = re.search(r"d4-analyzer-passivedns: (lines=.*)$", stderr, re.M)
    assert m, "no summary line in: " + stderr
    return {k: int(v) for k, v in (kv.split("=") for kv in m.group(1).split())}


class Lookup:
    """A d4-pdns-lookup on 127.0.0.1, port chosen by the kernel; stopped on exit."""

    def __init__(self, db, *args):
        self.dir = tempfile.mkdtemp(prefix="pdns-lookup-")
        self.log = os.path.join(self.dir, "log")
        self.args = [LOOKUP, "--db", db, "--listen", "127.0.0.1:0"] + list(args)
        self.proc = None
        self.port = None

    def __enter__(self):
        with open(self.log, "wb") as lf:
            self.proc = subprocess.Popen(self.args, stdout=lf, stderr=lf)
        def read_log():
            with open(self.log, errors="replace") as f:
                return f.read()
        try:
            def port():
                if self.proc.poll() is not None:
                    raise AssertionError("d4-pdns-lookup exited: " + read_log())
                m = re.search(r"listening .*port=(\d+)", read_log())
                return int(m.group(1)) if m else None
            self.port = ingestlib.wait_for(port, timeout=10, what="d4-pdns-lookup port")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __exit__(self, *exc):
        rc = self.proc.poll()
        self.stop()
        if exc[0] is None:
            assert rc is None, "d4-pdns-lookup died (exit %s)" % rc
            assert self.proc.returncode == 0, "d4-pdns-lookup exit %d" % self.proc.returncode

    def get(self, path, headers=None, method="GET"):
        """(status, headers, body bytes) of one request."""
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.port, path),
                                     headers=headers or {}, method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def cof(self, path, headers=None):
        """The COF objects of a 200 answer, each validated against the schema."""
        status, hdrs, body = self.get(path, headers)
        assert status == 200, "%s: %d %r" % (path, status, body)
        assert hdrs["Content-Type"] == "application/x-ndjson", hdrs["Content-Type"]
        out = []
        for line in body.decode().splitlines():
            obj = json.loads(line)
            validate_cof(obj)
            out.append(obj)
        assert int(hdrs["X-Result-Count"]) == len(out)
        return out, hdrs

    def info(self):
        status, hdrs, body = self.get("/info")
        assert status == 200
        return json.loads(body)


def q(name):
    return urllib.parse.quote(name, safe="*:")


class TmpDir(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="pdns-test-")
        self.db = os.path.join(self.tmp, "db")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


class Ingest(TmpDir):
    def test_sample(self):
        with open(data_file("passivedns-sample.csv"), "rb") as f:
            csv = f.read()
        nlines = len(csv.splitlines())
        # frames of 100 bytes: most lines span two frames
        err = run_analyzer(self.db, frames(chunked(csv, 100)))
        s = summary(err)
        self.assertEqual(s["lines"], nlines)
        self.assertEqual(s["records"], nlines)
        self.assertEqual(s["rejected"], 0)
        with Lookup(self.db) as lk:
            recs, _ = lk.cof("/query/upload.youtube.com")
            self.assertEqual(sorted(r["rdata"][0] for r in recs), ["74.125.43.116", "74.125.43.117"])
            for r in recs:
                self.assertEqual(r["rrtype"], "A")
                self.assertEqual(r["count"], 5)  # the count column, not one per line
                self.assertEqual(r["time_first"], 1322849924)
                self.assertEqual(r["sensor_id"], UUID)
            recs, _ = lk.cof("/query/WWW.ADOBE.COM.")
            self.assertEqual(sorted((r["rrtype"], r["rdata"][0]) for r in recs),
                             [("A", "193.104.215.61"), ("CNAME", "www.wip4.adobe.com")])
            recs, _ = lk.cof("/fquery/www.wip4.adobe.com")
            self.assertEqual([(r["rrname"], r["count"]) for r in recs], [("www.adobe.com", 8)])
            recs, _ = lk.cof("/query/173.194.32.3")
            self.assertEqual([r["rrname"] for r in recs], ["clients1.google.com"])
            info = lk.info()
            self.assertEqual(info["store"]["records"], nlines)
            self.assertEqual(info["stats"]["lines"], nlines)

    def test_hostile_lines(self):
        good = [b"%d||10.0.0.1||10.0.0.2||IN||good%d.example.||A||192.0.2.%d||60||2" % (T, i, i)
                for i in range(5)]
        bad = {
            "fields": [b"1||2||3", b"%d||a||b||IN||x.example||A||192.0.2.1||60||1||extra" % T],
            "ttl": [b"%d||a||b||IN||x.example||A||192.0.2.1||sixty||1" % T],
            "count": [b"%d||a||b||IN||x.example||A||192.0.2.1||60||-3" % T],
            "timestamp": [b"yesterday||a||b||IN||x.example||A||192.0.2.1||60||1"],
            "binary": [b"%d||a||b||IN||x\x00\x01.example||A||192.0.2.1||60||1" % T],
            "utf8": [b"%d||a||b||IN||x\xff\xfe.example||A||192.0.2.1||60||1" % T],
            "oversize": [b"%d||a||b||IN||%s||A||192.0.2.1||60||1" % (T, b"a" * 60000),
                         b"%d||a||b||IN||x.example||TXT||%s||60||1" % (T, b"t" * 5000)],
            "truncated": [b"%d||a||b||IN||x.example||TXT||%s||60||1" % (T, b"t" * 70000)],
            "type": [b"%d||a||b||IN||x.example||NOTATYPE||192.0.2.1||60||1" % T],
            "rdata": [b"%d||a||b||IN||x.example||A||not.an.address||60||1" % T],
        }
        unknown = [b"%d||a||b||IN||odd.example||TYPE65280||\\# 2 abcd||60||1" % T,
                   b"%d||a||b||IN||odd.example||65281||\\# 0||60||1" % T,
                   b"%d||a||b||IN||nx.example.||A||NXDOMAIN||0||7" % T]
        lines = []
        for i, g in enumerate(good):
            lines.append(g)
            for reason in sorted(bad):
                if i < len(bad[reason]):
                    lines.append(bad[reason][i])
        lines += unknown
        stream = b"\n".join(lines) + b"\n"
        err = run_analyzer(self.db, frames(chunked(stream, 4000)))
        s = summary(err)
        nbad = sum(len(v) for v in bad.values())
        self.assertEqual(s["lines"], len(good) + nbad + len(unknown))
        self.assertEqual(s["records"], len(good) + len(unknown))
        self.assertEqual(s["rejected"], nbad)
        for reason, ls in bad.items():
            self.assertEqual(s.get("rejected." + reason, 0), len(ls), reason)
        with Lookup(self.db) as lk:
            for i in range(5):
                recs, _ = lk.cof("/query/good%d.example" % i)
                self.assertEqual([r["rdata"][0] for r in recs], ["192.0.2.%d" % i])
            recs, _ = lk.cof("/query/odd.example")
            self.assertEqual(sorted(r["rrtype"] for r in recs), ["TYPE65280", "TYPE65281"])
            recs, _ = lk.cof("/query/odd.example?rrtype=TYPE65281")
            self.assertEqual([r["rdata"][0] for r in recs], ["\\# 0"])
            recs, _ = lk.cof("/query/nx.example")
            self.assertEqual([(r["rdata"][0], r["count"]) for r in recs], [("NXDOMAIN", 7)])
            st = lk.info()["stats"]
            self.assertEqual(st["rejected"], nbad)
            self.assertEqual(st["rejected.oversize"], 2)
            self.assertEqual(st["rejected.fields"], 2)

    def test_line_split_across_frames(self):
        line = b"%d||c||s||IN||split.example.||AAAA||2001:DB8::0:7||300||3\n" % T
        cut = line.index(b"2001:DB8") + 4
        stream = frames([b"%d||c||s||IN||before.example||A||192.0.2.1||1||1\n" % T + line[:cut],
                         line[cut:] + b"%d||c||s||IN||after.example||A||192.0.2.2||1||1" % T])
        s = summary(run_analyzer(self.db, stream))
        self.assertEqual(s["lines"], 3)  # the last one without its newline, at the end
        self.assertEqual(s["records"], 3)
        self.assertEqual(s["rejected"], 0)
        with Lookup(self.db) as lk:
            recs, _ = lk.cof("/query/split.example")
            self.assertEqual(len(recs), 1)
            self.assertEqual(recs[0]["rdata"], ["2001:db8::7"])
            self.assertEqual(recs[0]["count"], 3)
            # the address in another spelling finds it
            recs, _ = lk.cof("/query/2001:0db8:0:0::7")
            self.assertEqual([r["rrname"] for r in recs], ["split.example"])
            self.assertEqual(lk.info()["stats"]["distinct"], 3)

    def test_repeats_and_sensors(self):
        line = b"%d||c||s||IN||rep.example||A||192.0.2.50||60||4\n"
        s1 = frames([line % T, line % (T + 10)], uuid=UUID)
        s2 = frames([line % (T - 100)], uuid=UUID2)
        run_analyzer(self.db, s1 + s2)
        run_analyzer(self.db, frames([line % (T + 500)], uuid=UUID))  # a second run adds
        with Lookup(self.db) as lk:
            recs, _ = lk.cof("/query/rep.example")
            self.assertEqual(len(recs), 1)
            r = recs[0]
            self.assertEqual((r["time_first"], r["time_last"], r["count"]), (T - 100, T + 500, 16))
            self.assertEqual(sorted(r["sensor_ids"]), sorted([UUID, UUID2]))
            self.assertEqual(lk.info()["store"]["sensors"], 2)

    def test_cof_import(self):
        with open(data_file("cof-sample.ndjson"), "rb") as f:
            sample = f.read()
        extra = (json.dumps({"rrname": "B\u00fccher.Example.", "rrtype": "A", "time_first": T,
                             "time_last": T + 5, "count": 9,
                             "rdata": ["192.0.2.80", "192.0.2.81", 42]}).encode() + b"\n"
                 + b"{not json}\n"
                 + json.dumps({"rrname": "x.example", "rrtype": 65280, "time_first": T,
                               "time_last": T, "rdata": "opaque"}).encode() + b"\n")
        stream = meta_session({"type": "pdns-cof", "encoding": "utf-8"},
                              chunked(sample + extra, 50))
        # a session of another meta-type is ignored, not parsed
        stream += meta_session({"type": "something-else"}, [b"1||2||3\n"], uuid=UUID2)
        s = summary(run_analyzer(self.db, stream))
        self.assertEqual(s["records"], 2 + 2 + 1)
        self.assertEqual(s.get("rejected.json"), 1)
        with Lookup(self.db) as lk:
            recs, _ = lk.cof("/query/www.circl.lu")
            self.assertEqual(sorted((r["rdata"][0], r["count"], r["time_first"]) for r in recs),
                             [("cpa.circl.lu", 1909, 1315586409), ("cpab.circl.lu", 2560, 1449584660)])
            recs, _ = lk.cof("/query/" + q("bücher.example"))
            self.assertEqual(len(recs), 2)
            self.assertEqual({r["rrname"] for r in recs}, {"xn--bcher-kva.example"})
            recs, _ = lk.cof("/query/x.example")
            self.assertEqual([r["rrtype"] for r in recs], ["TYPE65280"])
            st = lk.info()["stats"]
            self.assertEqual(st["cof_skipped"], 1)
            self.assertEqual(st["ignored_frames"], 1)

    def test_cof_meta_type_option(self):
        body = json.dumps({"rrname": "m.example", "rrtype": "A", "time_first": T, "time_last": T,
                           "rdata": ["192.0.2.9"]}).encode() + b"\n"
        stream = meta_session({"type": "my-pdns"}, [body])
        s = summary(run_analyzer(self.db, stream, "--meta-type", "my-pdns"))
        self.assertEqual(s["records"], 1)

    def test_exclude_and_expire(self):
        now = int(time.time())
        lines = [b"%d||c||s||IN||a.spamhaus.org||A||127.0.0.2||60||1" % now,
                 b"%d||c||s||IN||1.2.3.4.asn.cymru.com||TXT||x||60||1" % now,
                 b"%d||c||s||IN||tracker42.ads.example||A||192.0.2.1||60||1" % now,
                 b"%d||c||s||IN||keep.example||A||192.0.2.2||60||1" % now,
                 b"%d||c||s||IN||keep.example||TXT||old||60||1" % (now - 100000),
                 b"%d||c||s||IN||keep.example||TXT||new||60||1" % now]
        err = run_analyzer(self.db, frames([b"\n".join(lines) + b"\n"]),
                           "--exclude", "spamhaus.org,ASN.cymru.com", "--exclude-regex",
                           r"^tracker[0-9]+\.", "--expire", "TXT=24000,99=26000")
        s = summary(err)
        self.assertEqual(s["excluded"], 3)
        self.assertEqual(s["records"], 3)
        with Lookup(self.db) as lk:
            recs, _ = lk.cof("/query/keep.example")
            self.assertEqual(sorted(r["rdata"][0] for r in recs), ["192.0.2.2", "new"])
            recs, _ = lk.cof("/query/a.spamhaus.org")
            self.assertEqual(recs, [])
            self.assertEqual(lk.info()["expire"], {"TXT": 24000, "SPF": 26000})

    def test_aggregates_match_a_model(self):
        """Random lines, many small batches (merges across commits): every record's first,
        last and count equal a model's, over the whole store read back page by page."""
        import random
        rnd = random.Random(7)
        model, lines = {}, []
        for i in range(6000):
            name = "n%d.agg.test" % int(rnd.paretovariate(1.2) % 300)
            t = rnd.choice(["A", "AAAA", "TXT", "CNAME"])
            rd = {"A": "10.1.%d.%d" % (rnd.randrange(3), rnd.randrange(4)),
                  "AAAA": "2001:db8::%x" % rnd.randrange(1, 6),
                  "TXT": "txt-%d" % rnd.randrange(3),
                  "CNAME": "c%d.cdn.test" % rnd.randrange(4)}[t]
            ts, cnt = T + rnd.randrange(100000), rnd.randrange(1, 9)
            lines.append(b"%d.5||c||s||IN||%s.||%s||%s||60||%d" % (ts, name.encode(), t.encode(),
                                                                  rd.encode(), cnt))
            f, l, c = model.get((name, t, rd), (ts, ts, 0))
            model[(name, t, rd)] = (min(f, ts), max(l, ts), c + cnt)
        stream = frames(chunked(b"\n".join(lines) + b"\n", 1000))
        s = summary(run_analyzer(self.db, stream, "--batch", "97"))
        self.assertEqual(s["distinct"], len(model))
        got, cursor = {}, None
        with Lookup(self.db) as lk:
            for _ in range(1000):
                recs, hdrs = lk.cof("/query/*.agg.test?limit=333" +
                                    ("&cursor=" + cursor if cursor else ""))
                for r in recs:
                    key = (r["rrname"], r["rrtype"], r["rdata"][0])
                    self.assertNotIn(key, got)
                    got[key] = (r["time_first"], r["time_last"], r["count"])
                cursor = hdrs.get("X-Next-Cursor")
                if not cursor:
                    break
        self.maxDiff = 2000
        self.assertEqual(len(got), len(model))
        self.assertEqual(got, model)

    def test_repack(self):
        lines = b"".join(b"%d||c||s||IN||p%d.pack.example||A||192.0.2.%d||60||1\n" % (T, i, i % 200)
                         for i in range(3000))
        run_analyzer(self.db, frames(chunked(lines, 5000)), "--batch", "100")
        packed = os.path.join(self.tmp, "packed")
        p = subprocess.run([ANALYZER, "--db", self.db, "--repack", packed], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertLess(os.path.getsize(os.path.join(packed, "data.mdb")),
                        os.path.getsize(os.path.join(self.db, "data.mdb")))
        with Lookup(packed) as lk:
            self.assertEqual(lk.info()["store"]["records"], 3000)
            self.assertEqual(len(lk.cof("/query/192.0.2.7")[0]), 15)
        p = subprocess.run([ANALYZER, "--db", self.db, "--repack", packed], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        self.assertNotEqual(p.returncode, 0)

    def test_bad_options(self):
        for args in (["--expire", "TXT=soon"], ["--batch", "0"], ["--exclude-regex", "("]):
            p = subprocess.run([ANALYZER, "--db", self.db] + args, input=b"",
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
            self.assertNotEqual(p.returncode, 0, args)


if __name__ == "__main__":
    if not (os.access(ANALYZER, os.X_OK) and os.access(LOOKUP, os.X_OK)):
        print("SKIP: d4-analyzer-passivedns or d4-pdns-lookup is not built")
        sys.exit(77)
    unittest.main(verbosity=2)
