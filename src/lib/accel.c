/* Acceleration: the device check, the cached verdict, and the decision. The probe itself is in
 * accel_probe.c. */
#include "accel.h"

#include <fcntl.h>
#include <grp.h>
#include <json-c/json.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>

const char *accel_mode_name(enum accel_mode m)
{
	switch (m) {
	case ACCEL_KVM:
		return "kvm";
	case ACCEL_TCG:
		return "tcg";
	case ACCEL_UNSET:
	case ACCEL_AUTO:
	default:
		return "auto";
	}
}

int accel_mode_parse(const char *s, enum accel_mode *ret)
{
	if (!s)
		return -EINVAL;
	if (!strcmp(s, "auto"))
		*ret = ACCEL_AUTO;
	else if (!strcmp(s, "kvm"))
		*ret = ACCEL_KVM;
	else if (!strcmp(s, "tcg"))
		*ret = ACCEL_TCG;
	else
		return -EINVAL;
	return 0;
}

const char *probe_outcome_name(enum probe_outcome o)
{
	switch (o) {
	case PROBE_OK:
		return "ok";
	case PROBE_QEMU_EXIT:
		return "qemu-exit";
	case PROBE_TIMEOUT:
		return "timeout";
	case PROBE_ERROR:
	default:
		return "error";
	}
}

void accel_check_device(struct kvm_device *ret)
{
	memset(ret, 0, sizeof(*ret));
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		close(fd);
		ret->state = KVM_DEV_OK;
		return;
	}
	ret->error = errno;
	if (errno == ENOENT || errno == ENXIO || errno == ENODEV)
		ret->state = KVM_DEV_MISSING;
	else if (errno == EACCES || errno == EPERM)
		ret->state = KVM_DEV_DENIED;
	else
		ret->state = KVM_DEV_ERROR;
}

/* ---- the host key ---- */

/* The host's boot id (hex digits and dashes) into out; false when there is none to read. */
static bool boot_id_read(char *out, size_t size)
{
	_cleanup_free_ char *bp = host_path("HUTCH_PROC_ROOT", "/proc/sys/kernel/random/boot_id");
	_cleanup_free_ char *text = NULL;
	size_t len = 0, k = 0;
	if (read_file(bp, 4096, &text, &len, NULL) == 0)
		for (size_t i = 0; i < len && k + 1 < size; i++)
			if ((text[i] >= '0' && text[i] <= '9') || (text[i] >= 'a' && text[i] <= 'f') || text[i] == '-')
				out[k++] = text[i];
	out[k] = 0;
	return k > 0;
}

int accel_host_read(const char *qemu_binary, struct accel_host *ret, struct hutch_error *err)
{
	struct accel_host h;
	memset(&h, 0, sizeof(h));
	if (!boot_id_read(h.boot_id, sizeof(h.boot_id))) {
		_cleanup_free_ char *bp = host_path("HUTCH_PROC_ROOT", "/proc/sys/kernel/random/boot_id");
		return hutch_error_set(err, ENOENT, "cannot read the host's boot id from '%s'", bp);
	}
	struct utsname u;
	if (uname(&u) == 0)
		snprintf(h.kernel, sizeof(h.kernel), "%s", u.release);
	struct stat st;
	if (stat(qemu_binary, &st) < 0)
		return hutch_error_set(err, errno, "cannot stat '%s': %s", qemu_binary, strerror(errno));
	snprintf(h.qemu, sizeof(h.qemu), "%s", qemu_binary);
	snprintf(h.qemu_id, sizeof(h.qemu_id), "%llx:%llx:%lld:%lld.%09ld", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino, (long long)st.st_size, (long long)st.st_mtim.tv_sec,
		 st.st_mtim.tv_nsec);
	*ret = h;
	return 0;
}

bool accel_host_equal(const struct accel_host *a, const struct accel_host *b)
{
	return !strcmp(a->boot_id, b->boot_id) && !strcmp(a->kernel, b->kernel) && !strcmp(a->qemu, b->qemu) &&
	       !strcmp(a->qemu_id, b->qemu_id);
}

