#include "backend.h"
#include "cmd.h"
#include "failed.h"
#include "flatpak.h"
#include "session.h"
#include "vm_oci.h"
#include "vmops.h"
#include "warm.h"

#include <fcntl.h>
#include <string.h>

/* A disposable instance name: NAME-XXXXXXXX from the kernel's random pool. */
static char *ephemeral_name(const char *base)
{
	unsigned char r[4] = {0};
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		read_full(fd, r, sizeof(r));
		close(fd);
	}
	return xasprintf("%02x%02x%02x%02x", r[0], r[1], r[2], r[3]);
}

static int ensure_running(struct cmd_ctx *c, const char *name, bool ephemeral)
{
	if (store_is_running(&c->store, name))
		return 0;
	struct start_opts so = {.timeout_ms = 120000, .ephemeral = ephemeral};
	struct start_result res;
	int r = vm_start(&c->store, name, &so, &res, &c->err);
	if (r == -EALREADY) {
		hutch_error_clear(&c->err);
		return 0; /* somebody else started it meanwhile: fine */
	}
	if (r < 0)
		return r;
	_cleanup_free_ char *warn = start_accel_warning(&res);
	if (warn)
		log_warn("%s", warn);
	if (res.shares_problem[0])
		log_warn("%s", res.shares_problem);
	if (res.net_problem[0])
		log_warn("%s", res.net_problem);
	struct warm_status ws;
	if (ephemeral && warm_status(&c->store, name, &ws) == 0) {
		if (ws.warning[0])
			log_warn("%s", ws.warning);
		if (ws.made_ms)
			log_info("made warm template %s in %.2f s", ws.restored_from, (double)ws.made_ms / 1000.0);
		if (ws.restored_from[0]) {
			log_info("restored from template %s in %llu ms", ws.restored_from,
				 (unsigned long long)ws.restore_ms);
			return 0;
		}
	}
	log_info("started %s in %.2f s", name, (double)res.boot_ms / 1000.0);
	return 0;
}

