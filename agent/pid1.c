/* PID 1 in the micro VM: API filesystems, the virtio modules it needs, hostname, loopback. */
#include "agent.h"

/* ---- PID 1 setup ---- */

void mount_api_filesystems(void)
{
	mkdir("/proc", 0555);
	mkdir("/sys", 0555);
	mkdir("/dev", 0755);
	mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
	mkdir("/dev/pts", 0755);
	mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "gid=5,mode=0620,ptmxmode=0666");
	mkdir("/dev/shm", 01777);
	mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
	mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	symlink("/proc/self/fd", "/dev/fd");
	symlink("/proc/self/fd/0", "/dev/stdin");
	symlink("/proc/self/fd/1", "/dev/stdout");
	symlink("/proc/self/fd/2", "/dev/stderr");
}

char *read_small_file(const char *path, size_t max)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	char *buf = malloc(max + 1);
	size_t got = 0;
	if (buf) {
		ssize_t n;
		while (got < max && (n = read(fd, buf + got, max - got)) > 0)
			got += (size_t)n;
		buf[got] = 0;
	}
	close(fd);
	return buf;
}

/* Module parameters given on the kernel command line as MOD.param=value. For loadable modules the
 * kernel does not apply them itself; modprobe normally does. */
static void module_params(const char *cmdline, const char *mod, char *out, size_t outlen)
{
	size_t ml = strlen(mod);
	out[0] = 0;
	char *copy = strdup(cmdline ? cmdline : "");
	for (char *save = NULL, *tok = strtok_r(copy, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save)) {
		bool match = strlen(tok) > ml + 1 && tok[ml] == '.';
		for (size_t i = 0; match && i < ml; i++) {
			char a = tok[i] == '-' ? '_' : tok[i], b = mod[i] == '-' ? '_' : mod[i];
			match = a == b;
		}
		if (match && strlen(out) + strlen(tok + ml + 1) + 2 < outlen) {
			if (out[0])
				strcat(out, " ");
			strcat(out, tok + ml + 1);
		}
	}
	free(copy);
}

/* Modules that only matter when their device is there. Loading all twenty under TCG costs a few
 * hundred ms of boot; microvm has no PCI, and disks, 9p shares and vsock are optional. */
static const struct {
	const char *mod;
	int virtio_id; /* the device that needs it; -1 = a PCI bus */
} optional_mods[] = {
	{"virtio_pci", -1},
	{"virtio_pci_legacy_dev", -1},
	{"virtio_pci_modern_dev", -1},
	{"virtio_net", 1},
	{"net_failover", 1},
	{"failover", 1},
	{"virtio_blk", 2},
	{"ext4", 2}, /* a container image's root (rootfs.c) */
	{"jbd2", 2},
	{"mbcache", 2},
	{"crc16", 2},
	{"virtio_balloon", 5},
	{"9pnet_virtio", 9},
	{"9p", 9},
	{"9pnet", 9},
	{"fscache", 9},
	{"netfs", 9},
	{"vmw_vsock_virtio_transport", 19},
	{"vmw_vsock_virtio_transport_common", 19},
	{"vsock", 19},
	/* a netvm's NAT (agent/net.c): -2 = only in a netvm */
	{"crc32c_generic", -2},
	{"libcrc32c", -2},
	{"nfnetlink", -2},
	{"nf_tables", -2},
	{"nf_defrag_ipv4", -2},
	{"nf_defrag_ipv6", -2},
	{"nf_conntrack", -2},
	{"nf_nat", -2},
	{"nft_ct", -2},
	{"nft_masq", -2},
	{"nft_chain_nat", -2},
	{"virtiofs", 26},
	{"fuse", 26},
	/* display: virtio-gpu (16) and the DRM core; sound: the HD audio controller on PCI */
	{"virtio_gpu", 16},
	{"virtio_dma_buf", 16},
	{"drm_shmem_helper", 16},
	{"drm_kms_helper", 16},
	{"drm", 16},
	{"snd_hda_intel", -1},
	{"snd_hda_codec_generic", -1},
	{"snd_hda_codec", -1},
	{"snd_hda_core", -1},
	{"snd_intel_dspcfg", -1},
	{"snd_intel_sdw_acpi", -1},
	{"snd_hwdep", -1},
	{"snd_pcm", -1},
	{"snd_timer", -1},
	{"snd", -1},
	{"soundcore", -1},
	{"ledtrig_audio", -1},
};

