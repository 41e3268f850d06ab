/* The built-in micro template: a Debian kernel from /boot plus an initramfs (newc cpio) holding
 * hutch-agent as /init, a static busybox and the kernel's virtio modules, cached per release. */
#include "template.h"
#include "template_net.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <elf.h>
#include <fcntl.h>
#include <spawn.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "lazylib.h" /* after <archive.h>: routes archive_*() through the lazy table */

/* Bump when the initramfs layout changes, so every cached initramfs is rebuilt. */
#define MICRO_LAYOUT "hutch-micro-layout 1"
#define MODULES_DEP_MAX (64u << 20)
#define MODULE_MAX (256u << 20)
/* A file whose mtime/ctime is this close to the time we hashed it may change again within the
 * filesystem's timestamp granularity without its stat changing (git's "racy" entries). */
#define RACY_NS (2LL * 1000000000LL)

extern char **environ;

const char *const template_micro_modules[] = {
	"virtio_mmio",
	"virtio_pci",
	"virtio_console",
	"virtio_blk",
	"virtio_net",
	"9p",
	"9pnet_virtio",
	"virtio_balloon",
	"vmw_vsock_virtio_transport",
	"ext4",
	"crc32c_generic", /* the root of a container image's disk (agent/rootfs.c) */
	"virtiofs",	  /* shares with via: virtiofs (agent/mounts.c) */
	/* display and sound: loaded only when the device is there (agent/pid1.c) */
	"virtio_gpu",
	"snd_hda_codec_generic",
	"snd_hda_intel",
	NULL,
};

/* Linked into /bin when `busybox --list` can't be asked. */
static const char *const fallback_applets[] = {
	"sh",	  "ash",       "ls",	  "cat",      "echo",	  "mount",   "umount", "mkdir", "rm",	    "cp",
	"mv",	  "ln",	       "ps",	  "kill",     "sleep",	  "uname",   "dmesg",  "ip",	"ifconfig", "hostname",
	"id",	  "head",      "tail",	  "wc",	      "grep",	  "sed",     "awk",    "tr",	"true",	    "false",
	"env",	  "printf",    "stat",	  "chmod",    "chown",	  "touch",   "find",   "xargs", "sync",	    "poweroff",
	"reboot", "sha256sum", "md5sum",  "dd",	      "od",	  "hexdump", "date",   "df",	"du",	    "free",
	"top",	  "vi",	       "less",	  "more",     "tee",	  "seq",     "yes",    "which", "test",	    "[",
	"mktemp", "basename",  "dirname", "readlink", "realpath", "setsid",  "nohup",  NULL,
};

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

static bool release_ok(const char *r)
{
	if (!*r || strlen(r) > 128 || strcmp(r, ".") == 0 || strcmp(r, "..") == 0)
		return false;
	for (const char *p = r; *p; p++)
		if (!(('a' <= *p && *p <= 'z') || ('A' <= *p && *p <= 'Z') || ('0' <= *p && *p <= '9') ||
		      strchr("._+-~", *p)))
			return false;
	return true;
}

static int64_t ts_ns(struct timespec ts) { return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec; }

/* ---- kernel ---- */

int template_find_kernel(const char *boot_dir, char **ret_path, char **ret_release, struct hutch_error *err)
{
	DIR *d = opendir(boot_dir);
	_cleanup_free_ char *best = NULL;
	if (d) {
		struct dirent *de;
		while ((de = readdir(d))) {
			const char *rel = de->d_name + strlen("vmlinuz-");
			if (strncmp(de->d_name, "vmlinuz-", strlen("vmlinuz-")) != 0 || !release_ok(rel))
				continue;
			if (has_suffix(rel, ".dpkg-tmp") || has_suffix(rel, ".dpkg-new") ||
			    has_suffix(rel, ".dpkg-old") || has_suffix(rel, ".bak") || has_suffix(rel, ".old"))
				continue;
			_cleanup_free_ char *p = xasprintf("%s/%s", boot_dir, de->d_name);
			struct stat st;
			if (stat(p, &st) < 0 || !S_ISREG(st.st_mode))
				continue;
			if (!best || strverscmp(rel, best) > 0) {
				free(best);
				best = xstrdup(rel);
			}
		}
		closedir(d);
	}
	if (!best)
		return hutch_error_set(err, ENOENT,
				       "no kernel found in %s: install Debian's linux-image-amd64 "
				       "(apt-get install linux-image-amd64) or set kernel: in the spec",
				       boot_dir);
	*ret_path = xasprintf("%s/vmlinuz-%s", boot_dir, best);
	*ret_release = TAKE_PTR(best);
	return 0;
}

