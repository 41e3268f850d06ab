/* Fetching cloud images: checksum specs, sums files, URLs, the catalog, and the verified HTTP
 * download (resumed with Range, hashed while written) into the cache image_cache.c keeps. */
#include "image.h"

#include <ctype.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#ifdef HAVE_CURL
#define CURL_DISABLE_TYPECHECK /* its checking macros would hide the lazy table */
#include <curl/curl.h>
#endif

#include "image_internal.h"
#include "lazylib.h" /* after <curl/curl.h>: routes curl_*() through the lazy table */

#ifndef HUTCH_VERSION
#define HUTCH_VERSION "dev"
#endif

/* ---- algorithms and checksum specs ---- */

const char *image_algo_name(enum image_algo a) { return a == IMAGE_SHA512 ? "sha512" : "sha256"; }

size_t image_algo_hexlen(enum image_algo a) { return a == IMAGE_SHA512 ? 128 : 64; }

const EVP_MD *image_algo_md(enum image_algo a) { return a == IMAGE_SHA512 ? EVP_sha512() : EVP_sha256(); }

static int algo_parse(const char *s, size_t n, enum image_algo *ret)
{
	if (n == 6 && !strncasecmp(s, "sha256", 6)) {
		*ret = IMAGE_SHA256;
		return 0;
	}
	if (n == 6 && !strncasecmp(s, "sha512", 6)) {
		*ret = IMAGE_SHA512;
		return 0;
	}
	return -EINVAL;
}

static size_t hex_prefix_len(const char *s, size_t n)
{
	size_t i = 0;
	while (i < n && isxdigit((unsigned char)s[i]))
		i++;
	return i;
}

static char *hex_lower_dup(const char *s, size_t n)
{
	char *r = xstrndup(s, n);
	for (size_t i = 0; i < n; i++)
		r[i] = (char)tolower((unsigned char)r[i]);
	return r;
}

void image_hex_encode(const unsigned char *d, size_t n, char *out)
{
	static const char hx[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hx[d[i] >> 4];
		out[2 * i + 1] = hx[d[i] & 15];
	}
	out[2 * n] = 0;
}

void image_checksum_release(struct image_checksum *c)
{
	if (!c)
		return;
	free(c->hex);
	free(c->sums_url);
	c->hex = c->sums_url = NULL;
}

static void image_checksum_releasep(struct image_checksum *c) { image_checksum_release(c); }

int image_checksum_parse(const char *spec, struct image_checksum *ret, struct hutch_error *err)
{
	if (!spec || !*spec)
		return hutch_error_set(err, EINVAL, "empty checksum: use sha256:HEX or sha256:URL-of-SHA256SUMS");
	const char *colon = strchr(spec, ':');
	enum image_algo algo;
	if (!colon || algo_parse(spec, (size_t)(colon - spec), &algo) < 0)
		return hutch_error_set(err, EINVAL, "checksum '%s' must start with sha256: or sha512:", spec);
	const char *v = colon + 1;
	struct image_checksum c = {.algo = algo};
	if (strstr(v, "://")) {
		if (!image_url_is_http(v))
			return hutch_error_set(err, EINVAL, "checksum URL '%s' must be http or https", v);
		c.sums_url = xstrdup(v);
		*ret = c;
		return 0;
	}
	size_t n = strlen(v), want = image_algo_hexlen(algo), h = hex_prefix_len(v, n);
	if (h < n)
		return hutch_error_set(err, EINVAL, "malformed %s checksum '%s': '%c' is not a hex digit",
				       image_algo_name(algo), spec, v[h]);
	if (n != want)
		return hutch_error_set(err, EINVAL, "malformed %s checksum '%s': expected %zu hex digits, got %zu",
				       image_algo_name(algo), spec, want, n);
	c.hex = hex_lower_dup(v, n);
	*ret = c;
	return 0;
}

/* ---- sums files ---- */

struct sums_line {
	const char *algo; /* BSD lines name their algorithm; NULL for GNU lines */
	size_t algo_len;
	const char *hex;
	size_t hex_len;
	size_t name_len;
	char name[IMAGE_SUMS_LINE_MAX + 1]; /* unescaped; may hold NULs, compared by length */
};

