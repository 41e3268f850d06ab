#include "backend.h"
#include "cmd.h"
#include "menu.h"
#include "ready.h"
#include "vmops.h"

struct start_cli {
	struct start_opts o;
	const char *instance;
};

static const struct opt start_opts[] = {
	OPT_INSTANCE(struct start_cli),
	OPT_ENUM(0, "wait", struct start_cli, o.wait, "WHAT", start_wait_names,
		 "what to wait for; auto: the agent for micro VMs, the agent and sshd for image VMs, and "
		 "cloud-init too when the seed has packages or runcmd"),
	OPT_DURATION(0, "timeout", struct start_cli, o.timeout_ms, "SEC",
		     "give up after SEC, stopping the VM (default 120; for all it waits for)"),
	OPT_JSON(),
	OPT_END(),
};

static const struct start_cli start_defaults = {.o.timeout_ms = 120000};

/* "agent 31.2 s, sshd 36.0 s, cloud-init 70.4 s (1 module failed)": what start waited for. */
static char *waited_text(const struct start_result *r)
{
	struct strbuf sb = STRBUF_INIT;
	if (r->waited == WAIT_NONE)
		return xstrdup("not waiting for the guest");
	strbuf_addf(&sb, "agent %.1f s", (double)r->hello_ms / 1000.0);
	if (r->waited >= WAIT_SSH)
		strbuf_addf(&sb, r->no_sshd ? ", no sshd" : ", sshd %.1f s", (double)r->ssh_ms / 1000.0);
	if (r->waited >= WAIT_CLOUD_INIT) {
		if (r->cloud_init_ms)
			strbuf_addf(&sb, ", cloud-init %.1f s", (double)r->cloud_init_ms / 1000.0);
		else
			strbuf_addf(&sb, ", cloud-init %s", ci_state_names[r->cloud_init]);
		if (r->cloud_init_failures)
			strbuf_addf(&sb, " (%d module%s failed)", r->cloud_init_failures,
				    r->cloud_init_failures == 1 ? "" : "s");
	}
	return strbuf_detach(&sb, NULL);
}

static int cmd_start(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	struct start_cli *s = opts;
	_cleanup_free_ char *name = NULL;
	if (cmd_vm_name(c, argv[0], s->instance, &name))
		return EXIT_ERR;
	struct start_result res;
	if (vm_start(&c->store, name, &s->o, &res, &c->err) < 0)
		return c->err.code == EALREADY ? EXIT_ALREADY : EXIT_ERR;
	desktop_autosync(&c->store, name, res.waited != WAIT_NONE); /* menu entries, when the spec has apps */
	_cleanup_free_ char *warn = start_accel_warning(&res);
	if (warn)
		log_warn("%s", warn);
	if (res.shares_problem[0])
		log_warn("%s", res.shares_problem);
	if (res.net_problem[0])
		log_warn("%s", res.net_problem);
	if (c->json) {
		json_object *j = json_object_new_object();
		json_object_object_add(j, "name", json_object_new_string(name));
		json_object_object_add(j, "boot_ms", json_object_new_int64((int64_t)res.boot_ms));
		json_object_object_add(j, "monitor_spawn_ms", json_object_new_int64((int64_t)res.spawn_ms));
		json_object_object_add(j, "qmp_ms", json_object_new_int64((int64_t)res.qmp_ms));
		json_object_object_add(j, "agent_hello_ms", json_object_new_int64((int64_t)res.hello_ms));
		json_object_object_add(j, "accel", json_object_new_string(res.kvm ? "kvm" : "tcg"));
		json_object_object_add(j, "cpu", json_object_new_string(res.accel_cpu));
		if (!res.kvm)
			json_object_object_add(j, "accel_why", json_object_new_string(res.accel_why));
		if (res.accel_probed)
			json_object_object_add(j, "accel_probe_ms", json_object_new_int64((int64_t)res.accel_probe_ms));
		json_object_object_add(j, "kernel_release", json_object_new_string(res.kernel_release));
		json_object_object_add(j, "waited", json_object_new_string(start_wait_names[res.waited]));
		if (res.waited >= WAIT_SSH)
			json_object_object_add(j, "sshd_ms",
					       res.no_sshd ? NULL : json_object_new_int64((int64_t)res.ssh_ms));
		if (res.waited >= WAIT_CLOUD_INIT) {
			json_object_object_add(j, "cloud_init", json_object_new_string(ci_state_names[res.cloud_init]));
			json_object_object_add(j, "cloud_init_ms", json_object_new_int64((int64_t)res.cloud_init_ms));
		}
		cmd_print_json(j);
	} else if (!c->quiet) {
		_cleanup_free_ char *waited = waited_text(&res);
		if (res.waited == WAIT_NONE)
			printf("started %s (%s, %s)\n", name, res.kvm ? "kvm" : "tcg", waited);
		else
			printf("started %s in %.2f s (%s, guest kernel %s): %s\n", name, (double)res.boot_ms / 1000.0,
			       res.kvm ? "kvm" : "tcg", res.kernel_release, waited);
	}
	return EXIT_OK;
}

VERB_DEFINE(start, .name = "start", .fn = cmd_start, .opts = start_opts, .opts_size = sizeof(struct start_cli),
	    .defaults = &start_defaults, .min_args = 1, .max_args = 1, .args = "NAME", .complete = "vm",
	    .summary = "boot a VM; returns when it is usable (see --wait)");
