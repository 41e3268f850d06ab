/* Writing menu entries. Every string that goes into a file is either a validated VM or app name
 * (a narrow alphabet), a colour we formatted, or guest text that desktop_entry.c sanitised; the
 * few characters the Desktop Entry spec gives meaning to are escaped here anyway. */
#include "menu.h"

#include "backend.h"
#include "color.h"
#include "desktop_entry.h"
#include "guest_tool.h"
#include "icon.h"

#include <ctype.h>
#include <dirent.h>
#include <string.h>
#include <unistd.h>

static const unsigned icon_sizes[] = {16, 22, 24, 32, 48, 64, 128, 256};

int desktop_data_home(char **ret, struct hutch_error *err)
{
	return store_xdg_dir("share", "XDG_DATA_HOME", ".local/share", ret, err);
}

void desktop_sync_result_release(struct desktop_sync_result *r)
{
	strv_free(r->entries);
	strv_free(r->removed);
	strv_free(r->warnings);
	memset(r, 0, sizeof(*r));
}

struct app {
	char id[65];
	char name[4 * 64 + 1];
	char program[129];
	char icon[65]; /* guest icon name */
	char categories[128];
};

/* A localestring/string value: the spec's escapes for backslash and line breaks; sanitised text
 * has no control characters, but escaping costs nothing. */
static void add_value(struct strbuf *sb, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\')
			strbuf_adds(sb, "\\\\");
		else if (*v == '\n')
			strbuf_adds(sb, "\\n");
		else if (*v == '\t')
			strbuf_adds(sb, "\\t");
		else if (*v == '\r')
			strbuf_adds(sb, "\\r");
		else
			strbuf_addch(sb, *v);
	}
}

static char *render_entry(const char *vm, const char *color, const struct app *a, bool has_icon)
{
	struct strbuf sb = STRBUF_INIT;
	strbuf_adds(&sb, "[Desktop Entry]\nType=Application\nVersion=1.0\nName=[");
	strbuf_adds(&sb, vm);
	strbuf_adds(&sb, "] ");
	add_value(&sb, a->name);
	strbuf_addf(&sb, "\nComment=%s in the hutch VM %s\n", a->id, vm);
	/* program and VM name are [A-Za-z0-9._+/-]: nothing the Exec quoting rules would touch */
	strbuf_addf(&sb, "Exec=hutch run %s -- %s %%U\n", vm, a->program);
	if (has_icon)
		strbuf_addf(&sb, "Icon=hutch-%s-%s\n", vm, a->id);
	strbuf_addf(&sb, "Categories=X-hutch-%s;\n", vm);
	strbuf_adds(&sb, "Terminal=false\nStartupNotify=false\n");
	strbuf_addf(&sb, "X-Hutch-VM=%s\n", vm);
	if (a->categories[0])
		strbuf_addf(&sb, "X-Hutch-Guest-Categories=%s\n", a->categories);
	uint32_t rgb;
	char hex[16];
	if (color && color_parse(color, &rgb) == 0)
		strbuf_addf(&sb, "X-Hutch-Color=%s\n", color_hex(rgb, hex, sizeof(hex)));
	return strbuf_detach(&sb, NULL);
}

static char *render_directory(const char *vm, const char *color)
{
	struct strbuf sb = STRBUF_INIT;
	strbuf_addf(&sb,
		    "[Desktop Entry]\nType=Directory\nVersion=1.0\nName=[%s]\nComment=Programs in the hutch VM %s\n",
		    vm, vm);
	uint32_t rgb;
	char hex[16];
	if (color && color_parse(color, &rgb) == 0)
		strbuf_addf(&sb, "X-Hutch-Color=%s\n", color_hex(rgb, hex, sizeof(hex)));
	return strbuf_detach(&sb, NULL);
}

