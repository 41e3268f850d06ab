#ifdef HAVE_LIBVIRT
#include "domain_xml.h"
#include "shares.h"

#include "qemu.h"

#include <libxml/parser.h>
#include <libxml/xmlwriter.h>
#include <libvirt/libvirt.h>
#include <string.h>

#include "lazyvirt.h"

#define QEMU_NS "http://libvirt.org/schemas/domain/qemu/1.0"

/* One writer; the first failing call is remembered and the rest become no-ops. */
struct w {
	xmlTextWriterPtr x;
	bool failed;
};

static void start(struct w *w, const char *el)
{
	if (!w->failed && xmlTextWriterStartElement(w->x, BAD_CAST el) < 0)
		w->failed = true;
}

static void end(struct w *w)
{
	if (!w->failed && xmlTextWriterEndElement(w->x) < 0)
		w->failed = true;
}

static void attr(struct w *w, const char *k, const char *v)
{
	if (!w->failed && xmlTextWriterWriteAttribute(w->x, BAD_CAST k, BAD_CAST v) < 0)
		w->failed = true;
}

static void attrf(struct w *w, const char *k, const char *fmt, ...) _printf_(3, 4);
static void attrf(struct w *w, const char *k, const char *fmt, ...)
{
	struct strbuf sb = STRBUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	strbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	attr(w, k, strbuf_str(&sb));
	strbuf_release(&sb);
}

static void text(struct w *w, const char *s)
{
	if (!w->failed && xmlTextWriterWriteString(w->x, BAD_CAST s) < 0)
		w->failed = true;
}

/* <el>text</el> */
static void elem(struct w *w, const char *el, const char *s)
{
	start(w, el);
	text(w, s);
	end(w);
}

/* <el/> with one attribute */
static void empty1(struct w *w, const char *el, const char *k, const char *v)
{
	start(w, el);
	attr(w, k, v);
	end(w);
}

static void raw(struct w *w, const char *s)
{
	if (!w->failed && xmlTextWriterWriteRaw(w->x, BAD_CAST s) < 0)
		w->failed = true;
}

char *domain_xml_name(const char *vm_name) { return xasprintf(DOMAIN_PREFIX "%s", vm_name); }

static bool uefi(const struct vm_spec *s)
{
	return s->firmware == FIRMWARE_UEFI || s->firmware == FIRMWARE_UEFI_SECURE;
}

/* A microvm with direct kernel boot: the micro template, and container images (a plain one on the
 * micro kernel with hutch's initramfs as its shim, a bootc one on its own kernel), as with the qemu
 * backend. Only cloud images are q35 machines with firmware. */
static bool is_micro(const struct vm_spec *s) { return s->source != SOURCE_IMAGE; }

static void write_os(struct w *w, const struct domain_xml_input *in)
{
	const struct vm_spec *s = in->spec;
	bool micro = is_micro(s);
	start(w, "os");
	start(w, "type");
	attr(w, "arch", "x86_64");
	attr(w, "machine", micro ? "microvm" : "q35");
	text(w, "hvm");
	end(w);
	if (micro) {
		elem(w, "kernel", in->kernel);
		elem(w, "initrd", in->initrd);
		elem(w, "cmdline", in->cmdline);
	} else {
		if (uefi(s)) {
			start(w, "loader");
			attr(w, "readonly", "yes");
			attr(w, "secure", s->firmware == FIRMWARE_UEFI_SECURE ? "yes" : "no");
			attr(w, "type", "pflash");
			text(w, in->fw_code);
			end(w);
			start(w, "nvram");
			if (in->fw_vars)
				attr(w, "template", in->fw_vars);
			text(w, in->nvram);
			end(w);
		}
		/* the disk boots by its own <boot order='1'/>: libvirt refuses os/boot beside it */
		if (in->smbios_cred)
			empty1(w, "smbios", "mode", "sysinfo");
	}
	end(w);
}

