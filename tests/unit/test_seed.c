/* seed: cloud-init rendering against golden files (and parsed back with libyaml), the cidata ISO
 * read back with libarchive and by its volume descriptors, SMBIOS type 11, SSH key modes with the
 * real ssh-keygen, instance ids. Regenerate the goldens with HUTCH_UPDATE_GOLDEN=1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <yaml.h>

#include "seed.h"
#include "spec.h"

#define GOLDEN_DIR SRCDIR "/tests/golden/seed/"
#include "golden.h"

#define KEY_ED25519 "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAdkemUZQvByutmA0sckIqZ/mlfI1jikAbaQe0RZ/vN0 alice@laptop"
#define KEY_ECDSA                                                                                             \
	"ecdsa-sha2-nistp256 "                                                                                \
	"AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBFYsqh/uT5Zs/Skw9jYJoGtGEb6gNsSMS46JENsnxv2zc9/" \
	"YtX3ifB0qXWOFuIzdsdlRpYtVtVTFL+mjLKvZRwE= bob"

/* ---- helpers ---- */

static char *make_tmpdir(void)
{
	char *d = xstrdup("/tmp/hutch-test-seed.XXXXXX");
	assert_non_null(mkdtemp(d));
	return d;
}

static void write_text(const char *path, const char *text, mode_t mode)
{
	struct hutch_error err = {0};
	if (write_file_atomic(path, text, strlen(text), mode, &err) < 0)
		fail_msg("%s", err.msg);
}

static bool have_program(const char *name)
{
	_cleanup_free_ char *cmd = xasprintf("command -v %s >/dev/null 2>&1", name);
	return system(cmd) == 0;
}

/* A parsed YAML document, for checking what cloud-init (PyYAML) will actually see. */
struct ydoc {
	yaml_document_t doc;
	yaml_node_t *root;
};

static void ydoc_load(struct ydoc *y, const char *text)
{
	yaml_parser_t p;
	assert_true(yaml_parser_initialize(&p));
	yaml_parser_set_input_string(&p, (const unsigned char *)text, strlen(text));
	if (!yaml_parser_load(&p, &y->doc))
		fail_msg("output is not YAML: %s at line %zu", p.problem, p.problem_mark.line + 1);
	yaml_parser_delete(&p);
	y->root = yaml_document_get_root_node(&y->doc);
	assert_non_null(y->root);
	assert_int_equal(y->root->type, YAML_MAPPING_NODE);
}

static void ydoc_free(struct ydoc *y) { yaml_document_delete(&y->doc); }

static yaml_node_t *yget(struct ydoc *y, yaml_node_t *map, const char *key)
{
	assert_int_equal(map->type, YAML_MAPPING_NODE);
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(&y->doc, p->key);
		if (k->type == YAML_SCALAR_NODE && strcmp((char *)k->data.scalar.value, key) == 0)
			return yaml_document_get_node(&y->doc, p->value);
	}
	return NULL;
}

