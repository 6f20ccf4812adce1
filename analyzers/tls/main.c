/*
 * d4-analyzer-tls — passive TLS: fingerprints (JA3, JA3S, JA4), certificates, keys and weak
 * keys, from D4 pcap streams (type 1), from the ja3-jl records of D4's Go TLS sensor
 * (type 254, meta-type "ja3-jl": JSON objects, indented and written back to back, or one a
 * line), or from a pcap/pcapng file read directly (--pcap FILE).
 *
 * The layers (docs/tls-analyzer.md):
 *   pcap records → flow.c (decode, TCP reassembly of the first bytes of each direction)
 *   → tls_conn (helper A: records, handshake messages, JA3/JA3S/JA4) → tls_x509 (certificates)
 *   → store.c (LMDB: sessions, certificates, keys, pivots and links, findings)
 *   with weakkeys (GCD of each new RSA modulus against every stored one, size and exponent
 *   checks) called by the store for each new key.
 *
 * Every flow that showed a ClientHello or a ServerHello becomes one session, whatever ended
 * it (handshake seen, refusal, idle, eviction, end of input): nothing is skipped silently. The
 * counters printed at exit say how many flows ended each way and which limits were reached.
 *
 * Durability: sessions are written in large LMDB transactions committed by flush_cb, before
 * the library acknowledges. A handshake is written when its flow is released, so the records of
 * a flow still open in the flow table at an ACK are acknowledged before their session is stored:
 * a crash loses those (at most the live flows, counted by flows_live_max), and replaying from the
 * last ACK may store a few sessions twice. Flows expire by capture time (packet timestamps), so an
 * idle sensor keeps its last flows in memory until its next packets or the end of its session.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <pcap/pcap.h>

#include "d4_analyzer.h"
#include "flow.h"
#include "query.h"
#include "store.h"
#include "tls_conn.h"
#include "tls_x509.h"
#include "weakkeys.h"

#define TLSA_NAME "d4-analyzer-tls"
#define TLSA_JL_MAX_OBJECT (4u << 20) /* a ja3-jl record larger than this is skipped, counted */
#define TLSA_CERT_CACHE 1024u
#define TLSA_WK_INCREMENTAL_MAX 16u
#define TLSA_REPORT_EVERY 600 /* seconds between two counter reports in protocol mode */ /* more new RSA keys per commit: one batch GCD instead */ /* parsed certificates kept, direct-mapped by a hash of the DER */

struct tlsa_counters {
	uint64_t handshakes;        /* sessions written (a ClientHello or ServerHello seen) */
	uint64_t client_hellos;
	uint64_t server_hellos;
	uint64_t complete;          /* tracker said DONE */
	uint64_t partial;           /* flow ended before the handshake completed */
	uint64_t not_tls;
	uint64_t refused;           /* tracker stopped on a refusal (reasons below) */
	uint64_t reasons[TLS_R__COUNT];
	uint64_t certs, cert_errors;
	uint64_t no_hello;          /* flows with payload but no hello at all */
	uint64_t jl_records, jl_sessions, jl_bad, jl_oversize, jl_garbage;
	uint64_t pcap_sessions, pcap_malformed, pcap_records;
	uint64_t store_errors;
	uint64_t oom;               /* flows dropped: no memory for their tracker */
	uint64_t wk_checked, wk_batches, wk_errors;
	struct tls_flow_stats flow; /* summed over every flow table */
};

/* A new RSA modulus waiting for the shared-prime check at the next commit. */
struct wk_pending {
	uint64_t id;
	uint8_t *n;
	size_t len;
};

struct tlsa_ctx {
	/* options */
	char *db; /* owned */
	const char *pcap_file;
	const char *gcd_file; /* --batch-gcd FILE: moduli, one hex a line */
	unsigned gcd_threads;
	const char *query;        /* --query KIND (with query_value), "sessions:KIND", "findings", "summary" */
	const char *query_value;
	const char *query_cursor;
	unsigned query_limit;
	bool json;
	bool no_store;
	bool no_sync;
	struct tls_flow_config flow_cfg;
	unsigned shared_key_servers;
	size_t map_size; /* LMDB map, bytes; 0: the store's default */
	/* state */
	struct tls_store *store;
	struct wk_set *wk;
	struct wk_pending *pend;   /* new RSA keys since the last commit */
	size_t npend, pend_cap;
	struct tls_limits limits;
	struct tlsa_counters c;
	struct cert_cache *certs;  /* NULL: no cache (out of memory at start) */
	const uint8_t *cur_sensor; /* uuid of the session being handled */
	struct tlsa_sess *open;    /* open pcap sessions */
	time_t last_report;        /* idle_cb: when the counters were last printed */
	int failed;                /* a store error: stop */
};

/*
 * Parsing a certificate with OpenSSL costs tens of microseconds (most of it in OpenSSL's locks),
 * and the same few certificates come back in most handshakes: the parsed form is cached, keyed
 * by the DER itself (a 64-bit hash to find the slot, the bytes compared to be sure).
 */
struct cert_slot {
	uint64_t hash;
	uint8_t *der;
	size_t len;
	struct tls_cert_info info;
	enum tls_reason reason;
};

struct cert_cache {
	struct cert_slot slots[TLSA_CERT_CACHE];
	uint64_t hits, misses;
};

/* Per flow: the handshake tracker and what was fed to it. */
struct tlsa_flow {
	struct tls_conn *tc;
	uint32_t fed[2];
	int client; /* flow endpoint that is the TLS client, -1 until known */
	bool emitted;
};

/*
 * D4's Go sensor writes each session as json.MarshalIndent output straight to stdout: indented
 * objects back to back, no separator. The splitter finds each top-level object by counting
 * braces and brackets outside strings (one pass, byte by byte), keeps at most TLSA_JL_MAX_OBJECT
 * bytes of it, and hands it whole to the parser. JSON lines (one compact object a line) split
 * the same way. Bytes outside any object other than whitespace are skipped and counted.
 */
struct jl_splitter {
	uint8_t *buf;
	size_t len, cap;
	unsigned depth;
	bool in_str, esc;
	bool oversize; /* the current object passed the limit: dropped until it closes */
	bool garbage;  /* inside a run of bytes outside any object */
};

typedef void (*jl_object_cb)(void *arg, const uint8_t *obj, size_t len);

static int jl_append(struct jl_splitter *j, uint8_t ch)
{
	if (j->oversize)
		return 0;
	if (j->len == TLSA_JL_MAX_OBJECT) {
		j->oversize = true;
		return 1;
	}
	if (j->len == j->cap) {
		size_t nc = j->cap ? 2 * j->cap : 4096;
		uint8_t *b = realloc(j->buf, nc);
		if (!b)
			return -1;
		j->buf = b;
		j->cap = nc;
	}
	j->buf[j->len++] = ch;
	return 0;
}

