/*
 * fuzz_pdns_csv.c — the passivedns CSV line parser (pdns_parse_csv) on arbitrary bytes.
 *
 * The input is one line (libFuzzer's buffer is exactly `size` bytes, not NUL-terminated, so
 * ASan sees any read past the end). Invariants: a refusal names a known reason; an accepted
 * record has a NUL-terminated name and rdata of the lengths it says, within their limits, a
 * name without upper-case ASCII, and an A/AAAA rdata that is an address or NXDOMAIN; and the
 * RR type round-trips through its text form.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pdns_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct pdns_rec r;
	enum pdns_reason why = pdns_parse_csv(data, size, &r);
	if (why >= PDNS_R__COUNT)
		abort();
	if (why != PDNS_OK)
		return 0;
	if (r.name_len == 0 || r.name_len > PDNS_NAME_MAX || strlen(r.name) != r.name_len)
		abort();
	if (r.rdata_len > PDNS_RDATA_MAX || strlen(r.rdata) != r.rdata_len)
		abort();
	for (size_t i = 0; i < r.name_len; i++)
		if (r.name[i] >= 'A' && r.name[i] <= 'Z')
			abort();
	if ((r.rrtype == 1 || r.rrtype == 28) && r.rdata_kind == PDNS_RD_STR &&
	    strcmp(r.rdata, "NXDOMAIN") != 0)
		abort();
	char t[PDNS_TYPE_TEXT_MAX];
	uint16_t back;
	pdns_rrtype_name(r.rrtype, t);
	if (pdns_rrtype_parse(t, strlen(t), &back) != 0 || back != r.rrtype)
		abort();
	return 0;
}
