/* Cloud images: checksum specs, sums files, the verified download cache and qcow2 overlays.
 *
 * Cache layout, one directory per URL: cache/images/<sha256(url)>/
 *   lock        OFD lock: one fetch (or rm/prune) at a time per URL
 *   image.part  bytes downloaded so far; only ever appended to, so a rerun resumes with Range
 *   image       the verified image; renamed from image.part only after its digest matched
 *   digest      "sha256:HEX" lines the image was verified against; removed before image is replaced
 *   url         the URL, for ls and prune
 *   by-digest/<algo>-<hex>  hard links to each verified version: what image_fetch returns and
 *               overlays are based on, so a new upstream version never changes an existing VM's base */
#include "image.h"
#include "spec.h"

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <openssl/evp.h>
#include <poll.h>
#include <spawn.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#ifdef HAVE_CURL
#define CURL_DISABLE_TYPECHECK /* its checking macros would hide the lazy table */
#include <curl/curl.h>
#endif

#include "lazylib.h" /* after <curl/curl.h>: routes curl_*() through the lazy table */

#ifndef HUTCH_VERSION
#define HUTCH_VERSION "dev"
#endif

extern char **environ;

#define MAX_HEX 128
#define QEMU_IMG_OUTPUT_MAX (1024 * 1024)

/* ---- algorithms and checksum specs ---- */

const char *image_algo_name(enum image_algo a) { return a == IMAGE_SHA512 ? "sha512" : "sha256"; }

size_t image_algo_hexlen(enum image_algo a) { return a == IMAGE_SHA512 ? 128 : 64; }

static const EVP_MD *algo_md(enum image_algo a) { return a == IMAGE_SHA512 ? EVP_sha512() : EVP_sha256(); }

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

static void hex_encode(const unsigned char *d, size_t n, char *out)
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

/* ---- cache helpers ---- */

static char *images_root(const struct store *st) { return xasprintf("%s/images", st->cache_dir); }

char *image_cache_dir(const struct store *st, const char *url)
{
	char id[65];
	sha256_hex(url, strlen(url), id);
	return xasprintf("%s/images/%s", st->cache_dir, id);
}

static void md_freep(EVP_MD_CTX **p)
{
	if (*p)
		EVP_MD_CTX_free(*p);
}

static bool cancelled(const struct image_progress *prog) { return prog && prog->cancel && *prog->cancel; }

