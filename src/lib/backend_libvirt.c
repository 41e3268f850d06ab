/* The libvirt backend: the VM is a libvirt domain named hutch-NAME, marked as hutch's by a metadata
 * element, on qemu:///session or any URI. The agent is reached through virDomainOpenChannel, so
 * nothing but libvirt's connection is needed, remote hosts included. */
#include "backend_libvirt.h"

#include "config.h"

#include <string.h>

int backend_choose(const struct store *st, struct vm_spec *spec, const char *backend, const char *uri,
		   struct hutch_error *err)
{
	if (backend && strcmp(backend, "qemu") && strcmp(backend, "libvirt"))
		return hutch_error_set(err, EINVAL, "unknown backend '%s' (qemu or libvirt)", backend);
	if (uri && backend && !strcmp(backend, "qemu"))
		return hutch_error_set(err, EINVAL, "--connect goes with the libvirt backend, not --backend qemu");
	if (uri && !*uri)
		return hutch_error_set(err, EINVAL, "--connect needs a libvirt URI");
	if (backend) {
		free(spec->backend);
		spec->backend = xstrdup(backend);
	}
	if (uri) {
		free(spec->uri);
		spec->uri = xstrdup(uri);
		if (!backend) {
			free(spec->backend);
			spec->backend = xstrdup("libvirt");
		}
	}
	if (!spec->backend) {
		struct hutch_config c = {0};
		int r = config_load(st, &c, err);
		if (r < 0)
			return r;
		if (c.backend && strcmp(c.backend, "qemu"))
			spec->backend = xstrdup(c.backend);
		config_release(&c);
	}
	if (spec->backend && !strcmp(spec->backend, "qemu")) {
		free(spec->backend);
		spec->backend = NULL; /* the default, as a spec without the key */
	}
	if (spec->uri && !spec->backend)
		return hutch_error_set(err, EINVAL, "a libvirt URI ('%s') goes with backend: libvirt", spec->uri);
#ifndef HAVE_LIBVIRT
	if (spec->backend)
		return hutch_error_set(err, ENOTSUP, "this hutch was built without the libvirt backend");
#endif
	return 0;
}

#ifdef HAVE_LIBVIRT

#include "client.h"
#include "domain_xml.h"
#include "events.h"
#include "proto.h"
#include "qemu.h"
#include "ready.h"
#include "virt_channel.h"
#include "virt_conn.h"
#include "virt_ssh.h"
#include "virt_snapshot.h"
#include "virt_watch.h"

#include <libvirt/libvirt.h>
#include <string.h>

#include "lazyvirt.h"

struct lv {
	virConnectPtr conn;
	virDomainPtr dom; /* NULL: no domain of that name */
	char *uri;
	char *domain;
};

static void lv_close(struct lv *l)
{
	if (l->dom)
		virDomainFree(l->dom);
	virt_close(l->conn);
	free(l->uri);
	free(l->domain);
	memset(l, 0, sizeof(*l));
}

/* Whether dom carries our metadata element naming this VM and its data dir (the same name in
 * another hutch home is not ours either). */
static bool domain_is_ours(virDomainPtr dom, struct vm *vm)
{
	char *md = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, DOMAIN_XML_NS, 0);
	if (!md)
		return false;
	_cleanup_free_ char *dir = store_vm_dir(vm->store, vm->name);
	_cleanup_free_ char *want = xasprintf("name=\"%s\"", vm->name), *want_dir = xasprintf("dir=\"%s\"", dir);
	bool ours = strstr(md, want) && strstr(md, want_dir);
	free(md);
	return ours;
}

