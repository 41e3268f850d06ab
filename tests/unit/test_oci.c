/* oci: references, the index/manifest/config/docker manifest readers, and unpacking layers made
 * here with libarchive: ownership and modes kept in the tree, whiteouts, opaque dirs, hard links,
 * device nodes recorded, and entries that would escape the root refused. oci_disk: the debugfs
 * script and a real mkfs.ext4 + debugfs build read back with debugfs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "oci.h"
#include "oci_disk.h"

#define UNUSED __attribute__((unused))

static void test_ref(void **state UNUSED)
{
	struct oci_ref r = {0};
	struct hutch_error err = {0};
	assert_int_equal(oci_ref_parse("oci:/x/y:latest", &r, &err), 0);
	assert_int_equal(r.transport, OCI_DIR);
	assert_string_equal(r.path, "/x/y");
	assert_string_equal(r.tag, "latest");
	oci_ref_release(&r);
	assert_int_equal(oci_ref_parse("oci:/x/y", &r, &err), 0);
	assert_null(r.tag);
	oci_ref_release(&r);
	assert_int_equal(oci_ref_parse("docker-archive:/a:b.tar", &r, &err), 0);
	assert_int_equal(r.transport, OCI_DOCKER_ARCHIVE);
	assert_string_equal(r.path, "/a:b.tar"); /* only oci: has a tag */
	oci_ref_release(&r);
	assert_int_equal(oci_ref_parse("containers-storage:busybox", &r, &err), 0);
	assert_int_equal(r.transport, OCI_CONTAINERS_STORAGE);
	oci_ref_release(&r);
	assert_true(oci_ref_parse("docker://busybox", &r, &err) < 0);
	assert_non_null(strstr(err.msg, "unknown image reference"));
	hutch_error_clear(&err);
	assert_true(oci_ref_parse("oci-archive:", &r, &err) < 0);
	hutch_error_clear(&err);
	assert_true(oci_ref_parse("oci:/x:", &r, &err) < 0);
	hutch_error_clear(&err);
}

#define D1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define MT_M "application/vnd.oci.image.manifest.v1+json"

static int parse_index(const char *json, const char *tag, struct oci_descriptor *d, struct hutch_error *err)
{
	return oci_parse_index(json, strlen(json), tag, d, err);
}

static void test_index(void **state UNUSED)
{
	struct oci_descriptor d = {0};
	struct hutch_error err = {0};
	const char *one = "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"" MT_M "\",\"digest\":\"" D1
			  "\",\"size\":10,\"annotations\":{\"org.opencontainers.image.ref.name\":\"v1\"}}]}";
	assert_int_equal(parse_index(one, NULL, &d, &err), 0);
	assert_string_equal(d.digest, D1);
	assert_int_equal(d.size, 10);
	oci_descriptor_release(&d);
	assert_int_equal(parse_index(one, "v1", &d, &err), 0);
	oci_descriptor_release(&d);
	assert_int_equal(parse_index(one, "v2", &d, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "no manifest tagged 'v2' (it has 'v1')"));
	hutch_error_clear(&err);
	const char *two = "{\"manifests\":[{\"digest\":\"" D1 "\",\"size\":1},{\"digest\":\"" D2
			  "\",\"size\":2,\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\"}},{\"digest\":\"" D2
			  "\",\"size\":3}]}";
	assert_int_equal(parse_index(two, NULL, &d, &err), -EINVAL); /* two amd64 candidates */
	assert_non_null(strstr(err.msg, "name one with oci:DIR:TAG"));
	hutch_error_clear(&err);
	const char *arm = "{\"manifests\":[{\"digest\":\"" D2
			  "\",\"size\":2,\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\"}},{\"digest\":\"" D1
			  "\",\"size\":3,\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}}]}";
	assert_int_equal(parse_index(arm, NULL, &d, &err), 0);
	assert_string_equal(d.digest, D1);
	oci_descriptor_release(&d);
	assert_true(parse_index("{\"manifests\":[{\"digest\":\"md5:00\",\"size\":1}]}", NULL, &d, &err) < 0);
	assert_non_null(strstr(err.msg, "only sha256"));
	hutch_error_clear(&err);
	assert_true(parse_index("{\"manifests\":[]} x", NULL, &d, &err) < 0);
	assert_non_null(strstr(err.msg, "data after"));
	hutch_error_clear(&err);
	assert_true(parse_index("[1]", NULL, &d, &err) < 0);
	hutch_error_clear(&err);
	assert_true(parse_index("{\"manifests\":[", NULL, &d, &err) < 0);
	assert_non_null(strstr(err.msg, "ends early"));
	hutch_error_clear(&err);
}

