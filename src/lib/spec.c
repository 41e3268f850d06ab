/* VM specs. libyaml's event parser feeds a small tree first, so that aliases, tags, nesting and
 * encoding problems are refused before any value is interpreted; the tree is then walked with
 * per-key tables. Every error names FILE:LINE and the dotted key. */
#include "spec.h"

#include "spec_libvirt.h"
#include "ytree.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#define MEMORY_MIN (64ULL << 20)
#define MEMORY_MAX (1ULL << 40)
#define MEMORY_DEFAULT (512ULL << 20)
#define IDLE_MAX_S (365ULL * 24 * 3600)
#define STOP_TIMEOUT_MAX_S 3600ULL
#define SHARE_NAME_MAX 36 /* virtiofs tags are at most 36 bytes */

bool spec_valid_name(const char *name)
{
	size_t len = name ? strlen(name) : 0;
	if (len == 0 || len > 63 || name[0] == '-')
		return false;
	for (size_t i = 0; i < len; i++)
		if (!(islower((unsigned char)name[i]) || isdigit((unsigned char)name[i]) || name[i] == '-'))
			return false;
	return true;
}

/* Share names become virtiofs tags and QEMU option values: no commas, no '=' and short. */
static bool share_valid_name(const char *name)
{
	size_t len = strlen(name);
	if (len == 0 || len > SHARE_NAME_MAX || !isalnum((unsigned char)name[0]))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!(isalnum((unsigned char)name[i]) || name[i] == '-' || name[i] == '_'))
			return false;
	return true;
}

bool spec_valid_guest_path(const char *p)
{
	size_t len = p ? strlen(p) : 0;
	if (len == 0 || len > 255 || p[0] != '/')
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)p[i] <= ' ' || p[i] == 0x7f || p[i] == ',')
			return false;
	for (const char *q = p; (q = strstr(q, "/..")); q += 3)
		if (q[3] == '/' || q[3] == 0)
			return false;
	return true;
}

/* source */

static int src_template(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	struct vm_spec *s = obj;
	int r = ytree_str(c, v, path, false, &s->template);
	if (r < 0)
		return r;
	if (!spec_valid_name(s->template)) {
		_cleanup_free_ char *q = ytree_quote(s->template);
		return ytree_error(c, v, path, "invalid template name '%s'", q);
	}
	return 0;
}

static int src_image(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	return ytree_str(c, v, path, false, &((struct vm_spec *)obj)->image);
}

static int src_checksum(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	struct vm_spec *s = obj;
	int r = ytree_str(c, v, path, false, &s->checksum);
	if (r < 0)
		return r;
	if ((strncmp(s->checksum, "sha256:", 7) && strncmp(s->checksum, "sha512:", 7)) || !s->checksum[7]) {
		_cleanup_free_ char *q = ytree_quote(s->checksum);
		return ytree_error(c, v, path, "expected sha256:VALUE or sha512:VALUE, got '%s'", q);
	}
	return 0;
}

static int src_oci(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	return ytree_str(c, v, path, false, &((struct vm_spec *)obj)->oci);
}

static const struct ytree_field source_fields[] = {
	{"template", src_template},
	{"image", src_image},
	{"checksum", src_checksum},
	{"oci", src_oci},
};

static int vm_source(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	struct vm_spec *s = obj;
	int r = ytree_parse_fields(c, v, path, source_fields, ARRAY_SIZE(source_fields), s);
	if (r < 0)
		return r;
	if ((s->template != NULL) + (s->image != NULL) + (s->oci != NULL) > 1)
		return ytree_error(c, v, path, "template, image and oci are mutually exclusive");
	if (!s->template && !s->image && !s->oci)
		return ytree_error(c, v, path, "needs a template, an image or an oci image");
	if (s->checksum && !s->image)
		return ytree_error(c, ytree_map_get(v, "checksum"), "source.checksum", "only allowed with image");
	s->source = s->image ? SOURCE_IMAGE : s->oci ? SOURCE_OCI : SOURCE_TEMPLATE;
	return 0;
}

/* plain VM keys */

static int vm_kernel(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	return ytree_str(c, v, path, false, &((struct vm_spec *)obj)->kernel);
}

static int vm_cmdline(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	return ytree_str(c, v, path, true, &((struct vm_spec *)obj)->cmdline);
}

static int vm_memory(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	uint64_t m;
	int r = ytree_size(c, v, path, &m);
	if (r < 0)
		return r;
	if (m < MEMORY_MIN || m > MEMORY_MAX)
		return ytree_error(c, v, path, "must be between 64M and 1T");
	((struct vm_spec *)obj)->memory = m;
	return 0;
}

static int vm_cpus(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	long long n;
	int r = ytree_ll(c, v, path, 1, 256, &n);
	if (r < 0)
		return r;
	((struct vm_spec *)obj)->cpus = (unsigned)n;
	return 0;
}

static int vm_disk(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	return ytree_size(c, v, path, &((struct vm_spec *)obj)->disk);
}

static int vm_root_size(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	return ytree_size(c, v, path, &((struct vm_spec *)obj)->root_size);
}

