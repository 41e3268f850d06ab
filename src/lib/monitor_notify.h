/* Notifications in the monitor: each MSG_NOTIFY of the guest (src/proto/notification.h), rate-limited and
 * sanitised (notify.h), is shown through the host's org.freedesktop.Notifications on the user's
 * session bus, titled "[NAME] summary", with the VM's name and colour as hints (x-hutch-vm,
 * x-hutch-color). libdbus-1 is loaded on the first one. One monitor is one VM, so the state (the
 * bus connection and the VM's rate) lives in the file. */
#pragma once
#include "util.h"

struct vm_spec;

/* Whether the agent is asked to forward notifications: the spec's notifications:, default true. */
bool mon_notify_wanted(const struct vm_spec *s);
/* One MSG_NOTIFY payload from the agent. -1 when it is malformed (the caller closes the channel);
 * a notification that is dropped (rate, no notification service) is still 0. log: one line. */
int mon_notify_frame(const char *vm, const struct vm_spec *s, const void *payload, size_t len,
		     void (*log)(const char *line));