/* Feed the first len bytes of fd into md. */
static int hash_fd(int fd, uint64_t len, EVP_MD_CTX *md, const struct image_progress *prog)
{
	const size_t bufsz = 1 << 20;
	_cleanup_free_ char *buf = xmalloc(bufsz);
	uint64_t off = 0;
	while (off < len) {
		if (cancelled(prog))
			return -EINTR;
		size_t want = len - off < bufsz ? (size_t)(len - off) : bufsz;
		ssize_t n = pread(fd, buf, want, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO; /* the file shrank under us */
		EVP_DigestUpdate(md, buf, (size_t)n);
		off += (uint64_t)n;
	}
	return 0;
}

static void md_final_hex(EVP_MD_CTX *md, char out[MAX_HEX + 1])
{
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	EVP_DigestFinal_ex(md, d, &n);
	hex_encode(d, n, out);
}

static int fsync_dir(const char *dir)
{
	_cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	return fsync(fd) < 0 ? -errno : 0;
}

/* Take dir/lock, waiting for another fetch of the same URL to finish unless !wait (-EWOULDBLOCK). */
static int cache_lock(const char *dir, bool wait, const struct image_progress *prog, int *ret_fd,
		      struct hutch_error *err)
{
	_cleanup_free_ char *p = xasprintf("%s/lock", dir);
	for (;;) {
		int r = store_lock_file(p, 0, ret_fd, err);
		if (r != -EWOULDBLOCK)
			return r;
		if (!wait)
			return -EWOULDBLOCK;
		if (cancelled(prog))
			return hutch_error_set(err, EINTR,
					       "interrupted while waiting for another download of the image");
		usleep(100 * 1000);
	}
}

static char *read_small(const char *path, size_t max)
{
	char *buf = NULL;
	size_t len = 0;
	if (read_file(path, max, &buf, &len, NULL) < 0)
		return NULL;
	while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		buf[--len] = 0;
	return buf;
}

static bool line_in(const char *text, const char *line)
{
	size_t n = strlen(line);
	for (const char *p = text; p && *p;) {
		const char *nl = strchr(p, '\n');
		size_t l = nl ? (size_t)(nl - p) : strlen(p);
		if (l == n && !memcmp(p, line, n))
			return true;
		p = nl ? nl + 1 : NULL;
	}
	return false;
}

static bool line_starts(const char *text, const char *prefix)
{
	size_t n = strlen(prefix);
	for (const char *p = text; p && *p;) {
		if (!strncmp(p, prefix, n))
			return true;
		const char *nl = strchr(p, '\n');
		p = nl ? nl + 1 : NULL;
	}
	return false;
}

/* Is dir/image verified as WANT ("algo:hex")? A digest recorded only with another algorithm is
 * checked by hashing the cached file again (that is verification too) and then recorded as well. */
static bool cache_verified(const char *dir, enum image_algo algo, const char *want, const struct image_progress *prog)
{
	_cleanup_free_ char *image = xasprintf("%s/image", dir);
	_cleanup_free_ char *digest_path = xasprintf("%s/digest", dir);
	_cleanup_free_ char *recorded = read_small(digest_path, 4096);
	struct stat st;
	if (!recorded || stat(image, &st) < 0 || !S_ISREG(st.st_mode))
		return false;
	if (line_in(recorded, want))
		return true;
	char prefix[8];
	snprintf(prefix, sizeof(prefix), "%s:", image_algo_name(algo));
	if (line_starts(recorded, prefix))
		return false; /* verified as something else: upstream changed */
	_cleanup_close_ int fd = open(image, O_RDONLY | O_CLOEXEC);
	_cleanup_(md_freep) EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (fd < 0 || !md || !EVP_DigestInit_ex(md, algo_md(algo), NULL) ||
	    hash_fd(fd, (uint64_t)st.st_size, md, prog) < 0)
		return false;
	char got[MAX_HEX + 1];
	md_final_hex(md, got);
	if (strcmp(got, want + strlen(prefix)))
		return false;
	_cleanup_free_ char *both = xasprintf("%s\n%s\n", recorded, want);
	write_file_atomic(digest_path, both, strlen(both), 0600, NULL);
	return true;
}

/* ---- HTTP ---- */

#ifdef HAVE_CURL
/* image.part is verified: make it the image. The digest goes first and comes back last, so a crash
 * in between leaves an image with no digest, which is never used. */
static int cache_commit(const char *dir, const char *url, const char *digest_line, struct hutch_error *err)
{
	_cleanup_free_ char *part = xasprintf("%s/image.part", dir);
	_cleanup_free_ char *image = xasprintf("%s/image", dir);
	_cleanup_free_ char *digest = xasprintf("%s/digest", dir);
	_cleanup_free_ char *urlf = xasprintf("%s/url", dir);
	if (unlink(digest) < 0 && errno != ENOENT)
		return hutch_error_set(err, errno, "cannot remove '%s': %s", digest, strerror(errno));
	fsync_dir(dir);
	_cleanup_free_ char *u = xasprintf("%s\n", url);
	int r = write_file_atomic(urlf, u, strlen(u), 0600, err);
	if (r < 0)
		return r;
	if (rename(part, image) < 0)
		return hutch_error_set(err, errno, "cannot rename '%s' to '%s': %s", part, image, strerror(errno));
	_cleanup_free_ char *d = xasprintf("%s\n", digest_line);
	return write_file_atomic(digest, d, strlen(d), 0600, err);
}

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
	return cancelled(rq->prog);
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
	if (cancelled(d->rq.prog))
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
			if (ftruncate(d->fd, 0) < 0 || !EVP_DigestInit_ex(d->md, algo_md(d->algo), NULL)) {
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
	_cleanup_(md_freep) EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md || !EVP_DigestInit_ex(md, algo_md(algo), NULL))
		abort();
	struct download d = {.fd = fd, .md = md, .algo = algo, .offset = (uint64_t)st.st_size};
	int r = hash_fd(fd, d.offset, md, prog);
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

	char got[MAX_HEX + 1] = "";
	if (r == 0) {
		md_final_hex(md, got);
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

/* The path overlays are built on: by-digest/<algo>-<hex>, a hard link to the image as verified.
 * `image` is replaced when the file behind a URL changes upstream (a "latest" URL); this name never
 * is, so the overlays of existing VMs keep the exact base they were created on. */
/* by-digest/<algo>-<hex> for DIGEST_LINE "algo:hex"; NULL for anything else. */
static char *by_digest_path(const char *dir, const char *digest_line)
{
	const char *colon = strchr(digest_line, ':');
	if (!colon || colon == digest_line || !colon[1] || strpbrk(digest_line, "/\n"))
		return NULL;
	return xasprintf("%s/by-digest/%.*s-%s", dir, (int)(colon - digest_line), digest_line, colon + 1);
}

static int cache_link(const char *dir, const char *digest_line, char **ret_path, struct hutch_error *err)
{
	_cleanup_free_ char *bd = xasprintf("%s/by-digest", dir);
	_cleanup_free_ char *image = xasprintf("%s/image", dir);
	_cleanup_free_ char *path = by_digest_path(dir, digest_line);
	if (!path)
		return hutch_error_set(err, EINVAL, "malformed digest '%s'", digest_line);
	struct stat st;
	if (stat(path, &st) == 0) {
		/* Already there: the same verified content, maybe an older copy some overlay uses. */
		*ret_path = TAKE_PTR(path);
		return 0;
	}
	if (mkdir(bd, 0700) < 0 && errno != EEXIST)
		return hutch_error_set(err, errno, "cannot create '%s': %s", bd, strerror(errno));
	_cleanup_free_ char *tmp = xasprintf("%s.tmp.%d", path, (int)getpid());
	unlink(tmp);
	if (link(image, tmp) < 0 || rename(tmp, path) < 0) {
		int e = errno;
		unlink(tmp);
		return hutch_error_set(err, e, "cannot link '%s' to '%s': %s", image, path, strerror(e));
	}
	fsync_dir(bd);
	*ret_path = TAKE_PTR(path);
	return 0;
}

/* The line at *p (without its newline) into line and len, and *p past it; false at the end. */
static bool next_line(const char **p, const char **line, size_t *len)
{
	if (!*p || !**p)
		return false;
	*line = *p;
	*len = strcspn(*p, "\n");
	*p += *len + ((*p)[*len] == '\n');
	return true;
}

/* The digest part of a `resolved` line for SPEC, or NULL when the line is another spec's. */
static const char *resolved_digest(const char *line, size_t len, const char *spec)
{
	size_t n = strlen(spec);
	return len > n + 1 && !strncmp(line, spec, n) && line[n] == '\t' ? line + n + 1 : NULL;
}

/* What a sums-file checksum resolved to when this URL was last verified: one "SPEC\tDIGEST-LINE"
 * per line in the cache dir's `resolved`. It lets create use a cached image without the network;
 * IMAGE_FETCH_REFRESH (image pull, build, create --pull) asks upstream again. */
static char *resolved_lookup(const char *dir, const char *spec)
{
	_cleanup_free_ char *path = xasprintf("%s/resolved", dir);
	_cleanup_free_ char *text = read_small(path, 65536);
	const char *p = text, *l, *d;
	size_t len;
	while (next_line(&p, &l, &len))
		if ((d = resolved_digest(l, len, spec)))
			return xstrndup(d, len - (size_t)(d - l));
	return NULL;
}

static void resolved_record(const char *dir, const char *spec, const char *digest_line)
{
	if (strpbrk(spec, "\t\n"))
		return;
	_cleanup_free_ char *path = xasprintf("%s/resolved", dir);
	_cleanup_free_ char *old = read_small(path, 65536);
	struct strbuf sb = STRBUF_INIT;
	strbuf_addf(&sb, "%s\t%s\n", spec, digest_line);
	const char *p = old, *l;
	size_t len;
	while (next_line(&p, &l, &len))
		if (!resolved_digest(l, len, spec) && sb.len + len < 60000)
			strbuf_addf(&sb, "%.*s\n", (int)len, l);
	(void)write_file_atomic(path, strbuf_str(&sb), sb.len, 0600, NULL); /* only a shortcut */
	strbuf_release(&sb);
}

/* A by-digest base for DIGEST_LINE ("algo:hex"), if one was verified. */
static char *pinned_path(const char *dir, const char *digest_line)
{
	char *p = by_digest_path(dir, digest_line);
	struct stat st;
	if (p && lstat(p, &st) == 0 && S_ISREG(st.st_mode))
		return p;
	free(p);
	return NULL;
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
		_cleanup_free_ char *known = resolved_lookup(dir, checksum_spec);
		char *path = known ? pinned_path(dir, known) : NULL;
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
	r = cache_lock(dir, true, prog, &lock_fd, err);
	if (r < 0)
		return r;
	if (ck.sums_url)
		resolved_record(dir, checksum_spec, digest_line); /* kept only once a base exists below */
	/* A by-digest name exists only for content that was verified as that digest: it may be an
	 * earlier version a pinned checksum still asks for. */
	char *pinned = pinned_path(dir, digest_line);
	if (pinned) {
		*ret_path = pinned;
		return 0;
	}
	if (cache_verified(dir, ck.algo, digest_line, prog))
		return cache_link(dir, digest_line, ret_path, err);
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
	r = cache_commit(dir, url, digest_line, err);
	if (r < 0)
		return r;
	return cache_link(dir, digest_line, ret_path, err);
#else
	return hutch_error_set(err, ENOTSUP, "hutch was built without libcurl: cannot download '%s'", url);
#endif
}

/* QEMU's image locking (block/file-posix.c): a process holding permission bit i has a shared OFD
 * lock on byte 100 + i of the file; one that refuses to share it, on byte 200 + i. Asking whether an
 * exclusive lock on a byte would conflict tells whether some QEMU holds that permission. */
enum { QEMU_LOCK_PERM_BASE = 100, QEMU_PERM_CONSISTENT_READ = 0, QEMU_PERM_WRITE = 1 };

static bool qemu_lock_held(const char *path, int perm_bit)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return false;
	struct flock fl = {
		.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = QEMU_LOCK_PERM_BASE + perm_bit, .l_len = 1};
	return fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
}

/* ---- listing, users, removal ---- */

static bool is_id(const char *s)
{
	size_t n = strlen(s);
	if (n != 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]) && !(s[i] >= 'a' && s[i] <= 'f'))
			return false;
	return true;
}

