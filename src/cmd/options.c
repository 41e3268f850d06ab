/* The one option parser: fills a verb's options struct from its table. Usage lines and help come
 * from the same tables (the bash completion is in completion.c). */
#include "cmd.h"

#include <string.h>

/* The tables in force: the verb's, then its subcommand's once the subcommand word is seen. */
struct parser {
	struct cmd_ctx *c;
	void *opts;
	const struct opt *tables[2];
	size_t n_tables;
};

bool opt_takes_arg(const struct opt *o)
{
	switch (o->type) {
	case OPT_T_BOOL:
	case OPT_T_JSON:
	case OPT_T_END:
		return false;
	case OPT_T_CALLBACK:
		return o->argh != NULL;
	default:
		return true;
	}
}

/* "--memory", or "-e" for an option without a long name. */
static const char *opt_label(const struct opt *o, char *buf, size_t len)
{
	if (o->long_name)
		snprintf(buf, len, "--%s", o->long_name);
	else
		snprintf(buf, len, "-%c", o->short_name);
	return buf;
}

static const struct opt *find_opt(const struct parser *p, const char *long_name, size_t len, int short_name)
{
	for (size_t i = 0; i < p->n_tables; i++)
		for (const struct opt *o = p->tables[i]; o && o->type != OPT_T_END; o++) {
			if (short_name && o->short_name == short_name)
				return o;
			if (!short_name && o->long_name && strlen(o->long_name) == len &&
			    !strncmp(o->long_name, long_name, len))
				return o;
		}
	return NULL;
}

/* "a, b or c" */
static void add_choice(struct strbuf *sb, const char *name, bool last)
{
	strbuf_addf(sb, "%s%s", sb->len ? (last ? " or " : ", ") : "", name);
}

static void add_names(struct strbuf *sb, const char *const *names)
{
	for (size_t i = 0; names[i]; i++)
		add_choice(sb, names[i], !names[i + 1]);
}

static void add_subs(struct strbuf *sb, const struct verb *subs)
{
	const struct verb *last = NULL;
	for (const struct verb *s = subs; s->name; s++)
		if (!(s->flags & VERB_HIDDEN))
			last = s;
	for (const struct verb *s = subs; s->name; s++)
		if (!(s->flags & VERB_HIDDEN))
			add_choice(sb, s->name, s == last);
}

static int enum_usage(struct cmd_ctx *c, const char *name, const struct opt *o, const char *arg)
{
	_cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
	add_names(&sb, o->names);
	return cmd_usage(c, "%s: invalid value '%s' (use %s)", name, arg, strbuf_str(&sb));
}

static int opt_apply(struct parser *p, const struct opt *o, const char *arg)
{
	char name[64];
	opt_label(o, name, sizeof(name));
	char *field = (char *)p->opts + o->offset;
	uint64_t u64;
	long long n;
	switch (o->type) {
	case OPT_T_BOOL:
		*(bool *)(void *)field = true;
		return 0;
	case OPT_T_JSON:
		p->c->json = true;
		return 0;
	case OPT_T_STRING:
		*(const char **)(void *)field = arg;
		return 0;
	case OPT_T_STRV: {
		char ***v = (char ***)(void *)field;
		*v = strv_push(*v, xstrdup(arg));
		return 0;
	}
	case OPT_T_SIZE:
		if (parse_size(arg, &u64) < 0)
			return cmd_usage(p->c, "%s: invalid size '%s' (use e.g. 512M, 2G)", name, arg);
		*(uint64_t *)(void *)field = u64;
		return 0;
	case OPT_T_DURATION:
		if (parse_duration_ms(arg, &u64) < 0)
			return cmd_usage(p->c, "%s: invalid duration '%s' (use seconds, or e.g. 90s, 5m)", name, arg);
		*(uint64_t *)(void *)field = u64;
		return 0;
	case OPT_T_UINT:
		if (parse_ll(arg, o->min, o->max, &n) < 0)
			return cmd_usage(p->c, "%s: expected a number between %lld and %lld, not '%s'", name, o->min,
					 o->max, arg);
		*(unsigned *)(void *)field = (unsigned)n;
		return 0;
	case OPT_T_ENUM:
		for (int i = 0; o->names[i]; i++)
			if (!strcmp(o->names[i], arg)) {
				*(int *)(void *)field = i;
				return 0;
			}
		return enum_usage(p->c, name, o, arg);
	case OPT_T_CALLBACK:
		return o->cb(p->c, p->opts, o, arg);
	case OPT_T_END:
	default:
		return cmd_usage(p->c, "%s: not an option", name);
	}
}

