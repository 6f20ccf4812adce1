/*
 * web_ui_driver.js — the browser half of test_web_ui.py: Debian's Chromium, headless, driven
 * by playwright-core (no browser download), clicking through d4-web's UI like an operator.
 *
 * The Python half starts the servers and does what a browser cannot (register a sensor through
 * the REST API, stream D4 frames into d4-ingest). The two talk over stdin/stdout: this script
 * prints "NEED <what> <json>" and waits for one JSON line in reply; every other line it prints
 * is a log line. A screenshot is taken at each step into D4_UI_ARTIFACTS. Any page error,
 * console error (a CSP violation, a script exception) or failed step exits non-zero.
 *
 * Environment: D4_UI_URL, D4_UI_USER, D4_UI_PASSWORD (the first, generated one),
 * D4_UI_NEW_PASSWORD, D4_UI_ARTIFACTS, D4_UI_PLAYWRIGHT (the playwright-core directory),
 * D4_UI_PROFILE (an empty directory for the browser profile).
 */
'use strict';

const path = require('path');
const readline = require('readline');
const { chromium } = require(process.env.D4_UI_PLAYWRIGHT);

const env = (k) => {
	if (!process.env[k])
		throw new Error('missing ' + k);
	return process.env[k];
};
const URL = env('D4_UI_URL');
const OUT = env('D4_UI_ARTIFACTS');

const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();

/* Asks the Python half for something; returns its JSON reply. */
async function need(what, data) {
	process.stdout.write('NEED ' + what + ' ' + JSON.stringify(data || {}) + '\n');
	const { value, done } = await lines.next();
	if (done)
		throw new Error('the test closed stdin while this script waited for ' + what);
	const reply = JSON.parse(value);
	if (reply.error)
		throw new Error(what + ': ' + reply.error);
	return reply;
}

function log(msg) {
	process.stdout.write('step: ' + msg + '\n');
}

let shot = 0;
let currentPage = null; // for a screenshot of the failure
async function screenshot(page, name) {
	const file = path.join(OUT, String(++shot).padStart(2, '0') + '-' + name + '.png');
	await page.screenshot({ path: file, fullPage: true });
	log('screenshot ' + file);
}

