/* cloud-init NoCloud seed: user-data/meta-data rendering, the cidata ISO, SSH keys, SMBIOS type 11.
 *
 * Everything user-supplied (spec values, host user name, key lines) reaches YAML only as a
 * double-quoted scalar written by libyaml's emitter, which escapes quotes, backslashes, line breaks
 * and non-printable characters. A value can therefore never add a key or a list item. */
#include "seed.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <libgen.h>
#include <openssl/evp.h>
#include <pwd.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <yaml.h>

#include "lazylib.h" /* after <archive.h>: routes archive_*() through the lazy table */

#define SEED_KEYGEN_OUTPUT_MAX (64 * 1024)
#define SEED_PUBKEY_LINE_MAX (16 * 1024) /* an RSA-16384 public key is under 3 KiB */

/* Installs the agent from the seed on every boot. bootcmd rather than runcmd so the agent is up
 * before packages and runcmd (cloud-final can take minutes): `hutch exec` works while the guest is
 * still provisioning. bootcmd runs inside cloud-init.service, which is ordered before
 * sysinit.target; the agent unit has no default dependencies, so it starts at once, and --no-block
 * keeps bootcmd from waiting on it. No daemon-reload on the first boot (it costs seconds under
 * TCG): systemd loads a unit it has never seen when it is first started, and enable --no-reload
 * only makes the link for later boots. A later boot reloads only when the unit file changed, and
 * restarts the agent only when the binary or the unit changed. A seed that is not attached any
 * more leaves the installed agent alone. */
static const char agent_install_script[] =
	"# hutch: install the guest agent from the cidata seed\n"
	"d=/run/hutch-seed\n"
	"u=/etc/systemd/system/" SEED_AGENT_UNIT_NAME "\n"
	"mkdir -p \"$d\"\n"
	"if mount -o ro LABEL=cidata \"$d\" 2>/dev/null || mount -o ro LABEL=CIDATA \"$d\"; then\n"
	"  had_unit=0; [ -e \"$u\" ] && had_unit=1\n"
	"  changed=0\n"
	"  cmp -s \"$d/" SEED_AGENT_UNIT_NAME "\" \"$u\" || changed=unit\n"
	"  cmp -s \"$d/" SEED_AGENT_NAME "\" " SEED_AGENT_GUEST_PATH " || [ \"$changed\" != 0 ] || changed=bin\n"
	"  ok=0\n"
	"  install -D -m 0755 \"$d/" SEED_AGENT_NAME "\" " SEED_AGENT_GUEST_PATH ".new &&\n"
	"    install -D -m 0644 \"$d/" SEED_AGENT_UNIT_NAME "\" \"$u\" &&\n"
	"    mv -f " SEED_AGENT_GUEST_PATH ".new " SEED_AGENT_GUEST_PATH " && ok=1\n"
	"  if [ \"$ok\" = 1 ] && [ -d \"$d/" SEED_NFT_DIR "\" ]; then\n"
	"    mkdir -p /usr/lib/hutch-nft && cp -f \"$d/" SEED_NFT_DIR "\"/* /usr/lib/hutch-nft/ || ok=0\n"
	"  fi\n"
	"  umount \"$d\"\n"
	"  if [ \"$ok\" != 1 ]; then\n"
	"    echo 'hutch: cannot install the agent from the seed' >&2\n"
	"    exit 1\n"
	"  fi\n"
	"  [ \"$had_unit\" = 1 ] && [ \"$changed\" = unit ] && systemctl daemon-reload\n"
	"  systemctl enable --no-reload " SEED_AGENT_UNIT_NAME " 2>/dev/null\n"
	"  if [ \"$changed\" = 0 ]; then\n"
	"    systemctl start --no-block " SEED_AGENT_UNIT_NAME "\n"
	"  else\n"
	"    systemctl restart --no-block " SEED_AGENT_UNIT_NAME " ||\n"
	"      { systemctl daemon-reload; systemctl restart --no-block " SEED_AGENT_UNIT_NAME "; }\n"
	"  fi\n"
	"fi\n";

/* No default dependencies: started from bootcmd, the agent comes up at once instead of waiting for
 * sysinit.target, which waits for the whole of cloud-init's init stage (host keys, users). */
const char seed_agent_unit_default[] = "[Unit]\n"
				       "Description=hutch guest agent\n"
				       "Documentation=man:hutch(1)\n"
				       "DefaultDependencies=no\n"
				       "After=local-fs.target\n"
				       "Conflicts=shutdown.target\n"
				       "Before=shutdown.target\n"
				       "\n"
				       "[Service]\n"
				       "ExecStart=" SEED_AGENT_GUEST_PATH " --service\n"
				       "Restart=always\n"
				       "RestartSec=1\n"
				       "\n"
				       "[Install]\n"
				       "WantedBy=multi-user.target\n";

static bool streq(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

/* ---- YAML writer: a thin layer over libyaml's emitter ---- */

struct yw {
	yaml_emitter_t e;
	struct strbuf out;
	bool ok;
	const char *field; /* what is being written, for the error message */
};

static int yw_output(void *data, unsigned char *buf, size_t size)
{
	strbuf_add(&((struct yw *)data)->out, buf, size);
	return 1;
}

/* yaml_emitter_emit owns the event from here on, also when it fails. */
static void yw_emit(struct yw *y, yaml_event_t *ev, int init_ok)
{
	if (!init_ok) {
		y->ok = false;
		return;
	}
	if (!y->ok) {
		yaml_event_delete(ev);
		return;
	}
	if (!yaml_emitter_emit(&y->e, ev))
		y->ok = false;
}

static void yw_scalar(struct yw *y, const char *s, yaml_scalar_style_t style)
{
	yaml_event_t ev;
	int r = yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)strlen(s), 1, 1, style);
	yw_emit(y, &ev, r);
}

