/* domain_xml: the libvirt domain XML against golden files, each golden validated against libvirt's
 * own schema with virt-xml-validate, and the raw snippet checks.
 * Regenerate the goldens with HUTCH_UPDATE_GOLDEN=1 and review the diff. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <string.h>
#include <sys/wait.h>

#include "domain_xml.h"
#include "qemu.h"
#include "spec.h"

#define UNUSED __attribute__((unused))
#define GOLDEN_DIR SRCDIR "/tests/golden/domain/"
#include "golden.h"

static const struct accel_info accel_tcg = {.kvm = false, .why = "test", .tsc_khz = 2000000};

static struct vm_spec *micro_spec(void)
{
	struct vm_spec *s = spec_new("web");
	s->source = SOURCE_TEMPLATE;
	s->template = xstrdup("micro");
	s->memory = 512ull << 20;
	s->cpus = 2;
	s->net_mode = NET_USER;
	return s;
}

static struct vm_spec *image_spec(enum firmware fw, bool tpm)
{
	struct vm_spec *s = spec_new("deb");
	s->source = SOURCE_IMAGE;
	s->image = xstrdup("https://example.invalid/debian-12.qcow2");
	s->memory = 1ull << 30;
	s->cpus = 2;
	s->firmware = fw;
	s->tpm = tpm;
	s->net_mode = NET_USER;
	return s;
}

static struct domain_xml_input input(const struct vm_spec *s, char **cmdline)
{
	struct domain_xml_input in = {
		.domain = s->source == SOURCE_TEMPLATE ? "hutch-web" : "hutch-deb",
		.vm_name = s->name,
		.vm_dir = "/home/user/.local/share/hutch/vms/x",
		.spec = s,
		.emulator = "/usr/bin/qemu-system-x86_64",
		.cpu = "max",
		.console_log = "/home/user/.local/share/hutch/vms/x/console.log",
		.tpm = s->tpm,
	};
	if (s->source == SOURCE_TEMPLATE) {
		struct qemu_config c = {.name = s->name, .spec = s, .accel = &accel_tcg};
		*cmdline = qemu_micro_cmdline(&c);
		in.kernel = "/usr/lib/hutch/micro/vmlinuz";
		in.initrd = "/usr/lib/hutch/micro/initrd.img";
		in.cmdline = *cmdline;
	} else {
		in.disk = "/home/user/.local/share/hutch/vms/deb/disk.qcow2";
		in.seed = "/home/user/.local/share/hutch/vms/deb/seed.iso";
		in.smbios_cred = "io.systemd.credential.binary:ssh.authorized_keys.root=c3NoLWVkMjU1MTkgQUFBQQ==";
		if (s->firmware == FIRMWARE_UEFI || s->firmware == FIRMWARE_UEFI_SECURE) {
			bool sec = s->firmware == FIRMWARE_UEFI_SECURE;
			in.fw_code =
				sec ? "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd" : "/usr/share/OVMF/OVMF_CODE_4M.fd";
			in.fw_vars = sec ? "/usr/share/OVMF/OVMF_VARS_4M.ms.fd" : "/usr/share/OVMF/OVMF_VARS_4M.fd";
			in.nvram = "/home/user/.local/share/hutch/vms/deb/nvram.fd";
		}
	}
	return in;
}

static char *render(const struct domain_xml_input *in)
{
	char *xml = NULL;
	struct hutch_error err = {0};
	if (domain_xml_render(in, &xml, &err) < 0)
		fail_msg("domain_xml_render: %s", err.msg);
	return xml;
}

static void test_micro(void **state UNUSED)
{
	_cleanup_(spec_freep) struct vm_spec *s = micro_spec();
	_cleanup_free_ char *cmdline = NULL;
	struct domain_xml_input in = input(s, &cmdline);
	in.passt = true;
	_cleanup_free_ char *xml = render(&in);
	/* the same kernel command line as the qemu backend, TSC values included */
	assert_non_null(strstr(xml, "tsc_early_khz=2000000 lpj=8000000"));
	assert_non_null(strstr(xml, "machine=\"microvm\""));
	assert_non_null(strstr(xml, "<address type=\"virtio-mmio\"/>"));
	assert_non_null(strstr(xml, "name=\"org.hutch.agent.0\""));
	check_golden("micro.xml", xml);
}

static void test_bios_image(void **state UNUSED)
{
	_cleanup_(spec_freep) struct vm_spec *s = image_spec(FIRMWARE_BIOS, false);
	_cleanup_free_ char *cmdline = NULL;
	struct domain_xml_input in = input(s, &cmdline);
	in.passt = true;
	_cleanup_free_ char *xml = render(&in);
	assert_null(strstr(xml, "<loader"));
	check_golden("bios-image.xml", xml);
}

