/*
 * ui.c — serves the web UI: the files of d4-web/ui/ compiled into the
 * binary (ui_assets.c), so a closed CSIRT network needs nothing but d4-web.
 *
 * "/" is the single page (ui/index.html); "/ui/<file>" the rest. These
 * paths are public: they hold no data, and every datum comes from the REST
 * API with the session cookie and the CSRF token. Replies carry a CSP that
 * allows only this origin's own files (no inline script or style), and an
 * ETag with "no-cache": the browser keeps a copy but asks each time, and a
 * new d4-web binary is seen at once (304 while nothing changed).
 */
#include <stdio.h>
#include <string.h>

#include <microhttpd.h>

#include "ui.h"
#include "web.h"

#define UI_CSP                                                                                  \
	"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "       \
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "          \
	"frame-ancestors 'none'"

bool ui_path(const char *path)
{
	return strcmp(path, "/") == 0 || strcmp(path, "/index.html") == 0 ||
	       strncmp(path, "/ui/", 4) == 0;
}

/* The Content-Type for a file name's extension; unknown ones are served as bytes. */
static const char *content_type_of(const char *path)
{
	static const struct {
		const char *ext, *type;
	} types[] = {
		{".html", "text/html; charset=utf-8"},
		{".css", "text/css; charset=utf-8"},
		{".js", "text/javascript; charset=utf-8"},
		{".svg", "image/svg+xml"},
		{".png", "image/png"},
		{".ico", "image/x-icon"},
		{".txt", "text/plain; charset=utf-8"},
	};
	const char *dot = strrchr(path, '.');

	for (size_t i = 0; dot != NULL && i < sizeof(types) / sizeof(types[0]); i++)
		if (strcmp(dot, types[i].ext) == 0)
			return types[i].type;
	return "application/octet-stream";
}

/* Whether an If-None-Match header names this ETag (a list, or "*"). */
static bool etag_matches(const char *inm, const char *etag)
{
	size_t n = strlen(etag);

	if (inm == NULL)
		return false;
	if (strcmp(inm, "*") == 0)
		return true;
	for (const char *p = strstr(inm, etag); p != NULL; p = strstr(p + 1, etag))
		if ((p == inm || p[-1] == ' ' || p[-1] == ',' || p[-1] == '/') &&
		    (p[n] == '\0' || p[n] == ',' || p[n] == ' '))
			return true;
	return false;
}

void ui_serve(struct web_req *r)
{
	const char *path = r->path;
	const struct ui_asset *a = NULL;

	if (r->method != M_GET && r->method != M_HEAD) {
		snprintf(r->allow, sizeof(r->allow), "GET, HEAD");
		web_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "the UI's files are read with GET");
		return;
	}
	if (strcmp(path, "/") == 0 || strcmp(path, "/index.html") == 0)
		path = "/ui/index.html";
	for (size_t i = 0; i < ui_asset_count && a == NULL; i++)
		if (strcmp(ui_assets[i].path, path) == 0)
			a = &ui_assets[i];
	if (a == NULL) {
		web_error(r, MHD_HTTP_NOT_FOUND, "no such file in the UI");
		return;
	}
	r->csp = UI_CSP;
	r->cache_control = "no-cache";
	snprintf(r->etag, sizeof(r->etag), "%s", a->etag);
	r->content_type = content_type_of(path);
	r->asset = a->data;
	r->asset_len = a->size;
	r->status = MHD_HTTP_OK;
	if (etag_matches(MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
	                                             MHD_HTTP_HEADER_IF_NONE_MATCH),
	                 a->etag)) {
		r->status = MHD_HTTP_NOT_MODIFIED;
		r->asset_len = 0;
	}
}