static void entry_load(const char *root, const char *id, struct image_entry *e)
{
	memset(e, 0, sizeof(*e));
	e->id = xstrdup(id);
	_cleanup_free_ char *u = xasprintf("%s/%s/url", root, id);
	_cleanup_free_ char *dg = xasprintf("%s/%s/digest", root, id);
	_cleanup_free_ char *img = xasprintf("%s/%s/image", root, id);
	_cleanup_free_ char *part = xasprintf("%s/%s/image.part", root, id);
	e->url = read_small(u, 65536);
	e->digest = read_small(dg, 4096);
	if (e->digest) {
		char *nl = strchr(e->digest, '\n');
		if (nl)
			*nl = 0;
	}
	struct stat st;
	if (stat(img, &st) == 0 && S_ISREG(st.st_mode)) {
		e->path = TAKE_PTR(img);
		e->size = (uint64_t)st.st_size;
	}
	if (stat(part, &st) == 0 && S_ISREG(st.st_mode))
		e->part_size = (uint64_t)st.st_size;
}

static void entry_release(struct image_entry *e)
{
	free(e->id);
	free(e->url);
	free(e->digest);
	free(e->path);
}

void image_entries_free(struct image_entry *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		entry_release(&v[i]);
	free(v);
}

static int entry_cmp(const void *a, const void *b)
{
	const struct image_entry *x = a, *y = b;
	if (x->url && y->url && strcmp(x->url, y->url))
		return strcmp(x->url, y->url);
	if (!x->url != !y->url)
		return x->url ? -1 : 1;
	return strcmp(x->id, y->id);
}