/* 0, or -1 out of memory. Counters: oversize objects, garbage runs. */
static int jl_feed(struct jl_splitter *j, const uint8_t *p, size_t n, jl_object_cb cb, void *arg,
                   uint64_t *oversize, uint64_t *garbage)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t ch = p[i];
		if (!j->depth) {
			if (ch == '{') {
				j->depth = 1;
				j->in_str = j->esc = j->oversize = j->garbage = false;
				j->len = 0;
				if (jl_append(j, ch) < 0)
					return -1;
			} else if (ch != ' ' && ch != '\n' && ch != '\r' && ch != '\t' && !j->garbage) {
				j->garbage = true;
				(*garbage)++;
			}
			continue;
		}
		int r = jl_append(j, ch);
		if (r < 0)
			return -1;
		if (r > 0)
			(*oversize)++;
		if (j->in_str) {
			if (j->esc)
				j->esc = false;
			else if (ch == '\\')
				j->esc = true;
			else if (ch == '"')
				j->in_str = false;
		} else if (ch == '"') {
			j->in_str = true;
		} else if (ch == '{' || ch == '[') {
			j->depth++;
		} else if ((ch == '}' || ch == ']') && --j->depth == 0 && !j->oversize) {
			cb(arg, j->buf, j->len);
		}
	}
	return 0;
}

/* End of the session: true when an object was left open (truncated). */
static bool jl_end(struct jl_splitter *j)
{
	bool open = j->depth > 0;
	free(j->buf);
	memset(j, 0, sizeof(*j));
	return open;
}

/* Per D4 session. */
struct tlsa_sess {
	bool jl;
	struct d4_reasm_pcap pcap;
	struct jl_splitter jls;
	struct tls_flow_table *flows;
	time_t last_data;                /* wall clock of the last DATA (idle_cb) */
	struct tlsa_sess *prev, *next;   /* open pcap sessions, for idle_cb */
};

/* ---- output ---- */

static void addr_text(const uint8_t a[16], char *out)
{
	static const uint8_t v4pre[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	if (!memcmp(a, v4pre, 12))
		inet_ntop(AF_INET, a + 12, out, INET6_ADDRSTRLEN);
	else
		inet_ntop(AF_INET6, a, out, INET6_ADDRSTRLEN);
}

static json_t *hello_json(const struct tls_client_hello *ch)
{
	json_t *alpn = json_array();
	for (size_t i = 0; i < ch->n_alpn; i++)
		json_array_append_new(alpn, json_string(ch->alpn[i].s ? ch->alpn[i].s : ""));
	json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:o}", "ja3", ch->ja3 ? ch->ja3 : "",
	                      "ja3_md5", ch->ja3_md5, "ja4", ch->ja4, "ja4_r", ch->ja4_r ? ch->ja4_r : "",
	                      "ja4_o", ch->ja4_o, "ja4_ro", ch->ja4_ro ? ch->ja4_ro : "", "version",
	                      ch->version, "alpn", alpn);
	if (j && ch->sni.s) {
		json_t *sni = json_stringn_nocheck(ch->sni.s, strlen(ch->sni.s));
		json_object_set_new(j, "sni", sni ? sni : json_null());
	}
	return j;
}

static void print_json(const struct tls_flow *f, int client, const struct tls_conn_info *in,
                       const struct tls_cert_info *ci, size_t nci, const char *end)
{
	char ca[INET6_ADDRSTRLEN], sa[INET6_ADDRSTRLEN];
	addr_text(f->addr[client], ca);
	addr_text(f->addr[!client], sa);
	json_t *j = json_pack("{s:I, s:I, s:s, s:i, s:s, s:i, s:s, s:s}", "time", (json_int_t)f->first_ts,
	                      "usec", (json_int_t)f->first_usec, "client", ca, "client_port",
	                      f->port[client], "server", sa, "server_port", f->port[!client], "end", end,
	                      "reason", tls_reason_str(in->reason));
	if (!j)
		return;
	json_t *hellos = json_array();
	for (unsigned i = 0; i < in->n_client_hello && i < 2; i++)
		json_array_append_new(hellos, hello_json(&in->client_hello[i]));
	json_object_set_new(j, "client_hellos", hellos);
	if (in->n_client_hello) {
		const struct tls_client_hello *ch = &in->client_hello[0];
		json_object_set_new(j, "ja3", json_string(ch->ja3 ? ch->ja3 : ""));
		json_object_set_new(j, "ja3_md5", json_string(ch->ja3_md5));
		json_object_set_new(j, "ja4", json_string(ch->ja4));
		if (ch->sni.s)
			json_object_set(j, "sni", json_object_get(json_array_get(hellos, 0), "sni"));
	}
	if (in->have_server_hello) {
		json_object_set_new(j, "ja3s", json_string(in->server_hello.ja3s ? in->server_hello.ja3s : ""));
		json_object_set_new(j, "ja3s_md5", json_string(in->server_hello.ja3s_md5));
		json_object_set_new(j, "server_version", json_integer(in->server_hello.version));
	}
	json_t *certs = json_array();
	for (size_t i = 0; i < nci; i++) {
		if (!ci[i].subject) {
			json_array_append_new(certs, json_null());
			continue;
		}
		json_array_append_new(
			certs, json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:s}", "sha1", ci[i].sha1, "sha256",
		                         ci[i].sha256, "subject", ci[i].subject, "issuer",
		                         ci[i].issuer ? ci[i].issuer : "", "key_type",
		                         ci[i].key_type_name ? ci[i].key_type_name : "unknown", "key_bits",
		                         ci[i].key_bits, "key", ci[i].spki_sha256));
	}
	json_object_set_new(j, "certs", certs);
	char *s = json_dumps(j, JSON_COMPACT);
	if (s) {
		fputs(s, stdout);
		fputc('\n', stdout);
		free(s);
	}
	json_decref(j);
}

/* ---- weak keys (called by the store for each new key) ---- */

static json_t *hex_json(const mpz_t v)
{
	if (!mpz_sgn(v))
		return json_null();
	char *h = wk_mpz_hex(v);
	json_t *j = h ? json_string(h) : json_null();
	free(h);
	return j;
}

static void add_flag_findings(struct tlsa_ctx *c, unsigned flags, const char *hash, json_t *ev)
{
	for (unsigned bit = 1; bit && bit <= WK_EC_SMALL; bit <<= 1) {
		if (!(flags & bit))
			continue;
		if (tls_store_add_finding(c->store, wk_flag_name(bit), hash, (uint64_t)time(NULL), ev))
			c->c.store_errors++;
	}
}

/* Findings of a GCD check (incremental or batch): one per flag and key, with the factors and
 * the peer keys as evidence. */
static void report_gcd(struct tlsa_ctx *c, const struct wk_result *res)
{
	for (size_t i = 0; i < res->count; i++) {
		const struct wk_finding *fd = &res->findings[i];
		char hash[65];
		if (tls_store_key_hash(c->store, fd->id, hash))
			continue;
		json_t *peers = json_array();
		for (size_t p = 0; p < fd->n_peers; p++) {
			char ph[65];
			if (!tls_store_key_hash(c->store, fd->peers[p], ph))
				json_array_append_new(peers, json_string(ph));
		}
		json_t *ev = json_pack("{s:o, s:I, s:o, s:o}", "peers", peers, "peers_total",
		                       (json_int_t)fd->n_peers_total, "p", hex_json(fd->p), "q", hex_json(fd->q));
		add_flag_findings(c, fd->flags & (WK_SHARED_PRIME | WK_DUPLICATE), hash, ev);
		json_decref(ev);
	}
}

