/* The desktop spec keys (display, sound, apps, notifications, clipboard, color): parsing, errors,
 * round trips, and the QEMU options they render (goldens in tests/golden/desktop/). Regenerate the
 * goldens with HUTCH_UPDATE_GOLDEN=1 and review the diff. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "color.h"
#ifdef HAVE_LIBVIRT
#include "domain_xml.h"
#endif
#include "desktop_entry.h"
#include "desktop_qemu.h"
#include "icon.h"
#include "menu.h"
#include "monitor_notify.h"
#include "spec.h"

#define UNUSED __attribute__((unused))
#define GOLDEN_DIR SRCDIR "/tests/golden/desktop/"
#include "golden.h"

static struct vm_spec *parse_one(const char *yaml)
{
	struct vm_spec **specs = NULL;
	size_t n = 0;
	struct hutch_error err = {0};
	if (spec_parse_buffer(yaml, strlen(yaml), "hutch.yml", &specs, &n, &err) < 0)
		fail_msg("parse: %s", err.msg);
	assert_int_equal(n, 1);
	struct vm_spec *s = specs[0];
	free(specs);
	spec_apply_defaults(s);
	return s;
}

static void expect_error(const char *yaml, const char *msg)
{
	struct vm_spec **specs = NULL;
	size_t n = 0;
	struct hutch_error err = {0};
	int r = spec_parse_buffer(yaml, strlen(yaml), "hutch.yml", &specs, &n, &err);
	if (r >= 0)
		fail_msg("expected an error for:\n%s", yaml);
	if (!strstr(err.msg, msg))
		fail_msg("error '%s' lacks '%s'", err.msg, msg);
	hutch_error_clear(&err);
}

static const struct accel_info accel_tcg = {.kvm = false, .why = "test", .tsc_khz = 2000000};

static char *render_desktop(const struct vm_spec *s)
{
	struct qemu_config c = {.name = s->name, .spec = s, .run_dir = "/run/user/1000/hutch/v", .accel = &accel_tcg};
	char **argv = NULL;
	struct hutch_error err = {0};
	if (desktop_qemu_args(&c, &argv, &err) < 0)
		fail_msg("desktop_qemu_args: %s", err.msg);
	char *r = qemu_render_argv(argv);
	strv_free(argv);
	return r;
}

static void test_color(void **state UNUSED)
{
	uint32_t rgb;
	char buf[32];
	assert_int_equal(color_parse("darkgreen", &rgb), 0);
	assert_int_equal(rgb, 0x006400);
	assert_int_equal(color_parse("DarkRed", &rgb), 0);
	assert_int_equal(rgb, 0x8b0000);
	assert_int_equal(color_parse("#2ecc71", &rgb), 0);
	assert_int_equal(rgb, 0x2ecc71);
	assert_int_equal(color_parse("#f00", &rgb), 0);
	assert_int_equal(rgb, 0xff0000);
	assert_int_equal(color_parse("rgb(255,0,0)", &rgb), 0);
	assert_int_equal(rgb, 0xff0000);
	assert_int_equal(color_parse("rgb( 46, 204 ,113 )", &rgb), 0);
	assert_int_equal(rgb, 0x2ecc71);
	assert_string_equal(color_hex(rgb, buf, sizeof(buf)), "#2ecc71");
	assert_string_equal(color_swatch(0x2ecc71, buf, sizeof(buf)), "\033[48;2;46;204;113m  \033[0m");
	static const char *const bad[] = {
		"",	    "notacolour", "#12345",	 "#1234567",	"#gg0000",	"rgb(256,0,0)",
		"rgb(1,2)", "rgb(1,2,3",  "rgb(1,2,3)x", "rgb(-1,0,0)", "rgb(0001,0,0)"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		if (color_parse(bad[i], &rgb) == 0)
			fail_msg("'%s' parsed as a colour", bad[i]);
}

static void test_parse_and_round_trip(void **state UNUSED)
{
	_cleanup_(spec_freep) struct vm_spec *s =
		parse_one("v:\n  source: {template: micro}\n  color: \"rgb(46, 204, 113)\"\n"
			  "  display: {video: virtio, remote: vnc}\n  sound: {playback: true, capture: true}\n"
			  "  apps: [firefox, konsole]\n"
			  "  clipboard: {max: 64K, types: [png]}\n  notifications: false\n");
	assert_int_equal(desktop_video(&s->desk), VIDEO_VIRTIO);
	assert_int_equal(desktop_remote(&s->desk), REMOTE_VNC);
	assert_true(desktop_playback(&s->desk));
	assert_true(desktop_capture(&s->desk));
	assert_int_equal(desktop_clipboard_max(&s->desk), 64 * 1024);
	assert_string_equal(s->desk.apps[1], "konsole");
	assert_false(mon_notify_wanted(s));
	assert_true(desktop_clipboard_allows(&s->desk, CLIP_PNG));
	assert_true(desktop_clipboard_allows(&s->desk, CLIP_TEXT));
	_cleanup_free_ char *y = spec_render_yaml(s);
	_cleanup_(spec_freep) struct vm_spec *back = parse_one(y);
	assert_true(spec_equal(s, back));

	/* defaults: nothing on; a video device alone gets SPICE; a remote alone gets virtio */
	_cleanup_(spec_freep) struct vm_spec *d = parse_one("v:\n  source: {template: micro}\n");
	assert_int_equal(desktop_video(&d->desk), VIDEO_NONE);
	assert_int_equal(desktop_remote(&d->desk), REMOTE_NONE);
	assert_false(desktop_playback(&d->desk));
	assert_int_equal(desktop_clipboard_max(&d->desk), CLIPBOARD_MAX_DEFAULT);
	assert_true(mon_notify_wanted(d));			    /* notifications are on unless turned off */
	assert_false(desktop_clipboard_allows(&d->desk, CLIP_PNG)); /* text only by default */
	_cleanup_(spec_freep) struct vm_spec *v = parse_one("v:\n  display: {video: qxl}\n  sound: true\n");
	assert_int_equal(desktop_remote(&v->desk), REMOTE_SPICE);
	assert_true(desktop_playback(&v->desk));
	assert_false(desktop_capture(&v->desk));
	_cleanup_(spec_freep) struct vm_spec *r = parse_one("v:\n  display: {remote: spice}\n");
	assert_int_equal(desktop_video(&r->desk), VIDEO_VIRTIO);
}

