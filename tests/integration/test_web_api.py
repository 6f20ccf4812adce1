"""d4-web's REST API end to end: a real d4-web on a loopback port, over HTTPS.

Covers the first admin and the must-change flow, sessions and CSRF, API tokens in both
Authorization forms, login throttling, every route (each answered with its expected status
and listed in openapi.json), every role's permissions (role x route table), bad input
(JSON, types, sizes, uuids, CIDRs), d4-core's registration call exactly, the sensor's key
never appearing in a reply, and /metrics in the Prometheus text format.
"""
import os
import re
import sys
import unittest
import uuid as uuidlib

sys.path.insert(0, os.path.dirname(__file__))
from weblib import WEB, Client, Web  # noqa: E402

KEY = "k3y-never-to-be-shown-0123456789"
KEY2 = "second-secret-key-abcdefghijkl"
NEW_PW = "a-new-password-123"


def new_uuid():
    return str(uuidlib.uuid4())


def admin_session(web, name="admin"):
    """Creates the first admin, logs in, changes the password; returns the Client."""
    rc, pw, _, err = web.create_admin(name)
    assert rc == 0 and pw, err
    c = Client(web)
    r = c.login(name, pw)
    assert r.status == 200, r
    r = c.post("/api/v1/password", {"old": pw, "new": NEW_PW})
    assert r.status == 200, r
    return c


def make_token(admin, user, description="test"):
    r = admin.post("/api/v1/tokens", {"user": user, "description": description})
    assert r.status == 201, r
    return r.json["token"]


def make_user(admin, name, role):
    r = admin.post("/api/v1/users", {"name": name, "role": role, "password": "initial-pass-" + name})
    assert r.status == 201, r
    return "initial-pass-" + name


# Every route the server answers: (method, path template). openapi.json must list each.
ROUTES = [
    ("POST", "/api/v1/login"),
    ("POST", "/api/v1/logout"),
    ("POST", "/api/v1/password"),
    ("GET", "/api/v1/health"),
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/api/v1/info"),
    ("POST", "/api/v1/add/sensor/register"),
    ("GET", "/api/v1/sensors/monitoring/errors"),
    ("GET", "/api/v1/sensors"),
    ("GET", "/api/v1/sensors/{uuid}"),
    ("PUT", "/api/v1/sensors/{uuid}"),
    ("DELETE", "/api/v1/sensors/{uuid}"),
    ("PUT", "/api/v1/sensors/{uuid}/key"),
    ("POST", "/api/v1/sensors/{uuid}/approve"),
    ("POST", "/api/v1/sensors/{uuid}/reject"),
    ("POST", "/api/v1/sensors/{uuid}/kick"),
    ("POST", "/api/v1/sensors/{uuid}/block"),
    ("POST", "/api/v1/sensors/{uuid}/unblock"),
    ("GET", "/api/v1/blocklist/uuids"),
    ("POST", "/api/v1/blocklist/uuids"),
    ("DELETE", "/api/v1/blocklist/uuids/{uuid}"),
    ("GET", "/api/v1/blocklist/ips"),
    ("POST", "/api/v1/blocklist/ips"),
    ("DELETE", "/api/v1/blocklist/ips"),
    ("GET", "/api/v1/types"),
    ("PUT", "/api/v1/types"),
    ("GET", "/api/v1/metatypes"),
    ("POST", "/api/v1/metatypes"),
    ("DELETE", "/api/v1/metatypes/{name}"),
    ("GET", "/api/v1/stats/daily"),
    ("GET", "/api/v1/stats/totals"),
    ("GET", "/api/v1/queues"),
    ("POST", "/api/v1/queues/{name}/pause"),
    ("POST", "/api/v1/queues/{name}/resume"),
    ("POST", "/api/v1/queues/{name}/empty"),
    ("GET", "/api/v1/pdns/query"),
    ("GET", "/api/v1/pdns/fquery"),
    ("GET", "/api/v1/pdns/info"),
    ("GET", "/api/v1/tls/summary"),
    ("GET", "/api/v1/tls/pivot"),
    ("GET", "/api/v1/tls/sessions"),
    ("GET", "/api/v1/tls/findings"),
    ("GET", "/api/v1/tls/cert"),
    ("GET", "/api/v1/users"),
    ("POST", "/api/v1/users"),
    ("DELETE", "/api/v1/users/{name}"),
    ("GET", "/api/v1/tokens"),
    ("POST", "/api/v1/tokens"),
    ("DELETE", "/api/v1/tokens/{id}"),
    ("GET", "/metrics"),
]