static size_t yseq_len(yaml_node_t *seq)
{
	assert_non_null(seq);
	assert_int_equal(seq->type, YAML_SEQUENCE_NODE);
	return (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
}

static yaml_node_t *yseq_at(struct ydoc *y, yaml_node_t *seq, size_t i)
{
	assert_true(i < yseq_len(seq));
	return yaml_document_get_node(&y->doc, seq->data.sequence.items.start[i]);
}

static const char *yscalar(yaml_node_t *n)
{
	assert_non_null(n);
	assert_int_equal(n->type, YAML_SCALAR_NODE);
	return (const char *)n->data.scalar.value;
}

/* Runs a real checker on TEXT: `sh -n` for the agent script, `cloud-init schema` for user-data. */
static void check_with(const char *argv_fmt, const char *text)
{
	_cleanup_free_ char *dir = make_tmpdir();
	_cleanup_free_ char *file = xasprintf("%s/input", dir);
	write_text(file, text, 0644);
	_cleanup_free_ char *cmd = xasprintf(argv_fmt, file);
	_cleanup_free_ char *full = xasprintf("%s >%s/out 2>&1", cmd, dir);
	int status = system(full);
	if (status != 0) {
		_cleanup_free_ char *out = xasprintf("%s/out", dir);
		_cleanup_free_ char *o = NULL;
		read_file(out, 1 << 16, &o, NULL, NULL);
		fail_msg("%s failed:\n%s", cmd, o ? o : "");
	}
	rm_rf(dir);
}

static void check_cloud_config(const char *user_data)
{
	if (have_program("cloud-init"))
		check_with("cloud-init schema --config-file %s", user_data);
}

static struct vm_spec *cloud_spec(void)
{
	struct vm_spec *s = spec_new("web");
	s->source = SOURCE_IMAGE;
	s->image = xstrdup("https://example.org/debian-12.qcow2");
	return s;
}

static struct seed_input input_for(const struct vm_spec *s, char **keys)
{
	return (struct seed_input){
		.spec = s,
		.hostname = s->name,
		.instance_id = "hutch-0123456789abcdef",
		.default_user = "alice",
		.authorized_keys = keys,
	};
}

static void render_ok(const struct seed_input *in, char **ud, char **md)
{
	struct hutch_error err = {0};
	char *nc = (char *)1;
	if (seed_render(in, ud, md, &nc, &err) < 0)
		fail_msg("seed_render: %s", err.msg);
	assert_null(nc);
	assert_true(strncmp(*ud, "#cloud-config\n", 14) == 0);
}

/* ---- rendering ---- */

static void test_render_created_user(void **state)
{
	(void)state;
	_cleanup_(spec_freep) struct vm_spec *s = cloud_spec();
	s->ci_packages = strv_push(s->ci_packages, xstrdup("git"));
	s->ci_packages = strv_push(s->ci_packages, xstrdup("curl"));
	s->ci_runcmd = strv_push(s->ci_runcmd, xstrdup("systemctl enable --now nginx"));
	char *keys[] = {(char *)KEY_ED25519, (char *)KEY_ECDSA, NULL};
	struct seed_input in = input_for(s, keys);
	in.agent_path = "/usr/libexec/hutch/hutch-agent";
	const struct seed_file files[] = {{"/etc/motd", "managed by hutch\n", "0644"}};
	in.write_files = files;
	in.n_write_files = 1;
	_cleanup_free_ char *ud = NULL, *md = NULL;
	render_ok(&in, &ud, &md);
	check_golden("created-user.user-data", ud);
	check_golden("created-user.meta-data", md);
	check_cloud_config(ud);

	struct ydoc y;
	ydoc_load(&y, ud);
	assert_string_equal(yscalar(yget(&y, y.root, "hostname")), "web");
	yaml_node_t *users = yget(&y, y.root, "users");
	assert_int_equal(yseq_len(users), 1);
	yaml_node_t *u = yseq_at(&y, users, 0);
	assert_string_equal(yscalar(yget(&y, u, "name")), "alice");
	assert_string_equal(yscalar(yget(&y, u, "sudo")), "ALL=(ALL) NOPASSWD:ALL");
	assert_string_equal(yscalar(yget(&y, u, "shell")), "/bin/bash");
	assert_string_equal(yscalar(yget(&y, u, "lock_passwd")), "true");
	yaml_node_t *k = yget(&y, u, "ssh_authorized_keys");
	assert_int_equal(yseq_len(k), 2);
	assert_string_equal(yscalar(yseq_at(&y, k, 1)), KEY_ECDSA);
	assert_null(yget(&y, y.root, "ssh_authorized_keys"));
	assert_int_equal(yseq_len(yget(&y, y.root, "packages")), 2);
	yaml_node_t *boot = yget(&y, y.root, "bootcmd");
	const char *script = yscalar(yseq_at(&y, boot, 0));
	assert_non_null(strstr(script, "mount -o ro LABEL=cidata"));
	assert_non_null(strstr(script, SEED_AGENT_GUEST_PATH));
	assert_non_null(strstr(script, "/etc/systemd/system/hutch-agent.service"));
	assert_non_null(strstr(script, "systemctl enable --no-reload hutch-agent.service"));
	assert_non_null(strstr(script, "systemctl restart --no-block hutch-agent.service"));
	assert_null(strstr(script, "--now"));
	check_with("sh -n %s", script);
	yaml_node_t *wf = yseq_at(&y, yget(&y, y.root, "write_files"), 0);
	assert_string_equal(yscalar(yget(&y, wf, "content")), "managed by hutch\n");
	ydoc_free(&y);

	ydoc_load(&y, md);
	assert_string_equal(yscalar(yget(&y, y.root, "instance-id")), "hutch-0123456789abcdef");
	assert_string_equal(yscalar(yget(&y, y.root, "local-hostname")), "web");
	ydoc_free(&y);
}

static void test_render_default_user(void **state)
{
	(void)state;
	_cleanup_(spec_freep) struct vm_spec *s = cloud_spec();
	s->ssh_user = xstrdup("debian");
	char *keys[] = {(char *)KEY_ED25519, NULL};
	struct seed_input in = input_for(s, keys);
	_cleanup_free_ char *ud = NULL, *md = NULL;
	render_ok(&in, &ud, &md);
	check_golden("default-user.user-data", ud);
	check_cloud_config(ud);

	struct ydoc y;
	ydoc_load(&y, ud);
	yaml_node_t *users = yget(&y, y.root, "users");
	assert_int_equal(yseq_len(users), 1);
	assert_string_equal(yscalar(yseq_at(&y, users, 0)), "default");
	assert_string_equal(yscalar(yseq_at(&y, yget(&y, y.root, "ssh_authorized_keys"), 0)), KEY_ED25519);
	assert_null(yget(&y, y.root, "bootcmd")); /* no agent_path */
	assert_null(yget(&y, y.root, "packages"));
	assert_null(yget(&y, y.root, "resize_rootfs")); /* cloud-init grows an image VM's root */
	ydoc_free(&y);

	/* a bootc image's VM: hutch's agent grows the root (capped at root_size), cloud-init must not */
	s->source = SOURCE_OCI;
	_cleanup_free_ char *oud = NULL, *omd = NULL;
	render_ok(&in, &oud, &omd);
	check_cloud_config(oud);
	ydoc_load(&y, oud);
	assert_string_equal(yscalar(yget(&y, y.root, "resize_rootfs")), "false");
	assert_string_equal(yscalar(yget(&y, yget(&y, y.root, "growpart"), "mode")), "off");
	ydoc_free(&y);

	for (const char *const *u = (const char *const[]){"ubuntu", "fedora", "arch", "cloud-user", "ec2-user", NULL};
	     *u; u++)
		assert_true(seed_is_default_user(*u));
	assert_false(seed_is_default_user("alice"));
	assert_false(seed_is_default_user(NULL));
}

static void test_render_login_user(void **state)
{
	(void)state;
	_cleanup_(spec_freep) struct vm_spec *s = cloud_spec();
	assert_string_equal(seed_login_user(s, "alice"), "alice");
	/* root and names useradd may refuse fall back, as Lima falls back to "lima". */
	assert_string_equal(seed_login_user(s, "root"), "hutch");
	assert_string_equal(seed_login_user(s, "Alice Smith"), "hutch");
	assert_string_equal(seed_login_user(s, NULL), "hutch");
	s->ssh_user = xstrdup("bob");
	assert_string_equal(seed_login_user(s, "alice"), "bob");

	/* ssh.user: root keeps the default user and lets root in with the same keys. */
	free(s->ssh_user);
	s->ssh_user = xstrdup("root");
	char *keys[] = {(char *)KEY_ED25519, NULL};
	struct seed_input in = input_for(s, keys);
	_cleanup_free_ char *ud = NULL, *md = NULL;
	render_ok(&in, &ud, &md);
	check_golden("root-user.user-data", ud);
	check_cloud_config(ud);
	struct ydoc y;
	ydoc_load(&y, ud);
	assert_string_equal(yscalar(yget(&y, y.root, "disable_root")), "false");
	assert_string_equal(yscalar(yseq_at(&y, yget(&y, y.root, "users"), 0)), "default");
	ydoc_free(&y);
}

/* Values that would add keys or list items if they were pasted into YAML unquoted. */
static const char *const hostile[] = {
	"a\n- rm -rf /",
	"\"; echo pwned",
	"x: y",
	"# not a comment",
	"- item",
	"tab\there \\ backslash \\n literal",
	"|\n  block",
	"&anchor *alias !!python/object:os.system",
	"{flow: map}",
	"...\n---\nruncmd: [evil]",
	"unicode: h\xc3\xa9llo \xe2\x80\xa8 line-separator \xc2\x85 nel",
	"\x1b[31m control",
};

static void test_render_injection(void **state)
{
	(void)state;
	_cleanup_(spec_freep) struct vm_spec *s = cloud_spec();
	for (size_t i = 0; i < ARRAY_SIZE(hostile); i++)
		s->ci_runcmd = strv_push(s->ci_runcmd, xstrdup(hostile[i]));
	s->ssh_user = xstrdup("bob");
	char *keys[] = {(char *)KEY_ED25519, NULL};
	struct seed_input in = input_for(s, keys);
	in.instance_id = "id: \"x\" # local-hostname: evil";
	const struct seed_file files[] = {{"/etc/x: y", "line1\n- path: /etc/shadow\n", NULL}};
	in.write_files = files;
	in.n_write_files = 1;
	_cleanup_free_ char *ud = NULL, *md = NULL;
	render_ok(&in, &ud, &md);
	check_golden("injection.user-data", ud);
	check_cloud_config(ud);

	struct ydoc y;
	ydoc_load(&y, ud);
	yaml_node_t *runcmd = yget(&y, y.root, "runcmd");
	assert_int_equal(yseq_len(runcmd), ARRAY_SIZE(hostile));
	for (size_t i = 0; i < ARRAY_SIZE(hostile); i++)
		assert_string_equal(yscalar(yseq_at(&y, runcmd, i)), hostile[i]);
	/* Exactly the keys we wrote, nothing smuggled in. */
	assert_int_equal(y.root->data.mapping.pairs.top - y.root->data.mapping.pairs.start, 5);
	yaml_node_t *wf = yget(&y, y.root, "write_files");
	assert_int_equal(yseq_len(wf), 1);
	assert_string_equal(yscalar(yget(&y, yseq_at(&y, wf, 0), "path")), "/etc/x: y");
	ydoc_free(&y);

	ydoc_load(&y, md);
	assert_int_equal(y.root->data.mapping.pairs.top - y.root->data.mapping.pairs.start, 2);
	assert_string_equal(yscalar(yget(&y, y.root, "instance-id")), in.instance_id);
	assert_string_equal(yscalar(yget(&y, y.root, "local-hostname")), "web");
	ydoc_free(&y);
}

static void expect_render_error(const struct seed_input *in, const char *needle)
{
	struct hutch_error err = {0};
	char *ud = (char *)1, *md = (char *)1;
	assert_int_equal(seed_render(in, &ud, &md, NULL, &err), -EINVAL);
	assert_ptr_equal(ud, (char *)1); /* out-parameters untouched on failure */
	assert_ptr_equal(md, (char *)1);
	if (!strstr(err.msg, needle))
		fail_msg("error '%s' does not mention '%s'", err.msg, needle);
	hutch_error_clear(&err);
}

static void test_render_rejects(void **state)
{
	(void)state;
	_cleanup_(spec_freep) struct vm_spec *s = cloud_spec();
	char *keys[] = {(char *)KEY_ED25519, NULL};
	struct seed_input in = input_for(s, keys);

	s->ssh_user = xstrdup("bob\nroot");
	expect_render_error(&in, "not a valid user name");
	free(s->ssh_user);
	s->ssh_user = NULL;

	in.instance_id = "x\nlocal-hostname: evil";
	expect_render_error(&in, "instance-id");
	in.instance_id = "hutch-0123456789abcdef";

	in.hostname = "bad host";
	expect_render_error(&in, "not a valid host name");
	in.hostname = "web";

	char *bad_keys[] = {(char *)KEY_ED25519 "\n" KEY_ECDSA, NULL};
	in.authorized_keys = bad_keys;
	expect_render_error(&in, "authorized key 1");
	in.authorized_keys = keys;

	s->ci_packages = strv_push(s->ci_packages, xstrdup("-oAPT::Get::AllowUnauthenticated=1"));
	expect_render_error(&in, "cloud_init.packages");
	strv_free(s->ci_packages);
	s->ci_packages = NULL;

	s->ci_runcmd = strv_push(s->ci_runcmd, xstrdup("echo \xff\xfe"));
	expect_render_error(&in, "runcmd");
}

/* ---- ISO ---- */

struct iso_entry {
	char name[64];
	mode_t perm;
	char *data;
	size_t len;
};

static size_t iso_read(const char *path, struct iso_entry *out, size_t max)
{
	struct archive *a = archive_read_new();
	archive_read_support_format_iso9660(a);
	if (archive_read_open_filename(a, path, 10240) != ARCHIVE_OK)
		fail_msg("open %s: %s", path, archive_error_string(a));
	size_t n = 0;
	struct archive_entry *e;
	while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
		if (archive_entry_filetype(e) != AE_IFREG)
			continue;
		assert_true(n < max);
		snprintf(out[n].name, sizeof(out[n].name), "%s", archive_entry_pathname(e));
		out[n].perm = archive_entry_perm(e);
		out[n].len = (size_t)archive_entry_size(e);
		out[n].data = xmalloc(out[n].len + 1);
		assert_int_equal(archive_read_data(a, out[n].data, out[n].len), (ssize_t)out[n].len);
		out[n].data[out[n].len] = 0;
		n++;
	}
	archive_read_free(a);
	return n;
}

