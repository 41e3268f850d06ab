/* libFuzzer target for the OCI index reader (oci.c), which reads untrusted image files:
 * index.json: any input either names one manifest with a valid sha256 digest and a bounded size, or fails with a message. The first byte chooses whether a tag is asked for. */
#include <string.h>

#include "fuzz.h"
#include "oci.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hutch_error err = {0};
	const char *tag = NULL;
	if (size > 0 && (data[0] & 1))
		tag = "latest";
	struct oci_descriptor d = {0};
	int r = oci_parse_index((const char *)data, size, tag, &d, &err);
	if (r == 0) {
		CHECK(oci_digest_valid(d.digest));
		CHECK(d.size <= OCI_JSON_MAX);
		oci_descriptor_release(&d);
	} else {
		CHECK(r < 0 && err.msg && *err.msg);
	}
	hutch_error_clear(&err);
	(void)tag;
	return 0;
}
