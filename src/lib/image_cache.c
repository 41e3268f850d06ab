/* The verified image cache: what image_fetch.c downloads into, and ls, rm and prune.
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
#include <openssl/evp.h>
#include <string.h>
#include <sys/stat.h>

#include "image_internal.h"
#include "warm.h"
#include "lazylib.h"

/* ---- cache helpers ---- */

static char *images_root(const struct store *st) { return xasprintf("%s/images", st->cache_dir); }

char *image_cache_dir(const struct store *st, const char *url)
{
	char id[65];
	sha256_hex(url, strlen(url), id);
	return xasprintf("%s/images/%s", st->cache_dir, id);
}

void image_md_freep(EVP_MD_CTX **p)
{
	if (*p)
		EVP_MD_CTX_free(*p);
}

bool image_cancelled(const struct image_progress *prog) { return prog && prog->cancel && *prog->cancel; }

/* Feed the first len bytes of fd into md. */
int image_hash_fd(int fd, uint64_t len, EVP_MD_CTX *md, const struct image_progress *prog)
{
	const size_t bufsz = 1 << 20;
	_cleanup_free_ char *buf = xmalloc(bufsz);
	uint64_t off = 0;
	while (off < len) {
		if (image_cancelled(prog))
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

void image_md_final_hex(EVP_MD_CTX *md, char out[IMAGE_MAX_HEX + 1])
{
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	EVP_DigestFinal_ex(md, d, &n);
	image_hex_encode(d, n, out);
}

int image_fsync_dir(const char *dir)
{
	_cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	return fsync(fd) < 0 ? -errno : 0;
}

/* Take dir/lock, waiting for another fetch of the same URL to finish unless !wait (-EWOULDBLOCK). */
int image_cache_lock(const char *dir, bool wait, const struct image_progress *prog, int *ret_fd,
		     struct hutch_error *err)
{
	_cleanup_free_ char *p = xasprintf("%s/lock", dir);
	for (;;) {
		int r = store_lock_file(p, 0, ret_fd, err);
		if (r != -EWOULDBLOCK)
			return r;
		if (!wait)
			return -EWOULDBLOCK;
		if (image_cancelled(prog))
			return hutch_error_set(err, EINTR,
					       "interrupted while waiting for another download of the image");
		usleep(100 * 1000);
	}
}

char *image_read_small(const char *path, size_t max)
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
bool image_cache_verified(const char *dir, enum image_algo algo, const char *want, const struct image_progress *prog)
{
	_cleanup_free_ char *image = xasprintf("%s/image", dir);
	_cleanup_free_ char *digest_path = xasprintf("%s/digest", dir);
	_cleanup_free_ char *recorded = image_read_small(digest_path, 4096);
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
	_cleanup_(image_md_freep) EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (fd < 0 || !md || !EVP_DigestInit_ex(md, image_algo_md(algo), NULL) ||
	    image_hash_fd(fd, (uint64_t)st.st_size, md, prog) < 0)
		return false;
	char got[IMAGE_MAX_HEX + 1];
	image_md_final_hex(md, got);
	if (strcmp(got, want + strlen(prefix)))
		return false;
	_cleanup_free_ char *both = xasprintf("%s\n%s\n", recorded, want);
	write_file_atomic(digest_path, both, strlen(both), 0600, NULL);
	return true;
}

/* image.part is verified: make it the image. The digest goes first and comes back last, so a crash
 * in between leaves an image with no digest, which is never used. */
int image_cache_commit(const char *dir, const char *url, const char *digest_line, struct hutch_error *err)
{
	_cleanup_free_ char *part = xasprintf("%s/image.part", dir);
	_cleanup_free_ char *image = xasprintf("%s/image", dir);
	_cleanup_free_ char *digest = xasprintf("%s/digest", dir);
	_cleanup_free_ char *urlf = xasprintf("%s/url", dir);
	if (unlink(digest) < 0 && errno != ENOENT)
		return hutch_error_set(err, errno, "cannot remove '%s': %s", digest, strerror(errno));
	image_fsync_dir(dir);
	_cleanup_free_ char *u = xasprintf("%s\n", url);
	int r = write_file_atomic(urlf, u, strlen(u), 0600, err);
	if (r < 0)
		return r;
	if (rename(part, image) < 0)
		return hutch_error_set(err, errno, "cannot rename '%s' to '%s': %s", part, image, strerror(errno));
	_cleanup_free_ char *d = xasprintf("%s\n", digest_line);
	return write_file_atomic(digest, d, strlen(d), 0600, err);
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

int image_cache_link(const char *dir, const char *digest_line, char **ret_path, struct hutch_error *err)
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
	image_fsync_dir(bd);
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
char *image_resolved_lookup(const char *dir, const char *spec)
{
	_cleanup_free_ char *path = xasprintf("%s/resolved", dir);
	_cleanup_free_ char *text = image_read_small(path, 65536);
	const char *p = text, *l, *d;
	size_t len;
	while (next_line(&p, &l, &len))
		if ((d = resolved_digest(l, len, spec)))
			return xstrndup(d, len - (size_t)(d - l));
	return NULL;
}

void image_resolved_record(const char *dir, const char *spec, const char *digest_line)
{
	if (strpbrk(spec, "\t\n"))
		return;
	_cleanup_free_ char *path = xasprintf("%s/resolved", dir);
	_cleanup_free_ char *old = image_read_small(path, 65536);
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
char *image_pinned_path(const char *dir, const char *digest_line)
{
	char *p = by_digest_path(dir, digest_line);
	struct stat st;
	if (p && lstat(p, &st) == 0 && S_ISREG(st.st_mode))
		return p;
	free(p);
	return NULL;
}

/* QEMU's image locking (block/file-posix.c): a process holding permission bit i has a shared OFD
 * lock on byte 100 + i of the file; one that refuses to share it, on byte 200 + i. Asking whether an
 * exclusive lock on a byte would conflict tells whether some QEMU holds that permission. */

bool image_qemu_lock_held(const char *path, int perm_bit)
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
	e->url = image_read_small(u, 65536);
	e->digest = image_read_small(dg, 4096);
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
char *image_qcow2_backing(const char *path)
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

/* Whether the qcow2 at path is an overlay on a file in the cache entry dir. */
static bool disk_based_in(const char *path, const char *dir, const char *real_dir)
{
	_cleanup_free_ char *b = image_qcow2_backing(path);
	if (!b)
		return false;
	size_t dl = strlen(dir), rl = real_dir ? strlen(real_dir) : 0;
	return (!strncmp(b, dir, dl) && b[dl] == '/') || (real_dir && !strncmp(b, real_dir, rl) && b[rl] == '/');
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
		used = disk_based_in(p, dir, real_dir);
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
	/* a warm template's frozen disk (WARM/NAME/KEY/disk.qcow2) is a user too, named by NAME */
	_cleanup_strv_ char **tdisks = warm_template_disks(st);
	for (size_t i = 0; tdisks[i]; i++) {
		if (!disk_based_in(tdisks[i], dir, real_dir))
			continue;
		char *key = strrchr(tdisks[i], '/');
		*key = 0;
		char *tname = strrchr(tdisks[i], '/');
		*tname = 0;
		tname = strrchr(tdisks[i], '/');
		users = strv_push(users, xasprintf("warm template %s", tname ? tname + 1 : "?"));
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
	if (image_qemu_lock_held(image, IMAGE_QEMU_PERM_CONSISTENT_READ))
		return true;
	_cleanup_free_ char *bd = xasprintf("%s/by-digest", dir);
	DIR *d = opendir(bd);
	bool held = false;
	struct dirent *de;
	while (d && !held && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		_cleanup_free_ char *p = xasprintf("%s/%s", bd, de->d_name);
		held = image_qemu_lock_held(p, IMAGE_QEMU_PERM_CONSISTENT_READ);
	}
	if (d)
		closedir(d);
	return held;
}

static int remove_entry(const struct store *st, const struct image_entry *e, struct hutch_error *err)
{
	_cleanup_free_ char *dir = xasprintf("%s/images/%s", st->cache_dir, e->id);
	_cleanup_close_ int lock_fd = -1;
	int r = image_cache_lock(dir, false, NULL, &lock_fd, err);
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
			char *b = image_qcow2_backing(p);
			if (b)
				v = strv_push(v, b);
		}
		if (d)
			closedir(d);
	}
	/* and the frozen disks of image VMs' warm templates */
	_cleanup_strv_ char **tdisks = warm_template_disks(st);
	for (size_t i = 0; tdisks[i]; i++) {
		char *b = image_qcow2_backing(tdisks[i]);
		if (b)
			v = strv_push(v, b);
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
char *image_base_extra_path(const char *abs, const char *suffix)
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
		if (strv_has(backings, p) || strv_has(backings, real) ||
		    image_qemu_lock_held(p, IMAGE_QEMU_PERM_CONSISTENT_READ))
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
			if (image_cache_lock(dir, false, NULL, &lock_fd, NULL) == 0)
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
