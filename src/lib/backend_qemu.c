/* The embedded QEMU backend: start spawns the monitor, the rest talks to it. */
#include "backend.h"
#include "backend_libvirt.h"

#include "client.h"
#include "config.h"
#include "monitor.h"
#include "netvm.h"
#include "qemu.h"
#include "ready.h"
#include "seed.h"
#include "session.h"
#include "shares.h"
#include "template.h"
#include "vm_oci.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

int vm_load(struct store *st, const char *name, struct vm *ret, struct hutch_error *err)
{
	memset(ret, 0, sizeof(*ret));
	int r = store_check_name(name, err);
	if (r < 0)
		return r;
	_cleanup_free_ char *path = store_vm_file(st, name, "spec.yml");
	if (access(path, F_OK) < 0)
		return hutch_error_set(err, ENOENT, "no VM named '%s' (see 'hutch list -a', or create it)", name);
	struct vm_spec *spec = NULL;
	r = spec_find_in_file(path, name, &spec, err);
	if (r < 0)
		return r;
	spec_apply_defaults(spec);
	ret->store = st;
	ret->name = xstrdup(name);
	ret->spec = spec;
	return 0;
}

void vm_release(struct vm *vm)
{
	free(vm->name);
	spec_free(vm->spec);
	memset(vm, 0, sizeof(*vm));
}

int agent_binary_path(char **ret, struct hutch_error *err)
{
	const char *env = getenv("HUTCH_AGENT");
	if (env && *env) {
		if (access(env, R_OK) < 0)
			return hutch_error_set(err, ENOENT, "HUTCH_AGENT='%s' is not readable", env);
		*ret = xstrdup(env);
		return 0;
	}
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = 0;
		char *slash = strrchr(self, '/');
		if (slash) {
			*slash = 0;
			const char *cands[] = {"%s/hutch-agent", "%s/../libexec/hutch/hutch-agent",
					       "%s/../lib/hutch/hutch-agent"};
			for (size_t i = 0; i < ARRAY_SIZE(cands); i++) {
				_cleanup_free_ char *p = xasprintf(cands[i], self);
				if (access(p, R_OK) == 0) {
					*ret = realpath(p, NULL);
					if (*ret)
						return 0;
				}
			}
		}
	}
	return hutch_error_set(err, ENOENT,
			       "hutch-agent not found beside the hutch binary: rebuild, or set HUTCH_AGENT");
}

