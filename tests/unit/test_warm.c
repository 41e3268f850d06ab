/* warm templates (src/lib/warm.c): the clone's argv, the key, instance marks, the cache listing;
 * MSG_IDENTITY's encoding; snapshot tags (src/lib/snapshot.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "qemu.h"
#include "snapshot.h"
#include "warm.h"

#define UNUSED __attribute__((unused))

static bool argv_has(char *const *argv, const char *s)
{
	for (size_t i = 0; argv && argv[i]; i++)
		if (strstr(argv[i], s))
			return true;
	return false;
}

struct fixture {
	char dir[64];
	struct store st;
	struct vm_spec *spec;
	struct accel_info accel;
	struct qemu_plan plan;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_warm.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	setenv("HUTCH_HOME", f->dir, 1);
	unsetenv("HUTCH_TB_SIZE");
	struct hutch_error err = {0};
	assert_int_equal(store_open(&f->st, &err), 0);
	f->spec = spec_new("micro-1234abcd");
	f->spec->source = SOURCE_TEMPLATE;
	f->spec->template = xstrdup("micro");
	spec_apply_defaults(f->spec);
	snprintf(f->accel.cpu, sizeof(f->accel.cpu), "max");
	f->plan.binary = xstrdup("/usr/bin/qemu-system-x86_64");
	f->plan.kernel = xstrdup("/boot/vmlinuz-test");
	f->plan.initrd = xstrdup("/nonexistent/initrd");
	f->plan.accel = &f->accel;
	struct qemu_config c = {.name = "micro-1234abcd",
				.spec = f->spec,
				.binary = f->plan.binary,
				.run_dir = "/run/x",
				.vm_dir = "/data/x",
				.kernel = f->plan.kernel,
				.initrd = f->plan.initrd,
				.accel = &f->accel};
	assert_int_equal(qemu_build_argv(&c, &f->plan.argv, &err), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	rm_rf(f->dir);
	f->plan.accel = NULL;
	qemu_plan_release(&f->plan);
	spec_free(f->spec);
	store_release(&f->st);
	free(f);
	return 0;
}

static void test_clone_argv(void **state)
{
	struct fixture *f = *state;
	struct warm_plan wp;
	struct hutch_error err = {0};
	assert_int_equal(warm_plan_make(&f->st, "micro", "micro-1234abcd", f->spec, &f->plan, &wp, &err), 0);
	assert_true(argv_has(wp.clone_argv, "memory-backend-file,id=warm-mem"));
	assert_true(argv_has(wp.clone_argv, "share=off"));
	assert_false(argv_has(wp.clone_argv, "share=on"));
	assert_true(argv_has(wp.clone_argv, "microvm,") && argv_has(wp.clone_argv, ",memory-backend=warm-mem"));
	/* discarding devices never reach a clone */
	assert_false(argv_has(wp.clone_argv, "virtio-balloon"));
	assert_true(argv_has(wp.clone_argv, "defer"));
	assert_true(argv_has(wp.clone_argv, wp.mem));
	assert_int_equal(strlen(wp.key), 64);
	assert_non_null(strstr(wp.dir, "/warm/micro/"));
	warm_plan_release(&wp);
}

static void test_key(void **state)
{
	struct fixture *f = *state;
	struct warm_plan a, b, c;
	struct hutch_error err = {0};
	assert_int_equal(warm_plan_make(&f->st, "micro", "micro-1234abcd", f->spec, &f->plan, &a, &err), 0);
	/* another instance of the same spec: the same template */
	assert_int_equal(warm_plan_make(&f->st, "micro", "micro-99999999", f->spec, &f->plan, &b, &err), 0);
	assert_string_equal(a.key, b.key);
	/* more memory: another template */
	f->spec->memory *= 2;
	assert_int_equal(warm_plan_make(&f->st, "micro", "micro-1234abcd", f->spec, &f->plan, &c, &err), 0);
	assert_string_not_equal(a.key, c.key);
	f->spec->memory /= 2;
	warm_plan_release(&a);
	warm_plan_release(&b);
	warm_plan_release(&c);
	/* accel is part of it too */
	snprintf(f->accel.cpu, sizeof(f->accel.cpu), "qemu64");
	assert_int_equal(warm_plan_make(&f->st, "micro", "micro-1234abcd", f->spec, &f->plan, &c, &err), 0);
	assert_int_equal(warm_plan_make(&f->st, "micro", "micro-1234abcd", f->spec, &f->plan, &a, &err), 0);
	assert_string_equal(a.key, c.key);
	warm_plan_release(&a);
	warm_plan_release(&c);
	snprintf(f->accel.cpu, sizeof(f->accel.cpu), "max");
}

