/* ready.c: what start waits for, and the parsers for what the guest reports (/proc/net/tcp,
 * cloud-init's status.json and result.json, as cloud-init 22.4 writes them). The waits themselves
 * run against a real Debian cloud image in tests/integration/95-cloud.sh. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "ready.h"

static void test_resolve_wait(void **state)
{
	(void)state;
	struct hutch_error err = {0};
	enum start_wait w;
	_cleanup_(spec_freep) struct vm_spec *micro = spec_new("m");
	micro->source = SOURCE_TEMPLATE;
	_cleanup_(spec_freep) struct vm_spec *img = spec_new("d");
	img->source = SOURCE_IMAGE;

	assert_int_equal(ready_resolve_wait(micro, WAIT_AUTO, &w, &err), 0);
	assert_int_equal(w, WAIT_AGENT);
	/* no user work in the seed: agent + sshd */
	assert_int_equal(ready_resolve_wait(img, WAIT_AUTO, &w, &err), 0);
	assert_int_equal(w, WAIT_SSH);
	img->ci_runcmd = strv_push(img->ci_runcmd, xstrdup("true"));
	assert_int_equal(ready_resolve_wait(img, WAIT_AUTO, &w, &err), 0);
	assert_int_equal(w, WAIT_CLOUD_INIT);
	strv_free(img->ci_runcmd);
	img->ci_runcmd = NULL;
	img->ci_packages = strv_push(img->ci_packages, xstrdup("git"));
	assert_int_equal(ready_resolve_wait(img, WAIT_AUTO, &w, &err), 0);
	assert_int_equal(w, WAIT_CLOUD_INIT);
	/* an explicit level is kept */
	for (int i = WAIT_NONE; i <= WAIT_CLOUD_INIT; i++) {
		assert_int_equal(ready_resolve_wait(img, (enum start_wait)i, &w, &err), 0);
		assert_int_equal(w, i);
	}
	assert_int_equal(ready_resolve_wait(micro, WAIT_NONE, &w, &err), 0);
	assert_int_equal(w, WAIT_NONE);
	assert_int_equal(ready_resolve_wait(micro, WAIT_SSH, &w, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "--wait ssh"));
	assert_int_equal(ready_resolve_wait(micro, WAIT_CLOUD_INIT, &w, &err), -EINVAL);
	hutch_error_clear(&err);
	/* a container image's VM: the agent by default; ssh and cloud-init asked for are left to
	 * ready_check_wait, which knows whether it is a bootc one (it has the image's kernel) */
	_cleanup_(spec_freep) struct vm_spec *oci = spec_new("o");
	oci->source = SOURCE_OCI;
	assert_int_equal(ready_resolve_wait(oci, WAIT_AUTO, &w, &err), 0);
	assert_int_equal(w, WAIT_AGENT);
	assert_int_equal(ready_resolve_wait(oci, WAIT_CLOUD_INIT, &w, &err), 0);
	assert_int_equal(w, WAIT_CLOUD_INIT);
	char tmpl[] = "/tmp/hutch-test-ready.XXXXXX";
	assert_non_null(mkdtemp(tmpl));
	struct store st = {.data_dir = tmpl};
	assert_int_equal(ready_check_wait(&st, oci, "o", WAIT_AGENT, &err), 0);
	assert_int_equal(ready_check_wait(&st, oci, "o", WAIT_SSH, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "--wait ssh: 'o' runs a container image under the micro kernel"));
	hutch_error_clear(&err);
	char *dir = xasprintf("%s/vms/o", tmpl), *kernel = xasprintf("%s/oci-vmlinuz", dir);
	assert_int_equal(mkdir_p(dir, 0700), 0);
	assert_int_equal(write_file_atomic(kernel, "k", 1, 0600, NULL), 0);
	assert_int_equal(ready_check_wait(&st, oci, "o", WAIT_CLOUD_INIT, &err), 0);
	assert_int_equal(ready_check_wait(&st, img, "o", WAIT_CLOUD_INIT, &err), 0);
	free(dir);
	free(kernel);
	rm_rf(tmpl);
	assert_string_equal(start_wait_names[WAIT_CLOUD_INIT], "cloud-init");
	assert_string_equal(start_wait_names[WAIT_NONE], "none");
}