/* x86 boot protocol: "HdrS" at 0x202; the u16 at 0x20E points (minus 0x200) at the version string. */
static int bzimage_release(const char *kernel, char **ret_release)
{
	_cleanup_close_ int fd = open(kernel, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	unsigned char hdr[0x210];
	if (pread(fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr) || memcmp(hdr + 0x202, "HdrS", 4) != 0)
		return -ENOEXEC;
	unsigned off = (unsigned)hdr[0x20E] | (unsigned)hdr[0x20F] << 8;
	if (off == 0)
		return -ENOEXEC;
	char untrusted_ver[160];
	ssize_t n = pread(fd, untrusted_ver, sizeof(untrusted_ver) - 1, (off_t)off + 0x200);
	if (n <= 0)
		return -ENOEXEC;
	untrusted_ver[n] = 0;
	untrusted_ver[strcspn(untrusted_ver, " ")] = 0;
	if (!release_ok(untrusted_ver))
		return -ENOEXEC;
	*ret_release = xstrdup(untrusted_ver);
	return 0;
}

int template_kernel_release(const char *kernel, char **ret_release, struct hutch_error *err)
{
	const char *base = strrchr(kernel, '/');
	base = base ? base + 1 : kernel;
	if (strncmp(base, "vmlinuz-", strlen("vmlinuz-")) == 0 && release_ok(base + strlen("vmlinuz-"))) {
		*ret_release = xstrdup(base + strlen("vmlinuz-"));
		return 0;
	}
	int r = bzimage_release(kernel, ret_release);
	if (r == -ENOEXEC)
		return hutch_error_set(err, ENOEXEC, "cannot tell the release of kernel '%s': name it vmlinuz-RELEASE",
				       kernel);
	if (r < 0)
		return hutch_error_set(err, -r, "cannot read kernel '%s': %s", kernel, strerror(-r));
	return 0;
}

/* ---- modules.dep ---- */

struct moddep_entry {
	const char *path; /* NUL-terminated, relative to the modules dir */
	const char *deps; /* NUL-terminated, space-separated paths */
	const char *name; /* points into path; ends at name_len */
	size_t name_len;
	int state; /* 0 new, 1 visiting, 2 done */
};

struct moddep {
	const char *dir;
	char *buf;
	struct moddep_entry *e;
	size_t n;
	uint32_t *slots; /* index + 1, 0 = empty */
	size_t nslots;
	char *builtin; /* modules.builtin, loaded on the first miss */
	bool builtin_loaded;
};

static void moddep_release(struct moddep *md)
{
	free(md->buf);
	free(md->e);
	free(md->slots);
	free(md->builtin);
}

/* "kernel/fs/9p/9p.ko.xz" -> "9p" */
static const char *module_name(const char *path, size_t len, size_t *ret_len)
{
	const char *base = path;
	for (size_t i = 0; i < len; i++)
		if (path[i] == '/')
			base = path + i + 1;
	size_t n = len - (size_t)(base - path);
	static const char *const exts[] = {".ko", ".ko.xz", ".ko.zst", ".ko.gz"};
	for (size_t i = 0; i < ARRAY_SIZE(exts); i++) {
		size_t m = strlen(exts[i]);
		if (n > m && memcmp(base + n - m, exts[i], m) == 0) {
			n -= m;
			break;
		}
	}
	*ret_len = n;
	return base;
}

static char norm(char c) { return c == '-' ? '_' : c; }

static bool name_eq(const char *a, size_t alen, const char *b, size_t blen)
{
	if (alen != blen)
		return false;
	for (size_t i = 0; i < alen; i++)
		if (norm(a[i]) != norm(b[i]))
			return false;
	return true;
}

static uint32_t name_hash(const char *s, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)norm(s[i])) * 16777619u;
	return h;
}

static ssize_t moddep_lookup(const struct moddep *md, const char *name, size_t len)
{
	size_t mask = md->nslots - 1;
	for (size_t i = name_hash(name, len) & mask;; i = (i + 1) & mask) {
		uint32_t s = md->slots[i];
		if (s == 0)
			return -1;
		const struct moddep_entry *e = &md->e[s - 1];
		if (name_eq(e->name, e->name_len, name, len))
			return (ssize_t)(s - 1);
	}
}

static int moddep_load(struct moddep *md, const char *dir, struct hutch_error *err)
{
	_cleanup_free_ char *path = xasprintf("%s/modules.dep", dir);
	size_t len;
	int r = read_file(path, MODULES_DEP_MAX, &md->buf, &len, err);
	if (r < 0)
		return r;
	md->dir = dir;
	size_t lines = 1;
	for (size_t i = 0; i < len; i++)
		lines += md->buf[i] == '\n';
	md->e = xcalloc(lines, sizeof(*md->e));
	for (char *line = md->buf, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		char *colon = strchr(line, ':');
		if (!colon || colon == line)
			continue;
		*colon = 0;
		struct moddep_entry *e = &md->e[md->n++];
		e->path = line;
		e->deps = colon + 1;
		e->name = module_name(line, (size_t)(colon - line), &e->name_len);
	}
	md->nslots = 16;
	while (md->nslots < 2 * md->n)
		md->nslots *= 2;
	md->slots = xcalloc(md->nslots, sizeof(*md->slots));
	for (size_t k = 0; k < md->n; k++) {
		const struct moddep_entry *e = &md->e[k];
		if (moddep_lookup(md, e->name, e->name_len) >= 0)
			continue; /* a duplicate line: the first one wins, as in modprobe */
		size_t i = name_hash(e->name, e->name_len) & (md->nslots - 1);
		while (md->slots[i])
			i = (i + 1) & (md->nslots - 1);
		md->slots[i] = (uint32_t)k + 1;
	}
	return 0;
}

static bool moddep_is_builtin(struct moddep *md, const char *name, size_t len)
{
	if (!md->builtin_loaded) {
		_cleanup_free_ char *path = xasprintf("%s/modules.builtin", md->dir);
		md->builtin_loaded = true;
		if (read_file(path, MODULES_DEP_MAX, &md->builtin, NULL, NULL) < 0)
			md->builtin = NULL; /* older kernels have none: nothing is built in */
	}
	for (const char *line = md->builtin; line && *line;) {
		size_t n = strcspn(line, "\n"), bl;
		const char *b = module_name(line, n, &bl);
		if (name_eq(b, bl, name, len))
			return true;
		line += n + (line[n] == '\n');
	}
	return false;
}

/* Depth-first, dependencies before dependents. depmod lists a module's dependencies so that the
 * last one loads first (modprobe walks them in reverse), so we do the same. */
