/* Warm templates of image VMs (warm_image.h): the template's frozen disk and each clone's overlay. */
#include "warm_image.h"

#include "image.h"
#include "proto.h"
#include "qemu.h"
#include "seed.h"
#include "store.h"
#include "vm_oci.h"

#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define WARM_SEED_MAX (64u << 20)
#define WARM_BLANK_MAX (16u << 20)
#define WARM_NVRAM_MAX (64u << 20)

static bool is_uefi(const struct vm_spec *spec)
{
	return spec->firmware == FIRMWARE_UEFI || spec->firmware == FIRMWARE_UEFI_SECURE;
}

void warm_key_file(struct strbuf *key, const char *what, const char *path)
{
	struct stat st;
	if (!path || stat(path, &st) < 0) {
		strbuf_addf(key, "%s -\n", what);
		return;
	}
	strbuf_addf(key, "%s %s %llu %llu %llu %lld.%09ld\n", what, path, (unsigned long long)st.st_dev,
		    (unsigned long long)st.st_ino, (unsigned long long)st.st_size, (long long)st.st_mtim.tv_sec,
		    st.st_mtim.tv_nsec);
}

/* A firmware file's path and identity, for the key: it must be there. */
static int key_file(struct strbuf *key, const char *what, const char *path, struct hutch_error *err)
{
	if (access(path, F_OK) < 0)
		return hutch_error_set(err, errno, "the UEFI firmware '%s': %s", path, strerror(errno));
	warm_key_file(key, what, path);
	return 0;
}

/* The virtual size in a qcow2 header (bytes 24..31, big-endian); 0 when it is not a qcow2. */
static uint64_t qcow2_size(const char *path)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	unsigned char h[32];
	if (fd < 0 || pread(fd, h, sizeof(h), 0) != (ssize_t)sizeof(h) || memcmp(h, "QFI\xfb", 4))
		return 0;
	uint64_t v = 0;
	for (int i = 24; i < 32; i++)
		v = v << 8 | h[i];
	return v;
}

/* The base image under the VM's disk (an overlay on it) and the disk's virtual size. */
static int disk_base(const struct qemu_plan *p, char **ret_base, uint64_t *ret_size, struct hutch_error *err)
{
	if (!p->disk)
		return hutch_error_set(err, ENOENT, "the VM has no disk");
	_cleanup_free_ char *base = image_qcow2_backing(p->disk);
	if (!base || base[0] != '/')
		return hutch_error_set(err, EINVAL, "the disk '%s' is not an overlay on a base image", p->disk);
	*ret_size = qcow2_size(p->disk);
	if (!*ret_size)
		return hutch_error_set(err, EINVAL, "the disk '%s' is not a qcow2", p->disk);
	*ret_base = TAKE_PTR(base);
	return 0;
}

/* The base is a by-digest file that never changes: its identity is enough for the key. */
static int key_base(struct strbuf *key, const char *what, const char *base, struct hutch_error *err)
{
	struct stat sb;
	if (stat(base, &sb) < 0)
		return hutch_error_set(err, errno, "the base image '%s': %s", base, strerror(errno));
	strbuf_addf(key, "%s %s %llu %llu %lld\n", what, base, (unsigned long long)sb.st_ino,
		    (unsigned long long)sb.st_size, (long long)sb.st_mtim.tv_sec);
	return 0;
}