static void test_tcp_listening(void **state)
{
	(void)state;
	const char *tcp =
		"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
		"   0: 3500007F:0035 00000000:0000 0A 00000000:00000000 00:00000000 00000000   991        0 1 1\n"
		"   1: 0F02000A:0016 0202000A:C350 01 00000000:00000000 02:0000A6F3 00000000     0        0 2 4\n";
	/* 22 only in an established connection: not listening */
	assert_false(ready_tcp_listening(tcp, 22));
	assert_true(ready_tcp_listening(tcp, 53));
	const char *tcp6 = "  sl  local_address                         remote_address                        st\n"
			   "   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A "
			   "00000000:00000000 00:00000000 00000000     0        0 17 1\n";
	assert_true(ready_tcp_listening(tcp6, 22));
	assert_false(ready_tcp_listening(tcp6, 2222));
	char both[1024];
	snprintf(both, sizeof(both), "%s%s", tcp, tcp6);
	assert_true(ready_tcp_listening(both, 22));
	assert_false(ready_tcp_listening("", 22));
	assert_false(ready_tcp_listening("garbage\n\n:0016 0A\n", 22));
	assert_false(ready_tcp_listening("   0: 00000000:0016 00000000:0000 0A", 23));
}

static void test_parse_result(void **state)
{
	(void)state;
	struct ci_status s;
	assert_int_equal(
		ready_parse_result("{\"v1\": {\"datasource\": \"DataSourceNoCloud [seed=/dev/sr0][dsmode=net]\", "
				   "\"errors\": []}}",
				   &s),
		0);
	assert_int_equal(s.state, CI_DONE);
	assert_null(s.failures);
	ci_status_release(&s);

	assert_int_equal(
		ready_parse_result(
			"{\"v1\": {\"datasource\": \"x\", \"errors\": [\"('scripts_user', RuntimeError('Runparts: "
			"1 failures (runcmd) in 1 attempted commands'))\", \"('package_update_upgrade_install', "
			"ProcessExecutionError(\\\"Unexpected error\\\"))\", \"failed run of stage init\"]}}",
			&s),
		0);
	assert_int_equal(s.state, CI_ERROR);
	assert_int_equal(strv_len(s.failures), 3);
	assert_string_equal(s.failures[0], "scripts_user: Runparts: 1 failures (runcmd) in 1 attempted commands");
	assert_string_equal(s.failures[1], "package_update_upgrade_install: Unexpected error");
	assert_string_equal(s.failures[2], "failed run of stage init");
	ci_status_release(&s);

	/* hostile text: escapes are replaced, lengths bounded, non-strings named */
	assert_int_equal(
		ready_parse_result("{\"v1\": {\"errors\": [\"('x\\u001b[2J', E('\\u001b]0;pwn\\u0007'))\", 7]}}", &s),
		0);
	assert_int_equal(s.state, CI_ERROR);
	assert_null(strchr(s.failures[0], 0x1b));
	assert_null(strchr(s.failures[0], 0x07));
	assert_string_equal(s.failures[1], "(not a string)");
	ci_status_release(&s);
	struct strbuf big = STRBUF_INIT;
	strbuf_adds(&big, "{\"v1\": {\"errors\": [\"");
	for (int i = 0; i < 5000; i++)
		strbuf_adds(&big, "aaaa");
	strbuf_adds(&big, "\"]}}");
	assert_int_equal(ready_parse_result(big.buf, &s), 0);
	assert_true(strlen(s.failures[0]) <= 300);
	ci_status_release(&s);
	strbuf_release(&big);

	/* not result.json */
	assert_int_equal(ready_parse_result("", &s), -EINVAL);
	assert_int_equal(ready_parse_result("{\"v1\": {}}", &s), -EINVAL);
	assert_int_equal(ready_parse_result("{\"v1\": {\"errors\": \"no\"}}", &s), -EINVAL);
	assert_int_equal(ready_parse_result("[1, 2]", &s), -EINVAL);
	assert_int_equal(ready_parse_result("{\"v1\": {\"errors\": []}} trailing", &s), -EINVAL);
}

static void test_parse_status(void **state)
{
	(void)state;
	struct ci_status s;
	assert_int_equal(
		ready_parse_status("{\"v1\": {\"datasource\": null, \"init\": {\"errors\": [], \"finished\": null, "
				   "\"start\": 1764567012.1}, \"stage\": \"init\"}}",
				   &s),
		0);
	assert_int_equal(s.state, CI_RUNNING);
	assert_string_equal(s.stage, "init");
	ci_status_release(&s);
	assert_int_equal(ready_parse_status("{\"v1\": {\"stage\": null}}", &s), 0);
	assert_int_equal(s.state, CI_RUNNING);
	assert_string_equal(s.stage, "");
	assert_int_equal(
		ready_parse_status("{\"v1\": {\"stage\": \"modules-final\\u001b[31m-and-a-very-long-tail\"}}", &s), 0);
	assert_null(strchr(s.stage, 0x1b));
	assert_true(strlen(s.stage) < sizeof(s.stage));
	assert_int_equal(ready_parse_status("nope", &s), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_resolve_wait),
		cmocka_unit_test(test_tcp_listening),
		cmocka_unit_test(test_parse_result),
		cmocka_unit_test(test_parse_status),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
