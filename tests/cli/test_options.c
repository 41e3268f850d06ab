/* options: the verb option parser (src/cmd/options.c) against a made-up verb table. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "cmd/cmd.h"

#define UNUSED __attribute__((unused))
#define ARGV(...) ((char *[]){__VA_ARGS__, NULL})
#define ARGC(...) ((int)ARRAY_SIZE(((char *[]){__VA_ARGS__})))

struct t_cli {
	const char *instance;
	bool force, fresh;
	uint64_t memory, timeout_ms;
	unsigned cpus;
	int accel;
	char **env;
	int calls;
};

static int count(struct cmd_ctx *c, void *opts, const struct opt *o, const char *arg)
{
	((struct t_cli *)opts)->calls++;
	return 0;
}

static const char *const accels[] = {"auto", "kvm", "tcg", NULL};
static const struct opt t_opts[] = {
	OPT_INSTANCE(struct t_cli),
	OPT_BOOL('f', "force", struct t_cli, force, "force"),
	OPT_SIZE('m', "memory", struct t_cli, memory, "memory"),
	OPT_UINT('c', "cpus", struct t_cli, cpus, "N", 1, 256, "cpus"),
	OPT_DURATION(0, "timeout", struct t_cli, timeout_ms, "SEC", "timeout"),
	OPT_ENUM(0, "accel", struct t_cli, accel, "ACCEL", accels, "accelerator"),
	OPT_STRV('e', "env", struct t_cli, env, "K=V", "environment"),
	OPT_CALLBACK('x', "tick", NULL, count, "count"),
	OPT_JSON(),
	OPT_END(),
};
static VERB_DEFINE(t_plain, .name = "plain", .opts = t_opts, .opts_size = sizeof(struct t_cli), .min_args = 1,
		   .max_args = 2, .args = "NAME [MORE]");
static VERB_DEFINE(t_cmd, .name = "cmd", .opts = t_opts, .opts_size = sizeof(struct t_cli), .min_args = 1,
		   .max_args = -1, .args = "NAME [--] CMD...", .flags = VERB_COMMAND);
static VERB_DEFINE(t_raw, .name = "raw", .min_args = 2, .max_args = 2, .flags = VERB_NO_OPTS | VERB_HIDDEN);
static const struct opt sub_opts[] = {
	OPT_BOOL('F', "fresh", struct t_cli, fresh, "fresh"),
	OPT_END(),
};
static const struct verb t_subs[] = {
	VERB_SUB(.name = "add", .opts = sub_opts, .min_args = 1, .max_args = 1, .args = "SPEC"),
	VERB_SUB(.name = "ls"),
	{0},
};
static VERB_DEFINE(t_parent, .name = "parent", .opts = t_opts, .opts_size = sizeof(struct t_cli), .args = "NAME",
		   .subs = t_subs, .sub_at = 1);

struct parsed {
	struct cmd_ctx c;
	struct t_cli o;
	const struct verb *sub;
	int argc;
	char **argv;
	int rc;
};

static struct parsed *parse(const struct verb *v, int argc, char **argv)
{
	static struct parsed p;
	opt_release(&verb_t_plain, &p.o);
	memset(&p, 0, sizeof(p));
	p.c.verb = v->name;
	p.rc = opt_parse(&p.c, v, &p.o, argc, argv, &p.sub, &p.argc, &p.argv);
	return &p;
}

static void test_forms(void **state UNUSED)
{
	struct parsed *p = parse(&verb_t_plain,
				 ARGC("plain", "-fi", "web", "--memory=2G", "-c4", "--timeout", "90s", "--accel", "tcg",
				      "-e", "A=1", "-eB=2", "NAME", "-xx", "--json"),
				 ARGV("plain", "-fi", "web", "--memory=2G", "-c4", "--timeout", "90s", "--accel", "tcg",
				      "-e", "A=1", "-eB=2", "NAME", "-xx", "--json"));
	assert_int_equal(p->rc, 0);
	assert_true(p->o.force);
	assert_string_equal(p->o.instance, "web");
	assert_int_equal(p->o.memory, 2ull << 30);
	assert_int_equal(p->o.cpus, 4);
	assert_int_equal(p->o.timeout_ms, 90000);
	assert_int_equal(p->o.accel, 2);
	assert_int_equal(strv_len(p->o.env), 2);
	assert_string_equal(p->o.env[1], "B=2");
	assert_int_equal(p->o.calls, 2);
	assert_true(p->c.json);
	assert_int_equal(p->argc, 1);
	assert_string_equal(p->argv[0], "NAME");
	assert_null(p->argv[1]);
}

static void test_usage_errors(void **state UNUSED)
{
	assert_int_equal(parse(&verb_t_plain, 3, ARGV("plain", "--memory", "lots"))->rc, EXIT_USAGE);
	assert_int_equal(parse(&verb_t_plain, 4, ARGV("plain", "-c", "0", "N"))->rc, EXIT_USAGE);
	assert_int_equal(parse(&verb_t_plain, 4, ARGV("plain", "--accel", "xen", "N"))->rc, EXIT_USAGE);
	assert_int_equal(parse(&verb_t_plain, 3, ARGV("plain", "--timeout", "soon"))->rc, EXIT_USAGE);
	assert_int_equal(parse(&verb_t_plain, 3, ARGV("plain", "--frob", "N"))->rc, EXIT_USAGE);
	assert_int_equal(parse(&verb_t_plain, 3, ARGV("plain", "-q", "N"))->rc, EXIT_USAGE);
	assert_int_equal(parse(&verb_t_plain, 3, ARGV("plain", "N", "-i"))->rc, EXIT_USAGE);
	assert_int_equal(parse(&verb_t_plain, 3, ARGV("plain", "--json=yes", "N"))->rc, EXIT_USAGE);
	assert_int_equal(parse(&verb_t_plain, 1, ARGV("plain"))->rc, EXIT_USAGE);
	assert_int_equal(parse(&verb_t_plain, 4, ARGV("plain", "a", "b", "c"))->rc, EXIT_USAGE);
	/* --opt (without =) takes the next word, even one that starts with '-' */
	struct parsed *p = parse(&verb_t_plain, 4, ARGV("plain", "-i", "-x", "N"));
	assert_int_equal(p->rc, 0);
	assert_string_equal(p->o.instance, "-x");
}

