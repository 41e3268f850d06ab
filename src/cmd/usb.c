/* hutch usb ls|attach|detach: host USB devices and the VMs that hold them. */
#include "cmd.h"
#include "usb.h"

#include <string.h>

struct usb_cli {
	int unused;
};

static const struct opt usb_opts[] = {
	OPT_JSON(),
	OPT_END(),
};

static int usb_ls(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	struct usb_dev *v = NULL;
	size_t n = 0;
	if (usb_list(&c->store, &v, &n, &c->err) < 0)
		return EXIT_ERR;
	if (c->json) {
		json_object *arr = json_object_new_array();
		for (size_t i = 0; i < n; i++) {
			json_object *o = json_object_new_object();
			char id[16];
			snprintf(id, sizeof(id), "%04x:%04x", v[i].vendor, v[i].product);
			json_object_object_add(o, "port", json_object_new_string(v[i].port));
			json_object_object_add(o, "bus", json_object_new_int((int)v[i].bus));
			json_object_object_add(o, "device", json_object_new_int((int)v[i].dev));
			json_object_object_add(o, "id", json_object_new_string(id));
			json_object_object_add(o, "serial",
					       v[i].serial[0] ? json_object_new_string(v[i].serial) : NULL);
			json_object_object_add(o, "product",
					       v[i].product_name[0] ? json_object_new_string(v[i].product_name) : NULL);
			json_object_object_add(o, "manufacturer",
					       v[i].manufacturer[0] ? json_object_new_string(v[i].manufacturer) : NULL);
			json_object_object_add(o, "vm", v[i].holder[0] ? json_object_new_string(v[i].holder) : NULL);
			json_object_array_add(arr, o);
		}
		cmd_print_json(arr);
	} else {
		printf("%-10s %3s %3s  %-9s  %-16s %-30s %s\n", "PORT", "BUS", "DEV", "ID", "SERIAL", "PRODUCT", "VM");
		for (size_t i = 0; i < n; i++)
			printf("%-10s %03u %03u  %04x:%04x  %-16s %-30s %s\n", v[i].port, v[i].bus, v[i].dev,
			       v[i].vendor, v[i].product, v[i].serial[0] ? v[i].serial : "-",
			       v[i].product_name[0] ? v[i].product_name : "-", v[i].holder[0] ? v[i].holder : "-");
	}
	free(v);
	return EXIT_OK;
}

static int usb_op(struct cmd_ctx *c, char **argv, bool attach)
{
	cmd_set_subject(c, argv[0]);
	if (store_check_name(argv[0], &c->err) < 0)
		return EXIT_ERR;
	struct usb_dev *v = NULL;
	size_t n = 0, i;
	if (usb_list(&c->store, &v, &n, &c->err) < 0)
		return EXIT_ERR;
	int rc = EXIT_ERR;
	if (usb_find(v, n, argv[1], &i, &c->err) < 0)
		goto out;
	if (attach) {
		_cleanup_close_ int fd = -1;
		if (usb_open_node(&v[i], &fd, &c->err) < 0 || usb_attach(&c->store, argv[0], &v[i], fd, &c->err) < 0)
			goto out;
	} else {
		if (strcmp(v[i].holder, argv[0])) {
			hutch_error_set(&c->err, ENOENT, "%s (%04x:%04x) is not attached to '%s'", v[i].port,
					v[i].vendor, v[i].product, argv[0]);
			goto out;
		}
		if (usb_detach(&c->store, argv[0], &v[i], &c->err) < 0)
			goto out;
	}
	if (!c->quiet)
		printf("%s %s (%04x:%04x) %s '%s'\n", attach ? "attached" : "detached", v[i].port, v[i].vendor,
		       v[i].product, attach ? "to" : "from", argv[0]);
	rc = EXIT_OK;
out:
	free(v);
	return rc;
}

static int usb_attach_cmd(struct cmd_ctx *c, void *opts, int argc, char **argv) { return usb_op(c, argv, true); }
static int usb_detach_cmd(struct cmd_ctx *c, void *opts, int argc, char **argv) { return usb_op(c, argv, false); }

static const struct verb usb_subs[] = {
	VERB_SUB(.name = "ls", .fn = usb_ls, .summary = "the host's USB devices and the VM holding each"),
	VERB_SUB(.name = "attach", .fn = usb_attach_cmd, .min_args = 2, .max_args = 2, .args = "NAME VID:PID|BUS-PORT",
		 .complete = "vm", .summary = "attach a device to a running VM (detached from another VM first)"),
	VERB_SUB(.name = "detach", .fn = usb_detach_cmd, .min_args = 2, .max_args = 2, .args = "NAME VID:PID|BUS-PORT",
		 .complete = "vm", .summary = "detach a device from a running VM"),
	{0},
};

VERB_DEFINE(usb, .name = "usb", .opts = usb_opts, .opts_size = sizeof(struct usb_cli),
	    .summary = "host USB devices: list, attach to and detach from running VMs", .subs = usb_subs, .sub_at = 0);