/* GNU escapes names holding '\\' or a newline, and marks the line with a leading backslash. */
static bool gnu_unescape(const char *s, size_t n, char *out, size_t *ret_n)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '\\') {
			out[o++] = s[i];
			continue;
		}
		if (++i == n)
			return false;
		if (s[i] == '\\')
			out[o++] = '\\';
		else if (s[i] == 'n')
			out[o++] = '\n';
		else if (s[i] == 'r')
			out[o++] = '\r';
		else
			return false;
	}
	*ret_n = o;
	return true;
}

/* "SHA256 (name) = HEX". The last ") = " ends the name: names may hold parentheses. */
static bool sums_parse_bsd(const char *l, size_t n, struct sums_line *e)
{
	size_t a = 0;
	while (a < n && (isalnum((unsigned char)l[a]) || l[a] == '-'))
		a++;
	if (a == 0 || a + 2 > n || l[a] != ' ' || l[a + 1] != '(')
		return false;
	const char *rest = l + a + 2, *sep = NULL;
	size_t rn = n - a - 2;
	for (size_t i = 0; i + 4 <= rn; i++)
		if (!memcmp(rest + i, ") = ", 4))
			sep = rest + i;
	if (!sep)
		return false;
	e->algo = l;
	e->algo_len = a;
	e->name_len = (size_t)(sep - rest);
	memcpy(e->name, rest, e->name_len);
	e->hex = sep + 4;
	e->hex_len = (size_t)(l + n - e->hex);
	while (e->hex_len && (e->hex[e->hex_len - 1] == ' ' || e->hex[e->hex_len - 1] == '\t'))
		e->hex_len--;
	return true;
}

/* "HEX  name" (text mode), "HEX *name" (binary mode), optionally "\HEX  escaped\\name". */
static bool sums_parse_gnu(const char *l, size_t n, struct sums_line *e)
{
	bool escaped = n && l[0] == '\\';
	if (escaped)
		l++, n--;
	size_t h = 0;
	while (h < n && l[h] != ' ' && l[h] != '\t')
		h++;
	if (h == 0 || h + 1 >= n)
		return false;
	const char *name = l + h + 1;
	size_t nn = n - h - 1;
	if (*name == ' ' || *name == '*')
		name++, nn--;
	if (nn == 0)
		return false;
	if (escaped) {
		if (!gnu_unescape(name, nn, e->name, &e->name_len))
			return false;
	} else {
		memcpy(e->name, name, nn);
		e->name_len = nn;
	}
	e->algo = NULL;
	e->algo_len = 0;
	e->hex = l;
	e->hex_len = h;
	return true;
}

/* false for blank lines, comments, PGP armour and anything else that is not an entry. */
static bool sums_parse_line(const char *l, size_t n, struct sums_line *e)
{
	while (n && (*l == ' ' || *l == '\t'))
		l++, n--;
	if (!n || *l == '#')
		return false;
	return sums_parse_bsd(l, n, e) || sums_parse_gnu(l, n, e);
}

static bool sums_name_matches(const struct sums_line *e, const char *filename)
{
	const char *name = e->name;
	size_t n = e->name_len;
	if (n >= 2 && name[0] == '.' && name[1] == '/')
		name += 2, n -= 2;
	return n == strlen(filename) && !memcmp(name, filename, n);
}

