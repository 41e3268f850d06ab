/* Share planning: spec -> host dirs checked, via resolved, QEMU arguments and the micro command line.
 *
 * 9p is QEMU's own file server: `-fsdev local` with security_model=mapped-xattr, which runs as the
 * user and keeps the guest's ownership and modes in user.virtfs.* xattrs on the host files. On a host
 * file system without user xattrs, a read-write share falls back to security_model=none with a
 * warning (files are then the user's own, and chown in the guest fails quietly). A read-only share
 * uses security_model=none: the guest writes nothing there that needs mapping, and mapped-xattr cannot
 * read a symlink the host made (QEMU opens it O_NOFOLLOW as its own mapped symlink file: ELOOP), which
 * a flatpak installation is full of. readonly=on is enforced by QEMU,
 * so a guest write gets EROFS whatever the guest does.
 *
 * virtiofs needs virtiofsd (one per share, run by the monitor: monitor_shares.c) with
 * --sandbox namespace, hence user namespaces; Debian 12's 1.5 has no --readonly, so a read-only share
 * there is carried by 9p when via is auto, and refused when via is virtiofs (the guest's ro mount
 * alone is not enforcement). */
#include "shares.h"

#include "client.h"
#include "qemu.h"

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>

#define SHARE_TAG_MAX 36 /* virtiofs tags are at most 36 bytes */
#define HOME_COPY_MAX_DEPTH 32

const char *shares_via_name(enum share_via v)
{
	switch (v) {
	case SHARE_9P:
		return "9p";
	case SHARE_VIRTIOFS:
		return "virtiofs";
	case SHARE_AUTO:
	default:
		return "auto";
	}
}

void shares_release(struct shares *s)
{
	for (size_t i = 0; s && i < s->n; i++) {
		struct share_plan *p = &s->v[i];
		free(p->tag);
		free(p->host);
		free(p->mount);
		free(p->why);
		free(p->warning);
		free(p->sock);
	}
	if (s) {
		free(s->v);
		memset(s, 0, sizeof(*s));
	}
}

/* ---- what the host offers ---- */

