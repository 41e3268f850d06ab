/* netvm links: the address plan, the checks at create, and what the guests are told. */
#include "netvm.h"

#include "config.h"

#include <stdio.h>
#include <string.h>

int net_parse_cidr(const char *s, uint32_t *ret_addr, unsigned *ret_prefix)
{
	unsigned a, b, c, d, prefix;
	char tail;
	if (!s || strspn(s, "0123456789./") != strlen(s) ||
	    sscanf(s, "%3u.%3u.%3u.%3u/%2u%c", &a, &b, &c, &d, &prefix, &tail) != 5 || a > 255 || b > 255 || c > 255 ||
	    d > 255 || prefix > 32)
		return -EINVAL;
	*ret_addr = (uint32_t)a << 24 | (uint32_t)b << 16 | (uint32_t)c << 8 | d;
	*ret_prefix = prefix;
	return 0;
}

const char *net_addr_str(uint32_t addr, char buf[16])
{
	snprintf(buf, 16, "%u.%u.%u.%u", addr >> 24, (addr >> 16) & 255, (addr >> 8) & 255, addr & 255);
	return buf;
}

const char *net_mac(uint32_t addr, char buf[18])
{
	snprintf(buf, 18, "02:68:%02x:%02x:%02x:%02x", addr >> 24, (addr >> 16) & 255, (addr >> 8) & 255, addr & 255);
	return buf;
}

