/* hutch pci status|list|mode|recover: PCI and GPU passthrough readiness, and driver switches. */
#include "cmd.h"
#include "pci.h"

#include <string.h>

struct pci_cli {
	uint64_t timeout_ms;
};

static const struct opt pci_opts[] = {
	OPT_DURATION(0, "timeout", struct pci_cli, timeout_ms, "SEC",
		     "give a driver switch SEC to finish before the device is poisoned (default 30)"),
	OPT_JSON(),
	OPT_END(),
};

static char *state_dir(struct cmd_ctx *c) { return xasprintf("%s/pci", c->store.data_dir); }

static const char *class_name(unsigned cls)
{
	switch (cls >> 16) {
	case 0x03:
		return "display";
	case 0x04:
		return (cls >> 8) == 0x0403 ? "audio" : "multimedia";
	case 0x0c:
		return (cls >> 8) == 0x0c03 ? "usb" : "serial-bus";
	case 0x02:
		return "network";
	case 0x01:
		return "storage";
	default:
		return "other";
	}
}

static json_object *group_json(const struct pci_group *g)
{
	json_object *o = json_object_new_object(), *fs = json_object_new_array();
	json_object_object_add(o, "address", json_object_new_string(g->addr));
	json_object_object_add(o, "group", g->group >= 0 ? json_object_new_int(g->group) : NULL);
	json_object_object_add(
		o, "mode",
		json_object_new_string(g->half_switched ? "half-switched" : pci_mode_name(pci_group_mode(g))));
	json_object_object_add(o, "half_switched", json_object_new_boolean(g->half_switched));
	json_object_object_add(o, "wedged", json_object_new_boolean(g->wedged));
	json_object_object_add(o, "wedge_reason", g->wedged ? json_object_new_string(g->wedge_why) : NULL);
	json_object_object_add(o, "poisoned", json_object_new_boolean(g->poisoned));
	json_object_object_add(o, "poison_reason", g->poisoned ? json_object_new_string(g->poison_why) : NULL);
	for (size_t i = 0; i < g->n; i++) {
		const struct pci_func *f = &g->funcs[i];
		json_object *j = json_object_new_object();
		char id[16];
		json_object_object_add(j, "address", json_object_new_string(f->addr));
		snprintf(id, sizeof(id), "%04x:%04x", f->vendor, f->device);
		json_object_object_add(j, "id", json_object_new_string(id));
		json_object_object_add(j, "class", json_object_new_string(class_name(f->class_code)));
		json_object_object_add(j, "driver", f->driver[0] ? json_object_new_string(f->driver) : NULL);
		json_object_object_add(j, "driver_override",
				       f->override[0] ? json_object_new_string(f->override) : NULL);
		json_object_object_add(j, "mode", json_object_new_string(pci_mode_name(f->mode)));
		json_object_array_add(fs, j);
	}
	json_object_object_add(o, "functions", fs);
	return o;
}

static void group_print(const struct pci_group *g)
{
	printf("%s  ", g->addr);
	if (g->group >= 0)
		printf("IOMMU group %d", g->group);
	else
		printf("no IOMMU group");
	printf("  %s\n", g->half_switched ? "half-switched" : pci_mode_name(pci_group_mode(g)));
	for (size_t i = 0; i < g->n; i++) {
		const struct pci_func *f = &g->funcs[i];
		printf("  %s  %04x:%04x  %-10s %-16s %s\n", f->addr, f->vendor, f->device, class_name(f->class_code),
		       f->driver[0] ? f->driver : "-", pci_mode_name(f->mode));
	}
	if (g->wedged)
		printf("  wedged: %s: reboot the host\n", g->wedge_why);
	if (g->poisoned)
		printf("  poisoned: %s: switches are refused until the host reboots\n", g->poison_why);
}

