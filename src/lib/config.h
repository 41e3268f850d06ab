/* config.yml: the user's defaults (hutch.yml holds the VMs). Every key is optional; unknown keys
 * and bad values are errors that name FILE:LINE: KEY. */
#pragma once
#include "accel.h"
#include "balloon_policy.h"
#include "store.h"
#include "util.h"

#define CONFIG_MAX_FILE (256 * 1024)

struct hutch_config {
	enum accel_mode accel;	      /* accel: auto | kvm | tcg */
	char *backend;		      /* backend: qemu | libvirt */
	char *libvirt_uri;	      /* libvirt: {uri: ...} */
	char *netvm_range;	      /* netvm_range: A.B.C.D/N, NULL = NETVM_RANGE_DEFAULT (netvm.h) */
	long long auto_forward_max;   /* auto_forward_max: forwards per VM from auto_forward, 0 = default */
	struct balloon_knobs balloon; /* balloon: {poll_interval, ...}, reference 004's defaults */
};
/* Parse a buffer (FILENAME for messages). An empty document is all defaults. */
int config_parse_buffer(const char *buf, size_t len, const char *filename, struct hutch_config *ret,
			struct hutch_error *err);
/* CONFIG_DIR/config.yml; a missing file is all defaults. */
int config_load(const struct store *st, struct hutch_config *ret, struct hutch_error *err);
void config_release(struct hutch_config *c);
/* The accelerator a VM asks for: its spec's accel, else HUTCH_ACCEL, else config.yml's, else auto.
 * A broken config.yml is an error. */
int config_accel_mode(const struct store *st, enum accel_mode spec_accel, enum accel_mode *ret,
		      struct hutch_error *err);
