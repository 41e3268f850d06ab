/* Host USB devices for VMs (usb.h). */
#include "usb.h"
#include "backend_libvirt.h"
#include "qmp.h"
#include "unixsock.h"

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#define QMP_WAIT_MS 5000

/* A sysfs attribute, printable ASCII only, at most len-1 bytes; "" when absent. */
static void attr(const char *dev, const char *name, char *out, size_t len)
{
	_cleanup_free_ char *p = host_path("HUTCH_SYSFS_ROOT", "/sys/bus/usb/devices");
	_cleanup_free_ char *f = xasprintf("%s/%s/%s", p, dev, name);
	char *text = NULL;
	size_t n = 0, k = 0;
	out[0] = 0;
	if (read_file(f, 4096, &text, &n, NULL) < 0)
		return;
	for (size_t i = 0; i < n && text[i] != '\n' && k + 1 < len; i++)
		out[k++] = isprint((unsigned char)text[i]) ? text[i] : '?';
	out[k] = 0;
	free(text);
}

static bool attr_num(const char *dev, const char *name, int base, unsigned *ret)
{
	char buf[32];
	long long v;
	attr(dev, name, buf, sizeof(buf));
	char *end;
	if (!buf[0])
		return false;
	v = strtoll(buf, &end, base);
	if (*end || v < 0 || v > 0xffff)
		return false;
	*ret = (unsigned)v;
	return true;
}

/* "1-2", "1-2.3.1": a device; "usb1" (root hub) and "1-2:1.0" (interface) are not. */
static bool device_name(const char *n)
{
	size_t len = strlen(n);
	if (len == 0 || len >= 32 || !isdigit((unsigned char)n[0]) || !strchr(n, '-'))
		return false;
	return strspn(n, "0123456789-.") == len;
}

static char *record_path(const struct store *st, const char *vm, const char *port)
{
	_cleanup_free_ char *rd = store_run_dir(st, vm);
	return port ? xasprintf("%s/usb/%s", rd, port) : xasprintf("%s/usb", rd);
}

static void find_holder(const struct store *st, char **vms, struct usb_dev *d)
{
	for (size_t i = 0; vms && vms[i]; i++) {
		_cleanup_free_ char *p = record_path(st, vms[i], d->port);
		if (access(p, F_OK) == 0 && store_is_running(st, vms[i])) {
			snprintf(d->holder, sizeof(d->holder), "%s", vms[i]);
			return;
		}
	}
}

static int cmp_dev(const void *a, const void *b)
{
	return strcmp(((const struct usb_dev *)a)->port, ((const struct usb_dev *)b)->port);
}

int usb_list(const struct store *st, struct usb_dev **ret, size_t *ret_n, struct hutch_error *err)
{
	_cleanup_free_ char *p = host_path("HUTCH_SYSFS_ROOT", "/sys/bus/usb/devices");
	DIR *d = opendir(p);
	if (!d)
		return hutch_error_set(err, errno, "cannot read '%s': %s", p, strerror(errno));
	_cleanup_strv_ char **vms = NULL;
	if (st && store_list(st, &vms, NULL) < 0)
		vms = NULL;
	struct usb_dev *v = NULL;
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!device_name(e->d_name))
			continue;
		struct usb_dev u;
		memset(&u, 0, sizeof(u));
		snprintf(u.port, sizeof(u.port), "%.31s", e->d_name);
		if (!attr_num(u.port, "busnum", 10, &u.bus) || !attr_num(u.port, "devnum", 10, &u.dev) ||
		    !attr_num(u.port, "idVendor", 16, &u.vendor) || !attr_num(u.port, "idProduct", 16, &u.product))
			continue;
		attr(u.port, "serial", u.serial, sizeof(u.serial));
		attr(u.port, "product", u.product_name, sizeof(u.product_name));
		attr(u.port, "manufacturer", u.manufacturer, sizeof(u.manufacturer));
		if (st)
			find_holder(st, vms, &u);
		v = xrealloc(v, (n + 1) * sizeof(*v));
		v[n++] = u;
	}
	closedir(d);
	if (n)
		qsort(v, n, sizeof(*v), cmp_dev);
	*ret = v;
	*ret_n = n;
	return 0;
}