/* The groups to show: DEVICE's, or every GPU's and vfio-bound device's, each group once. */
static int load_groups(struct cmd_ctx *c, const char *device, struct pci_group **ret, size_t *ret_n)
{
	_cleanup_free_ char *sd = state_dir(c);
	_cleanup_strv_ char **addrs = NULL;
	if (device) {
		addrs = xcalloc(2, sizeof(char *));
		addrs[0] = xstrdup(device);
	} else if (pci_interesting(&addrs, &c->err) < 0) {
		return EXIT_ERR;
	}
	struct pci_group *gs = NULL;
	size_t n = 0;
	for (size_t i = 0; addrs[i]; i++) {
		struct pci_group g;
		if (pci_group_load(addrs[i], sd, &g, &c->err) < 0) {
			for (size_t k = 0; k < n; k++)
				pci_group_release(&gs[k]);
			free(gs);
			return EXIT_ERR;
		}
		bool seen = false;
		for (size_t k = 0; k < n && !seen; k++)
			seen = g.group >= 0 && gs[k].group == g.group;
		if (seen) {
			pci_group_release(&g);
			continue;
		}
		gs = xrealloc(gs, (n + 1) * sizeof(*gs));
		gs[n++] = g;
	}
	*ret = gs;
	*ret_n = n;
	return 0;
}

static void groups_free(struct pci_group *gs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		pci_group_release(&gs[i]);
	free(gs);
}

static int pci_status(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	struct pci_host h;
	pci_host_probe(&h);
	struct pci_group *gs;
	size_t n;
	if (load_groups(c, argc ? argv[0] : NULL, &gs, &n))
		return EXIT_ERR;
	if (c->json) {
		json_object *o = json_object_new_object(), *io = json_object_new_object(),
			    *arr = json_object_new_array();
		json_object_object_add(io, "on", json_object_new_boolean(h.iommu_groups));
		json_object_object_add(io, "cmdline", json_object_new_boolean(h.iommu_cmdline));
		json_object_object_add(io, "groups", json_object_new_boolean(h.iommu_groups));
		json_object_object_add(o, "iommu", io);
		json_object_object_add(o, "vfio_pci_loaded", json_object_new_boolean(h.vfio_loaded));
		for (size_t i = 0; i < n; i++)
			json_object_array_add(arr, group_json(&gs[i]));
		json_object_object_add(o, "devices", arr);
		cmd_print_json(o);
	} else {
		printf("IOMMU:    %s (kernel command line: %s; IOMMU groups: %s)\n", h.iommu_groups ? "on" : "off",
		       h.iommu_cmdline ? "enabled" : "not enabled", h.iommu_groups ? "present" : "none");
		if (!h.iommu_groups)
			printf("          add intel_iommu=on (or amd_iommu=on) iommu=pt to the kernel command line and "
			       "reboot\n");
		printf("vfio-pci: %s\n", h.vfio_loaded ? "loaded" : "not loaded ('hutch pci mode' loads it)");
		if (!n)
			printf("no GPU and no device on vfio-pci\n");
		for (size_t i = 0; i < n; i++)
			group_print(&gs[i]);
	}
	groups_free(gs, n);
	return EXIT_OK;
}

static int pci_list(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	struct pci_group *gs;
	size_t n;
	if (load_groups(c, argc ? argv[0] : NULL, &gs, &n))
		return EXIT_ERR;
	json_object *arr = json_object_new_array();
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *block = pci_spec_block(&gs[i]);
		if (c->json) {
			json_object *o = json_object_new_object(), *a = json_object_new_array();
			for (size_t k = 0; k < gs[i].n; k++)
				json_object_array_add(a, json_object_new_string(gs[i].funcs[k].addr));
			json_object_object_add(o, "address", json_object_new_string(gs[i].addr));
			json_object_object_add(o, "pci", a);
			json_object_array_add(arr, o);
			continue;
		}
		if (gs[i].group >= 0)
			printf("# %s: IOMMU group %d, every function of it\n", gs[i].addr, gs[i].group);
		else
			printf("# %s: no IOMMU group (the IOMMU is off: passthrough will not work)\n", gs[i].addr);
		fputs(block, stdout);
	}
	if (c->json)
		cmd_print_json(arr);
	else
		json_object_put(arr);
	groups_free(gs, n);
	return EXIT_OK;
}