# Who may call what: route -> the set of roles allowed ("*" = any authenticated user).
READ = {"admin", "operator", "read-only"}
OPERATE = {"admin", "operator"}
ADMIN = {"admin"}
PERMS = {
    ("POST", "/api/v1/logout"): "*",
    ("POST", "/api/v1/password"): "*",
    ("GET", "/api/v1/info"): READ,
    ("POST", "/api/v1/add/sensor/register"): {"admin", "operator", "sensor-register"},
    ("GET", "/api/v1/sensors/monitoring/errors"): READ,
    ("GET", "/api/v1/sensors"): READ,
    ("GET", "/api/v1/sensors/{uuid}"): READ,
    ("PUT", "/api/v1/sensors/{uuid}"): OPERATE,
    ("DELETE", "/api/v1/sensors/{uuid}"): OPERATE,
    ("PUT", "/api/v1/sensors/{uuid}/key"): OPERATE,
    ("POST", "/api/v1/sensors/{uuid}/approve"): OPERATE,
    ("POST", "/api/v1/sensors/{uuid}/reject"): OPERATE,
    ("POST", "/api/v1/sensors/{uuid}/kick"): OPERATE,
    ("POST", "/api/v1/sensors/{uuid}/block"): OPERATE,
    ("POST", "/api/v1/sensors/{uuid}/unblock"): OPERATE,
    ("GET", "/api/v1/blocklist/uuids"): READ,
    ("POST", "/api/v1/blocklist/uuids"): OPERATE,
    ("DELETE", "/api/v1/blocklist/uuids/{uuid}"): OPERATE,
    ("GET", "/api/v1/blocklist/ips"): READ,
    ("POST", "/api/v1/blocklist/ips"): OPERATE,
    ("DELETE", "/api/v1/blocklist/ips"): OPERATE,
    ("GET", "/api/v1/types"): READ,
    ("PUT", "/api/v1/types"): OPERATE,
    ("GET", "/api/v1/metatypes"): READ,
    ("POST", "/api/v1/metatypes"): OPERATE,
    ("DELETE", "/api/v1/metatypes/{name}"): OPERATE,
    ("GET", "/api/v1/stats/daily"): READ,
    ("GET", "/api/v1/stats/totals"): READ,
    ("GET", "/api/v1/queues"): READ,
    ("POST", "/api/v1/queues/{name}/pause"): OPERATE,
    ("POST", "/api/v1/queues/{name}/resume"): OPERATE,
    ("POST", "/api/v1/queues/{name}/empty"): OPERATE,
    ("GET", "/api/v1/pdns/query"): READ,
    ("GET", "/api/v1/pdns/fquery"): READ,
    ("GET", "/api/v1/pdns/info"): READ,
    ("GET", "/api/v1/tls/summary"): READ,
    ("GET", "/api/v1/tls/pivot"): READ,
    ("GET", "/api/v1/tls/sessions"): READ,
    ("GET", "/api/v1/tls/findings"): READ,
    ("GET", "/api/v1/tls/cert"): READ,
    ("GET", "/api/v1/users"): ADMIN,
    ("POST", "/api/v1/users"): ADMIN,
    ("DELETE", "/api/v1/users/{name}"): ADMIN,
    ("GET", "/api/v1/tokens"): ADMIN,
    ("POST", "/api/v1/tokens"): ADMIN,
    ("DELETE", "/api/v1/tokens/{id}"): ADMIN,
    ("GET", "/metrics"): READ,
}


def concrete(path):
    """A path template with harmless values: nothing it names exists."""
    return (path.replace("{uuid}", new_uuid()).replace("{name}", "nobody-here")
            .replace("{id}", "00000000deadbeef"))