static struct iso_entry *iso_find(struct iso_entry *es, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(es[i].name, name) == 0)
			return &es[i];
	return NULL;
}

static void iso_entries_free(struct iso_entry *es, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(es[i].data);
}

/* The volume ids straight from the descriptors: the primary one (d-characters, so upper case) and
 * Joliet's (UCS-2BE, case kept). NoCloud accepts both spellings. */
static void iso_labels(const char *path, char pvd[33], char joliet[17])
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	pvd[0] = joliet[0] = 0;
	for (int sector = 16; sector < 32; sector++) {
		unsigned char d[2048];
		assert_int_equal(pread(fd, d, sizeof(d), (off_t)sector * 2048), (ssize_t)sizeof(d));
		assert_memory_equal(d + 1, "CD001", 5);
		if (d[0] == 255)
			break;
		if (d[0] == 1) {
			memcpy(pvd, d + 40, 32);
			pvd[32] = 0;
			for (int i = 31; i >= 0 && pvd[i] == ' '; i--)
				pvd[i] = 0;
		} else if (d[0] == 2 && d[88] == '%' && d[89] == '/') {
			int j = 0;
			for (int i = 0; i < 32 && j < 16; i += 2)
				if (d[40 + i] == 0 && d[41 + i] != ' ')
					joliet[j++] = (char)d[41 + i];
			joliet[j] = 0;
		}
	}
}

