/* The desktop side of the agent: a banner on the display of micro VMs, and the tools the host runs
 * through EXEC as `/proc/self/exe --TOOL ...` (the agent binary itself, wherever it is installed):
 * the clipboard (agent/clipboard.c), desktop-entry discovery and a test tone (agent/sound.c). */
#include "agent.h"

/* micro VMs with a video device: say on the screen what this is, since nothing else draws there
 * (the kernel's console is the serial port). */
void desktop_console_banner(void)
{
	if (access("/sys/bus/virtio/drivers/virtio_gpu", F_OK) != 0)
		return;
	int fd = -1;
	for (int i = 0; i < 50 && fd < 0; i++) {
		if (access("/dev/fb0", F_OK) == 0)
			fd = open("/dev/tty1", O_WRONLY | O_NOCTTY | O_CLOEXEC);
		if (fd < 0)
			usleep(20000);
	}
	if (fd < 0)
		return;
	struct utsname u;
	uname(&u);
	dprintf(fd,
		"\033[2J\033[H\033[1;37;44m hutch \033[0m micro VM '%s'\r\n\r\nkernel %s\r\n"
		"the guest agent is running; programs start with: hutch exec %s -- PROGRAM\r\n",
		u.nodename, u.release, u.nodename);
	close(fd);
}

int desktop_tool_main(int argc, char **argv)
{
	if (argc < 2)
		return -1;
	if (!strcmp(argv[1], "--clipboard"))
		return clipboard_tool(argc - 2, argv + 2);
	if (!strcmp(argv[1], "--desktop-entries"))
		return desktop_entries_tool(argc - 2, argv + 2);
	if (!strcmp(argv[1], "--icon"))
		return icon_tool(argc - 2, argv + 2);
	if (!strcmp(argv[1], "--tone"))
		return tone_tool(argc - 2, argv + 2);
	return -1;
}

static const char *const entry_dirs[] = {
	"/usr/share/applications",
	"/usr/local/share/applications",
	"/var/lib/flatpak/exports/share/applications",
};

#define ENTRY_FILE_MAX 65536

/* Print one file as "hutch-entry NAME LEN\n" + its bytes + "\n". The host trusts none of it. */
static long emit_entry(const char *dir, const char *name)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	if (fd < 0)
		return 0;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > ENTRY_FILE_MAX) {
		close(fd);
		return 0;
	}
	char *buf = malloc((size_t)st.st_size + 1);
	ssize_t n = buf ? read(fd, buf, (size_t)st.st_size) : -1;
	close(fd);
	if (n < 0) {
		free(buf);
		return 0;
	}
	printf("hutch-entry %s %zd\n", name, n);
	fwrite(buf, 1, (size_t)n, stdout);
	putchar('\n');
	free(buf);
	return n;
}

/* `--desktop-entries MAXCOUNT MAXBYTES`: the guest's *.desktop files, bounded in count and bytes. */
int desktop_entries_tool(int argc, char **argv)
{
	long max_count = argc > 0 ? strtol(argv[0], NULL, 10) : 256;
	long max_bytes = argc > 1 ? strtol(argv[1], NULL, 10) : 4 << 20;
	long count = 0, bytes = 0;
	for (size_t i = 0; i < sizeof(entry_dirs) / sizeof(entry_dirs[0]); i++) {
		DIR *d = opendir(entry_dirs[i]);
		struct dirent *de;
		while (d && (de = readdir(d)) && count < max_count) {
			size_t len = strlen(de->d_name);
			if (len < 9 || len > 128 || strcmp(de->d_name + len - 8, ".desktop") || de->d_name[0] == '.' ||
			    strchr(de->d_name, ' '))
				continue;
			if (bytes + ENTRY_FILE_MAX > max_bytes)
				break;
			long n = emit_entry(entry_dirs[i], de->d_name);
			if (n > 0) {
				bytes += n;
				count++;
			}
		}
		if (d)
			closedir(d);
	}
	return fflush(stdout) == 0 ? 0 : 1;
}

static bool icon_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64 || s[0] == '.' || strstr(s, ".."))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
		      strchr("._+-", s[i])))
			return false;
	return true;
}

/* `--icon NAME MAXBYTES`: the PNG of a themed icon (hicolor, near 48 px) or a pixmap. */
int icon_tool(int argc, char **argv)
{
	static const char *const sizes[] = {"48x48", "64x64", "32x32", "128x128", "256x256"};
	if (argc < 2 || !icon_name_ok(argv[0]))
		return 2;
	long max = strtol(argv[1], NULL, 10);
	char path[256];
	for (size_t i = 0; i <= sizeof(sizes) / sizeof(sizes[0]); i++) {
		if (i < sizeof(sizes) / sizeof(sizes[0]))
			snprintf(path, sizeof(path), "/usr/share/icons/hicolor/%s/apps/%s.png", sizes[i], argv[0]);
		else
			snprintf(path, sizeof(path), "/usr/share/pixmaps/%s.png", argv[0]);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		struct stat st;
		if (fd < 0)
			continue;
		if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > max) {
			close(fd);
			continue;
		}
		char buf[65536];
		ssize_t n;
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			write_all(1, buf, (size_t)n);
		close(fd);
		return 0;
	}
	return 1;
}
