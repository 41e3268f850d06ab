/* Unit tests for src/lib/netvm.c and the network: keys of spec.c: the /31 plan, collisions, the
 * checks at create, and what QEMU and the guest are given. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "netvm.h"
#include "spec.h"

#define UNUSED __attribute__((unused))

static struct vm_spec *parse_one(const char *yaml, struct hutch_error *err)
{
	struct vm_spec **specs = NULL;
	size_t n = 0;
	if (spec_parse_buffer(yaml, strlen(yaml), "hutch.yml", &specs, &n, err) < 0)
		return NULL;
	assert_int_equal(n, 1);
	struct vm_spec *s = specs[0];
	free(specs);
	return s;
}

static void expect_spec_error(const char *yaml, const char *msg)
{
	struct hutch_error err = {0};
	struct vm_spec *s = parse_one(yaml, &err);
	if (s)
		fail_msg("expected '%s', parse succeeded", msg);
	assert_string_equal(err.msg, msg);
	hutch_error_clear(&err);
}

static void test_spec_keys(void **state UNUSED)
{
	struct hutch_error err = {0};
	struct vm_spec *s = parse_one("c1:\n  network: {netvm: gw, netvm_subnet: 10.200.5.2/31}\n", &err);
	assert_non_null(s);
	assert_int_equal(s->net_mode, NET_NETVM);
	assert_string_equal(s->netvm, "gw");
	assert_int_equal(s->netvm_subnet, 0x0ac80502);
	/* rendered and read back: the same spec */
	char *y = spec_render_yaml(s);
	struct vm_spec *t = parse_one(y, &err);
	assert_non_null(t);
	assert_true(spec_equal(s, t));
	free(y);
	spec_free(t);
	spec_free(s);

	s = parse_one("gw:\n  network:\n    mode: netvm:up\n    is_netvm: true\n", &err);
	assert_non_null(s);
	assert_true(s->is_netvm);
	assert_string_equal(s->netvm, "up");
	spec_free(s);

	s = parse_one("a:\n  network: {mode: user, auto_forward: true, is_netvm: true}\n", &err);
	assert_non_null(s);
	assert_true(s->auto_forward && s->is_netvm);
	y = spec_render_yaml(s);
	t = parse_one(y, &err);
	assert_true(spec_equal(s, t));
	free(y);
	spec_free(t);
	spec_free(s);
}

static void test_spec_errors(void **state UNUSED)
{
	expect_spec_error("a:\n  network: {mode: netvm}\n", "hutch.yml:2: network.mode: mode netvm needs netvm: NAME");
	expect_spec_error("a:\n  network:\n    mode: user\n    netvm: gw\n",
			  "hutch.yml:4: network.netvm: netvm: is only for mode: netvm");
	expect_spec_error("a:\n  network: {netvm: gw, netvm_subnet: 10.200.5.3/31}\n",
			  "hutch.yml:2: network.netvm_subnet: 10.200.5.3 is the odd address of its /31: write "
			  "10.200.5.2/31");
	expect_spec_error("a:\n  network: {netvm: gw, netvm_subnet: 10.200.5.2/30}\n",
			  "hutch.yml:2: network.netvm_subnet: must be a /31 (a link has two addresses), got /30");
	expect_spec_error("a:\n  network: {netvm: gw, netvm_subnet: 10.300.5.2/31}\n",
			  "hutch.yml:2: network.netvm_subnet: expected an IPv4 /31 like 10.200.5.2/31, got "
			  "'10.300.5.2/31'");
	expect_spec_error("a:\n  network: {netvm: GW}\n", "hutch.yml:2: network.netvm: invalid netvm name 'GW'");
	expect_spec_error("a:\n  network: {mode: netvm, netvm: gw, auto_forward: true}\n",
			  "hutch.yml:2: network.auto_forward: auto_forward needs mode: user (forwards go through "
			  "QEMU's user-mode network)");
	expect_spec_error("a:\n  network: {mode: bridge}\n",
			  "hutch.yml:2: network.mode: expected user, none or netvm, got 'bridge'");
	expect_spec_error("a:\n  network: {is_netvm: maybe}\n",
			  "hutch.yml:2: network.is_netvm: expected true or false, got 'maybe'");
}