int usb_find(const struct usb_dev *v, size_t n, const char *what, size_t *ret_idx, struct hutch_error *err)
{
	unsigned vid, pid;
	size_t hit = SIZE_MAX, hits = 0;
	bool by_id = strchr(what, ':') != NULL;
	if (by_id) {
		const char *c = strchr(what, ':');
		char a[8], b[8];
		if (c - what < 1 || c - what > 4 || strlen(c + 1) < 1 || strlen(c + 1) > 4)
			goto bad;
		snprintf(a, sizeof(a), "%.*s", (int)(c - what), what);
		snprintf(b, sizeof(b), "%s", c + 1);
		char *e1, *e2;
		vid = (unsigned)strtoul(a, &e1, 16);
		pid = (unsigned)strtoul(b, &e2, 16);
		if (*e1 || *e2 || !isxdigit((unsigned char)a[0]) || !isxdigit((unsigned char)b[0]))
			goto bad;
		for (size_t i = 0; i < n; i++)
			if (v[i].vendor == vid && v[i].product == pid) {
				hit = hit == SIZE_MAX ? i : hit;
				hits++;
			}
		if (hits > 1)
			return hutch_error_set(
				err, EINVAL,
				"%zu devices are %04x:%04x: name one by its BUS-PORT ('hutch usb ls' shows them)", hits,
				vid, pid);
	} else {
		if (!device_name(what))
			goto bad;
		for (size_t i = 0; i < n && hit == SIZE_MAX; i++)
			if (!strcmp(v[i].port, what))
				hit = i;
	}
	if (hit == SIZE_MAX)
		return hutch_error_set(err, ENOENT, "no USB device '%s' on this host ('hutch usb ls' lists them)",
				       what);
	*ret_idx = hit;
	return 0;
bad:
	return hutch_error_set(err, EINVAL,
			       "invalid USB device '%.40s': expected VID:PID (17ef:60e0) or BUS-PORT (1-2.3)", what);
}

char *usb_node_path(const struct usb_dev *d)
{
	char abs[64];
	snprintf(abs, sizeof(abs), "/dev/bus/usb/%03u/%03u", d->bus, d->dev);
	return host_path("HUTCH_SYSFS_ROOT", abs);
}

