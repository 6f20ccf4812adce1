/*
 * fuzz_tls_x509.c — tls_x509_parse() on arbitrary bytes (copied to an exact-size buffer).
 * A certificate either parses into a consistent tls_cert_info or is refused with a reason;
 * nothing leaks (LeakSanitizer) and nothing reads past the input (ASan).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tls_x509.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy = malloc(size ? size : 1);
	if (!copy)
		abort();
	memcpy(copy, data, size);
	struct tls_cert_info ci;
	enum tls_reason r = tls_x509_parse(copy, size, &ci);
	if (r == TLS_R_OK) {
		if (strlen(ci.sha1) != 40 || strlen(ci.sha256) != 64 || strlen(ci.spki_sha256) != 64 ||
		    !ci.subject || !ci.issuer || !ci.serial || !ci.key_type_name)
			abort();
		if ((ci.key_type == TLS_KEY_RSA) != (ci.rsa_n != NULL) && ci.rsa_n)
			abort();
		for (size_t i = 0; i < ci.n_san; i++)
			if (!ci.san[i].value)
				abort();
		tls_cert_info_free(&ci);
	} else if (ci.subject || ci.san || ci.rsa_n) {
		abort();
	}
	free(copy);
	return 0;
}
