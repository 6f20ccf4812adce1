/*
 * gen_pdns.c — realistic gamelinux/passivedns CSV for the passive DNS benchmarks
 * (bench/pdns.sh), deterministic for a given seed.
 *
 *   gen_pdns [-n LINES] [--seed S] [--names N] [--start UNIXTIME] [--rate LINES_PER_S]
 *            [--d4 --uuid UUID --key KEY]
 *   gen_pdns --drop DIR NAME   (benchmark helper: empties database NAME of the LMDB
 *                               environment DIR, so that the pages it frees, sub-databases of
 *                               duplicates included, can be counted with mdb_stat -ef)
 *
 * What makes it realistic enough to measure a store with:
 *   - names are drawn from a Zipf-like law (s = 1) over N names: a few are looked up all the
 *     time, most rarely, so lines repeat records heavily and the store sees a long tail;
 *   - the type mix of a resolver's answers: A 52%, AAAA 16%, CNAME 10%, PTR 6%, NS 4%,
 *     MX 4%, TXT 4%, NXDOMAIN 4% (unique junk names, as typos and DGAs give); MX targets
 *     half at shared providers, half the domain's own; TXT half shared SPF strings, half
 *     unique verification tokens; PTR names one per address;
 *   - a name has 1..3 stable addresses and, as time passes, some names move (new distinct
 *     records keep coming, as in real traffic);
 *   - the count column is mostly 1, sometimes larger; TTLs from the usual set.
 * With --d4 the output is a D4 stream of type 8 (64 KiB payloads, lines cut anywhere) that
 * d4-analyzer-passivedns reads offline. The popular name, an address of it and a miss are
 * printed on stderr for the lookup benchmark ("popular=... address=... miss=...").
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>

#include "d4_proto.h"
#include "d4_uuid.h"

/* Empties one named database of an environment (bench/pdns.sh: bytes per database). */
static int drop_db(const char *dir, const char *name)
{
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	MDB_dbi dbi;
	int rc;
	if ((rc = mdb_env_create(&env)) != 0 || (rc = mdb_env_set_maxdbs(env, 16)) != 0 ||
	    (rc = mdb_env_set_mapsize(env, (size_t)1 << 36)) != 0 ||
	    (rc = mdb_env_open(env, dir, MDB_NOSYNC, 0640)) != 0 ||
	    (rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0 ||
	    (rc = mdb_dbi_open(txn, name, 0, &dbi)) != 0 || (rc = mdb_drop(txn, dbi, 0)) != 0) {
		fprintf(stderr, "gen_pdns: drop %s in %s: %s\n", name, dir, mdb_strerror(rc));
		if (txn)
			mdb_txn_abort(txn);
		if (env)
			mdb_env_close(env);
		return 1;
	}
	rc = mdb_txn_commit(txn);
	mdb_env_close(env);
	if (rc != 0) {
		fprintf(stderr, "gen_pdns: drop %s: %s\n", name, mdb_strerror(rc));
		return 1;
	}
	return 0;
}

struct gen {
	uint64_t rng;
	uint64_t lines, names, start, rate;
	double *cdf;
	bool d4;
	uint8_t uuid[16];
	const char *key;
	struct d4_hmac *hmac;
	uint8_t *buf;
	size_t len, cap;
};

static uint64_t next(struct gen *g)
{
	uint64_t x = g->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	g->rng = x;
	return x * 0x2545F4914F6CDD1Dull;
}

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

static double uniform(struct gen *g)
{
	return (double)(next(g) >> 11) / 9007199254740992.0;
}

static uint64_t zipf(struct gen *g)
{
	double u = uniform(g);
	size_t lo = 0, hi = g->names - 1;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (g->cdf[mid] < u)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static const char *const tlds[] = {"com", "net", "org", "lu", "de", "fr", "io", "be", "nl", "info"};
static const char *const hosts[] = {"www", "mail", "api", "cdn", "static", "login", "m", "img"};
static const char *const words[] = {"cloud", "shop", "news", "bank", "media", "data", "web",
                                    "mail", "play", "soft", "net", "tech", "home", "blue"};

/* The name of rank i: "<host>.<word><hex>.<tld>", stable for a rank. */
static int name_of(uint64_t i, char *out, size_t cap)
{
	uint64_t h = mix(i + 1);
	uint64_t dom = i / 3;
	uint64_t hd = mix(dom + 7);
	return snprintf(out, cap, "%s.%s%" PRIx64 ".%s", hosts[h % 8], words[hd % 14],
	                (hd >> 8) & 0xfffff, tlds[(hd >> 40) % 10]);
}

static void ipv4_of(uint64_t i, uint64_t variant, char *out, size_t cap)
{
	uint64_t h = mix(i * 7919 + variant + 0x9e3779b9);
	snprintf(out, cap, "%u.%u.%u.%u", (unsigned)(h % 223 + 1), (unsigned)((h >> 8) & 255),
	         (unsigned)((h >> 16) & 255), (unsigned)((h >> 24) % 254 + 1));
}

static void out_add(struct gen *g, const char *s, size_t n)
{
	if (g->len + n > g->cap) {
		fprintf(stderr, "gen_pdns: line too long\n");
		exit(1);
	}
	memcpy(g->buf + g->len, s, n);
	g->len += n;
}

static void out_flush(struct gen *g)
{
	if (g->len == 0)
		return;
	if (g->d4) {
		struct d4_header h = {.version = 1, .type = D4_TYPE_PASSIVEDNS, .timestamp = g->start};
		uint8_t hdr[D4_HEADER_SIZE];
		memcpy(h.uuid, g->uuid, 16);
		if (d4_frame_sign(g->hmac, &h, g->buf, g->len, hdr) != 0 ||
		    fwrite(hdr, 1, sizeof(hdr), stdout) != sizeof(hdr)) {
			fprintf(stderr, "gen_pdns: write failed\n");
			exit(1);
		}
	}
	if (fwrite(g->buf, 1, g->len, stdout) != g->len) {
		fprintf(stderr, "gen_pdns: write failed\n");
		exit(1);
	}
	g->len = 0;
}

static void line(struct gen *g, uint64_t n)
{
	char name[128], rdata[400], l[700];
	const char *type = "A";
	static const unsigned ttls[] = {60, 300, 3600, 86400, 30, 600};
	uint64_t i = zipf(g);
	uint64_t h = mix(i);
	uint64_t epoch = n / 1000000; /* every million lines, some names move */
	uint64_t moved = (h % 10 == 0) ? epoch : 0;
	unsigned nvar = (unsigned)(1 + (h >> 20) % 3);
	uint64_t variant = next(g) % nvar + moved * 3;
	double r = uniform(g);
	name_of(i, name, sizeof(name));

	if (r < 0.52) {
		ipv4_of(i, variant, rdata, sizeof(rdata));
	} else if (r < 0.68) {
		uint64_t a = mix(i * 31 + variant);
		type = "AAAA";
		snprintf(rdata, sizeof(rdata), "2a0%x:%x:%x::%x", (unsigned)(a & 15),
		         (unsigned)((a >> 4) & 0xffff), (unsigned)((a >> 20) & 0xffff),
		         (unsigned)((a >> 36) & 0xfffe) + 1);
	} else if (r < 0.78) {
		type = "CNAME";
		snprintf(rdata, sizeof(rdata), "e%" PRIu64 ".%s.akamaiedge.net.", mix(i + variant) % 100000,
		         (h & 1) ? "dscx" : "b");
	} else if (r < 0.84) {
		/* PTR of one of the addresses we hand out */
		char ip[32];
		unsigned a, b, c, d;
		ipv4_of(i, variant, ip, sizeof(ip));
		if (sscanf(ip, "%u.%u.%u.%u", &a, &b, &c, &d) != 4)
			exit(1);
		snprintf(rdata, sizeof(rdata), "%s.", name);
		snprintf(name, sizeof(name), "%u.%u.%u.%u.in-addr.arpa", d, c, b, a);
		type = "PTR";
	} else if (r < 0.88) {
		type = "NS";
		snprintf(rdata, sizeof(rdata), "ns%u.dns%" PRIu64 ".net.", (unsigned)(variant % 4 + 1),
		         (h >> 30) % 5000);
	} else if (r < 0.92) {
		/* half at a mail provider (shared targets), half at the domain's own mx */
		static const char *const providers[] = {
			"aspmx.l.google.com.", "alt1.aspmx.l.google.com.", "mx1.mail.ovh.net.",
			"mx00.ionos.de.",      "mx.zoho.eu.",              "mxa.mailgun.org.",
			"in1-smtp.messagingengine.com.", "mx1.privateemail.com."};
		type = "MX";
		if (h & 4)
			snprintf(rdata, sizeof(rdata), "%s", providers[(h >> 3) % 8]);
		else
			snprintf(rdata, sizeof(rdata), "mx%u.%s.", (unsigned)(variant % 2 + 1),
			         strchr(name, '.') + 1);
	} else if (r < 0.96) {
		/* SPF records are shared by the customers of a provider; verification tokens not */
		static const char *const spf[] = {
			"\"v=spf1 include:_spf.google.com ~all\"",
			"\"v=spf1 include:spf.protection.outlook.com -all\"",
			"\"v=spf1 include:mx.ovh.com ~all\"", "\"v=spf1 mx a -all\"",
			"\"v=spf1 include:_spf.mailgun.org ~all\"", "\"v=spf1 -all\""};
		type = "TXT";
		if (h & 2)
			snprintf(rdata, sizeof(rdata), "%s", spf[(h >> 3) % 6]);
		else
			snprintf(rdata, sizeof(rdata), "\"google-site-verification=%016" PRIx64 "\"", mix(h));
	} else {
		/* NXDOMAIN: mostly unique junk names */
		uint64_t j = next(g);
		snprintf(name, sizeof(name), "%" PRIx64 ".%s%" PRIx64 ".com", j & 0xffffffffff,
		         words[j % 14], (j >> 40) & 0xfff);
		snprintf(rdata, sizeof(rdata), "NXDOMAIN");
	}
	uint64_t count = (next(g) % 10 == 0) ? 1 + next(g) % 20 : 1;
	int len = snprintf(l, sizeof(l),
	                   "%" PRIu64 ".%06u||10.%u.%u.%u||10.0.0.53||IN||%s.||%s||%s||%u||%" PRIu64
	                   "\n",
	                   g->start + n / g->rate, (unsigned)(n % 1000000), (unsigned)(h & 255),
	                   (unsigned)((h >> 8) & 255), (unsigned)((h >> 16) & 255), name, type, rdata,
	                   ttls[h % 6], count);
	if (len <= 0 || (size_t)len >= sizeof(l))
		exit(1);
	if (g->len + (size_t)len > g->cap)
		out_flush(g);
	out_add(g, l, (size_t)len);
}

int main(int argc, char **argv)
{
	struct gen g = {.lines = 1000000, .names = 1000000, .start = 1700000000, .rate = 2000};
	uint64_t seed = 42;
	const char *uuid = "cd980d75-dcf1-47da-bb60-aabe94fea6b2";
	g.key = "private key to change";
	if (argc == 4 && strcmp(argv[1], "--drop") == 0)
		return drop_db(argv[2], argv[3]);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--d4") == 0) {
			g.d4 = true;
			continue;
		}
		if (v == NULL)
			goto usage;
		if (strcmp(a, "-n") == 0)
			g.lines = strtoull(v, NULL, 10);
		else if (strcmp(a, "--seed") == 0)
			seed = strtoull(v, NULL, 10);
		else if (strcmp(a, "--names") == 0)
			g.names = strtoull(v, NULL, 10);
		else if (strcmp(a, "--start") == 0)
			g.start = strtoull(v, NULL, 10);
		else if (strcmp(a, "--rate") == 0)
			g.rate = strtoull(v, NULL, 10);
		else if (strcmp(a, "--uuid") == 0)
			uuid = v;
		else if (strcmp(a, "--key") == 0)
			g.key = v;
		else
			goto usage;
		i++;
	}
	if (g.names < 2 || g.rate == 0 || d4_uuid_parse_str(uuid, g.uuid) != 0)
		goto usage;
	g.rng = mix(seed) | 1;
	g.cdf = malloc(g.names * sizeof(double));
	g.cap = 65536;
	g.buf = malloc(g.cap);
	if (g.cdf == NULL || g.buf == NULL)
		return 1;
	double sum = 0;
	for (uint64_t i = 0; i < g.names; i++)
		sum += 1.0 / (double)(i + 1);
	double acc = 0;
	for (uint64_t i = 0; i < g.names; i++) {
		acc += 1.0 / (double)(i + 1) / sum;
		g.cdf[i] = acc;
	}
	g.cdf[g.names - 1] = 1.0;
	if (g.d4 && (g.hmac = d4_hmac_new((const uint8_t *)g.key, strlen(g.key))) == NULL)
		return 1;
	for (uint64_t n = 0; n < g.lines; n++)
		line(&g, n);
	out_flush(&g);
	if (fflush(stdout) != 0)
		return 1;
	char popular[128], addr[64];
	name_of(0, popular, sizeof(popular));
	ipv4_of(0, 0, addr, sizeof(addr));
	fprintf(stderr, "popular=%s address=%s miss=no-such-name.example\n", popular, addr);
	d4_hmac_free(g.hmac);
	free(g.cdf);
	free(g.buf);
	return 0;
usage:
	fprintf(stderr, "usage: gen_pdns [-n LINES] [--seed S] [--names N] [--start T] [--rate R] "
	                "[--d4 [--uuid UUID] [--key KEY]]\n");
	return 2;
}
