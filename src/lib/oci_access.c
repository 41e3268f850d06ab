/* The ways into a bootc image's VM. See oci_access.h.
 *
 * Why the key is written at build time, and the cache keyed by it, rather than provisioned per VM
 * at boot: the root filesystem is the base of every VM's overlay and cannot change per VM, and the
 * other ways in (a seed the image must know how to read, the agent writing the key over its channel
 * at each start) need either cloud-init, which bootc images mostly lack, or a working agent: ssh is
 * the way in when the agent is not. A user has one key for all VMs (ssh.key: auto takes
 * ~/.ssh/id_*.pub), so VMs of one image still share one build; a per-VM key (ssh.key: generate, or
 * auto without ~/.ssh/id_*.pub) costs that VM a build of its own. */
#include "oci_access.h"

#include "oci.h"
#include "oci_login.h"
#include "seed.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#define OCI_AGENT_MAX (64u << 20)
#define OCI_AGENT_PATH "usr/local/libexec/hutch-agent" /* SEED_AGENT_GUEST_PATH, as in cloud guests */
#define OCI_AGENT_UNIT "etc/systemd/system/" SEED_AGENT_UNIT_NAME
#define OCI_AGENT_WANTS "etc/systemd/system/multi-user.target.wants/" SEED_AGENT_UNIT_NAME
#define LINK_HOPS_MAX 8
#define SUDOERS_DIR "etc/sudoers.d"

int oci_access_key(const struct oci_access *a, char out[65], struct hutch_error *err)
{
	struct strbuf sb = STRBUF_INIT;
	strbuf_adds(&sb, "hutch-oci-access-1\n");
	if (a->agent) {
		char h[65];
		int r = sha256_file_hex(a->agent, h, err);
		if (r < 0) {
			strbuf_release(&sb);
			return hutch_error_wrap(err, "agent '%s'", a->agent);
		}
		strbuf_addf(&sb, "agent %s\n", h);
	}
	if (a->user)
		strbuf_addf(&sb, "user %s\n", a->user);
	for (char *const *k = a->user ? a->keys : NULL; k && *k; k++)
		strbuf_addf(&sb, "key %s\n", *k);
	sha256_hex(sb.buf, sb.len, out);
	strbuf_release(&sb);
	return 0;
}

/* The agent as an enabled systemd unit, root-owned like the image's own files. */
static int add_agent(const char *tree_dir, struct oci_tree *t, const char *agent, int64_t mtime,
		     struct hutch_error *err)
{
	_cleanup_free_ char *bin = NULL;
	size_t len = 0;
	int r = read_file(agent, OCI_AGENT_MAX, &bin, &len, err);
	if (r < 0)
		return r;
	const struct oci_add files[] = {
		{.path = OCI_AGENT_PATH, .data = bin, .len = len, .mode = 0755, .mtime = mtime},
		{.path = OCI_AGENT_UNIT,
		 .data = seed_agent_unit_default,
		 .len = strlen(seed_agent_unit_default),
		 .mode = 0644,
		 .mtime = mtime},
		{.path = OCI_AGENT_WANTS, .link = "../" SEED_AGENT_UNIT_NAME, .mtime = mtime},
		/* the agent's port at systemd-modules-load, not when udev gets to it (~8 s later under TCG) */
		{.path = "etc/modules-load.d/hutch-agent.conf",
		 .data = "virtio_console\n",
		 .len = 15,
		 .mode = 0644,
		 .mtime = mtime},
	};
	for (size_t i = 0; i < ARRAY_SIZE(files); i++)
		if ((r = oci_tree_add(t, tree_dir, &files[i], err)) < 0)
			return hutch_error_wrap(err, "putting the agent into the image");
	return 0;
}

static bool is_type(const struct oci_tree *t, const char *path, mode_t type)
{
	const struct oci_node *n = oci_tree_get(t, path);
	return n && (n->mode & S_IFMT) == type;
}

