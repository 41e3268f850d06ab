/* VMs from container images. See vm_oci.h. */
#include "vm_oci.h"

#include "backend.h"
#include "image.h"
#include "oci.h"
#include "oci_access.h"
#include "oci_disk.h"
#include "seed.h"

#include <pwd.h>
#include <string.h>

/* A bootc image's kernel and initramfs, linked (or copied) into the VM's dir: the VM boots them
 * whatever happens to the cache later. */
static int keep_file(const char *src, const char *dst, struct hutch_error *err)
{
	unlink(dst);
	if (link(src, dst) == 0)
		return 0;
	return copy_file_atomic(src, dst, VM_OCI_BOOT_MAX, 0600, err);
}

static int boot_files(const struct store *st, const char *name, const struct oci_disk *d, struct hutch_error *err)
{
	_cleanup_free_ char *k = store_vm_file(st, name, VM_OCI_KERNEL), *i = store_vm_file(st, name, VM_OCI_INITRD);
	int r = keep_file(d->kernel, k, err);
	if (r == 0 && d->initrd)
		r = keep_file(d->initrd, i, err);
	if (r < 0)
		unlink(k);
	return r;
}

/* Who logs in to a bootc image's VM, and with which keys: as for an image VM (seed.h), ssh.user or
 * the host user, and ssh.key resolved in the VM's dir (generate makes the VM's own pair there). */
static int login_of(const struct store *st, const struct vm_spec *spec, const char *name, const char **ret_user,
		    char ***ret_keys, struct hutch_error *err)
{
	struct passwd *pw = getpwuid(getuid());
	const char *user = seed_login_user(spec, pw ? pw->pw_name : NULL);
	if (!seed_user_name_valid(user))
		return hutch_error_set(err, EINVAL, "ssh.user '%s' is not a valid user name (want [a-z_][a-z0-9_-]*)",
				       user);
	_cleanup_free_ char *dir = store_vm_dir(st, name);
	int r = seed_ssh_key(spec->ssh_key, dir, ret_keys, NULL, err);
	if (r < 0)
		return hutch_error_wrap(err, "ssh key");
	*ret_user = *ret_keys ? user : NULL;
	return 0;
}

int vm_oci_prepare(const struct store *st, const struct vm_spec *spec, const char *name, bool *ret_seed,
		   struct hutch_error *err)
{
	_cleanup_free_ char *agent = NULL;
	int r = agent_binary_path(&agent, err);
	if (r < 0)
		return r;
	struct oci_access acc = {.agent = agent};
	_cleanup_strv_ char **keys = NULL;
	r = login_of(st, spec, name, &acc.user, &keys, err);
	if (r < 0)
		return r;
	acc.keys = keys;
	struct oci_disk d = {0};
	r = oci_disk_ensure(st, spec->oci, &acc, &d, err);
	if (r < 0)
		return r;
	if (spec->disk && spec->disk < d.size) {
		char want[32], have[32];
		r = hutch_error_set(err, EINVAL, "disk size %s is smaller than the image's root filesystem (%s)",
				    format_size(spec->disk, want, sizeof(want)),
				    format_size(d.size, have, sizeof(have)));
		oci_disk_release(&d);
		return r;
	}
	_cleanup_free_ char *disk = store_vm_file(st, name, "disk.qcow2");
	_cleanup_free_ char *cfg = store_vm_file(st, name, VM_OCI_CONFIG);
	r = copy_file_atomic(d.config, cfg, OCI_JSON_MAX, 0600, err);
	if (r == 0 && d.kernel)
		r = boot_files(st, name, &d, err);
	if (r == 0 && access(disk, F_OK) == 0)
		log_info("keeping the existing disk of '%s'", name); /* as image VMs do: destroy kept it */
	else if (r == 0 && (r = image_make_overlay(d.rootfs, disk, spec->disk ? spec->disk : d.size, err)) < 0)
		unlink(cfg);
	if (r == 0)
		*ret_seed = d.kernel && d.cloud_init;
	oci_disk_release(&d);
	return r < 0 ? hutch_error_wrap(err, "disk") : 0;
}

bool vm_oci_is_bootc(const struct store *st, const struct vm_spec *spec, const char *name)
{
	if (spec->source != SOURCE_OCI)
		return false;
	_cleanup_free_ char *k = store_vm_file(st, name, VM_OCI_KERNEL);
	return access(k, F_OK) == 0;
}

void vm_oci_defaults_release(struct vm_oci_defaults *d)
{
	if (!d)
		return;
	strv_free(d->argv);
	strv_free(d->env);
	free(d->cwd);
	free(d->user);
	memset(d, 0, sizeof(*d));
}

int vm_oci_defaults(const struct store *st, const char *name, struct vm_oci_defaults *ret, struct hutch_error *err)
{
	_cleanup_free_ char *path = store_vm_file(st, name, VM_OCI_CONFIG);
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	if (access(path, F_OK) < 0)
		return hutch_error_set(err, ENOENT, "'%s' is not made from a container image: give a command", name);
	int r = read_file(path, OCI_JSON_MAX, &buf, &len, err);
	if (r < 0)
		return r;
	struct oci_config c = {0};
	r = oci_parse_config(buf, len, &c, err);
	if (r < 0)
		return hutch_error_wrap(err, "'%s'", path);
	struct vm_oci_defaults d = {0};
	for (char **v = c.entrypoint; v && *v; v++)
		d.argv = strv_push(d.argv, xstrdup(*v));
	for (char **v = c.cmd; v && *v; v++)
		d.argv = strv_push(d.argv, xstrdup(*v));
	d.env = TAKE_PTR(c.env);
	d.cwd = TAKE_PTR(c.workdir);
	if (c.user) {
		/* USER[:GROUP]: the agent runs as the user with that user's groups */
		d.user = xstrndup(c.user, strcspn(c.user, ":"));
	}
	oci_config_release(&c);
	if (!d.argv || !d.argv[0]) {
		vm_oci_defaults_release(&d);
		return hutch_error_set(err, EINVAL, "the image of '%s' has no Entrypoint or Cmd: give a command", name);
	}
	*ret = d;
	return 0;
}
