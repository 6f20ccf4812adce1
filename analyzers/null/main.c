/*
 * d4-analyzer-null — counts sessions, records and payload bytes, acknowledges everything.
 *
 * The baseline for benchmarks of d4-dispatch and of the analyzer library: whatever it costs
 * is the cost of the protocol itself. The summary goes to stderr at exit (stdout belongs to
 * the dispatcher's log as well, but stderr is where every analyzer reports).
 */
#include <inttypes.h>
#include <stdio.h>

#include "d4_analyzer.h"

struct null_ctx {
	uint64_t sessions;
	uint64_t records;
	uint64_t bytes;
};

static int null_start(void *ctx, struct d4_an_session *s)
{
	struct null_ctx *c = ctx;
	(void)s;
	c->sessions++;
	return 0;
}

static int null_data(void *ctx, struct d4_an_session *s, const struct d4_header *h,
                     const uint8_t *payload, size_t len)
{
	struct null_ctx *c = ctx;
	(void)s;
	(void)h;
	(void)payload;
	c->records++;
	c->bytes += len;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct d4_analyzer_def def = {
		.name = "null",
		.start_cb = null_start,
		.data_cb = null_data,
	};
	struct null_ctx c = {0};
	int rc = d4_analyzer_main(argc, argv, &def, &c);
	fprintf(stderr, "d4-analyzer-null: sessions=%" PRIu64 " records=%" PRIu64 " bytes=%" PRIu64 "\n",
	        c.sessions, c.records, c.bytes);
	return rc;
}
