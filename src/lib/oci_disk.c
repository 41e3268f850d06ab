/* Root filesystems from container images, built as an ordinary user. See oci_disk.h.
 *
 * Why mkfs.ext4 -d plus debugfs, and not the other ways Debian 12 offers:
 * - mkfs.ext4 -d DIR alone copies ownership from the files, and a user's unpack owns every file:
 *   a root-owned setuid sudo would become the user's.
 * - fakeroot fakes chown for the processes under it (LD_PRELOAD), so the unpack would have to run
 *   under the same fakeroot session as mkfs: a child process for what is now a library call, and
 *   LD_PRELOAD does not mix with the sanitizer builds hutch is tested under.
 * - mkfs.erofs 1.5 can only force one uid/gid for all files (--all-root, --force-uid), reads no
 *   tarball (that came in 1.6/1.7), and makes a read-only image that would need an overlay and a
 *   second writable disk in the guest.
 * - mke2fs -d from a tarball came in e2fsprogs 1.47.1; Debian 12 has 1.47.0.
 * So the layers are unpacked by hutch itself (oci.c), which keeps the image's ownership, modes,
 * times and device nodes in a table instead of on the host files; mkfs.ext4 -d copies the content
 * (and hard links), and one debugfs script run on the image file (no root, no mount) writes the
 * table into the inodes: uid, gid, the full mode with setuid/setgid/sticky, times, and mknod for
 * device nodes. The result is exact and reproducible: a fixed UUID and hash seed derived from the
 * image's key, fixed times (E2FSPROGS_FAKE_TIME), and every inode's times set from the image, so
 * the same layers give the same bytes whatever transport they came by. */
#include "oci_disk.h"

#include "oci.h"
#include "oci_access.h"

#include <dirent.h>
#include <fcntl.h>
#include <spawn.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

extern char **environ;

#define TOOL_OUTPUT_MAX 65536
#define SBIN "/usr/sbin:/sbin"

void oci_disk_release(struct oci_disk *d)
{
	if (!d)
		return;
	free(d->key);
	free(d->dir);
	free(d->rootfs);
	free(d->config);
	free(d->kernel);
	free(d->initrd);
	memset(d, 0, sizeof(*d));
}

/* Run ARGV (found in PATH or SBIN) with EXTRA_ENV added, output into LOG; the last line of its
 * output in the error when it fails. */