static int wk_pending_add(struct tlsa_ctx *c, uint64_t id, const uint8_t *n, size_t len)
{
	if (c->npend == c->pend_cap) {
		size_t nc = c->pend_cap ? 2 * c->pend_cap : 64;
		struct wk_pending *p = realloc(c->pend, nc * sizeof(*p));
		if (!p)
			return -ENOMEM;
		c->pend = p;
		c->pend_cap = nc;
	}
	struct wk_pending *p = &c->pend[c->npend];
	p->n = malloc(len);
	if (!p->n)
		return -ENOMEM;
	memcpy(p->n, n, len);
	p->len = len;
	p->id = id;
	c->npend++;
	return 0;
}

/*
 * The shared-prime check of the RSA keys that are new since the last call (called before each
 * commit). A few new keys: each is checked against the whole set (linear in its size). Many (a
 * first import, a busy start): they are added, and one batch GCD over the whole set finds
 * everything at once, O(n log^2 n) instead of n times O(n); findings already stored are
 * deduplicated by the store.
 */
static void wk_process(struct tlsa_ctx *c)
{
	if (!c->npend || !c->wk || !c->store)
		goto out;
	struct wk_result res = {0};
	if (c->npend <= TLSA_WK_INCREMENTAL_MAX) {
		for (size_t i = 0; i < c->npend; i++) {
			c->c.wk_checked++;
			if (wk_set_check_bytes(c->wk, c->pend[i].n, c->pend[i].len, c->pend[i].id, true, &res)) {
				c->c.wk_errors++;
				continue;
			}
			report_gcd(c, &res);
			wk_result_free(&res);
		}
		goto out;
	}
	for (size_t i = 0; i < c->npend; i++)
		if (wk_set_add_bytes(c->wk, c->pend[i].n, c->pend[i].len, c->pend[i].id))
			c->c.wk_errors++;
	c->c.wk_checked += c->npend;
	c->c.wk_batches++;
	if (wk_set_batch_gcd(c->wk, &res)) {
		c->c.wk_errors++;
		goto out;
	}
	report_gcd(c, &res);
	wk_result_free(&res);
out:
	for (size_t i = 0; i < c->npend; i++)
		free(c->pend[i].n);
	c->npend = 0;
}

static void on_new_key(void *arg, uint64_t key_id, const char *spki, const struct tls_cert_info *ci)
{
	struct tlsa_ctx *c = arg;
	if (ci->rsa_n && ci->rsa_n_len) {
		struct wk_rsa_report rep;
		memset(&rep, 0, sizeof(rep));
		if (wk_check_rsa_bytes(ci->rsa_n, ci->rsa_n_len, ci->rsa_e, ci->rsa_e_len, NULL, &rep) == 0) {
			if (rep.flags) {
				json_t *ev = json_pack("{s:I, s:I, s:o, s:o, s:I}", "bits", (json_int_t)rep.bits,
				                       "small_factor", (json_int_t)rep.small_factor, "p",
				                       hex_json(rep.p), "q", hex_json(rep.q), "e",
				                       (json_int_t)ci->rsa_e_u64);
				add_flag_findings(c, rep.flags, spki, ev);
				json_decref(ev);
			}
			wk_rsa_report_clear(&rep);
		} else {
			c->c.wk_errors++;
		}
		if (c->wk && wk_pending_add(c, key_id, ci->rsa_n, ci->rsa_n_len))
			c->c.wk_errors++;
	} else if (ci->key_type == TLS_KEY_EC) {
		unsigned fl = wk_check_ec((unsigned)ci->key_bits, NULL);
		if (fl) {
			json_t *ev = json_pack("{s:i, s:s}", "bits", ci->key_bits, "curve", ci->ec_curve);
			add_flag_findings(c, fl, spki, ev);
			json_decref(ev);
		}
	}
}

static int wk_load_cb(void *arg, uint64_t id, const uint8_t *n, size_t nlen)
{
	struct tlsa_ctx *c = arg;
	return wk_set_add_bytes(c->wk, n, nlen, id) == -ENOMEM ? -ENOMEM : 0;
}

/* ---- certificate cache ---- */

static uint64_t der_hash(const uint8_t *p, size_t n)
{
	uint64_t h = 0x9e3779b97f4a7c15ull ^ n;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t v;
		memcpy(&v, p + i, 8);
		h = (h ^ v) * 0xff51afd7ed558ccdull;
		h ^= h >> 32;
	}
	for (; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h ^ (h >> 29);
}

/* The parsed certificate of slot h % TLSA_CERT_CACHE (owned by the cache, valid until that slot
 * is reused), or NULL and the reason it was refused. */
static const struct tls_cert_info *cert_parse(struct cert_cache *cc, uint64_t h, const uint8_t *der,
                                              size_t len, enum tls_reason *why)
{
	struct cert_slot *sl = &cc->slots[h % TLSA_CERT_CACHE];
	if (sl->der && sl->hash == h && sl->len == len && !memcmp(sl->der, der, len)) {
		cc->hits++;
		*why = sl->reason;
		return sl->reason == TLS_R_OK ? &sl->info : NULL;
	}
	cc->misses++;
	tls_cert_info_free(&sl->info);
	free(sl->der);
	sl->der = malloc(len ? len : 1);
	sl->hash = 0;
	sl->reason = tls_x509_parse(der, len, &sl->info);
	*why = sl->reason;
	if (sl->der) {
		memcpy(sl->der, der, len);
		sl->hash = h;
		sl->len = len;
	}
	return sl->reason == TLS_R_OK ? &sl->info : NULL;
}

static void cert_cache_free(struct cert_cache *cc)
{
	if (!cc)
		return;
	for (unsigned i = 0; i < TLSA_CERT_CACHE; i++) {
		tls_cert_info_free(&cc->slots[i].info);
		free(cc->slots[i].der);
	}
	free(cc);
}

/* ---- sessions from the TLS tracker ---- */

static void store_session(struct tlsa_ctx *c, const struct tls_store_session *s)
{
	if (!c->store || c->failed)
		return;
	int rc = tls_store_add_session(c->store, s);
	if (rc) {
		fprintf(stderr, TLSA_NAME ": store: %s\n", tls_store_strerror(rc));
		c->c.store_errors++;
		c->failed = rc;
	}
}

