/* The libvirt part of a VM spec: `libvirt: {snippets: ["<…/>", …]}`, raw domain XML that hutch
 * adds to the domain it writes (device elements into <devices>, the rest before </domain>). Parsed
 * by spec.c through the handler below, so spec.c only holds one table row for it. */
#pragma once
#include "util.h"

struct ytree_ctx;
struct ynode;

#define SPEC_LIBVIRT_SNIPPETS_MAX 64

/* libvirt: {snippets: [...]}: each one well-formed XML with one element, or
 * "FILE:LINE: libvirt.snippets[N]: why". */
int spec_libvirt(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path);
