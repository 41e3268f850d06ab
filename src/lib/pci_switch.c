/* Switching a whole IOMMU group between vfio-pci and its native drivers (reference 002's gpu mode and
 * gpu recover). A switch is a plan of steps made from what sysfs says, checked against the refusal
 * rules before anything is written, then run by a child process under a deadline: a sysfs write
 * can block forever in the kernel, and the parent must be able to walk away, poison the device and
 * say so. */
#include "pci.h"
#include "pci_internal.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

/* The NVIDIA module stack, users first: modprobe -r unloads them in this order. */
static const char *const nv_mods[] = {"nvidia_drm", "nvidia_modeset", "nvidia_uvm", "nvidia_peermem", "nvidia"};

static bool nv_family(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(nv_mods); i++)
		if (!strcmp(name, nv_mods[i]))
			return true;
	return false;
}

static bool module_loaded(const char *m)
{
	_cleanup_free_ char *p = pci_sys("/sys/module/%s", m);
	return access(p, F_OK) == 0;
}

/* A process holding an open file whose path is `node`, or starts with it when prefix is set. Found
 * with readlink on /proc/PID/fd/N: the device nodes themselves are never opened (opening
 * /dev/nvidia* takes a reference on the GPU, which is what must not happen). */
static bool fd_holder(const char *node, bool prefix, char *why, size_t len)
{
	_cleanup_free_ char *proc = pci_proc("/proc");
	_cleanup_strv_ char **pids = pci_dir_names(proc);
	size_t nlen = strlen(node);
	for (size_t i = 0; pids && pids[i]; i++) {
		if (strspn(pids[i], "0123456789") != strlen(pids[i]))
			continue;
		_cleanup_free_ char *fdd = pci_proc("/proc/%s/fd", pids[i]);
		_cleanup_strv_ char **fds = pci_dir_names(fdd);
		for (size_t k = 0; fds && fds[k]; k++) {
			char target[256];
			_cleanup_free_ char *lp = xasprintf("%s/%s", fdd, fds[k]);
			ssize_t n = readlink(lp, target, sizeof(target) - 1);
			if (n <= 0)
				continue;
			target[n] = 0;
			if (strncmp(target, node, nlen) || (!prefix && target[nlen]))
				continue;
			_cleanup_free_ char *cp = pci_proc("/proc/%s/comm", pids[i]);
			_cleanup_free_ char *comm = pci_read_attr(cp);
			snprintf(why, len, "process %.16s (%.32s) has %.64s open", pids[i], comm ? comm : "?", target);
			return true;
		}
	}
	return false;
}

/* The preflight gate before unloading nvidia (reference 002): every loaded module of the stack may be
 * held only by others of the stack, and none may have users beyond those (refcount > holders means
 * an open /dev/nvidia*, a CUDA context, a display server); and no process may have /dev/nvidia* open. */
static bool nvidia_busy(char *why, size_t len)
{
	for (size_t i = 0; i < ARRAY_SIZE(nv_mods); i++) {
		if (!module_loaded(nv_mods[i]))
			continue;
		_cleanup_free_ char *hp = pci_sys("/sys/module/%s/holders", nv_mods[i]);
		_cleanup_free_ char *rp = pci_sys("/sys/module/%s/refcnt", nv_mods[i]);
		_cleanup_strv_ char **holders = pci_dir_names(hp);
		_cleanup_free_ char *rc = pci_read_attr(rp);
		long long refs = 0;
		for (size_t k = 0; holders && holders[k]; k++)
			if (!nv_family(holders[k])) {
				snprintf(why, len, "module '%s' is held by module '%.40s'", nv_mods[i], holders[k]);
				return true;
			}
		if (!rc || parse_ll(rc, 0, 1LL << 40, &refs) < 0) {
			snprintf(why, len, "cannot read the refcount of module '%s'", nv_mods[i]);
			return true;
		}
		if (refs > (long long)strv_len(holders)) {
			snprintf(
				why, len,
				"module '%s' has %lld user(s) besides its modules (an open /dev/nvidia*, a CUDA context "
				"or a display server)",
				nv_mods[i], refs - (long long)strv_len(holders));
			return true;
		}
	}
	return fd_holder("/dev/nvidia", true, why, len);
}

/* ---- plans ---- */

enum step_kind { STEP_WRITE, STEP_RUN, STEP_RUN_OPTIONAL };

struct step {
	enum step_kind kind;
	char *path, *value; /* STEP_WRITE */
	char **argv;	    /* STEP_RUN */
	char *label;
};

struct plan {
	struct step *v;
	size_t n;
};

static void plan_release(struct plan *p)
{
	for (size_t i = 0; i < p->n; i++) {
		free(p->v[i].path);
		free(p->v[i].value);
		strv_free(p->v[i].argv);
		free(p->v[i].label);
	}
	free(p->v);
	memset(p, 0, sizeof(*p));
}