static int run_tool(char *const argv[], const char *extra_env, const char *log, struct hutch_error *err)
{
	_cleanup_free_ char *bin = path_find(argv[0], SBIN);
	if (!bin)
		return hutch_error_set(err, ENOENT, "%s not found (install the Debian package e2fsprogs)", argv[0]);
	size_t n = 0;
	while (environ[n])
		n++;
	char **envp = xcalloc(n + 2, sizeof(char *));
	memcpy(envp, environ, n * sizeof(char *));
	if (extra_env)
		envp[n] = (char *)extra_env;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	pid_t pid;
	int sr = posix_spawn(&pid, bin, &fa, NULL, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	free(envp);
	if (sr != 0)
		return hutch_error_set(err, sr, "cannot run %s: %s", bin, strerror(sr));
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	_cleanup_free_ char *out = NULL;
	size_t len = 0;
	read_file(log, TOOL_OUTPUT_MAX, &out, &len, NULL);
	while (out && len && out[len - 1] == '\n')
		out[--len] = 0;
	const char *last = out ? strrchr(out, '\n') : NULL;
	return hutch_error_set(err, EIO, "%s failed: %s", argv[0], out && *out ? (last ? last + 1 : out) : "no output");
}

/* A name as one debugfs argument: in double quotes, where "" is a literal quote and a backslash is
 * itself (e2fsprogs' ss parser). Newlines were refused while unpacking: the script is line-based. */
static char *dfs_quoted(const char *prefix, const char *s, size_t len)
{
	struct strbuf sb = STRBUF_INIT;
	strbuf_addf(&sb, "\"%s", prefix);
	for (size_t i = 0; i < len; i++)
		strbuf_addf(&sb, s[i] == '"' ? "\"\"" : "%c", s[i]);
	strbuf_addf(&sb, "\"");
	return strbuf_detach(&sb, NULL);
}

char *oci_disk_fixup_script(const struct oci_tree *t)
{
	size_t n = 0;
	const struct oci_node **v = oci_tree_sorted(t, &n);
	struct strbuf sb = STRBUF_INIT;
	for (size_t i = 0; i < n; i++) {
		const struct oci_node *nd = v[i];
		_cleanup_free_ char *p = dfs_quoted("/", nd->path, strlen(nd->path));
		if (!nd->on_disk) {
			/* mknod links the name into the current dir as it is: no path lookup */
			char kind = S_ISBLK(nd->mode) ? 'b' : 'c';
			const char *slash = strrchr(nd->path, '/');
			const char *base = slash ? slash + 1 : nd->path;
			_cleanup_free_ char *dir = dfs_quoted("/", nd->path, slash ? (size_t)(slash - nd->path) : 0);
			_cleanup_free_ char *name = dfs_quoted("", base, strlen(base));
			strbuf_addf(&sb, "cd %s\nmknod %s %c %u %u\ncd /\n", dir, name, kind, nd->rdev_major,
				    nd->rdev_minor);
		}
		long long tm = nd->mtime > 0 ? (long long)nd->mtime : 0;
		strbuf_addf(&sb, "sif %s mode 0%o\nsif %s uid %u\nsif %s gid %u\n", p, nd->mode, p, nd->uid, p,
			    nd->gid);
		strbuf_addf(&sb, "sif %s mtime @%lld\nsif %s atime @%lld\nsif %s ctime @%lld\nsif %s crtime @%lld\n", p,
			    tm, p, tm, p, tm, p, tm);
	}
	free(v);
	return strbuf_detach(&sb, NULL);
}

/* Give the times of lost+found (made by mkfs) the fixed time too. */
static void fixup_lost_found(struct strbuf *sb, long long t, const struct oci_tree *tree)
{
	if (oci_tree_get(tree, "lost+found"))
		return;
	for (const char *f = "mtime\0atime\0ctime\0crtime\0"; *f; f += strlen(f) + 1)
		strbuf_addf(sb, "sif /lost+found %s @%lld\n", f, t);
}

/* A bootc image: usr/lib/modules/<release>/vmlinuz (and initramfs.img beside it). */
static int find_bootc_kernel(const char *tree_dir, const struct oci_tree *t, char **ret_kernel, char **ret_initrd)
{
	size_t n = 0;
	const struct oci_node **v = oci_tree_sorted(t, &n);
	const char *best = NULL;
	for (size_t i = 0; i < n; i++) {
		const char *p = v[i]->path;
		if (strncmp(p, "usr/lib/modules/", 16) || !S_ISREG(v[i]->mode))
			continue;
		const char *slash = strchr(p + 16, '/');
		if (slash && !strcmp(slash, "/vmlinuz"))
			best = p; /* sorted: the last is the newest release by name */
	}
	if (best) {
		*ret_kernel = xasprintf("%s/%s", tree_dir, best);
		_cleanup_free_ char *dirpart = xstrndup(best, strlen(best) - strlen("vmlinuz"));
		_cleanup_free_ char *rel = xasprintf("%sinitramfs.img", dirpart);
		const struct oci_node *ir = oci_tree_get(t, rel);
		*ret_initrd = ir && S_ISREG(ir->mode) ? xasprintf("%s/%s", tree_dir, rel) : NULL;
	}
	free(v);
	return best ? 1 : 0;
}

static char *uuid_from_key(const char *key)
{
	const char *h = key + 7;
	return xasprintf("%.8s-%.4s-4%.3s-8%.3s-%.12s", h, h + 8, h + 12, h + 15, h + 18);
}

/* The filesystem: content with mkfs.ext4 -d, then the image's metadata with debugfs. */
static int make_fs(const char *work, const char *tree_dir, const struct oci_tree *t, const char *key, int64_t created,
		   const char *out, uint64_t *ret_size, struct hutch_error *err)
{
	uint64_t nodes = t->n;
	uint64_t want = (t->bytes + nodes * 4096) / 10 * 13 + (128ull << 20);
	if (want < (256ull << 20))
		want = 256ull << 20;
	want = (want + (4ull << 20) - 1) & ~((4ull << 20) - 1);
	char size_k[32], inodes[32];
	snprintf(size_k, sizeof(size_k), "%lluk", (unsigned long long)(want >> 10));
	snprintf(inodes, sizeof(inodes), "%llu", (unsigned long long)(nodes * 2 + 16384));
	_cleanup_free_ char *uuid = uuid_from_key(key);
	_cleanup_free_ char *ext = xasprintf("hash_seed=%s,root_owner=0:0,nodiscard", uuid);
	long long fake = created > 0 ? (long long)created : 1;
	_cleanup_free_ char *fake_env = xasprintf("E2FSPROGS_FAKE_TIME=%lld", fake);
	_cleanup_free_ char *log = xasprintf("%s/mkfs.log", work);
	char *mkfs[] = {"mkfs.ext4", "-q", "-F",   "-b", "4096", "-I", "256", "-N", inodes,	      "-m",
			"0",	     "-L", "root", "-U", uuid,	 "-E", ext,   "-d", (char *)tree_dir, (char *)out,
			size_k,	     NULL};
	int r = run_tool(mkfs, fake_env, log, err);
	if (r < 0)
		return r;
	_cleanup_free_ char *script = oci_disk_fixup_script(t);
	struct strbuf sb = STRBUF_INIT;
	strbuf_adds(&sb, script);
	fixup_lost_found(&sb, fake, t);
	_cleanup_free_ char *spath = xasprintf("%s/fixup.debugfs", work);
	r = write_file_atomic(spath, sb.buf, sb.len, 0600, err);
	strbuf_release(&sb);
	if (r < 0)
		return r;
	_cleanup_free_ char *dlog = xasprintf("%s/debugfs.log", work);
	char *debugfs[] = {"debugfs", "-w", "-f", spath, (char *)out, NULL};
	r = run_tool(debugfs, fake_env, dlog, err);
	if (r < 0)
		return r;
	/* debugfs reports a failed command on its output and still exits 0 */
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	read_file(dlog, TOOL_OUTPUT_MAX, &text, &len, NULL);
	for (char *save = NULL, *l = text ? strtok_r(text, "\n", &save) : NULL; l; l = strtok_r(NULL, "\n", &save))
		if (strncmp(l, "debugfs ", 8) && strncmp(l, "debugfs: ", 9) && strncmp(l, "Allocated inode: ", 17))
			return hutch_error_set(err, EIO, "writing ownership and modes into the root filesystem: %s", l);
	*ret_size = want;
	return 0;
}

static int copy_out(const char *src, const char *dst, struct hutch_error *err)
{
	_cleanup_close_ int in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	_cleanup_close_ int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (in < 0 || out < 0)
		return hutch_error_set(err, errno, "cannot copy '%s' to '%s': %s", src, dst, strerror(errno));
	char buf[1 << 16];
	ssize_t n;
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write_all(out, buf, (size_t)n) < 0)
			return hutch_error_set(err, errno, "cannot write '%s': %s", dst, strerror(errno));
	return n < 0 ? hutch_error_set(err, errno, "cannot read '%s': %s", src, strerror(errno)) : 0;
}

