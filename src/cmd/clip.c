#include "clipboard.h"
#include "cmd.h"

#include <unistd.h>

/* hutch clip copy NAME | clip paste NAME | clip show, each with --type MIME */
struct clip_cli {
	const char *instance;
	const char *type;
};

static const struct opt clip_opts[] = {
	OPT_INSTANCE(struct clip_cli),
	OPT_STRING(0, "type", struct clip_cli, type, "MIME", "text/plain (the default) or image/png"),
	OPT_JSON(),
	OPT_END(),
};

static void report(struct cmd_ctx *c, const char *name, const char *what, size_t len)
{
	if (c->json) {
		json_object *j = json_object_new_object();
		json_object_object_add(j, "name", json_object_new_string(name));
		json_object_object_add(j, "bytes", json_object_new_int64((int64_t)len));
		json_object_object_add(j, "global", json_object_new_string(clip_backend_names[clip_global_backend()]));
		cmd_print_json(j);
	} else if (!c->quiet) {
		printf(what, len, name);
	}
}

static int type_of(struct cmd_ctx *c, const struct clip_cli *o, enum clip_type *ret)
{
	int t = o->type ? clip_type_parse(o->type) : CLIP_TEXT;
	if (t < 0) {
		hutch_error_set(&c->err, EINVAL, "--type '%s': text/plain or image/png", o->type);
		return EXIT_USAGE;
	}
	*ret = (enum clip_type)t;
	return 0;
}

static int clip_copy_cmd(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	const struct clip_cli *o = opts;
	_cleanup_free_ char *name = NULL;
	size_t len;
	enum clip_type t;
	int e = type_of(c, o, &t);
	if (e)
		return e;
	if (cmd_vm_name(c, argv[0], o->instance, &name) || clip_copy(&c->store, name, t, &len, &c->err) < 0)
		return EXIT_ERR;
	report(c, name, "copied %zu bytes from the clipboard of '%s' to the global clipboard\n", len);
	return EXIT_OK;
}

static int clip_paste_cmd(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	const struct clip_cli *o = opts;
	_cleanup_free_ char *name = NULL;
	size_t len;
	enum clip_type t;
	int e = type_of(c, o, &t);
	if (e)
		return e;
	if (cmd_vm_name(c, argv[0], o->instance, &name) || clip_paste(&c->store, name, t, &len, &c->err) < 0)
		return EXIT_ERR;
	report(c, name, "pasted %zu bytes of the global clipboard into the clipboard of '%s'\n", len);
	return EXIT_OK;
}

static int clip_show_cmd(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	enum clip_type t;
	int e = type_of(c, opts, &t);
	if (e)
		return e;
	if (clip_global_get(&c->store, t, CLIPBOARD_MAX_LIMIT, &buf, &len, &c->err) < 0)
		return EXIT_ERR;
	if (c->json) {
		json_object *j = json_object_new_object();
		json_object_object_add(j, "global", json_object_new_string(clip_backend_names[clip_global_backend()]));
		bool text = t == CLIP_TEXT && clip_text_valid(buf, len);
		json_object_object_add(j, "type", json_object_new_string(clip_type_names[t]));
		json_object_object_add(j, "text", text ? json_object_new_string_len(buf, (int)len) : NULL);
		json_object_object_add(j, "bytes", json_object_new_int64((int64_t)len));
		cmd_print_json(j);
		return EXIT_OK;
	}
	return write_all(STDOUT_FILENO, buf, len) < 0 ? EXIT_ERR : EXIT_OK;
}

static const struct verb clip_subs[] = {
	VERB_SUB(.name = "copy", .fn = clip_copy_cmd, .min_args = 1, .max_args = 1, .args = "NAME", .complete = "vm",
		 .summary = "copy the VM's clipboard into the global clipboard"),
	VERB_SUB(.name = "paste", .fn = clip_paste_cmd, .min_args = 1, .max_args = 1, .args = "NAME", .complete = "vm",
		 .summary = "copy the global clipboard into the VM's clipboard"),
	VERB_SUB(.name = "show", .fn = clip_show_cmd, .summary = "print the global clipboard"),
	{0},
};

VERB_DEFINE(clip, .name = "clip", .opts = clip_opts, .opts_size = sizeof(struct clip_cli),
	    .summary = "the two-level clipboard: a VM's own and the global one", .subs = clip_subs);