static char *render_menu(const char *vm)
{
	return xasprintf("<!DOCTYPE Menu PUBLIC \"-//freedesktop//DTD Menu 1.0//EN\"\n"
			 " \"http://www.freedesktop.org/standards/menu-spec/1.0/menu.dtd\">\n"
			 "<!-- written by hutch desktop sync; hutch desktop rm %s removes it -->\n"
			 "<Menu>\n  <Name>Applications</Name>\n  <Menu>\n    <Name>hutch-%s</Name>\n"
			 "    <Directory>hutch-%s.directory</Directory>\n"
			 "    <Include><Category>X-hutch-%s</Category></Include>\n  </Menu>\n</Menu>\n",
			 vm, vm, vm, vm);
}

static void title_case(const char *id, char *out, size_t len)
{
	snprintf(out, len, "%s", id);
	if (out[0])
		out[0] = (char)toupper((unsigned char)out[0]);
}

static size_t find_app(const struct app *apps, size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(apps[i].id, id))
			return i;
	return SIZE_MAX;
}

/* Spec apps first (their names title-cased), then what the guest has; the guest's name and icon
 * are taken for a spec app of the same id. */
static struct app *merge_apps(char *const *spec_apps, const struct guest_app *g, size_t gn, size_t *ret_n)
{
	size_t n = 0;
	struct app *apps = xcalloc(strv_len(spec_apps) + gn + 1, sizeof(*apps));
	for (size_t i = 0; spec_apps && spec_apps[i]; i++) {
		if (find_app(apps, n, spec_apps[i]) != SIZE_MAX)
			continue;
		struct app *a = &apps[n++];
		snprintf(a->id, sizeof(a->id), "%s", spec_apps[i]);
		snprintf(a->program, sizeof(a->program), "%s", spec_apps[i]);
		title_case(spec_apps[i], a->name, sizeof(a->name));
	}
	for (size_t i = 0; i < gn; i++) {
		size_t k = find_app(apps, n, g[i].id);
		struct app *a = k == SIZE_MAX ? &apps[n++] : &apps[k];
		if (k == SIZE_MAX) {
			snprintf(a->id, sizeof(a->id), "%s", g[i].id);
			snprintf(a->program, sizeof(a->program), "%s", g[i].program);
		}
		snprintf(a->name, sizeof(a->name), "%s", g[i].name);
		snprintf(a->icon, sizeof(a->icon), "%s", g[i].icon);
		snprintf(a->categories, sizeof(a->categories), "%s", g[i].categories);
	}
	*ret_n = n;
	return apps;
}

static void warn(struct desktop_sync_result *r, const char *fmt, ...) _printf_(2, 3);
static void warn(struct desktop_sync_result *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	struct strbuf sb = STRBUF_INIT;
	strbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	r->warnings = strv_push(r->warnings, strbuf_detach(&sb, NULL));
}

static char *icon_path(const char *data, unsigned size, const char *vm, const char *id)
{
	return xasprintf("%s/icons/hicolor/%ux%u/apps/hutch-%s-%s.png", data, size, size, vm, id);
}

/* Fetch, sanitise and install one app's icon; false when it has none. */
static bool install_icon(struct store *st, const char *vm, const char *data, const struct app *a,
			 struct desktop_sync_result *r)
{
	if (!a->icon[0])
		return false;
	char max[16];
	snprintf(max, sizeof(max), "%u", ICON_BYTES_MAX);
	char *args[] = {"--icon", (char *)a->icon, max, NULL};
	_cleanup_free_ char *png = NULL, *clean = NULL;
	size_t len = 0, clean_len = 0;
	unsigned w, h;
	struct hutch_error err = {0};
	if (guest_tool_run(st, vm, args, NULL, 0, ICON_BYTES_MAX, &png, &len, &err) < 0 ||
	    icon_sanitize(png, len, &clean, &clean_len, &w, &h, &err) < 0) {
		if (err.code != EIO) /* EIO: the guest has no PNG of that name, which is common */
			warn(r, "icon of '%s': %s", a->id, err.msg);
		hutch_error_clear(&err);
		return false;
	}
	unsigned size = 0;
	for (size_t i = 0; i < ARRAY_SIZE(icon_sizes); i++)
		if (w == h && w == icon_sizes[i])
			size = w;
	if (!size) {
		warn(r, "icon of '%s' is %ux%u, not a theme size: skipped", a->id, w, h);
		return false;
	}
	_cleanup_free_ char *path = icon_path(data, size, vm, a->id);
	_cleanup_free_ char *dir = xstrndup(path, (size_t)(strrchr(path, '/') - path));
	if (mkdir_p(dir, 0755) < 0 || write_file_atomic(path, clean, clean_len, 0644, &err) < 0) {
		warn(r, "icon of '%s': %s", a->id, err.msg ? err.msg : strerror(errno));
		hutch_error_clear(&err);
		return false;
	}
	return true;
}

