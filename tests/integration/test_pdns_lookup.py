#!/usr/bin/env python3
"""d4-pdns-lookup: routes, normalised queries, filters, paging with X-Next-Cursor (every record
exactly once, never a silent cut), wildcard suffixes, the API token, errors, and answers that
keep coming while the analyzer writes.

The store is filled by d4-analyzer-passivedns from a D4 stream written here (helpers from
test_pdns_ingest.py); every COF object is validated against the schema.
"""
import json
import os
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_pdns_ingest import (ANALYZER, LOOKUP, T, UUID, Lookup, TmpDir, chunked,  # noqa: E402
                              frames, q, run_analyzer, summary)


def build(db):
    lines = []
    for i in range(46):  # a name with 46 records (PERF.md's second case)
        lines.append(b"%d||c||s||IN||many.example.com.||A||198.51.100.%d||60||1" % (T + i, i))
    for i in range(22):  # an address with 22 names
        lines.append(b"%d||c||s||IN||host%02d.shared.example.org||A||203.0.113.7||60||1" % (T, i))
    lines += [
        b"%d||c||s||IN||www.example.com||A||192.0.2.1||60||3" % (T - 1000),
        b"%d||c||s||IN||www.example.com||AAAA||2001:db8::1||60||2" % T,
        b"%d||c||s||IN||www.example.com||MX||mail.example.com.||60||1" % (T + 1000),
        b"%d||c||s||IN||alias.example.net||CNAME||WWW.EXAMPLE.COM.||60||1" % T,
        b"%d||c||s||IN||example.com||TXT||\"v=spf1 include:_spf.Example.com ~all\"||60||1" % T,
        b"%d||c||s||IN||4.3.2.1.in-addr.arpa||PTR||www.example.com||60||1" % T,
        b"%d||c||s||IN||esc.example||TXT||quote\" back\\\\ tab\tend||60||1" % T,
    ]
    s = summary(run_analyzer(db, frames(chunked(b"\n".join(lines) + b"\n", 700))))
    assert s["records"] == len(lines), s


def page_all(lk, path, limit, headers=None):
    """Every record of a query through pages of `limit`: a list, checked for duplicates."""
    out, cursor, pages = [], None, 0
    sep = "&" if "?" in path else "?"
    while True:
        url = "%s%slimit=%d" % (path, sep, limit) + ("&cursor=" + cursor if cursor else "")
        recs, hdrs = lk.cof(url, headers)
        assert len(recs) <= limit
        out += recs
        pages += 1
        assert pages < 200, "paging does not end"
        cursor = hdrs.get("X-Next-Cursor")
        if not cursor:
            break
    keys = [(r["rrname"], r["rrtype"], r["rdata"][0]) for r in out]
    assert len(keys) == len(set(keys)), "a record given twice"
    return out


