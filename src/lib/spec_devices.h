/* The spec keys for devices: pci (passthrough), usb (host devices attached at start), balloon.
 * Parsed here so spec.c carries only their table rows and hooks. */
#pragma once
#include "util.h"

struct vm_spec;
struct ytree_ctx;
struct ynode;

/* usb: [{vendor: 17ef, product: 60e0, serial: ...}] */
struct usb_match {
	unsigned vendor, product;
	char *serial; /* NULL: any */
};

/* The fields they fill live in struct vm_spec (spec.h): pci, usb/n_usb, balloon_min, balloon_off. */
int spec_devices_pci(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path);
int spec_devices_usb(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path);
int spec_devices_balloon(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path);
/* After the whole VM is read: rules across keys (pci needs q35, a floor below memory). */
int spec_devices_check(struct ytree_ctx *c, const struct vm_spec *s, const struct ynode *vm);
void spec_devices_render(struct strbuf *sb, const struct vm_spec *s);
bool spec_devices_equal(const struct vm_spec *a, const struct vm_spec *b);
void spec_devices_free(struct vm_spec *s);
/* "17ef:60e0" -> vendor, product; -EINVAL otherwise. */
int usb_id_parse(const char *s, unsigned *ret_vendor, unsigned *ret_product);