int image_list(const struct store *st, struct image_entry **ret, size_t *ret_n, struct hutch_error *err)
{
	_cleanup_free_ char *root = images_root(st);
	struct image_entry *v = NULL;
	size_t n = 0;
	DIR *d = opendir(root);
	if (!d && errno != ENOENT)
		return hutch_error_set(err, errno, "cannot read '%s': %s", root, strerror(errno));
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (!is_id(de->d_name))
			continue;
		v = xrealloc(v, (n + 1) * sizeof(*v));
		entry_load(root, de->d_name, &v[n++]);
	}
	if (d)
		closedir(d);
	if (n)
		qsort(v, n, sizeof(*v), entry_cmp);
	*ret = v;
	*ret_n = n;
	return 0;
}

/* Does one of the specs in the VM's spec.yml name URL (directly or through the catalog)? A spec that
 * no longer parses counts as using every URL it mentions. */
static bool vm_spec_uses(const struct store *st, const char *name, const char *url)
{
	_cleanup_free_ char *path = store_vm_file(st, name, "spec.yml");
	struct vm_spec **specs = NULL;
	size_t n = 0;
	if (access(path, F_OK) < 0)
		return false;
	if (spec_parse_file(path, &specs, &n, NULL) < 0) {
		_cleanup_free_ char *buf = NULL;
		size_t len = 0;
		return read_file(path, SPEC_MAX_FILE, &buf, &len, NULL) == 0 && strstr(buf, url);
	}
	bool used = false;
	for (size_t i = 0; i < n && !used; i++) {
		if (!specs[i]->image)
			continue;
		_cleanup_free_ char *u = NULL, *ck = NULL;
		if (image_resolve_catalog(specs[i]->image, &u, &ck, NULL) == 0)
			used = !strcmp(u, url);
		else
			used = !strcmp(specs[i]->image, url);
	}
	spec_free_all(specs, n);
	return used;
}

/* The backing file named in a qcow2 header, or NULL. */
static char *qcow2_backing(const char *path)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	unsigned char h[20];
	if (fd < 0 || pread(fd, h, sizeof(h), 0) != (ssize_t)sizeof(h) || memcmp(h, "QFI\xfb", 4))
		return NULL;
	uint64_t off = 0;
	for (int i = 8; i < 16; i++)
		off = off << 8 | h[i];
	uint32_t len = (uint32_t)h[16] << 24 | (uint32_t)h[17] << 16 | (uint32_t)h[18] << 8 | h[19];
	if (!off || !len || len > 1023 || off > (uint64_t)INT64_MAX)
		return NULL;
	char *name = xmalloc(len + 1);
	if (pread(fd, name, len, (off_t)off) != (ssize_t)len) {
		free(name);
		return NULL;
	}
	name[len] = 0;
	return name;
}

static bool vm_disk_uses(const struct store *st, const char *name, const char *dir, const char *real_dir)
{
	_cleanup_free_ char *vmdir = store_vm_dir(st, name);
	DIR *d = opendir(vmdir);
	if (!d)
		return false;
	bool used = false;
	struct dirent *de;
	while (!used && (de = readdir(d))) {
		size_t n = strlen(de->d_name);
		if (n < 6 || strcmp(de->d_name + n - 6, ".qcow2"))
			continue;
		_cleanup_free_ char *p = xasprintf("%s/%s", vmdir, de->d_name);
		_cleanup_free_ char *b = qcow2_backing(p);
		if (!b)
			continue;
		size_t dl = strlen(dir), rl = real_dir ? strlen(real_dir) : 0;
		used = (!strncmp(b, dir, dl) && b[dl] == '/') ||
		       (real_dir && !strncmp(b, real_dir, rl) && b[rl] == '/');
	}
	closedir(d);
	return used;
}

/* Every dir under data/vms, VM or not: store_list skips a dir whose spec is gone, but a disk that
 * destroy kept there still needs its base. */
static int vm_dirs(const struct store *st, char ***ret, struct hutch_error *err)
{
	_cleanup_free_ char *root = xasprintf("%s/vms", st->data_dir);
	char **names = xcalloc(1, sizeof(char *));
	DIR *d = opendir(root);
	if (!d && errno != ENOENT) {
		free(names);
		return hutch_error_set(err, errno, "cannot read '%s': %s", root, strerror(errno));
	}
	struct dirent *de;
	while (d && (de = readdir(d)))
		if (store_name_valid(de->d_name))
			names = strv_push(names, xstrdup(de->d_name));
	if (d)
		closedir(d);
	*ret = names;
	return 0;
}

int image_users(const struct store *st, const struct image_entry *e, char ***ret_vms, struct hutch_error *err)
{
	_cleanup_strv_ char **names = NULL;
	int r = vm_dirs(st, &names, err);
	if (r < 0)
		return r;
	_cleanup_free_ char *dir = xasprintf("%s/images/%s", st->cache_dir, e->id);
	_cleanup_free_ char *real_dir = realpath(dir, NULL);
	char **users = xcalloc(1, sizeof(char *));
	for (size_t i = 0; names[i]; i++) {
		if (e->url && vm_spec_uses(st, names[i], e->url))
			users = strv_push(users, xstrdup(names[i]));
		else if (vm_disk_uses(st, names[i], dir, real_dir))
			users = strv_push(users, store_vm_exists(st, names[i]) ? xstrdup(names[i])
									       : xasprintf("%s (kept disk)", names[i]));
	}
	*ret_vms = users;
	return 0;
}