/* Our own constants: keys, true, /bin/bash. */
static void yw_plain(struct yw *y, const char *s) { yw_scalar(y, s, YAML_PLAIN_SCALAR_STYLE); }
/* Anything that did not come from this file. */
static void yw_str(struct yw *y, const char *s) { yw_scalar(y, s, YAML_DOUBLE_QUOTED_SCALAR_STYLE); }

static void yw_kv(struct yw *y, const char *key, const char *value)
{
	yw_plain(y, key);
	yw_str(y, value);
}

static void yw_map(struct yw *y)
{
	yaml_event_t ev;
	yw_emit(y, &ev, yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE));
}

static void yw_map_end(struct yw *y)
{
	yaml_event_t ev;
	yw_emit(y, &ev, yaml_mapping_end_event_initialize(&ev));
}

static void yw_seq(struct yw *y)
{
	yaml_event_t ev;
	yw_emit(y, &ev, yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE));
}

static void yw_seq_end(struct yw *y)
{
	yaml_event_t ev;
	yw_emit(y, &ev, yaml_sequence_end_event_initialize(&ev));
}

/* key: ["a", "b"] as a block list; nothing at all for an empty list. */
static void yw_strv(struct yw *y, const char *key, char *const *v)
{
	if (!v || !v[0])
		return;
	y->field = key;
	yw_plain(y, key);
	yw_seq(y);
	for (; *v; v++)
		yw_str(y, *v);
	yw_seq_end(y);
}

static void yw_begin(struct yw *y, const char *header)
{
	*y = (struct yw){.out = STRBUF_INIT, .ok = true};
	if (!yaml_emitter_initialize(&y->e))
		abort();
	yaml_emitter_set_output(&y->e, yw_output, y);
	yaml_emitter_set_width(&y->e, -1); /* never fold: keys are long and must stay one line */
	yaml_emitter_set_unicode(&y->e, 1);
	yaml_emitter_set_indent(&y->e, 2);
	if (header)
		strbuf_adds(&y->out, header);
	yaml_event_t ev;
	yw_emit(y, &ev, yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING));
	yw_emit(y, &ev, yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1));
	yw_map(y);
}

static int yw_end(struct yw *y, const char *what, char **ret, struct hutch_error *err)
{
	yaml_event_t ev;
	yw_map_end(y);
	yw_emit(y, &ev, yaml_document_end_event_initialize(&ev, 1));
	yw_emit(y, &ev, yaml_stream_end_event_initialize(&ev));
	if (y->ok && !yaml_emitter_flush(&y->e))
		y->ok = false;
	int r = 0;
	if (!y->ok)
		/* The only input-dependent failure is a string libyaml refuses: invalid UTF-8. */
		r = hutch_error_set(err, EINVAL, "cannot render %s: %s: %s", what, y->field ? y->field : "value",
				    y->e.problem ? y->e.problem : "not valid UTF-8");
	yaml_emitter_delete(&y->e);
	if (r < 0) {
		strbuf_release(&y->out);
		return r;
	}
	*ret = strbuf_detach(&y->out, NULL);
	return 0;
}

/* ---- validation ---- */

static bool valid_user_name(const char *s)
{
	/* The portable subset useradd accepts everywhere: [a-z_][a-z0-9_-]{0,31}. */
	if (!s || !((*s >= 'a' && *s <= 'z') || *s == '_'))
		return false;
	size_t n = 0;
	for (; s[n]; n++)
		if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= '0' && s[n] <= '9') || s[n] == '_' || s[n] == '-'))
			return false;
	return n <= 32;
}

bool seed_user_name_valid(const char *name) { return valid_user_name(name); }

