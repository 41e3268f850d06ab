/* libFuzzer target for the sums-file parser (GNU and BSD formats). The first byte picks the
 * algorithm, the bytes up to the first newline (at most 255) are the file name to look up, the rest
 * is the sums file. An answer must be a lowercase digest of the right length that the buffer
 * actually contains; an error must come with a message; nothing may be read past the buffer. */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool buffer_has_hex(const char *buf, size_t len, const char *hex, size_t n)
{
	for (size_t i = 0; i + n <= len; i++)
		if (!strncasecmp(buf + i, hex, n))
			return true;
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	const char *algo = (data[0] & 1) ? "sha512" : "sha256";
	size_t want = (data[0] & 1) ? 128 : 64;
	const char *rest = (const char *)data + 1;
	size_t rest_len = size - 1;
	const char *nl = memchr(rest, '\n', rest_len < 256 ? rest_len : 256);
	if (!nl || nl == rest)
		return 0;
	char name[256];
	memcpy(name, rest, (size_t)(nl - rest));
	name[nl - rest] = 0;
	/* Copy the sums file into an exactly-sized allocation, so ASan sees any overread. */
	size_t len = rest_len - (size_t)(nl - rest) - 1;
	char *buf = xmalloc(len ? len : 1);
	memcpy(buf, nl + 1, len);

	struct hutch_error err = {0};
	char *hex = NULL;
	int r = image_parse_sums(buf, len, algo, name, &hex, &err);
	if (r == 0) {
		if (!hex || strlen(hex) != want || err.msg)
			abort();
		for (size_t i = 0; i < want; i++)
			if (!isxdigit((unsigned char)hex[i]) || isupper((unsigned char)hex[i]))
				abort();
		if (!buffer_has_hex(buf, len, hex, want))
			abort();
	} else {
		if (hex || !err.msg || r != -err.code)
			abort();
	}
	free(hex);
	hutch_error_clear(&err);
	free(buf);
	return 0;
}