static bool dir_has_entries(const char *path)
{
	DIR *d = opendir(path);
	if (!d)
		return false;
	struct dirent *de;
	bool any = false;
	while (!any && (de = readdir(d)))
		any = de->d_name[0] != '.';
	closedir(d);
	return any;
}

/* Is a virtio device with this id present (on the mmio or pci transport, once that is loaded)? */
static bool virtio_present(int id)
{
	DIR *d = opendir("/sys/bus/virtio/devices");
	if (!d)
		return false;
	struct dirent *de;
	bool found = false;
	while (!found && (de = readdir(d))) {
		if (de->d_name[0] == '.' || strlen(de->d_name) > 32)
			continue;
		char p[96];
		snprintf(p, sizeof(p), "/sys/bus/virtio/devices/%.32s/device", de->d_name);
		char *v = read_small_file(p, 32);
		found = v && strtol(v, NULL, 16) == id;
		free(v);
	}
	closedir(d);
	return found;
}

/* A module listed several times (crc32c_generic: ext4 and a netvm's NAT) is wanted when any of its
 * rows wants it; one listed nowhere always is. */
static bool module_wanted(const char *mod)
{
	bool listed = false;
	for (size_t i = 0; i < sizeof(optional_mods) / sizeof(optional_mods[0]); i++) {
		if (strcmp(optional_mods[i].mod, mod) != 0)
			continue;
		listed = true;
		int id = optional_mods[i].virtio_id;
		if (id == -2 ? net_is_netvm() : id < 0 ? dir_has_entries("/sys/bus/pci/devices") : virtio_present(id))
			return true;
	}
	return !listed;
}

void load_modules(const char *release, const char *cmdline)
{
	char list[256];
	snprintf(list, sizeof(list), "/lib/modules/%s/hutch.load", release);
	char *text = read_small_file(list, 65536);
	if (!text)
		return;
	for (char *save = NULL, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char path[512], mod[128], params[1024];
		snprintf(path, sizeof(path), "/lib/modules/%s/%s", release, line);
		const char *base = strrchr(line, '/');
		snprintf(mod, sizeof(mod), "%s", base ? base + 1 : line);
		char *dot = strchr(mod, '.');
		if (dot)
			*dot = 0;
		for (char *p = mod; *p; p++)
			if (*p == '-')
				*p = '_';
		/* the list is in dependency order, so the bus drivers are loaded before this is asked */
		if (!module_wanted(mod))
			continue;
		module_params(cmdline, mod, params, sizeof(params));
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			logmsg("module %s: %s", path, strerror(errno));
			continue;
		}
		if (syscall(SYS_finit_module, fd, params, 0) < 0 && errno != EEXIST)
			logmsg("module %s: %s", mod, strerror(errno));
		close(fd);
	}
	free(text);
}

void setup_hostname(const char *cmdline)
{
	const char *h = cmdline ? strstr(cmdline, "hutch.hostname=") : NULL;
	char name[64] = "micro";
	if (h) {
		h += strlen("hutch.hostname=");
		size_t n = strcspn(h, " \n");
		if (n > 0 && n < sizeof(name)) {
			memcpy(name, h, n);
			name[n] = 0;
		}
	}
	sethostname(name, strlen(name));
}

void loopback_up(void)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	struct ifreq ifr = {0};
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) == 0) {
		ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
		ioctl(fd, SIOCSIFFLAGS, &ifr);
	}
	close(fd);
}
