/* Spec keys for devices: pci, usb, balloon. */
#include "spec_devices.h"
#include "pci.h"
#include "spec.h"
#include "ytree.h"

#include <ctype.h>
#include <string.h>

#define SERIAL_MAX 126 /* USB string descriptors hold at most 126 UTF-16 units */

static int check_pci(struct ytree_ctx *c, const struct ynode *it, const char *path)
{
	char a[PCI_ADDR_LEN];
	if (pci_addr_normalize(it->str, a, NULL) < 0) {
		_cleanup_free_ char *q = ytree_quote(it->str);
		return ytree_error(c, it, path,
				   "invalid PCI address '%s': expected DOMAIN:BUS:SLOT.FUNCTION, e.g. 0000:01:00.0", q);
	}
	return 0;
}

int spec_devices_pci(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	struct vm_spec *s = obj;
	int r = ytree_strv(c, v, path, check_pci, &s->pci);
	if (r < 0)
		return r;
	for (size_t i = 0; s->pci && s->pci[i]; i++) {
		char a[PCI_ADDR_LEN];
		pci_addr_normalize(s->pci[i], a, NULL);
		free(s->pci[i]);
		s->pci[i] = xstrdup(a);
		for (size_t k = 0; k < i; k++)
			if (!strcmp(s->pci[k], a))
				return ytree_error(c, v->kids[i], path, "'%s' is listed twice", a);
	}
	return 0;
}

static int hex4(const char *s, unsigned *ret)
{
	size_t len = strlen(s);
	unsigned v = 0;
	if (len == 0 || len > 4)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (!isxdigit((unsigned char)s[i]))
			return -EINVAL;
		v = v * 16 +
		    (unsigned)(isdigit((unsigned char)s[i]) ? s[i] - '0' : tolower((unsigned char)s[i]) - 'a' + 10);
	}
	*ret = v;
	return 0;
}

int usb_id_parse(const char *s, unsigned *ret_vendor, unsigned *ret_product)
{
	const char *colon = s ? strchr(s, ':') : NULL;
	char v[8];
	unsigned a, b;
	if (!colon || colon - s > 4)
		return -EINVAL;
	memcpy(v, s, (size_t)(colon - s));
	v[colon - s] = 0;
	if (hex4(v, &a) < 0 || hex4(colon + 1, &b) < 0)
		return -EINVAL;
	*ret_vendor = a;
	*ret_product = b;
	return 0;
}

static int usb_hex(struct ytree_ctx *c, const struct ynode *v, const char *path, unsigned *ret)
{
	int r = ytree_want_scalar(c, v, path, "4 hex digits, e.g. 17ef");
	if (r < 0)
		return r;
	if (hex4(v->str, ret) < 0) {
		_cleanup_free_ char *q = ytree_quote(v->str);
		return ytree_error(c, v, path, "expected 4 hex digits (as lsusb shows them, e.g. 17ef), got '%s'", q);
	}
	return 0;
}

static int usb_vendor(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	return usb_hex(c, v, path, &((struct usb_match *)obj)->vendor);
}

static int usb_product(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	return usb_hex(c, v, path, &((struct usb_match *)obj)->product);
}

static int usb_serial(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	struct usb_match *u = obj;
	int r = ytree_str(c, v, path, false, &u->serial);
	if (r < 0)
		return r;
	if (strlen(u->serial) > SERIAL_MAX)
		return ytree_error(c, v, path, "longer than %d bytes", SERIAL_MAX);
	return 0;
}

static const struct ytree_field usb_fields[] = {
	{"vendor", usb_vendor},
	{"product", usb_product},
	{"serial", usb_serial},
};

int spec_devices_usb(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	struct vm_spec *s = obj;
	if (v->type != Y_SEQ)
		return ytree_type_error(c, v, path, "a list of {vendor, product, serial}");
	for (size_t i = 0; i < v->n; i++) {
		_cleanup_free_ char *ip = xasprintf("%s[%zu]", path, i);
		const struct ynode *it = v->kids[i];
		if (it->type != Y_MAP)
			return ytree_type_error(c, it, ip, "a mapping {vendor, product, serial}");
		s->usb = xrealloc(s->usb, (s->n_usb + 1) * sizeof(*s->usb));
		struct usb_match *u = &s->usb[s->n_usb++];
		memset(u, 0, sizeof(*u));
		int r = ytree_parse_fields(c, it, ip, usb_fields, ARRAY_SIZE(usb_fields), u);
		if (r < 0)
			return r;
		if (!ytree_map_get(it, "vendor") || !ytree_map_get(it, "product"))
			return ytree_error(c, it, ip, "vendor and product are required");
	}
	return 0;
}

