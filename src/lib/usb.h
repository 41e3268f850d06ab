/* Host USB devices for VMs (reference 004's vmsilo-usb): the list from sysfs, which VM holds each,
 * and attach/detach through QMP. hutch opens /dev/bus/usb/BBB/DDD itself and hands QEMU the fd
 * (add-fd, then device_add usb-host,hostdevice=/dev/fdset/N), so the user's own permission on the
 * node is what counts: rootless wherever udev grants it.
 *
 * /sys/bus/usb/devices and /dev/bus/usb are read under HUTCH_SYSFS_ROOT (tests only). */
#pragma once
#include "store.h"
#include "util.h"

#include <json-c/json.h>

struct usb_dev {
	char port[32]; /* the sysfs name, BUS-PORT[.PORT...]: "1-2.3" */
	unsigned bus, dev;
	unsigned vendor, product;
	char serial[128], product_name[128], manufacturer[128]; /* "" when the device has none */
	char holder[64];					/* the VM it is attached to, "" when none */
};

/* Every device but the root hubs, sorted by port; holders from the running VMs' records. */
int usb_list(const struct store *st, struct usb_dev **ret, size_t *ret_n, struct hutch_error *err);
/* WHAT is VID:PID (one device must match) or BUS-PORT. */
int usb_find(const struct usb_dev *v, size_t n, const char *what, size_t *ret_idx, struct hutch_error *err);
/* /dev/bus/usb/BBB/DDD (under HUTCH_SYSFS_ROOT in tests). */
char *usb_node_path(const struct usb_dev *d);
/* Opens the node read-write; when the user may not, the error names the node and the udev rule. */
int usb_open_node(const struct usb_dev *d, int *ret_fd, struct hutch_error *err);
/* QEMU's id for the device in a VM: "usb-1-2.3". */
char *usb_qdev_id(const struct usb_dev *d);
/* device_add's arguments for a device whose fd is in fdset fdset_id. */
json_object *usb_device_add_args(const struct usb_dev *d, int64_t fdset_id);

/* Attach the opened node to the VM NAME through its QMP socket (qmp-user.sock), and record it in the
 * VM's run dir. A device another VM holds is detached from that VM first. */
int usb_attach(const struct store *st, const char *name, const struct usb_dev *d, int fd, struct hutch_error *err);
int usb_detach(const struct store *st, const char *name, const struct usb_dev *d, struct hutch_error *err);
