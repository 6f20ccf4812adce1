/*
 * certs.c — a self-signed server certificate for a first run.
 *
 * `d4ctl run` makes one when [d4] tls_cert and tls_key do not exist, so that
 * the server starts on embedded defaults: an ECDSA P-256 key (0600) and a
 * certificate valid 825 days for localhost, 127.0.0.1, ::1 and the host's
 * name. Sensors then verify it with --ca pointing at the certificate itself,
 * or an operator replaces both files with ones from their own CA
 * (deploy/gen-certs.sh makes a private CA and client certificates).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "d4_log.h"
#include "d4ctl.h"

static int add_ext(X509 *cert, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, cert, cert, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (ext == NULL)
		return -1;
	int ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -1;
}

static FILE *create_private(const char *path, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0)
		return NULL;
	FILE *f = fdopen(fd, "w");
	if (f == NULL)
		close(fd);
	return f;
}

int d4ctl_make_cert(const char *cert_path, const char *key_path, char *err, size_t errlen)
{
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	FILE *kf = NULL, *cf = NULL;
	int rc = -1;
	char host[256] = "localhost", san[600];
	unsigned char serial[16];

	if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0')
		snprintf(host, sizeof(host), "localhost");
	key = EVP_EC_gen("P-256");
	cert = X509_new();
	if (key == NULL || cert == NULL || RAND_bytes(serial, sizeof(serial)) != 1)
		goto fail;
	serial[0] &= 0x7f; /* a positive serial */
	BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
	ASN1_INTEGER *sn = bn ? BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) : NULL;
	BN_free(bn);
	if (sn == NULL || !X509_set_version(cert, 2) ||
	    !X509_gmtime_adj(X509_getm_notBefore(cert), -3600) ||
	    !X509_gmtime_adj(X509_getm_notAfter(cert), 825L * 86400) || !X509_set_pubkey(cert, key))
		goto fail;
	X509_NAME *name = X509_get_subject_name(cert);
	if (!X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"d4", -1, -1,
	                                0) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)host, -1,
	                                -1, 0) ||
	    !X509_set_issuer_name(cert, name))
		goto fail;
	snprintf(san, sizeof(san), "DNS:localhost,IP:127.0.0.1,IP:::1%s%s",
	         strcmp(host, "localhost") ? ",DNS:" : "", strcmp(host, "localhost") ? host : "");
	if (add_ext(cert, NID_subject_alt_name, san) != 0 ||
	    add_ext(cert, NID_basic_constraints, "critical,CA:FALSE") != 0 ||
	    add_ext(cert, NID_key_usage, "critical,digitalSignature") != 0 ||
	    add_ext(cert, NID_ext_key_usage, "serverAuth") != 0 ||
	    add_ext(cert, NID_subject_key_identifier, "hash") != 0 ||
	    !X509_sign(cert, key, EVP_sha256()))
		goto fail;

	kf = create_private(key_path, 0600);
	if (kf == NULL) {
		snprintf(err, errlen, "%s: %s", key_path, strerror(errno));
		goto out;
	}
	if (!PEM_write_PrivateKey(kf, key, NULL, NULL, 0, NULL, NULL) || fclose(kf) != 0) {
		kf = NULL;
		snprintf(err, errlen, "%s: write failed", key_path);
		goto out;
	}
	kf = NULL;
	cf = create_private(cert_path, 0644);
	if (cf == NULL) {
		snprintf(err, errlen, "%s: %s", cert_path, strerror(errno));
		goto out;
	}
	if (!PEM_write_X509(cf, cert) || fclose(cf) != 0) {
		cf = NULL;
		snprintf(err, errlen, "%s: write failed", cert_path);
		goto out;
	}
	cf = NULL;
	d4_log(D4_LOG_NOTICE, "certificate-created", "cert", cert_path, "key", key_path, "names", san,
	       NULL);
	rc = 0;
	goto out;
fail:
	snprintf(err, errlen, "could not make a certificate (OpenSSL error)");
out:
	if (kf)
		fclose(kf);
	if (cf)
		fclose(cf);
	X509_free(cert);
	EVP_PKEY_free(key);
	return rc;
}
