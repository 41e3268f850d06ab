#include "proto.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define READER_CAP (PROTO_HDR_SIZE + PROTO_MAX_PAYLOAD)

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void proto_reader_init(struct proto_reader *r) { memset(r, 0, sizeof(*r)); }

void proto_reader_free(struct proto_reader *r)
{
	free(r->buf);
	memset(r, 0, sizeof(*r));
}

static void reader_compact(struct proto_reader *r)
{
	if (r->consumed == 0)
		return;
	memmove(r->buf, r->buf + r->consumed, r->len - r->consumed);
	r->len -= r->consumed;
	r->consumed = 0;
}

static int reader_reserve(struct proto_reader *r, size_t want)
{
	reader_compact(r);
	if (r->len + want > READER_CAP)
		want = READER_CAP - r->len;
	if (r->len + want <= r->cap)
		return 0;
	size_t cap = r->cap ? r->cap : 4096;
	while (cap < r->len + want)
		cap *= 2;
	if (cap > READER_CAP)
		cap = READER_CAP;
	uint8_t *n = realloc(r->buf, cap);
	if (!n)
		return -1;
	r->buf = n;
	r->cap = cap;
	return 0;
}

int proto_reader_feed(struct proto_reader *r, const void *data, size_t len)
{
	if (len == 0)
		return 0;
	reader_compact(r);
	if (len > READER_CAP - r->len)
		return -1;
	if (reader_reserve(r, len) < 0)
		return -1;
	memcpy(r->buf + r->len, data, len);
	r->len += len;
	return 0;
}

long proto_reader_read_fd(struct proto_reader *r, int fd)
{
	/* Only ever buffer one maximal frame: a peer can't make us grow past READER_CAP. */
	if (reader_reserve(r, 65536) < 0) {
		errno = ENOMEM;
		return -1;
	}
	size_t room = r->cap - r->len;
	if (room == 0) {
		errno = EMSGSIZE;
		return -1;
	}
	ssize_t n;
	do
		n = read(fd, r->buf + r->len, room);
	while (n < 0 && errno == EINTR);
	if (n > 0)
		r->len += (size_t)n;
	return (long)n;
}

int proto_reader_next(struct proto_reader *r, struct proto_frame *f)
{
	size_t avail = r->len - r->consumed;
	if (avail < PROTO_HDR_SIZE) /* before the pointer: a fresh reader's buf is NULL */
		return 0;
	const uint8_t *p = r->buf + r->consumed;
	uint32_t len = le32(p);
	uint8_t type = p[4];
	if (len > PROTO_MAX_PAYLOAD || type == 0 || type > MSG_TYPE_MAX)
		return -1;
	if (avail < PROTO_HDR_SIZE + len)
		return 0;
	f->len = len;
	f->type = type;
	f->channel = le32(p + 5);
	f->payload = p + PROTO_HDR_SIZE;
	r->consumed += PROTO_HDR_SIZE + len;
	return 1;
}

void proto_buf_free(struct proto_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

static uint8_t *buf_room(struct proto_buf *b, size_t n)
{
	if (b->oom)
		return NULL;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n)
			cap *= 2;
		uint8_t *d = realloc(b->data, cap);
		if (!d) {
			b->oom = true;
			return NULL;
		}
		b->data = d;
		b->cap = cap;
	}
	uint8_t *p = b->data + b->len;
	b->len += n;
	return p;
}

void proto_put_u8(struct proto_buf *b, uint8_t v)
{
	uint8_t *p = buf_room(b, 1);
	if (p)
		p[0] = v;
}

void proto_put_u16(struct proto_buf *b, uint16_t v)
{
	uint8_t *p = buf_room(b, 2);
	if (p) {
		p[0] = (uint8_t)v;
		p[1] = (uint8_t)(v >> 8);
	}
}

void proto_put_u32(struct proto_buf *b, uint32_t v)
{
	uint8_t *p = buf_room(b, 4);
	if (p)
		for (int i = 0; i < 4; i++)
			p[i] = (uint8_t)(v >> (8 * i));
}

