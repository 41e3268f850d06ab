/* image: checksum specs, sums files and the catalog; fetch against tests/helpers/http-fixture.py on
 * a loopback port (never anything but 127.0.0.1): cache reuse, sums URLs, mismatch, HTTP errors,
 * refused redirects, resume after a cut, stall, Ctrl-C and ENOSPC; ls/rm/prune; overlays with the
 * real qemu-img, and "in use" with a real QEMU holding the disk. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <openssl/evp.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "image.h"
#include "store.h"

#ifndef SRCDIR
#define SRCDIR "."
#endif
#define UNUSED __attribute__((unused))
#define FIXTURE SRCDIR "/tests/helpers/http-fixture.py"

/* ---- ENOSPC injection: a pwrite to an image.part that would end past enospc_at fails ---- */
static long long enospc_at = -1;

static bool fd_is_part(int fd)
{
	char link[64], target[PATH_MAX];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, target, sizeof(target) - 1);
	if (n <= 11)
		return false;
	target[n] = 0;
	return !strcmp(target + n - 11, "/image.part");
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	if (enospc_at >= 0 && (long long)off + (long long)n > enospc_at && fd_is_part(fd)) {
		errno = ENOSPC;
		return -1;
	}
	return (ssize_t)syscall(SYS_pwrite64, fd, buf, n, off);
}

/* ---- test data ---- */

#define DISK_LEN (300 * 1024)
static char *disk_data;
static char disk_sha256[65], disk_sha512[129];

static void digest_hex(const EVP_MD *md, const void *d, size_t n, char *out)
{
	unsigned char buf[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	assert_true(EVP_Digest(d, n, buf, &len, md, NULL));
	for (unsigned i = 0; i < len; i++)
		sprintf(out + 2 * i, "%02x", buf[i]);
}

static void put_file(const char *dir, const char *name, const void *data, size_t len)
{
	_cleanup_free_ char *p = xasprintf("%s/%s", dir, name);
	assert_int_equal(write_file_atomic(p, data, len, 0644, NULL), 0);
}

static void put_str(const char *dir, const char *name, const char *s) { put_file(dir, name, s, strlen(s)); }

/* ---- the loopback fixture ---- */

struct fixture {
	pid_t pid;
	int port;
	char *dir, *root, *log;
};
static struct fixture http_fx;

static int fixture_start(struct fixture *f, const char *cert, const char *key)
{
	f->dir = xstrdup("/tmp/hutch-test-image-fx.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	f->root = xasprintf("%s/root", f->dir);
	f->log = xasprintf("%s/requests.log", f->dir);
	_cleanup_free_ char *pf = xasprintf("%s/port", f->dir);
	if (mkdir(f->root, 0755) < 0)
		return -1;
	f->pid = fork();
	if (f->pid < 0)
		return -1;
	if (f->pid == 0) {
		const char *argv[] = {"python3",
				      FIXTURE,
				      "--root",
				      f->root,
				      "--log",
				      f->log,
				      "--port-file",
				      pf,
				      "--stall-seconds",
				      "20",
				      cert ? "--cert" : NULL,
				      cert,
				      "--key",
				      key,
				      NULL};
		execvp(argv[0], (char **)argv);
		_exit(127);
	}
	for (int i = 0; i < 2000; i++) {
		char *buf = NULL;
		size_t len = 0;
		if (read_file(pf, 64, &buf, &len, NULL) == 0) {
			f->port = atoi(buf);
			free(buf);
			return f->port > 0 ? 0 : -1;
		}
		int status;
		if (waitpid(f->pid, &status, WNOHANG) == f->pid) {
			f->pid = 0;
			return -1;
		}
		usleep(10 * 1000);
	}
	return -1;
}

static void fixture_stop(struct fixture *f)
{
	if (f->pid > 0) {
		kill(f->pid, SIGTERM);
		waitpid(f->pid, NULL, 0);
	}
	if (f->dir)
		rm_rf(f->dir);
	free(f->dir);
	free(f->root);
	free(f->log);
	memset(f, 0, sizeof(*f));
}

/* Requests for PATH so far; *ret_range gets the Range header of the last one ("-" for none). */
static int requests(const struct fixture *f, const char *path, char *ret_range, size_t range_len)
{
	char *buf = NULL;
	size_t len = 0;
	if (read_file(f->log, 1 << 20, &buf, &len, NULL) < 0)
		return 0;
	int n = 0;
	size_t plen = strlen(path);
	for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
		if (strncmp(line, "GET ", 4) || strncmp(line + 4, path, plen) || line[4 + plen] != ' ')
			continue;
		n++;
		if (ret_range)
			snprintf(ret_range, range_len, "%s", line + 5 + plen);
	}
	free(buf);
	return n;
}

static char *url_of(const struct fixture *f, const char *scheme, const char *path)
{
	return xasprintf("%s://127.0.0.1:%d%s", scheme, f->port, path);
}

static char *http_url(const char *path) { return url_of(&http_fx, "http", path); }

/* ---- environment: proxies off, so nothing ever leaves loopback ---- */

static const char *const env_names[] = {
	"HUTCH_HOME",  "HUTCH_STALL_SECONDS", "HUTCH_CA_BUNDLE", "http_proxy", "https_proxy", "HTTP_PROXY",
	"HTTPS_PROXY", "ALL_PROXY",	      "all_proxy",	 "no_proxy",   "NO_PROXY",    "PATH"};
static char *saved_env[ARRAY_SIZE(env_names)];

static int group_setup(void **state UNUSED)
{
	for (size_t i = 0; i < ARRAY_SIZE(env_names); i++) {
		const char *v = getenv(env_names[i]);
		saved_env[i] = v ? xstrdup(v) : NULL;
	}
	for (size_t i = 3; i < 9; i++)
		unsetenv(env_names[i]);
	setenv("no_proxy", "*", 1);
	setenv("NO_PROXY", "*", 1);
	unsetenv("HUTCH_STALL_SECONDS");
	unsetenv("HUTCH_CA_BUNDLE");

	disk_data = xmalloc(DISK_LEN);
	uint32_t x = 12345;
	for (size_t i = 0; i < DISK_LEN; i++) {
		x = x * 1103515245u + 12345u;
		disk_data[i] = (char)(x >> 16);
	}
	digest_hex(EVP_sha256(), disk_data, DISK_LEN, disk_sha256);
	digest_hex(EVP_sha512(), disk_data, DISK_LEN, disk_sha512);

	if (fixture_start(&http_fx, NULL, NULL) < 0) {
		fprintf(stderr, "cannot start %s\n", FIXTURE);
		return -1;
	}
	const char *r = http_fx.root;
	put_file(r, "disk.img", disk_data, DISK_LEN);
	put_file(r, "other.img", disk_data, DISK_LEN / 2);
	put_file(r, "third.img", disk_data, DISK_LEN / 3);
	put_file(r, "down.img", disk_data, DISK_LEN);
	_cleanup_free_ char *gnu =
		xasprintf("0000000000000000000000000000000000000000000000000000000000000000  a.iso\n"
			  "%s *disk.img\n"
			  "1111111111111111111111111111111111111111111111111111111111111111  other.img\n",
			  disk_sha256);
	put_str(r, "SHA256SUMS", gnu);
	_cleanup_free_ char *bsd = xasprintf("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n"
					     "# disk.img: %d bytes\nSHA512 (disk.img) = %s\n"
					     "-----BEGIN PGP SIGNATURE-----\nabc\n-----END PGP SIGNATURE-----\n",
					     DISK_LEN, disk_sha512);
	put_str(r, "CHECKSUM", bsd);
	put_str(r, "EMPTY-SUMS", "# nothing here\n");
	return 0;
}

static int group_teardown(void **state UNUSED)
{
	fixture_stop(&http_fx);
	for (size_t i = 0; i < ARRAY_SIZE(env_names); i++) {
		if (saved_env[i])
			setenv(env_names[i], saved_env[i], 1);
		else
			unsetenv(env_names[i]);
		free(saved_env[i]);
	}
	free(disk_data);
	return 0;
}

/* Each fetch test gets its own store under a fresh HUTCH_HOME. */
struct env {
	char *home;
	struct store st;
};

static int env_setup(void **state)
{
	struct env *e = xcalloc(1, sizeof(*e));
	e->home = xstrdup("/tmp/hutch-test-image.XXXXXX");
	if (!mkdtemp(e->home))
		return -1;
	setenv("HUTCH_HOME", e->home, 1);
	if (store_open(&e->st, NULL) < 0)
		return -1;
	*state = e;
	return 0;
}

static int env_teardown(void **state)
{
	struct env *e = *state;
	enospc_at = -1;
	unsetenv("HUTCH_STALL_SECONDS");
	unsetenv("HUTCH_CA_BUNDLE");
	store_release(&e->st);
	rm_rf(e->home);
	free(e->home);
	free(e);
	return 0;
}

static bool exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

static off_t file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? st.st_size : -1;
}