static bool valid_hostname(const char *s)
{
	size_t total = strlen(s), label = 0;
	if (total == 0 || total > 253)
		return false;
	for (const char *p = s; *p; p++) {
		if (*p == '.') {
			if (label == 0 || p[-1] == '-')
				return false;
			label = 0;
			continue;
		}
		bool alnum = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9');
		if (!alnum && !(*p == '-' && label > 0))
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0 && s[total - 1] != '-';
}

static bool has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

static int check_packages(char *const *pkgs, struct hutch_error *err)
{
	for (; pkgs && *pkgs; pkgs++) {
		const char *p = *pkgs;
		/* cloud-init hands these to apt/dnf as arguments: a leading '-' would be an option. */
		bool bad = !*p || *p == '-';
		for (const char *c = p; *c && !bad; c++)
			bad = (unsigned char)*c <= 0x20 || *c == 0x7f;
		if (bad)
			return hutch_error_set(err, EINVAL, "cloud_init.packages: '%s' is not a package name", p);
	}
	return 0;
}

static int check_input(const struct seed_input *in, const char *user, struct hutch_error *err)
{
	if (!in->spec)
		return hutch_error_set(err, EINVAL, "seed: no spec");
	if (!in->hostname || !valid_hostname(in->hostname))
		return hutch_error_set(err, EINVAL, "hostname '%s' is not a valid host name",
				       in->hostname ? in->hostname : "");
	if (!in->instance_id || !*in->instance_id || has_control(in->instance_id))
		return hutch_error_set(err, EINVAL, "seed: invalid instance-id");
	if (!valid_user_name(user))
		return hutch_error_set(err, EINVAL, "ssh.user '%s' is not a valid user name (want [a-z_][a-z0-9_-]*)",
				       user);
	for (char **k = in->authorized_keys; k && *k; k++)
		/* A line break would smuggle a second line into authorized_keys. */
		if (!**k || has_control(*k))
			return hutch_error_set(err, EINVAL, "authorized key %zu is not a single line of text",
					       (size_t)(k - in->authorized_keys) + 1);
	for (size_t i = 0; i < in->n_write_files; i++) {
		const struct seed_file *f = &in->write_files[i];
		if (!f->path || f->path[0] != '/' || has_control(f->path) || !f->content)
			return hutch_error_set(err, EINVAL, "write_files: '%s' is not an absolute path",
					       f->path ? f->path : "");
		if (f->permissions && strspn(f->permissions, "01234567") != strlen(f->permissions))
			return hutch_error_set(err, EINVAL, "write_files: '%s': permissions '%s' are not octal",
					       f->path, f->permissions);
	}
	if (!in->host_key_private != !in->host_key_public)
		return hutch_error_set(err, EINVAL, "seed: a host key needs both halves");
	if (in->host_key_private) {
		const char *pem = "-----BEGIN OPENSSH PRIVATE KEY-----\n";
		bool ctl = false;
		for (const char *c = in->host_key_private; *c && !ctl; c++)
			ctl = ((unsigned char)*c < 0x20 && *c != '\n') || *c == 0x7f;
		if (strncmp(in->host_key_private, pem, strlen(pem)) != 0 || ctl)
			return hutch_error_set(err, EINVAL, "seed: the host key is not an OpenSSH private key");
		int r = seed_check_pubkey(in->host_key_public, "host key", err);
		if (r < 0)
			return r;
		if (strncmp(in->host_key_public, "ssh-ed25519 ", 12) != 0)
			return hutch_error_set(err, EINVAL, "seed: the host key is not ed25519");
	}
	return check_packages(in->spec->ci_packages, err);
}

/* ---- user-data / meta-data ---- */

bool seed_is_default_user(const char *name)
{
	static const char *const defaults[] = {"debian", "ubuntu", "fedora", "arch", "cloud-user", "ec2-user"};
	for (size_t i = 0; i < ARRAY_SIZE(defaults); i++)
		if (streq(name, defaults[i]))
			return true;
	return false;
}

const char *seed_login_user(const struct vm_spec *spec, const char *host_user)
{
	if (spec && spec->ssh_user && *spec->ssh_user)
		return spec->ssh_user;
	if (host_user && valid_user_name(host_user) && strcmp(host_user, "root") != 0)
		return host_user;
	return "hutch";
}

static void render_users(struct yw *y, const char *user, char **keys)
{
	y->field = "users";
	yw_plain(y, "users");
	yw_seq(y);
	if (seed_is_default_user(user) || streq(user, "root")) {
		/* Top-level ssh_authorized_keys go to the image's default user. */
		yw_plain(y, "default");
		yw_seq_end(y);
		yw_strv(y, "ssh_authorized_keys", keys);
		if (streq(user, "root")) {
			/* Else cloud-init prefixes root's keys with a "login as the default user" command. */
			yw_plain(y, "disable_root");
			yw_plain(y, "false");
		}
		return;
	}
	yw_map(y);
	yw_kv(y, "name", user);
	yw_kv(y, "sudo", "ALL=(ALL) NOPASSWD:ALL");
	yw_plain(y, "shell");
	yw_plain(y, "/bin/bash");
	yw_plain(y, "lock_passwd");
	yw_plain(y, "true");
	yw_strv(y, "ssh_authorized_keys", keys);
	yw_map_end(y);
	yw_seq_end(y);
}

static void render_write_files(struct yw *y, const struct seed_file *files, size_t n)
{
	if (n == 0)
		return;
	y->field = "write_files";
	yw_plain(y, "write_files");
	yw_seq(y);
	for (size_t i = 0; i < n; i++) {
		yw_map(y);
		yw_kv(y, "path", files[i].path);
		yw_kv(y, "content", files[i].content);
		if (files[i].permissions)
			yw_kv(y, "permissions", files[i].permissions);
		yw_map_end(y);
	}
	yw_seq_end(y);
}

/* The host key made at create: cloud-init's ssh module deletes the image's keys, writes these, and
 * generates none (ssh_keys given means no ssh_genkeytypes), so sshd starts without the RSA-3072
 * keygen that costs about 14 s under TCG, and the host knows the key before the first boot. */
static void render_host_key(struct yw *y, const char *private_key, const char *public_key)
{
	y->field = "ssh_keys";
	yw_plain(y, "ssh_keys");
	yw_map(y);
	yw_kv(y, "ed25519_private", private_key);
	yw_kv(y, "ed25519_public", public_key);
	yw_map_end(y);
}

static void render_agent(struct yw *y)
{
	y->field = "bootcmd";
	yw_plain(y, "bootcmd");
	yw_seq(y);
	yw_scalar(y, agent_install_script, YAML_LITERAL_SCALAR_STYLE);
	yw_seq_end(y);
}

static int render_user_data(const struct seed_input *in, const char *user, char **ret, struct hutch_error *err)
{
	struct yw y;
	yw_begin(&y, "#cloud-config\n");
	y.field = "hostname";
	yw_kv(&y, "hostname", in->hostname);
	/* So sudo and friends resolve the host name without DNS. */
	yw_plain(&y, "manage_etc_hosts");
	yw_plain(&y, "localhost");
	render_users(&y, user, in->authorized_keys);
	if (in->host_key_private)
		render_host_key(&y, in->host_key_private, in->host_key_public);
	yw_strv(&y, "packages", in->spec->ci_packages);
	yw_strv(&y, "runcmd", in->spec->ci_runcmd);
	render_write_files(&y, in->write_files, in->n_write_files);
	if (in->agent_path)
		render_agent(&y);
	if (in->spec->source == SOURCE_OCI) {
		/* a bootc image's root is grown by hutch's agent, capped at root_size (vm_oci.h): cloud-init's
		 * growpart and resizefs would take it to the whole disk */
		y.field = "resize_rootfs";
		yw_plain(&y, "resize_rootfs");
		yw_plain(&y, "false");
		yw_plain(&y, "growpart");
		yw_map(&y);
		yw_kv(&y, "mode", "off");
		yw_map_end(&y);
	}
	return yw_end(&y, "user-data", ret, err);
}

static int render_meta_data(const struct seed_input *in, char **ret, struct hutch_error *err)
{
	struct yw y;
	yw_begin(&y, NULL);
	y.field = "instance-id";
	yw_kv(&y, "instance-id", in->instance_id);
	y.field = "local-hostname";
	yw_kv(&y, "local-hostname", in->hostname);
	return yw_end(&y, "meta-data", ret, err);
}

int seed_render(const struct seed_input *in, char **ret_user_data, char **ret_meta_data, char **ret_network_config,
		struct hutch_error *err)
{
	const char *user = seed_login_user(in->spec, in->default_user);
	int r = check_input(in, user, err);
	if (r < 0)
		return r;
	_cleanup_free_ char *ud = NULL, *md = NULL;
	r = render_user_data(in, user, &ud, err);
	if (r < 0)
		return r;
	r = render_meta_data(in, &md, err);
	if (r < 0)
		return r;
	/* network-config: user networking is plain DHCP, which every cloud image does unasked. A VM on
	 * netvm links gets none: the agent sets the links up (agent/net.c), and a DHCP client or a
	 * fallback resolver from cloud-init would compete with it. */
	if (ret_user_data)
		*ret_user_data = TAKE_PTR(ud);
	if (ret_meta_data)
		*ret_meta_data = TAKE_PTR(md);
	if (ret_network_config)
		*ret_network_config = in->spec->net_mode == NET_NETVM || in->spec->is_netvm
					      ? xstrdup("network:\n  config: disabled\n")
					      : NULL;
	return 0;
}

/* ---- the ISO ---- */

static int iso_fail(struct archive *a, const char *path, struct hutch_error *err)
{
	int code = archive_errno(a);
	const char *detail = archive_error_string(a);
	if (code <= 0)
		return hutch_error_set(err, EIO, "cannot write seed '%s': %s", path,
				       detail ? detail : "libarchive error");
	/* strerror first: "No space left on device" is what the user has to act on. */
	return hutch_error_set(err, code, "cannot write seed '%s': %s (%s)", path, strerror(code),
			       detail ? detail : "libarchive");
}

static struct archive_entry *iso_entry(const char *name, mode_t perm, int64_t size)
{
	struct archive_entry *e = archive_entry_new();
	if (!e)
		abort();
	archive_entry_set_pathname(e, name);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, perm);
	archive_entry_set_size(e, size);
	archive_entry_set_mtime(e, (time_t)now_real_s(), 0);
	return e;
}

