/*
 * fuzz_pdns_cof.c — the COF NDJSON import parser (pdns_parse_cof) on arbitrary bytes.
 *
 * Invariants: a refusal names a known reason and gives no record; every record given has a
 * normalised name and rdata within their limits and time_first <= time_last.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pdns_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct seen {
	size_t n;
};

static int check(void *arg, const struct pdns_rec *r)
{
	struct seen *s = arg;
	if (r->name_len == 0 || r->name_len > PDNS_NAME_MAX || strlen(r->name) != r->name_len)
		abort();
	if (r->rdata_len > PDNS_RDATA_MAX || strlen(r->rdata) != r->rdata_len)
		abort();
	if (r->ts > r->ts_last)
		abort();
	s->n++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct pdns_rec scratch;
	struct seen s = {0};
	uint64_t skipped = 0;
	enum pdns_reason why = pdns_parse_cof(data, size, &scratch, check, &s, &skipped);
	if (why > PDNS_R__COUNT || why == PDNS_R__COUNT)
		abort(); /* check() never stops the parse */
	if (why != PDNS_OK && s.n != 0)
		abort();
	return 0;
}
