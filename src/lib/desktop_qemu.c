/* Display and sound for QEMU. The remote display listens on a unix socket in the VM's run dir
 * (mode 0700), so no TCP port is open unless display.listen asks for one on loopback. No SPICE
 * agent channel is added: the guest never reaches the host clipboard through the viewer
 * (`hutch clip` copies on request instead). */
#include "desktop_qemu.h"

#include <stdlib.h>
#include <string.h>

#define ARG(...) *argv = strv_push(*argv, xasprintf(__VA_ARGS__))

bool desktop_needs_pci(const struct vm_spec *s) { return desktop_playback(&s->desk) || desktop_capture(&s->desk); }

/* QEMU's option syntax reads ',,' as a literal comma. */
static char *opt_escape(const char *s)
{
	struct strbuf sb = STRBUF_INIT;
	for (; s && *s; s++) {
		if (*s == ',')
			strbuf_addch(&sb, ',');
		strbuf_addch(&sb, *s);
	}
	return strbuf_detach(&sb, NULL);
}

static int video_args(const struct qemu_config *c, bool micro, char ***argv, struct hutch_error *err)
{
	switch (desktop_video(&c->spec->desk)) {
	case VIDEO_VIRTIO:
		/* micro: virtio-mmio, which microvm makes legacy (virtio 0.9) unless told otherwise, and
		 * the kernel's virtio-gpu driver only binds to modern devices; q35: virtio-vga, so
		 * firmware and boot loader draw on it too */
		if (micro) {
			ARG("-global");
			ARG("virtio-mmio.force-legacy=false");
		}
		ARG("-device");
		ARG("%s", micro ? "virtio-gpu-device" : "virtio-vga");
		return 0;
	case VIDEO_QXL:
		if (micro)
			return hutch_error_set(err, EINVAL,
					       "VM '%s': display.video qxl is a PCI VGA device, which micro VMs do not "
					       "have: use virtio",
					       c->name);
		ARG("-device");
		ARG("qxl-vga");
		return 0;
	case VIDEO_UNSET:
	case VIDEO_NONE:
	default:
		return 0;
	}
}

static void remote_args(const struct qemu_config *c, char ***argv)
{
	const struct vm_desktop *d = &c->spec->desk;
	enum display_remote rem = desktop_remote(d);
	if (rem != REMOTE_SPICE && rem != REMOTE_VNC)
		return;
	char addr[32] = "";
	unsigned port = 0;
	if (d->listen && desktop_listen_parse(d->listen, addr, sizeof(addr), &port) < 0)
		return; /* the parser refused it already */
	_cleanup_free_ char *sock = desktop_socket_path(c->spec, c->run_dir);
	_cleanup_free_ char *esock = opt_escape(sock);
	if (rem == REMOTE_VNC) {
		ARG("-vnc");
		if (d->listen)
			ARG("%s:%u", addr, port - 5900);
		else
			ARG("unix:%s", esock);
	} else {
		ARG("-spice");
		if (d->listen)
			ARG("addr=%s,port=%u,disable-ticketing=on", addr, port);
		else
			ARG("unix=on,addr=%s,disable-ticketing=on", esock);
	}
}

static void sound_args(const struct qemu_config *c, char ***argv)
{
	const struct vm_desktop *d = &c->spec->desk;
	if (!desktop_playback(d) && !desktop_capture(d))
		return;
	const char *wav = getenv(DESKTOP_ENV_WAV);
	ARG("-audiodev");
	if (wav && *wav) {
		_cleanup_free_ char *w = opt_escape(wav);
		ARG("wav,id=snd0,path=%s", w);
	} else {
		ARG("%s,id=snd0", d->audiodev ? d->audiodev : "pa");
	}
	ARG("-device");
	ARG("intel-hda,id=hda0");
	ARG("-device");
	/* hda-output has no input at all: capture stays off unless asked for. mixer=off: the codec has
	 * no amplifiers, so a guest without a mixer tool (micro) is not muted by the codec's default
	 * and guest volume is the guest's software volume; the host's mixer stays the host's. */
	ARG("%s,audiodev=snd0,mixer=off", desktop_capture(d) ? "hda-duplex" : "hda-output");
}

int desktop_qemu_args(const struct qemu_config *c, char ***argv, struct hutch_error *err)
{
	bool micro = c->spec->source == SOURCE_TEMPLATE;
	int r = video_args(c, micro, argv, err);
	if (r < 0)
		return r;
	remote_args(c, argv);
	sound_args(c, argv);
	return 0;
}

char *desktop_socket_path(const struct vm_spec *s, const char *run_dir)
{
	enum display_remote rem = desktop_remote(&s->desk);
	if (s->desk.listen || (rem != REMOTE_SPICE && rem != REMOTE_VNC))
		return NULL;
	return xasprintf("%s/%s", run_dir, rem == REMOTE_SPICE ? "spice.sock" : "vnc.sock");
}

int desktop_uri(const struct vm_spec *s, const char *run_dir, char **ret, struct hutch_error *err)
{
	enum display_remote rem = desktop_remote(&s->desk);
	if (rem != REMOTE_SPICE && rem != REMOTE_VNC)
		return hutch_error_set(err, ENODEV,
				       "'%s' has no remote display: add display: {video: virtio, remote: spice} to its "
				       "spec",
				       s->name);
	const char *scheme = rem == REMOTE_SPICE ? "spice" : "vnc";
	if (s->desk.listen) {
		char addr[32];
		unsigned port;
		if (desktop_listen_parse(s->desk.listen, addr, sizeof(addr), &port) < 0)
			return hutch_error_set(err, EINVAL, "invalid display.listen '%s'", s->desk.listen);
		*ret = xasprintf("%s://%s:%u", scheme, addr, port);
		return 0;
	}
	_cleanup_free_ char *sock = desktop_socket_path(s, run_dir);
	*ret = xasprintf("%s+unix://%s", scheme, sock);
	return 0;
}