/* URL, catalog name, id or unique id prefix -> id. */
static int resolve_id(const struct store *st, const char *what, char **ret_id, struct hutch_error *err)
{
	char id[65];
	_cleanup_free_ char *url = NULL, *ck = NULL;
	if (image_url_is_http(what) || image_resolve_catalog(what, &url, &ck, NULL) == 0) {
		const char *u = url ? url : what;
		sha256_hex(u, strlen(u), id);
		*ret_id = xstrdup(id);
		return 0;
	}
	size_t n = strlen(what);
	bool hex = n >= 8 && n <= 64;
	for (size_t i = 0; hex && i < n; i++)
		hex = isdigit((unsigned char)what[i]) || (what[i] >= 'a' && what[i] <= 'f');
	if (!hex)
		return hutch_error_set(err, ENOENT, "no cached image '%s'", what);
	struct image_entry *v = NULL;
	size_t count = 0;
	int r = image_list(st, &v, &count, err);
	if (r < 0)
		return r;
	const char *match = NULL;
	size_t matches = 0;
	for (size_t i = 0; i < count; i++)
		if (!strncmp(v[i].id, what, n))
			match = v[i].id, matches++;
	if (matches == 1)
		*ret_id = xstrdup(match);
	image_entries_free(v, count);
	if (matches == 0)
		return hutch_error_set(err, ENOENT, "no cached image '%s'", what);
	if (matches > 1)
		return hutch_error_set(err, EINVAL, "image id '%s' is ambiguous: give more digits", what);
	return 0;
}

/* Does a running QEMU read the image or one of its earlier versions? */
static bool dir_open_by_qemu(const char *dir)
{
	_cleanup_free_ char *image = xasprintf("%s/image", dir);
	if (qemu_lock_held(image, QEMU_PERM_CONSISTENT_READ))
		return true;
	_cleanup_free_ char *bd = xasprintf("%s/by-digest", dir);
	DIR *d = opendir(bd);
	bool held = false;
	struct dirent *de;
	while (d && !held && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		_cleanup_free_ char *p = xasprintf("%s/%s", bd, de->d_name);
		held = qemu_lock_held(p, QEMU_PERM_CONSISTENT_READ);
	}
	if (d)
		closedir(d);
	return held;
}

static int remove_entry(const struct store *st, const struct image_entry *e, struct hutch_error *err)
{
	_cleanup_free_ char *dir = xasprintf("%s/images/%s", st->cache_dir, e->id);
	_cleanup_close_ int lock_fd = -1;
	int r = cache_lock(dir, false, NULL, &lock_fd, err);
	if (r == -EWOULDBLOCK)
		return hutch_error_set(err, EBUSY, "a download of '%s' is in progress", e->url ? e->url : e->id);
	if (r < 0)
		return r;
	if (dir_open_by_qemu(dir))
		return hutch_error_set(err, EBUSY, "image '%s' is in use by a running VM: stop it first",
				       e->url ? e->url : e->id);
	r = rm_rf(dir);
	if (r < 0)
		return hutch_error_set(err, -r, "cannot remove '%s': %s", dir, strerror(-r));
	return 0;
}

int image_remove(const struct store *st, const char *what, bool force, char **ret_id, struct hutch_error *err)
{
	_cleanup_free_ char *id = NULL;
	int r = resolve_id(st, what, &id, err);
	if (r < 0)
		return r;
	_cleanup_free_ char *root = images_root(st);
	_cleanup_free_ char *dir = xasprintf("%s/%s", root, id);
	struct stat sb;
	if (stat(dir, &sb) < 0 || !S_ISDIR(sb.st_mode))
		return hutch_error_set(err, ENOENT, "no cached image '%s'", what);
	struct image_entry e;
	entry_load(root, id, &e);
	if (!force) {
		_cleanup_strv_ char **users = NULL;
		r = image_users(st, &e, &users, err);
		if (r == 0 && users[0]) {
			struct strbuf sb2 = STRBUF_INIT;
			for (size_t i = 0; users[i]; i++)
				strbuf_addf(&sb2, "%s'%s'", i ? ", " : "", users[i]);
			r = hutch_error_set(err, EBUSY, "image '%s' is used by %s: remove %s first (or use --force)",
					    e.url ? e.url : e.id, strbuf_str(&sb2), users[1] ? "them" : "it");
			strbuf_release(&sb2);
		}
	}
	if (r == 0)
		r = remove_entry(st, &e, err);
	entry_release(&e);
	if (r == 0 && ret_id)
		*ret_id = TAKE_PTR(id);
	return r;
}

/* Backing files of every VM's qcow2 disks. */
static char **collect_backings(const struct store *st)
{
	char **v = xcalloc(1, sizeof(char *));
	_cleanup_strv_ char **names = NULL;
	if (vm_dirs(st, &names, NULL) < 0)
		return v;
	for (size_t i = 0; names[i]; i++) {
		_cleanup_free_ char *vmdir = store_vm_dir(st, names[i]);
		DIR *d = opendir(vmdir);
		struct dirent *de;
		while (d && (de = readdir(d))) {
			size_t n = strlen(de->d_name);
			if (n < 6 || strcmp(de->d_name + n - 6, ".qcow2"))
				continue;
			_cleanup_free_ char *p = xasprintf("%s/%s", vmdir, de->d_name);
			char *b = qcow2_backing(p);
			if (b)
				v = strv_push(v, b);
		}
		if (d)
			closedir(d);
	}
	return v;
}

static bool strv_has(char *const *v, const char *s)
{
	for (size_t i = 0; s && v && v[i]; i++)
		if (!strcmp(v[i], s))
			return true;
	return false;
}

/* What is kept beside a by-digest base ABS: by-digest/.NAME.SUFFIX (the qemu-img info memo, blank
 * overlays); NULL when ABS is not in a by-digest dir. */
static char *base_extra_path(const char *abs, const char *suffix)
{
	const char *slash = strrchr(abs, '/');
	if (!slash || slash - abs < 10 || strncmp(slash - 10, "/by-digest", 10))
		return NULL;
	return xasprintf("%.*s/.%s.%s", (int)(slash - abs), abs, slash + 1, suffix);
}