/* Stores (and prints) the flow's handshake; false when it showed no hello at all. */
static bool emit(struct tlsa_ctx *c, struct tls_flow *f, struct tlsa_flow *st, const char *end)
{
	const struct tls_conn_info *in = tls_conn_info(st->tc);
	st->emitted = true;
	if (!in->n_client_hello && !in->have_server_hello) {
		c->c.no_hello++;
		return false;
	}
	int client = st->client < 0 ? 0 : st->client;
	c->c.handshakes++;
	c->c.client_hellos += in->n_client_hello;
	c->c.server_hellos += in->have_server_hello;
	/* copies of the cached parsed certificates: a later slot may evict an earlier one */
	struct tls_cert_info ci[TLS_DEFAULT_MAX_CERTS];
	struct tls_store_cert sc[TLS_DEFAULT_MAX_CERTS];
	bool owned[TLS_DEFAULT_MAX_CERTS] = {false};
	uint64_t hs[TLS_DEFAULT_MAX_CERTS];
	size_t nc = in->n_certs < TLS_DEFAULT_MAX_CERTS ? in->n_certs : TLS_DEFAULT_MAX_CERTS;
	memset(ci, 0, sizeof(ci));
	for (size_t i = 0; i < nc; i++) {
		c->c.certs++;
		sc[i].der = in->certs[i].der;
		sc[i].len = in->certs[i].len;
		sc[i].info = NULL;
		enum tls_reason r;
		hs[i] = der_hash(sc[i].der, sc[i].len);
		/* two certificates of this chain in one slot: the second is parsed outside the cache,
		 * so that the first one's strings stay valid */
		bool clash = !c->certs;
		for (size_t j = 0; j < i && !clash; j++)
			clash = hs[j] % TLSA_CERT_CACHE == hs[i] % TLSA_CERT_CACHE;
		const struct tls_cert_info *p = NULL;
		if (clash) {
			r = tls_x509_parse(sc[i].der, sc[i].len, &ci[i]);
			owned[i] = r == TLS_R_OK;
			p = owned[i] ? &ci[i] : NULL;
		} else {
			p = cert_parse(c->certs, hs[i], sc[i].der, sc[i].len, &r);
			if (p)
				ci[i] = *p; /* shallow: the strings stay the cache's */
		}
		if (p) {
			sc[i].info = &ci[i];
		} else {
			c->c.cert_errors++;
			c->c.reasons[r < TLS_R__COUNT ? r : TLS_R_NOMEM]++;
		}
	}
	struct tls_store_session s;
	memset(&s, 0, sizeof(s));
	s.time = f->first_ts;
	s.usec = (uint32_t)f->first_usec;
	memcpy(s.client, f->addr[client], 16);
	memcpy(s.server, f->addr[!client], 16);
	s.client_port = f->port[client];
	s.server_port = f->port[!client];
	if (c->cur_sensor)
		memcpy(s.sensor, c->cur_sensor, 16);
	if (in->n_client_hello) {
		const struct tls_client_hello *ch = &in->client_hello[0];
		s.ja3 = ch->ja3;
		s.ja3_md5 = ch->ja3_md5;
		s.ja4 = ch->ja4;
		s.ja4_r = ch->ja4_r;
		s.sni = ch->sni.s;
		s.alpn = ch->n_alpn ? ch->alpn[0].s : NULL;
		s.version = ch->version;
	}
	if (in->have_server_hello) {
		s.ja3s = in->server_hello.ja3s;
		s.ja3s_md5 = in->server_hello.ja3s_md5;
		s.version = in->server_hello.version;
	}
	s.n_certs = nc;
	s.certs = sc;
	store_session(c, &s);
	if (c->json)
		print_json(f, client, in, ci, nc, end);
	for (size_t i = 0; i < nc; i++)
		if (owned[i])
			tls_cert_info_free(&ci[i]);
	return true;
}

static int flow_data(void *arg, struct tls_flow *f, unsigned dir, const uint8_t *data, size_t len)
{
	struct tlsa_ctx *c = arg;
	struct tlsa_flow *st = f->user;
	if (!st) {
		st = calloc(1, sizeof(*st));
		if (!st) {
			c->c.oom++; /* counted: the flow is dropped */
			return TLS_FLOW_DONE;
		}
		st->tc = tls_conn_new(&c->limits);
		if (!st->tc) {
			c->c.oom++;
			free(st);
			return TLS_FLOW_DONE;
		}
		st->client = -1;
		f->user = st;
	}
	if (st->emitted)
		return TLS_FLOW_DONE;
	if (st->client < 0) {
		/* with the SYN, endpoint 0 began; midstream, the first handshake message tells */
		if (!f->midstream)
			st->client = 0;
		else if (len >= 6 && data[0] == 0x16 && data[5] == 2)
			st->client = (int)!dir;
		else
			st->client = (int)dir;
	}
	if (len <= st->fed[dir])
		return TLS_FLOW_MORE;
	enum tls_dir td = (int)dir == st->client ? TLS_DIR_CLIENT : TLS_DIR_SERVER;
	enum tls_status ts = tls_conn_feed(st->tc, td, data + st->fed[dir], len - st->fed[dir]);
	st->fed[dir] = (uint32_t)len;
	switch (ts) {
	case TLS_MORE: return TLS_FLOW_MORE;
	case TLS_DONE: c->c.complete++; emit(c, f, st, "done"); return TLS_FLOW_DONE;
	case TLS_NOT_TLS: c->c.not_tls++; st->emitted = true; return TLS_FLOW_DONE;
	case TLS_ERROR:
	default: {
		enum tls_reason r = tls_conn_reason(st->tc);
		c->c.refused++;
		c->c.reasons[r < TLS_R__COUNT ? r : TLS_R_NOMEM]++;
		emit(c, f, st, "refused");
		return TLS_FLOW_DONE;
	}
	}
}

static void flow_end(void *arg, struct tls_flow *f, enum tls_flow_end why)
{
	struct tlsa_ctx *c = arg;
	struct tlsa_flow *st = f->user;
	if (!st)
		return;
	if (!st->emitted && emit(c, f, st, tls_flow_end_str(why)))
		c->c.partial++;
	tls_conn_free(st->tc);
	free(st);
	f->user = NULL;
}

static void stats_add(struct tls_flow_stats *to, const struct tls_flow_stats *s)
{
	const uint64_t *a = (const uint64_t *)s;
	uint64_t *b = (uint64_t *)to;
	size_t n = sizeof(*s) / sizeof(uint64_t);
	for (size_t i = 0; i < n; i++)
		b[i] += a[i];
	/* maxima: the largest, not a sum */
	to->flows_live_max = to->flows_live_max - s->flows_live_max > s->flows_live_max
	                             ? to->flows_live_max - s->flows_live_max
	                             : s->flows_live_max;
	to->buffered_max = to->buffered_max - s->buffered_max > s->buffered_max
	                           ? to->buffered_max - s->buffered_max
	                           : s->buffered_max;
}

static struct tls_flow_table *table_new(struct tlsa_ctx *c)
{
	return tls_flow_table_new(&c->flow_cfg, flow_data, flow_end, c);
}

static void table_done(struct tlsa_ctx *c, struct tls_flow_table *t)
{
	if (!t)
		return;
	tls_flow_table_finish(t);
	stats_add(&c->c.flow, tls_flow_stats(t));
	tls_flow_table_free(t);
}

/* ---- ja3-jl records (D4's Go TLS sensor) ---- */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	const int64_t era = (y >= 0 ? y : y - 399) / 400;
	const unsigned yoe = (unsigned)(y - era * 400);
	const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

