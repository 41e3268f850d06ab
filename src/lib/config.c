/* config.yml, read with the same YAML tree and typed getters as specs. */
#include "config.h"

#include "netvm.h"
#include "ytree.h"

#include <string.h>

static int cfg_accel(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	int r = ytree_want_scalar(c, v, path, "auto, kvm or tcg");
	if (r < 0)
		return r;
	if (accel_mode_parse(v->str, &((struct hutch_config *)obj)->accel) < 0)
		return ytree_type_error(c, v, path, "auto, kvm or tcg");
	return 0;
}

static int cfg_backend(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	int r = ytree_want_scalar(c, v, path, "qemu or libvirt");
	if (r < 0)
		return r;
	if (strcmp(v->str, "qemu") && strcmp(v->str, "libvirt"))
		return ytree_type_error(c, v, path, "qemu or libvirt");
	return ytree_str(c, v, path, false, &((struct hutch_config *)obj)->backend);
}

static int cfg_libvirt_uri(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	return ytree_str(c, v, path, false, &((struct hutch_config *)obj)->libvirt_uri);
}

static const struct ytree_field libvirt_fields[] = {
	{"uri", cfg_libvirt_uri},
};

static int cfg_libvirt(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	return ytree_parse_fields(c, v, path, libvirt_fields, ARRAY_SIZE(libvirt_fields), obj);
}

static int cfg_netvm_range(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	int r = ytree_want_scalar(c, v, path, "A.B.C.D/N");
	if (r < 0)
		return r;
	uint32_t addr;
	unsigned prefix;
	if (net_parse_cidr(v->str, &addr, &prefix) < 0 || prefix < 8 || prefix > 30 ||
	    (prefix && (addr & ((1u << (32 - prefix)) - 1)))) {
		_cleanup_free_ char *q = ytree_quote(v->str);
		return ytree_error(c, v, path, "expected an IPv4 network from /8 to /30 like 10.200.0.0/16, got '%s'",
				   q);
	}
	return ytree_str(c, v, path, false, &((struct hutch_config *)obj)->netvm_range);
}

static int cfg_auto_forward_max(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	return ytree_ll(c, v, path, 1, 1024, &((struct hutch_config *)obj)->auto_forward_max);
}

/* balloon: the policy's knobs (balloon_policy.h), named as vmsilo-balloond names them */
static int bk_duration(struct ytree_ctx *c, const struct ynode *v, const char *path, uint64_t *ret)
{
	int r = ytree_want_scalar(c, v, path, "a duration");
	if (r < 0)
		return r;
	if (parse_duration_ms(v->str, ret) < 0 || *ret < 50 || *ret > 600000)
		return ytree_error(c, v, path, "expected a duration between 50ms and 10m");
	return 0;
}

static int bk_poll(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	return bk_duration(c, v, path, &((struct balloon_knobs *)obj)->poll_ms);
}

static int bk_min_poll(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	return bk_duration(c, v, path, &((struct balloon_knobs *)obj)->min_poll_ms);
}

static int bk_psi_ceiling(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	long long n;
	int r = ytree_ll(c, v, path, 1, 100, &n);
	if (r == 0)
		((struct balloon_knobs *)obj)->psi_ceiling = (unsigned)n;
	return r;
}

static int bk_host_percent(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	long long n;
	int r = ytree_ll(c, v, path, 0, 50, &n);
	if (r == 0)
		((struct balloon_knobs *)obj)->critical_host_percent = (unsigned)n;
	return r;
}

static int bk_guest_critical(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	return ytree_size(c, v, path, &((struct balloon_knobs *)obj)->critical_guest_available);
}

static int bk_guest_bias(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	return ytree_size(c, v, path, &((struct balloon_knobs *)obj)->guest_available_bias);
}

static const struct ytree_field balloon_fields[] = {
	{"poll_interval", bk_poll},
	{"min_poll_interval", bk_min_poll},
	{"psi_ceiling", bk_psi_ceiling},
	{"critical_host_percent", bk_host_percent},
	{"critical_guest_available", bk_guest_critical},
	{"guest_available_bias", bk_guest_bias},
};

static int cfg_balloon(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	struct balloon_knobs *k = &((struct hutch_config *)obj)->balloon;
	int r = ytree_parse_fields(c, v, path, balloon_fields, ARRAY_SIZE(balloon_fields), k);
	if (r == 0 && k->min_poll_ms > k->poll_ms)
		return ytree_error(c, v, path, "min_poll_interval must not exceed poll_interval");
	return r;
}

static const struct ytree_field config_fields[] = {
	{"accel", cfg_accel},
	{"backend", cfg_backend},
	{"libvirt", cfg_libvirt},
	{"netvm_range", cfg_netvm_range},
	{"auto_forward_max", cfg_auto_forward_max},
	{"balloon", cfg_balloon},
};

void config_release(struct hutch_config *c)
{
	free(c->backend);
	free(c->libvirt_uri);
	free(c->netvm_range);
	memset(c, 0, sizeof(*c));
}

int config_parse_buffer(const char *buf, size_t len, const char *filename, struct hutch_config *ret,
			struct hutch_error *err)
{
	const char *file = filename ? filename : "<config>";
	if (len > CONFIG_MAX_FILE)
		return hutch_error_set(err, EFBIG, "%s: larger than the limit of %d bytes", file, CONFIG_MAX_FILE);
	_cleanup_(ynode_freep) struct ynode *root = NULL;
	int r = ytree_load(buf ? buf : "", buf ? len : 0, file, &root, err);
	if (r < 0)
		return r;
	struct hutch_config c;
	memset(&c, 0, sizeof(c));
	balloon_knobs_default(&c.balloon);
	if (root && !ynode_is_null(root)) {
		struct ytree_ctx ctx = {.file = file, .err = err};
		r = ytree_parse_fields(&ctx, root, "", config_fields, ARRAY_SIZE(config_fields), &c);
		if (r < 0) {
			config_release(&c);
			return r;
		}
	}
	*ret = c;
	return 0;
}

int config_load(const struct store *st, struct hutch_config *ret, struct hutch_error *err)
{
	_cleanup_free_ char *path = xasprintf("%s/config.yml", st->config_dir);
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	int r = read_file(path, CONFIG_MAX_FILE, &buf, &len, err);
	if (r == -ENOENT) {
		hutch_error_clear(err);
		memset(ret, 0, sizeof(*ret));
		balloon_knobs_default(&ret->balloon);
		return 0;
	}
	if (r < 0)
		return r;
	return config_parse_buffer(buf, len, path, ret, err);
}

int config_accel_mode(const struct store *st, enum accel_mode spec_accel, enum accel_mode *ret, struct hutch_error *err)
{
	if (spec_accel != ACCEL_UNSET) {
		*ret = spec_accel;
		return 0;
	}
	const char *env = getenv("HUTCH_ACCEL");
	if (env && *env) {
		if (accel_mode_parse(env, ret) < 0)
			return hutch_error_set(err, EINVAL, "HUTCH_ACCEL='%s': expected auto, kvm or tcg", env);
		return 0;
	}
	struct hutch_config c;
	int r = config_load(st, &c, err);
	if (r < 0)
		return r;
	*ret = c.accel == ACCEL_UNSET ? ACCEL_AUTO : c.accel;
	config_release(&c);
	return 0;
}
