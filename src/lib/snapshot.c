/* Snapshots (snapshot.h): savevm/loadvm/delvm through the monitor for running VMs, qemu-img for
 * stopped ones. */
#include "snapshot.h"

#include "client.h"
#include "qemu.h"
#include "ready.h"
#include "virt_snapshot.h"
#include "vmops.h"

#include <fcntl.h>
#include <spawn.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#define SNAP_NODE "hutch-snap"
#define SNAP_FILE "snapshots.qcow2"
#define SNAP_HMP_MS 300000 /* savevm writes all of the guest's RAM: generous under TCG */

bool snapshot_tag_valid(const char *tag)
{
	size_t n = tag ? strlen(tag) : 0;
	if (n == 0 || n > 63 || tag[0] == '.' || tag[0] == '-' || tag[0] == '_')
		return false;
	return strspn(tag, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n &&
	       /* an all-digit tag would be read as a snapshot id */
	       strspn(tag, "0123456789") != n;
}

static int check_tag(const char *tag, struct hutch_error *err)
{
	if (snapshot_tag_valid(tag))
		return 0;
	return hutch_error_set(err, EINVAL,
			       "invalid snapshot tag '%s': use letters, digits, '.', '_' and '-' (not all digits, at "
			       "most 63)",
			       tag ? tag : "");
}

/* Where NAME's snapshots live: its disk, or for a micro VM the qcow2 kept for them. */
static char *snap_file(const char *vm_dir, const struct vm_spec *spec)
{
	return xasprintf("%s/%s", vm_dir, spec->source == SOURCE_IMAGE ? "disk.qcow2" : SNAP_FILE);
}

int snapshot_qemu_img(char *const argv[], char **ret_out, struct hutch_error *err)
{
	int po[2], pe[2];
	if (pipe2(po, O_CLOEXEC) < 0)
		return hutch_error_set(err, errno, "pipe: %s", strerror(errno));
	if (pipe2(pe, O_CLOEXEC) < 0) {
		close(po[0]);
		close(po[1]);
		return hutch_error_set(err, errno, "pipe: %s", strerror(errno));
	}
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, po[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
	pid_t pid;
	int r = posix_spawnp(&pid, "qemu-img", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(po[1]);
	close(pe[1]);
	if (r != 0) {
		close(po[0]);
		close(pe[0]);
		return hutch_error_set(err, r, "cannot run qemu-img (install Debian's qemu-utils): %s", strerror(r));
	}
	/* stderr is small; read stdout to EOF first, then stderr */
	struct strbuf out = STRBUF_INIT, er = STRBUF_INIT;
	char buf[4096];
	ssize_t n;
	while ((n = read(po[0], buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
		if (n > 0 && out.len < (1u << 20))
			strbuf_add(&out, buf, (size_t)n);
	while ((n = read(pe[0], buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
		if (n > 0 && er.len < 65536)
			strbuf_add(&er, buf, (size_t)n);
	close(po[0]);
	close(pe[0]);
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		const char *e = strbuf_str(&er);
		r = hutch_error_set(err, EIO, "qemu-img %s: %.*s", argv[1], (int)strcspn(e, "\n"), e);
		strbuf_release(&out);
		strbuf_release(&er);
		return r;
	}
	strbuf_release(&er);
	if (ret_out) {
		*ret_out = strbuf_detach(&out, NULL);
		if (!*ret_out)
			*ret_out = xstrdup("");
	} else
		strbuf_release(&out);
	return 0;
}

/* ---- a running VM: the monitor runs these over QMP ---- */

/* A micro VM's snapshot file, made when missing and attached as a node with no guest device. */
static int attach_snap_file(struct qmp *q, const char *vm_dir, const struct vm_spec *spec, struct hutch_error *err)
{
	if (spec->source == SOURCE_IMAGE)
		return 0;
	_cleanup_free_ char *file = snap_file(vm_dir, spec);
	if (access(file, F_OK) < 0) {
		char *argv[] = {"qemu-img", "create", "-q", "-f", "qcow2", file, "16M", NULL};
		int r = snapshot_qemu_img(argv, NULL, err);
		if (r < 0)
			return r;
	}
	json_object *ret = NULL;
	int r = qmp_execute(q, "query-named-block-nodes", NULL, 5000, &ret, err);
	if (r < 0)
		return r;
	bool have = false;
	for (size_t i = 0; ret && json_object_is_type(ret, json_type_array) && i < json_object_array_length(ret); i++) {
		json_object *v, *n = json_object_array_get_idx(ret, i);
		if (json_object_object_get_ex(n, "node-name", &v) && !strcmp(json_object_get_string(v), SNAP_NODE))
			have = true;
	}
	json_object_put(ret);
	if (have)
		return 0;
	json_object *args = json_object_new_object(), *f = json_object_new_object();
	json_object_object_add(f, "driver", json_object_new_string("file"));
	json_object_object_add(f, "filename", json_object_new_string(file));
	json_object_object_add(args, "driver", json_object_new_string("qcow2"));
	json_object_object_add(args, "node-name", json_object_new_string(SNAP_NODE));
	json_object_object_add(args, "file", f);
	return qmp_execute(q, "blockdev-add", args, 10000, NULL, err);
}

int snapshot_qmp(struct qmp *q, const char *vm_dir, const struct vm_spec *spec, const char *op, const char *tag,
		 struct hutch_error *err)
{
	int r = check_tag(tag, err);
	if (r < 0)
		return r;
	const char *cmd = !strcmp(op, "snapshot-save")	    ? "savevm"
			  : !strcmp(op, "snapshot-restore") ? "loadvm"
			  : !strcmp(op, "snapshot-rm")	    ? "delvm"
							    : NULL;
	if (!cmd)
		return hutch_error_set(err, EINVAL, "unknown snapshot operation '%s'", op);
	r = attach_snap_file(q, vm_dir, spec, err);
	if (r < 0)
		return hutch_error_wrap(err, "the snapshot file");
	_cleanup_free_ char *line = xasprintf("%s %s", cmd, tag);
	return qmp_hmp(q, line, SNAP_HMP_MS, err);
}

/* ---- the CLI's side ---- */

static int vm_of(struct store *st, const char *name, struct vm *ret, struct hutch_error *err)
{
	return vm_load(st, name, ret, err);
}

/* A libvirt VM's snapshots are libvirt's own (virt_snapshot.h). */
static bool on_libvirt(const struct vm *vm) { return vm->spec->backend && !strcmp(vm->spec->backend, "libvirt"); }

static int monitor_op(struct store *st, const char *name, const char *op, const char *tag, struct hutch_error *err)
{
	_cleanup_close_ int fd = -1;
	int r = monitor_connect(st, name, &fd, err);
	if (r < 0)
		return r;
	json_object *req = json_object_new_object(), *res = NULL, *v;
	json_object_object_add(req, "op", json_object_new_string(op));
	json_object_object_add(req, "tag", json_object_new_string(tag));
	r = monitor_request(fd, req, SNAP_HMP_MS + 10000, &res, err);
	if (r < 0)
		return r;
	if (!json_object_object_get_ex(res, "ok", &v) || !json_object_get_boolean(v))
		r = hutch_error_set(err, EIO, "%s",
				    json_object_object_get_ex(res, "error", &v) ? json_object_get_string(v) : "failed");
	json_object_put(res);
	return r;
}

static json_object *find_tag(json_object *arr, const char *tag)
{
	for (size_t i = 0; arr && i < json_object_array_length(arr); i++) {
		json_object *v, *o = json_object_array_get_idx(arr, i);
		if (json_object_object_get_ex(o, "tag", &v) && !strcmp(json_object_get_string(v), tag))
			return o;
	}
	return NULL;
}

int snapshot_list(struct store *st, const char *name, json_object **ret_array, struct hutch_error *err)
{
	struct vm vm;
	int r = vm_of(st, name, &vm, err);
	if (r < 0)
		return r;
	if (on_libvirt(&vm)) {
		r = virt_snapshot_list(&vm, ret_array, err);
		vm_release(&vm);
		return r;
	}
	_cleanup_free_ char *dir = store_vm_dir(st, name);
	_cleanup_free_ char *file = snap_file(dir, vm.spec);
	vm_release(&vm);
	if (access(file, F_OK) < 0) {
		*ret_array = json_object_new_array();
		return 0;
	}
	return snapshot_qcow2_list(file, ret_array, err);
}

int snapshot_qcow2_list(const char *file, json_object **ret_array, struct hutch_error *err)
{
	json_object *arr = json_object_new_array();
	/* -U: a running VM's QEMU holds the image's lock; reading its header is safe */
	char *argv[] = {"qemu-img", "info", "-U", "--output=json", (char *)file, NULL};
	_cleanup_free_ char *out = NULL;
	int r = snapshot_qemu_img(argv, &out, err);
	if (r < 0) {
		json_object_put(arr);
		return r;
	}
	json_object *info = json_tokener_parse(out), *snaps = NULL;
	if (info && json_object_object_get_ex(info, "snapshots", &snaps) &&
	    json_object_is_type(snaps, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(snaps); i++) {
			json_object *s = json_object_array_get_idx(snaps, i), *v, *o = json_object_new_object();
			int64_t vmsz = json_object_object_get_ex(s, "vm-state-size", &v) ? json_object_get_int64(v) : 0;
			json_object_object_add(o, "tag",
					       json_object_new_string(json_object_object_get_ex(s, "name", &v)
									      ? json_object_get_string(v)
									      : ""));
			json_object_object_add(o, "vm_state_bytes", json_object_new_int64(vmsz));
			json_object_object_add(o, "ram", json_object_new_boolean(vmsz > 0));
			json_object_object_add(o, "date",
					       json_object_new_int64(json_object_object_get_ex(s, "date-sec", &v)
									     ? json_object_get_int64(v)
									     : 0));
			json_object_object_add(o, "vm_clock_s",
					       json_object_new_int64(json_object_object_get_ex(s, "vm-clock-sec", &v)
									     ? json_object_get_int64(v)
									     : 0));
			json_object_array_add(arr, o);
		}
	}
	json_object_put(info);
	*ret_array = arr;
	return 0;
}

int snapshot_save(struct store *st, const char *name, const char *tag, json_object **ret_json, struct hutch_error *err)
{
	struct vm vm;
	int r = check_tag(tag, err);
	if (r < 0 || (r = vm_of(st, name, &vm, err)) < 0)
		return r;
	bool image = vm.spec->source == SOURCE_IMAGE, disposable = vm.spec->disposable, lv = on_libvirt(&vm);
	_cleanup_free_ char *dir = store_vm_dir(st, name);
	_cleanup_free_ char *file = snap_file(dir, vm.spec);
	if (lv && !disposable)
		r = virt_snapshot_save(&vm, tag, err);
	vm_release(&vm);
	if (disposable)
		return hutch_error_set(err, ENOTSUP, "'%s' is disposable: it has no snapshots", name);
	if (lv)
		;
	else if (store_is_running(st, name))
		r = monitor_op(st, name, "snapshot-save", tag, err);
	else if (!image)
		return hutch_error_set(err, ENOTSUP,
				       "'%s' is stopped, and a micro VM has no disk: start it to snapshot its memory",
				       name);
	else {
		/* a tag saved again replaces the old snapshot, as savevm does */
		json_object *have = NULL;
		if (snapshot_list(st, name, &have, NULL) == 0 && find_tag(have, tag)) {
			char *del[] = {"qemu-img", "snapshot", "-d", (char *)tag, file, NULL};
			r = snapshot_qemu_img(del, NULL, err);
		}
		json_object_put(have);
		char *argv[] = {"qemu-img", "snapshot", "-c", (char *)tag, file, NULL};
		if (r == 0)
			r = snapshot_qemu_img(argv, NULL, err);
	}
	if (r < 0)
		return hutch_error_wrap(err, "snapshot save '%s' '%s'", name, tag);
	if (ret_json) {
		json_object *all = NULL;
		*ret_json = NULL;
		if (snapshot_list(st, name, &all, err) < 0)
			return r;
		json_object *o = find_tag(all, tag);
		*ret_json = o ? json_object_get(o) : NULL;
		json_object_put(all);
		if (!*ret_json)
			return hutch_error_set(err, EIO, "snapshot '%s' of '%s' was saved but is not listed", tag,
					       name);
	}
	return 0;
}

/* The restored agent says HELLO on the monitor's fresh connection: the VM is usable once it has
 * (bounded; a snapshot taken before the agent was up has none to come back). */
static void wait_agent_back(struct store *st, const char *name, uint64_t ms)
{
	uint64_t end = now_ms() + ms;
	while (now_ms() < end) {
		_cleanup_close_ int fd = -1;
		if (monitor_connect(st, name, &fd, NULL) < 0)
			return;
		json_object *req = json_object_new_object(), *res = NULL, *v;
		json_object_object_add(req, "op", json_object_new_string("status"));
		if (monitor_request(fd, req, 5000, &res, NULL) < 0)
			return;
		bool ready = json_object_object_get_ex(res, "agent", &v) && !strcmp(json_object_get_string(v), "ready");
		json_object_put(res);
		if (ready)
			return;
		struct timespec ts = {0, 100 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

/* 1 when NAME is a libvirt VM and fn did the work (< 0: it failed, wrapped with verb), 0 when it is
 * not one. */
static int on_libvirt_do(struct store *st, const char *name, const char *tag,
			 int (*fn)(struct vm *, const char *, struct hutch_error *), const char *verb,
			 struct hutch_error *err)
{
	struct vm vm;
	int r = vm_of(st, name, &vm, err);
	if (r < 0)
		return r;
	bool lv = on_libvirt(&vm);
	if (lv)
		r = fn(&vm, tag, err);
	vm_release(&vm);
	if (r < 0)
		return hutch_error_wrap(err, "snapshot %s '%s' '%s'", verb, name, tag);
	return lv;
}

int snapshot_restore(struct store *st, const char *name, const char *tag, struct hutch_error *err)
{
	json_object *all = NULL;
	int r = check_tag(tag, err);
	if (r < 0 || (r = on_libvirt_do(st, name, tag, virt_snapshot_restore, "restore", err)) != 0)
		return r < 0 ? r : 0;
	if ((r = snapshot_list(st, name, &all, err)) < 0)
		return r;
	json_object *o = find_tag(all, tag), *v;
	bool ram = o && json_object_object_get_ex(o, "ram", &v) && json_object_get_boolean(v);
	json_object_put(all);
	if (!o)
		return hutch_error_set(err, ENOENT, "'%s' has no snapshot '%s' (see 'hutch snapshot ls %s')", name, tag,
				       name);
	bool running = store_is_running(st, name);
	if (!ram && running)
		return hutch_error_set(err, EBUSY,
				       "snapshot '%s' of '%s' is disk-only: stop the VM to restore it (a running VM "
				       "restores snapshots with RAM)",
				       tag, name);
	if (!ram) {
		_cleanup_free_ char *dir = store_vm_dir(st, name);
		_cleanup_free_ char *file = xasprintf("%s/disk.qcow2", dir);
		char *argv[] = {"qemu-img", "snapshot", "-a", (char *)tag, file, NULL};
		r = snapshot_qemu_img(argv, NULL, err);
		return r < 0 ? hutch_error_wrap(err, "snapshot restore '%s' '%s'", name, tag) : 0;
	}
	if (!running) {
		/* the snapshot replaces whatever the boot does: no need to wait for more than QEMU */
		struct start_opts so = {.timeout_ms = 120000, .wait = WAIT_NONE};
		struct start_result sr;
		r = vm_start(st, name, &so, &sr, err);
		if (r < 0 && r != -EALREADY)
			return hutch_error_wrap(err, "snapshot restore '%s' '%s': starting it", name, tag);
		hutch_error_clear(err);
	}
	r = monitor_op(st, name, "snapshot-restore", tag, err);
	if (r < 0)
		return hutch_error_wrap(err, "snapshot restore '%s' '%s'", name, tag);
	wait_agent_back(st, name, 60000);
	return 0;
}

int snapshot_remove(struct store *st, const char *name, const char *tag, struct hutch_error *err)
{
	json_object *all = NULL;
	int r = check_tag(tag, err);
	if (r < 0 || (r = on_libvirt_do(st, name, tag, virt_snapshot_remove, "rm", err)) != 0)
		return r < 0 ? r : 0;
	if ((r = snapshot_list(st, name, &all, err)) < 0)
		return r;
	bool have = find_tag(all, tag) != NULL;
	json_object_put(all);
	if (!have)
		return hutch_error_set(err, ENOENT, "'%s' has no snapshot '%s'", name, tag);
	if (store_is_running(st, name))
		r = monitor_op(st, name, "snapshot-rm", tag, err);
	else {
		struct vm vm;
		if ((r = vm_of(st, name, &vm, err)) < 0)
			return r;
		_cleanup_free_ char *dir = store_vm_dir(st, name);
		_cleanup_free_ char *file = snap_file(dir, vm.spec);
		vm_release(&vm);
		char *argv[] = {"qemu-img", "snapshot", "-d", (char *)tag, file, NULL};
		r = snapshot_qemu_img(argv, NULL, err);
	}
	return r < 0 ? hutch_error_wrap(err, "snapshot rm '%s' '%s'", name, tag) : 0;
}