int usb_open_node(const struct usb_dev *d, int *ret_fd, struct hutch_error *err)
{
	_cleanup_free_ char *node = usb_node_path(d);
	int fd = open(node, O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (fd >= 0) {
		*ret_fd = fd;
		return 0;
	}
	int e = errno;
	if (e == EACCES || e == EPERM)
		return hutch_error_set(
			err, e,
			"cannot open '%s' (%04x:%04x %s): %s; a udev rule gives it to the user at the seat: "
			"SUBSYSTEM==\"usb\", ATTR{idVendor}==\"%04x\", ATTR{idProduct}==\"%04x\", TAG+=\"uaccess\" in "
			"/etc/udev/rules.d/70-hutch-usb.rules, then 'sudo udevadm control --reload && sudo udevadm trigger' "
			"(or MODE=\"0660\", GROUP=\"plugdev\" for a group)",
			node, d->vendor, d->product, d->product_name[0] ? d->product_name : "USB device", strerror(e),
			d->vendor, d->product);
	return hutch_error_set(err, e, "cannot open '%s' (%04x:%04x): %s", node, d->vendor, d->product, strerror(e));
}

char *usb_qdev_id(const struct usb_dev *d) { return xasprintf("usb-%s", d->port); }

json_object *usb_device_add_args(const struct usb_dev *d, int64_t fdset_id)
{
	json_object *a = json_object_new_object();
	_cleanup_free_ char *id = usb_qdev_id(d);
	_cleanup_free_ char *dev = xasprintf("/dev/fdset/%lld", (long long)fdset_id);
	json_object_object_add(a, "driver", json_object_new_string("usb-host"));
	json_object_object_add(a, "id", json_object_new_string(id));
	json_object_object_add(a, "hostdevice", json_object_new_string(dev));
	return a;
}

/* The VM's user QMP socket: the monitor keeps the other one. One client at a time. */
static int qmp_user(const struct store *st, const char *name, struct qmp **ret, struct hutch_error *err)
{
	if (!store_is_running(st, name))
		return hutch_error_set(err, ENOTCONN, "VM '%s' is not running", name);
	_cleanup_free_ char *p = store_run_file(st, name, "qmp-user.sock");
	int fd = unix_connect(p, err);
	if (fd < 0)
		return fd;
	int r = qmp_open(fd, QMP_WAIT_MS, ret, err);
	if (r < 0)
		return hutch_error_wrap(err, "VM '%s': its QMP socket (busy with another client?)", name);
	return 0;
}

/* QEMU keeps an fd that arrives with any bytes on the socket for the next command that takes one. */
static int send_fd(int sock, int fd, struct hutch_error *err)
{
	char byte = ' ';
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	if (sendmsg(sock, &msg, MSG_NOSIGNAL) != 1)
		return hutch_error_set(err, errno, "passing the device to QEMU: %s", strerror(errno));
	return 0;
}

static int record(const struct store *st, const char *name, const struct usb_dev *d, struct hutch_error *err)
{
	_cleanup_free_ char *dir = record_path(st, name, NULL), *p = record_path(st, name, d->port);
	if (mkdir_p(dir, 0700) < 0)
		return hutch_error_set(err, errno, "cannot create '%s': %s", dir, strerror(errno));
	_cleanup_free_ char *text = xasprintf("%u %u %04x:%04x %s\n", d->bus, d->dev, d->vendor, d->product, d->serial);
	return write_file_atomic(p, text, strlen(text), 0600, err);
}

int usb_detach(const struct store *st, const char *name, const struct usb_dev *d, struct hutch_error *err)
{
	int r = libvirt_usb(st, name, d->vendor, d->product, d->bus, d->dev, false, err);
	if (r != 0) {
		_cleanup_free_ char *p = record_path(st, name, d->port);
		unlink(p);
		return r < 0 ? r : 0;
	}
	_cleanup_(qmp_closep) struct qmp *q = NULL;
	r = qmp_user(st, name, &q, err);
	if (r < 0)
		return r;
	_cleanup_free_ char *id = usb_qdev_id(d);
	json_object *a = json_object_new_object();
	json_object_object_add(a, "id", json_object_new_string(id));
	r = qmp_execute(q, "device_del", a, QMP_WAIT_MS, NULL, err);
	_cleanup_free_ char *p = record_path(st, name, d->port);
	unlink(p);
	if (r < 0)
		return hutch_error_wrap(err, "detaching %s (%04x:%04x) from '%s'", d->port, d->vendor, d->product,
					name);
	return 0;
}

int usb_attach(const struct store *st, const char *name, const struct usb_dev *d, int fd, struct hutch_error *err)
{
	if (d->holder[0] && !strcmp(d->holder, name))
		return hutch_error_set(err, EEXIST, "%s (%04x:%04x) is already attached to '%s'", d->port, d->vendor,
				       d->product, name);
	if (d->holder[0]) {
		int r = usb_detach(st, d->holder, d, err);
		if (r < 0)
			return r;
	}
	/* libvirt opens the node itself (in session mode, as the user: the same permission counts) */
	int r = libvirt_usb(st, name, d->vendor, d->product, d->bus, d->dev, true, err);
	if (r != 0)
		return r < 0 ? r : record(st, name, d, err);
	_cleanup_(qmp_closep) struct qmp *q = NULL;
	r = qmp_user(st, name, &q, err);
	if (r < 0)
		return r;
	json_object *ret = NULL, *v;
	if ((r = send_fd(qmp_fd(q), fd, err)) < 0)
		return r;
	json_object *a = json_object_new_object();
	_cleanup_free_ char *opaque = xasprintf("hutch usb %s", d->port);
	json_object_object_add(a, "opaque", json_object_new_string(opaque));
	if ((r = qmp_execute(q, "add-fd", a, QMP_WAIT_MS, &ret, err)) < 0)
		return r;
	int64_t fdset = json_object_object_get_ex(ret, "fdset-id", &v) ? json_object_get_int64(v) : -1;
	json_object_put(ret);
	if (fdset < 0)
		return hutch_error_set(err, EIO, "QEMU returned no fdset for the device");
	r = qmp_execute(q, "device_add", usb_device_add_args(d, fdset), QMP_WAIT_MS, NULL, err);
	if (r < 0) {
		json_object *rm = json_object_new_object();
		json_object_object_add(rm, "fdset-id", json_object_new_int64(fdset));
		qmp_execute(q, "remove-fd", rm, QMP_WAIT_MS, NULL, NULL);
		if (err && err->msg && strstr(err->msg, "usb-bus"))
			return hutch_error_set(err, ENODEV,
					       "VM '%s' has no USB controller: list a device under usb: in its spec "
					       "(image VMs get one then)",
					       name);
		return hutch_error_wrap(err, "attaching %s (%04x:%04x) to '%s'", d->port, d->vendor, d->product, name);
	}
	return record(st, name, d, err);
}