static int moddep_visit(struct moddep *md, size_t k, char ***out, struct hutch_error *err)
{
	struct moddep_entry *e = &md->e[k];
	if (e->state == 2)
		return 0;
	if (e->state == 1)
		return hutch_error_set(err, ELOOP, "module '%s' depends on itself in '%s/modules.dep'", e->path,
				       md->dir);
	e->state = 1;
	const char *s = e->deps;
	size_t end = strlen(s);
	while (end > 0) {
		while (end > 0 && (s[end - 1] == ' ' || s[end - 1] == '\t'))
			end--;
		size_t start = end;
		while (start > 0 && s[start - 1] != ' ' && s[start - 1] != '\t')
			start--;
		if (start == end)
			break;
		size_t nl;
		const char *n = module_name(s + start, end - start, &nl);
		ssize_t j = moddep_lookup(md, n, nl);
		if (j < 0)
			return hutch_error_set(err, ENOENT,
					       "module '%s' needs '%.*s', which is missing from '%s/modules.dep'",
					       e->path, (int)(end - start), s + start, md->dir);
		int r = moddep_visit(md, (size_t)j, out, err);
		if (r < 0)
			return r;
		end = start;
	}
	e->state = 2;
	*out = strv_push(*out, xstrdup(e->path));
	return 0;
}

int template_resolve_modules(const char *modules_dir, const char *const *names, char ***ret_paths,
			     struct hutch_error *err)
{
	_cleanup_(moddep_release) struct moddep md = {0};
	int r = moddep_load(&md, modules_dir, err);
	if (r < 0)
		return r;
	_cleanup_strv_ char **out = xcalloc(1, sizeof(char *));
	for (size_t i = 0; names && names[i]; i++) {
		size_t len = strlen(names[i]);
		ssize_t k = moddep_lookup(&md, names[i], len);
		if (k < 0) {
			if (moddep_is_builtin(&md, names[i], len))
				continue;
			return hutch_error_set(err, ENOENT, "unknown module '%s': not in '%s/modules.dep' nor built in",
					       names[i], modules_dir);
		}
		r = moddep_visit(&md, (size_t)k, &out, err);
		if (r < 0)
			return r;
	}
	*ret_paths = TAKE_PTR(out);
	return 0;
}

/* ---- input checks ---- */

/* 1 static ELF, 0 dynamically linked ELF, -ENOEXEC not an ELF file, other < 0: errno. */
static int elf_is_static(const char *path)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	Elf64_Ehdr eh;
	ssize_t n = pread(fd, &eh, sizeof(eh), 0);
	if (n < EI_NIDENT || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0)
		return -ENOEXEC;
	if (eh.e_ident[EI_CLASS] == ELFCLASS64 && n == (ssize_t)sizeof(eh)) {
		if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum > 512)
			return -ENOEXEC;
		for (unsigned i = 0; i < eh.e_phnum; i++) {
			Elf64_Phdr ph;
			if (pread(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff + i * sizeof(ph))) != (ssize_t)sizeof(ph))
				return -ENOEXEC;
			if (ph.p_type == PT_INTERP)
				return 0;
		}
		return 1;
	}
	if (eh.e_ident[EI_CLASS] == ELFCLASS32 && n >= (ssize_t)sizeof(Elf32_Ehdr)) {
		Elf32_Ehdr e32;
		memcpy(&e32, &eh, sizeof(e32));
		if (e32.e_phentsize != sizeof(Elf32_Phdr) || e32.e_phnum > 512)
			return -ENOEXEC;
		for (unsigned i = 0; i < e32.e_phnum; i++) {
			Elf32_Phdr ph;
			if (pread(fd, &ph, sizeof(ph), (off_t)e32.e_phoff + (off_t)(i * sizeof(ph))) !=
			    (ssize_t)sizeof(ph))
				return -ENOEXEC;
			if (ph.p_type == PT_INTERP)
				return 0;
		}
		return 1;
	}
	return -ENOEXEC;
}

static int check_busybox(const char *path, struct hutch_error *err)
{
	int r = elf_is_static(path);
	if (r == 1)
		return 0;
	if (r == -ENOENT)
		return hutch_error_set(
			err, ENOENT,
			"busybox not found at '%s': install Debian's busybox-static (apt-get install busybox-static)",
			path);
	if (r == 0 || r == -ENOEXEC)
		return hutch_error_set(err, ENOEXEC,
				       "busybox '%s' is not a static executable: install Debian's busybox-static "
				       "(apt-get install busybox-static)",
				       path);
	return hutch_error_set(err, -r, "cannot read busybox '%s': %s", path, strerror(-r));
}

/* The agent is /init with no libc beside it; a script is fine, it runs under busybox sh. */
static int check_agent(const char *path, struct hutch_error *err)
{
	int r = elf_is_static(path);
	if (r == 1 || r == -ENOEXEC)
		return 0;
	if (r == 0)
		return hutch_error_set(
			err, ENOEXEC,
			"agent '%s' is dynamically linked: it runs as /init in the micro VM and must be static", path);
	return hutch_error_set(err, -r, "cannot read agent '%s': %s", path, strerror(-r));
}

/* ---- file hashes, cached by stat ---- */

struct file_sig {
	unsigned long long dev, ino;
	long long size, mtime_ns, ctime_ns;
};

struct hash_rec {
	char *path;
	struct file_sig sig;
	char sha[65];
};

struct hash_cache {
	struct hash_rec *v;
	size_t n;
	struct hash_rec now[64]; /* agent, busybox, nft and its libraries, as of this call */
	size_t nnow;
	bool dirty;
};

static void hash_cache_release(struct hash_cache *hc)
{
	for (size_t i = 0; i < hc->n; i++)
		free(hc->v[i].path);
	free(hc->v);
	for (size_t i = 0; i < hc->nnow; i++)
		free(hc->now[i].path);
}

static void file_sig_of(const struct stat *st, struct file_sig *s)
{
	*s = (struct file_sig){(unsigned long long)st->st_dev, (unsigned long long)st->st_ino, (long long)st->st_size,
			       ts_ns(st->st_mtim), ts_ns(st->st_ctim)};
}

