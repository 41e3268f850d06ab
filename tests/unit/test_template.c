#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "template.h"

#define REL "6.1.0-99-test"

static char *tmpdir(void)
{
	char *d = xstrdup("/tmp/hutch-test-template.XXXXXX");
	assert_non_null(mkdtemp(d));
	return d;
}

static void put(const char *dir, const char *rel, const char *content)
{
	_cleanup_free_ char *p = xasprintf("%s/%s", dir, rel);
	_cleanup_free_ char *parent = xstrdup(p);
	*strrchr(parent, '/') = 0;
	assert_int_equal(mkdir_p(parent, 0755), 0);
	assert_int_equal(write_file_atomic(p, content, strlen(content), 0755, NULL), 0);
}

/* A .ko.xz written with libarchive; false when this libarchive cannot write xz. */
static bool put_xz(const char *dir, const char *rel, const char *content)
{
	_cleanup_free_ char *p = xasprintf("%s/%s", dir, rel);
	_cleanup_free_ char *parent = xstrdup(p);
	*strrchr(parent, '/') = 0;
	assert_int_equal(mkdir_p(parent, 0755), 0);
	struct archive *a = archive_write_new();
	bool ok = archive_write_set_format_raw(a) == ARCHIVE_OK && archive_write_add_filter_xz(a) == ARCHIVE_OK &&
		  archive_write_open_filename(a, p) == ARCHIVE_OK;
	if (ok) {
		struct archive_entry *e = archive_entry_new();
		archive_entry_set_pathname(e, "data");
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_size(e, (la_int64_t)strlen(content));
		ok = archive_write_header(a, e) == ARCHIVE_OK &&
		     archive_write_data(a, content, strlen(content)) == (la_ssize_t)strlen(content);
		archive_entry_free(e);
		ok = archive_write_close(a) == ARCHIVE_OK && ok;
	}
	archive_write_free(a);
	return ok;
}

static const char modules_dep[] =
	"kernel/drivers/virtio/virtio_ring.ko:\n"
	"kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko\n"
	"kernel/drivers/virtio/virtio_mmio.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko\n"
	"kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko\n"
	"kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko "
	"kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko\n"
	"kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko\n"
	"kernel/net/core/failover.ko:\n"
	"kernel/drivers/misc/dash-mod.ko.zst:\n"
	"kernel/drivers/misc/loop_a.ko: kernel/drivers/misc/loop_b.ko\n"
	"kernel/drivers/misc/loop_b.ko: kernel/drivers/misc/loop_a.ko\n";

static void test_resolve_order(void **state)
{
	(void)state;
	_cleanup_free_ char *d = tmpdir();
	put(d, "modules.dep", modules_dep);
	put(d, "modules.builtin", "kernel/drivers/virtio/virtio_pci.ko\nkernel/fs/ext4/ext4.ko\n");
	const char *names[] = {"virtio_mmio", "virtio_blk", "virtio-net", "virtio_pci", "dash_mod", "virtio", NULL};
	_cleanup_strv_ char **paths = NULL;
	struct hutch_error err = {0};
	assert_int_equal(template_resolve_modules(d, names, &paths, &err), 0);
	const char *want[] = {
		"kernel/drivers/virtio/virtio_ring.ko", "kernel/drivers/virtio/virtio.ko",
		"kernel/drivers/virtio/virtio_mmio.ko", "kernel/drivers/block/virtio_blk.ko",
		"kernel/net/core/failover.ko",		"kernel/drivers/net/net_failover.ko",
		"kernel/drivers/net/virtio_net.ko",	"kernel/drivers/misc/dash-mod.ko.zst",
	};
	assert_int_equal(strv_len(paths), ARRAY_SIZE(want));
	for (size_t i = 0; i < ARRAY_SIZE(want); i++)
		assert_string_equal(paths[i], want[i]);
	rm_rf(d);
}

