/* libFuzzer target for MSG_NOTIFY, a guest's desktop notification: the bytes a guest controls, and
 * what the host makes of them before it shows anything. What the decoder accepts is in bounds and
 * re-encodes to exactly the payload; what notify_text makes of its strings is valid UTF-8 with no
 * control characters or direction overrides, at most the asked-for length, and (escaped) has no
 * markup left. */
#include <string.h>

#include "fuzz.h"
#include "notification.h"
#include "notify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Valid UTF-8 without the characters notify_text drops; returns the code points shown. */
static size_t check_text(const char *s, bool one_line, bool escaped)
{
	size_t chars = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; chars++) {
		uint32_t cp;
		int len = *p < 0x80 ? 1 : (*p & 0xe0) == 0xc0 ? 2 : (*p & 0xf0) == 0xe0 ? 3 : 4;
		CHECK((*p & 0xf8) != 0xf8 && (len == 1 || (*p & 0xc0) == 0xc0));
		cp = len == 1 ? *p : (uint32_t)(*p & (0x7f >> len));
		for (int i = 1; i < len; i++) {
			CHECK((p[i] & 0xc0) == 0x80);
			cp = cp << 6 | (p[i] & 0x3f);
		}
		CHECK(cp >= 0x20 || (!one_line && (cp == '\n' || cp == '\t')));
		CHECK(!(cp >= 0x7f && cp < 0xa0) && !(cp >= 0x202a && cp <= 0x202e) && !(cp >= 0x2066 && cp <= 0x2069));
		CHECK(!(cp >= 0xd800 && cp <= 0xdfff) && cp <= 0x10ffff);
		CHECK(!escaped || (cp != '<' && cp != '>'));
		p += len;
		if (escaped && cp == '&') { /* every & starts one of the three entities, which count as one */
			size_t e = !strncmp((const char *)p, "amp;", 4)						? 4
				   : !strncmp((const char *)p, "lt;", 3) || !strncmp((const char *)p, "gt;", 3) ? 3
														: 0;
			CHECK(e);
			p += e;
		}
	}
	return chars;
}

static void text(const char *s, size_t max)
{
	for (int mode = 0; mode < 4; mode++) {
		bool one_line = mode & 1, escape = mode & 2;
		char *t = notify_text(s, max, one_line, escape);
		CHECK(check_text(t, one_line, escape) <= max + 1); /* + the ellipsis */
		free(t);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_notify n;
	if (proto_decode_notify(data, size, &n) < 0) {
		/* the sanitiser on its own, on any bytes */
		char *s = strndup((const char *)data, size);
		text(s, NOTIFY_SUMMARY_CHARS);
		notify_icon_ok(s);
		free(s);
		return 0;
	}
	CHECK(n.urgency <= 2 && n.expire_ms >= -1);
	CHECK(strlen(n.app) <= PROTO_NOTIFY_APP_MAX && strlen(n.icon) <= PROTO_NOTIFY_ICON_MAX);
	CHECK(strlen(n.summary) <= PROTO_NOTIFY_SUMMARY_MAX && strlen(n.body) <= PROTO_NOTIFY_BODY_MAX);
	CHECK(n.width <= PROTO_NOTIFY_IMAGE_SIDE_MAX && n.height <= PROTO_NOTIFY_IMAGE_SIDE_MAX);
	CHECK(n.image_len == n.width * n.height * (3u + n.has_alpha));
	CHECK(!n.image_len == !n.image);
	struct proto_buf b = {0};
	proto_encode_notify(&b, &n);
	CHECK(!b.oom && b.len == size && memcmp(b.data, data, size) == 0);
	proto_buf_free(&b);
	text(n.summary, NOTIFY_SUMMARY_CHARS);
	text(n.body, NOTIFY_BODY_CHARS);
	if (notify_icon_ok(n.icon))
		CHECK(!strchr(n.icon, '/') && n.icon[0] != '.');
	proto_notify_free(&n);
	return 0;
}
