/* The ways into a bootc image's VM, written into its root filesystem when its disk is built
 * (oci_disk.c): the hutch agent as an enabled systemd unit, and the login user with the SSH keys
 * of the VM's spec (the user added when the image lacks it, sudo without a password when the image
 * has sudo). No cloud-init needed; a bootc image boots its own systemd. */
#pragma once
#include "util.h"

struct oci_tree;

struct oci_access {
	const char *agent; /* the static hutch-agent to put in; NULL: none */
	const char *user;  /* the login user (seed_login_user); NULL: no user, no keys */
	char *const *keys; /* public key lines for the user's authorized_keys; NULL or empty: none */
};

/* What the built root filesystem depends on besides the image: the agent binary's sha256, the user
 * and the keys, hashed into 64 hex chars (out[65]). The cache keeps one root filesystem per image
 * and this key, so two VMs of one image and one key share one, and a new agent makes a new one. */
int oci_access_key(const struct oci_access *a, char out[65], struct hutch_error *err);

/* Write A into the unpacked tree T at TREE_DIR, with times MTIME. Errors name the image path. */
int oci_access_apply(const char *tree_dir, struct oci_tree *t, const struct oci_access *a, int64_t mtime,
		     struct hutch_error *err);
