/* Two-level clipboard (Qubes, reference 004): each VM has its own clipboard and nothing crosses
 * on its own. `hutch clip copy NAME` copies the VM's into the global one, `clip paste NAME` the
 * global one into the VM's. The global clipboard is the host desktop's (wl-copy/wl-paste under
 * Wayland, xclip or xsel under X11); with no desktop it is hutch's own buffer, the file
 * RUNTIME/clipboard (mode 0600; RUNTIME/clipboard.png for images). Content is UTF-8 text, or a type
 * the VM's clipboard.types allows (image/png, which libpng decodes and re-encodes on the host),
 * size-capped. */
#pragma once
#include "spec_desktop.h"
#include "store.h"

enum clip_backend { CLIP_WAYLAND, CLIP_XCLIP, CLIP_XSEL, CLIP_FILE };
#define CLIP_PNG_SIDE_MAX 4096 /* pixels a side: a decoded image is at most 64 MiB */
extern const char *const clip_backend_names[];

/* Which global clipboard this environment has. */
enum clip_backend clip_global_backend(void);
/* The global clipboard, at most max bytes (-EFBIG beyond). */
int clip_global_get(const struct store *st, enum clip_type t, size_t max, char **ret, size_t *ret_len,
		    struct hutch_error *err);
int clip_global_set(const struct store *st, enum clip_type t, const char *buf, size_t len, struct hutch_error *err);
/* Valid UTF-8 without NUL: what a text clipboard carries. */
bool clip_text_valid(const char *buf, size_t len);

/* The VM's clipboard into the global one; the byte count in *ret_len. */
int clip_copy(struct store *st, const char *name, enum clip_type t, size_t *ret_len, struct hutch_error *err);
/* The global clipboard into the VM's. */
int clip_paste(struct store *st, const char *name, enum clip_type t, size_t *ret_len, struct hutch_error *err);
