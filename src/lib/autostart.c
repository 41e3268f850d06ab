#include "autostart.h"
#include "store.h"
#include "backend_libvirt.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>

extern char **environ;

#define WANTS_DIR "default.target.wants"
#define RUN_TIMEOUT_MS 30000

void autostart_quote(struct strbuf *sb, const char *arg, bool exec)
{
	bool quote = !*arg || strpbrk(arg, " \t\"'\\;") != NULL;
	if (quote)
		strbuf_addch(sb, '"');
	for (const char *p = arg; *p; p++) {
		if (*p == '%')
			strbuf_adds(sb, "%%");
		else if (*p == '$' && exec)
			strbuf_adds(sb, "$$");
		else if (quote && (*p == '"' || *p == '\\')) {
			strbuf_addch(sb, '\\');
			strbuf_addch(sb, *p);
		} else
			strbuf_addch(sb, *p);
	}
	if (quote)
		strbuf_addch(sb, '"');
}

static bool has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

int autostart_render_unit(const struct autostart_unit *u, char **ret, struct hutch_error *err)
{
	if (!u->name || !spec_valid_name(u->name))
		return hutch_error_set(err, EINVAL, "invalid VM name '%s'", u->name ? u->name : "");
	if (!u->hutch || u->hutch[0] != '/' || has_control(u->hutch))
		return hutch_error_set(err, EINVAL,
				       "the hutch binary must be an absolute path without control "
				       "characters, not '%s'",
				       u->hutch ? u->hutch : "");
	if (u->hutch_home && (u->hutch_home[0] != '/' || has_control(u->hutch_home)))
		return hutch_error_set(err, EINVAL, "HUTCH_HOME must be an absolute path without control characters");
	struct strbuf sb = STRBUF_INIT;
	strbuf_addf(&sb,
		    "# Written by 'hutch autostart %s on'; 'hutch autostart %s off' or 'hutch destroy %s' removes it.\n"
		    "[Unit]\n"
		    "Description=hutch VM %s\n"
		    "Documentation=man:hutch(1)\n"
		    "\n"
		    "[Service]\n"
		    "# hutch start returns once the guest agent answers; the VM's monitor stays in this unit's\n"
		    "# cgroup until ExecStop shuts the guest down (agent, ACPI, quit, kill).\n"
		    "Type=oneshot\n"
		    "RemainAfterExit=yes\n"
		    "# 3: already running (libvirt's own autostart of the domain came first; hutch adopts it)\n"
		    "SuccessExitStatus=3\n",
		    u->name, u->name, u->name, u->name);
	if (u->hutch_home) {
		strbuf_adds(&sb, "Environment=");
		_cleanup_free_ char *kv = xasprintf("HUTCH_HOME=%s", u->hutch_home);
		autostart_quote(&sb, kv, false);
		strbuf_addch(&sb, '\n');
	}
	static const char *const verbs[][2] = {{"ExecStart", "start"}, {"ExecStop", "stop"}};
	for (size_t i = 0; i < ARRAY_SIZE(verbs); i++) {
		strbuf_addf(&sb, "%s=", verbs[i][0]);
		autostart_quote(&sb, u->hutch, true);
		strbuf_addf(&sb, " %s %s\n", verbs[i][1], u->name);
	}
	/* A cloud image's first boot runs cloud-init before start returns. */
	strbuf_adds(&sb, "TimeoutStartSec=15min\n"
			 "TimeoutStopSec=3min\n"
			 "\n"
			 "[Install]\n"
			 "WantedBy=default.target\n");
	*ret = strbuf_detach(&sb, NULL);
	return 0;
}

int autostart_unit_dir(char **ret, struct hutch_error *err)
{
	_cleanup_free_ char *config = NULL;
	int r = store_user_config_home(&config, err);
	if (r < 0)
		return r;
	*ret = xasprintf("%s/systemd/user", config);
	return 0;
}

char *autostart_unit_path(const char *unit_dir, const char *name)
{
	return xasprintf("%s/hutch-%s.service", unit_dir, name);
}

static char *wants_path(const char *unit_dir, const char *name)
{
	return xasprintf("%s/" WANTS_DIR "/hutch-%s.service", unit_dir, name);
}

bool autostart_is_on(const char *name)
{
	_cleanup_free_ char *dir = NULL;
	if (!spec_valid_name(name) || autostart_unit_dir(&dir, NULL) < 0)
		return false;
	_cleanup_free_ char *p = autostart_unit_path(dir, name);
	return access(p, F_OK) == 0;
}

