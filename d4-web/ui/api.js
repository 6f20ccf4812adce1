/*
 * api.js — the UI's only way to the server: fetch() on the REST API (docs/web.md).
 *
 * The session is the HttpOnly cookie set by POST /api/v1/login, which this script never
 * sees; the CSRF token from the login reply is kept in sessionStorage (this tab only,
 * gone when it closes) and sent as X-CSRF-Token on every POST, PUT and DELETE.
 * Errors come back as {"status":"error","reason":...}: call() throws an ApiError with
 * that reason, and tells the app about the two states it must act on (401: log in
 * again; 403 "password change required": the change form).
 */
'use strict';

(function () {
const D4 = window.D4 = window.D4 || {};

D4.ApiError = class extends Error {
	constructor(status, reason) {
		super(reason);
		this.status = status;
	}
};

D4.session = {
	get csrf() { return sessionStorage.getItem('d4.csrf'); },
	get user() { return sessionStorage.getItem('d4.user'); },
	get role() { return sessionStorage.getItem('d4.role'); },
	get mustChange() { return sessionStorage.getItem('d4.must_change') === '1'; },
	set(login) {
		sessionStorage.setItem('d4.csrf', login.csrf);
		sessionStorage.setItem('d4.user', login.user);
		sessionStorage.setItem('d4.role', login.role);
		sessionStorage.setItem('d4.must_change', login.must_change ? '1' : '0');
	},
	passwordChanged() { sessionStorage.setItem('d4.must_change', '0'); },
	clear() {
		for (const k of ['d4.csrf', 'd4.user', 'd4.role', 'd4.must_change'])
			sessionStorage.removeItem(k);
	},
	// what the role may do; the API enforces it anyway, this only hides buttons
	canOperate() { return this.role === 'admin' || this.role === 'operator'; },
	isAdmin() { return this.role === 'admin'; },
};

// set by app.js: called on 401 and on "password change required"
D4.onUnauthorized = () => {};
D4.onMustChange = () => {};

/* One request. body: a value sent as JSON. Returns the parsed reply; throws D4.ApiError. */
D4.call = async function (method, path, body) {
	return (await request(method, path, body)).json;
};

/* A page of a paged list: { rows, next } where next is the X-Next-Cursor (null at the end). */
D4.page = async function (path) {
	const r = await request('GET', path);
	return { rows: r.json, next: r.resp.headers.get('X-Next-Cursor') };
};

async function request(method, path, body) {
	const headers = { 'Accept': 'application/json' };
	const opts = { method, headers, credentials: 'same-origin', cache: 'no-store' };
	if (body !== undefined) {
		headers['Content-Type'] = 'application/json';
		opts.body = JSON.stringify(body);
	}
	if (method !== 'GET' && D4.session.csrf)
		headers['X-CSRF-Token'] = D4.session.csrf;
	let resp;
	try {
		resp = await fetch(path, opts);
	} catch (e) {
		throw new D4.ApiError(0, 'the server does not answer (' + e.message + ')');
	}
	let json = null;
	try {
		json = await resp.json();
	} catch (e) {
		json = null;
	}
	if (resp.ok)
		return { json, resp };
	const reason = (json && json.reason) || resp.statusText || ('HTTP ' + resp.status);
	const err = new D4.ApiError(resp.status, reason);
	if (resp.status === 401 && path !== '/api/v1/login' && path !== '/api/v1/password')
		D4.onUnauthorized(err);
	else if (resp.status === 403 && reason === 'password change required')
		D4.onMustChange(err);
	throw err;
}

D4.get = (path) => D4.call('GET', path);
D4.post = (path, body) => D4.call('POST', path, body);
D4.put = (path, body) => D4.call('PUT', path, body);
D4.del = (path) => D4.call('DELETE', path);

/* A query string from an object, skipping empty values. */
D4.query = function (params) {
	const q = new URLSearchParams();
	for (const [k, v] of Object.entries(params))
		if (v !== undefined && v !== null && v !== '')
			q.set(k, v);
	const s = q.toString();
	return s ? '?' + s : '';
};
})();
