#include "setup.h"

#include "backend.h"
#include "qemu.h"
#include "template.h"

#include <string.h>
#include <sys/stat.h>

const char setup_config_yml[] =
	"# hutch defaults (hutch.yml holds the VMs). Every key is optional.\n"
	"# accel: auto          # auto | kvm | tcg   (auto: KVM only where a probe booted a guest; see 'hutch doctor "
	"--probe')\n"
	"# backend: qemu        # qemu | libvirt\n"
	"# libvirt:\n"
	"#   uri: qemu:///session\n";

/* ---- libvirt.conf ---- */

static bool line_sets_uri_default(const char *line, size_t len)
{
	while (len && (*line == ' ' || *line == '\t')) {
		line++;
		len--;
	}
	static const char key[] = "uri_default";
	size_t k = sizeof(key) - 1;
	if (len < k || memcmp(line, key, k))
		return false;
	/* "uri_default_x = ..." is another key */
	return len == k || line[k] == ' ' || line[k] == '\t' || line[k] == '=';
}

int setup_libvirt_conf_edit(const char *text, char **ret)
{
	size_t n = text ? strlen(text) : 0;
	for (size_t i = 0; i < n;) {
		const char *nl = memchr(text + i, '\n', n - i);
		size_t len = nl ? (size_t)(nl - (text + i)) : n - i;
		if (line_sets_uri_default(text + i, len))
			return 0;
		i += len + 1;
	}
	struct strbuf sb = STRBUF_INIT;
	if (n) {
		strbuf_add(&sb, text, n);
		if (text[n - 1] != '\n')
			strbuf_addch(&sb, '\n');
	}
	strbuf_adds(&sb, SETUP_LIBVIRT_URI_LINE);
	*ret = strbuf_detach(&sb, NULL);
	return 1;
}

bool setup_libvirt_installed(void)
{
	static const char *const libs[] = {"/usr/lib/x86_64-linux-gnu/libvirt.so.0", "/usr/lib64/libvirt.so.0",
					   "/usr/lib/libvirt.so.0", "/lib/x86_64-linux-gnu/libvirt.so.0"};
	for (size_t i = 0; i < ARRAY_SIZE(libs); i++)
		if (access(libs[i], F_OK) == 0)
			return true;
	_cleanup_free_ char *virsh = path_find("virsh", NULL);
	return virsh != NULL;
}

char *setup_libvirt_conf_path(void)
{
	_cleanup_free_ char *config = NULL;
	if (!setup_libvirt_installed() || store_user_config_home(&config, NULL) < 0)
		return NULL;
	return xasprintf("%s/libvirt/libvirt.conf", config);
}

/* ---- steps ---- */

static struct setup_step *add_step(struct setup_plan *p, enum setup_kind kind, const char *path)
{
	p->steps = xrealloc(p->steps, (p->n + 1) * sizeof(*p->steps));
	struct setup_step *s = &p->steps[p->n++];
	*s = (struct setup_step){.kind = kind, .path = xstrdup(path)};
	return s;
}

static void step_fail(struct setup_step *s, const char *hint, const char *fmt, ...) _printf_(3, 4);
static void step_fail(struct setup_step *s, const char *hint, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	struct strbuf sb = STRBUF_INIT;
	strbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	free(s->error);
	s->error = strbuf_detach(&sb, NULL);
	free(s->hint);
	s->hint = hint ? xstrdup(hint) : NULL;
}

static void check_dir(struct setup_step *s)
{
	struct stat st;
	free(s->what);
	s->what = xasprintf("create directory %s", s->path);
	if (stat(s->path, &st) == 0) {
		if (!S_ISDIR(st.st_mode))
			step_fail(s, NULL, "'%s' exists and is not a directory", s->path);
		return;
	}
	s->needed = true;
}

static void check_config(struct setup_step *s)
{
	free(s->what);
	s->what = xasprintf("write %s (commented defaults)", s->path);
	s->needed = access(s->path, F_OK) < 0;
}

static void check_libvirt(struct setup_step *s)
{
	free(s->what);
	s->what = xasprintf("add %.*s to %s", (int)strlen(SETUP_LIBVIRT_URI_LINE) - 1, SETUP_LIBVIRT_URI_LINE, s->path);
	_cleanup_free_ char *text = NULL, *edited = NULL;
	struct hutch_error err = {0};
	if (read_file(s->path, 1 << 20, &text, NULL, &err) < 0 && err.code != ENOENT) {
		step_fail(s, NULL, "%s", err.msg);
		hutch_error_clear(&err);
		return;
	}
	hutch_error_clear(&err);
	s->needed = setup_libvirt_conf_edit(text, &edited) == 1;
}

