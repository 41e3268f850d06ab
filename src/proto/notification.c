#include "notification.h"

#include <stdlib.h>
#include <string.h>

static void put_capped(struct proto_buf *b, const char *s, size_t max)
{
	size_t n = s ? strlen(s) : 0;
	if (n > max)
		n = max;
	proto_put_u32(b, (uint32_t)n);
	proto_put_bytes(b, s, n);
}

static bool image_ok(uint32_t w, uint32_t h, uint8_t alpha, uint32_t len)
{
	if (w == 0 && h == 0 && len == 0)
		return alpha == 0;
	return w && h && w <= PROTO_NOTIFY_IMAGE_SIDE_MAX && h <= PROTO_NOTIFY_IMAGE_SIDE_MAX && alpha <= 1 &&
	       len == w * h * (3u + alpha);
}

void proto_encode_notify(struct proto_buf *b, const struct proto_notify *n)
{
	proto_put_u32(b, n->id);
	proto_put_u8(b, n->urgency <= 2 ? n->urgency : 1);
	proto_put_u32(b, (uint32_t)n->expire_ms);
	put_capped(b, n->app, PROTO_NOTIFY_APP_MAX);
	put_capped(b, n->icon, PROTO_NOTIFY_ICON_MAX);
	put_capped(b, n->summary, PROTO_NOTIFY_SUMMARY_MAX);
	put_capped(b, n->body, PROTO_NOTIFY_BODY_MAX);
	bool img = n->image && image_ok(n->width, n->height, n->has_alpha, n->image_len);
	proto_put_u32(b, img ? n->width : 0);
	proto_put_u32(b, img ? n->height : 0);
	proto_put_u8(b, img ? n->has_alpha : 0);
	proto_put_u32(b, img ? n->image_len : 0);
	if (img)
		proto_put_bytes(b, n->image, n->image_len);
}

int proto_decode_notify(const void *payload, size_t len, struct proto_notify *ret)
{
	struct proto_cursor c;
	struct proto_notify n = {0};
	proto_cursor_init(&c, payload, len);
	n.id = proto_get_u32(&c);
	n.urgency = proto_get_u8(&c);
	n.expire_ms = (int32_t)proto_get_u32(&c);
	n.app = proto_get_str(&c, PROTO_NOTIFY_APP_MAX);
	n.icon = proto_get_str(&c, PROTO_NOTIFY_ICON_MAX);
	n.summary = proto_get_str(&c, PROTO_NOTIFY_SUMMARY_MAX);
	n.body = proto_get_str(&c, PROTO_NOTIFY_BODY_MAX);
	n.width = proto_get_u32(&c);
	n.height = proto_get_u32(&c);
	n.has_alpha = proto_get_u8(&c);
	n.image_len = proto_get_u32(&c);
	/* the image's size is checked against its dimensions and what is left before any copy */
	if (!c.ok || n.urgency > 2 || n.expire_ms < -1 || !image_ok(n.width, n.height, n.has_alpha, n.image_len) ||
	    c.left != n.image_len) {
		proto_notify_free(&n);
		return -1;
	}
	if (n.image_len) {
		n.image = malloc(n.image_len);
		if (!n.image) {
			proto_notify_free(&n);
			return -1;
		}
		memcpy(n.image, c.p, n.image_len);
	}
	*ret = n;
	return 0;
}

void proto_notify_free(struct proto_notify *n)
{
	free(n->app);
	free(n->icon);
	free(n->summary);
	free(n->body);
	free(n->image);
	memset(n, 0, sizeof(*n));
}
