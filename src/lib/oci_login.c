/* The login user of a bootc image. See oci_login.h. */
#include "oci_login.h"

#include <string.h>

#define FIELDS_MAX 8
#define HOME_MAX 255

void oci_login_release(struct oci_login *l)
{
	if (!l)
		return;
	free(l->home);
	free(l->passwd);
	free(l->group);
	free(l->shadow);
	memset(l, 0, sizeof(*l));
}

/* One line of a colon-separated file, split in place: at most FIELDS_MAX fields. */
struct line {
	char *f[FIELDS_MAX];
	size_t n;
};

static void split(char *untrusted_line, struct line *l)
{
	l->n = 0;
	for (char *p = untrusted_line; l->n < FIELDS_MAX;) {
		l->f[l->n++] = p;
		p = strchr(p, ':');
		if (!p)
			break;
		*p++ = 0;
	}
}

static bool parse_id(const char *s, uint32_t *ret)
{
	long long v;
	if (!*s || strspn(s, "0123456789") != strlen(s) || parse_ll(s, 0, UINT32_MAX - 1, &v) < 0)
		return false;
	*ret = (uint32_t)v;
	return true;
}

/* Calls FN for each line of TEXT (LEN bytes) with its 1-based number; stops at FN's first non-zero. */
typedef int (*line_fn)(struct line *l, size_t lineno, void *ctx);
static int each_line(const char *text, size_t len, line_fn fn, void *ctx)
{
	size_t lineno = 0;
	for (size_t off = 0; off < len;) {
		const char *nl = memchr(text + off, '\n', len - off);
		size_t n = nl ? (size_t)(nl - (text + off)) : len - off;
		_cleanup_free_ char *copy = xstrndup(text + off, n);
		struct line l;
		split(copy, &l);
		int r = fn(&l, ++lineno, ctx);
		if (r)
			return r;
		off += n + 1;
	}
	return 0;
}

struct scan {
	const char *user;
	uint8_t *used; /* one byte per id in [OCI_LOGIN_ID_MIN, OCI_LOGIN_ID_MAX] */
	bool found;
	size_t lineno;
	uint32_t uid, gid;
	char *home;
};

static void mark(struct scan *s, const char *field)
{
	uint32_t id;
	if (parse_id(field, &id) && id >= OCI_LOGIN_ID_MIN && id <= OCI_LOGIN_ID_MAX)
		s->used[id - OCI_LOGIN_ID_MIN] = 1;
}

static int scan_passwd(struct line *l, size_t lineno, void *ctx)
{
	struct scan *s = ctx;
	if (l->n != 7)
		return 0;
	mark(s, l->f[2]);
	mark(s, l->f[3]);
	if (strcmp(l->f[0], s->user) != 0 || s->found)
		return 0;
	s->found = true;
	s->lineno = lineno;
	if (!parse_id(l->f[2], &s->uid) || !parse_id(l->f[3], &s->gid))
		return -1;
	s->home = xstrdup(l->f[5]);
	return 0;
}

static int scan_group(struct line *l, size_t lineno, void *ctx)
{
	(void)lineno;
	struct scan *s = ctx;
	if (l->n != 4)
		return 0;
	mark(s, l->f[2]);
	if (!s->found && !strcmp(l->f[0], s->user) && parse_id(l->f[2], &s->gid))
		s->found = true;
	return 0;
}

