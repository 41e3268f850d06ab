/* warm templates (src/lib/warm.c): the clone's argv, the key (micro, image and container-image VMs), instance marks, the cache listing;
 * MSG_IDENTITY's encoding; snapshot tags (src/lib/snapshot.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "qemu.h"
#include "snapshot.h"
#include "warm.h"
#include "warm_image.h"

#include <sys/stat.h>
#include <unistd.h>

#define UNUSED __attribute__((unused))

static bool argv_has(char *const *argv, const char *s)
{
	for (size_t i = 0; argv && argv[i]; i++)
		if (strstr(argv[i], s))
			return true;
	return false;
}

struct fixture {
	char dir[64];
	struct store st;
	struct vm_spec *spec;
	struct accel_info accel;
	struct qemu_plan plan;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_warm.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	setenv("HUTCH_HOME", f->dir, 1);
	unsetenv("HUTCH_TB_SIZE");
	struct hutch_error err = {0};
	assert_int_equal(store_open(&f->st, &err), 0);
	f->spec = spec_new("micro-1234abcd");
	f->spec->source = SOURCE_TEMPLATE;
	f->spec->template = xstrdup("micro");
	spec_apply_defaults(f->spec);
	snprintf(f->accel.cpu, sizeof(f->accel.cpu), "max");
	f->plan.binary = xstrdup("/usr/bin/qemu-system-x86_64");
	f->plan.kernel = xstrdup("/boot/vmlinuz-test");
	f->plan.initrd = xstrdup("/nonexistent/initrd");
	f->plan.accel = &f->accel;
	struct qemu_config c = {.name = "micro-1234abcd",
				.spec = f->spec,
				.binary = f->plan.binary,
				.run_dir = "/run/x",
				.vm_dir = "/data/x",
				.kernel = f->plan.kernel,
				.initrd = f->plan.initrd,
				.accel = &f->accel};
	assert_int_equal(qemu_build_argv(&c, &f->plan.argv, &err), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	rm_rf(f->dir);
	f->plan.accel = NULL;
	qemu_plan_release(&f->plan);
	spec_free(f->spec);
	store_release(&f->st);
	free(f);
	return 0;
}

static void test_clone_argv(void **state)
{
	struct fixture *f = *state;
	struct warm_plan wp;
	struct hutch_error err = {0};
	assert_int_equal(warm_plan_make(&f->st, "micro", "micro-1234abcd", f->spec, &f->plan, &wp, &err), 0);
	assert_true(argv_has(wp.clone_argv, "memory-backend-file,id=warm-mem"));
	assert_true(argv_has(wp.clone_argv, "share=off"));
	assert_false(argv_has(wp.clone_argv, "share=on"));
	assert_true(argv_has(wp.clone_argv, "microvm,") && argv_has(wp.clone_argv, ",memory-backend=warm-mem"));
	/* discarding devices never reach a clone */
	assert_false(argv_has(wp.clone_argv, "virtio-balloon"));
	assert_true(argv_has(wp.clone_argv, "defer"));
	assert_false(argv_has(wp.clone_argv, "vmgenid")); /* microvm has no ACPI */
	assert_true(argv_has(wp.clone_argv, wp.mem));
	assert_int_equal(strlen(wp.key), 64);
	assert_non_null(strstr(wp.dir, "/warm/micro/"));
	warm_plan_release(&wp);
}

static void test_key(void **state)
{
	struct fixture *f = *state;
	struct warm_plan a, b, c;
	struct hutch_error err = {0};
	assert_int_equal(warm_plan_make(&f->st, "micro", "micro-1234abcd", f->spec, &f->plan, &a, &err), 0);
	/* another instance of the same spec: the same template */
	assert_int_equal(warm_plan_make(&f->st, "micro", "micro-99999999", f->spec, &f->plan, &b, &err), 0);
	assert_string_equal(a.key, b.key);
	/* more memory: another template */
	f->spec->memory *= 2;
	assert_int_equal(warm_plan_make(&f->st, "micro", "micro-1234abcd", f->spec, &f->plan, &c, &err), 0);
	assert_string_not_equal(a.key, c.key);
	f->spec->memory /= 2;
	warm_plan_release(&a);
	warm_plan_release(&b);
	warm_plan_release(&c);
	/* accel is part of it too */
	snprintf(f->accel.cpu, sizeof(f->accel.cpu), "qemu64");
	assert_int_equal(warm_plan_make(&f->st, "micro", "micro-1234abcd", f->spec, &f->plan, &c, &err), 0);
	assert_int_equal(warm_plan_make(&f->st, "micro", "micro-1234abcd", f->spec, &f->plan, &a, &err), 0);
	assert_string_equal(a.key, c.key);
	warm_plan_release(&a);
	warm_plan_release(&c);
	snprintf(f->accel.cpu, sizeof(f->accel.cpu), "max");
}