/* RFC 3339 as Go writes it ("2019-06-03T14:05:22.123456789+02:00" or "...Z"); 0 if not. */
static uint64_t parse_rfc3339(const char *s, uint32_t *usec)
{
	int y, mo, d, h, mi, sec, n = 0;
	*usec = 0;
	if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6)
		return 0;
	const char *p = s + n;
	if (*p == '.') {
		uint32_t frac = 0;
		int digits = 0;
		for (p++; *p >= '0' && *p <= '9'; p++)
			if (digits < 6) {
				frac = frac * 10 + (uint32_t)(*p - '0');
				digits++;
			}
		while (digits++ < 6)
			frac *= 10;
		*usec = frac;
	}
	int64_t off = 0;
	if (*p == '+' || *p == '-') {
		int oh = 0, om = 0;
		if (sscanf(p + 1, "%2d:%2d", &oh, &om) == 2)
			off = (*p == '+' ? 1 : -1) * (oh * 3600 + om * 60);
	}
	if (mo < 1 || mo > 12 || d < 1 || d > 31)
		return 0;
	int64_t t = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + sec - off;
	return t > 0 ? (uint64_t)t : 0;
}

static bool parse_addr(const char *s, uint8_t out[16])
{
	memset(out, 0, 16);
	if (!s)
		return false;
	if (inet_pton(AF_INET6, s, out) == 1)
		return true;
	uint8_t v4[4];
	if (inet_pton(AF_INET, s, v4) == 1) {
		out[10] = out[11] = 0xff;
		memcpy(out + 12, v4, 4);
		return true;
	}
	return false;
}

static uint16_t port_of(json_t *v)
{
	if (json_is_integer(v))
		return (uint16_t)json_integer_value(v);
	const char *s = json_string_value(v);
	return s ? (uint16_t)strtoul(s, NULL, 10) : 0;
}

static void jl_object(void *arg, const uint8_t *obj, size_t len)
{
	struct tlsa_ctx *c = arg;
	c->c.jl_records++;
	if (c->failed)
		return;
	json_t *j = json_loadb((const char *)obj, len, 0, NULL);
	if (!json_is_object(j)) {
		json_decref(j);
		c->c.jl_bad++;
		return;
	}
	struct tls_store_session s;
	memset(&s, 0, sizeof(s));
	if (!parse_addr(json_string_value(json_object_get(j, "ClientIP")), s.client) ||
	    !parse_addr(json_string_value(json_object_get(j, "ServerIP")), s.server)) {
		json_decref(j);
		c->c.jl_bad++;
		return;
	}
	s.client_port = port_of(json_object_get(j, "ClientPort"));
	s.server_port = port_of(json_object_get(j, "ServerPort"));
	s.time = parse_rfc3339(json_string_value(json_object_get(j, "Timestamp")), &s.usec);
	if (c->cur_sensor)
		memcpy(s.sensor, c->cur_sensor, 16);
	s.ja3 = json_string_value(json_object_get(j, "JA3"));
	s.ja3_md5 = json_string_value(json_object_get(j, "JA3Digest"));
	s.ja3s = json_string_value(json_object_get(j, "JA3S"));
	s.ja3s_md5 = json_string_value(json_object_get(j, "JA3SDigest"));
	json_t *certs = json_object_get(j, "Certificates");
	size_t n = json_is_array(certs) ? json_array_size(certs) : 0;
	if (n > TLS_DEFAULT_MAX_CERTS)
		n = TLS_DEFAULT_MAX_CERTS;
	struct tls_cert_info ci[TLS_DEFAULT_MAX_CERTS];
	struct tls_store_cert sc[TLS_DEFAULT_MAX_CERTS];
	uint8_t *ders[TLS_DEFAULT_MAX_CERTS] = {0};
	memset(ci, 0, sizeof(ci));
	size_t nc = 0;
	for (size_t i = 0; i < n; i++) {
		/* Go's x509.Certificate marshals Raw (the DER) as base64 */
		const char *b64 = json_string_value(json_object_get(json_array_get(certs, i), "Raw"));
		if (!b64)
			continue;
		size_t bl = strlen(b64);
		if (bl > INT_MAX / 2)
			continue;
		ders[nc] = malloc(bl / 4 * 3 + 3);
		if (!ders[nc])
			continue;
		int dl = EVP_DecodeBlock(ders[nc], (const unsigned char *)b64, (int)bl);
		c->c.certs++;
		if (dl <= 0) {
			c->c.cert_errors++;
			free(ders[nc]);
			ders[nc] = NULL;
			continue;
		}
		/* EVP_DecodeBlock counts the padding as zero bytes */
		if (bl >= 1 && b64[bl - 1] == '=')
			dl--;
		if (bl >= 2 && b64[bl - 2] == '=')
			dl--;
		sc[nc].der = ders[nc];
		sc[nc].len = (size_t)dl;
		sc[nc].info = NULL;
		if (tls_x509_parse(ders[nc], (size_t)dl, &ci[nc]) == TLS_R_OK)
			sc[nc].info = &ci[nc];
		else
			c->c.cert_errors++;
		nc++;
	}
	s.n_certs = nc;
	s.certs = sc;
	c->c.jl_sessions++;
	c->c.handshakes++;
	store_session(c, &s);
	if (c->json) {
		char *out = json_dumps(j, JSON_COMPACT);
		if (out) {
			puts(out);
			free(out);
		}
	}
	for (size_t i = 0; i < nc; i++) {
		tls_cert_info_free(&ci[i]);
		free(ders[i]);
	}
	json_decref(j);
}

/* ---- analyzer library callbacks ---- */

static int pcap_record(void *arg, const struct d4_pcap_global *g, const struct d4_pcap_record *r);

struct pcap_arg {
	struct tlsa_ctx *c;
	struct tlsa_sess *s;
};

static int pcap_record(void *arg, const struct d4_pcap_global *g, const struct d4_pcap_record *r)
{
	struct pcap_arg *pa = arg;
	uint32_t usec = g->nsec ? r->ts_frac / 1000 : r->ts_frac;
	pa->c->c.pcap_records++;
	if (tls_flow_packet(pa->s->flows, g->linktype, r->ts_sec, usec, r->data, r->caplen))
		return -1;
	return pa->c->failed ? -1 : 0;
}

static int an_start(void *ctx, struct d4_an_session *s)
{
	struct tlsa_ctx *c = ctx;
	struct tlsa_sess *ss;
	if (s->type == 1) {
		ss = calloc(1, sizeof(*ss));
		if (!ss)
			return -1;
		d4_reasm_pcap_init(&ss->pcap);
		ss->flows = table_new(c);
		if (!ss->flows) {
			free(ss);
			return -1;
		}
		ss->last_data = time(NULL);
		ss->next = c->open;
		if (c->open)
			c->open->prev = ss;
		c->open = ss;
		c->c.pcap_sessions++;
	} else if (s->type == 254 && !strcmp(s->meta_type, "ja3-jl")) {
		ss = calloc(1, sizeof(*ss));
		if (!ss)
			return -1;
		ss->jl = true;
	} else {
		return 0; /* another type: ignored */
	}
	s->user = ss;
	return 0;
}