static void test_iso_roundtrip(void **state)
{
	(void)state;
	_cleanup_free_ char *dir = make_tmpdir();
	_cleanup_free_ char *agent = xasprintf("%s/hutch-agent-bin", dir);
	_cleanup_free_ char *iso = xasprintf("%s/seed.iso", dir);
	/* A binary payload bigger than one copy buffer, with NULs in it. */
	size_t agent_len = 200000;
	_cleanup_free_ char *blob = xmalloc(agent_len);
	for (size_t i = 0; i < agent_len; i++)
		blob[i] = (char)(i * 7 + (i >> 8));
	struct hutch_error err = {0};
	if (write_file_atomic(agent, blob, agent_len, 0755, &err) < 0)
		fail_msg("%s", err.msg);

	_cleanup_(spec_freep) struct vm_spec *s = cloud_spec();
	char *keys[] = {(char *)KEY_ED25519, NULL};
	struct seed_input in = input_for(s, keys);
	in.agent_path = agent;
	_cleanup_free_ char *ud = NULL, *md = NULL;
	render_ok(&in, &ud, &md);
	const char *netcfg = "version: 2\nethernets: {}\n";
	if (seed_write_iso(iso, ud, md, netcfg, agent, NULL, &err) < 0)
		fail_msg("seed_write_iso: %s", err.msg);

	struct stat st;
	assert_int_equal(stat(iso, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600); /* it may carry the private host key */
	assert_int_equal(st.st_size % 2048, 0);

	struct iso_entry es[8];
	size_t n = iso_read(iso, es, ARRAY_SIZE(es));
	assert_int_equal(n, 5);
	struct iso_entry *e = iso_find(es, n, "user-data");
	assert_non_null(e);
	assert_string_equal(e->data, ud);
	assert_non_null(e = iso_find(es, n, "meta-data"));
	assert_string_equal(e->data, md);
	assert_non_null(e = iso_find(es, n, "network-config"));
	assert_string_equal(e->data, netcfg);
	assert_non_null(e = iso_find(es, n, "hutch-agent"));
	assert_int_equal(e->perm, 0755);
	assert_int_equal(e->len, agent_len);
	assert_memory_equal(e->data, blob, agent_len);
	assert_non_null(e = iso_find(es, n, "hutch-agent.service"));
	assert_int_equal(e->perm, 0644);
	assert_string_equal(e->data, seed_agent_unit_default);
	assert_non_null(strstr(e->data, "ExecStart=" SEED_AGENT_GUEST_PATH " --service"));
	iso_entries_free(es, n);

	char pvd[33], joliet[17];
	iso_labels(iso, pvd, joliet);
	assert_string_equal(pvd, "CIDATA");
	assert_string_equal(joliet, "cidata");

	if (have_program("blkid")) {
		_cleanup_free_ char *cmd = xasprintf("blkid -p -o value -s LABEL '%s'", iso);
		FILE *p = popen(cmd, "r");
		char label[64] = "";
		assert_non_null(p);
		if (!fgets(label, sizeof(label), p))
			label[0] = 0;
		pclose(p);
		label[strcspn(label, "\n")] = 0;
		assert_true(strcasecmp(label, "cidata") == 0);
	}

	/* Rewriting replaces the whole seed, and leaves no temp file behind. */
	if (seed_write_iso(iso, "#cloud-config\n", md, NULL, NULL, NULL, &err) < 0)
		fail_msg("seed_write_iso: %s", err.msg);
	n = iso_read(iso, es, ARRAY_SIZE(es));
	assert_int_equal(n, 2);
	assert_string_equal(iso_find(es, n, "user-data")->data, "#cloud-config\n");
	iso_entries_free(es, n);
	DIR *d = opendir(dir);
	int count = 0;
	for (struct dirent *de; (de = readdir(d));)
		count += de->d_name[0] != '.';
	closedir(d);
	assert_int_equal(count, 2); /* the agent and seed.iso */
	rm_rf(dir);
}

/* A VM on netvm links: cloud-init's network set-up is off (the agent sets the links up), and a
 * netvm's seed carries nft with its libraries under hutch-nft/, which the installer copies. */
static void test_netvm_seed(void **state)
{
	(void)state;
	_cleanup_(spec_freep) struct vm_spec *s = cloud_spec();
	s->net_mode = NET_NETVM;
	s->netvm = xstrdup("gw");
	s->is_netvm = true;
	struct seed_input in = input_for(s, NULL);
	in.agent_path = "/usr/libexec/hutch/hutch-agent";
	_cleanup_free_ char *ud = NULL, *md = NULL, *nc = NULL;
	struct hutch_error err = {0};
	if (seed_render(&in, &ud, &md, &nc, &err) < 0)
		fail_msg("seed_render: %s", err.msg);
	assert_non_null(nc);
	assert_string_equal(nc, "network:\n  config: disabled\n");
	assert_non_null(strstr(ud, "/usr/lib/hutch-nft/"));

	_cleanup_free_ char *dir = make_tmpdir();
	_cleanup_free_ char *iso = xasprintf("%s/seed.iso", dir);
	_cleanup_free_ char *lib = xasprintf("%s/libfake.so.1", dir);
	if (write_file_atomic(lib, "ELF?", 4, 0644, &err) < 0)
		fail_msg("%s", err.msg);
	char *files[] = {lib, NULL};
	if (seed_write_iso_nft(iso, ud, md, nc, NULL, NULL, files, &err) < 0)
		fail_msg("seed_write_iso_nft: %s", err.msg);
	struct iso_entry es[8];
	size_t n = iso_read(iso, es, ARRAY_SIZE(es));
	struct iso_entry *e = iso_find(es, n, SEED_NFT_DIR "/libfake.so.1");
	assert_non_null(e);
	assert_int_equal(e->len, 4);
	assert_memory_equal(e->data, "ELF?", 4);
	assert_string_equal(iso_find(es, n, "network-config")->data, nc);
	iso_entries_free(es, n);
	rm_rf(dir);
}

static void test_iso_errors(void **state)
{
	(void)state;
	_cleanup_free_ char *dir = make_tmpdir();
	_cleanup_free_ char *iso = xasprintf("%s/seed.iso", dir);
	_cleanup_free_ char *agent = xasprintf("%s/agent", dir);
	struct hutch_error err = {0};

	assert_true(seed_write_iso(iso, "#cloud-config\n", "instance-id: x\n", NULL, "/nonexistent/agent", NULL, &err) <
		    0);
	assert_non_null(strstr(err.msg, "/nonexistent/agent"));
	assert_int_equal(access(iso, F_OK), -1);

	/* A full disk, simulated with RLIMIT_FSIZE (no root needed): the write fails with EFBIG just
	 * as it would with ENOSPC, and nothing is left under the final name or beside it. */
	size_t big = 4 << 20;
	_cleanup_free_ char *blob = xcalloc(1, big);
	if (write_file_atomic(agent, blob, big, 0755, &err) < 0)
		fail_msg("%s", err.msg);
	struct rlimit old, lim;
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 1 << 20;
	void (*oldsig)(int) = signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	int r = seed_write_iso(iso, "#cloud-config\n", "instance-id: x\n", NULL, agent, NULL, &err);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, oldsig);
	assert_true(r < 0);
	assert_non_null(strstr(err.msg, "cannot write seed"));
	assert_int_equal(access(iso, F_OK), -1);
	DIR *d = opendir(dir);
	for (struct dirent *de; (de = readdir(d));)
		if (strstr(de->d_name, "seed.iso"))
			fail_msg("left behind: %s", de->d_name);
	closedir(d);
	hutch_error_clear(&err);
	rm_rf(dir);
}