static int lv_open(struct vm *vm, struct lv *ret, struct hutch_error *err)
{
	memset(ret, 0, sizeof(*ret));
	int r = virt_uri_for(vm->store, vm->spec, &ret->uri, err);
	if (r < 0)
		return r;
	void *conn = NULL;
	r = virt_open(ret->uri, VIRT_CONNECT_TIMEOUT_MS, &conn, err);
	if (r < 0) {
		lv_close(ret);
		return r;
	}
	ret->conn = conn;
	ret->domain = domain_xml_name(vm->name);
	ret->dom = virDomainLookupByName(ret->conn, ret->domain);
	if (ret->dom && !domain_is_ours(ret->dom, vm)) {
		r = hutch_error_set(err, EEXIST, "a libvirt domain '%s' exists at '%s' and is not hutch's", ret->domain,
				    ret->uri);
		lv_close(ret);
		return r;
	}
	return 0;
}

static bool lv_active(struct lv *l, int *ret_state)
{
	int state = VIR_DOMAIN_NOSTATE, reason = 0;
	if (!l->dom || virDomainGetState(l->dom, &state, &reason, 0) < 0)
		state = VIR_DOMAIN_SHUTOFF;
	if (ret_state)
		*ret_state = state;
	return state != VIR_DOMAIN_SHUTOFF && state != VIR_DOMAIN_CRASHED && state != VIR_DOMAIN_NOSTATE;
}

/* ---- the domain XML ---- */

/* <backend type='passt'/> on a user interface arrived in libvirt 9.2; Debian 12 has 9.0, where the
 * forwards go through QEMU's own user networking instead. */
static bool libvirt_has_passt(void)
{
	unsigned long v = 0;
	if (lazy_virt_load(NULL) < 0 || virGetVersion(&v, NULL, NULL) < 0)
		return false;
	return v >= 9002000;
}

static int lv_render_xml(struct vm *vm, enum plan_use use, const char *uuid, char **ret, bool *ret_kvm,
			 char *ret_release, struct hutch_error *err)
{
	struct qemu_plan p;
	int r = qemu_plan_make(vm, use, &p, err);
	if (r < 0)
		return r;
	_cleanup_free_ char *cmdline = NULL, *fw_code = NULL, *fw_vars = NULL, *console_log = NULL;
	_cleanup_free_ char *domain = domain_xml_name(vm->name);
	_cleanup_free_ char *passt = path_find("passt", NULL);
	_cleanup_free_ char *snap_disk = virt_snapshot_disk_path(vm);
	struct qemu_config c = {.name = vm->name, .spec = vm->spec, .accel = p.accel, .shares = p.shares};
	if (vm->spec->source != SOURCE_IMAGE)
		cmdline = qemu_micro_cmdline(&c); /* a container image's too: its root disk, or bootc's */
	else if ((r = qemu_firmware_paths(vm->spec->firmware, &fw_code, &fw_vars, err)) < 0)
		goto out;
	console_log = store_vm_file(vm->store, vm->name, "console.log");
	struct domain_xml_input in = {
		.domain = domain,
		.vm_name = vm->name,
		.vm_dir = p.vm_dir,
		.uuid = uuid,
		.spec = vm->spec,
		.emulator = p.binary,
		.kvm = p.accel->kvm,
		.cpu = p.accel->cpu[0] ? p.accel->cpu : (p.accel->kvm ? ACCEL_CPU_KVM : ACCEL_CPU_TCG),
		.kernel = p.kernel,
		.initrd = p.initrd,
		.cmdline = cmdline,
		.snapshot_disk = snap_disk,
		.disk = p.disk,
		.seed = p.seed,
		.fw_code = p.fw_code,
		.fw_vars = fw_vars,
		.nvram = p.nvram,
		.smbios_cred = p.smbios,
		.tpm = vm->spec->tpm,
		.console_log = console_log,
		.passt = passt != NULL && libvirt_has_passt(),
		.snippets = vm->spec->libvirt_snippets,
		.shares = p.shares,
	};
	r = domain_xml_render(&in, ret, err);
	if (r == 0 && ret_kvm)
		*ret_kvm = p.accel->kvm;
	if (r == 0 && ret_release)
		snprintf(ret_release, 64, "%s", p.kernel_release ? p.kernel_release : "");
out:
	qemu_plan_release(&p);
	return r;
}