/* FNV-1a, 64 bits: stable across hosts and releases, which the addresses must be. */
static uint64_t fnv1a(uint64_t h, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

uint32_t net_link_hash_subnet(uint32_t range, unsigned prefix, const char *netvm, const char *client)
{
	uint64_t h = fnv1a(0xcbf29ce484222325ULL, netvm, strlen(netvm) + 1); /* with the NUL: a pair, not a string */
	h = fnv1a(h, client, strlen(client));
	uint32_t slots = 1u << (31 - prefix); /* /31s in the range */
	return range + 2 * (uint32_t)(h % slots);
}

const char *net_ifname(const char *client, char buf[16])
{
	size_t n = strlen(client);
	if (n <= NETVM_IFNAME_MAX) {
		memcpy(buf, client, n + 1);
		return buf;
	}
	uint64_t h = fnv1a(0xcbf29ce484222325ULL, client, n);
	snprintf(buf, 16, "%.11s%04x", client, (unsigned)(h & 0xffff));
	return buf;
}

static void link_release(struct net_link *l)
{
	free(l->netvm);
	free(l->client);
	free(l->sock);
	memset(l, 0, sizeof(*l));
}

void net_links_free(struct net_link *l, size_t n)
{
	for (size_t i = 0; i < n; i++)
		link_release(&l[i]);
	free(l);
}

void net_plan_release(struct net_plan *p)
{
	link_release(&p->up);
	net_links_free(p->down, p->n_down);
	memset(p, 0, sizeof(*p));
}

static int load_range(struct store *st, uint32_t *ret_range, unsigned *ret_prefix, struct hutch_error *err)
{
	struct hutch_config cfg;
	int r = config_load(st, &cfg, err);
	if (r < 0)
		return r;
	r = net_parse_cidr(cfg.netvm_range ? cfg.netvm_range : NETVM_RANGE_DEFAULT, ret_range, ret_prefix);
	config_release(&cfg);
	return r < 0 ? hutch_error_set(err, EINVAL, "config.yml: netvm_range: not an IPv4 network") : 0;
}

static struct vm_spec *load_stored(struct store *st, const char *name)
{
	_cleanup_free_ char *path = store_vm_file(st, name, "spec.yml");
	struct vm_spec *s = NULL;
	if (spec_find_in_file(path, name, &s, NULL) < 0)
		return NULL;
	return s;
}

static int cmp_link(const void *a, const void *b)
{
	const struct net_link *x = a, *y = b;
	int c = strcmp(x->netvm, y->netvm);
	return c ? c : strcmp(x->client, y->client);
}

static void link_fill(struct store *st, struct net_link *l, const struct vm_spec *client, uint32_t range,
		      unsigned prefix)
{
	l->netvm = xstrdup(client->netvm);
	l->client = xstrdup(client->name);
	l->pinned = client->netvm_subnet != 0;
	l->subnet = l->pinned ? client->netvm_subnet : net_link_hash_subnet(range, prefix, client->netvm, client->name);
	/* short and fixed: a client name of 63 bytes would not fit sun_path */
	uint64_t h = fnv1a(0xcbf29ce484222325ULL, client->name, strlen(client->name));
	_cleanup_free_ char *file = xasprintf("net-%08x.sock", (unsigned)(h & 0xffffffffu));
	l->sock = store_run_file(st, client->netvm, file);
}

int net_links_all(struct store *st, const struct vm_spec *extra, struct net_link **ret, size_t *ret_n,
		  struct hutch_error *err)
{
	uint32_t range;
	unsigned prefix;
	int r = load_range(st, &range, &prefix, err);
	if (r < 0)
		return r;
	char **names = NULL;
	r = store_list(st, &names, err);
	if (r < 0)
		return r;
	struct net_link *links = NULL;
	size_t n = 0;
	for (size_t i = 0; names && names[i]; i++) {
		if (extra && !strcmp(names[i], extra->name))
			continue;
		_cleanup_(spec_freep) struct vm_spec *s = load_stored(st, names[i]);
		if (!s || s->net_mode != NET_NETVM || !s->netvm)
			continue;
		links = xrealloc(links, (n + 1) * sizeof(*links));
		memset(&links[n], 0, sizeof(*links));
		link_fill(st, &links[n++], s, range, prefix);
	}
	strv_free(names);
	if (extra && extra->net_mode == NET_NETVM && extra->netvm) {
		links = xrealloc(links, (n + 1) * sizeof(*links));
		memset(&links[n], 0, sizeof(*links));
		link_fill(st, &links[n++], extra, range, prefix);
	}
	if (n)
		qsort(links, n, sizeof(*links), cmp_link);
	uint32_t mask = prefix ? ~((1u << (32 - prefix)) - 1) : 0;
	for (size_t i = 0; i < n; i++) {
		char a[16];
		if (!links[i].pinned && (links[i].subnet & mask) != range) {
			r = hutch_error_set(err, EINVAL, "link '%s' -> '%s': %s/31 is outside netvm_range",
					    links[i].client, links[i].netvm, net_addr_str(links[i].subnet, a));
			goto fail;
		}
		for (size_t j = i + 1; j < n; j++)
			if (links[i].subnet == links[j].subnet) {
				r = hutch_error_set(err, EADDRINUSE,
						    "links '%s' -> '%s' and '%s' -> '%s' both get %s/31: pin one with "
						    "network: {netvm_subnet: A.B.C.D/31}",
						    links[i].client, links[i].netvm, links[j].client, links[j].netvm,
						    net_addr_str(links[i].subnet, a));
				goto fail;
			}
	}
	*ret = links;
	*ret_n = n;
	return 0;
fail:
	net_links_free(links, n);
	return r;
}

static void link_copy(struct net_link *dst, const struct net_link *src)
{
	*dst = *src;
	dst->netvm = xstrdup(src->netvm);
	dst->client = xstrdup(src->client);
	dst->sock = xstrdup(src->sock);
}

int net_plan_make(struct store *st, const struct vm_spec *spec, struct net_plan *ret, struct hutch_error *err)
{
	memset(ret, 0, sizeof(*ret));
	if (spec->net_mode != NET_NETVM && !spec->is_netvm)
		return 0;
	struct net_link *links = NULL;
	size_t n = 0;
	int r = net_links_all(st, spec, &links, &n, err);
	if (r < 0)
		return r;
	struct net_plan p = {0};
	for (size_t i = 0; i < n; i++) {
		if (spec->net_mode == NET_NETVM && !strcmp(links[i].client, spec->name)) {
			link_copy(&p.up, &links[i]);
			p.has_up = true;
		}
		if (spec->is_netvm && !strcmp(links[i].netvm, spec->name)) {
			if (p.n_down == NETVM_MAX_CLIENTS) {
				r = hutch_error_set(err, E2BIG, "netvm '%s' has more than %d clients", spec->name,
						    NETVM_MAX_CLIENTS);
				break;
			}
			p.down = xrealloc(p.down, (p.n_down + 1) * sizeof(*p.down));
			link_copy(&p.down[p.n_down++], &links[i]);
		}
	}
	net_links_free(links, n);
	/* two clients whose names cut to the same interface name would be one interface in the netvm */
	for (size_t i = 0; r == 0 && i < p.n_down; i++)
		for (size_t j = i + 1; j < p.n_down; j++) {
			char a[16], b[16];
			if (!strcmp(net_ifname(p.down[i].client, a), net_ifname(p.down[j].client, b)))
				r = hutch_error_set(err, EEXIST,
						    "clients '%s' and '%s' of netvm '%s' get one interface name",
						    p.down[i].client, p.down[j].client, spec->name);
		}
	if (r < 0) {
		net_plan_release(&p);
		return r;
	}
	*ret = p;
	return 0;
}

int net_check_create(struct store *st, const struct vm_spec *spec, struct hutch_error *err)
{
	if (spec->net_mode != NET_NETVM)
		return 0;
	if (!strcmp(spec->netvm, spec->name))
		return hutch_error_set(err, ELOOP, "network: netvm: '%s' is the VM itself", spec->name);
	/* follow the chain: every netvm on it must exist and route, and none may lead back here */
	_cleanup_free_ char *cur = xstrdup(spec->netvm);
	for (int hops = 0; cur; hops++) {
		_cleanup_(spec_freep) struct vm_spec *n = store_vm_exists(st, cur) ? load_stored(st, cur) : NULL;
		if (!n)
			return hutch_error_set(err, ENOENT,
					       hops ? "netvm '%s' (on the way from '%s') does not exist"
						    : "netvm '%s' does not exist (create it first, with network: "
						      "{is_netvm: true}) for '%s'",
					       cur, spec->name);
		if (!n->is_netvm)
			return hutch_error_set(err, EINVAL,
					       "'%s' is not a netvm: its spec needs network: {is_netvm: true} to route "
					       "for '%s'",
					       cur, hops ? "its clients" : spec->name);
		if (n->net_mode != NET_NETVM)
			break;
		if (!strcmp(n->netvm, spec->name) || hops > 64)
			return hutch_error_set(err, ELOOP,
					       "netvm cycle: '%s' -> '%s' -> ... -> '%s' leads back to '%s'",
					       spec->name, spec->netvm, n->netvm, spec->name);
		free(cur);
		cur = xstrdup(n->netvm);
	}
	struct net_link *links = NULL;
	size_t n = 0;
	int r = net_links_all(st, spec, &links, &n, err);
	if (r == 0)
		net_links_free(links, n);
	return r;
}

char *net_cmdline(const struct vm_spec *spec, const struct net_plan *p)
{
	struct strbuf sb = STRBUF_INIT;
	char a[16], ifn[16];
	if (p->has_up)
		strbuf_addf(&sb, " hutch.netup=%s", net_addr_str(p->up.subnet, a));
	if (spec->is_netvm) {
		strbuf_adds(&sb, " hutch.netvm=1");
		for (size_t i = 0; i < p->n_down; i++)
			strbuf_addf(&sb, "%s%s:%s", i ? "," : " hutch.netdown=", net_ifname(p->down[i].client, ifn),
				    net_addr_str(p->down[i].subnet + 1, a));
	}
	if (!sb.len)
		return NULL;
	return strbuf_detach(&sb, NULL);
}

/* QEMU's option syntax reads ',,' as a literal comma. */
static char *opt_escape(const char *s)
{
	struct strbuf sb = STRBUF_INIT;
	for (; s && *s; s++) {
		if (*s == ',')
			strbuf_addch(&sb, ',');
		strbuf_addch(&sb, *s);
	}
	return strbuf_detach(&sb, NULL);
}

char **net_qemu_args(char **argv, const struct net_plan *p, const char *bus)
{
	char mac[18];
	if (p->has_up) {
		/* The NIC hangs on a hub. The monitor joins the hub to the netvm's socket over QMP (a
		 * stream netdev plus a hub port) and joins it again after the netvm restarts: QEMU 7.2's
		 * stream client never reconnects, and a NIC cannot change netdev, but a hub port can. */
		argv = strv_push(argv, xstrdup("-netdev"));
		argv = strv_push(argv, xstrdup("hubport,id=" NET_UP_NIC_ID ",hubid=0"));
		argv = strv_push(argv, xstrdup("-device"));
		argv = strv_push(argv, xasprintf("virtio-net-%s,netdev=" NET_UP_NIC_ID ",mac=%s", bus,
						 net_mac(p->up.subnet, mac)));
	}
	for (size_t i = 0; i < p->n_down; i++) {
		/* the netvm listens; a stream server listens again after its client goes */
		_cleanup_free_ char *sock = opt_escape(p->down[i].sock);
		argv = strv_push(argv, xstrdup("-netdev"));
		argv = strv_push(argv, xasprintf("stream,id=down%zu,server=on,addr.type=unix,addr.path=%s", i, sock));
		argv = strv_push(argv, xstrdup("-device"));
		argv = strv_push(argv, xasprintf("virtio-net-%s,netdev=down%zu,mac=%s", bus, i,
						 net_mac(p->down[i].subnet + 1, mac)));
	}
	return argv;
}