static void test_resolve_errors(void **state)
{
	(void)state;
	_cleanup_free_ char *d = tmpdir();
	put(d, "modules.dep", modules_dep);
	struct hutch_error err = {0};
	char **paths = NULL;
	const char *unknown[] = {"virtio", "no_such_mod", NULL};
	assert_int_equal(template_resolve_modules(d, unknown, &paths, &err), -ENOENT);
	assert_null(paths);
	assert_non_null(strstr(err.msg, "unknown module 'no_such_mod'"));
	const char *loop[] = {"loop_a", NULL};
	assert_int_equal(template_resolve_modules(d, loop, &paths, &err), -ELOOP);
	assert_non_null(strstr(err.msg, "loop_"));
	hutch_error_clear(&err);
	_cleanup_free_ char *none = xasprintf("%s/none", d);
	assert_true(template_resolve_modules(none, unknown, &paths, &err) < 0);
	assert_non_null(strstr(err.msg, "modules.dep"));
	hutch_error_clear(&err);
	rm_rf(d);
}

static void test_find_kernel(void **state)
{
	(void)state;
	_cleanup_free_ char *d = tmpdir();
	struct hutch_error err = {0};
	char *path = NULL, *rel = NULL;
	assert_int_equal(template_find_kernel(d, &path, &rel, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "no kernel found in "));
	assert_non_null(strstr(err.msg, "apt-get install linux-image-amd64"));
	assert_non_null(strstr(err.msg, "kernel: in the spec"));
	hutch_error_clear(&err);

	put(d, "vmlinuz-6.1.0-9-amd64", "k");
	put(d, "vmlinuz-6.1.0-10-amd64", "k");
	put(d, "vmlinuz-5.10.0-30-amd64", "k");
	put(d, "vmlinuz-6.1.0-11-amd64.dpkg-tmp", "k");
	put(d, "vmlinuz.old", "k");
	put(d, "vmlinuz-7.0.0-1-amd64/x", "a directory, not a kernel");
	assert_int_equal(template_find_kernel(d, &path, &rel, &err), 0);
	assert_string_equal(rel, "6.1.0-10-amd64");
	_cleanup_free_ char *want = xasprintf("%s/vmlinuz-6.1.0-10-amd64", d);
	assert_string_equal(path, want);
	free(path);
	free(rel);
	rm_rf(d);
}

static void test_kernel_release(void **state)
{
	(void)state;
	_cleanup_free_ char *d = tmpdir();
	struct hutch_error err = {0};
	char *rel = NULL;
	assert_int_equal(template_kernel_release("/x/vmlinuz-6.1.0-5-amd64", &rel, &err), 0);
	assert_string_equal(rel, "6.1.0-5-amd64");
	free(rel);

	char img[0x400] = {0};
	memcpy(img + 0x202, "HdrS", 4);
	img[0x20E] = 0x00, img[0x20F] = 0x01; /* string at 0x100 + 0x200 */
	strcpy(img + 0x300, "6.1.0-77-amd64 (debian-kernel@lists.debian.org) #1 SMP");
	_cleanup_free_ char *p = xasprintf("%s/bzImage", d);
	assert_int_equal(write_file_atomic(p, img, sizeof(img), 0644, NULL), 0);
	assert_int_equal(template_kernel_release(p, &rel, &err), 0);
	assert_string_equal(rel, "6.1.0-77-amd64");
	free(rel);

	put(d, "plain", "not a kernel");
	_cleanup_free_ char *q = xasprintf("%s/plain", d);
	assert_int_equal(template_kernel_release(q, &rel, &err), -ENOEXEC);
	assert_non_null(strstr(err.msg, "vmlinuz-RELEASE"));
	hutch_error_clear(&err);
	rm_rf(d);
}

/* ---- template_micro_ensure ---- */

struct fixture {
	char *dir;
	char *kernel;
	char *agent;
	char *modules_root;
	char *cache;
	bool xz;
	struct template_inputs in;
};

