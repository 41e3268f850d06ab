/* libFuzzer target for the spec parser: parse, and for every accepted spec render it and parse the
 * rendering back, which must succeed and give an equal spec with a stable rendering. */
#include <string.h>

#include "spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_round_trip(const struct vm_spec *s)
{
	char *yaml = spec_render_yaml(s);
	struct hutch_error err = {0};
	struct vm_spec **again = NULL;
	size_t n = 0;
	if (spec_parse_buffer(yaml, strlen(yaml), "rendered.yml", &again, &n, &err) < 0) {
		fprintf(stderr, "rendered spec does not parse: %s\n---\n%s---\n", err.msg, yaml);
		abort();
	}
	if (n != 1 || !spec_equal(s, again[0])) {
		fprintf(stderr, "round trip changed the spec\n---\n%s---\n", yaml);
		abort();
	}
	char *twice = spec_render_yaml(again[0]);
	if (strcmp(yaml, twice)) {
		fprintf(stderr, "rendering is not stable\n---\n%s---\n%s---\n", yaml, twice);
		abort();
	}
	free(twice);
	spec_free_all(again, n);
	free(yaml);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hutch_error err = {0};
	struct vm_spec **specs = NULL;
	size_t n = 0;
	if (spec_parse_buffer((const char *)data, size, "fuzz.yml", &specs, &n, &err) < 0) {
		/* Every failure carries a message naming the file. */
		if (!err.msg || strncmp(err.msg, "fuzz.yml", 8))
			abort();
		hutch_error_clear(&err);
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		check_round_trip(specs[i]);
		spec_apply_defaults(specs[i]);
		check_round_trip(specs[i]);
	}
	spec_free_all(specs, n);
	return 0;
}