/* SOURCE names the sums file in messages: "sums file", or its URL. */
static int parse_sums(const char *buf, size_t len, enum image_algo algo, const char *filename, const char *source,
		      char **ret_hex, struct hutch_error *err)
{
	if (len > IMAGE_SUMS_MAX)
		return hutch_error_set(err, EFBIG, "%s is larger than %d bytes", source, IMAGE_SUMS_MAX);
	const size_t want = image_algo_hexlen(algo);
	_cleanup_free_ struct sums_line *e = xmalloc(sizeof(*e));
	_cleanup_free_ char *found = NULL;
	const char *other_algo = NULL;
	size_t other_len = 0, lineno = 0;
	for (size_t pos = 0; pos < len;) {
		const char *l = buf + pos;
		const char *nl = memchr(l, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - l) : len - pos;
		pos += n + (nl ? 1 : 0);
		lineno++;
		if (n && l[n - 1] == '\r')
			n--;
		if (n > IMAGE_SUMS_LINE_MAX)
			return hutch_error_set(err, EINVAL, "line %zu of %s is longer than %d bytes", lineno, source,
					       IMAGE_SUMS_LINE_MAX);
		if (!sums_parse_line(l, n, e) || !sums_name_matches(e, filename))
			continue;
		enum image_algo line_algo = algo;
		if (e->algo && (algo_parse(e->algo, e->algo_len, &line_algo) < 0 || line_algo != algo)) {
			other_algo = e->algo;
			other_len = e->algo_len;
			continue;
		}
		if (e->hex_len != want || hex_prefix_len(e->hex, e->hex_len) != want)
			return hutch_error_set(
				err, EINVAL, "malformed %s digest for '%s' on line %zu of %s: expected %zu hex digits",
				image_algo_name(algo), filename, lineno, source, want);
		if (found && strncasecmp(found, e->hex, want))
			return hutch_error_set(err, EINVAL, "conflicting entries for '%s' in %s (line %zu)", filename,
					       source, lineno);
		if (!found)
			found = hex_lower_dup(e->hex, want);
	}
	if (!found && other_algo)
		return hutch_error_set(err, ENOENT, "no entry for '%s' in %s with a %s digest (it has %.*s)", filename,
				       source, image_algo_name(algo), (int)other_len, other_algo);
	if (!found)
		return hutch_error_set(err, ENOENT, "no entry for '%s' in %s", filename, source);
	*ret_hex = TAKE_PTR(found);
	return 0;
}

int image_parse_sums(const char *buf, size_t len, const char *algo, const char *filename, char **ret_hex,
		     struct hutch_error *err)
{
	enum image_algo a;
	if (!algo || algo_parse(algo, strlen(algo), &a) < 0)
		return hutch_error_set(err, EINVAL, "unknown checksum algorithm '%s'", algo ? algo : "");
	if (!filename || !*filename)
		return hutch_error_set(err, EINVAL, "no file name to look up in the sums file");
	return parse_sums(buf, len, a, filename, "sums file", ret_hex, err);
}

/* ---- URLs ---- */

static size_t http_scheme_len(const char *url)
{
	if (!strncasecmp(url, "http://", 7))
		return 7;
	if (!strncasecmp(url, "https://", 8))
		return 8;
	return 0;
}

static bool url_is_https(const char *url) { return !strncasecmp(url, "https://", 8); }

bool image_url_is_http(const char *url)
{
	size_t n = url ? http_scheme_len(url) : 0;
	if (!n || !url[n] || strchr("/?#", url[n]))
		return false;
	for (const char *p = url; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return false;
	return true;
}

const char *image_redirect_protocols(const char *url) { return url && url_is_https(url) ? "https" : "http,https"; }

static int unhex(char c) { return isdigit((unsigned char)c) ? c - '0' : tolower((unsigned char)c) - 'a' + 10; }

int image_url_filename(const char *url, char **ret, struct hutch_error *err)
{
	if (!image_url_is_http(url))
		return hutch_error_set(err, EINVAL, "'%s' is not an http or https URL", url ? url : "");
	const char *p = url + http_scheme_len(url);
	p += strcspn(p, "/?#");
	if (*p != '/')
		return hutch_error_set(err, EINVAL, "URL '%s' does not name a file", url);
	const char *end = p + strcspn(p, "?#"), *seg = end;
	while (seg > p && seg[-1] != '/')
		seg--;
	size_t n = (size_t)(end - seg);
	if (n == 0)
		return hutch_error_set(err, EINVAL, "URL '%s' does not name a file", url);
	_cleanup_free_ char *out = xmalloc(n + 1);
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		char ch = seg[i];
		if (ch == '%' && i + 2 < n && isxdigit((unsigned char)seg[i + 1]) &&
		    isxdigit((unsigned char)seg[i + 2])) {
			ch = (char)(unhex(seg[i + 1]) * 16 + unhex(seg[i + 2]));
			i += 2;
		}
		if (ch == 0 || ch == '/')
			return hutch_error_set(err, EINVAL, "URL '%s' has an invalid file name", url);
		out[o++] = ch;
	}
	out[o] = 0;
	if (!strcmp(out, ".") || !strcmp(out, ".."))
		return hutch_error_set(err, EINVAL, "URL '%s' does not name a file", url);
	*ret = TAKE_PTR(out);
	return 0;
}

/* ---- catalog ---- */