static const char *const micro_dep_lines[] = {
	"kernel/drivers/virtio/virtio_ring.ko:",
	"kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko",
	"kernel/drivers/virtio/virtio_mmio.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko",
	"kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko",
	"kernel/drivers/char/virtio_console.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko",
	"kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko",
	"kernel/drivers/net/virtio_net.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko",
	"kernel/fs/9p/9p.ko.xz: kernel/net/9p/9pnet.ko",
	"kernel/net/9p/9pnet.ko:",
	"kernel/net/9p/9pnet_virtio.ko: kernel/net/9p/9pnet.ko kernel/drivers/virtio/virtio.ko "
	"kernel/drivers/virtio/virtio_ring.ko",
	"kernel/net/vmw_vsock/vsock.ko:",
	"kernel/net/vmw_vsock/vmw_vsock_virtio_transport.ko: kernel/net/vmw_vsock/vsock.ko "
	"kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko",
	"kernel/drivers/gpu/drm/drm.ko:",
	"kernel/drivers/gpu/drm/virtio/virtio-gpu.ko: kernel/drivers/gpu/drm/drm.ko kernel/drivers/virtio/virtio.ko "
	"kernel/drivers/virtio/virtio_ring.ko",
	"kernel/sound/core/snd.ko:",
	"kernel/sound/pci/hda/snd-hda-codec-generic.ko: kernel/sound/core/snd.ko",
	"kernel/sound/pci/hda/snd-hda-intel.ko: kernel/sound/core/snd.ko",
	"kernel/lib/crc16.ko:",
	"kernel/fs/mbcache.ko:",
	"kernel/fs/jbd2/jbd2.ko:",
	"kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko",
	"kernel/crypto/crc32c_generic.ko:",
	"kernel/fs/fuse/fuse.ko:",
	"kernel/fs/fuse/virtiofs.ko: kernel/fs/fuse/fuse.ko",
};

static int fixture_setup(void **state)
{
	/* Needs Debian's busybox-static: a dynamic busybox names its interpreter in the first page. */
	char *box = NULL;
	size_t box_len = 0;
	if (read_file("/bin/busybox", 64 << 20, &box, &box_len, NULL) < 0)
		skip();
	bool dynamic = memmem(box, box_len < 4096 ? box_len : 4096, "/ld-", 4) != NULL;
	free(box);
	if (dynamic)
		skip();
	struct fixture *f = xcalloc(1, sizeof(*f));
	f->dir = tmpdir();
	f->kernel = xasprintf("%s/boot/vmlinuz-" REL, f->dir);
	f->agent = xasprintf("%s/hutch-agent", f->dir);
	f->modules_root = xasprintf("%s/modules", f->dir);
	f->cache = xasprintf("%s/cache/micro", f->dir);
	put(f->dir, "boot/vmlinuz-" REL, "fake kernel");
	put(f->dir, "hutch-agent", "#!/bin/sh\necho agent v1\n");
	_cleanup_free_ char *mdir = xasprintf("%s/" REL, f->modules_root);
	struct strbuf dep = STRBUF_INIT;
	for (size_t i = 0; i < ARRAY_SIZE(micro_dep_lines); i++) {
		strbuf_addf(&dep, "%s\n", micro_dep_lines[i]);
		_cleanup_free_ char *ko = xstrndup(micro_dep_lines[i], strcspn(micro_dep_lines[i], ":"));
		_cleanup_free_ char *content = xasprintf("fake module %s\n", ko);
		if (strstr(ko, ".ko.xz") && (f->xz = put_xz(mdir, ko, content)))
			continue;
		put(mdir, ko, content);
	}
	put(mdir, "modules.dep", dep.buf);
	put(mdir, "modules.builtin", "kernel/drivers/virtio/virtio_balloon.ko\n");
	strbuf_release(&dep);
	f->in = (struct template_inputs){
		.kernel = f->kernel, .agent = f->agent, .modules_root = f->modules_root, .cache_dir = f->cache};
	*state = f;
	return 0;
}