class LookupRoutes(TmpDir):
    def setUp(self):
        super().setUp()
        build(self.db)

    def test_queries(self):
        with Lookup(self.db) as lk:
            recs, _ = lk.cof("/query/www.example.com")
            self.assertEqual(sorted(r["rrtype"] for r in recs), ["A", "AAAA", "MX"])
            # case, trailing dot
            self.assertEqual(len(lk.cof("/query/WWW.Example.COM.")[0]), 3)
            # an address: only the records with that rdata (not every record of the names)
            recs, _ = lk.cof("/query/203.0.113.7")
            self.assertEqual(len(recs), 22)
            self.assertEqual({r["rdata"][0] for r in recs}, {"203.0.113.7"})
            recs, _ = lk.cof("/query/2001:0DB8:0000::0001")
            self.assertEqual([r["rrname"] for r in recs], ["www.example.com"])
            # fquery: what points at a name (CNAME, PTR), an MX target, a TXT string
            recs, _ = lk.cof("/fquery/www.example.com")
            self.assertEqual(sorted((r["rrname"], r["rrtype"]) for r in recs),
                             [("4.3.2.1.in-addr.arpa", "PTR"), ("alias.example.net", "CNAME")])
            recs, _ = lk.cof("/fquery/Mail.Example.Com.")
            self.assertEqual([r["rrtype"] for r in recs], ["MX"])
            recs, _ = lk.cof("/fquery/" + q('"v=spf1 include:_spf.Example.com ~all"'))
            self.assertEqual([r["rrname"] for r in recs], ["example.com"])
            recs, _ = lk.cof("/query/esc.example")
            self.assertEqual(recs[0]["rdata"], ["quote\" back\\\\ tab\tend"])
            # PTR served
            recs, _ = lk.cof("/query/4.3.2.1.in-addr.arpa")
            self.assertEqual(recs[0]["rdata"], ["www.example.com"])
            # a miss: an empty 200
            recs, _ = lk.cof("/query/nothing.example")
            self.assertEqual(recs, [])
            self.assertEqual(lk.cof("/query/192.0.2.254")[0], [])

    def test_filters(self):
        with Lookup(self.db) as lk:
            recs, _ = lk.cof("/query/www.example.com?rrtype=AAAA,mx")
            self.assertEqual(sorted(r["rrtype"] for r in recs), ["AAAA", "MX"])
            recs, _ = lk.cof("/query/www.example.com?rrtype=15")
            self.assertEqual([r["rrtype"] for r in recs], ["MX"])
            recs, _ = lk.cof("/query/www.example.com?since=%d" % T)
            self.assertEqual(sorted(r["rrtype"] for r in recs), ["AAAA", "MX"])
            recs, _ = lk.cof("/query/www.example.com?until=%d" % T)
            self.assertEqual(sorted(r["rrtype"] for r in recs), ["A", "AAAA"])
            recs, _ = lk.cof("/query/www.example.com?since=%d&until=%d" % (T, T))
            self.assertEqual([r["rrtype"] for r in recs], ["AAAA"])
            recs, _ = lk.cof("/query/many.example.com?since=%d" % (T + 40))
            self.assertEqual(len(recs), 6)

    def test_paging(self):
        with Lookup(self.db) as lk:
            whole, hdrs = lk.cof("/query/many.example.com")
            self.assertEqual(len(whole), 46)
            self.assertIsNone(hdrs.get("X-Next-Cursor"))
            recs, hdrs = lk.cof("/query/many.example.com?limit=10")
            self.assertEqual(len(recs), 10)
            self.assertTrue(hdrs.get("X-Next-Cursor"))
            for limit in (1, 7, 10, 45, 46):
                got = page_all(lk, "/query/many.example.com", limit)
                self.assertEqual(len(got), 46, limit)
            got = page_all(lk, "/query/203.0.113.7", 5)
            self.assertEqual(len(got), 22)
            got = page_all(lk, "/query/many.example.com?rrtype=A&since=%d" % (T + 20), 4)
            self.assertEqual(len(got), 26)

    def test_wildcard(self):
        with Lookup(self.db) as lk:
            recs, _ = lk.cof("/query/*.shared.example.org")
            self.assertEqual(len(recs), 22)
            got = page_all(lk, "/query/*.example.com", 5)
            # many (46) + www (3); not example.com itself, not notexample names
            self.assertEqual(len(got), 49)
            self.assertTrue(all(r["rrname"].endswith(".example.com") for r in got))
            recs, _ = lk.cof("/query/%2A.EXAMPLE.net.")
            self.assertEqual([r["rrname"] for r in recs], ["alias.example.net"])

    def test_errors(self):
        with Lookup(self.db) as lk:
            for path in ("/query/x?limit=0", "/query/x?limit=100001", "/query/x?limit=ten",
                         "/query/x?rrtype=NOTATYPE", "/query/x?since=yesterday",
                         "/query/x?cursor=nonsense", "/query/x?colour=blue", "/query/",
                         "/query/" + "a" * 300 + ".example"):
                status, hdrs, body = lk.get(path)
                self.assertEqual(status, 400, path)
                self.assertEqual(hdrs["Content-Type"], "application/x-ndjson")
                self.assertTrue(json.loads(body)["error"], path)
            # a cursor of another query
            _, hdrs = lk.cof("/query/many.example.com?limit=1")
            status, _, body = lk.get("/query/www.example.com?cursor=" + hdrs["X-Next-Cursor"])
            self.assertEqual(status, 400)
            self.assertIn("cursor", json.loads(body)["error"])
            status, _, body = lk.get("/nowhere")
            self.assertEqual(status, 404)
            self.assertTrue(json.loads(body)["error"])
            status, _, _ = lk.get("/query/www.example.com", method="POST")
            self.assertEqual(status, 405)

    def test_token(self):
        with Lookup(self.db, "--token", "s3cret-token") as lk:
            for headers in (None, {"Authorization": "wrong"}, {"Authorization": "Bearer wrong"}):
                status, hdrs, body = lk.get("/query/www.example.com", headers)
                self.assertEqual(status, 401)
                self.assertTrue(json.loads(body)["error"])
            status, _, _ = lk.get("/info")
            self.assertEqual(status, 401)
            recs, _ = lk.cof("/query/www.example.com", {"Authorization": "s3cret-token"})
            self.assertEqual(len(recs), 3)
            recs, _ = lk.cof("/query/www.example.com", {"Authorization": "Bearer s3cret-token"})
            self.assertEqual(len(recs), 3)
            got = page_all(lk, "/query/many.example.com", 20,
                           {"Authorization": "Bearer s3cret-token"})
            self.assertEqual(len(got), 46)

    def test_info(self):
        with Lookup(self.db) as lk:
            info = lk.info()
            self.assertEqual(info["software"], "d4-pdns-lookup")
            self.assertEqual(info["store"]["records"], 46 + 22 + 7)
            self.assertEqual(info["stats"]["lines"], 46 + 22 + 7)
            self.assertEqual(info["stats"].get("rejected", 0), 0)

    def test_reads_while_the_analyzer_writes(self):
        """The server sees each commit of a second analyzer run without a restart."""
        with Lookup(self.db) as lk:
            errors = []

            def hammer():
                try:
                    for _ in range(50):
                        recs, _ = lk.cof("/query/www.example.com")
                        assert len(recs) == 3
                except Exception as e:  # reported below
                    errors.append(e)
            th = threading.Thread(target=hammer)
            th.start()
            more = b"".join(b"%d||c||s||IN||late%d.example||A||192.0.2.%d||60||1\n" % (T, i, i % 250)
                            for i in range(3000))
            run_analyzer(self.db, frames(chunked(more, 4096)), "--batch", "500")
            th.join(timeout=60)
            self.assertFalse(th.is_alive())
            self.assertEqual(errors, [])
            recs, _ = lk.cof("/query/late2999.example")
            self.assertEqual(len(recs), 1)
            self.assertEqual(lk.info()["store"]["records"], 46 + 22 + 7 + 3000)


if __name__ == "__main__":
    if not (os.access(ANALYZER, os.X_OK) and os.access(LOOKUP, os.X_OK)):
        print("SKIP: d4-analyzer-passivedns or d4-pdns-lookup is not built")
        sys.exit(77)
    unittest.main(verbosity=2)
