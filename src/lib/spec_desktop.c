/* display:, sound:, apps:, clipboard:, notifications: and color: of a VM spec. Every value that
 * ends up in a QEMU option, a file name or a guest command is checked to a narrow alphabet here,
 * so the renderers downstream need no quoting. */
#include "spec_desktop.h"

#include "color.h"
#include "spec.h"
#include "ytree.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <string.h>

static struct vm_desktop *desk(void *obj) { return &((struct vm_spec *)obj)->desk; }

/* one of names[1..] (names[0] is the unset value's slot) into *ret as its index */
static int want_enum(struct ytree_ctx *c, const struct ynode *v, const char *path, const char *const *names,
		     const char *what, int *ret)
{
	int r = ytree_want_scalar(c, v, path, what);
	if (r < 0)
		return r;
	for (int i = 1; names[i]; i++)
		if (!strcmp(v->str, names[i])) {
			*ret = i;
			return 0;
		}
	return ytree_type_error(c, v, path, what);
}

static const char *const video_names[] = {"", "none", "virtio", "qxl", NULL};
static const char *const remote_names[] = {"", "none", "spice", "vnc", NULL};

static int disp_video(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	int i;
	int r = want_enum(c, v, path, video_names, "virtio, qxl or none", &i);
	if (r == 0)
		desk(obj)->video = (enum display_video)i;
	return r;
}

static int disp_remote(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	int i;
	int r = want_enum(c, v, path, remote_names, "spice, vnc or none", &i);
	if (r == 0)
		desk(obj)->remote = (enum display_remote)i;
	return r;
}

int desktop_listen_parse(const char *s, char *addr, size_t addrlen, unsigned *ret_port)
{
	const char *colon = s ? strrchr(s, ':') : NULL;
	char a[INET_ADDRSTRLEN];
	long long port;
	struct in_addr in;
	if (!colon || (size_t)(colon - s) >= sizeof(a) || parse_ll(colon + 1, 1, 65535, &port) < 0)
		return -EINVAL;
	memcpy(a, s, (size_t)(colon - s));
	a[colon - s] = 0;
	if (inet_pton(AF_INET, a, &in) != 1)
		return -EINVAL;
	/* An unauthenticated display on the network is a remote desktop for anyone: loopback only
	 * (ssh -L reaches it from elsewhere). */
	if ((ntohl(in.s_addr) >> 24) != 127)
		return -EADDRNOTAVAIL;
	if (addr)
		snprintf(addr, addrlen, "%s", a);
	*ret_port = (unsigned)port;
	return 0;
}

static int disp_listen(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	struct vm_desktop *d = desk(obj);
	unsigned port;
	int r = ytree_str(c, v, path, false, &d->listen);
	if (r < 0)
		return r;
	r = desktop_listen_parse(d->listen, NULL, 0, &port);
	if (r == -EADDRNOTAVAIL)
		return ytree_error(c, v, path,
				   "only loopback addresses (127.0.0.0/8): the display has no password; use ssh -L to "
				   "reach it from another machine");
	if (r < 0) {
		_cleanup_free_ char *q = ytree_quote(d->listen);
		return ytree_error(c, v, path, "expected 127.0.0.1:PORT, got '%s'", q);
	}
	return 0;
}

static const struct ytree_field display_fields[] = {
	{"video", disp_video},
	{"remote", disp_remote},
	{"listen", disp_listen},
};

int spec_desktop_display(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	struct vm_desktop *d = desk(obj);
	int r = ytree_parse_fields(c, v, path, display_fields, ARRAY_SIZE(display_fields), obj);
	if (r < 0)
		return r;
	if (d->video == VIDEO_NONE && d->remote != REMOTE_UNSET && d->remote != REMOTE_NONE)
		return ytree_error(c, v, path, "remote: %s needs a video device (video: virtio or qxl)",
				   remote_names[d->remote]);
	if (d->listen && (desktop_remote(d) == REMOTE_NONE))
		return ytree_error(c, ytree_map_get(v, "listen"), "display.listen", "needs remote: spice or vnc");
	if (d->listen && desktop_remote(d) == REMOTE_VNC) {
		unsigned port;
		desktop_listen_parse(d->listen, NULL, 0, &port);
		if (port < 5900)
			return ytree_error(c, ytree_map_get(v, "listen"), "display.listen",
					   "VNC ports start at 5900 (QEMU counts displays from there)");
	}
	return 0;
}