static void test_errors(void **state UNUSED)
{
	expect_error("v:\n  color: blurple\n", "hutch.yml:2: color: invalid colour 'blurple'");
	expect_error("v:\n  display: {video: cirrus}\n", "display.video");
	expect_error("v:\n  display: {remote: rdp}\n", "display.remote");
	expect_error("v:\n  display: {video: none, remote: vnc}\n", "needs a video device");
	expect_error("v:\n  display: {remote: spice, listen: \"0.0.0.0:5930\"}\n", "only loopback");
	expect_error("v:\n  display: {remote: spice, listen: localhost}\n", "expected 127.0.0.1:PORT");
	expect_error("v:\n  display: {remote: vnc, listen: \"127.0.0.1:5000\"}\n", "VNC ports start at 5900");
	expect_error("v:\n  display: {video: none, listen: \"127.0.0.1:5930\"}\n", "needs remote");
	expect_error("v:\n  sound: {playback: loud}\n", "sound.playback");
	expect_error("v:\n  sound: {audiodev: jack}\n", "sound.audiodev");
	expect_error("v:\n  apps: [\"../../bin/sh\"]\n", "invalid app");
	expect_error("v:\n  apps: [\"fire fox\"]\n", "invalid app");
	expect_error("v:\n  clipboard: {max: 1T}\n", "between 1 and 64M");
	expect_error("v:\n  clipboard: {types: [text/html]}\n", "clipboard.types: type 'text/html' cannot be allowed");
	expect_error("v:\n  notifications: loud\n", "hutch.yml:2: notifications");
}

static void test_golden_micro_vnc(void **state UNUSED)
{
	_cleanup_(spec_freep) struct vm_spec *s =
		parse_one("v:\n  source: {template: micro}\n  display: {video: virtio, remote: vnc}\n");
	_cleanup_free_ char *r = render_desktop(s);
	check_golden("micro-virtio-vnc.txt", r);
	assert_false(desktop_needs_pci(s));
}