void proto_put_u64(struct proto_buf *b, uint64_t v)
{
	uint8_t *p = buf_room(b, 8);
	if (p)
		for (int i = 0; i < 8; i++)
			p[i] = (uint8_t)(v >> (8 * i));
}

void proto_put_bytes(struct proto_buf *b, const void *src, size_t n)
{
	uint8_t *p = buf_room(b, n);
	if (p && n)
		memcpy(p, src, n);
}

void proto_put_str(struct proto_buf *b, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	proto_put_u32(b, (uint32_t)n);
	proto_put_bytes(b, s, n);
}

void proto_put_strv(struct proto_buf *b, char *const *v)
{
	uint32_t n = 0;
	while (v && v[n])
		n++;
	proto_put_u32(b, n);
	for (uint32_t i = 0; i < n; i++)
		proto_put_str(b, v[i]);
}

int proto_frame_append(struct proto_buf *out, uint8_t type, uint32_t channel, const void *payload, size_t len)
{
	if (len > PROTO_MAX_PAYLOAD)
		return -1;
	proto_put_u32(out, (uint32_t)len);
	proto_put_u8(out, type);
	proto_put_u32(out, channel);
	proto_put_bytes(out, payload, len);
	return out->oom ? -1 : 0;
}

void proto_cursor_init(struct proto_cursor *c, const void *p, size_t len)
{
	c->p = p;
	c->left = len;
	c->ok = true;
}

static const uint8_t *cursor_take(struct proto_cursor *c, size_t n)
{
	if (!c->ok || c->left < n) {
		c->ok = false;
		return NULL;
	}
	const uint8_t *p = c->p;
	c->p += n;
	c->left -= n;
	return p;
}

uint8_t proto_get_u8(struct proto_cursor *c)
{
	const uint8_t *p = cursor_take(c, 1);
	return p ? p[0] : 0;
}

uint16_t proto_get_u16(struct proto_cursor *c)
{
	const uint8_t *p = cursor_take(c, 2);
	return p ? (uint16_t)(p[0] | p[1] << 8) : 0;
}

uint32_t proto_get_u32(struct proto_cursor *c)
{
	const uint8_t *p = cursor_take(c, 4);
	return p ? le32(p) : 0;
}

