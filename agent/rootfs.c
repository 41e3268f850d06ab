/* The initramfs as a shim: a container image's root filesystem becomes the root. A plain OCI image
 * (no kernel of its own) boots the micro kernel with hutch.root=/dev/vda on the command line; PID 1
 * mounts that disk, grows its ext4 to the disk's size (capped by hutch.rootsize=BYTES), moves
 * /dev, /proc, /sys and /run into it and makes it the root (what switch_root does). The agent goes
 * on as PID 1 there, so exec, run and shell see the image's files, users and programs. A bootc image
 * boots its own kernel and systemd with hutch.growroot=/dev/vda: its agent (a service) grows the
 * root the same way when it starts. */
#include "agent.h"

#include <sys/statfs.h>

#ifndef BLKGETSIZE64 /* <linux/fs.h>, which musl-gcc does not see */
#define BLKGETSIZE64 _IOR(0x12, 114, size_t)
#endif
#ifndef EXT4_IOC_RESIZE_FS
#define EXT4_IOC_RESIZE_FS _IOW('f', 16, uint64_t)
#endif

/* The value of KEY (e.g. "hutch.root=") on the command line, at most n-1 bytes. */
static bool cmdline_value(const char *cmdline, const char *key, char *out, size_t n)
{
	size_t kl = strlen(key);
	for (const char *p = cmdline; p && *p;) {
		p += strspn(p, " \n");
		size_t len = strcspn(p, " \n");
		if (len > kl && !strncmp(p, key, kl) && len - kl < n) {
			memcpy(out, p + kl, len - kl);
			out[len - kl] = 0;
			return true;
		}
		p += len;
	}
	return false;
}

/* Online resize: the image's filesystem is as small as its content, the disk is as big as the
 * VM's disk: size. */
static void grow_root(const char *dev, const char *mnt, const char *cmdline)
{
	int bfd = open(dev, O_RDONLY | O_CLOEXEC);
	uint64_t bytes = 0;
	if (bfd < 0 || ioctl(bfd, BLKGETSIZE64, &bytes) < 0) {
		if (bfd >= 0)
			close(bfd);
		return;
	}
	close(bfd);
	char cap[32];
	if (cmdline_value(cmdline, "hutch.rootsize=", cap, sizeof(cap))) {
		unsigned long long c = strtoull(cap, NULL, 10);
		if (c > 0 && c < bytes)
			bytes = c;
	}
	struct statfs sf;
	int fd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fstatfs(fd, &sf) < 0 || sf.f_bsize <= 0) {
		if (fd >= 0)
			close(fd);
		return;
	}
	uint64_t blocks = bytes / (uint64_t)sf.f_bsize;
	if (blocks > (uint64_t)sf.f_blocks + 256 && ioctl(fd, EXT4_IOC_RESIZE_FS, &blocks) < 0)
		logmsg("root: cannot grow to %llu blocks: %s", (unsigned long long)blocks, strerror(errno));
	close(fd);
}

/* ext4 asks the crypto API for crc32c whatever the filesystem's features, and without modprobe in
 * the initramfs nothing loads it on request: load it here, from the initramfs's module list. */
static void load_crc32c(void)
{
	struct utsname u;
	uname(&u);
	char list[256];
	snprintf(list, sizeof(list), "/lib/modules/%s/hutch.load", u.release);
	char *text = read_small_file(list, 65536);
	for (char *save = NULL, *line = text ? strtok_r(text, "\n", &save) : NULL; line;
	     line = strtok_r(NULL, "\n", &save)) {
		const char *base = strrchr(line, '/');
		if (!base || strncmp(base, "/crc32c_generic.ko", 18))
			continue;
		char path[512];
		snprintf(path, sizeof(path), "/lib/modules/%s/%s", u.release, line);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0 && syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST)
			logmsg("root: module crc32c_generic: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
	}
	free(text);
}

void disk_root_grow_from_cmdline(const char *cmdline)
{
	char dev[64];
	struct stat root, disk;
	if (!cmdline_value(cmdline, "hutch.growroot=", dev, sizeof(dev)) || strncmp(dev, "/dev/", 5))
		return;
	/* only the filesystem on that disk: a root elsewhere (a guest that moved it) is not ours to grow */
	if (stat("/", &root) < 0 || stat(dev, &disk) < 0 || !S_ISBLK(disk.st_mode) || root.st_dev != disk.st_rdev)
		return;
	grow_root(dev, "/", cmdline);
}

void disk_root_from_cmdline(const char *cmdline)
{
	char dev[64];
	if (!cmdline_value(cmdline, "hutch.root=", dev, sizeof(dev)) || strncmp(dev, "/dev/", 5))
		return;
	for (int i = 0; i < 250 && access(dev, F_OK) < 0; i++)
		usleep(20000);
	load_crc32c();
	mkdir("/sysroot", 0755);
	if (mount(dev, "/sysroot", "ext4", MS_NOATIME, NULL) < 0) {
		logmsg("root: cannot mount %s: %s; staying in the initramfs", dev, strerror(errno));
		return;
	}
	grow_root(dev, "/sysroot", cmdline);
	static const char *const api[] = {"/dev", "/proc", "/sys", "/run"};
	for (size_t i = 0; i < sizeof(api) / sizeof(api[0]); i++) {
		char target[64];
		snprintf(target, sizeof(target), "/sysroot%s", api[i]);
		mkdir(target, 0755);
		if (mount(api[i], target, NULL, MS_MOVE, NULL) < 0)
			logmsg("root: cannot move %s: %s", api[i], strerror(errno));
	}
	if (chdir("/sysroot") < 0 || mount("/sysroot", "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0 ||
	    chdir("/") < 0) {
		logmsg("root: cannot switch to %s: %s", dev, strerror(errno));
		return;
	}
	/* the image's /tmp is a dir on its disk; a fresh tmpfs as a container runtime would not give */
	mkdir("/tmp", 01777);
}
