/* A YAML file as a small tree, and typed getters that name FILE:LINE: KEY in every error. libyaml's
 * event parser feeds the tree, so aliases, tags, nesting and encoding problems are refused before
 * any value is interpreted. Used by specs (spec.c) and config.yml (config.c). */
#include "ytree.h"

#include <string.h>
#include <strings.h>
#include <yaml.h>

/* The deepest valid spec is 4 levels (file, VM, shares, share); anything deeper is refused early. */
#define YTREE_MAX_DEPTH 16
#define MSG_QUOTE_MAX 64

void ynode_free(struct ynode *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->n; i++)
		ynode_free(n->kids[i]);
	free(n->kids);
	free(n->str);
	free(n);
}

static void ynode_push(struct ynode *parent, struct ynode *kid)
{
	if ((parent->n & (parent->n - 1)) == 0) /* grow at powers of two */
		parent->kids = xrealloc(parent->kids, (parent->n ? parent->n * 2 : 1) * sizeof(*parent->kids));
	parent->kids[parent->n++] = kid;
}

bool ynode_is_null(const struct ynode *n)
{
	if (n->type != Y_SCALAR || !n->plain)
		return false;
	return !*n->str || !strcmp(n->str, "~") || !strcmp(n->str, "null") || !strcmp(n->str, "Null") ||
	       !strcmp(n->str, "NULL");
}

