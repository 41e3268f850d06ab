/* libFuzzer target for config.yml: any input either parses into known values, or fails with a
 * message that names the file. */
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hutch_error err = {0};
	struct hutch_config c;
	if (config_parse_buffer((const char *)data, size, "config.yml", &c, &err) < 0) {
		if (!err.msg || strncmp(err.msg, "config.yml", 10))
			abort();
		hutch_error_clear(&err);
		return 0;
	}
	if (c.accel != ACCEL_UNSET && c.accel != ACCEL_AUTO && c.accel != ACCEL_KVM && c.accel != ACCEL_TCG)
		abort();
	if (c.backend && strcmp(c.backend, "qemu") && strcmp(c.backend, "libvirt"))
		abort();
	if (c.libvirt_uri && !*c.libvirt_uri)
		abort();
	config_release(&c);
	return 0;
}