void autostart_result_release(struct autostart_result *r)
{
	if (!r)
		return;
	free(r->unit_path);
	strv_free(r->warnings);
	*r = (struct autostart_result){0};
}

static void warn(struct autostart_result *r, const char *fmt, ...) _printf_(2, 3);
static void warn(struct autostart_result *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	struct strbuf sb = STRBUF_INIT;
	strbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	r->warnings = strv_push(r->warnings, strbuf_detach(&sb, NULL));
}

/* Run a helper (systemctl, loginctl) quietly. 0 on exit status 0; otherwise < 0 with its first stderr
 * line (or why it did not run) in *ret_why. */
static int run_quiet(char *const argv[], char **ret_why)
{
	int pe[2];
	if (pipe2(pe, O_CLOEXEC) < 0) {
		*ret_why = xasprintf("pipe: %s", strerror(errno));
		return -errno;
	}
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
	pid_t pid;
	int r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(pe[1]);
	_cleanup_close_ int rfd = pe[0];
	if (r != 0) {
		*ret_why = r == ENOENT ? xasprintf("%s is not installed", argv[0])
				       : xasprintf("cannot run %s: %s", argv[0], strerror(r));
		return -r;
	}
	struct strbuf out = STRBUF_INIT;
	uint64_t deadline = now_ms() + RUN_TIMEOUT_MS;
	bool timed_out = false;
	for (;;) {
		uint64_t now = now_ms();
		if (now >= deadline) {
			timed_out = true;
			kill(pid, SIGKILL);
			break;
		}
		struct pollfd p = {rfd, POLLIN, 0};
		int n = poll(&p, 1, (int)(deadline - now));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			continue;
		char buf[1024];
		ssize_t k = read(rfd, buf, sizeof(buf));
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		if (out.len < 4096)
			strbuf_add(&out, buf, (size_t)k);
	}
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (!timed_out && WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		strbuf_release(&out);
		return 0;
	}
	char *nl = out.buf ? strchr(out.buf, '\n') : NULL;
	if (nl)
		*nl = 0;
	if (timed_out)
		*ret_why = xasprintf("%s did not finish in %d s", argv[0], RUN_TIMEOUT_MS / 1000);
	else if (out.len && out.buf[0])
		*ret_why = xstrdup(out.buf);
	else if (WIFEXITED(st))
		*ret_why = xasprintf("%s exited with status %d", argv[0], WEXITSTATUS(st));
	else
		*ret_why = xasprintf("%s was killed by signal %d", argv[0], WIFSIGNALED(st) ? WTERMSIG(st) : 0);
	strbuf_release(&out);
	return -EIO;
}

static void manager_reload(struct autostart_result *r)
{
	char *const argv[] = {"systemctl", "--user", "--no-ask-password", "daemon-reload", NULL};
	_cleanup_free_ char *why = NULL;
	if (run_quiet(argv, &why) < 0)
		warn(r, "cannot reload the user manager (%s): run 'systemctl --user daemon-reload' in your session",
		     why);
}

static void linger_enable(struct autostart_result *r)
{
	const char *user = user_name();
	_cleanup_free_ char *flag = xasprintf("/var/lib/systemd/linger/%s", user);
	if (access(flag, F_OK) == 0)
		return;
	/* For one's own user, polkit allows this without a password on most desktops. */
	char *const argv[] = {"loginctl", "--no-ask-password", "enable-linger", (char *)user, NULL};
	_cleanup_free_ char *why = NULL;
	if (run_quiet(argv, &why) < 0)
		warn(r,
		     "cannot enable linger (%s), so the VM starts only once you log in: run 'loginctl enable-linger %s' "
		     "(or as root: 'sudo loginctl enable-linger %s')",
		     why, user, user);
}

/* What systemd should be told after the unit dir changed. With HUTCH_HOME the dir is not one systemd
 * reads: say how to hand the unit over instead of touching the real user manager. */
static void manager_sync(const char *unit_path, bool on, struct autostart_result *r)
{
	const char *hh = getenv("HUTCH_HOME");
	if (hh && *hh) {
		if (on)
			warn(r,
			     "HUTCH_HOME is set, so systemd does not read '%s': to use it, run "
			     "'systemctl --user enable %s' and 'loginctl enable-linger %s'",
			     unit_path, unit_path, user_name());
		return;
	}
	manager_reload(r);
	if (on)
		linger_enable(r);
}

/* A libvirt VM's domain carries its own autostart flag too (virDomainSetAutostart): libvirt starts it
 * when its daemon starts, which for qemu:///system is at boot. The unit keeps calling hutch. */