/* ---- SMBIOS ---- */

static void test_smbios(void **state)
{
	(void)state;
	char *keys[] = {(char *)KEY_ED25519, (char *)KEY_ECDSA, NULL};
	_cleanup_free_ char *arg = seed_smbios_credential(keys);
	const char *prefix = "type=11,value=io.systemd.credential.binary:ssh.authorized_keys.root=";
	assert_non_null(arg);
	assert_true(strncmp(arg, prefix, strlen(prefix)) == 0);
	const char *b64 = arg + strlen(prefix);
	assert_null(strchr(b64, ','));
	unsigned char dec[1024];
	int n = EVP_DecodeBlock(dec, (const unsigned char *)b64, (int)strlen(b64));
	assert_true(n > 0);
	size_t pad = strlen(b64) > 0 && b64[strlen(b64) - 1] == '=' ? (b64[strlen(b64) - 2] == '=' ? 2 : 1) : 0;
	const char *want = KEY_ED25519 "\n" KEY_ECDSA "\n";
	assert_int_equal((size_t)n - pad, strlen(want));
	assert_memory_equal(dec, want, strlen(want));

	char *one[] = {(char *)"ssh-ed25519 AAAA x", NULL};
	_cleanup_free_ char *arg1 = seed_smbios_credential(one);
	/* base64("ssh-ed25519 AAAA x\n") */
	assert_string_equal(arg1, "type=11,value=io.systemd.credential.binary:ssh.authorized_keys.root="
				  "c3NoLWVkMjU1MTkgQUFBQSB4Cg==");

	char *none[] = {NULL};
	assert_null(seed_smbios_credential(none));
	assert_null(seed_smbios_credential(NULL));
}