static int fixture_teardown(void **state)
{
	struct fixture *f = *state;
	if (!f)
		return 0;
	rm_rf(f->dir);
	free(f->dir);
	free(f->kernel);
	free(f->agent);
	free(f->modules_root);
	free(f->cache);
	free(f);
	return 0;
}

struct cpio_seen {
	bool init_ok, sh_ok, console_ok, tmp_ok, passwd_ok, xz_ok;
	char *load;
	size_t entries;
};

static void read_cpio(const char *path, struct cpio_seen *s)
{
	struct archive *a = archive_read_new();
	archive_read_support_format_cpio(a);
	assert_int_equal(archive_read_open_filename(a, path, 65536), ARCHIVE_OK);
	struct archive_entry *e;
	while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
		const char *name = archive_entry_pathname(e);
		mode_t mode = archive_entry_mode(e);
		s->entries++;
		assert_int_equal(archive_entry_uid(e), 0);
		assert_int_equal(archive_entry_mtime(e), 0);
		if (strcmp(name, "init") == 0)
			s->init_ok = S_ISREG(mode) && (mode & 07777) == 0755;
		if (strcmp(name, "bin/sh") == 0)
			s->sh_ok = S_ISLNK(mode) && strcmp(archive_entry_symlink(e), "busybox") == 0;
		if (strcmp(name, "dev/console") == 0)
			s->console_ok = S_ISCHR(mode) && archive_entry_rdevmajor(e) == 5;
		if (strcmp(name, "tmp") == 0)
			s->tmp_ok = S_ISDIR(mode) && (mode & 07777) == 01777;
		struct strbuf data = STRBUF_INIT;
		char buf[4096];
		la_ssize_t n;
		while ((n = archive_read_data(a, buf, sizeof(buf))) > 0)
			strbuf_add(&data, buf, (size_t)n);
		if (strcmp(name, "etc/passwd") == 0)
			s->passwd_ok = strncmp(strbuf_str(&data), "root:x:0:0:", 11) == 0;
		if (strcmp(name, "lib/modules/" REL "/kernel/fs/9p/9p.ko") == 0)
			s->xz_ok = strcmp(strbuf_str(&data), "fake module kernel/fs/9p/9p.ko.xz\n") == 0;
		if (strcmp(name, "lib/modules/" REL "/hutch.load") == 0)
			s->load = xstrdup(strbuf_str(&data));
		strbuf_release(&data);
	}
	archive_read_free(a);
}

static void write_agent(struct fixture *f, const char *content)
{
	assert_int_equal(write_file_atomic(f->agent, content, strlen(content), 0755, NULL), 0);
}