/* Remove files named PREFIX*SUFFIX in dir whose middle is not in keep (NULL: all). */
static void remove_matching(const char *dir, const char *prefix, const char *suffix, const struct app *keep,
			    size_t nkeep, char ***removed)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t pl = strlen(prefix), sl = strlen(suffix);
	while (d && (de = readdir(d))) {
		size_t n = strlen(de->d_name);
		if (n <= pl + sl || strncmp(de->d_name, prefix, pl) || strcmp(de->d_name + n - sl, suffix))
			continue;
		_cleanup_free_ char *mid = xstrndup(de->d_name + pl, n - pl - sl);
		if (keep && find_app(keep, nkeep, mid) != SIZE_MAX)
			continue;
		_cleanup_free_ char *p = xasprintf("%s/%s", dir, de->d_name);
		if (unlink(p) == 0 && removed)
			*removed = strv_push(*removed, TAKE_PTR(p));
	}
	if (d)
		closedir(d);
}

static void remove_stale(const char *data, const char *vm, const struct app *keep, size_t n, char ***removed)
{
	_cleanup_free_ char *apps_dir = xasprintf("%s/applications", data);
	_cleanup_free_ char *prefix = xasprintf("hutch-%s-", vm);
	remove_matching(apps_dir, prefix, ".desktop", keep, n, removed);
	for (size_t i = 0; i < ARRAY_SIZE(icon_sizes); i++) {
		_cleanup_free_ char *d = xasprintf("%s/icons/hicolor/%ux%u/apps", data, icon_sizes[i], icon_sizes[i]);
		remove_matching(d, prefix, ".png", keep, n, removed);
	}
}

static int discover(struct store *st, const char *name, struct guest_app **ret, size_t *ret_n, struct hutch_error *err)
{
	char count[16], bytes[16];
	snprintf(count, sizeof(count), "%d", GUEST_APPS_MAX);
	snprintf(bytes, sizeof(bytes), "%u", GUEST_ENTRIES_BYTES_MAX);
	char *args[] = {"--desktop-entries", count, bytes, NULL};
	_cleanup_free_ char *untrusted = NULL;
	size_t len;
	/* a little room over the byte cap for the record headers */
	int r = guest_tool_run(st, name, args, NULL, 0, GUEST_ENTRIES_BYTES_MAX + GUEST_APPS_MAX * 256, &untrusted,
			       &len, err);
	if (r < 0)
		return r;
	return desktop_entries_parse(untrusted, len, ret, ret_n);
}

static int write_menu(struct store *st, const char *name, const struct vm_spec *spec, const struct app *apps, size_t n,
		      bool running, struct desktop_sync_result *res, struct hutch_error *err)
{
	_cleanup_free_ char *data = NULL, *cfg = NULL;
	int r = desktop_data_home(&data, err);
	if (r < 0 || (r = store_user_config_home(&cfg, err)) < 0)
		return r;
	_cleanup_free_ char *apps_dir = xasprintf("%s/applications", data);
	_cleanup_free_ char *dir_dir = xasprintf("%s/desktop-directories", data);
	_cleanup_free_ char *menu_dir = xasprintf("%s/menus/applications-merged", cfg);
	if (mkdir_p(apps_dir, 0755) < 0 || mkdir_p(dir_dir, 0755) < 0 || mkdir_p(menu_dir, 0755) < 0)
		return hutch_error_set(err, errno, "cannot create the menu directories under '%s': %s", data,
				       strerror(errno));
	for (size_t i = 0; i < n; i++) {
		bool icon = running && install_icon(st, name, data, &apps[i], res);
		_cleanup_free_ char *text = render_entry(name, spec->color, &apps[i], icon);
		_cleanup_free_ char *path = xasprintf("%s/hutch-%s-%s.desktop", apps_dir, name, apps[i].id);
		if ((r = write_file_atomic(path, text, strlen(text), 0644, err)) < 0)
			return r;
		res->entries = strv_push(res->entries, TAKE_PTR(path));
	}
	remove_stale(data, name, apps, n, &res->removed);
	_cleanup_free_ char *dtext = render_directory(name, spec->color), *mtext = render_menu(name);
	_cleanup_free_ char *dpath = xasprintf("%s/hutch-%s.directory", dir_dir, name);
	_cleanup_free_ char *mpath = xasprintf("%s/hutch-%s.menu", menu_dir, name);
	if ((r = write_file_atomic(dpath, dtext, strlen(dtext), 0644, err)) < 0)
		return r;
	return write_file_atomic(mpath, mtext, strlen(mtext), 0644, err);
}

