#include "qemu.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* Loops per jiffy for the calibrated delay loop: Debian's kernels use HZ=250. */
#define GUEST_HZ 250

static uint64_t rdtsc(void)
{
#if defined(__x86_64__) || defined(__i386__)
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
#else
	return 0;
#endif
}

/* Under TCG the guest's TSC runs at the host's TSC rate. A microvm guest has no PIT/HPET-backed
 * calibration it can trust, and on a contended host it can spin forever calibrating; telling it the
 * rate (tsc_early_khz, lpj) skips calibration. Measure instead of guessing: 20 ms against
 * CLOCK_MONOTONIC_RAW, which is accurate to well under 1%. */
static uint64_t measure_tsc_khz(void)
{
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC_RAW, &a);
	uint64_t t0 = rdtsc();
	struct timespec req = {0, 20 * 1000 * 1000};
	nanosleep(&req, NULL);
	uint64_t t1 = rdtsc();
	clock_gettime(CLOCK_MONOTONIC_RAW, &b);
	uint64_t ns = (uint64_t)(b.tv_sec - a.tv_sec) * 1000000000ull + (uint64_t)b.tv_nsec - (uint64_t)a.tv_nsec;
	if (ns == 0 || t1 <= t0)
		return 0;
	uint64_t khz = (t1 - t0) * 1000000ull / ns;
	/* Round to 1 MHz so the rendered argv is stable across runs. */
	return (khz + 500) / 1000 * 1000;
}

void qemu_detect_accel(struct accel_info *ret)
{
	memset(ret, 0, sizeof(*ret));
	const char *force = getenv("HUTCH_ACCEL");
	int fd = -1;
	if (force && strcmp(force, "tcg") == 0)
		snprintf(ret->why, sizeof(ret->why), "HUTCH_ACCEL=tcg");
	else if ((fd = open("/dev/kvm", O_RDWR | O_CLOEXEC)) >= 0) {
		close(fd);
		ret->kvm = true;
	} else if (errno == ENOENT)
		snprintf(ret->why, sizeof(ret->why), "/dev/kvm does not exist (no hardware virtualization here)");
	else
		snprintf(ret->why, sizeof(ret->why), "cannot open /dev/kvm: %s (is this user in the 'kvm' group?)",
			 strerror(errno));
	if (!ret->kvm) {
		const char *khz = getenv("HUTCH_TSC_KHZ");
		long long v;
		ret->tsc_khz = khz && parse_ll(khz, 1000, 100000000, &v) == 0 ? (uint64_t)v : measure_tsc_khz();
	}
}