static bool file_sig_eq(const struct file_sig *a, const struct file_sig *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size && a->mtime_ns == b->mtime_ns &&
	       a->ctime_ns == b->ctime_ns;
}

/* "hash SHA DEV INO SIZE MTIME CTIME PATH" lines of the inputs file. */
static void hash_cache_parse(struct hash_cache *hc, const char *inputs)
{
	for (const char *line = inputs; line && *line;) {
		size_t n = strcspn(line, "\n");
		_cleanup_free_ char *l = xstrndup(line, n);
		line += n + (line[n] == '\n');
		struct hash_rec rec = {0};
		int off = 0;
		if (sscanf(l, "hash %64[0-9a-f] %llu %llu %lld %lld %lld %n", rec.sha, &rec.sig.dev, &rec.sig.ino,
			   &rec.sig.size, &rec.sig.mtime_ns, &rec.sig.ctime_ns, &off) != 6 ||
		    off == 0 || !l[off] || strlen(rec.sha) != 64)
			continue;
		hc->v = xrealloc(hc->v, (hc->n + 1) * sizeof(*hc->v));
		rec.path = xstrdup(l + off);
		hc->v[hc->n++] = rec;
	}
}

static int hash_cache_get(struct hash_cache *hc, const char *path, char out[65], struct hutch_error *err)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return hutch_error_set(err, errno, "cannot read '%s': %s", path, strerror(errno));
	struct file_sig sig;
	file_sig_of(&st, &sig);
	for (size_t i = 0; i < hc->n; i++)
		if (strcmp(hc->v[i].path, path) == 0 && file_sig_eq(&hc->v[i].sig, &sig)) {
			memcpy(out, hc->v[i].sha, 65);
			goto remember;
		}
	int r = sha256_file_hex(path, out, err);
	if (r < 0)
		return r;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	int64_t newest = sig.mtime_ns > sig.ctime_ns ? sig.mtime_ns : sig.ctime_ns;
	if (ts_ns(now) - newest < RACY_NS)
		return 0; /* too fresh to trust its stat next time */
	hc->dirty = true;
remember:
	if (hc->nnow < ARRAY_SIZE(hc->now) && !strchr(path, '\n')) {
		struct hash_rec *rec = &hc->now[hc->nnow++];
		rec->path = xstrdup(path);
		rec->sig = sig;
		memcpy(rec->sha, out, 65);
	}
	return 0;
}

static void hash_cache_render(const struct hash_cache *hc, struct strbuf *sb)
{
	for (size_t i = 0; i < hc->nnow; i++) {
		const struct hash_rec *r = &hc->now[i];
		strbuf_addf(sb, "hash %s %llu %llu %lld %lld %lld %s\n", r->sha, r->sig.dev, r->sig.ino, r->sig.size,
			    r->sig.mtime_ns, r->sig.ctime_ns, r->path);
	}
}

/* ---- cpio writer ---- */

struct cpio {
	struct archive *a;
	unsigned ino;
	char **dirs; /* directories already written */
};

static void cpio_release(struct cpio *c)
{
	if (c->a)
		archive_write_free(c->a);
	strv_free(c->dirs);
}

static struct archive_entry *cpio_entry(struct cpio *c, const char *path, mode_t mode)
{
	struct archive_entry *e = archive_entry_new();
	if (!e)
		abort();
	archive_entry_set_pathname(e, path);
	archive_entry_set_mode(e, mode);
	archive_entry_set_uid(e, 0);
	archive_entry_set_gid(e, 0);
	archive_entry_set_mtime(e, 0, 0);
	archive_entry_set_ino(e, ++c->ino);
	archive_entry_set_nlink(e, S_ISDIR(mode) ? 2 : 1);
	archive_entry_set_size(e, 0);
	return e;
}

/* libarchive's own text hides ENOSPC behind "Write error": name the errno as well. */
static int archive_fail(struct hutch_error *err, struct archive *a, const char *fmt, const char *what)
{
	int e = archive_errno(a);
	_cleanup_free_ char *msg = xasprintf(fmt, what);
	if (e > 0)
		return hutch_error_set(err, e, "%s: %s (%s)", msg, archive_error_string(a), strerror(e));
	return hutch_error_set(err, EIO, "%s: %s", msg, archive_error_string(a));
}

static int cpio_header(struct cpio *c, struct archive_entry *e, struct hutch_error *err)
{
	int r = archive_write_header(c->a, e);
	if (r != ARCHIVE_OK) {
		r = archive_fail(err, c->a, "cannot write '%s' to the initramfs", archive_entry_pathname(e));
	}
	archive_entry_free(e);
	return r == ARCHIVE_OK ? 0 : r;
}

static int cpio_write(struct cpio *c, const char *path, const void *data, size_t len, struct hutch_error *err)
{
	if (len > 0 && archive_write_data(c->a, data, len) != (la_ssize_t)len)
		return archive_fail(err, c->a, "cannot write '%s' to the initramfs", path);
	return 0;
}

static bool cpio_has_dir(const struct cpio *c, const char *path)
{
	for (size_t i = 0; c->dirs && c->dirs[i]; i++)
		if (strcmp(c->dirs[i], path) == 0)
			return true;
	return false;
}

static int cpio_dir(struct cpio *c, const char *path, mode_t mode, struct hutch_error *err)
{
	if (cpio_has_dir(c, path))
		return 0;
	c->dirs = strv_push(c->dirs, xstrdup(path));
	return cpio_header(c, cpio_entry(c, path, S_IFDIR | mode), err);
}

