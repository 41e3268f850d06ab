#include "cmd.h"
#include "copy.h"

#include <getopt.h>
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

VERB(cp)
{
	struct copy_opts o = {0};
	static const struct option opts[] = {
		{"recursive", no_argument, NULL, 'r'},
		{"user", required_argument, NULL, 'u'},
		{0},
	};
	int opt;
	while ((opt = getopt_long(argc, argv, "rRu:", opts, NULL)) != -1) {
		switch (opt) {
		case 'r':
		case 'R':
			o.recursive = true;
			break;
		case 'u':
			o.user = optarg;
			break;
		default:
			return cmd_usage(c, "unknown option");
		}
	}
	if (cmd_check_args(c, argc, optind, 2, 2))
		return EXIT_USAGE;
	const char *src = argv[optind], *dst = argv[optind + 1];
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
	return r < 0 ? EXIT_ERR : EXIT_OK;
}
