/* PCI devices as sysfs shows them: the host's IOMMU and vfio-pci, a device's IOMMU group with each
 * function's driver and mode, and the flags that forbid touching it (wedged, poisoned). The switch
 * itself is in pci_switch.c. */
#include "pci.h"
#include "pci_internal.h"

#include <ctype.h>
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>

const char *pci_mode_name(enum pci_mode m)
{
	switch (m) {
	case PCI_MODE_VFIO:
		return "vfio";
	case PCI_MODE_NATIVE:
		return "native";
	case PCI_MODE_UNBOUND:
	default:
		return "unbound";
	}
}

int pci_addr_normalize(const char *in, char out[PCI_ADDR_LEN], struct hutch_error *err)
{
	/* DDDD:BB:SS.F with hex digits, the domain optional */
	static const char pat[] = "xxxx:xx:xx.f";
	char buf[PCI_ADDR_LEN];
	size_t len = in ? strlen(in) : 0;
	if (len == 7)
		snprintf(buf, sizeof(buf), "0000:%s", in);
	else if (len == 12)
		snprintf(buf, sizeof(buf), "%s", in);
	else
		goto bad;
	for (size_t i = 0; i < 12; i++) {
		char c = (char)tolower((unsigned char)buf[i]);
		if ((pat[i] == 'x' && !isxdigit((unsigned char)c)) || (pat[i] == 'f' && (c < '0' || c > '7')) ||
		    (pat[i] != 'x' && pat[i] != 'f' && c != pat[i]))
			goto bad;
		buf[i] = c;
	}
	memcpy(out, buf, PCI_ADDR_LEN);
	return 0;
bad:
	return hutch_error_set(err, EINVAL,
			       "invalid PCI address '%.40s': expected DOMAIN:BUS:SLOT.FUNCTION, e.g. 0000:01:00.0",
			       in ? in : "");
}

char *pci_sys(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	struct strbuf sb = STRBUF_INIT;
	strbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	char *p = host_path("HUTCH_SYSFS_ROOT", strbuf_str(&sb));
	strbuf_release(&sb);
	return p;
}

char *pci_proc(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	struct strbuf sb = STRBUF_INIT;
	strbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	char *p = host_path("HUTCH_PROC_ROOT", strbuf_str(&sb));
	strbuf_release(&sb);
	return p;
}

/* A small sysfs or proc attribute, trailing whitespace cut; NULL when unreadable. */
char *pci_read_attr(const char *path)
{
	char *text = NULL;
	size_t len = 0;
	if (read_file(path, 64 * 1024, &text, &len, NULL) < 0)
		return NULL;
	while (len && isspace((unsigned char)text[len - 1]))
		text[--len] = 0;
	return text;
}

/* The last path component of a symlink's target ("../../drivers/vfio-pci" -> "vfio-pci"). */
bool pci_link_base(const char *path, char *out, size_t len)
{
	char buf[4096];
	ssize_t n = readlink(path, buf, sizeof(buf) - 1);
	if (n <= 0)
		return false;
	buf[n] = 0;
	const char *b = strrchr(buf, '/');
	snprintf(out, len, "%s", b ? b + 1 : buf);
	return true;
}

static unsigned read_hex(const char *dev, const char *attr)
{
	_cleanup_free_ char *p = pci_sys("/sys/bus/pci/devices/%s/%s", dev, attr);
	_cleanup_free_ char *v = pci_read_attr(p);
	long long n = 0;
	if (!v || strncmp(v, "0x", 2) || strlen(v) > 10)
		return 0;
	for (const char *s = v + 2; *s; s++) {
		if (!isxdigit((unsigned char)*s))
			return 0;
		n = n * 16 + (isdigit((unsigned char)*s) ? *s - '0' : tolower((unsigned char)*s) - 'a' + 10);
	}
	return (unsigned)n;
}