/* The memo and blank overlays kept beside a by-digest base: .NAME.info, .NAME.blank-*. */
static void remove_base_extras(const char *bd, const char *name)
{
	DIR *d = opendir(bd);
	if (!d)
		return;
	_cleanup_free_ char *prefix = xasprintf(".%s.", name);
	struct dirent *de;
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, prefix, strlen(prefix)))
			unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
}

/* In an entry that stays, drop the by-digest copies of earlier versions no disk is based on. */
static void prune_old_versions(const char *dir, char *const *backings)
{
	_cleanup_free_ char *bd = xasprintf("%s/by-digest", dir);
	_cleanup_free_ char *image = xasprintf("%s/image", dir);
	struct stat cur;
	bool have_cur = stat(image, &cur) == 0;
	DIR *d = opendir(bd);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		_cleanup_free_ char *p = xasprintf("%s/%s", bd, de->d_name);
		_cleanup_free_ char *real = realpath(p, NULL);
		struct stat st;
		if (lstat(p, &st) < 0 || (have_cur && st.st_ino == cur.st_ino && st.st_dev == cur.st_dev))
			continue;
		if (strv_has(backings, p) || strv_has(backings, real) || qemu_lock_held(p, QEMU_PERM_CONSISTENT_READ))
			continue;
		unlink(p);
		remove_base_extras(bd, de->d_name);
	}
	closedir(d);
}

int image_prune(const struct store *st, char ***ret_removed, struct hutch_error *err)
{
	struct image_entry *v = NULL;
	size_t n = 0;
	int r = image_list(st, &v, &n, err);
	if (r < 0)
		return r;
	char **removed = xcalloc(1, sizeof(char *));
	_cleanup_strv_ char **backings = collect_backings(st);
	for (size_t i = 0; i < n && r == 0; i++) {
		_cleanup_strv_ char **users = NULL;
		r = image_users(st, &v[i], &users, err);
		if (r < 0)
			continue;
		if (users[0]) {
			_cleanup_free_ char *dir = xasprintf("%s/images/%s", st->cache_dir, v[i].id);
			_cleanup_close_ int lock_fd = -1;
			if (cache_lock(dir, false, NULL, &lock_fd, NULL) == 0)
				prune_old_versions(dir, backings);
			continue;
		}
		struct hutch_error e2 = {0};
		if (remove_entry(st, &v[i], &e2) == 0)
			removed = strv_push(removed, xstrdup(v[i].url ? v[i].url : v[i].id));
		else if (e2.code != EBUSY)
			r = hutch_error_set(err, e2.code, "%s", e2.msg);
		hutch_error_clear(&e2);
	}
	image_entries_free(v, n);
	if (r < 0) {
		strv_free(removed);
		return r;
	}
	if (ret_removed)
		*ret_removed = removed;
	else
		strv_free(removed);
	return 0;
}

/* ---- overlays ---- */

struct proc_out {
	struct strbuf out, err;
	int status; /* exit status, or 128 + signal */
};

static void proc_out_release(struct proc_out *p)
{
	strbuf_release(&p->out);
	strbuf_release(&p->err);
}

static void drain(int *fd, struct strbuf *sb)
{
	char buf[4096];
	ssize_t n = read(*fd, buf, sizeof(buf));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		close(*fd);
		*fd = -1;
		return;
	}
	if (sb->len + (size_t)n <= QEMU_IMG_OUTPUT_MAX)
		strbuf_add(sb, buf, (size_t)n);
}

/* Run qemu-img with stdout and stderr captured separately (a warning must not break the JSON). */
/* A running qemu-img: its pid and the read ends of its stdout and stderr. */
struct qemu_img_proc {
	pid_t pid;
	int out, err;
};

