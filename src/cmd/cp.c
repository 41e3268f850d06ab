#include "cmd.h"
#include "session.h"
#include "copy.h"

#include <string.h>

/* "NAME:/path" -> NAME and /path. A host path with a colon can be given as ./a:b. */
static bool split_vm(const char *arg, char **ret_vm, const char **ret_path)
{
	const char *colon = strchr(arg, ':');
	const char *slash = strchr(arg, '/');
	if (!colon || colon == arg || (slash && slash < colon))
		return false;
	*ret_vm = xstrndup(arg, (size_t)(colon - arg));
	*ret_path = colon + 1;
	return true;
}

static const struct opt cp_opts[] = {
	OPT_BOOL('r', "recursive", struct copy_opts, recursive, "copy directories"),
	OPT_BOOL('R', NULL, struct copy_opts, recursive, "the same as -r", .flags = OPT_HIDDEN),
	OPT_STRING('u', "user", struct copy_opts, user, "USER", "the guest user who reads or owns the files"),
	OPT_END(),
};

static int cmd_cp(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	struct copy_opts o = *(const struct copy_opts *)opts;
	_cleanup_strv_ char **warnings = NULL;
	o.warnings = &warnings;
	const char *src = argv[0], *dst = argv[1];
	_cleanup_free_ char *svm = NULL, *dvm = NULL;
	const char *spath = src, *dpath = dst;
	bool s_in = split_vm(src, &svm, &spath), d_in = split_vm(dst, &dvm, &dpath);
	if (s_in == d_in)
		return cmd_usage(c, "exactly one side must be NAME:/path");
	const char *vm = s_in ? svm : dvm;
	cmd_set_subject(c, vm);
	if (store_check_name(vm, &c->err) < 0)
		return EXIT_ERR;
	const char *gpath = s_in ? spath : dpath;
	if (gpath[0] != '/')
		return cmd_usage(c, "the guest path must be absolute: '%s'", gpath);
	int r = s_in ? copy_from_guest(&c->store, vm, spath, dst, &o, &c->err)
		     : copy_to_guest(&c->store, vm, src, dpath, &o, &c->err);
	for (size_t i = 0; warnings && warnings[i]; i++)
		log_warn("cp: %s", warnings[i]);
	return exec_exit_code(r, EXIT_OK); /* 255 when the session was lost mid-copy, like scp */
}

VERB_DEFINE(cp, .name = "cp", .fn = cmd_cp, .opts = cp_opts, .opts_size = sizeof(struct copy_opts), .min_args = 2,
	    .max_args = 2, .args = "SRC DST", .complete = "vmpath",
	    .summary = "copy files into or out of a VM (one side is NAME:/path)");
