/* network: {auto_forward: true}: the guest agent reports its TCP listeners (MSG_LISTENERS,
 * src/proto/listeners.h) as they appear and vanish, and the monitor keeps a host forward on
 * 127.0.0.1 for each (the same port when it is free, another free one otherwise), through HMP's
 * hostfwd_add/hostfwd_remove (QEMU 7.2 has them only there). At most config.yml's
 * auto_forward_max forwards (default AUTOFWD_MAX_DEFAULT); the report is untrusted. */
#pragma once
#include "qmp.h"
#include "spec.h"
#include "store.h"
#include "util.h"

#include <json-c/json.h>

#define AUTOFWD_MAX_DEFAULT 32

struct autofwd_entry {
	uint16_t guest, host;
};

struct autofwd {
	bool on;
	size_t max;
	struct autofwd_entry *fw;
	size_t n;
	bool capped; /* the last report had more listeners than max allows: said once */
};

void autofwd_init(struct autofwd *a, bool on, long long cfg_max);
/* init from the spec (auto_forward with mode user) and config.yml's auto_forward_max */
void autofwd_setup(struct autofwd *a, struct store *st, const struct vm_spec *s);
void autofwd_release(struct autofwd *a);
/* Apply a report: forwards for new listeners, none for vanished ones. static_fw: the VM's other
 * forwards ("HOST:GUEST/proto"), whose host and guest ports are left alone. -1 on a malformed
 * report (nothing changed). log gets one line per change (may be NULL). */
int autofwd_report(struct autofwd *a, struct qmp *q, const void *payload, size_t len, char *const *static_fw,
		   void (*log)(const char *line));
/* Appends "HOST:GUEST/tcp" and "auto" for each forward. */
void autofwd_list(const struct autofwd *a, json_object *forwards, json_object *origins);