static void test_ensure(void **state)
{
	struct fixture *f = *state;
	struct micro_template t = {0};
	struct hutch_error err = {0};
	int r = template_micro_ensure(&f->in, &t, &err);
	if (r < 0)
		fail_msg("%s", err.msg);
	assert_true(t.rebuilt);
	assert_string_equal(t.kernel, f->kernel);
	assert_string_equal(t.kernel_release, REL);
	_cleanup_free_ char *want = xasprintf("%s/" REL "/initramfs.cpio", f->cache);
	assert_string_equal(t.initrd, want);

	struct cpio_seen s = {0};
	read_cpio(t.initrd, &s);
	assert_true(s.init_ok);
	assert_true(s.sh_ok);
	assert_true(s.console_ok);
	assert_true(s.tmp_ok);
	assert_true(s.passwd_ok);
	if (f->xz)
		assert_true(s.xz_ok);
	assert_non_null(s.load);
	assert_string_equal(s.load, "kernel/drivers/virtio/virtio_ring.ko\n"
				    "kernel/drivers/virtio/virtio.ko\n"
				    "kernel/drivers/virtio/virtio_mmio.ko\n"
				    "kernel/drivers/virtio/virtio_pci.ko\n"
				    "kernel/drivers/char/virtio_console.ko\n"
				    "kernel/drivers/block/virtio_blk.ko\n"
				    "kernel/drivers/net/virtio_net.ko\n"
				    "kernel/net/9p/9pnet.ko\n"
				    "kernel/fs/9p/9p.ko\n"
				    "kernel/net/9p/9pnet_virtio.ko\n"
				    "kernel/net/vmw_vsock/vsock.ko\n"
				    "kernel/net/vmw_vsock/vmw_vsock_virtio_transport.ko\n"
				    "kernel/fs/jbd2/jbd2.ko\n"
				    "kernel/fs/mbcache.ko\n"
				    "kernel/lib/crc16.ko\n"
				    "kernel/fs/ext4/ext4.ko\n"
				    "kernel/crypto/crc32c_generic.ko\n"
				    "kernel/fs/fuse/fuse.ko\n"
				    "kernel/fs/fuse/virtiofs.ko\n"
				    "kernel/drivers/gpu/drm/drm.ko\n"
				    "kernel/drivers/gpu/drm/virtio/virtio-gpu.ko\n"
				    "kernel/sound/core/snd.ko\n"
				    "kernel/sound/pci/hda/snd-hda-codec-generic.ko\n"
				    "kernel/sound/pci/hda/snd-hda-intel.ko\n");
	free(s.load);
	char *first = NULL;
	size_t first_len = 0;
	assert_int_equal(read_file(t.initrd, 64 << 20, &first, &first_len, NULL), 0);
	micro_template_release(&t);

	/* Unchanged inputs: served from the cache. */
	assert_int_equal(template_micro_ensure(&f->in, &t, &err), 0);
	assert_false(t.rebuilt);
	micro_template_release(&t);

	/* A new modules.dep (depmod after a module update): resolved again, not taken from the list
	 * the inputs file kept; a new dependency of virtio_console is in the load order. */
	{
		_cleanup_free_ char *mdir = xasprintf("%s/" REL, f->modules_root);
		_cleanup_free_ char *dep_path = xasprintf("%s/modules.dep", mdir);
		char *dep = NULL;
		assert_int_equal(read_file(dep_path, 1 << 20, &dep, NULL, NULL), 0);
		struct strbuf nd = STRBUF_INIT;
		strbuf_adds(&nd, "kernel/lib/fake_console_dep.ko:\n");
		for (const char *l = dep; *l;) {
			size_t n = strcspn(l, "\n");
			if (!strncmp(l, "kernel/drivers/char/virtio_console.ko:", 38))
				strbuf_addf(&nd, "%.*s kernel/lib/fake_console_dep.ko\n", (int)n, l);
			else
				strbuf_addf(&nd, "%.*s\n", (int)n, l);
			l += n + (l[n] == '\n');
		}
		free(dep);
		put(mdir, "kernel/lib/fake_console_dep.ko", "fake module kernel/lib/fake_console_dep.ko\n");
		unlink(dep_path);
		put(mdir, "modules.dep", nd.buf);
		strbuf_release(&nd);
		assert_int_equal(template_micro_ensure(&f->in, &t, &err), 0);
		assert_true(t.rebuilt);
		struct cpio_seen s2 = {0};
		read_cpio(t.initrd, &s2);
		assert_non_null(s2.load);
		assert_non_null(strstr(s2.load, "kernel/lib/fake_console_dep.ko\n"));
		free(s2.load);
		micro_template_release(&t);
		assert_int_equal(template_micro_ensure(&f->in, &t, &err), 0);
		assert_false(t.rebuilt);
		micro_template_release(&t);
		/* and back: the first initramfs again (the byte-identical check below needs it) */
		unlink(dep_path);
		struct strbuf od = STRBUF_INIT;
		for (size_t i = 0; i < ARRAY_SIZE(micro_dep_lines); i++)
			strbuf_addf(&od, "%s\n", micro_dep_lines[i]);
		put(mdir, "modules.dep", od.buf);
		strbuf_release(&od);
	}

	/* Same size, new content: rebuilt. */
	write_agent(f, "#!/bin/sh\necho agent v2\n");
	assert_int_equal(template_micro_ensure(&f->in, &t, &err), 0);
	assert_true(t.rebuilt);
	micro_template_release(&t);
	assert_int_equal(template_micro_ensure(&f->in, &t, &err), 0);
	assert_false(t.rebuilt);
	micro_template_release(&t);

	/* Back to v1 from scratch: byte-identical output. */
	write_agent(f, "#!/bin/sh\necho agent v1\n");
	assert_int_equal(rm_rf(f->cache), 0);
	assert_int_equal(template_micro_ensure(&f->in, &t, &err), 0);
	assert_true(t.rebuilt);
	char *again = NULL;
	size_t again_len = 0;
	assert_int_equal(read_file(t.initrd, 64 << 20, &again, &again_len, NULL), 0);
	assert_int_equal(again_len, first_len);
	assert_memory_equal(again, first, first_len);
	free(first);
	free(again);
	micro_template_release(&t);
	hutch_error_clear(&err);
}

