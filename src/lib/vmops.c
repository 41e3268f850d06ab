#include "vmops.h"

#include "backend_libvirt.h"

#include "autostart.h"
#include "shares.h"
#include "client.h"
#include "image.h"
#include "lazylib.h"
#include "netvm.h"
#include "qemu.h"
#include "seed.h"
#include "template_net.h"
#include "vm_oci.h"
#include "warm.h"

#include <pwd.h>

#include <string.h>
#include <sys/stat.h>

int vm_instance_name(const char *name, const char *instance, char **ret, struct hutch_error *err)
{
	int r = store_check_name(name, err);
	if (r < 0)
		return r;
	_cleanup_free_ char *full = instance ? xasprintf("%s-%s", name, instance) : xstrdup(name);
	if (instance && (!*instance || !store_name_valid(full)))
		return hutch_error_set(err, EINVAL, "invalid instance name '%s': '%s' is not a valid VM name", instance,
				       full);
	*ret = TAKE_PTR(full);
	return 0;
}

static int resolve_spec(struct store *st, const struct create_opts *o, struct vm_spec **ret, struct hutch_error *err)
{
	if (o->image) {
		_cleanup_free_ char *url = NULL, *sum = NULL;
		int r = image_resolve_catalog(o->image, &url, &sum, err);
		if (r < 0)
			return r;
		struct vm_spec *s = spec_new(o->name);
		s->source = SOURCE_IMAGE;
		s->image = TAKE_PTR(url);
		s->checksum = o->checksum ? xstrdup(o->checksum) : TAKE_PTR(sum);
		*ret = s;
		return 0;
	}
	if (o->oci) {
		struct vm_spec *s = spec_new(o->name);
		s->source = SOURCE_OCI;
		s->oci = xstrdup(o->oci);
		*ret = s;
		return 0;
	}
	if (o->template) {
		if (strcmp(o->template, "micro") != 0)
			return hutch_error_set(err, EINVAL, "unknown template '%s' (the built-in one is 'micro')",
					       o->template);
		struct vm_spec *s = spec_new(o->name);
		s->source = SOURCE_TEMPLATE;
		s->template = xstrdup(o->template);
		*ret = s;
		return 0;
	}
	if (o->from)
		return spec_find_in_file(o->from, o->name, ret, err);
	_cleanup_free_ char *cfg = xasprintf("%s/hutch.yml", st->config_dir);
	if (access(cfg, F_OK) == 0)
		return spec_find_in_file(cfg, o->name, ret, err);
	if (!strcmp(o->name, "micro")) {
		/* `micro` names the built-in template even without a spec file. */
		struct vm_spec *s = spec_new(o->name);
		s->template = xstrdup("micro");
		*ret = s;
		return 0;
	}
	return hutch_error_set(err, ENOENT,
			       "no spec for '%s': pass --template micro or --from FILE.yml, or define it in %s",
			       o->name, cfg);
}

/* The base image for an image VM: catalog names resolve, and a checksum is required. */
static int fetch_base(struct store *st, struct vm_spec *spec, const struct create_opts *o, bool refresh,
		      char **ret_path, struct hutch_error *err)
{
	if (!spec->checksum) {
		_cleanup_free_ char *url = NULL, *sum = NULL;
		if (image_resolve_catalog(spec->image, &url, &sum, NULL) == 0 && sum) {
			spec->checksum = TAKE_PTR(sum);
			free(spec->image);
			spec->image = TAKE_PTR(url);
		}
	}
	if (!spec->checksum)
		return hutch_error_set(
			err, EINVAL,
			"image '%s' has no checksum: set source.checksum (sha256:HEX or sha256:URL-of-SUMS)",
			spec->image);
	unsigned flags = refresh || o->pull ? IMAGE_FETCH_REFRESH : 0;
	int r = image_fetch(st, spec->image, spec->checksum, flags, o->progress, ret_path, err);
	return r < 0 ? hutch_error_wrap(err, "fetch") : 0;
}

static const char *host_user(void)
{
	struct passwd *pw = getpwuid(getuid());
	return pw ? pw->pw_name : NULL;
}

