/* hutch port on a libvirt VM. libvirt 9.0 cannot express QEMU's user networking (the passt backend
 * of <interface type='user'> arrived in 9.2), so the domain carries it as a QEMU command-line
 * passthrough (-netdev user,id=hutchnet0), and a forward added at runtime goes to that netdev with
 * HMP hostfwd_add through virDomainQemuMonitorCommand (libvirt-qemu). libvirt marks a domain so
 * driven as "tainted": it no longer vouches for QEMU's state. The forwards in effect are kept in the
 * VM dir (libvirt-forwards), since no hutch process lives beside a libvirt domain. */
#include "backend_libvirt.h"

#include "qemu.h"
#include "qmp.h"
#include "virt_conn.h"

#include <string.h>

#define PORTS_FILE "libvirt-forwards"

static void ports_write(const struct store *st, const char *name, char *const *fw)
{
	struct strbuf sb = STRBUF_INIT;
	for (size_t i = 0; fw && fw[i]; i++)
		strbuf_addf(&sb, "%s\n", fw[i]);
	_cleanup_free_ char *p = store_vm_file(st, name, PORTS_FILE);
	virt_state_write(p, strbuf_str(&sb));
	strbuf_release(&sb);
}

int libvirt_ports_resolve(struct vm *vm, struct hutch_error *err)
{
	for (size_t i = 0; vm->spec->forward && vm->spec->forward[i]; i++) {
		struct forward f;
		if (forward_parse(vm->spec->forward[i], &f) < 0)
			return hutch_error_set(err, EINVAL, "invalid port forward '%s'", vm->spec->forward[i]);
		if (f.host)
			continue;
		int r = forward_pick_free(&f, err);
		if (r < 0)
			return r;
		free(vm->spec->forward[i]);
		vm->spec->forward[i] = xasprintf("%u:%u/%s", f.host, f.guest, f.udp ? "udp" : "tcp");
	}
	return 0;
}

void libvirt_ports_reset(struct vm *vm)
{
	_cleanup_strv_ char **fw = NULL;
	for (size_t i = 0; vm->spec->forward && vm->spec->forward[i]; i++) {
		struct forward f;
		if (forward_parse(vm->spec->forward[i], &f) == 0)
			fw = strv_push(fw, xasprintf("%u:%u/%s", f.host, f.guest, f.udp ? "udp" : "tcp"));
	}
	ports_write(vm->store, vm->name, fw);
}

#ifdef HAVE_LIBVIRT
#include "store.h"

#include <dlfcn.h>
#include <libvirt/libvirt-qemu.h>
#include <libvirt/libvirt.h>

#include "lazyvirt.h"

