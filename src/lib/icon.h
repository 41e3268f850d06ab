/* Icons from guests: decoded and re-encoded with libpng, so what reaches the host's icon theme is
 * a PNG libpng wrote, of bounded size, and never the guest's bytes. */
#pragma once
#include "util.h"

#define ICON_BYTES_MAX (256u * 1024) /* the guest's file */
#define ICON_SIDE_MAX 256	     /* pixels, each side */

/* Decode untrusted PNG bytes (at most ICON_BYTES_MAX, at most ICON_SIDE_MAX square or not) and
 * re-encode them as 8-bit RGBA. *ret (free()) is the new PNG; its size in *ret_w, *ret_h. */
int icon_sanitize(const void *untrusted_png, size_t len, char **ret, size_t *ret_len, unsigned *ret_w, unsigned *ret_h,
		  struct hutch_error *err);
/* The same for any PNG from a guest (the clipboard's image/png): at most bytes_max bytes and
 * side_max pixels a side; what names it in errors. */
int png_sanitize(const void *untrusted_png, size_t len, const char *what, size_t bytes_max, unsigned side_max,
		 char **ret, size_t *ret_len, unsigned *ret_w, unsigned *ret_h, struct hutch_error *err);
