/* Flatpak apps in VMs: the plan (shares, guest user, commands) for `run --flatpak`. */
#include "flatpak.h"

#include "shares.h"
#include "spec.h"

#include <ctype.h>
#include <string.h>
#include <sys/stat.h>

/* Run as root in the guest before the app: the user with the host's uid (added to the guest's
 * passwd when no user has that uid; under another name when the host's name is taken), its
 * XDG_RUNTIME_DIR, and the dirs the agent made as mount points on the way to the shares, which
 * would otherwise be root's. Inputs come as environment variables, never spliced into the text. */
static const char prep_script[] =
	"command -v flatpak >/dev/null || { echo 'there is no flatpak in the guest' >&2; exit 3; }\n"
	"command -v bwrap >/dev/null || { echo 'there is no bwrap (bubblewrap) in the guest' >&2; exit 4; }\n"
	"u=$HUTCH_FP_UID g=$HUTCH_FP_GID h=$HUTCH_FP_HOME n=$HUTCH_FP_NAME\n"
	"if ! cut -d: -f3 /etc/passwd | grep -qx \"$u\"; then\n"
	"  cut -d: -f1 /etc/passwd | grep -qx \"$n\" && n=hutch$u\n"
	"  echo \"$n:x:$u:$g::$h:/bin/sh\" >>/etc/passwd || exit 1\n"
	"fi\n"
	"cut -d: -f3 /etc/group | grep -qx \"$g\" || echo \"hutch$g:x:$g:\" >>/etc/group || exit 1\n"
	"mkdir -p \"/run/user/$u\" && chown \"$u:$g\" \"/run/user/$u\" && chmod 700 \"/run/user/$u\" || exit 1\n"
	"for d in \"$h\" \"$h/.local\" \"$h/.local/share\" \"$h/.var\" \"$h/.var/app\"; do\n"
	"  [ -d \"$d\" ] && chown \"$u:$g\" \"$d\" 2>/dev/null\n"
	"done\n"
	"exit 0\n";

const char *flatpak_prep_failure(int status)
{
	switch (status) {
	case FLATPAK_PREP_NO_FLATPAK:
		return "the guest has no flatpak (install flatpak and bubblewrap in its image)";
	case FLATPAK_PREP_NO_BWRAP:
		return "the guest has no bwrap (install bubblewrap in its image)";
	default:
		return "preparing the guest user failed";
	}
}

bool flatpak_valid_app_id(const char *id)
{
	size_t len = id ? strlen(id) : 0;
	if (len == 0 || len > FLATPAK_APP_ID_MAX)
		return false;
	int elements = 0;
	const char *p = id;
	for (;;) {
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);
		if (n == 0 || isdigit((unsigned char)p[0]))
			return false;
		for (size_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)p[i];
			if (!(isalnum(c) || c == '_' || (c == '-' && !dot)))
				return false;
		}
		elements++;
		if (!dot)
			break;
		p = dot + 1;
	}
	return elements >= 3;
}

void flatpak_plan_release(struct flatpak_plan *p)
{
	if (!p)
		return;
	strv_free(p->shares);
	free(p->data_dir);
	free(p->home);
	free(p->user);
	strv_free(p->prep_argv);
	strv_free(p->prep_env);
	strv_free(p->run_argv);
	strv_free(p->run_env);
	memset(p, 0, sizeof(*p));
}

