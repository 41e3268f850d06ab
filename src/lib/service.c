/* Service units for the libvirt session daemons (see service.h). Each daemon is defined once, in
 * daemons[]; the systemd and supervisord renderings are two views of that one table. */
#include "service.h"

#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>

const char *const service_init_names[] = {"systemd", "supervisord", NULL};

struct daemon_def {
	const char *name; /* binary, systemd unit and supervisord program */
	const char *sock; /* $XDG_RUNTIME_DIR/libvirt/SOCK-sock and SOCK-admin-sock */
	const char *description;
	int priority; /* supervisord start order: the log daemon first, the network daemon last */
	/* Socket-activated, it may exit when idle (as the packaged system units do); supervised, it
	 * must not. virtlogd keeps running either way, like its packaged unit. */
	bool idle_exit;
	bool notify; /* Type=notify: it tells systemd when its sockets are ready */
};

static const struct daemon_def daemons[SERVICE_N] = {
	[SERVICE_VIRTLOGD] = {"virtlogd", "virtlogd", "libvirt log daemon", 4, false, false},
	[SERVICE_LIBVIRTD] = {"libvirtd", "libvirt", "libvirt session daemon", 5, true, true},
	[SERVICE_VIRTQEMUD] = {"virtqemud", "virtqemud", "libvirt QEMU session daemon", 5, true, true},
	[SERVICE_VIRTNETWORKD] = {"virtnetworkd", "virtnetworkd", "libvirt network session daemon", 6, true, true},
};

/* Seconds a socket-activated daemon idles before it exits (libvirt's own units use 120). */
#define SERVICE_IDLE_TIMEOUT 120

static const char *const bin_dirs[] = {"/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/libexec"};
static const char *const user_unit_dirs[] = {"/etc/systemd/user", "/usr/lib/systemd/user", "/lib/systemd/user"};

#define SERVICE_MISSING                                                                                \
	"no libvirt daemon is installed (looked for virtqemud and libvirtd in PATH, /usr/local/sbin, " \
	"/usr/sbin, /sbin and /usr/libexec): apt-get install libvirt-daemon libvirt-daemon-driver-qemu"

void service_install_release(struct service_install *in)
{
	if (!in)
		return;
	for (size_t i = 0; i < SERVICE_N; i++) {
		free(in->bin[i]);
		in->bin[i] = NULL;
	}
}

static bool is_executable(const char *root, const char *dir, const char *name)
{
	_cleanup_free_ char *p = xasprintf("%s%s/%s", root, dir, name);
	struct stat st;
	return stat(p, &st) == 0 && S_ISREG(st.st_mode) && access(p, X_OK) == 0;
}