static char *cache_file(const struct env *e, const char *url, const char *name)
{
	_cleanup_free_ char *dir = image_cache_dir(&e->st, url);
	return xasprintf("%s/%s", dir, name);
}

static void assert_file_is_disk(const char *path, size_t len)
{
	char *buf = NULL;
	size_t n = 0;
	assert_int_equal(read_file(path, 1 << 20, &buf, &n, NULL), 0);
	assert_int_equal(n, len);
	assert_memory_equal(buf, disk_data, len);
	free(buf);
}

/* Nothing under the final name and no digest: the state every failure must leave. */
static void assert_not_cached(const struct env *e, const char *url)
{
	_cleanup_free_ char *img = cache_file(e, url, "image");
	_cleanup_free_ char *dg = cache_file(e, url, "digest");
	assert_false(exists(img));
	assert_false(exists(dg));
}

struct prog_rec {
	int calls;
	bool finished;
	uint64_t done, total, resumed;
	bool cancel_on_data;
	volatile sig_atomic_t cancel;
};

static void prog_cb(const struct image_progress_info *pi, void *userdata)
{
	struct prog_rec *p = userdata;
	p->calls++;
	p->done = pi->done;
	p->total = pi->total;
	p->resumed = pi->resumed;
	p->finished |= pi->finished;
	if (p->cancel_on_data && pi->done > 0)
		p->cancel = 1;
}

static int fetch(struct env *e, const char *url, const char *spec, char **ret_path, struct hutch_error *err)
{
	return image_fetch(&e->st, url, spec, IMAGE_FETCH_REFRESH, NULL, ret_path, err);
}

/* ---- sums files ---- */

#define H64A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define H64B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define H64C "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define H128 H64C H64A

static char *sums(const char *buf, const char *algo, const char *name, struct hutch_error *err)
{
	char *hex = NULL;
	int r = image_parse_sums(buf, strlen(buf), algo, name, &hex, err);
	assert_true(r == 0 || hex == NULL);
	return hex;
}

static void test_sums_gnu(void **state UNUSED)
{
	const char *buf = H64A "  debian.qcow2\n" H64B " *ubuntu.img\n" H64C "  ./arch.qcow2\n"
			       "\\" H64A "  back\\\\slash\\nnewline.img\n";
	struct hutch_error err = {0};
	_cleanup_free_ char *a = sums(buf, "sha256", "debian.qcow2", &err);
	_cleanup_free_ char *b = sums(buf, "sha256", "ubuntu.img", &err);
	_cleanup_free_ char *c = sums(buf, "sha256", "arch.qcow2", &err);
	_cleanup_free_ char *d = sums(buf, "sha256", "back\\slash\nnewline.img", &err);
	assert_string_equal(a, H64A);
	assert_string_equal(b, H64B);
	assert_string_equal(c, H64C);
	assert_string_equal(d, H64A);
	/* A name that is only a suffix or prefix of an entry does not match. */
	assert_null(sums(buf, "sha256", "qcow2", &err));
	assert_int_equal(err.code, ENOENT);
	hutch_error_clear(&err);
	_cleanup_free_ char *big = sums(H128 "  x.img\n", "sha512", "x.img", &err);
	assert_string_equal(big, H128);
	_cleanup_free_ char *upper = sums("0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF *u.img",
					  "sha256", "u.img", &err);
	assert_string_equal(upper, H64C);
	assert_null(err.msg);
}

static void test_sums_bsd(void **state UNUSED)
{
	const char *buf = "-----BEGIN PGP SIGNED MESSAGE-----\n"
			  "Hash: SHA256\n\n"
			  "# Fedora-Cloud-Base-Generic-41-1.4.x86_64.qcow2: 491716608 bytes\n"
			  "SHA256 (Fedora-Cloud-Base-Generic-41-1.4.x86_64.qcow2) = " H64C "\n"
			  "SHA256 (odd (name)) = " H64B "\n"
			  "-----BEGIN PGP SIGNATURE-----\n\nwsFzBAEBCAAdFiEE\n-----END PGP SIGNATURE-----\n";
	struct hutch_error err = {0};
	_cleanup_free_ char *a = sums(buf, "sha256", "Fedora-Cloud-Base-Generic-41-1.4.x86_64.qcow2", &err);
	_cleanup_free_ char *b = sums(buf, "sha256", "odd (name)", &err);
	assert_string_equal(a, H64C);
	assert_string_equal(b, H64B);
	/* Asking for sha512 of a SHA256-only file says what it does have. */
	assert_null(sums(buf, "sha512", "Fedora-Cloud-Base-Generic-41-1.4.x86_64.qcow2", &err));
	assert_int_equal(err.code, ENOENT);
	assert_string_equal(err.msg, "no entry for 'Fedora-Cloud-Base-Generic-41-1.4.x86_64.qcow2' in sums file with a "
				     "sha512 digest (it has SHA256)");
	hutch_error_clear(&err);
	_cleanup_free_ char *c =
		sums("SHA512 (x.img) = " H128 "\nSHA256 (x.img) = " H64A "\n", "sha512", "x.img", &err);
	assert_string_equal(c, H128);
}

static void test_sums_missing_entry(void **state UNUSED)
{
	struct hutch_error err = {0};
	assert_null(sums(H64A "  other.img\n", "sha256", "disk.img", &err));
	assert_int_equal(err.code, ENOENT);
	assert_string_equal(err.msg, "no entry for 'disk.img' in sums file");
	hutch_error_clear(&err);
	assert_null(sums("", "sha256", "disk.img", &err));
	assert_int_equal(err.code, ENOENT);
	hutch_error_clear(&err);
	assert_null(sums(H64A "  disk.img\n", "md5", "disk.img", &err));
	assert_int_equal(err.code, EINVAL);
	hutch_error_clear(&err);
}

static void test_sums_malformed_hex(void **state UNUSED)
{
	struct hutch_error err = {0};
	/* A malformed line for another file is not our business. */
	_cleanup_free_ char *ok = sums("zzzz  other.img\n" H64A "  disk.img\n", "sha256", "disk.img", &err);
	assert_string_equal(ok, H64A);
	assert_null(sums("# x\nabc123  disk.img\n", "sha256", "disk.img", &err));
	assert_int_equal(err.code, EINVAL);
	assert_string_equal(err.msg,
			    "malformed sha256 digest for 'disk.img' on line 2 of sums file: expected 64 hex digits");
	hutch_error_clear(&err);
	assert_null(sums("g" H64A "  disk.img\n", "sha256", "disk.img", &err));
	assert_int_equal(err.code, EINVAL);
	hutch_error_clear(&err);
	assert_null(sums(H64A "  disk.img\n", "sha512", "disk.img", &err));
	assert_int_equal(err.code, EINVAL);
	assert_non_null(strstr(err.msg, "expected 128 hex digits"));
	hutch_error_clear(&err);
	assert_null(sums("SHA256 (disk.img) = " H64A "xyz\n", "sha256", "disk.img", &err));
	assert_int_equal(err.code, EINVAL);
	hutch_error_clear(&err);
	/* Two different digests for one name: refuse rather than guess. */
	assert_null(sums(H64A "  disk.img\n" H64B "  disk.img\n", "sha256", "disk.img", &err));
	assert_int_equal(err.code, EINVAL);
	assert_non_null(strstr(err.msg, "conflicting entries for 'disk.img'"));
	hutch_error_clear(&err);
}

static void test_sums_crlf_and_edges(void **state UNUSED)
{
	struct hutch_error err = {0};
	_cleanup_free_ char *a = sums("# c\r\n" H64B "  disk.img\r\n" H64A "  x\r\n", "sha256", "disk.img", &err);
	assert_string_equal(a, H64B);
	_cleanup_free_ char *b = sums("SHA256 (disk.img) = " H64C "\r\n", "sha256", "disk.img", &err);
	assert_string_equal(b, H64C);
	/* No trailing newline; tabs and leading blanks. */
	_cleanup_free_ char *c = sums("  " H64C "\tdisk.img", "sha256", "disk.img", &err);
	assert_string_equal(c, H64C);
	/* A NUL inside the buffer ends nothing: only len counts. */
	const char nul[] = "x\0y  z\n" H64A "  disk.img\n";
	char *hex = NULL;
	assert_int_equal(image_parse_sums(nul, sizeof(nul) - 1, "sha256", "disk.img", &hex, &err), 0);
	assert_string_equal(hex, H64A);
	free(hex);
	/* Only buf[0..len) is read. */
	hex = NULL;
	const char cut[] = H64A "  disk.img\n";
	assert_int_equal(image_parse_sums(cut, 10, "sha256", "disk.img", &hex, &err), -ENOENT);
	hutch_error_clear(&err);
	assert_null(err.msg);
}