/* cloud-init seed + keys: regenerated on every create, so spec edits apply without a rebuild. */
static int make_seed(struct store *st, const struct vm_spec *spec, const char *name, struct hutch_error *err)
{
	_cleanup_free_ char *dir = store_vm_dir(st, name);
	_cleanup_strv_ char **keys = NULL;
	_cleanup_free_ char *priv = NULL;
	lazy_archive_preload_start(); /* for the ISO, while ssh-keygen runs */
	int r = seed_ssh_key(spec->ssh_key, dir, &keys, &priv, err);
	lazy_archive_preload_join();
	if (r < 0)
		return hutch_error_wrap(err, "ssh key");
	/* A new host key on every create, known to the host before the first boot: `hutch ssh` checks
	 * it strictly from the first connection, and a re-created VM never looks like a changed host. */
	_cleanup_free_ char *host_priv = NULL, *host_pub = NULL;
	r = seed_host_key(dir, name, &host_priv, &host_pub, err);
	if (r < 0)
		return r;
	_cleanup_free_ char *agent = NULL;
	if (agent_binary_path(&agent, NULL) < 0)
		log_warn("hutch-agent not found: exec, run and cp will not work in '%s'", name);
	_cleanup_free_ char *iid = seed_new_instance_id();
	struct seed_input in = {
		.spec = spec,
		.hostname = name,
		.instance_id = iid,
		.default_user = host_user(),
		.authorized_keys = keys,
		.agent_path = agent,
		.host_key_private = host_priv,
		.host_key_public = host_pub,
	};
	_cleanup_free_ char *ud = NULL, *md = NULL, *nc = NULL;
	r = seed_render(&in, &ud, &md, &nc, err);
	if (r < 0)
		return hutch_error_wrap(err, "cloud-init");
	_cleanup_free_ char *iso = store_vm_file(st, name, "seed.iso");
	_cleanup_strv_ char **nft = spec->is_netvm ? template_nft_files(NULL) : NULL; /* for the NAT */
	r = seed_write_iso_nft(iso, ud, md, nc, agent, NULL, nft, err);
	if (r < 0)
		return hutch_error_wrap(err, "seed");
	/* The same keys go in through SMBIOS type 11 at start; keep them beside the disk. */
	struct strbuf sb = STRBUF_INIT;
	for (size_t i = 0; keys && keys[i]; i++)
		strbuf_addf(&sb, "%s\n", keys[i]);
	_cleanup_free_ char *kp = store_vm_file(st, name, "authorized_keys");
	r = write_file_atomic(kp, strbuf_str(&sb), sb.len, 0600, err);
	strbuf_release(&sb);
	if (r < 0)
		return r;
	_cleanup_free_ char *kh = store_vm_file(st, name, "known_hosts");
	_cleanup_free_ char *line = seed_known_hosts_line(name, host_pub);
	if (!line)
		return hutch_error_set(err, EINVAL, "host key: not a public key line");
	return write_file_atomic(kh, line, strlen(line), 0600, err);
}

static int prepare_image_vm(struct store *st, const struct create_opts *o, struct vm_spec *spec, const char *name,
			    struct hutch_error *err)
{
	_cleanup_free_ char *base = NULL;
	int r = fetch_base(st, spec, o, false, &base, err);
	if (r < 0)
		return r;
	/* qemu-img writes the overlay while the seed (key, cloud-init, ISO) is made. */
	_cleanup_free_ char *disk = store_vm_file(st, name, "disk.qcow2");
	struct image_overlay_job *job = NULL;
	if (access(disk, F_OK) == 0)
		log_info("keeping the existing disk of '%s'", name);
	else if ((r = image_overlay_start(base, disk, spec->disk, &job, err)) < 0)
		return hutch_error_wrap(err, "disk");
	if (spec->firmware == FIRMWARE_UEFI || spec->firmware == FIRMWARE_UEFI_SECURE) {
		_cleanup_free_ char *code = NULL, *vars = NULL;
		_cleanup_free_ char *nvram = store_vm_file(st, name, "nvram.fd");
		r = qemu_firmware_paths(spec->firmware, &code, &vars, err);
		if (r == 0 && access(nvram, F_OK) < 0 && (r = copy_file_atomic(vars, nvram, 64u << 20, 0600, err)) < 0)
			hutch_error_wrap(err, "nvram");
	}
	if (r == 0)
		r = make_seed(st, spec, name, err);
	if (r < 0) {
		image_overlay_abort(job);
		return r;
	}
	if (job && (r = image_overlay_finish(job, err)) < 0)
		return hutch_error_wrap(err, "disk");
	return 0;
}

