/* The monitor's side of shares (monitor_shares.h). */
#include "monitor_shares.h"

#include "unixsock.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

static const char *const state_names[] = {"not asked", "pending", "mounted", "failed", "no answer"};

/* virtiofsd serves one QEMU connection and exits when it goes; PDEATHSIG covers a monitor crash. */
static int spawn_virtiofsd(struct mon_shares *ms, size_t i, const char *vm_dir, struct hutch_error *err)
{
	const struct share_plan *p = &ms->plan->v[i];
	const char *bin = getenv("HUTCH_VIRTIOFSD");
	if (!bin || !*bin)
		bin = p->userns_wrap ? SHARES_QEMU_VIRTIOFSD : "/usr/libexec/virtiofsd";
	if (access(bin, X_OK) < 0)
		return hutch_error_set(err, ENOENT, "share '%s': virtiofsd not found at '%s' (Debian: virtiofsd)",
				       p->tag, bin);
	_cleanup_free_ char *log = xasprintf("%s/virtiofsd-%s.log", vm_dir, p->tag);
	_cleanup_free_ char *sock_arg = xasprintf("--socket-path=%s", p->sock);
	_cleanup_free_ char *dir_arg = xasprintf("--shared-dir=%s", p->host);
	_cleanup_free_ char *source_arg = xasprintf("source=%s", p->host);
	unlink(p->sock);
	/* the C virtiofsd listens on ours (shares.h: its own socket set-up wants /var/run) */
	_cleanup_close_ int lfd = -1;
	if (p->userns_wrap) {
		lfd = unix_listen(p->sock, err);
		if (lfd < 0)
			return hutch_error_wrap(err, "share '%s'", p->tag);
	}
	int logfd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (logfd < 0)
		return hutch_error_set(err, errno, "cannot create '%s': %s", log, strerror(errno));
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		close(logfd);
		return hutch_error_set(err, errno, "fork: %s", strerror(errno));
	}
	if (pid == 0) {
		child_die_with_parent(parent);
		int nul = open("/dev/null", O_RDWR);
		dup2(nul, 0);
		dup2(logfd, 1);
		dup2(logfd, 2);
		if (lfd == 3)
			fcntl(3, F_SETFD, 0);
		else if (lfd >= 0)
			dup2(lfd, 3); /* a dup has no FD_CLOEXEC */
		for (int fd = lfd >= 0 ? 4 : 3; fd < 1024; fd++)
			close(fd);
		if (lfd >= 0) {
			char *wrapped[] = {
				SHARES_UNSHARE, "--map-auto", "--map-root-user",   (char *)bin, "--fd=3", "-o",
				source_arg,	"-o",	      "sandbox=namespace", NULL};
			execv(SHARES_UNSHARE, wrapped);
			_exit(127);
		}
		char *argv[8] = {(char *)bin, sock_arg, dir_arg, "--sandbox", "namespace", NULL, NULL};
		if (p->readonly)
			argv[5] = "--readonly";
		execv(bin, argv);
		_exit(127);
	}
	close(logfd);
	ms->pid[i] = pid;
	if (lfd >= 0) {
		/* the socket is ours: QEMU's connection waits in its backlog; watch the start a little */
		for (int n = 0; n < 50; n++) {
			int st;
			if (waitpid(pid, &st, WNOHANG) == pid) {
				ms->pid[i] = 0;
				_cleanup_free_ char *last = file_last_line(log, 300);
				return hutch_error_set(err, EIO, "share '%s': virtiofsd exited at start%s%s (see %s)",
						       p->tag, last ? ": " : "", last ? last : "", log);
			}
			usleep(10000);
		}
		return 0;
	}
	for (int n = 0; n < 500; n++) {
		if (access(p->sock, F_OK) == 0)
			return 0;
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			ms->pid[i] = 0;
			_cleanup_free_ char *last = file_last_line(log, 300);
			return hutch_error_set(err, EIO, "share '%s': virtiofsd exited at start%s%s (see %s)", p->tag,
					       last ? ": " : "", last ? last : "", log);
		}
		usleep(10000);
	}
	return hutch_error_set(err, ETIMEDOUT, "share '%s': virtiofsd did not create its socket within 5 s (see %s)",
			       p->tag, log);
}