static void test_sums_huge(void **state UNUSED)
{
	struct hutch_error err = {0};
	struct strbuf sb = STRBUF_INIT;
	strbuf_adds(&sb, H64A "  disk.img\n");
	for (int i = 0; i < 5000; i++)
		strbuf_addch(&sb, 'x');
	strbuf_addch(&sb, '\n');
	char *hex = NULL;
	assert_int_equal(image_parse_sums(sb.buf, sb.len, "sha256", "disk.img", &hex, &err), -EINVAL);
	assert_string_equal(err.msg, "line 2 of sums file is longer than 4096 bytes");
	hutch_error_clear(&err);
	/* Exactly the limit is fine. */
	strbuf_reset(&sb);
	strbuf_adds(&sb, H64A "  ");
	while (sb.len < IMAGE_SUMS_LINE_MAX)
		strbuf_addch(&sb, 'n');
	_cleanup_free_ char *name = xstrdup(sb.buf + 66);
	assert_int_equal(image_parse_sums(sb.buf, sb.len, "sha256", name, &hex, &err), 0);
	assert_string_equal(hex, H64A);
	free(hex);
	hex = NULL;
	/* Over 1 MiB in total. */
	strbuf_reset(&sb);
	while (sb.len <= IMAGE_SUMS_MAX)
		strbuf_adds(&sb, H64A "  filler.img\n");
	assert_int_equal(image_parse_sums(sb.buf, sb.len, "sha256", "disk.img", &hex, &err), -EFBIG);
	assert_null(hex);
	hutch_error_clear(&err);
	strbuf_release(&sb);
}

/* ---- checksum specs, URLs, catalog ---- */

static void test_checksum_spec(void **state UNUSED)
{
	struct image_checksum c = {0};
	struct hutch_error err = {0};
	assert_int_equal(image_checksum_parse("sha256:" H64C, &c, &err), 0);
	assert_int_equal(c.algo, IMAGE_SHA256);
	assert_string_equal(c.hex, H64C);
	assert_null(c.sums_url);
	image_checksum_release(&c);
	assert_int_equal(image_checksum_parse("SHA512:"
					      "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF" H64A,
					      &c, &err),
			 0);
	assert_int_equal(c.algo, IMAGE_SHA512);
	assert_string_equal(c.hex, H128);
	image_checksum_release(&c);
	assert_int_equal(image_checksum_parse("sha512:https://example.org/SHA512SUMS", &c, &err), 0);
	assert_int_equal(c.algo, IMAGE_SHA512);
	assert_string_equal(c.sums_url, "https://example.org/SHA512SUMS");
	assert_null(c.hex);
	image_checksum_release(&c);

	static const struct {
		const char *spec, *msg;
	} bad[] = {
		{"", "empty checksum: use sha256:HEX or sha256:URL-of-SHA256SUMS"},
		{"md5:abc", "checksum 'md5:abc' must start with sha256: or sha512:"},
		{H64A, "checksum '" H64A "' must start with sha256: or sha512:"},
		{"sha256:abc", "malformed sha256 checksum 'sha256:abc': expected 64 hex digits, got 3"},
		{"sha256:" H64A "a", "malformed sha256 checksum 'sha256:" H64A "a': expected 64 hex digits, got 65"},
		{"sha512:" H64A, "malformed sha512 checksum 'sha512:" H64A "': expected 128 hex digits, got 64"},
		{"sha256:xyz", "malformed sha256 checksum 'sha256:xyz': 'x' is not a hex digit"},
		{"sha256:", "malformed sha256 checksum 'sha256:': expected 64 hex digits, got 0"},
		{"sha256:file:///etc/SHA256SUMS", "checksum URL 'file:///etc/SHA256SUMS' must be http or https"},
		{"sha256:ftp://x/SUMS", "checksum URL 'ftp://x/SUMS' must be http or https"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_int_equal(image_checksum_parse(bad[i].spec, &c, &err), -EINVAL);
		assert_string_equal(err.msg, bad[i].msg);
		hutch_error_clear(&err);
	}
}

static void test_url_filename(void **state UNUSED)
{
	static const struct {
		const char *url, *name;
	} good[] = {
		{"https://h/a/b/disk.qcow2", "disk.qcow2"}, {"http://h:8080/x.img?token=1/2", "x.img"},
		{"https://h/x.img#frag", "x.img"},	    {"https://h/a%20b%2Bc.img", "a b+c.img"},
		{"https://h/100%25.img", "100%.img"},	    {"https://h/bad%zz.img", "bad%zz.img"},
	};
	struct hutch_error err = {0};
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		_cleanup_free_ char *n = NULL;
		assert_int_equal(image_url_filename(good[i].url, &n, &err), 0);
		assert_string_equal(n, good[i].name);
	}
	static const char *const bad[] = {"https://h/",	     "https://h",      "https://h?x=/y.img",
					  "https://h/a%2Fb", "https://h/%00",  "file:///x.img",
					  "ftp://h/x.img",   "https:///x.img", "https://h/x y.img"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char *n = NULL;
		assert_int_equal(image_url_filename(bad[i], &n, &err), -EINVAL);
		assert_null(n);
		hutch_error_clear(&err);
	}
}

static void test_catalog(void **state UNUSED)
{
	static const struct {
		const char *name, *algo, *file;
	} want[] = {
		{"debian-12", "sha512", "debian-12-genericcloud-amd64.qcow2"},
		{"ubuntu-24.04", "sha256", "ubuntu-24.04-server-cloudimg-amd64.img"},
		{"fedora-41", "sha256", "Fedora-Cloud-Base-Generic-41-1.4.x86_64.qcow2"},
		{"arch", "sha256", "Arch-Linux-x86_64-cloudimg.qcow2"},
	};
	struct hutch_error err = {0};
	size_t n = 0;
	image_catalog(&n);
	assert_int_equal(n, ARRAY_SIZE(want));
	for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
		_cleanup_free_ char *url = NULL, *ck = NULL, *file = NULL;
		assert_int_equal(image_resolve_catalog(want[i].name, &url, &ck, &err), 0);
		assert_true(!strncmp(url, "https://", 8));
		assert_int_equal(image_url_filename(url, &file, &err), 0);
		assert_string_equal(file, want[i].file);
		struct image_checksum c = {0};
		assert_int_equal(image_checksum_parse(ck, &c, &err), 0);
		assert_string_equal(image_algo_name(c.algo), want[i].algo);
		assert_non_null(c.sums_url);
		assert_true(!strncmp(c.sums_url, "https://", 8));
		image_checksum_release(&c);
		/* The catalog's own URL brings its checksum along. */
		_cleanup_free_ char *url2 = NULL, *ck2 = NULL;
		assert_int_equal(image_resolve_catalog(url, &url2, &ck2, &err), 0);
		assert_string_equal(ck2, ck);
	}
	_cleanup_free_ char *url = NULL, *ck = NULL;
	assert_int_equal(image_resolve_catalog("https://example.org/x.img", &url, &ck, &err), 0);
	assert_string_equal(url, "https://example.org/x.img");
	assert_null(ck);
	char *u = NULL, *k = NULL;
	assert_int_equal(image_resolve_catalog("debian-13", &u, &k, &err), -ENOENT);
	assert_string_equal(err.msg, "unknown image 'debian-13': use an http(s) URL or one of debian-12, ubuntu-24.04, "
				     "fedora-41, arch");
	hutch_error_clear(&err);
	assert_int_equal(image_resolve_catalog("file:///tmp/x.img", &u, &k, &err), -EINVAL);
	assert_string_equal(err.msg, "image URL 'file:///tmp/x.img' must be http or https");
	hutch_error_clear(&err);
	assert_null(u);
	assert_null(k);
}

static void test_redirect_protocols(void **state UNUSED)
{
	assert_string_equal(image_redirect_protocols("https://h/x.img"), "https");
	assert_string_equal(image_redirect_protocols("HTTPS://h/x.img"), "https");
	assert_string_equal(image_redirect_protocols("http://h/x.img"), "http,https");
	assert_true(image_url_is_http("http://127.0.0.1:1/x"));
	assert_false(image_url_is_http("file:///x"));
	assert_false(image_url_is_http("http://"));
}

/* ---- fetch ---- */