static const struct image_catalog_entry catalog[] = {
	{"debian-12", "https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-amd64.qcow2",
	 "sha512:https://cloud.debian.org/images/cloud/bookworm/latest/SHA512SUMS"},
	{"ubuntu-24.04",
	 "https://cloud-images.ubuntu.com/releases/24.04/release/ubuntu-24.04-server-cloudimg-amd64.img",
	 "sha256:https://cloud-images.ubuntu.com/releases/24.04/release/SHA256SUMS"},
	{"fedora-41",
	 "https://download.fedoraproject.org/pub/fedora/linux/releases/41/Cloud/x86_64/images/"
	 "Fedora-Cloud-Base-Generic-41-1.4.x86_64.qcow2",
	 "sha256:https://download.fedoraproject.org/pub/fedora/linux/releases/41/Cloud/x86_64/images/"
	 "Fedora-Cloud-41-1.4-x86_64-CHECKSUM"},
	{"arch", "https://geo.mirror.pkgbuild.com/images/latest/Arch-Linux-x86_64-cloudimg.qcow2",
	 "sha256:https://geo.mirror.pkgbuild.com/images/latest/Arch-Linux-x86_64-cloudimg.qcow2.SHA256"},
};

const struct image_catalog_entry *image_catalog(size_t *ret_n)
{
	*ret_n = ARRAY_SIZE(catalog);
	return catalog;
}

int image_resolve_catalog(const char *name_or_url, char **ret_url, char **ret_checksum, struct hutch_error *err)
{
	if (!name_or_url || !*name_or_url)
		return hutch_error_set(err, EINVAL, "empty image name");
	if (image_url_is_http(name_or_url)) {
		const char *ck = NULL;
		for (size_t i = 0; i < ARRAY_SIZE(catalog); i++)
			if (!strcmp(catalog[i].url, name_or_url))
				ck = catalog[i].checksum;
		*ret_url = xstrdup(name_or_url);
		*ret_checksum = ck ? xstrdup(ck) : NULL;
		return 0;
	}
	if (strstr(name_or_url, "://"))
		return hutch_error_set(err, EINVAL, "image URL '%s' must be http or https", name_or_url);
	for (size_t i = 0; i < ARRAY_SIZE(catalog); i++)
		if (!strcmp(catalog[i].name, name_or_url)) {
			*ret_url = xstrdup(catalog[i].url);
			*ret_checksum = xstrdup(catalog[i].checksum);
			return 0;
		}
	struct strbuf names = STRBUF_INIT;
	for (size_t i = 0; i < ARRAY_SIZE(catalog); i++)
		strbuf_addf(&names, "%s%s", i ? ", " : "", catalog[i].name);
	int r = hutch_error_set(err, ENOENT, "unknown image '%s': use an http(s) URL or one of %s", name_or_url,
				strbuf_str(&names));
	strbuf_release(&names);
	return r;
}

/* ---- HTTP ---- */

#ifdef HAVE_CURL
struct http_req {
	const char *url;
	long status;	     /* of the latest response */
	int64_t range_start; /* its Content-Range start, -1 without one */
	char *location;	     /* the latest Location header, for messages about refused redirects */
	const struct image_progress *prog;
	char errbuf[CURL_ERROR_SIZE];
};

static void http_req_release(struct http_req *rq) { free(rq->location); }

static bool header_is(const char *line, const char *name) { return !strncasecmp(line, name, strlen(name)); }

static size_t http_header_cb(char *buf, size_t size, size_t nitems, void *userdata)
{
	struct http_req *rq = userdata;
	size_t n = size * nitems;
	char line[8192];
	size_t l = n < sizeof(line) - 1 ? n : sizeof(line) - 1;
	memcpy(line, buf, l);
	while (l && (line[l - 1] == '\n' || line[l - 1] == '\r' || line[l - 1] == ' '))
		l--;
	line[l] = 0;
	if (!strncmp(line, "HTTP/", 5)) {
		const char *sp = strchr(line, ' ');
		rq->status = sp ? strtol(sp + 1, NULL, 10) : 0;
		rq->range_start = -1;
	} else if (header_is(line, "location:")) {
		const char *v = line + strlen("location:");
		v += strspn(v, " \t");
		free(rq->location);
		/* untrusted: it ends up in an error message on a terminal */
		rq->location = xstrndup(v, 2048);
		for (char *c = rq->location; *c; c++)
			if ((unsigned char)*c < ' ' || *c == 0x7f)
				*c = '?';
	} else if (header_is(line, "content-range:")) {
		const char *v = line + strlen("content-range:");
		v += strspn(v, " \t");
		if (!strncasecmp(v, "bytes ", 6) && isdigit((unsigned char)v[6]))
			rq->range_start = strtoll(v + 6, NULL, 10);
	}
	return n;
}

