/* Looking at a VM: its remote display's URI, and screenshots. */
#pragma once
#include "store.h"

#define SCREENSHOT_MAX (64u * 1024 * 1024)

/* The URI a viewer opens for a running VM (desktop_uri). -ENODEV when it has no remote display. */
int desktop_view_uri(struct store *st, const char *name, char **ret, struct hutch_error *err);
/* Write a PNG of the VM's screen to dest (atomically) and return its size. */
int desktop_screenshot(struct store *st, const char *name, const char *dest, unsigned *ret_w, unsigned *ret_h,
		       struct hutch_error *err);
/* Width and height from a PNG's IHDR. -EINVAL when buf is not a PNG. */
int png_dimensions(const unsigned char *buf, size_t len, unsigned *ret_w, unsigned *ret_h);