static int iso_add_mem(struct archive *a, const char *path, const char *name, const char *data, struct hutch_error *err)
{
	size_t len = strlen(data);
	struct archive_entry *e = iso_entry(name, 0644, (int64_t)len);
	int r = archive_write_header(a, e);
	archive_entry_free(e);
	if (r != ARCHIVE_OK)
		return iso_fail(a, path, err);
	if (len > 0 && archive_write_data(a, data, len) != (ssize_t)len)
		return iso_fail(a, path, err);
	return 0;
}

static int iso_add_file(struct archive *a, const char *path, const char *name, const char *src, mode_t perm,
			struct hutch_error *err)
{
	_cleanup_close_ int fd = open(src, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return hutch_error_set(err, errno, "cannot read '%s': %s", src, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return hutch_error_set(err, EINVAL, "'%s' is not a regular file", src);
	struct archive_entry *e = iso_entry(name, perm, (int64_t)st.st_size);
	int r = archive_write_header(a, e);
	archive_entry_free(e);
	if (r != ARCHIVE_OK)
		return iso_fail(a, path, err);
	char buf[65536];
	off_t total = 0;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return hutch_error_set(err, errno, "cannot read '%s': %s", src, strerror(errno));
		if (n == 0)
			break;
		if (total + n > st.st_size)
			break;
		if (archive_write_data(a, buf, (size_t)n) != n)
			return iso_fail(a, path, err);
		total += n;
	}
	if (total != st.st_size)
		return hutch_error_set(err, EAGAIN, "'%s' changed while it was being copied", src);
	return 0;
}

struct iso_files {
	const char *user_data, *meta_data, *network_config, *agent_path, *agent_unit;
	char *const *nft_files;
};

static int iso_write_fd(int fd, const char *path, const struct iso_files *f, struct hutch_error *err)
{
	if (lazy_archive_load(err) < 0)
		return -1;
	struct archive *a = archive_write_new();
	if (!a)
		abort();
	int r = 0;
	/* cloud-init's NoCloud finds the seed by this label. Rock Ridge keeps "user-data" (not
	 * USER_DAT.;1); "strict" keeps modes as given (0755 for the agent, where "useful" would make
	 * it 0555). Joliet is for the odd reader without Rock Ridge. */
	if (archive_write_set_format_iso9660(a) != ARCHIVE_OK ||
	    archive_write_set_format_option(a, "iso9660", "volume-id", "cidata") != ARCHIVE_OK ||
	    archive_write_set_format_option(a, "iso9660", "rockridge", "strict") != ARCHIVE_OK ||
	    archive_write_set_format_option(a, "iso9660", "joliet", "1") != ARCHIVE_OK ||
	    archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK || archive_write_open_fd(a, fd) != ARCHIVE_OK) {
		r = iso_fail(a, path, err);
		archive_write_free(a);
		return r;
	}
	r = iso_add_mem(a, path, "user-data", f->user_data, err);
	if (r >= 0)
		r = iso_add_mem(a, path, "meta-data", f->meta_data, err);
	if (r >= 0 && f->network_config)
		r = iso_add_mem(a, path, "network-config", f->network_config, err);
	if (r >= 0 && f->agent_path)
		r = iso_add_file(a, path, SEED_AGENT_NAME, f->agent_path, 0755, err);
	if (r >= 0 && f->agent_path)
		r = iso_add_mem(a, path, SEED_AGENT_UNIT_NAME, f->agent_unit, err);
	for (size_t i = 0; r >= 0 && f->nft_files && f->nft_files[i]; i++) {
		const char *base = strrchr(f->nft_files[i], '/');
		_cleanup_free_ char *name = xasprintf(SEED_NFT_DIR "/%s", base ? base + 1 : f->nft_files[i]);
		r = iso_add_file(a, path, name, f->nft_files[i], 0755, err);
	}
	/* The ISO writer assembles the image at close: that is where ENOSPC usually shows up. */
	if (r >= 0 && archive_write_close(a) != ARCHIVE_OK)
		r = iso_fail(a, path, err);
	archive_write_free(a);
	return r;
}

static void fsync_dir_of(const char *path)
{
	_cleanup_free_ char *copy = xstrdup(path);
	_cleanup_close_ int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0)
		(void)fsync(fd);
}

