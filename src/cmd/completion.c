/* hutch completion bash|list: the bash completion, generated from the verb tables, so it names exactly
 * the verbs and options the parser accepts. completion/hutch.bash is its output (a test diffs them). */
#include "cmd.h"

#include <string.h>

/* The generic part: walks the words, asks _hutch_spec what the verb takes, completes by hint. */
static const char completion_driver[] =
	"_hutch_vms()\n"
	"{\n"
	"\tlocal dir\n"
	"\tif [ -n \"${HUTCH_HOME:-}\" ]; then\n"
	"\t\tdir=$HUTCH_HOME/data/vms\n"
	"\telse\n"
	"\t\tdir=${XDG_DATA_HOME:-$HOME/.local/share}/hutch/vms\n"
	"\tfi\n"
	"\t[ -d \"$dir\" ] && (cd \"$dir\" && ls -d -- */ 2>/dev/null | sed 's:/$::')\n"
	"}\n"
	"\n"
	"# $1: words and keywords (vm file dir cmd verb vmpath) to offer for the current word\n"
	"_hutch_hint()\n"
	"{\n"
	"\tlocal cur=${COMP_WORDS[COMP_CWORD]} h words=\n"
	"\tfor h in $1; do\n"
	"\t\tcase $h in\n"
	"\t\tvm) words+=\" $(_hutch_vms)\" ;;\n"
	"\t\tfile) COMPREPLY+=($(compgen -f -- \"$cur\")) ;;\n"
	"\t\tdir) COMPREPLY+=($(compgen -d -- \"$cur\")) ;;\n"
	"\t\tcmd) COMPREPLY+=($(compgen -c -- \"$cur\")) ;;\n"
	"\t\tverb) words+=\" $_hutch_verbs\" ;;\n"
	"\t\tvmpath)\n"
	"\t\t\tCOMPREPLY+=($(compgen -f -- \"$cur\"))\n"
	"\t\t\twords+=\" $(_hutch_vms | sed 's/$/:/')\"\n"
	"\t\t\t;;\n"
	"\t\t*) words+=\" $h\" ;;\n"
	"\t\tesac\n"
	"\tdone\n"
	"\tCOMPREPLY+=($(compgen -W \"$words\" -- \"$cur\"))\n"
	"}\n"
	"\n"
	"_hutch()\n"
	"{\n"
	"\tlocal cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}\n"
	"\tlocal verb= key= opts= argopts= pos= subs= subat=0 n=0 i w skip= dd= po pa h\n"
	"\tCOMPREPLY=()\n"
	"\tfor ((i = 1; i < COMP_CWORD; i++)); do\n"
	"\t\tw=${COMP_WORDS[i]}\n"
	"\t\tif [ -n \"$skip\" ]; then\n"
	"\t\t\tskip=\n"
	"\t\telif [ -z \"$verb\" ]; then\n"
	"\t\t\tcase $w in\n"
	"\t\t\t-*) ;;\n"
	"\t\t\t*) verb=$w key=$w && _hutch_spec \"$key\" ;;\n"
	"\t\t\tesac\n"
	"\t\telif [ -n \"$dd\" ]; then\n"
	"\t\t\tn=$((n + 1))\n"
	"\t\telif [ \"$w\" = -- ]; then\n"
	"\t\t\tdd=1\n"
	"\t\telif [[ $w == -?* ]]; then\n"
	"\t\t\t[[ \" $argopts \" == *\" $w \"* ]] && skip=1\n"
	"\t\telif [ -n \"$subs\" ] && [ \"$key\" = \"$verb\" ] && [ \"$n\" -eq \"$subat\" ]; then\n"
	"\t\t\tpo=$opts pa=$argopts key=$verb/$w\n"
	"\t\t\t_hutch_spec \"$key\"\n"
	"\t\t\topts=\"$po $opts\" argopts=\"$pa $argopts\"\n"
	"\t\telse\n"
	"\t\t\tn=$((n + 1))\n"
	"\t\tfi\n"
	"\tdone\n"
	"\tif [ -z \"$verb\" ]; then\n"
	"\t\tCOMPREPLY=($(compgen -W \"$_hutch_verbs --json --quiet --verbose --version --help\" -- \"$cur\"))\n"
	"\t\treturn\n"
	"\tfi\n"
	"\tif [ -n \"$skip\" ]; then\n"
	"\t\th=$(_hutch_opthint \"$key\" \"$prev\")\n"
	"\t\t[ -z \"$h\" ] && h=$(_hutch_opthint \"$verb\" \"$prev\")\n"
	"\t\t_hutch_hint \"$h\"\n"
	"\t\treturn\n"
	"\tfi\n"
	"\tif [ -z \"$dd\" ] && [[ $cur == -* ]]; then\n"
	"\t\tCOMPREPLY=($(compgen -W \"$opts --help\" -- \"$cur\"))\n"
	"\t\treturn\n"
	"\tfi\n"
	"\tif [ -n \"$subs\" ] && [ \"$key\" = \"$verb\" ] && [ \"$n\" -ge \"$subat\" ]; then\n"
	"\t\t_hutch_hint \"$subs\"\n"
	"\t\treturn\n"
	"\tfi\n"
	"\t[ \"$key\" != \"$verb\" ] && n=$((n - subat))\n"
	"\tlocal IFS=';'\n"
	"\tlocal -a hints=($pos)\n"
	"\tunset IFS\n"
	"\t[ ${#hints[@]} -eq 0 ] && return\n"
	"\t[ \"$n\" -ge ${#hints[@]} ] && n=$((${#hints[@]} - 1))\n"
	"\t_hutch_hint \"${hints[n]}\"\n"
	"}\n"
	"complete -F _hutch hutch\n";

