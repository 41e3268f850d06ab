#include "cmd.h"
#include "vmops.h"

#include <getopt.h>

VERB(create)
{
	struct create_opts o = {0};
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'J'},
		{"template", required_argument, NULL, 't'},
		{"from", required_argument, NULL, 'f'},
		{"instance", required_argument, NULL, 'i'},
		{"memory", required_argument, NULL, 'm'},
		{"cpus", required_argument, NULL, 'c'},
		{"disk", required_argument, NULL, 'd'},
		{"image", required_argument, NULL, 'I'},
		{"checksum", required_argument, NULL, 'C'},
		{"pull", no_argument, NULL, 'P'},
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
		case 'I':
			o.image = optarg;
			break;
		case 'C':
			o.checksum = optarg;
			break;
		case 'P':
			o.pull = true;
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
		case 'J':
			c->json = true;
			break;
		default:
			return cmd_usage(c, "unknown option");
		}
	}
	if (cmd_check_args(c, argc, optind, 1, 1))
		return EXIT_USAGE;
	if (!!o.template + !!o.from + !!o.image > 1)
		return cmd_usage(c, "--template, --from and --image exclude each other");
	if (o.checksum && !o.image)
		return cmd_usage(c, "--checksum goes with --image");
	struct cmd_progress prog;
	o.progress = cmd_progress_init(c, &prog);
	o.name = argv[optind];
	cmd_set_subject(c, o.name);
	_cleanup_free_ char *name = NULL;
	int r = vm_create(&c->store, &o, &name, &c->err);
	cmd_progress_done(&prog);
	if (r < 0)
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
