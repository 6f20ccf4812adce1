/*
 * app.js — the D4 web UI: a hash router (#/sensors, #/sensor/<uuid>, ...) and one function
 * per view, each drawing into <main> from the REST API (api.js) with charts (chart.js).
 *
 * DOM nodes are built with h() and text nodes only, never innerHTML: a sensor's description
 * or an error text cannot inject markup. Views that show live state poll (dashboard 3 s,
 * sensor page and queues 5 s); a view's timer and late replies are dropped when the user
 * navigates away (viewGen). Buttons a role may not use are not drawn (the API refuses them
 * anyway). Secrets typed into forms (passwords, HMAC keys) are sent in request bodies and
 * the fields are cleared; a new token or generated password is shown once, as the API
 * returns it once.
 */
'use strict';

(function () {
const D4 = window.D4;
const main = document.getElementById('main');
const fmt = D4.fmt;

/* ---- DOM helpers ---- */

/* h('tag', {class, onclick: fn, ...}, children...): an element; strings become text. */
function h(tag, attrs, ...children) {
	const e = document.createElement(tag);
	for (const [k, v] of Object.entries(attrs || {})) {
		if (v === null || v === undefined || v === false)
			continue;
		if (k.startsWith('on') && typeof v === 'function')
			e.addEventListener(k.slice(2), v);
		else if (k === 'class')
			e.className = v;
		else if (k === 'value')
			e.value = v;
		else
			e.setAttribute(k, v === true ? '' : v);
	}
	for (const c of children.flat())
		if (c !== null && c !== undefined && c !== false)
			e.append(c instanceof Node ? c : document.createTextNode(String(c)));
	return e;
}

/* Replaces parent's children; nested arrays are flattened, null/false skipped (conditionals). */
function fill(parent, ...nodes) {
	parent.replaceChildren(...nodes.flat(Infinity).filter((n) => n !== null && n !== undefined && n !== false));
}

function render(...nodes) {
	fill(main, ...nodes);
}

let flashTimer = null;
let flashAt = 0;
function flash(text, kind) {
	flashAt = Date.now();
	const f = document.getElementById('flash');
	f.textContent = text;
	f.className = kind || 'ok';
	f.hidden = false;
	clearTimeout(flashTimer);
	flashTimer = setTimeout(() => { f.hidden = true; }, kind === 'error' ? 8000 : 4000);
}

function errorBox(err) {
	return h('p', { class: 'error' }, err.message || String(err));
}

/* "2026-11-25T10:41:01Z" -> "2026-11-25 10:41:01 UTC (5 min ago)" */
function when(iso) {
	if (!iso)
		return '—';
	const t = Date.parse(iso);
	const s = Math.round((Date.now() - t) / 1000);
	let ago = '';
	if (!isNaN(s) && s >= 0) {
		if (s < 60) ago = s + ' s ago';
		else if (s < 3600) ago = Math.floor(s / 60) + ' min ago';
		else if (s < 86400) ago = Math.floor(s / 3600) + ' h ago';
		else ago = Math.floor(s / 86400) + ' d ago';
	}
	return iso.replace('T', ' ').replace('Z', ' UTC') + (ago ? ' (' + ago + ')' : '');
}

function badge(text, kind) {
	return h('span', { class: 'badge ' + (kind || text) }, text);
}

function sensorStatus(s) {
	const out = [badge(s.state)];
	if (s.blocked)
		out.push(' ', badge('blocked'));
	if (s.active_sessions > 0)
		out.push(' ', badge('connected'));
	return out;
}

function table(headers, rows, empty) {
	if (rows.length === 0)
		return h('p', { class: 'muted' }, empty || 'none');
	return h('table', {},
		h('thead', {}, h('tr', {}, headers.map((x) => h('th', {}, x)))),
		h('tbody', {}, rows));
}

/* A form whose submit runs fn(values); errors are shown under it, the button is busy meanwhile. */
function form(attrs, fields, label, fn) {
	const msg = h('p', { class: 'form-msg', role: 'alert' });
	const button = h('button', { type: 'submit' }, label);
	const f = h('form', attrs, fields, h('div', { class: 'actions' }, button), msg);
	f.addEventListener('submit', async (ev) => {
		ev.preventDefault();
		msg.textContent = '';
		button.disabled = true;
		try {
			await fn(f);
		} catch (e) {
			msg.textContent = e.message;
		} finally {
			button.disabled = false;
		}
	});
	return f;
}

function field(label, input) {
	return h('label', { class: 'field' }, h('span', {}, label), input);
}

/* A button that runs an API action, then refresh(); asks first when confirmText is given. */
function actionButton(label, fn, opts) {
	opts = opts || {};
	const b = h('button', { type: 'button', class: opts.class || '', 'data-action': opts.action });
	b.textContent = label;
	b.addEventListener('click', async () => {
		if (opts.confirm && !window.confirm(opts.confirm))
			return;
		b.disabled = true;
		try {
			await fn();
			if (opts.done)
				flash(opts.done);
			if (opts.refresh)
				await opts.refresh();
		} catch (e) {
			flash(label + ': ' + e.message, 'error');
		} finally {
			b.disabled = false;
		}
	});
	return b;
}

function enc(s) {
	return encodeURIComponent(s);
}

/* ---- the router and polling ---- */

let viewGen = 0;
let timers = [];

/* Runs fn now and every ms while the view is shown; skips a tick while one is running. */
function poll(fn, ms) {
	const gen = viewGen;
	let busy = false;
	const tick = async () => {
		if (busy || gen !== viewGen)
			return;
		busy = true;
		try {
			await fn(gen);
		} catch (e) {
			if (!(e instanceof D4.ApiError && (e.status === 401 || e.status === 403)))
				flash(e.message, 'error');
		} finally {
			busy = false;
		}
	};
	timers.push(setInterval(tick, ms));
	return tick();
}

const routes = [
	[/^\/?$/, viewDashboard],
	[/^\/login$/, viewLogin],
	[/^\/password$/, viewPassword],
	[/^\/sensors$/, viewSensors],
	[/^\/sensor\/([0-9a-fA-F-]{36})$/, viewSensor],
	[/^\/pending$/, viewPending],
	[/^\/blocklists$/, viewBlocklists],
	[/^\/types$/, viewTypes],
	[/^\/queues$/, viewQueues],
	[/^\/users$/, viewUsers],
];

function go(hash) {
	if (location.hash === hash)
		route();
	else
		location.hash = hash;
}

function route() {
	viewGen++;
	// a message belongs to the view it came from, unless it led here (login -> password)
	if (Date.now() - flashAt > 1000)
		document.getElementById('flash').hidden = true;
	timers.forEach(clearInterval);
	timers = [];
	const path = decodeURIComponent(location.hash.replace(/^#/, '')) || '/';
	const logged = !!D4.session.csrf;
	updateChrome(path);
	if (!logged && path !== '/login')
		return go('#/login');
	if (logged && D4.session.mustChange && path !== '/password')
		return go('#/password');
	if (D4.session.role === 'sensor-register' && path !== '/password')
		return render(h('section', { class: 'narrow' }, h('h1', {}, 'Sensor registration only'),
			h('p', {}, 'The role sensor-register may only register sensors, with ' +
				'POST /api/v1/add/sensor/register and an API token; there is nothing to see here.')));
	for (const [re, view] of routes) {
		const m = re.exec(path);
		if (m) {
			main.setAttribute('data-view', view.name);
			return view(...m.slice(1));
		}
	}
	render(h('h1', {}, 'Not found'), h('p', {}, h('a', { href: '#/' }, 'Dashboard')));
}

/* The header: navigation and user for a logged-in session, the current view marked. */
function updateChrome(path) {
	const logged = !!D4.session.csrf && !D4.session.mustChange;
	// sensor-register may read nothing: no view to navigate to
	document.getElementById('nav').hidden = !logged || D4.session.role === 'sensor-register';
	document.getElementById('who').hidden = !D4.session.csrf;
	document.getElementById('who-name').textContent =
		D4.session.user ? D4.session.user + ' (' + D4.session.role + ')' : '';
	for (const a of document.querySelectorAll('#nav a')) {
		a.hidden = a.hasAttribute('data-admin') && !D4.session.isAdmin();
		const target = a.getAttribute('href').slice(1);
		const current = target === path || (target === '/sensors' && path.startsWith('/sensor/')) ||
			(target !== '/' && path.startsWith(target + '/')) || (target === '/tls' && path === '/tls-weak');
		if (current)
			a.setAttribute('aria-current', 'page');
		else
			a.removeAttribute('aria-current');
	}
}

D4.onUnauthorized = () => {
	D4.session.clear();
	flash('Your session ended: please log in again.', 'error');
	go('#/login');
};
D4.onMustChange = () => {
	sessionStorage.setItem('d4.must_change', '1');
	go('#/password');
};

/* ---- login, password, logout ---- */

function viewLogin() {
	const user = h('input', { id: 'login-user', name: 'user', autocomplete: 'username', required: true,
		autofocus: true });
	const pw = h('input', { id: 'login-password', name: 'password', type: 'password',
		autocomplete: 'current-password', required: true });
	render(h('section', { class: 'narrow' },
		h('h1', {}, 'Log in'),
		form({ id: 'login-form' }, [field('User', user), field('Password', pw)], 'Log in', async () => {
			const r = await D4.post('/api/v1/login', { user: user.value, password: pw.value });
			pw.value = '';
			D4.session.set(r);
			if (r.must_change) {
				flash('This is the first login of this account: choose a new password.', 'warn');
				go('#/password');
			} else {
				go('#/');
			}
		})));
	user.focus();
}

function viewPassword() {
	const old = h('input', { id: 'pw-old', type: 'password', autocomplete: 'current-password',
		required: true });
	const neu = h('input', { id: 'pw-new', type: 'password', autocomplete: 'new-password',
		required: true, minlength: 10 });
	const again = h('input', { id: 'pw-confirm', type: 'password', autocomplete: 'new-password',
		required: true, minlength: 10 });
	const must = D4.session.mustChange;
	render(h('section', { class: 'narrow' },
		h('h1', {}, must ? 'Choose a new password' : 'Change your password'),
		must ? h('p', { class: 'notice' }, 'Your password was generated or set by an admin: ' +
			'choose your own before going on.') : null,
		form({ id: 'password-form' }, [field('Current password', old),
			field('New password (at least 10 characters)', neu), field('New password again', again)],
		'Change password', async () => {
			if (neu.value !== again.value)
				throw new Error('the two new passwords differ');
			await D4.post('/api/v1/password', { old: old.value, new: neu.value });
			old.value = neu.value = again.value = '';
			D4.session.passwordChanged();
			flash('Password changed.');
			go('#/');
		})));
	old.focus();
}

document.getElementById('logout').addEventListener('click', async () => {
	try {
		await D4.post('/api/v1/logout');
	} catch (e) {
		// the session may be gone already: logging out locally is what matters
	}
	D4.session.clear();
	go('#/login');
});

/* ---- dashboard ---- */

// throughput samples survive navigation, so coming back shows the recent past
const samples = { times: [], packets: [], bytes: [], last: null };
const SAMPLE_SPAN_MS = 5 * 60 * 1000;

function addSample(tot) {
	const now = Date.now();
	const last = samples.last;
	samples.last = { t: now, packets: tot.packets, bytes: tot.bytes };
	if (!last || now - last.t < 500)
		return;
	const dt = (now - last.t) / 1000;
	// a counter that went down (statistics deleted) is a restart, not negative traffic
	samples.times.push(now);
	samples.packets.push(Math.max(0, (tot.packets - last.packets) / dt));
	samples.bytes.push(Math.max(0, (tot.bytes - last.bytes) / dt));
	while (samples.times.length && now - samples.times[0] > SAMPLE_SPAN_MS) {
		samples.times.shift();
		samples.packets.shift();
		samples.bytes.shift();
	}
}

function card(label, value, opts) {
	opts = opts || {};
	const v = h('div', { class: 'value', 'data-card': opts.id }, value);
	return h(opts.href ? 'a' : 'div', { class: 'card ' + (opts.class || ''), href: opts.href },
		v, h('div', { class: 'label' }, label));
}

/* Rows of /stats/daily summed by type name (a meta-type for type 254). */
function byTypeName(rows, key) {
	const m = new Map();
	for (const r of rows) {
		const name = r.type === 254 && r.meta_type ? r.meta_type : r.name;
		m.set(name, (m.get(name) || 0) + r[key]);
	}
	return [...m.entries()].map(([name, value]) => ({ name, value, color: D4.colorOf(name) }));
}

/* Today as the server counts days (UTC), from this browser's clock. */
function utcToday() {
	return new Date().toISOString().slice(0, 10);
}

function viewDashboard() {
	const cards = h('div', { class: 'cards' });
	const rates = h('div', {});
	const today = h('div', {});
	const refusals = h('div', {});
	const errors = h('div', {});
	render(h('h1', {}, 'Dashboard'), cards,
		h('section', {}, h('h2', {}, 'Throughput'), rates),
		h('div', { class: 'two' },
			h('section', {}, h('h2', {}, 'Packets per type today'), today),
			h('section', {}, h('h2', {}, 'Refusals by reason (since the start)'), refusals)),
		h('section', {}, h('h2', {}, 'Recent errors'), errors));
	let n = 0;
	poll(async (gen) => {
		const tot = await D4.get('/api/v1/stats/totals');
		if (gen !== viewGen)
			return;
		addSample(tot);
		const last = samples.times.length - 1;
		cards.replaceChildren(
			card('connected', fmt.num(tot.connected), { id: 'connected', class: 'accent' }),
			card('registered', fmt.num(tot.sensors.registered), { id: 'registered',
				href: '#/sensors' }),
			card('pending', fmt.num(tot.sensors.pending), { id: 'pending', href: '#/pending',
				class: tot.sensors.pending > 0 ? 'warn' : '' }),
			card('active sessions', fmt.num(tot.active_sessions), { id: 'sessions' }),
			card('packets/s', last >= 0 ? fmt.num(samples.packets[last]) : '…', { id: 'pps' }),
			card('bytes/s', last >= 0 ? fmt.bytes(samples.bytes[last]) : '…', { id: 'bps' }),
			card('packets in total', fmt.num(tot.packets), { id: 'packets' }),
			card('bytes in total', fmt.bytes(tot.bytes), { id: 'bytes' }));
		rates.replaceChildren(h('div', { class: 'two' },
			D4.chart.lines(samples.times, [{ name: 'packets', color: '#1f77b4',
				values: samples.packets }], { unit: 'packets', title: 'packets per second',
				span: SAMPLE_SPAN_MS }),
			D4.chart.lines(samples.times, [{ name: 'bytes', color: '#2ca02c',
				values: samples.bytes }], { unit: 'bytes', title: 'bytes per second',
				span: SAMPLE_SPAN_MS })));
		refusals.replaceChildren(D4.chart.hbars(Object.entries(tot.refusals || {}).map(
			([name, value]) => ({ name, value, color: '#d62728' })),
		{ unit: 'packets', title: 'refusals by reason', empty: 'no refusal' }));
		// the slower queries every other tick
		if (n++ % 2 === 0) {
			const [daily, errs] = await Promise.all([
				D4.get('/api/v1/stats/daily' + D4.query({ from: utcToday(), to: utcToday() })),
				D4.get('/api/v1/sensors/monitoring/errors')]);
			if (gen !== viewGen)
				return;
			today.replaceChildren(D4.chart.hbars(byTypeName(daily.rows, 'packets'),
				{ unit: 'packets', title: 'packets per type today', empty: 'no traffic today' }));
			errors.replaceChildren(errorsTable(errs));
		}
	}, 3000);
}

function errorsTable(errs) {
	errs.sort((a, b) => String(b.last_error && b.last_error.time)
		.localeCompare(String(a.last_error && a.last_error.time)));
	return table(['when', 'sensor', 'reason', 'detail', 'peer', 'refusals'],
		errs.slice(0, 15).map((e) => h('tr', {},
			h('td', { class: 'nowrap' }, when(e.last_error && e.last_error.time)),
			h('td', {}, e.server_wide ? 'server-wide' : h('a', { href: '#/sensor/' + e.uuid, class: 'mono' },
				e.uuid.slice(0, 8) + '…'), e.description ? ' ' + e.description : ''),
			h('td', {}, badge(e.last_error.reason, 'error')),
			h('td', {}, e.last_error.text),
			h('td', { class: 'mono' }, e.last_error.peer),
			h('td', { class: 'num' }, fmt.num(e.refusals)))),
		'no error recorded');
}

/* ---- sensors ---- */

function sensorRow(s) {
	return h('tr', { 'data-uuid': s.uuid },
		h('td', {}, h('a', { href: '#/sensor/' + s.uuid, class: 'mono' }, s.uuid)),
		h('td', {}, sensorStatus(s)),
		h('td', {}, s.description),
		h('td', { class: 'nowrap' }, when(s.last_seen)),
		h('td', { class: 'num' }, fmt.num(s.packets)),
		h('td', { class: 'num' }, fmt.bytes(s.bytes)));
}

function viewSensors() {
	const q = h('input', { type: 'search', id: 'sensor-search', placeholder: 'uuid, description or mail' });
	const status = h('select', { id: 'sensor-status' },
		['', 'pending', 'approved', 'rejected'].map((v) => h('option', { value: v }, v || 'any state')));
	const list = h('div', {});
	/* the API pages the list (100 a page, at most 1000): "show more" widens the one page
	 * polled, and past 1000 the search narrows it */
	let limit = 100;
	const load = async (gen) => {
		const page = await D4.page('/api/v1/sensors' +
			D4.query({ q: q.value.trim(), status: status.value, limit }));
		if (gen !== viewGen)
			return;
		const rows = page.rows;
		rows.sort((a, b) => String(b.last_seen).localeCompare(String(a.last_seen)) ||
			a.uuid.localeCompare(b.uuid));
		const more = page.next === null ? null : limit < 1000
			? h('button', { id: 'sensor-more', onclick: () => {
				limit = Math.min(1000, limit + 100);
				load(viewGen).catch((e) => flash(e.message, 'error'));
			} }, 'show more')
			: h('span', { class: 'muted' }, 'the first 1000 are shown: search to narrow the list');
		list.replaceChildren(h('p', { class: 'muted' }, rows.length + ' sensor(s)' + (page.next ? ' shown, more match' : '')),
			table(['uuid', 'status', 'description', 'last seen', 'packets', 'bytes'],
				rows.map(sensorRow), 'no sensor matches'), more);
	};
	let debounce = null;
	q.addEventListener('input', () => {
		clearTimeout(debounce);
		debounce = setTimeout(() => load(viewGen).catch((e) => flash(e.message, 'error')), 250);
	});
	status.addEventListener('change', () => load(viewGen).catch((e) => flash(e.message, 'error')));
	render(h('h1', {}, 'Sensors'), h('div', { class: 'toolbar' }, q, status), list);
	poll(load, 5000);
}

/* Days from..to (YYYY-MM-DD, inclusive) as a list of strings, in UTC as the server counts. */
function dayRange(from, to) {
	const out = [];
	for (let t = Date.parse(from + 'T00:00:00Z'); t <= Date.parse(to + 'T00:00:00Z'); t += 86400000)
		out.push(new Date(t).toISOString().slice(0, 10));
	return out;
}

/* Stacked-bar series per type name over days, for packets or bytes. */
function dailySeries(rows, days, key) {
	const idx = new Map(days.map((d, i) => [d, i]));
	const by = new Map();
	for (const r of rows) {
		const name = r.type === 254 && r.meta_type ? r.meta_type : r.name;
		if (!by.has(name))
			by.set(name, new Array(days.length).fill(0));
		const i = idx.get(r.day);
		if (i !== undefined)
			by.get(name)[i] += r[key];
	}
	return [...by.entries()].sort((a, b) => a[0].localeCompare(b[0]))
		.map(([name, values]) => ({ name, values, color: D4.colorOf(name) }));
}

function dl(pairs) {
	return h('dl', { class: 'facts' }, pairs.filter(Boolean).flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

function viewSensor(uuid) {
	uuid = uuid.toLowerCase();
	const head = h('div', {});
	const facts = h('div', {});
	const charts = h('div', {});
	const traffic = h('div', {});
	const actions = h('div', { class: 'actions' });
	const unit = h('select', { id: 'chart-unit' }, h('option', { value: 'packets' }, 'packets'),
		h('option', { value: 'bytes' }, 'bytes'));
	let settingsFilled = false;
	let lastActionsKey = null;
	const settings = h('div', {});
	let daily = null;

	const drawCharts = () => {
		if (!daily)
			return;
		const days = dayRange(daily.from, daily.to);
		const key = unit.value;
		const short = (d) => d.slice(5);
		charts.replaceChildren(
			h('h3', {}, 'Last 7 days'),
			D4.chart.stackedBars(days.slice(-7), dailySeries(daily.rows, days.slice(-7), key),
				{ unit: key, title: key + ' per day and type, last 7 days', xLabel: short }),
			h('h3', {}, 'Last 30 days'),
			D4.chart.stackedBars(days, dailySeries(daily.rows, days, key),
				{ unit: key, title: key + ' per day and type, last 30 days', xLabel: short }));
	};
	unit.addEventListener('change', drawCharts);

	render(h('p', {}, h('a', { href: '#/sensors' }, '← Sensors')), head,
		h('div', { class: 'two' },
			h('section', {}, h('h2', {}, 'State'), facts),
			h('section', {}, h('h2', {}, 'Traffic by type (since the first packet)'), traffic)),
		h('section', {}, h('h2', {}, 'Traffic per day ', unit), charts),
		D4.session.canOperate() ? h('section', {}, h('h2', {}, 'Actions'), actions) : null,
		D4.session.canOperate() ? h('section', {}, h('h2', {}, 'Settings'), settings) : null);

	const load = async (gen) => {
		const today = new Date().toISOString().slice(0, 10);
		const from = new Date(Date.now() - 29 * 86400000).toISOString().slice(0, 10);
		const [s, d] = await Promise.all([D4.get('/api/v1/sensors/' + enc(uuid)),
			D4.get('/api/v1/stats/daily' + D4.query({ uuid, from, to: today }))]);
		if (gen !== viewGen)
			return;
		daily = d;
		const reg = s.registration;
		const st = s.statistics || {};
		const connected = (st.active_sessions || 0) > 0;
		head.replaceChildren(h('h1', { class: 'mono' }, uuid), h('p', { id: 'sensor-badges' },
			reg ? badge(reg.state) : badge('unregistered', 'rejected'),
			s.blocked ? [' ', badge('blocked')] : null,
			connected ? [' ', badge('connected')] : [' ', badge('offline', 'muted')],
			reg && reg.description ? h('span', { class: 'desc' }, ' ' + reg.description) : null));
		const refusals = Object.entries(st.refusals || {});
		facts.replaceChildren(dl([
			reg && ['registered', when(reg.registered)],
			reg && ['mail', reg.mail || '—'],
			reg && ['HMAC key', reg.key.set ? 'set (' + reg.key.bytes + ' bytes, never shown)' : 'not set'],
			reg && ['max payload', reg.settings.max_payload ? fmt.bytes(reg.settings.max_payload) : 'server default'],
			reg && ['rate limit', reg.settings.rate_limit_bps ? fmt.bytes(reg.settings.rate_limit_bps) + '/s' : 'none'],
			s.blocked && ['blocked', 'since ' + when(s.blocked.since) + (s.blocked.until ? ', until ' + when(s.blocked.until) : '') +
				(s.blocked.comment ? ' — ' + s.blocked.comment : '')],
			['first seen', when(st.first_seen)],
			['last seen', when(st.last_seen)],
			['sessions', String(st.active_sessions || 0)],
			['packets', fmt.num(st.packets || 0)],
			['bytes', fmt.bytes(st.bytes || 0)],
			['last addresses', (st.last_addresses || []).length ? h('ul', { class: 'plain' },
				st.last_addresses.map((a) => h('li', {}, h('span', { class: 'mono' }, a.address), ' ', when(a.time)))) : '—'],
			['refusals', refusals.length ? h('ul', { class: 'plain' }, refusals.map(([k, v]) =>
				h('li', {}, badge(k, 'error'), ' ', fmt.num(v)))) : 'none'],
			['last error', st.last_error ? [badge(st.last_error.reason, 'error'), ' ', st.last_error.text, ' from ',
				h('span', { class: 'mono' }, st.last_error.peer), ', ', when(st.last_error.time)] : 'none'],
		]));
		traffic.replaceChildren(D4.chart.hbars((st.types || []).map((t) => ({ name: t.name, value: t.packets,
			color: D4.colorOf(t.name) })).concat((st.meta_types || []).map((t) => ({ name: t.name,
			value: t.packets, color: D4.colorOf(t.name) }))), { unit: 'packets', title: 'packets by type',
			empty: 'no traffic yet' }));
		drawCharts();
		if (!D4.session.canOperate())
			return;
		const refresh = () => load(viewGen);
		// the buttons are redrawn only when what they depend on changes: a comment being typed stays
		const actionsKey = JSON.stringify([reg && reg.state, !!s.blocked, connected]);
		if (actionsKey === lastActionsKey)
			return;
		lastActionsKey = actionsKey;
		const post = (what, body) => D4.post('/api/v1/sensors/' + enc(uuid) + '/' + what, body);
		const blockComment = h('input', { id: 'block-comment', placeholder: 'comment (optional)' });
		const blockFor = h('input', { id: 'block-expires', placeholder: 'for (e.g. 2h, 1d; empty: permanent)' });
		fill(actions,
			reg && reg.state !== 'approved' ? actionButton('Approve', () => post('approve'),
				{ action: 'approve', done: 'Approved.', refresh }) : null,
			reg && reg.state !== 'rejected' ? actionButton('Reject', () => post('reject'),
				{ action: 'reject', class: 'danger', done: 'Rejected.', refresh,
					confirm: 'Reject this sensor? Its connections will be refused.' }) : null,
			connected ? actionButton('Kick', () => post('kick'), { action: 'kick', done: 'Kick requested: ' +
				'its sessions close within a second.', refresh }) : null,
			s.blocked ? actionButton('Unblock', () => post('unblock'), { action: 'unblock', done: 'Unblocked.', refresh })
				: reg ? h('span', { class: 'inline-form' }, blockComment, blockFor, actionButton('Block', () => {
					const body = {};
					if (blockComment.value.trim())
						body.comment = blockComment.value.trim();
					if (blockFor.value.trim())
						body.expires_in = blockFor.value.trim();
					// a block refuses new sessions; an operator also wants the open ones closed
					return post('block', body).then(() => connected ? post('kick') : null);
				}, { action: 'block', class: 'danger', done: connected ? 'Blocked, and its sessions kicked.' :
					'Blocked.', refresh })) : null,
			reg ? actionButton('Delete', async () => {
				await D4.del('/api/v1/sensors/' + enc(uuid));
				go('#/sensors');
			}, { action: 'delete', class: 'danger', done: 'Deleted.',
				confirm: 'Delete this sensor\'s registration? (Its statistics are kept.)' }) : null);
		if (reg && !settingsFilled) {
			settingsFilled = true;
			fill(settings, settingsForms(uuid, reg, refresh));
		}
	};
	poll(load, 5000);
}

function settingsForms(uuid, reg, refresh) {
	const desc = h('input', { id: 'set-description', value: reg.description, maxlength: 255 });
	const mail = h('input', { id: 'set-mail', type: 'email', value: reg.mail });
	const maxp = h('input', { id: 'set-max-payload', type: 'number', min: 0, value: reg.settings.max_payload });
	const rate = h('input', { id: 'set-rate-limit', type: 'number', min: 0, value: reg.settings.rate_limit_bps });
	const key = h('input', { id: 'set-key', type: 'password', autocomplete: 'off', required: true,
		placeholder: 'the new HMAC key' });
	return [
		form({ id: 'settings-form' }, [field('Description', desc), field('Mail', mail),
			field('Max payload (bytes, 0 = server default)', maxp),
			field('Rate limit (bytes/s, 0 = none)', rate)], 'Save', async () => {
			await D4.put('/api/v1/sensors/' + enc(uuid), { description: desc.value, mail: mail.value,
				max_payload: Number(maxp.value) || 0, rate_limit: Number(rate.value) || 0 });
			flash('Settings saved.');
			await refresh();
		}),
		h('h3', {}, 'HMAC key'),
		h('p', { class: 'muted' }, 'The key is sent to the server and never shown again. Open sessions keep ' +
			'the old key until they are kicked.'),
		form({ id: 'key-form', autocomplete: 'off' }, [field('New key', key)], 'Set key', async () => {
			const r = await D4.put('/api/v1/sensors/' + enc(uuid) + '/key', { hmac_key: key.value });
			key.value = '';
			flash('Key set (' + r.key.bytes + ' bytes).');
			await refresh();
		}),
	];
}

/* ---- pending registrations ---- */

function viewPending() {
	const list = h('div', {});
	render(h('h1', {}, 'Pending registrations'),
		h('p', { class: 'muted' }, 'Sensors registered with POST /api/v1/add/sensor/register wait here ' +
			'until an operator approves them; d4-ingest refuses them until then.'), list);
	const load = async (gen) => {
		const rows = await D4.get('/api/v1/sensors?status=pending&limit=1000');
		if (gen !== viewGen)
			return;
		const refresh = () => load(viewGen);
		list.replaceChildren(table(['uuid', 'description', 'mail', 'registered', 'third party', ''],
			rows.map((s) => h('tr', { 'data-uuid': s.uuid },
				h('td', {}, h('a', { href: '#/sensor/' + s.uuid, class: 'mono' }, s.uuid)),
				h('td', {}, s.description), h('td', {}, s.mail), h('td', { class: 'nowrap' }, when(s.registered)),
				h('td', {}, s.third_party ? 'yes' : 'no'),
				h('td', { class: 'actions' }, D4.session.canOperate() ? [
					actionButton('Approve', () => D4.post('/api/v1/sensors/' + enc(s.uuid) + '/approve'),
						{ action: 'approve', done: 'Approved ' + s.uuid + '.', refresh }),
					actionButton('Reject', () => D4.post('/api/v1/sensors/' + enc(s.uuid) + '/reject'),
						{ action: 'reject', class: 'danger', done: 'Rejected ' + s.uuid + '.', refresh }),
				] : null))), 'no pending registration'));
	};
	poll(load, 5000);
}

/* ---- blocklists ---- */

function viewBlocklists() {
	const uuids = h('div', {}), ips = h('div', {});
	const op = D4.session.canOperate();
	const load = async (gen) => {
		const [u, i] = await Promise.all([D4.get('/api/v1/blocklist/uuids'), D4.get('/api/v1/blocklist/ips')]);
		if (gen !== viewGen)
			return;
		const refresh = () => load(viewGen);
		const rows = (list, key, del) => list.map((b) => h('tr', {},
			h('td', { class: 'mono' }, b[key]), h('td', {}, badge(b.state, b.state === 'active' ? 'blocked' : 'muted')),
			h('td', {}, b.comment), h('td', { class: 'nowrap' }, when(b.created)),
			h('td', { class: 'nowrap' }, b.expires ? when(b.expires) : 'never'),
			h('td', {}, op ? actionButton('Remove', () => del(b[key]), { action: 'remove', class: 'danger', refresh }) : null)));
		uuids.replaceChildren(table(['uuid', 'state', 'comment', 'since', 'expires', ''],
			rows(u, 'uuid', (x) => D4.del('/api/v1/blocklist/uuids/' + enc(x))), 'no blocked uuid'));
		ips.replaceChildren(table(['range', 'state', 'comment', 'since', 'expires', ''],
			rows(i, 'range', (x) => D4.del('/api/v1/blocklist/ips' + D4.query({ range: x }))), 'no blocked address'));
	};
	const addForm = (id, label, placeholder, path, key) => {
		const what = h('input', { id: id + '-value', required: true, placeholder });
		const comment = h('input', { id: id + '-comment', placeholder: 'comment' });
		const expires = h('input', { id: id + '-expires', placeholder: 'for (2h, 1d; empty: permanent)' });
		return form({ id, class: 'inline' }, [what, comment, expires], label, async () => {
			const body = { [key]: what.value.trim() };
			if (comment.value.trim()) body.comment = comment.value.trim();
			if (expires.value.trim()) body.expires_in = expires.value.trim();
			await D4.post(path, body);
			what.value = comment.value = expires.value = '';
			flash('Added.');
			await load(viewGen);
		});
	};
	render(h('h1', {}, 'Blocklists'),
		h('section', {}, h('h2', {}, 'Sensor uuids'),
			op ? addForm('block-uuid', 'Block uuid', 'uuid', '/api/v1/blocklist/uuids', 'uuid') : null, uuids),
		h('section', {}, h('h2', {}, 'Addresses and ranges'),
			h('p', { class: 'muted' }, 'An address, a CIDR range (10.0.0.0/8, 2001:db8::/32) or a-b; ' +
				'kept as given, never expanded.'),
			op ? addForm('block-ip', 'Block range', 'address or range', '/api/v1/blocklist/ips', 'range') : null, ips));
	poll(load, 10000);
}

/* ---- accepted types and meta-types ---- */

const KNOWN_TYPES = [[1, 'pcap'], [2, 'meta-header'], [3, 'log'], [4, 'dnscap'], [5, 'pcapng'],
	[6, 'ndjson'], [7, 'yaf'], [8, 'passivedns'], [254, 'meta-defined']];

async function viewTypes() {
	const gen = viewGen;
	const op = D4.session.canOperate();
	const box = h('div', {});
	render(h('h1', {}, 'Accepted types'), box);
	let t;
	try {
		t = await D4.get('/api/v1/types');
	} catch (e) {
		return box.replaceChildren(errorBox(e));
	}
	if (gen !== viewGen)
		return;
	const accepted = new Set(t.types.accepted.map((x) => x.type));
	const checks = KNOWN_TYPES.map(([n, name]) => h('input', { type: 'checkbox', value: n, id: 'type-' + n,
		checked: accepted.has(n), disabled: !op }));
	const typesForm = form({ id: 'types-form' }, [h('div', { class: 'checks' }, KNOWN_TYPES.map(([n, name], i) =>
		h('label', {}, checks[i], ' ' + n + ' ' + name)))], 'Save types', async () => {
		const list = checks.filter((c) => c.checked).map((c) => Number(c.value));
		await D4.put('/api/v1/types', { accepted: list });
		flash('Accepted types saved.');
		viewTypes();
	});
	if (!op)
		typesForm.querySelector('button').hidden = true;
	const metaName = h('input', { id: 'metatype-name', required: true, placeholder: 'e.g. ja3-jl' });
	box.replaceChildren(
		h('section', {}, h('h2', {}, 'Types'), h('p', { class: 'muted' }, 'From the ' + t.types.source + '.'), typesForm),
		h('section', {}, h('h2', {}, 'Meta-types (type 254)'),
			h('p', { class: 'muted' }, 'From the ' + t.meta_types.source + '.'),
			table(['name', ''], t.meta_types.accepted.map((name) => h('tr', {}, h('td', { class: 'mono' }, name),
				h('td', {}, op ? actionButton('Remove', () => D4.del('/api/v1/metatypes/' + enc(name)),
					{ action: 'remove', class: 'danger', refresh: viewTypes }) : null))), 'none'),
			op ? form({ id: 'metatype-form', class: 'inline' }, [metaName], 'Add meta-type', async () => {
				await D4.post('/api/v1/metatypes', { name: metaName.value.trim() });
				flash('Meta-type added.');
				viewTypes();
			}) : null));
}

/* ---- analyzer queues ---- */

const queuePrev = new Map();

function viewQueues() {
	const chart = h('div', {}), list = h('div', {});
	render(h('h1', {}, 'Analyzer queues'), h('section', {}, h('h2', {}, 'Depth (memory + spool)'), chart),
		h('section', {}, h('h2', {}, 'Counters'), list));
	// received, delivered, acknowledged, dropped, emptied count records; in memory and spooled are bytes
	const load = async (gen) => {
		const qs = await D4.get('/api/v1/queues');
		if (gen !== viewGen)
			return;
		const now = Date.now();
		const op = D4.session.canOperate();
		const refresh = () => load(viewGen);
		chart.replaceChildren(D4.chart.hbars(qs.map((q) => ({ name: q.name, value: q.in_memory + q.spooled,
			color: q.spooled > 0 ? '#ff7f0e' : '#1f77b4' })), { unit: 'bytes', title: 'queue depth', width: 1000,
			empty: 'no analyzer queue (is d4-dispatch running?)' }));
		list.replaceChildren(table(['queue', 'state', 'received', 'in/s', 'delivered', 'acknowledged', 'in memory',
			'spooled', 'dropped', 'emptied', 'restarts', 'last error'].concat(op ? [''] : []), qs.map((q) => {
			const prev = queuePrev.get(q.name);
			queuePrev.set(q.name, { t: now, received: q.received });
			const rate = prev && now > prev.t ? Math.max(0, (q.received - prev.received) / ((now - prev.t) / 1000)) : null;
			const ctl = q.control || {};
			// what was asked and not yet carried out (d4-dispatch acts within a second)
			const pending = [];
			if (!!ctl.paused !== !!q.paused)
				pending.push(ctl.paused ? 'pausing…' : 'resuming…');
			if ((ctl.empty_requested || 0) > (ctl.empty_applied || 0))
				pending.push('emptying…');
			const post = (what) => D4.post('/api/v1/queues/' + enc(q.name) + '/' + what);
			const wantPaused = q.control ? !!ctl.paused : !!q.paused;
			return h('tr', { 'data-queue': q.name },
				h('td', { class: 'mono' }, q.name),
				h('td', {}, q.paused ? badge('paused', 'warn') : badge(q.state, q.state === 'running' ? 'approved' : 'error'),
					q.backpressure ? [' ', badge('holding back ingest', 'error')] : null,
					pending.length ? [' ', badge(pending.join(' '), 'muted')] : null),
				h('td', { class: 'num' }, fmt.num(q.received)),
				h('td', { class: 'num' }, rate === null ? '…' : fmt.num(Math.round(rate)) + '/s'),
				h('td', { class: 'num' }, fmt.num(q.delivered)), h('td', { class: 'num' }, fmt.num(q.acknowledged)),
				h('td', { class: 'num' }, fmt.bytes(q.in_memory)), h('td', { class: 'num' }, fmt.bytes(q.spooled)),
				h('td', { class: 'num' + (q.dropped > 0 ? ' bad' : '') }, fmt.num(q.dropped)),
				h('td', { class: 'num' }, fmt.num(q.emptied || 0)),
				h('td', { class: 'num' }, fmt.num(q.restarts)),
				h('td', {}, q.last_error ? q.last_error + ' (' + when(q.last_error_time) + ')' : '—'),
				op ? h('td', { class: 'actions' },
					wantPaused ? actionButton('Resume', () => post('resume'), { action: 'queue-resume',
						done: 'Resume requested: ' + q.name + ' delivers again within a second.', refresh })
						: actionButton('Pause', () => post('pause'), { action: 'queue-pause',
							done: 'Pause requested: ' + q.name + ' holds what it takes.', refresh,
							confirm: 'Pause queue ' + q.name + '? It keeps taking records and delivers none. ' +
								(q.when_full === 'drop-oldest' ? 'Once its memory and spool are full it drops its oldest records.'
									: 'Once its memory and spool are full, d4-dispatch pauses ingest: every sensor waits ' +
									'(ingest\'s own buffer may fill first, with the same effect).') }),
					actionButton('Empty', () => post('empty'), { action: 'queue-empty', class: 'danger',
						done: 'Empty requested: ' + q.name + '.', refresh,
						confirm: 'Empty queue ' + q.name + '? What it holds and has not delivered (' +
							fmt.bytes(q.in_memory + q.spooled) + ') is discarded for good.' })) : null);
		}), 'no analyzer queue'));
	};
	poll(load, 5000);
}

/* ---- users and tokens (admin) ---- */

const ROLES = ['admin', 'operator', 'read-only', 'sensor-register'];

async function viewUsers() {
	const gen = viewGen;
	const box = h('div', {});
	const secret = h('div', { id: 'secret-once' });
	render(h('h1', {}, 'Users and API tokens'), secret, box);
	const showOnce = (title, value) => secret.replaceChildren(h('div', { class: 'notice' },
		h('strong', {}, title), h('p', {}, 'Shown once: copy it now, it cannot be shown again.'),
		h('input', { class: 'mono secret', readonly: true, value, id: 'secret-value' }),
		h('button', { type: 'button', class: 'link', onclick: () => secret.replaceChildren() }, 'I copied it')));
	const load = async () => {
		const [users, tokens] = await Promise.all([D4.get('/api/v1/users'), D4.get('/api/v1/tokens')]);
		if (gen !== viewGen)
			return;
		const name = h('input', { id: 'user-name', required: true, placeholder: 'user name' });
		const role = h('select', { id: 'user-role' }, ROLES.map((r) => h('option', { value: r }, r)));
		const pw = h('input', { id: 'user-password', type: 'password', autocomplete: 'new-password',
			placeholder: 'empty: a random one, shown once' });
		const tuser = h('select', { id: 'token-user' }, users.map((u) => h('option', { value: u.name }, u.name)));
		const tdesc = h('input', { id: 'token-description', placeholder: 'what it is for (e.g. prometheus)' });
		box.replaceChildren(
			h('section', {}, h('h2', {}, 'Users'),
				table(['name', 'role', 'created', 'last login', ''], users.map((u) => h('tr', {},
					h('td', {}, u.name, u.must_change ? [' ', badge('must change', 'warn')] : null), h('td', {}, u.role),
					h('td', { class: 'nowrap' }, when(u.created)), h('td', { class: 'nowrap' }, when(u.last_login)),
					h('td', {}, u.name === D4.session.user ? null : actionButton('Delete', () =>
						D4.del('/api/v1/users/' + enc(u.name)), { action: 'delete', class: 'danger', refresh: load,
						confirm: 'Delete user ' + u.name + ' and their tokens?' }))))),
				form({ id: 'user-form', class: 'inline' }, [name, role, pw], 'Add user', async () => {
					const body = { name: name.value.trim(), role: role.value };
					if (pw.value)
						body.password = pw.value;
					const r = await D4.post('/api/v1/users', body);
					pw.value = '';
					if (r.password)
						showOnce('Password of ' + r.name, r.password);
					else
						flash('User added: they must change the password at first login.');
					await load();
				})),
			h('section', {}, h('h2', {}, 'API tokens'),
				h('p', { class: 'muted' }, 'Sent as "Authorization: <token>" or "Authorization: Bearer <token>"; ' +
					'the token acts with its user\'s role.'),
				table(['id', 'user', 'description', 'created', 'last used', ''], tokens.map((t) => h('tr', {},
					h('td', { class: 'mono' }, t.id), h('td', {}, t.user), h('td', {}, t.description),
					h('td', { class: 'nowrap' }, when(t.created)), h('td', { class: 'nowrap' }, when(t.last_used)),
					h('td', {}, actionButton('Revoke', () => D4.del('/api/v1/tokens/' + enc(t.id)),
						{ action: 'revoke', class: 'danger', refresh: load, confirm: 'Revoke this token?' })))), 'no token'),
				form({ id: 'token-form', class: 'inline' }, [tuser, tdesc], 'New token', async () => {
					const r = await D4.post('/api/v1/tokens', { user: tuser.value, description: tdesc.value });
					showOnce('Token for ' + r.user, r.token);
					await load();
				})));
	};
	try {
		await load();
	} catch (e) {
		box.replaceChildren(errorBox(e));
	}
}

/* Views defined in other files (analyzers.js): D4.views = [[regexp, view(ui, ...groups)]].
 * They draw with this file's helpers, so they follow its rules. */
const ui = { h, fill, render, table, badge, when, form, flash, errorBox, go, poll,
	current: () => viewGen };
for (const [re, view] of D4.views || []) {
	const bound = (...a) => view(ui, ...a);
	Object.defineProperty(bound, 'name', { value: view.name });
	routes.push([re, bound]);
}

window.addEventListener('hashchange', route);
route();
})();