static int vm_firmware(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	struct vm_spec *s = obj;
	int r = ytree_want_scalar(c, v, path, "bios, uefi or uefi-secure");
	if (r < 0)
		return r;
	if (!strcmp(v->str, "bios"))
		s->firmware = FIRMWARE_BIOS;
	else if (!strcmp(v->str, "uefi"))
		s->firmware = FIRMWARE_UEFI;
	else if (!strcmp(v->str, "uefi-secure"))
		s->firmware = FIRMWARE_UEFI_SECURE;
	else
		return ytree_type_error(c, v, path, "bios, uefi or uefi-secure");
	return 0;
}

static int vm_tpm(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	return ytree_bool(c, v, path, &((struct vm_spec *)obj)->tpm);
}

static int vm_backend(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	int r = ytree_want_scalar(c, v, path, "qemu or libvirt");
	if (r < 0)
		return r;
	if (strcmp(v->str, "qemu") && strcmp(v->str, "libvirt"))
		return ytree_type_error(c, v, path, "qemu or libvirt");
	return ytree_str(c, v, path, false, &((struct vm_spec *)obj)->backend);
}

static int vm_accel(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	int r = ytree_want_scalar(c, v, path, "auto, kvm or tcg");
	if (r < 0)
		return r;
	if (accel_mode_parse(v->str, &((struct vm_spec *)obj)->accel) < 0)
		return ytree_type_error(c, v, path, "auto, kvm or tcg");
	return 0;
}

static int vm_uri(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	return ytree_str(c, v, path, false, &((struct vm_spec *)obj)->uri);
}

static int vm_disposable(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	return ytree_bool(c, v, path, &((struct vm_spec *)obj)->disposable);
}

static int vm_autostart(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	return ytree_bool(c, v, path, &((struct vm_spec *)obj)->autostart);
}

/* network */

static int net_mode(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	struct vm_spec *s = obj;
	int r = ytree_want_scalar(c, v, path, "user, none or netvm");
	if (r < 0)
		return r;
	if (!strcmp(v->str, "user")) {
		s->net_mode = NET_USER;
	} else if (!strcmp(v->str, "none")) {
		s->net_mode = NET_NONE;
	} else if (!strcmp(v->str, "netvm")) {
		s->net_mode = NET_NETVM;
	} else if (!strncmp(v->str, "netvm:", 6)) { /* the older spelling of {mode: netvm, netvm: NAME} */
		if (!spec_valid_name(v->str + 6)) {
			_cleanup_free_ char *q = ytree_quote(v->str + 6);
			return ytree_error(c, v, path, "invalid netvm name '%s'", q);
		}
		s->net_mode = NET_NETVM;
		free(s->netvm);
		s->netvm = xstrdup(v->str + 6);
	} else {
		return ytree_type_error(c, v, path, "user, none or netvm");
	}
	return 0;
}

static int net_netvm(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	struct vm_spec *s = obj;
	int r = ytree_str(c, v, path, false, &s->netvm);
	if (r < 0)
		return r;
	if (!spec_valid_name(s->netvm)) {
		_cleanup_free_ char *q = ytree_quote(s->netvm);
		return ytree_error(c, v, path, "invalid netvm name '%s'", q);
	}
	return 0;
}

static int net_is_netvm(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	return ytree_bool(c, v, path, &((struct vm_spec *)obj)->is_netvm);
}

static int net_auto_forward(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	return ytree_bool(c, v, path, &((struct vm_spec *)obj)->auto_forward);
}

/* A.B.C.D/31 whose address is the even one: the client gets it, the netvm the next. */
static int net_subnet(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	int r = ytree_want_scalar(c, v, path, "A.B.C.D/31");
	if (r < 0)
		return r;
	unsigned a, b, d, e, prefix;
	char tail;
	if (sscanf(v->str, "%3u.%3u.%3u.%3u/%2u%c", &a, &b, &d, &e, &prefix, &tail) != 5 || a > 255 || b > 255 ||
	    d > 255 || e > 255 || strspn(v->str, "0123456789./") != strlen(v->str)) {
		_cleanup_free_ char *q = ytree_quote(v->str);
		return ytree_error(c, v, path, "expected an IPv4 /31 like 10.200.5.2/31, got '%s'", q);
	}
	if (prefix != 31)
		return ytree_error(c, v, path, "must be a /31 (a link has two addresses), got /%u", prefix);
	if (e & 1)
		return ytree_error(c, v, path, "%u.%u.%u.%u is the odd address of its /31: write %u.%u.%u.%u/31", a, b,
				   d, e, a, b, d, e - 1);
	if ((a | b | d | e) == 0)
		return ytree_error(c, v, path, "0.0.0.0/31 is not a usable link");
	((struct vm_spec *)obj)->netvm_subnet = (uint32_t)a << 24 | (uint32_t)b << 16 | (uint32_t)d << 8 | e;
	return 0;
}

static bool port_valid(const char *s, size_t len, long long min)
{
	char buf[8];
	long long p;
	if (len == 0 || len >= sizeof(buf))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isdigit((unsigned char)s[i]))
			return false;
	memcpy(buf, s, len);
	buf[len] = 0;
	return parse_ll(buf, min, 65535, &p) == 0;
}