int mon_shares_start(struct mon_shares *ms, const struct shares *plan, const char *vm_dir, struct hutch_error *err)
{
	memset(ms, 0, sizeof(*ms));
	ms->plan = plan;
	for (size_t i = 0; plan && i < plan->n && i < SHARES_MAX; i++) {
		if (plan->v[i].via != SHARE_VIRTIOFS)
			continue;
		int r = spawn_virtiofsd(ms, i, vm_dir, err);
		if (r < 0) {
			mon_shares_stop(ms);
			return r;
		}
	}
	return 0;
}

bool mon_shares_reap(struct mon_shares *ms, pid_t pid, int status, char *what, size_t len)
{
	for (size_t i = 0; ms->plan && i < ms->plan->n && i < SHARES_MAX; i++) {
		if (ms->pid[i] != pid || pid <= 0)
			continue;
		ms->pid[i] = 0;
		snprintf(what, len, "virtiofsd for share '%s' exited (status 0x%x)", ms->plan->v[i].tag,
			 (unsigned)status);
		return true;
	}
	return false;
}

void mon_shares_stop(struct mon_shares *ms)
{
	for (size_t i = 0; i < SHARES_MAX; i++) {
		if (ms->pid[i] <= 0)
			continue;
		kill(ms->pid[i], SIGTERM);
		int st;
		for (int n = 0; n < 100 && waitpid(ms->pid[i], &st, WNOHANG) == 0; n++)
			usleep(10000);
		if (waitpid(ms->pid[i], &st, WNOHANG) == 0) {
			kill(ms->pid[i], SIGKILL);
			waitpid(ms->pid[i], &st, 0);
		}
		ms->pid[i] = 0;
	}
}

bool mon_shares_request(struct mon_shares *ms, size_t i, struct proto_buf *b, uint64_t now)
{
	if (!ms->plan || i >= ms->plan->n || i >= SHARES_MAX)
		return false;
	const struct share_plan *p = &ms->plan->v[i];
	uint8_t flags = (p->readonly ? MOUNT_RO : 0) | (p->via == SHARE_VIRTIOFS ? MOUNT_VIRTIOFS : 0) |
			(p->home ? MOUNT_HOME : 0);
	proto_encode_mount(b, p->tag, p->mount, flags);
	ms->state[i] = MOUNT_PENDING;
	ms->why[i][0] = 0;
	ms->asked_at = now ? now : 1;
	return true;
}

/* Guest text in a message: printable ASCII only. */
static void copy_printable(char *dst, size_t len, const char *untrusted)
{
	size_t k = 0;
	for (const char *p = untrusted; p && *p && k + 1 < len; p++)
		dst[k++] = (*p >= 32 && *p < 127) ? *p : '?';
	dst[k] = 0;
}

int mon_shares_answer(struct mon_shares *ms, const struct proto_frame *f)
{
	struct proto_mount untrusted_m;
	if (proto_decode_mount(f, &untrusted_m) < 0)
		return -1;
	if (!untrusted_m.answer) {
		proto_mount_free(&untrusted_m);
		return -1;
	}
	for (size_t i = 0; ms->plan && i < ms->plan->n && i < SHARES_MAX; i++) {
		const struct share_plan *p = &ms->plan->v[i];
		if (strcmp(p->tag, untrusted_m.tag) || strcmp(p->mount, untrusted_m.path) ||
		    ms->state[i] == MOUNT_NOT_ASKED)
			continue;
		ms->state[i] = untrusted_m.err == 0 ? MOUNT_DONE : MOUNT_FAILED;
		copy_printable(ms->why[i], sizeof(ms->why[i]), untrusted_m.err ? untrusted_m.msg : "");
		if (untrusted_m.err && !ms->why[i][0])
			snprintf(ms->why[i], sizeof(ms->why[i]), "error %d", (int)untrusted_m.err);
	}
	proto_mount_free(&untrusted_m);
	if (!mon_shares_waiting(ms))
		ms->asked_at = 0;
	return 0;
}

