/* Shared folders: the spec's shares (and home) turned into a plan of host dirs, guest mount points
 * and the way each is carried (9p or virtiofs), with the QEMU arguments and the micro kernel
 * command line that follow. Host paths come from the spec only: nothing the guest sends names one. */
#pragma once
#include "spec.h"
#include "store.h"
#include "util.h"

#define SHARES_HOME_TAG "home"
#define SHARES_MAX 32 /* shares per VM: each is a device and a kernel command line word */

struct share_plan {
	char *tag;   /* the device's mount tag: the share's name, or "home" */
	char *host;  /* absolute host dir */
	char *mount; /* guest mount point */
	bool readonly;
	enum share_via via; /* resolved: SHARE_9P or SHARE_VIRTIOFS */
	bool xattr;	    /* 9p: security_model=mapped-xattr (else none: see the warning) */
	char *why;	    /* why this via, for inspect */
	char *warning;	    /* NULL, or one line for start and inspect */
	char *sock;	    /* virtiofs: virtiofsd's vhost-user socket */
	bool home;	    /* the shared home */
	bool userns_wrap;   /* virtiofs by QEMU's C virtiofsd: see shares_host */
};

struct shares {
	struct share_plan *v;
	size_t n;
};
void shares_release(struct shares *s);
static inline void shares_releasep(struct shares *s) { shares_release(s); }

/* What the host offers for virtiofs, found once per plan. */
struct shares_host {
	char *virtiofsd; /* NULL: not installed (HUTCH_VIRTIOFSD overrides /usr/libexec/virtiofsd) */
	bool readonly;	 /* it has --readonly (1.5 has not) */
	bool userns;	 /* unprivileged user namespaces work here, for --sandbox namespace */
	bool libvirt;	 /* the VM's backend is libvirt: 9.0's session mode has no virtiofs */
	/* QEMU's C virtiofsd (/usr/lib/qemu/virtiofsd, Debian 12's only one): it drops supplementary
	 * groups with setgroups(), which a user namespace allows only when newgidmap wrote its map. So
	 * it runs under `unshare --map-auto --map-root-user` (uidmap, /etc/subuid), on a socket the
	 * monitor made (--fd: its own socket lock wants /var/run). Guest root is the user on the host;
	 * other guest users are subordinate uids there, so via: auto does not pick it. */
	bool userns_wrap;
};
#define SHARES_QEMU_VIRTIOFSD "/usr/lib/qemu/virtiofsd"
#define SHARES_UNSHARE "/usr/bin/unshare"
void shares_host_probe(struct shares_host *ret);
void shares_host_release(struct shares_host *h);

enum shares_check {
	SHARES_RENDER = 0, /* no file system checks: inspect --render */
	SHARES_START,	   /* host dirs must exist and be readable dirs; xattr support is probed */
};

/* The plan for a VM. At SHARES_START a missing, non-directory or unreadable host dir is an error
 * naming the VM and the share; a home dir is made (and filled from home_template, when that exists)
 * on first use. */
struct shares_in {
	const char *vm_name;
	const struct vm_spec *spec;
	const char *run_dir;
	const char *data_dir;	   /* $XDG_DATA_HOME/hutch: homes/NAME for home: true */
	const char *home_template; /* $XDG_CONFIG_HOME/hutch/home-template, may be NULL */
	const struct shares_host *host;
	enum shares_check check;
};
int shares_plan(const struct shares_in *in, struct shares *ret, struct hutch_error *err);
/* shares_plan for a VM of the store, probing the host only when the spec has shares or a home. */
int shares_plan_vm(const struct store *st, const char *name, const struct vm_spec *spec, const char *run_dir,
		   enum shares_check check, struct shares *ret, struct hutch_error *err);

/* The guest's mount point for the shared home: /root in micro (the agent runs programs as root),
 * /home/USER in image VMs (USER as cloud-init makes it). */
char *shares_home_mount(const struct vm_spec *spec);

/* QEMU arguments for every share (the devices, and virtiofs' chardevs), appended to argv. */
char **shares_qemu_args(char **argv, const struct shares *s, bool micro);
/* Whether guest RAM must be a shared memfd (vhost-user needs it): any virtiofs share. */
bool shares_need_shared_memory(const struct shares *s);
/* The micro kernel command line words: " hutch.share=TAG,MOUNT,ro|rw,9p|virtiofs" each. */
void shares_cmdline(struct strbuf *sb, const struct shares *s);

/* The `--share HOSTPATH:GUESTPATH[:ro]` flags of create and run, added to the spec as shares named
 * after the guest dir; and home: true resolved to the per-VM dir under data_dir/homes/BASE (BASE: the
 * name without the instance, so a `run --rm` instance keeps its home). */
int shares_apply_create(const struct store *st, const char *base, char *const *flags, struct vm_spec *spec,
			struct hutch_error *err);

const char *shares_via_name(enum share_via v);

/* For inspect: the running VM's shares as its monitor reports them (with each mount's outcome), or a
 * stopped VM's as they would be planned (state "stopped"). Never NULL: an empty array without shares. */
struct json_object *shares_inspect(const struct store *st, const char *name, const struct vm_spec *spec, bool running);
/* inspect's text: "shares:\n  TAG  HOST -> MOUNT (ro, 9p: why) state[: error]\n...", NULL when none. */
char *shares_describe(struct json_object *arr);
