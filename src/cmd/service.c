/* hutch service render --init systemd|supervisord [--full]: what makes the libvirt session daemons
 * run for this user, printed for the init to use. Nothing is installed or started. */
#include "cmd.h"
#include "service.h"

#include <stdio.h>

struct service_cli {
	int init; /* enum service_init; -1 until --init is given */
	bool full;
};

static const struct opt service_render_opts[] = {
	OPT_ENUM(0, "init", struct service_cli, init, "INIT", service_init_names,
		 "the init that runs the daemons (required)", .complete = "systemd supervisord"),
	OPT_BOOL(0, "full", struct service_cli, full,
		 "supervisord: a complete supervisord.conf, not only [program:] blocks"),
	OPT_END(),
};

static const struct service_cli service_defaults = {.init = -1};

static int cmd_service_render(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	struct service_cli *s = opts;
	if (s->init < 0)
		return cmd_usage(c, "--init is required: systemd or supervisord");
	if (s->full && s->init != SERVICE_INIT_SUPERVISORD)
		return cmd_usage(c, "--full: only with --init supervisord");
	struct service_install in;
	/* HUTCH_ROOT_PREFIX is for tests only: probe a fake install tree instead of / */
	if (service_probe(getenv("HUTCH_ROOT_PREFIX"), getenv("PATH"), &in, &c->err) < 0)
		return EXIT_ERR;
	const char *runtime_dir = getenv("XDG_RUNTIME_DIR");
	struct service_render_opts ro = {
		.init = (enum service_init)s->init,
		.full = s->full,
		.runtime_dir = runtime_dir && *runtime_dir ? runtime_dir : NULL,
	};
	_cleanup_strbuf_ struct strbuf out = STRBUF_INIT;
	int r = service_render(&in, &ro, &out, &c->err);
	service_install_release(&in);
	if (r < 0)
		return EXIT_ERR;
	fputs(strbuf_str(&out), stdout);
	return EXIT_OK;
}

static const struct verb service_subs[] = {
	VERB_SUB(.name = "render", .fn = cmd_service_render, .opts = service_render_opts,
		 .summary = "print the units (systemd) or programs (supervisord) for the libvirt session daemons"),
	{0},
};

VERB_DEFINE(service, .name = "service", .opts_size = sizeof(struct service_cli), .defaults = &service_defaults,
	    .subs = service_subs, .summary = "run the libvirt session daemons under systemd --user or supervisord");
