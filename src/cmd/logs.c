#include "cmd.h"

#include <fcntl.h>
#include <getopt.h>
#include <string.h>

VERB(logs)
{
	bool follow = false;
	const char *instance = NULL;
	static const struct option opts[] = {
		{"follow", no_argument, NULL, 'f'},
		{"instance", required_argument, NULL, 'i'},
		{0},
	};
	int opt;
	while ((opt = getopt_long(argc, argv, "fi:", opts, NULL)) != -1) {
		switch (opt) {
		case 'f':
			follow = true;
			break;
		case 'i':
			instance = optarg;
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
	if (!store_vm_exists(&c->store, name)) {
		hutch_error_set(&c->err, ENOENT, "no VM named '%s'", name);
		return EXIT_ERR;
	}
	_cleanup_free_ char *path = store_vm_file(&c->store, name, "console.log");
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && !(errno == ENOENT && follow)) {
		if (errno == ENOENT)
			hutch_error_set(&c->err, ENOENT, "no console log yet (it has never been started)");
		else
			hutch_error_set(&c->err, errno, "cannot open '%s': %s", path, strerror(errno));
		return EXIT_ERR;
	}
	char buf[65536];
	for (;;) {
		if (fd < 0)
			fd = open(path, O_RDONLY | O_CLOEXEC);
		ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf)) : 0;
		if (n > 0) {
			if (write_all(STDOUT_FILENO, buf, (size_t)n) < 0)
				return EXIT_ERR;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (!follow)
			break;
		/* Follow while the VM runs; a drained log of a stopped VM ends the stream. */
		if (!store_is_running(&c->store, name)) {
			if (fd >= 0 && (n = read(fd, buf, sizeof(buf))) > 0) {
				write_all(STDOUT_FILENO, buf, (size_t)n);
				continue;
			}
			break;
		}
		usleep(100000);
	}
	return EXIT_OK;
}