/* A hint with the keyword "image" replaced by the catalog's names (they are known here, not in bash). */
static void add_hint(struct strbuf *sb, const char *hint)
{
	_cleanup_free_ char *copy = xstrdup(hint ? hint : "");
	char *save = NULL;
	bool first = true;
	for (char *w = strtok_r(copy, " ", &save); w; w = strtok_r(NULL, " ", &save), first = false) {
		if (!first)
			strbuf_addch(sb, ' ');
		if (strcmp(w, "image") != 0) {
			strbuf_adds(sb, w);
			continue;
		}
		size_t n;
		const struct image_catalog_entry *cat = image_catalog(&n);
		for (size_t i = 0; i < n; i++)
			strbuf_addf(sb, "%s%s", i ? " " : "", cat[i].name);
	}
}

static void add_positional_hints(struct strbuf *sb, const char *complete)
{
	_cleanup_free_ char *copy = xstrdup(complete ? complete : "");
	char *p = copy;
	for (char *semi; p; p = semi) {
		semi = strchr(p, ';');
		if (semi)
			*semi++ = 0;
		add_hint(sb, p);
		if (semi)
			strbuf_addch(sb, ';');
	}
}

static void add_opt_words(struct strbuf *words, struct strbuf *argwords, const struct opt *t)
{
	for (; t && t->type != OPT_T_END; t++) {
		if (t->flags & OPT_HIDDEN)
			continue;
		struct strbuf *sb[] = {words, opt_takes_arg(t) ? argwords : NULL};
		for (size_t k = 0; k < ARRAY_SIZE(sb) && sb[k]; k++) {
			if (t->short_name)
				strbuf_addf(sb[k], "%s-%c", sb[k]->len ? " " : "", t->short_name);
			if (t->long_name)
				strbuf_addf(sb[k], "%s--%s", sb[k]->len ? " " : "", t->long_name);
		}
	}
}

/* Gets a verb or subcommand and its key: "image", or "image/pull" ("image pull" for the list). */
typedef void (*verb_fn)(FILE *f, const char *key, const struct verb *parent, const struct verb *v);

/* fn for every visible verb, and after each its visible subcommands (parent set). */
static void each_verb(FILE *f, const struct verb *const *verbs, char sep, verb_fn fn)
{
	for (size_t i = 0; verbs[i]; i++) {
		const struct verb *v = verbs[i];
		if (v->flags & VERB_HIDDEN)
			continue;
		fn(f, v->name, NULL, v);
		for (const struct verb *s = v->subs; s && s->name; s++) {
			_cleanup_free_ char *key = xasprintf("%s%c%s", v->name, sep, s->name);
			if (!(s->flags & VERB_HIDDEN))
				fn(f, key, v, s);
		}
	}
}