static void test_tb_size(void **state)
{
	struct fixture *f = *state;
	struct warm_plan wp;
	struct hutch_error err = {0};
	setenv("HUTCH_TB_SIZE", "32", 1);
	assert_int_equal(warm_plan_make(&f->st, "micro", "micro-1234abcd", f->spec, &f->plan, &wp, &err), 0);
	unsetenv("HUTCH_TB_SIZE");
	assert_true(argv_has(wp.clone_argv, "tcg,tb-size=32"));
	warm_plan_release(&wp);
}

static void test_unsupported(void **state)
{
	struct fixture *f = *state;
	struct warm_plan wp;
	struct hutch_error err = {0};
	f->spec->net_mode = NET_NETVM;
	assert_int_equal(warm_plan_make(&f->st, "micro", "x", f->spec, &f->plan, &wp, &err), -ENOTSUP);
	assert_non_null(strstr(err.msg, "netvm"));
	hutch_error_clear(&err);
	f->spec->net_mode = NET_USER;
	f->spec->home = HOME_DEFAULT;
	assert_int_equal(warm_supported(f->spec, &err), -ENOTSUP);
	assert_non_null(strstr(err.msg, "shares"));
	hutch_error_clear(&err);
	f->spec->home = HOME_OFF;
	f->spec->source = SOURCE_IMAGE;
	assert_int_equal(warm_supported(f->spec, &err), -ENOTSUP);
	hutch_error_clear(&err);
	f->spec->source = SOURCE_TEMPLATE;
}

static void test_check_and_cache(void **state)
{
	struct fixture *f = *state;
	struct warm_plan wp;
	struct hutch_error err = {0};
	assert_int_equal(warm_plan_make(&f->st, "micro", "micro-1234abcd", f->spec, &f->plan, &wp, &err), 0);
	assert_int_equal(warm_template_check(&wp, &err), -ENOENT);
	hutch_error_clear(&err);
	/* a directory without a readable meta.json is corrupt, not missing */
	assert_int_equal(mkdir_p(wp.dir, 0700), 0);
	assert_int_equal(warm_template_check(&wp, &err), -EBADMSG);
	hutch_error_clear(&err);
	/* a meta.json whose state file does not match */
	_cleanup_free_ char *meta = xasprintf("%s/meta.json", wp.dir);
	_cleanup_free_ char *text = xasprintf("{\"key\": \"%s\", \"state_bytes\": 3, \"state_sha256\": \"00\", "
					      "\"name\": \"micro\", \"mem_bytes\": 1}",
					      wp.key);
	assert_int_equal(write_file_atomic(meta, text, strlen(text), 0600, &err), 0);
	assert_int_equal(write_file_atomic(wp.state, "abc", 3, 0600, &err), 0);
	assert_int_equal(warm_template_check(&wp, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "checksum"));
	hutch_error_clear(&err);
	json_object *all = NULL;
	assert_int_equal(warm_list(&f->st, &all, &err), 0);
	assert_int_equal(json_object_array_length(all), 1);
	json_object_put(all);
	assert_int_equal(warm_remove(&f->st, "micro", &err), 0);
	assert_int_equal(warm_remove(&f->st, "micro", &err), -ENOENT);
	hutch_error_clear(&err);
	assert_int_equal(warm_list(&f->st, &all, &err), 0);
	assert_int_equal(json_object_array_length(all), 0);
	json_object_put(all);
	warm_plan_release(&wp);
}

