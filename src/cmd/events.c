#include "cmd.h"
#include "events.h"

#include <string.h>
#include <time.h>

/* hutch events [--json] [NAME]: lifecycle events of every VM (or NAME), as they happen, until
 * interrupted. */
static int print_event(json_object *ev, void *userdata)
{
	struct cmd_ctx *c = userdata;
	if (c->json) {
		puts(json_object_to_json_string_ext(ev, JSON_C_TO_STRING_PLAIN));
	} else {
		time_t t = (time_t)(cmd_json_int(ev, "time_ms") / 1000);
		struct tm tm;
		char when[32] = "";
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
		const char *reason = cmd_json_str(ev, "reason"), *detail = cmd_json_str(ev, "detail");
		printf("%s %s %s %s%s%s%s%s\n", when, cmd_json_str(ev, "vm"), cmd_json_str(ev, "backend"),
		       cmd_json_str(ev, "event"), *reason ? " " : "", reason, *detail ? ": " : "", detail);
	}
	fflush(stdout); /* one event, one line, now: the reader is usually a pipe */
	return ferror(stdout) ? -EPIPE : 0;
}

static const struct opt events_opts[] = {
	OPT_JSON(),
	OPT_END(),
};

static int cmd_events(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	(void)opts;
	const char *only = argc > 0 ? argv[0] : NULL;
	if (only && store_check_name(only, &c->err) < 0)
		return EXIT_ERR;
	if (only)
		cmd_set_subject(c, only);
	int r = events_follow(&c->store, only, print_event, c, &c->err);
	if (r == -EPIPE)
		return EXIT_OK; /* the reader went away */
	return r < 0 ? EXIT_ERR : EXIT_OK;
}

VERB_DEFINE(events, .name = "events", .fn = cmd_events, .opts = events_opts, .min_args = 0, .max_args = 1,
	    .args = "[NAME]", .complete = "vm",
	    .summary = "follow VMs' lifecycle events (started, agent-ready, stopped, crashed)");
