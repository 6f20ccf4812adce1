/*
 * test_pdns_parse.c — the passive DNS parsers (analyzers/passivedns/pdns_parse.c): CSV lines
 * of gamelinux/passivedns, COF NDJSON objects, and the normalisation both share.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pdns_parse.h"

static enum pdns_reason csv(const char *line, struct pdns_rec *r)
{
	return pdns_parse_csv((const uint8_t *)line, strlen(line), r);
}

static void test_csv_sample(void **state)
{
	struct pdns_rec r;
	(void)state;
	assert_int_equal(csv("1322849924.408856||10.1.1.1||8.8.8.8||IN||upload.youtube.com.||A||"
	                     "74.125.43.117||46587||5",
	                     &r),
	                 PDNS_OK);
	assert_int_equal(r.ts, 1322849924);
	assert_string_equal(r.name, "upload.youtube.com");
	assert_int_equal(r.rrtype, 1);
	assert_string_equal(r.rdata, "74.125.43.117");
	assert_int_equal(r.rdata_kind, PDNS_RD_V4);
	assert_int_equal(r.ttl, 46587);
	assert_int_equal(r.count, 5);

	assert_int_equal(csv("1322849924||c||s||IN||WWW.Adobe.COM.||CNAME||WWW.wip4.Adobe.com.||43200||8",
	                     &r),
	                 PDNS_OK);
	assert_string_equal(r.name, "www.adobe.com");
	assert_string_equal(r.rdata, "www.wip4.adobe.com");
	assert_int_equal(r.rdata_kind, PDNS_RD_STR);
}

static void test_csv_normalise(void **state)
{
	struct pdns_rec r;
	(void)state;
	/* IPv6 in any spelling becomes the canonical one */
	assert_int_equal(csv("1||c||s||IN||v6.example.||AAAA||2A00:1450:400E:0801:0000:0000:0000:200E||1||1", &r),
	                 PDNS_OK);
	assert_string_equal(r.rdata, "2a00:1450:400e:801::200e");
	assert_int_equal(r.rdata_kind, PDNS_RD_V6);
	/* IPv4 printed back canonically */
	assert_int_equal(csv("1||c||s||IN||v4.example||A||010.0.255.1||1||1", &r), PDNS_R_RDATA);
	assert_int_equal(csv("1||c||s||IN||v4.example||A||100.9.255.0||1||1", &r), PDNS_OK);
	assert_string_equal(r.rdata, "100.9.255.0");
	assert_int_equal(csv("1||c||s||IN||v4.example||A||0.10.99.200||1||1", &r), PDNS_OK);
	assert_string_equal(r.rdata, "0.10.99.200");
	/* TXT keeps its case and quotes */
	assert_int_equal(csv("1||c||s||IN||t.example||TXT||\"v=spf1 -ALL\"||1||1", &r), PDNS_OK);
	assert_string_equal(r.rdata, "\"v=spf1 -ALL\"");
	/* unknown types by number, TYPEnnn, lowercase mnemonics */
	assert_int_equal(csv("1||c||s||IN||x.example||65280||\\# 0||1||1", &r), PDNS_OK);
	assert_int_equal(r.rrtype, 65280);
	assert_int_equal(csv("1||c||s||IN||x.example||TYPE123||abc||1||1", &r), PDNS_OK);
	assert_int_equal(r.rrtype, 123);
	assert_int_equal(csv("1||c||s||IN||x.example||aaaa||::1||1||1", &r), PDNS_OK);
	assert_int_equal(r.rrtype, 28);
	/* NXDOMAIN as passivedns prints it */
	assert_int_equal(csv("1||c||s||IN||nx.example.||A||NXDOMAIN||0||3", &r), PDNS_OK);
	assert_string_equal(r.rdata, "NXDOMAIN");
	assert_int_equal(r.count, 3);
	/* IDN in UTF-8 becomes its A-label */
	assert_int_equal(csv("1||c||s||IN||b\xc3\xbc" "cher.example||A||1.2.3.4||1||1", &r), PDNS_OK);
	assert_string_equal(r.name, "xn--bcher-kva.example");
	/* the root */
	assert_int_equal(csv("1||c||s||IN||.||NS||A.ROOT-SERVERS.NET.||1||1", &r), PDNS_OK);
	assert_string_equal(r.name, ".");
	assert_string_equal(r.rdata, "a.root-servers.net");
}

