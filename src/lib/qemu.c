#include "qemu.h"

#include "netvm.h"
#include "shares.h"
#include "desktop_qemu.h"
#include "qemu_devices.h"
#include "unixsock.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <string.h>
#include <spawn.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* Loops per jiffy for the calibrated delay loop: Debian's kernels use HZ=250. */
#define GUEST_HZ 250

int qemu_find_binary(char **ret, struct hutch_error *err)
{
	const char *o = getenv("HUTCH_QEMU");
	if (o && *o) {
		if (access(o, X_OK) < 0)
			return hutch_error_set(err, ENOENT, "HUTCH_QEMU='%s' is not an executable", o);
		*ret = xstrdup(o);
		return 0;
	}
	*ret = path_find("qemu-system-x86_64", NULL);
	if (*ret)
		return 0;
	return hutch_error_set(err, ENOENT,
			       "qemu-system-x86_64 not found: install Debian's qemu-system-x86 package "
			       "(apt-get install qemu-system-x86 qemu-utils)");
}

/* In the forked child: die with the parent (even if it died between fork and here), no signal
 * blocked, stdin /dev/null, output to log_fd, the listening sockets on their fixed numbers. */
_Noreturn static void exec_child(pid_t parent, char **argv, int qmp_listen, int agent_listen, int log_fd)
{
	child_die_with_parent(parent);
	int nul = open("/dev/null", O_RDWR);
	/* Move the sockets above the target numbers first so dup2 can't clobber one with the other. */
	int q = fcntl(qmp_listen, F_DUPFD, 10), a = fcntl(agent_listen, F_DUPFD, 10);
	dup2(nul, 0);
	dup2(log_fd, 1);
	dup2(log_fd, 2);
	dup2(q, QEMU_FD_QMP);
	dup2(a, QEMU_FD_AGENT);
	for (int fd = QEMU_FD_AGENT + 1; fd < 1024; fd++)
		close(fd);
	execv(argv[0], argv);
	dprintf(2, "hutch: cannot execute %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

int qemu_spawn(char **argv, const char *run_dir, const char *log_path, struct qemu_proc *ret, struct hutch_error *err)
{
	_cleanup_free_ char *qmp_path = xasprintf("%s/qmp.sock", run_dir);
	_cleanup_free_ char *agent_path = xasprintf("%s/agent.sock", run_dir);
	_cleanup_close_ int qmp_l = unix_listen(qmp_path, err);
	if (qmp_l < 0)
		return qmp_l;
	_cleanup_close_ int agent_l = unix_listen(agent_path, err);
	if (agent_l < 0)
		return agent_l;
	_cleanup_close_ int logfd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (logfd < 0)
		return hutch_error_set(err, errno, "cannot create '%s': %s", log_path, strerror(errno));
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0)
		return hutch_error_set(err, errno, "fork: %s", strerror(errno));
	if (pid == 0)
		exec_child(parent, argv, qmp_l, agent_l, logfd);
	/* Connections queue in the listen backlog, so these succeed before QEMU even accepts. */
	int qfd = unix_connect(qmp_path, err);
	int afd = qfd < 0 ? -1 : unix_connect(agent_path, err);
	if (afd < 0) {
		if (qfd >= 0)
			close(qfd);
		kill(pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		return qfd < 0 ? qfd : afd;
	}
	*ret = (struct qemu_proc){pid, qfd, afd};
	return 0;
}

int qemu_capture(const char *binary, const char *arg, const char *arg2, char **ret, struct hutch_error *err)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return hutch_error_set(err, errno, "pipe: %s", strerror(errno));
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	char *argv[] = {(char *)binary, (char *)arg, (char *)arg2, NULL};
	pid_t pid;
	int r = posix_spawn(&pid, binary, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	if (r != 0) {
		close(p[0]);
		return hutch_error_set(err, r, "cannot run '%s': %s", binary, strerror(r));
	}
	struct strbuf sb = STRBUF_INIT;
	char buf[4096];
	ssize_t n;
	while ((n = read(p[0], buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
		if (n > 0 && sb.len < 256 * 1024)
			strbuf_add(&sb, buf, (size_t)n);
	close(p[0]);
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		strbuf_release(&sb);
		return hutch_error_set(err, EIO, "'%s %s%s%s' failed", binary, arg, arg2 ? " " : "", arg2 ? arg2 : "");
	}
	*ret = strbuf_detach(&sb, NULL);
	if (!*ret)
		*ret = xstrdup("");
	return 0;
}

int qemu_version(const char *binary, char **ret, struct hutch_error *err)
{
	_cleanup_free_ char *out = NULL;
	int r = qemu_capture(binary, "--version", NULL, &out, err);
	if (r < 0)
		return r;
	const char *v = strstr(out, "version ");
	if (!v)
		return hutch_error_set(err, EIO, "'%s --version' printed no version", binary);
	v += strlen("version ");
	*ret = xstrndup(v, strcspn(v, "\n"));
	return 0;
}

char *qemu_micro_cmdline(const struct qemu_config *c)
{
	struct strbuf sb = STRBUF_INIT;
	strbuf_addf(&sb, "console=ttyS0 reboot=t panic=-1 quiet hutch.hostname=%s", c->name);
	/* tsc=reliable: under TCG the guest's TSC is the host's and steady. Without it the clocksource
	 * watchdog checks it against jiffies (late ticks on a loaded host), marks it unstable, and the
	 * guest falls back to jiffies, a periodic 250 Hz tick: ~5% of a host CPU per idle VM under TCG,
	 * against ~1% with the TSC and NO_HZ (bench/density.sh). */
	if (!c->accel->kvm && c->accel->tsc_khz)
		strbuf_addf(&sb, " tsc_early_khz=%llu lpj=%llu tsc=reliable", (unsigned long long)c->accel->tsc_khz,
			    (unsigned long long)(c->accel->tsc_khz * 1000 / GUEST_HZ));
	if (c->own_kernel) {
		/* a bootc image: its initramfs mounts the one disk, its systemd runs the agent's unit, and
		 * the agent grows the root to the disk (capped by root_size) */
		strbuf_adds(&sb, " root=/dev/vda rw hutch.growroot=/dev/vda");
		if (c->spec->root_size)
			strbuf_addf(&sb, " hutch.rootsize=%llu", (unsigned long long)c->spec->root_size);
		if (c->spec->cmdline && *c->spec->cmdline)
			strbuf_addf(&sb, " %s", c->spec->cmdline);
		return strbuf_detach(&sb, NULL);
	}
	shares_cmdline(&sb, c->shares);
	_cleanup_free_ char *net = c->net ? net_cmdline(c->spec, c->net) : NULL;
	if (net)
		strbuf_adds(&sb, net);
	if (c->spec->source == SOURCE_OCI)
		strbuf_adds(&sb, " hutch.root=/dev/vda"); /* agent/rootfs.c */
	if (c->spec->source == SOURCE_OCI && c->spec->root_size)
		strbuf_addf(&sb, " hutch.rootsize=%llu", (unsigned long long)c->spec->root_size);
	if (c->spec->cmdline && *c->spec->cmdline)
		strbuf_addf(&sb, " %s", c->spec->cmdline);
	return strbuf_detach(&sb, NULL);
}

#define ARG(...) argv = strv_push(argv, xasprintf(__VA_ARGS__))

/* QEMU's option syntax splits on ',' and reads ',,' as a literal comma. */
static char *opt_escape(const char *s)
{
	struct strbuf sb = STRBUF_INIT;
	for (; s && *s; s++) {
		if (*s == ',')
			strbuf_addch(&sb, ',');
		strbuf_addch(&sb, *s);
	}
	return strbuf_detach(&sb, NULL);
}

int qemu_build_argv(const struct qemu_config *c, char ***ret_argv, struct hutch_error *err)
{
	const struct vm_spec *s = c->spec;
	bool micro = s->source != SOURCE_IMAGE; /* a container image (SOURCE_OCI) boots micro with a disk */
	const char *bus = micro ? "device" : "pci";
	char **argv = NULL;
	_cleanup_free_ char *run_dir = opt_escape(c->run_dir), *vm_dir = opt_escape(c->vm_dir);
	_cleanup_free_ char *disk = opt_escape(c->disk), *seed = opt_escape(c->seed), *fw_code = opt_escape(c->fw_code);
	_cleanup_free_ char *nvram = opt_escape(c->nvram), *tpm_sock = opt_escape(c->tpm_sock);
	_cleanup_free_ char *smbios = opt_escape(c->smbios_cred);

	if (micro && (!c->kernel || (!c->initrd && !c->own_kernel)))
		return hutch_error_set(err, EINVAL, "micro VM '%s' has no kernel or initramfs", c->name);
	if (!micro && !c->disk)
		return hutch_error_set(err, EINVAL, "VM '%s' has no disk", c->name);

	ARG("%s", c->binary);
	ARG("-name");
	ARG("%s,debug-threads=on", c->name);
	/* vhost-user (virtiofsd) maps guest RAM: it must be a shared memfd */
	bool shm = shares_need_shared_memory(c->shares);
	ARG("-M");
	if (micro)
		ARG("microvm,rtc=on,isa-serial=on,pcie=%s%s", desktop_needs_pci(s) ? "on" : "off",
		    shm ? ",memory-backend=mem" : "");
	else
		ARG("q35,smm=%s%s", s->firmware == FIRMWARE_UEFI_SECURE ? "on" : "off",
		    shm ? ",memory-backend=mem" : "");
	ARG("-accel");
	ARG("%s", c->accel->kvm ? "kvm" : "tcg");
	ARG("-cpu");
	ARG("%s", c->accel->cpu[0] ? c->accel->cpu : (c->accel->kvm ? ACCEL_CPU_KVM : ACCEL_CPU_TCG));
	ARG("-m");
	ARG("%lluM", (unsigned long long)(s->memory / (1024 * 1024)));
	if (shm) {
		ARG("-object");
		ARG("memory-backend-memfd,id=mem,size=%lluM,share=on", (unsigned long long)(s->memory / (1024 * 1024)));
	}
	ARG("-smp");
	ARG("%u", s->cpus ? s->cpus : 1);
	ARG("-nodefaults");
	ARG("-no-user-config");
	ARG("-display");
	ARG("none");
	ARG("-no-reboot");
	ARG("-sandbox");
	ARG("on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny");

	/* QMP and the agent port use listening sockets the monitor created and passed in; the console
	 * is a socket that `hutch console` connects to, logged to a file for `hutch logs`. */
	ARG("-chardev");
	ARG("socket,id=qmp,fd=%d,server=on,wait=off", QEMU_FD_QMP);
	ARG("-mon");
	ARG("chardev=qmp,mode=control");
	/* A QMP socket of the user's own, for what hutch has no verb for (`stop`, `cont`, ...): the
	 * monitor keeps the first one, and sees the events of both. */
	ARG("-chardev");
	ARG("socket,id=qmp-user,path=%s/qmp-user.sock,server=on,wait=off", run_dir);
	ARG("-mon");
	ARG("chardev=qmp-user,mode=control");
	ARG("-chardev");
	ARG("socket,id=console,path=%s/console.sock,server=on,wait=off,logfile=%s/console.log,logappend=off", run_dir,
	    vm_dir);
	ARG("-serial");
	ARG("chardev:console");
	ARG("-device");
	ARG("virtio-serial-%s,id=vser0", bus);
	ARG("-chardev");
	ARG("socket,id=agent,fd=%d,server=on,wait=off", QEMU_FD_AGENT);
	ARG("-device");
	ARG("virtserialport,bus=vser0.0,chardev=agent,name=org.hutch.agent.0,id=%s", QEMU_AGENT_PORT_ID);

	if (micro) {
		ARG("-kernel");
		ARG("%s", c->kernel);
		if (c->initrd) {
			ARG("-initrd");
			ARG("%s", c->initrd);
		}
		ARG("-append");
		argv = strv_push(argv, qemu_micro_cmdline(c));
		if (c->disk) {
			ARG("-drive");
			ARG("file=%s,if=none,id=disk0,format=qcow2,discard=unmap", disk);
			ARG("-device");
			ARG("virtio-blk-device,drive=disk0");
		}
		if (c->own_kernel && c->seed) {
			/* a bootc image with cloud-init: the NoCloud seed, found by its label */
			ARG("-drive");
			ARG("file=%s,if=none,id=seed,format=raw,readonly=on", seed);
			ARG("-device");
			ARG("virtio-blk-device,drive=seed");
		}
	} else {
		bool uefi = s->firmware == FIRMWARE_UEFI || s->firmware == FIRMWARE_UEFI_SECURE;
		if (uefi && (!c->fw_code || !c->nvram)) {
			strv_free(argv);
			return hutch_error_set(err, EINVAL, "UEFI VM '%s' has no firmware or NVRAM", c->name);
		}
		if (s->firmware == FIRMWARE_UEFI_SECURE) {
			ARG("-global");
			ARG("driver=cfi.pflash01,property=secure,value=on");
		}
		if (uefi) {
			ARG("-drive");
			ARG("if=pflash,format=raw,unit=0,readonly=on,file=%s", fw_code);
			ARG("-drive");
			ARG("if=pflash,format=raw,unit=1,file=%s", nvram);
		}
		if (c->tpm_sock) {
			ARG("-chardev");
			ARG("socket,id=chrtpm,path=%s", tpm_sock);
			ARG("-tpmdev");
			ARG("emulator,id=tpm0,chardev=chrtpm");
			ARG("-device");
			ARG("tpm-crb,tpmdev=tpm0");
		}
		if (c->smbios_cred) {
			ARG("-smbios");
			ARG("type=11,value=%s", smbios);
		}
		ARG("-drive");
		ARG("file=%s,if=none,id=disk0,format=qcow2,discard=unmap", disk);
		ARG("-device");
		ARG("virtio-blk-pci,drive=disk0,bootindex=1");
		if (c->seed) {
			/* virtio, not ide-cd: cloud kernels (Debian's linux-image-cloud) have no AHCI */
			ARG("-drive");
			ARG("file=%s,if=none,id=seed,format=raw,readonly=on", seed);
			ARG("-device");
			ARG("virtio-blk-pci,drive=seed");
		}
	}

	if (s->net_mode == NET_USER) {
		struct strbuf nd = STRBUF_INIT;
		strbuf_adds(&nd, "user,id=net0");
		for (size_t i = 0; s->forward && s->forward[i]; i++) {
			struct forward f;
			if (forward_parse(s->forward[i], &f) < 0) {
				strbuf_release(&nd);
				strv_free(argv);
				return hutch_error_set(err, EINVAL, "invalid port forward '%s'", s->forward[i]);
			}
			_cleanup_free_ char *rule = forward_rule(&f);
			strbuf_addf(&nd, ",hostfwd=%s", rule);
		}
		ARG("-netdev");
		argv = strv_push(argv, strbuf_detach(&nd, NULL));
		ARG("-device");
		ARG("virtio-net-%s,netdev=net0", bus);
	}
	if (c->net)
		argv = net_qemu_args(argv, c->net, bus);
	argv = shares_qemu_args(argv, c->shares, micro);
	if (qemu_devices_argv(c, bus, &argv, err) < 0) {
		strv_free(argv);
		return -EINVAL;
	}
	ARG("-device");
	ARG("virtio-rng-%s", bus);
	int dr = desktop_qemu_args(c, &argv, err);
	if (dr < 0) {
		strv_free(argv);
		return dr;
	}
	*ret_argv = argv;
	return 0;
}

int qemu_firmware_paths(enum firmware fw, char **ret_code, char **ret_vars, struct hutch_error *err)
{
	const char *dir = getenv("HUTCH_OVMF_DIR");
	if (!dir || !*dir)
		dir = "/usr/share/OVMF";
	const char *code, *vars;
	switch (fw) {
	case FIRMWARE_UEFI:
		code = "OVMF_CODE_4M.fd";
		vars = "OVMF_VARS_4M.fd";
		break;
	case FIRMWARE_UEFI_SECURE:
		/* Secure Boot with Microsoft's keys enrolled, as distributions' shims expect. */
		code = "OVMF_CODE_4M.secboot.fd";
		vars = "OVMF_VARS_4M.ms.fd";
		break;
	case FIRMWARE_DEFAULT:
	case FIRMWARE_BIOS:
	default:
		*ret_code = *ret_vars = NULL;
		return 0;
	}
	_cleanup_free_ char *c = xasprintf("%s/%s", dir, code), *v = xasprintf("%s/%s", dir, vars);
	if (access(c, R_OK) < 0 || access(v, R_OK) < 0)
		return hutch_error_set(err, ENOENT, "UEFI firmware not found ('%s'): install Debian's ovmf package",
				       access(c, R_OK) < 0 ? c : v);
	*ret_code = TAKE_PTR(c);
	*ret_vars = TAKE_PTR(v);
	return 0;
}

char *qemu_render_argv(char *const *argv)
{
	struct strbuf sb = STRBUF_INIT;
	for (size_t i = 0; argv && argv[i]; i++) {
		const char *a = argv[i];
		bool plain = *a && strspn(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
					     "-_=,./:@%+") == strlen(a);
		if (i)
			strbuf_adds(&sb, " \\\n  ");
		if (plain)
			strbuf_adds(&sb, a);
		else {
			strbuf_addch(&sb, '\'');
			for (; *a; a++) {
				if (*a == '\'')
					strbuf_adds(&sb, "'\\''");
				else
					strbuf_addch(&sb, *a);
			}
			strbuf_addch(&sb, '\'');
		}
	}
	strbuf_addch(&sb, '\n');
	return strbuf_detach(&sb, NULL);
}

static bool parse_port(const char *s, size_t len, long long min, unsigned *ret)
{
	char buf[8];
	long long v;
	if (len == 0 || len >= sizeof(buf) || strspn(s, "0123456789") < len)
		return false;
	memcpy(buf, s, len);
	buf[len] = 0;
	if (parse_ll(buf, min, 65535, &v) < 0)
		return false;
	*ret = (unsigned)v;
	return true;
}

int forward_parse(const char *s, struct forward *ret)
{
	const char *colon = s ? strchr(s, ':') : NULL;
	if (!colon)
		return -EINVAL;
	const char *guest = colon + 1, *slash = strchr(guest, '/');
	struct forward f = {0};
	if (!parse_port(s, (size_t)(colon - s), 0, &f.host) ||
	    !parse_port(guest, slash ? (size_t)(slash - guest) : strlen(guest), 1, &f.guest))
		return -EINVAL;
	if (slash && strcmp(slash, "/tcp") != 0 && strcmp(slash, "/udp") != 0)
		return -EINVAL;
	f.udp = slash && !strcmp(slash, "/udp");
	*ret = f;
	return 0;
}

int forward_pick_free(struct forward *f, struct hutch_error *err)
{
	const char *proto = f->udp ? "udp" : "tcp";
	_cleanup_close_ int fd = socket(AF_INET, (f->udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return hutch_error_set(err, errno, "socket: %s", strerror(errno));
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->host)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	/* QEMU binds its forwards with SO_REUSEADDR: a port in TIME_WAIT is free to it, so to us too. */
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	socklen_t sl = sizeof(sa);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
		int e = errno;
		if (f->host == 0)
			return hutch_error_set(err, e, "cannot find a free %s port on the host: %s", proto,
					       strerror(e));
		if (e == EADDRINUSE)
			return hutch_error_set(err, EADDRINUSE,
					       "port %u/%s is already in use on the host (forward 0:%u for any free "
					       "port, e.g. in instances)",
					       f->host, proto, f->guest);
		return hutch_error_set(err, e, "cannot use port %u/%s on the host: %s", f->host, proto, strerror(e));
	}
	f->host = ntohs(sa.sin_port);
	return 0;
}

int forward_check_free(const struct forward *f, struct hutch_error *err)
{
	struct forward probe = *f;
	return forward_pick_free(&probe, err);
}

char *forward_rule(const struct forward *f)
{
	return xasprintf("%s:127.0.0.1:%u-:%u", f->udp ? "udp" : "tcp", f->host, f->guest);
}