int warm_image_plan(struct store *st, const char *tname, const struct vm_spec *spec, const struct qemu_plan *p,
		    struct strbuf *key, struct warm_image **ret, struct hutch_error *err)
{
	*ret = NULL;
	if (spec->source != SOURCE_IMAGE)
		return 0;
	_cleanup_free_ char *base = NULL;
	uint64_t size = 0;
	int r = disk_base(p, &base, &size, err);
	if (r < 0)
		return r;
	_cleanup_free_ char *seed = store_vm_file(st, tname, "seed.iso");
	char hex[65];
	struct stat sb;
	if (stat(seed, &sb) < 0)
		return hutch_error_set(err, ENOENT,
				       "the template VM '%s' has no cloud-init seed (warm templates of image VMs are "
				       "made of a defined VM)",
				       tname);
	if ((uint64_t)sb.st_size > WARM_SEED_MAX)
		return hutch_error_set(err, EFBIG, "the seed '%s' is too large", seed);
	r = sha256_file_hex(seed, hex, err);
	if (r < 0)
		return r;
	r = key_base(key, "image base", base, err);
	if (r < 0)
		return r;
	strbuf_addf(key, "image seed %s\nimage disk %llu\n", hex, (unsigned long long)size);
	_cleanup_free_ char *code = NULL, *vars = NULL;
	if (is_uefi(spec)) {
		/* the template's NVRAM starts as a copy of OVMF's variable store, not of the VM's own
		 * (which its cold boots change), as its disk starts as a fresh overlay on the base */
		r = qemu_firmware_paths(spec->firmware, &code, &vars, err);
		if (r == 0 && !p->nvram)
			r = hutch_error_set(err, EINVAL, "the UEFI VM has no NVRAM");
		if (r == 0)
			r = key_file(key, "ovmf code", code, err);
		if (r == 0)
			r = key_file(key, "ovmf vars", vars, err);
		if (r < 0)
			return r;
	}
	struct warm_image *wi = xcalloc(1, sizeof(*wi));
	wi->fw_vars = TAKE_PTR(vars);
	wi->base = TAKE_PTR(base);
	wi->vm_seed = TAKE_PTR(seed);
	wi->disk_size = size;
	*ret = wi;
	return 0;
}

int warm_oci_plan(const struct store *st, const char *tname, const struct vm_spec *spec, const struct qemu_plan *p,
		  struct strbuf *key, struct warm_image **ret, struct hutch_error *err)
{
	*ret = NULL;
	if (spec->source != SOURCE_OCI)
		return 0;
	if (vm_oci_is_bootc(st, spec, tname))
		return hutch_error_set(err, ENOTSUP,
				       "a bootc image's VM cannot be a warm template yet (it boots its own kernel and "
				       "systemd, kept per VM): use run --cold");
	_cleanup_free_ char *base = NULL;
	uint64_t size = 0;
	int r = disk_base(p, &base, &size, err);
	if (r == 0)
		r = key_base(key, "oci root", base, err);
	if (r < 0)
		return r;
	strbuf_addf(key, "oci disk %llu\n", (unsigned long long)size);
	struct warm_image *wi = xcalloc(1, sizeof(*wi));
	wi->base = TAKE_PTR(base);
	wi->disk_size = size;
	*ret = wi;
	return 0;
}

void warm_image_place(struct warm_image *wi, const char *dir, const char *vm_dir)
{
	wi->disk = xasprintf("%s/disk.qcow2", dir);
	wi->seed = wi->vm_seed ? xasprintf("%s/seed.iso", dir) : NULL; /* a container image's VM has none */
	wi->blank = xasprintf("%s/clone.qcow2", dir);
	wi->clone_disk = xasprintf("%s/clone-disk.qcow2", vm_dir);
	if (wi->fw_vars) {
		wi->nvram = xasprintf("%s/nvram.fd", dir);
		wi->clone_nvram = xasprintf("%s/clone-nvram.fd", vm_dir);
	}
}

void warm_image_free(struct warm_image *wi)
{
	if (!wi)
		return;
	free(wi->base);
	free(wi->vm_seed);
	free(wi->disk);
	free(wi->seed);
	free(wi->blank);
	free(wi->clone_disk);
	free(wi->fw_vars);
	free(wi->nvram);
	free(wi->clone_nvram);
	free(wi);
}

/* The keys that go with the seed (seed.c): the guest's host key, and the key pair whose public half
 * the guest authorizes. A clone gets them, so run's host-key check and 'hutch ssh' work in it. */
