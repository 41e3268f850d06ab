/* hutch ssh: the system ssh with the VM's user, forwarded port, key and its own known_hosts. */
#include "backend.h"
#include "backend_libvirt.h"
#include "client.h"
#include "cmd.h"
#include "qemu.h"
#include "ready.h"
#include "seed.h"
#include "virt_ssh.h"

#include <pwd.h>
#include <string.h>
#include <unistd.h>

/* The VM's forwards (a JSON array): a libvirt VM's from its forwards file, when its domain runs; the
 * monitor's otherwise. *ret_libvirt says which. */
static int vm_forwards(struct cmd_ctx *c, const char *name, json_object **ret_res, bool *ret_libvirt)
{
	*ret_res = NULL;
	int lv = libvirt_port(&c->store, name, "port-ls", NULL, ret_res, &c->err); /* 0: not libvirt */
	if (lv < 0)
		return -1;
	*ret_libvirt = lv > 0;
	if (lv > 0)
		return 0;
	if (!store_is_running(&c->store, name)) {
		hutch_error_set(&c->err, ENOTCONN, "is not running: start it first");
		return -1;
	}
	_cleanup_close_ int fd = -1;
	if (monitor_connect(&c->store, name, &fd, &c->err) < 0)
		return -1;
	json_object *req = json_object_new_object();
	json_object_object_add(req, "op", json_object_new_string("port-ls"));
	return monitor_request(fd, req, 10000, ret_res, &c->err) < 0 ? -1 : 0;
}

static int find_ssh_port(struct cmd_ctx *c, json_object *res, const char *name, unsigned guest, unsigned *ret)
{
	json_object *fw;
	if (json_object_object_get_ex(res, "forwards", &fw))
		for (size_t i = 0; i < json_object_array_length(fw); i++) {
			struct forward f;
			if (forward_parse(json_object_get_string(json_object_array_get_idx(fw, i)), &f) == 0 &&
			    !f.udp && f.guest == guest) {
				*ret = f.host;
				return 0;
			}
		}
	return hutch_error_set(&c->err, ENOENT,
			       "no port forward to guest port %u: add one with 'hutch port %s add 2222:%u'", guest,
			       name, guest);
}

/* Never returns on success: ssh replaces us, and its exit status is the command's. */
static int exec_ssh(struct cmd_ctx *c, const struct vm_spec *spec, const char *name, unsigned host_port,
		    const char *proxy, const char *user, int argc, char **argv)
{
	int optind_ = 0;
	struct passwd *pw = getpwuid(getuid());
	const char *login = user ? user : seed_login_user(spec, pw ? pw->pw_name : NULL);
	_cleanup_free_ char *dir = store_vm_dir(&c->store, name);
	_cleanup_free_ char *kh = xasprintf("UserKnownHostsFile=%s/known_hosts", dir);
	_cleanup_free_ char *alias = xasprintf("HostKeyAlias=hutch-%s", name);
	_cleanup_free_ char *port_s = xasprintf("%u", host_port);
	_cleanup_free_ char *dest = xasprintf("%s@127.0.0.1", login);
	_cleanup_free_ char *key = NULL;
	if (seed_ssh_key(spec->ssh_key, dir, NULL, &key, NULL) < 0)
		key = NULL;
	char **av = NULL;
	av = strv_push(av, xstrdup("ssh"));
	av = strv_push(av, xstrdup("-p"));
	av = strv_push(av, xstrdup(port_s));
	/* Per-VM known_hosts. create wrote the host key it made into it, so the check is strict from the
	 * first connection; where the guest could not take that key (start said so, and left the
	 * marker), or for a VM made before host keys, the first key is accepted. A changed key is
	 * refused either way. */
	bool strict = ready_host_key_strict(&c->store, name);
	const char *fixed[] = {
		"-o", kh,    "-o", strict ? "StrictHostKeyChecking=yes" : "StrictHostKeyChecking=accept-new",
		"-o", alias, "-o", "LogLevel=ERROR"};
	for (size_t i = 0; i < ARRAY_SIZE(fixed); i++)
		av = strv_push(av, xstrdup(fixed[i]));
	if (proxy) {
		/* a remote libvirt host: its loopback, where the forward listens, through ssh to it */
		av = strv_push(av, xstrdup("-o"));
		av = strv_push(av, xasprintf("ProxyCommand=%s", proxy));
	}
	if (key) {
		av = strv_push(av, xstrdup("-i"));
		av = strv_push(av, xstrdup(key));
		av = strv_push(av, xstrdup("-o"));
		av = strv_push(av, xstrdup("IdentitiesOnly=yes"));
	}
	av = strv_push(av, xstrdup(dest));
	if (optind_ < argc) {
		av = strv_push(av, xstrdup("--"));
		for (int i = optind_; i < argc; i++)
			av = strv_push(av, xstrdup(argv[i]));
	}
	fflush(NULL);
	execvp("ssh", av);
	hutch_error_set(&c->err, errno,
			errno == ENOENT ? "ssh not found: install Debian's openssh-client package"
					: "cannot run ssh: %s",
			strerror(errno));
	strv_free(av);
	return EXIT_ERR;
}

struct ssh_cli {
	const char *login, *instance;
	unsigned port;
};

static const struct opt ssh_opts[] = {
	OPT_STRING('l', "login", struct ssh_cli, login, "USER", "log in as USER (default: the spec's ssh.user)"),
	OPT_UINT('p', "port", struct ssh_cli, port, "PORT", 1, 65535,
		 "the host port (default: the one forwarded to 22)"),
	OPT_INSTANCE(struct ssh_cli),
	OPT_END(),
};

static int cmd_ssh(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	const struct ssh_cli *o = opts;
	const char *base = argv[0];
	_cleanup_free_ char *name = NULL;
	if (cmd_vm_name(c, base, o->instance, &name))
		return EXIT_ERR;
	struct vm vm;
	if (vm_load(&c->store, name, &vm, &c->err) < 0)
		return EXIT_ERR;
	int rc = EXIT_ERR;
	json_object *res = NULL;
	bool lv = false;
	_cleanup_free_ char *uri = NULL, *proxy = NULL;
	if (vm_forwards(c, name, &res, &lv) < 0)
		goto out;
	if (lv && libvirt_uri_of(&vm, &uri) && virt_ssh_proxy(uri, &proxy, &c->err) < 0)
		goto out;
	unsigned host_port = o->port;
	if (!host_port &&
	    find_ssh_port(c, res, name, vm.spec->ssh_port ? (unsigned)vm.spec->ssh_port : 22, &host_port) < 0)
		goto out;
	rc = exec_ssh(c, vm.spec, name, host_port, proxy, o->login, argc - 1, argv + 1);
out:
	json_object_put(res);
	vm_release(&vm);
	return rc;
}

VERB_DEFINE(ssh, .name = "ssh", .fn = cmd_ssh, .opts = ssh_opts, .opts_size = sizeof(struct ssh_cli), .min_args = 1,
	    .max_args = -1, .args = "NAME [-- CMD...]", .complete = "vm;cmd",
	    .summary = "ssh into a VM with its key, user and forwarded port", .flags = VERB_COMMAND);