static void print_spec(FILE *f, const char *key, const struct verb *parent, const struct verb *v)
{
	_cleanup_strbuf_ struct strbuf words = STRBUF_INIT, argwords = STRBUF_INIT, pos = STRBUF_INIT;
	add_opt_words(&words, &argwords, v->opts);
	add_positional_hints(&pos, v->complete);
	fprintf(f, "\t%s) opts=\"%s\" argopts=\"%s\" pos=\"%s\"", key, strbuf_str(&words), strbuf_str(&argwords),
		strbuf_str(&pos));
	if (!parent && v->subs) {
		_cleanup_strbuf_ struct strbuf subs = STRBUF_INIT;
		for (const struct verb *s = v->subs; s->name; s++)
			if (!(s->flags & VERB_HIDDEN))
				strbuf_addf(&subs, "%s%s", subs.len ? " " : "", s->name);
		fprintf(f, " subs=\"%s\" subat=%d", strbuf_str(&subs), v->sub_at);
	}
	fprintf(f, " ;;\n");
}

static void print_opt_hints(FILE *f, const char *key, const struct verb *parent, const struct verb *v)
{
	for (const struct opt *t = v->opts; t && t->type != OPT_T_END; t++) {
		if ((t->flags & OPT_HIDDEN) || !opt_takes_arg(t))
			continue;
		_cleanup_strbuf_ struct strbuf hint = STRBUF_INIT;
		if (t->type == OPT_T_ENUM)
			for (size_t i = 0; t->names[i]; i++)
				strbuf_addf(&hint, "%s%s", i ? " " : "", t->names[i]);
		else
			add_hint(&hint, t->complete);
		if (!hint.len)
			continue;
		fputc('\t', f);
		if (t->short_name)
			fprintf(f, "\"%s -%c\"%s", key, t->short_name, t->long_name ? " | " : "");
		if (t->long_name)
			fprintf(f, "\"%s --%s\"", key, t->long_name);
		fprintf(f, ") echo \"%s\" ;;\n", strbuf_str(&hint));
	}
}

void opt_print_bash_completion(FILE *f, const struct verb *const *verbs)
{
	fprintf(f, "# bash completion for hutch. Generated by 'hutch completion bash' from the verb tables in\n"
		   "# src/cmd/: do not edit (a test fails when this file and the binary disagree).\n\n");
	fprintf(f, "_hutch_verbs=\"");
	for (size_t i = 0, n = 0; verbs[i]; i++)
		if (!(verbs[i]->flags & VERB_HIDDEN))
			fprintf(f, "%s%s", n++ ? " " : "", verbs[i]->name);
	fprintf(f, "\"\n\n# $1: VERB or VERB/SUB. Sets the options, those that take a value, positional hints.\n");
	fprintf(f, "_hutch_spec()\n{\n\tcase $1 in\n");
	each_verb(f, verbs, '/', print_spec);
	fprintf(f, "\t*) opts= argopts= pos= ;;\n\tesac\n}\n\n");
	fprintf(f, "# $1: VERB or VERB/SUB, $2: an option that takes a value. Prints the hint for its value.\n");
	fprintf(f, "_hutch_opthint()\n{\n\tcase \"$1 $2\" in\n");
	each_verb(f, verbs, '/', print_opt_hints);
	fprintf(f, "\t*) ;;\n\tesac\n}\n\n%s", completion_driver);
}

/* "VERB", "VERB SUB" and "VERB [SUB] --long" lines, for scripts and the man page test. */
static void print_list_entry(FILE *f, const char *key, const struct verb *parent, const struct verb *v)
{
	fprintf(f, "%s\n", key);
	for (const struct opt *t = v->opts; t && t->type != OPT_T_END; t++)
		if (t->long_name && !(t->flags & OPT_HIDDEN))
			fprintf(f, "%s --%s\n", key, t->long_name);
}

static int cmd_completion(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	if (!strcmp(argv[0], "bash"))
		opt_print_bash_completion(stdout, hutch_verbs);
	else if (!strcmp(argv[0], "list"))
		each_verb(stdout, hutch_verbs, ' ', print_list_entry);
	else
		return cmd_usage(c, "unknown shell '%s': use bash (or list)", argv[0]);
	return EXIT_OK;
}

VERB_DEFINE(completion, .name = "completion", .fn = cmd_completion, .min_args = 1, .max_args = 1, .args = "bash|list",
	    .complete = "bash list", .summary = "print the bash completion script (list: every verb and long option)");