static void test_ensure_concurrent(void **state)
{
	struct fixture *f = *state;
	pid_t pids[4];
	for (size_t i = 0; i < ARRAY_SIZE(pids); i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			struct micro_template t = {0};
			_exit(template_micro_ensure(&f->in, &t, NULL) < 0 ? 1 : 0);
		}
	}
	for (size_t i = 0; i < ARRAY_SIZE(pids); i++) {
		int status = 0;
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	struct micro_template t = {0};
	assert_int_equal(template_micro_ensure(&f->in, &t, NULL), 0);
	assert_false(t.rebuilt);
	struct cpio_seen s = {0};
	read_cpio(t.initrd, &s);
	assert_true(s.init_ok);
	assert_non_null(s.load);
	free(s.load);
	micro_template_release(&t);
}

static void test_ensure_errors(void **state)
{
	struct fixture *f = *state;
	struct micro_template t = {0};
	struct hutch_error err = {0};
	struct template_inputs in = f->in;

	_cleanup_free_ char *nobox = xasprintf("%s/no-busybox", f->dir);
	in.busybox = nobox;
	assert_true(template_micro_ensure(&in, &t, &err) < 0);
	assert_non_null(strstr(err.msg, "micro template: busybox not found"));
	assert_non_null(strstr(err.msg, "busybox-static"));
	in.busybox = f->agent; /* a script, not a static busybox */
	assert_true(template_micro_ensure(&in, &t, &err) < 0);
	assert_non_null(strstr(err.msg, "not a static executable"));
	in.busybox = NULL;

	struct stat st;
	if (stat("/bin/ls", &st) == 0) {
		in.agent = "/bin/ls";
		assert_true(template_micro_ensure(&in, &t, &err) < 0);
		assert_non_null(strstr(err.msg, "dynamically linked"));
		in.agent = f->agent;
	}

	_cleanup_free_ char *ko = xasprintf("%s/" REL "/kernel/drivers/block/virtio_blk.ko", f->modules_root);
	assert_int_equal(unlink(ko), 0);
	assert_true(template_micro_ensure(&in, &t, &err) < 0);
	assert_string_equal(err.msg, "micro template: cannot read module 'kernel/drivers/block/virtio_blk.ko': "
				     "No such file or directory");
	hutch_error_clear(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_resolve_order),
		cmocka_unit_test(test_resolve_errors),
		cmocka_unit_test(test_find_kernel),
		cmocka_unit_test(test_kernel_release),
		cmocka_unit_test_setup_teardown(test_ensure, fixture_setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_ensure_concurrent, fixture_setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_ensure_errors, fixture_setup, fixture_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