static int http_cancel_cb(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	const struct http_req *rq = userdata;
	return image_cancelled(rq->prog);
}

static long stall_seconds(void)
{
	long long v;
	const char *s = getenv("HUTCH_STALL_SECONDS");
	if (s && parse_ll(s, 1, 3600, &v) == 0)
		return (long)v;
	return IMAGE_STALL_SECONDS;
}

/* The one place transfer policy is set: http(s) only, on every hop; an https download stays https;
 * at most IMAGE_MAX_REDIRECTS; HTTP errors fail; a stall times out. */
static CURL *http_new(struct http_req *rq, const char *url, const struct image_progress *prog)
{
	memset(rq, 0, sizeof(*rq));
	rq->url = url;
	rq->range_start = -1;
	rq->prog = prog;
	CURL *h = curl_easy_init();
	if (!h)
		abort();
	const char *protos = image_redirect_protocols(url);
	curl_easy_setopt(h, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, protos);
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, protos);
#else
	long mask = url_is_https(url) ? CURLPROTO_HTTPS : (CURLPROTO_HTTP | CURLPROTO_HTTPS);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS, mask);
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS, mask);
#endif
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(h, CURLOPT_MAXREDIRS, (long)IMAGE_MAX_REDIRECTS);
	curl_easy_setopt(h, CURLOPT_FAILONERROR, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, rq->errbuf);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 30L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, stall_seconds());
	curl_easy_setopt(h, CURLOPT_USERAGENT, "hutch/" HUTCH_VERSION);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, http_header_cb);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, rq);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, http_cancel_cb);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, rq);
	/* A private CA, e.g. a company mirror (and the TLS tests). */
	const char *ca = getenv("HUTCH_CA_BUNDLE");
	if (ca && *ca)
		curl_easy_setopt(h, CURLOPT_CAINFO, ca);
	return h;
}

static int http_fail(CURLcode rc, const struct http_req *rq, struct hutch_error *err)
{
	const char *why = rq->errbuf[0] ? rq->errbuf : curl_easy_strerror(rc);
	switch (rc) {
	case CURLE_HTTP_RETURNED_ERROR:
		return hutch_error_set(err, rq->status == 404 ? ENOENT : EIO, "HTTP %ld fetching '%s'", rq->status,
				       rq->url);
	case CURLE_UNSUPPORTED_PROTOCOL:
		if (rq->location && url_is_https(rq->url) && !strncasecmp(rq->location, "http://", 7))
			return hutch_error_set(
				err, EPERM,
				"refusing redirect from '%s' to '%s': an https download never falls back to http",
				rq->url, rq->location);
		if (rq->location)
			return hutch_error_set(err, EPERM,
					       "refusing redirect from '%s' to '%s': only http and https are allowed",
					       rq->url, rq->location);
		return hutch_error_set(err, EPERM, "cannot fetch '%s': only http and https are allowed", rq->url);
	case CURLE_TOO_MANY_REDIRECTS:
		return hutch_error_set(err, ELOOP, "more than %d redirects fetching '%s'", IMAGE_MAX_REDIRECTS,
				       rq->url);
	case CURLE_OPERATION_TIMEDOUT:
		if (strstr(why, "too slow"))
			return hutch_error_set(err, ETIMEDOUT, "download of '%s' stalled: under 1 KiB/s for %ld s",
					       rq->url, stall_seconds());
		return hutch_error_set(err, ETIMEDOUT, "timed out fetching '%s': %s", rq->url, why);
	case CURLE_PARTIAL_FILE:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
		return hutch_error_set(err, ECONNRESET, "connection lost fetching '%s': %s", rq->url, why);
	case CURLE_ABORTED_BY_CALLBACK:
		return hutch_error_set(err, EINTR, "interrupted while fetching '%s'", rq->url);
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
		return hutch_error_set(err, EHOSTUNREACH, "cannot connect to '%s': %s", rq->url, why);
	case CURLE_PEER_FAILED_VERIFICATION:
		return hutch_error_set(err, EACCES, "cannot verify the TLS certificate of '%s': %s", rq->url, why);
	default:
		return hutch_error_set(err, EIO, "cannot fetch '%s': %s", rq->url, why);
	}
}