static void test_manifest(void **state UNUSED)
{
	struct oci_manifest m = {0};
	struct hutch_error err = {0};
	const char *ok =
		"{\"schemaVersion\":2,\"mediaType\":\"" MT_M
		"\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"" D1
		"\",\"size\":5},\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\","
		"\"digest\":\"" D2 "\",\"size\":7},{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+zstd\","
		"\"digest\":\"" D1 "\",\"size\":8}]}";
	assert_int_equal(oci_parse_manifest(ok, strlen(ok), &m, &err), 0);
	assert_int_equal(m.n_layers, 2);
	assert_string_equal(m.layers[0].digest, D2);
	assert_int_equal(m.layers[1].size, 8);
	assert_string_equal(m.config.digest, D1);
	oci_manifest_release(&m);
	const char *bad_layer =
		"{\"schemaVersion\":2,\"config\":{\"digest\":\"" D1
		"\",\"size\":5},\"layers\":[{\"mediaType\":\"text/plain\",\"digest\":\"" D2 "\",\"size\":7}]}";
	assert_true(oci_parse_manifest(bad_layer, strlen(bad_layer), &m, &err) < 0);
	assert_non_null(strstr(err.msg, "layer 1 has media type 'text/plain'"));
	hutch_error_clear(&err);
	const char *v1 = "{\"schemaVersion\":1}";
	assert_true(oci_parse_manifest(v1, strlen(v1), &m, &err) < 0);
	assert_non_null(strstr(err.msg, "schemaVersion 2"));
	hutch_error_clear(&err);
	const char *neg = "{\"schemaVersion\":2,\"config\":{\"digest\":\"" D1 "\",\"size\":-1},\"layers\":[]}";
	assert_true(oci_parse_manifest(neg, strlen(neg), &m, &err) < 0);
	hutch_error_clear(&err);
}

static void test_config(void **state UNUSED)
{
	struct oci_config c = {0};
	struct hutch_error err = {0};
	const char *ok =
		"{\"created\":\"2023-11-14T22:13:20Z\",\"architecture\":\"amd64\",\"os\":\"linux\","
		"\"config\":{\"Entrypoint\":[\"/bin/sh\",\"-c\"],\"Cmd\":[\"echo hi\"],\"Env\":[\"A=1\"],"
		"\"WorkingDir\":\"/w\",\"User\":\"1000:1000\"},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"" D1
		"\"]}}";
	assert_int_equal(oci_parse_config(ok, strlen(ok), &c, &err), 0);
	assert_string_equal(c.entrypoint[1], "-c");
	assert_string_equal(c.cmd[0], "echo hi");
	assert_string_equal(c.env[0], "A=1");
	assert_string_equal(c.workdir, "/w");
	assert_string_equal(c.user, "1000:1000");
	assert_string_equal(c.diff_ids[0], D1);
	assert_int_equal(c.created, 1700000000);
	oci_config_release(&c);
	const char *norootfs = "{\"architecture\":\"amd64\",\"os\":\"linux\"}";
	assert_true(oci_parse_config(norootfs, strlen(norootfs), &c, &err) < 0);
	assert_string_equal(err.msg, "image config has no rootfs");
	hutch_error_clear(&err);
	const char *win = "{\"os\":\"windows\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}";
	assert_true(oci_parse_config(win, strlen(win), &c, &err) < 0);
	assert_non_null(strstr(err.msg, "not linux"));
	hutch_error_clear(&err);
	const char *badenv = "{\"config\":{\"Env\":[1]},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}";
	assert_true(oci_parse_config(badenv, strlen(badenv), &c, &err) < 0);
	assert_non_null(strstr(err.msg, "'Env' is not an array of strings"));
	hutch_error_clear(&err);
	const char *nul = "{\"config\":{\"Cmd\":[\"a\\u0000b\"]},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}";
	assert_true(oci_parse_config(nul, strlen(nul), &c, &err) < 0);
	hutch_error_clear(&err);
}