static void test_tb_size(void **state)
{
	struct fixture *f = *state;
	struct warm_plan wp;
	struct hutch_error err = {0};
	setenv("HUTCH_TB_SIZE", "32", 1);
	assert_int_equal(warm_plan_make(&f->st, "micro", "micro-1234abcd", f->spec, &f->plan, &wp, &err), 0);
	unsetenv("HUTCH_TB_SIZE");
	assert_true(argv_has(wp.clone_argv, "tcg,tb-size=32"));
	warm_plan_release(&wp);
}

static void test_unsupported(void **state)
{
	struct fixture *f = *state;
	struct warm_plan wp;
	struct hutch_error err = {0};
	f->spec->net_mode = NET_NETVM;
	assert_int_equal(warm_plan_make(&f->st, "micro", "x", f->spec, &f->plan, &wp, &err), -ENOTSUP);
	assert_non_null(strstr(err.msg, "netvm"));
	hutch_error_clear(&err);
	f->spec->net_mode = NET_USER;
	f->spec->home = HOME_DEFAULT;
	assert_int_equal(warm_supported(f->spec, &err), -ENOTSUP);
	assert_non_null(strstr(err.msg, "shares"));
	hutch_error_clear(&err);
	f->spec->home = HOME_OFF;
	f->spec->source = SOURCE_IMAGE;
	assert_int_equal(warm_supported(f->spec, &err), 0);
	f->spec->firmware = FIRMWARE_UEFI;
	assert_int_equal(warm_supported(f->spec, &err), 0);
	f->spec->firmware = FIRMWARE_UEFI_SECURE;
	assert_int_equal(warm_supported(f->spec, &err), 0);
	/* an image VM's TPM state goes with the device state; a micro VM has no TPM device */
	f->spec->tpm = true;
	assert_int_equal(warm_supported(f->spec, &err), 0);
	f->spec->source = SOURCE_TEMPLATE;
	assert_int_equal(warm_supported(f->spec, &err), -ENOTSUP);
	assert_non_null(strstr(err.msg, "TPM"));
	hutch_error_clear(&err);
	f->spec->source = SOURCE_IMAGE;
	f->spec->tpm = false;
	f->spec->firmware = FIRMWARE_BIOS;
	f->spec->source = SOURCE_OCI; /* a bootc image's is refused by the plan (test_oci) */
	assert_int_equal(warm_supported(f->spec, &err), 0);
	f->spec->source = SOURCE_TEMPLATE;
}

/* A qcow2 header of virtual size SIZE on BACKING: all warm_image.c reads of a disk. */
static void write_qcow2_header(const char *path, const char *backing, uint64_t size)
{
	unsigned char h[1024] = {'Q', 'F', 'I', 0xfb, 0, 0, 0, 3};
	size_t len = strlen(backing);
	for (int i = 0; i < 8; i++) {
		h[8 + i] = (unsigned char)((512ull >> (56 - 8 * i)) & 0xff);
		h[24 + i] = (unsigned char)((size >> (56 - 8 * i)) & 0xff);
	}
	for (int i = 0; i < 4; i++)
		h[16 + i] = (unsigned char)((len >> (24 - 8 * i)) & 0xff);
	memcpy(h + 512, backing, len);
	struct hutch_error err = {0};
	assert_int_equal(write_file_atomic(path, h, sizeof(h), 0600, &err), 0);
}

/* The argv of instance INST of spec, from what its plan p has. */
static void plan_argv(struct fixture *f, struct vm_spec *spec, const char *inst, struct qemu_plan *p)
{
	struct hutch_error err = {0};
	strv_free(p->argv);
	p->argv = NULL;
	_cleanup_free_ char *tpm_sock = spec->tpm ? xasprintf("%s/swtpm.sock", p->run_dir) : NULL;
	struct qemu_config c = {.name = inst,
				.spec = spec,
				.binary = p->binary,
				.run_dir = "/run/x",
				.vm_dir = p->vm_dir,
				.disk = p->disk,
				.seed = p->seed,
				.fw_code = p->fw_code,
				.nvram = p->nvram,
				.tpm_sock = tpm_sock,
				.smbios_cred = p->smbios,
				.kernel = p->kernel,
				.initrd = p->initrd,
				.accel = &f->accel};
	assert_int_equal(qemu_build_argv(&c, &p->argv, &err), 0);
}