/* The kernel's unpacker does not create missing parents: write each one first. */
static int cpio_parents(struct cpio *c, const char *path, struct hutch_error *err)
{
	_cleanup_free_ char *p = xstrdup(path);
	for (char *s = strchr(p, '/'); s; s = strchr(s + 1, '/')) {
		*s = 0;
		int r = cpio_dir(c, p, 0755, err);
		if (r < 0)
			return r;
		*s = '/';
	}
	return 0;
}

static int cpio_symlink(struct cpio *c, const char *path, const char *target, struct hutch_error *err)
{
	struct archive_entry *e = cpio_entry(c, path, S_IFLNK | 0777);
	archive_entry_set_symlink(e, target);
	return cpio_header(c, e, err);
}

static int cpio_chardev(struct cpio *c, const char *path, mode_t mode, unsigned maj, unsigned min,
			struct hutch_error *err)
{
	struct archive_entry *e = cpio_entry(c, path, S_IFCHR | mode);
	archive_entry_set_rdevmajor(e, maj);
	archive_entry_set_rdevminor(e, min);
	return cpio_header(c, e, err);
}

static int cpio_data(struct cpio *c, const char *path, mode_t mode, const void *data, size_t len,
		     struct hutch_error *err)
{
	int r = cpio_parents(c, path, err);
	if (r < 0)
		return r;
	struct archive_entry *e = cpio_entry(c, path, S_IFREG | mode);
	archive_entry_set_size(e, (la_int64_t)len);
	r = cpio_header(c, e, err);
	return r < 0 ? r : cpio_write(c, path, data, len, err);
}

