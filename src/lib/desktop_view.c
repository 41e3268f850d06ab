/* hutch view and hutch screenshot, library side. */
#include "desktop_view.h"

#include "backend.h"
#include "client.h"
#include "desktop_qemu.h"

#include <string.h>
#include <unistd.h>

static int need_running(struct store *st, const char *name, struct hutch_error *err)
{
	if (!store_vm_exists(st, name))
		return hutch_error_set(err, ENOENT, "no VM named '%s'", name);
	if (!store_is_running(st, name))
		return hutch_error_set(err, ENOTCONN, "'%s' is not running: start it with 'hutch start %s'", name,
				       name);
	return 0;
}

int desktop_view_uri(struct store *st, const char *name, char **ret, struct hutch_error *err)
{
	struct vm vm = {0};
	int r = need_running(st, name, err);
	if (r < 0 || (r = vm_load(st, name, &vm, err)) < 0)
		return r;
	_cleanup_free_ char *run_dir = store_run_dir(st, name);
	if (vm.spec->backend && !strcmp(vm.spec->backend, "libvirt"))
		/* libvirt made the socket in its own dir and knows where: its viewer asks it */
		r = hutch_error_set(
			err, ENOTSUP,
			"'%s' runs under libvirt: open its display with 'virt-viewer --connect %s hutch-%s'", name,
			vm.spec->uri ? vm.spec->uri : "qemu:///session", name);
	else
		r = desktop_uri(vm.spec, run_dir, ret, err);
	vm_release(&vm);
	return r;
}

int png_dimensions(const unsigned char *buf, size_t len, unsigned *ret_w, unsigned *ret_h)
{
	static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
	if (len < 24 || memcmp(buf, sig, 8) || memcmp(buf + 12, "IHDR", 4))
		return -EINVAL;
	*ret_w = (unsigned)buf[16] << 24 | (unsigned)buf[17] << 16 | (unsigned)buf[18] << 8 | buf[19];
	*ret_h = (unsigned)buf[20] << 24 | (unsigned)buf[21] << 16 | (unsigned)buf[22] << 8 | buf[23];
	return 0;
}

int desktop_screenshot(struct store *st, const char *name, const char *dest, unsigned *ret_w, unsigned *ret_h,
		       struct hutch_error *err)
{
	int r = need_running(st, name, err);
	if (r < 0)
		return r;
	_cleanup_close_ int fd = -1;
	if ((r = monitor_connect(st, name, &fd, err)) < 0)
		return r;
	json_object *req = json_object_new_object(), *res = NULL, *v;
	json_object_object_add(req, "op", json_object_new_string("screendump"));
	if ((r = monitor_request(fd, req, 60000, &res, err)) < 0)
		return r;
	if (!json_object_object_get_ex(res, "ok", &v) || !json_object_get_boolean(v)) {
		r = hutch_error_set(err, EIO, "%s",
				    json_object_object_get_ex(res, "error", &v) ? json_object_get_string(v) : "failed");
		json_object_put(res);
		return r;
	}
	/* the monitor names a file in the run dir; take only its base name from the reply */
	const char *file = json_object_object_get_ex(res, "file", &v) ? json_object_get_string(v) : "";
	const char *base = strrchr(file, '/');
	_cleanup_free_ char *path = store_run_file(st, name, base ? base + 1 : file);
	json_object_put(res);
	_cleanup_free_ char *buf = NULL;
	size_t len;
	r = read_file(path, SCREENSHOT_MAX, &buf, &len, err);
	unlink(path);
	if (r < 0)
		return r;
	unsigned w, h;
	if (png_dimensions((const unsigned char *)buf, len, &w, &h) < 0)
		return hutch_error_set(err, EIO, "QEMU's screendump is not a PNG");
	if ((r = write_file_atomic(dest, buf, len, 0644, err)) < 0)
		return r;
	*ret_w = w;
	*ret_h = h;
	return 0;
}
