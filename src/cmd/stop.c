#include "cmd.h"
#include "vmops.h"

#include <getopt.h>
#include <string.h>

VERB(stop)
{
	struct stop_opts o = {.timeout_ms = 30000};
	const char *instance = NULL;
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'J'},
		{"force", no_argument, NULL, 'f'},
		{"timeout", required_argument, NULL, 'T'},
		{"instance", required_argument, NULL, 'i'},
		{0},
	};
	int opt;
	while ((opt = getopt_long(argc, argv, "fi:", opts, NULL)) != -1) {
		switch (opt) {
		case 'f':
			o.force = true;
			break;
		case 'T':
			if (cmd_parse_duration(c, "--timeout", optarg, &o.timeout_ms))
				return EXIT_USAGE;
			break;
		case 'i':
			instance = optarg;
			break;
		case 'J':
			c->json = true;
			break;
		default:
			return cmd_usage(c, "unknown option");
		}
	}
	if (cmd_check_args(c, argc, optind, 1, 1))
		return EXIT_USAGE;
	_cleanup_free_ char *name = NULL;
	if (cmd_vm_name(c, argv[optind], instance, &name))
		return EXIT_ERR;
	struct stop_result res;
	if (vm_stop(&c->store, name, &o, &res, &c->err) < 0)
		return EXIT_ERR;
	bool was = strcmp(res.method, "not-running") != 0;
	if (c->json) {
		json_object *j = json_object_new_object();
		json_object_object_add(j, "name", json_object_new_string(name));
		json_object_object_add(j, "was_running", json_object_new_boolean(was));
		json_object_object_add(j, "method", json_object_new_string(res.method));
		json_object_object_add(j, "ms", json_object_new_int64((int64_t)res.ms));
		cmd_print_json(j);
	} else if (!c->quiet) {
		if (was)
			printf("stopped %s (%s, %.2f s)\n", name, res.method, (double)res.ms / 1000.0);
		else
			printf("%s is not running\n", name);
	}
	return EXIT_OK;
}