static int print_result(struct cmd_ctx *c, const char *addr, struct pci_switch_result *res, const char *done)
{
	if (c->json) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "address", json_object_new_string(addr));
		json_object_object_add(o, "changed", json_object_new_boolean(res->changed));
		json_object_object_add(o, "steps", cmd_json_strv(res->steps));
		cmd_print_json(o);
	} else {
		for (size_t i = 0; res->steps && res->steps[i]; i++)
			printf("%s\n", res->steps[i]);
		printf("%s: %s%s\n", addr, res->changed ? "" : "already ", done);
	}
	pci_switch_result_release(res);
	return EXIT_OK;
}

static int pci_mode(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	struct pci_cli *o = opts;
	enum pci_mode m;
	if (!strcmp(argv[1], "vfio"))
		m = PCI_MODE_VFIO;
	else if (!strcmp(argv[1], "native"))
		m = PCI_MODE_NATIVE;
	else
		return cmd_usage(c, "expected vfio or native, not '%s'", argv[1]);
	cmd_set_subject(c, argv[0]);
	_cleanup_free_ char *line = xasprintf("pci mode %s %s", argv[0], argv[1]);
	if (pci_require_root(line, &c->err) < 0)
		return EXIT_ERR;
	_cleanup_free_ char *sd = state_dir(c);
	struct pci_switch_result res;
	if (pci_switch(argv[0], m, sd, o->timeout_ms, &res, &c->err) < 0)
		return EXIT_ERR;
	_cleanup_free_ char *done = xasprintf("the IOMMU group is %s", m == PCI_MODE_VFIO ? "on vfio-pci" : "native");
	return print_result(c, argv[0], &res, done);
}

static int pci_recover_cmd(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	struct pci_cli *o = opts;
	cmd_set_subject(c, argv[0]);
	_cleanup_free_ char *line = xasprintf("pci recover %s", argv[0]);
	if (pci_require_root(line, &c->err) < 0)
		return EXIT_ERR;
	_cleanup_free_ char *sd = state_dir(c);
	struct pci_switch_result res;
	if (pci_recover(argv[0], sd, o->timeout_ms, &res, &c->err) < 0)
		return EXIT_ERR;
	return print_result(c, argv[0], &res, "the IOMMU group is on vfio-pci");
}

static const struct verb pci_subs[] = {
	VERB_SUB(.name = "status", .fn = pci_status, .min_args = 0, .max_args = 1, .args = "[DEVICE]",
		 .summary = "IOMMU, vfio-pci, and each GPU's group, drivers, mode and flags"),
	VERB_SUB(.name = "list", .fn = pci_list, .min_args = 0, .max_args = 1, .args = "[DEVICE]",
		 .summary = "a ready-to-paste 'pci:' spec line for the whole IOMMU group"),
	VERB_SUB(.name = "mode", .fn = pci_mode, .min_args = 2, .max_args = 2, .args = "DEVICE vfio|native",
		 .summary = "switch the whole IOMMU group to vfio-pci or its native drivers (root)"),
	VERB_SUB(.name = "recover", .fn = pci_recover_cmd, .min_args = 1, .max_args = 1, .args = "DEVICE",
		 .summary = "rebind a half-switched group to vfio-pci unless a reboot is needed (root)"),
	{0},
};

VERB_DEFINE(pci, .name = "pci", .opts = pci_opts, .opts_size = sizeof(struct pci_cli),
	    .summary = "PCI and GPU passthrough: status, spec lines, driver switches", .subs = pci_subs, .sub_at = 0);