static struct step *plan_add(struct plan *p, enum step_kind k, char *label)
{
	p->v = xrealloc(p->v, (p->n + 1) * sizeof(*p->v));
	struct step *s = &p->v[p->n++];
	*s = (struct step){.kind = k, .label = label};
	return s;
}

static void plan_write(struct plan *p, char *path, const char *value, char *label)
{
	struct step *s = plan_add(p, STEP_WRITE, label);
	s->path = path;
	s->value = xstrdup(value);
}

static void plan_run(struct plan *p, enum step_kind k, char **argv)
{
	struct strbuf sb = STRBUF_INIT;
	for (size_t i = 0; argv[i]; i++)
		strbuf_addf(&sb, "%s%s", i ? " " : "", argv[i]);
	plan_add(p, k, strbuf_detach(&sb, NULL))->argv = argv;
}

static char **argv_of(const char *first, ...)
{
	va_list ap;
	char **v = xcalloc(1, sizeof(char *));
	va_start(ap, first);
	for (const char *a = first; a; a = va_arg(ap, const char *))
		v = strv_push(v, xstrdup(a));
	va_end(ap);
	return v;
}

static void plan_unbind(struct plan *p, const struct pci_func *f)
{
	plan_write(p, pci_sys("/sys/bus/pci/drivers/%s/unbind", f->driver), f->addr,
		   xasprintf("unbind %s from %s", f->addr, f->driver));
}

static void plan_probe(struct plan *p, const struct pci_func *f)
{
	plan_write(p, pci_sys("/sys/bus/pci/drivers_probe"), f->addr, xasprintf("drivers_probe %s", f->addr));
}

/* To vfio-pci: nvidia is never unbound through sysfs; its modules are unloaded (refcount-guarded,
 * EBUSY instead of a hang) after the busy gate passed. Other drivers are unbound per function. */
static int plan_vfio(const struct pci_group *g, const struct pci_host *h, struct plan *p, struct hutch_error *err)
{
	bool nv = false;
	for (size_t i = 0; i < g->n; i++)
		nv |= nv_family(g->funcs[i].driver);
	if (nv) {
		char why[256];
		if (nvidia_busy(why, sizeof(why)))
			return hutch_error_set(err, EBUSY,
					       "'%s' is on nvidia and in use: %s; refusing to switch (nothing was "
					       "changed): stop what uses the GPU and try again",
					       g->addr, why);
		char **argv = argv_of("modprobe", "-r", NULL);
		for (size_t i = 0; i < ARRAY_SIZE(nv_mods); i++)
			if (module_loaded(nv_mods[i]))
				argv = strv_push(argv, xstrdup(nv_mods[i]));
		plan_run(p, STEP_RUN, argv);
	}
	if (!h->vfio_loaded)
		plan_run(p, STEP_RUN, argv_of("modprobe", "vfio-pci", NULL));
	for (size_t i = 0; i < g->n; i++) {
		const struct pci_func *f = &g->funcs[i];
		if (f->mode == PCI_MODE_VFIO && !strcmp(f->override, "vfio-pci"))
			continue;
		plan_write(p, pci_sys("/sys/bus/pci/devices/%s/driver_override", f->addr), "vfio-pci",
			   xasprintf("driver_override %s = vfio-pci", f->addr));
		if (f->mode == PCI_MODE_VFIO)
			continue;
		if (f->driver[0] && !nv_family(f->driver))
			plan_unbind(p, f);
		plan_probe(p, f);
	}
	return 0;
}

/* To native: the override is cleared, vfio-pci lets go, the driver the device's modalias names is
 * loaded (blacklists honoured), and the kernel probes. Refused while a VM holds the group. */
