"""weblib.py — run a real d4-web on loopback for tests, and talk to its REST API.

Standard library only. `Web` makes a fresh data directory with a self-signed certificate,
creates the first admin with --create-admin (reading the password it prints once), starts
d4-web on a port the kernel picked (read back from its `listening ... port=N` log line) and
stops it at the end, failing when it did not exit cleanly (sanitizer reports included).
`Client` sends requests over HTTPS without verifying the certificate, keeps the session
cookie and the CSRF token, or sends an API token.

Environment (set by ctest): D4_BIN (build/bin).
"""
import http.client
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import tempfile
import time

BIN = os.environ.get("D4_BIN", os.path.join(os.path.dirname(__file__), "../../build/bin"))
WEB = os.path.join(BIN, "d4-web")

# cheap Argon2 for tests: the cost is in the encoded hash, so this is all it changes
FAST_HASH = ["web.argon2_memory=64k", "web.argon2_passes=1"]


class Reply:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def __repr__(self):
        return "<%d %s>" % (self.status, self.body[:300])


class Web:
    """A d4-web in a fresh data directory. `sets` are extra --set options."""

    def __init__(self, sets=(), plain_http=False):
        self.dir = tempfile.mkdtemp(prefix="d4-web-test-")
        self.data = os.path.join(self.dir, "var")
        os.makedirs(os.path.join(self.data, "tls"))
        self.log = os.path.join(self.dir, "web.log")
        self.plain_http = plain_http
        self.sets = ["d4.data_dir=" + self.data, "web.listen=127.0.0.1:0", "d4.log_level=info"]
        self.sets += FAST_HASH
        if plain_http:
            self.sets.append("web.plain_http=true")
        self.sets += list(sets)
        self.proc = None
        self.port = None
        self.replies = []  # every reply body, for "the key never appears" checks
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                        os.path.join(self.data, "tls/server.key"), "-out",
                        os.path.join(self.data, "tls/server.crt"), "-days", "2", "-subj",
                        "/CN=localhost"], check=True, capture_output=True)

    def args(self):
        out = [WEB]
        for s in self.sets:
            out += ["--set", s]
        return out

    def create_admin(self, name="admin"):
        """Runs --create-admin; returns (exit status, password or None, stdout, stderr)."""
        p = subprocess.run(self.args() + ["--create-admin", name], capture_output=True,
                           text=True, timeout=60)
        if "Sanitizer" in p.stderr or "runtime error" in p.stderr:
            raise AssertionError("sanitizer report:\n" + p.stderr[-6000:])
        m = re.search(r"^password: (\S+)$", p.stdout, re.M)
        return p.returncode, (m.group(1) if m else None), p.stdout, p.stderr

    def start(self):
        self.logf = open(self.log, "w")
        self.proc = subprocess.Popen(self.args(), stdout=subprocess.DEVNULL, stderr=self.logf)
        end = time.time() + 20
        while time.time() < end:
            with open(self.log) as f:
                m = re.search(r"listening .*port=(\d+)", f.read())
            if m:
                self.port = int(m.group(1))
                break
            if self.proc.poll() is not None:
                raise AssertionError("d4-web exited at start:\n" + self.log_text())
            time.sleep(0.05)
        else:
            raise AssertionError("d4-web did not log its port:\n" + self.log_text())
        # the port is bound before libmicrohttpd runs: wait until it answers
        end = time.time() + 20
        while time.time() < end:
            try:
                if self.request("GET", "/api/v1/health").status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("d4-web does not answer:\n" + self.log_text())

    def log_text(self):
        try:
            with open(self.log) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        """SIGTERM; returns the exit status. Sanitizer reports make it fail."""
        if self.proc is None:
            return 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc = None
        self.logf.close()
        text = self.log_text()
        if "Sanitizer" in text or "runtime error" in text:
            raise AssertionError("sanitizer report:\n" + text[-6000:])
        return rc

    def cleanup(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            if self.proc is not None and exc[0] is None:
                rc = self.stop()
                assert rc == 0, "d4-web exited with %d:\n%s" % (rc, self.log_text()[-4000:])
        finally:
            self.cleanup()
        return False

    # ---- HTTP ----

    def connection(self, timeout=20):
        if self.plain_http:
            return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout, context=ctx)

    def request(self, method, path, body=None, headers=None, raw=None):
        """body: a JSON value (sent as application/json); raw: bytes sent as they are."""
        h = dict(headers or {})
        data = None
        if raw is not None:
            data = raw
        elif body is not None:
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        conn = self.connection()
        try:
            conn.request(method, path, body=data, headers=h)
            resp = conn.getresponse()
            reply = Reply(resp.status, resp.getheaders(), resp.read())
        finally:
            conn.close()
        self.replies.append(reply.body)
        for _, v in reply.headers:
            self.replies.append(v.encode())
        return reply


class Client:
    """A user of the API: a session (cookie + CSRF token) or an API token."""

    def __init__(self, web, token=None, bearer=True):
        self.web = web
        self.cookie = None
        self.csrf = None
        self.token = token
        self.bearer = bearer

    def login(self, user, password):
        r = self.web.request("POST", "/api/v1/login", {"user": user, "password": password})
        if r.status == 200:
            m = re.match(r"d4_session=([^;]*)", r.header("Set-Cookie") or "")
            assert m, r.headers
            self.cookie = m.group(1)
            self.csrf = r.json["csrf"]
        return r

    def request(self, method, path, body=None, headers=None, raw=None, csrf=True):
        h = dict(headers or {})
        if self.token is not None:
            h["Authorization"] = ("Bearer " + self.token) if self.bearer else self.token
        if self.cookie is not None:
            h["Cookie"] = "d4_session=" + self.cookie
            if csrf and method != "GET" and self.csrf:
                h["X-CSRF-Token"] = self.csrf
        return self.web.request(method, path, body=body, headers=h, raw=raw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)

    def put(self, path, body=None, **kw):
        return self.request("PUT", path, body=body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)