static int cmd_run(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	struct exec_cli *e = opts;
	_cleanup_free_ char **fp_argv = NULL;
	if (cmd_run_flatpak_args(c, e, &argc, &argv, &fp_argv))
		return EXIT_USAGE;
	/* hutch run NAME with no command: a container image's own (vm_oci.h) */
	bool image_cmd = argc < 2 && !e->flatpak;
	char *no_cmd[] = {argv[0], NULL, NULL};
	char *flatpak_cmd[] = {argv[0], (char *)"flatpak", NULL}; /* its arguments are the app's */
	_cleanup_(flatpak_plan_releasep) struct flatpak_plan fp = {0};
	_cleanup_free_ char *oci_cfg = store_vm_file(&c->store, argv[0], VM_OCI_CONFIG);
	if (image_cmd && access(oci_cfg, F_OK) < 0)
		return cmd_usage(c, "missing command (hutch run NAME -- CMD...; only a VM made from a container "
				    "image has a command of its own)");
	char **cmd = e->flatpak ? flatpak_cmd : image_cmd ? no_cmd : argv;
	int parsed = cmd_exec_finish(c, e, image_cmd || e->flatpak ? 2 : argc, cmd);
	if (!parsed && e->flatpak)
		parsed = cmd_run_flatpak_plan(c, e, argv[0], argc, argv, &fp);
	if (parsed)
		return parsed;
	struct exec_opts o = e->o;
	const char *base = argv[0];
	bool rm = e->rm;
	cmd_set_subject(c, base);
	if (store_check_name(base, &c->err) < 0)
		return EXIT_ERR;
	_cleanup_free_ char *name = NULL;
	int rc = EXIT_ERR;
	struct vm_oci_defaults dflt = {0};
	_cleanup_strv_ char **env = NULL;
	if (rm) {
		/* A fresh instance of NAME's spec (or of the template), destroyed when the program ends. */
		_cleanup_free_ char *suffix = ephemeral_name(base);
		struct create_opts co = {.name = base,
					 .instance = suffix,
					 .ephemeral = true,
					 .shares = e->shares,
					 .accel = e->accel,
					 .backend = e->backend,
					 .uri = e->uri};
		_cleanup_free_ char *src = store_vm_file(&c->store, base, "spec.yml");
		if (store_vm_exists(&c->store, base))
			co.from = src;
		else if (!strcmp(base, "micro"))
			co.template = "micro";
		if (vm_create(&c->store, &co, &name, &c->err) < 0)
			goto out;
		/* a clone of the warm template of that spec, made on first use (warm.h) */
		if (!e->cold)
			warm_mark_instance(&c->store, name, base, NULL); /* unmarked, it boots cold */
	} else {
		if (e->cold)
			return cmd_usage(c, "--cold applies to run --rm");
		name = xstrdup(base);
		if (store_vm_exists(&c->store, name) && e->shares)
			return cmd_usage(
				c,
				"--share applies to a VM that run creates (with --rm, or one not defined yet): "
				"add it to the shares of '%s'",
				name);
		if (store_vm_exists(&c->store, name) && e->accel != ACCEL_UNSET)
			return cmd_usage(c,
					 "--accel applies to a VM that run creates (with --rm, or one not defined "
					 "yet): set accel: in the spec of '%s'",
					 name);
		if (!store_vm_exists(&c->store, name)) {
			struct create_opts co = {.name = base,
						 .shares = e->shares,
						 .accel = e->accel,
						 .backend = e->backend,
						 .uri = e->uri};
			_cleanup_free_ char *created = NULL;
			if (vm_create(&c->store, &co, &created, &c->err) < 0)
				goto out;
		}
	}
	cmd_set_subject(c, name);
	if (ensure_running(c, name, rm) < 0) {
		if (rm) {
			/* whatever the failure, its logs outlive the disposable VM */
			if (c->err.msg) {
				char *kept = failed_keep_logs(&c->store, name, c->err.msg);
				free(c->err.msg);
				c->err.msg = kept;
			}
			struct destroy_opts d = {.force = true, .disk = true};
			vm_destroy(&c->store, name, &d, NULL);
		}
		goto out;
	}
	if (image_cmd) {
		if (vm_oci_defaults(&c->store, name, &dflt, &c->err) < 0)
			goto out;
		o.argv = dflt.argv;
		env = strv_copy(dflt.env);
		for (char **v = e->o.env; v && *v; v++)
			env = strv_push(env, xstrdup(*v));
		o.env = env;
		o.cwd = o.cwd ? o.cwd : dflt.cwd;
		o.user = o.user ? o.user : dflt.user;
	}
	o.app = true;
	o.run_client = rm;
	int status = 0;
	int r = e->flatpak ? cmd_run_flatpak_exec(c, name, &fp, &o, &status)
			   : exec_session(&c->store, name, &o, &status, &c->err);
	if (rm) {
		/* The monitor removes the instance once QEMU is gone; wait for that so nothing is left. */
		struct stop_opts so = {.timeout_ms = 20000};
		struct stop_result sr;
		struct hutch_error e2 = {0};
		vm_stop(&c->store, name, &so, &sr, &e2);
		hutch_error_clear(&e2);
		/* the qemu backend's monitor removed the instance already; a libvirt one is removed here */
		struct destroy_opts d = {.force = true, .disk = true};
		vm_destroy(&c->store, name, &d, NULL);
	}
	rc = exec_exit_code(r, status);
out:
	vm_oci_defaults_release(&dflt);
	return rc;
}

VERB_DEFINE(run, .name = "run", .fn = cmd_run, .opts = cmd_run_opts, .opts_size = sizeof(struct exec_cli),
	    .defaults = &cmd_exec_defaults, .min_args = 1, .max_args = -1, .args = "NAME|TEMPLATE [--] CMD...",
	    .complete = "vm micro;cmd", .summary = "run a program, starting the VM on demand", .flags = VERB_COMMAND);