/* ---- the cached verdict ---- */

char *accel_verdict_path(const char *cache_dir) { return xasprintf("%s/accel.json", cache_dir); }

static void copy_field(json_object *o, const char *key, char *dst, size_t len)
{
	json_object *v;
	dst[0] = 0;
	if (json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string))
		snprintf(dst, len, "%s", json_object_get_string(v));
}

int accel_verdict_load(const char *path, const struct accel_host *key, struct accel_verdict *ret)
{
	char *text = NULL;
	size_t len;
	int r = read_file(path, 64 * 1024, &text, &len, NULL);
	if (r < 0)
		return -ENOENT;
	json_object *o = json_tokener_parse(text);
	free(text);
	if (!o || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return -ENOENT; /* a torn or foreign file is no verdict: probe again */
	}
	struct accel_verdict v;
	memset(&v, 0, sizeof(v));
	json_object *h = NULL, *x;
	if (json_object_object_get_ex(o, "host", &h)) {
		copy_field(h, "boot_id", v.host.boot_id, sizeof(v.host.boot_id));
		copy_field(h, "kernel", v.host.kernel, sizeof(v.host.kernel));
		copy_field(h, "qemu", v.host.qemu, sizeof(v.host.qemu));
		copy_field(h, "qemu_id", v.host.qemu_id, sizeof(v.host.qemu_id));
	}
	copy_field(o, "qemu_version", v.qemu_version, sizeof(v.qemu_version));
	copy_field(o, "cpu", v.cpu, sizeof(v.cpu));
	copy_field(o, "detail", v.detail, sizeof(v.detail));
	char outcome[32];
	copy_field(o, "outcome", outcome, sizeof(outcome));
	v.outcome = PROBE_ERROR;
	for (int i = PROBE_OK; i <= PROBE_ERROR; i++)
		if (!strcmp(outcome, probe_outcome_name((enum probe_outcome)i)))
			v.outcome = (enum probe_outcome)i;
	if (json_object_object_get_ex(o, "works", &x))
		v.works = json_object_get_boolean(x);
	if (json_object_object_get_ex(o, "probe_ms", &x))
		v.probe_ms = (uint64_t)json_object_get_int64(x);
	if (json_object_object_get_ex(o, "when", &x))
		v.when = json_object_get_int64(x);
	json_object_put(o);
	/* A verdict that claims KVM works must say with which model. */
	if (v.works && (!v.cpu[0] || v.outcome != PROBE_OK))
		return -ENOENT;
	if (key && !accel_host_equal(key, &v.host))
		return -ESTALE;
	*ret = v;
	return 0;
}

int accel_verdict_save(const char *path, const struct accel_verdict *v, struct hutch_error *err)
{
	json_object *o = json_object_new_object(), *h = json_object_new_object();
	json_object_object_add(h, "boot_id", json_object_new_string(v->host.boot_id));
	json_object_object_add(h, "kernel", json_object_new_string(v->host.kernel));
	json_object_object_add(h, "qemu", json_object_new_string(v->host.qemu));
	json_object_object_add(h, "qemu_id", json_object_new_string(v->host.qemu_id));
	json_object_object_add(o, "host", h);
	json_object_object_add(o, "qemu_version", json_object_new_string(v->qemu_version));
	json_object_object_add(o, "works", json_object_new_boolean(v->works));
	json_object_object_add(o, "outcome", json_object_new_string(probe_outcome_name(v->outcome)));
	json_object_object_add(o, "cpu", json_object_new_string(v->cpu));
	json_object_object_add(o, "detail", json_object_new_string(v->detail));
	json_object_object_add(o, "probe_ms", json_object_new_int64((int64_t)v->probe_ms));
	json_object_object_add(o, "when", json_object_new_int64(v->when));
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
	_cleanup_free_ char *text = xasprintf("%s\n", s);
	json_object_put(o);
	return write_file_atomic(path, text, strlen(text), 0644, err);
}

/* ---- the decision ---- */