static void test_dashdash(void **state UNUSED)
{
	struct parsed *p = parse(&verb_t_plain, 5, ARGV("plain", "-f", "--", "-a", "b"));
	assert_int_equal(p->rc, 0);
	assert_true(p->o.force);
	assert_int_equal(p->argc, 2);
	assert_string_equal(p->argv[0], "-a");
	/* options may follow positionals */
	p = parse(&verb_t_plain, 3, ARGV("plain", "N", "-f"));
	assert_int_equal(p->rc, 0);
	assert_true(p->o.force);
}

static void test_command(void **state UNUSED)
{
	/* without "--" options stop at NAME: the command keeps its own */
	struct parsed *p = parse(&verb_t_cmd, 5, ARGV("cmd", "-f", "web", "ls", "-f"));
	assert_int_equal(p->rc, 0);
	assert_true(p->o.force);
	assert_int_equal(p->argc, 3);
	assert_string_equal(p->argv[2], "-f");
	/* with "--" they may follow NAME */
	p = parse(&verb_t_cmd, 6, ARGV("cmd", "web", "-f", "--", "ls", "-l"));
	assert_int_equal(p->rc, 0);
	assert_true(p->o.force);
	assert_int_equal(p->argc, 3);
	assert_string_equal(p->argv[0], "web");
	assert_string_equal(p->argv[1], "ls");
	assert_int_equal(parse(&verb_t_cmd, 5, ARGV("cmd", "web", "extra", "--", "ls"))->rc, EXIT_USAGE);
	assert_int_equal(parse(&verb_t_cmd, 3, ARGV("cmd", "--", "ls"))->rc, EXIT_USAGE);
	/* the first "--" is the one that counts: a command before it is an error */
	p = parse(&verb_t_cmd, 5, ARGV("cmd", "web", "sh", "--", "x"));
	assert_int_equal(p->rc, EXIT_USAGE);
}

static void test_subcommands(void **state UNUSED)
{
	struct parsed *p =
		parse(&verb_t_parent, 8, ARGV("parent", "web", "-i", "x", "add", "8080:80", "-fF", "--json"));
	assert_int_equal(p->rc, 0);
	assert_ptr_equal(p->sub, &t_subs[0]);
	assert_string_equal(p->o.instance, "x");
	assert_true(p->o.force);
	assert_true(p->o.fresh);
	assert_int_equal(p->argc, 2);
	assert_string_equal(p->argv[0], "web");
	assert_string_equal(p->argv[1], "8080:80");
	p = parse(&verb_t_parent, 3, ARGV("parent", "web", "ls"));
	assert_int_equal(p->rc, 0);
	assert_ptr_equal(p->sub, &t_subs[1]);
	assert_int_equal(parse(&verb_t_parent, 4, ARGV("parent", "web", "ls", "-F"))->rc, EXIT_USAGE);
	assert_int_equal(parse(&verb_t_parent, 4, ARGV("parent", "web", "ls", "extra"))->rc, EXIT_USAGE);
	assert_int_equal(parse(&verb_t_parent, 3, ARGV("parent", "web", "frob"))->rc, EXIT_USAGE);
	assert_int_equal(parse(&verb_t_parent, 2, ARGV("parent", "web"))->rc, EXIT_USAGE);
	assert_int_equal(parse(&verb_t_parent, 1, ARGV("parent"))->rc, EXIT_USAGE);
}

static void test_no_opts(void **state UNUSED)
{
	struct parsed *p = parse(&verb_t_raw, 3, ARGV("raw", "a", "-1"));
	assert_int_equal(p->rc, 0);
	assert_int_equal(p->argc, 2);
	assert_string_equal(p->argv[1], "-1");
}

static void test_help(void **state UNUSED)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	opt_print_help(f, &verb_t_parent);
	fclose(f);
	assert_non_null(strstr(buf, "usage: hutch parent [-i INSTANCE] [-f] [-m SIZE] [-c N] [--timeout SEC] "
				    "[--accel ACCEL] [-e K=V]... [-x] [--json] NAME add [-F] SPEC\n"));
	assert_non_null(strstr(buf, "   or: hutch parent"));
	assert_non_null(strstr(buf, "  -m, --memory SIZE"));
	assert_non_null(strstr(buf, "(auto, kvm or tcg)"));
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_forms),	cmocka_unit_test(test_usage_errors), cmocka_unit_test(test_dashdash),
		cmocka_unit_test(test_command), cmocka_unit_test(test_subcommands),  cmocka_unit_test(test_no_opts),
		cmocka_unit_test(test_help),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
