/* The built-in micro template: a Debian kernel plus an initramfs with hutch-agent as /init. */
#pragma once
#include "util.h"

struct micro_template {
	char *kernel;	      /* path to vmlinuz */
	char *initrd;	      /* path to the cached initramfs (newc cpio) */
	char *kernel_release; /* e.g. 6.1.0-26-amd64 */
	char *dir;	      /* cache dir holding the artifacts */
	bool rebuilt;	      /* true when this call built the initramfs */
};

struct template_inputs {
	const char *kernel;	  /* explicit kernel path, or NULL: newest /boot/vmlinuz-* */
	const char *agent;	  /* path to the static hutch-agent binary */
	const char *busybox;	  /* path to busybox (static), or NULL for /bin/busybox */
	const char *modules_root; /* NULL = "/lib/modules" */
	const char *cache_dir;	  /* $XDG_CACHE_HOME/hutch/micro */
	bool dry_run;		  /* write nothing: ret->rebuilt says whether a build is due (setup --check) */
};

/* Make sure the initramfs for these inputs exists in the cache; rebuild only when the kernel,
 * modules, busybox or agent changed. Cheap when cached. */
int template_micro_ensure(const struct template_inputs *in, struct micro_template *ret, struct hutch_error *err);
void micro_template_release(struct micro_template *t);

/* Exposed for tests. */
int template_find_kernel(const char *boot_dir, char **ret_path, char **ret_release, struct hutch_error *err);
/* Resolve module names (e.g. "virtio_blk") to their .ko paths relative to modules_dir, in load order
 * (dependencies first), via modules.dep. Missing names that are built in (modules.builtin) are skipped. */
int template_resolve_modules(const char *modules_dir, const char *const *names, char ***ret_paths,
			     struct hutch_error *err);
/* The release of a kernel image: from its name (vmlinuz-RELEASE), else from the bzImage header. */
int template_kernel_release(const char *kernel, char **ret_release, struct hutch_error *err);
/* The modules the micro initramfs carries (before dependencies), NULL-terminated. */
extern const char *const template_micro_modules[];
