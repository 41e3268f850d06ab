#include "cmd.h"
#include "vmops.h"

#include <getopt.h>

VERB(start)
{
	struct start_opts o = {.timeout_ms = 120000};
	const char *instance = NULL;
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'J'},
		{"timeout", required_argument, NULL, 'T'},
		{"instance", required_argument, NULL, 'i'},
		{0},
	};
	int opt;
	while ((opt = getopt_long(argc, argv, "i:", opts, NULL)) != -1) {
		switch (opt) {
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
	struct start_result res;
	if (vm_start(&c->store, name, &o, &res, &c->err) < 0)
		return EXIT_ERR;
	if (!res.kvm)
		log_warn("no KVM, using TCG (slow): %s", res.accel_why);
	if (c->json) {
		json_object *j = json_object_new_object();
		json_object_object_add(j, "name", json_object_new_string(name));
		json_object_object_add(j, "boot_ms", json_object_new_int64((int64_t)res.boot_ms));
		json_object_object_add(j, "monitor_spawn_ms", json_object_new_int64((int64_t)res.spawn_ms));
		json_object_object_add(j, "qmp_ms", json_object_new_int64((int64_t)res.qmp_ms));
		json_object_object_add(j, "agent_hello_ms", json_object_new_int64((int64_t)res.hello_ms));
		json_object_object_add(j, "accel", json_object_new_string(res.kvm ? "kvm" : "tcg"));
		json_object_object_add(j, "kernel_release", json_object_new_string(res.kernel_release));
		cmd_print_json(j);
	} else if (!c->quiet)
		printf("started %s in %.2f s (%s, guest kernel %s)\n", name, (double)res.boot_ms / 1000.0,
		       res.kvm ? "kvm" : "tcg", res.kernel_release);
	return EXIT_OK;
}