static void test_docker_manifest(void **state UNUSED)
{
	struct oci_docker_manifest m = {0};
	struct hutch_error err = {0};
	const char *j =
		"[{\"Config\":\"abc.json\",\"RepoTags\":[\"x:1\"],\"Layers\":[\"l1/layer.tar\",\"l2/layer.tar\"]}]";
	assert_int_equal(oci_parse_docker_manifest(j, strlen(j), NULL, &m, &err), 0);
	assert_string_equal(m.config, "abc.json");
	assert_int_equal(m.n_layers, 2);
	oci_docker_manifest_release(&m);
	assert_int_equal(oci_parse_docker_manifest(j, strlen(j), "x:2", &m, &err), -ENOENT);
	hutch_error_clear(&err);
	assert_true(oci_parse_docker_manifest("{}", 2, NULL, &m, &err) < 0);
	hutch_error_clear(&err);
}

/* ---- unpacking layers made here ---- */

struct ent {
	const char *name;
	mode_t mode; /* with type bits */
	int uid, gid;
	const char *data; /* regular files */
	const char *link; /* symlink target or hard link name */
	bool hard;
};

static char *write_layer(const char *dir, const char *name, const struct ent *e, size_t n)
{
	char *path = xasprintf("%s/%s", dir, name);
	struct archive *a = archive_write_new();
	archive_write_set_format_pax_restricted(a);
	archive_write_add_filter_gzip(a);
	assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
	for (size_t i = 0; i < n; i++) {
		struct archive_entry *ae = archive_entry_new();
		archive_entry_set_pathname(ae, e[i].name);
		archive_entry_set_mode(ae, e[i].mode);
		archive_entry_set_uid(ae, e[i].uid);
		archive_entry_set_gid(ae, e[i].gid);
		archive_entry_set_mtime(ae, 1700000000, 0);
		if (e[i].hard)
			archive_entry_set_hardlink(ae, e[i].link);
		else if (S_ISLNK(e[i].mode))
			archive_entry_set_symlink(ae, e[i].link);
		if (S_ISCHR(e[i].mode)) {
			archive_entry_set_rdevmajor(ae, 1);
			archive_entry_set_rdevminor(ae, 3);
		}
		size_t len = e[i].data ? strlen(e[i].data) : 0;
		if (S_ISREG(e[i].mode) && !e[i].hard)
			archive_entry_set_size(ae, (la_int64_t)len);
		assert_int_equal(archive_write_header(a, ae), ARCHIVE_OK);
		if (len)
			archive_write_data(a, e[i].data, len);
		archive_entry_free(ae);
	}
	archive_write_close(a);
	archive_write_free(a);
	return path;
}

static void add_layer(struct oci_image *img, char *path)
{
	char hex[65];
	assert_int_equal(sha256_file_hex(path, hex, NULL), 0);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	img->layers = xrealloc(img->layers, (img->n_layers + 1) * sizeof(*img->layers));
	img->layers[img->n_layers++] = (struct oci_layer){
		.path = path, .digest = xasprintf("sha256:%s", hex), .size = (uint64_t)st.st_size, .check_size = true};
}

static char *tmpdir(void)
{
	char *d = xstrdup("/tmp/test_oci.XXXXXX");
	assert_non_null(mkdtemp(d));
	return d;
}