/* ---- keys ---- */

static void test_check_pubkey(void **state)
{
	(void)state;
	struct hutch_error err = {0};
	assert_int_equal(seed_check_pubkey(KEY_ED25519, "k", &err), 0);
	assert_int_equal(seed_check_pubkey(KEY_ECDSA, "k", &err), 0);
	assert_int_equal(
		seed_check_pubkey("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAdkemUZQvByutmA0sckIqZ/mlfI1jikAbaQe0RZ/vN0",
				  "k", &err),
		0);
	static const char *const bad[] = {
		"",
		"ssh-ed25519",
		"ssh-ed25519 ",
		"ssh-ed25519 !!!!",
		"ssh-dss AAAAB3NzaC1kc3MAAACBAP",
		("from=\"10.0.0.1\" " KEY_ED25519),
		/* the ed25519 blob under the wrong type */
		"ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIAdkemUZQvByutmA0sckIqZ/mlfI1jikAbaQe0RZ/vN0",
		"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAdkemUZQvByutmA0sckIqZ/mlfI1jikAbaQe0RZ/vN0 a\x1b[2Jb",
		"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAdkemUZQvByutmA0sckIqZ/mlfI1jikAbaQe0RZ/vN0x",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		if (seed_check_pubkey(bad[i], "k", &err) != -EINVAL)
			fail_msg("accepted: %s", bad[i]);
	}
	assert_int_equal(seed_check_pubkey("-----BEGIN OPENSSH PRIVATE KEY-----", "id", &err), -EINVAL);
	assert_non_null(strstr(err.msg, "private key"));
	hutch_error_clear(&err);
}

static void test_key_file(void **state)
{
	(void)state;
	_cleanup_free_ char *dir = make_tmpdir();
	_cleanup_free_ char *pub = xasprintf("%s/k.pub", dir);
	_cleanup_free_ char *priv = xasprintf("%s/k", dir);
	struct hutch_error err = {0};
	char **keys = NULL;
	char *privpath = NULL;

	write_text(pub, "# my keys\n" KEY_ED25519 "\r\n\n" KEY_ECDSA "\n", 0644);
	assert_int_equal(seed_ssh_key(pub, NULL, &keys, &privpath, &err), 0);
	assert_int_equal(strv_len(keys), 2);
	assert_string_equal(keys[0], KEY_ED25519);
	assert_string_equal(keys[1], KEY_ECDSA);
	assert_null(privpath); /* no k beside k.pub */
	strv_free(keys);

	write_text(priv,
		   "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n"
		   "-----END OPENSSH PRIVATE KEY-----\n",
		   0600);
	assert_int_equal(seed_ssh_key(pub, NULL, &keys, &privpath, &err), 0);
	assert_string_equal(privpath, priv);
	strv_free(keys);
	free(privpath);

	/* Given the private key by mistake. */
	keys = (char **)1;
	assert_int_equal(seed_ssh_key(priv, NULL, &keys, &privpath, &err), -EINVAL);
	assert_ptr_equal(keys, (char **)1);
	assert_non_null(strstr(err.msg, "private key"));
	assert_non_null(strstr(err.msg, "give its .pub file"));

	write_text(pub, "hello world\n", 0644);
	assert_int_equal(seed_ssh_key(pub, NULL, &keys, NULL, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "not an OpenSSH public key"));
	write_text(pub, "\n# nothing\n", 0644);
	assert_int_equal(seed_ssh_key(pub, NULL, &keys, NULL, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "no public key"));
	assert_true(seed_ssh_key("/nonexistent/k.pub", NULL, &keys, NULL, &err) < 0);
	assert_non_null(strstr(err.msg, "/nonexistent/k.pub"));

	/* Bounded: a huge file is refused before it is parsed. */
	_cleanup_free_ char *huge = xmalloc(SEED_PUBKEY_MAX + 2);
	memset(huge, 'A', SEED_PUBKEY_MAX + 1);
	huge[SEED_PUBKEY_MAX + 1] = 0;
	write_text(pub, huge, 0644);
	assert_int_equal(seed_ssh_key(pub, NULL, &keys, NULL, &err), -EFBIG);

	/* ~/ expands to $HOME. */
	_cleanup_free_ char *old_home = getenv("HOME") ? xstrdup(getenv("HOME")) : NULL;
	setenv("HOME", dir, 1);
	write_text(pub, KEY_ED25519 "\n", 0644);
	assert_int_equal(seed_ssh_key("~/k.pub", NULL, &keys, NULL, &err), 0);
	assert_string_equal(keys[0], KEY_ED25519);
	strv_free(keys);
	if (old_home)
		setenv("HOME", old_home, 1);

	keys = (char **)1;
	privpath = (char *)1;
	assert_int_equal(seed_ssh_key("none", NULL, &keys, &privpath, &err), 0);
	assert_null(keys);
	assert_null(privpath);
	assert_int_equal(seed_ssh_key("", NULL, &keys, NULL, &err), -EINVAL);
	hutch_error_clear(&err);
	rm_rf(dir);
}