static int qemu_img_spawn(char *const argv[], struct qemu_img_proc *ret, struct hutch_error *err)
{
	int po[2], pe[2];
	if (pipe2(po, O_CLOEXEC) < 0)
		return hutch_error_set(err, errno, "pipe: %s", strerror(errno));
	if (pipe2(pe, O_CLOEXEC) < 0) {
		int e = errno;
		close(po[0]);
		close(po[1]);
		return hutch_error_set(err, e, "pipe: %s", strerror(e));
	}
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, po[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
	pid_t pid;
	int r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(po[1]);
	close(pe[1]);
	if (r != 0) {
		close(po[0]);
		close(pe[0]);
		if (r == ENOENT)
			return hutch_error_set(err, ENOENT,
					       "qemu-img not found: install the Debian package qemu-utils");
		return hutch_error_set(err, r, "cannot run qemu-img: %s", strerror(r));
	}
	*ret = (struct qemu_img_proc){pid, po[0], pe[0]};
	return 0;
}

/* Read qemu-img's output to EOF and reap it. */
static void qemu_img_collect(struct qemu_img_proc *q, struct proc_out *ret)
{
	struct proc_out p = {STRBUF_INIT, STRBUF_INIT, 0};
	int fds[2] = {q->out, q->err};
	while (fds[0] >= 0 || fds[1] >= 0) {
		struct pollfd pfd[2] = {{.fd = fds[0], .events = POLLIN}, {.fd = fds[1], .events = POLLIN}};
		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			break;
		if (fds[0] >= 0 && pfd[0].revents)
			drain(&fds[0], &p.out);
		if (fds[1] >= 0 && pfd[1].revents)
			drain(&fds[1], &p.err);
	}
	for (int i = 0; i < 2; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	int status = 0;
	while (waitpid(q->pid, &status, 0) < 0 && errno == EINTR)
		;
	p.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	if (!p.out.buf)
		strbuf_grow(&p.out, 0), p.out.buf[0] = 0;
	if (!p.err.buf)
		strbuf_grow(&p.err, 0), p.err.buf[0] = 0;
	*ret = p;
	*q = (struct qemu_img_proc){-1, -1, -1};
}

static int run_qemu_img(char *const argv[], struct proc_out *ret, struct hutch_error *err)
{
	struct qemu_img_proc q;
	int r = qemu_img_spawn(argv, &q, err);
	if (r < 0)
		return r;
	qemu_img_collect(&q, ret);
	return 0;
}

/* Turn qemu-img's stderr into one message: a lock conflict reads "in use". */
static int qemu_img_fail(const struct proc_out *p, const char *what, const char *path, struct hutch_error *err)
{
	const char *e = strbuf_str(&p->err);
	if (strstr(e, "Failed to get") && strstr(e, "lock")) {
		_cleanup_free_ char *who = NULL;
		const char *b = strstr(e, "using the image [");
		if (b) {
			b += strlen("using the image [");
			const char *end = strchr(b, ']');
			if (end)
				who = xstrndup(b, (size_t)(end - b));
		}
		return hutch_error_set(err, EBUSY, "disk image '%s' is in use by another process", who ? who : path);
	}
	const char *line = e;
	while (*line == '\n')
		line++;
	if (!strncmp(line, "qemu-img: ", 10))
		line += 10;
	size_t n = strcspn(line, "\n");
	if (n == 0)
		return hutch_error_set(err, EIO, "qemu-img %s failed for '%s' (exit status %d)", what, path, p->status);
	return hutch_error_set(err, EIO, "qemu-img %s failed for '%s': %.*s", what, path, (int)n, line);
}

struct base_info {
	char *format;
	uint64_t virtual_size;
};

static int base_info(const char *path, struct base_info *ret, struct hutch_error *err)
{
	char *const argv[] = {"qemu-img", "info", "--output=json", (char *)path, NULL};
	struct proc_out p;
	int r = run_qemu_img(argv, &p, err);
	if (r < 0)
		return r;
	if (p.status != 0) {
		r = qemu_img_fail(&p, "info", path, err);
		proc_out_release(&p);
		return r;
	}
	json_object *o = json_tokener_parse(strbuf_str(&p.out));
	proc_out_release(&p);
	json_object *fmt = NULL, *vs = NULL, *backing = NULL;
	if (!o || !json_object_object_get_ex(o, "format", &fmt) || !json_object_is_type(fmt, json_type_string) ||
	    !json_object_object_get_ex(o, "virtual-size", &vs) || !json_object_is_type(vs, json_type_int)) {
		json_object_put(o);
		return hutch_error_set(err, EIO, "cannot read the output of 'qemu-img info' for '%s'", path);
	}
	const char *f = json_object_get_string(fmt);
	if (strcmp(f, "qcow2") && strcmp(f, "raw"))
		r = hutch_error_set(err, EINVAL, "image '%s' has format '%s': only qcow2 and raw can be a base", path,
				    f);
	/* A base with a backing file of its own could point anywhere on the host. */
	else if (json_object_object_get_ex(o, "backing-filename", &backing))
		r = hutch_error_set(err, EINVAL, "image '%s' has a backing file of its own: refusing it as a base",
				    path);
	else if (json_object_get_int64(vs) < 0)
		r = hutch_error_set(err, EIO, "qemu-img reports a negative size for '%s'", path);
	if (r == 0) {
		ret->format = xstrdup(f);
		ret->virtual_size = (uint64_t)json_object_get_int64(vs);
	}
	json_object_put(o);
	return r;
}

/* base_info of a cached base, remembered beside it. A by-digest file never changes, but the memo
 * still records the file's identity and is ignored when that no longer matches. */
static void base_memo_sig(const struct stat *st, char *out, size_t n)
{
	snprintf(out, n, "%llu %llu %lld %lld.%09ld", (unsigned long long)st->st_dev, (unsigned long long)st->st_ino,
		 (long long)st->st_size, (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
}

static int base_info_cached(const char *abs, struct base_info *ret, struct hutch_error *err)
{
	_cleanup_free_ char *memo = base_extra_path(abs, "info");
	struct stat st;
	char sig[128] = "";
	if (memo && stat(abs, &st) == 0) {
		base_memo_sig(&st, sig, sizeof(sig));
		_cleanup_free_ char *text = read_small(memo, 4096);
		char fmt[16];
		unsigned long long vs;
		int off = 0;
		if (text && sscanf(text, "%15s %llu %n", fmt, &vs, &off) == 2 && off > 0 &&
		    !strcmp(text + off, sig) /* read_small drops the newline */ &&
		    (!strcmp(fmt, "qcow2") || !strcmp(fmt, "raw"))) {
			ret->format = xstrdup(fmt);
			ret->virtual_size = vs;
			return 0;
		}
	}
	int r = base_info(abs, ret, err);
	if (r == 0 && memo && *sig) {
		_cleanup_free_ char *line =
			xasprintf("%s %llu %s\n", ret->format, (unsigned long long)ret->virtual_size, sig);
		(void)write_file_atomic(memo, line, strlen(line), 0600, NULL); /* only a shortcut */
	}
	return r;
}

struct image_overlay_job {
	struct qemu_img_proc q; /* pid -1: the overlay was copied from a blank one, nothing runs */
	char *tmp, *overlay;
	char *blank; /* where to keep a copy of what qemu-img makes, or NULL */
};

static void overlay_job_free(struct image_overlay_job *j)
{
	free(j->tmp);
	free(j->overlay);
	free(j->blank);
	free(j);
}

/* A fresh overlay holds nothing but its header: the backing path and format and the size (qcow2
 * has no UUID or timestamp). So for a base in the image cache, the first overlay of each size is
 * kept beside the base as by-digest/.NAME.blank-SIZE-HASH.qcow2 (HASH: of the backing path, which
 * is in the header) and later ones are copies of it: no qemu-img. */
static char *blank_overlay_path(const char *abs, uint64_t size)
{
	char h[65];
	sha256_hex(abs, strlen(abs), h);
	_cleanup_free_ char *suffix = xasprintf("blank-%llu-%.16s.qcow2", (unsigned long long)size, h);
	return base_extra_path(abs, suffix);
}

#define BLANK_OVERLAY_MAX (16u << 20) /* a qcow2 header with L1 and refcount tables */

int image_overlay_start(const char *base, const char *overlay, uint64_t size, struct image_overlay_job **ret,
			struct hutch_error *err)
{
	if (!base || !*base || !overlay || !*overlay)
		return hutch_error_set(err, EINVAL, "overlay needs a base image and a path");
	_cleanup_free_ char *abs = realpath(base, NULL);
	if (!abs)
		return hutch_error_set(err, errno, "base image '%s': %s", base, strerror(errno));
	struct stat st;
	if (lstat(overlay, &st) == 0) {
		if (qemu_lock_held(overlay, QEMU_PERM_CONSISTENT_READ) || qemu_lock_held(overlay, QEMU_PERM_WRITE))
			return hutch_error_set(err, EBUSY, "disk '%s' is in use by another process", overlay);
		return hutch_error_set(err, EEXIST, "disk '%s' already exists", overlay);
	}
	/* qemu-img info and create -b do not take the locks that would notice a writer: ask directly. */
	if (qemu_lock_held(abs, QEMU_PERM_WRITE))
		return hutch_error_set(err, EBUSY, "base image '%s' is in use by another process that writes to it",
				       abs);
	struct base_info bi = {0};
	int r = base_info_cached(abs, &bi, err);
	if (r < 0)
		return r;
	_cleanup_free_ char *fmt = bi.format;
	if (size && size < bi.virtual_size) {
		char want[32], have[32];
		return hutch_error_set(err, EINVAL, "disk size %s is smaller than the image's %s",
				       format_size(size, want, sizeof(want)),
				       format_size(bi.virtual_size, have, sizeof(have)));
	}
	struct image_overlay_job *j = xcalloc(1, sizeof(*j));
	j->tmp = xasprintf("%s.tmp.%d", overlay, (int)getpid());
	j->overlay = xstrdup(overlay);
	uint64_t vsize = size ? size : bi.virtual_size;
	unlink(j->tmp);
	_cleanup_free_ char *blank = blank_overlay_path(abs, vsize);
	if (blank && copy_file_atomic(blank, j->tmp, BLANK_OVERLAY_MAX, 0644, NULL) == 0) {
		j->q = (struct qemu_img_proc){-1, -1, -1};
		*ret = j;
		return 0;
	}
	j->blank = TAKE_PTR(blank);
	char sizebuf[32];
	snprintf(sizebuf, sizeof(sizebuf), "%llu", (unsigned long long)vsize);
	char *const argv[] = {"qemu-img", "create", "-q", "-f", "qcow2", "-F", fmt, "-b", abs, j->tmp, sizebuf, NULL};
	r = qemu_img_spawn(argv, &j->q, err);
	if (r < 0) {
		overlay_job_free(j);
		return r;
	}
	*ret = j;
	return 0;
}

int image_overlay_finish(struct image_overlay_job *j, struct hutch_error *err)
{
	struct proc_out p = {STRBUF_INIT, STRBUF_INIT, 0};
	if (j->q.pid > 0)
		qemu_img_collect(&j->q, &p);
	int r = 0;
	if (p.status == 0 && j->blank) /* only a shortcut for the next create */
		(void)copy_file_atomic(j->tmp, j->blank, BLANK_OVERLAY_MAX, 0644, NULL);
	if (p.status != 0) {
		r = qemu_img_fail(&p, "create", j->overlay, err);
		unlink(j->tmp);
	} else if (renameat2(AT_FDCWD, j->tmp, AT_FDCWD, j->overlay, RENAME_NOREPLACE) < 0) {
		int e = errno;
		unlink(j->tmp);
		if (e == EEXIST)
			r = hutch_error_set(err, EEXIST, "disk '%s' already exists", j->overlay);
		else
			r = hutch_error_set(err, e, "cannot rename '%s' to '%s': %s", j->tmp, j->overlay, strerror(e));
	} else {
		_cleanup_free_ char *parent = xstrdup(j->overlay);
		char *slash = strrchr(parent, '/');
		if (slash && slash != parent) {
			*slash = 0;
			fsync_dir(parent);
		}
	}
	proc_out_release(&p);
	overlay_job_free(j);
	return r;
}

void image_overlay_abort(struct image_overlay_job *j)
{
	if (!j)
		return;
	if (j->q.pid > 0) {
		kill(j->q.pid, SIGKILL);
		struct proc_out p;
		qemu_img_collect(&j->q, &p);
		proc_out_release(&p);
	}
	unlink(j->tmp);
	overlay_job_free(j);
}

int image_make_overlay(const char *base, const char *overlay, uint64_t size, struct hutch_error *err)
{
	struct image_overlay_job *j = NULL;
	int r = image_overlay_start(base, overlay, size, &j, err);
	return r < 0 ? r : image_overlay_finish(j, err);
}