static void write_features_cpu(struct w *w, const struct domain_xml_input *in)
{
	const struct vm_spec *s = in->spec;
	/* micro too: the guest finds microvm's virtio-mmio devices through ACPI, as with the qemu backend */
	start(w, "features");
	start(w, "acpi");
	end(w);
	if (!is_micro(s) && s->firmware == FIRMWARE_UEFI_SECURE)
		empty1(w, "smm", "state", "on");
	end(w);
	/* QEMU's -cpu host / max: libvirt's CPU map knows neither as a model, only as these modes */
	start(w, "cpu");
	if (in->kvm && (!in->cpu || !strncmp(in->cpu, "host", 4))) {
		attr(w, "mode", "host-passthrough");
		if (in->cpu && strstr(in->cpu, "-arch-capabilities")) {
			start(w, "feature");
			attr(w, "policy", "disable");
			attr(w, "name", "arch-capabilities");
			end(w);
		}
	} else
		attr(w, "mode", "maximum");
	end(w);
	empty1(w, "clock", "offset", "utc");
	/* like QEMU's -no-reboot: a reset (reboot or micro's panic=-1) ends the VM */
	elem(w, "on_poweroff", "destroy");
	elem(w, "on_reboot", "destroy");
	elem(w, "on_crash", "destroy");
}

/* microvm has no PCI: its virtio devices sit on virtio-mmio, which libvirt assigns only when asked */
static void mmio(struct w *w, bool micro)
{
	if (micro)
		empty1(w, "address", "type", "virtio-mmio");
}

static void write_disk(struct w *w, const char *path, const char *format, const char *dev, bool readonly, bool boot,
		       bool micro)
{
	start(w, "disk");
	attr(w, "type", "file");
	attr(w, "device", "disk");
	start(w, "driver");
	attr(w, "name", "qemu");
	attr(w, "type", format);
	if (!readonly)
		attr(w, "discard", "unmap");
	end(w);
	empty1(w, "source", "file", path);
	start(w, "target");
	attr(w, "dev", dev);
	attr(w, "bus", "virtio");
	end(w);
	if (readonly) {
		start(w, "readonly");
		end(w);
	}
	if (boot)
		empty1(w, "boot", "order", "1");
	mmio(w, micro);
	end(w);
}

/* A micro VM's disk for snapshots (virt_snapshot.h): libvirt takes internal snapshots only of a
 * domain with a qcow2 disk to hold the RAM. The guest sees it as an unused virtio disk. */
static void write_snapshot_disk(struct w *w, const char *path)
{
	start(w, "disk");
	attr(w, "type", "file");
	attr(w, "device", "disk");
	start(w, "driver");
	attr(w, "name", "qemu");
	attr(w, "type", "qcow2");
	end(w);
	empty1(w, "source", "file", path);
	start(w, "target");
	attr(w, "dev", "vda");
	attr(w, "bus", "virtio");
	end(w);
	elem(w, "serial", "hutch-snapshots");
	mmio(w, true);
	end(w);
}

static void write_console(struct w *w, const struct domain_xml_input *in)
{
	start(w, "serial");
	attr(w, "type", "pty");
	if (in->console_log) {
		start(w, "log");
		attr(w, "file", in->console_log);
		attr(w, "append", "off");
		end(w);
	}
	start(w, "target");
	attr(w, "type", "isa-serial");
	attr(w, "port", "0");
	end(w);
	end(w);
	start(w, "console");
	attr(w, "type", "pty");
	start(w, "target");
	attr(w, "type", "serial");
	attr(w, "port", "0");
	end(w);
	end(w);
}

static void write_agent_channel(struct w *w)
{
	start(w, "channel"); /* on the virtio-serial controller written before it */
	attr(w, "type", "unix");
	empty1(w, "source", "mode", "bind");
	start(w, "target");
	attr(w, "type", "virtio");
	attr(w, "name", "org.hutch.agent.0");
	end(w);
	end(w);
}

/* passt: one <portForward> per forward, each host port bound on loopback like QEMU's hostfwd. */
static int write_passt_interface(struct w *w, const struct vm_spec *s, struct hutch_error *err)
{
	start(w, "interface");
	attr(w, "type", "user");
	empty1(w, "backend", "type", "passt");
	for (size_t i = 0; s->forward && s->forward[i]; i++) {
		struct forward f;
		if (forward_parse(s->forward[i], &f) < 0)
			return hutch_error_set(err, EINVAL, "invalid port forward '%s'", s->forward[i]);
		start(w, "portForward");
		attr(w, "proto", f.udp ? "udp" : "tcp");
		attr(w, "address", "127.0.0.1");
		start(w, "range");
		attrf(w, "start", "%u", f.host);
		attrf(w, "to", "%u", f.guest);
		end(w);
		end(w);
	}
	empty1(w, "model", "type", "virtio");
	mmio(w, is_micro(s));
	end(w);
	return 0;
}

