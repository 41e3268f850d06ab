#include "vmops.h"

#include "client.h"

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
	return hutch_error_set(err, ENOENT, "no spec for '%s': pass --template micro or --from FILE.yml, or define it in %s",
			       o->name, cfg);
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
	if (o->disk)
		spec->disk = o->disk;
	if (o->ephemeral)
		spec->disposable = true;
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
	_cleanup_free_ char *dir = store_vm_dir(st, name);
	r = mkdir_p(dir, 0700);
	if (r < 0)
		return hutch_error_set(err, -r, "cannot create '%s': %s", dir, strerror(-r));
	_cleanup_free_ char *yaml = spec_render_yaml(spec);
	_cleanup_free_ char *path = store_vm_file(st, name, "spec.yml");
	r = write_file_atomic(path, yaml, strlen(yaml), 0600, err);
	if (r < 0)
		return r;
	*ret_name = TAKE_PTR(name);
	return 0;
}

int vm_start(struct store *st, const char *name, const struct start_opts *o, struct start_result *ret,
	     struct hutch_error *err)
{
	int r = store_check_name(name, err);
	if (r < 0)
		return r;
	_cleanup_close_ int op = -1;
	r = store_lock_op(st, name, OP_LOCK_TIMEOUT_MS, &op, err);
	if (r < 0)
		return r;
	if (store_is_running(st, name))
		return hutch_error_set(err, EALREADY, "already running");
	struct vm vm;
	r = vm_load(st, name, &vm, err);
	if (r < 0)
		return r;
	const struct backend_ops *b = backend_for(vm.spec, err);
	r = b ? b->start(&vm, o, ret, err) : -ENOTSUP;
	vm_release(&vm);
	return r;
}

int vm_stop(struct store *st, const char *name, const struct stop_opts *o, struct stop_result *ret,
	    struct hutch_error *err)
{
	int r = store_check_name(name, err);
	if (r < 0)
		return r;
	struct vm vm;
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

int vm_destroy(struct store *st, const char *name, const struct destroy_opts *o, struct hutch_error *err)
{
	int r = store_check_name(name, err);
	if (r < 0)
		return r;
	_cleanup_close_ int op = -1;
	r = store_lock_op(st, name, OP_LOCK_TIMEOUT_MS, &op, err);
	if (r < 0)
		return r;
	_cleanup_free_ char *dir = store_vm_dir(st, name);
	struct stat sb;
	if (stat(dir, &sb) < 0)
		return hutch_error_set(err, ENOENT, "no VM named '%s'", name);
	if (store_is_running(st, name)) {
		if (!o->force)
			return hutch_error_set(err, EBUSY, "is running: stop it first, or pass --force");
		struct stop_opts so = {.force = true, .timeout_ms = 10000};
		struct stop_result sr;
		r = vm_stop(st, name, &so, &sr, err);
		if (r < 0)
			return r;
	}
	_cleanup_free_ char *disk = store_vm_file(st, name, "disk.qcow2");
	if (!o->disk && access(disk, F_OK) == 0) {
		/* keep the disk: remove everything else */
		static const char *const files[] = {"spec.yml", "state.json", "seed.iso", "console.log", "qemu.log",
						    "monitor.log", "nvram.fd", "id_ed25519", "id_ed25519.pub",
						    "known_hosts", "tpm"};
		for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
			_cleanup_free_ char *p = store_vm_file(st, name, files[i]);
			rm_rf(p);
		}
		return 0;
	}
	r = rm_rf(dir);
	if (r < 0)
		return hutch_error_set(err, -r, "cannot remove '%s': %s", dir, strerror(-r));
	return 0;
}