uint64_t proto_get_u64(struct proto_cursor *c)
{
	const uint8_t *p = cursor_take(c, 8);
	return p ? (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32 : 0;
}

char *proto_get_str(struct proto_cursor *c, size_t max)
{
	uint32_t n = proto_get_u32(c);
	if (!c->ok || n > max || n > c->left) {
		c->ok = false;
		return NULL;
	}
	const uint8_t *p = cursor_take(c, n);
	if (!p || memchr(p, 0, n)) {
		c->ok = false;
		return NULL;
	}
	char *s = malloc((size_t)n + 1);
	if (!s) {
		c->ok = false;
		return NULL;
	}
	memcpy(s, p, n);
	s[n] = 0;
	return s;
}

void proto_strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

char **proto_get_strv(struct proto_cursor *c, size_t max_n, size_t max_len)
{
	uint32_t n = proto_get_u32(c);
	/* Each entry needs at least its 4-byte length: reject counts the payload can't hold. */
	if (!c->ok || n > max_n || n > c->left / 4) {
		c->ok = false;
		return NULL;
	}
	char **v = calloc((size_t)n + 1, sizeof(char *));
	if (!v) {
		c->ok = false;
		return NULL;
	}
	for (uint32_t i = 0; i < n; i++) {
		v[i] = proto_get_str(c, max_len);
		if (!v[i]) {
			proto_strv_free(v);
			return NULL;
		}
	}
	return v;
}

void proto_encode_hello(struct proto_buf *b, uint32_t version, uint32_t caps, const char *release)
{
	proto_put_u32(b, version);
	proto_put_u32(b, caps);
	proto_put_str(b, release);
}

int proto_decode_hello(const struct proto_frame *f, struct proto_hello *ret)
{
	struct proto_cursor c;
	proto_cursor_init(&c, f->payload, f->len);
	memset(ret, 0, sizeof(*ret));
	ret->version = proto_get_u32(&c);
	ret->caps = proto_get_u32(&c);
	ret->kernel_release = proto_get_str(&c, 256);
	if (!c.ok) {
		proto_hello_free(ret);
		return -1;
	}
	return 0;
}

void proto_encode_mount(struct proto_buf *b, const char *tag, const char *path, uint8_t flags)
{
	proto_put_str(b, tag);
	proto_put_str(b, path);
	proto_put_u8(b, flags);
}

void proto_encode_mount_answer(struct proto_buf *b, const struct proto_mount *m, int32_t err, const char *msg)
{
	proto_encode_mount(b, m->tag, m->path, m->flags);
	proto_put_u32(b, (uint32_t)err);
	proto_put_str(b, msg ? msg : "");
}

int proto_decode_mount(const struct proto_frame *f, struct proto_mount *ret)
{
	struct proto_cursor c;
	proto_cursor_init(&c, f->payload, f->len);
	memset(ret, 0, sizeof(*ret));
	ret->tag = proto_get_str(&c, PROTO_MOUNT_TAG_MAX);
	ret->path = proto_get_str(&c, PROTO_MOUNT_PATH_MAX);
	ret->flags = proto_get_u8(&c);
	if (c.ok && c.left) {
		ret->answer = true;
		ret->err = (int32_t)proto_get_u32(&c);
		ret->msg = proto_get_str(&c, PROTO_MOUNT_MSG_MAX);
	}
	if (!c.ok || c.left || !*ret->tag || ret->path[0] != '/') {
		proto_mount_free(ret);
		return -1;
	}
	return 0;
}

void proto_encode_netconf(struct proto_buf *b, const char *words)
{
	proto_put_u8(b, 0);
	proto_put_str(b, words);
}

void proto_encode_netconf_answer(struct proto_buf *b, int32_t err, const char *msg)
{
	proto_put_u8(b, 1);
	proto_put_u32(b, (uint32_t)err);
	proto_put_str(b, msg ? msg : "");
}

int proto_decode_netconf(const struct proto_frame *f, struct proto_netconf *ret)
{
	struct proto_cursor c;
	proto_cursor_init(&c, f->payload, f->len);
	memset(ret, 0, sizeof(*ret));
	uint8_t kind = proto_get_u8(&c);
	if (c.ok && kind == 0) {
		ret->words = proto_get_str(&c, PROTO_NETCONF_WORDS_MAX);
	} else if (c.ok && kind == 1) {
		ret->answer = true;
		ret->err = (int32_t)proto_get_u32(&c);
		ret->msg = proto_get_str(&c, PROTO_NETCONF_MSG_MAX);
	} else {
		c.ok = false;
	}
	if (!c.ok || c.left) {
		proto_netconf_free(ret);
		return -1;
	}
	return 0;
}

void proto_netconf_free(struct proto_netconf *n)
{
	free(n->words);
	free(n->msg);
	memset(n, 0, sizeof(*n));
}

void proto_mount_free(struct proto_mount *m)
{
	free(m->tag);
	free(m->path);
	free(m->msg);
	memset(m, 0, sizeof(*m));
}

void proto_hello_free(struct proto_hello *h)
{
	free(h->kernel_release);
	h->kernel_release = NULL;
}

void proto_encode_exec(struct proto_buf *b, const struct proto_exec *e)
{
	proto_put_u8(b, e->flags);
	proto_put_u16(b, e->rows);
	proto_put_u16(b, e->cols);
	proto_put_str(b, e->cwd);
	proto_put_str(b, e->user);
	proto_put_strv(b, e->argv);
	proto_put_strv(b, e->env);
}

int proto_decode_exec(const struct proto_frame *f, struct proto_exec *ret)
{
	struct proto_cursor c;
	proto_cursor_init(&c, f->payload, f->len);
	memset(ret, 0, sizeof(*ret));
	ret->flags = proto_get_u8(&c);
	ret->rows = proto_get_u16(&c);
	ret->cols = proto_get_u16(&c);
	ret->cwd = proto_get_str(&c, 4096);
	ret->user = proto_get_str(&c, 256);
	ret->argv = proto_get_strv(&c, PROTO_MAX_ARGS, PROTO_MAX_PAYLOAD);
	ret->env = proto_get_strv(&c, PROTO_MAX_ARGS, PROTO_MAX_PAYLOAD);
	if (!c.ok || c.left != 0 || !ret->argv || !ret->argv[0]) {
		proto_exec_free(ret);
		return -1;
	}
	return 0;
}

void proto_exec_free(struct proto_exec *e)
{
	free(e->cwd);
	free(e->user);
	proto_strv_free(e->argv);
	proto_strv_free(e->env);
	memset(e, 0, sizeof(*e));
}

void proto_encode_exit(struct proto_buf *b, uint8_t kind, int32_t code)
{
	proto_put_u8(b, kind);
	proto_put_u32(b, (uint32_t)code);
}

int proto_decode_exit(const struct proto_frame *f, struct proto_exit *ret)
{
	struct proto_cursor c;
	proto_cursor_init(&c, f->payload, f->len);
	uint8_t kind = proto_get_u8(&c);
	int32_t code = (int32_t)proto_get_u32(&c);
	if (!c.ok || c.left || kind > EXIT_LOST)
		return -1;
	ret->kind = kind;
	ret->code = code;
	return 0;
}

void proto_encode_identity(struct proto_buf *b, uint64_t realtime_ns, const char *hostname, const char *machine_id,
			   const void *entropy, size_t entropy_len)
{
	proto_put_u64(b, realtime_ns);
	proto_put_str(b, hostname);
	proto_put_str(b, machine_id);
	proto_put_u32(b, (uint32_t)entropy_len);
	proto_put_bytes(b, entropy, entropy_len);
}

int proto_decode_identity(const struct proto_frame *f, struct proto_identity *ret)
{
	struct proto_cursor c;
	proto_cursor_init(&c, f->payload, f->len);
	memset(ret, 0, sizeof(*ret));
	ret->realtime_ns = proto_get_u64(&c);
	ret->hostname = proto_get_str(&c, 64);
	ret->machine_id = proto_get_str(&c, 32);
	uint32_t n = proto_get_u32(&c);
	if (c.ok && (n > PROTO_IDENTITY_ENTROPY_MAX || n != c.left))
		c.ok = false;
	bool hex =
		ret->machine_id && strlen(ret->machine_id) == 32 && strspn(ret->machine_id, "0123456789abcdef") == 32;
	if (c.ok && n) {
		ret->entropy = malloc(n);
		if (ret->entropy)
			memcpy(ret->entropy, c.p, n);
		ret->entropy_len = ret->entropy ? n : 0;
	}
	if (!c.ok || !hex || !ret->hostname || !*ret->hostname || (n && !ret->entropy)) {
		proto_identity_free(ret);
		return -1;
	}
	return 0;
}

void proto_identity_free(struct proto_identity *id)
{
	free(id->hostname);
	free(id->machine_id);
	free(id->entropy);
	memset(id, 0, sizeof(*id));
}

int proto_decode_u32(const struct proto_frame *f, uint32_t *ret)
{
	struct proto_cursor c;
	proto_cursor_init(&c, f->payload, f->len);
	uint32_t v = proto_get_u32(&c);
	if (!c.ok || c.left)
		return -1;
	*ret = v;
	return 0;
}

int proto_decode_winsize(const struct proto_frame *f, uint16_t *rows, uint16_t *cols)
{
	struct proto_cursor c;
	proto_cursor_init(&c, f->payload, f->len);
	uint16_t r = proto_get_u16(&c), k = proto_get_u16(&c);
	if (!c.ok || c.left)
		return -1;
	*rows = r;
	*cols = k;
	return 0;
}

const char *proto_type_name(uint8_t type)
{
	static const char *const names[] = {
		"?",	    "HELLO",   "EXEC",	 "STDIN",    "STDIN_EOF", "STDOUT",   "STDERR", "EXIT",
		"SIGNAL",   "WINSIZE", "WINDOW", "PING",     "PONG",	  "POWEROFF", "MOUNT",	"STAT",
		"ACTIVITY", "ERROR",   "CTL",	 "IDENTITY", "LISTENERS", "NETCONF",  "NOTIFY",
	};
	return type <= MSG_TYPE_MAX ? names[type] : "?";
}
