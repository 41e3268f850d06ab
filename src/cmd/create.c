#include "cmd.h"
#include "vmops.h"

#include <getopt.h>

VERB(create)
{
	struct create_opts o = {0};
	static const struct option opts[] = {
		{"template", required_argument, NULL, 't'}, {"from", required_argument, NULL, 'f'},
		{"instance", required_argument, NULL, 'i'}, {"memory", required_argument, NULL, 'm'},
		{"cpus", required_argument, NULL, 'c'},     {"disk", required_argument, NULL, 'd'},
		{0},
	};
	int opt;
	long long n;
	while ((opt = getopt_long(argc, argv, "t:f:i:m:c:d:", opts, NULL)) != -1) {
		switch (opt) {
		case 't':
			o.template = optarg;
			break;
		case 'f':
			o.from = optarg;
			break;
		case 'i':
			o.instance = optarg;
			break;
		case 'm':
			if (cmd_parse_size(c, "--memory", optarg, &o.memory))
				return EXIT_USAGE;
			break;
		case 'c':
			if (cmd_parse_uint(c, "--cpus", optarg, 256, &n) || n < 1)
				return cmd_usage(c, "--cpus: expected 1..256");
			o.cpus = (unsigned)n;
			break;
		case 'd':
			if (cmd_parse_size(c, "--disk", optarg, &o.disk))
				return EXIT_USAGE;
			break;
		default:
			return cmd_usage(c, "unknown option");
		}
	}
	if (cmd_check_args(c, argc, optind, 1, 1))
		return EXIT_USAGE;
	if (o.template && o.from)
		return cmd_usage(c, "--template and --from exclude each other");
	o.name = argv[optind];
	cmd_set_subject(c, o.name);
	_cleanup_free_ char *name = NULL;
	if (vm_create(&c->store, &o, &name, &c->err) < 0)
		return EXIT_ERR;
	cmd_set_subject(c, name);
	if (c->json) {
		json_object *j = json_object_new_object();
		json_object_object_add(j, "name", json_object_new_string(name));
		json_object_object_add(j, "created", json_object_new_boolean(1));
		cmd_print_json(j);
	} else if (!c->quiet)
		printf("created %s\n", name);
	return EXIT_OK;
}
