/* hutch cp: files into and out of a VM as a tar stream through an exec session. Host paths come
 * from the user only; entry names from the guest are checked against the name the user asked for. */
#pragma once
#include "store.h"

struct copy_opts {
	bool recursive;
	const char *user;
	/* out: what was skipped (special files, hard links...), one message each, for the verb to print
	 * once; NULL drops them */
	char ***warnings;
};
int copy_to_guest(const struct store *st, const char *vm, const char *src, const char *dst, const struct copy_opts *o,
		  struct hutch_error *err);
int copy_from_guest(const struct store *st, const char *vm, const char *src, const char *dst, const struct copy_opts *o,
		    struct hutch_error *err);
/* Exposed for tests: map a guest tar entry name under TOP to a host path under DEST, or NULL when
 * the name is absolute, has '..', or is not under TOP. */
char *copy_map_entry(const char *untrusted_name, const char *top, const char *dest);
