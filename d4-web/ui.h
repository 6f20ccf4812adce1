/*
 * ui.h — the web UI's files, compiled into d4-web.
 *
 * ui_assets.c is generated at build time from d4-web/ui/ by ui_embed.cmake
 * (one byte array per file); ui.c serves them. The UI is a single page in
 * plain JavaScript that talks to the REST API like any other client.
 */
#ifndef D4_WEB_UI_H
#define D4_WEB_UI_H

#include <stdbool.h>
#include <stddef.h>

struct ui_asset {
	const char *path;          /* "/ui/app.js" */
	const char *etag;          /* "\"<16 hex digits of its SHA-256>\"" */
	const unsigned char *data; /* NUL-terminated, not counted in size */
	size_t size;
};

extern const struct ui_asset ui_assets[];
extern const size_t ui_asset_count;

struct web_req;

/* Whether a GET of this path is the UI's ("/", "/ui/..."), which ui_serve answers. */
bool ui_path(const char *path);
/* Serves an embedded file (or 404), with its own headers (CSP, caching, ETag). */
void ui_serve(struct web_req *r);

#endif