static void test_golden_micro_sound(void **state UNUSED)
{
	unsetenv(DESKTOP_ENV_WAV);
	_cleanup_(spec_freep) struct vm_spec *s = parse_one("v:\n  source: {template: micro}\n  sound: true\n");
	_cleanup_free_ char *r = render_desktop(s);
	check_golden("micro-sound.txt", r);
	assert_true(desktop_needs_pci(s)); /* intel-hda: microvm gets pcie=on */
	setenv(DESKTOP_ENV_WAV, "/tmp/a,b.wav", 1);
	_cleanup_free_ char *w = render_desktop(s);
	unsetenv(DESKTOP_ENV_WAV);
	assert_non_null(strstr(w, "wav,id=snd0,path=/tmp/a,,b.wav"));
}

static void test_golden_image_spice(void **state UNUSED)
{
	_cleanup_(spec_freep) struct vm_spec *s =
		parse_one("v:\n  source: {image: \"https://example.org/x.qcow2\"}\n  display: {video: qxl}\n"
			  "  sound: {capture: true, audiodev: alsa}\n");
	_cleanup_free_ char *r = render_desktop(s);
	check_golden("image-qxl-spice-duplex.txt", r);
	_cleanup_(spec_freep) struct vm_spec *t = parse_one("v:\n  source: {image: \"https://example.org/x.qcow2\"}\n"
							    "  display: {remote: vnc, listen: \"127.0.0.1:5905\"}\n");
	_cleanup_free_ char *tr = render_desktop(t);
	check_golden("image-virtio-vnc-tcp.txt", tr);
}

static void test_micro_qxl_refused(void **state UNUSED)
{
	_cleanup_(spec_freep) struct vm_spec *s =
		parse_one("v:\n  source: {template: micro}\n  display: {video: qxl}\n");
	struct qemu_config c = {.name = "v", .spec = s, .run_dir = "/run/x", .accel = &accel_tcg};
	char **argv = NULL;
	struct hutch_error err = {0};
	assert_true(desktop_qemu_args(&c, &argv, &err) < 0);
	assert_non_null(strstr(err.msg, "micro VMs do not have"));
	hutch_error_clear(&err);
	strv_free(argv);
}

static void test_uri(void **state UNUSED)
{
	struct hutch_error err = {0};
	_cleanup_free_ char *u1 = NULL, *u2 = NULL, *u3 = NULL;
	_cleanup_(spec_freep) struct vm_spec *a = parse_one("v:\n  display: {video: virtio}\n");
	assert_int_equal(desktop_uri(a, "/run/h/v", &u1, &err), 0);
	assert_string_equal(u1, "spice+unix:///run/h/v/spice.sock");
	_cleanup_(spec_freep) struct vm_spec *b =
		parse_one("v:\n  display: {remote: vnc, listen: \"127.0.0.2:5901\"}\n");
	assert_int_equal(desktop_uri(b, "/run/h/v", &u2, &err), 0);
	assert_string_equal(u2, "vnc://127.0.0.2:5901");
	_cleanup_(spec_freep) struct vm_spec *c = parse_one("v:\n  source: {template: micro}\n");
	assert_int_equal(desktop_uri(c, "/run/h/v", &u3, &err), -ENODEV);
	assert_non_null(strstr(err.msg, "has no remote display"));
	hutch_error_clear(&err);
}

static char *record(const char *file, const char *body)
{
	return xasprintf("hutch-entry %s %zu\n%s\n", file, strlen(body), body);
}