static void test_uefi_secure_tpm(void **state UNUSED)
{
	_cleanup_(spec_freep) struct vm_spec *s = image_spec(FIRMWARE_UEFI_SECURE, true);
	_cleanup_free_ char *cmdline = NULL;
	struct domain_xml_input in = input(s, &cmdline);
	in.passt = true;
	_cleanup_free_ char *xml = render(&in);
	assert_non_null(strstr(xml, "secure=\"yes\""));
	assert_non_null(strstr(xml, "<smm state=\"on\"/>"));
	assert_non_null(strstr(xml, "<backend type=\"emulator\" version=\"2.0\"/>"));
	check_golden("uefi-secure-tpm.xml", xml);
}

static void test_forwards_passt(void **state UNUSED)
{
	_cleanup_(spec_freep) struct vm_spec *s = micro_spec();
	s->forward = strv_push(s->forward, xstrdup("8080:80"));
	s->forward = strv_push(s->forward, xstrdup("5353:53/udp"));
	_cleanup_free_ char *cmdline = NULL;
	struct domain_xml_input in = input(s, &cmdline);
	in.passt = true;
	_cleanup_free_ char *xml = render(&in);
	/* without the backend line a libvirt 9 portForward lands on the wrong port (reference 002) */
	assert_non_null(strstr(xml, "<backend type=\"passt\"/>"));
	check_golden("forwards-passt.xml", xml);
}

static void test_forwards_qemu_net(void **state UNUSED)
{
	_cleanup_(spec_freep) struct vm_spec *s = image_spec(FIRMWARE_BIOS, false);
	s->forward = strv_push(s->forward, xstrdup("2222:22"));
	_cleanup_free_ char *cmdline = NULL;
	struct domain_xml_input in = input(s, &cmdline);
	in.passt = false;
	_cleanup_free_ char *xml = render(&in);
	assert_non_null(strstr(xml, "hostfwd=tcp:127.0.0.1:2222-:22"));
	assert_null(strstr(xml, "<interface"));
	check_golden("forwards-qemu-net.xml", xml);
}

static void test_network_none(void **state UNUSED)
{
	_cleanup_(spec_freep) struct vm_spec *s = micro_spec();
	s->net_mode = NET_NONE;
	_cleanup_free_ char *cmdline = NULL;
	struct domain_xml_input in = input(s, &cmdline);
	in.passt = true;
	_cleanup_free_ char *xml = render(&in);
	assert_null(strstr(xml, "<interface"));
	assert_null(strstr(xml, "hostfwd"));
	check_golden("network-none.xml", xml);
}

/* netvm links have no libvirt 9.0 form: a clear refusal, for a client and for a netvm */
static void test_netvm_refused(void **state UNUSED)
{
	_cleanup_(spec_freep) struct vm_spec *s = micro_spec();
	s->net_mode = NET_NETVM;
	s->netvm = xstrdup("gw");
	_cleanup_free_ char *cmdline = NULL;
	struct domain_xml_input in = input(s, &cmdline);
	char *xml = NULL;
	struct hutch_error err = {0};
	assert_int_equal(domain_xml_render(&in, &xml, &err), -ENOTSUP);
	assert_null(xml);
	assert_non_null(strstr(err.msg, "network: {netvm: NAME}) need the qemu backend"));
	hutch_error_clear(&err);
	s->net_mode = NET_USER;
	free(s->netvm);
	s->netvm = NULL;
	s->is_netvm = true;
	assert_int_equal(domain_xml_render(&in, &xml, &err), -ENOTSUP);
	assert_non_null(strstr(err.msg, "is_netvm: true"));
	hutch_error_clear(&err);
}

/* gcc 12 reports the pointers into xml below as dangling (a false positive around cmocka's
 * longjmp-based asserts and the _cleanup_free_ buffer); clang and ASan see nothing wrong. */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic ignored "-Wdangling-pointer"
#endif
static void test_snippets(void **state UNUSED)
{
	_cleanup_(spec_freep) struct vm_spec *s = micro_spec();
	_cleanup_free_ char *cmdline = NULL;
	struct domain_xml_input in = input(s, &cmdline);
	in.passt = true;
	char *snips[] = {"<watchdog model=\"i6300esb\" action=\"reset\"/>",
			 "<watchdog model=\"i6300esb\" action=\"reset\"/>", "<description>made by hutch</description>",
			 NULL};
	in.snippets = snips;
	_cleanup_free_ char *xml = render(&in);
	const char *dog = strstr(xml, "<watchdog"), *devices_end = strstr(xml, "</devices>");
	const char *desc = strstr(xml, "<description>");
	assert_true(dog && devices_end && desc);
	assert_null(strstr(dog + 1, "<watchdog")); /* deduplicated */
	assert_true(dog < devices_end);		   /* a device */
	assert_true(desc > devices_end);	   /* domain-level */
	check_golden("snippets.xml", xml);
}

