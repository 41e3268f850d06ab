/* Container images: references, the index, manifest and config (json-c), blobs checked against
 * their digest and size before anything reads them, and layers applied in order onto a directory
 * with libarchive (gzip, zstd or plain tar), whiteouts and opaque dirs honoured.
 *
 * Everything read from an image is untrusted (untrusted_ names until checked): JSON is bounded,
 * every path is resolved beneath the root (no "..", no absolute link on the way: openat2
 * RESOLVE_BENEATH), device nodes are recorded in the tree and never created on the host, and the
 * image's ownership and modes are kept in the tree, not on the host files, which belong to the user
 * who unpacked them (oci_disk.c writes them into the root filesystem). Nothing here prints. */
#pragma once
#include "util.h"

#define OCI_JSON_MAX (4u << 20) /* index, manifest, config: a larger one is refused */
#define OCI_LAYERS_MAX 512
#define OCI_ARCHIVE_ENTRIES_MAX 100000 /* files in an oci-archive or docker-archive */

enum oci_transport { OCI_DIR = 0, OCI_ARCHIVE, OCI_DOCKER_ARCHIVE, OCI_CONTAINERS_STORAGE };

/* oci:DIR[:TAG] | oci-archive:FILE | docker-archive:FILE | containers-storage:NAME */
struct oci_ref {
	enum oci_transport transport;
	char *path; /* DIR, FILE or NAME */
	char *tag;  /* oci: only; NULL when none was given */
};
int oci_ref_parse(const char *s, struct oci_ref *ret, struct hutch_error *err);
void oci_ref_release(struct oci_ref *r);

/* "sha256:" and 64 lowercase hex digits: the only digests accepted. */
bool oci_digest_valid(const char *d);

struct oci_descriptor {
	char *media_type;
	char *digest;
	uint64_t size;
};
void oci_descriptor_release(struct oci_descriptor *d);

/* index.json (or a nested image index): the manifest tagged TAG (annotation
 * org.opencontainers.image.ref.name), or the only one when TAG is NULL; among platform entries, the
 * linux/amd64 one. A nested index comes back as is (media type says so): read it and ask again. */
int oci_parse_index(const char *untrusted, size_t len, const char *tag, struct oci_descriptor *ret,
		    struct hutch_error *err);

struct oci_manifest {
	struct oci_descriptor config;
	struct oci_descriptor *layers;
	size_t n_layers;
};
int oci_parse_manifest(const char *untrusted, size_t len, struct oci_manifest *ret, struct hutch_error *err);
void oci_manifest_release(struct oci_manifest *m);

/* What the image asks of a container run: the defaults of `hutch run NAME` with no command. */
struct oci_config {
	char **entrypoint, **cmd, **env; /* strv, NULL when absent */
	char *workdir, *user;		 /* NULL when absent */
	char **diff_ids;		 /* rootfs.diff_ids, one per layer */
	int64_t created;		 /* seconds since the epoch, 0 when absent or unreadable */
};
int oci_parse_config(const char *untrusted, size_t len, struct oci_config *ret, struct hutch_error *err);
void oci_config_release(struct oci_config *c);

/* docker-archive's manifest.json: the entry tagged TAG, or the only one. */
struct oci_docker_manifest {
	char *config; /* path in the archive */
	char **layers;
	size_t n_layers;
};
int oci_parse_docker_manifest(const char *untrusted, size_t len, const char *tag, struct oci_docker_manifest *ret,
			      struct hutch_error *err);
void oci_docker_manifest_release(struct oci_docker_manifest *m);

/* An opened image: JSON read and verified, layers located but not read yet. */
struct oci_layer {
	char *path;   /* the blob on disk */
	char *digest; /* what its bytes must hash to */
	uint64_t size;
	bool check_size; /* docker-archive records no sizes */
};
struct oci_image {
	char *key;	     /* "sha256:HEX": the manifest digest; docker-archive: of config and layer digests */
	char *config_digest; /* "sha256:HEX" */
	char *config_json;   /* the config's bytes, verified */
	size_t config_len;
	struct oci_config config;
	struct oci_layer *layers;
	size_t n_layers;
	char *tmpdir; /* an archive unpacked here, removed by oci_image_release */
};
/* TMP_PARENT: where an archive may be unpacked (a dir on the cache's filesystem). */
int oci_open(const struct oci_ref *ref, const char *tmp_parent, struct oci_image *ret, struct hutch_error *err);
void oci_image_release(struct oci_image *img);

/* The image's view of a path: its ownership and mode, kept in the tree. */
struct oci_node {
	char *path;    /* relative to the root, no leading slash; "" is the root */
	uint32_t mode; /* with the type bits (S_IFREG ...) */
	uint32_t uid, gid;
	int64_t mtime;
	uint32_t rdev_major, rdev_minor;
	unsigned layer; /* the layer that last wrote it */
	bool on_disk;	/* false for device nodes: recorded, never created */
};
struct oci_tree {
	struct oci_node *nodes; /* deleted ones have path NULL */
	size_t n, cap;
	ssize_t *slots; /* open-addressing index into nodes: -1 empty, -2 deleted */
	size_t n_slots;
	uint64_t bytes; /* regular file bytes, for sizing the filesystem */
};
void oci_tree_release(struct oci_tree *t);
const struct oci_node *oci_tree_get(const struct oci_tree *t, const char *path);
/* Every node, sorted by path (deleted ones left out); the caller frees the array only. */
const struct oci_node **oci_tree_sorted(const struct oci_tree *t, size_t *ret_n);

/* A file (or, with link, a symlink) that hutch adds to an unpacked tree at ROOT, with the
 * ownership and mode it gets in the image: the agent and its unit in a bootc image. PATH is clean
 * and relative; missing parents are made root-owned 0755, and a parent that is a link is refused. */
struct oci_add {
	const char *path;
	const void *data;
	size_t len;
	const char *link; /* a symlink to this target instead of a file */
	uint32_t mode, uid, gid;
	int64_t mtime;
};
int oci_tree_add(struct oci_tree *t, const char *root, const struct oci_add *a, struct hutch_error *err);
/* The directory A->path (and its parents, as above) with A's mode, uid and gid, which an existing
 * directory takes too; a file or link there is an error. */
int oci_tree_add_dir(struct oci_tree *t, const char *root, const struct oci_add *a, struct hutch_error *err);

/* Verify each layer and apply it onto ROOT, an empty directory. Errors name the layer and entry.
 * On failure ROOT is left for the caller to remove. */
int oci_unpack(const struct oci_image *img, const char *root, struct oci_tree *ret, struct hutch_error *err);

/* Hash the file at PATH (sha256) and compare with DIGEST and, when check_size, SIZE; WHAT names it
 * in messages. -ENOENT when it is missing, -EINVAL on any mismatch. */
int oci_verify_blob(int fd, const char *digest, uint64_t size, bool check_size, const char *what,
		    struct hutch_error *err);
