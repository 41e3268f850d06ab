/* The monitor attaches the USB devices a spec lists (usb: [{vendor, product, serial}]) at start, those
 * that are present; they go with QEMU at stop (their records with the run dir). */
#pragma once
#include "spec.h"
#include "store.h"

/* Logs what it attached or why not through log (one line each). */
void mon_usb_start(const struct store *st, const char *name, const struct vm_spec *s, void (*log)(const char *line));
