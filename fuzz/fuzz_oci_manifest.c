/* libFuzzer target for the OCI manifest reader (oci.c), which reads untrusted image files:
 * an image manifest: any input either parses into a config and at most OCI_LAYERS_MAX layers, every digest a valid sha256, or fails with a message. */
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
	struct oci_manifest m = {0};
	int r = oci_parse_manifest((const char *)data, size, &m, &err);
	if (r == 0) {
		CHECK(oci_digest_valid(m.config.digest));
		CHECK(m.config.size <= OCI_JSON_MAX);
		CHECK(m.n_layers <= OCI_LAYERS_MAX);
		for (size_t i = 0; i < m.n_layers; i++)
			CHECK(oci_digest_valid(m.layers[i].digest));
		oci_manifest_release(&m);
	} else {
		CHECK(r < 0 && err.msg && *err.msg);
	}
	hutch_error_clear(&err);
	(void)tag;
	return 0;
}