static int an_data(void *ctx, struct d4_an_session *s, const struct d4_header *h,
                   const uint8_t *payload, size_t len)
{
	struct tlsa_ctx *c = ctx;
	struct tlsa_sess *ss = s->user;
	if (!ss || h->type == 2)
		return 0;
	c->cur_sensor = s->uuid;
	ss->last_data = time(NULL);
	int rc;
	if (ss->jl) {
		rc = jl_feed(&ss->jls, payload, len, jl_object, c, &c->c.jl_oversize, &c->c.jl_garbage);
	} else {
		struct pcap_arg pa = {c, ss};
		static const struct d4_pcap_cbs cbs = {.record_cb = pcap_record};
		rc = d4_reasm_pcap_feed(&ss->pcap, payload, len, &cbs, &pa);
		if (rc == D4_REASM_MALFORMED) {
			fprintf(stderr, TLSA_NAME ": session %" PRIu64 ": pcap malformed (%s), rest skipped\n",
			        s->id, ss->pcap.why ? ss->pcap.why : "?");
			c->c.pcap_malformed++;
			rc = 0;
		}
	}
	c->cur_sensor = NULL;
	return rc || c->failed ? -1 : 0;
}

static int an_end(void *ctx, struct d4_an_session *s, unsigned reason)
{
	struct tlsa_ctx *c = ctx;
	struct tlsa_sess *ss = s->user;
	(void)reason;
	if (!ss)
		return 0;
	c->cur_sensor = s->uuid;
	if (ss->jl) {
		if (jl_end(&ss->jls))
			c->c.jl_bad++; /* an object cut by the end of the session */
	} else {
		if (d4_reasm_pcap_end(&ss->pcap) == D4_REASM_MALFORMED)
			c->c.pcap_malformed++;
		table_done(c, ss->flows);
		if (ss->prev)
			ss->prev->next = ss->next;
		else
			c->open = ss->next;
		if (ss->next)
			ss->next->prev = ss->prev;
		d4_reasm_pcap_free(&ss->pcap);
	}
	c->cur_sensor = NULL;
	free(ss);
	s->user = NULL;
	return c->failed ? -1 : 0;
}

static int an_flush(void *ctx)
{
	struct tlsa_ctx *c = ctx;
	if (!c->store)
		return 0;
	wk_process(c);
	int rc = tls_store_flush(c->store);
	if (rc) {
		fprintf(stderr, TLSA_NAME ": store commit: %s\n", tls_store_strerror(rc));
		c->c.store_errors++;
		return -1;
	}
	return c->failed ? -1 : 0;
}

/*
 * About once a second (protocol mode): flows expire by capture time, which stops when a sensor
 * goes quiet. A session without data for longer than the idle timeout advances its table's clock
 * by the wall-clock time since its last data, so that its idle flows end and their handshakes are
 * stored (and made durable by the next flush) instead of waiting for the sensor's next packet.
 */
static void summary(const struct tlsa_ctx *c, const struct tls_flow_stats *f);

static int open_store(struct tlsa_ctx *c);

static int an_idle(void *ctx)
{
	struct tlsa_ctx *c = ctx;
	time_t now = time(NULL);
	/* the store exists from the first second, before any data: d4-web then shows it empty
	 * rather than "not set up" */
	if (!c->store && c->db && !c->no_store && open_store(c))
		return -1;
	if (!c->last_report)
		c->last_report = now;
	if (now - c->last_report >= TLSA_REPORT_EVERY) {
		/* a long-running analyzer shows its limits while it runs, not only at exit */
		struct tls_flow_stats f = c->c.flow;
		for (struct tlsa_sess *ss = c->open; ss; ss = ss->next)
			stats_add(&f, tls_flow_stats(ss->flows));
		summary(c, &f);
		c->last_report = now;
	}
	uint32_t timeout = c->flow_cfg.idle_timeout ? c->flow_cfg.idle_timeout : TLS_FLOW_DEFAULT_IDLE_TIMEOUT;
	uint64_t before = c->c.handshakes;
	for (struct tlsa_sess *ss = c->open; ss; ss = ss->next) {
		if (now - ss->last_data <= (time_t)timeout)
			continue;
		uint64_t clock = tls_flow_table_now(ss->flows);
		if (clock)
			tls_flow_table_expire(ss->flows, clock + (uint64_t)(now - ss->last_data));
	}
	/* no DATA means no flush_cb: commit what the expiry wrote */
	if (c->c.handshakes != before)
		return an_flush(ctx);
	return c->failed ? -1 : 0;
}

/* ---- options ---- */

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end)
		return -1;
	*out = v;
	return 0;
}

/* 0 set, 1 unknown key (ignored as a param, refused as an option), -1 bad value. */
static int set_option(struct tlsa_ctx *c, const char *key, const char *value)
{
	static const char *const numeric[] = {"max_flows", "max_dir_bytes", "max_total_mb",
	                                      "idle_timeout", "shared_key_servers", "map_size_mb"};
	char k[32];
	size_t n = strlen(key);
	if (n >= sizeof(k))
		return 1;
	for (size_t i = 0; i <= n; i++)
		k[i] = key[i] == '-' ? '_' : key[i]; /* --max-flows and param.max_flows */
	if (!strcmp(k, "db")) {
		/* a param's value lives only during the callback: keep a copy */
		char *dup = strdup(value);
		if (!dup)
			return -1;
		free(c->db);
		c->db = dup;
		return 0;
	}
	if (!strcmp(k, "json")) {
		c->json = !strcmp(value, "1") || !strcmp(value, "true") || !strcmp(value, "yes");
		return 0;
	}
	size_t which = sizeof(numeric) / sizeof(numeric[0]);
	for (size_t i = 0; i < sizeof(numeric) / sizeof(numeric[0]); i++)
		if (!strcmp(k, numeric[i]))
			which = i;
	if (which == sizeof(numeric) / sizeof(numeric[0]))
		return 1;
	uint64_t v = 0;
	if (parse_u64(value, &v) || v > UINT32_MAX || (which != 2 && !v))
		return -1;
	switch (which) {
	case 0: c->flow_cfg.max_flows = (uint32_t)v; break;
	case 1: c->flow_cfg.max_dir_bytes = (uint32_t)v; break;
	case 2: c->flow_cfg.max_total_bytes = v << 20; break;
	case 3: c->flow_cfg.idle_timeout = (uint32_t)v; break;
	case 4: c->shared_key_servers = (unsigned)v; break;
	default: c->map_size = (size_t)v << 20; break;
	}
	return 0;
}

static int an_params(void *ctx, const char *key, const char *value)
{
	int r = set_option(ctx, key, value);
	if (r < 0) {
		fprintf(stderr, TLSA_NAME ": param.%s: bad value \"%s\"\n", key, value);
		return -1;
	}
	return 0; /* unknown params are not an error */
}

