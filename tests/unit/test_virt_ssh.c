/* virt_ssh: how `hutch ssh` reaches a libvirt VM's sshd. A remote qemu+ssh URI becomes a
 * ProxyCommand through libvirt's own ssh, user, port and key; this host's URIs need none; other
 * remote transports are refused. An image VM gets an ssh forward from a free port unless its spec
 * has one. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "qemu.h"
#include "spec.h"
#include "virt_ssh.h"

#define UNUSED __attribute__((unused))

static char *proxy_of(const char *uri, int want)
{
	char *p = (char *)"unset";
	struct hutch_error err = {0};
	int r = virt_ssh_proxy(uri, &p, &err);
	assert_int_equal(r, want);
	if (r < 0)
		assert_non_null(err.msg);
	hutch_error_clear(&err);
	return p;
}

static void test_local_uris(void **state UNUSED)
{
	assert_null(proxy_of("qemu:///session", 0));
	assert_null(proxy_of("qemu:///system", 0));
	assert_null(proxy_of("qemu+unix:///session?socket=/run/user/1000/libvirt/virtqemud-sock", 0));
}

static void test_ssh_uri(void **state UNUSED)
{
	_cleanup_free_ char *p = proxy_of(
		"qemu+ssh://alice@10.0.0.5:2222/session?keyfile=/home/a/k%20ey&command=/opt/my%20ssh&no_tty=1", 0);
	assert_string_equal(p, "'/opt/my ssh' -p '2222' -i '/home/a/k ey' -W %h:%p 'alice@10.0.0.5'");
	_cleanup_free_ char *plain = proxy_of("qemu+ssh://host.example/system", 0);
	assert_string_equal(plain, "'ssh' -W %h:%p 'host.example'");
	/* a quote in a value stays inside its word */
	_cleanup_free_ char *q = proxy_of("qemu+libssh2://h/session?keyfile=/k'x", 0);
	assert_string_equal(q, "'ssh' -i '/k'\\''x' -W %h:%p 'h'");
}

static void test_other_transports(void **state UNUSED)
{
	assert_null(proxy_of("qemu+tcp://h/system", -ENOTSUP));
	assert_null(proxy_of("qemu+tls://h/system", -ENOTSUP));
	assert_null(proxy_of("qemu://h/system", -ENOTSUP));
}

static struct vm_spec *parse(const char *yaml)
{
	struct vm_spec **specs = NULL;
	size_t n = 0;
	struct hutch_error err = {0};
	if (spec_parse_buffer(yaml, strlen(yaml), "t.yml", &specs, &n, &err) < 0)
		fail_msg("%s", err.msg);
	struct vm_spec *s = specs[0];
	specs[0] = NULL;
	spec_free_all(specs, n);
	spec_apply_defaults(s);
	return s;
}

static void test_auto_forward(void **state UNUSED)
{
	struct store st = {0};
	struct hutch_error err = {0};
	const char *img = "web:\n  source:\n    image: http://127.0.0.1:1/i.qcow2\n    checksum: sha256:"
			  "0000000000000000000000000000000000000000000000000000000000000000\n";
	struct vm_spec *s = parse(img);
	assert_int_equal(virt_ssh_auto_forward(&st, s, "web", &err), 0);
	assert_int_equal(strv_len(s->forward), 1);
	struct forward f;
	assert_int_equal(forward_parse(s->forward[0], &f), 0);
	assert_int_equal(f.guest, 22);
	assert_true(f.host > 0);
	assert_false(f.udp);
	spec_free(s);

	/* the spec's own forward to 22 is the one ssh uses */
	_cleanup_free_ char *fwd = xasprintf("%s  network: {forward: ['2200:22']}\n", img);
	s = parse(fwd);
	assert_int_equal(virt_ssh_auto_forward(&st, s, "web", &err), 0);
	assert_int_equal(strv_len(s->forward), 1);
	assert_string_equal(s->forward[0], "2200:22");
	spec_free(s);

	/* no key, no sshd to reach: micro, or ssh key none */
	s = parse("m:\n  source: {template: micro}\n");
	assert_int_equal(virt_ssh_auto_forward(&st, s, "m", &err), 0);
	assert_int_equal(strv_len(s->forward), 0);
	spec_free(s);
	_cleanup_free_ char *nokey = xasprintf("%s  ssh: {key: none}\n", img);
	s = parse(nokey);
	assert_int_equal(virt_ssh_auto_forward(&st, s, "web", &err), 0);
	assert_int_equal(strv_len(s->forward), 0);
	spec_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_local_uris),
		cmocka_unit_test(test_ssh_uri),
		cmocka_unit_test(test_other_transports),
		cmocka_unit_test(test_auto_forward),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