static int tri(struct ytree_ctx *c, const struct ynode *v, const char *path, enum tristate *t)
{
	bool b;
	int r = ytree_bool(c, v, path, &b);
	if (r == 0)
		*t = b ? TRI_TRUE : TRI_FALSE;
	return r;
}

static int snd_playback(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	return tri(c, v, path, &desk(obj)->playback);
}

static int snd_capture(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	return tri(c, v, path, &desk(obj)->capture);
}

static int snd_audiodev(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	static const char *const names[] = {"", "pa", "alsa", "none", NULL};
	int i;
	int r = want_enum(c, v, path, names, "pa, alsa or none", &i);
	if (r == 0) {
		free(desk(obj)->audiodev);
		desk(obj)->audiodev = xstrdup(names[i]);
	}
	return r;
}

static const struct ytree_field sound_fields[] = {
	{"playback", snd_playback},
	{"capture", snd_capture},
	{"audiodev", snd_audiodev},
};

int spec_desktop_sound(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	struct vm_desktop *d = desk(obj);
	if (v->type == Y_SCALAR) {
		/* sound: true | false, the short form */
		bool on;
		int r = ytree_bool(c, v, path, &on);
		if (r < 0)
			return r;
		d->sound = on;
		return 0;
	}
	d->sound = true;
	return ytree_parse_fields(c, v, path, sound_fields, ARRAY_SIZE(sound_fields), obj);
}

bool desktop_app_valid(const char *app)
{
	size_t n = app ? strlen(app) : 0;
	if (n == 0 || n > 64 || !isalnum((unsigned char)app[0]) || strstr(app, ".."))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)app[i]) && !strchr("._+-", app[i]))
			return false;
	return true;
}

static int check_app(struct ytree_ctx *c, const struct ynode *it, const char *path)
{
	if (desktop_app_valid(it->str))
		return 0;
	_cleanup_free_ char *q = ytree_quote(it->str);
	return ytree_error(c, it, path,
			   "invalid app '%s': a program name (letters, digits, '.', '_', '+' and '-', at most 64)", q);
}

int spec_desktop_apps(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	struct vm_desktop *d = desk(obj);
	int r = ytree_strv(c, v, path, check_app, &d->apps);
	if (r < 0)
		return r;
	if (strv_len(d->apps) > DESKTOP_APPS_MAX)
		return ytree_error(c, v, path, "at most %d apps", DESKTOP_APPS_MAX);
	return 0;
}

static int clip_max(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	uint64_t m;
	int r = ytree_size(c, v, path, &m);
	if (r < 0)
		return r;
	if (m == 0 || m > CLIPBOARD_MAX_LIMIT)
		return ytree_error(c, v, path, "must be between 1 and 64M");
	desk(obj)->clipboard_max = m;
	return 0;
}

const char *const clip_type_names[] = {"text/plain", "image/png"};

int clip_type_parse(const char *s)
{
	if (!strcmp(s, "text/plain") || !strcmp(s, "text"))
		return CLIP_TEXT;
	if (!strcmp(s, "image/png") || !strcmp(s, "png"))
		return CLIP_PNG;
	return -1;
}

static int check_clip_type(struct ytree_ctx *c, const struct ynode *it, const char *path)
{
	if (clip_type_parse(it->str) >= 0)
		return 0;
	_cleanup_free_ char *q = ytree_quote(it->str);
	return ytree_error(c, it, path,
			   "type '%s' cannot be allowed: only text/plain and image/png, which hutch checks", q);
}

static int clip_types(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	_cleanup_strv_ char **types = NULL;
	int r = ytree_strv(c, v, path, check_clip_type, &types);
	if (r < 0)
		return r;
	uint32_t mask = 1u << CLIP_TEXT; /* text always crosses */
	for (size_t i = 0; types && types[i]; i++)
		mask |= 1u << clip_type_parse(types[i]);
	desk(obj)->clipboard_types = mask;
	return 0;
}

static const struct ytree_field clipboard_fields[] = {
	{"max", clip_max},
	{"types", clip_types},
};

int spec_desktop_clipboard(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	return ytree_parse_fields(c, v, path, clipboard_fields, ARRAY_SIZE(clipboard_fields), obj);
}

int spec_desktop_notifications(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	return tri(c, v, path, &desk(obj)->notifications);
}

int spec_desktop_color(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	struct vm_spec *s = obj;
	uint32_t rgb;
	int r = ytree_str(c, v, path, false, &s->color);
	if (r < 0)
		return r;
	if (color_parse(s->color, &rgb) < 0) {
		_cleanup_free_ char *q = ytree_quote(s->color);
		return ytree_error(c, v, path, "invalid colour '%s': expected %s", q, COLOR_FORMATS);
	}
	return 0;
}