/* "/home/alice" -> "home/alice": absolute, no empty, "." or ".." component, no control bytes. */
static char *home_relative(const char *untrusted)
{
	size_t len = strlen(untrusted);
	if (untrusted[0] != '/' || len < 2 || len > HOME_MAX || untrusted[len - 1] == '/')
		return NULL;
	for (const char *c = untrusted; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			return NULL;
	for (const char *p = untrusted + 1; *p;) {
		size_t n = strcspn(p, "/");
		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return NULL;
		p += n + (p[n] == '/');
	}
	return xstrdup(untrusted + 1);
}

static int check_text(const char *text, size_t len, const char *what, struct hutch_error *err)
{
	if (len > OCI_LOGIN_FILE_MAX)
		return hutch_error_set(err, EFBIG, "the image's %s is larger than %u bytes", what, OCI_LOGIN_FILE_MAX);
	if (text && memchr(text, 0, len))
		return hutch_error_set(err, EINVAL, "the image's %s is not text (it holds a NUL byte)", what);
	return 0;
}

/* TEXT with LINE appended, on a line of its own. */
static char *appended(const char *text, size_t len, const char *line)
{
	struct strbuf sb = STRBUF_INIT;
	strbuf_add(&sb, text ? text : "", text ? len : 0);
	if (sb.len && sb.buf[sb.len - 1] != '\n')
		strbuf_addch(&sb, '\n');
	strbuf_adds(&sb, line);
	return strbuf_detach(&sb, NULL);
}

static int found_user(const struct scan *s, const char *user, struct oci_login *ret, struct hutch_error *err)
{
	if (!s->home)
		return hutch_error_set(err, EINVAL, "the image's /etc/passwd:%zu: user '%s' has a bad uid or gid",
				       s->lineno, user);
	char *home = home_relative(s->home);
	if (!home)
		return hutch_error_set(err, EINVAL,
				       "the image's /etc/passwd:%zu: user '%s' has the home '%.64s', which is not a "
				       "plain absolute path",
				       s->lineno, user, s->home);
	*ret = (struct oci_login){.uid = s->uid, .gid = s->gid, .home = home};
	return 0;
}

int oci_login_plan(const char *user, const char *shell, const char *passwd, size_t passwd_len, const char *group,
		   size_t group_len, const char *shadow, size_t shadow_len, struct oci_login *ret,
		   struct hutch_error *err)
{
	int r = check_text(passwd, passwd_len, "/etc/passwd", err);
	if (r == 0)
		r = check_text(group, group_len, "/etc/group", err);
	if (r == 0)
		r = check_text(shadow, shadow_len, "/etc/shadow", err);
	if (r < 0)
		return r;
	_cleanup_free_ uint8_t *used = xcalloc(OCI_LOGIN_ID_MAX - OCI_LOGIN_ID_MIN + 1, 1);
	struct scan s = {.user = user, .used = used};
	if (passwd)
		each_line(passwd, passwd_len, scan_passwd, &s);
	if (s.found) {
		r = found_user(&s, user, ret, err);
		free(s.home);
		return r;
	}
	if (!strcmp(user, "root")) {
		*ret = (struct oci_login){.home = xstrdup("root")};
		return 0;
	}
	if (!passwd)
		return hutch_error_set(err, ENOENT, "the image has no /etc/passwd to add user '%s' to", user);
	if (group)
		each_line(group, group_len, scan_group, &s); /* s.found now: a group named USER */
	uint32_t id = OCI_LOGIN_ID_MIN;
	while (id <= OCI_LOGIN_ID_MAX && used[id - OCI_LOGIN_ID_MIN])
		id++;
	if (id > OCI_LOGIN_ID_MAX)
		return hutch_error_set(err, ENOSPC, "the image's /etc/passwd and /etc/group use every id from %u to %u",
				       OCI_LOGIN_ID_MIN, OCI_LOGIN_ID_MAX);
	uint32_t gid = s.found ? s.gid : id;
	_cleanup_free_ char *pline = xasprintf("%s:x:%u:%u::/home/%s:%s\n", user, id, gid, user, shell);
	_cleanup_free_ char *gline = xasprintf("%s:x:%u:\n", user, gid);
	_cleanup_free_ char *sline = xasprintf("%s:*::0:99999:7:::\n", user);
	*ret = (struct oci_login){
		.uid = id,
		.gid = gid,
		.home = xasprintf("home/%s", user),
		.passwd = appended(passwd, passwd_len, pline),
		.group = s.found ? NULL : appended(group, group_len, gline),
		.shadow = shadow ? appended(shadow, shadow_len, sline) : NULL,
	};
	return 0;
}
