#include "cmd.h"
#include "vmops.h"

#include <string.h>

int cmd_fail(struct cmd_ctx *c, int r)
{
	if (!c->err.msg)
		hutch_error_set(&c->err, r, "%s", strerror(r < 0 ? -r : r));
	return EXIT_ERR;
}

void cmd_set_subject(struct cmd_ctx *c, const char *name)
{
	free(c->subject);
	c->subject = name ? xstrdup(name) : NULL;
}

void cmd_print_json(json_object *o)
{
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

int cmd_parse_size(struct cmd_ctx *c, const char *opt, const char *v, uint64_t *ret)
{
	if (parse_size(v, ret) < 0)
		return cmd_usage(c, "%s: invalid size '%s' (use e.g. 512M, 2G)", opt, v);
	return 0;
}

int cmd_parse_uint(struct cmd_ctx *c, const char *opt, const char *v, long long max, long long *ret)
{
	if (parse_ll(v, 0, max, ret) < 0)
		return cmd_usage(c, "%s: expected a number between 0 and %lld, not '%s'", opt, max, v);
	return 0;
}

int cmd_parse_duration(struct cmd_ctx *c, const char *opt, const char *v, uint64_t *ret_ms)
{
	if (parse_duration_ms(v, ret_ms) < 0)
		return cmd_usage(c, "%s: invalid duration '%s' (use seconds, or e.g. 90s, 5m)", opt, v);
	return 0;
}

bool cmd_color(void) { return isatty(STDOUT_FILENO) && !getenv("NO_COLOR"); }

int cmd_vm_name(struct cmd_ctx *c, const char *name, const char *instance, char **ret)
{
	cmd_set_subject(c, instance ? NULL : name);
	int r = vm_instance_name(name, instance, ret, &c->err);
	if (r < 0)
		return EXIT_ERR;
	cmd_set_subject(c, *ret);
	return 0;
}
