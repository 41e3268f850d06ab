/* hutch setup [--check]: make this host ready for hutch, idempotently (src/lib/setup.h). --check
 * changes nothing and exits 1 when something would change. */
#include "cmd.h"
#include "setup.h"

struct setup_cli {
	bool check;
};

static const struct opt setup_opts[] = {
	OPT_BOOL(0, "check", struct setup_cli, check, "change nothing; exit 1 when something would change"),
	OPT_JSON(),
	OPT_END(),
};

static const char *const kind_names[] = {"dir", "template", "config", "libvirt-uri"};

static void print_json(const struct setup_plan *p, bool check)
{
	json_object *j = json_object_new_object();
	json_object_object_add(j, "check", json_object_new_boolean(check));
	json_object *steps = json_object_new_array();
	for (size_t i = 0; i < p->n; i++) {
		const struct setup_step *s = &p->steps[i];
		json_object *o = json_object_new_object();
		json_object_object_add(o, "step", json_object_new_string(kind_names[s->kind]));
		json_object_object_add(o, "path", json_object_new_string(s->path));
		json_object_object_add(o, "what", json_object_new_string(s->what ? s->what : ""));
		json_object_object_add(o, "needed", json_object_new_boolean(s->needed));
		json_object_object_add(o, "done", json_object_new_boolean(s->done));
		json_object_object_add(o, "error", s->error ? json_object_new_string(s->error) : NULL);
		json_object_object_add(o, "hint", s->hint ? json_object_new_string(s->hint) : NULL);
		json_object_array_add(steps, o);
	}
	json_object_object_add(j, "steps", steps);
	json_object_object_add(j, "hints", cmd_json_strv(p->hints));
	cmd_print_json(j);
}

static void print_text(const struct setup_plan *p, bool check)
{
	size_t printed = 0;
	for (size_t i = 0; i < p->n; i++) {
		const struct setup_step *s = &p->steps[i];
		if (s->error) {
			fprintf(stderr, "hutch: setup: %s: %s\n", s->what, s->error);
			if (s->hint)
				fprintf(stderr, "hutch: setup: run: %s\n", s->hint);
		} else if (check && s->needed) {
			printf("would %s\n", s->what);
			printed++;
		} else if (!check && s->done) {
			printf("%s\n", s->done_what ? s->done_what : s->what);
			printed++;
		}
	}
	if (!printed && !setup_failed(p))
		printf("nothing to do\n");
	/* root-only fixes: hints, not changes, so they do not make --check fail */
	for (size_t i = 0; p->hints && p->hints[i]; i++)
		fprintf(stderr, "hint: %s\n", p->hints[i]);
}

static int cmd_setup(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	struct setup_cli *s = opts;
	struct setup_plan p;
	if (setup_plan_make(&c->store, &p, &c->err) < 0)
		return EXIT_ERR;
	if (!s->check)
		setup_apply(&p);
	if (c->json)
		print_json(&p, s->check);
	else if (!c->quiet || setup_failed(&p))
		print_text(&p, s->check);
	int rc = setup_failed(&p) || (s->check && setup_needed(&p)) ? EXIT_ERR : EXIT_OK;
	setup_plan_release(&p);
	return rc;
}

VERB_DEFINE(setup, .name = "setup", .fn = cmd_setup, .opts = setup_opts, .opts_size = sizeof(struct setup_cli),
	    .summary = "make this host ready: directories, the micro template, config.yml, libvirt's default URI");