static void backend_hook(const char *name, bool on, struct autostart_result *r)
{
	struct store st;
	struct hutch_error e = {0};
	if (store_open(&st, &e) == 0) {
		if (libvirt_autostart(&st, name, on, &e) < 0)
			warn(r, "the libvirt domain's autostart flag was not %s: %s", on ? "set" : "cleared", e.msg);
		store_release(&st);
	}
	hutch_error_clear(&e);
}

static int link_atomic(const char *target, const char *path, struct hutch_error *err)
{
	_cleanup_free_ char *tmp = xasprintf("%s.tmp.%d", path, (int)getpid());
	unlink(tmp);
	if (symlink(target, tmp) < 0)
		return hutch_error_set(err, errno, "cannot create '%s': %s", tmp, strerror(errno));
	if (rename(tmp, path) < 0) {
		int e = errno;
		unlink(tmp);
		return hutch_error_set(err, e, "cannot create '%s': %s", path, strerror(e));
	}
	return 0;
}

static bool file_equals(const char *path, const char *text)
{
	_cleanup_free_ char *old = NULL;
	return read_file(path, 1 << 20, &old, NULL, NULL) == 0 && !strcmp(old, text);
}

static bool link_equals(const char *path, const char *target)
{
	char buf[4096];
	ssize_t n = readlink(path, buf, sizeof(buf) - 1);
	if (n < 0)
		return false;
	buf[n] = 0;
	return !strcmp(buf, target);
}

static int self_exe(char **ret, struct hutch_error *err)
{
	char buf[4096];
	ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
	if (n <= 0)
		return hutch_error_set(err, errno, "cannot read /proc/self/exe: %s", strerror(errno));
	buf[n] = 0;
	*ret = xstrdup(buf);
	return 0;
}

int autostart_enable(const char *name, const struct vm_spec *spec, struct autostart_result *ret,
		     struct hutch_error *err)
{
	_cleanup_free_ char *dir = NULL, *exe = NULL, *text = NULL;
	int r = autostart_unit_dir(&dir, err);
	if (r < 0 || (r = self_exe(&exe, err)) < 0)
		return r;
	const char *hh = getenv("HUTCH_HOME");
	struct autostart_unit u = {.name = name, .hutch = exe, .hutch_home = hh && *hh ? hh : NULL};
	if ((r = autostart_render_unit(&u, &text, err)) < 0)
		return r;
	_cleanup_free_ char *wants = xasprintf("%s/" WANTS_DIR, dir);
	if ((r = mkdir_p(wants, 0755)) < 0)
		return hutch_error_set(err, -r, "cannot create '%s': %s", wants, strerror(-r));
	_cleanup_(autostart_result_releasep) struct autostart_result res = {.unit_path =
										    autostart_unit_path(dir, name)};
	if (!file_equals(res.unit_path, text)) {
		if ((r = write_file_atomic(res.unit_path, text, strlen(text), 0644, err)) < 0)
			return r;
		res.changed = true;
	}
	_cleanup_free_ char *link = wants_path(dir, name);
	_cleanup_free_ char *target = xasprintf("../hutch-%s.service", name);
	if (!link_equals(link, target)) {
		if ((r = link_atomic(target, link, err)) < 0)
			return r;
		res.changed = true;
	}
	manager_sync(res.unit_path, true, &res);
	backend_hook(name, true, &res);
	*ret = res;
	res = (struct autostart_result){0};
	return 0;
}

int autostart_disable(const char *name, struct autostart_result *ret, struct hutch_error *err)
{
	_cleanup_free_ char *dir = NULL;
	int r = autostart_unit_dir(&dir, err);
	if (r < 0)
		return r;
	if (!spec_valid_name(name))
		return hutch_error_set(err, EINVAL, "invalid VM name '%s'", name);
	struct autostart_result res = {.unit_path = autostart_unit_path(dir, name)};
	_cleanup_free_ char *link = wants_path(dir, name);
	/* The link first: a unit without it is merely disabled, a link without its unit is dangling. */
	const char *paths[] = {link, res.unit_path};
	for (size_t i = 0; i < ARRAY_SIZE(paths); i++) {
		if (unlink(paths[i]) == 0)
			res.changed = true;
		else if (errno != ENOENT) {
			int e = errno;
			autostart_result_release(&res);
			return hutch_error_set(err, e, "cannot remove '%s': %s", paths[i], strerror(e));
		}
	}
	if (res.changed)
		manager_sync(res.unit_path, false, &res);
	backend_hook(name, false, &res);
	*ret = res;
	return 0;
}