/* A plan for instance INST whose disk (of SIZE) is an overlay on BASE. */
static void disk_plan(struct fixture *f, const char *inst, const char *base, uint64_t size, struct qemu_plan *p)
{
	memset(p, 0, sizeof(*p));
	p->binary = xstrdup(f->plan.binary);
	p->accel = &f->accel;
	p->vm_dir = store_vm_dir(&f->st, inst);
	p->run_dir = xstrdup("/run/x");
	assert_int_equal(mkdir_p(p->vm_dir, 0700), 0);
	p->disk = xasprintf("%s/disk.qcow2", p->vm_dir);
	write_qcow2_header(p->disk, base, size);
}

/* An image VM's instance: its plan has a disk on a base, a seed and keys of its own, and a UEFI
 * VM's firmware and NVRAM. */
static void image_plan(struct fixture *f, struct vm_spec *spec, const char *inst, const char *smbios,
		       struct qemu_plan *p)
{
	struct hutch_error err = {0};
	_cleanup_free_ char *base = xasprintf("%s/base.qcow2", f->dir);
	assert_int_equal(write_file_atomic(base, "base", 4, 0600, &err), 0);
	disk_plan(f, inst, base, 8ull << 30, p);
	p->seed = xasprintf("%s/seed.iso", p->vm_dir);
	p->smbios = xstrdup(smbios);
	if (spec->firmware == FIRMWARE_UEFI || spec->firmware == FIRMWARE_UEFI_SECURE) {
		_cleanup_free_ char *vars = NULL;
		assert_int_equal(qemu_firmware_paths(spec->firmware, &p->fw_code, &vars, &err), 0);
		p->nvram = xasprintf("%s/nvram.fd", p->vm_dir);
	}
	plan_argv(f, spec, inst, p);
}

/* The argument of argv that starts with prefix, or NULL. */
static const char *argv_find(char *const *argv, const char *prefix)
{
	for (size_t i = 0; argv && argv[i]; i++)
		if (!strncmp(argv[i], prefix, strlen(prefix)))
			return argv[i];
	return NULL;
}

/* Fake OVMF files in DIR/ovmf (HUTCH_OVMF_DIR): the key has their paths and identities. */
static void fake_ovmf(struct fixture *f, const char *vars_text)
{
	struct hutch_error err = {0};
	_cleanup_free_ char *dir = xasprintf("%s/ovmf", f->dir);
	assert_int_equal(mkdir_p(dir, 0700), 0);
	setenv("HUTCH_OVMF_DIR", dir, 1);
	static const char *const code[] = {"OVMF_CODE_4M.fd", "OVMF_CODE_4M.secboot.fd"};
	for (size_t i = 0; i < ARRAY_SIZE(code); i++) {
		_cleanup_free_ char *p = xasprintf("%s/%s", dir, code[i]);
		assert_int_equal(write_file_atomic(p, "code", 4, 0600, &err), 0);
	}
	static const char *const vars[] = {"OVMF_VARS_4M.fd", "OVMF_VARS_4M.ms.fd"};
	for (size_t i = 0; i < ARRAY_SIZE(vars); i++) {
		_cleanup_free_ char *p = xasprintf("%s/%s", dir, vars[i]);
		assert_int_equal(write_file_atomic(p, vars_text, strlen(vars_text), 0600, &err), 0);
	}
}