static void test_unpack(void **state UNUSED)
{
	_cleanup_free_ char *dir = tmpdir();
	const struct ent l1[] = {
		{"./", S_IFDIR | 0755, 0, 0, NULL, NULL, false},
		{"usr/bin/", S_IFDIR | 0755, 0, 0, NULL, NULL, false},
		{"usr/bin/sudo", S_IFREG | 04755, 0, 0, "sudo!", NULL, false},
		{"usr/bin/sudoedit", S_IFREG | 0755, 0, 0, NULL, "usr/bin/sudo", true},
		{"etc/shadow", S_IFREG | 0640, 0, 42, "s", NULL, false},
		{"etc/gone", S_IFREG | 0644, 0, 0, "g", NULL, false},
		{"opt/o/old", S_IFREG | 0644, 1000, 1000, "o", NULL, false},
		{"dev/null", S_IFCHR | 0666, 0, 0, NULL, NULL, false},
		{"bin", S_IFLNK | 0777, 0, 0, NULL, "usr/bin", false},
	};
	const struct ent l2[] = {
		{"etc/.wh.gone", S_IFREG | 0644, 0, 0, NULL, NULL, false},
		{"opt/o/", S_IFDIR | 0750, 0, 0, NULL, NULL, false},
		{"opt/o/.wh..wh..opq", S_IFREG | 0644, 0, 0, NULL, NULL, false},
		{"opt/o/new", S_IFREG | 0600, 5, 6, "n", NULL, false},
		{"bin/viabin", S_IFREG | 0644, 0, 0, "v", NULL, false}, /* a relative link beneath the root */
	};
	struct oci_image img = {0};
	add_layer(&img, write_layer(dir, "l1.tgz", l1, ARRAY_SIZE(l1)));
	add_layer(&img, write_layer(dir, "l2.tgz", l2, ARRAY_SIZE(l2)));
	_cleanup_free_ char *root = xasprintf("%s/root", dir);
	assert_int_equal(mkdir(root, 0700), 0);
	struct oci_tree t = {0};
	struct hutch_error err = {0};
	int r = oci_unpack(&img, root, &t, &err);
	if (r < 0)
		fail_msg("unpack: %s", err.msg);
	const struct oci_node *n = oci_tree_get(&t, "usr/bin/sudo");
	assert_non_null(n);
	assert_int_equal(n->mode, S_IFREG | 04755);
	assert_int_equal(n->uid, 0);
	n = oci_tree_get(&t, "etc/shadow");
	assert_int_equal(n->gid, 42);
	assert_int_equal(n->mode & 07777, 0640);
	assert_null(oci_tree_get(&t, "etc/gone"));
	_cleanup_free_ char *gone = xasprintf("%s/etc/gone", root);
	assert_int_not_equal(access(gone, F_OK), 0);
	assert_null(oci_tree_get(&t, "opt/o/old"));
	n = oci_tree_get(&t, "opt/o/new");
	assert_int_equal(n->uid, 5);
	assert_int_equal(oci_tree_get(&t, "opt/o")->mode & 07777, 0750);
	n = oci_tree_get(&t, "dev/null");
	assert_false(n->on_disk);
	assert_int_equal(n->rdev_minor, 3);
	_cleanup_free_ char *devnull = xasprintf("%s/dev/null", root);
	assert_int_not_equal(access(devnull, F_OK), 0); /* recorded, not created */
	struct stat a, b;
	_cleanup_free_ char *p1 = xasprintf("%s/usr/bin/sudo", root), *p2 = xasprintf("%s/usr/bin/sudoedit", root);
	assert_int_equal(stat(p1, &a), 0);
	assert_int_equal(stat(p2, &b), 0);
	assert_int_equal(a.st_ino, b.st_ino);
	assert_int_equal(a.st_uid, getuid()); /* the host files are the user's; the tree has the image's */
	assert_non_null(oci_tree_get(&t, "bin/viabin"));

	/* the debugfs script names every node with its ownership, and makes the device node */
	_cleanup_free_ char *script = oci_disk_fixup_script(&t);
	assert_non_null(strstr(script, "sif \"/usr/bin/sudo\" mode 0104755\n"));
	assert_non_null(strstr(script, "sif \"/etc/shadow\" gid 42\n"));
	assert_non_null(strstr(script, "cd \"/dev\"\nmknod \"null\" c 1 3\n"));
	oci_tree_release(&t);
	for (size_t i = 0; i < img.n_layers; i++) {
		free(img.layers[i].path);
		free(img.layers[i].digest);
	}
	free(img.layers);
	rm_rf(dir);
}

