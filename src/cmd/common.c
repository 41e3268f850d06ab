#include "cmd.h"
#include "vmops.h"

#include "image.h"

#include <signal.h>
#include <stdarg.h>
#include <string.h>

int cmd_fail(struct cmd_ctx *c, int r)
{
	if (!c->err.msg)
		hutch_error_set(&c->err, r, "%s", strerror(r < 0 ? -r : r));
	return EXIT_ERR;
}

void cmd_set_subject(struct cmd_ctx *c, const char *name)
{
	free(c->subject);
	c->subject = name ? xstrdup(name) : NULL;
}

void cmd_print_json(json_object *o)
{
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
						       JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

json_object *cmd_json_strv(char *const *v)
{
	json_object *a = json_object_new_array();
	for (size_t i = 0; v && v[i]; i++)
		json_object_array_add(a, json_object_new_string(v[i]));
	return a;
}

int cmd_usage(struct cmd_ctx *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "hutch: %s%s", c->verb ? c->verb : "", c->verb ? ": " : "");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	if (c->verb_def && !(c->verb_def->flags & VERB_HIDDEN))
		opt_print_usage(stderr, c->verb_def, c->sub_def);
	return EXIT_USAGE;
}

bool cmd_color(void) { return isatty(STDOUT_FILENO) && !getenv("NO_COLOR"); }

int cmd_vm_name(struct cmd_ctx *c, const char *name, const char *instance, char **ret)
{
	cmd_set_subject(c, instance ? NULL : name);
	int r = vm_instance_name(name, instance, ret, &c->err);
	if (r < 0)
		return EXIT_ERR;
	cmd_set_subject(c, *ret);
	return 0;
}

/* ---- download progress: a bar on a TTY only, Ctrl-C keeps the partial file ---- */

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

const char *cmd_human(uint64_t b, char *buf, size_t len)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double d = (double)b;
	unsigned u = 0;
	while (d >= 1024 && u + 1 < ARRAY_SIZE(units)) {
		d /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)b);
	else
		snprintf(buf, len, "%.1f %s", d, units[u]);
	return buf;
}

static void bar_draw(const struct image_progress_info *pi, void *userdata)
{
	struct cmd_bar *b = userdata;
	char done[24], total[24], rate[24], eta[24] = "--:--";
	uint64_t fresh = pi->done - pi->resumed;
	uint64_t bps = pi->elapsed_ms ? fresh * 1000 / pi->elapsed_ms : 0;
	cmd_human(pi->done, done, sizeof(done));
	cmd_human(bps, rate, sizeof(rate));
	if (pi->total && bps && pi->total > pi->done) {
		uint64_t s = (pi->total - pi->done) / bps;
		if (s >= 3600)
			snprintf(eta, sizeof(eta), "%llu:%02llu:%02llu", (unsigned long long)(s / 3600),
				 (unsigned long long)(s / 60 % 60), (unsigned long long)(s % 60));
		else
			snprintf(eta, sizeof(eta), "%02llu:%02llu", (unsigned long long)(s / 60),
				 (unsigned long long)(s % 60));
	} else if (pi->finished) {
		snprintf(eta, sizeof(eta), "done");
	}
	if (pi->total) {
		unsigned pct = (unsigned)(pi->done >= pi->total ? 100 : pi->done * 100 / pi->total);
		char hashes[21];
		memset(hashes, ' ', 20);
		memset(hashes, '#', pct / 5);
		hashes[20] = 0;
		fprintf(stderr, "\r[%s] %3u%% %s / %s  %s/s  ETA %s\033[K", hashes, pct, done,
			cmd_human(pi->total, total, sizeof(total)), rate, eta);
	} else {
		fprintf(stderr, "\r%s  %s/s\033[K", done, rate);
	}
	if (pi->finished)
		fputc('\n', stderr);
	b->drawn = true;
	b->finished = pi->finished;
}

const struct image_progress *cmd_progress_init(struct cmd_ctx *c, struct cmd_progress *p)
{
	memset(p, 0, sizeof(*p));
	interrupted = 0;
	p->ip.userdata = &p->bar;
	p->ip.cancel = &interrupted;
	if (isatty(STDERR_FILENO) && !c->quiet)
		p->ip.fn = bar_draw;
	/* Ctrl-C stops the transfer between two writes, so image.part stays whole for the next run. */
	struct sigaction sa = {.sa_handler = on_sigint};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &p->old);
	p->armed = true;
	return &p->ip;
}

bool cmd_progress_done(struct cmd_progress *p)
{
	if (p->armed)
		sigaction(SIGINT, &p->old, NULL);
	p->armed = false;
	if (p->bar.drawn && !p->bar.finished)
		fputc('\n', stderr);
	return interrupted != 0;
}

int cmd_parse_accel(struct cmd_ctx *c, const char *arg, enum accel_mode *ret)
{
	if (accel_mode_parse(arg, ret) < 0)
		return cmd_usage(c, "--accel: expected auto, kvm or tcg, not '%s'", arg ? arg : "");
	return 0;
}

int64_t cmd_json_int(json_object *o, const char *key)
{
	json_object *v;
	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
}

const char *cmd_json_str(json_object *o, const char *key)
{
	json_object *v;
	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}