struct membuf {
	struct strbuf sb;
	size_t max;
	bool too_big;
};

static size_t mem_write_cb(char *p, size_t size, size_t nmemb, void *userdata)
{
	struct membuf *m = userdata;
	size_t n = size * nmemb;
	if (m->sb.len + n > m->max) {
		m->too_big = true;
		return 0;
	}
	strbuf_add(&m->sb, p, n);
	return n;
}

/* GET a small document (a sums file) into memory, refusing more than max bytes. */
static int http_get_small(const char *url, size_t max, const struct image_progress *prog, char **ret, size_t *ret_len,
			  struct hutch_error *err)
{
	if (lazy_curl_load(err) < 0)
		return -1;
	struct http_req rq;
	struct membuf m = {STRBUF_INIT, max, false};
	CURL *h = http_new(&rq, url, prog);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, mem_write_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &m);
	curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)max);
	CURLcode rc = curl_easy_perform(h);
	curl_easy_cleanup(h);
	int r = 0;
	if (m.too_big || rc == CURLE_FILESIZE_EXCEEDED)
		r = hutch_error_set(err, EFBIG, "'%s' is larger than %zu bytes", url, max);
	else if (rc != CURLE_OK)
		r = http_fail(rc, &rq, err);
	http_req_release(&rq);
	if (r < 0) {
		strbuf_release(&m.sb);
		return r;
	}
	*ret = strbuf_detach(&m.sb, ret_len);
	return 0;
}

/* One transfer into image.part, which already holds `offset` bytes that are hashed into md. */
struct download {
	struct http_req rq;
	int fd;
	EVP_MD_CTX *md;
	enum image_algo algo;
	uint64_t offset;  /* bytes kept from earlier runs */
	uint64_t written; /* bytes this transfer wrote after them */
	bool body_started;
	bool bad_range;
	int write_errno;
	uint64_t t0, last_report;
};

static void dl_report(struct download *d, uint64_t total_this, bool finished)
{
	const struct image_progress *prog = d->rq.prog;
	if (!prog || !prog->fn)
		return;
	struct image_progress_info pi = {
		.done = d->offset + d->written,
		.total = d->body_started && total_this ? d->offset + total_this : 0,
		.resumed = d->offset,
		.elapsed_ms = now_ms() - d->t0,
		.finished = finished,
	};
	if (finished && !pi.total)
		pi.total = pi.done;
	prog->fn(&pi, prog->userdata);
}

static int dl_xferinfo_cb(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	struct download *d = userdata;
	if (image_cancelled(d->rq.prog))
		return 1;
	uint64_t now = now_ms();
	if (d->last_report && now - d->last_report < 100)
		return 0;
	d->last_report = now;
	dl_report(d, dltotal > 0 ? (uint64_t)dltotal : 0, false);
	return 0;
}

static bool pwrite_all(int fd, const char *p, size_t n, uint64_t off)
{
	while (n) {
		ssize_t w = pwrite(fd, p, n, (off_t)off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return true;
}

static size_t dl_write_cb(char *p, size_t size, size_t nmemb, void *userdata)
{
	struct download *d = userdata;
	size_t n = size * nmemb;
	if (!d->body_started) {
		d->body_started = true;
		if (d->offset > 0 && d->rq.status != 206) {
			/* The server ignored Range and sends the whole file: start over. */
			if (ftruncate(d->fd, 0) < 0 || !EVP_DigestInit_ex(d->md, image_algo_md(d->algo), NULL)) {
				d->write_errno = errno ? errno : EIO;
				return 0;
			}
			d->offset = 0;
		} else if (d->rq.status == 206 && d->rq.range_start != (int64_t)d->offset) {
			d->bad_range = true;
			return 0;
		}
	}
	if (!pwrite_all(d->fd, p, n, d->offset + d->written)) {
		d->write_errno = errno ? errno : EIO;
		return 0;
	}
	EVP_DigestUpdate(d->md, p, n);
	d->written += n;
	return n;
}

static CURLcode dl_perform(struct download *d, const char *url, const struct image_progress *prog)
{
	CURL *h = http_new(&d->rq, url, prog);
	char range[32];
	if (d->offset) {
		snprintf(range, sizeof(range), "%llu-", (unsigned long long)d->offset);
		curl_easy_setopt(h, CURLOPT_RANGE, range);
	}
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, dl_write_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, d);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, dl_xferinfo_cb);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, d);
	d->t0 = now_ms();
	CURLcode rc = curl_easy_perform(h);
	curl_easy_cleanup(h);
	return rc;
}