void spec_desktop_free(struct vm_desktop *d)
{
	free(d->listen);
	free(d->audiodev);
	strv_free(d->apps);
	*d = (struct vm_desktop){0};
}

static void render_list(struct strbuf *sb, const char *indent, const char *key, char *const *v)
{
	if (!v || !v[0])
		return;
	strbuf_addf(sb, "%s%s:\n", indent, key);
	for (; *v; v++)
		strbuf_addf(sb, "%s  - \"%s\"\n", indent, *v); /* validated: no quotes or backslashes */
}

void spec_desktop_render(struct strbuf *sb, const struct vm_desktop *d)
{
	static const char *const tri_names[] = {"", "false", "true"};
	if (d->video || d->remote || d->listen) {
		strbuf_adds(sb, "  display:\n");
		if (d->video)
			strbuf_addf(sb, "    video: %s\n", video_names[d->video]);
		if (d->remote)
			strbuf_addf(sb, "    remote: %s\n", remote_names[d->remote]);
		if (d->listen)
			strbuf_addf(sb, "    listen: \"%s\"\n", d->listen);
	}
	if (d->sound) {
		strbuf_adds(sb, "  sound:\n");
		if (d->playback)
			strbuf_addf(sb, "    playback: %s\n", tri_names[d->playback]);
		if (d->capture)
			strbuf_addf(sb, "    capture: %s\n", tri_names[d->capture]);
		if (d->audiodev)
			strbuf_addf(sb, "    audiodev: %s\n", d->audiodev);
		if (!d->playback && !d->capture && !d->audiodev)
			strbuf_adds(sb, "    playback: true\n");
	}
	render_list(sb, "  ", "apps", d->apps);
	if (d->clipboard_max || d->clipboard_types)
		strbuf_adds(sb, "  clipboard:\n");
	if (d->clipboard_max)
		strbuf_addf(sb, "    max: %llu\n", (unsigned long long)d->clipboard_max);
	if (d->clipboard_types) {
		strbuf_adds(sb, "    types:\n");
		for (int t = 0; t < CLIP_TYPE_COUNT; t++)
			if (d->clipboard_types & (1u << t))
				strbuf_addf(sb, "      - %s\n", clip_type_names[t]);
	}
	if (d->notifications)
		strbuf_addf(sb, "  notifications: %s\n", tri_names[d->notifications]);
}

static bool str_eq(const char *a, const char *b) { return a == b || (a && b && !strcmp(a, b)); }

static bool strv_eq(char *const *a, char *const *b)
{
	size_t n = strv_len(a);
	if (n != strv_len(b))
		return false;
	for (size_t i = 0; i < n; i++)
		if (strcmp(a[i], b[i]))
			return false;
	return true;
}

bool spec_desktop_equal(const struct vm_desktop *a, const struct vm_desktop *b)
{
	return a->video == b->video && a->remote == b->remote && str_eq(a->listen, b->listen) && a->sound == b->sound &&
	       a->playback == b->playback && a->capture == b->capture && str_eq(a->audiodev, b->audiodev) &&
	       strv_eq(a->apps, b->apps) && a->clipboard_max == b->clipboard_max &&
	       a->notifications == b->notifications && a->clipboard_types == b->clipboard_types;
}

enum display_video desktop_video(const struct vm_desktop *d)
{
	if (d->video != VIDEO_UNSET)
		return d->video;
	/* a remote display asked for without a video device gets the paravirtual one */
	return d->remote == REMOTE_SPICE || d->remote == REMOTE_VNC ? VIDEO_VIRTIO : VIDEO_NONE;
}

enum display_remote desktop_remote(const struct vm_desktop *d)
{
	if (d->remote != REMOTE_UNSET)
		return d->remote;
	return d->video == VIDEO_VIRTIO || d->video == VIDEO_QXL ? REMOTE_SPICE : REMOTE_NONE;
}

bool desktop_playback(const struct vm_desktop *d) { return d->sound && d->playback != TRI_FALSE; }
bool desktop_capture(const struct vm_desktop *d) { return d->sound && d->capture == TRI_TRUE; }
uint64_t desktop_clipboard_max(const struct vm_desktop *d)
{
	return d->clipboard_max ? d->clipboard_max : CLIPBOARD_MAX_DEFAULT;
}

bool desktop_clipboard_allows(const struct vm_desktop *d, enum clip_type t)
{
	return t == CLIP_TEXT || (d->clipboard_types & (1u << t));
}
