/* The KVM probe: boot the micro template under KVM, exactly as a micro VM is booted, and wait for
 * its agent's HELLO. QEMU refusing to start (the MSR abort of a paravirtual KVM) and a guest that
 * never reaches its agent (a kernel spinning at 100% system CPU) are both failures. */
#include "accel.h"

#include "proto.h"
#include "qemu.h"
#include "spec.h"

#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#define PROBE_MEMORY (256ULL << 20)

/* Guest text in a message: printable ASCII only, bounded. */
static void sanitize(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			*s = '?';
}

/* QEMU's own reason: the first line that says "error", else its last line. */
static void qemu_reason(const char *log, char *buf, size_t len)
{
	char *text = NULL;
	size_t n;
	buf[0] = 0;
	if (read_file(log, 1 << 20, &text, &n, NULL) < 0)
		return;
	for (char *save = NULL, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		if (strstr(line, "error")) {
			const char *p = strstr(line, "error");
			snprintf(buf, len, "%s", p);
			break;
		}
	free(text);
	if (!buf[0]) {
		_cleanup_free_ char *last = file_last_line(log, 300);
		if (last)
			snprintf(buf, len, "%s", last);
	}
	sanitize(buf);
}

/* Wait for HELLO on the agent socket while watching QEMU. */
static enum probe_outcome watch(pid_t pid, int agent_fd, uint64_t timeout_ms, int *ret_status)
{
	struct proto_reader rd;
	proto_reader_init(&rd);
	uint64_t deadline = now_ms() + timeout_ms;
	enum probe_outcome out = PROBE_TIMEOUT;
	for (;;) {
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			*ret_status = st;
			out = PROBE_QEMU_EXIT;
			break;
		}
		uint64_t t = now_ms();
		if (t >= deadline)
			break;
		struct pollfd p = {.fd = agent_fd, .events = POLLIN};
		int left = (int)(deadline - t);
		if (poll(&p, 1, left < 100 ? left : 100) <= 0)
			continue;
		long n = proto_reader_read_fd(&rd, agent_fd);
		if (n <= 0) {
			/* QEMU closed the channel: it is exiting; the next round reaps it */
			struct timespec ts = {0, 20 * 1000 * 1000};
			nanosleep(&ts, NULL);
			continue;
		}
		struct proto_frame f;
		int k;
		while ((k = proto_reader_next(&rd, &f)) == 1)
			if (f.type == MSG_HELLO) {
				out = PROBE_OK;
				goto done;
			}
		if (k < 0)
			break; /* garbage is no progress */
	}
done:
	proto_reader_free(&rd);
	return out;
}

/* One boot with one CPU model. */
static int probe_once(const struct accel_probe_in *in, const char *cpu, enum probe_outcome *ret_out, char *detail,
		      size_t dlen, struct hutch_error *err)
{
	_cleanup_(spec_freep) struct vm_spec *s = spec_new("hutch-probe");
	s->source = SOURCE_TEMPLATE;
	s->memory = PROBE_MEMORY;
	s->cpus = 1;
	s->net_mode = NET_NONE;
	spec_apply_defaults(s);
	struct accel_info a = {.kvm = true};
	snprintf(a.cpu, sizeof(a.cpu), "%s", cpu);
	struct qemu_config c = {.name = "hutch-probe",
				.spec = s,
				.binary = in->qemu,
				.run_dir = in->work_dir,
				.vm_dir = in->work_dir,
				.kernel = in->kernel,
				.initrd = in->initrd,
				.accel = &a};
	_cleanup_strv_ char **argv = NULL;
	int r = qemu_build_argv(&c, &argv, err);
	if (r < 0)
		return r;
	_cleanup_free_ char *log_path = xasprintf("%s/qemu.log", in->work_dir);
	_cleanup_free_ char *console = xasprintf("%s/console.log", in->work_dir);
	unlink(console);
	struct qemu_proc q;
	r = qemu_spawn(argv, in->work_dir, log_path, &q, err);
	if (r < 0)
		return r;
	close(q.qmp_fd); /* the probe only listens for the agent */
	_cleanup_close_ int agent_fd = q.agent_fd;
	pid_t pid = q.pid;
	int status = 0;
	enum probe_outcome out = watch(pid, agent_fd, in->timeout_ms, &status);
	if (out != PROBE_QEMU_EXIT) {
		kill(pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	*ret_out = out;
	detail[0] = 0;
	if (out == PROBE_QEMU_EXIT) {
		char why[300];
		qemu_reason(log_path, why, sizeof(why));
		snprintf(detail, dlen, "qemu -cpu %s exited at start (%s %d)%s%s", cpu,
			 WIFEXITED(status) ? "status" : "signal",
			 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), why[0] ? ": " : "", why);
	} else if (out == PROBE_TIMEOUT) {
		_cleanup_free_ char *last = file_last_line(console, 160);
		if (last)
			sanitize(last);
		snprintf(detail, dlen, "with -cpu %s the guest made no progress to its agent within %llu s%s%s%s", cpu,
			 (unsigned long long)(in->timeout_ms / 1000), last ? " (its console's last line: '" : "",
			 last ? last : "", last ? "')" : "");
	}
	return 0;
}

int accel_probe_run(const struct accel_probe_in *in, struct accel_verdict *ret, struct hutch_error *err)
{
	struct accel_verdict v;
	memset(&v, 0, sizeof(v));
	_cleanup_free_ char *version = NULL;
	if (qemu_version(in->qemu, &version, NULL) == 0)
		snprintf(v.qemu_version, sizeof(v.qemu_version), "%s", version);
	static const char *const models[] = {ACCEL_CPU_KVM, ACCEL_CPU_KVM_FALLBACK};
	uint64_t t0 = now_ms();
	struct strbuf why = STRBUF_INIT;
	for (size_t i = 0; i < ARRAY_SIZE(models); i++) {
		enum probe_outcome out = PROBE_ERROR;
		char detail[400];
		int r = probe_once(in, models[i], &out, detail, sizeof(detail), err);
		if (r < 0) {
			strbuf_release(&why);
			return r;
		}
		v.outcome = out;
		snprintf(v.cpu, sizeof(v.cpu), "%s", models[i]);
		if (out == PROBE_OK) {
			v.works = true;
			break;
		}
		strbuf_addf(&why, "%s%s", why.len ? "; then " : "", detail);
		/* Only a QEMU that refused the model at start is worth another model; a guest that hangs
		 * under KVM hangs under any model. */
		if (out != PROBE_QEMU_EXIT)
			break;
	}
	v.probe_ms = now_ms() - t0;
	if (!v.works)
		snprintf(v.detail, sizeof(v.detail), "%s", strbuf_str(&why));
	strbuf_release(&why);
	*ret = v;
	return 0;
}