/* Without passt: QEMU's own user networking, passed through on its command line. */
static int write_qemu_net(struct w *w, const struct domain_xml_input *in, struct hutch_error *err)
{
	const struct vm_spec *s = in->spec;
	struct strbuf nd = STRBUF_INIT;
	strbuf_adds(&nd, "user,id=hutchnet0");
	for (size_t i = 0; s->forward && s->forward[i]; i++) {
		struct forward f;
		if (forward_parse(s->forward[i], &f) < 0) {
			strbuf_release(&nd);
			return hutch_error_set(err, EINVAL, "invalid port forward '%s'", s->forward[i]);
		}
		_cleanup_free_ char *rule = forward_rule(&f);
		strbuf_addf(&nd, ",hostfwd=%s", rule);
	}
	/* On q35 the NIC is JSON, like libvirt's own -device options: QEMU 7.2 creates every
	 * key=value -device before any JSON one, so a key=value NIC would take a pcie.0 slot that
	 * libvirt has given to one of its root ports, and QEMU refuses to start. After them, QEMU
	 * picks a free slot on pcie.0 (where libvirt never hotplugs). */
	const char *args[] = {"-netdev", strbuf_str(&nd), "-device",
			      is_micro(s) ? "virtio-net-device,netdev=hutchnet0"
					  : "{\"driver\":\"virtio-net-pci\",\"netdev\":\"hutchnet0\"}"};
	if (!w->failed && xmlTextWriterStartElementNS(w->x, BAD_CAST "qemu", BAD_CAST "commandline", NULL) < 0)
		w->failed = true;
	for (size_t i = 0; i < ARRAY_SIZE(args); i++) {
		if (!w->failed && xmlTextWriterStartElementNS(w->x, BAD_CAST "qemu", BAD_CAST "arg", NULL) < 0)
			w->failed = true;
		attr(w, "value", args[i]);
		end(w);
	}
	end(w);
	strbuf_release(&nd);
	return 0;
}

static void write_snippets(struct w *w, char *const *snippets, bool devices)
{
	for (size_t i = 0; snippets && snippets[i]; i++) {
		bool dev = false;
		if (domain_xml_check_snippet(snippets[i], &dev, NULL) < 0 || dev != devices)
			continue;
		bool dup = false;
		for (size_t j = 0; j < i && !dup; j++)
			dup = !strcmp(snippets[i], snippets[j]);
		if (!dup)
			raw(w, snippets[i]);
	}
}

/* pci: and usb: (spec_devices.h): PCI functions managed by libvirt (it binds them to vfio-pci), USB
 * devices by vendor and product, optional at start as the qemu backend attaches them when present. */
/* One document in memory: w_open, write, then w_close, which hands over the text (newline-ended). */
static int w_open(struct w *w, xmlBufferPtr *ret_buf, struct hutch_error *err)
{
	xmlBufferPtr buf = xmlBufferCreate();
	xmlTextWriterPtr x = buf ? xmlNewTextWriterMemory(buf, 0) : NULL;
	if (!x) {
		if (buf)
			xmlBufferFree(buf);
		return hutch_error_set(err, ENOMEM, "cannot make an XML writer");
	}
	*w = (struct w){.x = x};
	*ret_buf = buf;
	return 0;
}

/* Ends the document and frees the writer; *ret gets the text when ok and nothing failed. Returns
 * whether the writing failed. */
static bool w_close(struct w *w, xmlBufferPtr buf, bool ok, char **ret)
{
	if (ok && !w->failed && xmlTextWriterEndDocument(w->x) < 0)
		w->failed = true;
	xmlFreeTextWriter(w->x); /* flushes into buf */
	bool failed = w->failed;
	if (ok && !failed) {
		const char *out = (const char *)xmlBufferContent(buf);
		*ret = xasprintf("%s%s", out, *out && out[strlen(out) - 1] == '\n' ? "" : "\n");
	}
	xmlBufferFree(buf);
	return failed;
}

/* A USB device by vendor and product; at runtime (bus != 0) also by its bus and device number, so
 * the one device the user named is taken even when several share an id. At start the device is
 * optional: a VM whose device is unplugged still boots. */