static int lv_render(struct vm *vm, struct strbuf *out, struct hutch_error *err)
{
	_cleanup_free_ char *xml = NULL;
	int r = lv_render_xml(vm, PLAN_RENDER, NULL, &xml, NULL, NULL, err);
	if (r < 0)
		return r;
	strbuf_adds(out, xml);
	return 0;
}

/* What hutch last defined, kept beside the VM as two hashes: of its render, and of libvirt's own
 * (inactive) form of the domain right after. A start whose render is the same, of a domain libvirt
 * still holds the same way (nobody edited it since), needs no define: libvirt would validate it
 * against its schema, write it out and load it again for nothing. */
static void lv_defined_key(struct lv *l, const char *xml, char *ret, size_t len)
{
	ret[0] = 0;
	char *cur = l->dom ? virDomainGetXMLDesc(l->dom, VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_SECURE) : NULL;
	if (!cur)
		return;
	char a[65], b[65];
	sha256_hex(xml, strlen(xml), a);
	sha256_hex(cur, strlen(cur), b);
	free(cur);
	snprintf(ret, len, "%s %s\n", a, b);
}

static bool lv_defined_same(struct lv *l, struct vm *vm, const char *xml)
{
	if (!l->dom || virDomainIsPersistent(l->dom) != 1)
		return false;
	_cleanup_free_ char *p = store_vm_file(vm->store, vm->name, "libvirt-defined");
	_cleanup_free_ char *had = NULL;
	if (read_file(p, 256, &had, NULL, NULL) < 0)
		return false;
	char key[160];
	lv_defined_key(l, xml, key, sizeof(key));
	return key[0] && !strcmp(had, key);
}

static int lv_define_xml(struct lv *l, struct vm *vm, const char *xml, struct hutch_error *err)
{
	_cleanup_free_ char *p = store_vm_file(vm->store, vm->name, "libvirt-defined");
	unlink(p);
	virDomainPtr d = virDomainDefineXMLFlags(l->conn, xml, VIR_DOMAIN_DEFINE_VALIDATE);
	if (!d)
		return hutch_error_set(err, EIO, "libvirt refused the domain '%s': %s", l->domain,
				       virt_last_error("unknown error"));
	if (l->dom)
		virDomainFree(l->dom);
	l->dom = d;
	char key[160];
	lv_defined_key(l, xml, key, sizeof(key));
	if (key[0])
		virt_state_write(p, key);
	return 0;
}

int libvirt_define(struct vm *vm, struct hutch_error *err)
{
	if (vm->spec->disposable)
		return 0; /* run --rm and disposable VMs get a transient domain at start */
	struct lv l;
	int r = lv_open(vm, &l, err);
	if (r < 0)
		return r;
	_cleanup_free_ char *xml = NULL;
	char uuid[VIR_UUID_STRING_BUFLEN] = "";
	if (l.dom)
		virDomainGetUUIDString(l.dom, uuid);
	r = lv_render_xml(vm, PLAN_RENDER, uuid[0] ? uuid : NULL, &xml, NULL, NULL, err);
	if (r == 0)
		r = virt_snapshot_disk_make(vm, err);
	if (r == 0)
		r = lv_define_xml(&l, vm, xml, err);
	lv_close(&l);
	return r;
}

int libvirt_undefine(struct vm *vm, bool force, struct hutch_error *err)
{
	struct lv l;
	int r = lv_open(vm, &l, err);
	if (r < 0)
		return r;
	if (!l.dom) {
		lv_close(&l);
		return 0;
	}
	if (lv_active(&l, NULL)) {
		if (!force) {
			lv_close(&l);
			return hutch_error_set(err, EBUSY, "is running: stop it first, or pass --force");
		}
		virDomainDestroy(l.dom);
	}
	if (virDomainIsPersistent(l.dom) == 1 &&
	    virDomainUndefineFlags(l.dom, VIR_DOMAIN_UNDEFINE_NVRAM | VIR_DOMAIN_UNDEFINE_MANAGED_SAVE |
						  VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA) < 0)
		r = hutch_error_set(err, EIO, "cannot undefine '%s': %s", l.domain, virt_last_error("unknown error"));
	lv_close(&l);
	return r;
}