static void test_image(void **state)
{
	struct fixture *f = *state;
	struct hutch_error err = {0};
	struct vm_spec *spec = spec_new("img-1234abcd");
	spec->source = SOURCE_IMAGE;
	spec_apply_defaults(spec);
	struct qemu_plan p1, p2;
	image_plan(f, spec, "img-1234abcd", "io.systemd.credential.binary:a=b", &p1);
	image_plan(f, spec, "img-99999999", "io.systemd.credential.binary:a=c", &p2);
	struct warm_plan a, b, c;
	/* no template VM 'img' with a seed yet */
	assert_int_equal(warm_plan_make(&f->st, "img", "img-1234abcd", spec, &p1, &a, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "seed"));
	hutch_error_clear(&err);
	_cleanup_free_ char *tdir = store_vm_dir(&f->st, "img");
	_cleanup_free_ char *tseed = xasprintf("%s/seed.iso", tdir);
	assert_int_equal(mkdir_p(tdir, 0700), 0);
	assert_int_equal(write_file_atomic(tseed, "seed 1", 6, 0600, &err), 0);
	assert_int_equal(warm_plan_make(&f->st, "img", "img-1234abcd", spec, &p1, &a, &err), 0);
	assert_non_null(a.image);
	/* the clone runs on an overlay of its own, with the template's seed medium */
	_cleanup_free_ char *cdisk = xasprintf("file=%s/clone-disk.qcow2,", p1.vm_dir);
	_cleanup_free_ char *cseed = xasprintf("file=%s/seed.iso,", a.dir);
	_cleanup_free_ char *cold = xasprintf("file=%s,", p1.disk);
	assert_true(argv_has(a.clone_argv, cdisk));
	assert_true(argv_has(a.clone_argv, cseed));
	assert_false(argv_has(a.clone_argv, cold));
	assert_true(argv_has(a.clone_argv, "q35,") && argv_has(a.clone_argv, ",memory-backend=warm-mem"));
	assert_true(argv_has(a.clone_argv, "vmgenid,guid=auto")); /* q35 has ACPI */
	/* another instance (its own keys): the same template */
	assert_int_equal(warm_plan_make(&f->st, "img", "img-99999999", spec, &p2, &b, &err), 0);
	assert_string_equal(a.key, b.key);
	warm_plan_release(&b);
	/* another seed (cloud-init config, keys, agent): another template */
	assert_int_equal(write_file_atomic(tseed, "seed 2", 6, 0600, &err), 0);
	assert_int_equal(warm_plan_make(&f->st, "img", "img-1234abcd", spec, &p1, &c, &err), 0);
	assert_string_not_equal(a.key, c.key);
	warm_plan_release(&c);
	/* another disk size: another template */
	_cleanup_free_ char *base = xasprintf("%s/base.qcow2", f->dir);
	write_qcow2_header(p1.disk, base, 16ull << 30);
	assert_int_equal(write_file_atomic(tseed, "seed 1", 6, 0600, &err), 0);
	assert_int_equal(warm_plan_make(&f->st, "img", "img-1234abcd", spec, &p1, &c, &err), 0);
	assert_string_not_equal(a.key, c.key);
	warm_plan_release(&c);
	warm_plan_release(&a);
	p1.accel = p2.accel = NULL;
	qemu_plan_release(&p1);
	qemu_plan_release(&p2);
	spec_free(spec);
}

/* A UEFI image VM: the template's NVRAM in its key dir, each clone's own copy in its VM dir; OVMF's
 * code and variable store are in the key. BIOS VMs have no pflash at all. */
