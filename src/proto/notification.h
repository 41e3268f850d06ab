/* MSG_NOTIFY: a desktop notification from the guest (org.freedesktop.Notifications' Notify), shared
 * by the agent, its D-Bus helper (agent/notifyd.c) and the monitor. Host -> agent, empty: start
 * forwarding. Helper -> agent, empty: the helper owns the name. Agent -> host, one notification:
 *   u32 id, u8 urgency (0 low, 1 normal, 2 critical), i32 expire_ms (-1: the server's default),
 *   str app, str icon (a theme icon name), str summary, str body,
 *   u32 width, u32 height, u8 has_alpha, u32 n + n bytes: an image, 8-bit RGB or RGBA rows packed
 *   without padding (width, height and n all 0: none).
 * Every bound below is checked by the decoder; the host sanitises what it shows on top of that. */
#pragma once
#include "proto.h"

#define PROTO_NOTIFY_APP_MAX 256u
#define PROTO_NOTIFY_ICON_MAX 256u
#define PROTO_NOTIFY_SUMMARY_MAX 4096u
#define PROTO_NOTIFY_BODY_MAX 65536u
#define PROTO_NOTIFY_IMAGE_SIDE_MAX 256u
#define PROTO_NOTIFY_IMAGE_MAX (PROTO_NOTIFY_IMAGE_SIDE_MAX * PROTO_NOTIFY_IMAGE_SIDE_MAX * 4u)

struct proto_notify {
	uint32_t id;
	uint8_t urgency;
	int32_t expire_ms;
	char *app, *icon, *summary, *body;
	uint32_t width, height;
	uint8_t has_alpha;
	uint8_t *image; /* width * height * (3 + has_alpha) bytes, or NULL */
	uint32_t image_len;
};

/* Strings longer than their bound are cut to it (the decoder refuses them); an image that breaks
 * the rules is left out. */
void proto_encode_notify(struct proto_buf *b, const struct proto_notify *n);
/* -1 on anything but an exact, in-bounds notification. */
int proto_decode_notify(const void *payload, size_t len, struct proto_notify *ret);
void proto_notify_free(struct proto_notify *n);