/* ---- start ---- */

static void started_at_write(struct vm *vm)
{
	_cleanup_free_ char *p = store_vm_file(vm->store, vm->name, "libvirt-started");
	_cleanup_free_ char *s = xasprintf("%llu\n", (unsigned long long)now_real_s());
	virt_state_write(p, s);
}

static uint64_t started_at_read(struct vm *vm)
{
	_cleanup_free_ char *p = store_vm_file(vm->store, vm->name, "libvirt-started");
	_cleanup_free_ char *s = NULL;
	long long v = 0;
	if (read_file(p, 64, &s, NULL, NULL) < 0)
		return 0;
	s[strcspn(s, "\n")] = 0;
	return parse_ll(s, 0, INT64_MAX, &v) == 0 ? (uint64_t)v : 0;
}

static int lv_start(struct vm *vm, const struct start_opts *o, struct start_result *ret, struct hutch_error *err)
{
	uint64_t t0 = now_ms();
	memset(ret, 0, sizeof(*ret));
	enum start_wait level;
	/* the run lock, as the qemu backend's monitor holds it: handed to the supervisor once the domain
	 * runs, so that a VM is running exactly when it is held, on both backends */
	_cleanup_close_ int lock_fd = -1;
	int r = ready_start_begin(vm->store, vm->spec, vm->name, (enum start_wait)o->wait, &level, &lock_fd, err);
	if (r < 0)
		return r;
	struct lv l;
	r = lv_open(vm, &l, err);
	if (r < 0)
		return r;
	if (lv_active(&l, NULL)) {
		/* started outside hutch (libvirt's autostart, virsh): nobody applied its policies; from now
		 * on a supervisor does, and list shows its agent */
		struct hutch_error e2 = {0};
		bool watched = virt_watch_spawn(vm, lock_fd, false, "unknown", false, &e2) == 0;
		hutch_error_clear(&e2);
		r = hutch_error_set(
			err, EALREADY,
			"already running: libvirt runs the domain '%s', started outside hutch (by libvirt's "
			"autostart or virsh)%s",
			l.domain, watched ? "; hutch watches it from now on" : "");
		lv_close(&l);
		return r;
	}
	_cleanup_free_ char *xml = NULL;
	bool kvm = false;
	char uuid[VIR_UUID_STRING_BUFLEN] = "";
	if (l.dom)
		virDomainGetUUIDString(l.dom, uuid);
	r = libvirt_ports_resolve(vm, err);
	if (r < 0)
		goto out;
	/* `hutch ssh` finds it in the forwards, as on the qemu backend; without a free port, no ssh */
	struct hutch_error e_ssh = {0};
	virt_ssh_auto_forward(vm->store, vm->spec, vm->name, &e_ssh);
	hutch_error_clear(&e_ssh);
	r = lv_render_xml(vm, PLAN_START, uuid[0] ? uuid : NULL, &xml, &kvm, ret->kernel_release, err);
	if (r == 0)
		r = virt_snapshot_disk_make(vm, err);
	if (r < 0)
		goto out;
	ret->spawn_ms = now_ms() - t0;
	virt_events_clear_note(vm->store, vm->name);
	bool transient = vm->spec->disposable || o->ephemeral;
	if (transient) {
		virDomainPtr d = virDomainCreateXML(l.conn, xml, VIR_DOMAIN_START_VALIDATE);
		if (!d) {
			r = hutch_error_set(err, EIO, "libvirt could not start '%s': %s", l.domain,
					    virt_last_error("unknown error"));
			goto out;
		}
		if (l.dom)
			virDomainFree(l.dom);
		l.dom = d;
	} else {
		/* defined again when the render changed (the template's kernel, the accelerator) or
		 * libvirt's definition did */
		if (!lv_defined_same(&l, vm, xml)) {
			r = lv_define_xml(&l, vm, xml, err);
			if (r < 0)
				goto out;
		}
		if (virDomainCreateWithFlags(l.dom, 0) < 0) {
			const char *why = virt_last_error("unknown error");
			r = strstr(why, "already running")
				    ? hutch_error_set(err, EALREADY, "already running")
				    : hutch_error_set(err, EIO, "libvirt could not start '%s': %s", l.domain, why);
			goto out;
		}
	}
	ret->qmp_ms = now_ms() - t0;
	started_at_write(vm);
	libvirt_ports_reset(vm);
	ret->kvm = kvm;
	ret->waited = level == WAIT_NONE ? WAIT_NONE : WAIT_AGENT;
	if (level != WAIT_NONE) {
		uint64_t timeout = o->timeout_ms ? o->timeout_ms : 60000;
		int fd = -1;
		char release[64] = "";
		r = virt_channel_open(l.conn, l.dom, timeout, &fd, release, sizeof(release), err);
		if (r < 0) {
			virDomainDestroy(l.dom);
			_cleanup_free_ char *log = store_vm_file(vm->store, vm->name, "console.log");
			r = hutch_error_wrap(err, "waiting for the agent (see %s)", log);
			goto out;
		}
		close(fd);
		if (release[0])
			snprintf(ret->kernel_release, sizeof(ret->kernel_release), "%s", release);
		/* libvirt has no event for our channel's agent: the start that heard HELLO says so */
		events_append(vm->store, vm->name, "libvirt", "agent-ready", "hello", release);
		ret->hello_ms = now_ms() - t0;
	}
	r = virt_watch_spawn(vm, lock_fd, o->ephemeral, level != WAIT_NONE ? "ready" : "waiting", kvm, err);
	if (r < 0) {
		virDomainDestroy(l.dom);
		goto out;
	}
	if (level >= WAIT_SSH) {
		/* sshd and cloud-init, seen through the agent as on the qemu backend (ready.c) */
		struct ready_result rr;
		uint64_t timeout = o->timeout_ms ? o->timeout_ms : 60000;
		r = ready_wait(vm->store, vm->spec, vm->name, level, t0, t0 + timeout, &rr, err);
		if (r == 0) {
			ret->waited = level;
			ret->ssh_ms = rr.ssh_ms;
			ret->cloud_init_ms = rr.cloud_init_ms;
			ret->no_sshd = rr.no_sshd;
			ret->cloud_init = (int)rr.ci.state;
			ret->cloud_init_failures = (int)strv_len(rr.ci.failures);
		}
		ready_result_release(&rr);
		if (r < 0) {
			/* as on the qemu backend: a start that failed leaves nothing running */
			lv_close(&l);
			struct hutch_error e2 = {0};
			libvirt_policy_stop(vm, r == -ETIMEDOUT ? "boot-timeout" : "start-failed", err->msg, 30000,
					    &e2);
			hutch_error_clear(&e2);
			return r;
		}
	}
	ret->boot_ms = now_ms() - t0;
out:
	lv_close(&l);
	return r;
}

