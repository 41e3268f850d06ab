/* Warm templates (warm.h): key, argv, making a template, restoring a clone, the cache. */
#include "warm.h"

#include "client.h"
#include "proto.h"
#include "qemu.h"
#include "swtpm.h"
#include "warm_image.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#define WARM_FORMAT "hutch-warm 1"
#define WARM_MEM_ID "warm-mem"
#define WARM_FDNAME "warm-state"
#define WARM_META_MAX (64u * 1024)
#define WARM_STATE_MAX (256ull * 1024 * 1024)

/* ---- argv ---- */

static bool has_prefix(const char *s, const char *p) { return s && !strncmp(s, p, strlen(p)); }

/* s without its ",hostfwd=..." parts: forwards are the clone's own, not the template's (slirp saves
 * no host-forward state, so they need not match). */
static char *strip_hostfwd(const char *s)
{
	struct strbuf sb = STRBUF_INIT;
	while (*s) {
		const char *comma = strstr(s, ",hostfwd=");
		if (!comma) {
			strbuf_adds(&sb, s);
			break;
		}
		strbuf_add(&sb, s, (size_t)(comma - s));
		s = comma + 1;
		s += strcspn(s, ",");
	}
	return strbuf_detach(&sb, NULL);
}

static char *escape_commas(const char *s)
{
	struct strbuf sb = STRBUF_INIT;
	for (; *s; s++) {
		if (*s == ',')
			strbuf_addch(&sb, ',');
		strbuf_addch(&sb, *s);
	}
	return strbuf_detach(&sb, NULL);
}

/* The cold argv as a template (share=on) or a clone (share=off, waiting for its state): RAM in the
 * memory file, and no balloon (it discards). */
static char **warm_argv(char *const *argv, const char *mem, uint64_t mem_size, bool clone, bool keep_fwd)
{
	char **out = NULL;
	bool is_microvm = false;
	_cleanup_free_ char *mem_e = escape_commas(mem);
	for (size_t i = 0; argv && argv[i]; i++) {
		const char *a = argv[i], *next = argv[i + 1];
		if (!strcmp(a, "-device") && has_prefix(next, "virtio-balloon")) {
			i++;
			continue;
		}
		/* A clone's kernel is already in its RAM: QEMU would read the kernel into 8 MiB of its
		 * own memory (and map the initramfs) per clone for fw_cfg, which nothing reads again;
		 * fw_cfg's contents are not migrated, only its position. */
		if (clone && next && (!strcmp(a, "-kernel") || !strcmp(a, "-initrd") || !strcmp(a, "-append"))) {
			i++;
			continue;
		}
		if (!keep_fwd && !strcmp(a, "-netdev") && next) {
			out = strv_push(out, xstrdup(a));
			out = strv_push(out, strip_hostfwd(next));
			i++;
			continue;
		}
		out = strv_push(out, xstrdup(a));
		if ((!strcmp(a, "-M") || !strcmp(a, "-machine")) && next) {
			is_microvm = has_prefix(next, "microvm");
			out = strv_push(out, xasprintf("%s,memory-backend=" WARM_MEM_ID, next));
			i++;
		} else if (!strcmp(a, "-m") && next) {
			out = strv_push(out, xstrdup(next));
			out = strv_push(out, xstrdup("-object"));
			out = strv_push(out, xasprintf("memory-backend-file,id=" WARM_MEM_ID
						       ",size=%llu,mem-path=%s,share=%s",
						       (unsigned long long)mem_size, mem_e, clone ? "off" : "on"));
			i++;
		}
	}
	/* A machine with ACPI gets a VM generation ID: QEMU writes each clone's own (guid=auto: new per
	 * QEMU process) into the restored guest and notifies it, and Linux's vmgenid driver reseeds
	 * the kernel's RNG at once, before the agent's reseed arrives. microvm has no ACPI for it. */
	if (!is_microvm) {
		out = strv_push(out, xstrdup("-device"));
		out = strv_push(out, xstrdup("vmgenid,guid=auto"));
	}
	if (clone) {
		out = strv_push(out, xstrdup("-S"));
		out = strv_push(out, xstrdup("-incoming"));
		out = strv_push(out, xstrdup("defer"));
	}
	return out;
}

/* A clone's TCG translation cache, MiB. QEMU's default is 1 GiB, touched as it fills: an idle clone
 * uses ~13 MiB of it, but one that ran a workload keeps what it translated until it exits. 32 MiB
 * bounds that without retranslating (4 MiB made each exec ~10x slower: the cache thrashed).
 * HUTCH_TB_SIZE=MiB overrides it, 0 for QEMU's default (bench/density.sh). Not part of the key:
 * the cache is no guest state. */
#define WARM_TB_MIB 32

static void clone_tb_size(char **argv)
{
	const char *env = getenv("HUTCH_TB_SIZE");
	long long mib = WARM_TB_MIB;
	if (env && *env && parse_ll(env, 0, 4096, &mib) < 0)
		mib = WARM_TB_MIB;
	if (mib == 0)
		return;
	for (size_t i = 0; argv[i] && argv[i + 1]; i++)
		if (!strcmp(argv[i], "-accel") && !strcmp(argv[i + 1], "tcg")) {
			free(argv[i + 1]);
			argv[i + 1] = xasprintf("tcg,tb-size=%lld", mib);
		}
}

/* An image VM's disk, seed and NVRAM are vm_dir's (the template's build dir, or a placeholder for
 * the key);
 * its SMBIOS credential (the authorized keys) is the plan's, a placeholder in the key (smbios_key):
 * an instance's keys are its own. */