async function main() {
	const problems = [];
	const context = await chromium.launchPersistentContext(env('D4_UI_PROFILE'), {
		executablePath: '/usr/bin/chromium',
		headless: true,
		ignoreHTTPSErrors: true, // d4-web's self-signed test certificate
		viewport: { width: 1280, height: 900 },
		args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
			'--disable-background-networking', '--disable-component-update', '--disable-sync'],
	});
	context.setDefaultTimeout(20000);
	const page = context.pages()[0] || await context.newPage();
	currentPage = page;
	page.on('pageerror', (e) => problems.push('page error: ' + e.message));
	page.on('console', (m) => {
		// an API answer of 4xx is logged by Chromium as a failed resource: those are expected
		if (m.type() === 'error' && !/Failed to load resource/.test(m.text()))
			problems.push('console error: ' + m.text());
	});
	// the UI must not fetch anything from anywhere else
	page.on('request', (r) => {
		if (!r.url().startsWith(URL) && !r.url().startsWith('data:'))
			problems.push('request outside d4-web: ' + r.url());
	});

	// 1. log in with the generated password: the UI leads to the password change
	await page.goto(URL + '/');
	await page.waitForSelector('#login-form');
	await screenshot(page, 'login');
	await page.fill('#login-user', env('D4_UI_USER'));
	await page.fill('#login-password', env('D4_UI_PASSWORD'));
	await page.click('#login-form button[type=submit]');
	await page.waitForSelector('#password-form');
	await screenshot(page, 'must-change-password');

	// 2. change it; the dashboard follows
	await page.fill('#pw-old', env('D4_UI_PASSWORD'));
	await page.fill('#pw-new', env('D4_UI_NEW_PASSWORD'));
	await page.fill('#pw-confirm', env('D4_UI_NEW_PASSWORD'));
	await page.click('#password-form button[type=submit]');
	await page.waitForSelector('main[data-view=viewDashboard] [data-card=connected]');
	log('password changed, dashboard shown');
	await screenshot(page, 'dashboard-empty');

	// 3. a sensor registers through the REST API (d4-core's call): pending
	const { uuid } = await need('register');
	await page.click('#nav a[href="#/pending"]');
	const row = `tr[data-uuid="${uuid}"]`;
	await page.waitForSelector(row);
	await screenshot(page, 'pending');
	await page.click(`${row} button[data-action=approve]`);
	await page.waitForSelector(row, { state: 'detached' });
	log('approved ' + uuid);
	await screenshot(page, 'approved');

	// 4. it streams: connected, with a chart of its traffic by type
	await need('stream', { uuid });
	await page.goto(URL + '/#/sensor/' + uuid);
	await page.waitForSelector('#sensor-badges .badge.connected');
	// bars of the 7-day chart, one colour per type (stacked)
	await page.waitForFunction(() => document.querySelectorAll('svg.chart rect.bar[data-series]').length >= 2);
	const series = await page.$$eval('svg.chart rect.bar[data-series]',
		(rs) => [...new Set(rs.map((r) => r.getAttribute('data-series')))]);
	log('chart series: ' + series.join(', '));
	if (!series.includes('log') || !series.includes('passivedns'))
		throw new Error('the chart lacks a type: ' + series.join(', '));
	await screenshot(page, 'sensor-connected-chart');

	// the dashboard: connected 1, throughput measured over a few polls
	await page.click('#nav a[href="#/"]');
	await page.waitForFunction(() => {
		const c = document.querySelector('[data-card=connected]');
		return c && c.textContent === '1';
	});
	await need('stream-more', { uuid });
	await page.waitForFunction(() => document.querySelectorAll('svg.chart path.line').length >= 2,
		null, { timeout: 15000 });
	await page.waitForSelector('text=Packets per type today');
	// a throughput measured between two polls while the sensor streams
	await page.waitForFunction(() => {
		const c = document.querySelector('[data-card=pps]');
		return c && Number(c.textContent) > 0 &&
			![...document.querySelectorAll('svg.chart text.empty')].some((t) => /measuring/.test(t.textContent));
	}, null, { timeout: 15000 });
	await screenshot(page, 'dashboard-live');

	// 5. block it from its page
	await page.goto(URL + '/#/sensor/' + uuid);
	await page.waitForSelector('button[data-action=block]');
	await page.fill('#block-comment', 'ui test');
	await page.click('button[data-action=block]');
	await page.waitForSelector('#sensor-badges .badge.blocked');
	log('blocked ' + uuid);
	await screenshot(page, 'sensor-blocked');
	await need('check-blocked', { uuid });

	// 6. the other views, for the record
	for (const [hash, name, sel] of [['#/sensors', 'sensors', `tr[data-uuid="${uuid}"]`],
		['#/blocklists', 'blocklists', 'text=ui test'],
		['#/types', 'types', '#types-form'], ['#/queues', 'queues', 'h2'],
		['#/users', 'users', '#token-form']]) {
		await page.goto(URL + '/' + hash);
		await page.waitForSelector(sel);
		await screenshot(page, name);
	}
	// a new token is shown once
	await page.fill('#token-description', 'ui test token');
	await page.click('#token-form button[type=submit]');
	await page.waitForSelector('#secret-value');
	const token = await page.inputValue('#secret-value');
	if (!/^\S{20,}$/.test(token))
		throw new Error('no token shown: ' + token);
	await screenshot(page, 'token-once');
	await need('check-token', { token });

	// 7. log out: back to the login form, and the API refuses the old session
	await page.click('#logout');
	await page.waitForSelector('#login-form');
	await screenshot(page, 'logged-out');

	// 8. the other roles: read-only sees everything and can change nothing; sensor-register
	// sees nothing
	const login = async (user, password) => {
		await page.goto(URL + '/#/login');
		await page.waitForSelector('#login-form');
		await page.fill('#login-user', user);
		await page.fill('#login-password', password);
		await page.click('#login-form button[type=submit]');
		// a password set by an admin must be changed first
		await page.waitForFunction(() => document.querySelector('#password-form') ||
			document.querySelector('main[data-view=viewDashboard] [data-card=connected]') ||
			/Sensor registration only/.test(document.body.textContent));
		if (await page.$('#password-form')) {
			await page.fill('#pw-old', password);
			await page.fill('#pw-new', password + '-mine');
			await page.fill('#pw-confirm', password + '-mine');
			await page.click('#password-form button[type=submit]');
			await page.waitForSelector('#password-form', { state: 'detached' });
		}
	};
	const viewer = await need('user', { role: 'read-only' });
	await login(viewer.name, viewer.password);
	await page.waitForSelector('main[data-view=viewDashboard] [data-card=connected]');
	await page.goto(URL + '/#/sensor/' + uuid);
	await page.waitForSelector('#sensor-badges .badge.blocked');
	for (const action of ['block', 'unblock', 'kick', 'approve', 'reject', 'delete'])
		if (await page.$(`button[data-action=${action}]`))
			throw new Error('read-only is offered the button ' + action);
	if (await page.isVisible('#nav a[href="#/users"]'))
		throw new Error('read-only is offered the users view');
	await page.goto(URL + '/#/sensors');
	await page.waitForSelector(`tr[data-uuid="${uuid}"]`);
	await screenshot(page, 'read-only-sensors');
	log('read-only: views without actions');
	await page.click('#logout');
	await page.waitForSelector('#login-form');
	const registrar = await need('user', { role: 'sensor-register' });
	await login(registrar.name, registrar.password);
	await page.waitForSelector('text=Sensor registration only');
	if (await page.isVisible('#nav'))
		throw new Error('sensor-register is offered the navigation');
	await screenshot(page, 'sensor-register');
	log('sensor-register: nothing to see');

	await context.close();
	for (const p of problems)
		process.stdout.write('problem: ' + p + '\n');
	if (!problems.length)
		log('done');
	// stdin (the Python half) is still open: leave explicitly
	process.exit(problems.length ? 1 : 0);
}

main().catch(async (e) => {
	process.stdout.write('FAILED: ' + (e.stack || e) + '\n');
	if (currentPage)
		await screenshot(currentPage, 'failure').catch(() => {});
	process.exit(1);
});
