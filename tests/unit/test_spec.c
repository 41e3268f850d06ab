/* Unit tests for src/lib/spec.c: parsing, every error message, limits, defaults, round-trip. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>
#include <sys/stat.h>

#include "spec.h"

#ifndef SRCDIR
#define SRCDIR "."
#endif

static const char design_yaml[] =
	"banking:\n"
	"  source: {image: https://cloud.debian.org/x/debian-12-genericcloud-amd64.qcow2,\n"
	"           checksum: \"sha512:https://cloud.debian.org/x/SHA512SUMS\"}\n"
	"  memory: 4G\n"
	"  cpus: 4\n"
	"  disk: 20G\n"
	"  firmware: bios            # bios | uefi | uefi-secure\n"
	"  tpm: false\n"
	"  network: {mode: user, forward: [\"2222:22\", \"5353:53/udp\"]}\n"
	"  ssh: {user: debian, key: generate, port: 2200}\n"
	"  shares: {docs: {path: ~/bank, mount: /mnt/docs, readonly: true}, tmp: {path: /tmp}}\n"
	"  cloud_init: {packages: [firefox-esr], runcmd: [\"echo hi\"]}\n"
	"  auto_shutdown: {on_app_exit: true, idle: 300}\n"
	"  disposable: false\n"
	"  color: darkgreen\n"
	"scratch:\n"
	"  source: {template: micro}\n"
	"  memory: 512M\n"
	"empty:\n";

static int parse(const char *yaml, struct vm_spec ***specs, size_t *n, struct hutch_error *err)
{
	return spec_parse_buffer(yaml, strlen(yaml), "hutch.yml", specs, n, err);
}

/* Parses YAML that must fail; checks the code and the whole message. */
static void expect_error_len(const char *yaml, size_t len, int code, const char *msg)
{
	struct hutch_error err = {0};
	struct vm_spec **specs = NULL;
	size_t n = 0;
	int r = spec_parse_buffer(yaml, len, "hutch.yml", &specs, &n, &err);
	if (r >= 0)
		fail_msg("expected '%s', parse succeeded", msg);
	assert_int_equal(r, -code);
	assert_int_equal(err.code, code);
	assert_non_null(err.msg);
	assert_string_equal(err.msg, msg);
	assert_null(specs);
	hutch_error_clear(&err);
}

static void expect_error(const char *yaml, const char *msg) { expect_error_len(yaml, strlen(yaml), EINVAL, msg); }

static struct vm_spec *parse_one(const char *yaml)
{
	struct hutch_error err = {0};
	struct vm_spec **specs = NULL;
	size_t n = 0;
	int r = parse(yaml, &specs, &n, &err);
	if (r < 0)
		fail_msg("unexpected error: %s", err.msg);
	assert_int_equal(n, 1);
	struct vm_spec *s = specs[0];
	specs[0] = NULL;
	spec_free_all(specs, n);
	return s;
}