static void test_image_uefi(void **state)
{
	struct fixture *f = *state;
	struct hutch_error err = {0};
	fake_ovmf(f, "vars 1");
	_cleanup_free_ char *tdir = store_vm_dir(&f->st, "img");
	_cleanup_free_ char *tseed = xasprintf("%s/seed.iso", tdir);
	assert_int_equal(mkdir_p(tdir, 0700), 0);
	assert_int_equal(write_file_atomic(tseed, "seed 1", 6, 0600, &err), 0);
	struct vm_spec *bios = spec_new("img-1234abcd"), *uefi = spec_new("img-1234abcd");
	bios->source = uefi->source = SOURCE_IMAGE;
	spec_apply_defaults(bios);
	uefi->firmware = FIRMWARE_UEFI;
	spec_apply_defaults(uefi);
	struct qemu_plan pb, pu;
	image_plan(f, bios, "img-1234abcd", "io.systemd.credential.binary:a=b", &pb);
	image_plan(f, uefi, "img-1234abcd", "io.systemd.credential.binary:a=b", &pu);
	struct warm_plan b, u, u2;
	assert_int_equal(warm_plan_make(&f->st, "img", "img-1234abcd", bios, &pb, &b, &err), 0);
	assert_false(argv_has(b.clone_argv, "pflash"));
	assert_null(b.image->nvram);
	assert_int_equal(warm_plan_make(&f->st, "img", "img-1234abcd", uefi, &pu, &u, &err), 0);
	assert_string_not_equal(b.key, u.key);
	/* the clone's NVRAM is its own file; OVMF's code stays read-only where it is */
	_cleanup_free_ char *nv = xasprintf("if=pflash,format=raw,unit=1,file=%s/clone-nvram.fd", pu.vm_dir);
	_cleanup_free_ char *code = xasprintf("if=pflash,format=raw,unit=0,readonly=on,file=%s", pu.fw_code);
	const char *unit1 = argv_find(u.clone_argv, "if=pflash,format=raw,unit=1,");
	assert_non_null(unit1);
	assert_string_equal(unit1, nv);
	assert_string_equal(argv_find(u.clone_argv, "if=pflash,format=raw,unit=0,"), code);
	_cleanup_free_ char *nvdir = xasprintf("%s/nvram.fd", u.dir), *cnv = xasprintf("%s/clone-nvram.fd", pu.vm_dir);
	assert_string_equal(u.image->nvram, nvdir);
	assert_string_equal(u.image->clone_nvram, cnv);
	/* the template VM's argv (its build dir stands in for the VM's): keyed with a placeholder */
	assert_true(argv_has(u.template_argv_base, "unit=1,file=@VM@/nvram.fd"));
	/* the same plan again: the same key; another variable store (a new file): another template */
	assert_int_equal(warm_plan_make(&f->st, "img", "img-1234abcd", uefi, &pu, &u2, &err), 0);
	assert_string_equal(u.key, u2.key);
	warm_plan_release(&u2);
	fake_ovmf(f, "vars 2, longer");
	assert_int_equal(warm_plan_make(&f->st, "img", "img-1234abcd", uefi, &pu, &u2, &err), 0);
	assert_string_not_equal(u.key, u2.key);
	warm_plan_release(&u2);
	/* a TPM: another template; the clone talks to its own swtpm (its run dir's socket) */
	uefi->tpm = true;
	struct qemu_plan pt;
	image_plan(f, uefi, "img-1234abcd", "io.systemd.credential.binary:a=b", &pt);
	_cleanup_free_ char *tsock = xasprintf("socket,id=chrtpm,path=%s/swtpm.sock", pt.run_dir);
	assert_int_equal(warm_plan_make(&f->st, "img", "img-1234abcd", uefi, &pt, &u2, &err), 0);
	assert_string_not_equal(u.key, u2.key);
	assert_string_equal(argv_find(u2.clone_argv, "socket,id=chrtpm,"), tsock);
	assert_true(argv_has(u2.template_argv_base, "socket,id=chrtpm,path=@RUN@/swtpm.sock"));
	warm_plan_release(&u2);
	pt.accel = NULL;
	qemu_plan_release(&pt);
	uefi->tpm = false;
	/* Secure Boot: another template (its code, its variable store, SMM) */
	uefi->firmware = FIRMWARE_UEFI_SECURE;
	struct qemu_plan ps;
	image_plan(f, uefi, "img-1234abcd", "io.systemd.credential.binary:a=b", &ps);
	assert_int_equal(warm_plan_make(&f->st, "img", "img-1234abcd", uefi, &ps, &u2, &err), 0);
	assert_string_not_equal(u.key, u2.key);
	assert_true(argv_has(u2.clone_argv, "secboot"));
	assert_true(argv_has(u2.clone_argv, "property=secure,value=on"));
	assert_string_equal(argv_find(u2.clone_argv, "if=pflash,format=raw,unit=1,"), nv);
	warm_plan_release(&u2);
	/* no OVMF: a clear error, not a template without firmware */
	_cleanup_free_ char *gone = xasprintf("%s/ovmf/OVMF_VARS_4M.ms.fd", f->dir);
	unlink(gone);
	assert_int_equal(warm_plan_make(&f->st, "img", "img-1234abcd", uefi, &ps, &u2, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "ovmf"));
	hutch_error_clear(&err);
	unsetenv("HUTCH_OVMF_DIR");
	warm_plan_release(&b);
	warm_plan_release(&u);
	pb.accel = pu.accel = ps.accel = NULL;
	qemu_plan_release(&pb);
	qemu_plan_release(&pu);
	qemu_plan_release(&ps);
	spec_free(bios);
	spec_free(uefi);
}

static void write_text(const char *path, const char *text)
{
	struct hutch_error err = {0};
	assert_int_equal(write_file_atomic(path, text, strlen(text), 0600, &err), 0);
}

/* The template's NVRAM is checked (size and checksum) at each clone, and each clone gets a private
 * writable copy of it, never a file a former clone left (nor one it points to). */