static void test_key_generate(void **state)
{
	(void)state;
	if (!have_program("ssh-keygen"))
		skip();
	_cleanup_free_ char *dir = make_tmpdir();
	_cleanup_free_ char *vm_dir = xasprintf("%s/vms/web", dir);
	_cleanup_free_ char *priv_want = xasprintf("%s/id_ed25519", vm_dir);
	_cleanup_free_ char *pub_path = xasprintf("%s/id_ed25519.pub", vm_dir);
	struct hutch_error err = {0};
	char **k1 = NULL, **k2 = NULL, **k3 = NULL;
	_cleanup_free_ char *p1 = NULL, *p2 = NULL;

	if (seed_ssh_key("generate", vm_dir, &k1, &p1, &err) < 0)
		fail_msg("%s", err.msg);
	assert_int_equal(strv_len(k1), 1);
	assert_true(strncmp(k1[0], "ssh-ed25519 AAAA", 16) == 0);
	assert_non_null(strstr(k1[0], " hutch-web"));
	assert_string_equal(p1, priv_want);
	struct stat st;
	assert_int_equal(stat(p1, &st), 0);
	assert_int_equal(st.st_mode & 077, 0);

	/* Idempotent: the same key again, the private key file untouched. */
	assert_int_equal(seed_ssh_key("generate", vm_dir, &k2, &p2, &err), 0);
	assert_string_equal(k1[0], k2[0]);
	struct stat st2;
	assert_int_equal(stat(p2, &st2), 0);
	assert_int_equal(st.st_ino, st2.st_ino);

	/* A crash after the private key but before its .pub: the .pub is derived again. */
	assert_int_equal(unlink(pub_path), 0);
	assert_int_equal(seed_ssh_key("generate", vm_dir, &k3, NULL, &err), 0);
	assert_true(strncmp(k1[0], k3[0], strlen("ssh-ed25519 ") + 68) == 0);

	/* auto with no ~/.ssh keys behaves like generate; with one, it uses it. */
	_cleanup_free_ char *old_home = getenv("HOME") ? xstrdup(getenv("HOME")) : NULL;
	setenv("HOME", dir, 1);
	char **k4 = NULL;
	assert_int_equal(seed_ssh_key("auto", vm_dir, &k4, NULL, &err), 0);
	assert_string_equal(k4[0], k3[0]);
	strv_free(k4);
	_cleanup_free_ char *ssh_dir = xasprintf("%s/.ssh", dir);
	_cleanup_free_ char *rsa = xasprintf("%s/.ssh/id_ecdsa.pub", dir);
	assert_int_equal(mkdir(ssh_dir, 0700), 0);
	write_text(rsa, KEY_ECDSA "\n", 0644);
	assert_int_equal(seed_ssh_key(NULL, vm_dir, &k4, NULL, &err), 0);
	assert_string_equal(k4[0], KEY_ECDSA);
	strv_free(k4);
	if (old_home)
		setenv("HOME", old_home, 1);

	strv_free(k1);
	strv_free(k2);
	strv_free(k3);
	rm_rf(dir);
}

/* The host key made at create: 0600, a fresh pair every time, its .pub derived from its private
 * key, and a known_hosts line under the VM's alias. */
static void test_host_key(void **state)
{
	(void)state;
	if (!have_program("ssh-keygen"))
		skip();
	_cleanup_free_ char *dir = make_tmpdir();
	_cleanup_free_ char *vm_dir = xasprintf("%s/vms/web", dir);
	_cleanup_free_ char *priv_path = xasprintf("%s/ssh_host_ed25519_key", vm_dir);
	struct hutch_error err = {0};
	_cleanup_free_ char *priv1 = NULL, *pub1 = NULL, *priv2 = NULL, *pub2 = NULL;
	if (seed_host_key(vm_dir, "web", &priv1, &pub1, &err) < 0)
		fail_msg("%s", err.msg);
	assert_true(strncmp(priv1, "-----BEGIN OPENSSH PRIVATE KEY-----\n", 36) == 0);
	assert_true(strncmp(pub1, "ssh-ed25519 AAAA", 16) == 0);
	assert_non_null(strstr(pub1, " hutch-web"));
	assert_null(strchr(pub1, '\n'));
	struct stat st;
	assert_int_equal(stat(priv_path, &st), 0);
	assert_int_equal(st.st_mode & 077, 0);
	_cleanup_free_ char *cmd = xasprintf("ssh-keygen -y -f %s", priv_path);
	FILE *f = popen(cmd, "r");
	char line[512] = "";
	assert_non_null(f);
	assert_non_null(fgets(line, sizeof(line), f));
	pclose(f);
	assert_true(strncmp(line, pub1, 80) == 0); /* the .pub belongs to the private key */

	/* every create: a new pair, replacing the old one */
	assert_int_equal(seed_host_key(vm_dir, "web", &priv2, &pub2, &err), 0);
	assert_string_not_equal(pub1, pub2);
	_cleanup_free_ char *on_disk = NULL;
	size_t len = 0;
	_cleanup_free_ char *pub_path = xasprintf("%s.pub", priv_path);
	assert_int_equal(read_file(pub_path, 4096, &on_disk, &len, NULL), 0);
	assert_true(strncmp(on_disk, pub2, strlen(pub2)) == 0);

	_cleanup_free_ char *kh = seed_known_hosts_line("web", pub2);
	assert_non_null(kh);
	size_t blob = strcspn(pub2 + 12, " ");
	_cleanup_free_ char *want = xasprintf("hutch-web ssh-ed25519 %.*s\n", (int)blob, pub2 + 12);
	assert_string_equal(kh, want);
	assert_null(seed_known_hosts_line("web", "not a key"));
	assert_null(seed_known_hosts_line("web", NULL));
	rm_rf(dir);
}