int qemu_find_binary(char **ret, struct hutch_error *err)
{
	const char *o = getenv("HUTCH_QEMU");
	if (o && *o) {
		if (access(o, X_OK) < 0)
			return hutch_error_set(err, ENOENT, "HUTCH_QEMU='%s' is not an executable", o);
		*ret = xstrdup(o);
		return 0;
	}
	const char *path = getenv("PATH");
	_cleanup_free_ char *copy = xstrdup(path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
	for (char *save = NULL, *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		_cleanup_free_ char *p = xasprintf("%s/qemu-system-x86_64", dir);
		if (access(p, X_OK) == 0) {
			*ret = TAKE_PTR(p);
			return 0;
		}
	}
	return hutch_error_set(err, ENOENT,
			       "qemu-system-x86_64 not found: install Debian's qemu-system-x86 package "
			       "(apt-get install qemu-system-x86 qemu-utils)");
}

char *qemu_micro_cmdline(const struct qemu_config *c)
{
	struct strbuf sb = STRBUF_INIT;
	strbuf_addf(&sb, "console=ttyS0 reboot=t panic=-1 quiet hutch.hostname=%s", c->name);
	if (!c->accel->kvm && c->accel->tsc_khz)
		strbuf_addf(&sb, " tsc_early_khz=%llu lpj=%llu", (unsigned long long)c->accel->tsc_khz,
			    (unsigned long long)(c->accel->tsc_khz * 1000 / GUEST_HZ));
	if (c->spec->cmdline && *c->spec->cmdline)
		strbuf_addf(&sb, " %s", c->spec->cmdline);
	return strbuf_detach(&sb, NULL);
}

#define ARG(...) argv = strv_push(argv, xasprintf(__VA_ARGS__))

int qemu_build_argv(const struct qemu_config *c, char ***ret_argv, struct hutch_error *err)
{
	const struct vm_spec *s = c->spec;
	bool micro = s->source == SOURCE_TEMPLATE;
	const char *bus = micro ? "device" : "pci";
	char **argv = NULL;

	if (micro && (!c->kernel || !c->initrd))
		return hutch_error_set(err, EINVAL, "micro VM '%s' has no kernel or initramfs", c->name);
	if (!micro && !c->disk)
		return hutch_error_set(err, EINVAL, "VM '%s' has no disk", c->name);

	ARG("%s", c->binary);
	ARG("-name");
	ARG("%s,debug-threads=on", c->name);
	ARG("-M");
	if (micro)
		ARG("microvm,rtc=on,isa-serial=on,pcie=off");
	else
		ARG("q35%s", s->firmware == FIRMWARE_UEFI_SECURE ? ",smm=on" : "");
	ARG("-accel");
	ARG("%s", c->accel->kvm ? "kvm" : "tcg");
	ARG("-cpu");
	ARG("%s", c->accel->kvm ? "host" : "max");
	ARG("-m");
	ARG("%lluM", (unsigned long long)(s->memory / (1024 * 1024)));
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
	ARG("-chardev");
	ARG("socket,id=console,path=%s/console.sock,server=on,wait=off,logfile=%s/console.log,logappend=off",
	    c->run_dir, c->vm_dir);
	ARG("-serial");
	ARG("chardev:console");
	ARG("-device");
	ARG("virtio-serial-%s,id=vser0", bus);
	ARG("-chardev");
	ARG("socket,id=agent,fd=%d,server=on,wait=off", QEMU_FD_AGENT);
	ARG("-device");
	ARG("virtserialport,bus=vser0.0,chardev=agent,name=org.hutch.agent.0");

	if (micro) {
		ARG("-kernel");
		ARG("%s", c->kernel);
		ARG("-initrd");
		ARG("%s", c->initrd);
		ARG("-append");
		argv = strv_push(argv, qemu_micro_cmdline(c));
	} else {
		ARG("-drive");
		ARG("file=%s,if=none,id=disk0,format=qcow2,discard=unmap", c->disk);
		ARG("-device");
		ARG("virtio-blk-pci,drive=disk0,bootindex=1");
		if (c->seed) {
			ARG("-drive");
			ARG("file=%s,if=none,id=seed,format=raw,media=cdrom,readonly=on", c->seed);
			ARG("-device");
			ARG("ide-cd,drive=seed,bus=ide.1");
		}
	}

	if (s->net_mode == NET_USER) {
		struct strbuf nd = STRBUF_INIT;
		strbuf_adds(&nd, "user,id=net0");
		for (size_t i = 0; s->forward && s->forward[i]; i++) {
			char proto[8] = "tcp";
			unsigned hp = 0, gp = 0;
			const char *slash = strchr(s->forward[i], '/');
			if (sscanf(s->forward[i], "%u:%u", &hp, &gp) != 2 || hp == 0 || gp == 0 || hp > 65535 ||
			    gp > 65535) {
				strbuf_release(&nd);
				strv_free(argv);
				return hutch_error_set(err, EINVAL, "invalid port forward '%s'", s->forward[i]);
			}
			if (slash)
				snprintf(proto, sizeof(proto), "%.3s", slash + 1);
			strbuf_addf(&nd, ",hostfwd=%s:127.0.0.1:%u-:%u", proto, hp, gp);
		}
		ARG("-netdev");
		argv = strv_push(argv, strbuf_detach(&nd, NULL));
		ARG("-device");
		ARG("virtio-net-%s,netdev=net0", bus);
	}
	ARG("-device");
	ARG("virtio-balloon-%s,id=balloon0", bus);
	ARG("-device");
	ARG("virtio-rng-%s", bus);
	*ret_argv = argv;
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
