#include "cmd.h"
#include "vmops.h"

#include <getopt.h>

VERB(destroy)
{
	struct destroy_opts o = {0};
	const char *instance = NULL;
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'J'},
		{"disk", no_argument, NULL, 'd'},
		{"force", no_argument, NULL, 'f'},
		{"instance", required_argument, NULL, 'i'},
		{0},
	};
	int opt;
	while ((opt = getopt_long(argc, argv, "dfi:", opts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			o.disk = true;
			break;
		case 'f':
			o.force = true;
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
	if (vm_destroy(&c->store, name, &o, &c->err) < 0)
		return EXIT_ERR;
	if (c->json) {
		json_object *j = json_object_new_object();
		json_object_object_add(j, "name", json_object_new_string(name));
		json_object_object_add(j, "destroyed", json_object_new_boolean(1));
		cmd_print_json(j);
	} else if (!c->quiet)
		printf("destroyed %s\n", name);
	return EXIT_OK;
}
