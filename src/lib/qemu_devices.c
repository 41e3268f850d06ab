/* QEMU argv for devices. The balloon reports freed pages (free-page-reporting) so memory the guest
 * frees goes back to the host, and gives way when the guest runs out (deflate-on-oom). */
#include "qemu_devices.h"
#include "pci.h"

#include <string.h>

int qemu_devices_argv(const struct qemu_config *c, const char *bus, char ***argv, struct hutch_error *err)
{
	const struct vm_spec *s = c->spec;
	if (s->pci && s->pci[0] && strcmp(bus, "pci"))
		return hutch_error_set(err, EINVAL,
				       "VM '%s' asks for PCI passthrough (pci:), but runs on microvm, which has no PCI "
				       "bus: use an image VM, which runs on q35",
				       c->name);
	if (!s->balloon_off) {
		*argv = strv_push(*argv, xstrdup("-device"));
		*argv = strv_push(*argv, xasprintf("virtio-balloon-%s,id=%s,free-page-reporting=on,deflate-on-oom=on",
						   bus, QEMU_BALLOON_ID));
	}
	if (s->n_usb && strcmp(bus, "pci"))
		return hutch_error_set(err, EINVAL,
				       "VM '%s' lists USB devices (usb:), but runs on microvm, which has no USB "
				       "controller: use an image VM, which runs on q35",
				       c->name);
	if (s->n_usb) {
		/* the controller the devices (at start and later by hutch usb attach) plug into */
		*argv = strv_push(*argv, xstrdup("-device"));
		*argv = strv_push(*argv, xstrdup("qemu-xhci,id=xhci"));
	}
	for (size_t i = 0; s->pci && s->pci[i]; i++) {
		char a[PCI_ADDR_LEN];
		int r = pci_addr_normalize(s->pci[i], a, err);
		if (r < 0)
			return r;
		*argv = strv_push(*argv, xstrdup("-device"));
		*argv = strv_push(*argv, xasprintf("vfio-pci,host=%s,id=hostpci%zu", a, i));
	}
	return 0;
}

bool qemu_argv_has_balloon(char *const *argv)
{
	for (size_t i = 0; argv && argv[i] && argv[i + 1]; i++)
		if (!strcmp(argv[i], "-device") && !strncmp(argv[i + 1], "virtio-balloon", 14))
			return true;
	return false;
}