static const char *const seed_keys[] = {"ssh_host_ed25519_key.pub", "id_ed25519", "id_ed25519.pub"};
#define WARM_KEY_MAX (64u << 10)

int warm_image_prepare(const struct warm_image *wi, const char *bdir, struct hutch_error *err)
{
	_cleanup_free_ char *disk = xasprintf("%s/disk.qcow2", bdir), *seed = xasprintf("%s/seed.iso", bdir);
	int r = image_make_overlay(wi->base, disk, wi->disk_size, err);
	if (r < 0)
		return hutch_error_wrap(err, "the template's disk");
	if (!wi->vm_seed)
		return 0;
	r = copy_file_atomic(wi->vm_seed, seed, WARM_SEED_MAX, 0400, err);
	if (r < 0)
		return hutch_error_wrap(err, "the template's seed");
	if (wi->fw_vars) {
		_cleanup_free_ char *nvram = xasprintf("%s/nvram.fd", bdir);
		r = copy_file_atomic(wi->fw_vars, nvram, WARM_NVRAM_MAX, 0600, err);
		if (r < 0)
			return hutch_error_wrap(err, "the template's NVRAM");
	}
	_cleanup_free_ char *vm_dir = xstrdup(wi->vm_seed);
	*strrchr(vm_dir, '/') = 0;
	for (size_t i = 0; i < ARRAY_SIZE(seed_keys); i++) {
		_cleanup_free_ char *from = xasprintf("%s/%s", vm_dir, seed_keys[i]);
		_cleanup_free_ char *to = xasprintf("%s/%s", bdir, seed_keys[i]);
		if (access(from, F_OK) == 0 && (r = copy_file_atomic(from, to, WARM_KEY_MAX, 0600, err)) < 0)
			return hutch_error_wrap(err, "the template's keys");
	}
	return 0;
}

static int fsync_path(const char *path, struct hutch_error *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0)
		return hutch_error_set(err, errno, "fsync '%s': %s", path, strerror(errno));
	return 0;
}

/* path read-only (0400), synced, and its checksum and stat: a template file frozen as it is. */
static int freeze_file(const char *path, struct stat *st, char hex[65], struct hutch_error *err)
{
	if (chmod(path, 0400) < 0)
		return hutch_error_set(err, errno, "chmod '%s': %s", path, strerror(errno));
	int r = fsync_path(path, err);
	if (r == 0)
		r = sha256_file_hex(path, hex, err);
	if (r == 0 && stat(path, st) < 0)
		r = hutch_error_set(err, errno, "stat '%s': %s", path, strerror(errno));
	return r;
}

int warm_image_seal(const struct warm_image *wi, const char *bdir, json_object *meta, struct hutch_error *err)
{
	_cleanup_free_ char *disk = xasprintf("%s/disk.qcow2", bdir), *blank = xasprintf("%s/clone.qcow2", bdir);
	/* The clones' overlay names the disk where it will be once the build dir is renamed. */
	int r = image_make_backed_overlay(wi->disk, blank, wi->disk_size, err);
	if (r == 0)
		r = fsync_path(blank, err);
	char hex[65], bhex[65];
	struct stat st;
	if (r == 0)
		r = freeze_file(disk, &st, hex, err);
	if (r == 0)
		r = sha256_file_hex(blank, bhex, err);
	if (r < 0)
		return hutch_error_wrap(err, "freezing the template's disk");
	if (wi->fw_vars) {
		/* the NVRAM as the guest left it: QEMU wrote each flash write through to it */
		_cleanup_free_ char *nvram = xasprintf("%s/nvram.fd", bdir);
		struct stat nst;
		char nhex[65];
		if (freeze_file(nvram, &nst, nhex, err) < 0)
			return hutch_error_wrap(err, "freezing the template's NVRAM");
		json_object_object_add(meta, "nvram_bytes", json_object_new_int64((int64_t)nst.st_size));
		json_object_object_add(meta, "nvram_sha256", json_object_new_string(nhex));
	}
	json_object_object_add(meta, "disk_bytes", json_object_new_int64((int64_t)st.st_size));
	json_object_object_add(meta, "disk_mtime_ns",
			       json_object_new_int64((int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec));
	json_object_object_add(meta, "disk_sha256", json_object_new_string(hex));
	json_object_object_add(meta, "clone_disk_sha256", json_object_new_string(bhex));
	json_object_object_add(meta, "base_image", json_object_new_string(wi->base));
	return 0;
}

static int64_t get_int(json_object *o, const char *k)
{
	json_object *v;
	return json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_int) ? json_object_get_int64(v)
											    : -1;
}