void pci_func_load(const char *addr, struct pci_func *f)
{
	memset(f, 0, sizeof(*f));
	snprintf(f->addr, sizeof(f->addr), "%s", addr);
	f->vendor = read_hex(addr, "vendor");
	f->device = read_hex(addr, "device");
	f->class_code = read_hex(addr, "class");
	_cleanup_free_ char *drv = pci_sys("/sys/bus/pci/devices/%s/driver", addr);
	if (!pci_link_base(drv, f->driver, sizeof(f->driver)))
		f->driver[0] = 0;
	_cleanup_free_ char *op = pci_sys("/sys/bus/pci/devices/%s/driver_override", addr);
	_cleanup_free_ char *ov = pci_read_attr(op);
	if (ov && strcmp(ov, "(null)"))
		snprintf(f->override, sizeof(f->override), "%s", ov);
	f->mode = !f->driver[0] ? PCI_MODE_UNBOUND : !strcmp(f->driver, "vfio-pci") ? PCI_MODE_VFIO : PCI_MODE_NATIVE;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Entry names of a directory, sorted, without dot entries; NULL when it can't be read. */
char **pci_dir_names(const char *path)
{
	DIR *d = opendir(path);
	if (!d)
		return NULL;
	char **v = xcalloc(1, sizeof(char *));
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			v = strv_push(v, xstrdup(e->d_name));
	closedir(d);
	qsort(v, strv_len(v), sizeof(char *), cmp_str);
	return v;
}

int pci_host_probe(struct pci_host *ret)
{
	struct pci_host h;
	memset(&h, 0, sizeof(h));
	_cleanup_free_ char *cl = pci_proc("/proc/cmdline");
	_cleanup_free_ char *cmdline = pci_read_attr(cl);
	static const char *const on[] = {"intel_iommu=on", "amd_iommu=on", "amd_iommu=force_isolation",
					 "iommu=pt",	   "iommu=force",  "iommu.passthrough=1"};
	for (char *tok = cmdline ? strtok(cmdline, " \t\n") : NULL; tok; tok = strtok(NULL, " \t\n"))
		for (size_t i = 0; i < ARRAY_SIZE(on); i++)
			if (!strcmp(tok, on[i]))
				h.iommu_cmdline = true;
	_cleanup_free_ char *gp = pci_sys("/sys/kernel/iommu_groups");
	_cleanup_strv_ char **groups = pci_dir_names(gp);
	h.iommu_groups = groups && groups[0];
	_cleanup_free_ char *vp = pci_sys("/sys/bus/pci/drivers/vfio-pci");
	h.vfio_loaded = access(vp, F_OK) == 0;
	_cleanup_free_ char *bp = pci_proc("/proc/sys/kernel/random/boot_id");
	_cleanup_free_ char *boot = pci_read_attr(bp);
	size_t k = 0;
	for (size_t i = 0; boot && boot[i] && k + 1 < sizeof(h.boot_id); i++)
		if (isxdigit((unsigned char)boot[i]) || boot[i] == '-')
			h.boot_id[k++] = boot[i];
	h.boot_id[k] = 0;
	*ret = h;
	return 0;
}

/* A D-state task in a driver's remove path: the device lock is held forever (reference 002). */
static const char *const remove_fns[] = {"nv_pci_remove", "pci_device_remove", "device_release_driver",
					 "pci_stop_and_remove", "vfio_pci_remove"};

static const char *mentions_remove(const char *text)
{
	for (size_t i = 0; text && i < ARRAY_SIZE(remove_fns); i++)
		if (strstr(text, remove_fns[i]))
			return remove_fns[i];
	return NULL;
}

bool pci_find_wedge(char *why, size_t len)
{
	_cleanup_free_ char *proc = pci_proc("/proc");
	_cleanup_strv_ char **pids = pci_dir_names(proc);
	for (size_t i = 0; pids && pids[i]; i++) {
		if (strspn(pids[i], "0123456789") != strlen(pids[i]))
			continue;
		_cleanup_free_ char *sp = pci_proc("/proc/%s/stat", pids[i]);
		_cleanup_free_ char *stat = pci_read_attr(sp);
		const char *close = stat ? strrchr(stat, ')') : NULL;
		if (!close || close[1] != ' ' || close[2] != 'D')
			continue;
		_cleanup_free_ char *wp = pci_proc("/proc/%s/wchan", pids[i]);
		_cleanup_free_ char *kp = pci_proc("/proc/%s/stack", pids[i]);
		_cleanup_free_ char *wchan = pci_read_attr(wp), *stack = pci_read_attr(kp);
		const char *fn = mentions_remove(wchan);
		if (!fn)
			fn = mentions_remove(stack);
		if (!fn)
			continue;
		const char *open = strchr(stat, '(');
		int clen = open && close > open ? (int)(close - open - 1) : 0;
		snprintf(why, len, "task %s (%.*s) is stuck in %s (D state)", pids[i], clen > 16 ? 16 : clen,
			 open ? open + 1 : "", fn);
		return true;
	}
	return false;
}

char *pci_poison_path(const char *state_dir, const char *addr) { return xasprintf("%s/%s.poison", state_dir, addr); }

/* The marker holds the boot id it was written in: one from an earlier boot is stale. */
static bool poisoned(const char *state_dir, const char *addr, const char *boot_id, char *why, size_t len)
{
	if (!state_dir)
		return false;
	_cleanup_free_ char *p = pci_poison_path(state_dir, addr);
	_cleanup_free_ char *v = pci_read_attr(p);
	if (!v)
		return false;
	const char *nl = strchr(v, '\n');
	size_t idlen = nl ? (size_t)(nl - v) : strlen(v);
	if (idlen != strlen(boot_id) || strncmp(v, boot_id, idlen))
		return false;
	snprintf(why, len, "%s: %s", addr, nl ? nl + 1 : "a driver switch stalled");
	return true;
}

int pci_group_load(const char *addr, const char *state_dir, struct pci_group *ret, struct hutch_error *err)
{
	char a[PCI_ADDR_LEN];
	int r = pci_addr_normalize(addr, a, err);
	if (r < 0)
		return r;
	_cleanup_free_ char *dev = pci_sys("/sys/bus/pci/devices/%s", a);
	if (access(dev, F_OK) < 0)
		return hutch_error_set(err, ENOENT, "no PCI device '%s' on this host ('hutch pci status' lists them)",
				       a);
	struct pci_group g;
	memset(&g, 0, sizeof(g));
	memcpy(g.addr, a, sizeof(g.addr));
	g.group = -1;
	char gname[32];
	_cleanup_free_ char *gl = pci_sys("/sys/bus/pci/devices/%s/iommu_group", a);
	_cleanup_strv_ char **members = NULL;
	long long gn;
	if (pci_link_base(gl, gname, sizeof(gname)) && parse_ll(gname, 0, 1 << 20, &gn) == 0) {
		g.group = (int)gn;
		_cleanup_free_ char *gd = pci_sys("/sys/kernel/iommu_groups/%d/devices", g.group);
		members = pci_dir_names(gd);
	}
	if (!members || !members[0]) {
		strv_free(members);
		members = xcalloc(2, sizeof(char *));
		members[0] = xstrdup(a);
	}
	g.n = strv_len(members);
	g.funcs = xcalloc(g.n, sizeof(*g.funcs));
	for (size_t i = 0; i < g.n; i++) {
		pci_func_load(members[i], &g.funcs[i]);
		if (g.funcs[i].mode != g.funcs[0].mode || g.funcs[i].mode == PCI_MODE_UNBOUND)
			g.half_switched = true;
	}
	struct pci_host h;
	pci_host_probe(&h);
	g.wedged = pci_find_wedge(g.wedge_why, sizeof(g.wedge_why));
	for (size_t i = 0; i < g.n && !g.poisoned; i++)
		g.poisoned = poisoned(state_dir, g.funcs[i].addr, h.boot_id, g.poison_why, sizeof(g.poison_why));
	*ret = g;
	return 0;
}

void pci_group_release(struct pci_group *g)
{
	free(g->funcs);
	memset(g, 0, sizeof(*g));
}

enum pci_mode pci_group_mode(const struct pci_group *g)
{
	return g->half_switched || !g->n ? PCI_MODE_UNBOUND : g->funcs[0].mode;
}

int pci_interesting(char ***ret_addrs, struct hutch_error *err)
{
	_cleanup_free_ char *dp = pci_sys("/sys/bus/pci/devices");
	_cleanup_strv_ char **all = pci_dir_names(dp);
	char **out = xcalloc(1, sizeof(char *));
	for (size_t i = 0; all && all[i]; i++) {
		struct pci_func f;
		pci_func_load(all[i], &f);
		if ((f.class_code >> 16) == 0x03 || f.mode == PCI_MODE_VFIO)
			out = strv_push(out, xstrdup(all[i]));
	}
	*ret_addrs = out;
	return 0;
}

char *pci_spec_block(const struct pci_group *g)
{
	struct strbuf sb = STRBUF_INIT;
	strbuf_adds(&sb, "pci: [");
	for (size_t i = 0; i < g->n; i++)
		strbuf_addf(&sb, "%s\"%s\"", i ? ", " : "", g->funcs[i].addr);
	strbuf_adds(&sb, "]\n");
	return strbuf_detach(&sb, NULL);
}

int pci_require_root(const char *argv_line, struct hutch_error *err)
{
	const char *fake = getenv("HUTCH_SYSFS_ROOT");
	if (geteuid() == 0 || (fake && *fake))
		return 0;
	return hutch_error_set(err, EPERM,
			       "switching PCI drivers needs root (it writes to /sys/bus/pci): run 'sudo hutch %s'",
			       argv_line);
}