/* Streams src into the archive. what names the source in errors, e.g. "module 'kernel/...'". */
static int cpio_file(struct cpio *c, const char *path, mode_t mode, const char *src, const char *what,
		     struct hutch_error *err)
{
	_cleanup_close_ int fd = open(src, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return hutch_error_set(err, errno, "cannot read %s: %s", what, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return hutch_error_set(err, EINVAL, "cannot read %s: not a regular file", what);
	int r = cpio_parents(c, path, err);
	if (r < 0)
		return r;
	struct archive_entry *e = cpio_entry(c, path, S_IFREG | mode);
	archive_entry_set_size(e, st.st_size);
	r = cpio_header(c, e, err);
	if (r < 0)
		return r;
	char buf[65536];
	off_t total = 0;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return hutch_error_set(err, errno, "cannot read %s: %s", what, strerror(errno));
		if (n == 0)
			break;
		if (total + n > st.st_size)
			break;
		r = cpio_write(c, path, buf, (size_t)n, err);
		if (r < 0)
			return r;
		total += n;
	}
	if (total != st.st_size)
		return hutch_error_set(err, EAGAIN, "cannot read %s: it changed while being read", what);
	return 0;
}

/* .ko.xz / .ko.zst / .ko.gz through libarchive's raw format, so the agent needs no decompressor. */
static int module_decompress(const char *src, const char *what, struct strbuf *out, struct hutch_error *err)
{
	struct archive *a = archive_read_new();
	struct archive_entry *e;
	if (!a)
		abort();
	archive_read_support_filter_all(a);
	archive_read_support_format_raw(a);
	int r = 0;
	if (archive_read_open_filename(a, src, 65536) != ARCHIVE_OK || archive_read_next_header(a, &e) != ARCHIVE_OK) {
		r = hutch_error_set(err, EIO, "cannot read %s: %s", what, archive_error_string(a));
		goto out;
	}
	char buf[65536];
	for (;;) {
		la_ssize_t n = archive_read_data(a, buf, sizeof(buf));
		if (n < 0) {
			r = hutch_error_set(err, EIO, "cannot decompress %s: %s", what, archive_error_string(a));
			goto out;
		}
		if (n == 0)
			break;
		if (out->len + (size_t)n > MODULE_MAX) {
			r = hutch_error_set(err, EFBIG, "cannot decompress %s: larger than %u MiB", what,
					    MODULE_MAX >> 20);
			goto out;
		}
		strbuf_add(out, buf, (size_t)n);
	}
out:
	archive_read_free(a);
	return r;
}

/* "kernel/x/y.ko.zst" -> "kernel/x/y.ko": modules go into the initramfs uncompressed. */
static char *module_plain_path(const char *rel)
{
	const char *ko = strstr(rel, ".ko.");
	while (ko && strstr(ko + 1, ".ko."))
		ko = strstr(ko + 1, ".ko.");
	return ko && !strchr(ko + 4, '/') ? xstrndup(rel, (size_t)(ko - rel) + 3) : xstrdup(rel);
}

static bool applet_name_ok(const char *s)
{
	if (!*s || strlen(s) > 64 || strcmp(s, "busybox") == 0 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return false;
	for (const char *p = s; *p; p++)
		if (!(('a' <= *p && *p <= 'z') || ('A' <= *p && *p <= 'Z') || ('0' <= *p && *p <= '9') ||
		      strchr("._-[]", *p)))
			return false;
	return true;
}

/* Every applet this busybox has, from `busybox --list`; the fixed list when it can't run. */
static char **busybox_applets(const char *busybox)
{
	int pfd[2];
	char **v = NULL;
	if (pipe2(pfd, O_CLOEXEC) == 0) {
		posix_spawn_file_actions_t fa;
		posix_spawn_file_actions_init(&fa);
		posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
		posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
		char *argv[] = {(char *)"busybox", (char *)"--list", NULL};
		char *envp[] = {NULL};
		pid_t pid;
		int r = posix_spawn(&pid, busybox, &fa, NULL, argv, envp);
		posix_spawn_file_actions_destroy(&fa);
		close(pfd[1]);
		if (r == 0) {
			struct strbuf sb = STRBUF_INIT;
			char buf[4096];
			ssize_t n;
			while ((n = read(pfd[0], buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
				if (n > 0 && sb.len < (1u << 20))
					strbuf_add(&sb, buf, (size_t)n);
			int status = 0;
			while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
				;
			if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
				char *save = NULL;
				for (char *t = strtok_r(sb.buf, "\n", &save); t; t = strtok_r(NULL, "\n", &save))
					if (applet_name_ok(t))
						v = strv_push(v, xstrdup(t));
			}
			strbuf_release(&sb);
		}
		close(pfd[0]);
	}
	if (strv_len(v) == 0) {
		strv_free(v);
		v = strv_copy((char *const *)fallback_applets);
	}
	return v;
}

/* ---- the micro template ---- */

struct micro_build {
	const char *release;
	const char *modules_dir;
	char **modules; /* relative to modules_dir, load order */
	const char *busybox;
	const char *agent;
	char **extra;		/* absolute paths copied as they are: nft and its libraries (template_net.h) */
	const char *moddep_sig; /* moddep_sig() of modules_dir */
};

static int micro_write_base(struct cpio *c, const struct micro_build *b, struct hutch_error *err)
{
	static const struct {
		const char *path;
		mode_t mode;
	} dirs[] = {
		{"bin", 0755},	{"dev", 0755},	{"etc", 0755},	   {"lib", 0755},  {"mnt", 0755},
		{"proc", 0555}, {"root", 0700}, {"run", 0755},	   {"sbin", 0755}, {"sys", 0555},
		{"tmp", 01777}, {"usr", 0755},	{"usr/bin", 0755}, {"var", 0755},
	};
	int r;
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++)
		if ((r = cpio_dir(c, dirs[i].path, dirs[i].mode, err)) < 0)
			return r;
	/* The kernel opens /dev/console for init's stdio before /init runs, so it must exist before
	 * the agent mounts devtmpfs. cpio lets us ship the node without privileges. */
	if ((r = cpio_chardev(c, "dev/console", 0600, 5, 1, err)) < 0 ||
	    (r = cpio_chardev(c, "dev/null", 0666, 1, 3, err)) < 0)
		return r;
	_cleanup_free_ char *what = xasprintf("agent '%s'", b->agent);
	if ((r = cpio_file(c, "init", 0755, b->agent, what, err)) < 0)
		return r;
	free(what);
	what = xasprintf("busybox '%s'", b->busybox);
	if ((r = cpio_file(c, "bin/busybox", 0755, b->busybox, what, err)) < 0)
		return r;
	_cleanup_strv_ char **applets = busybox_applets(b->busybox);
	bool env = false;
	for (size_t i = 0; applets[i]; i++) {
		_cleanup_free_ char *p = xasprintf("bin/%s", applets[i]);
		env |= strcmp(applets[i], "env") == 0;
		if ((r = cpio_symlink(c, p, "busybox", err)) < 0)
			return r;
	}
	if (env && (r = cpio_symlink(c, "usr/bin/env", "/bin/busybox", err)) < 0)
		return r;
	for (size_t i = 0; b->extra && b->extra[i]; i++) {
		_cleanup_free_ char *w = xasprintf("'%s'", b->extra[i]);
		_cleanup_free_ char *dst = template_nft_path(b->extra[i]);
		if ((r = cpio_file(c, dst, 0755, b->extra[i], w, err)) < 0)
			return r;
	}
	static const char passwd[] = "root:x:0:0:root:/root:/bin/sh\n"
				     "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
	static const char group[] = "root:x:0:\nnogroup:x:65534:\n";
	if ((r = cpio_data(c, "etc/passwd", 0644, passwd, strlen(passwd), err)) < 0 ||
	    (r = cpio_data(c, "etc/group", 0644, group, strlen(group), err)) < 0)
		return r;
	return 0;
}

static int micro_write_modules(struct cpio *c, const struct micro_build *b, struct hutch_error *err)
{
	_cleanup_free_ char *base = xasprintf("lib/modules/%s", b->release);
	int r = cpio_parents(c, base, err);
	if (r < 0 || (r = cpio_dir(c, base, 0755, err)) < 0)
		return r;
	_cleanup_strbuf_ struct strbuf load = STRBUF_INIT;
	for (size_t i = 0; b->modules[i]; i++) {
		const char *rel = b->modules[i];
		_cleanup_free_ char *src = xasprintf("%s/%s", b->modules_dir, rel);
		_cleanup_free_ char *plain = module_plain_path(rel);
		_cleanup_free_ char *dst = xasprintf("%s/%s", base, plain);
		_cleanup_free_ char *what = xasprintf("module '%s'", rel);
		if (strcmp(plain, rel) == 0) {
			r = cpio_file(c, dst, 0644, src, what, err);
		} else {
			_cleanup_strbuf_ struct strbuf data = STRBUF_INIT;
			r = module_decompress(src, what, &data, err);
			if (r == 0)
				r = cpio_data(c, dst, 0644, data.buf, data.len, err);
		}
		if (r < 0)
			return r;
		strbuf_addf(&load, "%s\n", plain);
	}
	_cleanup_free_ char *lp = xasprintf("%s/hutch.load", base);
	return cpio_data(c, lp, 0644, strbuf_str(&load), load.len, err);
}

static int micro_write_cpio(int fd, const struct micro_build *b, struct hutch_error *err)
{
	if (lazy_archive_load(err) < 0)
		return -1;
	_cleanup_(cpio_release) struct cpio c = {.a = archive_write_new()};
	if (!c.a)
		abort();
	if (archive_write_set_format_cpio_newc(c.a) != ARCHIVE_OK || archive_write_add_filter_none(c.a) != ARCHIVE_OK ||
	    archive_write_set_bytes_per_block(c.a, 65536) != ARCHIVE_OK ||
	    archive_write_set_bytes_in_last_block(c.a, 1) != ARCHIVE_OK || archive_write_open_fd(c.a, fd) != ARCHIVE_OK)
		return archive_fail(err, c.a, "cannot start the %s", "initramfs");
	int r = micro_write_base(&c, b, err);
	if (r < 0 || (r = micro_write_modules(&c, b, err)) < 0)
		return r;
	if (archive_write_close(c.a) != ARCHIVE_OK)
		return archive_fail(err, c.a, "cannot finish the %s", "initramfs");
	return 0;
}

/* Leftovers of builders that crashed; we hold the lock, so no builder is running. */
static void remove_stale_tmp(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strncmp(de->d_name, "initramfs.cpio.", strlen("initramfs.cpio.")) == 0)
			unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
}

static int micro_build_initramfs(const char *dir, const char *final, const struct micro_build *b,
				 struct hutch_error *err)
{
	remove_stale_tmp(dir);
	_cleanup_free_ char *tmp = xasprintf("%s.XXXXXX", final);
	_cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return hutch_error_set(err, errno, "cannot create '%s': %s", tmp, strerror(errno));
	int r = micro_write_cpio(fd, b, err);
	if (r == 0 && (fchmod(fd, 0644) < 0 || fsync(fd) < 0 || rename(tmp, final) < 0))
		r = hutch_error_set(err, errno, "cannot write '%s': %s", final, strerror(errno));
	if (r < 0) {
		unlink(tmp);
		return r;
	}
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0)
		(void)fsync(dfd);
	return 0;
}

static int stat_line(struct strbuf *sb, const char *tag, const char *label, const char *path, struct hutch_error *err)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return hutch_error_set(err, errno, "cannot read %s '%s': %s", tag, label, strerror(errno));
	strbuf_addf(sb, "%s %s %lld %lld\n", tag, label, (long long)st.st_size, (long long)ts_ns(st.st_mtim));
	return 0;
}