static int dl_write_fail(const struct download *d, const char *part, struct hutch_error *err)
{
	char kept[32];
	format_size(d->offset + d->written, kept, sizeof(kept));
	if (d->write_errno == ENOSPC || d->write_errno == EDQUOT)
		return hutch_error_set(
			err, d->write_errno,
			"no space left on device writing '%s' (%s kept: free some space and run again to "
			"resume)",
			part, kept);
	return hutch_error_set(err, d->write_errno, "cannot write '%s': %s", part, strerror(d->write_errno));
}

/* Resume (or start) image.part and verify it. 0: verified and synced; 1: the .part was useless and
 * is now empty, try again (only when allow_restart); < 0: error, the .part kept for a rerun unless
 * its content is known to be wrong. */
static int download_once(const char *url, const char *part, enum image_algo algo, const char *want_hex,
			 const struct image_progress *prog, bool allow_restart, struct hutch_error *err)
{
	_cleanup_close_ int fd = open(part, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return hutch_error_set(err, errno, "cannot open '%s': %s", part, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0)
		return hutch_error_set(err, errno, "cannot stat '%s': %s", part, strerror(errno));
	_cleanup_(image_md_freep) EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md || !EVP_DigestInit_ex(md, image_algo_md(algo), NULL))
		abort();
	struct download d = {.fd = fd, .md = md, .algo = algo, .offset = (uint64_t)st.st_size};
	int r = image_hash_fd(fd, d.offset, md, prog);
	if (r == -EINTR)
		return hutch_error_set(err, EINTR, "interrupted; '%s' is kept to resume", part);
	if (r < 0)
		return hutch_error_set(err, -r, "cannot read '%s': %s", part, strerror(-r));

	CURLcode rc = dl_perform(&d, url, prog);
	bool resumed = d.offset > 0;
	r = 0;
	if (rc == CURLE_HTTP_RETURNED_ERROR && d.rq.status == 416 && d.offset > 0)
		r = 0; /* nothing past our end: the .part may be whole already, let the digest decide */
	else if (rc == CURLE_WRITE_ERROR && d.bad_range)
		r = 1;
	else if (rc == CURLE_WRITE_ERROR && d.write_errno)
		r = dl_write_fail(&d, part, err);
	else if (rc == CURLE_ABORTED_BY_CALLBACK)
		r = hutch_error_set(err, EINTR, "interrupted; '%s' is kept to resume", part);
	else if (rc != CURLE_OK) {
		r = http_fail(rc, &d.rq, err);
		if (d.offset + d.written > 0 && err && err->msg) {
			char *m = xasprintf("%s; '%s' is kept to resume", err->msg, part);
			free(err->msg);
			err->msg = m;
		}
	}
	http_req_release(&d.rq);
	if (r < 0)
		return r;

	char got[IMAGE_MAX_HEX + 1] = "";
	if (r == 0) {
		image_md_final_hex(md, got);
		if (!strcmp(got, want_hex)) {
			dl_report(&d, 0, true);
			if (fsync(fd) < 0)
				return hutch_error_set(err, errno, "cannot sync '%s': %s", part, strerror(errno));
			return 0;
		}
		if (!resumed || !allow_restart) {
			unlink(part);
			return hutch_error_set(err, EBADMSG, "checksum mismatch for %s: expected %s:%s, got %s:%s", url,
					       image_algo_name(algo), want_hex, image_algo_name(algo), got);
		}
	}
	if (!allow_restart) {
		unlink(part);
		return hutch_error_set(err, EPROTO, "'%s' answered a range it was not asked for", url);
	}
	/* The kept bytes were from another version of the file (or the server mangled the range):
	 * start over from zero, once. */
	if (ftruncate(fd, 0) < 0)
		return hutch_error_set(err, errno, "cannot truncate '%s': %s", part, strerror(errno));
	return 1;
}

