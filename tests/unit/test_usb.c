/* usb: the device list from a fake /sys/bus/usb/devices (HUTCH_SYSFS_ROOT), matching by VID:PID and
 * BUS-PORT, the node path, the open error naming the node and the udev rule, and device_add's
 * arguments. This machine has no USB devices to pass through. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>
#include <sys/stat.h>

#include "usb.h"

#define UNUSED __attribute__((unused))

static char root[] = "/tmp/hutch-test-usb.XXXXXX";

static void put(const char *rel, const char *text)
{
	_cleanup_free_ char *p = xasprintf("%s/%s", root, rel);
	_cleanup_free_ char *d = xstrdup(p);
	*strrchr(d, '/') = 0;
	assert_int_equal(mkdir_p(d, 0755), 0);
	assert_int_equal(write_file_atomic(p, text, strlen(text), 0644, NULL), 0);
}

static void dev(const char *port, unsigned bus, unsigned devnum, const char *vid, const char *pid, const char *serial,
		const char *product)
{
	char b[64];
	_cleanup_free_ char *d = xasprintf("sys/bus/usb/devices/%s", port);
	_cleanup_free_ char *f1 = xasprintf("%s/busnum", d), *f2 = xasprintf("%s/devnum", d);
	_cleanup_free_ char *f3 = xasprintf("%s/idVendor", d), *f4 = xasprintf("%s/idProduct", d);
	snprintf(b, sizeof(b), "%u\n", bus);
	put(f1, b);
	snprintf(b, sizeof(b), "%u\n", devnum);
	put(f2, b);
	snprintf(b, sizeof(b), "%s\n", vid);
	put(f3, b);
	snprintf(b, sizeof(b), "%s\n", pid);
	put(f4, b);
	if (serial) {
		_cleanup_free_ char *f = xasprintf("%s/serial", d), *t = xasprintf("%s\n", serial);
		put(f, t);
	}
	if (product) {
		_cleanup_free_ char *f = xasprintf("%s/product", d), *t = xasprintf("%s\n", product);
		put(f, t);
	}
	_cleanup_free_ char *node = xasprintf("dev/bus/usb/%03u/%03u", bus, devnum);
	put(node, "");
}

static int setup(void **s UNUSED)
{
	strcpy(root, "/tmp/hutch-test-usb.XXXXXX");
	if (!mkdtemp(root))
		return -1;
	setenv("HUTCH_SYSFS_ROOT", root, 1);
	dev("usb1", 1, 1, "1d6b", "0002", "0000:00:14.0", "xHCI Host Controller"); /* a root hub */
	dev("1-2", 1, 4, "17ef", "60e0", NULL, "ThinkPad Keyboard");
	dev("1-3.1", 1, 7, "046d", "c52b", "A02019100900", "USB Receiver\x01");
	dev("2-1", 2, 3, "046d", "c52b", "B0000001", "USB Receiver");
	put("sys/bus/usb/devices/1-2:1.0/bInterfaceClass", "03\n"); /* an interface */
	return 0;
}

static int teardown(void **s UNUSED)
{
	rm_rf(root);
	unsetenv("HUTCH_SYSFS_ROOT");
	return 0;
}

static void test_list_find(void **s UNUSED)
{
	struct usb_dev *v;
	size_t n, i;
	assert_int_equal(usb_list(NULL, &v, &n, NULL), 0);
	assert_int_equal(n, 3); /* no root hub, no interface */
	assert_string_equal(v[0].port, "1-2");
	assert_int_equal(v[0].bus, 1);
	assert_int_equal(v[0].dev, 4);
	assert_int_equal(v[0].vendor, 0x17ef);
	assert_int_equal(v[0].product, 0x60e0);
	assert_string_equal(v[0].serial, "");
	assert_string_equal(v[0].product_name, "ThinkPad Keyboard");
	assert_string_equal(v[1].port, "1-3.1");
	assert_string_equal(v[1].serial, "A02019100900");
	assert_string_equal(v[1].product_name, "USB Receiver?"); /* control characters are not passed on */
	assert_string_equal(v[2].port, "2-1");

	assert_int_equal(usb_find(v, n, "17ef:60e0", &i, NULL), 0);
	assert_int_equal(i, 0);
	assert_int_equal(usb_find(v, n, "17EF:60E0", &i, NULL), 0);
	assert_int_equal(usb_find(v, n, "2-1", &i, NULL), 0);
	assert_int_equal(i, 2);
	struct hutch_error err = {0};
	assert_int_equal(usb_find(v, n, "046d:c52b", &i, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "2 devices are 046d:c52b: name one by its BUS-PORT"));
	hutch_error_clear(&err);
	assert_int_equal(usb_find(v, n, "dead:beef", &i, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "no USB device 'dead:beef'"));
	hutch_error_clear(&err);
	static const char *const bad[] = {"17ef", ":60e0", "17ef:", "1234567:1", "../x", "1-2/../3", "zz:zz", NULL};
	for (size_t k = 0; bad[k]; k++) {
		assert_int_equal(usb_find(v, n, bad[k], &i, &err), -EINVAL);
		assert_non_null(strstr(err.msg, "invalid USB device"));
		hutch_error_clear(&err);
	}

	_cleanup_free_ char *node = usb_node_path(&v[1]);
	_cleanup_free_ char *want = xasprintf("%s/dev/bus/usb/001/007", root);
	assert_string_equal(node, want);

	/* the QMP arguments: the fd QEMU got is named by its fdset */
	json_object *a = usb_device_add_args(&v[1], 3);
	assert_string_equal(json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE),
			    "{\"driver\":\"usb-host\",\"id\":\"usb-1-3.1\",\"hostdevice\":\"/dev/fdset/3\"}");
	json_object_put(a);
	free(v);
}

static void test_open_errors(void **s UNUSED)
{
	struct usb_dev *v;
	size_t n;
	assert_int_equal(usb_list(NULL, &v, &n, NULL), 0);
	int fd = -1;
	assert_int_equal(usb_open_node(&v[0], &fd, NULL), 0);
	close(fd);
	struct hutch_error err = {0};
	_cleanup_free_ char *node = usb_node_path(&v[0]);
	unlink(node);
	assert_int_equal(usb_open_node(&v[0], &fd, &err), -ENOENT);
	assert_non_null(strstr(err.msg, node));
	hutch_error_clear(&err);
	if (geteuid() != 0) {
		_cleanup_free_ char *n2 = usb_node_path(&v[1]);
		chmod(n2, 0);
		assert_int_equal(usb_open_node(&v[1], &fd, &err), -EACCES);
		assert_non_null(strstr(err.msg, n2));
		assert_non_null(
			strstr(err.msg, "ATTR{idVendor}==\"046d\", ATTR{idProduct}==\"c52b\", TAG+=\"uaccess\""));
		hutch_error_clear(&err);
	}
	free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_list_find, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