static const char *get_str(json_object *o, const char *k)
{
	json_object *v;
	return json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_string)
		       ? json_object_get_string(v)
		       : "";
}

int warm_image_check(const struct warm_image *wi, json_object *meta, const char *tname, struct hutch_error *err)
{
	/* The disk is hundreds of MiB: its size and mtime are checked at each clone (any write moves
	 * the mtime), its checksum is in meta.json; the clones' overlay is small and fully checked. */
	struct stat st;
	char hex[65];
	struct hutch_error e2 = {0};
	int r = 0;
	if (stat(wi->disk, &st) < 0 || (int64_t)st.st_size != get_int(meta, "disk_bytes") ||
	    (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec != get_int(meta, "disk_mtime_ns"))
		r = hutch_error_set(err, EBADMSG,
				    "warm template '%s': its disk is missing or changed since it was saved", tname);
	else if (wi->seed && access(wi->seed, R_OK) < 0)
		r = hutch_error_set(err, EBADMSG, "warm template '%s': its seed is missing", tname);
	else if (sha256_file_hex(wi->blank, hex, &e2) < 0 || strcmp(hex, get_str(meta, "clone_disk_sha256")) != 0)
		r = hutch_error_set(err, EBADMSG, "warm template '%s': the clones' overlay is missing or corrupt",
				    tname);
	else if (wi->nvram && (stat(wi->nvram, &st) < 0 || (int64_t)st.st_size != get_int(meta, "nvram_bytes") ||
			       sha256_file_hex(wi->nvram, hex, &e2) < 0 || strcmp(hex, get_str(meta, "nvram_sha256"))))
		r = hutch_error_set(err, EBADMSG,
				    "warm template '%s': its NVRAM is missing or changed since it was saved", tname);
	hutch_error_clear(&e2);
	return r;
}

/* "file=PATH" with PATH's commas doubled, as the argv has it. */
static char *file_opt(const char *path)
{
	struct strbuf sb = STRBUF_INIT;
	strbuf_adds(&sb, "file=");
	for (const char *s = path; *s; s++) {
		if (*s == ',')
			strbuf_addch(&sb, ',');
		strbuf_addch(&sb, *s);
	}
	return strbuf_detach(&sb, NULL);
}

/* In each -drive option: the option file=FROM (a whole option: after the start or a comma, before a
 * comma or the end; a doubled comma is part of the path) becomes file=TO. */
static void replace_file(char **argv, const char *from, const char *to)
{
	if (!from || !to)
		return;
	_cleanup_free_ char *f = file_opt(from), *t = file_opt(to);
	size_t fl = strlen(f);
	for (size_t i = 0; argv[i] && argv[i + 1]; i++) {
		if (strcmp(argv[i], "-drive") != 0)
			continue;
		char *a = argv[i + 1];
		for (char *at = strstr(a, f); at; at = strstr(at + 1, f)) {
			if ((at != a && at[-1] != ',') || (at[fl] && (at[fl] != ',' || at[fl + 1] == ',')))
				continue;
			argv[i + 1] = xasprintf("%.*s%s%s", (int)(at - a), a, t, at + fl);
			free(a);
			break;
		}
	}
}

void warm_image_clone_argv(const struct warm_image *wi, const char *cold_disk, const char *cold_seed,
			   const char *cold_nvram, char **argv)
{
	replace_file(argv, cold_disk, wi->clone_disk);
	replace_file(argv, cold_seed, wi->seed);
	replace_file(argv, cold_nvram, wi->clone_nvram);
}

/* The template's keys in the clone's dir (vm_dir, the instance name), in place of its own. */
static int clone_keys(const struct warm_image *wi, const char *vm_dir, const char *name, struct hutch_error *err)
{
	_cleanup_free_ char *tdir = xstrdup(wi->disk);
	*strrchr(tdir, '/') = 0;
	for (size_t i = 0; i < ARRAY_SIZE(seed_keys); i++) {
		_cleanup_free_ char *from = xasprintf("%s/%s", tdir, seed_keys[i]);
		_cleanup_free_ char *to = xasprintf("%s/%s", vm_dir, seed_keys[i]);
		if (access(from, F_OK) < 0)
			continue;
		int r = copy_file_atomic(from, to, WARM_KEY_MAX, 0600, err);
		if (r < 0)
			return r;
		if (i != 0)
			continue;
		_cleanup_free_ char *pub = NULL, *kh = xasprintf("%s/known_hosts", vm_dir);
		size_t len = 0;
		r = read_file(from, WARM_KEY_MAX, &pub, &len, err);
		_cleanup_free_ char *line = r == 0 ? seed_known_hosts_line(name, pub) : NULL;
		if (line)
			r = write_file_atomic(kh, line, strlen(line), 0600, err);
		if (r < 0)
			return r;
	}
	return 0;
}

/* dst afresh (0600) as a copy of src (at most max bytes): a clone's own file, never one a former
 * clone left there (a link is replaced, not followed). */
static int copy_fresh(const char *src, const char *dst, size_t max, struct hutch_error *err)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	int r = read_file(src, max, &buf, &len, err);
	if (r < 0)
		return r;
	unlink(dst);
	_cleanup_close_ int fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || write_all(fd, buf, len) < 0)
		return hutch_error_set(err, errno, "the clone's '%s': %s", dst, strerror(errno));
	return 0;
}