/* argv[*i] is "-x…" or "--x…"; its value may be the next word, then *i moves past it. */
static int parse_one(struct parser *p, int argc, char **argv, int *i)
{
	const char *a = argv[*i];
	if (a[1] == '-') {
		const char *name = a + 2, *eq = strchr(name, '=');
		size_t len = eq ? (size_t)(eq - name) : strlen(name);
		if (len == 4 && !strncmp(name, "help", 4)) {
			opt_print_help(stdout, p->c->verb_def);
			return -1;
		}
		const struct opt *o = find_opt(p, name, len, 0);
		if (!o)
			return cmd_usage(p->c, "unknown option '%.*s'", (int)len + 2, a);
		if (!opt_takes_arg(o))
			return eq ? cmd_usage(p->c, "--%s takes no value", o->long_name) : opt_apply(p, o, NULL);
		if (!eq && *i + 1 >= argc)
			return cmd_usage(p->c, "--%s needs a value", o->long_name);
		return opt_apply(p, o, eq ? eq + 1 : argv[++*i]);
	}
	for (const char *s = a + 1; *s; s++) {
		const struct opt *o = find_opt(p, NULL, 0, (unsigned char)*s);
		if (!o)
			return cmd_usage(p->c, "unknown option '-%c'", *s);
		if (!opt_takes_arg(o)) {
			int r = opt_apply(p, o, NULL);
			if (r)
				return r;
			continue;
		}
		if (!s[1] && *i + 1 >= argc)
			return cmd_usage(p->c, "-%c needs a value", *s);
		return opt_apply(p, o, s[1] ? s + 1 : argv[++*i]);
	}
	return 0;
}

static const struct verb *find_sub(const struct verb *v, const char *name)
{
	for (const struct verb *s = v->subs; s->name; s++)
		if (!strcmp(s->name, name))
			return s;
	return NULL;
}

static int sub_usage(struct cmd_ctx *c, const char *fmt, const char *word)
{
	_cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
	add_subs(&sb, c->verb_def->subs);
	if (word)
		return cmd_usage(c, fmt, word, strbuf_str(&sb));
	return cmd_usage(c, fmt, strbuf_str(&sb));
}

/* Positionals are moved down to argv[1..]: the write index never passes the read index. */
int opt_parse(struct cmd_ctx *c, const struct verb *v, void *opts, int argc, char **argv, const struct verb **ret_sub,
	      int *ret_argc, char ***ret_argv)
{
	struct parser p = {.c = c, .opts = opts, .tables = {v->opts}, .n_tables = 1};
	const struct verb *sub = NULL;
	c->verb_def = v;
	c->sub_def = NULL;
	int dashdash = -1;
	if (v->flags & VERB_COMMAND)
		for (int i = 1; i < argc && dashdash < 0; i++)
			if (!strcmp(argv[i], "--"))
				dashdash = i;
	bool stop = v->flags & VERB_NO_OPTS;
	int w = 1, npos = 0;
	for (int i = 1; i < argc; i++) {
		char *a = argv[i];
		if (!stop && !strcmp(a, "--")) {
			if (i == dashdash && npos == 0)
				return cmd_usage(c, "missing argument");
			if (i == dashdash && npos > 1)
				return cmd_usage(c, "unexpected '%s' before '--'", argv[2]);
			stop = true;
			continue;
		}
		if (!stop && a[0] == '-' && a[1]) {
			int r = parse_one(&p, argc, argv, &i);
			if (r)
				return r;
			continue;
		}
		argv[w++] = a;
		npos++;
		/* Without "--", options end at NAME: what follows is the command, with its own options. */
		if ((v->flags & VERB_COMMAND) && dashdash < 0)
			stop = true;
		if (v->subs && !sub && npos == v->sub_at + 1) {
			sub = find_sub(v, a);
			if (!sub)
				return sub_usage(c, "unknown subcommand '%s': use %s", a);
			c->sub_def = sub;
			p.tables[p.n_tables++] = sub->opts;
			w--;
			npos--;
		}
	}
	argv[w] = NULL;
	if (v->subs && !sub)
		return npos < v->sub_at ? cmd_usage(c, "missing argument")
					: sub_usage(c, "missing subcommand: %s", NULL);
	const struct verb *lim = sub ? sub : v;
	int n = sub ? npos - v->sub_at : npos;
	if (n < lim->min_args)
		return cmd_usage(c, "missing argument");
	if (lim->max_args >= 0 && n > lim->max_args)
		return cmd_usage(c, "too many arguments");
	*ret_sub = sub;
	*ret_argc = npos;
	*ret_argv = argv + 1;
	return 0;
}