static struct template_inputs template_inputs_for(const struct setup_plan *p, bool dry_run)
{
	return (struct template_inputs){.agent = p->agent, .cache_dir = p->micro_cache, .dry_run = dry_run};
}

static void check_template(const struct setup_plan *p, struct setup_step *s)
{
	free(s->what);
	s->what = xasprintf("build the micro template in %s", s->path);
	if (!p->agent) {
		step_fail(s, NULL, "hutch-agent not found beside the hutch binary: rebuild, or set HUTCH_AGENT");
		return;
	}
	struct template_inputs in = template_inputs_for(p, true);
	struct micro_template t = {0};
	struct hutch_error err = {0};
	if (template_micro_ensure(&in, &t, &err) < 0) {
		const char *hint = NULL;
		if (err.code == ENOENT && strstr(err.msg, "busybox"))
			hint = "sudo apt-get install busybox-static";
		else if (err.code == ENOENT && strstr(err.msg, "kernel"))
			hint = "sudo apt-get install linux-image-amd64";
		_cleanup_free_ char *chmod_hint = NULL;
		if (err.code == EACCES && strstr(err.msg, "cannot read kernel '")) {
			const char *k = strstr(err.msg, "'") + 1;
			chmod_hint = xasprintf("sudo chmod 0644 %.*s", (int)strcspn(k, "'"), k);
			hint = chmod_hint;
		}
		step_fail(s, hint, "%s", err.msg);
		hutch_error_clear(&err);
		return;
	}
	free(s->what);
	s->what = xasprintf("build the micro template (kernel %s) in %s", t.kernel_release, s->path);
	s->needed = t.rebuilt;
	micro_template_release(&t);
}

static void check_step(const struct setup_plan *p, struct setup_step *s)
{
	switch (s->kind) {
	case SETUP_DIR:
		check_dir(s);
		break;
	case SETUP_CONFIG:
		check_config(s);
		break;
	case SETUP_LIBVIRT_URI:
		check_libvirt(s);
		break;
	case SETUP_TEMPLATE:
		check_template(p, s);
		break;
	default:
		break;
	}
}

/* What only root can fix: printed as commands, never run. */
static void host_hints(struct setup_plan *p)
{
	struct strbuf pkgs = STRBUF_INIT;
	_cleanup_free_ char *qemu = NULL;
	if (qemu_find_binary(&qemu, NULL) < 0)
		strbuf_adds(&pkgs, " qemu-system-x86 qemu-utils");
	if (access("/bin/busybox", X_OK) < 0)
		strbuf_adds(&pkgs, " busybox-static");
	if (pkgs.len)
		p->hints = strv_push(p->hints, xasprintf("sudo apt-get install%s", pkgs.buf));
	strbuf_release(&pkgs);
	/* TCG works without it, only slower. */
	if (access("/dev/kvm", F_OK) == 0 && access("/dev/kvm", R_OK | W_OK) < 0)
		p->hints = strv_push(p->hints,
				     xasprintf("sudo usermod -aG kvm %s   # then log in again, for KVM", user_name()));
}

int setup_plan_make(const struct store *st, struct setup_plan *ret, struct hutch_error *err)
{
	struct setup_plan p = {.dirs = {st->config_dir, st->data_dir, st->cache_dir, st->runtime_dir}};
	for (size_t i = 0; i < ARRAY_SIZE(p.dirs); i++)
		if (!p.dirs[i])
			return hutch_error_set(err, EINVAL, "the store has no directories: set HOME or HUTCH_HOME");
	for (size_t i = 0; i < ARRAY_SIZE(p.dirs); i++)
		add_step(&p, SETUP_DIR, p.dirs[i]);
	p.config_yml = xasprintf("%s/config.yml", st->config_dir);
	add_step(&p, SETUP_CONFIG, p.config_yml);
	p.micro_cache = xasprintf("%s/micro", st->cache_dir);
	if (agent_binary_path(&p.agent, NULL) < 0)
		p.agent = NULL;
	add_step(&p, SETUP_TEMPLATE, p.micro_cache);
	p.libvirt_conf = setup_libvirt_conf_path();
	if (p.libvirt_conf)
		add_step(&p, SETUP_LIBVIRT_URI, p.libvirt_conf);
	for (size_t i = 0; i < p.n; i++)
		check_step(&p, &p.steps[i]);
	host_hints(&p);
	*ret = p;
	return 0;
}