int warm_image_clone_disk(const struct warm_image *wi, struct hutch_error *err)
{
	_cleanup_free_ char *vm_dir = xstrdup(wi->clone_disk);
	*strrchr(vm_dir, '/') = 0;
	const char *name = strrchr(vm_dir, '/') ? strrchr(vm_dir, '/') + 1 : vm_dir;
	if (clone_keys(wi, vm_dir, name, err) < 0)
		return hutch_error_wrap(err, "the clone's keys");
	/* no fsync: a disposable's disk need not outlive a crash, and an fsync under a busy disk costs
	 * a clone hundreds of ms */
	if (copy_fresh(wi->blank, wi->clone_disk, WARM_BLANK_MAX, err) < 0)
		return hutch_error_wrap(err, "the clone's disk");
	if (wi->nvram && copy_fresh(wi->nvram, wi->clone_nvram, WARM_NVRAM_MAX, err) < 0)
		return hutch_error_wrap(err, "the clone's NVRAM");
	return 0;
}

/* ---- settling the template VM ---- */

/* What the template VM runs before it is saved: cloud-init and the boot finish (sshd listens, the
 * first-boot work is done), and the guest's dirty pages go to the disk. A clone would otherwise
 * redo what is left of the first boot, and run's wait for sshd would outlast the disposable's grace. */
static const char settle_script[] =
	"command -v cloud-init >/dev/null 2>&1 && cloud-init status --wait >/dev/null 2>&1; "
	"command -v systemctl >/dev/null 2>&1 && systemctl is-system-running --wait >/dev/null 2>&1; "
	"sync; exit 0";
