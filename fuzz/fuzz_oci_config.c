/* libFuzzer target for the OCI config reader (oci.c), which reads untrusted image files:
 * an image config: any input either parses (rootfs.diff_ids all valid sha256 digests, strings without NUL) or fails with a message. */
#include <string.h>

#include "fuzz.h"
#include "oci.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hutch_error err = {0};
	const char *tag = NULL;
	if (0)
		tag = "latest";
	struct oci_config c = {0};
	int r = oci_parse_config((const char *)data, size, &c, &err);
	if (r == 0) {
		CHECK(c.diff_ids);
		for (size_t i = 0; c.diff_ids[i]; i++)
			CHECK(oci_digest_valid(c.diff_ids[i]));
		CHECK(!c.workdir || *c.workdir);
		CHECK(c.created >= 0);
		oci_config_release(&c);
	} else {
		CHECK(r < 0 && err.msg && *err.msg);
	}
	hutch_error_clear(&err);
	(void)tag;
	return 0;
}
