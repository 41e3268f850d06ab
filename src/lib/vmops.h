/* Lifecycle operations the verbs call: one library call per verb. */
#pragma once
#include "backend.h"

struct create_opts {
	const char *name;      /* base name (the spec key) */
	const char *instance;  /* -i: the VM is NAME-INSTANCE */
	const char *template;  /* --template */
	const char *from;      /* --from FILE.yml */
	uint64_t memory, disk; /* overrides, 0 = keep */
	unsigned cpus;
	enum accel_mode accel;		       /* --accel, ACCEL_UNSET = keep the spec's */
	char **shares;			       /* --share HOST:GUEST[:ro], added to the spec's shares */
	bool ephemeral;			       /* run --rm: a throwaway instance */
	const char *image;		       /* --image URL|CATALOG-NAME */
	const char *checksum;		       /* --checksum SPEC */
	const char *oci;		       /* --oci REF: a container image (oci.h) */
	uint64_t root_size;		       /* --root-size: cap on an oci VM's root filesystem */
	const struct image_progress *progress; /* download progress, may be NULL */
	bool pull; /* --pull: ask upstream for a sums-file checksum even when the image is cached */

	const char *backend; /* --backend qemu|libvirt, NULL = the spec's, else config.yml's */
	const char *uri;     /* --connect URI: libvirt's (implies --backend libvirt) */
	/* out: what could not be done beside the create (autostart: true without systemctl, say) is
	 * appended here as strv; NULL: logged as warnings */
	char ***warnings;
};
struct image_progress;
/* Image VMs: fetch and verify the base image (cached) without creating anything. */
int vm_build(struct store *st, const struct create_opts *o, char **ret_image_path, struct hutch_error *err);
/* Resolve the spec (template, --from, or hutch.yml), apply overrides, write data/vms/NAME/spec.yml.
 * *ret_name receives the final VM name. */
int vm_create(struct store *st, const struct create_opts *o, char **ret_name, struct hutch_error *err);
int vm_start(struct store *st, const char *name, const struct start_opts *o, struct start_result *ret,
	     struct hutch_error *err);
int vm_stop(struct store *st, const char *name, const struct stop_opts *o, struct stop_result *ret,
	    struct hutch_error *err);
struct destroy_opts {
	bool force;	  /* stop it first if running */
	bool disk;	  /* also delete the disk */
	char ***warnings; /* out, as create_opts.warnings */
};
int vm_destroy(struct store *st, const char *name, const struct destroy_opts *o, struct hutch_error *err);
/* The instance name NAME-INSTANCE, validated. */
int vm_instance_name(const char *name, const char *instance, char **ret, struct hutch_error *err);

#define OP_LOCK_TIMEOUT_MS 10000
