/* hutch build NAME: fetch and verify the base image without creating the VM. */
#include "cmd.h"
#include "vmops.h"

#include <getopt.h>

VERB(build)
{
	struct create_opts o = {0};
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'J'},
		{"from", required_argument, NULL, 'f'},
		{"image", required_argument, NULL, 'I'},
		{"checksum", required_argument, NULL, 'C'},
		{0},
	};
	int opt;
	while ((opt = getopt_long(argc, argv, "f:", opts, NULL)) != -1) {
		switch (opt) {
		case 'f':
			o.from = optarg;
			break;
		case 'I':
			o.image = optarg;
			break;
		case 'C':
			o.checksum = optarg;
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
	o.name = argv[optind];
	cmd_set_subject(c, o.name);
	struct cmd_progress prog;
	o.progress = cmd_progress_init(c, &prog);
	_cleanup_free_ char *path = NULL;
	int r = vm_build(&c->store, &o, &path, &c->err);
	bool interrupted = cmd_progress_done(&prog);
	if (r < 0)
		return interrupted ? 130 : EXIT_ERR;
	if (c->json) {
		json_object *j = json_object_new_object();
		json_object_object_add(j, "name", json_object_new_string(o.name));
		json_object_object_add(j, "image", path ? json_object_new_string(path) : NULL);
		cmd_print_json(j);
	} else if (!c->quiet)
		printf("%s: %s\n", o.name, path ? path : "micro template (built at start)");
	return EXIT_OK;
}
