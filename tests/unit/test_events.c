/* events.c: one bounded JSON line per event, the file rotated past its cap, and a follower that sees
 * a VM created after it started. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "events.h"

#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

static char *home;
static struct store st;

static int setup(void **state)
{
	char d[] = "/tmp/hutch-events-XXXXXX";
	assert_non_null(mkdtemp(d));
	home = xstrdup(d);
	setenv("HUTCH_HOME", home, 1);
	struct hutch_error err = {0};
	assert_int_equal(store_open(&st, &err), 0);
	return 0;
}

static int teardown(void **state)
{
	store_release(&st);
	rm_rf(home);
	free(home);
	return 0;
}

static void make_vm_dir(const char *name)
{
	_cleanup_free_ char *d = store_vm_dir(&st, name);
	assert_int_equal(mkdir_p(d, 0700), 0);
}

static void test_line_bounded(void **state)
{
	char big[8192];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	big[10] = '"'; /* escaped in JSON, still within the bound */
	_cleanup_free_ char *l = events_line("web", "qemu", "stopped", "requested", big);
	assert_true(strlen(l) < EVENTS_LINE_MAX);
	json_object *o = json_tokener_parse(l), *v;
	assert_non_null(o);
	assert_true(json_object_object_get_ex(o, "event", &v));
	assert_string_equal(json_object_get_string(v), "stopped");
	assert_true(json_object_object_get_ex(o, "time_ms", &v));
	assert_true(json_object_get_int64(v) > 0);
	json_object_put(o);
}

static void test_append_rotates(void **state)
{
	make_vm_dir("rot");
	for (int i = 0; i < 2000; i++)
		assert_int_equal(events_append(&st, "rot", "qemu", "started", "booted", "a detail of some length"), 0);
	_cleanup_free_ char *p = store_vm_file(&st, "rot", EVENTS_FILE);
	_cleanup_free_ char *old = store_vm_file(&st, "rot", EVENTS_FILE ".1");
	struct stat a, b;
	assert_int_equal(stat(p, &a), 0);
	assert_int_equal(stat(old, &b), 0);
	assert_true(a.st_size <= EVENTS_FILE_MAX + EVENTS_LINE_MAX);
	assert_true(b.st_size <= EVENTS_FILE_MAX + EVENTS_LINE_MAX);
	/* every line of both files is a whole event */
	const char *files[] = {p, old};
	for (size_t f = 0; f < 2; f++) {
		_cleanup_free_ char *s = NULL;
		assert_int_equal(read_file(files[f], 1 << 20, &s, NULL, NULL), 0);
		for (char *save = NULL, *l = strtok_r(s, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
			json_object *o = json_tokener_parse(l);
			assert_non_null(o);
			json_object_put(o);
		}
	}
}

static int first_event(json_object *ev, void *userdata)
{
	json_object *v;
	if (json_object_object_get_ex(ev, "vm", &v))
		snprintf(userdata, 64, "%s", json_object_get_string(v));
	return 1; /* enough */
}

static void test_follow_new_vm(void **state)
{
	make_vm_dir("quiet"); /* an old VM with an old event: not news */
	assert_int_equal(events_append(&st, "quiet", "qemu", "stopped", "poweroff", NULL), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		usleep(300 * 1000);
		make_vm_dir("fresh");
		_exit(events_append(&st, "fresh", "qemu", "started", "booted", NULL) == 0 ? 0 : 1);
	}
	alarm(30); /* a follower that misses the event fails the test instead of hanging it */
	char seen[64] = "";
	struct hutch_error err = {0};
	assert_int_equal(events_follow(&st, NULL, first_event, seen, &err), 0);
	alarm(0);
	assert_string_equal(seen, "fresh");
	int status;
	waitpid(pid, &status, 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_line_bounded),
		cmocka_unit_test(test_append_rotates),
		cmocka_unit_test(test_follow_new_vm),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