static void test_fetch_sha256_reuse(void **state)
{
	struct env *e = *state;
	_cleanup_free_ char *url = http_url("/files/disk.img");
	_cleanup_free_ char *spec = xasprintf("sha256:%s", disk_sha256);
	int before = requests(&http_fx, "/files/disk.img", NULL, 0);
	struct prog_rec pr = {0};
	struct image_progress prog = {.fn = prog_cb, .userdata = &pr, .cancel = &pr.cancel};
	struct hutch_error err = {0};
	_cleanup_free_ char *path = NULL;
	assert_int_equal(image_fetch(&e->st, url, spec, IMAGE_FETCH_REFRESH, &prog, &path, &err), 0);
	assert_null(err.msg);
	/* Overlays are built on the by-digest name, a hard link to the image. */
	_cleanup_free_ char *want_rel = xasprintf("by-digest/sha256-%s", disk_sha256);
	_cleanup_free_ char *want_path = cache_file(e, url, want_rel);
	_cleanup_free_ char *image = cache_file(e, url, "image");
	assert_string_equal(path, want_path);
	assert_file_is_disk(path, DISK_LEN);
	struct stat a, b;
	assert_int_equal(stat(path, &a), 0);
	assert_int_equal(stat(image, &b), 0);
	assert_int_equal(a.st_ino, b.st_ino);
	assert_true(pr.finished);
	assert_int_equal(pr.done, DISK_LEN);
	assert_int_equal(pr.total, DISK_LEN);
	_cleanup_free_ char *dg = cache_file(e, url, "digest"), *uf = cache_file(e, url, "url");
	_cleanup_free_ char *part = cache_file(e, url, "image.part");
	char *buf = NULL;
	size_t len = 0;
	assert_int_equal(read_file(dg, 4096, &buf, &len, NULL), 0);
	_cleanup_free_ char *want_dg = xasprintf("sha256:%s\n", disk_sha256);
	assert_string_equal(buf, want_dg);
	free(buf);
	assert_int_equal(read_file(uf, 4096, &buf, &len, NULL), 0);
	_cleanup_free_ char *want_url = xasprintf("%s\n", url);
	assert_string_equal(buf, want_url);
	free(buf);
	assert_false(exists(part));
	assert_int_equal(requests(&http_fx, "/files/disk.img", NULL, 0), before + 1);

	/* Second fetch: the recorded digest matches, so no request at all. */
	_cleanup_free_ char *path2 = NULL;
	assert_int_equal(fetch(e, url, spec, &path2, &err), 0);
	assert_string_equal(path2, path);
	assert_int_equal(requests(&http_fx, "/files/disk.img", NULL, 0), before + 1);

	/* Another algorithm for the same image: the cached file is hashed again, not downloaded. */
	_cleanup_free_ char *spec512 = xasprintf("sha512:%s", disk_sha512);
	_cleanup_free_ char *path3 = NULL;
	assert_int_equal(fetch(e, url, spec512, &path3, &err), 0);
	assert_int_equal(requests(&http_fx, "/files/disk.img", NULL, 0), before + 1);
	assert_int_equal(read_file(dg, 4096, &buf, &len, NULL), 0);
	assert_non_null(strstr(buf, "sha512:"));
	free(buf);
}

static void test_fetch_sha512(void **state)
{
	struct env *e = *state;
	_cleanup_free_ char *url = http_url("/files/disk.img");
	_cleanup_free_ char *spec = xasprintf("sha512:%s", disk_sha512);
	struct hutch_error err = {0};
	_cleanup_free_ char *path = NULL;
	assert_int_equal(fetch(e, url, spec, &path, &err), 0);
	assert_file_is_disk(path, DISK_LEN);
	_cleanup_free_ char *dg = cache_file(e, url, "digest");
	char *buf = NULL;
	size_t len = 0;
	assert_int_equal(read_file(dg, 4096, &buf, &len, NULL), 0);
	assert_true(!strncmp(buf, "sha512:", 7));
	free(buf);
}

static void test_fetch_sums_url(void **state)
{
	struct env *e = *state;
	_cleanup_free_ char *url = http_url("/files/disk.img");
	_cleanup_free_ char *gnu = http_url("/files/SHA256SUMS"), *bsd = http_url("/files/CHECKSUM");
	_cleanup_free_ char *spec = xasprintf("sha256:%s", gnu), *spec512 = xasprintf("sha512:%s", bsd);
	struct hutch_error err = {0};
	_cleanup_free_ char *path = NULL, *path2 = NULL;
	int img = requests(&http_fx, "/files/disk.img", NULL, 0);
	int sumsn = requests(&http_fx, "/files/SHA256SUMS", NULL, 0);
	assert_int_equal(fetch(e, url, spec, &path, &err), 0);
	assert_file_is_disk(path, DISK_LEN);
	assert_int_equal(requests(&http_fx, "/files/disk.img", NULL, 0), img + 1);
	/* Again: the sums file is read (it may have changed), the image is not. */
	assert_int_equal(fetch(e, url, spec, &path2, &err), 0);
	assert_int_equal(requests(&http_fx, "/files/SHA256SUMS", NULL, 0), sumsn + 2);
	assert_int_equal(requests(&http_fx, "/files/disk.img", NULL, 0), img + 1);
	/* Without IMAGE_FETCH_REFRESH (create): what the sums file resolved to last time, no request. */
	_cleanup_free_ char *path4 = NULL;
	assert_int_equal(image_fetch(&e->st, url, spec, 0, NULL, &path4, &err), 0);
	assert_string_equal(path4, path);
	assert_int_equal(requests(&http_fx, "/files/SHA256SUMS", NULL, 0), sumsn + 2);
	/* A sums URL never resolved for this image still asks upstream (here: nobody listens)... */
	_cleanup_free_ char *down = xasprintf("sha256:http://127.0.0.1:9/files/SHA256SUMS");
	_cleanup_free_ char *path5 = NULL;
	assert_true(image_fetch(&e->st, url, down, 0, NULL, &path5, &err) < 0);
	assert_non_null(strstr(err.msg, "127.0.0.1:9"));
	hutch_error_clear(&err);
	/* ...and so does a refresh (image pull, build, create --pull). */
	assert_int_equal(image_fetch(&e->st, url, spec, IMAGE_FETCH_REFRESH, NULL, &path5, &err), 0);
	assert_int_equal(requests(&http_fx, "/files/SHA256SUMS", NULL, 0), sumsn + 3);
	/* BSD format, sha512, from a PGP-signed file. */
	_cleanup_free_ char *path3 = NULL;
	assert_int_equal(fetch(e, url, spec512, &path3, &err), 0);
	assert_null(err.msg);
}

static void test_fetch_sums_missing_entry(void **state)
{
	struct env *e = *state;
	_cleanup_free_ char *url = http_url("/files/third.img");
	_cleanup_free_ char *sumsurl = http_url("/files/EMPTY-SUMS");
	_cleanup_free_ char *spec = xasprintf("sha256:%s", sumsurl);
	struct hutch_error err = {0};
	char *path = NULL;
	int before = requests(&http_fx, "/files/third.img", NULL, 0);
	assert_int_equal(fetch(e, url, spec, &path, &err), -ENOENT);
	_cleanup_free_ char *want = xasprintf("no entry for 'third.img' in %s", sumsurl);
	assert_string_equal(err.msg, want);
	hutch_error_clear(&err);
	assert_int_equal(requests(&http_fx, "/files/third.img", NULL, 0), before);
	assert_not_cached(e, url);
	/* A sums file that is not there. */
	_cleanup_free_ char *gone = http_url("/status/404/SUMS");
	_cleanup_free_ char *spec2 = xasprintf("sha256:%s", gone);
	assert_int_equal(fetch(e, url, spec2, &path, &err), -ENOENT);
	_cleanup_free_ char *want2 = xasprintf("HTTP 404 fetching '%s'", gone);
	assert_string_equal(err.msg, want2);
	hutch_error_clear(&err);
	assert_null(path);
	/* A sums file over 1 MiB is refused while it arrives. */
	struct strbuf big = STRBUF_INIT;
	while (big.len <= IMAGE_SUMS_MAX)
		strbuf_adds(&big, H64A "  filler.img\n");
	put_file(http_fx.root, "BIG-SUMS", big.buf, big.len);
	strbuf_release(&big);
	_cleanup_free_ char *bigurl = http_url("/files/BIG-SUMS");
	_cleanup_free_ char *spec3 = xasprintf("sha256:%s", bigurl);
	assert_int_equal(fetch(e, url, spec3, &path, &err), -EFBIG);
	_cleanup_free_ char *want3 = xasprintf("'%s' is larger than %d bytes", bigurl, IMAGE_SUMS_MAX);
	assert_string_equal(err.msg, want3);
	hutch_error_clear(&err);
	assert_null(path);
}

static void test_fetch_mismatch(void **state)
{
	struct env *e = *state;
	_cleanup_free_ char *url = http_url("/files/disk.img");
	struct hutch_error err = {0};
	char *path = NULL;
	assert_int_equal(fetch(e, url, "sha256:" H64A, &path, &err), -EBADMSG);
	_cleanup_free_ char *want =
		xasprintf("checksum mismatch for %s: expected sha256:" H64A ", got sha256:%s", url, disk_sha256);
	assert_string_equal(err.msg, want);
	hutch_error_clear(&err);
	assert_null(path);
	assert_not_cached(e, url);
	_cleanup_free_ char *part = cache_file(e, url, "image.part");
	assert_false(exists(part));
}

static void test_fetch_http_errors(void **state)
{
	struct env *e = *state;
	static const struct {
		const char *path;
		int code;
		long status;
	} cases[] = {{"/status/404/disk.img", ENOENT, 404},
		     {"/status/500/disk.img", EIO, 500},
		     {"/status/403/disk.img", EIO, 403}};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		_cleanup_free_ char *url = http_url(cases[i].path);
		_cleanup_free_ char *spec = xasprintf("sha256:%s", disk_sha256);
		struct hutch_error err = {0};
		char *path = NULL;
		assert_int_equal(fetch(e, url, spec, &path, &err), -cases[i].code);
		_cleanup_free_ char *want = xasprintf("HTTP %ld fetching '%s'", cases[i].status, url);
		assert_string_equal(err.msg, want);
		hutch_error_clear(&err);
		assert_not_cached(e, url);
	}
}