static void write_usb_hostdev(struct w *w, unsigned vendor, unsigned product, unsigned bus, unsigned dev)
{
	start(w, "hostdev");
	attr(w, "mode", "subsystem");
	attr(w, "type", "usb");
	attr(w, "managed", "no");
	start(w, "source");
	if (!bus)
		attr(w, "startupPolicy", "optional");
	start(w, "vendor");
	attrf(w, "id", "0x%04x", vendor);
	end(w);
	start(w, "product");
	attrf(w, "id", "0x%04x", product);
	end(w);
	if (bus) {
		start(w, "address");
		attrf(w, "bus", "%u", bus);
		attrf(w, "device", "%u", dev);
		end(w);
	}
	end(w);
	end(w);
}

static void write_hostdevs(struct w *w, const struct vm_spec *s)
{
	for (size_t i = 0; s->pci && s->pci[i]; i++) {
		unsigned dom, bus, slot, fn;
		if (sscanf(s->pci[i], "%4x:%2x:%2x.%1x", &dom, &bus, &slot, &fn) != 4)
			continue; /* normalized by the parser: does not happen */
		start(w, "hostdev");
		attr(w, "mode", "subsystem");
		attr(w, "type", "pci");
		attr(w, "managed", "yes");
		start(w, "source");
		start(w, "address");
		attrf(w, "domain", "0x%04x", dom);
		attrf(w, "bus", "0x%02x", bus);
		attrf(w, "slot", "0x%02x", slot);
		attrf(w, "function", "0x%x", fn);
		end(w);
		end(w);
		end(w);
	}
	for (size_t i = 0; i < s->n_usb; i++)
		write_usb_hostdev(w, s->usb[i].vendor, s->usb[i].product, 0, 0);
}

/* 9p shares as <filesystem type='mount'>: accessmode mapped is QEMU's security_model=mapped-xattr,
 * squash its none (the fallback on a file system without user xattrs). */
static int write_filesystems(struct w *w, const struct domain_xml_input *in, bool micro, struct hutch_error *err)
{
	for (size_t i = 0; in->shares && i < in->shares->n; i++) {
		const struct share_plan *p = &in->shares->v[i];
		if (p->via != SHARE_9P)
			return hutch_error_set(err, ENOTSUP,
					       "share '%s': the libvirt backend carries shares over 9p only (libvirt "
					       "runs virtiofs in session mode only from 10.0; Debian 12 has 9.0)",
					       p->tag);
		start(w, "filesystem");
		attr(w, "type", "mount");
		attr(w, "accessmode", p->xattr ? "mapped" : "squash");
		attr(w, "multidevs", "remap");
		empty1(w, "driver", "type", "path");
		empty1(w, "source", "dir", p->host);
		empty1(w, "target", "dir", p->tag);
		if (p->readonly) {
			start(w, "readonly");
			end(w);
		}
		mmio(w, micro);
		end(w);
	}
	return 0;
}

/* display: and sound: (spec_desktop.h). The display listens on a unix socket that libvirt makes in
 * its own per-domain dir (or on display.listen); `virt-viewer -c URI hutch-NAME` opens it. Sound on
 * micro VMs needs microvm's PCIe bus, which libvirt does not give them: image VMs only. */
static void write_desktop(struct w *w, const struct vm_spec *s, bool micro)
{
	enum display_video v = desktop_video(&s->desk);
	enum display_remote r = desktop_remote(&s->desk);
	char addr[32];
	unsigned port = 0;
	if (r == REMOTE_SPICE || r == REMOTE_VNC) {
		bool tcp = s->desk.listen && desktop_listen_parse(s->desk.listen, addr, sizeof(addr), &port) == 0;
		start(w, "graphics");
		attr(w, "type", r == REMOTE_SPICE ? "spice" : "vnc");
		if (tcp)
			attrf(w, "port", "%u", port);
		start(w, "listen");
		attr(w, "type", tcp ? "address" : "socket");
		if (tcp)
			attr(w, "address", addr);
		end(w);
		end(w);
	}
	if (v == VIDEO_VIRTIO || v == VIDEO_QXL) {
		start(w, "video");
		empty1(w, "model", "type", v == VIDEO_QXL ? "qxl" : "virtio");
		mmio(w, micro);
		end(w);
	}
	if (!micro && (desktop_playback(&s->desk) || desktop_capture(&s->desk))) {
		const char *dev = s->desk.audiodev ? s->desk.audiodev : "pa";
		start(w, "sound");
		attr(w, "model", "ich6");
		empty1(w, "codec", "type", desktop_capture(&s->desk) ? "duplex" : "output");
		empty1(w, "audio", "id", "1");
		end(w);
		start(w, "audio");
		attr(w, "id", "1");
		attr(w, "type", !strcmp(dev, "pa") ? "pulseaudio" : dev);
		end(w);
	}
}

