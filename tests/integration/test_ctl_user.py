#!/usr/bin/env python3
"""d4ctl user ...: accounts and tokens made at a shell work in d4-web.

A user added with d4ctl logs in to the API with the printed password (and must change it
first), a password given on stdin works at once, a token printed by d4ctl authenticates in
both Authorization forms, a role change applies, a revoked token and a deleted user no
longer do. Nothing secret is printed twice: list and tokens never show a password or a token.
"""
import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from weblib import Client, Web  # noqa: E402

BIN = os.environ.get("D4_BIN", os.path.join(os.path.dirname(__file__), "../../build/bin"))


class CtlUsers(unittest.TestCase):
    def test_users_and_tokens_work_in_web(self):
        with Web() as web:
            def ctl(*args, stdin=None, check=True):
                cmd = [os.path.join(BIN, "d4ctl")]
                for s in web.sets:
                    cmd += ["--set", s]
                p = subprocess.run(cmd + list(args), input=stdin, capture_output=True, text=True,
                                   timeout=60)
                if check and p.returncode != 0:
                    raise AssertionError("%s: %d %s" % (args, p.returncode, p.stderr))
                return p

            web.start()
            out = ctl("user", "add", "alice", "--role", "operator").stdout
            pw = re.search(r"^password: (\S+)$", out, re.M).group(1)
            ctl("user", "add", "bob", "--password-stdin", stdin="bob's long password\n")
            tok = re.search(r"token for alice: (d4_\S+)", ctl("user", "token", "alice").stdout).group(1)

            listing = ctl("user", "list").stdout + ctl("user", "tokens").stdout
            self.assertNotIn(pw, listing)
            self.assertNotIn(tok, listing)
            self.assertIn("must-change", listing)
            self.assertEqual(ctl("user", "add", "alice", check=False).returncode, 1)

            alice = Client(web)
            self.assertEqual(alice.login("alice", pw).status, 200)
            # a generated password must be changed before anything else
            self.assertEqual(alice.get("/api/v1/sensors").status, 403)
            self.assertEqual(alice.post("/api/v1/password",
                                        {"old": pw, "new": "alice's own password"}).status, 200)
            self.assertEqual(alice.get("/api/v1/sensors").status, 200)
            bob = Client(web)
            self.assertEqual(bob.login("bob", "bob's long password").status, 200)
            self.assertEqual(bob.get("/api/v1/sensors").status, 200)
            self.assertEqual(bob.post("/api/v1/types", {}).status in (403, 405), True)

            for bearer in (True, False):
                c = Client(web, token=tok, bearer=bearer)
                self.assertEqual(c.get("/api/v1/sensors").status, 200)
            # role change: alice (operator) becomes read-only, and may no longer register
            ctl("user", "role", "alice", "read-only")
            c = Client(web, token=tok)
            r = c.post("/api/v1/add/sensor/register",
                       {"uuid": "6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b", "hmac_key": "k"})
            self.assertEqual(r.status, 403)
            prefix = ctl("user", "tokens", "alice").stdout.split()[0]
            ctl("user", "revoke", prefix)
            self.assertEqual(Client(web, token=tok).get("/api/v1/sensors").status, 401)
            ctl("user", "del", "bob")
            self.assertNotEqual(Client(web).login("bob", "bob's long password").status, 200)


if __name__ == "__main__":
    unittest.main(verbosity=2)
