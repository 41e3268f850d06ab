/* The host side of hutch clip. The guest's clipboard is read and written by the agent's
 * --clipboard tool (agent/clipboard.c) over an exec session whose output lands in a memfd capped at
 * the VM's clipboard.max. The host desktop's clipboard is reached through its own tools, with the
 * same cap on what they print. */
#include "clipboard.h"

#include "backend.h"
#include "guest_tool.h"
#include "icon.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

const char *const clip_backend_names[] = {"wayland", "xclip", "xsel", "file"};

static bool env_set(const char *k)
{
	const char *v = getenv(k);
	return v && *v;
}

static bool have(const char *prog)
{
	_cleanup_free_ char *p = path_find(prog, NULL);
	return p != NULL;
}

enum clip_backend clip_global_backend(void)
{
	if (env_set("WAYLAND_DISPLAY") && have("wl-paste") && have("wl-copy"))
		return CLIP_WAYLAND;
	if (env_set("DISPLAY") && have("xclip"))
		return CLIP_XCLIP;
	if (env_set("DISPLAY") && have("xsel"))
		return CLIP_XSEL;
	return CLIP_FILE;
}

bool clip_text_valid(const char *buf, size_t len)
{
	const unsigned char *p = (const unsigned char *)buf;
	for (size_t i = 0; i < len;) {
		size_t n;
		uint32_t cp;
		if (p[i] == 0)
			return false;
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		if ((p[i] & 0xe0) == 0xc0)
			n = 2, cp = p[i] & 0x1f;
		else if ((p[i] & 0xf0) == 0xe0)
			n = 3, cp = p[i] & 0x0f;
		else if ((p[i] & 0xf8) == 0xf0)
			n = 4, cp = p[i] & 0x07;
		else
			return false;
		if (i + n > len)
			return false;
		for (size_t k = 1; k < n; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
		if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n;
	}
	return true;
}

/* hutch's own buffer: one file per type, as a desktop clipboard offers each type apart */
static char *buffer_path(const struct store *st, enum clip_type t)
{
	return xasprintf("%s/clipboard%s", st->runtime_dir, t == CLIP_PNG ? ".png" : "");
}

/* Run argv with in (may be NULL) on stdin; capture stdout up to max bytes when ret is non-NULL. */
static int run_tool(char *const *argv, const char *in, size_t in_len, size_t max, char **ret, size_t *ret_len,
		    struct hutch_error *err)
{
	int out[2] = {-1, -1}, inp[2] = {-1, -1};
	if ((ret && pipe2(out, O_CLOEXEC) < 0) || (in && pipe2(inp, O_CLOEXEC) < 0))
		return hutch_error_set(err, errno, "pipe: %s", strerror(errno));
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	if (in)
		posix_spawn_file_actions_adddup2(&fa, inp[0], 0);
	else
		posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (ret)
		posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	else
		posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	pid_t pid;
	_cleanup_free_ char *prog = path_find(argv[0], NULL);
	int r = prog ? posix_spawn(&pid, prog, &fa, NULL, argv, environ) : ENOENT;
	posix_spawn_file_actions_destroy(&fa);
	if (ret)
		close(out[1]);
	if (in)
		close(inp[0]);
	if (r != 0) {
		if (ret)
			close(out[0]);
		if (in)
			close(inp[1]);
		return hutch_error_set(err, r, "cannot run '%s': %s", argv[0], strerror(r));
	}
	if (in) {
		/* SIGPIPE is the caller's: a tool that stops reading is an error, not our death */
		void (*old)(int) = signal(SIGPIPE, SIG_IGN);
		write_all(inp[1], in, in_len);
		signal(SIGPIPE, old);
		close(inp[1]);
	}
	struct strbuf sb = STRBUF_INIT;
	bool too_big = false;
	if (ret) {
		char buf[65536];
		ssize_t n;
		while ((n = read(out[0], buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR)) {
			if (n <= 0)
				continue;
			if (sb.len + (size_t)n > max) {
				too_big = true;
				kill(pid, SIGTERM);
				break;
			}
			strbuf_add(&sb, buf, (size_t)n);
		}
		close(out[0]);
	}
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (too_big) {
		strbuf_release(&sb);
		return hutch_error_set(err, EFBIG, "the host clipboard holds more than %zu bytes", max);
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		strbuf_release(&sb);
		/* wl-paste and xclip fail on an empty clipboard: that is an empty text */
		if (ret && WIFEXITED(st)) {
			*ret = xstrdup("");
			*ret_len = 0;
			return 0;
		}
		return hutch_error_set(err, EIO, "'%s' failed", argv[0]);
	}
	if (ret) {
		*ret_len = sb.len;
		*ret = sb.len ? strbuf_detach(&sb, NULL) : xstrdup("");
		strbuf_release(&sb);
	}
	return 0;
}

int clip_global_get(const struct store *st, enum clip_type t, size_t max, char **ret, size_t *ret_len,
		    struct hutch_error *err)
{
	char *mime = (char *)clip_type_names[t];
	switch (clip_global_backend()) {
	case CLIP_WAYLAND: {
		char *argv[] = {"wl-paste", "--no-newline", "--type", mime, NULL};
		return run_tool(argv, NULL, 0, max, ret, ret_len, err);
	}
	case CLIP_XCLIP: {
		char *argv[] = {"xclip", "-selection", "clipboard", "-o", t == CLIP_TEXT ? NULL : "-t", mime, NULL};
		return run_tool(argv, NULL, 0, max, ret, ret_len, err);
	}
	case CLIP_XSEL: {
		if (t != CLIP_TEXT)
			return hutch_error_set(err, ENOTSUP, "xsel carries text only: install xclip for %s", mime);
		char *argv[] = {"xsel", "--clipboard", "--output", NULL};
		return run_tool(argv, NULL, 0, max, ret, ret_len, err);
	}
	case CLIP_FILE:
	default: {
		_cleanup_free_ char *path = buffer_path(st, t);
		if (access(path, F_OK) < 0) {
			*ret = xstrdup("");
			*ret_len = 0;
			return 0;
		}
		int r = read_file(path, max, ret, ret_len, err);
		if (r == -EFBIG)
			hutch_error_clear(err),
				r = hutch_error_set(err, EFBIG, "hutch's clipboard holds more than %zu bytes", max);
		return r;
	}
	}
}

int clip_global_set(const struct store *st, enum clip_type t, const char *buf, size_t len, struct hutch_error *err)
{
	char *mime = (char *)clip_type_names[t];
	switch (clip_global_backend()) {
	case CLIP_WAYLAND: {
		char *argv[] = {"wl-copy", "--type", t == CLIP_TEXT ? "text/plain;charset=utf-8" : mime, NULL};
		return run_tool(argv, buf, len, 0, NULL, NULL, err);
	}
	case CLIP_XCLIP: {
		char *argv[] = {"xclip", "-selection", "clipboard", "-i", t == CLIP_TEXT ? NULL : "-t", mime, NULL};
		return run_tool(argv, buf, len, 0, NULL, NULL, err);
	}
	case CLIP_XSEL: {
		if (t != CLIP_TEXT)
			return hutch_error_set(err, ENOTSUP, "xsel carries text only: install xclip for %s", mime);
		char *argv[] = {"xsel", "--clipboard", "--input", NULL};
		return run_tool(argv, buf, len, 0, NULL, NULL, err);
	}
	case CLIP_FILE:
	default: {
		if (mkdir_p(st->runtime_dir, 0700) < 0)
			return hutch_error_set(err, errno, "cannot create '%s': %s", st->runtime_dir, strerror(errno));
		_cleanup_free_ char *path = buffer_path(st, t);
		return write_file_atomic(path, buf, len, 0600, err);
	}
	}
}

static int vm_cap(struct store *st, const char *name, enum clip_type t, size_t *ret, struct hutch_error *err)
{
	struct vm vm = {0};
	int r = vm_load(st, name, &vm, err);
	if (r < 0)
		return r;
	*ret = (size_t)desktop_clipboard_max(&vm.spec->desk);
	bool allowed = desktop_clipboard_allows(&vm.spec->desk, t);
	vm_release(&vm);
	if (!allowed)
		return hutch_error_set(err, EPERM, "'%s' does not allow %s on its clipboard (clipboard.types)", name,
				       clip_type_names[t]);
	if (!store_is_running(st, name))
		return hutch_error_set(err, ENOTCONN, "'%s' is not running: start it with 'hutch start %s'", name,
				       name);
	return 0;
}

/* What crosses is checked for its type: UTF-8 text, or a PNG that libpng decodes and writes anew
 * (so the guest's bytes never reach the host clipboard: chunks, trailing data and all). */
static int clip_check(enum clip_type t, const char *what, const char *done, char **buf, size_t *len, size_t max,
		      struct hutch_error *err)
{
	if (t == CLIP_TEXT) {
		if (!clip_text_valid(*buf, *len))
			return hutch_error_set(err, EINVAL, "%s is not UTF-8 text: nothing %s", what, done);
		return 0;
	}
	char *png;
	size_t png_len;
	unsigned w, h;
	if (png_sanitize(*buf, *len, "image", max, CLIP_PNG_SIDE_MAX, &png, &png_len, &w, &h, err) < 0)
		return hutch_error_wrap(err, "%s", what);
	free(*buf);
	*buf = png;
	*len = png_len;
	return 0;
}

int clip_copy(struct store *st, const char *name, enum clip_type t, size_t *ret_len, struct hutch_error *err)
{
	size_t max;
	int r = vm_cap(st, name, t, &max, err);
	if (r < 0)
		return r;
	char num[24];
	snprintf(num, sizeof(num), "%zu", max);
	char *args[] = {"--clipboard", "get", num, (char *)clip_type_names[t], NULL};
	_cleanup_free_ char *untrusted = NULL;
	size_t len;
	if ((r = guest_tool_run(st, name, args, NULL, 0, max, &untrusted, &len, err)) < 0) {
		if (r == -EFBIG) {
			hutch_error_clear(err);
			return hutch_error_set(err, EFBIG,
					       "the clipboard of '%s' holds more than its cap of %zu bytes "
					       "(clipboard.max)",
					       name, max);
		}
		return r;
	}
	_cleanup_free_ char *what = xasprintf("the clipboard of '%s'", name);
	if ((r = clip_check(t, what, "copied", &untrusted, &len, max, err)) < 0)
		return r;
	if ((r = clip_global_set(st, t, untrusted, len, err)) < 0)
		return r;
	*ret_len = len;
	return 0;
}

int clip_paste(struct store *st, const char *name, enum clip_type t, size_t *ret_len, struct hutch_error *err)
{
	size_t max;
	int r = vm_cap(st, name, t, &max, err);
	if (r < 0)
		return r;
	_cleanup_free_ char *buf = NULL;
	size_t len;
	if ((r = clip_global_get(st, t, max, &buf, &len, err)) < 0)
		return r;
	if ((r = clip_check(t, "the global clipboard", "pasted", &buf, &len, max, err)) < 0)
		return r;
	char num[24];
	snprintf(num, sizeof(num), "%zu", max);
	char *args[] = {"--clipboard", "set", num, (char *)clip_type_names[t], NULL};
	_cleanup_free_ char *out = NULL;
	size_t out_len;
	if ((r = guest_tool_run(st, name, args, buf, len, 4096, &out, &out_len, err)) < 0)
		return r;
	*ret_len = len;
	return 0;
}
