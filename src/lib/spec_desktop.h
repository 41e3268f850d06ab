/* The desktop part of a VM spec: display, sound, apps, clipboard. Parsed by spec.c
 * through the field handlers below, so spec.c only holds one table row per key. */
#pragma once
#include "util.h"

struct ytree_ctx;
struct ynode;
struct strbuf;

enum display_video { VIDEO_UNSET = 0, VIDEO_NONE, VIDEO_VIRTIO, VIDEO_QXL };
enum display_remote { REMOTE_UNSET = 0, REMOTE_NONE, REMOTE_SPICE, REMOTE_VNC };
enum tristate { TRI_UNSET = 0, TRI_FALSE, TRI_TRUE };

#define CLIPBOARD_MAX_DEFAULT (1024u * 1024)
#define CLIPBOARD_MAX_LIMIT (64u * 1024 * 1024)
#define DESKTOP_APPS_MAX 64
/* clipboard.types: what may cross besides UTF-8 text, each checked on the host (clipboard.h) */
enum clip_type { CLIP_TEXT = 0, CLIP_PNG, CLIP_TYPE_COUNT };
extern const char *const clip_type_names[]; /* MIME types: "text/plain", "image/png" */

struct vm_desktop {
	enum display_video video;    /* as written; desktop_video() resolves the default */
	enum display_remote remote;  /* as written; desktop_remote() resolves the default */
	char *listen;		     /* display.listen "127.0.0.1:PORT": TCP instead of the unix socket */
	bool sound;		     /* a sound: key was given */
	enum tristate playback;	     /* sound.playback, default true */
	enum tristate capture;	     /* sound.capture, default false */
	char *audiodev;		     /* sound.audiodev: pa (default), alsa or none */
	char **apps;		     /* apps: [firefox, konsole] */
	uint64_t clipboard_max;	     /* clipboard.max; 0 = CLIPBOARD_MAX_DEFAULT */
	enum tristate notifications; /* notifications:, default true (monitor_notify.h) */
	uint32_t clipboard_types;    /* clipboard.types, 1 << enum clip_type; 0 = text only */
};

/* ytree field handlers for spec.c's table. obj is the struct vm_spec. */
int spec_desktop_display(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path);
int spec_desktop_sound(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path);
int spec_desktop_apps(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path);
int spec_desktop_clipboard(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path);
int spec_desktop_notifications(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path);
int spec_desktop_color(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path);

void spec_desktop_free(struct vm_desktop *d);
/* The keys above as YAML, at two spaces of indent, for spec_render_yaml. */
void spec_desktop_render(struct strbuf *sb, const struct vm_desktop *d);
bool spec_desktop_equal(const struct vm_desktop *a, const struct vm_desktop *b);

/* Resolved settings. micro: whether the VM is the micro template (no PCI, so no qxl). */
enum display_video desktop_video(const struct vm_desktop *d);
enum display_remote desktop_remote(const struct vm_desktop *d);
bool desktop_playback(const struct vm_desktop *d);
bool desktop_capture(const struct vm_desktop *d);
uint64_t desktop_clipboard_max(const struct vm_desktop *d);
bool desktop_clipboard_allows(const struct vm_desktop *d, enum clip_type t);
/* "text/plain" (or "text") and "image/png" (or "png"); -1 for anything else. */
int clip_type_parse(const char *s);
/* App names: [A-Za-z0-9][A-Za-z0-9._+-]{0,63}, no "..": they become file names and guest commands. */
bool desktop_app_valid(const char *app);
/* display.listen "ADDR:PORT" into its parts; only loopback addresses are taken. */
int desktop_listen_parse(const char *s, char *addr, size_t addrlen, unsigned *ret_port);