static bool is_dir(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Installed in DIR: flatpak's app/ID/current/active points at the deployed commit. */
static bool installed_in(const char *dir, const char *app_id)
{
	_cleanup_free_ char *active = xasprintf("%s/app/%s/current/active", dir, app_id);
	return is_dir(active);
}

static char *user_dir_default(const char *home)
{
	const char *v = getenv("FLATPAK_USER_DIR");
	if (v && *v)
		return xstrdup(v);
	v = getenv("XDG_DATA_HOME");
	if (v && v[0] == '/')
		return xasprintf("%s/flatpak", v);
	return xasprintf("%s/.local/share/flatpak", home);
}

/* A guest mount point made from a host path: it becomes a kernel command line word and the GUEST
 * of a HOST:GUEST pair, so no commas, blanks or colons. */
static bool valid_mount(const char *p) { return spec_valid_guest_path(p) && !strchr(p, ':'); }

/* The guest user's name: the host's when it is a plain name, else hutch. */
static char *guest_name(const char *n)
{
	size_t len = n ? strlen(n) : 0;
	bool plain = len > 0 && len <= 32 && (islower((unsigned char)n[0]) || n[0] == '_');
	for (size_t i = 0; plain && i < len; i++)
		plain = islower((unsigned char)n[i]) || isdigit((unsigned char)n[i]) || n[i] == '_' || n[i] == '-';
	return xstrdup(plain ? n : "hutch");
}

static int plan_data_dir(const struct store *st, const struct flatpak_in *in, const char *home, struct flatpak_plan *p,
			 struct hutch_error *err)
{
	p->data_dir = in->shared_data ? xasprintf("%s/.var/app/%s", home, in->app_id)
				      : xasprintf("%s/flatpak/%s/%s", st->data_dir, in->base, in->app_id);
	int r = mkdir_p(p->data_dir, 0700);
	if (r < 0)
		return hutch_error_set(err, -r, "flatpak app '%s': cannot create its data dir '%s': %s", in->app_id,
				       p->data_dir, strerror(-r));
	_cleanup_free_ char *guest = xasprintf("%s/.var/app/%s", home, in->app_id);
	p->shares = strv_push(p->shares, xasprintf("%s:%s", p->data_dir, guest));
	return 0;
}

static void plan_commands(const struct flatpak_in *in, const char *name, struct flatpak_plan *p)
{
	unsigned uid = in->uid, gid = in->gid;
	p->user = xasprintf("%u", uid);
	p->prep_argv = strv_push(p->prep_argv, xstrdup("/bin/sh"));
	p->prep_argv = strv_push(p->prep_argv, xstrdup("-c"));
	p->prep_argv = strv_push(p->prep_argv, xstrdup(prep_script));
	p->prep_env = strv_push(p->prep_env, xasprintf("HUTCH_FP_UID=%u", uid));
	p->prep_env = strv_push(p->prep_env, xasprintf("HUTCH_FP_GID=%u", gid));
	p->prep_env = strv_push(p->prep_env, xasprintf("HUTCH_FP_HOME=%s", p->home));
	p->prep_env = strv_push(p->prep_env, xasprintf("HUTCH_FP_NAME=%s", name));
	p->run_argv = strv_push(p->run_argv, xstrdup("flatpak"));
	p->run_argv = strv_push(p->run_argv, xstrdup("run"));
	p->run_argv = strv_push(p->run_argv, xstrdup(in->app_id));
	for (size_t i = 0; in->args && in->args[i]; i++)
		p->run_argv = strv_push(p->run_argv, xstrdup(in->args[i]));
	p->run_env = strv_push(p->run_env, xasprintf("HOME=%s", p->home));
	p->run_env = strv_push(p->run_env, xasprintf("XDG_RUNTIME_DIR=/run/user/%u", uid));
	for (size_t i = 0; in->env && in->env[i]; i++)
		p->run_env = strv_push(p->run_env, xstrdup(in->env[i]));
}

/* The spec's home: (mounted after every share) or a share at HOME or above it would hide the
 * installations and the data dir mounted beneath HOME. */
static bool covers(const char *mount, const char *home)
{
	size_t n = strlen(mount);
	while (n > 1 && mount[n - 1] == '/')
		n--;
	return !strncmp(mount, home, n) && (home[n] == 0 || home[n] == '/' || n == 1);
}

static int check_spec(const struct flatpak_in *in, const char *home, struct hutch_error *err)
{
	const struct vm_spec *s = in->spec;
	if (!s)
		return 0;
	if (s->home != HOME_OFF) {
		_cleanup_free_ char *m = shares_home_mount(s);
		if (covers(m, home))
			return hutch_error_set(
				err, EINVAL,
				"VM '%s' has home: (mounted at '%s'), which would hide the flatpak "
				"installation and data dir under '%s': use a VM without home: for --flatpak",
				in->base, m, home);
	}
	for (size_t i = 0; i < s->n_shares; i++)
		if (s->shares[i].mount && covers(s->shares[i].mount, home))
			return hutch_error_set(err, EINVAL,
					       "VM '%s': share '%s' is mounted at '%s', which would hide the flatpak "
					       "installation and data dir under '%s'",
					       in->base, s->shares[i].name, s->shares[i].mount, home);
	return 0;
}

int flatpak_plan(const struct store *st, const struct flatpak_in *in, struct flatpak_plan *ret, struct hutch_error *err)
{
	memset(ret, 0, sizeof(*ret));
	if (!flatpak_valid_app_id(in->app_id))
		return hutch_error_set(err, EINVAL,
				       "--flatpak '%s': not a flatpak app ID (like org.example.App: three or more "
				       "dot-separated names of letters, digits, '_' and '-')",
				       in->app_id ? in->app_id : "");
	if (in->uid == 0)
		return hutch_error_set(err, EPERM,
				       "--flatpak runs the app as the guest user with your uid, which as root is root "
				       "(reference 003's limit, which hutch avoids): run hutch as your own user");
	const char *home = in->home;
	if (!home || !valid_mount(home))
		return hutch_error_set(err, EINVAL,
				       "--flatpak: HOME '%s' cannot be the guest user's HOME (it must be an absolute "
				       "path without '..', blanks, commas or colons)",
				       home ? home : "");
	int r = check_spec(in, home, err);
	if (r < 0)
		return r;
	_cleanup_(flatpak_plan_releasep) struct flatpak_plan p = {0};
	p.home = xstrdup(home);
	const char *sys_env = getenv("FLATPAK_SYSTEM_DIR");
	_cleanup_free_ char *sys = xstrdup(in->system_dir	 ? in->system_dir
					   : sys_env && *sys_env ? sys_env
								 : "/var/lib/flatpak");
	_cleanup_free_ char *usr = in->user_dir ? xstrdup(in->user_dir) : user_dir_default(home);
	_cleanup_free_ char *usr_guest = xasprintf("%s/.local/share/flatpak", home);
	bool in_sys = installed_in(sys, in->app_id), in_usr = installed_in(usr, in->app_id);
	if (!in_sys && !in_usr)
		return hutch_error_set(err, ENOENT,
				       "flatpak app '%s' is installed neither in '%s' nor in '%s' (install it on the "
				       "host: flatpak install APP)",
				       in->app_id, usr, sys);
	/* Both installations, whichever exist: an app's runtime may sit in the other one. */
	if (is_dir(sys))
		p.shares = strv_push(p.shares, xasprintf("%s:/var/lib/flatpak:ro", sys));
	if (is_dir(usr))
		p.shares = strv_push(p.shares, xasprintf("%s:%s:ro", usr, usr_guest));
	r = plan_data_dir(st, in, home, &p, err);
	if (r < 0)
		return r;
	_cleanup_free_ char *name = guest_name(in->user_name);
	plan_commands(in, name, &p);
	*ret = p;
	memset(&p, 0, sizeof(p));
	return 0;
}
