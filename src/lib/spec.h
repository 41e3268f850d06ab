/* VM specs: YAML (libyaml) -> struct vm_spec. Several VMs per file. */
#pragma once
#include "accel.h"
#include "spec_desktop.h"
#include "spec_devices.h"
#include "util.h"

#define SPEC_MAX_FILE (1024 * 1024) /* input cap: larger files are rejected */

enum source_kind { SOURCE_TEMPLATE = 0, SOURCE_IMAGE, SOURCE_OCI };
enum firmware { FIRMWARE_DEFAULT = 0, FIRMWARE_BIOS, FIRMWARE_UEFI, FIRMWARE_UEFI_SECURE };
enum net_mode { NET_USER = 0, NET_NONE, NET_NETVM };

enum share_via { SHARE_AUTO = 0, SHARE_9P, SHARE_VIRTIOFS };
enum home_mode { HOME_OFF = 0, HOME_DEFAULT, HOME_PATH }; /* home: false | true | PATH */

struct share {
	char *name;  /* map key */
	char *path;  /* host path, ~ expanded by the consumer */
	char *mount; /* guest mount point; NULL: /mnt/NAME */
	bool readonly;
	enum share_via via;
};

struct vm_spec {
	char *name; /* the map key */
	char *file; /* where it was defined, for messages */
	int line;   /* 1-based line of the key */

	enum source_kind source;
	char *template; /* source: {template: micro} */
	char *image;	/* source: {image: URL} */
	char *checksum; /* source: {checksum: "sha256:HEX" | "sha256:URL"...} */
	char *oci;	/* source: {oci: REF}: a container image (oci.h) */

	char *kernel;	    /* micro: kernel path override */
	char *cmdline;	    /* extra kernel command line */
	uint64_t memory;    /* bytes, default 512M */
	unsigned cpus;	    /* default 1 */
	uint64_t disk;	    /* bytes, 0 = image size */
	uint64_t root_size; /* oci: the root filesystem grows to at most this (bytes), 0 = the disk */
	enum firmware firmware;
	bool tpm;
	enum accel_mode accel;	 /* ACCEL_UNSET: config.yml's default, else auto */
	char *backend;		 /* "qemu" (default) | "libvirt" */
	char *uri;		 /* libvirt URI */
	char **libvirt_snippets; /* libvirt: {snippets: [...]}: raw domain XML (spec_libvirt.h) */

	enum net_mode net_mode;
	char *netvm;	       /* network: {mode: netvm, netvm: NAME} (or the older mode: netvm:NAME) */
	char **forward;	       /* strv, "8080:80", "5353:53/udp" */
	bool is_netvm;	       /* network.is_netvm: routes for its clients (netvm.h) */
	uint32_t netvm_subnet; /* network.netvm_subnet: the pinned /31 (host order, even), 0 = hashed */
	bool auto_forward;     /* network.auto_forward: the guest's TCP listeners get host forwards */

	char *ssh_user;
	char *ssh_key; /* auto | generate | none | /path.pub */
	int ssh_port;  /* 0 = default 22 */

	struct share *shares;
	size_t n_shares;
	enum home_mode home; /* a host dir shared as the guest user's home (shares.h) */
	char *home_path;     /* HOME_PATH: the host dir, ~ expanded by the consumer */

	char **ci_packages; /* cloud_init.packages */
	char **ci_runcmd;   /* cloud_init.runcmd */

	bool on_app_exit;	 /* auto_shutdown.on_app_exit */
	uint64_t idle_s;	 /* auto_shutdown.idle, seconds, 0 = off */
	uint64_t stop_timeout_s; /* how long `stop` waits for a clean shutdown; 0 = the default (30 s) */
	bool disposable;
	bool autostart; /* a systemd user unit starts it at boot (autostart.h) */
	char *color;
	struct vm_desktop desk; /* display, sound, apps, clipboard (spec_desktop.h) */
	/* devices (spec_devices.h) */
	char **pci;	       /* pci: ["0000:01:00.0"], normalized; vfio-pci on q35 */
	struct usb_match *usb; /* usb: [{vendor, product, serial}], attached at start */
	size_t n_usb;
	uint64_t balloon_min; /* balloon: {min: SIZE}, the guest's floor; 0 = the policy's default */
	bool balloon_off;     /* balloon: false */
};

struct vm_spec *spec_new(const char *name);
void spec_free(struct vm_spec *s);
static inline void spec_freep(struct vm_spec **s) { spec_free(*s); }

/* Parse every VM in a buffer. Errors read "FILE:LINE: KEY: reason". */
int spec_parse_buffer(const char *buf, size_t len, const char *filename, struct vm_spec ***ret_specs, size_t *ret_n,
		      struct hutch_error *err);
int spec_parse_file(const char *path, struct vm_spec ***ret_specs, size_t *ret_n, struct hutch_error *err);
void spec_free_all(struct vm_spec **specs, size_t n);
/* Find NAME in FILE. -ENOENT (with a message) when the file has no such VM. */
int spec_find_in_file(const char *path, const char *name, struct vm_spec **ret, struct hutch_error *err);
/* Render a spec back to YAML as "NAME:\n  key: value..." which spec_parse_buffer reads back. */
char *spec_render_yaml(const struct vm_spec *s);
/* Fill defaults (memory, cpus, firmware) for fields left unset. */
void spec_apply_defaults(struct vm_spec *s);

/* True when NAME matches [a-z0-9][a-z0-9-]{0,62}, the rule for VM (and template) names. */
bool spec_valid_name(const char *name);
/* An absolute guest path that fits a kernel command line word: no "..", whitespace, control
 * characters or commas, at most 255 bytes. */
bool spec_valid_guest_path(const char *p);
/* Compares every setting; file and line (where a spec was read from) are ignored. */
bool spec_equal(const struct vm_spec *a, const struct vm_spec *b);