static int balloon_min(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	struct vm_spec *s = obj;
	int r = ytree_size(c, v, path, &s->balloon_min);
	if (r < 0)
		return r;
	if (s->balloon_min < (64ULL << 20))
		return ytree_error(c, v, path, "must be at least 64M");
	return 0;
}

static const struct ytree_field balloon_fields[] = {
	{"min", balloon_min},
};

int spec_devices_balloon(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	struct vm_spec *s = obj;
	if (v->type == Y_SCALAR) {
		bool on;
		int r = ytree_bool(c, v, path, &on);
		if (r < 0)
			return r;
		s->balloon_off = !on;
		return 0;
	}
	return ytree_parse_fields(c, v, path, balloon_fields, ARRAY_SIZE(balloon_fields), s);
}

int spec_devices_check(struct ytree_ctx *c, const struct vm_spec *s, const struct ynode *vm)
{
	const struct ynode *k;
	if (s->pci && s->pci[0] && s->source != SOURCE_IMAGE && (k = ytree_map_get(vm, "pci")))
		return ytree_error(c, k, "pci",
				   "this VM runs on microvm, which has no PCI bus for passthrough: use an image VM "
				   "(source: {image: ...}), which runs on q35");
	if (s->n_usb && s->source != SOURCE_IMAGE && (k = ytree_map_get(vm, "usb")))
		return ytree_error(c, k, "usb",
				   "this VM runs on microvm, which has no USB controller: use an image VM "
				   "(source: {image: ...}), which runs on q35");
	if (s->balloon_min && s->memory && s->balloon_min >= s->memory && (k = ytree_map_get(vm, "balloon")))
		return ytree_error(c, k, "balloon.min", "must be below memory");
	if (s->balloon_min && s->balloon_off && (k = ytree_map_get(vm, "balloon")))
		return ytree_error(c, k, "balloon", "min needs the balloon on");
	return 0;
}

void spec_devices_render(struct strbuf *sb, const struct vm_spec *s)
{
	if (s->pci && s->pci[0]) {
		strbuf_adds(sb, "  pci:\n");
		for (size_t i = 0; s->pci[i]; i++)
			strbuf_addf(sb, "    - \"%s\"\n", s->pci[i]);
	}
	if (s->n_usb) {
		strbuf_adds(sb, "  usb:\n");
		for (size_t i = 0; i < s->n_usb; i++) {
			strbuf_addf(sb, "    - vendor: \"%04x\"\n      product: \"%04x\"\n", s->usb[i].vendor,
				    s->usb[i].product);
			if (s->usb[i].serial) {
				/* a serial is printable ASCII here only when safe to put in quotes as it is */
				strbuf_adds(sb, "      serial: \"");
				for (const char *p = s->usb[i].serial; *p; p++) {
					if (*p == '"' || *p == '\\')
						strbuf_addch(sb, '\\');
					if ((unsigned char)*p < 0x20)
						strbuf_addf(sb, "\\x%02x", (unsigned char)*p);
					else
						strbuf_addch(sb, *p);
				}
				strbuf_adds(sb, "\"\n");
			}
		}
	}
	if (s->balloon_off)
		strbuf_adds(sb, "  balloon: false\n");
	else if (s->balloon_min && s->balloon_min % (1ULL << 20) == 0)
		strbuf_addf(sb, "  balloon:\n    min: %lluM\n", (unsigned long long)(s->balloon_min >> 20));
	else if (s->balloon_min)
		strbuf_addf(sb, "  balloon:\n    min: %llu\n", (unsigned long long)s->balloon_min);
}

static bool str_eq(const char *a, const char *b) { return a == b || (a && b && !strcmp(a, b)); }

bool spec_devices_equal(const struct vm_spec *a, const struct vm_spec *b)
{
	size_t n = strv_len(a->pci);
	if (n != strv_len(b->pci) || a->n_usb != b->n_usb || a->balloon_min != b->balloon_min ||
	    a->balloon_off != b->balloon_off)
		return false;
	for (size_t i = 0; i < n; i++)
		if (strcmp(a->pci[i], b->pci[i]))
			return false;
	for (size_t i = 0; i < a->n_usb; i++)
		if (a->usb[i].vendor != b->usb[i].vendor || a->usb[i].product != b->usb[i].product ||
		    !str_eq(a->usb[i].serial, b->usb[i].serial))
			return false;
	return true;
}

void spec_devices_free(struct vm_spec *s)
{
	strv_free(s->pci);
	for (size_t i = 0; i < s->n_usb; i++)
		free(s->usb[i].serial);
	free(s->usb);
}
