/* Readiness of a started VM, seen from inside the guest through the agent. The guest writes
 * everything read here, so it is parsed as untrusted: bounded reads, whole-token matches, and only
 * printable ASCII ever reaches a message. */
#include "ready.h"

#include "qemu.h"
#include "seed.h"
#include "session.h"
#include "vm_oci.h"

#include <fcntl.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define READY_READ_MAX (256 * 1024) /* /proc/net/tcp with a few thousand sockets */
#define READY_FAILURES_MAX 16
#define READY_MSG_MAX 300
#define SSH_POLL_MS 250
#define CI_POLL_MS 500

const char *const start_wait_names[] = {"auto", "none", "agent", "ssh", "cloud-init", NULL};
const char *const ci_state_names[] = {"unknown", "none", "disabled", "running", "done", "error", NULL};

int ready_resolve_wait(const struct vm_spec *spec, enum start_wait want, enum start_wait *ret, struct hutch_error *err)
{
	bool image = spec->source == SOURCE_IMAGE;
	if (want == WAIT_AUTO) {
		bool user_work = (spec->ci_packages && spec->ci_packages[0]) || (spec->ci_runcmd && spec->ci_runcmd[0]);
		*ret = !image ? WAIT_AGENT : user_work ? WAIT_CLOUD_INIT : WAIT_SSH;
		return 0;
	}
	/* a container image's VM may be a bootc one with sshd and cloud-init: ready_check_wait tells */
	if (!image && spec->source != SOURCE_OCI && (want == WAIT_SSH || want == WAIT_CLOUD_INIT))
		return hutch_error_set(err, EINVAL,
				       "--wait %s: a micro VM has no sshd or cloud-init (use agent or none)",
				       start_wait_names[want]);
	*ret = want;
	return 0;
}

void ci_status_release(struct ci_status *s)
{
	strv_free(s->failures);
	memset(s, 0, sizeof(*s));
}

/* ---- parsers ---- */

/* Printable ASCII only, at most MAX bytes: guest text never carries escapes to a terminal. */
static char *clean_text(const char *untrusted, size_t max)
{
	struct strbuf sb = STRBUF_INIT;
	for (const char *p = untrusted; *p && sb.len < max; p++)
		strbuf_addch(&sb, (*p >= 0x20 && *p < 0x7f) ? *p : '?');
	return strbuf_detach(&sb, NULL);
}

static json_object *parse_json(const char *untrusted)
{
	size_t len = strlen(untrusted);
	if (len > READY_READ_MAX)
		return NULL;
	json_tokener *tok = json_tokener_new();
	if (!tok)
		abort();
	json_object *o = json_tokener_parse_ex(tok, untrusted, (int)len);
	size_t end = o ? json_tokener_get_parse_end(tok) : 0;
	if (o &&
	    (json_tokener_get_error(tok) != json_tokener_success || strspn(untrusted + end, " \t\r\n") != len - end)) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	return o;
}

/* cloud-init writes each failure as str((module, exception)):
 * "('scripts_user', RuntimeError('Runparts: 1 failures (runcmd) in 1 attempted commands'))".
 * That becomes "scripts_user: Runparts: 1 failures (runcmd) in 1 attempted commands"; anything
 * else is kept as it is. */
