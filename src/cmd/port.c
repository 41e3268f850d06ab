#include "client.h"
#include "cmd.h"

#include <getopt.h>
#include <string.h>

/* hutch port NAME add|rm HOST:GUEST[/udp] | hutch port NAME ls — live, through the monitor. */
VERB(port)
{
	const char *instance = NULL;
	static const struct option opts[] = {
		{"instance", required_argument, NULL, 'i'}, {"json", no_argument, NULL, 'J'}, {0}};
	int opt;
	while ((opt = getopt_long(argc, argv, "i:", opts, NULL)) != -1) {
		if (opt == 'i')
			instance = optarg;
		else if (opt == 'J')
			c->json = true;
		else
			return cmd_usage(c, "unknown option");
	}
	if (cmd_check_args(c, argc, optind, 2, 3))
		return EXIT_USAGE;
	const char *action = argv[optind + 1];
	const char *spec = optind + 2 < argc ? argv[optind + 2] : NULL;
	bool ls = !strcmp(action, "ls") || !strcmp(action, "list");
	if (!ls && strcmp(action, "add") != 0 && strcmp(action, "rm") != 0)
		return cmd_usage(c, "unknown action '%s' (add, rm or ls)", action);
	if (ls == (spec != NULL))
		return cmd_usage(c, ls ? "ls takes no forward" : "missing forward HOST:GUEST[/tcp|/udp]");
	_cleanup_free_ char *name = NULL;
	if (cmd_vm_name(c, argv[optind], instance, &name))
		return EXIT_ERR;
	_cleanup_close_ int fd = -1;
	if (monitor_connect(&c->store, name, &fd, &c->err) < 0)
		return EXIT_ERR;
	json_object *req = json_object_new_object(), *res = NULL, *v;
	json_object_object_add(req, "op",
			       json_object_new_string(ls		       ? "port-ls"
						      : !strcmp(action, "add") ? "port-add"
									       : "port-rm"));
	if (spec)
		json_object_object_add(req, "spec", json_object_new_string(spec));
	if (monitor_request(fd, req, 15000, &res, &c->err) < 0)
		return EXIT_ERR;
	if (!json_object_object_get_ex(res, "ok", &v) || !json_object_get_boolean(v)) {
		hutch_error_set(&c->err, EIO, "%s",
				json_object_object_get_ex(res, "error", &v) ? json_object_get_string(v) : "failed");
		json_object_put(res);
		return EXIT_ERR;
	}
	json_object *fw = NULL;
	json_object_object_get_ex(res, "forwards", &fw);
	if (c->json) {
		json_object *out = json_object_new_object();
		json_object_object_add(out, "name", json_object_new_string(name));
		json_object_object_add(out, "forwards", json_object_get(fw));
		cmd_print_json(out);
	} else if (ls || !c->quiet) {
		for (size_t i = 0; fw && i < json_object_array_length(fw); i++)
			printf("127.0.0.1:%s\n", json_object_get_string(json_object_array_get_idx(fw, i)));
	}
	json_object_put(res);
	return EXIT_OK;
}