static void test_cidr_hash_names(void **state UNUSED)
{
	uint32_t a;
	unsigned p;
	assert_int_equal(net_parse_cidr("10.200.0.0/16", &a, &p), 0);
	assert_int_equal(a, 0x0ac80000);
	assert_int_equal(p, 16);
	assert_int_equal(net_parse_cidr("10.200.0.0", &a, &p), -EINVAL);
	assert_int_equal(net_parse_cidr("10.200.0.0/33", &a, &p), -EINVAL);
	assert_int_equal(net_parse_cidr(" 10.200.0.0/16", &a, &p), -EINVAL);
	/* deterministic, inside the range, even, and the pair's order matters */
	uint32_t s1 = net_link_hash_subnet(0x0ac80000, 16, "gw", "c1");
	assert_int_equal(s1, net_link_hash_subnet(0x0ac80000, 16, "gw", "c1"));
	assert_int_equal(s1 & 0xffff0000u, 0x0ac80000);
	assert_int_equal(s1 & 1, 0);
	assert_int_not_equal(s1, net_link_hash_subnet(0x0ac80000, 16, "c1", "gw"));
	/* "gw"+"c1" is not "gwc"+"1" */
	assert_int_not_equal(s1, net_link_hash_subnet(0x0ac80000, 16, "gwc", "1"));
	/* a /30 range has two /31s */
	uint32_t s2 = net_link_hash_subnet(0x0a000000, 30, "x", "y");
	assert_true(s2 == 0x0a000000 || s2 == 0x0a000002);

	char b[18];
	assert_string_equal(net_mac(0x0ac80503, b), "02:68:0a:c8:05:03");
	assert_string_equal(net_addr_str(0x0ac80503, b), "10.200.5.3");
	char n1[16], n2[16];
	assert_string_equal(net_ifname("client1", n1), "client1");
	net_ifname("a-very-long-client-name-1", n1);
	net_ifname("a-very-long-client-name-2", n2);
	assert_int_equal(strlen(n1), 15);
	assert_memory_equal(n1, "a-very-long", 11);
	assert_string_not_equal(n1, n2);
}

/* ---- against a store in a temp HUTCH_HOME ---- */

struct fixture {
	char home[64];
	struct store st;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	strcpy(f->home, "/tmp/hutch-test-netvm.XXXXXX");
	assert_non_null(mkdtemp(f->home));
	setenv("HUTCH_HOME", f->home, 1);
	struct hutch_error err = {0};
	assert_int_equal(store_open(&f->st, &err), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->home);
	assert_int_equal(system(cmd), 0);
	store_release(&f->st);
	unsetenv("HUTCH_HOME");
	free(f);
	return 0;
}

/* A defined VM: data/vms/NAME/spec.yml. */
static void define(struct fixture *f, const char *name, const char *network)
{
	char *dir = store_vm_dir(&f->st, name);
	assert_int_equal(mkdir_p(dir, 0700), 0);
	char *path = store_vm_file(&f->st, name, "spec.yml");
	char *yaml = xasprintf("%s:\n  source: {template: micro}\n  network: %s\n", name, network);
	assert_int_equal(write_file_atomic(path, yaml, strlen(yaml), 0600, NULL), 0);
	free(yaml);
	free(path);
	free(dir);
}

static void expect_create_error(struct fixture *f, const char *yaml, const char *msg)
{
	struct hutch_error err = {0};
	struct vm_spec *s = parse_one(yaml, &err);
	assert_non_null(s);
	assert_true(net_check_create(&f->st, s, &err) < 0);
	assert_string_equal(err.msg, msg);
	hutch_error_clear(&err);
	spec_free(s);
}

static void test_create_checks(void **state)
{
	struct fixture *f = *state;
	define(f, "plain", "{mode: user}");
	define(f, "gw", "{is_netvm: true}");
	expect_create_error(f, "c1:\n  network: {netvm: nope}\n",
			    "netvm 'nope' does not exist (create it first, with network: {is_netvm: true}) for 'c1'");
	expect_create_error(f, "c1:\n  network: {netvm: plain}\n",
			    "'plain' is not a netvm: its spec needs network: {is_netvm: true} to route for 'c1'");
	expect_create_error(f, "c1:\n  network: {netvm: c1, is_netvm: true}\n",
			    "network: netvm: 'c1' is the VM itself");
	/* a -> b -> a: b routes through a, which is being created with b as its netvm */
	define(f, "b", "{is_netvm: true, netvm: a}");
	expect_create_error(f, "a:\n  network: {netvm: b, is_netvm: true}\n",
			    "netvm cycle: 'a' -> 'b' -> ... -> 'a' leads back to 'a'");
	/* a good one */
	struct hutch_error err = {0};
	struct vm_spec *s = parse_one("c1:\n  network: {netvm: gw}\n", &err);
	assert_int_equal(net_check_create(&f->st, s, &err), 0);
	spec_free(s);
}

