/* Rootless VM-to-VM networks: a client VM's NIC and its netvm's NIC for that client are joined by
 * QEMU's -netdev stream over a unix socket in the netvm's runtime dir (the netvm listens). Each link
 * gets a /31 from config.yml's netvm_range, by hashing the pair (netvm, client), or the client's
 * network.netvm_subnet. The client has the even address, the netvm the odd one. */
#pragma once
#include "backend.h"
#include "spec.h"
#include "store.h"
#include "util.h"

#define NETVM_RANGE_DEFAULT "10.200.0.0/16"
#define NETVM_MAX_CLIENTS 32 /* links per netvm: each is a NIC and a kernel command line entry */
#define NETVM_IFNAME_MAX 15  /* IFNAMSIZ - 1 */

/* "A.B.C.D/N" -> address (host order) and prefix. -EINVAL on anything else. */
int net_parse_cidr(const char *s, uint32_t *ret_addr, unsigned *ret_prefix);
/* "A.B.C.D" of a host-order address into buf[16]. */
const char *net_addr_str(uint32_t addr, char buf[16]);
/* The /31 a pair hashes to within range/prefix (prefix at most 30): its even address. */
uint32_t net_link_hash_subnet(uint32_t range, unsigned prefix, const char *netvm, const char *client);
/* The netvm's interface name for a client: the client's name, cut to 15 bytes; a cut name gets
 * the last 4 bytes replaced by a hash of the full name so two long names stay apart. buf[16]. */
const char *net_ifname(const char *client, char buf[16]);

struct net_link {
	char *netvm, *client;
	uint32_t subnet; /* even: the client's address; subnet + 1 is the netvm's */
	bool pinned;	 /* from netvm_subnet */
	char *sock;	 /* the netvm's listening socket for this client */
};
/* A MAC that carries the address: 02:68:A:B:C:D, unique wherever the addresses are. buf[18]. */
const char *net_mac(uint32_t addr, char buf[18]);

/* What one VM's QEMU and guest need. */
struct net_plan {
	bool has_up;	       /* a client: up is its link to its netvm */
	struct net_link up;    /* in the client's QEMU: a hub port the monitor joins to up.sock */
	struct net_link *down; /* is_netvm: a listening NIC per client, sorted by client name */
	size_t n_down;
};
void net_plan_release(struct net_plan *p);
/* Every link among the defined VMs (plus extra, a spec not yet stored) with its subnet. Two links
 * with one /31, or a link outside the range, are errors naming both pairs. */
int net_links_all(struct store *st, const struct vm_spec *extra, struct net_link **ret, size_t *ret_n,
		  struct hutch_error *err);
void net_links_free(struct net_link *l, size_t n);
/* The plan for a defined VM (links of which it is either end). */
int net_plan_make(struct store *st, const struct vm_spec *spec, struct net_plan *ret, struct hutch_error *err);
/* At create: the netvm exists, has is_netvm, and the chain of netvms does not come back to spec;
 * the new link collides with no other. */
int net_check_create(struct store *st, const struct vm_spec *spec, struct hutch_error *err);
/* The NIC id of a client's link, and the ids the monitor gives the netdev and hub port it adds. */
#define NET_UP_NIC_ID "up0"
#define NET_UP_STREAM_ID "upstream0"
#define NET_UP_PORT_ID "upport0"
/* argv plus the link NICs (bus: "device" on microvm, "pci" on q35). */
char **net_qemu_args(char **argv, const struct net_plan *p, const char *bus);
/* Kernel command line words for a micro guest: hutch.netup=ADDR (the client side), hutch.netvm=1 and
 * hutch.netdown=IF:ADDR,... (the netvm side). NULL when there is nothing. */
char *net_cmdline(const struct vm_spec *spec, const struct net_plan *p);
/* Before a client starts: its netvm runs (started here first, waited for as o says) and has a
 * link for it. */
int net_start_netvm(struct store *st, const struct vm_spec *spec, const struct start_opts *o, struct hutch_error *err);
/* Every link: [{netvm, client, subnet, pinned, client_addr, netvm_addr, netvm_ifname, netvm_end,
 * client_end}], an end being up, connecting, down, stopped (its VM is not running) or absent (its
 * VM runs without the link: started before the link existed). */
#include <json-c/json.h>
int net_ls(struct store *st, json_object **ret, struct hutch_error *err);
/* A running VM's guest-side link set-up, for inspect: {"guest": pending|done|failed|no answer,
 * "error"}; NULL when it is not running or has no links. */
json_object *net_inspect(struct store *st, const char *name);