static int check_forward(struct ytree_ctx *c, const struct ynode *it, const char *path)
{
	const char *s = it->str, *colon = strchr(s, ':');
	const char *guest = colon ? colon + 1 : NULL;
	const char *slash = guest ? strchr(guest, '/') : NULL;
	bool ok = colon && port_valid(s, (size_t)(colon - s), 0) &&
		  port_valid(guest, slash ? (size_t)(slash - guest) : strlen(guest), 1) &&
		  (!slash || !strcmp(slash, "/tcp") || !strcmp(slash, "/udp"));
	if (!ok) {
		_cleanup_free_ char *q = ytree_quote(s);
		return ytree_error(c, it, path,
				   "invalid forward '%s': expected HOST:GUEST or HOST:GUEST/tcp|udp with ports 1-65535 "
				   "(HOST 0: any free port)",
				   q);
	}
	return 0;
}

static int net_forward(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	return ytree_strv(c, v, path, check_forward, &((struct vm_spec *)obj)->forward);
}

static const struct ytree_field network_fields[] = {
	{"mode", net_mode},
	{"netvm", net_netvm},
	{"is_netvm", net_is_netvm},
	{"netvm_subnet", net_subnet},
	{"auto_forward", net_auto_forward},
	{"forward", net_forward},
};

static int vm_network(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	struct vm_spec *s = obj;
	bool had_mode = ytree_map_get(v, "mode") != NULL;
	int r = ytree_parse_fields(c, v, path, network_fields, ARRAY_SIZE(network_fields), obj);
	if (r < 0)
		return r;
	_cleanup_free_ char *mp = ytree_path_join(path, "mode"), *np = ytree_path_join(path, "netvm");
	if (s->netvm && !had_mode)
		s->net_mode = NET_NETVM; /* netvm: NAME alone says mode: netvm */
	if (s->net_mode == NET_NETVM && !s->netvm)
		return ytree_error(c, v, mp, "mode netvm needs netvm: NAME");
	if (s->net_mode != NET_NETVM && s->netvm)
		return ytree_error(c, ytree_map_get(v, "netvm"), np, "netvm: is only for mode: netvm");
	if (s->netvm_subnet && s->net_mode != NET_NETVM) {
		_cleanup_free_ char *sp = ytree_path_join(path, "netvm_subnet");
		return ytree_error(c, ytree_map_get(v, "netvm_subnet"), sp, "netvm_subnet is only for mode: netvm");
	}
	if (s->auto_forward && s->net_mode != NET_USER) {
		_cleanup_free_ char *ap = ytree_path_join(path, "auto_forward");
		return ytree_error(c, ytree_map_get(v, "auto_forward"), ap,
				   "auto_forward needs mode: user (forwards go through QEMU's user-mode network)");
	}
	return 0;
}

/* ssh */

static int ssh_user(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	return ytree_str(c, v, path, false, &((struct vm_spec *)obj)->ssh_user);
}

static int ssh_key(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	return ytree_str(c, v, path, false, &((struct vm_spec *)obj)->ssh_key);
}

static int ssh_port(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	long long p;
	int r = ytree_ll(c, v, path, 1, 65535, &p);
	if (r < 0)
		return r;
	((struct vm_spec *)obj)->ssh_port = (int)p;
	return 0;
}

static const struct ytree_field ssh_fields[] = {
	{"user", ssh_user},
	{"key", ssh_key},
	{"port", ssh_port},
};

static int vm_ssh(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	return ytree_parse_fields(c, v, path, ssh_fields, ARRAY_SIZE(ssh_fields), obj);
}

/* shares */

static int share_path(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	return ytree_str(c, v, path, false, &((struct share *)obj)->path);
}

static int share_mount(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	struct share *sh = obj;
	int r = ytree_str(c, v, path, false, &sh->mount);
	if (r < 0)
		return r;
	if (sh->mount[0] != '/') {
		_cleanup_free_ char *q = ytree_quote(sh->mount);
		return ytree_error(c, v, path, "must be an absolute path, got '%s'", q);
	}
	if (!spec_valid_guest_path(sh->mount)) {
		_cleanup_free_ char *q = ytree_quote(sh->mount);
		return ytree_error(c, v, path,
				   "must be a guest path without '..', spaces, commas or control characters, got '%s'",
				   q);
	}
	return 0;
}

static int share_via(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	struct share *sh = obj;
	int r = ytree_want_scalar(c, v, path, "auto, 9p or virtiofs");
	if (r < 0)
		return r;
	if (!strcmp(v->str, "auto"))
		sh->via = SHARE_AUTO;
	else if (!strcmp(v->str, "9p"))
		sh->via = SHARE_9P;
	else if (!strcmp(v->str, "virtiofs"))
		sh->via = SHARE_VIRTIOFS;
	else
		return ytree_type_error(c, v, path, "auto, 9p or virtiofs");
	return 0;
}

