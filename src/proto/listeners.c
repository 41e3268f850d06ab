#include "listeners.h"

void proto_encode_listeners(struct proto_buf *b, uint32_t flags, const uint16_t *ports, size_t n)
{
	if (n > PROTO_LISTENERS_MAX) {
		n = PROTO_LISTENERS_MAX;
		flags |= PROTO_LISTENERS_TRUNCATED;
	}
	proto_put_u32(b, flags);
	proto_put_u32(b, (uint32_t)n);
	for (size_t i = 0; i < n; i++)
		proto_put_u16(b, ports[i]);
}

int proto_decode_listeners(const void *payload, size_t len, uint32_t *ret_flags, uint16_t *ports, size_t *ret_n)
{
	struct proto_cursor c;
	proto_cursor_init(&c, payload, len);
	uint32_t flags = proto_get_u32(&c), n = proto_get_u32(&c);
	/* the count is checked against what is left before anything is read into ports */
	if (!c.ok || n > PROTO_LISTENERS_MAX || c.left != (size_t)n * 2)
		return -1;
	uint16_t prev = 0;
	for (uint32_t i = 0; i < n; i++) {
		uint16_t p = proto_get_u16(&c);
		if (!c.ok || p == 0 || p <= prev)
			return -1;
		ports[i] = prev = p;
	}
	if (c.left || (flags & ~PROTO_LISTENERS_TRUNCATED))
		return -1;
	*ret_flags = flags;
	*ret_n = n;
	return 0;
}