/* A bootc image's root filesystem in the cache dir: one per oci_access_key (the agent, user and keys
 * put in). A plain image gets nothing put in, and has one. */
static char *root_file(const char *dir, bool bootc, const char *access_key)
{
	return bootc ? xasprintf("%s/root-%s.img", dir, access_key) : xasprintf("%s/rootfs.img", dir);
}

/* Build everything into WORK/out, which the caller renames into place. */
static int build(const struct oci_image *img, const struct oci_access *acc, const char *access_key, const char *work,
		 const char *out, uint64_t *ret_size, struct hutch_error *err)
{
	_cleanup_free_ char *tree_dir = xasprintf("%s/tree", work);
	if (mkdir(tree_dir, 0700) < 0 || mkdir(out, 0700) < 0)
		return hutch_error_set(err, errno, "cannot create '%s': %s", work, strerror(errno));
	struct oci_tree t = {0};
	int r = oci_unpack(img, tree_dir, &t, err);
	if (r < 0)
		return r;
	_cleanup_free_ char *kernel = NULL, *initrd = NULL;
	bool bootc = find_bootc_kernel(tree_dir, &t, &kernel, &initrd);
	if (bootc) {
		_cleanup_free_ char *k = xasprintf("%s/vmlinuz", out), *i = xasprintf("%s/initrd.img", out);
		r = copy_out(kernel, k, err);
		if (r == 0 && initrd)
			r = copy_out(initrd, i, err);
		if (r == 0)
			r = oci_access_apply(tree_dir, &t, acc, img->config.created, err);
		const struct oci_node *ci = oci_tree_get(&t, "usr/bin/cloud-init");
		_cleanup_free_ char *marker = xasprintf("%s/" OCI_DISK_CLOUD_INIT, out);
		if (r == 0 && ci && (S_ISREG(ci->mode) || S_ISLNK(ci->mode)))
			r = write_file_atomic(marker, "", 0, 0644, err);
	}
	_cleanup_free_ char *rootfs = root_file(out, bootc, access_key);
	if (r == 0)
		r = make_fs(work, tree_dir, &t, img->config_digest, img->config.created, rootfs, ret_size, err);
	oci_tree_release(&t);
	if (r < 0)
		return r;
	_cleanup_free_ char *cfg = xasprintf("%s/config.json", out);
	return write_file_atomic(cfg, img->config_json, img->config_len, 0644, err);
}