static void test_entries_parse(void **state UNUSED)
{
	_cleanup_free_ char *a =
		record("hello.desktop", "[Desktop Entry]\nType=Application\nName=Hello\nName[de]=Hallo\n"
					"Exec=\"/usr/bin/hello\" --flag %U\nIcon=hello\n"
					"Categories=Utility;Bogus;Network;Utility;\n");
	_cleanup_free_ char *b =
		record("hidden.desktop", "[Desktop Entry]\nType=Application\nName=H\nExec=x\nHidden=true\n");
	_cleanup_free_ char *c = record("rel.desktop", "[Desktop Entry]\nType=Application\nName=R\nExec=bin/../x\n");
	_cleanup_free_ char *d = record("ctl.desktop", "[Desktop Entry]\nType=Application\nName=\xe2\x80\xae"
						       "a\x01\x1b[31mb  \nExec=cat\nIcon=../x\n");
	_cleanup_free_ char *e = record("../x.desktop", "[Desktop Entry]\nType=Application\nName=X\nExec=x\n");
	_cleanup_free_ char *f = record("two.desktop", "[Desktop Entry]\nType=Application\nName=A\nExec=a\n"
						       "[Desktop Entry]\nName=B\n");
	_cleanup_free_ char *all = xasprintf("%s%s%s%s%s%s", a, b, c, d, e, f);
	struct guest_app *apps = NULL;
	size_t n = 0;
	assert_int_equal(desktop_entries_parse(all, strlen(all), &apps, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(apps[0].id, "hello");
	assert_string_equal(apps[0].name, "Hello");
	assert_string_equal(apps[0].program, "/usr/bin/hello");
	assert_string_equal(apps[0].icon, "hello");
	assert_string_equal(apps[0].categories, "Utility;Network;");
	assert_string_equal(apps[1].id, "ctl");
	assert_string_equal(apps[1].name, "?a??[31mb"); /* bidi override, controls: replaced; trailing blanks cut */
	assert_string_equal(apps[1].icon, "");
	free(apps);

	/* a record whose length runs past the end stops the parse; what came before is kept */
	_cleanup_free_ char *trunc = xasprintf("%shutch-entry x.desktop 999\n[Desktop Entry]\n", a);
	assert_int_equal(desktop_entries_parse(trunc, strlen(trunc), &apps, &n), 0);
	assert_int_equal(n, 1);
	free(apps);
	/* oversized and garbage */
	assert_int_equal(desktop_entries_parse("hutch-entry x.desktop 99999999\n", 31, &apps, &n), 0);
	assert_int_equal(n, 0);
	free(apps);
	static const char nul_exec[] = "[Desktop Entry]\nType=Application\nName=N\nExec=\0";
	struct guest_app one = {.id = "x"};
	assert_false(desktop_entry_parse_one(nul_exec, sizeof(nul_exec) - 1, &one));

	/* the count cap */
	struct strbuf sb = STRBUF_INIT;
	for (int i = 0; i < GUEST_APPS_MAX + 10; i++) {
		_cleanup_free_ char *fn = xasprintf("app%d.desktop", i);
		_cleanup_free_ char *r = record(fn, "[Desktop Entry]\nType=Application\nName=A\nExec=a\n");
		strbuf_adds(&sb, r);
	}
	assert_int_equal(desktop_entries_parse(sb.buf, sb.len, &apps, &n), 0);
	assert_int_equal(n, GUEST_APPS_MAX);
	free(apps);
	strbuf_release(&sb);
}

static void test_icon(void **state UNUSED)
{
	struct hutch_error err = {0};
	char *out = NULL;
	size_t len = 0;
	unsigned w, h;
	assert_true(icon_sanitize("not a png", 9, &out, &len, &w, &h, &err) < 0);
	assert_non_null(strstr(err.msg, "not a PNG icon"));
	hutch_error_clear(&err);
	_cleanup_free_ char *path = xasprintf("%s/tests/golden/desktop/icon-48.png", SRCDIR);
	_cleanup_free_ char *png = NULL;
	size_t plen;
	assert_int_equal(read_file(path, 1 << 20, &png, &plen, &err), 0);
	assert_int_equal(icon_sanitize(png, plen, &out, &len, &w, &h, &err), 0);
	assert_int_equal(w, 48);
	assert_int_equal(h, 48);
	assert_null(memmem(out, len, "from the guest", 14)); /* ancillary chunks do not survive */
	assert_int_equal(memcmp(out, "\x89PNG", 4), 0);
	free(out);
	/* truncated: libpng refuses it */
	assert_true(icon_sanitize(png, plen / 2, &out, &len, &w, &h, &err) < 0);
	hutch_error_clear(&err);
}

#ifdef HAVE_LIBVIRT
/* libvirt backend: <graphics> on a socket (or display.listen), <video>, <sound> + <audio>; the
 * domain validates against libvirt's own schema. */
static char *render_domain(const struct vm_spec *s)
{
	struct domain_xml_input in = {
		.domain = "hutch-v",
		.vm_name = s->name,
		.vm_dir = "/home/user/.local/share/hutch/vms/v",
		.spec = s,
		.emulator = "/usr/bin/qemu-system-x86_64",
		.cpu = "max",
		.disk = "/home/user/.local/share/hutch/vms/v/disk.qcow2",
	};
	_cleanup_free_ char *xml = NULL;
	struct hutch_error err = {0};
	if (domain_xml_render(&in, &xml, &err) < 0)
		fail_msg("domain_xml_render: %s", err.msg);
	/* without the indentation, so elements can be matched whole */
	struct strbuf sb = STRBUF_INIT;
	for (const char *p = xml; *p; p++) {
		if (*p == '\n')
			p += strspn(p + 1, " ");
		else
			strbuf_addch(&sb, *p);
	}
	return strbuf_detach(&sb, NULL);
}

static void validate_domain(const char *xml)
{
	if (access("/usr/bin/virt-xml-validate", X_OK) < 0)
		skip();
	char path[] = "/tmp/hutch-test-domain-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_true(write_all(fd, xml, strlen(xml)) >= 0);
	close(fd);
	_cleanup_free_ char *cmd = xasprintf("virt-xml-validate '%s' domain >/dev/null 2>&1", path);
	int st = system(cmd);
	unlink(path);
	if (st != 0)
		fail_msg("virt-xml-validate refused:\n%s", xml);
}

static void test_domain_xml(void **state UNUSED)
{
	_cleanup_(spec_freep) struct vm_spec *s =
		parse_one("v:\n  source: {image: \"https://example.org/x.qcow2\"}\n  display: {video: qxl}\n"
			  "  sound: {capture: true}\n");
	_cleanup_free_ char *xml = render_domain(s);
	assert_non_null(strstr(xml, "<graphics type=\"spice\"><listen type=\"socket\"/></graphics>"));
	assert_non_null(strstr(xml, "<video><model type=\"qxl\"/></video>"));
	assert_non_null(strstr(xml, "<sound model=\"ich6\"><codec type=\"duplex\"/><audio id=\"1\"/></sound>"));
	assert_non_null(strstr(xml, "<audio id=\"1\" type=\"pulseaudio\"/>"));
	validate_domain(xml);
	_cleanup_(spec_freep) struct vm_spec *t = parse_one(
		"v:\n  source: {image: \"https://example.org/x.qcow2\"}\n  display: {remote: vnc, listen: \"127.0.0.1:5905\"}\n");
	_cleanup_free_ char *x2 = render_domain(t);
	assert_non_null(
		strstr(x2, "<graphics type=\"vnc\" port=\"5905\"><listen type=\"address\" address=\"127.0.0.1\"/>"));
	assert_non_null(strstr(x2, "<video><model type=\"virtio\"/></video>"));
	assert_null(strstr(x2, "<sound"));
	validate_domain(x2);
	_cleanup_(spec_freep) struct vm_spec *n = parse_one("v:\n  source: {image: \"https://example.org/x.qcow2\"}\n");
	_cleanup_free_ char *x3 = render_domain(n);
	assert_null(strstr(x3, "<graphics"));
	assert_null(strstr(x3, "<video"));
}
#endif

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_color),
		cmocka_unit_test(test_parse_and_round_trip),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_golden_micro_vnc),
		cmocka_unit_test(test_golden_micro_sound),
		cmocka_unit_test(test_golden_image_spice),
		cmocka_unit_test(test_micro_qxl_refused),
		cmocka_unit_test(test_uri),
		cmocka_unit_test(test_entries_parse),
		cmocka_unit_test(test_icon),
#ifdef HAVE_LIBVIRT
		cmocka_unit_test(test_domain_xml),
#endif
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