/* ---- stop: agent POWEROFF, then ACPI (virDomainShutdown), then virDomainDestroy ---- */

static bool wait_inactive(struct lv *l, uint64_t ms)
{
	uint64_t end = now_ms() + ms;
	for (;;) {
		if (!lv_active(l, NULL))
			return true;
		if (now_ms() >= end)
			return false;
		usleep(50 * 1000);
	}
}

/* POWEROFF to the agent. The channel stays open (*ret_fd) until the domain is gone: closing it at
 * once can drop the frame inside libvirt (the stream is finished while the daemon still holds the
 * bytes for QEMU's socket), and its EOF is the guest going away anyway. */
static bool agent_poweroff(struct lv *l, int *ret_fd)
{
	int fd = -1;
	struct hutch_error e = {0};
	bool ok = virt_channel_open(l->conn, l->dom, 0, &fd, NULL, 0, &e) == 0 &&
		  frame_write(fd, MSG_POWEROFF, 0, NULL, 0) == 0;
	hutch_error_clear(&e);
	if (ok)
		*ret_fd = fd;
	else if (fd >= 0)
		close(fd);
	return ok;
}

/* reason, detail: why, for the stopped event (virt_events_note_stop). */
static int lv_stop_why(struct vm *vm, const struct stop_opts *o, const char *reason, const char *detail,
		       struct stop_result *ret, struct hutch_error *err)
{
	uint64_t t0 = now_ms();
	memset(ret, 0, sizeof(*ret));
	struct lv l;
	int r = lv_open(vm, &l, err);
	if (r < 0)
		return r;
	if (!lv_active(&l, NULL)) {
		snprintf(ret->method, sizeof(ret->method), "not-running");
		lv_close(&l);
		return 0;
	}
	uint64_t total = o->timeout_ms		    ? o->timeout_ms
			 : vm->spec->stop_timeout_s ? vm->spec->stop_timeout_s * 1000
						    : 30000;
	bool micro = vm->spec->source == SOURCE_TEMPLATE;
	const char *method = NULL;
	virt_events_note_stop(vm->store, vm->name, reason, detail);
	_cleanup_close_ int chan = -1;
	if (!o->force && agent_poweroff(&l, &chan) && wait_inactive(&l, total * 4 / 10 > 1000 ? total * 4 / 10 : 1000))
		method = "agent";
	if (!method && !o->force && virDomainShutdown(l.dom) == 0 && wait_inactive(&l, micro ? 1000 : total / 2))
		method = "acpi";
	if (!method) {
		if (virDomainDestroy(l.dom) < 0 && lv_active(&l, NULL)) {
			r = hutch_error_set(err, EIO, "cannot destroy '%s': %s", l.domain,
					    virt_last_error("unknown error"));
			lv_close(&l);
			return r;
		}
		method = "destroy";
	}
	snprintf(ret->method, sizeof(ret->method), "%s", method);
	ret->ms = now_ms() - t0;
	lv_close(&l);
	return 0;
}