static char *describe_failure(const char *untrusted)
{
	const char *p = untrusted;
	if (strncmp(p, "('", 2) != 0)
		return clean_text(p, READY_MSG_MAX);
	p += 2;
	size_t n = strcspn(p, "'");
	if (p[n] != '\'' || strncmp(p + n, "', ", 3) != 0 || n == 0 || n > 64)
		return clean_text(untrusted, READY_MSG_MAX);
	_cleanup_free_ char *module = xstrndup(p, n);
	const char *rest = p + n + 3;
	size_t rlen = strlen(rest);
	if (rlen && rest[rlen - 1] == ')')
		rlen--; /* the tuple's */
	/* ExceptionName('message') -> message */
	size_t name = strspn(rest, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.");
	if (name > 0 && name + 3 <= rlen && (rest[name] == '(') && (rest[name + 1] == '\'' || rest[name + 1] == '"') &&
	    rest[rlen - 1] == ')' && rest[rlen - 2] == rest[name + 1]) {
		rest += name + 2;
		rlen -= name + 4;
	}
	_cleanup_free_ char *msg = xstrndup(rest, rlen);
	_cleanup_free_ char *cm = clean_text(module, 64), *cmsg = clean_text(msg, READY_MSG_MAX);
	return xasprintf("%s: %s", cm, cmsg);
}

static json_object *v1_of(json_object *doc)
{
	json_object *v1 = NULL;
	if (!doc || !json_object_is_type(doc, json_type_object) || !json_object_object_get_ex(doc, "v1", &v1) ||
	    !json_object_is_type(v1, json_type_object))
		return NULL;
	return v1;
}

int ready_parse_result(const char *untrusted, struct ci_status *ret)
{
	json_object *doc = parse_json(untrusted), *v1 = v1_of(doc), *errors = NULL;
	if (!v1 || !json_object_object_get_ex(v1, "errors", &errors) || !json_object_is_type(errors, json_type_array)) {
		json_object_put(doc);
		return -EINVAL;
	}
	memset(ret, 0, sizeof(*ret));
	size_t n = json_object_array_length(errors);
	for (size_t i = 0; i < n && i < READY_FAILURES_MAX; i++) {
		json_object *e = json_object_array_get_idx(errors, i);
		ret->failures = strv_push(ret->failures, describe_failure(json_object_is_type(e, json_type_string)
										  ? json_object_get_string(e)
										  : "(not a string)"));
	}
	ret->state = n ? CI_ERROR : CI_DONE;
	json_object_put(doc);
	return 0;
}

int ready_parse_status(const char *untrusted, struct ci_status *ret)
{
	json_object *doc = parse_json(untrusted), *v1 = v1_of(doc), *stage = NULL;
	if (!v1) {
		json_object_put(doc);
		return -EINVAL;
	}
	memset(ret, 0, sizeof(*ret));
	ret->state = CI_RUNNING;
	if (json_object_object_get_ex(v1, "stage", &stage) && json_object_is_type(stage, json_type_string)) {
		_cleanup_free_ char *s = clean_text(json_object_get_string(stage), sizeof(ret->stage) - 1);
		snprintf(ret->stage, sizeof(ret->stage), "%s", s);
	}
	json_object_put(doc);
	return 0;
}

bool ready_tcp_listening(const char *untrusted, unsigned port)
{
	/* "  0: 00000000:0016 00000000:0000 0A ..." (tcp6: 32 hex digits of address) */
	for (const char *line = untrusted; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		char laddr[33], raddr[33];
		unsigned lport, rport, state, slot;
		if (sscanf(line, " %u: %32[0-9A-Fa-f]:%4x %32[0-9A-Fa-f]:%4x %2x", &slot, laddr, &lport, raddr, &rport,
			   &state) == 6 &&
		    lport == port && state == 0x0A)
			return true;
	}
	return false;
}

/* ---- reading from the guest ---- */

struct capture {
	int fd;
	struct strbuf out;
	bool truncated;
};

static void *capture_thread(void *arg)
{
	struct capture *c = arg;
	char buf[16384];
	for (;;) {
		ssize_t n = read(c->fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (c->out.len + (size_t)n > READY_READ_MAX) {
			c->truncated = true; /* keep draining: the session must not block on us */
			continue;
		}
		strbuf_add(&c->out, buf, (size_t)n);
	}
	return NULL;
}

/* Runs ARGV in the guest as root; stdout into *ret_out (NUL-terminated, NULL when it was over
 * READY_READ_MAX), the exit status into *ret_status. */
static int guest_capture(const struct store *st, const char *name, char **argv, char **ret_out, int *ret_status,
			 struct hutch_error *err)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return hutch_error_set(err, errno, "pipe: %s", strerror(errno));
	_cleanup_close_ int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	struct capture c = {.fd = p[0], .out = STRBUF_INIT};
	pthread_t t;
	if (pthread_create(&t, NULL, capture_thread, &c) != 0) {
		close(p[0]);
		close(p[1]);
		return hutch_error_set(err, EAGAIN, "cannot start a thread");
	}
	struct exec_opts eo = {.argv = argv, .in_fd = devnull, .out_fd = p[1], .err_fd = devnull};
	int status = 0;
	int r = exec_session(st, name, &eo, &status, err);
	close(p[1]);
	pthread_join(t, NULL);
	close(p[0]);
	if (r < 0 || c.truncated) {
		strbuf_release(&c.out);
		if (r < 0)
			return r;
		*ret_out = NULL;
		*ret_status = status;
		return 0;
	}
	*ret_out = strbuf_detach(&c.out, NULL);
	if (!*ret_out)
		*ret_out = xstrdup("");
	*ret_status = status;
	return 0;
}

static int guest_read(const struct store *st, const char *name, const char *path, char **ret, int *ret_status,
		      struct hutch_error *err)
{
	char *argv[] = {(char *)"cat", (char *)path, NULL};
	return guest_capture(st, name, argv, ret, ret_status, err);
}

/* Which of sshd and cloud-init the image has, and whether cloud-init is switched off. */
struct guest_facts {
	bool sshd, cloud_init, ci_disabled;
};

static bool has_line(const char *text, const char *word)
{
	size_t n = strlen(word);
	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (strncmp(l, word, n) == 0 && (l[n] == '\n' || l[n] == 0))
			return true;
	return false;
}

static int guest_facts(const struct store *st, const char *name, struct guest_facts *ret, struct hutch_error *err)
{
	char *argv[] = {(char *)"sh", (char *)"-c",
			(char *)"{ command -v sshd || test -x /usr/sbin/sshd; } >/dev/null 2>&1 && echo sshd; "
				"command -v cloud-init >/dev/null 2>&1 && echo cloud-init; "
				"test -e /run/cloud-init/disabled && echo disabled; exit 0",
			NULL};
	_cleanup_free_ char *out = NULL;
	int status = 0;
	int r = guest_capture(st, name, argv, &out, &status, err);
	if (r < 0)
		return r;
	*ret = (struct guest_facts){
		.sshd = has_line(out, "sshd"),
		.cloud_init = has_line(out, "cloud-init"),
		.ci_disabled = has_line(out, "disabled"),
	};
	return 0;
}

/* cloud-init's final state does not change within a boot: once seen, it is kept in the VM's runtime
 * dir (which every start empties and every stop removes), so list and inspect stop asking the
 * guest. The file holds result.json as the guest wrote it (parsed again on read: it is guest data),
 * or "none" / "disabled". */
#define CI_FINAL "cloud-init.final"

static bool ci_final_read(const struct store *st, const char *name, struct ci_status *ret)
{
	_cleanup_free_ char *path = store_run_file(st, name, CI_FINAL), *text = NULL;
	if (read_file(path, READY_READ_MAX, &text, NULL, NULL) < 0)
		return false;
	if (!strcmp(text, "none") || !strcmp(text, "disabled")) {
		ret->state = text[0] == 'n' ? CI_NONE : CI_DISABLED;
		return true;
	}
	return ready_parse_result(text, ret) == 0;
}

static void ci_final_write(const struct store *st, const char *name, const char *text)
{
	_cleanup_free_ char *path = store_run_file(st, name, CI_FINAL);
	write_file_atomic(path, text, strlen(text), 0600, NULL);
}

int ready_cloud_init_state(const struct store *st, const char *name, struct ci_status *ret, struct hutch_error *err)
{
	memset(ret, 0, sizeof(*ret));
	if (ci_final_read(st, name, ret))
		return 0;
	_cleanup_free_ char *text = NULL;
	int status = 0;
	int r = guest_read(st, name, "/run/cloud-init/result.json", &text, &status, err);
	if (r < 0)
		return r;
	if (status == 0 && text && ready_parse_result(text, ret) == 0) {
		ci_final_write(st, name, text);
		return 0;
	}
	free(text);
	text = NULL;
	r = guest_read(st, name, "/run/cloud-init/status.json", &text, &status, err);
	if (r < 0)
		return r;
	if (status == 0 && text && ready_parse_status(text, ret) == 0)
		return 0;
	struct guest_facts f;
	r = guest_facts(st, name, &f, err);
	if (r < 0)
		return r;
	/* before its first stage writes status.json, an installed cloud-init counts as running */
	ret->state = f.ci_disabled ? CI_DISABLED : f.cloud_init ? CI_RUNNING : CI_NONE;
	if (ret->state != CI_RUNNING)
		ci_final_write(st, name, ret->state == CI_NONE ? "none" : "disabled");
	return 0;
}

/* ---- waiting ---- */

static void sleep_ms(uint64_t ms)
{
	struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* A session lost (or refused) while the VM still runs: the agent is restarting under us (the seed's
 * bootcmd restarts it when its binary or unit changed), so wait for the new one until the deadline. */
static bool agent_restarting(const struct store *st, const char *name, int r, uint64_t deadline,
			     struct hutch_error *err)
{
	if ((r != -ECONNRESET && r != -EIO) || now_ms() >= deadline || !store_is_running(st, name))
		return false;
	hutch_error_clear(err);
	sleep_ms(SSH_POLL_MS);
	return true;
}

static int wait_sshd(const struct store *st, const char *name, unsigned port, uint64_t deadline,
		     struct hutch_error *err)
{
	for (;;) {
		_cleanup_free_ char *text = NULL;
		int status = 0;
		char *argv[] = {(char *)"cat", (char *)"/proc/net/tcp", (char *)"/proc/net/tcp6", NULL};
		int r = guest_capture(st, name, argv, &text, &status, err);
		if (r < 0 && agent_restarting(st, name, r, deadline, err))
			continue;
		if (r < 0)
			return hutch_error_wrap(err, "waiting for sshd");
		if (text && ready_tcp_listening(text, port))
			return 0;
		if (now_ms() >= deadline)
			return hutch_error_set(err, ETIMEDOUT, "sshd was not listening on port %u in the guest in time",
					       port);
		sleep_ms(SSH_POLL_MS);
	}
}

static int wait_ci(const struct store *st, const char *name, uint64_t deadline, struct ci_status *ret,
		   struct hutch_error *err)
{
	for (;;) {
		_cleanup_free_ char *text = NULL;
		int status = 0;
		int r = guest_read(st, name, "/run/cloud-init/result.json", &text, &status, err);
		if (r < 0 && agent_restarting(st, name, r, deadline, err))
			continue;
		if (r < 0)
			return hutch_error_wrap(err, "waiting for cloud-init");
		ci_status_release(ret);
		if (status == 0 && text && ready_parse_result(text, ret) == 0) {
			ci_final_write(st, name, text);
			return 0;
		}
		if (now_ms() >= deadline) {
			_cleanup_free_ char *st_text = NULL;
			const char *stage = "";
			if (guest_read(st, name, "/run/cloud-init/status.json", &st_text, &status, NULL) == 0 &&
			    status == 0 && st_text && ready_parse_status(st_text, ret) == 0 && ret->stage[0])
				stage = ret->stage;
			return hutch_error_set(err, ETIMEDOUT,
					       "cloud-init did not finish in time%s%s: see 'hutch logs %s'",
					       *stage ? ", still in stage " : "", stage, name);
		}
		sleep_ms(CI_POLL_MS);
	}
}

/* The guest must present the key made at create; where it cannot, `hutch ssh` trusts the first key
 * it sees (known_hosts emptied, a marker for ssh to read). */
static void host_key_fallback(const struct store *st, const char *name, const char *why)
{
	_cleanup_free_ char *kh = store_vm_file(st, name, "known_hosts");
	_cleanup_free_ char *marker = store_vm_file(st, name, "host_key_unverified");
	if (access(marker, F_OK) == 0)
		return;
	write_file_atomic(kh, "", 0, 0600, NULL);
	write_file_atomic(marker, why, strlen(why), 0600, NULL);
	log_warn("'%s' %s: 'hutch ssh %s' trusts the host key it first sees", name, why, name);
}

bool ready_host_key_strict(const struct store *st, const char *name)
{
	_cleanup_free_ char *made = store_vm_file(st, name, "ssh_host_ed25519_key.pub");
	_cleanup_free_ char *marker = store_vm_file(st, name, "host_key_unverified");
	return access(made, F_OK) == 0 && access(marker, F_OK) != 0;
}

static bool same_key(const char *a, const char *b)
{
	/* type and blob; comments may differ */
	size_t ta = strcspn(a, " \t"), tb = strcspn(b, " \t");
	if (ta != tb || strncmp(a, b, ta) != 0)
		return false;
	a += ta + strspn(a + ta, " \t");
	b += tb + strspn(b + tb, " \t");
	size_t la = strcspn(a, " \t\r\n"), lb = strcspn(b, " \t\r\n");
	return la == lb && la > 0 && strncmp(a, b, la) == 0;
}

static void check_host_key(const struct store *st, const char *name)
{
	_cleanup_free_ char *ours = NULL, *theirs = NULL;
	_cleanup_free_ char *pub = store_vm_file(st, name, "ssh_host_ed25519_key.pub");
	size_t len = 0;
	int status = 0;
	if (read_file(pub, SEED_PUBKEY_MAX, &ours, &len, NULL) < 0)
		return; /* made before hutch had host keys: ssh trusts on first use as it always did */
	if (guest_read(st, name, "/etc/ssh/ssh_host_ed25519_key.pub", &theirs, &status, NULL) < 0)
		return;
	if (status != 0 || !theirs || !same_key(ours, theirs))
		host_key_fallback(st, name, "presents another host key than the one made at create");
}

int ready_check_wait(const struct store *st, const struct vm_spec *spec, const char *name, enum start_wait level,
		     struct hutch_error *err)
{
	if (level >= WAIT_SSH && spec->source == SOURCE_OCI && !vm_oci_is_bootc(st, spec, name))
		return hutch_error_set(err, EINVAL,
				       "--wait %s: '%s' runs a container image under the micro kernel, with no sshd "
				       "or cloud-init (use agent or none)",
				       start_wait_names[level], name);
	return 0;
}

int ready_wait(const struct store *st, const struct vm_spec *spec, const char *name, enum start_wait level,
	       uint64_t t0_ms, uint64_t deadline_ms, struct ready_result *ret, struct hutch_error *err)
{
	memset(ret, 0, sizeof(*ret));
	bool bootc = vm_oci_is_bootc(st, spec, name); /* its own systemd, sshd and maybe cloud-init */
	if (level < WAIT_AGENT || (spec->source != SOURCE_IMAGE && !bootc))
		return 0;
	struct guest_facts f;
	int r = guest_facts(st, name, &f, err);
	if (r < 0)
		return hutch_error_wrap(err, "asking the guest");
	if (!f.cloud_init || f.ci_disabled)
		host_key_fallback(st, name,
				  f.ci_disabled ? "has cloud-init disabled, so its host key was not installed"
						: "has no cloud-init, so its host key was not installed");
	if (level < WAIT_SSH)
		return 0;
	unsigned port = spec->ssh_port ? (unsigned)spec->ssh_port : 22;
	if (f.sshd) {
		r = wait_sshd(st, name, port, deadline_ms, err);
		if (r < 0)
			return r;
		ret->ssh_ms = now_ms() - t0_ms;
		if (f.cloud_init && !f.ci_disabled)
			check_host_key(st, name);
	} else {
		ret->no_sshd = true;
		log_warn("'%s' has no sshd: not waiting for it", name);
	}
	if (level < WAIT_CLOUD_INIT)
		return 0;
	if (!f.cloud_init || f.ci_disabled) {
		ret->ci.state = f.ci_disabled ? CI_DISABLED : CI_NONE;
		return 0;
	}
	r = wait_ci(st, name, deadline_ms, &ret->ci, err);
	if (r < 0)
		return r;
	ret->cloud_init_ms = now_ms() - t0_ms;
	for (char **m = ret->ci.failures; m && *m; m++)
		log_warn("cloud-init in '%s' failed in module %s; the VM is up anyway (see 'hutch exec %s -- cat "
			 "/var/log/cloud-init-output.log')",
			 name, *m, name);
	return 0;
}

void ready_result_release(struct ready_result *r) { ci_status_release(&r->ci); }

unsigned ready_ssh_forward_wanted(const struct store *st, const struct vm_spec *spec, const char *name,
				  char *const *forwards)
{
	unsigned guest = spec->ssh_port > 0 ? (unsigned)spec->ssh_port : 22;
	bool sshd = spec->source == SOURCE_IMAGE || vm_oci_is_bootc(st, spec, name);
	if (!sshd || spec->net_mode != NET_USER || (spec->ssh_key && !strcmp(spec->ssh_key, "none")))
		return 0;
	for (size_t i = 0; forwards && forwards[i]; i++) {
		struct forward f;
		if (forward_parse(forwards[i], &f) == 0 && !f.udp && f.guest == guest)
			return 0;
	}
	return guest;
}

int ready_start_begin(const struct store *st, const struct vm_spec *spec, const char *name, enum start_wait want,
		      enum start_wait *ret_level, int *ret_lock_fd, struct hutch_error *err)
{
	int r = ready_resolve_wait(spec, want, ret_level, err);
	if (r == 0)
		r = ready_check_wait(st, spec, name, *ret_level, err);
	if (r == 0)
		r = store_prepare_run_dir(st, name, err);
	if (r == 0)
		r = store_lock_run(st, name, ret_lock_fd, err);
	return r;
}