bool mon_shares_waiting(const struct mon_shares *ms)
{
	for (size_t i = 0; ms->plan && i < ms->plan->n && i < SHARES_MAX; i++)
		if (ms->state[i] == MOUNT_PENDING)
			return true;
	return false;
}

bool mon_shares_settled(const struct mon_shares *ms)
{
	for (size_t i = 0; ms->plan && i < ms->plan->n && i < SHARES_MAX; i++)
		if (ms->state[i] == MOUNT_NOT_ASKED || ms->state[i] == MOUNT_PENDING)
			return false;
	return true;
}

uint64_t mon_shares_deadline(const struct mon_shares *ms)
{
	return ms->asked_at && mon_shares_waiting(ms) ? ms->asked_at + MON_SHARES_ANSWER_MS : UINT64_MAX;
}

void mon_shares_expire(struct mon_shares *ms, uint64_t now)
{
	if (!ms->asked_at || now < ms->asked_at + MON_SHARES_ANSWER_MS)
		return;
	for (size_t i = 0; ms->plan && i < ms->plan->n && i < SHARES_MAX; i++)
		if (ms->state[i] == MOUNT_PENDING) {
			ms->state[i] = MOUNT_NO_ANSWER;
			snprintf(ms->why[i], sizeof(ms->why[i]),
				 "the agent did not answer within %d s (an older agent?)", MON_SHARES_ANSWER_MS / 1000);
		}
	ms->asked_at = 0;
}

json_object *mon_shares_json(const struct mon_shares *ms)
{
	json_object *a = json_object_new_array();
	for (size_t i = 0; ms->plan && i < ms->plan->n && i < SHARES_MAX; i++) {
		const struct share_plan *p = &ms->plan->v[i];
		json_object *o = json_object_new_object();
		json_object_object_add(o, "tag", json_object_new_string(p->tag));
		json_object_object_add(o, "host", json_object_new_string(p->host));
		json_object_object_add(o, "mount", json_object_new_string(p->mount));
		json_object_object_add(o, "readonly", json_object_new_boolean(p->readonly));
		json_object_object_add(o, "home", json_object_new_boolean(p->home));
		json_object_object_add(o, "via", json_object_new_string(shares_via_name(p->via)));
		json_object_object_add(o, "why", json_object_new_string(p->why ? p->why : ""));
		if (p->via == SHARE_9P)
			json_object_object_add(o, "security_model",
					       json_object_new_string(p->xattr ? "mapped-xattr" : "none"));
		json_object_object_add(o, "state", json_object_new_string(state_names[ms->state[i]]));
		if (ms->why[i][0])
			json_object_object_add(o, "error", json_object_new_string(ms->why[i]));
		if (p->warning)
			json_object_object_add(o, "warning", json_object_new_string(p->warning));
		json_object_array_add(a, o);
	}
	return a;
}

char *mon_shares_problems(const struct mon_shares *ms)
{
	struct strbuf sb = STRBUF_INIT;
	for (size_t i = 0; ms->plan && i < ms->plan->n && i < SHARES_MAX; i++) {
		const struct share_plan *p = &ms->plan->v[i];
		if (ms->state[i] == MOUNT_FAILED || ms->state[i] == MOUNT_NO_ANSWER)
			strbuf_addf(&sb, "%sshare '%s' is not mounted at %s: %s", sb.len ? "; " : "", p->tag, p->mount,
				    ms->why[i]);
		if (p->warning)
			strbuf_addf(&sb, "%s%s", sb.len ? "; " : "", p->warning);
	}
	return strbuf_detach(&sb, NULL);
}