static int an_option(void *ctx, const char *arg, const char *next)
{
	struct tlsa_ctx *c = ctx;
	if (!strcmp(arg, "--json")) {
		c->json = true;
		return 1;
	}
	if (!strcmp(arg, "--no-store")) {
		c->no_store = true;
		return 1;
	}
	if (!strcmp(arg, "--no-sync")) {
		c->no_sync = true;
		return 1;
	}
	if (strncmp(arg, "--", 2))
		return 0;
	if (!strcmp(arg, "--findings") || !strcmp(arg, "--summary")) {
		c->query = arg + 2;
		return 1;
	}
	if (!strcmp(arg, "--query") || !strcmp(arg, "--sessions")) {
		const char *eq = next ? strchr(next, '=') : NULL;
		if (!eq)
			return -1;
		c->query = arg + 2;
		c->query_value = next; /* KIND=VALUE, split in run_query */
		return 2;
	}
	if (!strcmp(arg, "--cursor")) {
		if (!next)
			return -1;
		c->query_cursor = next;
		return 2;
	}
	if (!strcmp(arg, "--limit")) {
		uint64_t v;
		if (!next || parse_u64(next, &v) || v > UINT32_MAX)
			return -1;
		c->query_limit = (unsigned)v;
		return 2;
	}
	if (!strcmp(arg, "--pcap")) {
		if (!next)
			return -1;
		c->pcap_file = next;
		return 2;
	}
	if (!strcmp(arg, "--batch-gcd")) {
		if (!next)
			return -1;
		c->gcd_file = next;
		return 2;
	}
	if (!strcmp(arg, "--threads")) {
		uint64_t v;
		if (!next || parse_u64(next, &v) || v > 256)
			return -1;
		c->gcd_threads = (unsigned)v;
		return 2;
	}
	if (!next)
		return 0;
	int r = set_option(c, arg + 2, next);
	if (r < 0)
		return -1;
	return r == 0 ? 2 : 0;
}

static const char usage[] =
	"  --db DIR               LMDB store directory (param db; none: nothing stored)\n"
	"  --pcap FILE            read a pcap or pcapng file directly instead of standard input\n"
	"  --json                 one JSON line per handshake on standard output\n"
	"  --no-store             do not store (with --json: fingerprints only)\n"
	"  --no-sync              LMDB without fsync (benchmarks)\n"
"  --query KIND=VALUE     print a pivot and its links (KIND: ja3 ja3s ja4 cert key server sni subject)\n"
	"  --sessions KIND=VALUE  print the sessions of a pivot\n"
	"  --findings             print the weak-key findings\n"
	"  --summary              print the counts of the store\n"
	"  --cursor C, --limit N  paging of the lists above\n"
	"  --batch-gcd FILE       RSA moduli (hex, one a line; - for stdin) that share a prime\n"
	"                         with another: one line per weak modulus (docs/weak-keys.md)\n"
	"  --threads N            threads of the batch GCD (default: every CPU)\n"
	"  --max-flows N          live TCP flows at most (default 262144)\n"
	"  --max-dir-bytes N      bytes reassembled per direction (default 65536)\n"
	"  --max-total-mb N       reassembly memory in total (default 512)\n"
	"  --idle-timeout S       a flow idle that long (capture time) ends (default 60)\n"
	"  --shared-key-servers N a key behind more server addresses is a finding (default 16)\n"
	"  --map-size-mb N        LMDB map size, the store's largest size (default 4096)\n";

/* ---- summary ---- */

/* The counters on stderr: at exit, and every TLSA_REPORT_EVERY seconds in protocol mode (f: the
 * flow counters to print, ended tables and open ones summed). */
static void summary(const struct tlsa_ctx *c, const struct tls_flow_stats *f)
{
	const struct tlsa_counters *k = &c->c;
	fprintf(stderr,
	        TLSA_NAME ": packets=%" PRIu64 " bytes=%" PRIu64 " tcp=%" PRIu64 " not_ip=%" PRIu64
	                  " not_tcp=%" PRIu64 " fragments=%" PRIu64 " truncated=%" PRIu64
	                  " fast_path=%" PRIu64 "\n",
	        f->packets, f->bytes, f->tcp_packets, f->not_ip, f->not_tcp, f->fragments, f->truncated,
	        f->fast_path);
	fprintf(stderr,
	        TLSA_NAME ": flows=%" PRIu64 " done=%" PRIu64 " closed=%" PRIu64 " idle=%" PRIu64
	                  " evicted=%" PRIu64 " shutdown=%" PRIu64 " live_max=%" PRIu64
	                  " retransmits=%" PRIu64 " out_of_order=%" PRIu64 " ooo_dropped=%" PRIu64
	                  " dir_cap_hits=%" PRIu64 " total_cap_hits=%" PRIu64 " buffered_max=%" PRIu64
	                  "\n",
	        f->flows, f->flows_done, f->flows_closed, f->flows_idle, f->flows_evicted,
	        f->flows_shutdown, f->flows_live_max, f->retransmits, f->out_of_order, f->ooo_dropped,
	        f->dir_cap_hits, f->total_cap_hits, f->buffered_max);
	fprintf(stderr,
	        TLSA_NAME ": handshakes=%" PRIu64 " client_hellos=%" PRIu64 " server_hellos=%" PRIu64
	                  " complete=%" PRIu64 " partial=%" PRIu64 " refused=%" PRIu64 " not_tls=%" PRIu64
	                  " no_hello=%" PRIu64 " certs=%" PRIu64 " cert_errors=%" PRIu64
	                  " jl_records=%" PRIu64 " jl_sessions=%" PRIu64 " jl_bad=%" PRIu64 " jl_oversize=%" PRIu64
	                  " jl_garbage=%" PRIu64
	                  " pcap_malformed=%" PRIu64 " store_errors=%" PRIu64 " wk_checked=%" PRIu64
	                  " wk_batches=%" PRIu64 " wk_errors=%" PRIu64 " oom=%" PRIu64 "\n",
	        k->handshakes, k->client_hellos, k->server_hellos, k->complete, k->partial, k->refused,
	        k->not_tls, k->no_hello, k->certs, k->cert_errors, k->jl_records, k->jl_sessions,
	        k->jl_bad, k->jl_oversize, k->jl_garbage, k->pcap_malformed, k->store_errors, k->wk_checked, k->wk_batches,
	        k->wk_errors, k->oom);
	bool any = false;
	for (int r = 1; r < TLS_R__COUNT; r++) {
		if (!k->reasons[r])
			continue;
		fprintf(stderr, "%s %s=%" PRIu64, any ? "" : TLSA_NAME ": refusals:", tls_reason_str(r),
		        k->reasons[r]);
		any = true;
	}
	if (any)
		fputc('\n', stderr);
	if (c->store) {
		const struct tls_store_stats *s = tls_store_stats(c->store);
		fprintf(stderr,
		        TLSA_NAME ": store sessions=%" PRIu64 " certs_new=%" PRIu64 " keys_new=%" PRIu64
		                  " certs_unparsed=%" PRIu64 " findings_new=%" PRIu64 " commits=%" PRIu64
		                  "\n",
		        s->sessions, s->certs_new, s->keys_new, s->certs_unparsed, s->findings_new,
		        s->commits);
	}
}

/* ---- --pcap FILE ---- */