static int share_readonly(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	return ytree_bool(c, v, path, &((struct share *)obj)->readonly);
}

static const struct ytree_field share_fields[] = {
	{"path", share_path},
	{"mount", share_mount},
	{"readonly", share_readonly},
	{"via", share_via},
};

static int vm_shares(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	struct vm_spec *s = obj;
	if (v->type != Y_MAP)
		return ytree_type_error(c, v, path, "a mapping of share names");
	_cleanup_free_ bool *dup = ytree_map_find_dups(v);
	for (size_t i = 0; i + 1 < v->n; i += 2) {
		const struct ynode *k = v->kids[i], *sv = v->kids[i + 1];
		if (k->type != Y_SCALAR)
			return ytree_error(c, k, path, "share names must be strings");
		if (!share_valid_name(k->str)) {
			_cleanup_free_ char *q = ytree_quote(k->str);
			return ytree_error(c, k, path,
					   "invalid share name '%s' (letters, digits, '-' and '_', at most %d)", q,
					   SHARE_NAME_MAX);
		}
		_cleanup_free_ char *sp = ytree_path_join(path, k->str);
		if (dup[i / 2])
			return ytree_error(c, k, sp, "duplicate key");
		s->shares = xrealloc(s->shares, (s->n_shares + 1) * sizeof(*s->shares));
		struct share *sh = &s->shares[s->n_shares++];
		*sh = (struct share){.name = xstrdup(k->str)};
		if (!ynode_is_null(sv)) {
			int r = ytree_parse_fields(c, sv, sp, share_fields, ARRAY_SIZE(share_fields), sh);
			if (r < 0)
				return r;
		}
		if (!sh->path)
			return ytree_error(c, sv, sp, "path is required");
		for (size_t j = 0; j + 1 < s->n_shares; j++)
			if (sh->mount && s->shares[j].mount && !strcmp(sh->mount, s->shares[j].mount))
				return ytree_error(c, ytree_map_get(sv, "mount"), sp,
						   "mount point '%s' is already used by share '%s'", sh->mount,
						   s->shares[j].name);
	}
	return 0;
}

/* home: true (the default per-VM dir), false, or a host PATH */
static int vm_home(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	struct vm_spec *s = obj;
	int r = ytree_want_scalar(c, v, path, "true, false or a host path");
	if (r < 0)
		return r;
	free(s->home_path);
	s->home_path = NULL;
	if (v->plain && (!strcmp(v->str, "true") || !strcmp(v->str, "false"))) {
		s->home = v->str[0] == 't' ? HOME_DEFAULT : HOME_OFF;
		return 0;
	}
	if (!v->str[0] || (v->str[0] != '/' && v->str[0] != '~')) {
		_cleanup_free_ char *q = ytree_quote(v->str);
		return ytree_error(c, v, path, "expected true, false or an absolute host path (or ~/...), got '%s'", q);
	}
	s->home = HOME_PATH;
	s->home_path = xstrdup(v->str);
	return 0;
}

/* cloud_init */

static int ci_packages(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	return ytree_strv(c, v, path, NULL, &((struct vm_spec *)obj)->ci_packages);
}

static int ci_runcmd(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	return ytree_strv(c, v, path, NULL, &((struct vm_spec *)obj)->ci_runcmd);
}

static const struct ytree_field cloud_init_fields[] = {
	{"packages", ci_packages},
	{"runcmd", ci_runcmd},
};

static int vm_cloud_init(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	return ytree_parse_fields(c, v, path, cloud_init_fields, ARRAY_SIZE(cloud_init_fields), obj);
}

/* auto_shutdown */

static int as_on_app_exit(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	return ytree_bool(c, v, path, &((struct vm_spec *)obj)->on_app_exit);
}

/* A whole number of seconds, as a number or a duration (90, 90s, 5m), at most max_s. */
static int want_seconds(struct ytree_ctx *c, const struct ynode *v, const char *path, uint64_t max_s, uint64_t *ret)
{
	uint64_t ms;
	int r = ytree_want_scalar(c, v, path, "seconds or a duration");
	if (r < 0)
		return r;
	r = parse_duration_ms(v->str, &ms);
	if (r < 0) {
		_cleanup_free_ char *q = ytree_quote(v->str);
		return ytree_error(c, v, path, "invalid duration '%s'", q);
	}
	if (ms % 1000)
		return ytree_error(c, v, path, "must be a whole number of seconds");
	if (ms / 1000 > max_s)
		return ytree_error(c, v, path, "must be at most %llu seconds", (unsigned long long)max_s);
	*ret = ms / 1000;
	return 0;
}

static int as_idle(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	return want_seconds(c, v, path, IDLE_MAX_S, &((struct vm_spec *)obj)->idle_s);
}

static const struct ytree_field auto_shutdown_fields[] = {
	{"on_app_exit", as_on_app_exit},
	{"idle", as_idle},
};

static int vm_auto_shutdown(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	return ytree_parse_fields(c, v, path, auto_shutdown_fields, ARRAY_SIZE(auto_shutdown_fields), obj);
}