static int write_devices(struct w *w, const struct domain_xml_input *in, struct hutch_error *err)
{
	const struct vm_spec *s = in->spec;
	bool micro = is_micro(s);
	start(w, "devices");
	if (in->emulator)
		elem(w, "emulator", in->emulator);
	if (in->disk) {
		/* a container image's VM: its root disk on virtio-mmio, the kernel booted directly */
		write_disk(w, in->disk, "qcow2", "vda", false, !micro, micro);
		if (in->seed)
			/* virtio, not a CD-ROM: cloud kernels have no AHCI (as the qemu backend) */
			write_disk(w, in->seed, "raw", "vdb", true, false, micro);
	} else if (in->snapshot_disk)
		write_snapshot_disk(w, in->snapshot_disk);
	if (s->net_mode == NET_USER && in->passt) {
		int r = write_passt_interface(w, s, err);
		if (r < 0)
			return r;
	}
	int fr = write_filesystems(w, in, micro, err);
	if (fr < 0)
		return fr;
	write_console(w, in);
	start(w, "controller"); /* USB only for usb: devices (image VMs); microvm has no bus for it */
	attr(w, "type", "usb");
	attr(w, "model", s->n_usb && !micro ? "qemu-xhci" : "none");
	end(w);
	start(w, "controller");
	attr(w, "type", "virtio-serial");
	attr(w, "index", "0");
	mmio(w, micro);
	end(w);
	write_agent_channel(w);
	if (in->tpm && !micro) {
		start(w, "tpm");
		attr(w, "model", "tpm-crb");
		start(w, "backend");
		attr(w, "type", "emulator");
		attr(w, "version", "2.0");
		end(w);
		end(w);
	}
	write_hostdevs(w, s);
	start(w, "memballoon");
	attr(w, "model", s->balloon_off ? "none" : "virtio");
	if (!s->balloon_off)
		mmio(w, micro);
	end(w);
	start(w, "rng");
	attr(w, "model", "virtio");
	empty1(w, "backend", "model", "random");
	mmio(w, micro);
	end(w);
	write_desktop(w, s, micro);
	write_snippets(w, in->snippets, true);
	end(w);
	return 0;
}

static void write_metadata(struct w *w, const struct domain_xml_input *in)
{
	start(w, "metadata");
	if (!w->failed &&
	    xmlTextWriterStartElementNS(w->x, BAD_CAST DOMAIN_XML_NS_PREFIX, BAD_CAST "vm", BAD_CAST DOMAIN_XML_NS) < 0)
		w->failed = true;
	attr(w, "name", in->vm_name);
	if (in->vm_dir)
		attr(w, "dir", in->vm_dir);
	end(w);
	end(w);
}

static void write_sysinfo(struct w *w, const struct domain_xml_input *in)
{
	if (!in->smbios_cred || is_micro(in->spec))
		return;
	start(w, "sysinfo");
	attr(w, "type", "smbios");
	start(w, "oemStrings");
	elem(w, "entry", in->smbios_cred);
	end(w);
	end(w);
}