/* Each escape is refused with an error naming the entry. */
static void expect_refused(const struct ent *e, size_t n, const char *want)
{
	_cleanup_free_ char *dir = tmpdir();
	struct oci_image img = {0};
	add_layer(&img, write_layer(dir, "l.tgz", e, n));
	_cleanup_free_ char *root = xasprintf("%s/root", dir);
	assert_int_equal(mkdir(root, 0700), 0);
	struct oci_tree t = {0};
	struct hutch_error err = {0};
	assert_true(oci_unpack(&img, root, &t, &err) < 0);
	if (!strstr(err.msg, want))
		fail_msg("'%s' does not say '%s'", err.msg, want);
	hutch_error_clear(&err);
	_cleanup_free_ char *outside = xasprintf("%s/escaped", dir);
	assert_int_not_equal(access(outside, F_OK), 0);
	assert_int_not_equal(access("/tmp/escaped-by-test-oci", F_OK), 0);
	free(img.layers[0].path);
	free(img.layers[0].digest);
	free(img.layers);
	rm_rf(dir);
}

static void test_escapes(void **state UNUSED)
{
	const struct ent dotdot[] = {{"../escaped", S_IFREG | 0644, 0, 0, "x", NULL, false}};
	expect_refused(dotdot, 1, "entry '../escaped' escapes the root");
	const struct ent abslink[] = {
		{"evil", S_IFLNK | 0777, 0, 0, NULL, "/tmp", false},
		{"evil/escaped-by-test-oci", S_IFREG | 0644, 0, 0, "x", NULL, false},
	};
	expect_refused(abslink, 2, "escapes the root (through an absolute or outward link)");
	const struct ent uplink[] = {
		{"up", S_IFLNK | 0777, 0, 0, NULL, "..", false},
		{"up/escaped", S_IFREG | 0644, 0, 0, "x", NULL, false},
	};
	expect_refused(uplink, 2, "escapes the root");
	const struct ent hard[] = {{"h", S_IFREG | 0644, 0, 0, NULL, "../../etc/passwd", true}};
	expect_refused(hard, 1, "hard link that escapes the root");
}

static void test_verify(void **state UNUSED)
{
	_cleanup_free_ char *dir = tmpdir();
	_cleanup_free_ char *p = xasprintf("%s/blob", dir);
	assert_int_equal(write_file_atomic(p, "abc", 3, 0600, NULL), 0);
	int fd = open(p, O_RDONLY);
	struct hutch_error err = {0};
	const char *d = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
	assert_int_equal(oci_verify_blob(fd, d, 3, true, "blob", &err), 0);
	assert_int_equal(oci_verify_blob(fd, d, 4, true, "blob", &err), -EINVAL);
	assert_non_null(strstr(err.msg, "is 3 bytes, but the manifest says 4"));
	hutch_error_clear(&err);
	assert_int_equal(oci_verify_blob(fd, D1, 3, true, "blob", &err), -EINVAL);
	assert_non_null(strstr(err.msg, "corrupt or changed"));
	hutch_error_clear(&err);
	close(fd);
	rm_rf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ref),	cmocka_unit_test(test_index),		cmocka_unit_test(test_manifest),
		cmocka_unit_test(test_config),	cmocka_unit_test(test_docker_manifest), cmocka_unit_test(test_unpack),
		cmocka_unit_test(test_escapes), cmocka_unit_test(test_verify),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