static int vm_stop_timeout(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	uint64_t s;
	int r = want_seconds(c, v, path, STOP_TIMEOUT_MAX_S, &s);
	if (r < 0)
		return r;
	if (s == 0)
		return ytree_error(c, v, path, "must be at least 1 second");
	((struct vm_spec *)obj)->stop_timeout_s = s;
	return 0;
}

static const struct ytree_field vm_fields[] = {
	{"source", vm_source},
	{"kernel", vm_kernel},
	{"cmdline", vm_cmdline},
	{"memory", vm_memory},
	{"cpus", vm_cpus},
	{"disk", vm_disk},
	{"root_size", vm_root_size},
	{"firmware", vm_firmware},
	{"tpm", vm_tpm},
	{"accel", vm_accel},
	{"backend", vm_backend},
	{"uri", vm_uri},
	{"libvirt", spec_libvirt},
	{"network", vm_network},
	{"ssh", vm_ssh},
	{"shares", vm_shares},
	{"home", vm_home},
	{"cloud_init", vm_cloud_init},
	{"auto_shutdown", vm_auto_shutdown},
	{"disposable", vm_disposable},
	{"autostart", vm_autostart},
	{"color", spec_desktop_color},
	{"display", spec_desktop_display},
	{"sound", spec_desktop_sound},
	{"apps", spec_desktop_apps},
	{"clipboard", spec_desktop_clipboard},
	{"notifications", spec_desktop_notifications},
	{"stop_timeout", vm_stop_timeout},
	{"pci", spec_devices_pci},
	{"usb", spec_devices_usb},
	{"balloon", spec_devices_balloon},
};

static int parse_vm(struct ytree_ctx *c, const struct ynode *k, const struct ynode *v, struct vm_spec **ret)
{
	_cleanup_(spec_freep) struct vm_spec *s = spec_new(k->str);
	s->file = xstrdup(c->file);
	s->line = k->line;
	if (!ynode_is_null(v)) {
		if (v->type != Y_MAP)
			return ytree_type_error(c, v, k->str, "a mapping of settings");
		int r = ytree_parse_fields(c, v, "", vm_fields, ARRAY_SIZE(vm_fields), s);
		if (r < 0 || (r = spec_devices_check(c, s, v)) < 0)
			return r;
	}
	*ret = TAKE_PTR(s);
	return 0;
}

static int parse_root(struct ytree_ctx *c, const struct ynode *root, struct vm_spec ***ret_specs, size_t *ret_n)
{
	struct vm_spec **specs = xcalloc(1, sizeof(*specs));
	size_t n = 0;
	int r = 0;

	if (root && !ynode_is_null(root)) {
		if (root->type != Y_MAP) {
			r = hutch_error_set(c->err, EINVAL, "%s:%d: expected a mapping of VM names to settings",
					    c->file, root->line);
			goto fail;
		}
		_cleanup_free_ bool *dup = ytree_map_find_dups(root);
		for (size_t i = 0; i + 1 < root->n; i += 2) {
			const struct ynode *k = root->kids[i];
			if (k->type != Y_SCALAR) {
				r = hutch_error_set(c->err, EINVAL, "%s:%d: VM names must be strings", c->file,
						    k->line);
				goto fail;
			}
			if (!spec_valid_name(k->str) || dup[i / 2]) {
				_cleanup_free_ char *q = ytree_quote(k->str);
				r = hutch_error_set(c->err, EINVAL,
						    dup[i / 2] ? "%s:%d: duplicate VM name '%s'"
							       : "%s:%d: invalid VM name '%s' (lowercase letters, "
								 "digits and '-', at most 63, not starting with '-')",
						    c->file, k->line, q);
				goto fail;
			}
			specs = xrealloc(specs, (n + 2) * sizeof(*specs));
			specs[n + 1] = NULL;
			r = parse_vm(c, k, root->kids[i + 1], &specs[n]);
			if (r < 0)
				goto fail;
			n++;
		}
	}
	*ret_specs = specs;
	*ret_n = n;
	return 0;
fail:
	spec_free_all(specs, n);
	return r;
}

/* ---- public API ---- */

struct vm_spec *spec_new(const char *name)
{
	struct vm_spec *s = xcalloc(1, sizeof(*s));
	s->name = name ? xstrdup(name) : NULL;
	return s;
}

void spec_free(struct vm_spec *s)
{
	if (!s)
		return;
	free(s->name);
	free(s->file);
	free(s->template);
	free(s->image);
	free(s->checksum);
	free(s->oci);
	free(s->kernel);
	free(s->cmdline);
	free(s->backend);
	free(s->uri);
	strv_free(s->libvirt_snippets);
	free(s->netvm);
	strv_free(s->forward);
	free(s->ssh_user);
	free(s->ssh_key);
	for (size_t i = 0; i < s->n_shares; i++) {
		free(s->shares[i].name);
		free(s->shares[i].path);
		free(s->shares[i].mount);
	}
	free(s->shares);
	free(s->home_path);
	strv_free(s->ci_packages);
	strv_free(s->ci_runcmd);
	free(s->color);
	spec_desktop_free(&s->desk);
	spec_devices_free(s);
	free(s);
}

