/* QEMU: argv rendering and binary lookup. Rendering is pure so it can be
 * golden-tested (hutch inspect --render). */
#pragma once
#include "accel.h"
#include "spec.h"
#include "util.h"

struct shares;
struct net_plan;

/* The monitor hands QEMU its listening sockets on fixed descriptors, so argv is deterministic. */
#define QEMU_FD_QMP 3
#define QEMU_FD_AGENT 4
/* The agent port's device id: QEMU names it in VSERPORT_CHANGE (ports without an id send none). */
#define QEMU_AGENT_PORT_ID "agent0"

struct qemu_config {
	const char *name;
	const struct vm_spec *spec;
	const char *binary;	 /* qemu-system-x86_64 path */
	const char *run_dir;	 /* sockets */
	const char *vm_dir;	 /* console.log, disk, nvram */
	const char *kernel;	 /* micro */
	const char *initrd;	 /* micro */
	bool own_kernel;	 /* a bootc image's kernel and initramfs: root=/dev/vda, not micro's shim */
	const char *disk;	 /* image VMs: qcow2 overlay */
	const char *seed;	 /* image VMs: cloud-init ISO */
	const char *fw_code;	 /* uefi: OVMF code (read-only) */
	const char *nvram;	 /* uefi: this VM's copy of the OVMF variables */
	const char *tpm_sock;	 /* tpm: swtpm's control socket */
	const char *smbios_cred; /* SMBIOS type 11 value, e.g. io.systemd.credential.binary:... */
	const struct accel_info *accel;
	const struct shares *shares; /* shares.h: devices, and the micro command line's hutch.share */
	const struct net_plan *net;  /* netvm.h: links to a netvm and (is_netvm) from clients; may be NULL */
};

/* OVMF code and variable-store template for a firmware kind. -ENOENT names the ovmf package.
 * HUTCH_OVMF_DIR overrides /usr/share/OVMF. */
int qemu_firmware_paths(enum firmware fw, char **ret_code, char **ret_vars, struct hutch_error *err);

/* QEMU started with argv: its QMP and agent ports listen on RUN_DIR/qmp.sock and agent.sock and are
 * passed as QEMU_FD_QMP and QEMU_FD_AGENT, its output goes to log_path, and the caller is connected
 * to both (before QEMU accepts: the connections wait in the backlog). QEMU dies with the caller
 * (PR_SET_PDEATHSIG). The caller reaps pid and closes both fds. */
struct qemu_proc {
	pid_t pid;
	int qmp_fd, agent_fd;
};
int qemu_spawn(char **argv, const char *run_dir, const char *log_path, struct qemu_proc *ret, struct hutch_error *err);

int qemu_build_argv(const struct qemu_config *c, char ***ret_argv, struct hutch_error *err);
/* The kernel command line for micro VMs. */
char *qemu_micro_cmdline(const struct qemu_config *c);
/* Shell-quoted, one argument per line, for --render and golden files. */
char *qemu_render_argv(char *const *argv);
/* Find qemu-system-x86_64 (HUTCH_QEMU overrides). -ENOENT names the Debian package. */
int qemu_find_binary(char **ret, struct hutch_error *err);
/* Run BINARY ARG [ARG2] (e.g. -machine help) and capture its stdout, at most 256 KiB. */
int qemu_capture(const char *binary, const char *arg, const char *arg2, char **ret, struct hutch_error *err);
/* The version QEMU reports ("7.2.19 (Debian 1:7.2+dfsg-7+deb12u18)"). */
int qemu_version(const char *binary, char **ret, struct hutch_error *err);

/* Port forwards "HOST:GUEST[/tcp|/udp]", bound to 127.0.0.1 on the host. */
struct forward {
	bool udp;
	unsigned host, guest;
};
int forward_parse(const char *s, struct forward *ret);
/* Is the host port free? -EADDRINUSE with "port N/tcp is already in use on the host". */
int forward_check_free(const struct forward *f, struct hutch_error *err);
/* Bind-probe f's host port; host port 0 means any free loopback port, written back to f->host.
 * The port is free, not reserved: two picks can draw the same one. */
int forward_pick_free(struct forward *f, struct hutch_error *err);
/* The QEMU hostfwd rule: "tcp:127.0.0.1:8080-:80". */
char *forward_rule(const struct forward *f);
