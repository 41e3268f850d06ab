/* Service units for the libvirt session daemons: one definition of each daemon, rendered for the
 * init that runs it. systemd --user gets socket units (the packaged ones where the distribution
 * ships user units, written ones otherwise) and the `systemctl --user` lines that enable them;
 * supervisord gets [program:] blocks that keep each daemon in the foreground (`--timeout 0`). */
#pragma once
#include "util.h"

enum service_init {
	SERVICE_INIT_SYSTEMD,
	SERVICE_INIT_SUPERVISORD,
};
/* "systemd", "supervisord", NULL: indexed by enum service_init (an OPT_ENUM's names). */
extern const char *const service_init_names[];

/* The daemons hutch knows, in start order. */
enum service_daemon {
	SERVICE_VIRTLOGD,
	SERVICE_LIBVIRTD,
	SERVICE_VIRTQEMUD,
	SERVICE_VIRTNETWORKD,
	SERVICE_N,
};

/* What a host has installed: each daemon's absolute path on that host (NULL: not installed), and
 * whether a systemd user unit NAME.socket is packaged for it. */
struct service_install {
	char *bin[SERVICE_N];
	bool user_unit[SERVICE_N];
};
void service_install_release(struct service_install *in);

/* Look for the daemons in each absolute directory of path_env (PATH), then /usr/local/sbin,
 * /usr/sbin, /sbin and /usr/libexec, and for packaged user units in /etc/systemd/user,
 * /usr/lib/systemd/user and /lib/systemd/user. Every directory is looked up under root ("" or NULL
 * for /; tests pass a fake install tree); the paths returned are the host's, without root. Finding
 * nothing is not an error here: service_render says what to install. */
int service_probe(const char *root, const char *path_env, struct service_install *ret, struct hutch_error *err);

struct service_render_opts {
	enum service_init init;
	/* supervisord: a complete supervisord.conf (nodaemon, a unix_http_server socket in runtime_dir for
	 * supervisorctl), not only the [program:] blocks to include from one. */
	bool full;
	/* $XDG_RUNTIME_DIR, where the daemons put their sockets (under libvirt/); may be NULL, except with
	 * full. When given, the socket paths are checked against sun_path. */
	const char *runtime_dir;
};

/* Appends to out what makes the libvirt session daemons run for this user under o->init: split
 * daemons (virtqemud, virtnetworkd) when virtqemud is installed, the monolithic libvirtd otherwise,
 * virtlogd beside either when installed. -ENOENT when no libvirt daemon is installed (the message
 * names the Debian packages); -ENAMETOOLONG when a socket path would not fit sun_path. */
int service_render(const struct service_install *in, const struct service_render_opts *o, struct strbuf *out,
		   struct hutch_error *err);
