/* pci: status and driver switches against fake /sys and /proc trees (HUTCH_SYSFS_ROOT,
 * HUTCH_PROC_ROOT). This machine has no IOMMU groups and no GPU, so the test stands them in.
 *
 * Every sysfs attribute the code writes is a plain file in the fake tree. A small kernel stand-in
 * (a thread on inotify) sees each completed write in the order it happened, records it as
 * "FILE: LINE", and does what the kernel would: an unbind drops the device's driver link, a
 * drivers_probe binds the device to its driver_override (or its native driver when there is none).
 * The tests assert that record: the exact writes, in order, and none at all when a switch is
 * refused. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#include "pci.h"

#define UNUSED __attribute__((unused))
#define BOOT_ID "0b7e2c9a-4c1e-4a57-9d3e-1f2a3b4c5d6e"

static char root[] = "/tmp/hutch-test-pci.XXXXXX";
static char *state; /* poison markers */

static char *at(const char *fmt, ...) _printf_(1, 2);
static char *at(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	struct strbuf sb = STRBUF_INIT;
	strbuf_addf(&sb, "%s/", root);
	strbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	return strbuf_detach(&sb, NULL);
}

static void put(const char *rel, const char *text)
{
	_cleanup_free_ char *p = at("%s", rel);
	_cleanup_free_ char *d = xstrdup(p);
	*strrchr(d, '/') = 0;
	assert_int_equal(mkdir_p(d, 0755), 0);
	assert_int_equal(write_file_atomic(p, text, strlen(text), 0644, NULL), 0);
}

static void link_to(const char *rel, const char *target)
{
	_cleanup_free_ char *p = at("%s", rel);
	_cleanup_free_ char *d = xstrdup(p);
	*strrchr(d, '/') = 0;
	assert_int_equal(mkdir_p(d, 0755), 0);
	unlink(p);
	assert_int_equal(symlink(target, p), 0);
}

/* ---- the fake host ---- */

struct native {
	char addr[16], driver[32];
};
static struct native natives[16];
static size_t n_natives;

static void driver(const char *name)
{
	_cleanup_free_ char *b = xasprintf("sys/bus/pci/drivers/%s/bind", name);
	_cleanup_free_ char *u = xasprintf("sys/bus/pci/drivers/%s/unbind", name);
	put(b, "");
	put(u, "");
}

/* A function; group < 0: no IOMMU group. drv is its driver now ("" unbound), native its own. */
static void func(const char *addr, unsigned vendor, unsigned device, unsigned cls, const char *drv, const char *native,
		 int group)
{
	char buf[32];
	_cleanup_free_ char *dir = xasprintf("sys/bus/pci/devices/%s", addr);
	_cleanup_free_ char *v = xasprintf("%s/vendor", dir), *d = xasprintf("%s/device", dir);
	_cleanup_free_ char *c = xasprintf("%s/class", dir), *o = xasprintf("%s/driver_override", dir);
	snprintf(buf, sizeof(buf), "0x%04x\n", vendor);
	put(v, buf);
	snprintf(buf, sizeof(buf), "0x%04x\n", device);
	put(d, buf);
	snprintf(buf, sizeof(buf), "0x%06x\n", cls);
	put(c, buf);
	put(o, "(null)\n");
	if (drv[0]) {
		_cleanup_free_ char *l = xasprintf("%s/driver", dir), *t = xasprintf("../../drivers/%s", drv);
		driver(drv);
		link_to(l, t);
	}
	driver(native);
	if (group >= 0) {
		_cleanup_free_ char *l = xasprintf("%s/iommu_group", dir),
				    *t = xasprintf("../../../../kernel/iommu_groups/%d", group);
		_cleanup_free_ char *m = xasprintf("sys/kernel/iommu_groups/%d/devices/%s", group, addr);
		_cleanup_free_ char *mt = xasprintf("../../../../bus/pci/devices/%s", addr);
		link_to(l, t);
		link_to(m, mt);
	}
	snprintf(natives[n_natives].addr, sizeof(natives[0].addr), "%s", addr);
	snprintf(natives[n_natives].driver, sizeof(natives[0].driver), "%s", native);
	n_natives++;
}