int desktop_sync(struct store *st, const char *name, const struct desktop_sync_opts *o, struct desktop_sync_result *ret,
		 struct hutch_error *err)
{
	struct vm vm = {0};
	int r = vm_load(st, name, &vm, err);
	if (r < 0)
		return r;
	struct desktop_sync_result res = {0};
	_cleanup_free_ struct guest_app *g = NULL;
	size_t gn = 0;
	bool running = store_is_running(st, name);
	if (o->discover && running) {
		struct hutch_error derr = {0};
		if (discover(st, name, &g, &gn, &derr) < 0) {
			warn(&res, "discovering the guest's apps: %s", derr.msg);
			hutch_error_clear(&derr);
		}
	} else if (o->discover) {
		warn(&res, "'%s' is not running: only the spec's apps were written (start it to add the guest's own)",
		     name);
	}
	res.discovered = gn;
	size_t n = 0;
	_cleanup_free_ struct app *apps = merge_apps(vm.spec->desk.apps, g, gn, &n);
	r = write_menu(st, name, vm.spec, apps, n, running, &res, err);
	vm_release(&vm);
	if (r < 0) {
		desktop_sync_result_release(&res);
		return r;
	}
	*ret = res;
	return 0;
}

int desktop_remove(const char *name, char ***ret_removed, struct hutch_error *err)
{
	if (!store_name_valid(name))
		return hutch_error_set(err, EINVAL, "invalid VM name '%s'", name);
	_cleanup_free_ char *data = NULL, *cfg = NULL;
	int r = desktop_data_home(&data, err);
	if (r < 0 || (r = store_user_config_home(&cfg, err)) < 0)
		return r;
	char **removed = NULL;
	remove_stale(data, name, NULL, 0, &removed);
	_cleanup_free_ char *dpath = xasprintf("%s/desktop-directories/hutch-%s.directory", data, name);
	_cleanup_free_ char *mpath = xasprintf("%s/menus/applications-merged/hutch-%s.menu", cfg, name);
	if (unlink(dpath) == 0)
		removed = strv_push(removed, xstrdup(dpath));
	if (unlink(mpath) == 0)
		removed = strv_push(removed, xstrdup(mpath));
	if (ret_removed)
		*ret_removed = removed;
	else
		strv_free(removed);
	return 0;
}

void desktop_autosync(struct store *st, const char *name, bool running)
{
	struct vm vm = {0};
	struct hutch_error err = {0};
	if (vm_load(st, name, &vm, &err) < 0) {
		hutch_error_clear(&err);
		return;
	}
	bool has_apps = vm.spec->desk.apps && vm.spec->desk.apps[0];
	vm_release(&vm);
	if (!has_apps)
		return;
	struct desktop_sync_opts o = {.discover = running};
	struct desktop_sync_result res = {0};
	if (desktop_sync(st, name, &o, &res, &err) < 0) {
		log_warn("menu entries of '%s': %s", name, err.msg);
		hutch_error_clear(&err);
		return;
	}
	for (size_t i = 0; res.warnings && res.warnings[i]; i++)
		log_warn("menu entries of '%s': %s", name, res.warnings[i]);
	desktop_sync_result_release(&res);
}