#define SETTLE_CHANNEL 1u

static int send_settle(int afd, bool hello, struct hutch_error *err)
{
	char *argv[] = {(char *)"/bin/sh", (char *)"-c", (char *)settle_script, NULL};
	char *env[] = {(char *)"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", NULL};
	struct proto_exec e = {.cwd = (char *)"/", .user = (char *)"", .argv = argv, .env = env};
	struct proto_buf b = {0}, out = {0};
	if (hello) {
		proto_encode_hello(&b, PROTO_VERSION, 0, "");
		proto_frame_append(&out, MSG_HELLO, 0, b.data, b.len);
		proto_buf_free(&b);
	}
	proto_encode_exec(&b, &e);
	proto_frame_append(&out, MSG_EXEC, SETTLE_CHANNEL, b.data, b.len);
	proto_buf_free(&b);
	int r = write_all(afd, out.data, out.len) < 0
			? hutch_error_set(err, errno, "write to the template's agent: %s", strerror(errno))
			: 0;
	proto_buf_free(&out);
	return r;
}

static int send_ping(int afd, struct hutch_error *err)
{
	struct proto_buf b = {0}, out = {0};
	proto_put_u64(&b, 2);
	proto_frame_append(&out, MSG_PING, 0, b.data, b.len);
	proto_buf_free(&b);
	int r = write_all(afd, out.data, out.len) < 0
			? hutch_error_set(err, errno, "write to the template's agent: %s", strerror(errno))
			: 0;
	proto_buf_free(&out);
	return r;
}

int warm_agent_read(struct proto_reader *rd, int afd, pid_t pid, uint64_t deadline, const char *step, const char *late,
		    struct hutch_error *err)
{
	int st;
	if (waitpid(pid, &st, WNOHANG) == pid)
		return hutch_error_set(err, EIO, "the template VM exited %s", step);
	uint64_t t = now_ms();
	if (t >= deadline)
		return hutch_error_set(err, ETIMEDOUT, "%s", late);
	struct pollfd p = {.fd = afd, .events = POLLIN};
	if (poll(&p, 1, (int)(deadline - t > 200 ? 200 : deadline - t)) <= 0)
		return 0;
	long n = proto_reader_read_fd(rd, afd);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		return hutch_error_set(err, EIO, "the template VM closed its agent channel");
	return 1;
}

int warm_image_settle(int afd, pid_t pid, uint64_t deadline, struct hutch_error *err)
{
	int r = send_settle(afd, false, err);
	if (r < 0)
		return r;
	struct proto_reader rd;
	proto_reader_init(&rd);
	bool exited = false, done = false;
	while (!done && r == 0) {
		int got = warm_agent_read(&rd, afd, pid, deadline, "while it finished its first boot",
					  "the template VM did not finish its first boot (cloud-init, systemd) in time",
					  err);
		if (got < 0) {
			r = got;
			break;
		}
		if (got == 0)
			continue;
		struct proto_frame f;
		int k;
		while (!done && r == 0 && (k = proto_reader_next(&rd, &f)) == 1) {
			if (f.type == MSG_HELLO && !exited) {
				/* the agent restarted (the seed's bootcmd does when its binary changed) */
				r = send_settle(afd, true, err);
			} else if (f.type == MSG_EXIT && f.channel == SETTLE_CHANNEL && !exited) {
				exited = true;
				r = send_ping(afd, err);
			} else if (f.type == MSG_ERROR && f.channel == SETTLE_CHANNEL && !exited) {
				r = hutch_error_set(err, EIO,
						    "the template VM's agent could not run the first-boot wait");
			} else if (f.type == MSG_PONG && exited) {
				done = true;
			}
		}
		if (k < 0 && r == 0)
			r = hutch_error_set(err, EPROTO, "the template VM's agent sent a malformed frame");
	}
	proto_reader_free(&rd);
	return r;
}