static bool is_file(const char *root, const char *dir, const char *name)
{
	_cleanup_free_ char *p = xasprintf("%s%s/%s", root, dir, name);
	struct stat st;
	return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* The first directory of PATH, then of bin_dirs, that holds an executable NAME. */
static char *find_daemon(const char *root, const char *path_env, const char *name)
{
	if (path_env) {
		const char *s = path_env;
		while (*s) {
			size_t n = strcspn(s, ":");
			/* a relative PATH entry names no fixed place on the host */
			if (n > 0 && s[0] == '/') {
				_cleanup_free_ char *dir = xstrndup(s, n);
				if (is_executable(root, dir, name))
					return xasprintf("%s/%s", dir, name);
			}
			s += n;
			if (*s == ':')
				s++;
		}
	}
	for (size_t i = 0; i < ARRAY_SIZE(bin_dirs); i++)
		if (is_executable(root, bin_dirs[i], name))
			return xasprintf("%s/%s", bin_dirs[i], name);
	return NULL;
}

int service_probe(const char *root, const char *path_env, struct service_install *ret, struct hutch_error *err)
{
	struct service_install in = {0};
	if (!root)
		root = "";
	for (size_t i = 0; i < SERVICE_N; i++) {
		in.bin[i] = find_daemon(root, path_env, daemons[i].name);
		_cleanup_free_ char *unit = xasprintf("%s.socket", daemons[i].name);
		for (size_t j = 0; j < ARRAY_SIZE(user_unit_dirs) && !in.user_unit[i]; j++)
			in.user_unit[i] = is_file(root, user_unit_dirs[j], unit);
	}
	*ret = in;
	return 0;
}

/* The daemons to run, in start order: split daemons when virtqemud is installed (libvirt's
 * default since 9.0 where it is packaged), the monolithic libvirtd otherwise. */
static size_t pick_daemons(const struct service_install *in, enum service_daemon ret[SERVICE_N])
{
	size_t n = 0;
	if (in->bin[SERVICE_VIRTLOGD])
		ret[n++] = SERVICE_VIRTLOGD;
	if (in->bin[SERVICE_VIRTQEMUD]) {
		ret[n++] = SERVICE_VIRTQEMUD;
		if (in->bin[SERVICE_VIRTNETWORKD])
			ret[n++] = SERVICE_VIRTNETWORKD;
	} else if (in->bin[SERVICE_LIBVIRTD]) {
		ret[n++] = SERVICE_LIBVIRTD;
	}
	return n;
}

static int check_sun_path(const char *path, struct hutch_error *err)
{
	size_t max = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;
	if (strlen(path) > max)
		return hutch_error_set(err, ENAMETOOLONG,
				       "socket path '%s' is too long for a unix socket (%zu bytes, at most %zu): "
				       "use a shorter XDG_RUNTIME_DIR",
				       path, strlen(path), max);
	return 0;
}

static char *supervisord_sock(const char *runtime_dir) { return xasprintf("%s/hutch-supervisord.sock", runtime_dir); }

static int check_sockets(const enum service_daemon *list, size_t n, const struct service_render_opts *o,
			 struct hutch_error *err)
{
	if (!o->runtime_dir)
		return 0;
	for (size_t i = 0; i < n; i++) {
		/* the admin socket is the longer of a daemon's two */
		_cleanup_free_ char *p = xasprintf("%s/libvirt/%s-admin-sock", o->runtime_dir, daemons[list[i]].sock);
		if (check_sun_path(p, err) < 0)
			return -ENAMETOOLONG;
	}
	if (o->init == SERVICE_INIT_SUPERVISORD && o->full) {
		_cleanup_free_ char *p = supervisord_sock(o->runtime_dir);
		if (check_sun_path(p, err) < 0)
			return -ENAMETOOLONG;
	}
	return 0;
}

/* ---- systemd --user ---- */

static void systemd_socket_unit(struct strbuf *out, const struct daemon_def *d)
{
	strbuf_addf(out, "cat >\"$units/%s.socket\" <<'EOF'\n", d->name);
	strbuf_addf(out, "[Unit]\nDescription=%s socket (hutch service render)\n\n", d->description);
	strbuf_addf(out, "[Socket]\nListenStream=%%t/libvirt/%s-sock\n", d->sock);
	strbuf_adds(out, "SocketMode=0600\nDirectoryMode=0700\nRemoveOnStop=yes\n\n");
	strbuf_adds(out, "[Install]\nWantedBy=sockets.target\nEOF\n");
}

static void systemd_service_unit(struct strbuf *out, const struct service_install *in, enum service_daemon id)
{
	const struct daemon_def *d = &daemons[id];
	strbuf_addf(out, "cat >\"$units/%s.service\" <<'EOF'\n", d->name);
	strbuf_addf(out, "[Unit]\nDescription=%s (hutch service render)\nDocumentation=man:%s(8)\n", d->description,
		    d->name);
	strbuf_addf(out, "Requires=%s.socket\n", d->name);
	/* QEMU's console and logs go through virtlogd; without it the daemon would spawn its own */
	if (id != SERVICE_VIRTLOGD && in->bin[SERVICE_VIRTLOGD])
		strbuf_adds(out, "Wants=virtlogd.socket\nAfter=virtlogd.socket\n");
	strbuf_adds(out, "\n[Service]\n");
	if (d->notify)
		strbuf_adds(out, "Type=notify\n");
	strbuf_addf(out, "ExecStart=%s", in->bin[id]);
	if (d->idle_exit)
		strbuf_addf(out, " --timeout %d", SERVICE_IDLE_TIMEOUT);
	strbuf_addch(out, '\n');
	/* a restarted daemon reconnects to its running QEMUs, so they are not killed with it */
	if (id != SERVICE_VIRTLOGD)
		strbuf_adds(out, "KillMode=process\n");
	strbuf_adds(out, "Restart=on-failure\n\n");
	strbuf_addf(out, "[Install]\nAlso=%s.socket\nEOF\n", d->name);
}

static void render_systemd(const struct service_install *in, const enum service_daemon *list, size_t n,
			   struct strbuf *out)
{
	strbuf_adds(out, "# The libvirt session daemons for this user, under systemd --user: each starts on the first\n"
			 "# connection to its socket in $XDG_RUNTIME_DIR/libvirt (qemu:///session).\n"
			 "# Run it: hutch service render --init systemd | sh\n"
			 "set -e\n");
	size_t nwrite = 0;
	for (size_t i = 0; i < n; i++)
		nwrite += !in->user_unit[list[i]];
	if (nwrite) {
		strbuf_adds(out, "# No systemd user units are installed for");
		for (size_t i = 0, k = 0; i < n; i++)
			if (!in->user_unit[list[i]])
				strbuf_addf(out, "%s %s", k++ ? "," : "", daemons[list[i]].name);
		strbuf_adds(out,
			    " (libvirt packages them as system\n"
			    "# units only, for qemu:///system), so these are written to ~/.config/systemd/user.\n");
		strbuf_adds(out, "units=\"${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user\"\nmkdir -p \"$units\"\n");
		for (size_t i = 0; i < n; i++) {
			if (in->user_unit[list[i]])
				continue;
			systemd_socket_unit(out, &daemons[list[i]]);
			systemd_service_unit(out, in, list[i]);
		}
		strbuf_adds(out, "systemctl --user daemon-reload\n");
	}
	strbuf_adds(out, "systemctl --user enable --now");
	for (size_t i = 0; i < n; i++)
		strbuf_addf(out, " %s.socket", daemons[list[i]].name);
	strbuf_addch(out, '\n');
}

/* ---- supervisord ---- */

static void supervisord_program(struct strbuf *out, const struct service_install *in, enum service_daemon id)
{
	const struct daemon_def *d = &daemons[id];
	strbuf_addf(out, "\n[program:%s]\n", d->name);
	/* --timeout 0: never exit when idle; libvirt daemons stay in the foreground unless given --daemon */
	strbuf_addf(out, "command=%s --timeout 0\n", in->bin[id]);
	strbuf_addf(out, "autostart=true\nautorestart=true\npriority=%d\nstartsecs=2\n", d->priority);
	strbuf_adds(out, "stdout_logfile=/dev/stdout\nstdout_logfile_maxbytes=0\nredirect_stderr=true\n");
}

static void render_supervisord(const struct service_install *in, const enum service_daemon *list, size_t n,
			       const struct service_render_opts *o, struct strbuf *out)
{
	strbuf_adds(out, "; The libvirt session daemons for this user, under supervisord. Each runs in the foreground\n"
			 "; (--timeout 0: no idle exit) as supervisord's user and serves qemu:///session from\n"
			 "; $XDG_RUNTIME_DIR/libvirt.\n");
	if (!o->full) {
		strbuf_adds(out, "; Include it from a supervisord.conf ([include] files = ...), or render a complete\n"
				 "; one: hutch service render --init supervisord --full\n");
	} else {
		_cleanup_free_ char *sock = supervisord_sock(o->runtime_dir);
		strbuf_adds(out,
			    "; Run it: supervisord -c FILE (stays in the foreground); supervisorctl -c FILE status\n");
		strbuf_addf(out,
			    "\n[supervisord]\nnodaemon=true\nlogfile=/dev/stdout\nlogfile_maxbytes=0\n"
			    "pidfile=%s/hutch-supervisord.pid\n",
			    o->runtime_dir);
		/* the daemons put their sockets where virsh will look, whatever the starting shell had */
		strbuf_addf(out, "environment=XDG_RUNTIME_DIR=\"%s\"\n", o->runtime_dir);
		strbuf_addf(out, "\n[unix_http_server]\nfile=%s\nchmod=0700\n", sock);
		strbuf_adds(out, "\n[rpcinterface:supervisor]\n"
				 "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n");
		strbuf_addf(out, "\n[supervisorctl]\nserverurl=unix://%s\n", sock);
	}
	for (size_t i = 0; i < n; i++)
		supervisord_program(out, in, list[i]);
}

int service_render(const struct service_install *in, const struct service_render_opts *o, struct strbuf *out,
		   struct hutch_error *err)
{
	if (!in->bin[SERVICE_VIRTQEMUD] && !in->bin[SERVICE_LIBVIRTD])
		return hutch_error_set(err, ENOENT, SERVICE_MISSING);
	enum service_daemon list[SERVICE_N];
	size_t n = pick_daemons(in, list);
	if (o->full && o->init != SERVICE_INIT_SUPERVISORD)
		return hutch_error_set(err, EINVAL, "a complete configuration (--full) is for supervisord only");
	if (o->full && !o->runtime_dir)
		return hutch_error_set(err, EINVAL,
				       "XDG_RUNTIME_DIR is not set: the daemons' and supervisord's sockets go there");
	int r = check_sockets(list, n, o, err);
	if (r < 0)
		return r;
	switch (o->init) {
	case SERVICE_INIT_SYSTEMD:
		render_systemd(in, list, n, out);
		return 0;
	case SERVICE_INIT_SUPERVISORD:
		render_supervisord(in, list, n, o, out);
		return 0;
	default:
		return hutch_error_set(err, EINVAL, "unknown init %d", (int)o->init);
	}
}