static void test_design_example(void **state)
{
	struct hutch_error err = {0};
	struct vm_spec **specs = NULL;
	size_t n = 0;
	assert_int_equal(parse(design_yaml, &specs, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_null(specs[3]);

	const struct vm_spec *b = specs[0];
	assert_string_equal(b->name, "banking");
	assert_string_equal(b->file, "hutch.yml");
	assert_int_equal(b->line, 1);
	assert_int_equal(b->source, SOURCE_IMAGE);
	assert_null(b->template);
	assert_string_equal(b->image, "https://cloud.debian.org/x/debian-12-genericcloud-amd64.qcow2");
	assert_string_equal(b->checksum, "sha512:https://cloud.debian.org/x/SHA512SUMS");
	assert_int_equal(b->memory, 4ULL << 30);
	assert_int_equal(b->cpus, 4);
	assert_int_equal(b->disk, 20ULL << 30);
	assert_int_equal(b->firmware, FIRMWARE_BIOS);
	assert_false(b->tpm);
	assert_int_equal(b->net_mode, NET_USER);
	assert_int_equal(strv_len(b->forward), 2);
	assert_string_equal(b->forward[0], "2222:22");
	assert_string_equal(b->forward[1], "5353:53/udp");
	assert_string_equal(b->ssh_user, "debian");
	assert_string_equal(b->ssh_key, "generate");
	assert_int_equal(b->ssh_port, 2200);
	assert_int_equal(b->n_shares, 2);
	assert_string_equal(b->shares[0].name, "docs");
	assert_string_equal(b->shares[0].path, "~/bank");
	assert_string_equal(b->shares[0].mount, "/mnt/docs");
	assert_true(b->shares[0].readonly);
	assert_string_equal(b->shares[1].name, "tmp");
	assert_null(b->shares[1].mount);
	assert_false(b->shares[1].readonly);
	assert_string_equal(b->ci_packages[0], "firefox-esr");
	assert_null(b->ci_packages[1]);
	assert_string_equal(b->ci_runcmd[0], "echo hi");
	assert_true(b->on_app_exit);
	assert_int_equal(b->idle_s, 300);
	assert_false(b->disposable);
	assert_string_equal(b->color, "darkgreen");

	const struct vm_spec *s = specs[1];
	assert_string_equal(s->name, "scratch");
	assert_int_equal(s->line, 16);
	assert_int_equal(s->source, SOURCE_TEMPLATE);
	assert_string_equal(s->template, "micro");
	assert_int_equal(s->memory, 512ULL << 20);
	assert_int_equal(s->cpus, 0);

	const struct vm_spec *e = specs[2];
	assert_string_equal(e->name, "empty");
	assert_int_equal(e->line, 19);
	assert_null(e->template);
	assert_int_equal(e->memory, 0);
	spec_free_all(specs, n);
}

static void test_block_style_and_values(void **state)
{
	struct vm_spec *s = parse_one("%YAML 1.1\n"
				      "---\n"
				      "web:\n"
				      "  kernel: /boot/vmlinuz\n"
				      "  cmdline: ''\n"
				      "  memory: 1GiB\n"
				      "  cpus: 256\n"
				      "  firmware: uefi-secure\n"
				      "  tpm: yes\n"
				      "  backend: libvirt\n"
				      "  uri: qemu:///session\n"
				      "  network:\n"
				      "    mode: netvm:sys-net\n"
				      "    forward:\n"
				      "      - 8080:80\n"
				      "      - \"65535:1/tcp\"\n"
				      "  ssh:\n"
				      "    key: /home/u/.ssh/id.pub\n"
				      "  auto_shutdown:\n"
				      "    idle: 5m\n"
				      "    on_app_exit: no\n"
				      "  disposable: True\n"
				      "  color: \"#ff0000\"\n"
				      "...\n");
	assert_string_equal(s->kernel, "/boot/vmlinuz");
	assert_string_equal(s->cmdline, "");
	assert_int_equal(s->memory, 1ULL << 30);
	assert_int_equal(s->cpus, 256);
	assert_int_equal(s->firmware, FIRMWARE_UEFI_SECURE);
	assert_true(s->tpm);
	assert_string_equal(s->backend, "libvirt");
	assert_string_equal(s->uri, "qemu:///session");
	assert_int_equal(s->net_mode, NET_NETVM);
	assert_string_equal(s->netvm, "sys-net");
	assert_string_equal(s->forward[0], "8080:80");
	assert_string_equal(s->forward[1], "65535:1/tcp");
	assert_string_equal(s->ssh_key, "/home/u/.ssh/id.pub");
	assert_int_equal(s->idle_s, 300);
	assert_false(s->on_app_exit);
	assert_true(s->disposable);
	assert_string_equal(s->color, "#ff0000");
	spec_free(s);

	s = parse_one("a: {network: {mode: none}, auto_shutdown: {idle: 2h}, memory: 67108864, firmware: uefi}\n");
	assert_int_equal(s->net_mode, NET_NONE);
	assert_null(s->netvm);
	assert_int_equal(s->idle_s, 7200);
	assert_int_equal(s->memory, 64ULL << 20);
	assert_int_equal(s->firmware, FIRMWARE_UEFI);
	spec_free(s);

	/* null values leave a key unset */
	s = parse_one("a:\n  memory:\n  source: ~\n  network: null\n  tpm:\n");
	assert_int_equal(s->memory, 0);
	assert_null(s->template);
	assert_false(s->tpm);
	spec_free(s);

	s = parse_one("a: {memory: 1T, disk: 0, auto_shutdown: {idle: 1500000ms}}\n");
	assert_int_equal(s->memory, 1ULL << 40);
	assert_int_equal(s->disk, 0);
	assert_int_equal(s->idle_s, 1500);
	assert_int_equal(s->stop_timeout_s, 0);
	spec_free(s);

	/* stop_timeout: seconds or a duration; rendered back as seconds */
	s = parse_one("a: {stop_timeout: 2m}\n");
	assert_int_equal(s->stop_timeout_s, 120);
	_cleanup_free_ char *y = spec_render_yaml(s);
	assert_non_null(strstr(y, "\n  stop_timeout: 120\n"));
	spec_free(s);
	s = parse_one("a: {stop_timeout: 45}\n");
	assert_int_equal(s->stop_timeout_s, 45);
	spec_free(s);
}

static void test_empty_inputs(void **state)
{
	static const char *const inputs[] = {"", "\n", "# only a comment\n", "---\n", "---\n...\n", "~\n"};
	for (size_t i = 0; i < ARRAY_SIZE(inputs); i++) {
		struct hutch_error err = {0};
		struct vm_spec **specs = NULL;
		size_t n = 7;
		assert_int_equal(parse(inputs[i], &specs, &n, &err), 0);
		assert_int_equal(n, 0);
		assert_non_null(specs);
		spec_free_all(specs, n);
	}
	struct vm_spec **specs = NULL;
	size_t n = 7;
	assert_int_equal(spec_parse_buffer(NULL, 0, NULL, &specs, &n, NULL), 0);
	assert_int_equal(n, 0);
	spec_free_all(specs, n);
}

static void test_error_messages(void **state)
{
	static const struct {
		const char *yaml, *msg;
	} cases[] = {
		{"a:\n  cpus: 1\n  memory: lots\n", "hutch.yml:3: memory: invalid size 'lots'"},
		{"a:\n  b: 1\n", "hutch.yml:2: b: unknown key"},
		{"a:\n  cpus: 1\n\n\n\n\n  colour: red\n", "hutch.yml:7: colour: unknown key"},
		{"a:\n  cpus: many\n", "hutch.yml:2: cpus: expected an integer, got 'many'"},
		{"a:\n  cpus: 1.5\n", "hutch.yml:2: cpus: expected an integer, got '1.5'"},
		{"a:\n  cpus: 0\n", "hutch.yml:2: cpus: must be between 1 and 256"},
		{"a:\n  cpus: 257\n", "hutch.yml:2: cpus: must be between 1 and 256"},
		{"a:\n  cpus: 99999999999999999999999\n", "hutch.yml:2: cpus: must be between 1 and 256"},
		{"a:\n  cpus: {x: 1}\n", "hutch.yml:2: cpus: expected an integer, got a mapping"},
		{"a:\n  cpus: [1]\n", "hutch.yml:2: cpus: expected an integer, got a list"},
		{"a:\n  memory: 63M\n", "hutch.yml:2: memory: must be between 64M and 1T"},
		{"a:\n  memory: 2T\n", "hutch.yml:2: memory: must be between 64M and 1T"},
		{"a:\n  memory: 99999999999T\n", "hutch.yml:2: memory: size '99999999999T' is too large"},
		{"a:\n  memory: -1G\n", "hutch.yml:2: memory: invalid size '-1G'"},
		{"a:\n  memory: [1G]\n", "hutch.yml:2: memory: expected a size, got a list"},
		{"a:\n  disk: 1.5G\n", "hutch.yml:2: disk: invalid size '1.5G'"},
		{"a:\n  firmware: efi\n", "hutch.yml:2: firmware: expected bios, uefi or uefi-secure, got 'efi'"},
		{"a:\n  tpm: maybe\n", "hutch.yml:2: tpm: expected true or false, got 'maybe'"},
		{"a:\n  tpm: 1\n", "hutch.yml:2: tpm: expected true or false, got '1'"},
		{"a:\n  disposable: {}\n", "hutch.yml:2: disposable: expected true or false, got a mapping"},
		{"a:\n  backend: xen\n", "hutch.yml:2: backend: expected qemu or libvirt, got 'xen'"},
		{"a:\n  kernel: ''\n", "hutch.yml:2: kernel: must not be empty"},
		{"a:\n  kernel: [a]\n", "hutch.yml:2: kernel: expected a string, got a list"},
		{"a:\n  color: {r: 1}\n", "hutch.yml:2: color: expected a string, got a mapping"},
		{"a:\n  network: user\n", "hutch.yml:2: network: expected a mapping, got 'user'"},
		{"a:\n  network:\n    mode: bridge\n",
		 "hutch.yml:3: network.mode: expected user, none or netvm, got 'bridge'"},
		{"a:\n  network: {mode: 'netvm:Bad'}\n", "hutch.yml:2: network.mode: invalid netvm name 'Bad'"},
		{"a:\n  network: {mode: 'netvm:'}\n", "hutch.yml:2: network.mode: invalid netvm name ''"},
		{"a:\n  network: {mod: user}\n", "hutch.yml:2: network.mod: unknown key"},
		{"a:\n  network: {forward: '80:80'}\n", "hutch.yml:2: network.forward: expected a list, got '80:80'"},
		{"a:\n  network:\n    forward:\n      - 0:80\n      - 80:0\n",
		 "hutch.yml:5: network.forward: invalid forward '80:0': expected HOST:GUEST or HOST:GUEST/tcp|udp "
		 "with ports 1-65535 (HOST 0: any free port)"},
		{"a:\n  network: {forward: ['80:65536']}\n",
		 "hutch.yml:2: network.forward: invalid forward '80:65536': expected HOST:GUEST or "
		 "HOST:GUEST/tcp|udp with ports 1-65535 (HOST 0: any free port)"},
		{"a:\n  network: {forward: ['80:80/sctp']}\n",
		 "hutch.yml:2: network.forward: invalid forward '80:80/sctp': expected HOST:GUEST or "
		 "HOST:GUEST/tcp|udp with ports 1-65535 (HOST 0: any free port)"},
		{"a:\n  network: {forward: ['8080']}\n",
		 "hutch.yml:2: network.forward: invalid forward '8080': expected HOST:GUEST or "
		 "HOST:GUEST/tcp|udp with ports 1-65535 (HOST 0: any free port)"},
		{"a:\n  network: {forward: ['+80:80']}\n",
		 "hutch.yml:2: network.forward: invalid forward '+80:80': expected HOST:GUEST or "
		 "HOST:GUEST/tcp|udp with ports 1-65535 (HOST 0: any free port)"},
		{"a:\n  network: {forward: [{a: b}]}\n",
		 "hutch.yml:2: network.forward: expected a list of strings, got a mapping"},
		{"a:\n  source: micro\n", "hutch.yml:2: source: expected a mapping, got 'micro'"},
		{"a:\n  source: {}\n", "hutch.yml:2: source: needs a template, an image or an oci image"},
		{"a:\n  source:\n    template: micro\n    image: http://x\n",
		 "hutch.yml:3: source: template, image and oci are mutually exclusive"},
		{"a:\n  source:\n    template: micro\n    checksum: sha256:abc\n",
		 "hutch.yml:4: source.checksum: only allowed with image"},
		{"a:\n  source: {image: x, checksum: md5:abc}\n",
		 "hutch.yml:2: source.checksum: expected sha256:VALUE or sha512:VALUE, got 'md5:abc'"},
		{"a:\n  source: {image: x, checksum: 'sha256:'}\n",
		 "hutch.yml:2: source.checksum: expected sha256:VALUE or sha512:VALUE, got 'sha256:'"},
		{"a:\n  source: {template: ../etc}\n", "hutch.yml:2: source.template: invalid template name '../etc'"},
		{"a:\n  source: {image: ''}\n", "hutch.yml:2: source.image: must not be empty"},
		{"a:\n  source: {url: x}\n", "hutch.yml:2: source.url: unknown key"},
		{"a:\n  ssh: {port: 0}\n", "hutch.yml:2: ssh.port: must be between 1 and 65535"},
		{"a:\n  ssh: {port: 22x}\n", "hutch.yml:2: ssh.port: expected an integer, got '22x'"},
		{"a:\n  ssh: {user: ''}\n", "hutch.yml:2: ssh.user: must not be empty"},
		{"a:\n  shares: [x]\n", "hutch.yml:2: shares: expected a mapping of share names, got a list"},
		{"a:\n  shares:\n    docs: {mount: /mnt}\n", "hutch.yml:3: shares.docs: path is required"},
		{"a:\n  shares:\n    docs:\n", "hutch.yml:3: shares.docs: path is required"},
		{"a:\n  shares:\n    docs: {path: /x, mount: mnt}\n",
		 "hutch.yml:3: shares.docs.mount: must be an absolute path, got 'mnt'"},
		{"a:\n  shares:\n    docs: {path: /x, ro: true}\n", "hutch.yml:3: shares.docs.ro: unknown key"},
		{"a:\n  shares:\n    docs: {path: /x, readonly: sure}\n",
		 "hutch.yml:3: shares.docs.readonly: expected true or false, got 'sure'"},
		{"a:\n  shares:\n    'my,share': {path: /x}\n",
		 "hutch.yml:3: shares: invalid share name 'my,share' (letters, digits, '-' and '_', at most 36)"},
		{"a:\n  shares:\n    docs: /x\n", "hutch.yml:3: shares.docs: expected a mapping, got '/x'"},
		{"a:\n  shares:\n    d: {path: /x}\n    d: {path: /y}\n", "hutch.yml:4: shares.d: duplicate key"},
		{"a:\n  cloud_init: {packages: vim}\n", "hutch.yml:2: cloud_init.packages: expected a list, got 'vim'"},
		{"a:\n  cloud_init: {packages: [vim, '']}\n",
		 "hutch.yml:2: cloud_init.packages: list items must not be empty"},
		{"a:\n  cloud_init:\n    runcmd:\n      - [ls, -l]\n",
		 "hutch.yml:4: cloud_init.runcmd: expected a list of strings, got a list"},
		{"a:\n  cloud_init: {bootcmd: [x]}\n", "hutch.yml:2: cloud_init.bootcmd: unknown key"},
		{"a:\n  auto_shutdown: {idle: soon}\n", "hutch.yml:2: auto_shutdown.idle: invalid duration 'soon'"},
		{"a:\n  auto_shutdown: {idle: -5}\n", "hutch.yml:2: auto_shutdown.idle: invalid duration '-5'"},
		{"a:\n  auto_shutdown: {idle: 1500ms}\n",
		 "hutch.yml:2: auto_shutdown.idle: must be a whole number of seconds"},
		{"a:\n  auto_shutdown: {idle: 9000h}\n",
		 "hutch.yml:2: auto_shutdown.idle: must be at most 31536000 seconds"},
		{"a:\n  stop_timeout: 0\n", "hutch.yml:2: stop_timeout: must be at least 1 second"},
		{"a:\n  stop_timeout: 2h\n", "hutch.yml:2: stop_timeout: must be at most 3600 seconds"},
		{"a:\n  stop_timeout: soon\n", "hutch.yml:2: stop_timeout: invalid duration 'soon'"},
		{"a:\n  auto_shutdown: {on_app_exit: [true]}\n",
		 "hutch.yml:2: auto_shutdown.on_app_exit: expected true or false, got a list"},
		{"a:\n  memory: 1G\n  cpus: 2\n  memory: 2G\n", "hutch.yml:4: memory: duplicate key"},
		{"a:\n  network:\n    mode: user\n    mode: none\n", "hutch.yml:4: network.mode: duplicate key"},
		{"a:\n  memory: 1G\nb: {}\na:\n  memory: 2G\n", "hutch.yml:4: duplicate VM name 'a'"},
		{"Web:\n  memory: 1G\n",
		 "hutch.yml:1: invalid VM name 'Web' (lowercase letters, digits and '-', at most 63, not starting "
		 "with '-')"},
		{"ok: {}\n\"-web\": {}\n",
		 "hutch.yml:2: invalid VM name '-web' (lowercase letters, digits and '-', at most 63, not starting "
		 "with '-')"},
		{"web_1: {}\n",
		 "hutch.yml:1: invalid VM name 'web_1' (lowercase letters, digits and '-', at most 63, not starting "
		 "with '-')"},
		{"'': {}\n",
		 "hutch.yml:1: invalid VM name '' (lowercase letters, digits and '-', at most 63, not starting "
		 "with '-')"},
		{"? [a, b]\n: {}\n", "hutch.yml:1: VM names must be strings"},
		{"a:\n  ? {x: 1}\n  : 2\n", "hutch.yml:2: keys must be strings"},
		{"- a\n- b\n", "hutch.yml:1: expected a mapping of VM names to settings"},
		{"just text\n", "hutch.yml:1: expected a mapping of VM names to settings"},
		{"a: 5\n", "hutch.yml:1: a: expected a mapping of settings, got '5'"},
		{"a:\n  - memory: 1G\n", "hutch.yml:2: a: expected a mapping of settings, got a list"},
		/* anchors, aliases, tags, documents */
		{"base: &b\n  memory: 1G\nweb: *b\n", "hutch.yml:1: anchors and aliases are not allowed"},
		{"web:\n  memory: *m\n", "hutch.yml:2: aliases are not allowed"},
		{"a:\n  memory: !!python/object:os.system 1G\n",
		 "hutch.yml:2: tags are not allowed ('tag:yaml.org,2002:python/object:os.system')"},
		{"a: !!map\n  memory: 1G\n", "hutch.yml:1: tags are not allowed ('tag:yaml.org,2002:map')"},
		{"a:\n  color: !red x\n", "hutch.yml:2: tags are not allowed ('!red')"},
		{"a: {}\n---\nb: {}\n", "hutch.yml:2: only one YAML document is allowed"},
		/* syntax and encoding */
		{"a:\n  memory: 1G\n cpus: 2\n",
		 "hutch.yml:3: invalid YAML: did not find expected key (while parsing a block mapping at line 1)"},
		{"a: {memory: 1G\n",
		 "hutch.yml:2: invalid YAML: did not find expected ',' or '}' (while parsing a flow mapping at line 1)"},
		{"a:\n  color: \"x\\qy\"\n",
		 "hutch.yml:2: invalid YAML: found unknown escape character (while parsing a quoted scalar at line 2)"},
		{"a:\n  color: \"a\\0b\"\n", "hutch.yml:2: NUL characters are not allowed"},
		{"a:\n  color: \"\\ud800\"\n",
		 "hutch.yml:2: invalid YAML: found invalid Unicode character escape code (while parsing a quoted "
		 "scalar at line 2)"},
		{"a:\n  color: red\n  cpus: 2\n  kernel: /v\xff\n",
		 "hutch.yml:4: not valid UTF-8 text (invalid leading UTF-8 octet)"},
		{"a:\n  color: caf\xc3\n", "hutch.yml:2: not valid UTF-8 text (invalid trailing UTF-8 octet)"},
		{"a:\n  color: \xed\xa0\x80\n", "hutch.yml:2: not valid UTF-8 text (invalid Unicode character)"},
		{"a:\n  color: \xc0\xaf\n", "hutch.yml:2: not valid UTF-8 text (invalid length of a UTF-8 sequence)"},
		{"\xff\xfe"
		 "a\0:\0",
		 "hutch.yml:1: not valid UTF-8 text (invalid leading UTF-8 octet)"},
		{"a:\n  color: \x1b[31m\n", "hutch.yml:2: invalid character 0x1b (control characters are not allowed)"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		print_message("case %zu: %s\n", i, cases[i].msg);
		expect_error(cases[i].yaml, cases[i].msg);
	}
}

static void test_nul_and_truncated_utf8(void **state)
{
	static const char nul[] = "a:\n  color: r\0d\n";
	expect_error_len(nul, sizeof(nul) - 1, EINVAL,
			 "hutch.yml:2: invalid character 0x00 (control characters are not allowed)");
	static const char cut[] = "a:\n\n  color: caf\xc3";
	expect_error_len(cut, sizeof(cut) - 1, EINVAL,
			 "hutch.yml:3: not valid UTF-8 text (incomplete UTF-8 octet sequence)");
}

static void test_deep_nesting(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	strbuf_adds(&sb, "a: ");
	for (int i = 0; i < 100000; i++)
		strbuf_addch(&sb, '[');
	expect_error(sb.buf, "hutch.yml:1: nesting is too deep");
	strbuf_release(&sb);
}

/* Regression: list items were appended with strv_push(), quadratic on a list near the size cap. */
static void test_long_list(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	strbuf_adds(&sb, "a:\n  cloud_init:\n    packages: [x");
	for (int i = 1; i < 300000; i++)
		strbuf_adds(&sb, ",x");
	strbuf_adds(&sb, "]\n");
	struct vm_spec *s = parse_one(sb.buf);
	assert_int_equal(strv_len(s->ci_packages), 300000);
	spec_free(s);
	strbuf_release(&sb);
}

static void test_size_cap(void **state)
{
	/* Exactly the cap is fine (a comment pads it), one byte more is not. */
	char *buf = malloc(SPEC_MAX_FILE + 2);
	assert_non_null(buf);
	static const char head[] = "a:\n  memory: 1G\n#";
	memcpy(buf, head, sizeof(head) - 1);
	memset(buf + sizeof(head) - 1, 'x', SPEC_MAX_FILE - (sizeof(head) - 1));
	buf[SPEC_MAX_FILE - 1] = '\n';
	buf[SPEC_MAX_FILE] = '\n';
	struct hutch_error err = {0};
	struct vm_spec **specs = NULL;
	size_t n = 0;
	assert_int_equal(spec_parse_buffer(buf, SPEC_MAX_FILE, "big.yml", &specs, &n, &err), 0);
	assert_int_equal(n, 1);
	spec_free_all(specs, n);
	specs = NULL;
	assert_int_equal(spec_parse_buffer(buf, SPEC_MAX_FILE + 1, "big.yml", &specs, &n, &err), -EFBIG);
	assert_int_equal(err.code, EFBIG);
	assert_string_equal(err.msg, "big.yml: larger than the limit of 1048576 bytes");
	assert_null(specs);
	hutch_error_clear(&err);

	/* The same through a file. */
	char dir[] = "/tmp/test_spec.XXXXXX";
	assert_non_null(mkdtemp(dir));
	char *path = xasprintf("%s/big.yml", dir);
	assert_int_equal(write_file_atomic(path, buf, SPEC_MAX_FILE + 1, 0644, NULL), 0);
	assert_int_equal(spec_parse_file(path, &specs, &n, &err), -EFBIG);
	assert_non_null(strstr(err.msg, "larger than the limit"));
	hutch_error_clear(&err);
	unlink(path);
	rmdir(dir);
	free(path);
	free(buf);
}

static void test_defaults(void **state)
{
	struct vm_spec *s = spec_new("x");
	assert_string_equal(s->name, "x");
	assert_null(s->template);
	spec_apply_defaults(s);
	assert_int_equal(s->memory, 512ULL << 20);
	assert_int_equal(s->cpus, 1);
	assert_int_equal(s->source, SOURCE_TEMPLATE);
	assert_string_equal(s->template, "micro");
	assert_int_equal(s->firmware, FIRMWARE_DEFAULT);
	spec_free(s);

	s = parse_one("img:\n  source: {image: /tmp/x.qcow2}\n  memory: 2G\n  cpus: 3\n");
	spec_apply_defaults(s);
	assert_int_equal(s->source, SOURCE_IMAGE);
	assert_null(s->template);
	assert_int_equal(s->firmware, FIRMWARE_BIOS);
	assert_int_equal(s->memory, 2ULL << 30);
	assert_int_equal(s->cpus, 3);
	spec_free(s);

	s = parse_one("img:\n  source: {image: /tmp/x.qcow2}\n  firmware: uefi\n");
	spec_apply_defaults(s);
	assert_int_equal(s->firmware, FIRMWARE_UEFI);
	spec_free(s);

	s = parse_one("t:\n  source: {template: other}\n");
	spec_apply_defaults(s);
	assert_string_equal(s->template, "other");
	assert_int_equal(s->firmware, FIRMWARE_DEFAULT);
	spec_free(s);

	spec_free(NULL);
	spec_free_all(NULL, 0);
	s = spec_new(NULL);
	spec_free(s);
}

static void assert_round_trip(const struct vm_spec *s)
{
	char *yaml = spec_render_yaml(s);
	struct hutch_error err = {0};
	struct vm_spec **specs = NULL;
	size_t n = 0;
	int r = spec_parse_buffer(yaml, strlen(yaml), "rendered.yml", &specs, &n, &err);
	if (r < 0)
		fail_msg("rendered YAML does not parse: %s\n%s", err.msg, yaml);
	assert_int_equal(n, 1);
	if (!spec_equal(s, specs[0]))
		fail_msg("round trip changed the spec:\n%s", yaml);
	/* and rendering is stable */
	char *again = spec_render_yaml(specs[0]);
	assert_string_equal(yaml, again);
	free(again);
	spec_free_all(specs, n);
	free(yaml);
}

/* autostart: a bool like the others, off by default, rendered back only when on, compared */
static void test_autostart(void **state)
{
	struct vm_spec *s = parse_one("a:\n  source: {template: micro}\n  autostart: true\n");
	assert_true(s->autostart);
	char *yaml = spec_render_yaml(s);
	assert_non_null(strstr(yaml, "\n  autostart: true\n"));
	free(yaml);
	assert_round_trip(s);
	struct vm_spec *off = parse_one("a:\n  source: {template: micro}\n");
	assert_false(off->autostart);
	yaml = spec_render_yaml(off);
	assert_null(strstr(yaml, "autostart"));
	free(yaml);
	assert_false(spec_equal(s, off));
	off->autostart = true;
	assert_true(spec_equal(s, off));
	spec_free(off);
	spec_free(s);
	expect_error("a:\n  autostart: sometimes\n", "hutch.yml:2: autostart: expected true or false, got 'sometimes'");
	expect_error("a:\n  autostart: [true]\n", "hutch.yml:2: autostart: expected true or false, got a list");
	expect_error("a:\n  autostrat: true\n", "hutch.yml:2: autostrat: unknown key");
}

static void test_round_trip_parsed(void **state)
{
	struct hutch_error err = {0};
	struct vm_spec **specs = NULL;
	size_t n = 0;
	assert_int_equal(parse(design_yaml, &specs, &n, &err), 0);
	for (size_t i = 0; i < n; i++) {
		assert_round_trip(specs[i]);
		spec_apply_defaults(specs[i]);
		assert_round_trip(specs[i]);
	}
	spec_free_all(specs, n);

	/* Strings that YAML would misread if they were not quoted and escaped. */
	struct vm_spec *s = parse_one(
		"odd:\n"
		"  cmdline: \"console=ttyS0 quiet: yes # not a comment\\n\\ttab \\\"q\\\" \\\\ back\"\n"
		"  kernel: \" leading and trailing \"\n"
		"  color: \"rgb( 46, 204, 113 )\"\n"
		"  uri: \"caf\\u00e9 \\u2028 \\u2029 \\x85 \\ufeff \\x7f \\x01 \\U0001F600 \\ud7ff \\ue000 \\ufffd "
		"\\ufffe\"\n"
		"  backend: qemu\n"
		"  memory: 67108865\n"
		"  disk: 3K\n"
		"  ssh: {user: 'yes', key: '~', port: 1}\n"
		"  network: {mode: 'netvm:n', forward: ['1:1/udp']}\n"
		"  shares: {A_b-1: {path: '&*!|>%@`', mount: '/[x]', readonly: yes}}\n"
		"  cloud_init: {packages: ['- x', '{a: b}'], runcmd: ['a\"b', \"c'd\", '#']}\n"
		"  auto_shutdown: {on_app_exit: true, idle: 31536000}\n"
		"  disposable: yes\n"
		"  tpm: TRUE\n");
	assert_string_equal(s->cmdline, "console=ttyS0 quiet: yes # not a comment\n\ttab \"q\" \\ back");
	assert_round_trip(s);
	spec_free(s);
}

static void test_round_trip_built(void **state)
{
	struct vm_spec *s = spec_new("built-1");
	s->source = SOURCE_IMAGE;
	s->image = xstrdup("https://example.org/a b.qcow2");
	s->checksum = xstrdup("sha256:0123");
	s->memory = (1ULL << 40);
	s->cpus = 7;
	s->disk = 5ULL << 40;
	s->firmware = FIRMWARE_UEFI;
	s->net_mode = NET_NONE;
	s->ssh_port = 65535;
	s->idle_s = 1;
	s->shares = xcalloc(2, sizeof(*s->shares));
	s->n_shares = 2;
	s->shares[0] = (struct share){xstrdup("x"), xstrdup("/a"), NULL, false, SHARE_AUTO};
	s->shares[1] = (struct share){xstrdup("y"), xstrdup("/b"), xstrdup("/c"), true, SHARE_9P};
	s->forward = strv_push(NULL, xstrdup("1:2"));
	assert_round_trip(s);

	/* spec_equal notices each change */
	struct vm_spec *t = spec_new("built-1");
	assert_false(spec_equal(s, t));
	assert_true(spec_equal(s, s));
	assert_false(spec_equal(s, NULL));
	spec_free(t);
	spec_free(s);

	s = spec_new("bare");
	char *yaml = spec_render_yaml(s);
	assert_string_equal(yaml, "bare:\n");
	free(yaml);
	assert_round_trip(s);
	spec_free(s);
}

static void test_render_golden(void **state)
{
	struct hutch_error err = {0};
	char *in = NULL, *want = NULL;
	size_t in_len, want_len;
	if (read_file(SRCDIR "/tests/golden/spec/design.yml", SPEC_MAX_FILE, &in, &in_len, &err) < 0)
		fail_msg("%s", err.msg);
	if (read_file(SRCDIR "/tests/golden/spec/design.rendered.yml", SPEC_MAX_FILE, &want, &want_len, &err) < 0)
		fail_msg("%s", err.msg);
	struct vm_spec **specs = NULL;
	size_t n = 0;
	assert_int_equal(spec_parse_buffer(in, in_len, "design.yml", &specs, &n, &err), 0);
	struct strbuf sb = STRBUF_INIT;
	for (size_t i = 0; i < n; i++) {
		char *y = spec_render_yaml(specs[i]);
		strbuf_adds(&sb, y);
		free(y);
	}
	assert_string_equal(strbuf_str(&sb), want);
	strbuf_release(&sb);
	spec_free_all(specs, n);
	free(in);
	free(want);
}

static void test_find_in_file(void **state)
{
	char dir[] = "/tmp/test_spec.XXXXXX";
	assert_non_null(mkdtemp(dir));
	char *path = xasprintf("%s/hutch.yml", dir);
	assert_int_equal(write_file_atomic(path, design_yaml, strlen(design_yaml), 0644, NULL), 0);

	struct hutch_error err = {0};
	struct vm_spec *s = NULL;
	assert_int_equal(spec_find_in_file(path, "scratch", &s, &err), 0);
	assert_string_equal(s->name, "scratch");
	assert_string_equal(s->file, path);
	assert_int_equal(s->line, 16);
	spec_free(s);

	s = NULL;
	assert_int_equal(spec_find_in_file(path, "nope", &s, &err), -ENOENT);
	assert_null(s);
	assert_int_equal(err.code, ENOENT);
	char *want = xasprintf("%s: no VM named 'nope'", path);
	assert_string_equal(err.msg, want);
	free(want);
	hutch_error_clear(&err);

	/* parse errors carry the path as FILE */
	static const char bad[] = "a:\n  cpus: x\n";
	assert_int_equal(write_file_atomic(path, bad, strlen(bad), 0644, NULL), 0);
	assert_int_equal(spec_find_in_file(path, "a", &s, &err), -EINVAL);
	want = xasprintf("%s:2: cpus: expected an integer, got 'x'", path);
	assert_string_equal(err.msg, want);
	free(want);
	hutch_error_clear(&err);

	unlink(path);
	assert_true(spec_find_in_file(path, "a", &s, &err) < 0);
	assert_int_equal(err.code, ENOENT);
	hutch_error_clear(&err);
	rmdir(dir);
	free(path);
}

static void test_valid_name(void **state)
{
	assert_true(spec_valid_name("a"));
	assert_true(spec_valid_name("0"));
	assert_true(spec_valid_name("web-1"));
	assert_true(spec_valid_name("a-"));
	char n63[64], n64[65];
	memset(n63, 'a', 63), n63[63] = 0;
	memset(n64, 'a', 64), n64[64] = 0;
	assert_true(spec_valid_name(n63));
	assert_false(spec_valid_name(n64));
	assert_false(spec_valid_name(""));
	assert_false(spec_valid_name(NULL));
	assert_false(spec_valid_name("-a"));
	assert_false(spec_valid_name("A"));
	assert_false(spec_valid_name("a.b"));
	assert_false(spec_valid_name("a/b"));
	assert_false(spec_valid_name("caf\xc3\xa9"));
}

static void test_long_values_quoted_short(void **state)
{
	/* Untrusted text is cut and sanitized in messages. */
	struct strbuf sb = STRBUF_INIT;
	strbuf_adds(&sb, "a:\n  memory: \"");
	for (int i = 0; i < 200; i++)
		strbuf_addch(&sb, 'z');
	strbuf_adds(&sb, "\"\n");
	expect_error(sb.buf, "hutch.yml:2: memory: invalid size "
			     "'zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz...'");
	strbuf_release(&sb);
	expect_error("a:\n  memory: \"\\e[31m\\n\"\n", "hutch.yml:2: memory: invalid size '?[31m?'");
	expect_error("a:\n  \"col\\tor\": x\n", "hutch.yml:2: col?or: unknown key");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_design_example),
		cmocka_unit_test(test_block_style_and_values),
		cmocka_unit_test(test_empty_inputs),
		cmocka_unit_test(test_error_messages),
		cmocka_unit_test(test_nul_and_truncated_utf8),
		cmocka_unit_test(test_deep_nesting),
		cmocka_unit_test(test_long_list),
		cmocka_unit_test(test_size_cap),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_round_trip_parsed),
		cmocka_unit_test(test_round_trip_built),
		cmocka_unit_test(test_autostart),
		cmocka_unit_test(test_render_golden),
		cmocka_unit_test(test_find_in_file),
		cmocka_unit_test(test_valid_name),
		cmocka_unit_test(test_long_values_quoted_short),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