/* The host key goes to cloud-init's ssh_keys (so it generates none); bad halves are refused. */
static void test_render_host_key(void **state)
{
	(void)state;
	_cleanup_(spec_freep) struct vm_spec *s = cloud_spec();
	char *keys[] = {(char *)KEY_ED25519, NULL};
	struct seed_input in = input_for(s, keys);
	const char *priv =
		"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n";
	in.host_key_private = priv;
	in.host_key_public = KEY_ED25519;
	_cleanup_free_ char *ud = NULL, *md = NULL;
	render_ok(&in, &ud, &md);
	check_golden("host-key.user-data", ud);
	check_cloud_config(ud);
	struct ydoc y;
	ydoc_load(&y, ud);
	yaml_node_t *k = yget(&y, y.root, "ssh_keys");
	assert_non_null(k);
	assert_string_equal(yscalar(yget(&y, k, "ed25519_private")), priv);
	assert_string_equal(yscalar(yget(&y, k, "ed25519_public")), KEY_ED25519);
	assert_null(yget(&y, y.root, "ssh_genkeytypes"));
	ydoc_free(&y);

	struct hutch_error err = {0};
	char *u = NULL, *m = NULL;
	in.host_key_public = NULL;
	assert_int_equal(seed_render(&in, &u, &m, NULL, &err), -EINVAL);
	in.host_key_public = KEY_ECDSA;
	assert_int_equal(seed_render(&in, &u, &m, NULL, &err), -EINVAL);
	in.host_key_public = KEY_ED25519;
	in.host_key_private = "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n\x1b[2J";
	assert_int_equal(seed_render(&in, &u, &m, NULL, &err), -EINVAL);
	in.host_key_private = "ssh-ed25519 AAAA";
	assert_int_equal(seed_render(&in, &u, &m, NULL, &err), -EINVAL);
	assert_null(u);
	hutch_error_clear(&err);
}

/* Racing creators (no lock held) still end with a .pub that belongs to the private key. */
static void test_key_generate_concurrent(void **state)
{
	(void)state;
	if (!have_program("ssh-keygen"))
		skip();
	_cleanup_free_ char *dir = make_tmpdir();
	pid_t pids[6];
	for (size_t i = 0; i < ARRAY_SIZE(pids); i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			char **keys = NULL;
			int r = seed_ssh_key("generate", dir, &keys, NULL, NULL);
			_exit(r == 0 && keys && keys[0] ? 0 : 1);
		}
	}
	for (size_t i = 0; i < ARRAY_SIZE(pids); i++) {
		int status;
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	char **keys = NULL;
	assert_int_equal(seed_ssh_key("generate", dir, &keys, NULL, NULL), 0);
	_cleanup_free_ char *cmd = xasprintf("ssh-keygen -y -f %s/id_ed25519", dir);
	FILE *p = popen(cmd, "r");
	char derived[512] = "";
	assert_non_null(p);
	if (!fgets(derived, sizeof(derived), p))
		derived[0] = 0;
	pclose(p);
	/* Same type and key data; the comment is not part of the private key's public half. */
	assert_true(strncmp(derived, keys[0], strlen("ssh-ed25519 ") + 68) == 0);
	DIR *d = opendir(dir);
	for (struct dirent *de; (de = readdir(d));)
		if (strstr(de->d_name, ".tmp."))
			fail_msg("left behind: %s", de->d_name);
	closedir(d);
	strv_free(keys);
	rm_rf(dir);
}

static void test_keygen_missing(void **state)
{
	(void)state;
	_cleanup_free_ char *dir = make_tmpdir();
	_cleanup_free_ char *old_path = getenv("PATH") ? xstrdup(getenv("PATH")) : NULL;
	struct hutch_error err = {0};
	char **keys = (char **)1;
	setenv("PATH", "/nonexistent", 1);
	int r = seed_ssh_key("generate", dir, &keys, NULL, &err);
	if (old_path)
		setenv("PATH", old_path, 1);
	assert_int_equal(r, -ENOENT);
	assert_ptr_equal(keys, (char **)1);
	assert_non_null(strstr(err.msg, "openssh-client"));
	hutch_error_clear(&err);
	rm_rf(dir);
}

/* ---- instance id ---- */

static void test_instance_id(void **state)
{
	(void)state;
	char *ids[64];
	for (size_t i = 0; i < ARRAY_SIZE(ids); i++) {
		ids[i] = seed_new_instance_id();
		assert_int_equal(strlen(ids[i]), 6 + 16);
		assert_true(strncmp(ids[i], "hutch-", 6) == 0);
		assert_int_equal(strspn(ids[i] + 6, "0123456789abcdef"), 16);
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(ids[i], ids[j]);
	}
	for (size_t i = 0; i < ARRAY_SIZE(ids); i++)
		free(ids[i]);
}

/* The unit the seed ships is the one in agent/, so the two never drift apart. */
static void test_agent_unit_matches_file(void **state)
{
	(void)state;
	char *text = NULL;
	size_t len = 0;
	assert_int_equal(read_file(SRCDIR "/agent/hutch-agent.service", 1 << 16, &text, &len, NULL), 0);
	assert_string_equal(text, seed_agent_unit_default);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_render_created_user),
		cmocka_unit_test(test_render_default_user),
		cmocka_unit_test(test_render_login_user),
		cmocka_unit_test(test_render_injection),
		cmocka_unit_test(test_render_rejects),
		cmocka_unit_test(test_iso_roundtrip),
		cmocka_unit_test(test_iso_errors),
		cmocka_unit_test(test_netvm_seed),
		cmocka_unit_test(test_smbios),
		cmocka_unit_test(test_check_pubkey),
		cmocka_unit_test(test_key_file),
		cmocka_unit_test(test_key_generate),
		cmocka_unit_test(test_key_generate_concurrent),
		cmocka_unit_test(test_keygen_missing),
		cmocka_unit_test(test_instance_id),
		cmocka_unit_test(test_agent_unit_matches_file),
		cmocka_unit_test(test_host_key),
		cmocka_unit_test(test_render_host_key),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