char *accel_permission_fix(void)
{
	struct stat st;
	/* Debian's udev rule makes it root:kvm 0660: joining the group is enough. */
	if (stat("/dev/kvm", &st) == 0 && (st.st_mode & 060) == 060) {
		const struct group *g = getgrgid(st.st_gid);
		return xasprintf("join the '%s' group: sudo usermod -aG %s %s, then log in again",
				 g ? g->gr_name : "kvm", g ? g->gr_name : "kvm", user_name());
	}
	/* root-only (0600), as on some VM hosts: the group needs access first */
	return xasprintf("/dev/kvm is not group-accessible: sudo chgrp kvm /dev/kvm && sudo chmod 0660 /dev/kvm "
			 "(keep it with a udev rule: KERNEL==\"kvm\", GROUP=\"kvm\", MODE=\"0660\"), then "
			 "sudo usermod -aG kvm %s and log in again",
			 user_name());
}

/* Why KVM can't be used, without the verdict: the device itself. */
static void device_why(const struct kvm_device *dev, char *buf, size_t len)
{
	switch (dev->state) {
	case KVM_DEV_MISSING:
		snprintf(buf, len,
			 "/dev/kvm does not exist (no hardware virtualization here, or the kvm_intel/kvm_amd module is "
			 "not loaded)");
		break;
	case KVM_DEV_DENIED: {
		_cleanup_free_ char *fix = accel_permission_fix();
		snprintf(buf, len, "cannot open /dev/kvm: %s (%s)", strerror(dev->error), fix);
		break;
	}
	case KVM_DEV_ERROR:
		snprintf(buf, len, "cannot open /dev/kvm: %s", strerror(dev->error));
		break;
	case KVM_DEV_OK:
	default:
		buf[0] = 0;
		break;
	}
}

static void verdict_why(const struct accel_verdict *v, char *buf, size_t len)
{
	snprintf(buf, len, "KVM failed its probe on this host: %s", v->detail[0] ? v->detail : "no detail");
}

int accel_decide(enum accel_mode mode, const struct kvm_device *dev, const struct accel_verdict *v,
		 struct accel_info *ret, struct hutch_error *err)
{
	struct accel_info a;
	memset(&a, 0, sizeof(a));
	if (mode == ACCEL_TCG) {
		snprintf(a.cpu, sizeof(a.cpu), ACCEL_CPU_TCG);
		snprintf(a.why, sizeof(a.why), "accel: tcg was asked for");
		*ret = a;
		return 0;
	}
	bool must = mode == ACCEL_KVM;
	if (dev->state != KVM_DEV_OK) {
		device_why(dev, a.why, sizeof(a.why));
		if (must)
			return hutch_error_set(err, dev->state == KVM_DEV_DENIED ? EACCES : ENODEV, "accel: kvm: %s",
					       a.why);
		snprintf(a.cpu, sizeof(a.cpu), ACCEL_CPU_TCG);
		a.warn = true;
		*ret = a;
		return 0;
	}
	if (!v)
		return -EAGAIN;
	if (v->works) {
		a.kvm = true;
		a.proven = true;
		snprintf(a.cpu, sizeof(a.cpu), "%s", v->cpu[0] ? v->cpu : ACCEL_CPU_KVM);
		*ret = a;
		return 0;
	}
	verdict_why(v, a.why, sizeof(a.why));
	if (must)
		return hutch_error_set(err, v->outcome == PROBE_TIMEOUT ? ETIMEDOUT : EIO,
				       "accel: kvm: %s ('hutch doctor --probe' tries again)", a.why);
	snprintf(a.cpu, sizeof(a.cpu), ACCEL_CPU_TCG);
	a.warn = true;
	*ret = a;
	return 0;
}

/* ---- resolve: device, verdict, probe, decision ---- */

static uint64_t probe_timeout(const struct accel_request *rq)
{
	const char *env = getenv("HUTCH_ACCEL_PROBE_TIMEOUT");
	uint64_t ms;
	if (env && *env && parse_duration_ms(env, &ms) == 0 && ms > 0)
		return ms;
	return rq->timeout_ms ? rq->timeout_ms : ACCEL_PROBE_TIMEOUT_MS;
}