static void test_fetch_redirects(void **state)
{
	struct env *e = *state;
	_cleanup_free_ char *spec = xasprintf("sha256:%s", disk_sha256);
	struct hutch_error err = {0};
	char *path = NULL;
	_cleanup_free_ char *url = http_url("/redirect?to=file:///etc/passwd");
	assert_int_equal(fetch(e, url, spec, &path, &err), -EPERM);
	_cleanup_free_ char *want =
		xasprintf("refusing redirect from '%s' to 'file:///etc/passwd': only http and https are "
			  "allowed",
			  url);
	assert_string_equal(err.msg, want);
	hutch_error_clear(&err);
	assert_not_cached(e, url);

	/* http -> http is followed. */
	_cleanup_free_ char *target = http_url("/files/disk.img");
	_cleanup_free_ char *hop = xasprintf("/redirect?to=%s", target);
	_cleanup_free_ char *url2 = http_url(hop);
	_cleanup_free_ char *ok = NULL;
	assert_int_equal(fetch(e, url2, spec, &ok, &err), 0);
	assert_file_is_disk(ok, DISK_LEN);

	/* A redirect loop ends. */
	_cleanup_free_ char *self = http_url("/loop");
	assert_int_equal(fetch(e, self, spec, &path, &err), -ELOOP);
	_cleanup_free_ char *want_loop = xasprintf("more than 5 redirects fetching '%s'", self);
	assert_string_equal(err.msg, want_loop);
	hutch_error_clear(&err);
	assert_null(path);
}

static void test_fetch_cut_resume(void **state)
{
	struct env *e = *state;
	_cleanup_free_ char *url = http_url("/cut/100000/disk.img");
	_cleanup_free_ char *spec = xasprintf("sha256:%s", disk_sha256);
	struct hutch_error err = {0};
	char *path = NULL;
	assert_int_equal(fetch(e, url, spec, &path, &err), -ECONNRESET);
	assert_non_null(strstr(err.msg, "connection lost fetching"));
	assert_non_null(strstr(err.msg, "is kept to resume"));
	hutch_error_clear(&err);
	assert_not_cached(e, url);
	_cleanup_free_ char *part = cache_file(e, url, "image.part");
	off_t kept = file_size(part);
	assert_true(kept > 0 && kept <= 100000);

	struct prog_rec pr = {0};
	struct image_progress prog = {.fn = prog_cb, .userdata = &pr};
	assert_int_equal(image_fetch(&e->st, url, spec, IMAGE_FETCH_REFRESH, &prog, &path, &err), 0);
	assert_file_is_disk(path, DISK_LEN);
	free(path);
	char range[64];
	assert_int_equal(requests(&http_fx, "/cut/100000/disk.img", range, sizeof(range)), 2);
	char want[64];
	snprintf(want, sizeof(want), "bytes=%lld-", (long long)kept);
	assert_string_equal(range, want);
	assert_int_equal(pr.resumed, kept);
	assert_int_equal(pr.done, DISK_LEN);
	assert_false(exists(part));
}

static void put_part(const struct env *e, const char *url, const void *data, size_t len)
{
	_cleanup_free_ char *dir = image_cache_dir(&e->st, url);
	assert_int_equal(mkdir_p(dir, 0700), 0);
	put_file(dir, "image.part", data, len);
	_cleanup_free_ char *u = xasprintf("%s\n", url);
	put_str(dir, "url", u);
}

static void test_fetch_server_ignores_range(void **state)
{
	struct env *e = *state;
	_cleanup_free_ char *url = http_url("/norange/disk.img");
	_cleanup_free_ char *spec = xasprintf("sha256:%s", disk_sha256);
	char junk[1000];
	memset(junk, 'x', sizeof(junk));
	put_part(e, url, junk, sizeof(junk));
	struct hutch_error err = {0};
	_cleanup_free_ char *path = NULL;
	int before = requests(&http_fx, "/norange/disk.img", NULL, 0);
	assert_int_equal(fetch(e, url, spec, &path, &err), 0);
	assert_file_is_disk(path, DISK_LEN);
	char range[64];
	assert_int_equal(requests(&http_fx, "/norange/disk.img", range, sizeof(range)), before + 1);
	assert_string_equal(range, "bytes=1000-");
}

static void test_fetch_stale_part_restarts(void **state)
{
	struct env *e = *state;
	_cleanup_free_ char *url = http_url("/files/other.img");
	char sha[65];
	digest_hex(EVP_sha256(), disk_data, DISK_LEN / 2, sha);
	_cleanup_free_ char *spec = xasprintf("sha256:%s", sha);
	/* Bytes from another version of the file: the resumed result mismatches, so start over once. */
	char junk[1000];
	memset(junk, 'x', sizeof(junk));
	put_part(e, url, junk, sizeof(junk));
	struct hutch_error err = {0};
	_cleanup_free_ char *path = NULL;
	int before = requests(&http_fx, "/files/other.img", NULL, 0);
	assert_int_equal(fetch(e, url, spec, &path, &err), 0);
	assert_file_is_disk(path, DISK_LEN / 2);
	char range[64];
	assert_int_equal(requests(&http_fx, "/files/other.img", range, sizeof(range)), before + 2);
	assert_string_equal(range, "-");
}

static void test_fetch_complete_part(void **state)
{
	struct env *e = *state;
	_cleanup_free_ char *url = http_url("/files/disk.img");
	_cleanup_free_ char *spec = xasprintf("sha256:%s", disk_sha256);
	/* Interrupted after the last byte but before the rename: the server answers 416. */
	put_part(e, url, disk_data, DISK_LEN);
	struct hutch_error err = {0};
	_cleanup_free_ char *path = NULL;
	int before = requests(&http_fx, "/files/disk.img", NULL, 0);
	assert_int_equal(fetch(e, url, spec, &path, &err), 0);
	assert_file_is_disk(path, DISK_LEN);
	char range[64];
	assert_int_equal(requests(&http_fx, "/files/disk.img", range, sizeof(range)), before + 1);
	char want[64];
	snprintf(want, sizeof(want), "bytes=%d-", DISK_LEN);
	assert_string_equal(range, want);
}

static void test_fetch_stall(void **state)
{
	struct env *e = *state;
	setenv("HUTCH_STALL_SECONDS", "1", 1);
	_cleanup_free_ char *url = http_url("/stall/1000/disk.img");
	_cleanup_free_ char *spec = xasprintf("sha256:%s", disk_sha256);
	struct hutch_error err = {0};
	char *path = NULL;
	assert_int_equal(fetch(e, url, spec, &path, &err), -ETIMEDOUT);
	_cleanup_free_ char *want = xasprintf("download of '%s' stalled: under 1 KiB/s for 1 s", url);
	assert_true(!strncmp(err.msg, want, strlen(want)));
	hutch_error_clear(&err);
	assert_not_cached(e, url);
	_cleanup_free_ char *part = cache_file(e, url, "image.part");
	assert_int_equal(file_size(part), 1000);
}

static void test_fetch_interrupted(void **state)
{
	struct env *e = *state;
	_cleanup_free_ char *url = http_url("/stall/7000/disk.img");
	_cleanup_free_ char *spec = xasprintf("sha256:%s", disk_sha256);
	/* What the CLI's SIGINT handler does: set the cancel flag. */
	struct prog_rec pr = {.cancel_on_data = true};
	struct image_progress prog = {.fn = prog_cb, .userdata = &pr, .cancel = &pr.cancel};
	struct hutch_error err = {0};
	char *path = NULL;
	assert_int_equal(image_fetch(&e->st, url, spec, IMAGE_FETCH_REFRESH, &prog, &path, &err), -EINTR);
	assert_non_null(strstr(err.msg, "interrupted"));
	hutch_error_clear(&err);
	assert_not_cached(e, url);
	_cleanup_free_ char *part = cache_file(e, url, "image.part");
	assert_int_equal(file_size(part), 7000);
}

static void test_fetch_enospc(void **state)
{
	struct env *e = *state;
	_cleanup_free_ char *url = http_url("/files/disk.img");
	_cleanup_free_ char *spec = xasprintf("sha256:%s", disk_sha256);
	struct hutch_error err = {0};
	char *path = NULL;
	enospc_at = 100000;
	assert_int_equal(fetch(e, url, spec, &path, &err), -ENOSPC);
	enospc_at = -1;
	_cleanup_free_ char *part = cache_file(e, url, "image.part");
	assert_true(!strncmp(err.msg, "no space left on device writing '", 33));
	assert_non_null(strstr(err.msg, part));
	hutch_error_clear(&err);
	assert_not_cached(e, url);
	off_t kept = file_size(part);
	assert_true(kept >= 0 && kept <= 100000);
	/* Space is back: the rerun resumes. */
	assert_int_equal(fetch(e, url, spec, &path, &err), 0);
	assert_file_is_disk(path, DISK_LEN);
	free(path);
	if (kept > 0) {
		char range[64], want[64];
		requests(&http_fx, "/files/disk.img", range, sizeof(range));
		snprintf(want, sizeof(want), "bytes=%lld-", (long long)kept);
		assert_string_equal(range, want);
	}
}