/* The file is ours, but still only well-formed forwards come out of it. */
static char **ports_read(const struct store *st, const char *name)
{
	_cleanup_free_ char *p = store_vm_file(st, name, PORTS_FILE);
	_cleanup_free_ char *s = NULL;
	char **fw = NULL;
	if (read_file(p, 64 * 1024, &s, NULL, NULL) < 0)
		return NULL;
	for (char *save = NULL, *l = strtok_r(s, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		struct forward f;
		if (forward_parse(l, &f) == 0)
			fw = strv_push(fw, xasprintf("%u:%u/%s", f.host, f.guest, f.udp ? "udp" : "tcp"));
	}
	return fw;
}

static json_object *ports_json(char *const *fw)
{
	json_object *o = json_object_new_object(), *arr = json_object_new_array();
	for (size_t i = 0; fw && fw[i]; i++)
		json_object_array_add(arr, json_object_new_string(fw[i]));
	json_object_object_add(o, "ok", json_object_new_boolean(1));
	json_object_object_add(o, "forwards", arr);
	return o;
}

/* libvirt-qemu is its own library (libvirt0 ships it): opened here, on the one path that needs it. */
typedef int (*qemu_monitor_fn)(virDomainPtr, const char *, char **, unsigned int);

static int hmp(virDomainPtr dom, const char *line, struct hutch_error *err)
{
	static qemu_monitor_fn fn;
	if (!fn) {
		void *h = dlopen("libvirt-qemu.so.0", RTLD_NOW | RTLD_LOCAL);
		fn = h ? (qemu_monitor_fn)dlsym(h, "virDomainQemuMonitorCommand") : NULL;
		if (!fn)
			return hutch_error_set(err, ENOPKG,
					       "cannot load libvirt-qemu.so.0 (install the Debian package %s)",
					       "libvirt0");
	}
	char *out = NULL;
	if (fn(dom, line, &out, VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP) < 0)
		return hutch_error_set(err, EIO, "libvirt refused the QEMU monitor command: %s",
				       virt_last_error("unknown error"));
	int r = qmp_hmp_reply(out, err);
	free(out);
	return r;
}

static ssize_t find(char *const *fw, const struct forward *f)
{
	for (size_t i = 0; fw && fw[i]; i++) {
		struct forward g;
		if (forward_parse(fw[i], &g) == 0 && g.host == f->host && g.udp == f->udp)
			return (ssize_t)i;
	}
	return -1;
}

static int change(struct vm *vm, virDomainPtr dom, bool add, struct forward *f, char ***fw, struct hutch_error *err)
{
	if (vm->spec->net_mode != NET_USER)
		return hutch_error_set(err, EINVAL, "the VM has no user-mode network (network.mode is not 'user')");
	_cleanup_free_ char *passt = path_find("passt", NULL);
	unsigned long v = 0;
	if (passt && virGetVersion(&v, NULL, NULL) == 0 && v >= 9002000)
		return hutch_error_set(err, ENOTSUP,
				       "the domain's network is libvirt's passt backend, whose forwards libvirt cannot "
				       "change while it runs: add it to network.forward and restart the VM");
	int r;
	if (add && f->host == 0 && (r = forward_pick_free(f, err)) < 0)
		return r;
	ssize_t idx = find(*fw, f);
	if (add) {
		if (idx >= 0)
			return hutch_error_set(err, EEXIST, "that host port is already forwarded");
		_cleanup_free_ char *rule = forward_rule(f);
		_cleanup_free_ char *line = xasprintf("hostfwd_add hutchnet0 %s", rule);
		if ((r = forward_check_free(f, err)) < 0 || (r = hmp(dom, line, err)) < 0)
			return r;
		*fw = strv_push(*fw, xasprintf("%u:%u/%s", f->host, f->guest, f->udp ? "udp" : "tcp"));
		return 0;
	}
	if (idx < 0)
		return hutch_error_set(err, ENOENT, "no such forward");
	_cleanup_free_ char *line =
		xasprintf("hostfwd_remove hutchnet0 %s:127.0.0.1:%u", f->udp ? "udp" : "tcp", f->host);
	if ((r = hmp(dom, line, err)) < 0)
		return r;
	free((*fw)[idx]);
	size_t n = strv_len(*fw);
	memmove(&(*fw)[idx], &(*fw)[idx + 1], (n - (size_t)idx) * sizeof(char *));
	return 0;
}

int libvirt_port(struct store *st, const char *name, const char *op, const char *spec, json_object **ret,
		 struct hutch_error *err)
{
	struct vm vm;
	if (vm_load(st, name, &vm, NULL) < 0)
		return 0;
	if (!vm.spec->backend || strcmp(vm.spec->backend, "libvirt") != 0) {
		vm_release(&vm);
		return 0;
	}
	bool ls = !strcmp(op, "port-ls"), add = !strcmp(op, "port-add");
	struct forward f = {0};
	void *conn = NULL, *dom = NULL;
	_cleanup_close_ int lock = -1;
	_cleanup_strv_ char **fw = NULL;
	int r = 0;
	if (!ls && (!spec || forward_parse(spec, &f) < 0 || (!add && f.host == 0)))
		r = hutch_error_set(err, EINVAL,
				    "invalid forward: expected HOST:GUEST or HOST:GUEST/tcp|udp with ports 1-65535 "
				    "(HOST 0: any free port, for add)");
	/* the op lock: two port changes at once would each write their own list */
	if (r == 0 && !ls)
		r = store_lock_op(st, name, 10000, &lock, err);
	if (r == 0)
		r = libvirt_domain_open(&vm, &conn, &dom, err);
	if (r == 0)
		fw = ports_read(st, name);
	if (r == 0 && !ls && (r = change(&vm, dom, add, &f, &fw, err)) == 0)
		ports_write(st, name, fw);
	if (r == 0)
		*ret = ports_json(fw);
	if (conn)
		libvirt_domain_close(conn, dom);
	vm_release(&vm);
	return r < 0 ? r : 1;
}
#else
int libvirt_port(struct store *st, const char *name, const char *op, const char *spec, json_object **ret,
		 struct hutch_error *err)
{
	return 0;
}
#endif