int vm_build(struct store *st, const struct create_opts *o, char **ret_image_path, struct hutch_error *err)
{
	_cleanup_(spec_freep) struct vm_spec *spec = NULL;
	int r = resolve_spec(st, o, &spec, err);
	if (r < 0)
		return r;
	if (spec->source != SOURCE_IMAGE) {
		*ret_image_path = NULL; /* the micro template is built at start */
		return 0;
	}
	return fetch_base(st, spec, o, true, ret_image_path, err); /* build asks upstream again */
}

static void pass_warnings(char **warnings, char ***out)
{
	for (size_t i = 0; warnings && warnings[i]; i++) {
		if (out)
			*out = strv_push(*out, TAKE_PTR(warnings[i]));
		else
			log_warn("%s", warnings[i]);
	}
}

/* The VM exists by now: an autostart that cannot be set up is a warning, and 'hutch autostart NAME on'
 * tries again. */
static void autostart_after_create(const char *name, const struct vm_spec *spec, char ***warnings)
{
	struct hutch_error aerr = {0};
	_cleanup_(autostart_result_releasep) struct autostart_result ar = {0};
	if (autostart_enable(name, spec, &ar, &aerr) < 0) {
		ar.warnings = strv_push(ar.warnings, xasprintf("autostart: %s", aerr.msg));
		hutch_error_clear(&aerr);
	}
	pass_warnings(ar.warnings, warnings);
}

/* Nothing half-made stays behind after a failed create; a disk kept by an earlier destroy survives. */
static void undo_create(struct store *st, const char *name, bool keep_disk)
{
	static const char *const made[] = {
		"disk.qcow2",  "seed.iso",	 "authorized_keys",	 "nvram.fd",
		"id_ed25519",  "id_ed25519.pub", "ssh_host_ed25519_key", "ssh_host_ed25519_key.pub",
		"known_hosts", VM_OCI_CONFIG,	 VM_OCI_KERNEL,		 VM_OCI_INITRD};
	/* first the spec, whose presence makes the VM exist (libvirt's define comes after it) */
	_cleanup_free_ char *spec = store_vm_file(st, name, "spec.yml");
	unlink(spec);
	for (size_t i = keep_disk ? 1 : 0; i < ARRAY_SIZE(made); i++) {
		_cleanup_free_ char *p = store_vm_file(st, name, made[i]);
		unlink(p);
	}
	_cleanup_free_ char *dir = store_vm_dir(st, name);
	rmdir(dir);
}