static void test_fetch_bad_input(void **state)
{
	struct env *e = *state;
	struct hutch_error err = {0};
	char *path = NULL;
	_cleanup_free_ char *spec = xasprintf("sha256:%s", disk_sha256);
	assert_int_equal(fetch(e, "file:///etc/passwd", spec, &path, &err), -EINVAL);
	assert_string_equal(err.msg, "image URL 'file:///etc/passwd' must be http or https");
	hutch_error_clear(&err);
	_cleanup_free_ char *url = http_url("/files/disk.img");
	assert_int_equal(fetch(e, url, NULL, &path, &err), -EINVAL);
	assert_true(!strncmp(err.msg, "no checksum for '", 17));
	hutch_error_clear(&err);
	assert_int_equal(fetch(e, url, "sha256:12", &path, &err), -EINVAL);
	hutch_error_clear(&err);
	assert_null(path);
	assert_not_cached(e, url);
}

static bool have_prog(const char *name)
{
	_cleanup_free_ char *cmd = xasprintf("command -v %s >/dev/null 2>&1", name);
	return system(cmd) == 0;
}

static void test_https_no_downgrade(void **state)
{
	struct env *e = *state;
	if (!have_prog("openssl")) {
		skip();
		return;
	}
	_cleanup_free_ char *dir = xstrdup("/tmp/hutch-test-image-tls.XXXXXX");
	assert_non_null(mkdtemp(dir));
	_cleanup_free_ char *cert = xasprintf("%s/cert.pem", dir), *key = xasprintf("%s/key.pem", dir);
	_cleanup_free_ char *cmd = xasprintf(
		"openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=127.0.0.1 "
		"-addext subjectAltName=IP:127.0.0.1 -keyout %s -out %s >/dev/null 2>&1",
		key, cert);
	assert_int_equal(system(cmd), 0);
	struct fixture tls = {0};
	assert_int_equal(fixture_start(&tls, cert, key), 0);
	put_file(tls.root, "disk.img", disk_data, DISK_LEN);
	setenv("HUTCH_CA_BUNDLE", cert, 1);
	_cleanup_free_ char *spec = xasprintf("sha256:%s", disk_sha256);
	struct hutch_error err = {0};

	/* TLS itself works on loopback with the test CA. */
	_cleanup_free_ char *url = url_of(&tls, "https", "/files/disk.img");
	_cleanup_free_ char *path = NULL;
	assert_int_equal(fetch(e, url, spec, &path, &err), 0);
	assert_file_is_disk(path, DISK_LEN);

	/* https -> http is refused before any plain-http request is made. */
	_cleanup_free_ char *plain = http_url("/files/down.img");
	_cleanup_free_ char *hop = xasprintf("/redirect?to=%s", plain);
	_cleanup_free_ char *url2 = url_of(&tls, "https", hop);
	char *p2 = NULL;
	int before = requests(&http_fx, "/files/down.img", NULL, 0);
	assert_int_equal(fetch(e, url2, spec, &p2, &err), -EPERM);
	_cleanup_free_ char *want = xasprintf("refusing redirect from '%s' to '%s': an https download never falls back "
					      "to http",
					      url2, plain);
	assert_string_equal(err.msg, want);
	hutch_error_clear(&err);
	assert_int_equal(requests(&http_fx, "/files/down.img", NULL, 0), before);
	assert_not_cached(e, url2);

	/* And a sums file over https cannot be downgraded either. */
	_cleanup_free_ char *sums_hop = xasprintf("/redirect?to=%s", plain);
	_cleanup_free_ char *sums_url = url_of(&tls, "https", sums_hop);
	_cleanup_free_ char *spec2 = xasprintf("sha256:%s", sums_url);
	_cleanup_free_ char *url3 = url_of(&tls, "https", "/files/disk.img?again");
	assert_int_equal(fetch(e, url3, spec2, &p2, &err), -EPERM);
	hutch_error_clear(&err);

	/* Without the test CA, the certificate is not trusted. */
	unsetenv("HUTCH_CA_BUNDLE");
	_cleanup_free_ char *url4 = url_of(&tls, "https", "/files/disk.img?untrusted");
	assert_int_equal(fetch(e, url4, spec, &p2, &err), -EACCES);
	hutch_error_clear(&err);
	fixture_stop(&tls);
	rm_rf(dir);
}

/* ---- ls, rm, prune ---- */

static void write_vm_spec(const struct env *e, const char *name, const char *yaml)
{
	_cleanup_free_ char *dir = store_vm_dir(&e->st, name);
	assert_int_equal(mkdir_p(dir, 0700), 0);
	put_str(dir, "spec.yml", yaml);
}

static void test_list_remove_prune(void **state)
{
	struct env *e = *state;
	struct hutch_error err = {0};
	_cleanup_free_ char *a = http_url("/files/disk.img"), *b = http_url("/files/disk.img?b"),
			    *c = http_url("/files/disk.img?c"), *d = http_url("/files/disk.img?d");
	_cleanup_free_ char *spec = xasprintf("sha256:%s", disk_sha256);
	_cleanup_free_ char *pa = NULL, *pb = NULL, *pc = NULL;
	assert_int_equal(fetch(e, a, spec, &pa, &err), 0);
	assert_int_equal(fetch(e, b, spec, &pb, &err), 0);
	assert_int_equal(fetch(e, c, spec, &pc, &err), 0);
	put_part(e, d, disk_data, 1234);

	/* a is named by a VM's spec; b is the base of a disk that `destroy` kept (no spec left). */
	_cleanup_free_ char *yaml = xasprintf("web:\n  source: {image: %s, checksum: \"%s\"}\n", a, spec);
	write_vm_spec(e, "web", yaml);
	_cleanup_free_ char *dbdir = store_vm_dir(&e->st, "db");
	assert_int_equal(mkdir_p(dbdir, 0700), 0);
	_cleanup_free_ char *disk = store_vm_file(&e->st, "db", "disk.qcow2");
	assert_int_equal(image_make_overlay(pb, disk, 0, &err), 0);

	struct image_entry *v = NULL;
	size_t n = 0;
	assert_int_equal(image_list(&e->st, &v, &n, &err), 0);
	assert_int_equal(n, 4);
	for (size_t i = 0; i + 1 < n; i++)
		assert_true(strcmp(v[i].url, v[i + 1].url) < 0);
	for (size_t i = 0; i < n; i++) {
		_cleanup_strv_ char **users = NULL;
		assert_int_equal(image_users(&e->st, &v[i], &users, &err), 0);
		if (!strcmp(v[i].url ? v[i].url : "", a))
			assert_true(strv_len(users) == 1 && !strcmp(users[0], "web"));
		else if (v[i].url && !strcmp(v[i].url, b))
			assert_true(strv_len(users) == 1 && !strcmp(users[0], "db (kept disk)"));
		else
			assert_int_equal(strv_len(users), 0);
		if (v[i].path) {
			assert_int_equal(v[i].size, DISK_LEN);
			assert_true(!strncmp(v[i].digest, "sha256:", 7));
		} else {
			assert_int_equal(v[i].part_size, 1234);
			assert_null(v[i].digest);
		}
	}
	image_entries_free(v, n);

	_cleanup_strv_ char **removed = NULL;
	assert_int_equal(image_prune(&e->st, &removed, &err), 0);
	assert_int_equal(strv_len(removed), 2);
	assert_true((!strcmp(removed[0], c) && !strcmp(removed[1], d)) ||
		    (!strcmp(removed[0], d) && !strcmp(removed[1], c)));
	assert_true(exists(pa));
	assert_true(exists(pb));
	assert_false(exists(pc));

	/* rm: refused while used, by URL or by id prefix; allowed with force. */
	assert_int_equal(image_remove(&e->st, a, false, NULL, &err), -EBUSY);
	assert_non_null(strstr(err.msg, "is used by 'web': remove it first (or use --force)"));
	hutch_error_clear(&err);
	char id[65];
	sha256_hex(a, strlen(a), id);
	id[12] = 0;
	_cleanup_free_ char *got = NULL;
	assert_int_equal(image_remove(&e->st, id, true, &got, &err), 0);
	sha256_hex(a, strlen(a), id);
	assert_string_equal(got, id);
	assert_false(exists(pa));
	assert_int_equal(image_remove(&e->st, a, true, NULL, &err), -ENOENT);
	hutch_error_clear(&err);
	assert_int_equal(image_remove(&e->st, "no-such-image", false, NULL, &err), -ENOENT);
	hutch_error_clear(&err);
	assert_int_equal(image_remove(&e->st, "debian-12", false, NULL, &err), -ENOENT);
	hutch_error_clear(&err);
}