static int run_pcap_file(struct tlsa_ctx *c)
{
	char errbuf[PCAP_ERRBUF_SIZE];
	pcap_t *p = pcap_open_offline_with_tstamp_precision(c->pcap_file, PCAP_TSTAMP_PRECISION_MICRO,
	                                                    errbuf);
	if (!p) {
		fprintf(stderr, TLSA_NAME ": %s: %s\n", c->pcap_file, errbuf);
		return 1;
	}
	struct tls_flow_table *t = table_new(c);
	if (!t) {
		pcap_close(p);
		fprintf(stderr, TLSA_NAME ": out of memory\n");
		return 1;
	}
	uint32_t lt = (uint32_t)pcap_datalink(p);
	struct pcap_pkthdr *h;
	const u_char *data;
	int r, rc = 0;
	while ((r = pcap_next_ex(p, &h, &data)) == 1) {
		c->c.pcap_records++;
		if (tls_flow_packet(t, lt, (uint64_t)h->ts.tv_sec, (uint32_t)h->ts.tv_usec, data,
		                    h->caplen)) {
			rc = 1;
			break;
		}
		if (c->failed) {
			rc = 1;
			break;
		}
	}
	if (r == -1) {
		fprintf(stderr, TLSA_NAME ": %s: %s\n", c->pcap_file, pcap_geterr(p));
		rc = 1;
	}
	table_done(c, t);
	pcap_close(p);
	wk_process(c);
	if (c->store && tls_store_flush(c->store)) {
		c->c.store_errors++;
		rc = 1;
	}
	return rc || c->failed ? 1 : 0;
}

static int open_store(struct tlsa_ctx *c)
{
	if (!c->db || c->no_store)
		return 0;
	struct tls_store_config sc = {.path = c->db,
	                              .map_size = c->map_size,
	                              .shared_key_servers = c->shared_key_servers,
	                              .no_sync = c->no_sync};
	int rc = tls_store_open(&c->store, &sc);
	if (rc) {
		fprintf(stderr, TLSA_NAME ": store %s: %s\n", c->db, tls_store_strerror(rc));
		return -1;
	}
	c->wk = wk_set_new(0, 0); /* checks use every core */
	if (c->wk && tls_store_each_rsa_key(c->store, wk_load_cb, c)) {
		fprintf(stderr, TLSA_NAME ": loading the RSA keys of %s failed\n", c->db);
		return -1;
	}
	/* the batch products now, in bulk, rather than on the first new key */
	if (c->wk && wk_set_build(c->wk) != 0) {
		fprintf(stderr, TLSA_NAME ": out of memory for the RSA keys of %s\n", c->db);
		return -1;
	}
	tls_store_set_key_cb(c->store, on_new_key, c);
	return 0;
}

/* --query/--sessions/--findings/--summary on a store: JSON on stdout, exit 0, 3 if absent. */
static int run_query(struct tlsa_ctx *c)
{
	if (!c->db) {
		fprintf(stderr, TLSA_NAME ": --%s needs --db\n", c->query);
		return 2;
	}
	struct tls_store *st;
	struct tls_store_config sc = {.path = c->db, .readonly = true};
	int rc = tls_store_open(&st, &sc), err = 0;
	if (rc) {
		fprintf(stderr, TLSA_NAME ": store %s: %s\n", c->db, tls_store_strerror(rc));
		return 1;
	}
	json_t *j = NULL;
	char kind[32] = "";
	const char *value = NULL;
	if (c->query_value) {
		const char *eq = strchr(c->query_value, '=');
		size_t kl = (size_t)(eq - c->query_value);
		if (kl >= sizeof(kind))
			kl = sizeof(kind) - 1;
		memcpy(kind, c->query_value, kl);
		kind[kl] = 0;
		value = eq + 1;
	}
	if (!strcmp(c->query, "query"))
		j = tls_query_pivot(st, kind, value, c->query_cursor, c->query_limit, &err);
	else if (!strcmp(c->query, "sessions"))
		j = tls_query_sessions(st, kind, value, c->query_cursor, c->query_limit, &err);
	else if (!strcmp(c->query, "findings"))
		j = tls_query_findings(st, c->query_cursor, c->query_limit, &err);
	else
		j = tls_query_summary(st, &err);
	if (j) {
		char *s = json_dumps(j, JSON_COMPACT);
		if (s)
			puts(s);
		free(s);
		json_decref(j);
	} else {
		fprintf(stderr, TLSA_NAME ": %s\n", tls_store_strerror(err));
	}
	tls_store_close(st);
	return j ? 0 : err == -ENOENT ? 3 : 1;
}

/* START of the first session in protocol mode: params are known by then. */
static int an_start_open(void *ctx, struct d4_an_session *s)
{
	struct tlsa_ctx *c = ctx;
	if (!c->store && c->db && !c->no_store && open_store(c))
		return -1;
	return an_start(ctx, s);
}

int main(int argc, char **argv)
{
	static const struct d4_analyzer_def def = {
		.name = "tls",
		.usage = usage,
		.option_cb = an_option,
		.params_cb = an_params,
		.start_cb = an_start_open,
		.data_cb = an_data,
		.end_cb = an_end,
		.flush_cb = an_flush,
		.idle_cb = an_idle,
	};
	struct tlsa_ctx c;
	memset(&c, 0, sizeof(c));
	c.certs = calloc(1, sizeof(*c.certs)); /* NULL: every certificate parsed anew */
	int rc;
	/* --pcap FILE: options parsed here, no D4 input at all */
	bool pcap_mode = false;
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--pcap") || !strcmp(argv[i], "--query") || !strcmp(argv[i], "--sessions") ||
		    !strcmp(argv[i], "--findings") || !strcmp(argv[i], "--summary") ||
		    !strcmp(argv[i], "--batch-gcd"))
			pcap_mode = true;
	if (pcap_mode) {
		for (int i = 1; i < argc;) {
			int used = an_option(&c, argv[i], i + 1 < argc ? argv[i + 1] : NULL);
			if (used <= 0) {
				fprintf(stderr, TLSA_NAME ": bad or unknown option %s\nOptions:\n%s", argv[i],
				        usage);
				rc = 2;
				goto done;
			}
			i += used;
		}
		if (c.query) {
			rc = run_query(&c);
			goto done;
		}
		if (c.gcd_file) {
			FILE *in = strcmp(c.gcd_file, "-") ? fopen(c.gcd_file, "r") : stdin;
			if (in == NULL) {
				fprintf(stderr, TLSA_NAME ": %s: %s\n", c.gcd_file, strerror(errno));
				rc = 1;
				goto done;
			}
			rc = wk_cli_batch(in, stdout, c.gcd_threads) == 0 ? 0 : 1;
			if (in != stdin)
				fclose(in);
			goto done;
		}
		if (open_store(&c)) {
			rc = 1;
			goto out;
		}
		rc = run_pcap_file(&c);
	} else {
		rc = d4_analyzer_main(argc, argv, &def, &c);
		wk_process(&c);
		if (c.store && tls_store_flush(c.store))
			rc = 1;
	}
out:
	summary(&c, &c.c.flow);
	fflush(stdout);
	tls_store_close(c.store);
	c.store = NULL;
	wk_set_free(c.wk);
	c.wk = NULL;
	wk_process(&c); /* without store and set: frees what is left pending */
	free(c.pend);
done:
	free(c.db);
	cert_cache_free(c.certs);
	return rc;
}