static void test_instance_mark(void **state)
{
	struct fixture *f = *state;
	struct hutch_error err = {0};
	_cleanup_free_ char *dir = store_vm_dir(&f->st, "micro-1234abcd");
	assert_int_equal(mkdir_p(dir, 0700), 0);
	assert_null(warm_instance_template(&f->st, "micro-1234abcd"));
	assert_int_equal(warm_mark_instance(&f->st, "micro-1234abcd", "micro", &err), 0);
	_cleanup_free_ char *t = warm_instance_template(&f->st, "micro-1234abcd");
	assert_string_equal(t, "micro");
	/* a mark that is no valid name is ignored */
	_cleanup_free_ char *p = store_vm_file(&f->st, "micro-1234abcd", "warm-template");
	assert_int_equal(write_file_atomic(p, "../x", 4, 0600, &err), 0);
	assert_null(warm_instance_template(&f->st, "micro-1234abcd"));
}

static void test_identity_roundtrip(void **state UNUSED)
{
	struct proto_buf b = {0};
	warm_identity_encode(&b, "micro-1234abcd");
	struct proto_frame f = {.type = MSG_IDENTITY, .len = (uint32_t)b.len, .payload = b.data};
	struct proto_identity id;
	assert_int_equal(proto_decode_identity(&f, &id), 0);
	assert_string_equal(id.hostname, "micro-1234abcd");
	assert_int_equal(strlen(id.machine_id), 32);
	assert_int_equal(id.entropy_len, 512);
	assert_true(id.realtime_ns > 1600000000ull * 1000000000ull);
	proto_identity_free(&id);
	/* two encodings never share their entropy or machine-id */
	struct proto_buf b2 = {0};
	warm_identity_encode(&b2, "micro-1234abcd");
	assert_int_equal(b.len, b2.len);
	assert_memory_not_equal(b.data, b2.data, b.len);
	proto_buf_free(&b2);
	/* every truncation is rejected */
	for (uint32_t n = 0; n < b.len; n++) {
		f.len = n;
		assert_int_equal(proto_decode_identity(&f, &id), -1);
	}
	proto_buf_free(&b);
}

static void test_identity_bounds(void **state UNUSED)
{
	uint8_t big[PROTO_IDENTITY_ENTROPY_MAX + 1] = {0};
	struct proto_identity id;
	struct proto_buf b = {0};
	proto_encode_identity(&b, 1, "h", "0123456789abcdef0123456789abcdef", big, sizeof(big));
	struct proto_frame f = {.type = MSG_IDENTITY, .len = (uint32_t)b.len, .payload = b.data};
	assert_int_equal(proto_decode_identity(&f, &id), -1); /* too much entropy */
	proto_buf_free(&b);
	proto_encode_identity(&b, 1, "h", "../etc/passwd-not-hex-at-all-xxx", big, 16);
	f = (struct proto_frame){.type = MSG_IDENTITY, .len = (uint32_t)b.len, .payload = b.data};
	assert_int_equal(proto_decode_identity(&f, &id), -1); /* not a machine-id */
	proto_buf_free(&b);
	proto_encode_identity(&b, 1, "", "0123456789abcdef0123456789abcdef", big, 16);
	f = (struct proto_frame){.type = MSG_IDENTITY, .len = (uint32_t)b.len, .payload = b.data};
	assert_int_equal(proto_decode_identity(&f, &id), -1); /* no hostname */
	proto_buf_free(&b);
	assert_string_equal(proto_type_name(MSG_IDENTITY), "IDENTITY");
}

static void test_snapshot_tags(void **state UNUSED)
{
	assert_true(snapshot_tag_valid("t1"));
	assert_true(snapshot_tag_valid("snap-20261201-101010"));
	assert_true(snapshot_tag_valid("a.b_c-d"));
	assert_false(snapshot_tag_valid(""));
	assert_false(snapshot_tag_valid(NULL));
	assert_false(snapshot_tag_valid("123")); /* would be read as an id */
	assert_false(snapshot_tag_valid("-x"));
	assert_false(snapshot_tag_valid("a b"));
	assert_false(snapshot_tag_valid("a,b"));
	assert_false(snapshot_tag_valid("a/b"));
	char long_tag[80];
	memset(long_tag, 'a', sizeof(long_tag) - 1);
	long_tag[sizeof(long_tag) - 1] = 0;
	assert_false(snapshot_tag_valid(long_tag));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_clone_argv, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tb_size, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unsupported, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_and_cache, setup, teardown),
		cmocka_unit_test_setup_teardown(test_instance_mark, setup, teardown),
		cmocka_unit_test(test_identity_roundtrip),
		cmocka_unit_test(test_identity_bounds),
		cmocka_unit_test(test_snapshot_tags),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