void spec_free_all(struct vm_spec **specs, size_t n)
{
	if (!specs)
		return;
	for (size_t i = 0; i < n; i++)
		spec_free(specs[i]);
	free(specs);
}

int spec_parse_buffer(const char *buf, size_t len, const char *filename, struct vm_spec ***ret_specs, size_t *ret_n,
		      struct hutch_error *err)
{
	const char *file = filename ? filename : "<input>";
	if (len > SPEC_MAX_FILE)
		return hutch_error_set(err, EFBIG, "%s: larger than the limit of %d bytes", file, SPEC_MAX_FILE);
	if (!buf) {
		if (len)
			return hutch_error_set(err, EINVAL, "%s: no input", file);
		buf = "";
	}

	_cleanup_(ynode_freep) struct ynode *root = NULL;
	int r = ytree_load(buf, len, file, &root, err);
	if (r < 0)
		return r;

	struct ytree_ctx c = {.file = file, .err = err};
	return parse_root(&c, root, ret_specs, ret_n);
}

int spec_parse_file(const char *path, struct vm_spec ***ret_specs, size_t *ret_n, struct hutch_error *err)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int r = read_file(path, SPEC_MAX_FILE, &buf, &len, err);
	if (r < 0)
		return r;
	return spec_parse_buffer(buf, len, path, ret_specs, ret_n, err);
}

int spec_find_in_file(const char *path, const char *name, struct vm_spec **ret, struct hutch_error *err)
{
	struct vm_spec **specs, *found = NULL;
	size_t n;
	int r = spec_parse_file(path, &specs, &n, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n && !found; i++)
		if (!strcmp(specs[i]->name, name))
			found = TAKE_PTR(specs[i]);
	spec_free_all(specs, n);
	if (!found) {
		_cleanup_free_ char *q = ytree_quote(name);
		return hutch_error_set(err, ENOENT, "%s: no VM named '%s'", path, q);
	}
	*ret = found;
	return 0;
}

void spec_apply_defaults(struct vm_spec *s)
{
	/* A distribution's cloud image with cloud-init wants a real machine; micro wants little. */
	bool image = s->source == SOURCE_IMAGE;
	if (!s->memory)
		s->memory = image ? 1024ull << 20 : MEMORY_DEFAULT;
	if (!s->cpus)
		s->cpus = image ? 2 : 1;
	if (s->source == SOURCE_TEMPLATE && !s->template)
		s->template = xstrdup("micro");
	if (s->source == SOURCE_IMAGE && s->firmware == FIRMWARE_DEFAULT)
		s->firmware = FIRMWARE_BIOS;
}

/* ---- rendering ---- */

/* One UTF-8 sequence -> code point; 0 when invalid (overlong, surrogate, truncated, > U+10FFFF). */
static size_t utf8_decode(const unsigned char *p, uint32_t *ret)
{
	static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
	size_t len;
	uint32_t cp;
	if (p[0] < 0x80)
		len = 1, cp = p[0];
	else if ((p[0] & 0xe0) == 0xc0)
		len = 2, cp = p[0] & 0x1f;
	else if ((p[0] & 0xf0) == 0xe0)
		len = 3, cp = p[0] & 0x0f;
	else if ((p[0] & 0xf8) == 0xf0)
		len = 4, cp = p[0] & 0x07;
	else
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0; /* also stops at the terminating NUL */
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*ret = cp;
	return len;
}

/* What libyaml reads back verbatim inside a one-line double-quoted scalar. Line separators
 * (U+0085, U+2028, U+2029) and the BOM would be folded or dropped, so they are escaped. */
static bool yaml_raw_ok(uint32_t cp)
{
	if (cp >= 0x20 && cp <= 0x7e)
		return cp != '"' && cp != '\\';
	if (cp == 0x2028 || cp == 0x2029 || cp == 0xfeff)
		return false;
	return (cp >= 0xa0 && cp <= 0xd7ff) || (cp >= 0xe000 && cp <= 0xfffd) || (cp >= 0x10000 && cp <= 0x10ffff);
}

static void render_quoted(struct strbuf *sb, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	strbuf_addch(sb, '"');
	while (*p) {
		uint32_t cp;
		size_t len = utf8_decode(p, &cp);
		if (len == 0) {
			/* Not UTF-8 (a spec built in code): keep the output parseable. */
			strbuf_addf(sb, "\\x%02x", *p++);
			continue;
		}
		if (yaml_raw_ok(cp))
			strbuf_add(sb, p, len);
		else if (cp == '"' || cp == '\\')
			strbuf_addf(sb, "\\%c", (char)cp);
		else if (cp == '\n')
			strbuf_adds(sb, "\\n");
		else if (cp == '\t')
			strbuf_adds(sb, "\\t");
		else if (cp < 0x100)
			strbuf_addf(sb, "\\x%02x", (unsigned)cp);
		else if (cp < 0x10000)
			strbuf_addf(sb, "\\u%04x", (unsigned)cp);
		else
			strbuf_addf(sb, "\\U%08x", (unsigned)cp);
		p += len;
	}
	strbuf_addch(sb, '"');
}

