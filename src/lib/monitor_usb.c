/* USB devices from the spec, attached at start (monitor_usb.h). */
#include "monitor_usb.h"
#include "usb.h"

#include <string.h>

static bool matches(const struct usb_match *m, const struct usb_dev *d)
{
	return m->vendor == d->vendor && m->product == d->product && (!m->serial || !strcmp(m->serial, d->serial));
}

void mon_usb_start(const struct store *st, const char *name, const struct vm_spec *s, void (*log)(const char *line))
{
	if (!s->n_usb)
		return;
	struct usb_dev *v = NULL;
	size_t n = 0;
	struct hutch_error err = {0};
	if (usb_list(st, &v, &n, &err) < 0) {
		_cleanup_free_ char *l = xasprintf("usb: %s", err.msg);
		log(l);
		hutch_error_clear(&err);
		return;
	}
	for (size_t k = 0; k < s->n_usb; k++) {
		bool any = false;
		for (size_t i = 0; i < n; i++) {
			if (!matches(&s->usb[k], &v[i]))
				continue;
			any = true;
			_cleanup_close_ int fd = -1;
			_cleanup_free_ char *l = NULL;
			if (usb_open_node(&v[i], &fd, &err) < 0 || usb_attach(st, name, &v[i], fd, &err) < 0)
				l = xasprintf("usb: %s", err.msg);
			else
				l = xasprintf("usb: attached %s (%04x:%04x)", v[i].port, v[i].vendor, v[i].product);
			hutch_error_clear(&err);
			log(l);
		}
		if (!any) {
			_cleanup_free_ char *l =
				xasprintf("usb: %04x:%04x%s%s is not present", s->usb[k].vendor, s->usb[k].product,
					  s->usb[k].serial ? " serial " : "", s->usb[k].serial ? s->usb[k].serial : "");
			log(l);
		}
	}
	free(v);
}
