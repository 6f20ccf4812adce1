/*
 * chart.js — charts drawn as inline SVG, no library: stacked bars (a sensor's traffic by
 * type per day), lines (live throughput) and horizontal bars (packets per type today).
 *
 * Every chart has a y axis with round ticks, x labels thinned to fit, a <title> on each bar
 * or point (the browser shows it as a tooltip: the exact number) and a legend. Colours are
 * fixed per type name, so "pcap" has the same colour on every page. Sizes are in viewBox
 * units; CSS scales the picture to the width of its box.
 */
'use strict';

(function () {
const D4 = window.D4;
const NS = 'http://www.w3.org/2000/svg';

/* ---- formatting, shared with app.js ---- */

function num(n) {
	n = Number(n) || 0;
	const a = Math.abs(n);
	if (a >= 1e12) return (n / 1e12).toFixed(1) + 'T';
	if (a >= 1e9) return (n / 1e9).toFixed(1) + 'G';
	if (a >= 1e6) return (n / 1e6).toFixed(1) + 'M';
	if (a >= 1e4) return (n / 1e3).toFixed(1) + 'k';
	return Number.isInteger(n) ? String(n) : n.toFixed(1);
}

function bytes(n) {
	n = Number(n) || 0;
	const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
	let i = 0;
	while (Math.abs(n) >= 1024 && i < units.length - 1) {
		n /= 1024;
		i++;
	}
	return (i === 0 ? String(Math.round(n)) : n.toFixed(1)) + ' ' + units[i];
}

D4.fmt = { num, bytes, unit: (u) => u === 'bytes' ? bytes : num };

/* ---- colours ---- */

const TYPE_COLORS = {
	'pcap': '#1f77b4', 'meta-header': '#9467bd', 'log': '#2ca02c', 'dnscap': '#ff7f0e',
	'pcapng': '#17becf', 'ndjson': '#8c564b', 'yaf': '#e377c2', 'passivedns': '#d62728',
	'meta-defined': '#7f7f7f', 'ja3-jl': '#bcbd22', 'd4-telemetry': '#393b79',
	'fascia': '#637939', 'maltrail': '#8c6d31',
};
const SPARE = ['#3182bd', '#e6550d', '#31a354', '#756bb1', '#636363', '#6baed6', '#fd8d3c',
	'#74c476', '#9e9ac8', '#969696'];

D4.colorOf = function (name) {
	if (TYPE_COLORS[name])
		return TYPE_COLORS[name];
	let h = 0;
	for (const ch of String(name))
		h = (h * 31 + ch.charCodeAt(0)) >>> 0;
	return SPARE[h % SPARE.length];
};

/* ---- SVG helpers ---- */

function el(tag, attrs, ...children) {
	const e = document.createElementNS(NS, tag);
	for (const [k, v] of Object.entries(attrs || {}))
		e.setAttribute(k, v);
	for (const c of children)
		if (c !== null && c !== undefined)
			e.append(typeof c === 'string' ? document.createTextNode(c) : c);
	return e;
}

function tip(text) {
	return el('title', {}, text);
}

/* A round maximum and tick step for values up to max (1, 2 or 5 times a power of ten). */
function niceScale(max, ticks) {
	if (!(max > 0))
		return { max: 1, step: 1 };
	const raw = max / ticks;
	const p = Math.pow(10, Math.floor(Math.log10(raw)));
	const step = [1, 2, 2.5, 5, 10].map((m) => m * p).find((s) => s >= raw);
	return { max: Math.ceil(max / step) * step, step };
}

/* The frame: svg, y grid with labels, plot area geometry. */
function frame(w, h, m, maxValue, fmt, title) {
	const svg = el('svg', { viewBox: `0 0 ${w} ${h}`, class: 'chart', role: 'img' });
	if (title)
		svg.append(el('title', {}, title));
	const ph = h - m.top - m.bottom;
	const pw = w - m.left - m.right;
	const sc = niceScale(maxValue, 4);
	const y = (v) => m.top + ph - (v / sc.max) * ph;
	const grid = el('g', { class: 'grid' });
	for (let v = 0; v <= sc.max + sc.step / 2; v += sc.step) {
		grid.append(el('line', { x1: m.left, x2: m.left + pw, y1: y(v), y2: y(v) }));
		grid.append(el('text', { x: m.left - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'axis' },
			fmt(v)));
	}
	svg.append(grid);
	svg.append(el('line', { x1: m.left, x2: m.left, y1: m.top, y2: m.top + ph, class: 'axis-line' }));
	svg.append(el('line', { x1: m.left, x2: m.left + pw, y1: m.top + ph, y2: m.top + ph,
		class: 'axis-line' }));
	return { svg, y, pw, ph, top: m.top, left: m.left };
}

/* An HTML legend: a coloured square and a name (and a total) per series. */
function legend(series, fmt) {
	const ul = document.createElement('ul');
	ul.className = 'legend';
	for (const s of series) {
		const li = document.createElement('li');
		const sw = document.createElement('span');
		sw.className = 'swatch';
		// a presentation attribute on an SVG square: no inline style, CSP-safe
		const sq = el('svg', { viewBox: '0 0 10 10', width: 10, height: 10 },
			el('rect', { width: 10, height: 10, fill: s.color }));
		sw.append(sq);
		li.append(sw, document.createTextNode(' ' + s.name +
			(s.total !== undefined ? ' (' + fmt(s.total) + ')' : '')));
		ul.append(li);
	}
	return ul;
}

function wrap(svg, leg, cls) {
	const div = document.createElement('div');
	div.className = 'chart-box ' + (cls || '');
	div.append(svg);
	if (leg)
		div.append(leg);
	return div;
}

/*
 * Stacked bars: labels (x, e.g. days), series [{name, color, values[]}] aligned on labels.
 * opts: unit ('packets' or 'bytes'), title.
 */
D4.chart = {};
D4.chart.stackedBars = function (labels, series, opts) {
	const fmt = D4.fmt.unit(opts.unit);
	const W = 720, H = 240, m = { top: 12, right: 12, bottom: 34, left: 64 };
	const totals = labels.map((_, i) => series.reduce((a, s) => a + (s.values[i] || 0), 0));
	const f = frame(W, H, m, Math.max(0, ...totals), fmt, opts.title);
	const slot = f.pw / Math.max(1, labels.length);
	const bw = Math.max(2, Math.min(64, slot * 0.65));
	const bars = el('g', { class: 'bars' });
	labels.forEach((label, i) => {
		let base = 0;
		const x = f.left + slot * i + (slot - bw) / 2;
		for (const s of series) {
			const v = s.values[i] || 0;
			if (v <= 0)
				continue;
			const y0 = f.y(base), y1 = f.y(base + v);
			bars.append(el('rect', { x, y: y1, width: bw, height: Math.max(1, y0 - y1),
				fill: s.color, class: 'bar', 'data-series': s.name },
			tip(`${label} ${s.name}: ${fmt(v)}`)));
			base += v;
		}
	});
	f.svg.append(bars);
	// x labels: at most ~10, always the last one (today)
	const every = Math.ceil(labels.length / 10);
	labels.forEach((label, i) => {
		if ((labels.length - 1 - i) % every !== 0)
			return;
		f.svg.append(el('text', { x: f.left + slot * i + slot / 2, y: H - m.bottom + 16,
			'text-anchor': 'middle', class: 'axis' }, opts.xLabel ? opts.xLabel(label) : label));
	});
	if (totals.every((t) => t === 0))
		f.svg.append(el('text', { x: f.left + f.pw / 2, y: f.top + f.ph / 2, 'text-anchor': 'middle',
			class: 'empty' }, 'no traffic in this period'));
	return wrap(f.svg, legend(series.map((s) => ({ name: s.name, color: s.color,
		total: s.values.reduce((a, v) => a + (v || 0), 0) })), fmt));
};

/*
 * Lines over time: times[] (ms since the epoch), series [{name, color, values[]}].
 * opts: unit, title, span (ms shown on the x axis, ending now).
 */
D4.chart.lines = function (times, series, opts) {
	const fmt = D4.fmt.unit(opts.unit);
	// drawn for half the page's width: a smaller viewBox keeps the text readable
	const W = 520, H = 200, m = { top: 12, right: 16, bottom: 30, left: 76 };
	const max = Math.max(0, ...series.flatMap((s) => s.values));
	const f = frame(W, H, m, max, (v) => fmt(v) + '/s', opts.title);
	const now = times.length ? times[times.length - 1] : Date.now();
	const span = opts.span || 300000;
	const x = (t) => f.left + f.pw * (1 - (now - t) / span);
	for (let s = 0; s <= span / 1000; s += 60) {
		f.svg.append(el('text', { x: x(now - s * 1000), y: H - m.bottom + 16, 'text-anchor': 'middle',
			class: 'axis' }, s === 0 ? 'now' : `-${s / 60} min`));
	}
	for (const s of series) {
		const pts = times.map((t, i) => [x(t), f.y(s.values[i] || 0)]).filter((p) => p[0] >= f.left);
		if (pts.length === 0)
			continue;
		const d = pts.map((p, i) => (i ? 'L' : 'M') + p[0].toFixed(1) + ' ' + p[1].toFixed(1)).join(' ');
		const base = f.top + f.ph;
		f.svg.append(el('path', { d: `${d} L${pts[pts.length - 1][0].toFixed(1)} ${base} ` +
			`L${pts[0][0].toFixed(1)} ${base} Z`, fill: s.color, class: 'area' }));
		f.svg.append(el('path', { d, stroke: s.color, class: 'line' }));
		const last = pts[pts.length - 1];
		f.svg.append(el('circle', { cx: last[0], cy: last[1], r: 3, fill: s.color },
			tip(`${s.name}: ${fmt(s.values[s.values.length - 1])}/s`)));
	}
	if (times.length < 2)
		f.svg.append(el('text', { x: f.left + f.pw / 2, y: f.top + f.ph / 2, 'text-anchor': 'middle',
			class: 'empty' }, 'measuring…'));
	return wrap(f.svg, series.length > 1 ? legend(series, fmt) : null);
};

/* Horizontal bars: items [{name, value, color}], largest first. opts: unit, title, width, empty. */
D4.chart.hbars = function (items, opts) {
	const fmt = D4.fmt.unit(opts.unit);
	items = items.slice().sort((a, b) => b.value - a.value);
	// opts.width: the viewBox width; 520 suits half the page, larger for a full-width box
	const row = 26, W = opts.width || 520, m = { top: 8, right: 80, bottom: 8, left: 110 };
	const H = m.top + m.bottom + Math.max(1, items.length) * row;
	const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img' });
	if (opts.title)
		svg.append(el('title', {}, opts.title));
	const max = Math.max(1, ...items.map((i) => i.value));
	const pw = W - m.left - m.right;
	items.forEach((it, i) => {
		const y = m.top + i * row;
		const w = Math.max(1, (it.value / max) * pw);
		svg.append(el('text', { x: m.left - 8, y: y + row / 2 + 4, 'text-anchor': 'end',
			class: 'axis' }, it.name));
		svg.append(el('rect', { x: m.left, y: y + 4, width: w, height: row - 8, fill: it.color,
			class: 'bar' }, tip(`${it.name}: ${fmt(it.value)}`)));
		svg.append(el('text', { x: m.left + w + 6, y: y + row / 2 + 4, class: 'value' },
			fmt(it.value)));
	});
	if (items.length === 0)
		svg.append(el('text', { x: W / 2, y: H / 2 + 4, 'text-anchor': 'middle', class: 'empty' },
			opts.empty || 'nothing yet'));
	return wrap(svg, null);
};
})();