static void module(const char *name, int refcnt, const char *holder)
{
	_cleanup_free_ char *r = xasprintf("sys/module/%s/refcnt", name), *h = xasprintf("sys/module/%s/holders", name);
	char buf[16];
	snprintf(buf, sizeof(buf), "%d\n", refcnt);
	put(r, buf);
	_cleanup_free_ char *hd = at("%s", h);
	assert_int_equal(mkdir_p(hd, 0755), 0);
	if (holder) {
		_cleanup_free_ char *l = xasprintf("%s/%s", h, holder), *t = xasprintf("../../%s", holder);
		link_to(l, t);
	}
}

static void task(int pid, const char *comm, char st, const char *wchan, const char *fd_target)
{
	_cleanup_free_ char *s = xasprintf("proc/%d/stat", pid), *c = xasprintf("proc/%d/comm", pid);
	_cleanup_free_ char *w = xasprintf("proc/%d/wchan", pid), *text = NULL;
	text = xasprintf("%d (%s) %c 1 %d %d 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 100 0 0\n", pid, comm, st, pid, pid);
	put(s, text);
	_cleanup_free_ char *cl = xasprintf("%s\n", comm);
	put(c, cl);
	put(w, wchan ? wchan : "0");
	if (fd_target) {
		_cleanup_free_ char *f = xasprintf("proc/%d/fd/5", pid);
		link_to(f, fd_target);
	}
}

/* The fake modprobe: records its arguments; -r unloads the modules, which unbinds their devices. */
static void fake_modprobe(void)
{
	_cleanup_free_ char *script =
		xasprintf("#!/bin/sh\n"
			  "echo \"$*\" >> '%s/modprobe.log'\n"
			  "[ \"$1\" = -r ] || exit 0\n"
			  "shift\n"
			  "for m in \"$@\"; do\n"
			  "  [ -e '%s/sys/module/'$m/refcnt ] || exit 1\n"
			  "  rm -rf '%s/sys/module/'$m\n"
			  "  for d in '%s'/sys/bus/pci/devices/*; do\n"
			  "    [ \"$(basename \"$(readlink $d/driver)\")\" = $m ] && rm -f $d/driver\n"
			  "  done\n"
			  "done\n"
			  "exit 0\n",
			  root, root, root, root);
	put("bin/modprobe", script);
	_cleanup_free_ char *p = at("bin/modprobe");
	chmod(p, 0755);
}

/* The host: IOMMU on (unless iommu is false), vfio-pci loaded, this boot's id. */
static void host(bool iommu)
{
	put("proc/cmdline", iommu ? "BOOT_IMAGE=/vmlinuz root=/dev/sda1 intel_iommu=on iommu=pt\n" : "quiet\n");
	put("proc/sys/kernel/random/boot_id", BOOT_ID "\n");
	put("sys/bus/pci/drivers_probe", "");
	_cleanup_free_ char *g = at("sys/kernel/iommu_groups");
	assert_int_equal(mkdir_p(g, 0755), 0);
	driver("vfio-pci");
	fake_modprobe();
}

/* ---- the kernel stand-in ---- */

struct watch {
	int wd;
	char rel[128]; /* under sys/bus/pci */
	size_t consumed;
};

static struct {
	int ino, stop[2];
	struct watch w[64];
	size_t nw;
	char **log;
	pthread_t th;
} sim;

static char *nth_line(const char *path, size_t n)
{
	char *text = NULL;
	size_t len;
	if (read_file(path, 1 << 20, &text, &len, NULL) < 0)
		return NULL;
	char *p = text;
	for (size_t i = 0; i < n && p; i++) {
		p = strchr(p, '\n');
		p = p ? p + 1 : NULL;
	}
	char *out = p && *p ? xstrndup(p, strcspn(p, "\n")) : NULL;
	free(text);
	return out;
}

/* Lines already in the file were written before this run. */
static void sim_watch(const char *rel)
{
	_cleanup_free_ char *p = at("sys/bus/pci/%s", rel);
	size_t consumed = 0;
	struct stat st;
	for (char *l; lstat(p, &st) == 0 && S_ISREG(st.st_mode) && (l = nth_line(p, consumed)); consumed++)
		free(l); /* a FIFO (the stalling unbind) would block the reader */
	int wd = inotify_add_watch(sim.ino, p, IN_CLOSE_WRITE);
	assert_true(wd >= 0);
	sim.w[sim.nw].wd = wd;
	snprintf(sim.w[sim.nw].rel, sizeof(sim.w[0].rel), "%s", rel);
	sim.w[sim.nw++].consumed = consumed;
}

