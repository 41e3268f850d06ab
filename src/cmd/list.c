#include "backend.h"
#include "backend_libvirt.h"
#include "autostart.h"
#include "cmd.h"
#include "color.h"
#include "ready.h"
#include "virt_watch.h"

#include <string.h>

struct row {
	char *name;
	const char *state;
	char accel[8];
	uint64_t memory;
	unsigned cpus;
	uint64_t uptime_s;
	char *error;
	char agent[32]; /* the agent's state, "-" when not running */
	int64_t agent_since;
	char agent_why[160];
	bool image;
	struct ci_status ci; /* image VMs with the agent up */
	const char *backend;
	char *color; /* the spec's color:, or NULL */
};

static void collect(struct cmd_ctx *c, const char *name, const struct libvirt_state *lvs, struct row *r)
{
	memset(r, 0, sizeof(*r));
	r->name = xstrdup(name);
	struct vm vm;
	struct hutch_error err = {0};
	bool running = store_is_running(&c->store, name);
	if (vm_load(&c->store, name, &vm, &err) < 0) {
		/* One broken spec must not hide the others. */
		r->state = running ? "running" : "broken";
		r->error = err.msg ? xstrdup(err.msg) : NULL;
		snprintf(r->accel, sizeof(r->accel), "-");
		hutch_error_clear(&err);
		return;
	}
	r->memory = vm.spec->memory;
	r->color = vm.spec->color ? xstrdup(vm.spec->color) : NULL;
	r->cpus = vm.spec->cpus;
	r->image = vm.spec->source == SOURCE_IMAGE;
	r->state = "stopped";
	snprintf(r->accel, sizeof(r->accel), "-");
	snprintf(r->agent, sizeof(r->agent), "-");
	bool libvirt = vm.spec->backend && !strcmp(vm.spec->backend, "libvirt");
	r->backend = libvirt ? "libvirt" : "qemu";
	if (libvirt) {
		/* no hutch lock to look at: libvirt_states asked each URI once (bounded); one unreachable
		 * URI hides nothing else */
		if (!lvs->known) {
			r->state = "unknown";
			r->error = lvs->error ? xstrdup(lvs->error) : NULL;
		} else if (lvs->running) {
			r->state = "running";
			snprintf(r->accel, sizeof(r->accel), "%s", "tcg");
			r->uptime_s = lvs->uptime_s;
			snprintf(r->agent, sizeof(r->agent), "%s", lvs->paused ? "unresponsive" : "unknown");
			/* the supervisor that holds its run lock knows the accelerator and the agent */
			struct virt_watch_status ws;
			if (!lvs->paused && virt_watch_status(&c->store, name, &ws) == 0) {
				snprintf(r->accel, sizeof(r->accel), "%s", ws.kvm ? "kvm" : "tcg");
				snprintf(r->agent, sizeof(r->agent), "%s", ws.agent);
				r->agent_since = ws.agent_since;
				snprintf(r->agent_why, sizeof(r->agent_why), "%s", ws.agent_why);
			}
		}
		running = false;
	}
	if (running) {
		struct vm_status st;
		const struct backend_ops *b = backend_for(vm.spec, &err);
		r->state = "running";
		if (b && b->status(&vm, &st, &err) == 0 && st.running) {
			snprintf(r->accel, sizeof(r->accel), "%s", st.kvm ? "kvm" : "tcg");
			r->uptime_s = st.uptime_s;
			snprintf(r->agent, sizeof(r->agent), "%s", st.agent_state);
			r->agent_since = st.agent_since;
			snprintf(r->agent_why, sizeof(r->agent_why), "%s", st.agent_why);
			/* cloud-init as it goes, read through the agent once it is up */
			if (vm.spec->source == SOURCE_IMAGE && st.agent &&
			    ready_cloud_init_state(&c->store, name, &r->ci, &err) < 0)
				ci_status_release(&r->ci);
		}
		hutch_error_clear(&err);
	}
	vm_release(&vm);
}

static void fmt_uptime(uint64_t s, char *buf, size_t len)
{
	if (s >= 86400)
		snprintf(buf, len, "%llud%lluh", (unsigned long long)(s / 86400),
			 (unsigned long long)(s % 86400 / 3600));
	else if (s >= 3600)
		snprintf(buf, len, "%lluh%llum", (unsigned long long)(s / 3600), (unsigned long long)(s % 3600 / 60));
	else if (s >= 60)
		snprintf(buf, len, "%llum%llus", (unsigned long long)(s / 60), (unsigned long long)(s % 60));
	else
		snprintf(buf, len, "%llus", (unsigned long long)s);
}

