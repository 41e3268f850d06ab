/* The device spec keys (pci, usb, balloon): parsing, errors that name file:line: key, the round trip
 * through spec_render_yaml, and the QEMU argv they give (golden: vfio-pci on q35, the balloon with
 * free-page reporting). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "domain_xml.h"
#include "qemu.h"
#include "qemu_devices.h"
#include "spec.h"

#define UNUSED __attribute__((unused))
#define GOLDEN_DIR SRCDIR "/tests/golden/argv/"
#include "golden.h"

static struct vm_spec *parse_one(const char *yaml)
{
	struct vm_spec **specs;
	size_t n;
	struct hutch_error err = {0};
	if (spec_parse_buffer(yaml, strlen(yaml), "hutch.yml", &specs, &n, &err) < 0)
		fail_msg("unexpected error: %s", err.msg);
	assert_int_equal(n, 1);
	struct vm_spec *s = specs[0];
	free(specs);
	return s;
}

static char *parse_error(const char *yaml)
{
	struct vm_spec **specs;
	size_t n;
	struct hutch_error err = {0};
	if (spec_parse_buffer(yaml, strlen(yaml), "hutch.yml", &specs, &n, &err) == 0)
		fail_msg("no error for:\n%s", yaml);
	return err.msg;
}

static const char image_vm[] = "gpu:\n"
			       "  source: {image: https://example.org/d.qcow2}\n"
			       "  memory: 4G\n";

static void test_parse(void **state UNUSED)
{
	_cleanup_free_ char *y = xasprintf("%s"
					   "  pci: [\"01:00.0\", \"0000:01:00.1\"]\n"
					   "  usb:\n"
					   "    - {vendor: 17ef, product: 60E0}\n"
					   "    - {vendor: \"046d\", product: c52b, serial: A02019100900}\n"
					   "  balloon: {min: 1G}\n",
					   image_vm);
	_cleanup_(spec_freep) struct vm_spec *s = parse_one(y);
	assert_int_equal(strv_len(s->pci), 2);
	assert_string_equal(s->pci[0], "0000:01:00.0");
	assert_string_equal(s->pci[1], "0000:01:00.1");
	assert_int_equal(s->n_usb, 2);
	assert_int_equal(s->usb[0].vendor, 0x17ef);
	assert_int_equal(s->usb[0].product, 0x60e0);
	assert_null(s->usb[0].serial);
	assert_int_equal(s->usb[1].vendor, 0x046d);
	assert_string_equal(s->usb[1].serial, "A02019100900");
	assert_int_equal(s->balloon_min, 1ull << 30);
	assert_false(s->balloon_off);

	/* the round trip */
	_cleanup_free_ char *r = spec_render_yaml(s);
	_cleanup_(spec_freep) struct vm_spec *back = parse_one(r);
	assert_true(spec_equal(s, back));

	_cleanup_(spec_freep) struct vm_spec *off = parse_one("m:\n  source: {template: micro}\n  balloon: false\n");
	assert_true(off->balloon_off);
	_cleanup_free_ char *ro = spec_render_yaml(off);
	assert_non_null(strstr(ro, "balloon: false"));
}