static void test_csv_refused(void **state)
{
	struct pdns_rec r;
	(void)state;
	assert_int_equal(csv("1||c||s||IN||x||A||1.2.3.4||1", &r), PDNS_R_FIELDS);
	assert_int_equal(csv("1||c||s||IN||x||A||1.2.3.4||1||1||1", &r), PDNS_R_FIELDS);
	assert_int_equal(csv("", &r), PDNS_R_FIELDS);
	assert_int_equal(csv("abc||c||s||IN||x||A||1.2.3.4||1||1", &r), PDNS_R_TIMESTAMP);
	assert_int_equal(csv("1.||c||s||IN||x||A||1.2.3.4||1||1", &r), PDNS_R_TIMESTAMP);
	assert_int_equal(csv("1||c||s||IN||x||A||1.2.3.4||ttl||1", &r), PDNS_R_TTL);
	assert_int_equal(csv("1||c||s||IN||x||A||1.2.3.4||99999999999||1", &r), PDNS_R_TTL);
	assert_int_equal(csv("1||c||s||IN||x||A||1.2.3.4||1||-1", &r), PDNS_R_COUNT);
	assert_int_equal(csv("1||c||s||IN||x||BOGUS||1.2.3.4||1||1", &r), PDNS_R_TYPE);
	assert_int_equal(csv("1||c||s||IN||x||A||not-an-ip||1||1", &r), PDNS_R_RDATA);
	assert_int_equal(csv("1||c||s||IN||||A||1.2.3.4||1||1", &r), PDNS_R_NAME);
	assert_int_equal(csv("1||c||s||IN||x\x01y||A||1.2.3.4||1||1", &r), PDNS_R_BINARY);
	assert_int_equal(csv("1||c||s||IN||x\xffy||A||1.2.3.4||1||1", &r), PDNS_R_UTF8);
	assert_int_equal(csv("1||c||s||IN||x\xc0\xafy||A||1.2.3.4||1||1", &r), PDNS_R_UTF8);
	/* a NUL inside the line is binary, not the end of the line */
	const uint8_t nul[] = "1||c||s||IN||x\0y||A||1.2.3.4||1||1";
	assert_int_equal(pdns_parse_csv(nul, sizeof(nul) - 1, &r), PDNS_R_BINARY);

	/* 64 KiB fields */
	size_t big = 65536;
	char *line = malloc(big + 64);
	assert_non_null(line);
	memcpy(line, "1||c||s||IN||", 13);
	memset(line + 13, 'a', big);
	strcpy(line + 13 + big, "||A||1.2.3.4||1||1");
	assert_int_equal(csv(line, &r), PDNS_R_OVERSIZE);
	strcpy(line, "1||c||s||IN||x||TXT||");
	memset(line + 21, 'a', big);
	strcpy(line + 21 + big, "||1||1");
	assert_int_equal(csv(line, &r), PDNS_R_OVERSIZE);
	free(line);
}

static void test_rrtype_names(void **state)
{
	char t[PDNS_TYPE_TEXT_MAX];
	uint16_t v;
	(void)state;
	pdns_rrtype_name(1, t);
	assert_string_equal(t, "A");
	pdns_rrtype_name(28, t);
	assert_string_equal(t, "AAAA");
	pdns_rrtype_name(65280, t);
	assert_string_equal(t, "TYPE65280");
	assert_int_equal(pdns_rrtype_parse("mx", 2, &v), 0);
	assert_int_equal(v, 15);
	assert_int_equal(pdns_rrtype_parse("TYPE65536", 9, &v), -1);
	assert_int_equal(pdns_rrtype_parse("", 0, &v), -1);
}

struct got {
	struct pdns_rec recs[8];
	int n;
};

static int collect(void *arg, const struct pdns_rec *r)
{
	struct got *g = arg;
	if (g->n < 8)
		g->recs[g->n++] = *r;
	return 0;
}

static enum pdns_reason cof(const char *line, struct got *g, uint64_t *skipped)
{
	static struct pdns_rec scratch;
	memset(g, 0, sizeof(*g));
	*skipped = 0;
	return pdns_parse_cof((const uint8_t *)line, strlen(line), &scratch, collect, g, skipped);
}

static void test_cof(void **state)
{
	struct got g;
	uint64_t skipped;
	(void)state;
	assert_int_equal(cof("{\"count\":1909,\"rdata\":[\"cpa.circl.lu\"],\"rrname\":\"www.circl.lu\","
	                     "\"rrtype\":\"CNAME\",\"time_first\":1315586409,\"time_last\":1449566799}",
	                     &g, &skipped),
	                 PDNS_OK);
	assert_int_equal(g.n, 1);
	assert_string_equal(g.recs[0].name, "www.circl.lu");
	assert_string_equal(g.recs[0].rdata, "cpa.circl.lu");
	assert_int_equal(g.recs[0].count, 1909);
	assert_int_equal(g.recs[0].ts, 1315586409);
	assert_int_equal(g.recs[0].ts_last, 1449566799);
	/* several rdata, an IDN name, a bad element skipped, a numeric type */
	assert_int_equal(cof("{\"rdata\":[\"1.2.3.4\",\"bad\",\"5.6.7.8\",7],\"rrname\":\"M\xc3\xbcnchen.DE.\","
	                     "\"rrtype\":1,\"time_first\":1,\"time_last\":2}",
	                     &g, &skipped),
	                 PDNS_OK);
	assert_int_equal(g.n, 2);
	assert_int_equal(skipped, 2);
	assert_string_equal(g.recs[0].name, "xn--mnchen-3ya.de");
	assert_string_equal(g.recs[1].rdata, "5.6.7.8");
	assert_int_equal(g.recs[1].count, 1);
	/* a single string rdata */
	assert_int_equal(cof("{\"rdata\":\"x\",\"rrname\":\"a\",\"rrtype\":\"TXT\",\"time_first\":1,"
	                     "\"time_last\":1}",
	                     &g, &skipped),
	                 PDNS_OK);
	assert_int_equal(g.n, 1);
	/* refused */
	assert_int_equal(cof("not json", &g, &skipped), PDNS_R_JSON);
	assert_int_equal(cof("[1,2]", &g, &skipped), PDNS_R_JSON);
	assert_int_equal(cof("{\"rdata\":\"x\",\"rrname\":\"a\",\"rrtype\":\"A\",\"time_first\":2,"
	                     "\"time_last\":1}",
	                     &g, &skipped),
	                 PDNS_R_JSON);
	assert_int_equal(cof("{\"rdata\":\"x\",\"rrname\":\"a\",\"rrtype\":\"NOPE\",\"time_first\":1,"
	                     "\"time_last\":1}",
	                     &g, &skipped),
	                 PDNS_R_TYPE);
	assert_int_equal(g.n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_csv_sample),   cmocka_unit_test(test_csv_normalise),
		cmocka_unit_test(test_csv_refused),  cmocka_unit_test(test_rrtype_names),
		cmocka_unit_test(test_cof),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