struct list_cli {
	bool all;
};

static const struct opt list_opts[] = {
	OPT_BOOL('a', "all", struct list_cli, all, "stopped VMs too"),
	OPT_JSON(),
	OPT_END(),
};

static int cmd_list(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	bool all = ((struct list_cli *)opts)->all;
	_cleanup_strv_ char **names = NULL;
	if (store_list(&c->store, &names, &c->err) < 0)
		return EXIT_ERR;
	struct libvirt_state *lvs = NULL;
	libvirt_states(&c->store, names, &lvs);
	json_object *arr = c->json ? json_object_new_array() : NULL;
	bool swatch = !c->json && cmd_color();
	if (swatch)
		printf("   ");
	if (!c->json)
		printf("%-24s %-8s %-7s %-5s %7s %4s %8s %-12s %s\n", "NAME", "STATE", "BACKEND", "ACCEL", "MEMORY",
		       "CPUS", "UPTIME", "AGENT", "CLOUD-INIT");
	for (size_t i = 0; names[i]; i++) {
		struct row r;
		collect(c, names[i], &lvs[i], &r);
		bool show = all || strcmp(r.state, "stopped") != 0;
		if (show && c->json) {
			json_object *o = json_object_new_object();
			json_object_object_add(o, "name", json_object_new_string(r.name));
			json_object_object_add(o, "state", json_object_new_string(r.state));
			json_object_object_add(o, "backend", json_object_new_string(r.backend ? r.backend : "qemu"));
			json_object_object_add(o, "accel",
					       strcmp(r.accel, "-") ? json_object_new_string(r.accel) : NULL);
			json_object_object_add(o, "memory", json_object_new_int64((int64_t)r.memory));
			json_object_object_add(o, "cpus", json_object_new_int((int)r.cpus));
			json_object_object_add(o, "uptime_s", json_object_new_int64((int64_t)r.uptime_s));
			json_object_object_add(o, "autostart", json_object_new_boolean(autostart_is_on(r.name)));
			json_object_object_add(o, "color", r.color ? json_object_new_string(r.color) : NULL);
			if (strcmp(r.agent, "-")) {
				json_object_object_add(o, "agent", json_object_new_string(r.agent));
				json_object_object_add(o, "agent_since", json_object_new_int64(r.agent_since));
				json_object_object_add(o, "agent_why", json_object_new_string(r.agent_why));
			}
			if (r.error)
				json_object_object_add(o, "error", json_object_new_string(r.error));
			if (r.image && !strcmp(r.state, "running"))
				json_object_object_add(o, "cloud_init",
						       json_object_new_string(ci_state_names[r.ci.state]));
			if (r.ci.failures) {
				json_object_object_add(o, "cloud_init_failures", cmd_json_strv(r.ci.failures));
			}
			json_object_array_add(arr, o);
		} else if (show) {
			char mem[32] = "-", up[32] = "-", cpus[16] = "-";
			if (r.memory)
				format_size(r.memory, mem, sizeof(mem));
			if (r.cpus)
				snprintf(cpus, sizeof(cpus), "%u", r.cpus);
			if (!strcmp(r.state, "running"))
				fmt_uptime(r.uptime_s, up, sizeof(up));
			const char *ci = r.image && !strcmp(r.state, "running") && r.ci.state != CI_UNKNOWN
						 ? ci_state_names[r.ci.state]
						 : "-";
			char sw[64];
			if (swatch)
				printf("%s ", color_swatch_or_blank(r.color, sw, sizeof(sw)));
			printf("%-24s %-8s %-7s %-5s %7s %4s %8s %-12s %s\n", r.name, r.state,
			       r.backend ? r.backend : "-", r.accel, mem, cpus, up, r.agent, ci);
			if (r.error && (c->verbose || !strcmp(r.state, "unknown")))
				printf("  %s\n", r.error);
		}
		free(r.name);
		free(r.error);
		free(r.color);
		ci_status_release(&r.ci);
	}
	libvirt_states_free(lvs, strv_len(names));
	if (c->json)
		cmd_print_json(arr);
	return EXIT_OK;
}

VERB_DEFINE(list, .name = "list", .fn = cmd_list, .opts = list_opts, .opts_size = sizeof(struct list_cli),
	    .summary = "list VMs with state, accel, memory, cpus and uptime");