static void sim_probe(const char *addr)
{
	_cleanup_free_ char *l = at("sys/bus/pci/devices/%s/driver", addr);
	if (access(l, F_OK) == 0)
		return;
	_cleanup_free_ char *o = at("sys/bus/pci/devices/%s/driver_override", addr);
	_cleanup_free_ char *ov = nth_line(o, 0);
	const char *want = NULL;
	if (ov && strcmp(ov, "(null)"))
		want = ov;
	for (size_t i = 0; !want && i < n_natives; i++)
		if (!strcmp(natives[i].addr, addr))
			want = natives[i].driver;
	_cleanup_free_ char *dd = at("sys/bus/pci/drivers/%s", want ? want : "-");
	_cleanup_free_ char *t = xasprintf("../../drivers/%s", want ? want : "-");
	if (want && access(dd, F_OK) == 0)
		symlink(t, l);
}

static void sim_event(struct watch *w)
{
	_cleanup_free_ char *p = at("sys/bus/pci/%s", w->rel);
	_cleanup_free_ char *line = nth_line(p, w->consumed);
	if (!line)
		return;
	w->consumed++;
	sim.log = strv_push(sim.log, xasprintf("%s: %s", w->rel, line));
	size_t rl = strlen(w->rel);
	if (rl > 7 && !strcmp(w->rel + rl - 7, "/unbind")) {
		_cleanup_free_ char *l = at("sys/bus/pci/devices/%s/driver", line);
		unlink(l);
	} else if (!strcmp(w->rel, "drivers_probe")) {
		sim_probe(line);
	} else if (rl > 16 && !strcmp(w->rel + rl - 16, "/driver_override")) {
		/* the attribute shows the current value only */
		_cleanup_free_ char *cur = xasprintf("%s\n", line[0] ? line : "(null)");
		int fd = open(p, O_WRONLY | O_TRUNC);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, cur, strlen(cur)), (ssize_t)strlen(cur));
		close(fd);
		w->consumed = 1;
	}
}

static void sim_drain(int timeout)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	struct pollfd pf[2] = {{.fd = sim.ino, .events = POLLIN}, {.fd = sim.stop[0], .events = POLLIN}};
	while (poll(pf, 2, timeout) > 0) {
		if (pf[1].revents)
			return;
		ssize_t n = read(sim.ino, buf, sizeof(buf));
		for (char *p = buf; n > 0 && p < buf + n;) {
			struct inotify_event *e = (struct inotify_event *)p;
			for (size_t i = 0; i < sim.nw; i++)
				if (sim.w[i].wd == e->wd)
					sim_event(&sim.w[i]);
			p += sizeof(*e) + e->len;
		}
	}
}

static void *sim_main(void *arg UNUSED)
{
	sim_drain(-1);
	return NULL;
}

/* Watch every attribute the code may write, then run the stand-in. */
static void sim_start(void)
{
	sim.ino = inotify_init1(IN_CLOEXEC);
	assert_true(sim.ino >= 0);
	assert_int_equal(pipe(sim.stop), 0);
	sim.nw = 0;
	sim.log = xcalloc(1, sizeof(char *));
	sim_watch("drivers_probe");
	_cleanup_free_ char *dp = at("sys/bus/pci/drivers");
	_cleanup_free_ char *vp = at("sys/bus/pci/devices");
	DIR *d = opendir(dp);
	for (struct dirent *e; d && (e = readdir(d));)
		if (e->d_name[0] != '.') {
			_cleanup_free_ char *r = xasprintf("drivers/%s/unbind", e->d_name);
			sim_watch(r);
		}
	if (d)
		closedir(d);
	d = opendir(vp);
	for (struct dirent *e; d && (e = readdir(d));)
		if (e->d_name[0] != '.') {
			_cleanup_free_ char *r = xasprintf("devices/%s/driver_override", e->d_name);
			sim_watch(r);
		}
	if (d)
		closedir(d);
	assert_int_equal(pthread_create(&sim.th, NULL, sim_main, NULL), 0);
}

/* Stop it (every write has completed by now: the switch waits for its writer) and take the log. */
static char **sim_stop(void)
{
	assert_int_equal(write(sim.stop[1], "x", 1), 1);
	pthread_join(sim.th, NULL);
	sim_drain(0); /* whatever was still queued */
	close(sim.ino);
	close(sim.stop[0]);
	close(sim.stop[1]);
	return TAKE_PTR(sim.log);
}