class WebApiTest(unittest.TestCase):
    def setUp(self):
        self.web = Web().__enter__()

    def tearDown(self):
        self.web.__exit__(*sys.exc_info())

    def start(self):
        self.web.start()
        return self.web

    # ---- the first admin, sessions, CSRF ----

    def test_first_admin_must_change(self):
        web = self.web
        rc, pw, out, _ = web.create_admin("root")
        self.assertEqual(rc, 0)
        self.assertRegex(out, r"^user: root\npassword: \S{20}\n$")
        rc2, pw2, _, err2 = web.create_admin("other")
        self.assertEqual(rc2, 1)
        self.assertIsNone(pw2)
        self.assertIn("already has 1 user", err2)
        self.start()
        c = Client(web)
        r = c.login("root", pw)
        self.assertEqual(r.status, 200)
        self.assertTrue(r.json["must_change"])
        self.assertEqual(r.json["role"], "admin")
        cookie = r.header("Set-Cookie")
        for attr in ("HttpOnly", "SameSite=Strict", "Secure", "Path=/"):
            self.assertIn(attr, cookie)
        # everything but the password change is refused
        for method, path in [("GET", "/api/v1/sensors"), ("GET", "/api/v1/info"),
                             ("GET", "/api/v1/users"), ("GET", "/metrics")]:
            r = c.request(method, path)
            self.assertEqual(r.status, 403, path)
            self.assertEqual(r.json, {"status": "error", "reason": "password change required"})
        r = c.post("/api/v1/add/sensor/register", {"uuid": new_uuid(), "hmac_key": KEY})
        self.assertEqual(r.status, 403)
        # too short, same as old, wrong old
        self.assertEqual(c.post("/api/v1/password", {"old": pw, "new": "short"}).status, 400)
        self.assertEqual(c.post("/api/v1/password", {"old": pw, "new": pw}).status, 400)
        self.assertEqual(c.post("/api/v1/password", {"old": "wrong-one!", "new": NEW_PW}).status, 403)
        self.assertEqual(c.post("/api/v1/password", {"old": pw, "new": NEW_PW}).status, 200)
        self.assertEqual(c.get("/api/v1/sensors").status, 200)
        # the new password works, the old one no longer
        self.assertEqual(Client(web).login("root", pw).status, 401)
        r = Client(web).login("root", NEW_PW)
        self.assertEqual(r.status, 200)
        self.assertFalse(r.json["must_change"])
        self.assertNotIn(pw.encode(), b"".join(web.replies))

    def test_session_csrf_logout(self):
        web = self.web
        self.start()
        c = admin_session(web)
        # a state change with the cookie and no (or a wrong) token is refused
        r = c.post("/api/v1/blocklist/uuids", {"uuid": new_uuid()}, csrf=False)
        self.assertEqual(r.status, 403)
        self.assertIn("CSRF", r.json["reason"])
        r = c.post("/api/v1/blocklist/uuids", {"uuid": new_uuid()}, csrf=False,
                   headers={"X-CSRF-Token": "x" * 43})
        self.assertEqual(r.status, 403)
        self.assertEqual(c.get("/api/v1/blocklist/uuids").json, [])
        self.assertEqual(c.post("/api/v1/blocklist/uuids", {"uuid": new_uuid()}).status, 201)
        # GET needs no token
        self.assertEqual(c.get("/api/v1/info").status, 200)
        # a forged or unknown cookie
        bad = Client(web)
        bad.cookie = "A" * 43
        self.assertEqual(bad.get("/api/v1/info").status, 401)
        bad.cookie = "not a cookie;"
        self.assertEqual(bad.get("/api/v1/info").status, 401)
        # logout ends the session
        r = c.post("/api/v1/logout")
        self.assertEqual(r.status, 200)
        self.assertIn("Max-Age=0", r.header("Set-Cookie"))
        self.assertEqual(c.get("/api/v1/info").status, 401)

    # ---- tokens ----

    def test_tokens_both_forms(self):
        web = self.web
        self.start()
        admin = admin_session(web)
        tok = make_token(admin, "admin", "script")
        self.assertRegex(tok, r"^d4_[A-Za-z0-9_-]{43}$")
        for bearer in (True, False):
            c = Client(web, token=tok, bearer=bearer)
            r = c.get("/api/v1/info")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json["you"], {"user": "admin", "role": "admin"})
            # no CSRF token needed with a token
            self.assertEqual(c.post("/api/v1/blocklist/uuids", {"uuid": new_uuid()}).status, 201)
        self.assertEqual(Client(web, token=tok + "x").get("/api/v1/info").status, 401)
        self.assertEqual(Client(web, token="d4_" + "A" * 43).get("/api/v1/info").status, 401)
        # list shows ids, never the token; delete by id
        r = admin.get("/api/v1/tokens")
        self.assertEqual(len(r.json), 1)
        tid = r.json[0]["id"]
        self.assertRegex(tid, r"^[0-9a-f]{16}$")
        self.assertIsNotNone(r.json[0]["last_used"])
        self.assertEqual(admin.delete("/api/v1/tokens/abc").status, 400)
        self.assertEqual(admin.delete("/api/v1/tokens/" + ("0" if tid[0] != "0" else "1") * 8).status, 404)
        self.assertEqual(admin.delete("/api/v1/tokens/" + tid[:8]).status, 200)
        self.assertEqual(Client(web, token=tok).get("/api/v1/info").status, 401)
        self.assertEqual(admin.post("/api/v1/tokens", {"user": "ghost"}).status, 400)
        # the token text appeared exactly once (in the reply that made it)
        self.assertEqual(sum(b.count(tok.encode()) for b in web.replies), 1)

    # ---- login throttling ----

    def test_login_throttling(self):
        web = self.web
        rc, pw, _, _ = web.create_admin("root")
        self.start()
        for i in range(5):
            r = Client(web).login("root", "wrong-password-%d" % i)
            self.assertEqual(r.status, 401, r)
            self.assertEqual(r.json["reason"], "invalid user or password")
        r = Client(web).login("root", "wrong-again")
        self.assertEqual(r.status, 429)
        self.assertGreater(int(r.header("Retry-After")), 0)
        # even the right password waits: no password is checked while throttled
        r = Client(web).login("root", pw)
        self.assertEqual(r.status, 429)
        self.assertIn("retry in", r.json["reason"])
        # X-Forwarded-For is ignored unless web.forwarded_for is set
        r = web.request("POST", "/api/v1/login", {"user": "someone", "password": "x" * 12},
                        headers={"X-Forwarded-For": "192.0.2.77"})
        self.assertEqual(r.status, 429)

    def test_login_throttling_behind_proxy(self):
        self.web.sets.append("web.forwarded_for=true")
        web = self.web
        web.create_admin("root")
        self.start()

        def login(user, addr):
            return web.request("POST", "/api/v1/login", {"user": user, "password": "x" * 12},
                               headers={"X-Forwarded-For": "203.0.113.9, " + addr})
        for i in range(5):
            self.assertEqual(login("user%d" % i, "192.0.2.1").status, 401)
        self.assertEqual(login("another", "192.0.2.1").status, 429)  # the address is blocked
        self.assertEqual(login("another", "192.0.2.2").status, 401)  # another client is not

    def test_unknown_user_same_reply(self):
        web = self.web
        rc, pw, _, _ = web.create_admin("root")
        self.start()
        r1 = Client(web).login("nobody", "whatever-pass")
        r2 = Client(web).login("root", "whatever-pass")
        self.assertEqual((r1.status, r1.json), (r2.status, r2.json))
        self.assertEqual(Client(web).login("root", pw).status, 200)

    # ---- d4-core's registration call ----

    def test_register_call(self):
        web = self.web
        self.start()
        admin = admin_session(web)
        for role in ("sensor-register", "operator"):
            make_user(admin, "u-" + role, role)
            tok = make_token(admin, "u-" + role)
            c = Client(web, token=tok, bearer=False)  # d4-core's form: Authorization: <token>
            u = new_uuid()
            r = c.post("/api/v1/add/sensor/register",
                       {"uuid": u, "hmac_key": KEY, "description": "d", "mail": "a@b.c",
                        "third_party": True})
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json, {"uuid": u})
            r = c.post("/api/v1/add/sensor/register", {"uuid": u, "hmac_key": KEY})
            self.assertEqual(r.status, 409)
            self.assertEqual(r.json["status"], "error")
            # uppercase / undashed forms are the same sensor
            r = c.post("/api/v1/add/sensor/register",
                       {"uuid": u.upper().replace("-", ""), "hmac_key": KEY})
            self.assertEqual(r.status, 409)
        c = Client(web, token=tok)
        v1 = str(uuidlib.uuid1())
        for body in ({"uuid": "not-a-uuid", "hmac_key": KEY}, {"uuid": v1, "hmac_key": KEY},
                     {"hmac_key": KEY}, {"uuid": new_uuid()}, {"uuid": new_uuid(), "hmac_key": ""},
                     {"uuid": 12, "hmac_key": KEY}, {"uuid": new_uuid(), "hmac_key": KEY,
                                                     "third_party": "maybe"},
                     {"uuid": new_uuid(), "hmac_key": "k" * 257}):
            r = c.post("/api/v1/add/sensor/register", body)
            self.assertEqual(r.status, 400, body)
            self.assertEqual(set(r.json), {"status", "reason"})
        r = c.post("/api/v1/add/sensor/register", raw=b"{bad json",
                   headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 400)
        # a registered sensor is pending, with its key set and never shown
        r = admin.get("/api/v1/sensors?status=pending")
        self.assertEqual(len(r.json), 2)
        self.assertTrue(all(s["third_party"] for s in r.json))
        self.assertNotIn(KEY.encode(), b"".join(web.replies))

    # ---- sensors ----

    def test_sensor_lifecycle(self):
        web = self.web
        self.start()
        admin = admin_session(web)
        u = new_uuid()
        self.assertEqual(admin.post("/api/v1/add/sensor/register",
                                    {"uuid": u, "hmac_key": KEY, "description": "Honeypot A"}).status, 200)
        other = new_uuid()
        self.assertEqual(admin.post("/api/v1/add/sensor/register",
                                    {"uuid": other, "hmac_key": KEY, "mail": "ops@example.org"}).status, 200)
        r = admin.get("/api/v1/sensors/" + u)
        self.assertEqual(r.status, 200)
        reg = r.json["registration"]
        self.assertEqual(reg["state"], "pending")
        self.assertEqual(reg["key"], {"set": True, "bytes": len(KEY)})
        self.assertIsNone(r.json["statistics"])
        self.assertIsNone(r.json["blocked"])
        # list and filters
        self.assertEqual(len(admin.get("/api/v1/sensors").json), 2)
        self.assertEqual([s["uuid"] for s in admin.get("/api/v1/sensors?q=honeypot").json], [u])
        self.assertEqual([s["uuid"] for s in admin.get("/api/v1/sensors?q=EXAMPLE.org").json], [other])
        self.assertEqual(admin.get("/api/v1/sensors?q=" + u[:8]).json[0]["uuid"], u)
        self.assertEqual(admin.get("/api/v1/sensors?type=pcap").json, [])
        self.assertEqual(admin.get("/api/v1/sensors?status=bogus").status, 400)
        self.assertEqual(admin.get("/api/v1/sensors?type=bogus").status, 400)
        # pages: limit and cursor walk the whole list in uuid order, once each
        r = admin.get("/api/v1/sensors")
        self.assertIsNone(r.header("X-Next-Cursor"))  # both fit in the default page
        r = admin.get("/api/v1/sensors?limit=1")
        self.assertEqual((r.status, len(r.json)), (200, 1))
        first, cursor = r.json[0]["uuid"], r.header("X-Next-Cursor")
        self.assertEqual(first, min(u, other))
        self.assertEqual(cursor, max(u, other))
        r = admin.get("/api/v1/sensors?limit=1&cursor=" + cursor)
        self.assertEqual([s["uuid"] for s in r.json], [max(u, other)])
        self.assertIsNone(r.header("X-Next-Cursor"))
        r = admin.get("/api/v1/sensors?limit=1&q=honeypot")  # a filtered page ends with its match
        self.assertEqual(([s["uuid"] for s in r.json], r.header("X-Next-Cursor")), ([u], None))
        for bad in ("limit=0", "limit=1001", "limit=-1", "limit=x", "cursor=nope"):
            self.assertEqual(admin.get("/api/v1/sensors?" + bad).status, 400, bad)
        # approve / reject
        r = admin.post("/api/v1/sensors/%s/approve" % u)
        self.assertEqual((r.status, r.json["state"], r.json["changed"]), (200, "approved", True))
        r = admin.post("/api/v1/sensors/%s/approve" % u)
        self.assertEqual((r.status, r.json["changed"]), (200, False))
        self.assertEqual(admin.get("/api/v1/sensors?status=approved").json[0]["uuid"], u)
        self.assertEqual(admin.post("/api/v1/sensors/%s/reject" % other).json["state"], "rejected")
        # settings
        pin = "ab" * 32
        r = admin.put("/api/v1/sensors/" + u, {"description": "Honeypot B", "mail": "x@y.z",
                                                "max_payload": 4096, "rate_limit": 100000,
                                                "cert_pin": pin, "groups": ["dns", "tls"]})
        self.assertEqual(r.status, 200, r)
        s = admin.get("/api/v1/sensors/" + u).json["registration"]
        self.assertEqual(s["description"], "Honeypot B")
        self.assertEqual(s["settings"], {"max_payload": 4096, "rate_limit_bps": 100000,
                                         "cert_pin": pin, "groups": ["dns", "tls"]})
        self.assertEqual(s["state"], "approved")
        r = admin.put("/api/v1/sensors/" + u, {"cert_pin": None, "groups": []})
        self.assertEqual(r.json["registration"]["settings"]["cert_pin"], None)
        for bad in ({}, {"nonsense": 1}, {"max_payload": -1}, {"max_payload": "10"},
                    {"max_payload": 1 << 40}, {"cert_pin": "abc"}, {"groups": ["a b"]},
                    {"groups": ["g"] * 9}, {"description": "x" * 513}, {"mail": 5}):
            self.assertEqual(admin.put("/api/v1/sensors/" + u, bad).status, 400, bad)
        self.assertEqual(admin.put("/api/v1/sensors/" + new_uuid(), {"description": "x"}).status, 404)
        # key: in the body, never shown back
        r = admin.put("/api/v1/sensors/%s/key" % u, {"hmac_key": KEY2})
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json["key"], {"set": True, "bytes": len(KEY2)})
        self.assertEqual(admin.put("/api/v1/sensors/%s/key" % u, {"hmac_key": ""}).status, 400)
        self.assertEqual(admin.put("/api/v1/sensors/%s/key" % u, {}).status, 400)
        self.assertEqual(admin.put("/api/v1/sensors/%s/key" % new_uuid(), {"hmac_key": "k"}).status, 404)
        # block, unblock, kick
        r = admin.post("/api/v1/sensors/%s/block" % u, {"comment": "noisy", "expires_in": "2h"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["blocked"]["comment"], "noisy")
        self.assertIsNotNone(r.json["blocked"]["until"])
        self.assertTrue(admin.get("/api/v1/sensors/" + u).json["blocked"])
        self.assertTrue(admin.get("/api/v1/sensors?q=" + u).json[0]["blocked"])
        self.assertEqual(len(admin.get("/api/v1/blocklist/uuids").json), 1)
        self.assertEqual(admin.post("/api/v1/sensors/%s/block" % u, {"expires_in": "soon"}).status, 400)
        self.assertEqual(admin.post("/api/v1/sensors/%s/block" % new_uuid()).status, 404)
        self.assertEqual(admin.post("/api/v1/sensors/%s/unblock" % u).status, 200)
        self.assertEqual(admin.post("/api/v1/sensors/%s/unblock" % u).status, 404)
        r = admin.post("/api/v1/sensors/%s/kick" % u)
        self.assertEqual(r.status, 200)
        self.assertIsNotNone(admin.get("/api/v1/sensors/" + u).json["kick_requested"])
        self.assertEqual(admin.post("/api/v1/sensors/%s/kick" % new_uuid()).status, 404)
        # invalid uuids in the path
        for bad in ("nope", "1234", "g" * 32):
            self.assertEqual(admin.get("/api/v1/sensors/" + bad).status, 400)
            self.assertEqual(admin.post("/api/v1/sensors/%s/approve" % bad).status, 400)
        # errors view (nothing went wrong: empty)
        self.assertEqual(admin.get("/api/v1/sensors/monitoring/errors").json, [])
        # delete
        self.assertEqual(admin.delete("/api/v1/sensors/%s?stats=true" % u).status, 200)
        self.assertEqual(admin.delete("/api/v1/sensors/" + u).status, 404)
        self.assertEqual(admin.get("/api/v1/sensors/" + u).status, 404)
        self.assertEqual(admin.delete("/api/v1/sensors/%s?stats=maybe" % other).status, 400)
        # no reply ever held a key
        blob = b"".join(web.replies)
        self.assertNotIn(KEY.encode(), blob)
        self.assertNotIn(KEY2.encode(), blob)

    # ---- blocklists ----

    def test_blocklists(self):
        web = self.web
        self.start()
        admin = admin_session(web)
        r = admin.post("/api/v1/blocklist/ips", {"range": "10.0.0.0/8", "comment": "rfc1918"})
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["range"], "10.0.0.0/8")
        self.assertEqual(admin.post("/api/v1/blocklist/ips", {"range": "2001:db8::/32",
                                                               "expires_in": 600}).status, 201)
        self.assertEqual(admin.post("/api/v1/blocklist/ips", {"range": "192.0.2.5-192.0.2.9"}).status, 201)
        self.assertEqual(admin.post("/api/v1/blocklist/ips", {"range": "198.51.100.7"}).status, 201)
        lst = admin.get("/api/v1/blocklist/ips").json
        # ranges stay ranges: one entry each, never expanded
        self.assertEqual(sorted(e["range"] for e in lst),
                         sorted(["10.0.0.0/8", "2001:db8::/32", "192.0.2.5-192.0.2.9",
                                 "198.51.100.7/32"]))
        states = {e["range"]: e["state"] for e in lst}
        self.assertEqual(states["2001:db8::/32"], "temporary")
        self.assertEqual(states["10.0.0.0/8"], "permanent")
        for bad, why in (("10.0.0.1/8", "host bits set"), ("10.0.0.0/33", "prefix"),
                         ("nonsense", "not an IP address"), ("10.0.0.9-10.0.0.1", "after end")):
            r = admin.post("/api/v1/blocklist/ips", {"range": bad})
            self.assertEqual(r.status, 400, bad)
            self.assertIn(why, r.json["reason"])
        self.assertEqual(admin.post("/api/v1/blocklist/ips", {}).status, 400)
        self.assertEqual(admin.post("/api/v1/blocklist/ips", {"range": "10.0.0.0/8", "x": 1}).status, 400)
        self.assertEqual(admin.delete("/api/v1/blocklist/ips?range=10.0.0.0/8").status, 200)
        self.assertEqual(admin.delete("/api/v1/blocklist/ips?range=10.0.0.0/8").status, 404)
        self.assertEqual(admin.delete("/api/v1/blocklist/ips?range=10.0.0.1/8").status, 400)
        self.assertEqual(admin.delete("/api/v1/blocklist/ips").status, 400)
        # uuids: registered or not
        u = new_uuid()
        r = admin.post("/api/v1/blocklist/uuids", {"uuid": u, "comment": "scanner"})
        self.assertEqual(r.status, 201)
        self.assertEqual(r.json["uuid"], u)
        self.assertEqual(admin.post("/api/v1/blocklist/uuids", {"uuid": "zzz"}).status, 400)
        self.assertEqual([e["uuid"] for e in admin.get("/api/v1/blocklist/uuids").json], [u])
        self.assertEqual(admin.delete("/api/v1/blocklist/uuids/" + u).status, 200)
        self.assertEqual(admin.delete("/api/v1/blocklist/uuids/" + u).status, 404)
        self.assertEqual(admin.delete("/api/v1/blocklist/uuids/nope").status, 400)

    # ---- types ----

    def test_types(self):
        web = self.web
        self.start()
        admin = admin_session(web)
        r = admin.get("/api/v1/types")
        self.assertEqual(r.json["types"]["source"], "configuration")
        self.assertEqual([t["type"] for t in r.json["types"]["accepted"]], [1, 2, 3, 4, 8, 254])
        self.assertEqual(r.json["meta_types"]["source"], "configuration")
        r = admin.put("/api/v1/types", {"accepted": [1, "meta-header", "pcapng", 254]})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["types"]["source"], "store")
        self.assertEqual([t["type"] for t in r.json["types"]["accepted"]], [1, 2, 5, 254])
        for bad in ({"accepted": []}, {"accepted": [9]}, {"accepted": ["nope"]}, {"accepted": 1},
                    {}, {"accepted": [1], "more": 2}):
            self.assertEqual(admin.put("/api/v1/types", bad).status, 400, bad)
        # meta-types: the first change seeds the configuration's set
        r = admin.post("/api/v1/metatypes", {"name": "my-format"})
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["source"], "store")
        self.assertEqual(sorted(r.json["accepted"]),
                         sorted(["ja3-jl", "d4-telemetry", "fascia", "maltrail", "my-format"]))
        self.assertEqual(admin.post("/api/v1/metatypes", {"name": "my-format"}).status, 200)
        self.assertEqual(admin.post("/api/v1/metatypes", {"name": "has space"}).status, 400)
        self.assertEqual(admin.delete("/api/v1/metatypes/my-format").status, 200)
        self.assertEqual(admin.delete("/api/v1/metatypes/my-format").status, 404)
        for name in ("ja3-jl", "d4-telemetry", "fascia"):
            self.assertEqual(admin.delete("/api/v1/metatypes/" + name).status, 200)
        r = admin.delete("/api/v1/metatypes/maltrail")
        self.assertEqual(r.status, 409)
        self.assertEqual(admin.get("/api/v1/metatypes").json["accepted"], ["maltrail"])

    # ---- users ----

    def test_users(self):
        web = self.web
        self.start()
        admin = admin_session(web)
        r = admin.post("/api/v1/users", {"name": "alice", "role": "operator"})
        self.assertEqual(r.status, 201, r)
        pw = r.json["password"]
        self.assertTrue(r.json["must_change"])
        self.assertEqual(admin.post("/api/v1/users", {"name": "alice", "role": "operator"}).status, 409)
        for bad in ({"name": "a b", "role": "admin"}, {"name": "bob", "role": "king"},
                    {"name": "bob", "role": "admin", "password": "short"}, {"role": "admin"}):
            self.assertEqual(admin.post("/api/v1/users", bad).status, 400, bad)
        users = {u["name"]: u for u in admin.get("/api/v1/users").json}
        self.assertEqual(users["alice"]["role"], "operator")
        self.assertNotIn("password_hash", users["alice"])
        self.assertNotIn(b"$argon2", b"".join(web.replies))
        alice = Client(web)
        self.assertEqual(alice.login("alice", pw).status, 200)
        self.assertEqual(alice.get("/api/v1/sensors").status, 403)
        self.assertEqual(alice.post("/api/v1/password", {"old": pw, "new": NEW_PW}).status, 200)
        self.assertEqual(alice.get("/api/v1/sensors").status, 200)
        self.assertEqual(alice.get("/api/v1/users").status, 403)
        tok = make_token(admin, "alice")
        self.assertEqual(admin.delete("/api/v1/users/admin").status, 409)
        self.assertEqual(admin.delete("/api/v1/users/alice").status, 200)
        self.assertEqual(admin.delete("/api/v1/users/alice").status, 404)
        # her session and her token are gone with her
        self.assertEqual(alice.get("/api/v1/sensors").status, 401)
        self.assertEqual(Client(web, token=tok).get("/api/v1/sensors").status, 401)

    # ---- every role x every route ----

    def test_role_permissions(self):
        web = self.web
        self.start()
        admin = admin_session(web)
        clients = {"admin": Client(web, token=make_token(admin, "admin"))}
        for role in ("operator", "read-only", "sensor-register"):
            make_user(admin, "r-" + role, role)
            clients[role] = Client(web, token=make_token(admin, "r-" + role))
        bodies = {
            # a wrong old password: 403 from the check itself (counts as one login failure)
            "/api/v1/password": {"old": "x" * 12, "new": "y" * 12},
            "/api/v1/add/sensor/register": None,
            "/api/v1/sensors/{uuid}": {"description": "x"},
            "/api/v1/sensors/{uuid}/key": {"hmac_key": "k"},
            "/api/v1/blocklist/uuids": None,
            "/api/v1/blocklist/ips": {"range": "203.0.113.0/24"},
            "/api/v1/types": {"accepted": [1, 2]},
            "/api/v1/metatypes": {"name": "x-test"},
            "/api/v1/users": {"name": "bad name", "role": "admin"},
            "/api/v1/tokens": {"user": "nobody-here"},
        }
        for (method, path), allowed in sorted(PERMS.items()):
            for role, c in clients.items():
                p = concrete(path)
                body = bodies.get(path)
                if path == "/api/v1/add/sensor/register":
                    body = {"uuid": new_uuid(), "hmac_key": KEY}
                elif path == "/api/v1/blocklist/uuids":
                    body = {"uuid": new_uuid()}
                if method in ("GET", "DELETE"):
                    body = None
                if (method, path) == ("DELETE", "/api/v1/blocklist/ips"):
                    p += "?range=203.0.113.0/24"
                if path == "/api/v1/logout":
                    continue  # checked last, for every role
                r = c.request(method, p, body=body)
                ok = allowed == "*" or role in allowed
                if ok:
                    # allowed: whatever the route says (404 for the made-up names, 403 for a
                    # wrong old password), but never a refusal of the role or of the caller
                    self.assertNotIn(r.status, (401, 405), (role, method, path, r))
                    reason = r.json.get("reason", "") if isinstance(r.json, dict) else ""
                    self.assertFalse(reason.startswith("role "), (role, method, path, r))
                    self.assertNotEqual(reason, "no such route", (role, method, path, r))
                else:
                    self.assertEqual(r.status, 403, (role, method, path, r))
                    self.assertTrue(r.json["reason"].startswith("role " + role), r)
        for role, c in clients.items():
            self.assertEqual(c.post("/api/v1/logout").status, 200)

    # ---- bad requests ----

    def test_bad_requests(self):
        web = self.web
        self.start()
        admin = admin_session(web)
        ct = {"Content-Type": "application/json"}
        r = admin.post("/api/v1/blocklist/uuids", raw=b'{"uuid": ', headers=ct)
        self.assertEqual(r.status, 400)
        self.assertIn("invalid JSON", r.json["reason"])
        self.assertEqual(admin.post("/api/v1/blocklist/uuids", raw=b"[1, 2]", headers=ct).status, 400)
        self.assertEqual(admin.post("/api/v1/blocklist/uuids", raw=b'{"a":1,"a":2}', headers=ct).status, 400)
        r = admin.post("/api/v1/blocklist/uuids", raw=b'{"uuid": "x"}',
                       headers={"Content-Type": "text/plain"})
        self.assertEqual(r.status, 415)
        self.assertEqual(admin.post("/api/v1/blocklist/uuids", raw=b'{"uuid": "x"}').status, 415)
        # 1 MiB is the default limit
        big = b'{"uuid": "' + b"a" * (1536 * 1024) + b'"}'
        r = admin.post("/api/v1/blocklist/uuids", raw=big, headers=ct)
        self.assertEqual(r.status, 413)
        self.assertEqual(r.json["status"], "error")
        r = admin.post("/api/v1/blocklist/uuids", raw=b'{"uuid": "' + b"a" * 1000 + b'"}', headers=ct)
        self.assertEqual(r.status, 400)
        # the server is still fine afterwards
        self.assertEqual(admin.get("/api/v1/health").status, 200)
        r = admin.get("/api/v1/nothing-here")
        self.assertEqual(r.status, 404)
        self.assertEqual(r.json, {"status": "error", "reason": "no such route"})
        r = admin.request("PATCH", "/api/v1/sensors")
        self.assertEqual(r.status, 405)
        r = admin.delete("/api/v1/sensors")
        self.assertEqual(r.status, 405)
        self.assertIn("GET", r.header("Allow"))
        self.assertEqual(admin.get("/api/v1/stats/daily?from=2026-13-01").status, 400)
        self.assertEqual(admin.get("/api/v1/stats/daily?from=2026-02-30").status, 400)
        self.assertEqual(admin.get("/api/v1/stats/daily?from=2020-01-01&to=2026-01-01").status, 400)
        self.assertEqual(admin.get("/api/v1/stats/daily?uuid=bad").status, 400)
        self.assertEqual(Client(web).get("/api/v1/sensors").status, 401)
        self.assertEqual(Client(web).get("/api/v1/sensors").json["status"], "error")
        self.assertEqual(Client(web).login("admin", "x").status, 401)
        self.assertEqual(web.request("POST", "/api/v1/login", raw=b"user=admin").status, 415)
        self.assertEqual(web.request("POST", "/api/v1/login", {"user": "admin"}).status, 400)

    # ---- read routes, metrics, openapi ----

    def test_read_routes_and_metrics(self):
        web = self.web
        self.start()
        admin = admin_session(web)
        self.assertEqual(admin.post("/api/v1/add/sensor/register",
                                    {"uuid": new_uuid(), "hmac_key": KEY}).status, 200)
        r = admin.get("/api/v1/info")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.json["tls"])
        self.assertEqual(r.json["store"]["schema_version"], 1)
        r = admin.get("/api/v1/stats/totals")
        self.assertEqual(r.json["sensors"]["registered"], 1)
        self.assertEqual(r.json["sensors"]["pending"], 1)
        r = admin.get("/api/v1/stats/daily")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json["rows"], [])
        r = admin.get("/api/v1/stats/daily?from=2026-01-01&to=2026-01-31&uuid=" + new_uuid())
        self.assertEqual((r.json["from"], r.json["to"]), ("2026-01-01", "2026-01-31"))
        self.assertEqual(admin.get("/api/v1/queues").json, [])
        r = admin.get("/metrics")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.header("Content-Type").startswith("text/plain; version=0.0.4"))
        text = r.body.decode()
        sample = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*"'
                            r'(,[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*")*\})? -?[0-9]+(\.[0-9]+)?$')
        typed = set()
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                name, kind = line.split()[2:4]
                self.assertIn(kind, ("counter", "gauge"))
                typed.add(name)
            elif line.startswith("# HELP "):
                continue
            else:
                self.assertRegex(line, sample)
                self.assertIn(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0), typed)
        self.assertIn('d4_sensors_registered{state="pending"} 1', text)
        self.assertIn("d4_sensors_connected 0", text)
        self.assertIn('d4_packets_total{type="1",name="pcap"} 0', text)
        self.assertIn('d4_refusals_total{reason="hmac_mismatch"} 0', text)
        for m in ("d4_bytes_total", "d4_queue_memory_bytes", "d4_queue_dropped_total",
                  "d4_queue_restarts_total"):
            self.assertIn("# TYPE " + m, text)
        self.assertEqual(web.request("GET", "/metrics").status, 401)
        # a read-only token is enough
        make_user(admin, "prom", "read-only")
        self.assertEqual(Client(web, token=make_token(admin, "prom")).get("/metrics").status, 200)

    def test_openapi_lists_every_route(self):
        web = self.web
        self.start()
        admin = admin_session(web)
        r = web.request("GET", "/api/v1/openapi.json")  # public
        self.assertEqual(r.status, 200)
        doc = r.json
        self.assertTrue(doc["openapi"].startswith("3."))
        listed = {(m.upper(), p) for p, item in doc["paths"].items() for m in item}
        self.assertEqual(listed, set(ROUTES))
        for p, item in doc["paths"].items():
            for m, op in item.items():
                self.assertIn("responses", op)
                for seg in re.findall(r"\{(\w+)\}", p):
                    self.assertIn(seg, [x["name"] for x in op.get("parameters", [])])
        # and the server answers every one of them (never 404 "no such route" or 405)
        for method, path in ROUTES:
            if path in ("/api/v1/logout", "/api/v1/login", "/api/v1/password"):
                continue
            r = admin.request(method, concrete(path), body={} if method in ("POST", "PUT") else None)
            self.assertNotIn(r.status, (405,), (method, path))
            reason = r.json.get("reason") if isinstance(r.json, dict) else None
            self.assertNotEqual(reason, "no such route", (method, path))
        # and nothing beyond them
        self.assertEqual(admin.get("/api/v1/sensors/x/y/z").status, 404)

    def test_plain_http_cookie(self):
        self.web.cleanup()
        self.web = Web(plain_http=True)
        web = self.web
        rc, pw, _, _ = web.create_admin("root")
        self.start()
        r = Client(web).login("root", pw)
        self.assertEqual(r.status, 200)
        self.assertNotIn("Secure", r.header("Set-Cookie"))
        self.assertIsNone(r.header("Strict-Transport-Security"))


if __name__ == "__main__":
    if not os.path.exists(WEB):
        print("d4-web not built: skipped")
        sys.exit(77)
    unittest.main(verbosity=2)