static void render_key(struct strbuf *sb, int indent, const char *key, bool valid)
{
	strbuf_addf(sb, "%*s", indent, "");
	if (valid)
		strbuf_adds(sb, key);
	else
		render_quoted(sb, key ? key : "");
	strbuf_addch(sb, ':');
}

static void render_str(struct strbuf *sb, int indent, const char *key, const char *val)
{
	if (!val)
		return;
	render_key(sb, indent, key, true);
	strbuf_addch(sb, ' ');
	render_quoted(sb, val);
	strbuf_addch(sb, '\n');
}

static void render_strv(struct strbuf *sb, int indent, const char *key, char *const *v)
{
	if (!v || !v[0])
		return;
	render_key(sb, indent, key, true);
	strbuf_addch(sb, '\n');
	for (; *v; v++) {
		strbuf_addf(sb, "%*s- ", indent + 2, "");
		render_quoted(sb, *v);
		strbuf_addch(sb, '\n');
	}
}

static void render_size(struct strbuf *sb, int indent, const char *key, uint64_t v)
{
	static const char suffix[] = "KMGT";
	int u = -1;
	if (!v)
		return;
	while (u < 3 && v % 1024 == 0) {
		v /= 1024;
		u++;
	}
	strbuf_addf(sb, "%*s%s: %llu", indent, "", key, (unsigned long long)v);
	if (u >= 0)
		strbuf_addch(sb, suffix[u]);
	strbuf_addch(sb, '\n');
}

static void render_true(struct strbuf *sb, int indent, const char *key, bool v)
{
	if (v)
		strbuf_addf(sb, "%*s%s: true\n", indent, "", key);
}

static void render_source(struct strbuf *sb, const struct vm_spec *s)
{
	if (s->source == SOURCE_IMAGE) {
		strbuf_adds(sb, "  source:\n");
		render_str(sb, 4, "image", s->image ? s->image : "");
		render_str(sb, 4, "checksum", s->checksum);
	} else if (s->source == SOURCE_OCI) {
		strbuf_adds(sb, "  source:\n");
		render_str(sb, 4, "oci", s->oci ? s->oci : "");
	} else if (s->template) {
		strbuf_adds(sb, "  source:\n");
		render_str(sb, 4, "template", s->template);
	}
}

static void render_network(struct strbuf *sb, const struct vm_spec *s)
{
	if (s->net_mode == NET_USER && (!s->forward || !s->forward[0]) && !s->is_netvm && !s->auto_forward)
		return;
	strbuf_adds(sb, "  network:\n    mode: ");
	render_quoted(sb, s->net_mode == NET_NONE ? "none" : s->net_mode == NET_NETVM ? "netvm" : "user");
	strbuf_addch(sb, '\n');
	if (s->net_mode == NET_NETVM)
		render_str(sb, 4, "netvm", s->netvm ? s->netvm : "");
	render_true(sb, 4, "is_netvm", s->is_netvm);
	if (s->netvm_subnet)
		strbuf_addf(sb, "    netvm_subnet: %u.%u.%u.%u/31\n", s->netvm_subnet >> 24,
			    (s->netvm_subnet >> 16) & 255, (s->netvm_subnet >> 8) & 255, s->netvm_subnet & 255);
	render_true(sb, 4, "auto_forward", s->auto_forward);
	render_strv(sb, 4, "forward", s->forward);
}

static void render_shares(struct strbuf *sb, const struct vm_spec *s)
{
	if (s->n_shares)
		strbuf_adds(sb, "  shares:\n");
	for (size_t i = 0; i < s->n_shares; i++) {
		const struct share *sh = &s->shares[i];
		render_key(sb, 4, sh->name, sh->name && share_valid_name(sh->name));
		strbuf_addch(sb, '\n');
		render_str(sb, 6, "path", sh->path);
		render_str(sb, 6, "mount", sh->mount);
		render_true(sb, 6, "readonly", sh->readonly);
		if (sh->via == SHARE_9P || sh->via == SHARE_VIRTIOFS)
			strbuf_addf(sb, "      via: %s\n", sh->via == SHARE_9P ? "9p" : "virtiofs");
	}
	if (s->home == HOME_DEFAULT)
		strbuf_adds(sb, "  home: true\n");
	else if (s->home == HOME_PATH)
		render_str(sb, 2, "home", s->home_path ? s->home_path : "");
}

