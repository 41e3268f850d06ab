/* The verb table: main dispatches through it, and `hutch help` and the bash completion are made
 * from it. Order is the order of `hutch help`. */
#include "cmd.h"

#include <string.h>

const struct verb *const hutch_verbs[] = {
	&verb_create,  &verb_build,    &verb_start,	&verb_stop,	  &verb_destroy,    &verb_list,
	&verb_inspect, &verb_console,  &verb_logs,	&verb_exec,	  &verb_shell,	    &verb_run,
	&verb_cp,      &verb_cp_image, &verb_ssh,	&verb_port,	  &verb_net,	    &verb_image,
	&verb_doctor,  &verb_setup,    &verb_autostart, &verb_service,	  &verb_pci,	    &verb_balloon,
	&verb_usb,     &verb_template, &verb_snapshot,	&verb_view,	  &verb_screenshot, &verb_desktop,
	&verb_clip,    &verb_events,   &verb_help,	&verb_completion, &verb_monitor,    &verb_libvirt_watch,
	NULL,
};

const struct verb *verb_find(const char *name)
{
	for (size_t i = 0; hutch_verbs[i]; i++)
		if (strcmp(hutch_verbs[i]->name, name) == 0)
			return hutch_verbs[i];
	return NULL;
}