static void fill(struct oci_disk *d, const char *dir, const char *key, const char *access_key)
{
	d->key = xstrdup(key);
	d->dir = xstrdup(dir);
	d->config = xasprintf("%s/config.json", dir);
	_cleanup_free_ char *k = xasprintf("%s/vmlinuz", dir), *i = xasprintf("%s/initrd.img", dir);
	d->kernel = access(k, F_OK) == 0 ? TAKE_PTR(k) : NULL;
	d->initrd = d->kernel && access(i, F_OK) == 0 ? TAKE_PTR(i) : NULL;
	d->rootfs = root_file(dir, d->kernel != NULL, access_key);
	_cleanup_free_ char *ci = xasprintf("%s/" OCI_DISK_CLOUD_INIT, dir);
	d->cloud_init = d->kernel && access(ci, F_OK) == 0;
	struct stat st;
	d->size = stat(d->rootfs, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* Build IMG into a new WORK dir under TMP: the whole entry renamed to DIR, or (ONLY_ROOT, for an
 * entry that is there but lacks this access key's root filesystem) just that file moved into DIR. */
static int build_into(const struct oci_image *img, const struct oci_access *acc, const char *access_key,
		      const char *tmp, const char *dir, bool only_root, struct hutch_error *err)
{
	_cleanup_free_ char *work = xasprintf("%s/build.XXXXXX", tmp);
	if (!mkdtemp(work))
		return hutch_error_set(err, errno, "cannot create '%s': %s", work, strerror(errno));
	uint64_t size = 0;
	_cleanup_free_ char *out = xasprintf("%s/out", work);
	_cleanup_free_ char *from = root_file(out, true, access_key), *to = root_file(dir, true, access_key);
	int r = build(img, acc, access_key, work, out, &size, err);
	if (r == 0 && only_root && rename(from, to) < 0)
		r = hutch_error_set(err, errno, "cannot rename '%s' to '%s': %s", from, to, strerror(errno));
	_cleanup_free_ char *ci_from = xasprintf("%s/" OCI_DISK_CLOUD_INIT, out),
			    *ci_to = xasprintf("%s/" OCI_DISK_CLOUD_INIT, dir);
	if (r == 0 && only_root && access(ci_from, F_OK) == 0 && rename(ci_from, ci_to) < 0)
		r = hutch_error_set(err, errno, "cannot rename '%s' to '%s': %s", ci_from, ci_to, strerror(errno));
	if (r == 0 && !only_root && rename(out, dir) < 0)
		r = hutch_error_set(err, errno, "cannot rename '%s' to '%s': %s", out, dir, strerror(errno));
	rm_rf(work);
	return r;
}

int oci_disk_ensure(const struct store *st, const char *refs, const struct oci_access *acc, struct oci_disk *ret,
		    struct hutch_error *err)
{
	char access_key[65];
	int r = oci_access_key(acc, access_key, err);
	if (r < 0)
		return r;
	struct oci_ref ref = {0};
	r = oci_ref_parse(refs, &ref, err);
	if (r < 0)
		return r;
	_cleanup_free_ char *root = xasprintf("%s/oci", st->cache_dir);
	_cleanup_free_ char *tmp = xasprintf("%s/tmp", root);
	r = mkdir_p(tmp, 0700);
	if (r < 0) {
		oci_ref_release(&ref);
		return hutch_error_set(err, -r, "cannot create '%s': %s", tmp, strerror(-r));
	}
	struct oci_image img = {0};
	r = oci_open(&ref, tmp, &img, err);
	oci_ref_release(&ref);
	if (r < 0)
		return hutch_error_wrap(err, "image '%s'", refs);
	_cleanup_free_ char *dir = xasprintf("%s/%s", root, img.key + 7);
	_cleanup_free_ char *lockp = xasprintf("%s.lock", dir);
	_cleanup_close_ int lock = -1;
	for (;;) {
		r = store_lock_file(lockp, 0, &lock, err);
		if (r != -EWOULDBLOCK)
			break;
		usleep(200 * 1000); /* another build of the same image: it will be cached once it is done */
	}
	struct stat sb;
	bool had = r == 0 && stat(dir, &sb) == 0;
	if (had) {
		fill(ret, dir, img.key, access_key);
		if (access(ret->rootfs, F_OK) == 0) {
			oci_image_release(&img);
			return 0;
		}
		oci_disk_release(ret); /* a bootc image built for another agent, user or key */
	}
	if (r == 0)
		r = build_into(&img, acc, access_key, tmp, dir, had, err);
	if (r < 0) {
		if (lock >= 0 && !had)
			unlink(lockp); /* held: a waiter re-checks the file it locked and makes a new one */
		oci_image_release(&img);
		return hutch_error_wrap(err, "image '%s'", refs);
	}
	fill(ret, dir, img.key, access_key);
	ret->built = true;
	oci_image_release(&img);
	return 0;
}