char *spec_render_yaml(const struct vm_spec *s)
{
	struct strbuf sb = STRBUF_INIT;
	static const char *const firmware[] = {NULL, "bios", "uefi", "uefi-secure"};

	render_key(&sb, 0, s->name, spec_valid_name(s->name));
	strbuf_addch(&sb, '\n');
	render_source(&sb, s);
	render_str(&sb, 2, "kernel", s->kernel);
	render_str(&sb, 2, "cmdline", s->cmdline);
	render_size(&sb, 2, "memory", s->memory);
	if (s->cpus)
		strbuf_addf(&sb, "  cpus: %u\n", s->cpus);
	render_size(&sb, 2, "disk", s->disk);
	render_size(&sb, 2, "root_size", s->root_size);
	if (s->firmware > FIRMWARE_DEFAULT && s->firmware <= FIRMWARE_UEFI_SECURE)
		strbuf_addf(&sb, "  firmware: %s\n", firmware[s->firmware]);
	render_true(&sb, 2, "tpm", s->tpm);
	if (s->accel != ACCEL_UNSET)
		strbuf_addf(&sb, "  accel: %s\n", accel_mode_name(s->accel));
	render_str(&sb, 2, "backend", s->backend);
	render_str(&sb, 2, "uri", s->uri);
	if (s->libvirt_snippets) {
		strbuf_adds(&sb, "  libvirt:\n");
		render_strv(&sb, 4, "snippets", s->libvirt_snippets);
	}
	render_network(&sb, s);
	if (s->ssh_user || s->ssh_key || s->ssh_port) {
		strbuf_adds(&sb, "  ssh:\n");
		render_str(&sb, 4, "user", s->ssh_user);
		render_str(&sb, 4, "key", s->ssh_key);
		if (s->ssh_port)
			strbuf_addf(&sb, "    port: %d\n", s->ssh_port);
	}
	render_shares(&sb, s);
	if ((s->ci_packages && s->ci_packages[0]) || (s->ci_runcmd && s->ci_runcmd[0])) {
		strbuf_adds(&sb, "  cloud_init:\n");
		render_strv(&sb, 4, "packages", s->ci_packages);
		render_strv(&sb, 4, "runcmd", s->ci_runcmd);
	}
	if (s->on_app_exit || s->idle_s) {
		strbuf_adds(&sb, "  auto_shutdown:\n");
		render_true(&sb, 4, "on_app_exit", s->on_app_exit);
		if (s->idle_s)
			strbuf_addf(&sb, "    idle: %llu\n", (unsigned long long)s->idle_s);
	}
	if (s->stop_timeout_s)
		strbuf_addf(&sb, "  stop_timeout: %llu\n", (unsigned long long)s->stop_timeout_s);
	render_true(&sb, 2, "disposable", s->disposable);
	render_true(&sb, 2, "autostart", s->autostart);
	render_str(&sb, 2, "color", s->color);
	spec_desktop_render(&sb, &s->desk);
	spec_devices_render(&sb, s);
	return strbuf_detach(&sb, NULL);
}

/* ---- comparison ---- */

static bool str_eq(const char *a, const char *b) { return a == b || (a && b && !strcmp(a, b)); }

static bool strv_eq(char *const *a, char *const *b)
{
	size_t n = strv_len(a);
	if (n != strv_len(b))
		return false;
	for (size_t i = 0; i < n; i++)
		if (strcmp(a[i], b[i]))
			return false;
	return true;
}

bool spec_equal(const struct vm_spec *a, const struct vm_spec *b)
{
	if (a == b)
		return true;
	if (!a || !b)
		return false;
	if (!str_eq(a->name, b->name) || a->source != b->source || !str_eq(a->template, b->template) ||
	    !str_eq(a->image, b->image) || !str_eq(a->checksum, b->checksum) || !str_eq(a->oci, b->oci) ||
	    !str_eq(a->kernel, b->kernel) || !str_eq(a->cmdline, b->cmdline) || a->memory != b->memory ||
	    a->cpus != b->cpus || a->disk != b->disk || a->root_size != b->root_size || a->firmware != b->firmware ||
	    a->tpm != b->tpm || a->accel != b->accel || !str_eq(a->backend, b->backend) || !str_eq(a->uri, b->uri) ||
	    !strv_eq(a->libvirt_snippets, b->libvirt_snippets) || a->net_mode != b->net_mode ||
	    !str_eq(a->netvm, b->netvm) || a->is_netvm != b->is_netvm || a->netvm_subnet != b->netvm_subnet ||
	    a->auto_forward != b->auto_forward || !strv_eq(a->forward, b->forward) ||
	    !str_eq(a->ssh_user, b->ssh_user) || !str_eq(a->ssh_key, b->ssh_key) || a->ssh_port != b->ssh_port ||
	    !strv_eq(a->ci_packages, b->ci_packages) || !strv_eq(a->ci_runcmd, b->ci_runcmd) ||
	    a->on_app_exit != b->on_app_exit || a->idle_s != b->idle_s || a->stop_timeout_s != b->stop_timeout_s ||
	    a->disposable != b->disposable || a->autostart != b->autostart || !str_eq(a->color, b->color) ||
	    !spec_desktop_equal(&a->desk, &b->desk) || a->n_shares != b->n_shares || a->home != b->home ||
	    !str_eq(a->home_path, b->home_path) || !spec_devices_equal(a, b))
		return false;
	for (size_t i = 0; i < a->n_shares; i++) {
		const struct share *x = &a->shares[i], *y = &b->shares[i];
		if (!str_eq(x->name, y->name) || !str_eq(x->path, y->path) || !str_eq(x->mount, y->mount) ||
		    x->readonly != y->readonly || x->via != y->via)
			return false;
	}
	return true;
}
