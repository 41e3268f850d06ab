/* virt_snapshot: the <domainsnapshot> hutch hands libvirt (validated against libvirt's own schema),
 * reading libvirt's snapshot XML back, and the micro domain with its snapshot disk (a golden in
 * tests/golden/domain/, which test_domain_xml validates with the others). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>
#include <sys/wait.h>

#include "domain_xml.h"
#include "qemu.h"
#include "spec.h"
#include "virt_snapshot.h"

#define UNUSED __attribute__((unused))
#define GOLDEN_DIR SRCDIR "/tests/golden/domain/"
#include "golden.h"

static char *xml_of(const char *tag, bool ram, bool agent)
{
	char *xml = NULL;
	struct hutch_error err = {0};
	if (virt_snapshot_xml(tag, "web", ram, agent, &xml, &err) < 0)
		fail_msg("virt_snapshot_xml: %s", err.msg);
	return xml;
}

static void validate(const char *xml, const char *schema)
{
	if (access("/usr/bin/virt-xml-validate", X_OK) < 0)
		fail_msg("virt-xml-validate is missing: install Debian's libvirt-clients (scripts/deps.sh)");
	char path[] = "/tmp/test_virt_snapshot.XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, xml, strlen(xml)), (ssize_t)strlen(xml));
	close(fd);
	_cleanup_free_ char *cmd = xasprintf("virt-xml-validate '%s' %s >/dev/null 2>&1", path, schema);
	int st = system(cmd);
	unlink(path);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("does not validate against libvirt's %s schema:\n%s", schema, xml);
}

static void test_render_running(void **state UNUSED)
{
	_cleanup_free_ char *xml = xml_of("t1", true, true);
	assert_non_null(strstr(xml, "<name>t1</name>"));
	assert_non_null(strstr(xml, "<memory snapshot=\"internal\"/>"));
	validate(xml, "domainsnapshot");
	struct virt_snapshot_info info;
	assert_int_equal(virt_snapshot_parse(xml, &info, NULL), 0);
	assert_true(info.ram);
	assert_true(info.agent);
}

static void test_render_stopped(void **state UNUSED)
{
	_cleanup_free_ char *xml = xml_of("disk-only.1", false, false);
	assert_non_null(strstr(xml, "<memory snapshot=\"no\"/>"));
	validate(xml, "domainsnapshot");
	struct virt_snapshot_info info;
	assert_int_equal(virt_snapshot_parse(xml, &info, NULL), 0);
	assert_false(info.ram);
	assert_false(info.agent);
}

/* libvirt's own answer (virsh snapshot-dumpxml, abridged) */
static void test_parse_libvirt(void **state UNUSED)
{
	const char *xml = "<domainsnapshot>\n  <name>on1</name>\n  <description>hutch snapshot of web; agent: "
			  "ready</description>\n  <state>running</state>\n  <parent><name>off1</name></parent>\n"
			  "  <creationTime>1796143679</creationTime>\n  <memory snapshot='internal'/>\n"
			  "  <disks><disk name='vda' snapshot='internal'/><disk name='vdb' snapshot='no'/></disks>\n"
			  "  <domain type='qemu'><name>hutch-web</name><description>x; agent: ready</description>"
			  "<creationTime>1</creationTime></domain>\n</domainsnapshot>\n";
	struct virt_snapshot_info info;
	assert_int_equal(virt_snapshot_parse(xml, &info, NULL), 0);
	assert_int_equal(info.created, 1796143679);
	assert_string_equal(info.state, "running");
	assert_true(info.ram);
	assert_true(info.agent);

	/* a shutoff one, and no <memory> (older libvirt): RAM follows the state */
	const char *off = "<domainsnapshot><name>d</name><state>shutoff</state><creationTime>5</creationTime>"
			  "<description>someone else's</description></domainsnapshot>";
	assert_int_equal(virt_snapshot_parse(off, &info, NULL), 0);
	assert_string_equal(info.state, "shutoff");
	assert_false(info.ram);
	assert_false(info.agent);
	const char *paused = "<domainsnapshot><state>paused</state></domainsnapshot>";
	assert_int_equal(virt_snapshot_parse(paused, &info, NULL), 0);
	assert_true(info.ram);
	assert_int_equal(info.created, 0);
}