static int run_probe(const struct accel_request *rq, const struct accel_host *key, struct accel_verdict *ret,
		     struct hutch_error *err)
{
	_cleanup_free_ char *kernel = NULL, *initrd = NULL;
	int r = rq->guest(rq->userdata, &kernel, &initrd, err);
	if (r < 0)
		return hutch_error_wrap(err, "the KVM probe needs the micro template");
	if (mkdir_p(rq->run_dir, 0700) < 0)
		return hutch_error_set(err, errno, "cannot create '%s': %s", rq->run_dir, strerror(errno));
	_cleanup_free_ char *work = xasprintf("%s/probe.XXXXXX", rq->run_dir);
	if (!mkdtemp(work))
		return hutch_error_set(err, errno, "cannot create a probe dir in '%s': %s", rq->run_dir,
				       strerror(errno));
	struct accel_probe_in in = {.qemu = rq->qemu,
				    .kernel = kernel,
				    .initrd = initrd,
				    .work_dir = work,
				    .timeout_ms = probe_timeout(rq)};
	r = accel_probe_run(&in, ret, err);
	rm_rf(work);
	if (r < 0)
		return r;
	ret->host = *key;
	ret->when = (int64_t)now_real_s();
	return 0;
}

/* Probe once for everybody: under the lock, a verdict written meanwhile by another start wins. */
static int probe_locked(const struct accel_request *rq, const struct accel_host *key, const char *path,
			struct accel_verdict *ret, bool *ret_probed, struct hutch_error *err)
{
	if (mkdir_p(rq->cache_dir, 0755) < 0)
		return hutch_error_set(err, errno, "cannot create '%s': %s", rq->cache_dir, strerror(errno));
	_cleanup_free_ char *lp = xasprintf("%s/accel.lock", rq->cache_dir);
	_cleanup_close_ int lfd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (lfd < 0)
		return hutch_error_set(err, errno, "cannot open '%s': %s", lp, strerror(errno));
	while (flock(lfd, LOCK_EX) < 0)
		if (errno != EINTR)
			return hutch_error_set(err, errno, "cannot lock '%s': %s", lp, strerror(errno));
	if (!rq->force_probe && accel_verdict_load(path, key, ret) == 0)
		return 0;
	int r = run_probe(rq, key, ret, err);
	if (r < 0)
		return r;
	*ret_probed = true;
	struct hutch_error e2 = {0};
	if (accel_verdict_save(path, ret, &e2) < 0)
		log_debug("accel: cannot cache the verdict: %s", e2.msg);
	hutch_error_clear(&e2);
	return 0;
}

int accel_resolve(const struct accel_request *rq, struct accel_result *ret, struct hutch_error *err)
{
	struct accel_result res;
	memset(&res, 0, sizeof(res));
	enum accel_mode mode = rq->mode == ACCEL_UNSET ? ACCEL_AUTO : rq->mode;
	if (mode != ACCEL_TCG || rq->force_probe)
		accel_check_device(&res.dev);
	if (res.dev.state == KVM_DEV_OK && (mode != ACCEL_TCG || rq->force_probe)) {
		struct accel_host key;
		int r = accel_host_read(rq->qemu, &key, err);
		if (r < 0)
			return r;
		_cleanup_free_ char *path = accel_verdict_path(rq->cache_dir);
		if (!rq->force_probe && accel_verdict_load(path, &key, &res.verdict) == 0)
			res.have_verdict = true;
		else if (rq->may_probe && rq->guest) {
			r = probe_locked(rq, &key, path, &res.verdict, &res.probed, err);
			if (r < 0) {
				if (mode == ACCEL_KVM || rq->force_probe)
					return r;
				/* auto: a probe that could not even run proves nothing; TCG, and say why */
				struct accel_verdict nv;
				memset(&nv, 0, sizeof(nv));
				nv.outcome = PROBE_ERROR;
				snprintf(nv.detail, sizeof(nv.detail), "the probe could not run: %s", err->msg);
				hutch_error_clear(err);
				res.verdict = nv;
			}
			res.have_verdict = true;
		}
	}
	int r = accel_decide(mode, &res.dev, res.have_verdict ? &res.verdict : NULL, &res.info, err);
	if (r == -EAGAIN && rq->render) {
		/* Not allowed to probe: show what a start would try first. */
		res.info.kvm = true;
		res.info.proven = false;
		snprintf(res.info.cpu, sizeof(res.info.cpu), ACCEL_CPU_KVM);
		snprintf(res.info.why, sizeof(res.info.why),
			 "KVM is not proven on this host yet: the first start probes it ('hutch doctor --probe')");
		r = 0;
	} else if (r == -EAGAIN) {
		const char *why = "KVM is not proven on this host (no verdict; 'hutch doctor --probe' makes one)";
		if (mode == ACCEL_KVM)
			return hutch_error_set(err, EAGAIN, "accel: kvm: %s", why);
		snprintf(res.info.cpu, sizeof(res.info.cpu), ACCEL_CPU_TCG);
		snprintf(res.info.why, sizeof(res.info.why), "%s", why);
		res.info.warn = true;
		r = 0;
	}
	if (r < 0)
		return r;
	*ret = res;
	return 0;
}