/* ---- doing it ---- */

static int apply_libvirt(struct setup_step *s, struct hutch_error *err)
{
	_cleanup_free_ char *text = NULL, *edited = NULL;
	struct hutch_error rerr = {0};
	if (read_file(s->path, 1 << 20, &text, NULL, &rerr) < 0 && rerr.code != ENOENT) {
		int r = hutch_error_set(err, rerr.code, "%s", rerr.msg);
		hutch_error_clear(&rerr);
		return r;
	}
	hutch_error_clear(&rerr);
	if (setup_libvirt_conf_edit(text, &edited) == 0)
		return 0; /* set meanwhile */
	_cleanup_free_ char *dir = xstrdup(s->path);
	*strrchr(dir, '/') = 0;
	int r = mkdir_p(dir, 0755);
	if (r < 0)
		return hutch_error_set(err, -r, "cannot create '%s': %s", dir, strerror(-r));
	struct stat st;
	mode_t mode = stat(s->path, &st) == 0 ? (st.st_mode & 07777) : 0644;
	return write_file_atomic(s->path, edited, strlen(edited), mode, err);
}

static int apply_template(const struct setup_plan *p, struct setup_step *s, struct hutch_error *err)
{
	struct template_inputs in = template_inputs_for(p, false);
	struct micro_template t = {0};
	int r = template_micro_ensure(&in, &t, err);
	if (r < 0)
		return r;
	free(s->done_what);
	s->done_what = xasprintf("built the micro template (kernel %s) in %s", t.kernel_release, t.dir);
	micro_template_release(&t);
	return 0;
}

static int apply_step(const struct setup_plan *p, struct setup_step *s, struct hutch_error *err)
{
	int r;
	switch (s->kind) {
	case SETUP_DIR:
		/* private like create and store_prepare_run_dir make them; the cache like the template does */
		r = mkdir_p(s->path, !strcmp(s->path, p->dirs[2]) ? 0755 : 0700);
		if (r < 0)
			return hutch_error_set(err, -r, "cannot create '%s': %s", s->path, strerror(-r));
		s->done_what = xasprintf("created directory %s", s->path);
		return 0;
	case SETUP_CONFIG:
		if (access(s->path, F_OK) == 0)
			return 0;
		r = write_file_atomic(s->path, setup_config_yml, strlen(setup_config_yml), 0644, err);
		if (r == 0)
			s->done_what = xasprintf("wrote %s (commented defaults)", s->path);
		return r;
	case SETUP_LIBVIRT_URI:
		r = apply_libvirt(s, err);
		if (r == 0)
			s->done_what = xasprintf("added %.*s to %s", (int)strlen(SETUP_LIBVIRT_URI_LINE) - 1,
						 SETUP_LIBVIRT_URI_LINE, s->path);
		return r;
	case SETUP_TEMPLATE:
		return apply_template(p, s, err);
	default:
		return hutch_error_set(err, EINVAL, "unknown step");
	}
}

int setup_apply(struct setup_plan *p)
{
	int failed = 0;
	for (size_t i = 0; i < p->n; i++) {
		struct setup_step *s = &p->steps[i];
		if (s->error)
			failed++;
		if (!s->needed || s->error)
			continue;
		struct hutch_error err = {0};
		if (apply_step(p, s, &err) < 0) {
			step_fail(s, NULL, "%s", err.msg);
			hutch_error_clear(&err);
			failed++;
			continue;
		}
		s->done = true;
	}
	return failed;
}

size_t setup_needed(const struct setup_plan *p)
{
	size_t n = 0;
	for (size_t i = 0; i < p->n; i++)
		n += p->steps[i].needed;
	return n;
}

size_t setup_failed(const struct setup_plan *p)
{
	size_t n = 0;
	for (size_t i = 0; i < p->n; i++)
		n += p->steps[i].error != NULL;
	return n;
}

void setup_plan_release(struct setup_plan *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++) {
		free(p->steps[i].path);
		free(p->steps[i].what);
		free(p->steps[i].error);
		free(p->steps[i].hint);
		free(p->steps[i].done_what);
	}
	free(p->steps);
	strv_free(p->hints);
	free(p->libvirt_conf);
	free(p->config_yml);
	free(p->agent);
	free(p->micro_cache);
	*p = (struct setup_plan){0};
}
