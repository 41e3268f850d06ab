/* The container-image root filesystem cache. See oci_cache.h. */
#include "oci_cache.h"

#include "image.h"

#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

static bool is_hex64(const char *s)
{
	size_t n = 0;
	for (; s[n]; n++)
		if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
			return false;
	return n == 64;
}

static uint64_t allocated(const char *dir)
{
	uint64_t total = 0;
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		struct stat sb;
		if (fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(sb.st_mode))
			total += (uint64_t)sb.st_blocks * 512;
	}
	if (d)
		closedir(d);
	return total;
}

/* Does a qcow2 in VM dir VMDIR have a backing file inside DIR, or that is DIR when DIR is a file (as
 * named, or its real path)? */
static bool disk_uses(const char *vmdir, const char *dir, const char *real_dir)
{
	DIR *d = opendir(vmdir);
	bool used = false;
	struct dirent *de;
	while (d && !used && (de = readdir(d))) {
		size_t n = strlen(de->d_name);
		if (n < 6 || strcmp(de->d_name + n - 6, ".qcow2"))
			continue;
		_cleanup_free_ char *p = xasprintf("%s/%s", vmdir, de->d_name);
		_cleanup_free_ char *b = image_qcow2_backing(p);
		size_t dl = strlen(dir), rl = real_dir ? strlen(real_dir) : 0;
		used = b && ((!strncmp(b, dir, dl) && (b[dl] == '/' || !b[dl])) ||
			     (real_dir && !strncmp(b, real_dir, rl) && (b[rl] == '/' || !b[rl])));
	}
	if (d)
		closedir(d);
	return used;
}

static int str_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted by name. */
static char **users_of(const struct store *st, const char *dir)
{
	char **users = xcalloc(1, sizeof(char *));
	_cleanup_free_ char *vms = xasprintf("%s/vms", st->data_dir);
	_cleanup_free_ char *real_dir = realpath(dir, NULL);
	DIR *d = opendir(vms);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (!store_name_valid(de->d_name))
			continue;
		_cleanup_free_ char *vmdir = xasprintf("%s/%s", vms, de->d_name);
		if (disk_uses(vmdir, dir, real_dir))
			users = strv_push(users, store_vm_exists(st, de->d_name)
							 ? xstrdup(de->d_name)
							 : xasprintf("%s (kept disk)", de->d_name));
	}
	if (d)
		closedir(d);
	qsort(users, strv_len(users), sizeof(char *), str_cmp);
	return users;
}

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct oci_cache_entry *)a)->key, ((const struct oci_cache_entry *)b)->key);
}

int oci_cache_list(const struct store *st, struct oci_cache_entry **ret, size_t *ret_n, struct hutch_error *err)
{
	_cleanup_free_ char *root = xasprintf("%s/oci", st->cache_dir);
	DIR *d = opendir(root);
	if (!d && errno != ENOENT)
		return hutch_error_set(err, errno, "cannot read '%s': %s", root, strerror(errno));
	struct oci_cache_entry *v = NULL;
	size_t n = 0;
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (!is_hex64(de->d_name))
			continue;
		_cleanup_free_ char *dir = xasprintf("%s/%s", root, de->d_name);
		_cleanup_free_ char *kernel = xasprintf("%s/vmlinuz", dir);
		struct stat sb;
		if (stat(dir, &sb) < 0 || !S_ISDIR(sb.st_mode))
			continue;
		v = xrealloc(v, (n + 1) * sizeof(*v));
		v[n] = (struct oci_cache_entry){.key = xasprintf("sha256:%s", de->d_name),
						.size = allocated(dir),
						.bootc = access(kernel, F_OK) == 0,
						.users = users_of(st, dir)};
		v[n++].dir = TAKE_PTR(dir);
	}
	if (d)
		closedir(d);
	if (n)
		qsort(v, n, sizeof(*v), entry_cmp);
	*ret = v;
	*ret_n = n;
	return 0;
}

void oci_cache_entries_free(struct oci_cache_entry *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].key);
		free(v[i].dir);
		strv_free(v[i].users);
	}
	free(v);
}

/* A bootc entry VMs use keeps one root filesystem per agent, user and keys (oci_disk.h): remove
 * those no VM's disk is based on (an older agent's, a destroyed VM's key). The caller holds the
 * entry's lock. */
static int prune_roots(const struct store *st, const struct oci_cache_entry *e, char ***removed,
		       struct hutch_error *err)
{
	DIR *d = opendir(e->dir);
	struct dirent *de;
	int r = 0;
	while (d && r == 0 && (de = readdir(d))) {
		size_t n = strlen(de->d_name);
		bool root = (!strncmp(de->d_name, "root-", 5) && n > 9 && !strcmp(de->d_name + n - 4, ".img")) ||
			    !strcmp(de->d_name, "rootfs.img"); /* a bootc build from before the keys */
		if (!root)
			continue;
		_cleanup_free_ char *file = xasprintf("%s/%s", e->dir, de->d_name);
		_cleanup_strv_ char **users = users_of(st, file);
		if (users[0])
			continue;
		if (unlink(file) < 0)
			r = hutch_error_set(err, errno, "cannot remove '%s': %s", file, strerror(errno));
		else
			*removed = strv_push(*removed, xasprintf("%s root filesystem %s", e->key, de->d_name));
	}
	if (d)
		closedir(d);
	return r;
}

int oci_cache_prune(const struct store *st, char ***ret_removed, struct hutch_error *err)
{
	struct oci_cache_entry *v = NULL;
	size_t n = 0;
	int r = oci_cache_list(st, &v, &n, err);
	if (r < 0)
		return r;
	char **removed = xcalloc(1, sizeof(char *));
	for (size_t i = 0; i < n && r == 0; i++) {
		/* the lock oci_disk_ensure builds and looks up under: an entry being made or reused now stays */
		_cleanup_free_ char *lockp = xasprintf("%s.lock", v[i].dir);
		_cleanup_close_ int lock = -1;
		if (store_lock_file(lockp, 0, &lock, NULL) < 0)
			continue;
		_cleanup_strv_ char **again = users_of(st, v[i].dir);
		if (again[0] && v[i].bootc && (r = prune_roots(st, &v[i], &removed, err)) < 0)
			break;
		if (again[0])
			continue;
		r = rm_rf(v[i].dir);
		if (r < 0) {
			r = hutch_error_set(err, -r, "cannot remove '%s': %s", v[i].dir, strerror(-r));
			break;
		}
		unlink(lockp);
		removed = strv_push(removed, xstrdup(v[i].key));
	}
	oci_cache_entries_free(v, n);
	if (r < 0) {
		strv_free(removed);
		return r;
	}
	*ret_removed = removed;
	return 0;
}