int domain_xml_render(const struct domain_xml_input *in, char **ret, struct hutch_error *err)
{
	int r = lazy_xml_load(err);
	if (r < 0)
		return r;
	const struct vm_spec *s = in->spec;
	bool micro = is_micro(s);
	if (micro && (!in->kernel || !in->initrd || !in->cmdline))
		return hutch_error_set(err, EINVAL, "micro VM '%s' has no kernel or initramfs", in->vm_name);
	if ((!micro || s->source == SOURCE_OCI) && !in->disk)
		return hutch_error_set(err, EINVAL, "VM '%s' has no disk", in->vm_name);
	if (!micro && uefi(s) && (!in->fw_code || !in->nvram))
		return hutch_error_set(err, EINVAL, "UEFI VM '%s' has no firmware or NVRAM", in->vm_name);
	/* A link is a -netdev stream, which libvirt 9.0 cannot express (<interface type='vhostuser'> is
	 * another protocol), and a client's side is joined again over QMP after its netvm restarts,
	 * which libvirt keeps to itself (qemu-monitor-command would taint the domain). */
	if (s->net_mode == NET_NETVM || s->is_netvm)
		return hutch_error_set(err, ENOTSUP,
				       "VM '%s': netvm links (network: {%s}) need the qemu backend: libvirt 9.0 has no "
				       "interface for QEMU's -netdev stream (use backend: qemu)",
				       in->vm_name, s->is_netvm ? "is_netvm: true" : "netvm: NAME");
	bool qemu_net = s->net_mode == NET_USER && !in->passt;

	xmlBufferPtr buf;
	struct w w;
	if ((r = w_open(&w, &buf, err)) < 0)
		return r;
	xmlTextWriterPtr x = w.x;
	xmlTextWriterSetIndent(x, 1);
	xmlTextWriterSetIndentString(x, BAD_CAST "  ");
	start(&w, "domain");
	attr(&w, "type", in->kvm ? "kvm" : "qemu");
	if (qemu_net)
		attr(&w, "xmlns:qemu", QEMU_NS);
	elem(&w, "name", in->domain);
	if (in->uuid)
		elem(&w, "uuid", in->uuid);
	write_metadata(&w, in);
	start(&w, "memory");
	attr(&w, "unit", "MiB");
	_cleanup_free_ char *mem = xasprintf("%llu", (unsigned long long)(s->memory / (1024 * 1024)));
	text(&w, mem);
	end(&w);
	_cleanup_free_ char *cpus = xasprintf("%u", s->cpus ? s->cpus : 1);
	elem(&w, "vcpu", cpus);
	write_sysinfo(&w, in);
	write_os(&w, in);
	write_features_cpu(&w, in);
	r = write_devices(&w, in, err);
	if (r == 0 && qemu_net)
		r = write_qemu_net(&w, in, err);
	if (r == 0)
		write_snippets(&w, in->snippets, false);
	end(&w); /* domain */
	if (w_close(&w, buf, r == 0, ret) && r == 0)
		r = hutch_error_set(err, EIO, "cannot write the domain XML of '%s'", in->vm_name);
	return r;
}

/* libvirt's device elements (domaincommon.rng, <devices>); everything else is domain-level. */
static const char *const device_elements[] = {
	"disk",	    "controller",  "lease",    "filesystem", "interface",  "input",   "sound",	   "hostdev",
	"graphics", "video",	   "console",  "serial",     "parallel",   "channel", "smartcard", "hub",
	"redirdev", "redirfilter", "rng",      "tpm",	     "memballoon", "panic",   "shmem",	   "memory",
	"iommu",    "vsock",	   "watchdog", "crypto",     "audio",
};

int domain_xml_check_snippet(const char *xml, bool *ret_device, struct hutch_error *err)
{
	int r = lazy_xml_load(err);
	if (r < 0)
		return r;
	size_t len = strlen(xml);
	if (len == 0 || len > 64 * 1024)
		return hutch_error_set(err, EINVAL, len ? "longer than 64 KiB" : "empty");
	xmlDocPtr doc = xmlReadMemory(xml, (int)len, "snippet.xml", NULL,
				      XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (!doc) {
		const xmlError *e = xmlGetLastError();
		_cleanup_free_ char *why = xstrdup(e && e->message ? e->message : "not well-formed XML");
		why[strcspn(why, "\n")] = 0;
		return hutch_error_set(err, EINVAL, "not well-formed XML: %s", why);
	}
	xmlNodePtr root = xmlDocGetRootElement(doc);
	bool dev = false;
	for (size_t i = 0; root && i < ARRAY_SIZE(device_elements); i++)
		dev = dev || !strcmp((const char *)root->name, device_elements[i]);
	bool is_domain = root && !strcmp((const char *)root->name, "domain");
	xmlFreeDoc(doc);
	if (is_domain)
		return hutch_error_set(err, EINVAL, "a whole <domain> is not a snippet");
	if (ret_device)
		*ret_device = dev;
	return 0;
}
int domain_xml_usb_hostdev(unsigned vendor, unsigned product, unsigned bus, unsigned dev, char **ret,
			   struct hutch_error *err)
{
	int r = lazy_xml_load(err);
	if (r < 0)
		return r;
	xmlBufferPtr buf;
	struct w w;
	if ((r = w_open(&w, &buf, err)) < 0)
		return r;
	write_usb_hostdev(&w, vendor, product, bus, dev);
	if (w_close(&w, buf, true, ret))
		return hutch_error_set(err, EIO, "cannot write the hostdev XML of %04x:%04x", vendor, product);
	return 0;
}
#endif