static void test_errors(void **state UNUSED)
{
	static const struct {
		const char *yaml, *want;
	} cases[] = {
		{"m:\n  source: {template: micro}\n  pci: [\"0000:01:00.0\"]\n",
		 "hutch.yml:3: pci: this VM runs on microvm, which has no PCI bus for passthrough: use an image VM"},
		{"m:\n  source: {image: x}\n  pci: [\"01:00\"]\n", "hutch.yml:3: pci: invalid PCI address '01:00'"},
		{"m:\n  source: {image: x}\n  pci: [\"01:00.0\", \"0000:01:00.0\"]\n",
		 "hutch.yml:3: pci: '0000:01:00.0' is listed twice"},
		{"m:\n  usb: [{vendor: 17ef}]\n", "hutch.yml:2: usb[0]: vendor and product are required"},
		{"m:\n  source: {template: micro}\n  usb: [{vendor: 17ef, product: 60e0}]\n",
		 "hutch.yml:3: usb: this VM runs on microvm, which has no USB controller"},
		{"m:\n  usb: [{vendor: 17eff, product: 1}]\n", "hutch.yml:2: usb[0].vendor: expected 4 hex digits"},
		{"m:\n  usb: [{vendor: 17ef, product: 1, speed: 3}]\n", "hutch.yml:2: usb[0].speed: unknown key"},
		{"m:\n  usb: {vendor: 17ef}\n", "hutch.yml:2: usb: expected a list"},
		{"m:\n  memory: 512M\n  balloon: {min: 1G}\n", "hutch.yml:3: balloon.min: must be below memory"},
		{"m:\n  balloon: {min: 1M}\n", "hutch.yml:2: balloon.min: must be at least 64M"},
		{"m:\n  balloon: {floor: 1G}\n", "hutch.yml:2: balloon.floor: unknown key"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		_cleanup_free_ char *msg = parse_error(cases[i].yaml);
		if (strncmp(msg, cases[i].want, strlen(cases[i].want)))
			fail_msg("case %zu:\n got: %s\nwant: %s", i, msg, cases[i].want);
	}
}

static const struct accel_info accel_tcg = {.kvm = false, .why = "test", .tsc_khz = 2000000};

static char **build(const struct vm_spec *s, bool micro, struct hutch_error *err)
{
	struct qemu_config c = {
		.name = s->name,
		.spec = s,
		.binary = "/usr/bin/qemu-system-x86_64",
		.run_dir = "/run/user/1000/hutch/gpu",
		.vm_dir = "/home/user/.local/share/hutch/vms/gpu",
		.disk = micro ? NULL : "/home/user/.local/share/hutch/vms/gpu/disk.qcow2",
		.kernel = micro ? "/k" : NULL,
		.initrd = micro ? "/i" : NULL,
		.accel = &accel_tcg,
	};
	char **argv = NULL;
	return qemu_build_argv(&c, &argv, err) < 0 ? NULL : argv;
}

static void test_argv_golden(void **state UNUSED)
{
	_cleanup_free_ char *y =
		xasprintf("%s  pci: [\"0000:01:00.0\", \"0000:01:00.1\"]\n  balloon: {min: 1G}\n", image_vm);
	_cleanup_(spec_freep) struct vm_spec *s = parse_one(y);
	spec_apply_defaults(s);
	struct hutch_error err = {0};
	_cleanup_strv_ char **argv = build(s, false, &err);
	if (!argv)
		fail_msg("%s", err.msg);
	_cleanup_free_ char *r = qemu_render_argv(argv);
	check_golden("image-pci.txt", r);
	assert_non_null(strstr(r, "q35"));
	assert_true(qemu_argv_has_balloon(argv));

	assert_null(strstr(r, "qemu-xhci")); /* no usb: no controller */
	s->n_usb = 1;
	s->usb = xcalloc(1, sizeof(*s->usb));
	_cleanup_strv_ char **withusb = build(s, false, &err);
	assert_non_null(withusb);
	_cleanup_free_ char *ru = qemu_render_argv(withusb);
	assert_non_null(strstr(ru, "qemu-xhci,id=xhci"));

	/* balloon: false has none, and the monitor's policy sees that from the argv */
	s->balloon_off = true;
	_cleanup_strv_ char **off = build(s, false, &err);
	assert_non_null(off);
	assert_false(qemu_argv_has_balloon(off));

	/* a spec built in code with pci on a micro VM is refused at the argv too */
	_cleanup_(spec_freep) struct vm_spec *m = parse_one("m:\n  source: {template: micro}\n");
	spec_apply_defaults(m);
	m->pci = strv_push(m->pci, xstrdup("0000:01:00.0"));
	assert_null(build(m, true, &err));
	assert_non_null(strstr(err.msg, "microvm, which has no PCI bus"));
	hutch_error_clear(&err);
}

#ifdef HAVE_LIBVIRT
/* libvirt: <hostdev> for pci (managed: libvirt binds vfio-pci) and usb (optional at start), a USB
 * controller only with usb:, no balloon with balloon: false; valid against libvirt's schema. */
static void test_domain_xml(void **state UNUSED)
{
	_cleanup_free_ char *y = xasprintf("%s  pci: [\"0000:01:00.0\", \"0000:01:00.1\"]\n"
					   "  usb: [{vendor: 17ef, product: 60e0}]\n  balloon: false\n",
					   image_vm);
	_cleanup_(spec_freep) struct vm_spec *s = parse_one(y);
	spec_apply_defaults(s);
	struct domain_xml_input in = {
		.domain = "hutch-gpu",
		.vm_name = "gpu",
		.vm_dir = "/home/user/.local/share/hutch/vms/gpu",
		.spec = s,
		.emulator = "/usr/bin/qemu-system-x86_64",
		.cpu = "max",
		.console_log = "/home/user/.local/share/hutch/vms/gpu/console.log",
		.disk = "/home/user/.local/share/hutch/vms/gpu/disk.qcow2",
	};
	char *xml = NULL;
	struct hutch_error err = {0};
	if (domain_xml_render(&in, &xml, &err) < 0)
		fail_msg("%s", err.msg);
	assert_non_null(strstr(xml, "<hostdev mode=\"subsystem\" type=\"pci\" managed=\"yes\">"));
	assert_non_null(strstr(xml, "<address domain=\"0x0000\" bus=\"0x01\" slot=\"0x00\" function=\"0x1\"/>"));
	assert_non_null(strstr(xml, "<source startupPolicy=\"optional\">"));
	assert_non_null(strstr(xml, "<vendor id=\"0x17ef\"/>"));
	assert_non_null(strstr(xml, "<product id=\"0x60e0\"/>"));
	assert_non_null(strstr(xml, "<controller type=\"usb\" model=\"qemu-xhci\"/>"));
	assert_non_null(strstr(xml, "<memballoon model=\"none\"/>"));
	if (access("/usr/bin/virt-xml-validate", X_OK) == 0) {
		char path[] = "/tmp/hutch-test-hostdev.XXXXXX";
		int fd = mkstemp(path);
		assert_true(fd >= 0);
		assert_int_equal(write_all(fd, xml, strlen(xml)), (ssize_t)strlen(xml));
		close(fd);
		_cleanup_free_ char *cmd = xasprintf("/usr/bin/virt-xml-validate %s domain >/dev/null 2>&1", path);
		int rc = system(cmd);
		unlink(path);
		if (rc != 0)
			fail_msg("virt-xml-validate rejects:\n%s", xml);
	}
	free(xml);
}
#endif

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_argv_golden),
#ifdef HAVE_LIBVIRT
		cmocka_unit_test(test_domain_xml),
#endif
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