int vm_create(struct store *st, const struct create_opts *o, char **ret_name, struct hutch_error *err)
{
	_cleanup_free_ char *name = NULL;
	int r = vm_instance_name(o->name, o->instance, &name, err);
	if (r < 0)
		return r;
	_cleanup_(spec_freep) struct vm_spec *spec = NULL;
	r = resolve_spec(st, o, &spec, err);
	if (r < 0)
		return r;
	free(spec->name);
	spec->name = xstrdup(name);
	if (o->memory)
		spec->memory = o->memory;
	if (o->cpus)
		spec->cpus = o->cpus;
	if (o->accel != ACCEL_UNSET)
		spec->accel = o->accel;
	if (o->disk)
		spec->disk = o->disk;
	if (o->ephemeral)
		spec->disposable = true;
	if (o->root_size)
		spec->root_size = o->root_size;
	r = shares_apply_create(st, o->name, o->shares, spec, err);
	if (r < 0)
		return r;
	r = backend_choose(st, spec, o->backend, o->uri, err);
	if (r < 0)
		return r;
	spec_apply_defaults(spec);
	if (spec->memory < 64ull << 20)
		return hutch_error_set(err, EINVAL, "memory %llu bytes is too small (at least 64M)",
				       (unsigned long long)spec->memory);
	if (spec->cpus < 1 || spec->cpus > 256)
		return hutch_error_set(err, EINVAL, "cpus must be between 1 and 256");

	_cleanup_close_ int op = -1;
	r = store_lock_op(st, name, OP_LOCK_TIMEOUT_MS, &op, err);
	if (r < 0)
		return r;
	if (store_vm_exists(st, name))
		return hutch_error_set(err, EEXIST, "already exists (destroy it first, or use -i INSTANCE)");
	r = net_check_create(st, spec, err);
	if (r < 0)
		return r;
	_cleanup_free_ char *dir = store_vm_dir(st, name);
	r = mkdir_p(dir, 0700);
	if (r < 0)
		return hutch_error_set(err, -r, "cannot create '%s': %s", dir, strerror(-r));
	_cleanup_free_ char *disk = store_vm_file(st, name, "disk.qcow2");
	bool had_disk = access(disk, F_OK) == 0, seed = false;
	if (spec->source == SOURCE_IMAGE)
		r = prepare_image_vm(st, o, spec, name, err);
	else if (spec->source == SOURCE_OCI && (r = vm_oci_prepare(st, spec, name, &seed, err)) == 0 && seed)
		r = make_seed(st, spec, name, err); /* a bootc image with cloud-init: as for image VMs */
	if (r == 0) {
		/* spec.yml last: its presence is what makes the VM exist */
		_cleanup_free_ char *yaml = spec_render_yaml(spec);
		_cleanup_free_ char *path = store_vm_file(st, name, "spec.yml");
		r = write_file_atomic(path, yaml, strlen(yaml), 0600, err);
	}
	if (r == 0 && spec->backend && !strcmp(spec->backend, "libvirt")) {
		struct vm vm = {.store = st, .name = name, .spec = spec};
		r = libvirt_define(&vm, err);
	}
	if (r < 0) {
		undo_create(st, name, had_disk);
		return r;
	}
	if (spec->autostart && !o->ephemeral)
		autostart_after_create(name, spec, o->warnings);
	*ret_name = TAKE_PTR(name);
	return 0;
}

int vm_start(struct store *st, const char *name, const struct start_opts *o, struct start_result *ret,
	     struct hutch_error *err)
{
	int r = store_check_name(name, err);
	if (r < 0)
		return r;
	/* before the lock, so a typo leaves no lock file behind */
	if (!store_vm_exists(st, name))
		return hutch_error_set(err, ENOENT, "no VM named '%s' (see 'hutch list -a', or create it)", name);
	_cleanup_close_ int op = -1;
	r = store_lock_op(st, name, OP_LOCK_TIMEOUT_MS, &op, err);
	if (r < 0)
		return r;
	/* a libvirt domain destroyed behind hutch's back: its supervisor is on its way out */
	if (store_is_running(st, name) && !libvirt_settle(st, name))
		return hutch_error_set(err, EALREADY, "already running");
	struct vm vm;
	r = vm_load(st, name, &vm, err);
	if (r < 0)
		return r;
	const struct backend_ops *b = backend_for(vm.spec, err);
	r = b ? net_start_netvm(st, vm.spec, o, err) : -ENOTSUP;
	if (r == 0)
		r = b->start(&vm, o, ret, err);
	vm_release(&vm);
	return r;
}

static int stop_locked(struct store *st, const char *name, const struct stop_opts *o, struct stop_result *ret,
		       struct hutch_error *err)
{
	struct vm vm;
	int r;
	r = vm_load(st, name, &vm, err);
	if (r < 0) {
		/* A broken spec must not keep a running VM from being stopped. */
		if (!store_is_running(st, name))
			return r;
		hutch_error_clear(err);
		vm = (struct vm){.store = st, .name = xstrdup(name), .spec = spec_new(name)};
	}
	const struct backend_ops *b = backend_for(vm.spec, err);
	r = b ? b->stop(&vm, o, ret, err) : -ENOTSUP;
	vm_release(&vm);
	return r;
}