static int lv_stop(struct vm *vm, const struct stop_opts *o, struct stop_result *ret, struct hutch_error *err)
{
	int r = lv_stop_why(vm, o, "requested", o->force ? "hutch stop --force" : "hutch stop", ret, err);
	/* stopped once its supervisor let go of the run lock too: a start right after must not find it
	 * "already running" (the supervisor hears libvirt's event and exits at once) */
	if (r == 0)
		wait_stopped(vm->store, vm->name, 15000);
	return r;
}

int libvirt_policy_stop(struct vm *vm, const char *reason, const char *detail, uint64_t timeout_ms,
			struct hutch_error *err)
{
	struct stop_opts o = {.timeout_ms = timeout_ms};
	struct stop_result sr;
	return lv_stop_why(vm, &o, reason, detail, &sr, err);
}

bool libvirt_settle(struct store *st, const char *name)
{
	struct vm vm;
	if (vm_load(st, name, &vm, NULL) < 0)
		return false;
	bool lv = vm.spec->backend && !strcmp(vm.spec->backend, "libvirt"), inactive = false;
	struct lv l;
	struct hutch_error e = {0};
	if (lv && lv_open(&vm, &l, &e) == 0) {
		inactive = !lv_active(&l, NULL);
		lv_close(&l);
	}
	hutch_error_clear(&e);
	vm_release(&vm);
	return inactive && wait_stopped(st, name, 15000) == 0;
}