/* An image file DIR/NAME of at most OCI_LOGIN_FILE_MAX bytes, read only when the tree has DIR as a
 * directory and DIR/NAME as a regular file (never through a link). *ret NULL: there is none. */
static int read_tree_file(const char *tree_dir, const struct oci_tree *t, const char *path, char **ret, size_t *ret_len,
			  struct hutch_error *err)
{
	*ret = NULL;
	*ret_len = 0;
	_cleanup_free_ char *dir = xstrndup(path, strrchr(path, '/') - path);
	if (!is_type(t, dir, S_IFDIR) || !is_type(t, path, S_IFREG))
		return 0;
	_cleanup_free_ char *full = xasprintf("%s/%s", tree_dir, path);
	_cleanup_free_ char *text = NULL;
	int r = read_file(full, OCI_LOGIN_FILE_MAX, &text, ret_len, err);
	if (r == -EFBIG)
		return hutch_error_set(err, EFBIG, "the image's /%s is larger than %u bytes", path, OCI_LOGIN_FILE_MAX);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(text);
	return 0;
}

/* PATH with the image's symlinks among its directories followed inside the tree (Fedora's bootc
 * images have /home -> var/home), as a clean relative path; NULL when a link leaves the tree's
 * plain paths ("..") or there are too many. */