int seed_write_iso(const char *path, const char *user_data, const char *meta_data, const char *network_config,
		   const char *agent_path, const char *agent_unit, struct hutch_error *err)
{
	return seed_write_iso_nft(path, user_data, meta_data, network_config, agent_path, agent_unit, NULL, err);
}

int seed_write_iso_nft(const char *path, const char *user_data, const char *meta_data, const char *network_config,
		       const char *agent_path, const char *agent_unit, char *const *nft_files, struct hutch_error *err)
{
	if (!path || !user_data || !meta_data)
		return hutch_error_set(err, EINVAL, "seed: missing user-data or meta-data");
	struct iso_files f = {
		user_data, meta_data, network_config, agent_path, agent_unit ? agent_unit : seed_agent_unit_default,
		nft_files};
	_cleanup_free_ char *tmp = xasprintf("%s.tmp.XXXXXX", path);
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return hutch_error_set(err, errno, "cannot create '%s': %s", tmp, strerror(errno));
	/* 0600: the seed carries the VM's private host key. */
	int r = fchmod(fd, 0600) < 0 ? hutch_error_set(err, errno, "cannot chmod '%s': %s", tmp, strerror(errno)) : 0;
	if (r >= 0)
		r = iso_write_fd(fd, path, &f, err);
	if (r >= 0 && fsync(fd) < 0)
		r = hutch_error_set(err, errno, "cannot write seed '%s': %s", path, strerror(errno));
	if (close(fd) < 0 && r >= 0)
		r = hutch_error_set(err, errno, "cannot write seed '%s': %s", path, strerror(errno));
	if (r >= 0 && rename(tmp, path) < 0)
		r = hutch_error_set(err, errno, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
	if (r < 0) {
		unlink(tmp);
		return r;
	}
	fsync_dir_of(path);
	return 0;
}

/* ---- SMBIOS type 11 ---- */

char *seed_smbios_credential(char *const *authorized_keys)
{
	_cleanup_strbuf_ struct strbuf keys = STRBUF_INIT;
	for (char *const *k = authorized_keys; k && *k; k++) {
		strbuf_adds(&keys, *k);
		/* Terminate every line, the last too: a later `>>` must not glue onto our key. */
		strbuf_addch(&keys, '\n');
	}
	if (keys.len == 0 || keys.len > (size_t)INT32_MAX / 2)
		return NULL;
	_cleanup_free_ unsigned char *b64 = xmalloc(4 * ((keys.len + 2) / 3) + 1);
	EVP_EncodeBlock(b64, (const unsigned char *)keys.buf, (int)keys.len);
	struct strbuf out = STRBUF_INIT;
	strbuf_adds(&out, "type=11,value=io.systemd.credential.binary:ssh.authorized_keys.root=");
	for (const unsigned char *p = b64; *p; p++) {
		if (*p == ',')
			strbuf_addch(&out, ',');
		strbuf_addch(&out, (char)*p);
	}
	return strbuf_detach(&out, NULL);
}

/* ---- SSH keys ---- */

static const char *const pubkey_types[] = {
	"ssh-ed25519",
	"ssh-rsa",
	"ecdsa-sha2-nistp256",
	"ecdsa-sha2-nistp384",
	"ecdsa-sha2-nistp521",
	"sk-ssh-ed25519@openssh.com",
	"sk-ecdsa-sha2-nistp256@openssh.com",
};

static bool is_b64(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/' ||
	       c == '=';
}

int seed_check_pubkey(const char *untrusted_line, const char *what, struct hutch_error *err)
{
	const char *l = untrusted_line;
	if (strncmp(l, "-----BEGIN", 10) == 0 || strncmp(l, "PuTTY-User-Key-File", 19) == 0) {
		if (strstr(l, "PRIVATE"))
			return hutch_error_set(err, EINVAL, "'%s' is a private key: give its .pub file", what);
		return hutch_error_set(err, EINVAL,
				       "'%s' is not an OpenSSH public key (PEM/SSH2 format; "
				       "convert it with ssh-keygen -i)",
				       what);
	}
	if (strlen(l) > SEED_PUBKEY_LINE_MAX)
		return hutch_error_set(err, EINVAL, "'%s' is not an OpenSSH public key: line too long", what);
	size_t tlen = strcspn(l, " \t");
	const char *type = NULL;
	for (size_t i = 0; i < ARRAY_SIZE(pubkey_types); i++)
		if (strlen(pubkey_types[i]) == tlen && strncmp(l, pubkey_types[i], tlen) == 0)
			type = pubkey_types[i];
	if (!type)
		return hutch_error_set(err, EINVAL,
				       "'%s' is not an OpenSSH public key: unknown key type '%.*s' (want a line like "
				       "\"ssh-ed25519 AAAA... comment\")",
				       what, (int)(tlen > 40 ? 40 : tlen), l);
	const char *blob = l + tlen + strspn(l + tlen, " \t");
	size_t blen = 0;
	while (is_b64(blob[blen]))
		blen++;
	if (blen < 16 || blen % 4 || strncmp(blob, "AAAA", 4) ||
	    (blob[blen] && blob[blen] != ' ' && blob[blen] != '\t'))
		return hutch_error_set(err, EINVAL, "'%s' is not an OpenSSH public key: malformed key data", what);
	for (const char *c = blob + blen; *c; c++)
		if ((unsigned char)*c < 0x20 && *c != '\t')
			return hutch_error_set(err, EINVAL, "'%s': control character in the key comment", what);
	/* The blob starts with the key type again (uint32 length + name): it must agree. */
	_cleanup_free_ unsigned char *raw = xmalloc(blen / 4 * 3 + 1);
	int n = EVP_DecodeBlock(raw, (const unsigned char *)blob, (int)blen);
	uint32_t inner = n >= 4 ? (uint32_t)raw[0] << 24 | (uint32_t)raw[1] << 16 | (uint32_t)raw[2] << 8 | raw[3] : 0;
	if (n < 4 || inner != tlen || (size_t)n < 4 + tlen || memcmp(raw + 4, type, tlen) != 0)
		return hutch_error_set(err, EINVAL,
				       "'%s' is not an OpenSSH public key: key data does not match type '%s'", what,
				       type);
	return 0;
}

static char *expand_home(const char *path)
{
	if (strncmp(path, "~/", 2) != 0)
		return xstrdup(path);
	const char *home = getenv("HOME");
	if (!home || !*home) {
		struct passwd *pw = getpwuid(getuid());
		home = pw ? pw->pw_dir : "/";
	}
	return xasprintf("%s/%s", home, path + 2);
}

static bool is_regular(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Reads a .pub file: one or more key lines, blank lines and # comments skipped. */
static int read_pubkeys(const char *path, char ***ret, struct hutch_error *err)
{
	_cleanup_free_ char *untrusted = NULL;
	size_t len = 0;
	int r = read_file(path, SEED_PUBKEY_MAX, &untrusted, &len, err);
	if (r == -EFBIG)
		return hutch_error_set(err, EFBIG, "'%s' is too large for a public key file", path);
	if (r < 0)
		return r;
	if (strlen(untrusted) != len)
		return hutch_error_set(err, EINVAL, "'%s' is not an OpenSSH public key: binary data", path);
	_cleanup_strv_ char **keys = NULL;
	char *save = NULL;
	for (char *line = strtok_r(untrusted, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		line[strcspn(line, "\r")] = 0;
		line += strspn(line, " \t");
		if (!*line || *line == '#')
			continue;
		/* A private key fails on its first line ("-----BEGIN ... PRIVATE KEY-----"). */
		r = seed_check_pubkey(line, path, err);
		if (r < 0)
			return r;
		keys = strv_push(keys, xstrdup(line));
	}
	if (!keys)
		return hutch_error_set(err, EINVAL, "'%s' holds no public key", path);
	*ret = TAKE_PTR(keys);
	return 0;
}

static int key_from_file(const char *spec_path, char ***ret_pubkeys, char **ret_private, struct hutch_error *err)
{
	_cleanup_free_ char *path = expand_home(spec_path);
	_cleanup_strv_ char **keys = NULL;
	int r = read_pubkeys(path, &keys, err);
	if (r < 0)
		return hutch_error_wrap(err, "ssh.key");
	char *priv = NULL;
	size_t len = strlen(path);
	if (len > 4 && strcmp(path + len - 4, ".pub") == 0) {
		priv = xstrndup(path, len - 4);
		if (!is_regular(priv)) {
			free(priv);
			priv = NULL;
		}
	}
	if (ret_pubkeys)
		*ret_pubkeys = TAKE_PTR(keys);
	if (ret_private)
		*ret_private = priv;
	else
		free(priv);
	return 0;
}

static void cleanup_pid(pid_t *pid)
{
	if (*pid <= 0)
		return;
	kill(*pid, SIGKILL);
	while (waitpid(*pid, NULL, 0) < 0 && errno == EINTR)
		;
}

/* Runs ssh-keygen with ARGV (no shell), stdin from /dev/null, stdout+stderr into *out. */
static int run_ssh_keygen(char *const argv[], struct strbuf *out, struct hutch_error *err)
{
	int execp[2], outp[2];
	if (pipe2(execp, O_CLOEXEC) < 0)
		return hutch_error_set(err, errno, "pipe: %s", strerror(errno));
	if (pipe2(outp, O_CLOEXEC) < 0) {
		int e = errno;
		close(execp[0]), close(execp[1]);
		return hutch_error_set(err, e, "pipe: %s", strerror(e));
	}
	_cleanup_(cleanup_pid) pid_t pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY); /* no CLOEXEC: it may land on fd 0 itself */
		if (null < 0 || dup2(null, 0) < 0 || dup2(outp[1], 1) < 0 || dup2(outp[1], 2) < 0)
			_exit(127);
		execvp(argv[0], argv);
		int e = errno;
		(void)!write(execp[1], &e, sizeof(e));
		_exit(127);
	}
	int fork_errno = errno;
	close(execp[1]);
	close(outp[1]);
	_cleanup_close_ int exec_rd = execp[0], out_rd = outp[0];
	if (pid < 0)
		return hutch_error_set(err, fork_errno, "cannot start ssh-keygen: %s", strerror(fork_errno));
	int child_errno = 0;
	ssize_t n;
	while ((n = read(exec_rd, &child_errno, sizeof(child_errno))) < 0 && errno == EINTR)
		;
	char buf[4096];
	while ((n = read(out_rd, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		if (out->len < SEED_KEYGEN_OUTPUT_MAX)
			strbuf_add(out, buf, (size_t)n);
	}
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	pid = 0;
	if (child_errno == ENOENT)
		return hutch_error_set(err, ENOENT, "ssh-keygen not found: install the openssh-client package");
	if (child_errno)
		return hutch_error_set(err, child_errno, "cannot run ssh-keygen: %s", strerror(child_errno));
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		const char *o = strbuf_str(out);
		return hutch_error_set(err, EIO, "ssh-keygen failed: %.*s", (int)strcspn(o, "\n"),
				       *o ? o : "no output");
	}
	return 0;
}

/* The private key exists without its .pub (a crash between publishing the two, or a concurrent
 * creator that has not published its .pub yet): derive it, checked before it is written. */
static int derive_pubkey(const char *priv, const char *pub, struct hutch_error *err)
{
	char *argv[] = {(char *)"ssh-keygen", (char *)"-y", (char *)"-f", (char *)priv, NULL};
	_cleanup_strbuf_ struct strbuf out = STRBUF_INIT;
	int r = run_ssh_keygen(argv, &out, err);
	if (r < 0)
		return r;
	if (out.len == 0)
		return hutch_error_set(err, EIO, "ssh-keygen -y printed nothing");
	out.buf[strcspn(out.buf, "\r\n")] = 0;
	r = seed_check_pubkey(out.buf, "ssh-keygen -y", err);
	if (r < 0)
		return r;
	strbuf_addch(&out, '\n');
	return write_file_atomic(pub, out.buf, strlen(out.buf), 0644, err);
}

/* A new unpassphrased ed25519 pair from ssh-keygen under the temp name TMP (and TMP.pub), anything
 * older there removed first. Publishing them, and removing them after, is the caller's. */
static int keygen_tmp(const char *tmp, const char *tmp_pub, const char *comment, struct hutch_error *err)
{
	unlink(tmp);
	unlink(tmp_pub);
	char *argv[] = {(char *)"ssh-keygen", (char *)"-t", (char *)"ed25519", (char *)"-N", (char *)"", (char *)"-C",
			(char *)comment,      (char *)"-f", (char *)tmp,       (char *)"-q", NULL};
	_cleanup_strbuf_ struct strbuf out = STRBUF_INIT;
	return run_ssh_keygen(argv, &out, err);
}

/* ssh-keygen into a temp name, then publish: the private key first, by link() so a concurrent
 * winner is never replaced, and the .pub only by the winner. */
static int generate_keypair(const char *vm_dir, const char *priv, const char *pub, struct hutch_error *err)
{
	int r = mkdir_p(vm_dir, 0700);
	if (r < 0)
		return hutch_error_set(err, r, "cannot create '%s': %s", vm_dir, strerror(-r));
	_cleanup_free_ char *dircopy = xstrdup(vm_dir);
	_cleanup_free_ char *comment = xasprintf("hutch-%s", basename(dircopy));
	_cleanup_free_ char *tmp = xasprintf("%s/.id_ed25519.tmp.%d", vm_dir, (int)getpid());
	_cleanup_free_ char *tmp_pub = xasprintf("%s.pub", tmp);
	r = keygen_tmp(tmp, tmp_pub, comment, err);
	bool won = false;
	if (r >= 0) {
		if (link(tmp, priv) == 0)
			won = true;
		else if (errno != EEXIST && rename(tmp, priv) == 0) /* a file system without hard links */
			won = true;
		else if (errno != EEXIST)
			r = hutch_error_set(err, errno, "cannot create '%s': %s", priv, strerror(errno));
	}
	if (r >= 0 && won && rename(tmp_pub, pub) < 0)
		r = hutch_error_set(err, errno, "cannot rename '%s': %s", tmp_pub, strerror(errno));
	unlink(tmp);
	unlink(tmp_pub);
	if (r >= 0)
		fsync_dir_of(priv);
	return r;
}

static int key_generate(const char *vm_dir, char ***ret_pubkeys, char **ret_private, struct hutch_error *err)
{
	if (!vm_dir || !*vm_dir)
		return hutch_error_set(err, EINVAL, "ssh.key: generate needs the VM directory");
	_cleanup_free_ char *priv = xasprintf("%s/id_ed25519", vm_dir);
	_cleanup_free_ char *pub = xasprintf("%s.pub", priv);
	int r;
	/* The private key is the marker: present means generated, and it is never replaced. */
	if (!is_regular(priv)) {
		r = generate_keypair(vm_dir, priv, pub, err);
		if (r < 0)
			return hutch_error_wrap(err, "ssh.key: generate");
	}
	if (!is_regular(pub)) {
		r = derive_pubkey(priv, pub, err);
		if (r < 0)
			return hutch_error_wrap(err, "ssh.key: '%s'", priv);
	}
	_cleanup_strv_ char **keys = NULL;
	r = read_pubkeys(pub, &keys, err);
	if (r < 0)
		return hutch_error_wrap(err, "ssh.key");
	if (ret_pubkeys)
		*ret_pubkeys = TAKE_PTR(keys);
	if (ret_private)
		*ret_private = TAKE_PTR(priv);
	return 0;
}

static int key_auto(const char *vm_dir, char ***ret_pubkeys, char **ret_private, struct hutch_error *err)
{
	static const char *const names[] = {"id_ed25519.pub", "id_ecdsa.pub", "id_rsa.pub"};
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		_cleanup_free_ char *p = xasprintf("~/.ssh/%s", names[i]);
		_cleanup_free_ char *full = expand_home(p);
		if (is_regular(full))
			return key_from_file(full, ret_pubkeys, ret_private, err);
	}
	log_debug("no ~/.ssh/id_*.pub: generating a key for the VM");
	return key_generate(vm_dir, ret_pubkeys, ret_private, err);
}

int seed_ssh_key(const char *spec_key, const char *vm_dir, char ***ret_pubkeys, char **ret_private_key_path,
		 struct hutch_error *err)
{
	if (!spec_key || streq(spec_key, "auto"))
		return key_auto(vm_dir, ret_pubkeys, ret_private_key_path, err);
	if (streq(spec_key, "generate"))
		return key_generate(vm_dir, ret_pubkeys, ret_private_key_path, err);
	if (streq(spec_key, "none")) {
		if (ret_pubkeys)
			*ret_pubkeys = NULL;
		if (ret_private_key_path)
			*ret_private_key_path = NULL;
		return 0;
	}
	if (!*spec_key)
		return hutch_error_set(err, EINVAL, "ssh.key: empty (want auto, generate, none or a .pub path)");
	return key_from_file(spec_key, ret_pubkeys, ret_private_key_path, err);
}

/* ---- the VM's host key ---- */

int seed_host_key(const char *vm_dir, const char *name, char **ret_private, char **ret_public, struct hutch_error *err)
{
	int r = mkdir_p(vm_dir, 0700);
	if (r < 0)
		return hutch_error_set(err, r, "cannot create '%s': %s", vm_dir, strerror(-r));
	_cleanup_free_ char *priv = xasprintf("%s/ssh_host_ed25519_key", vm_dir);
	_cleanup_free_ char *pub = xasprintf("%s.pub", priv);
	_cleanup_free_ char *tmp = xasprintf("%s/.ssh_host_ed25519_key.tmp.%d", vm_dir, (int)getpid());
	_cleanup_free_ char *tmp_pub = xasprintf("%s.pub", tmp);
	_cleanup_free_ char *comment = xasprintf("hutch-%s", name);
	/* ssh-keygen writes the private key 0600 itself; the VM dir is 0700 on top of that. */
	r = keygen_tmp(tmp, tmp_pub, comment, err);
	_cleanup_free_ char *priv_text = NULL, *pub_text = NULL;
	size_t len = 0;
	if (r >= 0)
		r = read_file(tmp, SEED_PUBKEY_MAX, &priv_text, &len, err);
	if (r >= 0)
		r = read_file(tmp_pub, SEED_PUBKEY_MAX, &pub_text, &len, err);
	if (r >= 0) {
		pub_text[strcspn(pub_text, "\r\n")] = 0;
		r = seed_check_pubkey(pub_text, "ssh-keygen", err);
	}
	if (r >= 0 && (rename(tmp, priv) < 0 || rename(tmp_pub, pub) < 0))
		r = hutch_error_set(err, errno, "cannot rename '%s': %s", tmp, strerror(errno));
	unlink(tmp);
	unlink(tmp_pub);
	if (r < 0)
		return hutch_error_wrap(err, "host key");
	fsync_dir_of(priv);
	*ret_private = TAKE_PTR(priv_text);
	*ret_public = TAKE_PTR(pub_text);
	return 0;
}

char *seed_known_hosts_line(const char *name, const char *public_key)
{
	if (!public_key || seed_check_pubkey(public_key, "host key", NULL) < 0)
		return NULL;
	/* type and blob only: the comment is ours and says nothing to ssh */
	size_t tlen = strcspn(public_key, " \t");
	const char *blob = public_key + tlen + strspn(public_key + tlen, " \t");
	return xasprintf("hutch-%s %.*s %.*s\n", name, (int)tlen, public_key, (int)strcspn(blob, " \t"), blob);
}

/* ---- instance id ---- */

char *seed_new_instance_id(void)
{
	unsigned char rnd[8];
	bool ok = false;
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ok = read_full(fd, rnd, sizeof(rnd)) == (ssize_t)sizeof(rnd);
		close(fd);
	}
	if (!ok)
		ok = getrandom(rnd, sizeof(rnd), 0) == (ssize_t)sizeof(rnd);
	if (!ok)
		abort(); /* no randomness at all: nothing sane to continue with */
	char hex[17];
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
	return xasprintf("hutch-%s", hex);
}