static int lv_status(struct vm *vm, struct vm_status *ret, struct hutch_error *err)
{
	memset(ret, 0, sizeof(*ret));
	struct lv l;
	int r = lv_open(vm, &l, err);
	if (r < 0)
		return r;
	int state;
	ret->running = lv_active(&l, &state);
	if (ret->running) {
		uint64_t since = started_at_read(vm), t = now_real_s();
		ret->uptime_s = since && t > since ? t - since : 0;
		snprintf(ret->agent_state, sizeof(ret->agent_state), "%s",
			 state == VIR_DOMAIN_PAUSED ? "unresponsive" : "unknown");
		ret->kvm = false;
		struct virt_watch_status ws;
		if (state != VIR_DOMAIN_PAUSED && virt_watch_status(vm->store, vm->name, &ws) == 0) {
			ret->kvm = ws.kvm;
			ret->agent = !strcmp(ws.agent, "ready");
			snprintf(ret->agent_state, sizeof(ret->agent_state), "%s", ws.agent);
			ret->agent_since = ws.agent_since;
			snprintf(ret->agent_why, sizeof(ret->agent_why), "%s", ws.agent_why);
			ret->sessions = ws.sessions;
		}
	}
	lv_close(&l);
	return 0;
}

int libvirt_session_connect(const struct store *st, const char *name, int *ret_fd, struct hutch_error *err)
{
	struct vm vm;
	if (vm_load((struct store *)st, name, &vm, NULL) < 0)
		return 0; /* not ours to explain: the caller's own checks say what is wrong */
	if (!vm.spec->backend || strcmp(vm.spec->backend, "libvirt") != 0) {
		vm_release(&vm);
		return 0;
	}
	struct lv l;
	int r = lv_open(&vm, &l, err);
	if (r == 0 && !lv_active(&l, NULL))
		r = hutch_error_set(err, ENOTCONN, "is not running: start it first, or use 'hutch run %s -- CMD'",
				    name);
	/* the supervisor's STAT before an idle stop holds the channel for a moment: wait that out */
	for (uint64_t until = now_ms() + 5000; r == 0;) {
		r = virt_channel_open(l.conn, l.dom, 10000, ret_fd, NULL, 0, err);
		if (r != -EBUSY || now_ms() >= until)
			break;
		hutch_error_clear(err);
		r = 0;
		usleep(200 * 1000);
	}
	if (r == -EBUSY)
		r = hutch_error_wrap(err, "busy: another session holds the agent channel");
	if (r == 0)
		r = 1;
	if (l.conn)
		lv_close(&l);
	vm_release(&vm);
	return r;
}

int libvirt_usb(const struct store *st, const char *name, unsigned vendor, unsigned product, unsigned bus, unsigned dev,
		bool attach, struct hutch_error *err)
{
	struct vm vm;
	if (vm_load((struct store *)st, name, &vm, NULL) < 0)
		return 0;
	if (!vm.spec->backend || strcmp(vm.spec->backend, "libvirt") != 0) {
		vm_release(&vm);
		return 0;
	}
	_cleanup_free_ char *xml = NULL;
	struct lv l = {0};
	int r = domain_xml_usb_hostdev(vendor, product, bus, dev, &xml, err);
	if (r == 0)
		r = lv_open(&vm, &l, err);
	if (r == 0 && !lv_active(&l, NULL))
		r = hutch_error_set(err, ENOTCONN, "VM '%s' is not running", name);
	/* live only: a device plugged at runtime is not part of the definition (usb: in the spec is) */
	if (r == 0 && (attach ? virDomainAttachDeviceFlags(l.dom, xml, VIR_DOMAIN_AFFECT_LIVE)
			      : virDomainDetachDeviceFlags(l.dom, xml, VIR_DOMAIN_AFFECT_LIVE)) < 0)
		r = hutch_error_set(err, EIO, "libvirt could not %s %04x:%04x (bus %u, device %u) %s '%s': %s",
				    attach ? "attach" : "detach", vendor, product, bus, dev, attach ? "to" : "from",
				    name, virt_last_error("unknown error"));
	if (l.conn)
		lv_close(&l);
	vm_release(&vm);
	return r < 0 ? r : 1;
}

int libvirt_domain_open(struct vm *vm, void **ret_conn, void **ret_dom, struct hutch_error *err)
{
	struct lv l;
	int r = lv_open(vm, &l, err);
	if (r < 0)
		return r;
	if (!lv_active(&l, NULL)) {
		lv_close(&l);
		return hutch_error_set(err, ENOTCONN, "VM '%s' is not running", vm->name);
	}
	*ret_conn = TAKE_PTR(l.conn);
	*ret_dom = TAKE_PTR(l.dom);
	lv_close(&l);
	return 0;
}

