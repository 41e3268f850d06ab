#include "cmd.h"
#include "netvm.h"

#include <string.h>

/* hutch net ls: the netvm links, their addresses, and which ends are up. */
static const struct opt net_opts[] = {
	OPT_JSON(),
	OPT_END(),
};

static int net_ls_cmd(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	json_object *links = NULL;
	if (net_ls(&c->store, &links, &c->err) < 0)
		return EXIT_ERR;
	if (c->json) {
		json_object *out = json_object_new_object();
		json_object_object_add(out, "links", links);
		cmd_print_json(out);
		return EXIT_OK;
	}
	printf("%-16s %-16s %-18s %-15s %-15s %-10s %-10s\n", "NETVM", "CLIENT", "SUBNET", "NETVM-ADDR", "CLIENT-ADDR",
	       "NETVM-END", "CLIENT-END");
	for (size_t i = 0; i < json_object_array_length(links); i++) {
		json_object *e = json_object_array_get_idx(links, i), *v;
		const char *f[7];
		static const char *const keys[] = {"netvm",	  "client",    "subnet",    "netvm_addr",
						   "client_addr", "netvm_end", "client_end"};
		for (int k = 0; k < 7; k++)
			f[k] = json_object_object_get_ex(e, keys[k], &v) ? json_object_get_string(v) : "-";
		printf("%-16s %-16s %-18s %-15s %-15s %-10s %-10s\n", f[0], f[1], f[2], f[3], f[4], f[5], f[6]);
	}
	json_object_put(links);
	return EXIT_OK;
}

static const struct verb net_subs[] = {
	VERB_SUB(.name = "ls", .fn = net_ls_cmd,
		 .summary = "list the netvm links, their addresses and which ends are up"),
	VERB_SUB(.name = "list", .fn = net_ls_cmd, .flags = VERB_HIDDEN),
	{0},
};

VERB_DEFINE(net, .name = "net", .opts = net_opts, .summary = "show the netvm links (network: {netvm: NAME})",
	    .subs = net_subs);