/* "moddep" and DEV INO SIZE MTIME CTIME of modules.dep and modules.builtin ("-" for one missing):
 * the module list resolved from them is kept in the inputs file and used again while both are as
 * they were, instead of parsing the 1 MiB modules.dep at every start. */
static char *moddep_sig(const char *modules_dir)
{
	static const char *const files[] = {"modules.dep", "modules.builtin"};
	struct strbuf sb = STRBUF_INIT;
	strbuf_adds(&sb, "moddep");
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		_cleanup_free_ char *p = xasprintf("%s/%s", modules_dir, files[i]);
		struct stat st;
		if (stat(p, &st) < 0) {
			strbuf_adds(&sb, " -");
			continue;
		}
		struct file_sig fs;
		file_sig_of(&st, &fs);
		strbuf_addf(&sb, " %llu %llu %lld %lld %lld", fs.dev, fs.ino, fs.size, fs.mtime_ns, fs.ctime_ns);
	}
	return strbuf_detach(&sb, NULL);
}

/* The modules of an inputs file written with this sig, in their order; NULL when it has none. */
static char **modules_from_inputs(const char *inputs, const char *sig)
{
	bool match = false;
	_cleanup_strv_ char **out = xcalloc(1, sizeof(char *));
	for (const char *line = inputs; line && *line;) {
		size_t n = strcspn(line, "\n");
		if (n == strlen(sig) && !strncmp(line, sig, n))
			match = true;
		else if (n > 7 && !strncmp(line, "module ", 7)) {
			size_t m = strcspn(line + 7, " \n");
			if (m == 0 || line[7 + m] != ' ')
				return NULL;
			out = strv_push(out, xstrndup(line + 7, m));
		}
		line += n + (line[n] == '\n');
	}
	return match ? TAKE_PTR(out) : NULL;
}

/* The text whose sha256 is the cache key: everything the initramfs is built from. */
static int micro_key_text(const char *kernel, const struct micro_build *b, struct hash_cache *hc, struct strbuf *sb,
			  struct hutch_error *err)
{
	strbuf_addf(sb, "%s\n", MICRO_LAYOUT);
	int r = stat_line(sb, "kernel", kernel, kernel, err);
	if (r < 0)
		return r;
	strbuf_addf(sb, "release %s\nmodules %s\n%s\n", b->release, b->modules_dir, b->moddep_sig);
	for (size_t i = 0; b->modules[i]; i++) {
		_cleanup_free_ char *p = xasprintf("%s/%s", b->modules_dir, b->modules[i]);
		if ((r = stat_line(sb, "module", b->modules[i], p, err)) < 0)
			return r;
	}
	char sha[65];
	if ((r = hash_cache_get(hc, b->busybox, sha, err)) < 0)
		return r;
	strbuf_addf(sb, "busybox %s\n", sha);
	if ((r = hash_cache_get(hc, b->agent, sha, err)) < 0)
		return r;
	strbuf_addf(sb, "agent %s\n", sha);
	for (size_t i = 0; b->extra && b->extra[i]; i++) {
		if ((r = hash_cache_get(hc, b->extra[i], sha, err)) < 0)
			return r;
		strbuf_addf(sb, "file %s %s\n", b->extra[i], sha);
	}
	return 0;
}

static int micro_kernel(const struct template_inputs *in, char **ret_kernel, char **ret_release,
			struct hutch_error *err)
{
	_cleanup_free_ char *kernel = NULL, *release = NULL;
	int r;
	if (in->kernel) {
		kernel = xstrdup(in->kernel);
		r = template_kernel_release(kernel, &release, err);
	} else {
		r = template_find_kernel("/boot", &kernel, &release, err);
	}
	if (r < 0)
		return r;
	if (access(kernel, R_OK) < 0)
		return hutch_error_set(err, errno, "cannot read kernel '%s': %s", kernel, strerror(errno));
	*ret_kernel = TAKE_PTR(kernel);
	*ret_release = TAKE_PTR(release);
	return 0;
}

