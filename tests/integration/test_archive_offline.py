#!/usr/bin/env python3
"""d4-analyzer-archive run by hand on saved D4 streams (d4-client --destination stdout).

pcap: the archive's file, decompressed, is the input byte for byte; with a small --max-size
the stream becomes several files, each a valid pcap (the same global header at its head,
records whole to its exact end), whose records put together are the input's records. Lines
(type 3 at snaplen 100, lines spanning frames): every rotated file ends with a newline and
the files put together are the input. 254: the meta-type is in the path and the meta header
is kept beside the data. The layout and the name's time come from the frame timestamps.
"""
import glob
import gzip
import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

BIN = os.environ.get("D4_BIN", "")
ARCHIVE = os.path.join(BIN, "d4-analyzer-archive")
CLIENT = os.path.join(BIN, "d4-client")
if not (os.access(ARCHIVE, os.X_OK) and os.access(CLIENT, os.X_OK)):
    print("SKIP: d4-analyzer-archive or d4-client is not built")
    sys.exit(77)

UUID = "cd980d75-dcf1-47da-bb60-aabe94fea6b2"
KEY = "private key to change"
T = 1700000000  # 2023-11-14 22:13:20 UTC
NAME_RE = re.compile(r"^%s-(\d{4})-(\d\d)-(\d\d)-(\d{6})(?:-(\d+))?\.([a-z.]+?)(\.gz)?$" % UUID)