static int download_verified(const char *url, const char *part, enum image_algo algo, const char *want_hex,
			     const struct image_progress *prog, struct hutch_error *err)
{
	if (lazy_curl_load(err) < 0)
		return -1;
	int r = download_once(url, part, algo, want_hex, prog, true, err);
	if (r == 1)
		r = download_once(url, part, algo, want_hex, prog, false, err);
	return r;
}
#endif /* HAVE_CURL */

static int sums_lookup(const struct image_checksum *ck, const char *filename, const struct image_progress *prog,
		       char **ret_hex, struct hutch_error *err)
{
#ifdef HAVE_CURL
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	int r = http_get_small(ck->sums_url, IMAGE_SUMS_MAX, prog, &buf, &len, err);
	if (r < 0)
		return r;
	return parse_sums(buf, len, ck->algo, filename, ck->sums_url, ret_hex, err);
#else
	return hutch_error_set(err, ENOTSUP, "hutch was built without libcurl: cannot fetch '%s'", ck->sums_url);
#endif
}

int image_fetch(const struct store *st, const char *url, const char *checksum_spec, unsigned flags,
		const struct image_progress *prog, char **ret_path, struct hutch_error *err)
{
	if (lazy_crypto_load(err) < 0)
		return -1;
	if (!image_url_is_http(url))
		return hutch_error_set(err, EINVAL, "image URL '%s' must be http or https", url ? url : "");
	if (!checksum_spec || !*checksum_spec)
		return hutch_error_set(err, EINVAL,
				       "no checksum for '%s': an image is only used once verified (give sha256:HEX or "
				       "sha256:URL-of-SHA256SUMS)",
				       url);
	_cleanup_(image_checksum_releasep) struct image_checksum ck = {0};
	int r = image_checksum_parse(checksum_spec, &ck, err);
	if (r < 0)
		return r;
	_cleanup_free_ char *filename = NULL;
	r = image_url_filename(url, &filename, err);
	if (r < 0)
		return r;
	_cleanup_free_ char *dir = image_cache_dir(st, url);
	_cleanup_free_ char *want = NULL;
	if (ck.sums_url && !(flags & IMAGE_FETCH_REFRESH)) {
		_cleanup_free_ char *known = image_resolved_lookup(dir, checksum_spec);
		char *path = known ? image_pinned_path(dir, known) : NULL;
		if (path) {
			*ret_path = path;
			return 0;
		}
	}
	if (ck.sums_url) {
		r = sums_lookup(&ck, filename, prog, &want, err);
		if (r < 0)
			return r;
	} else {
		want = xstrdup(ck.hex);
	}
	_cleanup_free_ char *digest_line = xasprintf("%s:%s", image_algo_name(ck.algo), want);

	r = mkdir_p(dir, 0700);
	if (r < 0)
		return hutch_error_set(err, -r, "cannot create '%s': %s", dir, strerror(-r));
	_cleanup_close_ int lock_fd = -1;
	r = image_cache_lock(dir, true, prog, &lock_fd, err);
	if (r < 0)
		return r;
	if (ck.sums_url)
		image_resolved_record(dir, checksum_spec, digest_line); /* kept only once a base exists below */
	/* A by-digest name exists only for content that was verified as that digest: it may be an
	 * earlier version a pinned checksum still asks for. */
	char *pinned = image_pinned_path(dir, digest_line);
	if (pinned) {
		*ret_path = pinned;
		return 0;
	}
	if (image_cache_verified(dir, ck.algo, digest_line, prog))
		return image_cache_link(dir, digest_line, ret_path, err);
#ifdef HAVE_CURL
	_cleanup_free_ char *part = xasprintf("%s/image.part", dir);
	_cleanup_free_ char *urlf = xasprintf("%s/url", dir);
	_cleanup_free_ char *u = xasprintf("%s\n", url);
	if (access(urlf, F_OK) < 0) {
		/* so that ls and prune can name an interrupted download */
		r = write_file_atomic(urlf, u, strlen(u), 0600, err);
		if (r < 0)
			return r;
	}
	r = download_verified(url, part, ck.algo, want, prog, err);
	if (r < 0)
		return r;
	r = image_cache_commit(dir, url, digest_line, err);
	if (r < 0)
		return r;
	return image_cache_link(dir, digest_line, ret_path, err);
#else
	return hutch_error_set(err, ENOTSUP, "hutch was built without libcurl: cannot download '%s'", url);
#endif
}