static void release_table(const struct opt *t, void *opts)
{
	for (; t && t->type != OPT_T_END; t++)
		if (t->type == OPT_T_STRV) {
			char ***v = (char ***)(void *)((char *)opts + t->offset);
			strv_free(*v);
			*v = NULL;
		}
}

void opt_release(const struct verb *v, void *opts)
{
	if (!opts)
		return;
	release_table(v->opts, opts);
	for (const struct verb *s = v->subs; s && s->name; s++)
		release_table(s->opts, opts);
}

/* ---- usage and help ---- */

static void usage_opts(struct strbuf *sb, const struct opt *t)
{
	for (; t && t->type != OPT_T_END; t++) {
		if (t->flags & OPT_HIDDEN)
			continue;
		if (t->short_name)
			strbuf_addf(sb, " [-%c", t->short_name);
		else
			strbuf_addf(sb, " [--%s", t->long_name);
		if (opt_takes_arg(t))
			strbuf_addf(sb, " %s", t->argh);
		strbuf_adds(sb, t->type == OPT_T_STRV ? "]..." : "]");
	}
}

static void usage_line(struct strbuf *sb, const struct verb *v, const struct verb *sub)
{
	strbuf_addf(sb, "hutch %s", v->name);
	usage_opts(sb, v->opts);
	if (v->args)
		strbuf_addf(sb, " %s", v->args);
	if (sub) {
		strbuf_addf(sb, " %s", sub->name);
		usage_opts(sb, sub->opts);
		if (sub->args)
			strbuf_addf(sb, " %s", sub->args);
	}
}

/* One line, or with subcommands one per subcommand ("usage: …" then "   or: …"); sub picks one. */
void opt_print_usage(FILE *f, const struct verb *v, const struct verb *sub)
{
	const char *lead = "usage:";
	for (const struct verb *s = sub ? sub : v->subs; !s || s->name; s++) {
		if (s && (s->flags & VERB_HIDDEN))
			continue;
		_cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
		usage_line(&sb, v, s);
		fprintf(f, "%s %s\n", lead, strbuf_str(&sb));
		lead = "   or:";
		if (!s || sub)
			break;
	}
}

static void help_opts(FILE *f, const struct opt *t)
{
	for (; t && t->type != OPT_T_END; t++) {
		if (t->flags & OPT_HIDDEN)
			continue;
		_cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
		if (t->short_name)
			strbuf_addf(&sb, "-%c%s", t->short_name, t->long_name ? ", " : "");
		else
			strbuf_adds(&sb, "    ");
		if (t->long_name)
			strbuf_addf(&sb, "--%s", t->long_name);
		if (opt_takes_arg(t))
			strbuf_addf(&sb, " %s", t->argh);
		fprintf(f, "  %-26s %s\n", strbuf_str(&sb), t->help ? t->help : "");
		if (t->type == OPT_T_ENUM) {
			_cleanup_strbuf_ struct strbuf ch = STRBUF_INIT;
			add_names(&ch, t->names);
			fprintf(f, "  %-26s (%s)\n", "", strbuf_str(&ch));
		}
	}
}

static bool has_opts(const struct opt *t)
{
	for (; t && t->type != OPT_T_END; t++)
		if (!(t->flags & OPT_HIDDEN))
			return true;
	return false;
}

void opt_print_help(FILE *f, const struct verb *v)
{
	opt_print_usage(f, v, NULL);
	fprintf(f, "\n%s\n", v->summary ? v->summary : "");
	if (has_opts(v->opts)) {
		fprintf(f, "\noptions:\n");
		help_opts(f, v->opts);
	}
	for (const struct verb *s = v->subs; s && s->name; s++) {
		if (s->flags & VERB_HIDDEN)
			continue;
		fprintf(f, "\n%s %s%s%s: %s\n", v->name, s->name, s->args ? " " : "", s->args ? s->args : "",
			s->summary ? s->summary : "");
		help_opts(f, s->opts);
	}
}
