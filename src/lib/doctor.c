/* hutch doctor: one function per check, each adding ok, warn or fail with the exact fix. */
#include "doctor.h"

#include "backend.h"
#include "config.h"
#include "qemu.h"
#include "setup.h"
#include "template.h"
#include "unixsock.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/un.h>

#define DISK_FAIL (1ULL << 30)
#define DISK_WARN (5ULL << 30)
#define VM_NAME_MAX 63

const char *check_status_name(enum check_status s)
{
	switch (s) {
	case CHECK_OK:
		return "ok";
	case CHECK_WARN:
		return "warn";
	case CHECK_FAIL:
	default:
		return "fail";
	}
}

static void add(struct doctor_report *r, const char *name, enum check_status s, char *detail, char *fix)
{
	r->checks = xrealloc(r->checks, (r->n + 1) * sizeof(*r->checks));
	r->checks[r->n++] = (struct check){xstrdup(name), s, detail ? detail : xstrdup(""), fix};
}

/* A binary on PATH or in the sbin/libexec dirs daemons live in. */
static char *find_program(const char *name) { return path_find(name, "/usr/sbin:/sbin:/usr/libexec:/usr/lib/qemu"); }

char *doctor_host_virt(void)
{
	_cleanup_free_ char *pvm = host_path("HUTCH_SYSFS_ROOT", "/sys/module/kvm_pvm");
	if (access(pvm, F_OK) == 0)
		return xstrdup("paravirtual KVM (the kvm_pvm module is loaded): this host is itself a VM");
	_cleanup_free_ char *cpuinfo = host_path("HUTCH_PROC_ROOT", "/proc/cpuinfo");
	char *text = NULL;
	size_t len;
	bool hv = false;
	if (read_file(cpuinfo, 4 << 20, &text, &len, NULL) == 0) {
		for (char *save = NULL, *l = strtok_r(text, "\n", &save); l && !hv; l = strtok_r(NULL, "\n", &save))
			if (!strncmp(l, "flags", 5) && strstr(l, " hypervisor"))
				hv = true;
		free(text);
	}
	if (hv)
		return xstrdup("nested: this host is itself a VM (the CPU reports a hypervisor)");
	return NULL;
}

/* ---- KVM ---- */

static void check_kvm(struct store *st, const struct doctor_opts *o, struct doctor_report *r)
{
	struct hutch_error err = {0};
	if (config_accel_mode(st, ACCEL_UNSET, &r->mode, &err) < 0) {
		add(r, "config", CHECK_FAIL, xstrdup(err.msg), xstrdup("fix config.yml (see 'man hutch')"));
		hutch_error_clear(&err);
		r->mode = ACCEL_AUTO;
	}
	/* What auto would do, probing when asked. */
	int rc = store_accel(st, NULL, ACCEL_AUTO, o->probe ? PLAN_START : PLAN_RENDER, o->probe, &r->accel, &err);
	if (rc < 0) {
		add(r, "kvm", CHECK_FAIL, xasprintf("the probe could not run: %s", err.msg), NULL);
		hutch_error_clear(&err);
		return;
	}
	r->have_accel = true;
	const struct accel_result *a = &r->accel;
	enum check_status bad = r->mode == ACCEL_KVM ? CHECK_FAIL : CHECK_WARN;
	const char *cfg = r->mode == ACCEL_KVM ? " (and accel: kvm is the default: VMs will not start)" : "";
	switch (a->dev.state) {
	case KVM_DEV_MISSING:
		add(r, "kvm", bad, xasprintf("no /dev/kvm: VMs run under TCG, slowly%s", cfg),
		    xstrdup("enable virtualization (VT-x/AMD-V) in the firmware, or nested virtualization on the "
			    "host's hypervisor; then modprobe kvm_intel or kvm_amd"));
		return;
	case KVM_DEV_DENIED:
		add(r, "kvm", bad, xasprintf("/dev/kvm exists but this user cannot open it%s", cfg),
		    accel_permission_fix());
		return;
	case KVM_DEV_ERROR:
		add(r, "kvm", bad, xasprintf("cannot open /dev/kvm: %s%s", strerror(a->dev.error), cfg), NULL);
		return;
	case KVM_DEV_OK:
	default:
		break;
	}
	if (!a->have_verdict) {
		add(r, "kvm", CHECK_WARN,
		    xstrdup("/dev/kvm opens, but no probe has booted a guest with it on this host boot yet"),
		    xstrdup("hutch doctor --probe (the first start probes too)"));
		return;
	}
	const struct accel_verdict *v = &a->verdict;
	if (v->works)
		add(r, "kvm", CHECK_OK,
		    xasprintf("a probe booted a guest to its agent under KVM with -cpu %s in %llu ms%s", v->cpu,
			      (unsigned long long)v->probe_ms, a->probed ? " (just now)" : " (cached for this boot)"),
		    NULL);
	else
		add(r, "kvm", bad,
		    xasprintf("/dev/kvm opens but KVM failed its probe: %s; VMs run under TCG%s", v->detail, cfg),
		    xstrdup("nothing to fix in hutch; on a nested or paravirtual host, ask for nested "
			    "virtualization with full MSR support; 'hutch doctor --probe' tries again"));
}