static int plan_argv(const struct vm_spec *spec, const struct qemu_plan *p, const char *name, const char *run_dir,
		     const char *vm_dir, const char *smbios_key, char ***ret, struct hutch_error *err)
{
	bool image = spec->source == SOURCE_IMAGE;
	_cleanup_free_ char *disk = p->disk ? xasprintf("%s/disk.qcow2", vm_dir) : NULL; /* image and OCI VMs */
	_cleanup_free_ char *seed = p->seed ? xasprintf("%s/seed.iso", vm_dir) : NULL;
	_cleanup_free_ char *nvram = image && p->nvram ? xasprintf("%s/nvram.fd", vm_dir) : NULL;
	_cleanup_free_ char *tpm_sock = image && spec->tpm ? xasprintf("%s/swtpm.sock", run_dir) : NULL;
	struct qemu_config c = {
		.disk = disk,
		.seed = seed,
		.fw_code = image ? p->fw_code : NULL,
		.nvram = nvram,
		.tpm_sock = tpm_sock,
		.smbios_cred = image && p->smbios ? (smbios_key ? smbios_key : p->smbios) : NULL,
		.name = name,
		.spec = spec,
		.binary = p->binary,
		.run_dir = run_dir,
		.vm_dir = vm_dir,
		.kernel = p->kernel,
		.initrd = p->initrd,
		.accel = p->accel,
	};
	return qemu_build_argv(&c, ret, err);
}

/* ---- plan ---- */

int warm_supported(const struct vm_spec *s, struct hutch_error *err)
{
	if (s->net_mode == NET_NETVM)
		return hutch_error_set(err, ENOTSUP,
				       "a VM on a netvm link cannot be a clone: the template's link would be shared");
	if (s->tpm && s->source != SOURCE_IMAGE)
		return hutch_error_set(err, ENOTSUP, "a VM with a TPM cannot be a clone");
	/* QEMU refuses to migrate these: a template could never be saved */
	if (s->n_shares || s->home != HOME_OFF)
		return hutch_error_set(err, ENOTSUP,
				       "a VM with shares cannot be a clone (9p and virtiofs do not migrate)");
	if ((s->pci && s->pci[0]) || s->n_usb)
		return hutch_error_set(err, ENOTSUP, "a VM with host devices cannot be a clone");
	return 0;
}

static char *warm_root(const struct store *st) { return xasprintf("%s/warm", st->cache_dir); }

int warm_plan_make(struct store *st, const char *tname, const char *name, const struct vm_spec *spec,
		   const struct qemu_plan *p, struct warm_plan *ret, struct hutch_error *err)
{
	memset(ret, 0, sizeof(*ret));
	int r = warm_supported(spec, err);
	if (r < 0)
		return r;
	r = store_check_name(tname, err);
	if (r < 0)
		return r;
	/* The key: the argv with placeholders where instances differ, and the files it names. */
	_cleanup_strv_ char **canon = NULL;
	r = plan_argv(spec, p, "@NAME@", "@RUN@", "@VM@", "@SMBIOS@", &canon, err);
	if (r < 0)
		return r;
	struct strbuf sb = STRBUF_INIT;
	strbuf_adds(&sb, WARM_FORMAT "\n");
	struct warm_image *wi = NULL;
	r = spec->source == SOURCE_OCI ? warm_oci_plan(st, tname, spec, p, &sb, &wi, err)
				       : warm_image_plan(st, tname, spec, p, &sb, &wi, err);
	if (r < 0) {
		strbuf_release(&sb);
		return r;
	}
	_cleanup_strv_ char **keyed = warm_argv(canon, "@MEM@", spec->memory, false, false);
	for (size_t i = 0; keyed[i]; i++)
		strbuf_addf(&sb, "argv %s\n", keyed[i]);
	warm_key_file(&sb, "kernel", p->kernel);
	warm_key_file(&sb, "initrd", p->initrd);
	warm_key_file(&sb, "qemu", p->binary);
	if (spec->tpm) /* the TPM's state is in the device state, in swtpm's format */
		warm_key_file(&sb, "swtpm", swtpm_binary());
	strbuf_addf(&sb, "memory %llu\naccel %s %s\n", (unsigned long long)spec->memory, p->accel->kvm ? "kvm" : "tcg",
		    p->accel->cpu);
	char hex[65];
	sha256_hex(sb.buf, sb.len, hex);
	strbuf_release(&sb);
	_cleanup_free_ char *root = warm_root(st);
	ret->name = xstrdup(tname);
	ret->key = xstrdup(hex);
	ret->dir = xasprintf("%s/%s/%.16s", root, tname, hex);
	ret->mem = xasprintf("%s/mem", ret->dir);
	ret->state = xasprintf("%s/state", ret->dir);
	ret->mem_size = spec->memory;
	ret->clone_argv = warm_argv(p->argv, ret->mem, spec->memory, true, true);
	clone_tb_size(ret->clone_argv);
	if (wi) {
		warm_image_place(wi, ret->dir, p->vm_dir);
		warm_image_clone_argv(wi, p->disk, p->seed, p->nvram, ret->clone_argv);
	}
	ret->image = wi;
	ret->template_argv_base = TAKE_PTR(canon);
	ret->spec = spec;
	ret->plan = p;
	return 0;
}

void warm_plan_release(struct warm_plan *wp)
{
	free(wp->name);
	free(wp->key);
	free(wp->dir);
	free(wp->mem);
	free(wp->state);
	strv_free(wp->clone_argv);
	strv_free(wp->template_argv_base);
	warm_image_free(wp->image);
	memset(wp, 0, sizeof(*wp));
}