static int micro_modules(const struct template_inputs *in, const char *modules_dir, const char *release,
			 char ***ret_modules, struct hutch_error *err)
{
	_cleanup_free_ char *dep = xasprintf("%s/modules.dep", modules_dir);
	if (access(dep, F_OK) < 0 && errno == ENOENT) {
		if (!in->kernel)
			return hutch_error_set(err, ENOENT, "no modules for kernel %s in '%s': install linux-image-%s",
					       release, modules_dir, release);
		/* An explicit kernel may have virtio built in. */
		log_warn("micro template: no '%s', building the initramfs without modules", dep);
		*ret_modules = xcalloc(1, sizeof(char *));
		return 0;
	}
	return template_resolve_modules(modules_dir, template_micro_modules, ret_modules, err);
}

static bool path_ok(const char *p) { return p && *p && !strchr(p, '\n'); }

static int micro_ensure(const struct template_inputs *in, struct micro_template *ret, struct hutch_error *err)
{
	if (!path_ok(in->agent) || !path_ok(in->cache_dir) || (in->kernel && !path_ok(in->kernel)) ||
	    (in->busybox && !path_ok(in->busybox)) || (in->modules_root && !path_ok(in->modules_root)))
		return hutch_error_set(err, EINVAL, "missing or invalid input path");
	_cleanup_free_ char *kernel = NULL, *release = NULL;
	int r = micro_kernel(in, &kernel, &release, err);
	if (r < 0)
		return r;
	_cleanup_free_ char *modules_dir =
		xasprintf("%s/%s", in->modules_root ? in->modules_root : "/lib/modules", release);
	_cleanup_free_ char *dir = xasprintf("%s/%s", in->cache_dir, release);
	_cleanup_close_ int lfd = -1;
	if (!in->dry_run) {
		if ((r = mkdir_p(dir, 0755)) < 0)
			return hutch_error_set(err, -r, "cannot create '%s': %s", dir, strerror(-r));
		_cleanup_free_ char *lock = xasprintf("%s/lock", dir);
		lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
		if (lfd < 0)
			return hutch_error_set(err, errno, "cannot open '%s': %s", lock, strerror(errno));
		while (flock(lfd, LOCK_EX) < 0)
			if (errno != EINTR)
				return hutch_error_set(err, errno, "cannot lock '%s': %s", lock, strerror(errno));
	}

	_cleanup_free_ char *inputs_path = xasprintf("%s/inputs", dir);
	_cleanup_free_ char *initrd = xasprintf("%s/initramfs.cpio", dir);
	_cleanup_free_ char *old = NULL;
	if (read_file(inputs_path, 1 << 20, &old, NULL, NULL) < 0)
		old = NULL;
	_cleanup_free_ char *sig = moddep_sig(modules_dir);
	_cleanup_strv_ char **modules = modules_from_inputs(old, sig);
	if (!modules) {
		if ((r = micro_modules(in, modules_dir, release, &modules, err)) < 0)
			return r;
		modules = template_net_modules(modules_dir, modules);
	}
	_cleanup_free_ char *nft_cache = in->dry_run ? NULL : xasprintf("%s/nft-list", in->cache_dir);
	_cleanup_strv_ char **extra = template_nft_files(nft_cache);
	struct micro_build b = {release,   modules_dir, modules, in->busybox ? in->busybox : "/bin/busybox",
				in->agent, extra,	sig};
	if ((r = check_busybox(b.busybox, err)) < 0 || (r = check_agent(b.agent, err)) < 0)
		return r;
	_cleanup_(hash_cache_release) struct hash_cache hc = {0};
	hash_cache_parse(&hc, old);
	_cleanup_strbuf_ struct strbuf text = STRBUF_INIT;
	if ((r = micro_key_text(kernel, &b, &hc, &text, err)) < 0)
		return r;
	char key[65];
	sha256_hex(text.buf, text.len, key);

	struct stat st;
	bool fresh = old && strncmp(old, "key ", 4) == 0 && strncmp(old + 4, key, 64) == 0 && old[68] == '\n' &&
		     stat(initrd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
	if (in->dry_run) {
		*ret = (struct micro_template){.kernel = TAKE_PTR(kernel),
					       .kernel_release = TAKE_PTR(release),
					       .dir = TAKE_PTR(dir),
					       .rebuilt = !fresh};
		return 0;
	}
	if (!fresh) {
		/* Never leave an inputs file that vouches for an initramfs it did not describe. */
		if (unlink(inputs_path) < 0 && errno != ENOENT)
			return hutch_error_set(err, errno, "cannot remove '%s': %s", inputs_path, strerror(errno));
		if ((r = micro_build_initramfs(dir, initrd, &b, err)) < 0)
			return r;
	}
	if (!fresh || hc.dirty) {
		_cleanup_strbuf_ struct strbuf out = STRBUF_INIT;
		strbuf_addf(&out, "key %s\n%s", key, text.buf);
		hash_cache_render(&hc, &out);
		if ((r = write_file_atomic(inputs_path, out.buf, out.len, 0644, err)) < 0)
			return r;
	}
	*ret = (struct micro_template){
		.kernel = TAKE_PTR(kernel),
		.initrd = TAKE_PTR(initrd),
		.kernel_release = TAKE_PTR(release),
		.dir = TAKE_PTR(dir),
		.rebuilt = !fresh,
	};
	return 0;
}

int template_micro_ensure(const struct template_inputs *in, struct micro_template *ret, struct hutch_error *err)
{
	int r = micro_ensure(in, ret, err);
	return r < 0 ? hutch_error_wrap(err, "micro template") : 0;
}

void micro_template_release(struct micro_template *t)
{
	if (!t)
		return;
	free(t->kernel);
	free(t->initrd);
	free(t->kernel_release);
	free(t->dir);
	*t = (struct micro_template){0};
}