/* ---- overlays ---- */

static int run(const char *fmt, ...) _printf_(1, 2);
static int run(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *cmd = NULL;
	assert_true(vasprintf(&cmd, fmt, ap) >= 0);
	va_end(ap);
	int r = system(cmd);
	free(cmd);
	return r;
}

static json_object *qemu_img_info(const char *path)
{
	_cleanup_free_ char *cmd = xasprintf("qemu-img info --output=json -U %s", path);
	FILE *f = popen(cmd, "r");
	assert_non_null(f);
	struct strbuf sb = STRBUF_INIT;
	char buf[4096];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		strbuf_add(&sb, buf, n);
	assert_int_equal(pclose(f), 0);
	json_object *o = json_tokener_parse(strbuf_str(&sb));
	strbuf_release(&sb);
	assert_non_null(o);
	return o;
}

static const char *jstr(json_object *o, const char *key)
{
	json_object *v = NULL;
	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

static int64_t jint(json_object *o, const char *key)
{
	json_object *v = NULL;
	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : -1;
}

static char *tmpdir(void)
{
	char *d = xstrdup("/tmp/hutch-test-image-ov.XXXXXX");
	assert_non_null(mkdtemp(d));
	return d;
}

/* A "latest" URL whose file changes upstream: the new version replaces `image`, but a VM's overlay
 * keeps the exact base it was made on, and prune drops the old version only once no disk uses it. */
static void test_fetch_upstream_change(void **state)
{
	struct env *e = *state;
	struct hutch_error err = {0};
	_cleanup_free_ char *url = http_url("/files/latest.img");
	put_file(http_fx.root, "latest.img", disk_data, DISK_LEN);
	_cleanup_free_ char *spec1 = xasprintf("sha256:%s", disk_sha256);
	_cleanup_free_ char *v1 = NULL;
	assert_int_equal(fetch(e, url, spec1, &v1, &err), 0);
	_cleanup_free_ char *yaml = xasprintf("old:\n  source: {image: %s, checksum: \"%s\"}\n", url, spec1);
	write_vm_spec(e, "old", yaml);
	_cleanup_free_ char *disk = store_vm_file(&e->st, "old", "disk.qcow2");
	/* A stale or forged memo of the base's format is not believed... */
	char *slash = strrchr(v1, '/');
	_cleanup_free_ char *bydigest = xstrndup(v1, (size_t)(slash - v1));
	_cleanup_free_ char *memo_name = xasprintf(".%s.info", slash + 1);
	_cleanup_free_ char *memo = xasprintf("%s/%s", bydigest, memo_name);
	put_str(bydigest, memo_name, "qcow2 1 0 0 0 0.0\n");
	assert_int_equal(image_make_overlay(v1, disk, 0, &err), 0);
	json_object *info = qemu_img_info(disk);
	assert_string_equal(jstr(info, "backing-filename-format"), "raw");
	json_object_put(info);
	/* ...and the real probe is remembered beside the base, for the next create. */
	_cleanup_free_ char *memo_text = NULL;
	size_t memo_len = 0;
	assert_int_equal(read_file(memo, 4096, &memo_text, &memo_len, &err), 0);
	assert_true(!strncmp(memo_text, "raw ", 4));
	/* It is believed while the base's identity matches: a memo with a made-up size (and the right
	 * identity) is what the next overlay gets, which shows that qemu-img info did not run. */
	char *sp = strchr(memo_text, ' ');
	sp = sp ? strchr(sp + 1, ' ') : NULL;
	assert_non_null(sp);
	_cleanup_free_ char *lie = xasprintf("raw %u%s", 4 * DISK_LEN, sp);
	put_str(bydigest, memo_name, lie);
	_cleanup_free_ char *disk2 = xasprintf("%s.2", disk);
	assert_int_equal(image_make_overlay(v1, disk2, 0, &err), 0);
	info = qemu_img_info(disk2);
	assert_int_equal(jint(info, "virtual-size"), 4 * DISK_LEN);
	json_object_put(info);
	unlink(disk2);
	put_str(bydigest, memo_name, memo_text);

	/* Upstream publishes a new file under the same URL. */
	char *v2data = xmalloc(DISK_LEN);
	memcpy(v2data, disk_data, DISK_LEN);
	v2data[0] ^= 1;
	put_file(http_fx.root, "latest.img", v2data, DISK_LEN);
	char sha2[65];
	digest_hex(EVP_sha256(), v2data, DISK_LEN, sha2);
	free(v2data);
	_cleanup_free_ char *spec2 = xasprintf("sha256:%s", sha2);
	_cleanup_free_ char *v2 = NULL;
	assert_int_equal(fetch(e, url, spec2, &v2, &err), 0);
	assert_string_not_equal(v1, v2);
	assert_file_is_disk(v1, DISK_LEN); /* the old base is untouched */
	json_object *o = qemu_img_info(disk);
	assert_string_equal(jstr(o, "backing-filename"), v1);
	json_object_put(o);
	_cleanup_free_ char *image = cache_file(e, url, "image");
	struct stat a, b;
	assert_int_equal(stat(image, &a), 0);
	assert_int_equal(stat(v2, &b), 0);
	assert_int_equal(a.st_ino, b.st_ino);

	/* The old version pinned by its checksum is still served from the cache, without a request. */
	int before = requests(&http_fx, "/files/latest.img", NULL, 0);
	_cleanup_free_ char *again = NULL;
	assert_int_equal(fetch(e, url, spec1, &again, &err), 0);
	assert_string_equal(again, v1);
	assert_int_equal(requests(&http_fx, "/files/latest.img", NULL, 0), before);

	/* Prune keeps the old version while the overlay is based on it... */
	_cleanup_strv_ char **removed = NULL;
	assert_int_equal(image_prune(&e->st, &removed, &err), 0);
	assert_int_equal(strv_len(removed), 0);
	assert_true(exists(v1));
	/* ...and drops it once no disk is. */
	unlink(disk);
	strv_free(removed);
	removed = NULL;
	assert_int_equal(image_prune(&e->st, &removed, &err), 0);
	assert_int_equal(strv_len(removed), 0);
	assert_false(exists(v1));
	assert_false(exists(memo)); /* with its memo */
	assert_true(exists(v2));
}

static void test_overlay(void **state UNUSED)
{
	_cleanup_free_ char *d = tmpdir();
	struct hutch_error err = {0};
	static const char *const fmts[] = {"raw", "qcow2"};
	for (size_t i = 0; i < ARRAY_SIZE(fmts); i++) {
		_cleanup_free_ char *base = xasprintf("%s/base.%s", d, fmts[i]);
		_cleanup_free_ char *ov = xasprintf("%s/ov-%s.qcow2", d, fmts[i]);
		assert_int_equal(run("qemu-img create -q -f %s %s 16M", fmts[i], base), 0);
		/* A path with "./" and "//" still ends up as the canonical absolute backing path. */
		_cleanup_free_ char *messy = xasprintf("%s/.//base.%s", d, fmts[i]);
		assert_int_equal(image_make_overlay(messy, ov, 64 << 20, &err), 0);
		assert_null(err.msg);
		json_object *o = qemu_img_info(ov);
		assert_string_equal(jstr(o, "format"), "qcow2");
		assert_int_equal(jint(o, "virtual-size"), 64 << 20);
		assert_string_equal(jstr(o, "backing-filename"), base);
		assert_string_equal(jstr(o, "backing-filename-format"), fmts[i]);
		json_object_put(o);
		/* Size 0 keeps the base's size. */
		_cleanup_free_ char *ov0 = xasprintf("%s/ov0-%s.qcow2", d, fmts[i]);
		assert_int_equal(image_make_overlay(base, ov0, 0, &err), 0);
		o = qemu_img_info(ov0);
		assert_int_equal(jint(o, "virtual-size"), 16 << 20);
		json_object_put(o);
		/* An existing disk is never replaced. */
		assert_int_equal(image_make_overlay(base, ov, 64 << 20, &err), -EEXIST);
		assert_non_null(strstr(err.msg, "already exists"));
		hutch_error_clear(&err);
	}
	_cleanup_free_ char *base = xasprintf("%s/base.raw", d), *small = xasprintf("%s/small.qcow2", d);
	assert_int_equal(image_make_overlay(base, small, 1 << 20, &err), -EINVAL);
	assert_string_equal(err.msg, "disk size 1M is smaller than the image's 16M");
	hutch_error_clear(&err);
	assert_false(exists(small));
	/* An image with a backing file of its own is not a base. */
	_cleanup_free_ char *ov = xasprintf("%s/ov-raw.qcow2", d), *chain = xasprintf("%s/chain.qcow2", d);
	assert_int_equal(image_make_overlay(ov, chain, 0, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "has a backing file of its own"));
	hutch_error_clear(&err);
	_cleanup_free_ char *missing = xasprintf("%s/nope.raw", d);
	assert_int_equal(image_make_overlay(missing, chain, 0, &err), -ENOENT);
	hutch_error_clear(&err);
	/* No temporary files are left behind. */
	_cleanup_free_ char *cmd = xasprintf("ls %s | grep -q tmp", d);
	assert_int_not_equal(run("%s", cmd), 0);
	rm_rf(d);
}

/* The first overlay of a cached base at some size is kept as a blank; later ones are copies of it,
 * made without qemu-img, and the same as what qemu-img makes. */
static void test_overlay_blank_copies(void **state)
{
	struct env *e = *state;
	struct hutch_error err = {0};
	_cleanup_free_ char *url = http_url("/files/disk.img");
	_cleanup_free_ char *spec = xasprintf("sha256:%s", disk_sha256);
	_cleanup_free_ char *base = NULL;
	assert_int_equal(fetch(e, url, spec, &base, &err), 0);
	_cleanup_free_ char *d = tmpdir();
	_cleanup_free_ char *a = xasprintf("%s/a.qcow2", d), *b = xasprintf("%s/b.qcow2", d),
			    *c = xasprintf("%s/c.qcow2", d);
	assert_int_equal(image_make_overlay(base, a, 1 << 20, &err), 0);
	char *slash = strrchr(base, '/');
	_cleanup_free_ char *glob_cmd =
		xasprintf("ls %.*s/.%s.blank-1048576-*.qcow2 >/dev/null", (int)(slash - base), base, slash + 1);
	assert_int_equal(run("%s", glob_cmd), 0);

	/* No qemu-img on PATH: the copy still works, so it did not run. */
	setenv("PATH", d, 1);
	int rb = image_make_overlay(base, b, 1 << 20, &err);
	int rc = image_make_overlay(base, c, 2 << 20, &err); /* no blank of that size yet */
	setenv("PATH", saved_env[ARRAY_SIZE(env_names) - 1] ? saved_env[ARRAY_SIZE(env_names) - 1] : "/usr/bin:/bin",
	       1);
	assert_int_equal(rb, 0);
	assert_int_equal(rc, -ENOENT);
	hutch_error_clear(&err);
	assert_int_equal(run("cmp -s %s %s", a, b), 0);
	json_object *o = qemu_img_info(b);
	assert_string_equal(jstr(o, "backing-filename"), base);
	assert_string_equal(jstr(o, "backing-filename-format"), "raw");
	assert_int_equal(jint(o, "virtual-size"), 1 << 20);
	json_object_put(o);
	assert_int_equal(run("qemu-img check -q %s", b), 0);
	/* An existing disk is still never replaced. */
	assert_int_equal(image_make_overlay(base, b, 1 << 20, &err), -EEXIST);
	hutch_error_clear(&err);
	rm_rf(d);
}

static void test_overlay_no_qemu_img(void **state UNUSED)
{
	_cleanup_free_ char *d = tmpdir();
	_cleanup_free_ char *base = xasprintf("%s/base.raw", d), *ov = xasprintf("%s/ov.qcow2", d);
	assert_int_equal(run("qemu-img create -q -f raw %s 1M", base), 0);
	setenv("PATH", d, 1);
	struct hutch_error err = {0};
	int r = image_make_overlay(base, ov, 0, &err);
	setenv("PATH", saved_env[ARRAY_SIZE(env_names) - 1] ? saved_env[ARRAY_SIZE(env_names) - 1] : "/usr/bin:/bin",
	       1);
	assert_int_equal(r, -ENOENT);
	assert_string_equal(err.msg, "qemu-img not found: install the Debian package qemu-utils");
	hutch_error_clear(&err);
	rm_rf(d);
}

/* A real QEMU (paused, TCG) holding DISK; daemonized so it returns once the disk is open, and
 * reparented to us (the test makes itself a subreaper) so it can be reaped. */
static pid_t qemu_hold(const char *dir, const char *disk, const char *fmt)
{
	_cleanup_free_ char *pidfile = xasprintf("%s/qemu.pid", dir);
	unlink(pidfile);
	if (run("qemu-system-x86_64 -machine q35,accel=tcg -S -display none -nodefaults -monitor none -serial none "
		"-drive file=%s,format=%s,if=virtio -daemonize -pidfile %s >/dev/null 2>&1",
		disk, fmt, pidfile) != 0)
		return -1;
	char *buf = NULL;
	size_t len = 0;
	if (read_file(pidfile, 64, &buf, &len, NULL) < 0)
		return -1;
	pid_t pid = atoi(buf);
	free(buf);
	return pid;
}

static void qemu_release(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGKILL);
	/* We are its subreaper: waitpid returns once every thread is gone, and with them its locks. */
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

static void test_overlay_in_use(void **state)
{
	struct env *e = *state;
	if (!have_prog("qemu-system-x86_64")) {
		skip();
		return;
	}
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	_cleanup_free_ char *d = tmpdir();
	struct hutch_error err = {0};
	_cleanup_free_ char *base = xasprintf("%s/base.raw", d), *ov = xasprintf("%s/ov.qcow2", d);
	_cleanup_free_ char *ov2 = xasprintf("%s/ov2.qcow2", d);
	assert_int_equal(run("qemu-img create -q -f raw %s 16M", base), 0);

	/* A VM writing the base itself: no overlay on it. */
	pid_t pid = qemu_hold(d, base, "raw");
	assert_true(pid > 0);
	int r = image_make_overlay(base, ov, 0, &err);
	qemu_release(pid);
	assert_int_equal(r, -EBUSY);
	_cleanup_free_ char *want = xasprintf("base image '%s' is in use by another process that writes to it", base);
	assert_string_equal(err.msg, want);
	hutch_error_clear(&err);
	assert_false(exists(ov));

	/* A VM running on an overlay: the base is shared read-only, so more overlays are fine; the
	 * overlay itself is in use. */
	assert_int_equal(image_make_overlay(base, ov, 0, &err), 0);
	pid = qemu_hold(d, ov, "qcow2");
	assert_true(pid > 0);
	int r2 = image_make_overlay(base, ov2, 0, &err);
	hutch_error_clear(&err);
	int r3 = image_make_overlay(base, ov, 0, &err);
	qemu_release(pid);
	assert_int_equal(r2, 0);
	assert_int_equal(r3, -EBUSY);
	_cleanup_free_ char *want3 = xasprintf("disk '%s' is in use by another process", ov);
	assert_string_equal(err.msg, want3);
	hutch_error_clear(&err);

	/* A cached image a running VM reads is never removed, not even with force. */
	_cleanup_free_ char *url = http_url("/files/disk.img?inuse");
	_cleanup_free_ char *spec = xasprintf("sha256:%s", disk_sha256);
	_cleanup_free_ char *img = NULL;
	assert_int_equal(fetch(e, url, spec, &img, &err), 0);
	_cleanup_free_ char *ov3 = xasprintf("%s/ov3.qcow2", d);
	assert_int_equal(image_make_overlay(img, ov3, 16 << 20, &err), 0);
	pid = qemu_hold(d, ov3, "qcow2");
	assert_true(pid > 0);
	r = image_remove(&e->st, url, true, NULL, &err);
	qemu_release(pid);
	assert_int_equal(r, -EBUSY);
	assert_non_null(strstr(err.msg, "is in use by a running VM"));
	hutch_error_clear(&err);
	assert_true(exists(img));
	rm_rf(d);
	prctl(PR_SET_CHILD_SUBREAPER, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sums_gnu),
		cmocka_unit_test(test_sums_bsd),
		cmocka_unit_test(test_sums_missing_entry),
		cmocka_unit_test(test_sums_malformed_hex),
		cmocka_unit_test(test_sums_crlf_and_edges),
		cmocka_unit_test(test_sums_huge),
		cmocka_unit_test(test_checksum_spec),
		cmocka_unit_test(test_url_filename),
		cmocka_unit_test(test_catalog),
		cmocka_unit_test(test_redirect_protocols),
		cmocka_unit_test_setup_teardown(test_fetch_sha256_reuse, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_fetch_sha512, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_fetch_sums_url, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_fetch_sums_missing_entry, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_fetch_mismatch, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_fetch_http_errors, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_fetch_redirects, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_fetch_cut_resume, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_fetch_server_ignores_range, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_fetch_stale_part_restarts, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_fetch_complete_part, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_fetch_stall, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_fetch_interrupted, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_fetch_enospc, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_fetch_bad_input, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_https_no_downgrade, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_list_remove_prune, env_setup, env_teardown),
		cmocka_unit_test(test_overlay),
		cmocka_unit_test_setup_teardown(test_fetch_upstream_change, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_overlay_blank_copies, env_setup, env_teardown),
		cmocka_unit_test(test_overlay_no_qemu_img),
		cmocka_unit_test_setup_teardown(test_overlay_in_use, env_setup, env_teardown),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
