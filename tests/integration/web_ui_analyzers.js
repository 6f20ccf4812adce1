/*
 * web_ui_analyzers.js — the browser half of test_web_analyzers.py: in Debian's headless
 * Chromium (playwright-core), an admin searches passive DNS with the search box, follows an
 * address to the names that pointed at it, and looks a certificate up in the TLS views.
 * Screenshots go to D4_UI_ARTIFACTS; a page error, a console error or a request outside d4-web
 * fails the run (exit 1).
 *
 * Environment: D4_UI_URL, D4_UI_USER, D4_UI_PASSWORD, D4_UI_ARTIFACTS, D4_UI_PLAYWRIGHT,
 * D4_UI_PROFILE, D4_UI_NAME (a name in the passive DNS store), D4_UI_ADDR (an address of it),
 * D4_UI_CERT_SHA1 (a certificate in the TLS store), D4_UI_SNI (its SNI).
 */
'use strict';

const path = require('path');
const { chromium } = require(process.env.D4_UI_PLAYWRIGHT);

const env = (k) => {
	if (!process.env[k])
		throw new Error('missing ' + k);
	return process.env[k];
};
const URL = env('D4_UI_URL');
let shot = 0;

async function screenshot(page, name) {
	const file = path.join(env('D4_UI_ARTIFACTS'), String(++shot).padStart(2, '0') + '-' + name + '.png');
	await page.screenshot({ path: file, fullPage: true });
	process.stdout.write('step: screenshot ' + file + '\n');
}

async function main() {
	const problems = [];
	const context = await chromium.launchPersistentContext(env('D4_UI_PROFILE'), {
		executablePath: '/usr/bin/chromium', headless: true, ignoreHTTPSErrors: true,
		viewport: { width: 1280, height: 900 },
		args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
			'--disable-background-networking', '--disable-component-update', '--disable-sync'],
	});
	context.setDefaultTimeout(20000);
	const page = context.pages()[0] || await context.newPage();
	page.on('pageerror', (e) => problems.push('page error: ' + e.message));
	page.on('console', (m) => {
		if (m.type() === 'error' && !/Failed to load resource/.test(m.text()))
			problems.push('console error: ' + m.text());
	});
	page.on('request', (r) => {
		if (!r.url().startsWith(URL) && !r.url().startsWith('data:'))
			problems.push('request outside d4-web: ' + r.url());
	});
	try {
		await page.goto(URL + '/');
		await page.waitForSelector('#login-form');
		await page.fill('#login-user', env('D4_UI_USER'));
		await page.fill('#login-password', env('D4_UI_PASSWORD'));
		await page.click('#login-form button[type=submit]');
		await page.waitForSelector('main[data-view=viewDashboard]');

		// passive DNS: the search box, then an address to the names that pointed at it
		await page.click('#nav a[href="#/pdns"]');
		await page.waitForSelector('#pdns-form');
		await page.fill('#pdns-q', env('D4_UI_NAME'));
		await page.click('#pdns-form button[type=submit]');
		await page.waitForSelector(`#pdns-results tr[data-rrname="${env('D4_UI_NAME')}"]`);
		await screenshot(page, 'pdns-name');
		await page.click(`#pdns-results a[href="#/pdns/query/${env('D4_UI_ADDR')}"]`);
		await page.waitForFunction((addr) => location.hash === '#/pdns/query/' + addr &&
			document.querySelectorAll('#pdns-results tr[data-rrname]').length > 0, env('D4_UI_ADDR'));
		await screenshot(page, 'pdns-address');

		// TLS: a certificate by its SHA-1, its facts and sessions; then its SNI pivot
		await page.click('#nav a[href="#/tls"]');
		await page.waitForSelector('#tls-form');
		await page.waitForSelector('[data-card=sessions]');
		await page.selectOption('#tls-kind', 'cert');
		await page.fill('#tls-value', env('D4_UI_CERT_SHA1'));
		await page.click('#tls-form button[type=submit]');
		await page.waitForFunction((sha1) => document.querySelector('#tls-pivot') &&
			document.querySelector('#tls-pivot').textContent.includes(sha1), env('D4_UI_CERT_SHA1'));
		await page.waitForSelector(`a[href="#/tls/sni/${env('D4_UI_SNI')}"]`);
		await screenshot(page, 'tls-certificate');
		await page.click(`a[href="#/tls/sni/${env('D4_UI_SNI')}"] >> nth=0`);
		await page.waitForFunction(() => document.querySelectorAll('tr[data-kind]').length > 0);
		await page.goto(URL + '/#/tls-weak');
		await page.waitForSelector('#tls-findings');
		await screenshot(page, 'tls-weak-keys');
	} catch (e) {
		await screenshot(page, 'failure').catch(() => {});
		throw e;
	} finally {
		await context.close();
	}
	for (const p of problems)
		process.stdout.write('problem: ' + p + '\n');
	process.exit(problems.length ? 1 : 0);
}

main().catch((e) => {
	process.stdout.write('FAILED: ' + (e.stack || e) + '\n');
	process.exit(1);
});