static void test_image_nvram_files(void **state)
{
	struct fixture *f = *state;
	struct hutch_error err = {0};
	_cleanup_free_ char *kdir = xasprintf("%s/key", f->dir), *vdir = xasprintf("%s/vm", f->dir);
	assert_int_equal(mkdir_p(kdir, 0700), 0);
	assert_int_equal(mkdir_p(vdir, 0700), 0);
	/* an image VM's: it has a seed */
	struct warm_image wi = {.fw_vars = xstrdup("/nonexistent/OVMF_VARS_4M.fd"),
				.vm_seed = xstrdup("/nonexistent/seed.iso")};
	warm_image_place(&wi, kdir, vdir);
	write_text(wi.disk, "disk");
	write_text(wi.seed, "seed");
	write_text(wi.blank, "blank");
	write_text(wi.nvram, "nvram as the template left it");
	assert_int_equal(chmod(wi.nvram, 0400), 0);
	struct stat st;
	assert_int_equal(stat(wi.disk, &st), 0);
	char bhex[65], nhex[65];
	assert_int_equal(sha256_file_hex(wi.blank, bhex, &err), 0);
	assert_int_equal(sha256_file_hex(wi.nvram, nhex, &err), 0);
	json_object *meta = json_object_new_object();
	json_object_object_add(meta, "disk_bytes", json_object_new_int64(st.st_size));
	json_object_object_add(meta, "disk_mtime_ns",
			       json_object_new_int64((int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec));
	json_object_object_add(meta, "clone_disk_sha256", json_object_new_string(bhex));
	json_object_object_add(meta, "nvram_bytes", json_object_new_int64(29));
	json_object_object_add(meta, "nvram_sha256", json_object_new_string(nhex));
	assert_int_equal(warm_image_check(&wi, meta, "img", &err), 0);
	/* a former clone's file, and a link somewhere else: the clone's copy replaces them */
	_cleanup_free_ char *victim = xasprintf("%s/victim", f->dir);
	write_text(victim, "victim");
	assert_int_equal(symlink(victim, wi.clone_nvram), 0);
	assert_int_equal(warm_image_clone_disk(&wi, &err), 0);
	char *text = NULL;
	size_t len = 0;
	assert_int_equal(read_file(wi.clone_nvram, 4096, &text, &len, &err), 0);
	assert_string_equal(text, "nvram as the template left it");
	free(text);
	assert_int_equal(read_file(victim, 4096, &text, &len, &err), 0);
	assert_string_equal(text, "victim");
	free(text);
	struct stat cst, tst;
	assert_int_equal(lstat(wi.clone_nvram, &cst), 0);
	assert_int_equal(stat(wi.nvram, &tst), 0);
	assert_true(S_ISREG(cst.st_mode));
	assert_int_equal(cst.st_mode & 0777, 0600);
	assert_int_not_equal(cst.st_ino, tst.st_ino);
	/* the clone writes its variables: the template's NVRAM is unchanged and still checks */
	write_text(wi.clone_nvram, "a clone's boot entry");
	assert_int_equal(warm_image_check(&wi, meta, "img", &err), 0);
	/* a template NVRAM that changed (same size), or went: corrupt */
	assert_int_equal(chmod(wi.nvram, 0600), 0);
	write_text(wi.nvram, "NVRAM as the template left it");
	assert_int_equal(warm_image_check(&wi, meta, "img", &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "NVRAM"));
	hutch_error_clear(&err);
	unlink(wi.nvram);
	assert_int_equal(warm_image_check(&wi, meta, "img", &err), -EBADMSG);
	hutch_error_clear(&err);
	/* a BIOS template has no NVRAM to check or copy */
	free(TAKE_PTR(wi.nvram));
	assert_int_equal(warm_image_check(&wi, meta, "img", &err), 0);
	json_object_put(meta);
	free(wi.fw_vars);
	free(wi.clone_nvram);
	wi.fw_vars = wi.clone_nvram = NULL;
	free(wi.disk);
	free(wi.seed);
	free(wi.blank);
	free(wi.clone_disk);
}

/* A plain container image's VM: micro's kernel, its disk an overlay on the image's root filesystem
 * (base: a file in the test dir), no seed. */
static void oci_plan(struct fixture *f, struct vm_spec *spec, const char *inst, const char *base, struct qemu_plan *p)
{
	disk_plan(f, inst, base, 512ull << 20, p);
	p->kernel = xstrdup(f->plan.kernel);
	p->initrd = xstrdup(f->plan.initrd);
	plan_argv(f, spec, inst, p);
}

static void test_oci(void **state)
{
	struct fixture *f = *state;
	struct hutch_error err = {0};
	struct vm_spec *spec = spec_new("box-1234abcd");
	spec->source = SOURCE_OCI;
	spec->oci = xstrdup("oci:/x:test");
	spec_apply_defaults(spec);
	_cleanup_free_ char *root1 = xasprintf("%s/rootfs1.img", f->dir), *root2 = xasprintf("%s/rootfs2.img", f->dir);
	assert_int_equal(write_file_atomic(root1, "ext4 one", 8, 0600, &err), 0);
	assert_int_equal(write_file_atomic(root2, "ext4 two", 8, 0600, &err), 0);
	_cleanup_free_ char *tdir = store_vm_dir(&f->st, "box");
	assert_int_equal(mkdir_p(tdir, 0700), 0);
	struct qemu_plan p1, p2, p3;
	oci_plan(f, spec, "box-1234abcd", root1, &p1);
	oci_plan(f, spec, "box-99999999", root1, &p2);
	oci_plan(f, spec, "box-55555555", root2, &p3);
	struct warm_plan a, b, c;
	/* no seed needed: the template boots with none */
	assert_int_equal(warm_plan_make(&f->st, "box", "box-1234abcd", spec, &p1, &a, &err), 0);
	assert_non_null(a.image);
	assert_null(a.image->seed);
	assert_string_equal(a.image->base, root1);
	/* micro's machine and kernel, its RAM in the template's file, the disk the clone's own overlay */
	_cleanup_free_ char *cdisk = xasprintf("file=%s/clone-disk.qcow2,", p1.vm_dir);
	_cleanup_free_ char *cold = xasprintf("file=%s,", p1.disk);
	assert_true(argv_has(a.clone_argv, cdisk));
	assert_false(argv_has(a.clone_argv, cold));
	assert_false(argv_has(a.clone_argv, "seed.iso"));
	assert_true(argv_has(a.clone_argv, "microvm,") && argv_has(a.clone_argv, ",memory-backend=warm-mem"));
	assert_true(argv_has(a.clone_argv, "share=off") && argv_has(a.clone_argv, "defer"));
	assert_false(argv_has(a.clone_argv, "-kernel"));
	/* another instance of the same image: the same template */
	assert_int_equal(warm_plan_make(&f->st, "box", "box-99999999", spec, &p2, &b, &err), 0);
	assert_string_equal(a.key, b.key);
	warm_plan_release(&b);
	/* another root filesystem: another template */
	assert_int_equal(warm_plan_make(&f->st, "box", "box-55555555", spec, &p3, &c, &err), 0);
	assert_string_not_equal(a.key, c.key);
	warm_plan_release(&c);
	/* another root size (on the guest's command line): another template */
	spec->root_size = 300ull << 20;
	plan_argv(f, spec, "box-99999999", &p2);
	assert_int_equal(warm_plan_make(&f->st, "box", "box-99999999", spec, &p2, &c, &err), 0);
	assert_string_not_equal(a.key, c.key);
	warm_plan_release(&c);
	spec->root_size = 0;
	/* the template's check needs no seed either: a complete template without one is not corrupt */
	assert_int_equal(warm_template_check(&a, &err), -ENOENT);
	hutch_error_clear(&err);
	warm_plan_release(&a);
	/* a bootc image's VM (its own kernel beside its disk) cannot be a template yet */
	_cleanup_free_ char *k = xasprintf("%s/oci-vmlinuz", tdir);
	assert_int_equal(write_file_atomic(k, "bzImage", 7, 0600, &err), 0);
	assert_int_equal(warm_plan_make(&f->st, "box", "box-1234abcd", spec, &p1, &a, &err), -ENOTSUP);
	assert_non_null(strstr(err.msg, "bootc"));
	hutch_error_clear(&err);
	p1.accel = p2.accel = p3.accel = NULL;
	qemu_plan_release(&p1);
	qemu_plan_release(&p2);
	qemu_plan_release(&p3);
	spec_free(spec);
}

static void test_check_and_cache(void **state)
{
	struct fixture *f = *state;
	struct warm_plan wp;
	struct hutch_error err = {0};
	assert_int_equal(warm_plan_make(&f->st, "micro", "micro-1234abcd", f->spec, &f->plan, &wp, &err), 0);
	assert_int_equal(warm_template_check(&wp, &err), -ENOENT);
	hutch_error_clear(&err);
	/* a directory without a readable meta.json is corrupt, not missing */
	assert_int_equal(mkdir_p(wp.dir, 0700), 0);
	assert_int_equal(warm_template_check(&wp, &err), -EBADMSG);
	hutch_error_clear(&err);
	/* a meta.json whose state file does not match */
	_cleanup_free_ char *meta = xasprintf("%s/meta.json", wp.dir);
	_cleanup_free_ char *text = xasprintf("{\"key\": \"%s\", \"state_bytes\": 3, \"state_sha256\": \"00\", "
					      "\"name\": \"micro\", \"mem_bytes\": 1}",
					      wp.key);
	assert_int_equal(write_file_atomic(meta, text, strlen(text), 0600, &err), 0);
	assert_int_equal(write_file_atomic(wp.state, "abc", 3, 0600, &err), 0);
	assert_int_equal(warm_template_check(&wp, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "checksum"));
	hutch_error_clear(&err);
	json_object *all = NULL;
	assert_int_equal(warm_list(&f->st, &all, &err), 0);
	assert_int_equal(json_object_array_length(all), 1);
	json_object_put(all);
	assert_int_equal(warm_remove(&f->st, "micro", &err), 0);
	assert_int_equal(warm_remove(&f->st, "micro", &err), -ENOENT);
	hutch_error_clear(&err);
	assert_int_equal(warm_list(&f->st, &all, &err), 0);
	assert_int_equal(json_object_array_length(all), 0);
	json_object_put(all);
	warm_plan_release(&wp);
}

static void test_instance_mark(void **state)
{
	struct fixture *f = *state;
	struct hutch_error err = {0};
	_cleanup_free_ char *dir = store_vm_dir(&f->st, "micro-1234abcd");
	assert_int_equal(mkdir_p(dir, 0700), 0);
	assert_null(warm_instance_template(&f->st, "micro-1234abcd"));
	assert_int_equal(warm_mark_instance(&f->st, "micro-1234abcd", "micro", &err), 0);
	_cleanup_free_ char *t = warm_instance_template(&f->st, "micro-1234abcd");
	assert_string_equal(t, "micro");
	/* a mark that is no valid name is ignored */
	_cleanup_free_ char *p = store_vm_file(&f->st, "micro-1234abcd", "warm-template");
	assert_int_equal(write_file_atomic(p, "../x", 4, 0600, &err), 0);
	assert_null(warm_instance_template(&f->st, "micro-1234abcd"));
}

static void test_identity_roundtrip(void **state UNUSED)
{
	struct proto_buf b = {0};
	warm_identity_encode(&b, "micro-1234abcd");
	struct proto_frame f = {.type = MSG_IDENTITY, .len = (uint32_t)b.len, .payload = b.data};
	struct proto_identity id;
	assert_int_equal(proto_decode_identity(&f, &id), 0);
	assert_string_equal(id.hostname, "micro-1234abcd");
	assert_int_equal(strlen(id.machine_id), 32);
	assert_int_equal(id.entropy_len, 512);
	assert_true(id.realtime_ns > 1600000000ull * 1000000000ull);
	proto_identity_free(&id);
	/* two encodings never share their entropy or machine-id */
	struct proto_buf b2 = {0};
	warm_identity_encode(&b2, "micro-1234abcd");
	assert_int_equal(b.len, b2.len);
	assert_memory_not_equal(b.data, b2.data, b.len);
	proto_buf_free(&b2);
	/* every truncation is rejected */
	for (uint32_t n = 0; n < b.len; n++) {
		f.len = n;
		assert_int_equal(proto_decode_identity(&f, &id), -1);
	}
	proto_buf_free(&b);
}

static void test_identity_bounds(void **state UNUSED)
{
	uint8_t big[PROTO_IDENTITY_ENTROPY_MAX + 1] = {0};
	struct proto_identity id;
	struct proto_buf b = {0};
	proto_encode_identity(&b, 1, "h", "0123456789abcdef0123456789abcdef", big, sizeof(big));
	struct proto_frame f = {.type = MSG_IDENTITY, .len = (uint32_t)b.len, .payload = b.data};
	assert_int_equal(proto_decode_identity(&f, &id), -1); /* too much entropy */
	proto_buf_free(&b);
	proto_encode_identity(&b, 1, "h", "../etc/passwd-not-hex-at-all-xxx", big, 16);
	f = (struct proto_frame){.type = MSG_IDENTITY, .len = (uint32_t)b.len, .payload = b.data};
	assert_int_equal(proto_decode_identity(&f, &id), -1); /* not a machine-id */
	proto_buf_free(&b);
	proto_encode_identity(&b, 1, "", "0123456789abcdef0123456789abcdef", big, 16);
	f = (struct proto_frame){.type = MSG_IDENTITY, .len = (uint32_t)b.len, .payload = b.data};
	assert_int_equal(proto_decode_identity(&f, &id), -1); /* no hostname */
	proto_buf_free(&b);
	assert_string_equal(proto_type_name(MSG_IDENTITY), "IDENTITY");
}

static void test_snapshot_tags(void **state UNUSED)
{
	assert_true(snapshot_tag_valid("t1"));
	assert_true(snapshot_tag_valid("snap-20261201-101010"));
	assert_true(snapshot_tag_valid("a.b_c-d"));
	assert_false(snapshot_tag_valid(""));
	assert_false(snapshot_tag_valid(NULL));
	assert_false(snapshot_tag_valid("123")); /* would be read as an id */
	assert_false(snapshot_tag_valid("-x"));
	assert_false(snapshot_tag_valid("a b"));
	assert_false(snapshot_tag_valid("a,b"));
	assert_false(snapshot_tag_valid("a/b"));
	char long_tag[80];
	memset(long_tag, 'a', sizeof(long_tag) - 1);
	long_tag[sizeof(long_tag) - 1] = 0;
	assert_false(snapshot_tag_valid(long_tag));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_clone_argv, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tb_size, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unsupported, setup, teardown),
		cmocka_unit_test_setup_teardown(test_image, setup, teardown),
		cmocka_unit_test_setup_teardown(test_image_uefi, setup, teardown),
		cmocka_unit_test_setup_teardown(test_image_nvram_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oci, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_and_cache, setup, teardown),
		cmocka_unit_test_setup_teardown(test_instance_mark, setup, teardown),
		cmocka_unit_test(test_identity_roundtrip),
		cmocka_unit_test(test_identity_bounds),
		cmocka_unit_test(test_snapshot_tags),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