/* usb attach on a libvirt VM: the one device the user named, by id and by bus and device number */
static void test_usb_hostdev(void **state UNUSED)
{
	char *xml = NULL;
	struct hutch_error err = {0};
	assert_int_equal(domain_xml_usb_hostdev(0x17ef, 0x60e0, 1, 5, &xml, &err), 0);
	assert_non_null(strstr(xml, "<hostdev mode=\"subsystem\" type=\"usb\" managed=\"no\">"));
	assert_non_null(strstr(xml, "<vendor id=\"0x17ef\"/>"));
	assert_non_null(strstr(xml, "<product id=\"0x60e0\"/>"));
	assert_non_null(strstr(xml, "<address bus=\"1\" device=\"5\"/>"));
	assert_null(strstr(xml, "startupPolicy")); /* only for usb: devices at start */
	bool device = false;
	assert_int_equal(domain_xml_check_snippet(xml, &device, &err), 0); /* well-formed, a device */
	assert_true(device);
	free(xml);
}

static void test_snippet_errors(void **state UNUSED)
{
	struct hutch_error err = {0};
	bool dev = false;
	assert_int_equal(domain_xml_check_snippet("<disk type='file'><source file='/x'/></disk>", &dev, &err), 0);
	assert_true(dev);
	assert_int_equal(domain_xml_check_snippet("<features><pae/></features>", &dev, &err), 0);
	assert_false(dev);
	assert_true(domain_xml_check_snippet("<disk type='file'>", &dev, &err) < 0);
	assert_non_null(strstr(err.msg, "not well-formed XML"));
	hutch_error_clear(&err);
	assert_true(domain_xml_check_snippet("<a/><b/>", &dev, &err) < 0);
	hutch_error_clear(&err);
	assert_true(domain_xml_check_snippet("", &dev, &err) < 0);
	hutch_error_clear(&err);
	assert_true(domain_xml_check_snippet("<domain type='qemu'/>", &dev, &err) < 0);
	hutch_error_clear(&err);
}

/* libvirt: {snippets: [...]} in a spec: bad XML names file:line: libvirt.snippets[N]. */
static void test_spec_snippets(void **state UNUSED)
{
	const char *good = "web:\n  source: {template: micro}\n  libvirt:\n    snippets:\n"
			   "      - \"<watchdog model='i6300esb'/>\"\n";
	struct vm_spec **specs = NULL;
	size_t n = 0;
	struct hutch_error err = {0};
	assert_int_equal(spec_parse_buffer(good, strlen(good), "t.yml", &specs, &n, &err), 0);
	assert_int_equal(strv_len(specs[0]->libvirt_snippets), 1);
	/* and it survives spec.yml */
	_cleanup_free_ char *yaml = spec_render_yaml(specs[0]);
	struct vm_spec **again = NULL;
	size_t n2 = 0;
	assert_int_equal(spec_parse_buffer(yaml, strlen(yaml), "spec.yml", &again, &n2, &err), 0);
	assert_true(spec_equal(specs[0], again[0]));
	spec_free_all(again, n2);
	spec_free_all(specs, n);
	const char *bad = "web:\n  source: {template: micro}\n  libvirt:\n    snippets:\n"
			  "      - \"<rng model='virtio'/>\"\n      - \"<disk type='file'>\"\n";
	assert_true(spec_parse_buffer(bad, strlen(bad), "t.yml", &specs, &n, &err) < 0);
	assert_non_null(strstr(err.msg, "t.yml:6: libvirt.snippets[1]: not well-formed XML"));
	hutch_error_clear(&err);
}

/* Every golden is a domain libvirt's own schema accepts. */
static void test_goldens_validate(void **state UNUSED)
{
	if (access("/usr/bin/virt-xml-validate", X_OK) < 0)
		fail_msg("virt-xml-validate is missing: install Debian's libvirt-clients (scripts/deps.sh)");
	DIR *d = opendir(GOLDEN_DIR);
	assert_non_null(d);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);
		if (l < 5 || strcmp(e->d_name + l - 4, ".xml"))
			continue;
		_cleanup_free_ char *cmd =
			xasprintf("virt-xml-validate '%s%s' domain >/dev/null 2>&1", GOLDEN_DIR, e->d_name);
		int st = system(cmd);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			closedir(d);
			fail_msg("%s does not validate against libvirt's domain schema (run: %s)", e->d_name, cmd);
		}
		n++;
	}
	closedir(d);
	assert_true(n >= 6);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_micro),
		cmocka_unit_test(test_bios_image),
		cmocka_unit_test(test_uefi_secure_tpm),
		cmocka_unit_test(test_forwards_passt),
		cmocka_unit_test(test_forwards_qemu_net),
		cmocka_unit_test(test_network_none),
		cmocka_unit_test(test_netvm_refused),
		cmocka_unit_test(test_snippets),
		cmocka_unit_test(test_usb_hostdev),
		cmocka_unit_test(test_snippet_errors),
		cmocka_unit_test(test_spec_snippets),
		cmocka_unit_test(test_goldens_validate),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