/* ---- the TSC rate, for TCG microvm guests ---- */

static uint64_t rdtsc(void)
{
#if defined(__x86_64__) || defined(__i386__)
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
#else
	return 0;
#endif
}

/* Under TCG the guest's TSC runs at the host's TSC rate. A microvm guest has no PIT/HPET-backed
 * calibration it can trust, and on a contended host it can spin forever calibrating; telling it the
 * rate (tsc_early_khz, lpj) skips calibration. Measure instead of guessing: 20 ms against
 * CLOCK_MONOTONIC_RAW, which is accurate to well under 1%. */
static uint64_t measure_tsc_khz(void)
{
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC_RAW, &a);
	uint64_t t0 = rdtsc();
	struct timespec req = {0, 20 * 1000 * 1000};
	nanosleep(&req, NULL);
	uint64_t t1 = rdtsc();
	clock_gettime(CLOCK_MONOTONIC_RAW, &b);
	uint64_t ns = (uint64_t)(b.tv_sec - a.tv_sec) * 1000000000ull + (uint64_t)b.tv_nsec - (uint64_t)a.tv_nsec;
	if (ns == 0 || t1 <= t0)
		return 0;
	uint64_t khz = (t1 - t0) * 1000000ull / ns;
	/* Round to 1 MHz so the rendered argv is stable across runs. */
	return (khz + 500) / 1000 * 1000;
}

/* The TSC rate is fixed for a boot of the host: measured once per boot and kept in
 * cache_dir/tsc-khz ("BOOT_ID KHZ"), so a start does not sleep 20 ms for it, and every start of
 * one boot renders the same kernel command line (a warm template's key holds it). */
uint64_t accel_tsc_khz(const char *cache_dir)
{
	const char *khz = getenv("HUTCH_TSC_KHZ");
	long long v;
	if (khz && parse_ll(khz, 1000, 100000000, &v) == 0)
		return (uint64_t)v;
	char id[64];
	boot_id_read(id, sizeof(id));
	_cleanup_free_ char *path = cache_dir && id[0] ? xasprintf("%s/tsc-khz", cache_dir) : NULL;
	_cleanup_free_ char *text = NULL;
	if (path && read_file(path, 256, &text, NULL, NULL) == 0) {
		char fid[64];
		unsigned long long k;
		if (sscanf(text, "%63s %llu", fid, &k) == 2 && !strcmp(fid, id) && k >= 1000 && k <= 100000000)
			return k;
	}
	uint64_t m = measure_tsc_khz();
	if (path && m) {
		_cleanup_free_ char *line = xasprintf("%s %llu\n", id, (unsigned long long)m);
		struct hutch_error err = {0};
		if (mkdir_p(cache_dir, 0700) < 0 || write_file_atomic(path, line, strlen(line), 0600, &err) < 0)
			log_debug("accel: cannot keep the TSC rate in '%s'", path);
		hutch_error_clear(&err);
	}
	return m;
}
