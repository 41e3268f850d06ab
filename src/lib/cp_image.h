/* hutch cp-image: a container image from the host into the guest's podman (or docker) storage,
 * streamed as an archive into `podman load` over an exec session (no ssh). hutch writes no copy
 * of the image on either side: an oci-archive or docker-archive file goes as it is, an OCI layout
 * is written as an oci-archive on the fly, containers-storage:NAME is `podman image save` piped
 * through. (`podman load` itself spools its stdin under /var/tmp in the guest before loading:
 * Debian 12's podman 4.3 reads no archive from a pipe.) */
#pragma once
#include "store.h"

struct cp_image_opts {
	const char *as; /* tag the loaded image so; NULL: the archive's own name, or for oci:DIR
			 * localhost/<dir's name>:<tag or latest> */
};

struct cp_image_result {
	char *engine;	/* "podman" or "docker" */
	char *image;	/* what the engine said it loaded (sanitised) */
	char *tag;	/* the tag given to it, NULL when none */
	uint64_t bytes; /* streamed into the guest */
};
void cp_image_result_release(struct cp_image_result *r);

int cp_image(const struct store *st, const char *vm, const char *ref, const struct cp_image_opts *o,
	     struct cp_image_result *ret, struct hutch_error *err);
