/* QEMU argv for devices: the balloon, and PCI passthrough (vfio-pci). */
#pragma once
#include "qemu.h"

/* The balloon's device id: the monitor's policy finds it by this (QOM path /machine/peripheral/ID). */
#define QEMU_BALLOON_ID "balloon0"

/* Appends the balloon (unless the spec turns it off) and a vfio-pci device per pci: address.
 * bus is "pci" on q35 and "device" on microvm, which has no PCI bus for passthrough. */
int qemu_devices_argv(const struct qemu_config *c, const char *bus, char ***argv, struct hutch_error *err);
/* Whether an argv has the balloon (a clone's argv has it taken out). */
bool qemu_argv_has_balloon(char *const *argv);
