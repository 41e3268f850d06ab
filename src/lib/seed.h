/* The cloud-init NoCloud seed (user-data, meta-data, an ISO9660 volume labelled cidata), SSH key
 * resolution, and the SMBIOS type 11 credential that carries the same keys past cloud-init. */
#pragma once
#include "spec.h"
#include "util.h"

#define SEED_AGENT_NAME "hutch-agent"		   /* file name on the ISO */
#define SEED_AGENT_UNIT_NAME "hutch-agent.service" /* file name on the ISO and in the guest */
#define SEED_AGENT_GUEST_PATH "/usr/local/libexec/hutch-agent"
#define SEED_PUBKEY_MAX (64 * 1024) /* a .pub file larger than this is not a public key */

/* Used when seed_input.agent_unit / seed_write_iso(agent_unit) is NULL. */
extern const char seed_agent_unit_default[];

/* An extra file for cloud-init's write_files. */
struct seed_file {
	const char *path;	 /* absolute guest path */
	const char *content;	 /* UTF-8 text */
	const char *permissions; /* "0644"; NULL leaves cloud-init's default */
};

struct seed_input {
	const struct vm_spec *spec;
	const char *hostname;
	const char *instance_id;
	const char *default_user; /* host user name: the user created when spec->ssh_user is unset */
	char **authorized_keys;	  /* strv of public key lines, may be NULL */
	const char *agent_path;	  /* static hutch-agent binary to ship, may be NULL */
	const char *agent_unit;	  /* systemd unit text, NULL = seed_agent_unit_default */
	const struct seed_file *write_files;
	size_t n_write_files;
	/* The VM's SSH host key (ed25519), both halves or neither: cloud-init installs it and
	 * generates no keys of its own. */
	const char *host_key_private; /* OpenSSH PEM text */
	const char *host_key_public;  /* "ssh-ed25519 AAAA... comment" */
};

/* The portable user names: [a-z_][a-z0-9_-]{0,31}. */
bool seed_user_name_valid(const char *name);

/* The image default users that cloud-init already knows; ssh.user naming one adopts it. */
bool seed_is_default_user(const char *name);

/* The user the guest is logged into: spec->ssh_user, else the host user, else "hutch" when the host
 * user is root or not a portable Linux user name (as Lima falls back to "lima"). `hutch ssh` must
 * use this too. Points into its arguments or a static string. */
const char *seed_login_user(const struct vm_spec *spec, const char *host_user);

/* Render #cloud-config user-data and meta-data. Every value taken from the spec, the host or the
 * keys is emitted as a double-quoted YAML scalar through libyaml's emitter, so nothing can add
 * structure. *ret_network_config is NULL when no network-config is needed (today: always). */
int seed_render(const struct seed_input *in, char **ret_user_data, char **ret_meta_data, char **ret_network_config,
		struct hutch_error *err);

/* Write the NoCloud ISO (volume id cidata, Rock Ridge + Joliet), mode 0600 since it may carry the
 * private host key, atomically: a temp file in the same
 * directory, fsync, rename. network_config and agent_path may be NULL; agent_unit NULL with an
 * agent_path ships seed_agent_unit_default. ENOSPC and friends come back as errors, and nothing is
 * left under PATH or beside it. */
int seed_write_iso(const char *path, const char *user_data, const char *meta_data, const char *network_config,
		   const char *agent_path, const char *agent_unit, struct hutch_error *err);

/* The same, plus nft_files (host paths: template_nft_files) under SEED_NFT_DIR/, which the agent's
 * installer copies to /usr/lib/hutch-nft: a netvm image guest's NAT needs no nftables of its own. */
#define SEED_NFT_DIR "hutch-nft"
int seed_write_iso_nft(const char *path, const char *user_data, const char *meta_data, const char *network_config,
		       const char *agent_path, const char *agent_unit, char *const *nft_files, struct hutch_error *err);

/* "type=11,value=io.systemd.credential.binary:ssh.authorized_keys.root=BASE64" for QEMU's
 * -smbios. The keys are joined by "\n" with a final "\n". NULL when there are no keys.
 * QEMU's option parser splits on ',' and reads ",," as a literal comma; base64 never contains
 * one, but the value is escaped anyway so the function stays correct if the encoding changes. */
char *seed_smbios_credential(char *const *authorized_keys);

/* Resolve ssh.key: NULL/"auto" = the first of ~/.ssh/id_ed25519.pub, id_ecdsa.pub, id_rsa.pub,
 * else as "generate"; "generate" = VM_DIR/id_ed25519, made once with ssh-keygen and reused after;
 * "none" = no keys (*ret_pubkeys NULL); anything else is a path to a public key file ("~/" is
 * expanded). *ret_private_key_path is the matching private key when it exists, else NULL.
 * Either out-parameter may be NULL. The caller holds the VM's op lock while generating. */
int seed_ssh_key(const char *spec_key, const char *vm_dir, char ***ret_pubkeys, char **ret_private_key_path,
		 struct hutch_error *err);

/* Validate one public key line ("ssh-ed25519 AAAA... comment"): known type, base64 blob whose
 * embedded type matches. -EINVAL with a message naming WHAT otherwise (private keys called out). */
int seed_check_pubkey(const char *line, const char *what, struct hutch_error *err);

/* A new ed25519 host key for the VM: VM_DIR/ssh_host_ed25519_key (0600) and its .pub, made with
 * ssh-keygen and replacing any older pair (every create makes a new one). *ret_private is the
 * private key's text, *ret_public its public line. */
int seed_host_key(const char *vm_dir, const char *name, char **ret_private, char **ret_public, struct hutch_error *err);

/* The known_hosts line for a VM's host key: "hutch-NAME TYPE BLOB\n" (ssh's HostKeyAlias, so the
 * forwarded port can change between starts). NULL when PUBLIC is not a key line. */
char *seed_known_hosts_line(const char *name, const char *public_key);

/* "hutch-" + 16 hex chars from /dev/urandom: new on every create, so cloud-init runs again. */
char *seed_new_instance_id(void);