void libvirt_domain_close(void *conn, void *dom)
{
	if (dom)
		virDomainFree(dom);
	virt_close(conn);
}

int libvirt_domain_lookup(struct vm *vm, void **ret_conn, void **ret_dom, struct hutch_error *err)
{
	struct lv l;
	int r = lv_open(vm, &l, err);
	if (r < 0)
		return r;
	if (!l.dom) {
		r = hutch_error_set(err, ENOENT, "libvirt has no domain '%s' at '%s' (start the VM once to define it)",
				    l.domain, l.uri);
		lv_close(&l);
		return r;
	}
	*ret_conn = TAKE_PTR(l.conn);
	*ret_dom = TAKE_PTR(l.dom);
	lv_close(&l);
	return 0;
}

int libvirt_autostart(const struct store *st, const char *name, bool on, struct hutch_error *err)
{
	struct vm vm;
	if (vm_load((struct store *)st, name, &vm, NULL) < 0)
		return 0;
	if (!vm.spec->backend || strcmp(vm.spec->backend, "libvirt") != 0 || vm.spec->disposable) {
		vm_release(&vm);
		return 0;
	}
	struct lv l = {0};
	int r = lv_open(&vm, &l, err);
	if (r == 0 && l.dom && virDomainIsPersistent(l.dom) == 1 && virDomainSetAutostart(l.dom, on ? 1 : 0) < 0)
		r = hutch_error_set(err, EIO, "virDomainSetAutostart on '%s': %s", l.domain,
				    virt_last_error("unknown error"));
	if (l.conn)
		lv_close(&l);
	vm_release(&vm);
	return r;
}

const char *libvirt_uri_of(struct vm *vm, char **ret)
{
	*ret = NULL;
	if (virt_uri_for(vm->store, vm->spec, ret, NULL) < 0)
		return NULL;
	return *ret;
}

const struct backend_ops backend_libvirt = {
	.name = "libvirt",
	.start = lv_start,
	.stop = lv_stop,
	.status = lv_status,
	.render = lv_render,
};

#else /* built without libvirt */

static int no_libvirt(struct hutch_error *err)
{
	return hutch_error_set(err, ENOTSUP, "this hutch was built without the libvirt backend");
}

static int stub_start(struct vm *vm, const struct start_opts *o, struct start_result *ret, struct hutch_error *err)
{
	return no_libvirt(err);
}

static int stub_stop(struct vm *vm, const struct stop_opts *o, struct stop_result *ret, struct hutch_error *err)
{
	return no_libvirt(err);
}

static int stub_status(struct vm *vm, struct vm_status *ret, struct hutch_error *err) { return no_libvirt(err); }

static int stub_render(struct vm *vm, struct strbuf *out, struct hutch_error *err) { return no_libvirt(err); }

const struct backend_ops backend_libvirt = {
	.name = "libvirt", .start = stub_start, .stop = stub_stop, .status = stub_status, .render = stub_render};

int libvirt_define(struct vm *vm, struct hutch_error *err)
{
	return hutch_error_set(err, ENOTSUP, "this hutch was built without the libvirt backend");
}

int libvirt_undefine(struct vm *vm, bool force, struct hutch_error *err) { return 0; }

int libvirt_session_connect(const struct store *st, const char *name, int *ret_fd, struct hutch_error *err)
{
	return 0;
}

int libvirt_usb(const struct store *st, const char *name, unsigned vendor, unsigned product, unsigned bus, unsigned dev,
		bool attach, struct hutch_error *err)
{
	return 0;
}

int libvirt_autostart(const struct store *st, const char *name, bool on, struct hutch_error *err) { return 0; }

const char *libvirt_uri_of(struct vm *vm, char **ret)
{
	*ret = NULL;
	return NULL;
}
#endif
