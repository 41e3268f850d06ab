/* libFuzzer target for MSG_LISTENERS, the guest's report of its TCP listeners (auto_forward): the
 * bytes a guest controls. What the decoder accepts is a bounded, strictly ascending set of ports
 * 1-65535 that re-encodes to exactly the payload it came from. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "listeners.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint16_t ports[PROTO_LISTENERS_MAX];
	uint32_t flags = 0;
	size_t n = 0;
	if (proto_decode_listeners(data, size, &flags, ports, &n) < 0)
		return 0;
	CHECK(n <= PROTO_LISTENERS_MAX);
	CHECK((flags & ~PROTO_LISTENERS_TRUNCATED) == 0);
	for (size_t i = 0; i < n; i++)
		CHECK(ports[i] > 0 && (i == 0 || ports[i] > ports[i - 1]));
	struct proto_buf b = {0};
	proto_encode_listeners(&b, flags, ports, n);
	CHECK(!b.oom && b.len == size && memcmp(b.data, data, size) == 0);
	proto_buf_free(&b);
	return 0;
}
