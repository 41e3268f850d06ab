/* `--clipboard get|set MAX [TYPE]`: the guest's clipboard, for `hutch clip copy|paste`. TYPE is
 * text/plain (the default) or image/png (the file is then /run/hutch/clipboard.png). With a graphical
 * session the session's own clipboard is used (wl-paste/wl-copy under Wayland, xclip or xsel under
 * X11), run as the user who owns the display; without one, the file /run/hutch/clipboard, which
 * scripts in the guest may read and write too. Nothing is ever synced on its own: the host asks. */
#include "agent.h"

#define CLIP_FILE "/run/hutch/clipboard"
#define CLIP_FILE_PNG "/run/hutch/clipboard.png"

struct display_session {
	uid_t uid;
	gid_t gid;
	char env[2][300]; /* WAYLAND_DISPLAY + XDG_RUNTIME_DIR, or DISPLAY + XAUTHORITY */
	bool wayland;
};

static bool in_path(const char *prog)
{
	const char *path = getenv("PATH");
	char buf[512];
	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin";
	for (const char *p = path; *p;) {
		size_t n = strcspn(p, ":");
		snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, p, prog);
		if (access(buf, X_OK) == 0)
			return true;
		p += n + (p[n] == ':');
	}
	return false;
}

/* The first Wayland socket under /run/user/UID, or the X server :0, with its owner. */
static bool find_session(struct display_session *ds)
{
	memset(ds, 0, sizeof(*ds));
	DIR *d = opendir("/run/user");
	struct dirent *de;
	while (d && (de = readdir(d))) {
		char sock[300];
		struct stat st;
		if (de->d_name[0] == '.' || strlen(de->d_name) > 10)
			continue;
		snprintf(sock, sizeof(sock), "/run/user/%s/wayland-0", de->d_name);
		if (stat(sock, &st) == 0 && S_ISSOCK(st.st_mode) && in_path("wl-paste") && in_path("wl-copy")) {
			ds->uid = st.st_uid;
			ds->gid = st.st_gid;
			ds->wayland = true;
			snprintf(ds->env[0], sizeof(ds->env[0]), "WAYLAND_DISPLAY=wayland-0");
			snprintf(ds->env[1], sizeof(ds->env[1]), "XDG_RUNTIME_DIR=/run/user/%s", de->d_name);
			closedir(d);
			return true;
		}
	}
	if (d)
		closedir(d);
	struct stat st;
	if (stat("/tmp/.X11-unix/X0", &st) == 0 && (in_path("xclip") || in_path("xsel"))) {
		struct passwd *pw = getpwuid(st.st_uid);
		ds->uid = st.st_uid;
		ds->gid = pw ? pw->pw_gid : st.st_gid;
		snprintf(ds->env[0], sizeof(ds->env[0]), "DISPLAY=:0");
		snprintf(ds->env[1], sizeof(ds->env[1]), "XAUTHORITY=%s/.Xauthority", pw ? pw->pw_dir : "/root");
		return true;
	}
	return false;
}

/* Run the session's clipboard tool as the display's owner, stdin/stdout as given. */
static int run_tool(const struct display_session *ds, bool set, const char *type, int in_fd, int out_fd)
{
	bool text = !strcmp(type, "text/plain");
	const char *wl[2][4] = {{"wl-paste", "--no-newline", "--type", type}, {"wl-copy", "--type", type, NULL}};
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		dup2(in_fd, 0);
		dup2(out_fd, 1);
		if (ds->uid != 0 && (setgroups(0, NULL) < 0 || setgid(ds->gid) < 0 || setuid(ds->uid) < 0))
			_exit(126);
		putenv((char *)ds->env[0]);
		putenv((char *)ds->env[1]);
		if (ds->wayland) {
			const char *const *a = wl[set];
			char *argv[] = {(char *)a[0], (char *)a[1], (char *)a[2], (char *)a[3], NULL};
			execvp(argv[0], argv);
		} else if (in_path("xclip")) {
			char *argv[] = {"xclip",      "-selection", "clipboard", set ? "-i" : "-o", text ? NULL : "-t",
					(char *)type, NULL};
			execvp(argv[0], argv);
		} else if (!text) {
			fprintf(stderr, "hutch-agent: xsel carries text only: install xclip for %s\n", type);
			_exit(1);
		} else {
			char *argv[] = {"xsel", "--clipboard", set ? "--input" : "--output", NULL};
			execvp(argv[0], argv);
		}
		_exit(127);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}

/* Copy from in to out, at most max bytes; 2 when there was more. */
static int copy_capped(int in, int out, unsigned long max)
{
	char buf[65536];
	unsigned long total = 0;
	ssize_t n;
	while ((n = read(in, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR)) {
		if (n <= 0)
			continue;
		if (total + (unsigned long)n > max) {
			fprintf(stderr, "hutch-agent: the clipboard holds more than %lu bytes\n", max);
			return 2;
		}
		total += (unsigned long)n;
		if (write_all(out, buf, (size_t)n) < 0)
			return 1;
	}
	return n < 0 ? 1 : 0;
}

static int file_set(unsigned long max, const char *file)
{
	mkdir("/run/hutch", 0755);
	int fd = open("/run/hutch/.clipboard.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "hutch-agent: %s: %s\n", file, strerror(errno));
		return 1;
	}
	int r = copy_capped(0, fd, max);
	if (r == 0 && (fsync(fd) < 0 || rename("/run/hutch/.clipboard.tmp", file) < 0))
		r = 1;
	close(fd);
	if (r)
		unlink("/run/hutch/.clipboard.tmp");
	return r;
}

int clipboard_tool(int argc, char **argv)
{
	const char *type = argc > 2 ? argv[2] : "text/plain";
	if (argc < 2 || (strcmp(argv[0], "get") && strcmp(argv[0], "set")) ||
	    (strcmp(type, "text/plain") && strcmp(type, "image/png"))) {
		fprintf(stderr, "usage: hutch-agent --clipboard get|set MAX [text/plain|image/png]\n");
		return 2;
	}
	const char *file = strcmp(type, "image/png") ? CLIP_FILE : CLIP_FILE_PNG;
	bool set = !strcmp(argv[0], "set");
	unsigned long max = strtoul(argv[1], NULL, 10);
	struct display_session ds;
	if (find_session(&ds)) {
		if (!set) {
			int p[2];
			if (pipe(p) < 0)
				return 1;
			int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
			pid_t pid = fork();
			if (pid == 0) {
				close(p[0]);
				_exit(run_tool(&ds, false, type, devnull, p[1]));
			}
			close(p[1]);
			int r = copy_capped(p[0], 1, max);
			close(p[0]);
			int st;
			while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
				;
			return r ? r : (WIFEXITED(st) ? WEXITSTATUS(st) : 1);
		}
		/* the tool reads our stdin; bound it first through a pipe */
		int p[2];
		if (pipe(p) < 0)
			return 1;
		pid_t pid = fork();
		if (pid == 0) {
			close(p[1]);
			_exit(run_tool(&ds, true, type, p[0], 1));
		}
		close(p[0]);
		int r = copy_capped(0, p[1], max);
		close(p[1]);
		int st;
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		return r ? r : (WIFEXITED(st) ? WEXITSTATUS(st) : 1);
	}
	if (set)
		return file_set(max, file);
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : 1; /* nothing copied yet: an empty clipboard */
	int r = copy_capped(fd, 1, max);
	close(fd);
	return r;
}
