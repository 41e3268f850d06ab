/* Shares, mounted by the agent.
 *
 * In micro, PID 1 mounts what the kernel command line lists (hutch.share=TAG,MOUNT,ro|rw,9p|virtiofs,
 * written by the host) before it says HELLO, so the first program already sees them. In every guest
 * the host then sends one MOUNT per share after HELLO; the answer is the result of the boot-time
 * mount, or of mounting now (cloud guests, where the agent is a service and the kernel command line
 * is the image's). The guest only ever names tags and its own mount points: the host dirs behind
 * them come from the host's spec. */
#include "agent.h"

#define MAX_MOUNTS 32
#define NINEP_OPTS "trans=virtio,version=9p2000.L,msize=262144"

struct mount_entry {
	char tag[PROTO_MOUNT_TAG_MAX + 1];
	char path[PROTO_MOUNT_PATH_MAX + 1];
	uint8_t flags;
	int err; /* 0: mounted */
	char msg[PROTO_MOUNT_MSG_MAX + 1];
};
static struct mount_entry mounts[MAX_MOUNTS];
static size_t n_mounts;

static int mkdir_parents(const char *path)
{
	char p[PROTO_MOUNT_PATH_MAX + 1];
	snprintf(p, sizeof(p), "%s", path);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = 0;
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	if (mkdir(p, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* Already a mount point: its device differs from its parent's (or it is /). */
static bool is_mountpoint(const char *path)
{
	char parent[PROTO_MOUNT_PATH_MAX + 4];
	snprintf(parent, sizeof(parent), "%s/..", path);
	struct stat a, b;
	return stat(path, &a) == 0 && stat(parent, &b) == 0 && (a.st_dev != b.st_dev || a.st_ino == b.st_ino);
}

/* The home's root belongs to its user: the one named like the dir, else the first user a cloud image
 * makes (uid 1000), who may not exist yet when the agent starts. */
static void chown_home(const char *path)
{
	const char *base = strrchr(path, '/');
	struct passwd *pw = base && base[1] ? getpwnam(base + 1) : NULL;
	uid_t uid = pw ? pw->pw_uid : (strcmp(path, "/root") ? 1000 : 0);
	gid_t gid = pw ? pw->pw_gid : (strcmp(path, "/root") ? 1000 : 0);
	if (chown(path, uid, gid) < 0)
		logmsg("home %s: chown: %s", path, strerror(errno));
}

static const char *release(void)
{
	static struct utsname u;
	if (!u.release[0])
		uname(&u);
	return u.release;
}

static void mount_one(struct mount_entry *e)
{
	e->err = 0;
	e->msg[0] = 0;
	bool virtiofs = e->flags & MOUNT_VIRTIOFS;
	int r = mkdir_parents(e->path);
	if (r < 0) {
		e->err = -r;
		snprintf(e->msg, sizeof(e->msg), "cannot create the mount point %.120s: %s", e->path, strerror(-r));
		return;
	}
	unsigned long fl = MS_NOSUID | MS_NODEV | ((e->flags & MOUNT_RO) ? MS_RDONLY : 0);
	if (mount(e->tag, e->path, virtiofs ? "virtiofs" : "9p", fl, virtiofs ? "" : NINEP_OPTS) < 0) {
		int err = errno;
		if (err == EBUSY && is_mountpoint(e->path))
			return; /* mounted by an earlier agent */
		e->err = err;
		if (err == ENODEV) /* the kernel knows no such file system, even after modprobe */
			snprintf(e->msg, sizeof(e->msg), "this guest's kernel %s has no %s file system%s", release(),
				 virtiofs ? "virtiofs" : "9p",
				 virtiofs ? ""
					  : " (Debian's cloud kernel is built without it; linux-image-amd64 has it)");
		else
			snprintf(e->msg, sizeof(e->msg), "mount -t %s %s %.120s: %s", virtiofs ? "virtiofs" : "9p",
				 e->tag, e->path, strerror(err));
		logmsg("share %s", e->msg);
		return;
	}
	if ((e->flags & MOUNT_HOME) && !(e->flags & MOUNT_RO))
		chown_home(e->path);
}

static struct mount_entry *entry_for(const char *tag, const char *path, uint8_t flags)
{
	for (size_t i = 0; i < n_mounts; i++)
		if (!strcmp(mounts[i].tag, tag))
			return &mounts[i];
	if (n_mounts >= MAX_MOUNTS || strlen(tag) > PROTO_MOUNT_TAG_MAX || strlen(path) > PROTO_MOUNT_PATH_MAX)
		return NULL;
	struct mount_entry *e = &mounts[n_mounts++];
	memset(e, 0, sizeof(*e));
	snprintf(e->tag, sizeof(e->tag), "%s", tag);
	snprintf(e->path, sizeof(e->path), "%s", path);
	e->flags = flags;
	e->err = -1; /* not tried */
	return e;
}

/* hutch.share=TAG,MOUNT,ro|rw,9p|virtiofs[,home] */
void mounts_from_cmdline(const char *cmdline)
{
	char *copy = strdup(cmdline ? cmdline : "");
	for (char *save = NULL, *tok = strtok_r(copy, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save)) {
		if (strncmp(tok, "hutch.share=", 12) != 0)
			continue;
		char *f[5] = {0}, *save2 = NULL;
		size_t n = 0;
		for (char *w = strtok_r(tok + 12, ",", &save2); w && n < 5; w = strtok_r(NULL, ",", &save2))
			f[n++] = w;
		if (n < 4 || f[1][0] != '/') {
			logmsg("bad share on the command line: %s", tok);
			continue;
		}
		uint8_t flags = (!strcmp(f[2], "ro") ? MOUNT_RO : 0) |
				(!strcmp(f[3], "virtiofs") ? MOUNT_VIRTIOFS : 0) |
				(n > 4 && !strcmp(f[4], "home") ? MOUNT_HOME : 0);
		struct mount_entry *e = entry_for(f[0], f[1], flags);
		if (e && e->err < 0)
			mount_one(e);
	}
	free(copy);
}

void handle_mount(const struct proto_frame *f)
{
	struct proto_mount m;
	if (proto_decode_mount(f, &m) < 0 || m.answer) {
		if (m.answer)
			proto_mount_free(&m);
		send_error(0, "malformed MOUNT");
		return;
	}
	struct mount_entry *e = entry_for(m.tag, m.path, m.flags);
	struct proto_buf b = {0};
	if (!e) {
		proto_encode_mount_answer(&b, &m, E2BIG, "too many shares");
	} else {
		/* A share this agent has not mounted (or failed to): try (again) now. */
		if (e->err != 0 || strcmp(e->path, m.path) != 0 || e->flags != m.flags) {
			snprintf(e->path, sizeof(e->path), "%s", m.path);
			e->flags = m.flags;
			mount_one(e);
		}
		proto_encode_mount_answer(&b, &m, e->err, e->msg);
	}
	send_buf(MSG_MOUNT, 0, &b);
	proto_mount_free(&m);
}