def make_pcap(path, n=200, seed=1, big_endian=False):
    rnd = random.Random(seed)
    e = ">" if big_endian else "<"
    out = struct.pack(e + "IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1)
    recs = []
    for i in range(n):
        size = rnd.randint(0, 900)
        rec = struct.pack(e + "IIII", T + i, i, size, size + 4) + rnd.randbytes(size)
        recs.append(rec)
    with open(path, "wb") as f:
        f.write(out + b"".join(recs))
    return out, recs


def d4(src, typ, snaplen, ts=T, extra=()):
    return subprocess.run([CLIENT, "--destination", "stdout", "--type", str(typ), "--snaplen",
                           str(snaplen), "--uuid", UUID, "--key", KEY, "--fixed-timestamp",
                           str(ts), "-q", "--source", src] + list(extra),
                          check=True, stdout=subprocess.PIPE).stdout


def run_archive(stream, *args, expect=0):
    p = subprocess.run([ARCHIVE] + list(args), input=stream, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    if p.returncode != expect:
        raise AssertionError("archive exit %d (want %d): %s" % (p.returncode, expect,
                                                                 p.stderr.decode()))
    return p


def files_of(out):
    """Every file under out, in write order: by name time, then by the -n suffix."""
    found = []
    for path in glob.glob(os.path.join(out, "**", "*"), recursive=True):
        if os.path.isdir(path):
            continue
        m = NAME_RE.match(os.path.basename(path))
        assert m, "unexpected name %s" % path
        found.append(((m.group(1, 2, 3, 4), int(m.group(5) or 0)), path))
    return [p for _, p in sorted(found)]


def content(path):
    with open(path, "rb") as f:
        data = f.read()
    return gzip.decompress(data) if path.endswith(".gz") else data


def pcap_records(data, end="<"):
    """The records of one pcap file; fails unless they end exactly at the file's end."""
    assert len(data) >= 24, "no global header"
    pos, recs = 24, []
    while pos < len(data):
        assert len(data) - pos >= 16, "record header cut at %d" % pos
        caplen = struct.unpack_from(end + "I", data, pos + 8)[0]
        assert pos + 16 + caplen <= len(data), "record cut at %d" % pos
        recs.append(data[pos:pos + 16 + caplen])
        pos += 16 + caplen
    return recs


class Offline(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="d4-archive-test.")
        self.out = os.path.join(self.tmp, "out")
        os.umask(0o022)

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def p(self, name):
        return os.path.join(self.tmp, name)

    def test_pcap_whole_and_layout(self):
        make_pcap(self.p("in.pcap"))
        run_archive(d4(self.p("in.pcap"), 1, 1000), "--out", self.out)
        files = files_of(self.out)
        want = os.path.join(self.out, UUID, "1", "2023", "11", "14",
                            "%s-2023-11-14-221320.pcap.gz" % UUID)
        self.assertEqual(files, [want])
        with open(self.p("in.pcap"), "rb") as f:
            self.assertEqual(content(want), f.read())
        self.assertEqual(os.stat(want).st_mode & 0o777, 0o640)
        for d in (self.out, os.path.join(self.out, UUID), os.path.dirname(want)):
            self.assertEqual(os.stat(d).st_mode & 0o777, 0o750, d)
        self.assertEqual(glob.glob(os.path.join(self.out, "**", "*.tmp"), recursive=True), [])

    def test_pcap_rotated_by_size(self):
        for big in (False, True):
            with self.subTest(big_endian=big):
                out = self.out + ("-be" if big else "-le")
                glob_hdr, recs = make_pcap(self.p("in.pcap"), seed=7, big_endian=big)
                run_archive(d4(self.p("in.pcap"), 1, 1000), "--out", out, "--max-size", "20k")
                files = files_of(out)
                self.assertGreaterEqual(len(files), 4, files)
                got = []
                for path in files:
                    self.assertTrue(path.endswith(".pcap.gz"), path)
                    data = content(path)
                    self.assertEqual(data[:24], glob_hdr, path)
                    self.assertLessEqual(len(data), 20 * 1024, path)
                    r = pcap_records(data, ">" if big else "<")
                    self.assertGreater(len(r), 0, path)
                    got += r
                self.assertEqual(got, recs)

    def test_pcap_uncompressed_and_rerun(self):
        make_pcap(self.p("in.pcap"), n=50)
        stream = d4(self.p("in.pcap"), 1, 1000)
        run_archive(stream, "--out", self.out, "--compress", "none")
        first = files_of(self.out)
        self.assertEqual(len(first), 1)
        self.assertTrue(first[0].endswith("-221320.pcap"), first)
        before = content(first[0])
        # the same stream again (a replay): a new file, the first one untouched
        run_archive(stream, "--out", self.out)
        files = files_of(self.out)
        self.assertEqual(len(files), 2, files)
        self.assertTrue(files[1].endswith("-221320-1.pcap.gz"), files)
        self.assertEqual(content(files[0]), before)
        self.assertEqual(content(files[1]), before)

    def test_pcap_without_global_header_kept_raw(self):
        make_pcap(self.p("in.pcap"), n=100)
        with open(self.p("in.pcap"), "rb") as f:
            mid = f.read()[1000:]  # what a replay after a restart looks like: no global header
        for name, data in (("mid", mid), ("tiny", mid[:10])):
            with open(self.p(name), "wb") as f:
                f.write(data)
            out = os.path.join(self.tmp, "out-" + name)
            p = run_archive(d4(self.p(name), 1, 1000), "--out", out, "--max-size", "16k")
            files = files_of(out)
            self.assertTrue(files and all(x.endswith(".raw.gz") for x in files), files)
            self.assertEqual(b"".join(content(x) for x in files), data)
            if name == "mid":
                self.assertGreater(len(files), 1)
                self.assertIn(b"archived as it came", p.stderr)

    def test_lines_rotated_by_size(self):
        rnd = random.Random(3)
        lines = ["%04d %s\tutf-8 é %s\r\n" % (i, "x" * rnd.randint(0, 300), "end")
                 if i % 17 == 0 else "%04d %s\n" % (i, "y" * rnd.randint(0, 300))
                 for i in range(600)]
        text = "".join(lines).encode()
        with open(self.p("in.txt"), "wb") as f:
            f.write(text)
        run_archive(d4(self.p("in.txt"), 3, 100), "--out", self.out, "--max-size", "8k")
        files = files_of(self.out)
        self.assertGreaterEqual(len(files), 5, files)
        got = b""
        for path in files:
            self.assertTrue(path.endswith(".txt.gz"), path)
            self.assertIn(os.path.join(UUID, "3", "2023", "11", "14"), path)
            subprocess.run(["gzip", "-t", path], check=True)
            data = content(path)
            self.assertTrue(data.endswith(b"\n"), path)
            self.assertLessEqual(len(data), 8 * 1024 + 400, path)
            got += data
        self.assertEqual(got, text)

    def test_lines_partial_last_line(self):
        with open(self.p("in.txt"), "wb") as f:
            f.write(b"one\ntwo\nthree without newline")
        run_archive(d4(self.p("in.txt"), 3, 5), "--out", self.out)
        files = files_of(self.out)
        self.assertEqual(len(files), 1)
        self.assertEqual(content(files[0]), b"one\ntwo\nthree without newline")

    def test_lines_rotated_by_time(self):
        a = b"".join(b"early %d\n" % i for i in range(10))
        b = b"".join(b"late %d\n" % i for i in range(10)) + b"cut"
        with open(self.p("a.txt"), "wb") as f:
            f.write(a)
        with open(self.p("b.txt"), "wb") as f:
            f.write(b)
        c = b"tail\nnext day\n"
        with open(self.p("c.txt"), "wb") as f:
            f.write(c)
        # one session (same uuid and type), frame times T, T+400 and T+86400 (the next day)
        stream = d4(self.p("a.txt"), 3, 30) + d4(self.p("b.txt"), 3, 30, ts=T + 400) + \
            d4(self.p("c.txt"), 3, 30, ts=T + 86400)
        run_archive(stream, "--out", self.out)
        files = files_of(self.out)
        names = [os.path.relpath(x, os.path.join(self.out, UUID, "3")) for x in files]
        self.assertEqual(names, ["2023/11/14/%s-2023-11-14-221320.txt.gz" % UUID,
                                 "2023/11/14/%s-2023-11-14-222000.txt.gz" % UUID,
                                 "2023/11/15/%s-2023-11-15-221320.txt.gz" % UUID])
        self.assertEqual(content(files[0]), a)
        # the line "cut" spans the time change: the cut waits for its newline
        self.assertEqual(content(files[1]), b + b"tail\n")
        self.assertEqual(content(files[2]), b"next day\n")

    def test_meta_defined(self):
        meta = {"type": "ja3-jl", "encoding": "utf-8"}
        with open(self.p("meta.json"), "w") as f:
            f.write(json.dumps(meta) + "\n")
        jl = "".join(json.dumps({"ja3": "%032x" % (i * 7919), "n": i}) + "\n"
                     for i in range(300)).encode()
        with open(self.p("jl.txt"), "wb") as f:
            f.write(jl)
        run_archive(d4(self.p("jl.txt"), 254, 64, extra=["--metaheader", self.p("meta.json")]),
                    "--out", self.out, "--max-size", "4k")
        files = files_of(self.out)
        day = os.path.join(self.out, UUID, "254", "ja3-jl", "2023", "11", "14")
        data = [x for x in files if x.endswith(".txt.gz")]
        self.assertGreaterEqual(len(data), 3, files)
        self.assertTrue(all(os.path.dirname(x) == day for x in files), files)
        self.assertEqual(b"".join(content(x) for x in data), jl)
        self.assertEqual(os.path.join(day, "%s-2023-11-14-221320.json" % UUID), files[0])
        self.assertEqual(json.loads(content(files[0])), meta)

    def test_meta_type_cannot_leave_the_archive(self):
        with open(self.p("meta.json"), "w") as f:
            f.write('{"type": "../../../escape"}\n')
        with open(self.p("x.bin"), "wb") as f:
            f.write(bytes(range(256)) * 4)
        run_archive(d4(self.p("x.bin"), 254, 100, extra=["--metaheader", self.p("meta.json")]),
                    "--out", self.out)
        files = files_of(self.out)
        self.assertEqual([os.path.dirname(x) for x in files if x.endswith(".bin.gz")],
                         [os.path.join(self.out, UUID, "254", "_._.._.._escape", "2023", "11", "14")])
        self.assertEqual(sorted(os.listdir(self.tmp)), ["meta.json", "out", "x.bin"])

    def test_binary_types(self):
        blob = bytes(random.Random(5).randbytes(5000))
        with open(self.p("b.dat"), "wb") as f:
            f.write(blob)
        run_archive(d4(self.p("b.dat"), 7, 1000), "--out", self.out, "--max-size", "2500")
        files = files_of(self.out)
        self.assertEqual(len(files), 3, files)  # frames of 1000 bytes, at most 2500 a file
        self.assertTrue(all(x.endswith(".bin.gz") for x in files))
        self.assertEqual(b"".join(content(x) for x in files), blob)
        run_archive(d4(self.p("b.dat"), 5, 1000), "--out", self.out, "--max-size", "2500")
        ng = [x for x in files_of(self.out) if "/5/" in x]
        self.assertEqual(len(ng), 1, ng)  # pcapng: never cut within a session
        self.assertTrue(ng[0].endswith(".pcapng.gz"))
        self.assertEqual(content(ng[0]), blob)

    def test_errors(self):
        with open(self.p("in.txt"), "wb") as f:
            f.write(b"a line\n")
        stream = d4(self.p("in.txt"), 3, 100)
        p = run_archive(stream, expect=1)
        self.assertIn(b"--out", p.stderr)
        with open(self.p("file"), "w") as f:
            f.write("not a directory")
        p = run_archive(stream, "--out", self.p("file"), expect=1)
        self.assertIn(b"cannot create directory", p.stderr)
        for bad in (["--max-size", "12q"], ["--rotate", "-1"], ["--compress", "bz2"],
                    ["--out"]):
            run_archive(stream, *bad, expect=2)


if __name__ == "__main__":
    unittest.main()