static int plan_native(const struct pci_group *g, struct plan *p, struct hutch_error *err)
{
	char why[256];
	_cleanup_free_ char *node = xasprintf("/dev/vfio/%d", g->group);
	if (g->group >= 0 && fd_holder(node, false, why, sizeof(why)))
		return hutch_error_set(err, EBUSY,
				       "'%s' is in use by a VM: %s; refusing to switch (nothing was changed)", g->addr,
				       why);
	for (size_t i = 0; i < g->n; i++) {
		const struct pci_func *f = &g->funcs[i];
		if (f->mode == PCI_MODE_NATIVE && !f->override[0])
			continue;
		plan_write(p, pci_sys("/sys/bus/pci/devices/%s/driver_override", f->addr), "",
			   xasprintf("driver_override %s cleared", f->addr));
		if (f->mode == PCI_MODE_VFIO)
			plan_unbind(p, f);
		_cleanup_free_ char *mp = pci_sys("/sys/bus/pci/devices/%s/modalias", f->addr);
		_cleanup_free_ char *alias = pci_read_attr(mp);
		if (alias && *alias &&
		    strspn(alias, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:*") == strlen(alias))
			plan_run(p, STEP_RUN_OPTIONAL, argv_of("modprobe", "-b", "-q", alias, NULL));
		if (f->mode != PCI_MODE_NATIVE)
			plan_probe(p, f);
	}
	return 0;
}

/* ---- running a plan ---- */

static int run_argv(char **argv)
{
	_cleanup_free_ char *bin = path_find(argv[0], "/usr/sbin:/sbin");
	if (!bin)
		return 127;
	pid_t pid = fork();
	if (pid < 0)
		return 126;
	if (pid == 0) {
		int nul = open("/dev/null", O_RDWR);
		dup2(nul, 0);
		dup2(nul, 1);
		execv(bin, argv);
		_exit(127);
	}
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* The child: each step in order, its result (0, errno, or 1000 + exit status) on the pipe. */
_Noreturn static void run_steps(const struct plan *p, int fd)
{
	for (size_t i = 0; i < p->n; i++) {
		const struct step *s = &p->v[i];
		int res = 0;
		if (s->kind == STEP_WRITE) {
			/* O_APPEND: sysfs ignores the offset, and a plain file (a test's fake) keeps every write */
			int w = open(s->path, O_WRONLY | O_APPEND | O_CLOEXEC);
			_cleanup_free_ char *line = xasprintf("%s\n", s->value);
			if (w < 0 || write(w, line, strlen(line)) != (ssize_t)strlen(line))
				res = errno ? errno : EIO;
			if (w >= 0 && close(w) < 0 && !res)
				res = errno;
		} else {
			int st = run_argv(s->argv);
			res = st && s->kind == STEP_RUN ? 1000 + st : 0;
		}
		if (write(fd, &res, sizeof(res)) != sizeof(res) || res)
			_exit(1);
	}
	_exit(0);
}

static void poison(const struct pci_group *g, const char *state_dir, const char *boot_id, const char *what)
{
	if (mkdir_p(state_dir, 0700) < 0)
		return;
	for (size_t i = 0; i < g->n; i++) {
		_cleanup_free_ char *p = pci_poison_path(state_dir, g->funcs[i].addr);
		_cleanup_free_ char *v = xasprintf("%s\n%s\n", boot_id[0] ? boot_id : "unknown", what);
		write_file_atomic(p, v, strlen(v), 0644, NULL);
	}
}

static int run_plan(const struct pci_group *g, const struct plan *p, const char *state_dir, const char *boot_id,
		    uint64_t deadline, struct pci_switch_result *res, struct hutch_error *err)
{
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return hutch_error_set(err, errno, "pipe: %s", strerror(errno));
	pid_t pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return hutch_error_set(err, errno, "fork: %s", strerror(errno));
	}
	if (pid == 0) {
		close(pfd[0]);
		run_steps(p, pfd[1]);
	}
	close(pfd[1]);
	_cleanup_close_ int rfd = pfd[0];
	int r = 0;
	for (size_t i = 0; i < p->n && r == 0; i++) {
		struct pollfd pf = {.fd = rfd, .events = POLLIN};
		uint64_t now = now_ms();
		int n = now < deadline ? poll(&pf, 1, (int)(deadline - now)) : 0;
		if (n < 0 && errno == EINTR) {
			i--;
			continue;
		}
		int step_res;
		if (n <= 0) {
			/* Stuck in the kernel: a task in D state can't be killed, and it holds the device lock.
			 * Leave it; make sure nothing touches the device again this boot. */
			kill(pid, SIGKILL);
			waitpid(pid, NULL, WNOHANG);
			_cleanup_free_ char *what = xasprintf("'%s' stalled", p->v[i].label);
			poison(g, state_dir, boot_id, what);
			return hutch_error_set(
				err, ETIMEDOUT,
				"switching '%s' stalled at '%s' past the deadline: the device is poisoned "
				"until the host reboots",
				g->addr, p->v[i].label);
		}
		if (read_full(rfd, &step_res, sizeof(step_res)) != sizeof(step_res))
			step_res = EIO;
		if (step_res == 0) {
			res->steps = strv_push(res->steps, xstrdup(p->v[i].label));
			res->changed = true;
		} else if (step_res >= 1000) {
			r = hutch_error_set(err, EBUSY, "'%s' failed (exit status %d)%s", p->v[i].label,
					    step_res - 1000,
					    p->v[i].argv && !strcmp(p->v[i].argv[1], "-r")
						    ? ": a module is in use, so nothing was unbound"
						    : "");
		} else {
			r = hutch_error_set(err, step_res, "%s: %s", p->v[i].label, strerror(step_res));
		}
	}
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return r;
}

/* After drivers_probe the device may still be probing asynchronously: wait for it, within the deadline. */
static int settle(const struct pci_group *g, enum pci_mode target, uint64_t deadline, struct pci_switch_result *res,
		  struct hutch_error *err)
{
	for (;;) {
		size_t bad = SIZE_MAX;
		struct pci_func f;
		for (size_t i = 0; i < g->n && bad == SIZE_MAX; i++) {
			pci_func_load(g->funcs[i].addr, &f);
			if (target == PCI_MODE_VFIO ? f.mode != PCI_MODE_VFIO : f.mode != PCI_MODE_NATIVE)
				bad = i;
		}
		if (bad == SIZE_MAX)
			return 0;
		if (now_ms() >= deadline) {
			if (target == PCI_MODE_NATIVE && f.mode == PCI_MODE_UNBOUND) {
				res->steps =
					strv_push(res->steps, xasprintf("%s has no driver now: no native driver for it "
									"is loaded",
									f.addr));
				return 0;
			}
			return hutch_error_set(err, EIO, "after the switch '%s' is %s%s%s, not on %s", f.addr,
					       f.driver[0] ? "on '" : "unbound", f.driver, f.driver[0] ? "'" : "",
					       target == PCI_MODE_VFIO ? "vfio-pci" : "a native driver");
		}
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

static int do_switch(const struct pci_group *g, enum pci_mode target, const char *state_dir, uint64_t deadline_ms,
		     struct pci_switch_result *ret, struct hutch_error *err)
{
	struct pci_host h;
	pci_host_probe(&h);
	if (g->group < 0 || !h.iommu_groups)
		return hutch_error_set(
			err, ENODEV,
			"'%s' is in no IOMMU group: the IOMMU is off; add intel_iommu=on (or amd_iommu=on) "
			"iommu=pt to the kernel command line and reboot",
			g->addr);
	if (g->wedged)
		return hutch_error_set(err, EBUSY, "a reboot is needed: %s; nothing was changed", g->wedge_why);
	uint64_t deadline = now_ms() + (deadline_ms ? deadline_ms : PCI_DEADLINE_MS_DEFAULT);
	struct plan p = {0};
	int r = target == PCI_MODE_VFIO ? plan_vfio(g, &h, &p, err) : plan_native(g, &p, err);
	if (r == 0 && p.n)
		r = run_plan(g, &p, state_dir, h.boot_id, deadline, ret, err);
	plan_release(&p);
	if (r == 0)
		r = settle(g, target, deadline, ret, err);
	return r;
}

int pci_switch(const char *addr, enum pci_mode target, const char *state_dir, uint64_t deadline_ms,
	       struct pci_switch_result *ret, struct hutch_error *err)
{
	struct pci_group g;
	struct pci_switch_result res = {0};
	int r = pci_group_load(addr, state_dir, &g, err);
	if (r < 0)
		return r;
	if (g.poisoned)
		r = hutch_error_set(
			err, EBUSY,
			"'%s' is poisoned until the host reboots (a driver switch stalled during this boot: "
			"%s); reboot, or 'hutch pci recover %s' if no task is stuck",
			g.addr, g.poison_why, g.addr);
	else
		r = do_switch(&g, target, state_dir, deadline_ms, &res, err);
	pci_group_release(&g);
	if (r < 0) {
		pci_switch_result_release(&res);
		return r;
	}
	*ret = res;
	return 0;
}

int pci_recover(const char *addr, const char *state_dir, uint64_t deadline_ms, struct pci_switch_result *ret,
		struct hutch_error *err)
{
	struct pci_group g;
	struct pci_switch_result res = {0};
	int r = pci_group_load(addr, state_dir, &g, err);
	if (r < 0)
		return r;
	if (g.wedged) {
		r = hutch_error_set(err, EBUSY, "a reboot is needed: %s; nothing was changed", g.wedge_why);
		pci_group_release(&g);
		return r;
	}
	/* A bind on a wedged card would add a second stuck task; on a healthy one a stale marker goes. */
	for (size_t i = 0; i < g.n; i++) {
		_cleanup_free_ char *pp = pci_poison_path(state_dir, g.funcs[i].addr);
		if (unlink(pp) == 0)
			res.steps = strv_push(res.steps, xasprintf("cleared the poison marker of %s", g.funcs[i].addr));
	}
	r = do_switch(&g, PCI_MODE_VFIO, state_dir, deadline_ms, &res, err);
	pci_group_release(&g);
	if (r < 0) {
		pci_switch_result_release(&res);
		return r;
	}
	*ret = res;
	return 0;
}

void pci_switch_result_release(struct pci_switch_result *r)
{
	strv_free(r->steps);
	memset(r, 0, sizeof(*r));
}