static char *resolve_in_tree(const char *tree_dir, const struct oci_tree *t, const char *path)
{
	_cleanup_close_ int rootfd = open(tree_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return NULL;
	_cleanup_free_ char *cur = xstrdup(""), *rest = xstrdup(path);
	for (unsigned hops = 0; *rest;) {
		size_t n = strcspn(rest, "/");
		_cleanup_free_ char *comp = xstrndup(rest, n);
		memmove(rest, rest + n + (rest[n] == '/'), strlen(rest + n + (rest[n] == '/')) + 1);
		if (!*comp || !strcmp(comp, "."))
			continue;
		if (!strcmp(comp, ".."))
			return NULL;
		_cleanup_free_ char *cand = *cur ? xasprintf("%s/%s", cur, comp) : xstrdup(comp);
		if (!is_type(t, cand, S_IFLNK)) {
			free(cur);
			cur = TAKE_PTR(cand);
			continue;
		}
		char target[PATH_MAX];
		ssize_t tl = readlinkat(rootfd, cand, target, sizeof(target) - 1); /* cur: real dirs only */
		if (++hops > LINK_HOPS_MAX || tl <= 0)
			return NULL;
		target[tl] = 0;
		if (target[0] == '/') {
			free(cur);
			cur = xstrdup("");
		}
		char *joined = *rest ? xasprintf("%s/%s", target, rest) : xstrdup(target);
		free(rest);
		rest = joined;
	}
	return *cur ? TAKE_PTR(cur) : NULL;
}

static const char *login_shell(const struct oci_tree *t)
{
	return is_type(t, "usr/bin/bash", S_IFREG) || is_type(t, "bin/bash", S_IFREG) ? "/bin/bash" : "/bin/sh";
}

/* Replace image file PATH with TEXT, keeping its mode and owner (a new one: root's, MODE). */
static int replace_file(const char *tree_dir, struct oci_tree *t, const char *path, const char *text, uint32_t mode,
			int64_t mtime, struct hutch_error *err)
{
	const struct oci_node *old = oci_tree_get(t, path);
	struct oci_add a = {.path = path, .data = text, .len = strlen(text), .mode = mode, .mtime = mtime};
	if (old && S_ISREG(old->mode)) {
		a.mode = old->mode & 07777;
		a.uid = old->uid;
		a.gid = old->gid;
	}
	return oci_tree_add(t, tree_dir, &a, err);
}

static int add_user_files(const char *tree_dir, struct oci_tree *t, const struct oci_login *l, int64_t mtime,
			  struct hutch_error *err)
{
	int r = 0;
	if (l->passwd)
		r = replace_file(tree_dir, t, "etc/passwd", l->passwd, 0644, mtime, err);
	if (r == 0 && l->group)
		r = replace_file(tree_dir, t, "etc/group", l->group, 0644, mtime, err);
	if (r == 0 && l->shadow)
		r = replace_file(tree_dir, t, "etc/shadow", l->shadow, 0640, mtime, err);
	return r;
}

static int add_login(const char *tree_dir, struct oci_tree *t, const struct oci_access *a, int64_t mtime,
		     struct hutch_error *err)
{
	_cleanup_free_ char *passwd = NULL, *group = NULL, *shadow = NULL;
	size_t plen = 0, glen = 0, slen = 0;
	int r = read_tree_file(tree_dir, t, "etc/passwd", &passwd, &plen, err);
	if (r == 0)
		r = read_tree_file(tree_dir, t, "etc/group", &group, &glen, err);
	if (r == 0)
		r = read_tree_file(tree_dir, t, "etc/shadow", &shadow, &slen, err);
	struct oci_login l = {0};
	if (r == 0)
		r = oci_login_plan(a->user, login_shell(t), passwd, plen, group, glen, shadow, slen, &l, err);
	if (r < 0)
		return r;
	_cleanup_free_ char *home = resolve_in_tree(tree_dir, t, l.home);
	if (!home) {
		r = hutch_error_set(err, EINVAL, "the home '/%s' of user '%s' leads out of the image", l.home, a->user);
		oci_login_release(&l);
		return r;
	}
	r = add_user_files(tree_dir, t, &l, mtime, err);
	/* a home the image has keeps its mode; a new one is the user's alone, as adduser makes it */
	const struct oci_node *had = oci_tree_get(t, home);
	uint32_t home_mode = had && S_ISDIR(had->mode) ? had->mode & 07777 : 0700;
	struct strbuf keys = STRBUF_INIT;
	for (char *const *k = a->keys; k && *k; k++)
		strbuf_addf(&keys, "%s\n", *k);
	_cleanup_free_ char *ssh = xasprintf("%s/.ssh", home), *ak = xasprintf("%s/.ssh/authorized_keys", home);
	struct oci_add d_home = {.path = home, .mode = home_mode, .uid = l.uid, .gid = l.gid, .mtime = mtime};
	struct oci_add d_ssh = {.path = ssh, .mode = 0700, .uid = l.uid, .gid = l.gid, .mtime = mtime};
	struct oci_add f_ak = {.path = ak,
			       .data = strbuf_str(&keys),
			       .len = keys.len,
			       .mode = 0600,
			       .uid = l.uid,
			       .gid = l.gid,
			       .mtime = mtime};
	if (r == 0)
		r = oci_tree_add_dir(t, tree_dir, &d_home, err);
	if (r == 0)
		r = oci_tree_add_dir(t, tree_dir, &d_ssh, err);
	if (r == 0)
		r = oci_tree_add(t, tree_dir, &f_ak, err);
	strbuf_release(&keys);
	if (r == 0 && l.uid != 0 && is_type(t, SUDOERS_DIR, S_IFDIR)) {
		/* as cloud-init gives the user of an image VM: sudo without a password */
		_cleanup_free_ char *path = xasprintf(SUDOERS_DIR "/hutch-%s", a->user);
		_cleanup_free_ char *rule = xasprintf("%s ALL=(ALL) NOPASSWD:ALL\n", a->user);
		struct oci_add f = {.path = path, .data = rule, .len = strlen(rule), .mode = 0440, .mtime = mtime};
		r = oci_tree_add(t, tree_dir, &f, err);
	}
	oci_login_release(&l);
	return r < 0 ? hutch_error_wrap(err, "putting user '%s' and the SSH key into the image", a->user) : 0;
}

int oci_access_apply(const char *tree_dir, struct oci_tree *t, const struct oci_access *a, int64_t mtime,
		     struct hutch_error *err)
{
	int r = a->agent ? add_agent(tree_dir, t, a->agent, mtime, err) : 0;
	if (r == 0 && a->user && a->keys && a->keys[0])
		r = add_login(tree_dir, t, a, mtime, err);
	return r;
}