static bool userns_works(void)
{
	pid_t pid = fork();
	if (pid < 0)
		return false;
	if (pid == 0)
		_exit(unshare(CLONE_NEWUSER) == 0 ? 0 : 1);
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* `unshare --map-auto --map-root-user true`: newuidmap/newgidmap and the user's subordinate ids. */
static bool userns_map_auto_works(void)
{
	if (access(SHARES_UNSHARE, X_OK) < 0)
		return false;
	pid_t pid = fork();
	if (pid < 0)
		return false;
	if (pid == 0) {
		int nul = open("/dev/null", O_RDWR);
		if (nul >= 0) {
			dup2(nul, 0);
			dup2(nul, 1);
			dup2(nul, 2);
		}
		execl(SHARES_UNSHARE, SHARES_UNSHARE, "--map-auto", "--map-root-user", "true", (char *)NULL);
		_exit(127);
	}
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

void shares_host_probe(struct shares_host *ret)
{
	memset(ret, 0, sizeof(*ret));
	const char *bin = getenv("HUTCH_VIRTIOFSD");
	bool chosen = bin && *bin;
	if (!chosen)
		bin = "/usr/libexec/virtiofsd";
	if (access(bin, X_OK) < 0 && !chosen)
		bin = SHARES_QEMU_VIRTIOFSD;
	if (access(bin, X_OK) == 0) {
		/* the C one calls setgroups() before it reads its options: --help fails as a user */
		_cleanup_free_ char *help = NULL;
		ret->userns_wrap = !strcmp(bin, SHARES_QEMU_VIRTIOFSD);
		if (!ret->userns_wrap && qemu_capture(bin, "--help", NULL, &help, NULL) == 0)
			ret->readonly = strstr(help, "--readonly") != NULL;
		if (!ret->userns_wrap || userns_map_auto_works())
			ret->virtiofsd = xstrdup(bin);
	}
	ret->userns = userns_works();
}

void shares_host_release(struct shares_host *h)
{
	free(h->virtiofsd);
	memset(h, 0, sizeof(*h));
}

/* ---- paths ---- */

static char *expand_home(const char *p)
{
	const char *home = getenv("HOME");
	if (home && *home && p[0] == '~' && (p[1] == '/' || p[1] == 0))
		return xasprintf("%s%s", home, p + 1);
	return xstrdup(p);
}

char *shares_home_mount(const struct vm_spec *spec)
{
	if (spec->source == SOURCE_TEMPLATE)
		return xstrdup("/root");
	const char *u = spec->ssh_user && *spec->ssh_user ? spec->ssh_user : NULL;
	if (!u) {
		const char *host = user_name();
		u = host && *host && strcmp(host, "root") != 0 ? host : "hutch";
	}
	return xasprintf("/home/%s", u);
}

/* A missing, non-directory or unreadable host dir is an error before QEMU runs. */
static int check_host_dir(const char *vm, const struct share_plan *p, struct hutch_error *err)
{
	struct stat st;
	const char *what = p->home ? "the shared home" : NULL;
	_cleanup_free_ char *subject =
		what ? xasprintf("%s of VM '%s'", what, vm) : xasprintf("share '%s' of VM '%s'", p->tag, vm);
	if (stat(p->host, &st) < 0)
		return hutch_error_set(err, errno, "%s: host path '%s' %s", subject, p->host,
				       errno == ENOENT ? "does not exist" : strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return hutch_error_set(err, ENOTDIR, "%s: host path '%s' is not a directory", subject, p->host);
	if (access(p->host, R_OK | X_OK) < 0)
		return hutch_error_set(err, EACCES, "%s: host path '%s' is not readable by you", subject, p->host);
	return 0;
}

/* ENOTSUP from a read of a user xattr: this file system keeps none (getxattr changes nothing). */
static bool user_xattrs(const char *dir)
{
	char b[1];
	return !(getxattr(dir, "user.hutch.probe", b, 0) < 0 && (errno == ENOTSUP || errno == EOPNOTSUPP));
}

/* ---- the home dir: made on first start, filled from the template ---- */

static int copy_tree(int sfd, int dfd, int depth, struct hutch_error *err);

static int copy_entry(int sfd, int dfd, const char *name, int depth, struct hutch_error *err)
{
	struct stat st;
	if (fstatat(sfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return hutch_error_set(err, errno, "home template: '%s': %s", name, strerror(errno));
	if (S_ISDIR(st.st_mode)) {
		if (mkdirat(dfd, name, st.st_mode & 07777) < 0 && errno != EEXIST)
			return hutch_error_set(err, errno, "home: cannot create '%s': %s", name, strerror(errno));
		_cleanup_close_ int s2 = openat(sfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		_cleanup_close_ int d2 = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (s2 < 0 || d2 < 0)
			return hutch_error_set(err, errno, "home template: '%s': %s", name, strerror(errno));
		return copy_tree(s2, d2, depth + 1, err);
	}
	if (S_ISLNK(st.st_mode)) {
		char target[PATH_MAX];
		ssize_t n = readlinkat(sfd, name, target, sizeof(target) - 1);
		if (n < 0)
			return hutch_error_set(err, errno, "home template: '%s': %s", name, strerror(errno));
		target[n] = 0;
		if (symlinkat(target, dfd, name) < 0)
			return hutch_error_set(err, errno, "home: cannot create '%s': %s", name, strerror(errno));
		return 0;
	}
	if (!S_ISREG(st.st_mode))
		return 0; /* sockets, fifos, devices: not a home's content */
	_cleanup_close_ int in = openat(sfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	_cleanup_close_ int out = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st.st_mode & 07777);
	if (in < 0 || out < 0)
		return hutch_error_set(err, errno, "home: cannot copy '%s': %s", name, strerror(errno));
	char buf[65536];
	ssize_t n;
	while ((n = read(in, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
		if (n > 0 && write_all(out, buf, (size_t)n) < 0)
			return hutch_error_set(err, errno, "home: cannot copy '%s': %s", name, strerror(errno));
	if (n < 0)
		return hutch_error_set(err, errno, "home template: '%s': %s", name, strerror(errno));
	return 0;
}

static int copy_tree(int sfd, int dfd, int depth, struct hutch_error *err)
{
	if (depth > HOME_COPY_MAX_DEPTH)
		return hutch_error_set(err, ELOOP, "home template: nested deeper than %d dirs", HOME_COPY_MAX_DEPTH);
	int fd = dup(sfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return hutch_error_set(err, errno, "home template: %s", strerror(errno));
	}
	struct dirent *de;
	int r = 0;
	while (r == 0 && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			r = copy_entry(sfd, dfd, de->d_name, depth, err);
	closedir(d);
	return r;
}

/* The home dir appears whole or not at all: made and filled beside, then renamed into place. */
static int home_make(const char *dir, const char *tmpl, struct hutch_error *err)
{
	if (access(dir, F_OK) == 0)
		return 0;
	_cleanup_free_ char *parent = xstrdup(dir);
	char *slash = strrchr(parent, '/');
	if (slash && slash != parent) {
		*slash = 0;
		int r = mkdir_p(parent, 0700);
		if (r < 0)
			return hutch_error_set(err, -r, "cannot create '%s': %s", parent, strerror(-r));
	}
	_cleanup_free_ char *tmp = xasprintf("%s.new-%d", dir, (int)getpid());
	rm_rf(tmp);
	if (mkdir(tmp, 0700) < 0)
		return hutch_error_set(err, errno, "cannot create '%s': %s", tmp, strerror(errno));
	_cleanup_close_ int sfd = tmpl ? open(tmpl, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	if (sfd >= 0) {
		_cleanup_close_ int dfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		int r = dfd < 0 ? hutch_error_set(err, errno, "'%s': %s", tmp, strerror(errno))
				: copy_tree(sfd, dfd, 0, err);
		if (r < 0) {
			rm_rf(tmp);
			return hutch_error_wrap(err, "filling '%s' from '%s'", dir, tmpl);
		}
	}
	if (rename(tmp, dir) < 0) {
		int e = errno;
		rm_rf(tmp);
		if (e == EEXIST || e == ENOTEMPTY)
			return 0; /* another start made it meanwhile */
		return hutch_error_set(err, e, "cannot create '%s': %s", dir, strerror(e));
	}
	return 0;
}

/* ---- planning ---- */

static struct share_plan *plan_add(struct shares *s)
{
	s->v = xrealloc(s->v, (s->n + 1) * sizeof(*s->v));
	struct share_plan *p = &s->v[s->n++];
	memset(p, 0, sizeof(*p));
	return p;
}

static int resolve_via(const struct shares_in *in, struct share_plan *p, enum share_via want, struct hutch_error *err)
{
	const struct shares_host *h = in->host;
	const char *missing =
		h && h->libvirt ? "the libvirt backend runs virtiofs in session mode only from libvirt 10.0 (Debian 12 "
				  "has 9.0)"
		: !h || !h->virtiofsd
			? (access(SHARES_QEMU_VIRTIOFSD, X_OK) == 0
				   ? "virtiofsd is not installed, and QEMU's C virtiofsd needs uidmap (newuidmap) and "
				     "subordinate ids in /etc/subuid and /etc/subgid"
				   : "virtiofsd is not installed (Debian: apt-get install virtiofsd)")
		: !h->userns ? "user namespaces do not work here (virtiofsd's --sandbox namespace)"
		: p->readonly && !h->readonly
			? "this virtiofsd has no --readonly, and a guest's read-only mount is no enforcement"
			: NULL;
	if (want == SHARE_9P) {
		p->via = SHARE_9P;
		p->why = xstrdup("via: 9p");
	} else if (want == SHARE_VIRTIOFS) {
		if (missing && in->check == SHARES_START)
			return hutch_error_set(err, ENOTSUP,
					       "share '%s' of VM '%s' asks for virtiofs, but %s: use via: 9p or auto",
					       p->tag, in->vm_name, missing);
		p->via = SHARE_VIRTIOFS;
		p->why = xstrdup("via: virtiofs");
	} else if (missing) {
		p->via = SHARE_9P;
		p->why = xasprintf("auto: 9p, as %s", missing);
	} else if (h->userns_wrap) {
		p->via = SHARE_9P;
		p->why = xstrdup("auto: 9p, as the virtiofsd here is QEMU's C one, which runs in a user namespace "
				 "where guest users other than root own their files as subordinate uids on the host "
				 "(via: virtiofs asks for it)");
	} else {
		p->via = SHARE_VIRTIOFS;
		p->why = xstrdup("auto: virtiofsd and user namespaces are there");
	}
	if (p->via == SHARE_VIRTIOFS) {
		p->userns_wrap = h && h->userns_wrap;
		p->sock = xasprintf("%s/fs-%s.sock", in->run_dir, p->tag);
		if (in->check == SHARES_START) {
			int r = store_check_sun_path(p->sock, err);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

static int plan_one(const struct shares_in *in, struct share_plan *p, enum share_via want, struct hutch_error *err)
{
	int r = resolve_via(in, p, want, err);
	if (r < 0)
		return r;
	p->xattr = !p->readonly;
	if (in->check != SHARES_START)
		return 0;
	r = check_host_dir(in->vm_name, p, err);
	if (r < 0)
		return r;
	if (p->via == SHARE_9P && !p->readonly && !user_xattrs(p->host)) {
		p->xattr = false;
		p->warning = xasprintf("share '%s': '%s' is on a file system without user xattrs: 9p falls back to "
				       "security_model=none (guest files are yours on the host; ownership changes in "
				       "the guest are not kept)",
				       p->tag, p->host);
	}
	return 0;
}

int shares_plan(const struct shares_in *in, struct shares *ret, struct hutch_error *err)
{
	const struct vm_spec *s = in->spec;
	_cleanup_(shares_releasep) struct shares out = {0};
	if (s->n_shares + (s->home != HOME_OFF) > SHARES_MAX)
		return hutch_error_set(err, E2BIG, "VM '%s' has more than %d shares", in->vm_name, SHARES_MAX);
	for (size_t i = 0; i < s->n_shares; i++) {
		const struct share *sh = &s->shares[i];
		if (s->home != HOME_OFF && !strcmp(sh->name, SHARES_HOME_TAG))
			return hutch_error_set(
				err, EINVAL,
				"VM '%s': a share named '%s' and home: both use the tag '%s' (rename the "
				"share)",
				in->vm_name, sh->name, SHARES_HOME_TAG);
		struct share_plan *p = plan_add(&out);
		p->tag = xstrdup(sh->name);
		p->host = expand_home(sh->path);
		p->mount = sh->mount ? xstrdup(sh->mount) : xasprintf("/mnt/%s", sh->name);
		p->readonly = sh->readonly;
		int r = plan_one(in, p, sh->via, err);
		if (r < 0)
			return r;
	}
	if (s->home != HOME_OFF) {
		struct share_plan *p = plan_add(&out);
		p->home = true;
		p->tag = xstrdup(SHARES_HOME_TAG);
		p->host = s->home == HOME_PATH && s->home_path ? expand_home(s->home_path)
							       : xasprintf("%s/homes/%s", in->data_dir, in->vm_name);
		p->mount = shares_home_mount(s);
		for (size_t i = 0; i + 1 < out.n; i++)
			if (!strcmp(out.v[i].mount, p->mount))
				return hutch_error_set(err, EINVAL, "VM '%s': share '%s' and home: both mount at '%s'",
						       in->vm_name, out.v[i].tag, p->mount);
		if (in->check == SHARES_START && access(p->host, F_OK) < 0 && errno == ENOENT) {
			int r = home_make(p->host, in->home_template, err);
			if (r < 0)
				return hutch_error_wrap(err, "the shared home of VM '%s'", in->vm_name);
		}
		int r = plan_one(in, p, SHARE_AUTO, err);
		if (r < 0)
			return r;
	}
	*ret = out;
	memset(&out, 0, sizeof(out));
	return 0;
}

int shares_plan_vm(const struct store *st, const char *name, const struct vm_spec *spec, const char *run_dir,
		   enum shares_check check, struct shares *ret, struct hutch_error *err)
{
	memset(ret, 0, sizeof(*ret));
	if (!spec->n_shares && spec->home == HOME_OFF)
		return 0;
	struct shares_host host;
	shares_host_probe(&host);
	host.libvirt = spec->backend && !strcmp(spec->backend, "libvirt");
	_cleanup_free_ char *tmpl = xasprintf("%s/home-template", st->config_dir);
	struct shares_in in = {
		.vm_name = name,
		.spec = spec,
		.run_dir = run_dir,
		.data_dir = st->data_dir,
		.home_template = tmpl,
		.host = &host,
		.check = check,
	};
	int r = shares_plan(&in, ret, err);
	shares_host_release(&host);
	return r;
}

/* ---- QEMU and the kernel command line ---- */

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

bool shares_need_shared_memory(const struct shares *s)
{
	for (size_t i = 0; s && i < s->n; i++)
		if (s->v[i].via == SHARE_VIRTIOFS)
			return true;
	return false;
}

char **shares_qemu_args(char **argv, const struct shares *s, bool micro)
{
	const char *bus = micro ? "device" : "pci";
	/* microvm's virtio-mmio devices are legacy (virtio 0.9) unless told otherwise, and vhost-user
	 * backends serve only virtio 1.0 ("virtio legacy devices aren't supported by libvhost-user") */
	if (micro && shares_need_shared_memory(s)) {
		argv = strv_push(argv, xstrdup("-global"));
		argv = strv_push(argv, xstrdup("virtio-mmio.force-legacy=false"));
	}
	for (size_t i = 0; s && i < s->n; i++) {
		const struct share_plan *p = &s->v[i];
		if (p->via == SHARE_VIRTIOFS) {
			_cleanup_free_ char *sock = opt_escape(p->sock);
			argv = strv_push(argv, xstrdup("-chardev"));
			argv = strv_push(argv, xasprintf("socket,id=vfs%zu,path=%s", i, sock));
			argv = strv_push(argv, xstrdup("-device"));
			argv = strv_push(argv, xasprintf("vhost-user-fs-%s,chardev=vfs%zu,tag=%s", bus, i, p->tag));
			continue;
		}
		_cleanup_free_ char *host = opt_escape(p->host);
		argv = strv_push(argv, xstrdup("-fsdev"));
		argv = strv_push(argv,
				 xasprintf("local,id=fs%zu,path=%s,security_model=%s,multidevs=remap%s", i, host,
					   p->xattr ? "mapped-xattr" : "none", p->readonly ? ",readonly=on" : ""));
		argv = strv_push(argv, xstrdup("-device"));
		argv = strv_push(argv, xasprintf("virtio-9p-%s,fsdev=fs%zu,mount_tag=%s", bus, i, p->tag));
	}
	return argv;
}

void shares_cmdline(struct strbuf *sb, const struct shares *s)
{
	for (size_t i = 0; s && i < s->n; i++)
		strbuf_addf(sb, " hutch.share=%s,%s,%s,%s%s", s->v[i].tag, s->v[i].mount,
			    s->v[i].readonly ? "ro" : "rw", shares_via_name(s->v[i].via), s->v[i].home ? ",home" : "");
}

/* ---- create: --share flags and home: true ---- */

static bool name_taken(const struct vm_spec *s, const char *name)
{
	if (s->home != HOME_OFF && !strcmp(name, SHARES_HOME_TAG))
		return true;
	for (size_t i = 0; i < s->n_shares; i++)
		if (!strcmp(s->shares[i].name, name))
			return true;
	return false;
}

/* The guest dir's last component, cut to what a tag may hold, made unique with -2, -3... */
static char *flag_tag(const struct vm_spec *s, const char *guest)
{
	const char *base = strrchr(guest, '/');
	base = base && base[1] ? base + 1 : "share";
	char t[SHARE_TAG_MAX + 1];
	size_t k = 0;
	for (const char *c = base; *c && k < SHARE_TAG_MAX - 3; c++)
		if (isalnum((unsigned char)*c) || ((*c == '-' || *c == '_') && k > 0))
			t[k++] = *c;
	t[k] = 0;
	if (!k)
		snprintf(t, sizeof(t), "share");
	char *name = xstrdup(t);
	for (int n = 2; name_taken(s, name) && n < 1000; n++) {
		free(name);
		name = xasprintf("%s-%d", t, n);
	}
	return name;
}

static int apply_flag(struct vm_spec *s, const char *arg, struct hutch_error *err)
{
	_cleanup_free_ char *a = xstrdup(arg);
	size_t len = strlen(a);
	bool ro = false;
	if (len > 3 && (!strcmp(a + len - 3, ":ro") || !strcmp(a + len - 3, ":rw"))) {
		ro = a[len - 2] == 'r' && a[len - 1] == 'o';
		a[len - 3] = 0;
	}
	char *colon = strrchr(a, ':');
	if (!colon || colon == a || !colon[1])
		return hutch_error_set(err, EINVAL, "--share '%s': expected HOSTPATH:GUESTPATH[:ro]", arg);
	*colon = 0;
	const char *guest = colon + 1;
	if (!spec_valid_guest_path(guest))
		return hutch_error_set(err, EINVAL,
				       "--share '%s': the guest path must be absolute, without '..', spaces, commas or "
				       "control characters",
				       arg);
	for (size_t i = 0; i < s->n_shares; i++)
		if (s->shares[i].mount && !strcmp(s->shares[i].mount, guest))
			return hutch_error_set(err, EEXIST,
					       "--share '%s': '%s' is already the mount point of share '%s'", arg,
					       guest, s->shares[i].name);
	char *host;
	if (a[0] == '/' || a[0] == '~') {
		host = xstrdup(a);
	} else {
		char cwd[PATH_MAX];
		if (!getcwd(cwd, sizeof(cwd)))
			return hutch_error_set(err, errno, "--share '%s': %s", arg, strerror(errno));
		host = xasprintf("%s/%s", cwd, a);
	}
	if (s->n_shares >= SHARES_MAX) {
		free(host);
		return hutch_error_set(err, E2BIG, "--share '%s': at most %d shares", arg, SHARES_MAX);
	}
	char *name = flag_tag(s, guest);
	s->shares = xrealloc(s->shares, (s->n_shares + 1) * sizeof(*s->shares));
	s->shares[s->n_shares++] =
		(struct share){.name = name, .path = host, .mount = xstrdup(guest), .readonly = ro, .via = SHARE_AUTO};
	return 0;
}

int shares_apply_create(const struct store *st, const char *base, char *const *flags, struct vm_spec *spec,
			struct hutch_error *err)
{
	for (size_t i = 0; flags && flags[i]; i++) {
		int r = apply_flag(spec, flags[i], err);
		if (r < 0)
			return r;
	}
	if (spec->home == HOME_DEFAULT) {
		spec->home = HOME_PATH;
		free(spec->home_path);
		spec->home_path = xasprintf("%s/homes/%s", st->data_dir, base);
	}
	return 0;
}

/* ---- inspect ---- */

static json_object *planned_json(const struct store *st, const char *name, const struct vm_spec *spec)
{
	json_object *a = json_object_new_array();
	_cleanup_free_ char *run_dir = store_run_dir(st, name);
	_cleanup_(shares_releasep) struct shares sh = {0};
	if (shares_plan_vm(st, name, spec, run_dir, SHARES_RENDER, &sh, NULL) < 0)
		return a;
	for (size_t i = 0; i < sh.n; i++) {
		const struct share_plan *p = &sh.v[i];
		json_object *o = json_object_new_object();
		json_object_object_add(o, "tag", json_object_new_string(p->tag));
		json_object_object_add(o, "host", json_object_new_string(p->host));
		json_object_object_add(o, "mount", json_object_new_string(p->mount));
		json_object_object_add(o, "readonly", json_object_new_boolean(p->readonly));
		json_object_object_add(o, "home", json_object_new_boolean(p->home));
		json_object_object_add(o, "via", json_object_new_string(shares_via_name(p->via)));
		json_object_object_add(o, "why", json_object_new_string(p->why ? p->why : ""));
		json_object_object_add(o, "state", json_object_new_string("stopped"));
		json_object_array_add(a, o);
	}
	return a;
}

json_object *shares_inspect(const struct store *st, const char *name, const struct vm_spec *spec, bool running)
{
	if (!spec->n_shares && spec->home == HOME_OFF)
		return json_object_new_array();
	if (!running)
		return planned_json(st, name, spec);
	_cleanup_close_ int fd = -1;
	json_object *req = json_object_new_object(), *res = NULL, *v = NULL;
	json_object_object_add(req, "op", json_object_new_string("status"));
	if (monitor_connect(st, name, &fd, NULL) < 0) {
		json_object_put(req);
		return planned_json(st, name, spec);
	}
	/* monitor_request takes req */
	if (monitor_request(fd, req, 5000, &res, NULL) < 0 || !json_object_object_get_ex(res, "shares", &v) ||
	    !json_object_is_type(v, json_type_array)) {
		json_object_put(res);
		return planned_json(st, name, spec);
	}
	json_object_get(v);
	json_object_put(res);
	return v;
}

static const char *jstr(json_object *o, const char *key)
{
	json_object *v;
	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

char *shares_describe(json_object *arr)
{
	size_t n = arr ? json_object_array_length(arr) : 0;
	if (!n)
		return NULL;
	struct strbuf sb = STRBUF_INIT;
	strbuf_adds(&sb, "shares:\n");
	for (size_t i = 0; i < n; i++) {
		json_object *o = json_object_array_get_idx(arr, i), *v;
		bool ro = json_object_object_get_ex(o, "readonly", &v) && json_object_get_boolean(v);
		const char *model = jstr(o, "security_model");
		strbuf_addf(&sb, "  %-8s %s -> %s (%s, %s%s%s; %s): %s", jstr(o, "tag"), jstr(o, "host"),
			    jstr(o, "mount"), ro ? "ro" : "rw", jstr(o, "via"), *model ? " " : "", model,
			    jstr(o, "why"), jstr(o, "state"));
		if (*jstr(o, "error"))
			strbuf_addf(&sb, ": %s", jstr(o, "error"));
		strbuf_addch(&sb, '\n');
		if (*jstr(o, "warning"))
			strbuf_addf(&sb, "           warning: %s\n", jstr(o, "warning"));
	}
	return strbuf_detach(&sb, NULL);
}