/* ---- meta.json ---- */

static json_object *read_meta(const char *dir)
{
	_cleanup_free_ char *path = xasprintf("%s/meta.json", dir), *text = NULL;
	size_t len;
	if (read_file(path, WARM_META_MAX, &text, &len, NULL) < 0)
		return NULL;
	json_object *o = json_tokener_parse(text);
	if (o && !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

static const char *meta_str(json_object *o, const char *k)
{
	json_object *v;
	return json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_string)
		       ? json_object_get_string(v)
		       : "";
}

static int64_t meta_int(json_object *o, const char *k)
{
	json_object *v;
	return json_object_object_get_ex(o, k, &v) ? json_object_get_int64(v) : -1;
}

int warm_template_check(const struct warm_plan *wp, struct hutch_error *err)
{
	json_object *meta = read_meta(wp->dir);
	struct stat st;
	if (!meta) {
		if (stat(wp->dir, &st) < 0)
			return hutch_error_set(err, ENOENT, "no warm template '%s' for this VM's configuration",
					       wp->name);
		return hutch_error_set(err, EBADMSG, "warm template '%s' has no readable meta.json", wp->name);
	}
	int r = 0;
	char hex[65];
	struct hutch_error e2 = {0};
	if (strcmp(meta_str(meta, "key"), wp->key) != 0)
		r = hutch_error_set(err, EBADMSG, "warm template '%s': its key does not match its directory", wp->name);
	else if (stat(wp->state, &st) < 0 || (int64_t)st.st_size != meta_int(meta, "state_bytes"))
		r = hutch_error_set(err, EBADMSG,
				    "warm template '%s': the state file is missing or has the wrong size (%lld "
				    "bytes, %lld recorded)",
				    wp->name, (long long)(stat(wp->state, &st) == 0 ? st.st_size : -1),
				    (long long)meta_int(meta, "state_bytes"));
	else if (sha256_file_hex(wp->state, hex, &e2) < 0 || strcmp(hex, meta_str(meta, "state_sha256")) != 0)
		r = hutch_error_set(err, EBADMSG, "warm template '%s': the state file's checksum does not match",
				    wp->name);
	else if (stat(wp->mem, &st) < 0 || (uint64_t)st.st_size != wp->mem_size)
		r = hutch_error_set(err, EBADMSG,
				    "warm template '%s': the memory file is missing or has the wrong size", wp->name);
	else if (wp->image)
		r = warm_image_check(wp->image, meta, wp->name, err);
	hutch_error_clear(&e2);
	json_object_put(meta);
	return r;
}

/* ---- making a template ---- */

/* Pass fd to QEMU over QMP (SCM_RIGHTS, with one byte of whitespace) and name it. */
static int qmp_getfd(struct qmp *q, int fd, const char *name, struct hutch_error *err)
{
	char sp = ' ';
	struct iovec iov = {.iov_base = &sp, .iov_len = 1};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	memset(&u, 0, sizeof(u));
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	ssize_t n;
	while ((n = sendmsg(qmp_fd(q), &mh, MSG_NOSIGNAL)) < 0 && errno == EINTR)
		;
	if (n != 1)
		return hutch_error_set(err, errno ? errno : EIO, "cannot pass a file to qemu: %s", strerror(errno));
	json_object *args = json_object_new_object();
	json_object_object_add(args, "fdname", json_object_new_string(name));
	return qmp_execute(q, "getfd", args, 5000, NULL, err);
}

static int set_ignore_shared(struct qmp *q, struct hutch_error *err)
{
	json_object *cap = json_object_new_object(), *caps = json_object_new_array(), *args = json_object_new_object();
	json_object_object_add(cap, "capability", json_object_new_string("x-ignore-shared"));
	json_object_object_add(cap, "state", json_object_new_boolean(1));
	json_object_array_add(caps, cap);
	json_object_object_add(args, "capabilities", caps);
	return qmp_execute(q, "migrate-set-capabilities", args, 5000, NULL, err);
}

/* Poll query-migrate until the migration completes (or fails, or the deadline passes). */
static int wait_migration(struct qmp *q, uint64_t deadline, struct hutch_error *err)
{
	for (;;) {
		json_object *ret = NULL, *v;
		int r = qmp_execute(q, "query-migrate", NULL, 5000, &ret, err);
		if (r < 0)
			return r;
		char status[32] = "";
		if (ret && json_object_object_get_ex(ret, "status", &v))
			snprintf(status, sizeof(status), "%s", json_object_get_string(v));
		char why[200] = "";
		if (ret && json_object_object_get_ex(ret, "error-desc", &v))
			snprintf(why, sizeof(why), ": %s", json_object_get_string(v));
		json_object_put(ret);
		if (!strcmp(status, "completed"))
			return 0;
		if (!strcmp(status, "failed") || !strcmp(status, "cancelled"))
			return hutch_error_set(err, EPROTO, "migration %s%s", status, why);
		if (now_ms() >= deadline)
			return hutch_error_set(err, ETIMEDOUT, "migration did not complete in time (status '%s')",
					       status[0] ? status : "none");
		struct timespec ts = {0, 5 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

/* Read agent frames until HELLO, answer it, then PING and wait for the PONG: the agent has taken
 * our answer and sits idle in its poll, with nothing half-sent, when the VM is paused. */
static int wait_agent_idle(int afd, pid_t pid, uint64_t deadline, struct hutch_error *err)
{
	struct proto_reader rd;
	proto_reader_init(&rd);
	bool hello = false;
	int r = 0;
	for (;;) {
		int got = warm_agent_read(&rd, afd, pid, deadline, "before its agent answered",
					  "the template VM's agent did not say HELLO in time", err);
		if (got < 0) {
			r = got;
			break;
		}
		if (got == 0)
			continue;
		struct proto_frame f;
		int k;
		bool done = false;
		while (!done && (k = proto_reader_next(&rd, &f)) == 1) {
			if (f.type == MSG_HELLO && !hello) {
				hello = true;
				struct proto_buf b = {0}, out = {0};
				proto_encode_hello(&b, PROTO_VERSION, 0, "");
				proto_frame_append(&out, MSG_HELLO, 0, b.data, b.len);
				proto_buf_free(&b);
				proto_put_u64(&b, 1);
				proto_frame_append(&out, MSG_PING, 0, b.data, b.len);
				proto_buf_free(&b);
				if (write_all(afd, out.data, out.len) < 0)
					r = hutch_error_set(err, errno, "write to the template's agent: %s",
							    strerror(errno));
				proto_buf_free(&out);
				if (r < 0)
					done = true;
			} else if (f.type == MSG_PONG && hello) {
				done = true;
			}
		}
		if (done || k < 0) {
			if (k < 0 && r == 0)
				r = hutch_error_set(err, EPROTO, "the template VM's agent sent a malformed frame");
			break;
		}
	}
	proto_reader_free(&rd);
	return r;
}

static void kill_reap(pid_t pid, uint64_t grace_ms)
{
	uint64_t end = now_ms() + grace_ms;
	int st;
	while (now_ms() < end) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return;
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	kill(pid, SIGKILL);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
}

/* Boot the template VM in bdir (sockets in rdir), save it into bdir/state, stop it. */
static int template_boot_save(const struct warm_plan *wp, const char *bdir, const char *rdir, uint64_t timeout_ms,
			      uint64_t *ret_boot_ms, struct hutch_error *err)
{
	_cleanup_strv_ char **base = NULL;
	int r = plan_argv(wp->spec, wp->plan, wp->name, rdir, bdir, NULL, &base, err);
	if (r < 0)
		return r;
	_cleanup_free_ char *mem = xasprintf("%s/mem", bdir), *state = xasprintf("%s/state", bdir);
	_cleanup_free_ char *log = xasprintf("%s/qemu.log", bdir);
	_cleanup_strv_ char **argv = warm_argv(base, mem, wp->mem_size, false, false);
	uint64_t t0 = now_ms(), deadline = t0 + timeout_ms;
	/* the guest's memory is nobody else's business: QEMU would create it with the umask's mode */
	_cleanup_close_ int mfd = open(mem, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (mfd < 0)
		return hutch_error_set(err, errno, "cannot create '%s': %s", mem, strerror(errno));
	_cleanup_close_ int sfd = -1;
	/* A TPM's swtpm, whose state QEMU saves with the device state: each clone loads it into a
	 * fresh swtpm of its own, and this one's state dir goes when the template is saved. */
	pid_t tpm_pid = 0;
	_cleanup_free_ char *tpm_dir = xasprintf("%s/tpm", bdir);
	if (wp->spec->tpm && wp->image) {
		_cleanup_free_ char *sock = xasprintf("%s/swtpm.sock", rdir), *tlog = xasprintf("%s/swtpm.log", bdir);
		r = swtpm_spawn(tpm_dir, sock, tlog, &tpm_pid, err);
		if (r < 0)
			return hutch_error_wrap(err, "the template VM's TPM");
	}
	struct qemu_proc qp;
	r = qemu_spawn(argv, rdir, log, &qp, err);
	if (r < 0) {
		if (tpm_pid > 0)
			kill_reap(tpm_pid, 0);
		return r;
	}
	struct qmp *q = NULL;
	r = qmp_open(qp.qmp_fd, 30000, &q, err);
	if (r < 0) {
		hutch_error_wrap(err, "the template VM did not answer on QMP (see %s)", log);
		goto out;
	}
	fd_set_nonblock(qp.agent_fd, true);
	r = wait_agent_idle(qp.agent_fd, qp.pid, deadline, err);
	/* a container image's VM (no cloud-init, the agent is its PID 1) is settled at HELLO, as micro */
	if (r == 0 && wp->image && wp->spec->source == SOURCE_IMAGE)
		r = warm_image_settle(qp.agent_fd, qp.pid, deadline, err);
	if (r < 0)
		goto out;
	*ret_boot_ms = now_ms() - t0;
	r = qmp_execute(q, "stop", NULL, 5000, NULL, err);
	if (r < 0)
		goto out;
	r = set_ignore_shared(q, err);
	if (r < 0)
		goto out;
	sfd = open(state, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (sfd < 0) {
		r = hutch_error_set(err, errno, "cannot create '%s': %s", state, strerror(errno));
		goto out;
	}
	r = qmp_getfd(q, sfd, WARM_FDNAME, err);
	if (r < 0)
		goto out;
	json_object *args = json_object_new_object();
	json_object_object_add(args, "uri", json_object_new_string("fd:" WARM_FDNAME));
	r = qmp_execute(q, "migrate", args, 5000, NULL, err);
	if (r == 0)
		r = wait_migration(q, deadline > now_ms() + 60000 ? deadline : now_ms() + 60000, err);
	if (r < 0) {
		hutch_error_wrap(err, "saving the template VM");
		goto out;
	}
	if (fsync(sfd) < 0) {
		r = hutch_error_set(err, errno, "fsync '%s': %s", state, strerror(errno));
		goto out;
	}
	qmp_execute(q, "quit", NULL, 3000, NULL, NULL);
out:
	qmp_close(q); /* qmp_open took the QMP fd, also when it failed */
	close(qp.agent_fd);
	if (r < 0)
		kill(qp.pid, SIGKILL);
	kill_reap(qp.pid, 5000);
	if (tpm_pid > 0) {
		kill_reap(tpm_pid, 2000); /* --terminate: it ends with QEMU's connection */
		rm_rf(tpm_dir);
	}
	return r;
}

static int sync_file(const char *path, struct hutch_error *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0)
		return hutch_error_set(err, errno, "fsync '%s': %s", path, strerror(errno));
	return 0;
}

/* Every KEY dir of NAME but keep (NULL: all), and leftover build dirs. */
static void remove_others(const char *ndir, const char *keep)
{
	DIR *d = opendir(ndir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") || !strcmp(de->d_name, ".lock"))
			continue;
		if (keep && !strcmp(de->d_name, keep))
			continue;
		_cleanup_free_ char *p = xasprintf("%s/%s", ndir, de->d_name);
		rm_rf(p);
	}
	closedir(d);
}

int warm_template_make(struct store *st, const struct warm_plan *wp, uint64_t timeout_ms, uint64_t *ret_ms,
		       struct hutch_error *err)
{
	uint64_t t0 = now_ms();
	_cleanup_free_ char *root = warm_root(st);
	_cleanup_free_ char *ndir = xasprintf("%s/%s", root, wp->name);
	if (mkdir_p(ndir, 0700) < 0)
		return hutch_error_set(err, errno, "cannot create '%s': %s", ndir, strerror(errno));
	_cleanup_free_ char *lockp = xasprintf("%s/.lock", ndir);
	_cleanup_close_ int lock = -1;
	int r = store_lock_file(lockp, timeout_ms, &lock, err);
	if (r < 0)
		return hutch_error_wrap(err, "warm template '%s' is being made by another process", wp->name);
	/* Somebody else may have made it while we waited for the lock. */
	if (warm_template_check(wp, NULL) == 0) {
		if (ret_ms)
			*ret_ms = now_ms() - t0;
		return 0;
	}
	const char *keydir = strrchr(wp->dir, '/') + 1;
	_cleanup_free_ char *bdir = xasprintf("%s/.build-%s", ndir, keydir);
	_cleanup_free_ char *rdir = xasprintf("%s/.warm-%.16s", st->runtime_dir, wp->key);
	rm_rf(bdir);
	rm_rf(rdir);
	if (mkdir_p(bdir, 0700) < 0 || mkdir_p(rdir, 0700) < 0)
		return hutch_error_set(err, errno, "cannot create the template's directories: %s", strerror(errno));
	_cleanup_free_ char *probe = xasprintf("%s/qmp-user.sock", rdir);
	r = store_check_sun_path(probe, err);
	uint64_t boot_ms = 0;
	if (r == 0 && wp->image)
		r = warm_image_prepare(wp->image, bdir, err);
	if (r == 0)
		r = template_boot_save(wp, bdir, rdir, timeout_ms, &boot_ms, err);
	rm_rf(rdir);
	_cleanup_free_ char *bstate = xasprintf("%s/state", bdir), *bmem = xasprintf("%s/mem", bdir);
	if (r == 0)
		r = sync_file(bmem, err);
	char hex[65];
	struct stat sst;
	if (r == 0 && (r = sha256_file_hex(bstate, hex, err)) == 0 && stat(bstate, &sst) < 0)
		r = hutch_error_set(err, errno, "stat '%s': %s", bstate, strerror(errno));
	if (r == 0 && (uint64_t)sst.st_size > WARM_STATE_MAX)
		r = hutch_error_set(err, EFBIG, "the template's state file is too large");
	if (r < 0) {
		_cleanup_free_ char *keep = xasprintf("%s/.failed-console.log", ndir);
		_cleanup_free_ char *con = xasprintf("%s/console.log", bdir);
		rename(con, keep);
		rm_rf(bdir);
		return hutch_error_wrap(err, "making warm template '%s' (console log: %s)", wp->name, keep);
	}
	_cleanup_free_ char *ver = NULL;
	qemu_version(wp->plan->binary, &ver, NULL);
	json_object *meta = json_object_new_object();
	json_object_object_add(meta, "format", json_object_new_string(WARM_FORMAT));
	json_object_object_add(meta, "name", json_object_new_string(wp->name));
	json_object_object_add(meta, "key", json_object_new_string(wp->key));
	json_object_object_add(meta, "mem_bytes", json_object_new_int64((int64_t)wp->mem_size));
	json_object_object_add(meta, "state_bytes", json_object_new_int64((int64_t)sst.st_size));
	json_object_object_add(meta, "state_sha256", json_object_new_string(hex));
	json_object_object_add(meta, "created", json_object_new_int64((int64_t)now_real_s()));
	json_object_object_add(meta, "boot_ms", json_object_new_int64((int64_t)boot_ms));
	json_object_object_add(meta, "qemu", json_object_new_string(ver ? ver : ""));
	json_object_object_add(meta, "kernel_release",
			       json_object_new_string(wp->plan->kernel_release ? wp->plan->kernel_release : ""));
	if (wp->image && (r = warm_image_seal(wp->image, bdir, meta, err)) < 0) {
		json_object_put(meta);
		rm_rf(bdir);
		return hutch_error_wrap(err, "making warm template '%s'", wp->name);
	}
	const char *text = json_object_to_json_string_ext(meta, JSON_C_TO_STRING_PRETTY);
	_cleanup_free_ char *mp = xasprintf("%s/meta.json", bdir);
	r = write_file_atomic(mp, text, strlen(text), 0600, err);
	json_object_put(meta);
	if (r < 0) {
		rm_rf(bdir);
		return r;
	}
	/* A stale dir of this key (corrupt) goes first; the rename is what makes the template exist. */
	rm_rf(wp->dir);
	if (rename(bdir, wp->dir) < 0) {
		r = hutch_error_set(err, errno, "cannot move the template into '%s': %s", wp->dir, strerror(errno));
		rm_rf(bdir);
		return r;
	}
	remove_others(ndir, keydir);
	if (ret_ms)
		*ret_ms = now_ms() - t0;
	return 0;
}

/* ---- restoring a clone ---- */

int warm_restore(struct qmp *q, const struct warm_plan *wp, uint64_t timeout_ms, struct hutch_error *err)
{
	uint64_t deadline = now_ms() + timeout_ms;
	_cleanup_close_ int fd = open(wp->state, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return hutch_error_set(err, errno, "cannot open '%s': %s", wp->state, strerror(errno));
	int r = set_ignore_shared(q, err);
	if (r == 0)
		r = qmp_getfd(q, fd, WARM_FDNAME, err);
	if (r < 0)
		return r;
	json_object *args = json_object_new_object();
	json_object_object_add(args, "uri", json_object_new_string("fd:" WARM_FDNAME));
	r = qmp_execute(q, "migrate-incoming", args, 5000, NULL, err);
	if (r == 0)
		r = wait_migration(q, deadline, err);
	if (r == 0)
		r = qmp_execute(q, "cont", NULL, 5000, NULL, err);
	return r;
}

/* ---- identity ---- */

void warm_identity_encode(struct proto_buf *b, const char *hostname)
{
	uint8_t pool[512], id[16];
	size_t got = 0;
	while (got < sizeof(pool)) {
		ssize_t n = getrandom(pool + got, sizeof(pool) - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	if (getrandom(id, sizeof(id), 0) != (ssize_t)sizeof(id))
		memcpy(id, pool, sizeof(id));
	char mid[33];
	for (size_t i = 0; i < sizeof(id); i++)
		snprintf(mid + 2 * i, 3, "%02x", id[i]);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	proto_encode_identity(b, (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec, hostname, mid, pool, got);
}

/* ---- instances and the cache ---- */

int warm_mark_instance(struct store *st, const char *instance, const char *tname, struct hutch_error *err)
{
	_cleanup_free_ char *p = store_vm_file(st, instance, "warm-template");
	return write_file_atomic(p, tname, strlen(tname), 0600, err);
}

char *warm_instance_template(struct store *st, const char *instance)
{
	_cleanup_free_ char *p = store_vm_file(st, instance, "warm-template");
	char *text = NULL;
	size_t len;
	if (read_file(p, 256, &text, &len, NULL) < 0)
		return NULL;
	text[strcspn(text, "\n")] = 0;
	if (!store_name_valid(text)) {
		free(text);
		return NULL;
	}
	return text;
}

static uint64_t disk_bytes(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (uint64_t)st.st_blocks * 512 : 0;
}

static int by_name(const void *a, const void *b)
{
	json_object *x = *(json_object *const *)a, *y = *(json_object *const *)b;
	return strcmp(meta_str(x, "name"), meta_str(y, "name"));
}

/* Every template's dir, WARM/NAME/KEY, with its NAME: fn(name, kdir, arg). */
static void each_template(const struct store *st, void (*fn)(const char *name, const char *kdir, void *arg), void *arg)
{
	_cleanup_free_ char *root = warm_root(st);
	DIR *d = opendir(root);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.' || !store_name_valid(de->d_name))
			continue;
		_cleanup_free_ char *ndir = xasprintf("%s/%s", root, de->d_name);
		DIR *k = opendir(ndir);
		struct dirent *ke;
		while (k && (ke = readdir(k))) {
			if (ke->d_name[0] == '.')
				continue;
			_cleanup_free_ char *kdir = xasprintf("%s/%s", ndir, ke->d_name);
			fn(de->d_name, kdir, arg);
		}
		if (k)
			closedir(k);
	}
	if (d)
		closedir(d);
}

static void list_one(const char *name, const char *kdir, void *arg)
{
	json_object *arr = arg, *meta = read_meta(kdir);
	if (!meta)
		return;
	json_object *o = json_object_new_object();
	_cleanup_free_ char *mem = xasprintf("%s/mem", kdir), *state = xasprintf("%s/state", kdir);
	_cleanup_free_ char *disk = xasprintf("%s/disk.qcow2", kdir), *seed = xasprintf("%s/seed.iso", kdir);
	_cleanup_free_ char *nvram = xasprintf("%s/nvram.fd", kdir);
	json_object_object_add(o, "name", json_object_new_string(name));
	json_object_object_add(o, "key", json_object_new_string(meta_str(meta, "key")));
	json_object_object_add(o, "dir", json_object_new_string(kdir));
	json_object_object_add(o, "mem_bytes", json_object_new_int64(meta_int(meta, "mem_bytes")));
	json_object_object_add(o, "state_bytes", json_object_new_int64(meta_int(meta, "state_bytes")));
	json_object_object_add(o, "disk_bytes",
			       json_object_new_int64((int64_t)(disk_bytes(mem) + disk_bytes(state) + disk_bytes(disk) +
							       disk_bytes(seed) + disk_bytes(nvram))));
	json_object_object_add(o, "created", json_object_new_int64(meta_int(meta, "created")));
	json_object_object_add(o, "boot_ms", json_object_new_int64(meta_int(meta, "boot_ms")));
	json_object_object_add(o, "qemu", json_object_new_string(meta_str(meta, "qemu")));
	json_object_object_add(o, "kernel_release", json_object_new_string(meta_str(meta, "kernel_release")));
	json_object_array_add(arr, o);
	json_object_put(meta);
}

int warm_list(struct store *st, json_object **ret_array, struct hutch_error *err)
{
	(void)err;
	json_object *arr = json_object_new_array();
	each_template(st, list_one, arr);
	json_object_array_sort(arr, by_name);
	*ret_array = arr;
	return 0;
}

int warm_remove(struct store *st, const char *name, struct hutch_error *err)
{
	int r = store_check_name(name, err);
	if (r < 0)
		return r;
	_cleanup_free_ char *root = warm_root(st);
	_cleanup_free_ char *ndir = xasprintf("%s/%s", root, name);
	struct stat sb;
	if (stat(ndir, &sb) < 0)
		return hutch_error_set(err, ENOENT, "no warm template named '%s' (see 'hutch template ls')", name);
	_cleanup_free_ char *lockp = xasprintf("%s/.lock", ndir);
	_cleanup_close_ int lock = -1;
	r = store_lock_file(lockp, 30000, &lock, err);
	if (r < 0)
		return hutch_error_wrap(err, "warm template '%s' is being made", name);
	/* Running clones keep the files they mapped: unlinking them is safe. */
	remove_others(ndir, NULL);
	unlink(lockp);
	rmdir(ndir);
	return 0;
}

static void disk_of(const char *name, const char *kdir, void *arg)
{
	(void)name;
	char ***v = arg;
	char *disk = xasprintf("%s/disk.qcow2", kdir);
	if (access(disk, F_OK) == 0)
		*v = strv_push(*v, disk);
	else
		free(disk);
}

char **warm_template_disks(const struct store *st)
{
	char **v = xcalloc(1, sizeof(char *));
	each_template(st, disk_of, &v);
	return v;
}

/* ---- the monitor's side ---- */

struct warm_clone {
	struct store *st;
	struct warm_plan wp;
	char **cold_argv;
	bool restored;
	uint64_t made_ms; /* this start made the template first */
	char warning[512];
};

void warm_clone_setup(struct store *st, const char *name, const struct vm_spec *spec, struct qemu_plan *p,
		      uint64_t timeout_ms, struct warm_clone **ret, char **ret_log)
{
	*ret = NULL;
	*ret_log = NULL;
	_cleanup_free_ char *tname = warm_instance_template(st, name);
	if (!tname)
		return;
	struct warm_clone *w = xcalloc(1, sizeof(*w));
	w->st = st;
	struct hutch_error err = {0};
	if (warm_plan_make(st, tname, name, spec, p, &w->wp, &err) < 0) {
		/* not a VM that can be a clone: it boots as it always did, without a word */
		*ret_log = xasprintf("no warm template: %s", err.msg);
		hutch_error_clear(&err);
		free(w);
		return;
	}
	*ret = w;
	int r = warm_template_check(&w->wp, &err);
	if (r == -EBADMSG) {
		snprintf(w->warning, sizeof(w->warning),
			 "%s: booting cold; the template is removed and made again "
			 "on the next run",
			 err.msg);
		hutch_error_clear(&err);
		warm_remove(st, w->wp.name, NULL);
		return;
	}
	if (r == -ENOENT && w->wp.image && spec->source == SOURCE_IMAGE) {
		/* A cloud image's first boot takes minutes under TCG: made within this start's timeout,
		 * the template would leave the cold boot no time. 'template save' makes it. A container
		 * image's VM boots micro's kernel in seconds: like micro, its template is made here. */
		*ret_log = xasprintf("no warm template '%s' yet ('hutch template save %s' makes one): booting cold",
				     w->wp.name, w->wp.name);
		hutch_error_clear(&err);
		*ret = NULL;
		warm_clone_free(w);
		return;
	}
	if (r == -ENOENT) {
		hutch_error_clear(&err);
		if (warm_template_make(st, &w->wp, timeout_ms, &w->made_ms, &err) < 0) {
			snprintf(w->warning, sizeof(w->warning), "%s; booting cold", err.msg);
			hutch_error_clear(&err);
			return;
		}
	} else if (r < 0) {
		snprintf(w->warning, sizeof(w->warning), "%s; booting cold", err.msg);
		hutch_error_clear(&err);
		return;
	}
	if (w->wp.image && warm_image_clone_disk(w->wp.image, &err) < 0) {
		snprintf(w->warning, sizeof(w->warning), "%s; booting cold", err.msg);
		hutch_error_clear(&err);
		return;
	}
	w->cold_argv = p->argv;
	p->argv = strv_copy(w->wp.clone_argv);
	/* No transparent huge pages for the clone's QEMU (inherited over fork and exec): QEMU asks
	 * for them on its own RAM blocks, so the 4 KiB of ACPI tables it restores take 2 MiB, and
	 * the translation cache grows in 2 MiB steps; per clone that is memory nobody shares. */
	prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
}

bool warm_clone_pending(const struct warm_clone *w) { return w && w->cold_argv && !w->restored; }

int warm_clone_restore(struct warm_clone *w, struct qmp *q, struct hutch_error *err)
{
	int r = warm_restore(q, &w->wp, 20000, err);
	if (r == 0)
		w->restored = true; /* the cold argv stays, for warm_clone_abandon */
	return r;
}

void warm_clone_fall_back(struct warm_clone *w, struct qemu_plan *p, bool refused, const char *why)
{
	snprintf(w->warning, sizeof(w->warning), "restoring from warm template '%s' failed (%s); booting cold%s",
		 w->wp.name, why ? why : "qemu did not start",
		 refused ? "; the template is removed and made again on the next run" : "");
	if (refused)
		warm_remove(w->st, w->wp.name, NULL);
	strv_free(p->argv);
	p->argv = TAKE_PTR(w->cold_argv);
}

int warm_clone_abandon(struct warm_clone *w, struct qemu_plan *p, const char *why)
{
	if (!w || !w->restored || !w->cold_argv)
		return -EINVAL;
	/* The template stays: it is the agent in it that did not answer, and a template made again
	 * would hold the same agent. */
	snprintf(w->warning, sizeof(w->warning), "the clone of warm template '%s' %s; booting cold", w->wp.name, why);
	w->restored = false;
	strv_free(p->argv);
	p->argv = TAKE_PTR(w->cold_argv);
	return 0;
}

const char *warm_clone_warning(const struct warm_clone *w) { return w && w->warning[0] ? w->warning : NULL; }

bool warm_clone_restored(const struct warm_clone *w) { return w && w->restored; }

void warm_clone_json(const struct warm_clone *w, uint64_t restore_ms, json_object *o)
{
	if (!w)
		return;
	if (w->restored) {
		json_object_object_add(o, "restored_from", json_object_new_string(w->wp.name));
		json_object_object_add(o, "restore_ms", json_object_new_int64((int64_t)restore_ms));
		if (w->made_ms)
			json_object_object_add(o, "template_made_ms", json_object_new_int64((int64_t)w->made_ms));
	}
	if (w->warning[0])
		json_object_object_add(o, "warm_warning", json_object_new_string(w->warning));
}

void warm_clone_free(struct warm_clone *w)
{
	if (!w)
		return;
	warm_plan_release(&w->wp);
	strv_free(w->cold_argv);
	free(w);
}

/* ---- what a running clone says of itself ---- */

int warm_status(struct store *st, const char *name, struct warm_status *ret)
{
	memset(ret, 0, sizeof(*ret));
	_cleanup_close_ int fd = -1;
	if (monitor_connect(st, name, &fd, NULL) < 0)
		return -ENOTCONN;
	json_object *req = json_object_new_object(), *res = NULL, *v;
	json_object_object_add(req, "op", json_object_new_string("status"));
	if (monitor_request(fd, req, 5000, &res, NULL) < 0)
		return -EIO;
	if (json_object_object_get_ex(res, "restored_from", &v))
		snprintf(ret->restored_from, sizeof(ret->restored_from), "%s", json_object_get_string(v));
	if (json_object_object_get_ex(res, "restore_ms", &v))
		ret->restore_ms = (uint64_t)json_object_get_int64(v);
	if (json_object_object_get_ex(res, "template_made_ms", &v))
		ret->made_ms = (uint64_t)json_object_get_int64(v);
	if (json_object_object_get_ex(res, "warm_warning", &v))
		snprintf(ret->warning, sizeof(ret->warning), "%s", json_object_get_string(v));
	json_object_put(res);
	return 0;
}

/* ---- template save ---- */

int warm_save(struct store *st, const char *name, uint64_t timeout_ms, json_object **ret, struct hutch_error *err)
{
	*ret = NULL;
	struct vm vm = {0};
	int r;
	if (store_vm_exists(st, name)) {
		r = vm_load(st, name, &vm, err);
		if (r < 0)
			return r;
	} else if (!strcmp(name, "micro")) {
		vm.store = st;
		vm.name = xstrdup(name);
		vm.spec = spec_new(name);
		vm.spec->source = SOURCE_TEMPLATE;
		vm.spec->template = xstrdup("micro");
		spec_apply_defaults(vm.spec);
	} else {
		return hutch_error_set(err, ENOENT,
				       "no VM named '%s' (a warm template is made of 'micro' or a defined VM)", name);
	}
	struct qemu_plan plan = {0};
	struct warm_plan wp = {0};
	r = warm_supported(vm.spec, err);
	if (r == 0)
		r = qemu_plan_make(&vm, PLAN_START, &plan, err);
	if (r == 0)
		r = warm_plan_make(st, name, name, vm.spec, &plan, &wp, err);
	uint64_t ms = 0;
	if (r == 0) {
		/* save makes it afresh: the one there (if any) goes; clones running keep their files */
		rm_rf(wp.dir);
		r = warm_template_make(st, &wp, timeout_ms, &ms, err);
	}
	if (r == 0) {
		json_object *all = NULL;
		warm_list(st, &all, NULL);
		for (size_t i = 0; all && i < json_object_array_length(all); i++) {
			json_object *o = json_object_array_get_idx(all, i);
			if (!strcmp(meta_str(o, "key"), wp.key))
				*ret = json_object_get(o);
		}
		json_object_put(all);
		if (!*ret)
			r = hutch_error_set(err, EIO, "the template '%s' was made but is not listed", name);
	}
	warm_plan_release(&wp);
	qemu_plan_release(&plan);
	vm_release(&vm);
	return r < 0 ? hutch_error_wrap(err, "template save '%s'", name) : 0;
}
