/* A YAML file as a small tree, and typed getters whose errors read "FILE:LINE: KEY: reason". */
#pragma once
#include "util.h"

enum ynode_type { Y_SCALAR, Y_SEQ, Y_MAP };

struct ynode {
	enum ynode_type type;
	int line; /* 1-based */
	bool plain;
	char *str;	     /* scalars: value, never contains NUL */
	struct ynode **kids; /* seq: items; map: key, value, key, value, ... */
	size_t n;
};

void ynode_free(struct ynode *n);
static inline void ynode_freep(struct ynode **n) { ynode_free(*n); }
/* A plain null scalar: empty, ~ or null. */
bool ynode_is_null(const struct ynode *n);
/* The whole buffer: nothing (*ret NULL) or exactly one document. No aliases, anchors or tags. */
int ytree_load(const char *buf, size_t len, const char *file, struct ynode **ret, struct hutch_error *err);

struct ytree_ctx {
	const char *file;
	struct hutch_error *err;
};

/* Untrusted text inside a message: printable, short, cut on a character boundary. */
char *ytree_quote(const char *s);
/* "FILE:LINE: PATH: reason" (PATH empty: "FILE:LINE: reason"). Returns -EINVAL. */
int ytree_error(struct ytree_ctx *c, const struct ynode *n, const char *path, const char *fmt, ...) _printf_(4, 5);
/* "a list", "a mapping" or the quoted scalar: what the user wrote instead. */
char *ytree_describe(const struct ynode *n);
int ytree_type_error(struct ytree_ctx *c, const struct ynode *n, const char *path, const char *what);
int ytree_want_scalar(struct ytree_ctx *c, const struct ynode *v, const char *path, const char *what);
int ytree_str(struct ytree_ctx *c, const struct ynode *v, const char *path, bool empty_ok, char **dst);
int ytree_bool(struct ytree_ctx *c, const struct ynode *v, const char *path, bool *dst);
int ytree_ll(struct ytree_ctx *c, const struct ynode *v, const char *path, long long min, long long max,
	     long long *ret);
int ytree_size(struct ytree_ctx *c, const struct ynode *v, const char *path, uint64_t *ret);
typedef int (*ytree_item_check)(struct ytree_ctx *c, const struct ynode *item, const char *path);
int ytree_strv(struct ytree_ctx *c, const struct ynode *v, const char *path, ytree_item_check check, char ***dst);
char *ytree_path_join(const char *path, const char *key);

struct ytree_field {
	const char *key;
	int (*parse)(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path);
};
/* Walks a mapping in document order; unknown and duplicate keys are errors; a null value leaves the
 * field unset. */
int ytree_parse_fields(struct ytree_ctx *c, const struct ynode *map, const char *path, const struct ytree_field *fields,
		       size_t n_fields, void *obj);
/* Marks (true) every key after the first occurrence of a string; free() the result. */
bool *ytree_map_find_dups(const struct ynode *map);
const struct ynode *ytree_map_get(const struct ynode *map, const char *key);