static void test_collision_and_plan(void **state)
{
	struct fixture *f = *state;
	define(f, "gw", "{is_netvm: true}");
	define(f, "c1", "{netvm: gw, netvm_subnet: 10.200.7.0/31}");
	define(f, "c2", "{netvm: gw}");
	expect_create_error(f, "c3:\n  network: {netvm: gw, netvm_subnet: 10.200.7.0/31}\n",
			    "links 'c1' -> 'gw' and 'c3' -> 'gw' both get 10.200.7.0/31: pin one with network: "
			    "{netvm_subnet: A.B.C.D/31}");

	struct hutch_error err = {0};
	char *path = store_vm_file(&f->st, "gw", "spec.yml");
	struct vm_spec *gw = NULL;
	assert_int_equal(spec_find_in_file(path, "gw", &gw, &err), 0);
	free(path);
	struct net_plan p;
	assert_int_equal(net_plan_make(&f->st, gw, &p, &err), 0);
	assert_false(p.has_up);
	assert_int_equal(p.n_down, 2);
	assert_string_equal(p.down[0].client, "c1");
	assert_int_equal(p.down[0].subnet, 0x0ac80700);
	assert_string_equal(p.down[1].client, "c2");
	assert_int_equal(p.down[1].subnet, net_link_hash_subnet(0x0ac80000, 16, "gw", "c2"));
	char *cl = net_cmdline(gw, &p);
	char a[16], want[160];
	snprintf(want, sizeof(want), " hutch.netvm=1 hutch.netdown=c1:10.200.7.1,c2:%s",
		 net_addr_str(p.down[1].subnet + 1, a));
	assert_string_equal(cl, want);
	free(cl);
	char **argv = net_qemu_args(NULL, &p, "device");
	assert_int_equal(strv_len(argv), 8);
	assert_string_equal(argv[3], "virtio-net-device,netdev=down0,mac=02:68:0a:c8:07:01");
	assert_non_null(strstr(argv[1], "stream,id=down0,server=on,addr.type=unix,addr.path="));
	assert_non_null(strstr(argv[1], "/gw/net-"));
	strv_free(argv);
	net_plan_release(&p);
	spec_free(gw);

	/* the client's side, and config.yml's range */
	char *cfg = xasprintf("%s/config.yml", f->st.config_dir);
	assert_int_equal(mkdir_p(f->st.config_dir, 0700), 0);
	assert_int_equal(write_file_atomic(cfg, "netvm_range: 10.9.0.0/24\n", 25, 0600, NULL), 0);
	free(cfg);
	path = store_vm_file(&f->st, "c2", "spec.yml");
	struct vm_spec *c2 = NULL;
	assert_int_equal(spec_find_in_file(path, "c2", &c2, &err), 0);
	free(path);
	assert_int_equal(net_plan_make(&f->st, c2, &p, &err), 0);
	assert_true(p.has_up);
	assert_int_equal(p.up.subnet & 0xffffff00u, 0x0a090000);
	cl = net_cmdline(c2, &p);
	snprintf(want, sizeof(want), " hutch.netup=%s", net_addr_str(p.up.subnet, a));
	assert_string_equal(cl, want);
	free(cl);
	argv = net_qemu_args(NULL, &p, "pci");
	assert_int_equal(strv_len(argv), 4);
	assert_string_equal(argv[1], "hubport,id=up0,hubid=0");
	strv_free(argv);
	net_plan_release(&p);
	spec_free(c2);
}

static void test_config_range(void **state UNUSED)
{
	struct hutch_config c;
	struct hutch_error err = {0};
	const char *good = "netvm_range: 10.1.0.0/16\nauto_forward_max: 8\n";
	assert_int_equal(config_parse_buffer(good, strlen(good), "config.yml", &c, &err), 0);
	assert_string_equal(c.netvm_range, "10.1.0.0/16");
	assert_int_equal(c.auto_forward_max, 8);
	config_release(&c);
	const char *bad = "netvm_range: 10.1.0.1/16\n";
	assert_true(config_parse_buffer(bad, strlen(bad), "config.yml", &c, &err) < 0);
	assert_string_equal(err.msg, "config.yml:1: netvm_range: expected an IPv4 network from /8 to /30 like "
				     "10.200.0.0/16, got '10.1.0.1/16'");
	hutch_error_clear(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spec_keys),
		cmocka_unit_test(test_spec_errors),
		cmocka_unit_test(test_cidr_hash_names),
		cmocka_unit_test(test_config_range),
		cmocka_unit_test_setup_teardown(test_create_checks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_collision_and_plan, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