int vm_stop(struct store *st, const char *name, const struct stop_opts *o, struct stop_result *ret,
	    struct hutch_error *err)
{
	int r = store_check_name(name, err);
	if (r < 0)
		return r;
	if (!store_vm_exists(st, name) && !store_is_running(st, name))
		return hutch_error_set(err, ENOENT, "no VM named '%s'", name);
	/* Stops serialise with start and destroy; a second stop waits, then finds it stopped. */
	_cleanup_close_ int op = -1;
	r = store_lock_op(st, name, o->timeout_ms + OP_LOCK_TIMEOUT_MS, &op, err);
	if (r < 0)
		return r;
	return stop_locked(st, name, o, ret, err);
}

int vm_destroy(struct store *st, const char *name, const struct destroy_opts *o, struct hutch_error *err)
{
	int r = store_check_name(name, err);
	if (r < 0)
		return r;
	_cleanup_free_ char *dir = store_vm_dir(st, name);
	struct stat sb;
	if (stat(dir, &sb) < 0)
		return hutch_error_set(err, ENOENT, "no VM named '%s'", name);
	_cleanup_close_ int op = -1;
	r = store_lock_op(st, name, OP_LOCK_TIMEOUT_MS, &op, err);
	if (r < 0)
		return r;
	/* a libvirt VM whose domain just stopped: its supervisor lets go of the lock within seconds */
	if (store_is_running(st, name) && !libvirt_settle(st, name)) {
		if (!o->force)
			return hutch_error_set(err, EBUSY, "is running: stop it first, or pass --force");
		struct stop_opts so = {.force = true, .timeout_ms = 10000};
		struct stop_result sr;
		r = stop_locked(st, name, &so, &sr, err);
		if (r < 0)
			return r;
	}
	/* A libvirt VM: its domain goes first, running or not (it holds no hutch lock). */
	struct vm lvm;
	if (vm_load(st, name, &lvm, NULL) == 0) {
		bool lv = lvm.spec->backend && !strcmp(lvm.spec->backend, "libvirt");
		r = lv ? libvirt_undefine(&lvm, o->force, err) : 0;
		vm_release(&lvm);
		if (r < 0)
			return r;
	}
	/* The unit first: one left behind would start a VM that no longer exists at every boot. */
	_cleanup_(autostart_result_releasep) struct autostart_result ar = {0};
	if ((r = autostart_disable(name, &ar, err)) < 0)
		return hutch_error_wrap(err, "autostart");
	pass_warnings(ar.warnings, o->warnings);
	/* Its warm template (template save NAME, or its first run --rm) serves no other VM, and holds
	 * hundreds of MiB: it goes with it. An instance of a run --rm, whose warm-template file names
	 * the template it was cloned from, leaves that template alone. */
	_cleanup_free_ char *cloned_from = warm_instance_template(st, name);
	if (!cloned_from)
		warm_remove(st, name, NULL);
	_cleanup_free_ char *disk = store_vm_file(st, name, "disk.qcow2");
	if (!o->disk && access(disk, F_OK) == 0) {
		/* keep the disk: remove everything else */
		static const char *const files[] = {"spec.yml",
						    "state.json",
						    "seed.iso",
						    "console.log",
						    "qemu.log",
						    "monitor.log",
						    "nvram.fd",
						    "id_ed25519",
						    "id_ed25519.pub",
						    "known_hosts",
						    "tpm",
						    "ssh_host_ed25519_key",
						    "ssh_host_ed25519_key.pub",
						    "host_key_unverified"};
		for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
			_cleanup_free_ char *p = store_vm_file(st, name, files[i]);
			rm_rf(p);
		}
		return 0;
	}
	r = rm_rf(dir);
	if (r < 0)
		return hutch_error_set(err, -r, "cannot remove '%s': %s", dir, strerror(-r));
	/* Unlinked while held: a waiter re-checks the inode after locking and starts over. */
	_cleanup_free_ char *oplock = xasprintf("%s/vms/.%s.lock", st->data_dir, name);
	unlink(oplock);
	return 0;
}