/* Image VMs: the overlay, the seed, firmware and NVRAM, and the SMBIOS credential made at create. */
static int image_plan(struct vm *vm, struct qemu_plan *p, struct hutch_error *err)
{
	p->disk = store_vm_file(vm->store, vm->name, "disk.qcow2");
	if (access(p->disk, F_OK) < 0)
		return hutch_error_set(err, ENOENT, "no disk at '%s': destroy and create the VM again", p->disk);
	_cleanup_free_ char *seed = store_vm_file(vm->store, vm->name, "seed.iso");
	if (access(seed, F_OK) == 0)
		p->seed = TAKE_PTR(seed);
	if (vm->spec->firmware == FIRMWARE_UEFI || vm->spec->firmware == FIRMWARE_UEFI_SECURE) {
		_cleanup_free_ char *vars = NULL;
		int r = qemu_firmware_paths(vm->spec->firmware, &p->fw_code, &vars, err);
		if (r < 0)
			return r;
		p->nvram = store_vm_file(vm->store, vm->name, "nvram.fd");
		if (access(p->nvram, F_OK) < 0)
			return hutch_error_set(err, ENOENT, "no NVRAM at '%s': destroy and create the VM again",
					       p->nvram);
	}
	_cleanup_free_ char *kp = store_vm_file(vm->store, vm->name, "authorized_keys");
	char *text = NULL;
	size_t len;
	if (read_file(kp, 1 << 20, &text, &len, NULL) == 0) {
		char **keys = NULL;
		for (char *save = NULL, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
			if (*line)
				keys = strv_push(keys, xstrdup(line));
		_cleanup_free_ char *full = keys ? seed_smbios_credential(keys) : NULL;
		const char *prefix = "type=11,value=";
		if (full && !strncmp(full, prefix, strlen(prefix)))
			p->smbios = xstrdup(full + strlen(prefix));
		strv_free(keys);
		free(text);
	}
	return 0;
}

/* The micro template, which is also the guest the KVM probe boots. */
static int micro_ensure(struct store *st, const char *kernel, struct micro_template *ret, uint64_t *ret_ms,
			struct hutch_error *err)
{
	_cleanup_free_ char *agent = NULL;
	int r = agent_binary_path(&agent, err);
	if (r < 0)
		return r;
	_cleanup_free_ char *cache = xasprintf("%s/micro", st->cache_dir);
	struct template_inputs in = {.kernel = kernel, .agent = agent, .cache_dir = cache};
	uint64_t t0 = now_ms();
	r = template_micro_ensure(&in, ret, err);
	if (ret_ms)
		*ret_ms = now_ms() - t0;
	return r;
}

static int probe_guest(void *userdata, char **ret_kernel, char **ret_initrd, struct hutch_error *err)
{
	struct micro_template t = {0};
	int r = micro_ensure(userdata, NULL, &t, NULL, err);
	if (r < 0)
		return r;
	*ret_kernel = TAKE_PTR(t.kernel);
	*ret_initrd = TAKE_PTR(t.initrd);
	micro_template_release(&t);
	return 0;
}

int store_accel(struct store *st, const char *qemu, enum accel_mode mode, enum plan_use use, bool force_probe,
		struct accel_result *ret, struct hutch_error *err)
{
	_cleanup_free_ char *found = NULL;
	/* tcg asks nothing of QEMU's binary; the others key the verdict by it */
	if (!qemu && (mode != ACCEL_TCG || force_probe)) {
		int r = qemu_find_binary(&found, err);
		if (r < 0)
			return r;
		qemu = found;
	}
	struct accel_request rq = {
		.mode = mode,
		.may_probe = use == PLAN_START,
		.render = use == PLAN_RENDER,
		.force_probe = force_probe,
		.qemu = qemu,
		.cache_dir = st->cache_dir,
		.run_dir = st->runtime_dir,
		.guest = probe_guest,
		.userdata = st,
	};
	return accel_resolve(&rq, ret, err);
}

int vm_accel(struct vm *vm, const char *qemu, enum plan_use use, struct accel_result *ret, struct hutch_error *err)
{
	enum accel_mode mode;
	int r = config_accel_mode(vm->store, vm->spec->accel, &mode, err);
	if (r < 0)
		return r;
	return store_accel(vm->store, qemu, mode, use, false, ret, err);
}

char *start_accel_warning(const struct start_result *r)
{
	if (r->kvm || !r->accel_warn)
		return NULL;
	return xasprintf("using TCG (slow): %s; see 'hutch doctor'", r->accel_why);
}

int qemu_plan_make(struct vm *vm, enum plan_use use, struct qemu_plan *ret, struct hutch_error *err)
{
	memset(ret, 0, sizeof(*ret));
	_cleanup_free_ char *tpm_sock = NULL;
	int r = qemu_find_binary(&ret->binary, err);
	if (r < 0)
		goto fail;
	ret->vm_dir = store_vm_dir(vm->store, vm->name);
	ret->run_dir = store_run_dir(vm->store, vm->name);
	ret->accel = xcalloc(1, sizeof(*ret->accel));
	struct accel_result ar;
	r = vm_accel(vm, ret->binary, use, &ar, err);
	if (r < 0)
		goto fail;
	*ret->accel = ar.info;
	if (!ret->accel->kvm && vm->spec->source != SOURCE_IMAGE)
		ret->accel->tsc_khz = accel_tsc_khz(vm->store->cache_dir);

	bool own_kernel = false;
	if (vm->spec->source == SOURCE_OCI) {
		/* a container image: its disk is the root under micro's kernel (agent/rootfs.c), or under
		 * its own kernel when it is a bootc image (vm_oci.h) */
		ret->disk = store_vm_file(vm->store, vm->name, "disk.qcow2");
		if (access(ret->disk, F_OK) < 0) {
			r = hutch_error_set(err, ENOENT, "no disk at '%s': destroy and create the VM again", ret->disk);
			goto fail;
		}
		_cleanup_free_ char *k = store_vm_file(vm->store, vm->name, VM_OCI_KERNEL);
		_cleanup_free_ char *i = store_vm_file(vm->store, vm->name, VM_OCI_INITRD);
		_cleanup_free_ char *seed = store_vm_file(vm->store, vm->name, "seed.iso");
		if (access(k, F_OK) == 0) {
			own_kernel = true;
			ret->kernel = TAKE_PTR(k);
			ret->initrd = access(i, F_OK) == 0 ? TAKE_PTR(i) : NULL;
			ret->seed = access(seed, F_OK) == 0 ? TAKE_PTR(seed) : NULL; /* cloud-init's (vm_oci.h) */
		}
	}
	if (own_kernel) {
		/* the image's kernel boots with the image's own init */
	} else if (vm->spec->source != SOURCE_IMAGE) {
		if (vm->spec->template && strcmp(vm->spec->template, "micro") != 0) {
			r = hutch_error_set(err, EINVAL, "unknown template '%s' (the built-in one is 'micro')",
					    vm->spec->template);
			goto fail;
		}
		struct micro_template t = {0};
		r = micro_ensure(vm->store, vm->spec->kernel, &t, &ret->template_ms, err);
		if (r < 0)
			goto fail;
		ret->kernel = TAKE_PTR(t.kernel);
		ret->initrd = TAKE_PTR(t.initrd);
		ret->kernel_release = TAKE_PTR(t.kernel_release);
		micro_template_release(&t);
	} else {
		r = image_plan(vm, ret, err);
		if (r < 0)
			goto fail;
	}
	ret->net = xcalloc(1, sizeof(*ret->net));
	r = net_plan_make(vm->store, vm->spec, ret->net, err);
	if (r < 0)
		goto fail;
	ret->shares = xcalloc(1, sizeof(*ret->shares));
	r = shares_plan_vm(vm->store, vm->name, vm->spec, ret->run_dir,
			   use == PLAN_RENDER ? SHARES_RENDER : SHARES_START, ret->shares, err);
	if (r < 0)
		goto fail;
	struct qemu_config c = {
		.name = vm->name,
		.spec = vm->spec,
		.binary = ret->binary,
		.run_dir = ret->run_dir,
		.vm_dir = ret->vm_dir,
		.kernel = ret->kernel,
		.initrd = ret->initrd,
		.own_kernel = own_kernel,
		.disk = ret->disk,
		.seed = ret->seed,
		.fw_code = ret->fw_code,
		.nvram = ret->nvram,
		.smbios_cred = ret->smbios,
		.accel = ret->accel,
		.shares = ret->shares,
		.net = ret->net,
	};
	tpm_sock = vm->spec->tpm ? xasprintf("%s/swtpm.sock", ret->run_dir) : NULL;
	c.tpm_sock = tpm_sock;
	r = qemu_build_argv(&c, &ret->argv, err);
	if (r < 0)
		goto fail;
	return 0;
fail:
	qemu_plan_release(ret);
	return r;
}

void qemu_plan_release(struct qemu_plan *p)
{
	free(p->binary);
	free(p->kernel);
	free(p->initrd);
	free(p->kernel_release);
	free(p->disk);
	free(p->seed);
	free(p->fw_code);
	free(p->nvram);
	free(p->smbios);
	free(p->vm_dir);
	free(p->run_dir);
	free(p->accel);
	shares_release(p->shares);
	free(p->shares);
	if (p->net)
		net_plan_release(p->net);
	free(p->net);
	strv_free(p->argv);
	memset(p, 0, sizeof(*p));
}

/* ---- start: spawn the monitor and wait for its word ---- */

static int spawn_monitor(struct vm *vm, const struct start_opts *o, int lock_fd, int notify_w, struct hutch_error *err)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return hutch_error_set(err, errno, "cannot find the hutch binary: %s", strerror(errno));
	self[n] = 0;
	_cleanup_free_ char *logp = store_vm_file(vm->store, vm->name, "monitor.log");
	char lockfd_s[16], notify_s[16], timeout_s[32];
	snprintf(lockfd_s, sizeof(lockfd_s), "%d", lock_fd);
	snprintf(notify_s, sizeof(notify_s), "%d", notify_w);
	snprintf(timeout_s, sizeof(timeout_s), "%llu", (unsigned long long)o->timeout_ms);
	pid_t pid = fork();
	if (pid < 0)
		return hutch_error_set(err, errno, "fork: %s", strerror(errno));
	if (pid == 0) {
		/* Daemonize: new session, then a grandchild nobody waits on, reparented to init. */
		setsid();
		pid_t g = fork();
		if (g != 0)
			_exit(g < 0 ? 1 : 0);
		int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
		int logfd = open(logp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		dup2(nul, 0);
		dup2(nul, 1);
		dup2(logfd >= 0 ? logfd : nul, 2);
		fd_set_cloexec(lock_fd, false);
		fd_set_cloexec(notify_w, false);
		char *argv[] = {
			self, "__monitor", vm->name, lockfd_s, notify_s, timeout_s, o->ephemeral ? "ephemeral" : "keep",
			NULL};
		execv(self, argv);
		_exit(127);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return 0;
}

static int read_notify(int fd, uint64_t timeout_ms, json_object **ret, struct hutch_error *err)
{
	struct strbuf sb = STRBUF_INIT;
	uint64_t deadline = now_ms() + timeout_ms;
	for (;;) {
		uint64_t t = now_ms();
		if (t >= deadline) {
			strbuf_release(&sb);
			return hutch_error_set(err, ETIMEDOUT, "the monitor did not report within %llu s",
					       (unsigned long long)(timeout_ms / 1000));
		}
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int r = poll(&p, 1, (int)(deadline - t));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			continue;
		char buf[4096];
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (sb.len + (size_t)n > 65536)
			break;
		strbuf_add(&sb, buf, (size_t)n);
	}
	json_object *o = sb.len ? json_tokener_parse(sb.buf) : NULL;
	strbuf_release(&sb);
	if (!o)
		return hutch_error_set(err, EPIPE, "the monitor exited without a word");
	*ret = o;
	return 0;
}

static int qemu_stop(struct vm *vm, const struct stop_opts *o, struct stop_result *ret, struct hutch_error *err);

/* Like a boot timeout: nothing half-started stays up. */
static void stop_after_failed_start(struct vm *vm)
{
	struct stop_opts so = {.force = true, .timeout_ms = 10000};
	struct stop_result sr;
	struct hutch_error e2 = {0};
	qemu_stop(vm, &so, &sr, &e2);
	hutch_error_clear(&e2);
}

/* --wait none: the monitor answers its socket once QEMU runs (it serves clients only after QEMU was
 * spawned); an error still comes down the notify pipe. */
static int wait_qemu_running(struct vm *vm, int notify_fd, uint64_t timeout_ms, json_object **ret_notify,
			     struct hutch_error *err)
{
	uint64_t deadline = now_ms() + timeout_ms;
	for (;;) {
		struct pollfd p = {.fd = notify_fd, .events = POLLIN};
		if (poll(&p, 1, 100) > 0)
			return read_notify(notify_fd, deadline > now_ms() ? deadline - now_ms() : 1, ret_notify, err);
		_cleanup_close_ int fd = -1;
		if (monitor_connect(vm->store, vm->name, &fd, NULL) == 0) {
			json_object *req = json_object_new_object(), *res = NULL;
			json_object_object_add(req, "op", json_object_new_string("status"));
			if (monitor_request(fd, req, 5000, &res, NULL) == 0) {
				json_object_put(res);
				*ret_notify = NULL;
				return 0;
			}
		}
		if (now_ms() >= deadline)
			return hutch_error_set(err, ETIMEDOUT, "the monitor did not start QEMU within %llu s",
					       (unsigned long long)(timeout_ms / 1000));
	}
}

static void start_result_fill(json_object *res, const struct accel_result *ar, struct start_result *ret)
{
	json_object *v;
	if (json_object_object_get_ex(res, "spawn_ms", &v))
		ret->spawn_ms = (uint64_t)json_object_get_int64(v);
	if (json_object_object_get_ex(res, "qmp_ms", &v))
		ret->qmp_ms = (uint64_t)json_object_get_int64(v);
	if (json_object_object_get_ex(res, "hello_ms", &v))
		ret->hello_ms = (uint64_t)json_object_get_int64(v);
	if (json_object_object_get_ex(res, "kvm", &v))
		ret->kvm = json_object_get_boolean(v);
	ret->accel_warn = ar->info.warn && !ret->kvm;
	ret->accel_probed = ar->probed;
	ret->accel_probe_ms = ar->probed ? ar->verdict.probe_ms : 0;
	snprintf(ret->accel_cpu, sizeof(ret->accel_cpu), "%s", ar->info.cpu);
	snprintf(ret->accel_why, sizeof(ret->accel_why), "%s", ar->info.why);
	if (json_object_object_get_ex(res, "kernel_release", &v))
		snprintf(ret->kernel_release, sizeof(ret->kernel_release), "%s", json_object_get_string(v));
	if (json_object_object_get_ex(res, "shares_problem", &v))
		snprintf(ret->shares_problem, sizeof(ret->shares_problem), "%s", json_object_get_string(v));
	if (json_object_object_get_ex(res, "net_problem", &v))
		snprintf(ret->net_problem, sizeof(ret->net_problem), "%s", json_object_get_string(v));
}

/* After the agent's HELLO: sshd and cloud-init, as the wait level asks (ready.c). */
static int wait_usable(struct vm *vm, enum start_wait level, uint64_t t0, uint64_t timeout_ms, struct start_result *ret,
		       struct hutch_error *err)
{
	struct ready_result rr;
	int r = ready_wait(vm->store, vm->spec, vm->name, level, t0, t0 + timeout_ms, &rr, err);
	if (r < 0) {
		ready_result_release(&rr);
		stop_after_failed_start(vm);
		return r;
	}
	ret->ssh_ms = rr.ssh_ms;
	ret->cloud_init_ms = rr.cloud_init_ms;
	ret->no_sshd = rr.no_sshd;
	ret->cloud_init = (int)rr.ci.state;
	ret->cloud_init_failures = (int)strv_len(rr.ci.failures);
	ready_result_release(&rr);
	return 0;
}

static int qemu_start(struct vm *vm, const struct start_opts *o, struct start_result *ret, struct hutch_error *err)
{
	uint64_t t0 = now_ms();
	enum start_wait level;
	_cleanup_close_ int lock_fd = -1;
	int r = ready_start_begin(vm->store, vm->spec, vm->name, (enum start_wait)o->wait, &level, &lock_fd, err);
	if (r < 0)
		return r;
	/* KVM is decided here, probed if this host boot has no verdict yet, so that the probe's cost
	 * is not taken from the boot timeout; the monitor then reads the same verdict. */
	struct accel_result ar;
	r = vm_accel(vm, NULL, PLAN_START, &ar, err);
	if (r < 0)
		return r;
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return hutch_error_set(err, errno, "pipe: %s", strerror(errno));
	uint64_t timeout = o->timeout_ms ? o->timeout_ms : 60000;
	/* With --wait none nobody waits for the HELLO, so the monitor does not time it out either. */
	struct start_opts mo = *o;
	if (level == WAIT_NONE)
		mo.timeout_ms = 0;
	r = spawn_monitor(vm, &mo, lock_fd, p[1], err);
	close(p[1]);
	if (r < 0) {
		close(p[0]);
		return r;
	}
	json_object *res = NULL;
	if (level == WAIT_NONE)
		r = wait_qemu_running(vm, p[0], timeout + 15000, &res, err);
	else
		r = read_notify(p[0], timeout + 15000, &res, err);
	close(p[0]);
	if (r < 0) {
		_cleanup_free_ char *logp = store_vm_file(vm->store, vm->name, "monitor.log");
		return hutch_error_wrap(err, "see %s", logp);
	}
	json_object *v;
	if (res && (!json_object_object_get_ex(res, "ok", &v) || !json_object_get_boolean(v))) {
		const char *msg = json_object_object_get_ex(res, "error", &v) ? json_object_get_string(v) : "failed";
		r = hutch_error_set(err, EIO, "%s", msg);
		json_object_put(res);
		/* the monitor cleans up and releases the lock; don't report "stopped" before it has */
		wait_stopped(vm->store, vm->name, 10000);
		return r;
	}
	memset(ret, 0, sizeof(*ret));
	ret->waited = (int)level;
	ret->boot_ms = now_ms() - t0;
	if (!res)
		ret->kvm = ar.info.kvm; /* --wait none: no notify from the monitor, the verdict it read */
	start_result_fill(res, &ar, ret);
	json_object_put(res);
	if (level >= WAIT_AGENT) {
		r = wait_usable(vm, level, t0, timeout, ret, err);
		if (r < 0)
			return r;
		ret->boot_ms = now_ms() - t0;
	}
	return 0;
}

static int qemu_stop(struct vm *vm, const struct stop_opts *o, struct stop_result *ret, struct hutch_error *err)
{
	uint64_t t0 = now_ms();
	memset(ret, 0, sizeof(*ret));
	if (!store_is_running(vm->store, vm->name)) {
		snprintf(ret->method, sizeof(ret->method), "not-running");
		return 0;
	}
	_cleanup_close_ int fd = -1;
	int r = monitor_connect(vm->store, vm->name, &fd, err);
	if (r < 0)
		return hutch_error_wrap(err, "the monitor holds the lock but does not answer");
	/* --timeout, else the spec's stop_timeout, else 30 s */
	uint64_t timeout = o->timeout_ms	      ? o->timeout_ms
			   : vm->spec->stop_timeout_s ? vm->spec->stop_timeout_s * 1000
						      : 30000;
	json_object *req = json_object_new_object();
	json_object_object_add(req, "op", json_object_new_string("stop"));
	json_object_object_add(req, "force", json_object_new_boolean(o->force));
	json_object_object_add(req, "timeout_ms", json_object_new_int64((int64_t)timeout));
	json_object *res = NULL;
	/* The monitor escalates on its own (agent, ACPI, quit, kill); allow for the kill step too. */
	r = monitor_request(fd, req, timeout + 10000, &res, err);
	if (r == 0) {
		json_object *v;
		if (json_object_object_get_ex(res, "method", &v))
			snprintf(ret->method, sizeof(ret->method), "%s", json_object_get_string(v));
		json_object_put(res);
	} else if (r != -EPIPE)
		return r;
	hutch_error_clear(err);
	if (wait_stopped(vm->store, vm->name, 10000) < 0)
		return hutch_error_set(err, ETIMEDOUT, "the VM did not stop (monitor still holds the lock)");
	if (!ret->method[0])
		snprintf(ret->method, sizeof(ret->method), "guest");
	ret->ms = now_ms() - t0;
	return 0;
}

static int qemu_status(struct vm *vm, struct vm_status *ret, struct hutch_error *err)
{
	memset(ret, 0, sizeof(*ret));
	if (!store_is_running(vm->store, vm->name))
		return 0;
	ret->running = true;
	snprintf(ret->agent_state, sizeof(ret->agent_state), "unknown");
	_cleanup_close_ int fd = -1;
	if (monitor_connect(vm->store, vm->name, &fd, NULL) < 0)
		return 0;
	json_object *req = json_object_new_object(), *res = NULL, *v;
	json_object_object_add(req, "op", json_object_new_string("status"));
	if (monitor_request(fd, req, 5000, &res, err) < 0) {
		hutch_error_clear(err);
		return 0;
	}
	if (json_object_object_get_ex(res, "kvm", &v))
		ret->kvm = json_object_get_boolean(v);
	if (json_object_object_get_ex(res, "uptime_ms", &v))
		ret->uptime_s = (uint64_t)json_object_get_int64(v) / 1000;
	if (json_object_object_get_ex(res, "agent", &v)) {
		snprintf(ret->agent_state, sizeof(ret->agent_state), "%s", json_object_get_string(v));
		ret->agent = !strcmp(ret->agent_state, "ready");
	}
	if (json_object_object_get_ex(res, "agent_since", &v))
		ret->agent_since = json_object_get_int64(v);
	if (json_object_object_get_ex(res, "agent_why", &v))
		snprintf(ret->agent_why, sizeof(ret->agent_why), "%s", json_object_get_string(v));
	if (json_object_object_get_ex(res, "sessions", &v))
		ret->sessions = json_object_get_int(v);
	json_object_put(res);
	return 0;
}

static int qemu_render(struct vm *vm, struct strbuf *out, struct hutch_error *err)
{
	struct qemu_plan p;
	int r = qemu_plan_make(vm, PLAN_RENDER, &p, err);
	if (r < 0)
		return r;
	_cleanup_free_ char *s = qemu_render_argv(p.argv);
	strbuf_adds(out, s);
	qemu_plan_release(&p);
	return 0;
}

const struct backend_ops backend_qemu = {
	.name = "qemu",
	.start = qemu_start,
	.stop = qemu_stop,
	.status = qemu_status,
	.render = qemu_render,
};

const struct backend_ops *backend_for(const struct vm_spec *spec, struct hutch_error *err)
{
	if (!spec->backend || !strcmp(spec->backend, "qemu"))
		return &backend_qemu;
#ifdef HAVE_LIBVIRT
	if (!strcmp(spec->backend, "libvirt"))
		return &backend_libvirt;
#endif
	hutch_error_set(err, ENOTSUP, "backend '%s' is not available in this build", spec->backend);
	return NULL;
}