static void check_host_virt(struct doctor_report *r)
{
	char *what = doctor_host_virt();
	if (what)
		add(r, "virtualization", CHECK_WARN, what,
		    xstrdup("none needed: KVM here is used only if the probe proves it"));
	else
		add(r, "virtualization", CHECK_OK, xstrdup("bare metal (no hypervisor flag, no kvm_pvm)"), NULL);
}

/* ---- QEMU ---- */

static void check_qemu(struct doctor_report *r)
{
	struct hutch_error err = {0};
	_cleanup_free_ char *qemu = NULL, *version = NULL, *machines = NULL;
	static const char *const pkg = "sudo apt-get install qemu-system-x86 qemu-utils";
	if (qemu_find_binary(&qemu, &err) < 0) {
		add(r, "qemu", CHECK_FAIL, xstrdup(err.msg), xstrdup(pkg));
		hutch_error_clear(&err);
		return;
	}
	if (qemu_version(qemu, &version, &err) < 0) {
		add(r, "qemu", CHECK_FAIL, xasprintf("%s: %s", qemu, err.msg), xstrdup(pkg));
		hutch_error_clear(&err);
		return;
	}
	add(r, "qemu", CHECK_OK, xasprintf("%s %s", qemu, version), NULL);
	if (qemu_capture(qemu, "-machine", "help", &machines, &err) < 0)
		hutch_error_clear(&err);
	bool micro = machines && strstr(machines, "\nmicrovm "), q35 = machines && strstr(machines, "\nq35 ");
	if (micro && q35)
		add(r, "machines", CHECK_OK, xstrdup("microvm (micro template) and q35 (images)"), NULL);
	else
		add(r, "machines", CHECK_FAIL, xasprintf("missing: %s%s", micro ? "" : "microvm ", q35 ? "" : "q35"),
		    xstrdup(pkg));
	_cleanup_free_ char *img = find_program("qemu-img");
	if (img)
		add(r, "qemu-img", CHECK_OK, xstrdup(img), NULL);
	else
		add(r, "qemu-img", CHECK_FAIL, xstrdup("qemu-img not found (image VMs need it)"),
		    xstrdup("sudo apt-get install qemu-utils"));
}

static void check_firmware(struct doctor_report *r)
{
	static const struct {
		enum firmware fw;
		const char *name;
	} kinds[] = {{FIRMWARE_UEFI, "uefi"}, {FIRMWARE_UEFI_SECURE, "uefi-secure"}};
	for (size_t i = 0; i < ARRAY_SIZE(kinds); i++) {
		struct hutch_error err = {0};
		_cleanup_free_ char *code = NULL, *vars = NULL;
		_cleanup_free_ char *name = xasprintf("ovmf (%s)", kinds[i].name);
		if (qemu_firmware_paths(kinds[i].fw, &code, &vars, &err) == 0 && access(code, R_OK) == 0 &&
		    access(vars, R_OK) == 0)
			add(r, name, CHECK_OK, xasprintf("%s, %s", code, vars), NULL);
		else
			add(r, name, CHECK_WARN,
			    xasprintf("firmware: %s cannot boot: %s", kinds[i].name,
				      err.msg ? err.msg : "OVMF code or vars missing"),
			    xstrdup("sudo apt-get install ovmf"));
		hutch_error_clear(&err);
	}
}