static void assert_log(char **log, const char *const *want)
{
	size_t n = 0;
	for (; want[n]; n++) {
		if (!log[n] || strcmp(log[n], want[n]))
			fail_msg("write %zu: got '%s', want '%s'", n, log[n] ? log[n] : "(none)", want[n]);
	}
	if (log[n])
		fail_msg("unexpected write %zu: '%s'", n, log[n]);
	strv_free(log);
}

static char *file_text(const char *rel)
{
	_cleanup_free_ char *p = at("%s", rel);
	char *t = NULL;
	size_t len;
	return read_file(p, 1 << 20, &t, &len, NULL) == 0 ? t : NULL;
}

/* ---- fixtures ---- */

static int setup(void **s UNUSED)
{
	strcpy(root, "/tmp/hutch-test-pci.XXXXXX");
	if (!mkdtemp(root))
		return -1;
	_cleanup_free_ char *bin = at("bin");
	setenv("HUTCH_SYSFS_ROOT", root, 1);
	setenv("HUTCH_PROC_ROOT", root, 1);
	_cleanup_free_ char *path = xasprintf("%s:%s", bin, getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
	setenv("PATH", path, 1);
	state = at("state");
	n_natives = 0;
	return 0;
}

static int teardown(void **s UNUSED)
{
	rm_rf(root);
	free(state);
	state = NULL;
	unsetenv("HUTCH_SYSFS_ROOT");
	unsetenv("HUTCH_PROC_ROOT");
	return 0;
}

/* A GPU and its HDMI audio function in IOMMU group 1. */
static void amd_gpu(void)
{
	host(true);
	func("0000:01:00.0", 0x1002, 0x73bf, 0x030000, "amdgpu", "amdgpu", 1);
	func("0000:01:00.1", 0x1002, 0xab28, 0x040300, "snd_hda_intel", "snd_hda_intel", 1);
}

/* An NVIDIA GPU on nvidia, its audio on snd_hda_intel, group 3; modules loaded, idle. */
static void nvidia_gpu(void)
{
	host(true);
	func("0000:03:00.0", 0x10de, 0x2684, 0x030000, "nvidia", "nvidia", 3);
	func("0000:03:00.1", 0x10de, 0x22ba, 0x040300, "snd_hda_intel", "snd_hda_intel", 3);
	module("nvidia", 1, "nvidia_modeset");
	module("nvidia_modeset", 0, NULL);
}

/* ---- tests ---- */

static void test_addr(void **s UNUSED)
{
	char a[PCI_ADDR_LEN];
	assert_int_equal(pci_addr_normalize("01:00.0", a, NULL), 0);
	assert_string_equal(a, "0000:01:00.0");
	assert_int_equal(pci_addr_normalize("0000:0A:1f.7", a, NULL), 0);
	assert_string_equal(a, "0000:0a:1f.7");
	static const char *const bad[] = {"",  "1:00.0", "0000:01:00.8", "0000:01:00.0/", "../../x", "0000-01:00.0",
					  NULL};
	for (size_t i = 0; bad[i]; i++) {
		struct hutch_error err = {0};
		assert_int_equal(pci_addr_normalize(bad[i], a, &err), -EINVAL);
		assert_non_null(strstr(err.msg, "invalid PCI address"));
		hutch_error_clear(&err);
	}
}

static void test_no_iommu(void **s UNUSED)
{
	host(false);
	func("0000:00:02.0", 0x8086, 0x46a6, 0x030000, "i915", "i915", -1);
	struct pci_host h;
	pci_host_probe(&h);
	assert_false(h.iommu_cmdline);
	assert_false(h.iommu_groups);
	assert_true(h.vfio_loaded);
	assert_string_equal(h.boot_id, BOOT_ID);
	struct pci_group g;
	assert_int_equal(pci_group_load("00:02.0", state, &g, NULL), 0);
	assert_int_equal(g.group, -1);
	assert_int_equal(g.n, 1);
	assert_string_equal(g.funcs[0].driver, "i915");
	assert_int_equal(g.funcs[0].mode, PCI_MODE_NATIVE);
	pci_group_release(&g);

	sim_start();
	struct pci_switch_result res;
	struct hutch_error err = {0};
	assert_int_equal(pci_switch("0000:00:02.0", PCI_MODE_VFIO, state, 5000, &res, &err), -ENODEV);
	assert_non_null(strstr(err.msg, "the IOMMU is off"));
	assert_non_null(strstr(err.msg, "intel_iommu=on"));
	hutch_error_clear(&err);
	static const char *const none[] = {NULL};
	assert_log(sim_stop(), none);
}

static void test_gpu_audio_group(void **s UNUSED)
{
	amd_gpu();
	struct pci_group g;
	assert_int_equal(pci_group_load("0000:01:00.1", state, &g, NULL), 0);
	assert_int_equal(g.group, 1);
	assert_int_equal(g.n, 2);
	assert_string_equal(g.funcs[0].addr, "0000:01:00.0");
	assert_string_equal(g.funcs[1].addr, "0000:01:00.1");
	assert_string_equal(g.funcs[1].driver, "snd_hda_intel");
	assert_int_equal(g.funcs[1].class_code, 0x040300);
	assert_false(g.half_switched);
	assert_false(g.wedged);
	assert_false(g.poisoned);
	assert_int_equal(pci_group_mode(&g), PCI_MODE_NATIVE);
	_cleanup_free_ char *block = pci_spec_block(&g);
	assert_string_equal(block, "pci: [\"0000:01:00.0\", \"0000:01:00.1\"]\n");
	pci_group_release(&g);

	_cleanup_strv_ char **gpus = NULL;
	assert_int_equal(pci_interesting(&gpus, NULL), 0);
	assert_int_equal(strv_len(gpus), 1); /* the audio function is no GPU */
	assert_string_equal(gpus[0], "0000:01:00.0");

	/* to vfio: every function of the group, override, unbind, probe */
	sim_start();
	struct pci_switch_result res;
	struct hutch_error err = {0};
	assert_int_equal(pci_switch("0000:01:00.0", PCI_MODE_VFIO, state, 10000, &res, &err), 0);
	static const char *const to_vfio[] = {
		"devices/0000:01:00.0/driver_override: vfio-pci",
		"drivers/amdgpu/unbind: 0000:01:00.0",
		"drivers_probe: 0000:01:00.0",
		"devices/0000:01:00.1/driver_override: vfio-pci",
		"drivers/snd_hda_intel/unbind: 0000:01:00.1",
		"drivers_probe: 0000:01:00.1",
		NULL,
	};
	assert_log(sim_stop(), to_vfio);
	assert_true(res.changed);
	assert_int_equal(strv_len(res.steps), 6);
	pci_switch_result_release(&res);
	assert_int_equal(pci_group_load("0000:01:00.0", state, &g, NULL), 0);
	assert_int_equal(pci_group_mode(&g), PCI_MODE_VFIO);
	assert_string_equal(g.funcs[0].override, "vfio-pci");
	pci_group_release(&g);
	/* the files hold exactly what was written to them */
	_cleanup_free_ char *probe = file_text("sys/bus/pci/drivers_probe");
	assert_string_equal(probe, "0000:01:00.0\n0000:01:00.1\n");
	_cleanup_free_ char *unb = file_text("sys/bus/pci/drivers/amdgpu/unbind");
	assert_string_equal(unb, "0000:01:00.0\n");

	/* again: nothing to do, nothing written */
	sim_start();
	assert_int_equal(pci_switch("0000:01:00.1", PCI_MODE_VFIO, state, 10000, &res, &err), 0);
	static const char *const none[] = {NULL};
	assert_log(sim_stop(), none);
	assert_false(res.changed);
	pci_switch_result_release(&res);

	/* and back to native */
	sim_start();
	assert_int_equal(pci_switch("0000:01:00.0", PCI_MODE_NATIVE, state, 10000, &res, &err), 0);
	static const char *const to_native[] = {
		"devices/0000:01:00.0/driver_override: ",
		"drivers/vfio-pci/unbind: 0000:01:00.0",
		"drivers_probe: 0000:01:00.0",
		"devices/0000:01:00.1/driver_override: ",
		"drivers/vfio-pci/unbind: 0000:01:00.1",
		"drivers_probe: 0000:01:00.1",
		NULL,
	};
	assert_log(sim_stop(), to_native);
	pci_switch_result_release(&res);
	assert_int_equal(pci_group_load("0000:01:00.0", state, &g, NULL), 0);
	assert_int_equal(pci_group_mode(&g), PCI_MODE_NATIVE);
	assert_string_equal(g.funcs[0].driver, "amdgpu");
	assert_string_equal(g.funcs[1].driver, "snd_hda_intel");
	assert_string_equal(g.funcs[0].override, "");
	pci_group_release(&g);
}

static void test_native_refused_while_vm_holds_group(void **s UNUSED)
{
	amd_gpu();
	_cleanup_free_ char *l0 = xasprintf("sys/bus/pci/devices/0000:01:00.0/driver");
	_cleanup_free_ char *l1 = xasprintf("sys/bus/pci/devices/0000:01:00.1/driver");
	link_to(l0, "../../drivers/vfio-pci");
	link_to(l1, "../../drivers/vfio-pci");
	task(900, "qemu-system-x86", 'S', NULL, "/dev/vfio/1");
	sim_start();
	struct pci_switch_result res;
	struct hutch_error err = {0};
	assert_int_equal(pci_switch("0000:01:00.0", PCI_MODE_NATIVE, state, 5000, &res, &err), -EBUSY);
	assert_non_null(strstr(err.msg, "in use by a VM"));
	assert_non_null(strstr(err.msg, "process 900 (qemu-system-x86) has /dev/vfio/1 open"));
	hutch_error_clear(&err);
	static const char *const none[] = {NULL};
	assert_log(sim_stop(), none);
}

static void test_half_switched_recover(void **s UNUSED)
{
	amd_gpu();
	/* an interrupted flip: the GPU made it to vfio-pci, the audio function did not */
	_cleanup_free_ char *l0 = xasprintf("sys/bus/pci/devices/0000:01:00.0/driver");
	link_to(l0, "../../drivers/vfio-pci");
	put("sys/bus/pci/devices/0000:01:00.0/driver_override", "vfio-pci\n");
	struct pci_group g;
	assert_int_equal(pci_group_load("0000:01:00.0", state, &g, NULL), 0);
	assert_true(g.half_switched);
	assert_int_equal(pci_group_mode(&g), PCI_MODE_UNBOUND);
	pci_group_release(&g);

	sim_start();
	struct pci_switch_result res;
	assert_int_equal(pci_recover("0000:01:00.0", state, 10000, &res, NULL), 0);
	static const char *const want[] = {
		"devices/0000:01:00.1/driver_override: vfio-pci",
		"drivers/snd_hda_intel/unbind: 0000:01:00.1",
		"drivers_probe: 0000:01:00.1",
		NULL,
	};
	assert_log(sim_stop(), want);
	pci_switch_result_release(&res);
	assert_int_equal(pci_group_load("0000:01:00.0", state, &g, NULL), 0);
	assert_false(g.half_switched);
	assert_int_equal(pci_group_mode(&g), PCI_MODE_VFIO);
	pci_group_release(&g);
}

static void test_busy_nvidia_refused(void **s UNUSED)
{
	nvidia_gpu();
	/* a process with /dev/nvidia0 open (an fd, as /proc shows it) */
	task(4242, "python3", 'S', NULL, "/dev/nvidia0");
	sim_start();
	struct pci_switch_result res;
	struct hutch_error err = {0};
	assert_int_equal(pci_switch("0000:03:00.0", PCI_MODE_VFIO, state, 5000, &res, &err), -EBUSY);
	assert_non_null(strstr(err.msg, "process 4242 (python3) has /dev/nvidia0 open"));
	assert_non_null(strstr(err.msg, "nothing was changed"));
	hutch_error_clear(&err);
	static const char *const none[] = {NULL};
	assert_log(sim_stop(), none);
	_cleanup_free_ char *mlog = file_text("modprobe.log");
	assert_null(mlog); /* not even modprobe -r */

	/* a client the module refcount shows (a CUDA context, a display server), no fd visible */
	_cleanup_free_ char *fd = at("proc/4242");
	rm_rf(fd);
	module("nvidia_modeset", 2, NULL);
	sim_start();
	assert_int_equal(pci_switch("0000:03:00.0", PCI_MODE_VFIO, state, 5000, &res, &err), -EBUSY);
	assert_non_null(strstr(err.msg, "module 'nvidia_modeset' has 2 user(s)"));
	hutch_error_clear(&err);
	assert_log(sim_stop(), none);

	/* a module outside the stack holding nvidia */
	module("nvidia_modeset", 0, NULL);
	module("nvidia", 2, "nvidia_modeset");
	link_to("sys/module/nvidia/holders/some_vendor_mod", "../../some_vendor_mod");
	sim_start();
	assert_int_equal(pci_switch("0000:03:00.0", PCI_MODE_VFIO, state, 5000, &res, &err), -EBUSY);
	assert_non_null(strstr(err.msg, "held by module 'some_vendor_mod'"));
	hutch_error_clear(&err);
	assert_log(sim_stop(), none);
	_cleanup_free_ char *unb = file_text("sys/bus/pci/drivers/nvidia/unbind");
	assert_string_equal(unb, "");
}

static void test_idle_nvidia_unloads_never_unbinds(void **s UNUSED)
{
	nvidia_gpu();
	sim_start();
	struct pci_switch_result res;
	struct hutch_error err = {0};
	int r = pci_switch("0000:03:00.0", PCI_MODE_VFIO, state, 10000, &res, &err);
	if (r < 0)
		fail_msg("%s", err.msg);
	static const char *const want[] = {
		"devices/0000:03:00.0/driver_override: vfio-pci",
		"drivers_probe: 0000:03:00.0",
		"devices/0000:03:00.1/driver_override: vfio-pci",
		"drivers/snd_hda_intel/unbind: 0000:03:00.1",
		"drivers_probe: 0000:03:00.1",
		NULL,
	};
	assert_log(sim_stop(), want);
	assert_string_equal(res.steps[0], "modprobe -r nvidia_modeset nvidia");
	pci_switch_result_release(&res);
	_cleanup_free_ char *mlog = file_text("modprobe.log");
	assert_string_equal(mlog, "-r nvidia_modeset nvidia\n");
	_cleanup_free_ char *unb = file_text("sys/bus/pci/drivers/nvidia/unbind");
	assert_string_equal(unb, ""); /* never written */
}

static void test_wedged(void **s UNUSED)
{
	amd_gpu();
	/* the GPU's unbind hung: it has no driver any more, and a task is stuck in the remove */
	_cleanup_free_ char *l0 = at("sys/bus/pci/devices/0000:01:00.0/driver");
	unlink(l0);
	task(77, "bash", 'D', "nv_pci_remove", NULL);
	task(78, "sleep", 'D', "do_nanosleep", NULL); /* D state elsewhere is no wedge */
	struct pci_group g;
	assert_int_equal(pci_group_load("0000:01:00.0", state, &g, NULL), 0);
	assert_true(g.wedged);
	assert_non_null(strstr(g.wedge_why, "task 77 (bash) is stuck in nv_pci_remove"));
	assert_true(g.half_switched);
	pci_group_release(&g);

	sim_start();
	struct pci_switch_result res;
	struct hutch_error err = {0};
	assert_int_equal(pci_recover("0000:01:00.0", state, 5000, &res, &err), -EBUSY);
	assert_non_null(strstr(err.msg, "a reboot is needed"));
	assert_non_null(strstr(err.msg, "nothing was changed"));
	hutch_error_clear(&err);
	assert_int_equal(pci_switch("0000:01:00.0", PCI_MODE_VFIO, state, 5000, &res, &err), -EBUSY);
	hutch_error_clear(&err);
	static const char *const none[] = {NULL};
	assert_log(sim_stop(), none);

	/* the stack, when the wchan says less */
	put("proc/77/wchan", "0");
	put("proc/77/stack", "[<0>] __mutex_lock.constprop.0+0x1b0/0x4c0\n[<0>] device_release_driver+0x1c/0x40\n");
	assert_int_equal(pci_group_load("0000:01:00.0", state, &g, NULL), 0);
	assert_true(g.wedged);
	assert_non_null(strstr(g.wedge_why, "device_release_driver"));
	pci_group_release(&g);
}

static void test_poisoned(void **s UNUSED)
{
	amd_gpu();
	assert_int_equal(mkdir_p(state, 0700), 0);
	/* a marker from an earlier boot is stale */
	put("state/0000:01:00.1.poison", "11111111-2222-3333-4444-555555555555\n'x' stalled\n");
	struct pci_group g;
	assert_int_equal(pci_group_load("0000:01:00.0", state, &g, NULL), 0);
	assert_false(g.poisoned);
	pci_group_release(&g);
	/* this boot's */
	put("state/0000:01:00.1.poison", BOOT_ID "\n'unbind 0000:01:00.1 from snd_hda_intel' stalled\n");
	assert_int_equal(pci_group_load("0000:01:00.0", state, &g, NULL), 0);
	assert_true(g.poisoned);
	assert_non_null(strstr(g.poison_why, "stalled"));
	pci_group_release(&g);

	sim_start();
	struct pci_switch_result res;
	struct hutch_error err = {0};
	assert_int_equal(pci_switch("0000:01:00.0", PCI_MODE_VFIO, state, 5000, &res, &err), -EBUSY);
	assert_non_null(strstr(err.msg, "poisoned until the host reboots"));
	hutch_error_clear(&err);
	static const char *const none[] = {NULL};
	assert_log(sim_stop(), none);
}

static void test_stall_poisons(void **s UNUSED)
{
	amd_gpu();
	/* an unbind that never returns: a FIFO nobody reads blocks the writer's open */
	_cleanup_free_ char *u = at("sys/bus/pci/drivers/snd_hda_intel/unbind");
	unlink(u);
	assert_int_equal(mkfifo(u, 0600), 0);
	struct pci_switch_result res;
	struct hutch_error err = {0};
	sim_start();
	assert_int_equal(pci_switch("0000:01:00.0", PCI_MODE_VFIO, state, 1500, &res, &err), -ETIMEDOUT);
	assert_non_null(strstr(err.msg, "stalled at 'unbind 0000:01:00.1 from snd_hda_intel'"));
	assert_non_null(strstr(err.msg, "poisoned until the host reboots"));
	hutch_error_clear(&err);
	static const char *const before[] = {
		"devices/0000:01:00.0/driver_override: vfio-pci",
		"drivers/amdgpu/unbind: 0000:01:00.0",
		"drivers_probe: 0000:01:00.0",
		"devices/0000:01:00.1/driver_override: vfio-pci",
		NULL,
	};
	assert_log(sim_stop(), before);
	/* every function of the group is poisoned, keyed to this boot */
	for (int f = 0; f < 2; f++) {
		_cleanup_free_ char *rel = xasprintf("state/0000:01:00.%d.poison", f);
		_cleanup_free_ char *m = file_text(rel);
		assert_non_null(m);
		assert_true(!strncmp(m, BOOT_ID "\n", strlen(BOOT_ID) + 1));
	}
	/* further switches are refused */
	sim_start();
	assert_int_equal(pci_switch("0000:01:00.0", PCI_MODE_NATIVE, state, 1500, &res, &err), -EBUSY);
	hutch_error_clear(&err);
	static const char *const none[] = {NULL};
	assert_log(sim_stop(), none);
	/* the stall resolved (no task stuck): recover clears the markers and finishes the group */
	unlink(u);
	put("sys/bus/pci/drivers/snd_hda_intel/unbind", "");
	sim_start();
	if (pci_recover("0000:01:00.0", state, 10000, &res, &err) < 0)
		fail_msg("%s", err.msg);
	static const char *const rest[] = {
		"devices/0000:01:00.1/driver_override: vfio-pci",
		"drivers/snd_hda_intel/unbind: 0000:01:00.1",
		"drivers_probe: 0000:01:00.1",
		NULL,
	};
	assert_log(sim_stop(), rest);
	assert_string_equal(res.steps[0], "cleared the poison marker of 0000:01:00.0");
	pci_switch_result_release(&res);
	struct pci_group g;
	assert_int_equal(pci_group_load("0000:01:00.0", state, &g, NULL), 0);
	assert_false(g.poisoned);
	assert_int_equal(pci_group_mode(&g), PCI_MODE_VFIO);
	pci_group_release(&g);
}

static void test_root(void **s UNUSED)
{
	if (geteuid() == 0)
		skip();
	unsetenv("HUTCH_SYSFS_ROOT");
	struct hutch_error err = {0};
	assert_int_equal(pci_require_root("pci mode 0000:01:00.0 vfio", &err), -EPERM);
	assert_non_null(strstr(err.msg, "needs root"));
	assert_non_null(strstr(err.msg, "'sudo hutch pci mode 0000:01:00.0 vfio'"));
	hutch_error_clear(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addr),
		cmocka_unit_test_setup_teardown(test_no_iommu, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gpu_audio_group, setup, teardown),
		cmocka_unit_test_setup_teardown(test_native_refused_while_vm_holds_group, setup, teardown),
		cmocka_unit_test_setup_teardown(test_half_switched_recover, setup, teardown),
		cmocka_unit_test_setup_teardown(test_busy_nvidia_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_nvidia_unloads_never_unbinds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wedged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_poisoned, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stall_poisons, setup, teardown),
		cmocka_unit_test_setup_teardown(test_root, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
