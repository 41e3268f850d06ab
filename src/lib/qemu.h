/* QEMU: accelerator choice, argv rendering and binary lookup. Rendering is pure so it can be
 * golden-tested (hutch inspect --render). */
#pragma once
#include "spec.h"
#include "util.h"

/* The monitor hands QEMU its listening sockets on fixed descriptors, so argv is deterministic. */
#define QEMU_FD_QMP 3
#define QEMU_FD_AGENT 4

struct accel_info {
	bool kvm;
	char why[160];     /* why not KVM, for the one warning line and `hutch doctor` */
	uint64_t tsc_khz;  /* host TSC rate (TCG microvm guests are told it; see qemu.c) */
};
void qemu_detect_accel(struct accel_info *ret);

struct qemu_config {
	const char *name;
	const struct vm_spec *spec;
	const char *binary;    /* qemu-system-x86_64 path */
	const char *run_dir;   /* sockets */
	const char *vm_dir;    /* console.log, disk, nvram */
	const char *kernel;    /* micro */
	const char *initrd;    /* micro */
	const char *disk;      /* image VMs: qcow2 overlay */
	const char *seed;      /* image VMs: cloud-init ISO */
	const struct accel_info *accel;
};

int qemu_build_argv(const struct qemu_config *c, char ***ret_argv, struct hutch_error *err);
/* The kernel command line for micro VMs. */
char *qemu_micro_cmdline(const struct qemu_config *c);
/* Shell-quoted, one argument per line, for --render and golden files. */
char *qemu_render_argv(char *const *argv);
/* Find qemu-system-x86_64 (HUTCH_QEMU overrides). -ENOENT names the Debian package. */
int qemu_find_binary(char **ret, struct hutch_error *err);