/* Optional helpers: a warning names the feature that needs them and the package. */
static void check_helpers(struct doctor_report *r)
{
	static const struct {
		const char *bin, *needed_for, *pkg;
	} h[] = {
		{"swtpm", "tpm: true", "swtpm swtpm-tools"},
		{"passt", "rootless networks and libvirt port forwards", "passt"},
		{"virtiofsd", "shares with via: virtiofs", "virtiofsd"},
		{"busybox", "the micro template", "busybox-static"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(h); i++) {
		_cleanup_free_ char *p = find_program(h[i].bin);
		bool required = !strcmp(h[i].bin, "busybox");
		if (p)
			add(r, h[i].bin, CHECK_OK, xstrdup(p), NULL);
		else
			add(r, h[i].bin, required ? CHECK_FAIL : CHECK_WARN,
			    xasprintf("%s not found: %s needs it", h[i].bin, h[i].needed_for),
			    xasprintf("sudo apt-get install %s", h[i].pkg));
	}
}

/* ---- libvirt ---- */

static void check_libvirt(struct doctor_report *r)
{
	void *h = dlopen("libvirt.so.0", RTLD_LAZY | RTLD_LOCAL);
	if (h) {
		dlclose(h);
		add(r, "libvirt", CHECK_OK, xstrdup("client library libvirt.so.0"), NULL);
	} else {
		add(r, "libvirt", CHECK_WARN, xstrdup("no libvirt client library: the libvirt backend is unavailable"),
		    xstrdup("sudo apt-get install libvirt0 libvirt-clients"));
		return;
	}
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	_cleanup_free_ char *rt = xdg && *xdg ? xstrdup(xdg) : xasprintf("/run/user/%u", (unsigned)getuid());
	static const char *const socks[] = {"virtqemud-sock", "libvirt-sock"};
	char *found = NULL;
	for (size_t i = 0; i < ARRAY_SIZE(socks) && !found; i++) {
		_cleanup_free_ char *p = xasprintf("%s/libvirt/%s", rt, socks[i]);
		int fd = unix_connect(p, NULL);
		if (fd >= 0) {
			close(fd);
			found = TAKE_PTR(p);
		}
	}
	_cleanup_free_ char *daemon = find_program("virtqemud");
	if (!daemon)
		daemon = find_program("libvirtd");
	if (found)
		add(r, "libvirt-session", CHECK_OK, xasprintf("the session daemon answers at %s", found), NULL);
	else if (daemon && getuid() == 0)
		add(r, "libvirt-session", CHECK_WARN,
		    xasprintf("no session daemon running (tried %s/libvirt/virtqemud-sock, libvirt-sock), and as root "
			      "a qemu:///session connection does not autospawn one",
			      rt),
		    xstrdup("run it under an init: hutch service render --init systemd|supervisord"));
	else if (daemon)
		add(r, "libvirt-session", CHECK_OK,
		    xasprintf("no session daemon running (tried %s/libvirt/virtqemud-sock, libvirt-sock); a "
			      "qemu:///session connection autospawns %s",
			      rt, daemon),
		    NULL);
	else
		add(r, "libvirt-session", CHECK_WARN, xstrdup("no libvirt daemon installed (virtqemud or libvirtd)"),
		    xstrdup("sudo apt-get install libvirt-daemon libvirt-daemon-driver-qemu"));
	free(found);

	_cleanup_free_ char *conf = setup_libvirt_conf_path();
	if (conf) {
		char *text = NULL;
		size_t len;
		_cleanup_free_ char *edited = NULL;
		bool have = read_file(conf, 1 << 20, &text, &len, NULL) == 0;
		bool set = have && setup_libvirt_conf_edit(text, &edited) == 0;
		free(text);
		if (set)
			add(r, "libvirt-uri", CHECK_OK, xasprintf("uri_default is set in %s", conf), NULL);
		else
			add(r, "libvirt-uri", CHECK_WARN,
			    xasprintf("no uri_default in %s: virsh without -c talks to qemu:///system", conf),
			    xstrdup("hutch setup"));
	}
}

/* ---- the micro template ---- */

static void check_micro(struct doctor_report *r)
{
	struct hutch_error err = {0};
	_cleanup_free_ char *k = NULL, *rel = NULL;
	if (template_find_kernel("/boot", &k, &rel, &err) < 0) {
		add(r, "kernel", CHECK_FAIL, xstrdup(err.msg), xstrdup("sudo apt-get install linux-image-amd64"));
		hutch_error_clear(&err);
	} else {
		add(r, "kernel", CHECK_OK, xasprintf("%s (%s)", k, rel), NULL);
		_cleanup_free_ char *dep = xasprintf("/lib/modules/%s/modules.dep", rel);
		if (access(dep, R_OK) == 0)
			add(r, "modules", CHECK_OK, xasprintf("/lib/modules/%s", rel), NULL);
		else
			add(r, "modules", CHECK_FAIL, xasprintf("no %s: the micro VM cannot load virtio modules", dep),
			    xasprintf("sudo apt-get install --reinstall linux-image-%s kmod", rel));
	}
	_cleanup_free_ char *agent = NULL;
	if (agent_binary_path(&agent, &err) == 0)
		add(r, "agent", CHECK_OK, xstrdup(agent), NULL);
	else {
		add(r, "agent", CHECK_FAIL, xstrdup(err.msg), xstrdup("rebuild hutch (make), or set HUTCH_AGENT"));
		hutch_error_clear(&err);
	}
}

/* ---- this user's dirs ---- */

static void check_runtime(const struct store *st, struct doctor_report *r)
{
	struct stat s;
	/* the longest socket path: RUNTIME/NAME(63)/qmp-user.sock */
	size_t longest = strlen(st->runtime_dir) + 1 + VM_NAME_MAX + strlen("/qmp-user.sock");
	size_t limit = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;
	if (lstat(st->runtime_dir, &s) < 0) {
		add(r, "runtime-dir", longest > limit ? CHECK_WARN : CHECK_OK,
		    xasprintf("%s does not exist yet (made on first start); socket paths up to %zu of %zu bytes",
			      st->runtime_dir, longest, limit),
		    longest > limit ? xstrdup("use a shorter XDG_RUNTIME_DIR or HUTCH_HOME") : NULL);
		return;
	}
	if (!S_ISDIR(s.st_mode) || s.st_uid != getuid() || (s.st_mode & 077)) {
		add(r, "runtime-dir", CHECK_FAIL,
		    xasprintf("%s is %s, owner uid %u, mode %04o: it must be this user's own directory, mode 0700",
			      st->runtime_dir, S_ISDIR(s.st_mode) ? "a directory" : "not a directory",
			      (unsigned)s.st_uid, (unsigned)(s.st_mode & 07777)),
		    xasprintf("chmod 700 %s (or remove it if it is not yours)", st->runtime_dir));
		return;
	}
	if (longest > limit)
		add(r, "runtime-dir", CHECK_WARN,
		    xasprintf("%s: a VM name of %d characters makes a %zu-byte socket path (the limit is %zu)",
			      st->runtime_dir, VM_NAME_MAX, longest, limit),
		    xstrdup("use a shorter XDG_RUNTIME_DIR or HUTCH_HOME, or shorter VM names"));
	else
		add(r, "runtime-dir", CHECK_OK,
		    xasprintf("%s (mode 0700, socket paths up to %zu of %zu bytes)", st->runtime_dir, longest, limit),
		    NULL);
}

static void check_disk(struct doctor_report *r, const char *what, const char *dir)
{
	/* the dir may not exist yet: measure the nearest existing parent */
	_cleanup_free_ char *p = xstrdup(dir);
	struct statvfs v;
	while (statvfs(p, &v) < 0) {
		char *slash = strrchr(p, '/');
		if (!slash || slash == p) {
			add(r, what, CHECK_WARN, xasprintf("cannot measure free space under %s", dir), NULL);
			return;
		}
		*slash = 0;
	}
	uint64_t free_b = (uint64_t)v.f_bavail * v.f_frsize;
	char buf[32];
	format_size(free_b, buf, sizeof(buf));
	enum check_status s = free_b < DISK_FAIL ? CHECK_FAIL : (free_b < DISK_WARN ? CHECK_WARN : CHECK_OK);
	add(r, what, s, xasprintf("%s free under %s", buf, dir),
	    s == CHECK_OK ? NULL : xstrdup("free some space ('hutch image prune' removes unused images)"));
}

static void check_userns(struct doctor_report *r)
{
	_cleanup_free_ char *clone = host_path("HUTCH_PROC_ROOT", "/proc/sys/kernel/unprivileged_userns_clone");
	_cleanup_free_ char *max = host_path("HUTCH_PROC_ROOT", "/proc/sys/user/max_user_namespaces");
	char *a = NULL, *b = NULL;
	size_t len;
	bool off = read_file(clone, 64, &a, &len, NULL) == 0 && a[0] == '0';
	bool zero = read_file(max, 64, &b, &len, NULL) == 0 && b[0] == '0';
	free(a);
	free(b);
	if (off || zero)
		add(r, "userns", CHECK_WARN,
		    xstrdup("unprivileged user namespaces are off: virtiofsd's sandbox cannot run (shares fall back to "
			    "9p)"),
		    xstrdup(off ? "sudo sysctl -w kernel.unprivileged_userns_clone=1"
				: "sudo sysctl -w user.max_user_namespaces=15000"));
	else
		add(r, "userns", CHECK_OK, xstrdup("unprivileged user namespaces are available"), NULL);
}

static void check_linger(struct doctor_report *r)
{
	const char *u = user_name();
	_cleanup_free_ char *p = xasprintf("/var/lib/systemd/linger/%s", u);
	if (access("/run/systemd/system", F_OK) < 0)
		add(r, "linger", CHECK_WARN, xstrdup("systemd is not running here: autostart units cannot run"),
		    xstrdup("run hutch's VMs from your own init (see 'hutch service render --init supervisord')"));
	else if (access(p, F_OK) == 0)
		add(r, "linger", CHECK_OK, xasprintf("enabled for %s: autostart VMs start at boot", u), NULL);
	else
		add(r, "linger", CHECK_WARN, xasprintf("off for %s: autostart VMs start only at login", u),
		    xasprintf("loginctl enable-linger %s", u));
}

void doctor_run(struct store *st, const struct doctor_opts *o, struct doctor_report *ret)
{
	struct doctor_report r;
	memset(&r, 0, sizeof(r));
	check_qemu(&r);
	check_kvm(st, o, &r);
	check_host_virt(&r);
	check_firmware(&r);
	check_helpers(&r);
	check_micro(&r);
	check_libvirt(&r);
	check_runtime(st, &r);
	check_disk(&r, "disk (data)", st->data_dir);
	check_disk(&r, "disk (cache)", st->cache_dir);
	check_userns(&r);
	check_linger(&r);
	*ret = r;
}

size_t doctor_failed(const struct doctor_report *r)
{
	size_t n = 0;
	for (size_t i = 0; i < r->n; i++)
		n += r->checks[i].status == CHECK_FAIL;
	return n;
}

void doctor_report_release(struct doctor_report *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->checks[i].name);
		free(r->checks[i].detail);
		free(r->checks[i].fix);
	}
	free(r->checks);
	memset(r, 0, sizeof(*r));
}