/* Untrusted text inside a message: printable, short, cut on a character boundary. */
char *ytree_quote(const char *s)
{
	struct strbuf sb = STRBUF_INIT;
	size_t i;
	for (i = 0; s[i] && i < MSG_QUOTE_MAX; i++) {
		unsigned char ch = (unsigned char)s[i];
		strbuf_addch(&sb, (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch);
	}
	if (s[i]) {
		while (sb.len > 0 && ((unsigned char)sb.buf[sb.len - 1] & 0xc0) == 0x80)
			sb.len--;
		if (sb.len > 0 && (unsigned char)sb.buf[sb.len - 1] >= 0xc0)
			sb.len--;
		sb.buf[sb.len] = 0;
		strbuf_adds(&sb, "...");
	}
	if (!sb.buf)
		strbuf_grow(&sb, 1), sb.buf[0] = 0;
	return strbuf_detach(&sb, NULL);
}

/* ---- YAML events -> tree ---- */

struct loader {
	yaml_parser_t parser;
	const char *file;
	const char *buf;
	size_t len;
	struct hutch_error *err;
};

static int line_of_offset(const char *buf, size_t len, size_t off)
{
	int line = 1;
	const char *p = buf, *end = buf + (off < len ? off : len);
	while ((p = memchr(p, '\n', (size_t)(end - p)))) {
		line++;
		p++;
	}
	return line;
}

static int loader_error(struct loader *l)
{
	const yaml_parser_t *p = &l->parser;
	const char *problem = p->problem ? p->problem : "unknown error";
	int line;

	switch (p->error) {
	case YAML_MEMORY_ERROR:
		return hutch_error_set(l->err, ENOMEM, "%s: out of memory while parsing YAML", l->file);
	case YAML_READER_ERROR:
		line = line_of_offset(l->buf, l->len, p->problem_offset);
		if (strstr(problem, "UTF-8") || strstr(problem, "Unicode"))
			return hutch_error_set(l->err, EINVAL, "%s:%d: not valid UTF-8 text (%s)", l->file, line,
					       problem);
		return hutch_error_set(l->err, EINVAL, "%s:%d: invalid character 0x%02x (%s)", l->file, line,
				       (unsigned)p->problem_value & 0xffffffu, problem);
	default:
		line = (int)p->problem_mark.line + 1;
		if (p->context)
			return hutch_error_set(l->err, EINVAL, "%s:%d: invalid YAML: %s (%s at line %d)", l->file, line,
					       problem, p->context, (int)p->context_mark.line + 1);
		return hutch_error_set(l->err, EINVAL, "%s:%d: invalid YAML: %s", l->file, line, problem);
	}
}

static int loader_next(struct loader *l, yaml_event_t *ev)
{
	if (!yaml_parser_parse(&l->parser, ev)) {
		memset(ev, 0, sizeof(*ev));
		return loader_error(l);
	}
	return 0;
}

static int load_node(struct loader *l, const yaml_event_t *ev, int depth, struct ynode **ret);

static int load_children(struct loader *l, struct ynode *n, int depth)
{
	for (;;) {
		_cleanup_(yaml_event_delete) yaml_event_t kid_ev = {0};
		int r = loader_next(l, &kid_ev);
		if (r < 0)
			return r;
		if (kid_ev.type == YAML_SEQUENCE_END_EVENT || kid_ev.type == YAML_MAPPING_END_EVENT)
			return 0;
		struct ynode *kid;
		r = load_node(l, &kid_ev, depth + 1, &kid);
		if (r < 0)
			return r;
		ynode_push(n, kid);
	}
}

/* Reads one node starting at EV (owned by the caller) and everything below it. */
static int load_node(struct loader *l, const yaml_event_t *ev, int depth, struct ynode **ret)
{
	int line = (int)ev->start_mark.line + 1;
	const yaml_char_t *anchor, *tag;
	enum ynode_type type;

	switch (ev->type) {
	case YAML_ALIAS_EVENT:
		return hutch_error_set(l->err, EINVAL, "%s:%d: aliases are not allowed", l->file, line);
	case YAML_SCALAR_EVENT:
		type = Y_SCALAR, anchor = ev->data.scalar.anchor, tag = ev->data.scalar.tag;
		break;
	case YAML_SEQUENCE_START_EVENT:
		type = Y_SEQ, anchor = ev->data.sequence_start.anchor, tag = ev->data.sequence_start.tag;
		break;
	case YAML_MAPPING_START_EVENT:
		type = Y_MAP, anchor = ev->data.mapping_start.anchor, tag = ev->data.mapping_start.tag;
		break;
	default:
		return hutch_error_set(l->err, EINVAL, "%s:%d: invalid YAML: unexpected event", l->file, line);
	}
	/* An anchor is only useful for an alias; refusing both keeps a tree a tree. */
	if (anchor)
		return hutch_error_set(l->err, EINVAL, "%s:%d: anchors and aliases are not allowed", l->file, line);
	if (tag) {
		_cleanup_free_ char *q = ytree_quote((const char *)tag);
		return hutch_error_set(l->err, EINVAL, "%s:%d: tags are not allowed ('%s')", l->file, line, q);
	}
	if (depth > YTREE_MAX_DEPTH)
		return hutch_error_set(l->err, EINVAL, "%s:%d: nesting is too deep", l->file, line);

	_cleanup_(ynode_freep) struct ynode *n = xcalloc(1, sizeof(*n));
	n->type = type;
	n->line = line;
	if (type == Y_SCALAR) {
		const char *v = (const char *)ev->data.scalar.value;
		size_t len = ev->data.scalar.length;
		if (memchr(v, 0, len))
			return hutch_error_set(l->err, EINVAL, "%s:%d: NUL characters are not allowed", l->file, line);
		n->str = xstrndup(v, len);
		n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
	} else {
		int r = load_children(l, n, depth);
		if (r < 0)
			return r;
	}
	*ret = TAKE_PTR(n);
	return 0;
}

/* The whole stream: nothing, or exactly one document. *ret_root is NULL for an empty stream. */
static int load_stream(struct loader *l, struct ynode **ret_root)
{
	_cleanup_(yaml_event_delete) yaml_event_t ev = {0};
	_cleanup_(ynode_freep) struct ynode *root = NULL;
	int r;

	for (;;) {
		yaml_event_delete(&ev);
		r = loader_next(l, &ev);
		if (r < 0)
			return r;
		switch (ev.type) {
		case YAML_STREAM_START_EVENT:
		case YAML_DOCUMENT_END_EVENT:
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (root)
				return hutch_error_set(l->err, EINVAL, "%s:%d: only one YAML document is allowed",
						       l->file, (int)ev.start_mark.line + 1);
			yaml_event_delete(&ev);
			r = loader_next(l, &ev);
			if (r < 0)
				return r;
			r = load_node(l, &ev, 0, &root);
			if (r < 0)
				return r;
			break;
		case YAML_STREAM_END_EVENT:
			*ret_root = TAKE_PTR(root);
			return 0;
		default:
			return hutch_error_set(l->err, EINVAL, "%s:%d: invalid YAML: unexpected event", l->file,
					       (int)ev.start_mark.line + 1);
		}
	}
}

/* ---- tree -> struct vm_spec ---- */

int ytree_error(struct ytree_ctx *c, const struct ynode *n, const char *path, const char *fmt, ...)
{
	va_list ap;
	_cleanup_free_ char *msg = NULL;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		abort();
	va_end(ap);
	if (!*path) /* about the VM mapping itself, not one of its keys */
		return hutch_error_set(c->err, EINVAL, "%s:%d: %s", c->file, n->line, msg);
	return hutch_error_set(c->err, EINVAL, "%s:%d: %s: %s", c->file, n->line, path, msg);
}

/* "a list", "a mapping" or the quoted scalar: what the user wrote instead. */
char *ytree_describe(const struct ynode *n)
{
	if (n->type == Y_SEQ)
		return xstrdup("a list");
	if (n->type == Y_MAP)
		return xstrdup("a mapping");
	_cleanup_free_ char *q = ytree_quote(n->str);
	return xasprintf("'%s'", q);
}

int ytree_type_error(struct ytree_ctx *c, const struct ynode *n, const char *path, const char *what)
{
	_cleanup_free_ char *got = ytree_describe(n);
	return ytree_error(c, n, path, "expected %s, got %s", what, got);
}

int ytree_want_scalar(struct ytree_ctx *c, const struct ynode *v, const char *path, const char *what)
{
	return v->type == Y_SCALAR ? 0 : ytree_type_error(c, v, path, what);
}

int ytree_str(struct ytree_ctx *c, const struct ynode *v, const char *path, bool empty_ok, char **dst)
{
	int r = ytree_want_scalar(c, v, path, "a string");
	if (r < 0)
		return r;
	if (!empty_ok && !*v->str)
		return ytree_error(c, v, path, "must not be empty");
	free(*dst);
	*dst = xstrdup(v->str);
	return 0;
}

int ytree_bool(struct ytree_ctx *c, const struct ynode *v, const char *path, bool *dst)
{
	int r = ytree_want_scalar(c, v, path, "true or false");
	if (r < 0)
		return r;
	if (!strcasecmp(v->str, "true") || !strcasecmp(v->str, "yes"))
		*dst = true;
	else if (!strcasecmp(v->str, "false") || !strcasecmp(v->str, "no"))
		*dst = false;
	else
		return ytree_type_error(c, v, path, "true or false");
	return 0;
}

int ytree_ll(struct ytree_ctx *c, const struct ynode *v, const char *path, long long min, long long max, long long *ret)
{
	int r = ytree_want_scalar(c, v, path, "an integer");
	if (r < 0)
		return r;
	r = parse_ll(v->str, min, max, ret);
	if (r == -ERANGE)
		return ytree_error(c, v, path, "must be between %lld and %lld", min, max);
	if (r < 0)
		return ytree_type_error(c, v, path, "an integer");
	return 0;
}

int ytree_size(struct ytree_ctx *c, const struct ynode *v, const char *path, uint64_t *ret)
{
	int r = ytree_want_scalar(c, v, path, "a size");
	if (r < 0)
		return r;
	r = parse_size(v->str, ret);
	if (r < 0) {
		_cleanup_free_ char *q = ytree_quote(v->str);
		return ytree_error(c, v, path, r == -ERANGE ? "size '%s' is too large" : "invalid size '%s'", q);
	}
	return 0;
}

int ytree_strv(struct ytree_ctx *c, const struct ynode *v, const char *path, ytree_item_check check, char ***dst)
{
	if (v->type != Y_SEQ)
		return ytree_type_error(c, v, path, "a list");
	/* Sized up front: strv_push() walks the list on every call, quadratic on a long list. */
	_cleanup_strv_ char **list = xcalloc(v->n + 1, sizeof(*list));
	for (size_t i = 0; i < v->n; i++) {
		const struct ynode *it = v->kids[i];
		if (it->type != Y_SCALAR)
			return ytree_type_error(c, it, path, "a list of strings");
		if (!*it->str || ynode_is_null(it))
			return ytree_error(c, it, path, "list items must not be empty");
		if (check) {
			int r = check(c, it, path);
			if (r < 0)
				return r;
		}
		list[i] = xstrdup(it->str);
	}
	strv_free(*dst);
	*dst = v->n ? TAKE_PTR(list) : NULL;
	return 0;
}

/* Marks every key after the first occurrence of a string; sorting keeps huge maps linear-ish. */
struct key_ref {
	const char *s;
	size_t idx;
};

static int key_ref_cmp(const void *a, const void *b)
{
	const struct key_ref *x = a, *y = b;
	int r = strcmp(x->s, y->s);
	return r ? r : (x->idx > y->idx) - (x->idx < y->idx);
}

bool *ytree_map_find_dups(const struct ynode *map)
{
	size_t npairs = map->n / 2, nk = 0;
	bool *dup = xcalloc(npairs ? npairs : 1, sizeof(*dup));
	_cleanup_free_ struct key_ref *keys = xcalloc(npairs ? npairs : 1, sizeof(*keys));
	for (size_t i = 0; i < npairs; i++)
		if (map->kids[2 * i]->type == Y_SCALAR)
			keys[nk++] = (struct key_ref){map->kids[2 * i]->str, i};
	qsort(keys, nk, sizeof(*keys), key_ref_cmp);
	for (size_t i = 1; i < nk; i++)
		if (!strcmp(keys[i].s, keys[i - 1].s))
			dup[keys[i].idx] = true;
	return dup;
}

char *ytree_path_join(const char *path, const char *key)
{
	_cleanup_free_ char *q = ytree_quote(key);
	if (!*q)
		return xasprintf("%s%s''", path, *path ? "." : "");
	return *path ? xasprintf("%s.%s", path, q) : xstrdup(q);
}

/* Walks a mapping in document order; a null value leaves the field unset. */
int ytree_parse_fields(struct ytree_ctx *c, const struct ynode *map, const char *path, const struct ytree_field *fields,
		       size_t n_fields, void *obj)
{
	if (map->type != Y_MAP)
		return ytree_type_error(c, map, path, "a mapping");
	_cleanup_free_ bool *dup = ytree_map_find_dups(map);
	for (size_t i = 0; i + 1 < map->n; i += 2) {
		const struct ynode *k = map->kids[i], *v = map->kids[i + 1];
		if (k->type != Y_SCALAR)
			return ytree_error(c, k, path, "keys must be strings");
		_cleanup_free_ char *full = ytree_path_join(path, k->str);
		if (dup[i / 2])
			return ytree_error(c, k, full, "duplicate key");
		const struct ytree_field *f = NULL;
		for (size_t j = 0; j < n_fields && !f; j++)
			if (!strcmp(fields[j].key, k->str))
				f = &fields[j];
		if (!f)
			return ytree_error(c, k, full, "unknown key");
		if (ynode_is_null(v))
			continue;
		int r = f->parse(c, obj, v, full);
		if (r < 0)
			return r;
	}
	return 0;
}

const struct ynode *ytree_map_get(const struct ynode *map, const char *key)
{
	for (size_t i = 0; map->type == Y_MAP && i + 1 < map->n; i += 2)
		if (map->kids[i]->type == Y_SCALAR && !strcmp(map->kids[i]->str, key))
			return map->kids[i + 1];
	return NULL;
}

int ytree_load(const char *buf, size_t len, const char *file, struct ynode **ret, struct hutch_error *err)
{
	struct loader l = {.file = file, .buf = buf, .len = len, .err = err};
	if (!yaml_parser_initialize(&l.parser))
		return hutch_error_set(err, ENOMEM, "%s: cannot initialize the YAML parser", file);
	yaml_parser_set_input_string(&l.parser, (const unsigned char *)buf, len);
	/* Never guess UTF-16 from a BOM: these files are UTF-8. */
	yaml_parser_set_encoding(&l.parser, YAML_UTF8_ENCODING);
	int r = load_stream(&l, ret);
	yaml_parser_delete(&l.parser);
	return r;
}