static void test_parse_bad(void **state UNUSED)
{
	struct virt_snapshot_info info;
	struct hutch_error err = {0};
	assert_true(virt_snapshot_parse("", &info, &err) < 0);
	hutch_error_clear(&err);
	assert_true(virt_snapshot_parse("<domain/>", &info, &err) < 0);
	assert_non_null(strstr(err.msg, "no <domainsnapshot>"));
	hutch_error_clear(&err);
	assert_true(virt_snapshot_parse("<domainsnapshot><name>x", &info, &err) < 0);
	hutch_error_clear(&err);
	/* a state that is not a word is cut at the first odd byte; a time that is not a number is none */
	const char *odd = "<domainsnapshot><state>run&#10;ning</state><creationTime>-3</creationTime>"
			  "<memory/></domainsnapshot>";
	assert_int_equal(virt_snapshot_parse(odd, &info, NULL), 0);
	assert_string_equal(info.state, "run");
	assert_int_equal(info.created, 0);
	assert_false(info.ram);
	/* a long state is bounded */
	char st[201];
	memset(st, 'a', 200);
	st[200] = 0;
	_cleanup_free_ char *longer = xasprintf("<domainsnapshot><state>%s</state></domainsnapshot>", st);
	assert_int_equal(virt_snapshot_parse(longer, &info, NULL), 0);
	assert_int_equal(strlen(info.state), sizeof(info.state) - 1);
	char *big = xmalloc((4u << 20) + 2);
	memset(big, ' ', (4u << 20) + 1);
	big[(4u << 20) + 1] = 0;
	assert_true(virt_snapshot_parse(big, &info, &err) < 0);
	assert_non_null(strstr(err.msg, "too long"));
	hutch_error_clear(&err);
	free(big);
}

static const struct accel_info accel_tcg = {.kvm = false, .why = "test", .tsc_khz = 2000000};

/* A persistent micro VM's domain: its snapshot disk on virtio-mmio, the rest as micro.xml. */
static void test_micro_snapshot_disk(void **state UNUSED)
{
	struct vm_spec *s = spec_new("web");
	s->source = SOURCE_TEMPLATE;
	s->template = xstrdup("micro");
	s->memory = 512ull << 20;
	s->cpus = 2;
	s->net_mode = NET_USER;
	struct qemu_config c = {.name = s->name, .spec = s, .accel = &accel_tcg};
	_cleanup_free_ char *cmdline = qemu_micro_cmdline(&c);
	struct domain_xml_input in = {
		.domain = "hutch-web",
		.vm_name = "web",
		.vm_dir = "/home/user/.local/share/hutch/vms/web",
		.spec = s,
		.emulator = "/usr/bin/qemu-system-x86_64",
		.cpu = "max",
		.kernel = "/usr/lib/hutch/micro/vmlinuz",
		.initrd = "/usr/lib/hutch/micro/initrd.img",
		.cmdline = cmdline,
		.snapshot_disk = "/home/user/.local/share/hutch/vms/web/snapshots.qcow2",
		.passt = true,
	};
	char *xml = NULL;
	struct hutch_error err = {0};
	if (domain_xml_render(&in, &xml, &err) < 0)
		fail_msg("domain_xml_render: %s", err.msg);
	assert_non_null(strstr(xml, "<source file=\"/home/user/.local/share/hutch/vms/web/snapshots.qcow2\"/>"));
	assert_non_null(strstr(xml, "<serial>hutch-snapshots</serial>"));
	check_golden("micro-snapshots.xml", xml);
	free(xml);
	spec_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_render_running),	    cmocka_unit_test(test_render_stopped),
		cmocka_unit_test(test_parse_libvirt),	    cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_micro_snapshot_disk),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
