#!/usr/bin/env python3
"""The REST routes of analyzer queue control (docs/web.md): POST /api/v1/queues/{name}/pause,
/resume and /empty, and what GET /api/v1/queues and /metrics show of it.

A real d4-dispatch (with d4-ingest, ingestlib.Server) writes the queue's counters into the
store a d4-web serves (same data directory), so that the routes find a known queue and the
requests are carried out:

- roles: admin and operator may, read-only and sensor-register get 403, no credentials 401;
- a session needs its CSRF token (403 without);
- an unknown queue is 404 and leaves no record; a name that is not one is 400; a body with
  fields is 400;
- pause: {"status":"ok", "paused":true, "when_full":"pause", "warning": ...}; dispatch logs
  it, GET shows paused (dispatch's report) and control.paused (the request), /metrics shows
  d4_queue_paused{queue="q"} 1;
- empty: numbered requests, control.empty_applied follows; resume: paused false again.

test_ui does the same through the web UI in headless Chromium (playwright-core, as
test_web_ui.py installs it under <build>/web-ui-node; skipped when that, node or
/usr/bin/chromium is missing): an operator sees Pause and Empty, pauses (accepting the
confirmation, which names the consequence), sees the `paused` badge, empties (the confirmation
says what is discarded) and resumes; a read-only user sees the queue and no button.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from ingestlib import BIN, Server, wait_for, write_analyzer  # noqa: E402
from weblib import Client, Web  # noqa: E402

NEW_PW = "a-new-password-123"


PLAYWRIGHT = os.path.join(os.path.abspath(os.path.join(BIN, "..")), "web-ui-node",
                          "node_modules", "playwright-core")
CHROMIUM = "/usr/bin/chromium"

UI_DRIVER = r"""
'use strict';
const { chromium } = require(process.env.PW);
const URL = process.env.URL;
async function login(page, user) {
	await page.goto(URL + '/');
	await page.waitForSelector('#login-form');
	await page.fill('#login-user', user);
	await page.fill('#login-password', process.env.PASSWORD);
	await page.click('#login-form button[type=submit]');
	// a password an admin set must be changed at the first login
	await page.waitForSelector('#password-form, main[data-view=viewDashboard]');
	if (await page.$('#password-form')) {
		await page.fill('#pw-old', process.env.PASSWORD);
		await page.fill('#pw-new', process.env.PASSWORD + '-ui');
		await page.fill('#pw-confirm', process.env.PASSWORD + '-ui');
		await page.click('#password-form button[type=submit]');
		await page.waitForSelector('main[data-view=viewDashboard]');
	}
	await page.goto(URL + '/#/queues');
}
const row = 'tr[data-queue="q"]';
const rowText = (page) => page.$eval(row, (r) => r.textContent);
async function waitRow(page, pred, what) {
	for (let i = 0; i < 300; i++) {
		if (pred(await rowText(page)))
			return;
		await page.waitForTimeout(100);
	}
	throw new Error('timed out waiting for ' + what + ': ' + await rowText(page));
}
(async () => {
	const problems = [], dialogs = [];
	const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true,
		args: ['--no-sandbox', '--disable-gpu'] });
	const context = await browser.newContext({ ignoreHTTPSErrors: true });
	context.setDefaultTimeout(20000);
	const page = await context.newPage();
	page.on('pageerror', (e) => problems.push('page error: ' + e.message));
	page.on('console', (m) => {
		if (m.type() === 'error' && !/Failed to load resource/.test(m.text()))
			problems.push('console error: ' + m.text());
	});
	page.on('dialog', (d) => { dialogs.push(d.message()); d.accept(); });
	try {
		await login(page, 'u-operator');
		await page.waitForSelector(row + ' button[data-action=queue-pause]');
		await page.waitForSelector(row + ' button[data-action=queue-empty]');
		await page.click(row + ' button[data-action=queue-pause]');
		await page.waitForSelector(row + ' button[data-action=queue-resume]');
		await waitRow(page, (t) => t.includes('paused') && !t.includes('pausing'), 'paused');
		await page.click(row + ' button[data-action=queue-empty]');
		await waitRow(page, (t) => !t.includes('emptying'), 'the empty carried out');
		await page.click(row + ' button[data-action=queue-resume]');
		await page.waitForSelector(row + ' button[data-action=queue-pause]');
		await waitRow(page, (t) => !t.includes('paused') && !t.includes('resuming'), 'resumed');
		await page.click('#logout');
		await login(page, 'u-read-only');
		await page.waitForSelector(row);
		const buttons = await page.$$(row + ' button');
		if (buttons.length !== 0)
			throw new Error('read-only sees ' + buttons.length + ' buttons');
	} catch (e) {
		problems.push(e.message);
		problems.push(await page.$eval('main', (m) => m.innerHTML.slice(0, 3000)).catch(() => 'no main'));
	}
	await browser.close();
	process.stdout.write(JSON.stringify({ problems, dialogs }) + '\n');
})();
"""


def start_all():
    """ingest + dispatch with queue q, and d4-web on the same data directory."""
    srv = Server(dispatch_conf="")
    analyzer = write_analyzer(srv.dir)
    out = os.path.join(srv.dir, "q")
    os.makedirs(out)
    srv.write_conf("[queue.q]\ncommand = %s\ntypes = 3\nwhen_full = pause\n"
                   "[queue.q.param]\nout = %s\n" % (analyzer, out))
    return srv, Web(sets=["d4.data_dir=" + srv.data])


def users(test, web):
    """The first admin (a session) and one token-holding user per other role."""
    rc, pw, _, err = web.create_admin("admin")
    test.assertEqual(rc, 0, err)
    web.start()
    admin = Client(web)
    test.assertEqual(admin.login("admin", pw).status, 200)
    test.assertEqual(admin.post("/api/v1/password", {"old": pw, "new": NEW_PW}).status, 200)
    clients = {"admin": admin}
    for role in ("operator", "read-only", "sensor-register"):
        r = admin.post("/api/v1/users", {"name": "u-" + role, "role": role, "password": NEW_PW})
        test.assertEqual(r.status, 201, r)
        r = admin.post("/api/v1/tokens", {"user": "u-" + role})
        test.assertEqual(r.status, 201, r)
        clients[role] = Client(web, token=r.json["token"])
    return clients


class WebQueues(unittest.TestCase):
    def test_ui(self):
        if shutil.which("node") is None or not os.access(CHROMIUM, os.X_OK) or \
                not os.path.isdir(PLAYWRIGHT):
            self.skipTest("node, %s or playwright-core (%s) missing" % (CHROMIUM, PLAYWRIGHT))
        srv, web = start_all()
        with srv, web:
            clients = users(self, web)
            admin = clients["admin"]
            wait_for(lambda: [x for x in admin.get("/api/v1/queues").json if x["name"] == "q"],
                     what="the queue in GET /queues")
            with tempfile.NamedTemporaryFile("w", suffix=".js", delete=False) as f:
                f.write(UI_DRIVER)
            try:
                p = subprocess.run(["node", f.name], capture_output=True, text=True, timeout=240,
                                   env=dict(os.environ, PW=PLAYWRIGHT, PASSWORD=NEW_PW,
                                            URL="https://127.0.0.1:%d" % web.port))
            finally:
                os.unlink(f.name)
            self.assertEqual(p.returncode, 0, p.stderr[-3000:])
            result = json.loads(p.stdout.strip().splitlines()[-1])
            self.assertEqual(result["problems"], [], "\n".join(result["problems"]))
            pause_dialog, empty_dialog = result["dialogs"]
            self.assertIn("pauses ingest", pause_dialog)
            self.assertIn("discarded", empty_dialog)
            log = srv.read_dispatch_log()
            self.assertRegex(log, r"queue-paused queue=q by=u-operator")
            self.assertRegex(log, r"queue-emptied queue=q records=0 bytes=0 request=1 by=u-operator")
            self.assertRegex(log, r"queue-resumed queue=q by=u-operator")

    def test_routes(self):
        srv, web = start_all()
        with srv, web:
            clients = users(self, web)
            admin = clients["admin"]

            q = wait_for(lambda: [x for x in admin.get("/api/v1/queues").json
                                  if x["name"] == "q"], what="the queue in GET /queues")[0]
            self.assertFalse(q["paused"])
            self.assertEqual(q["emptied"], 0)
            self.assertEqual(q["when_full"], "pause")
            self.assertFalse(q["backpressure"])
            self.assertIsNone(q["control"])

            # who may
            for action in ("pause", "resume", "empty"):
                path = "/api/v1/queues/q/" + action
                for role in ("read-only", "sensor-register"):
                    r = clients[role].post(path)
                    self.assertEqual(r.status, 403, (role, action, r))
                self.assertEqual(web.request("POST", path).status, 401)
                # a session without its CSRF token
                self.assertEqual(admin.post(path, csrf=False).status, 403)
                # GET is not a route
                self.assertIn(admin.get(path).status, (404, 405))
            r = admin.get("/api/v1/queues")
            self.assertIsNone([x for x in r.json if x["name"] == "q"][0]["control"],
                              "a refused request left a record")

            # unknown, malformed
            r = clients["operator"].post("/api/v1/queues/nope/pause")
            self.assertEqual(r.status, 404, r)
            self.assertEqual(r.json["status"], "error")
            self.assertEqual(admin.post("/api/v1/queues/" + "x" * 65 + "/pause").status, 400)
            self.assertEqual(admin.post("/api/v1/queues/q/pause", {"force": True}).status, 400)

            # pause (operator, token)
            mark = len(srv.read_dispatch_log())
            r = clients["operator"].post("/api/v1/queues/q/pause")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json["status"], "ok")
            self.assertEqual(r.json["queue"], "q")
            self.assertTrue(r.json["paused"])
            self.assertEqual(r.json["when_full"], "pause")
            self.assertIn("pause ingest", r.json["warning"])
            srv.wait_dispatch_log(r"queue-paused queue=q by=u-operator", start=mark)
            q = wait_for(lambda: [x for x in admin.get("/api/v1/queues").json
                                  if x["name"] == "q" and x["paused"]],
                         what="paused in GET /queues")[0]
            self.assertTrue(q["control"]["paused"])
            self.assertEqual(q["control"]["by"], "u-operator")
            metrics = wait_for(lambda: (lambda r: r.body.decode() if r.status == 200 and
                                        'd4_queue_paused{queue="q"} 1' in r.body.decode()
                                        else None)(clients["read-only"].get("/metrics")),
                               what="the paused gauge")
            self.assertIn('d4_queue_emptied_total{queue="q"} 0', metrics)
            self.assertIn("# TYPE d4_queue_paused gauge", metrics)
            self.assertIn("# TYPE d4_queue_emptied_total counter", metrics)

            # empty (admin, session): numbered, carried out
            r = admin.post("/api/v1/queues/q/empty")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json["status"], "ok")
            self.assertEqual(r.json["empty_request"], 1)
            r = admin.post("/api/v1/queues/q/empty", {})
            self.assertEqual(r.json["empty_request"], 2)
            wait_for(lambda: [x for x in admin.get("/api/v1/queues").json
                              if x["name"] == "q" and x["control"]["empty_applied"] == 2],
                     what="empty request 2 carried out")
            srv.wait_dispatch_log(r"queue-emptied queue=q records=0 bytes=0 request=2", start=mark)

            # resume
            r = admin.post("/api/v1/queues/q/resume")
            self.assertEqual(r.status, 200, r)
            self.assertFalse(r.json["paused"])
            self.assertNotIn("warning", r.json)
            wait_for(lambda: [x for x in admin.get("/api/v1/queues").json
                              if x["name"] == "q" and not x["paused"]], what="resumed")
            srv.wait_dispatch_log(r"queue-resumed queue=q by=admin", start=mark)

            # the OpenAPI document lists the routes
            doc = json.loads(web.request("GET", "/api/v1/openapi.json").body)
            for action in ("pause", "resume", "empty"):
                self.assertIn("post", doc["paths"]["/api/v1/queues/{name}/" + action])


if __name__ == "__main__":
    unittest.main()
