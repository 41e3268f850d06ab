/* Lifecycle events of VMs on both backends: started, agent-ready, stopped (with why), crashed.
 *
 * The channel is a small file per VM, data/vms/NAME/events.jsonl: whoever sees an event (the qemu
 * backend's monitor, a libvirt start that got HELLO) appends one JSON line with O_APPEND under
 * flock, at most EVENTS_LINE_MAX bytes, and the file is rotated to events.jsonl.1 past
 * EVENTS_FILE_MAX, so it stays bounded. `hutch events` follows every VM's file with inotify (new VMs
 * included) and, for libvirt VMs, subscribes to libvirt's own lifecycle events (virt_events.c). */
#pragma once
#include "store.h"
#include "util.h"

#include <json-c/json.h>

#define EVENTS_FILE "events.jsonl"
#define EVENTS_LINE_MAX 1024
#define EVENTS_FILE_MAX (64 * 1024)

/* event: started agent-ready stopped crashed (libvirt also: connection-lost reconnected). reason:
 * a short token (requested, idle, app-exit, poweroff, destroyed, qemu-killed, missed...), detail:
 * the human sentence; both may be NULL. Best effort: an event that cannot be written is lost, never
 * an error for the VM. */
int events_append(const struct store *st, const char *name, const char *backend, const char *event, const char *reason,
		  const char *detail);
/* The same event as one JSON line (no newline), cut to fit EVENTS_LINE_MAX. */
char *events_line(const char *name, const char *backend, const char *event, const char *reason, const char *detail);

/* Called for every event, in order of arrival; a non-zero return ends events_follow with it. */
typedef int (*events_cb)(json_object *ev, void *userdata);
/* Until cb says stop: every new event of every VM (only: just that VM's). Never returns 0 on its
 * own; < 0 with err when it cannot watch. */
int events_follow(const struct store *st, const char *only, events_cb cb, void *userdata, struct hutch_error *err);

/* The libvirt side (virt_events.c): subscribe to lifecycle events on uri, each written to out_fd as
 * one line that events_line made. Idempotent per uri. 0 without libvirt. */
int virt_events_watch(const struct store *st, const char *uri, int out_fd, struct hutch_error *err);
/* Connections that died are opened and subscribed again (called now and then). */
void virt_events_check(const struct store *st, int out_fd);
/* lv_stop and the libvirt supervisor: why hutch is about to stop the domain, so that the stopped
 * event libvirt sends says "requested" or "idle" rather than only how the guest ended. */
void virt_events_note_stop(const struct store *st, const char *name, const char *reason, const char *detail);
/* A start: whatever stops the domain from now on, it was not that stop. */
void virt_events_clear_note(const struct store *st, const char *name);
