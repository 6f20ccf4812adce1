/*
 * analyzers.js — the UI's views of the analyzers' own stores, through d4-web's API:
 *
 *   #/pdns, #/pdns/query/<term>, #/pdns/fquery/<rdata>   passive DNS search (COF records)
 *   #/tls, #/tls/<kind>/<value>                          TLS pivots: JA3, JA3S, JA4, cert,
 *                                                        key, server, SNI, subject
 *   #/tls-weak                                           weak-key findings
 *
 * The views are declared here and drawn by app.js's router with its helpers (ui.h, ui.table,
 * ...), so they follow the same rules: text nodes only, late replies dropped when the user
 * moved on (ui.current()). Every value shown is a link to what it pivots to: a name to its
 * records, an address to the names that pointed at it, a certificate to its servers and
 * sessions, a key to the certificates that carry it.
 */
'use strict';

(function () {
const D4 = window.D4;
D4.views = D4.views || [];

const enc = encodeURIComponent;

/* Unix seconds or ISO text -> "YYYY-MM-DD HH:MM:SS UTC (... ago)" */
function time(ui, t) {
	if (t === null || t === undefined || t === '')
		return '—';
	const iso = typeof t === 'number' ? new Date(t * 1000).toISOString().replace(/\.\d+Z$/, 'Z') : t;
	return ui.when(iso);
}

/* A "next page" button that calls more(); gone at the end. */
function moreButton(ui, id, next, more) {
	if (!next)
		return null;
	const b = ui.h('button', { id, type: 'button' }, 'next page');
	b.addEventListener('click', async () => {
		b.disabled = true;
		try {
			await more(next);
			b.remove();
		} catch (e) {
			b.disabled = false;
			ui.flash(e.message, 'error');
		}
	});
	return b;
}

/* ---- passive DNS ---- */

const RR_ADDR = /^(A|AAAA)$/;

function pdnsRow(ui, r) {
	const h = ui.h;
	const rdatas = Array.isArray(r.rdata) ? r.rdata : [r.rdata]; // COF: a list of values
	// an address pivots to the names that pointed at it; other rdata to exact matches
	const rdLink = (v) => h('div', {}, h('a', { href: (RR_ADDR.test(r.rrtype) ? '#/pdns/query/' : '#/pdns/fquery/') + enc(v) }, String(v)));
	const sensors = r.sensor_ids || (r.sensor_id ? [r.sensor_id] : []);
	return h('tr', { 'data-rrname': r.rrname },
		h('td', {}, h('a', { href: '#/pdns/query/' + enc(r.rrname), class: 'mono' }, r.rrname)),
		h('td', {}, r.rrtype),
		h('td', { class: 'mono wrap' }, rdatas.map(rdLink)),
		h('td', { class: 'nowrap' }, time(ui, r.time_first)),
		h('td', { class: 'nowrap' }, time(ui, r.time_last)),
		h('td', { class: 'num' }, D4.fmt.num(r.count)),
		h('td', { class: 'mono' }, sensors.map((s) => h('div', {}, h('a', { href: '#/sensor/' + s }, s.slice(0, 8) + '…')))));
}

async function viewPdns(ui, kind, term) {
	const h = ui.h;
	const gen = ui.current();
	kind = kind === 'fquery' ? 'fquery' : 'query';
	term = term || ''; // the router decoded the hash already
	const q = h('input', { type: 'search', id: 'pdns-q', value: term, required: true,
		placeholder: 'a name, *.example.com, an address, or rdata' });
	const k = h('select', { id: 'pdns-kind' },
		h('option', { value: 'query' }, 'name or address'),
		h('option', { value: 'fquery' }, 'exact rdata'));
	k.value = kind;
	const rrtype = h('input', { type: 'text', id: 'pdns-rrtype', placeholder: 'types: A,AAAA (any)', size: 14 });
	const out = h('div', { id: 'pdns-results' });
	const search = ui.form({ id: 'pdns-form', class: 'inline' }, [q, k, rrtype], 'Search', async () => {
		ui.go('#/pdns/' + k.value + '/' + enc(q.value.trim()) + (rrtype.value.trim() ? '?rrtype=' + enc(rrtype.value.trim()) : ''));
	});
	ui.render(h('h1', {}, 'Passive DNS'), search, out);
	const params = new URLSearchParams((location.hash.split('?')[1]) || '');
	if (params.get('rrtype'))
		rrtype.value = params.get('rrtype');
	if (!term) {
		try {
			const info = await D4.get('/api/v1/pdns/info');
			if (gen !== ui.current())
				return;
			out.replaceChildren(h('p', { class: 'muted' }, 'Records from the passive DNS analyzer (COF). ' +
				'A name lists its records, *.suffix every name under it, an address the names that pointed at it.'),
			h('pre', { class: 'json' }, JSON.stringify(info, null, 2)));
		} catch (e) {
			out.replaceChildren(ui.errorBox(e));
		}
		return;
	}
	const base = '/api/v1/pdns/' + kind + D4.query({ q: term, rrtype: rrtype.value.trim() });
	const tbody = h('tbody', {});
	const count = h('p', { class: 'muted' });
	let shown = 0;
	const page = async (cursor) => {
		const r = await D4.get(base + (cursor ? '&cursor=' + enc(cursor) : ''));
		if (gen !== ui.current())
			return;
		r.records.forEach((rec) => tbody.append(pdnsRow(ui, rec)));
		shown += r.records.length;
		count.textContent = shown + ' record(s)' + (r.next ? ', more on the next page' : '');
		const b = moreButton(ui, 'pdns-more', r.next, page);
		if (b)
			out.append(b);
	};
	out.replaceChildren(count, h('table', {}, h('thead', {}, h('tr', {},
		['name', 'type', 'rdata', 'first seen', 'last seen', 'count', 'sensors'].map((x) => h('th', {}, x)))), tbody));
	try {
		await page(null);
		if (shown === 0)
			out.replaceChildren(h('p', { class: 'muted', id: 'pdns-none' }, 'no record of ' + term));
	} catch (e) {
		out.replaceChildren(ui.errorBox(e));
	}
}

D4.views.push([/^\/pdns(?:\/(query|fquery)\/([^?]+))?(?:\?.*)?$/, viewPdns]);

/* ---- TLS ---- */

const TLS_KINDS = ['ja3', 'ja3s', 'ja4', 'cert', 'key', 'server', 'sni', 'subject'];

function pivotLink(ui, kind, value, text) {
	return ui.h('a', { href: '#/tls/' + kind + '/' + enc(value), class: 'mono' }, text || value);
}

function tlsSearch(ui, kind, value) {
	const h = ui.h;
	const k = h('select', { id: 'tls-kind' }, TLS_KINDS.map((x) => h('option', { value: x }, x)));
	k.value = kind || 'ja3';
	const v = h('input', { type: 'search', id: 'tls-value', value: value || '', required: true,
		placeholder: 'MD5, JA4, SHA-256 or SHA-1, address, host name …' });
	return ui.form({ id: 'tls-form', class: 'inline' }, [k, v], 'Search', async () => {
		ui.go('#/tls/' + k.value + '/' + enc(v.value.trim()));
	});
}

function facts(ui, pairs) {
	const h = ui.h;
	return h('dl', { class: 'facts' }, pairs.filter(Boolean).flatMap(([a, b]) => [h('dt', {}, a), h('dd', {}, b)]));
}

function certFacts(ui, c) {
	return facts(ui, [
		['subject', c.subject], ['issuer', c.issuer],
		['valid', time(ui, c.not_before) + ' → ' + time(ui, c.not_after)],
		['SHA-256', h2(ui, c.sha256)], ['SHA-1', h2(ui, c.sha1)], ['serial', c.serial],
		['signature', c.sig_alg],
		['names', (c.san || []).join(', ') || '—'],
		['key', [c.key_type + (c.key_bits ? ' ' + c.key_bits + ' bits' : '') + ' ', c.key ? pivotLink(ui, 'key', c.key) : '']],
		['CA', c.is_ca ? 'yes' : 'no'], ['self-signed', c.self_signed ? 'yes' : 'no'],
		['DER', ui.h('a', { href: '/api/v1/tls/cert?hash=' + enc(c.sha256), download: c.sha256 + '.der' }, 'download (' + c.der_len + ' bytes)')],
	]);
}

function h2(ui, text) {
	return ui.h('span', { class: 'mono' }, text || '—');
}

async function viewTlsHome(ui) {
	const h = ui.h;
	const gen = ui.current();
	const out = h('div', {});
	ui.render(h('h1', {}, 'TLS'), tlsSearch(ui), out,
		h('p', {}, h('a', { href: '#/tls-weak' }, 'Weak-key findings')));
	try {
		const s = await D4.get('/api/v1/tls/summary');
		if (gen !== ui.current())
			return;
		out.replaceChildren(h('div', { class: 'cards' }, Object.entries(s).map(([k, v]) =>
			h('div', { class: 'card' }, h('div', { class: 'label' }, k), h('div', { class: 'value', 'data-card': k }, D4.fmt.num(v))))));
	} catch (e) {
		out.replaceChildren(ui.errorBox(e));
	}
}

async function viewTlsPivot(ui, kind, value) {
	const h = ui.h;
	const gen = ui.current();
	const head = h('div', { id: 'tls-pivot' });
	const links = h('tbody', {});
	const sessions = h('tbody', {});
	const linksBox = h('section', { class: 'scroll' }, h('h2', {}, 'Linked'), h('table', {}, h('thead', {}, h('tr', {},
		['kind', 'value', 'first seen', 'last seen', 'count'].map((x) => h('th', {}, x)))), links));
	const sessBox = h('section', { class: 'scroll' }, h('h2', {}, 'Sessions'), h('table', {}, h('thead', {}, h('tr', {},
		['time', 'client', 'server', 'SNI', 'JA3', 'JA4', 'certificate'].map((x) => h('th', {}, x)))), sessions));
	ui.render(h('h1', {}, 'TLS: ' + kind), tlsSearch(ui, kind, value), head, linksBox, sessBox);
	const q = D4.query({ kind, value });
	const linkPage = async (cursor) => {
		const r = await D4.get('/api/v1/tls/pivot' + q + (cursor ? '&cursor=' + enc(cursor) : ''));
		if (gen !== ui.current())
			return null;
		for (const l of r.links || [])
			links.append(h('tr', { 'data-kind': l.kind }, h('td', {}, l.kind), h('td', { class: 'wrap' }, pivotLink(ui, l.kind, l.value)),
				h('td', { class: 'nowrap' }, time(ui, l.first_seen)), h('td', { class: 'nowrap' }, time(ui, l.last_seen)),
				h('td', { class: 'num' }, D4.fmt.num(l.count))));
		const b = moreButton(ui, 'tls-links-more', r.next, linkPage);
		if (b)
			linksBox.append(b);
		return r;
	};
	const sessPage = async (cursor) => {
		const r = await D4.get('/api/v1/tls/sessions' + q + (cursor ? '&cursor=' + enc(cursor) : ''));
		if (gen !== ui.current())
			return;
		for (const s of r.sessions || [])
			sessions.append(h('tr', {}, h('td', { class: 'nowrap' }, time(ui, s.time)),
				h('td', { class: 'mono' }, s.client + ':' + s.client_port),
				h('td', {}, pivotLink(ui, 'server', s.server, s.server + ':' + s.server_port)),
				h('td', {}, s.sni ? pivotLink(ui, 'sni', s.sni) : '—'),
				h('td', {}, s.ja3_md5 ? pivotLink(ui, 'ja3', s.ja3_md5) : '—'),
				h('td', {}, s.ja4 ? pivotLink(ui, 'ja4', s.ja4) : '—'),
				h('td', {}, (s.certs || []).slice(0, 1).map((c) => pivotLink(ui, 'cert', c, c.slice(0, 16) + '…')))));
		const b = moreButton(ui, 'tls-sessions-more', r.next, sessPage);
		if (b)
			sessBox.append(b);
	};
	try {
		const p = await linkPage(null);
		if (p === null)
			return;
		ui.fill(head, facts(ui, [['value', h2(ui, p.value)], ['first seen', time(ui, p.first_seen)],
			['last seen', time(ui, p.last_seen)], ['count', D4.fmt.num(p.count)],
			p.detail ? ['string', h('span', { class: 'mono wrap' }, p.detail)] : null]),
		p.cert ? [h('h2', {}, 'Certificate'), certFacts(ui, p.cert)] : null,
		p.key ? [h('h2', {}, 'Public key'), facts(ui, [['type', p.key.type], ['bits', p.key.bits], ['curve', p.key.curve || '—'],
			['exponent', p.key.e || '—'], ['modulus', p.key.n ? h('span', { class: 'mono wrap' }, p.key.n) : '—']])] : null);
		await sessPage(null);
	} catch (e) {
		head.replaceChildren(ui.errorBox(e));
	}
}

async function viewTlsWeak(ui) {
	const h = ui.h;
	const gen = ui.current();
	const tbody = h('tbody', {});
	const box = h('section', { id: 'tls-findings' }, h('table', {}, h('thead', {}, h('tr', {},
		['found', 'kind', 'key', 'evidence'].map((x) => h('th', {}, x)))), tbody));
	ui.render(h('h1', {}, 'Weak keys'), h('p', { class: 'muted' }, 'Keys that share a prime with another ' +
		'modulus, small keys and exponents, and keys shared by several subjects or many servers.'), box);
	const page = async (cursor) => {
		const r = await D4.get('/api/v1/tls/findings' + (cursor ? '?cursor=' + enc(cursor) : ''));
		if (gen !== ui.current())
			return;
		for (const f of r.findings || [])
			tbody.append(h('tr', { 'data-kind': f.kind }, h('td', { class: 'nowrap' }, time(ui, f.time)),
				h('td', {}, ui.badge(f.kind, 'warn')), h('td', {}, pivotLink(ui, 'key', f.key, String(f.key).slice(0, 16) + '…')),
				h('td', { class: 'mono wrap' }, typeof f.evidence === 'string' ? f.evidence : JSON.stringify(f.evidence))));
		if (!tbody.children.length)
			box.replaceChildren(h('p', { class: 'muted', id: 'tls-no-findings' }, 'no weak key found'));
		const b = moreButton(ui, 'tls-findings-more', r.next, page);
		if (b)
			box.append(b);
	};
	try {
		await page(null);
	} catch (e) {
		box.replaceChildren(ui.errorBox(e));
	}
}

D4.views.push([/^\/tls$/, viewTlsHome]);
D4.views.push([/^\/tls-weak$/, viewTlsWeak]);
D4.views.push([/^\/tls\/(ja3|ja3s|ja4|cert|key|server|sni|subject)\/(.+)$/, viewTlsPivot]);
})();
