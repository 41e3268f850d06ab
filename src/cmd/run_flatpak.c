/* run --flatpak APP-ID: the app in a disposable instance of NAME, with the host's installations
 * shared read-only and the app's data dir read-write (flatpak.h). */
#include "cmd.h"
#include "flatpak.h"

#include <fcntl.h>
#include <string.h>

int cmd_run_flatpak_args(struct cmd_ctx *c, struct exec_cli *e, int *argc, char ***argv, char ***ret_argv)
{
	/* Without "--", options end at NAME (options.c): `run NAME --flatpak APP [--shared-data] [ARGS]`
	 * arrives as a command line that starts with these flags, which no program is called. */
	char **v = *argv;
	bool found = false, shared = false;
	int i = 1;
	while (!e->flatpak && i < *argc) {
		if (!strcmp(v[i], "--shared-data")) {
			shared = true;
			i++;
		} else if (!strncmp(v[i], "--flatpak=", 10)) {
			found = true;
			i++;
		} else if (!strcmp(v[i], "--flatpak")) {
			if (i + 1 >= *argc)
				return cmd_usage(c, "--flatpak needs an APP-ID");
			found = true;
			i += 2;
		} else {
			break;
		}
	}
	if (found) {
		for (int j = 1; j < i; j++)
			if (!strncmp(v[j], "--flatpak", 9))
				e->flatpak = v[j][9] == '=' ? v[j] + 10 : v[j + 1];
		e->shared_data = e->shared_data || shared;
		char **n = xmalloc((size_t)(*argc - i + 2) * sizeof(*n));
		int k = 0;
		n[k++] = v[0];
		while (i < *argc)
			n[k++] = v[i++];
		n[k] = NULL;
		*ret_argv = n;
		*argv = n;
		*argc = k;
	}
	if ((e->shared_data || shared) && !e->flatpak)
		return cmd_usage(c, "--shared-data applies to --flatpak");
	return 0;
}

int cmd_run_flatpak_plan(struct cmd_ctx *c, struct exec_cli *e, const char *base, int argc, char **argv,
			 struct flatpak_plan *ret)
{
	if (e->o.user)
		return cmd_usage(c, "--flatpak runs the app as the guest user with your uid: -u does not apply");
	if (e->o.cwd)
		return cmd_usage(c, "--flatpak runs the app in its own sandbox: -w does not apply");
	if (e->cold && !e->rm)
		return cmd_usage(c, "--cold applies to run --rm");
	/* NAME's own shares and home: are checked against ours; without a spec, run fails later anyway */
	_cleanup_(spec_freep) struct vm_spec *spec = NULL;
	_cleanup_free_ char *spec_file = store_vm_file(&c->store, base, "spec.yml");
	if (store_vm_exists(&c->store, base))
		spec_find_in_file(spec_file, base, &spec, NULL);
	struct flatpak_in in = {
		.app_id = e->flatpak,
		.base = base,
		.shared_data = e->shared_data,
		.args = argc > 1 ? argv + 1 : NULL,
		.env = e->o.env,
		.uid = (unsigned)getuid(),
		.gid = (unsigned)getgid(),
		.home = getenv("HOME"),
		.user_name = user_name(),
		.spec = spec,
	};
	if (flatpak_plan(&c->store, &in, ret, &c->err) < 0)
		return EXIT_ERR;
	/* Each app gets a disposable VM: its shares are the instance's own. It boots cold (a VM with
	 * shares cannot be a warm clone). */
	e->rm = true;
	e->cold = true;
	char **all = strv_copy(e->shares);
	for (char **s = ret->shares; s && *s; s++)
		all = strv_push(all, xstrdup(*s));
	strv_free(e->shares);
	e->shares = all;
	return 0;
}

int cmd_run_flatpak_exec(struct cmd_ctx *c, const char *name, const struct flatpak_plan *fp,
			 const struct exec_opts *app, int *ret_status)
{
	_cleanup_close_ int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	struct exec_opts prep = {
		.argv = fp->prep_argv,
		.env = fp->prep_env,
		.in_fd = devnull,
		.out_fd = devnull,
		.err_fd = STDERR_FILENO,
	};
	int status = 0;
	int r = exec_session(&c->store, name, &prep, &status, &c->err);
	if (r < 0)
		return hutch_error_wrap(&c->err, "preparing the guest user for flatpak");
	if (status != 0)
		return hutch_error_set(&c->err, EIO, "%s (exit status %d)", flatpak_prep_failure(status), status);
	struct exec_opts o = *app;
	o.argv = fp->run_argv;
	o.env = fp->run_env;
	o.user = fp->user;
	return exec_session(&c->store, name, &o, ret_status, &c->err);
}
