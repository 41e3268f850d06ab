/* libFuzzer target for the agent wire protocol (the bytes a guest controls).
 *
 * Input: byte 0 picks how the rest is delivered (0: all at once; n: chunks of 1..n bytes from a
 * fixed pseudo-random sequence), the rest is the stream. Checked:
 *   - chunking never changes the result: the frames (and the final status) equal those of a reader
 *     fed everything at once;
 *   - every frame is within bounds, and every decoder is tried on it;
 *   - what a decoder accepts re-encodes to exactly the payload it came from (EXEC, EXIT) or to a
 *     prefix of it (HELLO, which tolerates trailing fields from newer agents). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_same(const struct proto_buf *b, const uint8_t *payload, size_t len, bool exact)
{
	CHECK(!b->oom);
	CHECK(exact ? b->len == len : b->len <= len);
	CHECK(b->len == 0 || memcmp(b->data, payload, b->len) == 0);
}

static void check_strv(char **v, size_t max_len)
{
	size_t n = 0;
	for (; v[n]; n++)
		CHECK(strlen(v[n]) <= max_len);
	CHECK(n <= PROTO_MAX_ARGS);
}

static void try_exec(const struct proto_frame *f)
{
	struct proto_exec e;
	if (proto_decode_exec(f, &e) < 0) {
		CHECK(!e.argv && !e.env && !e.cwd && !e.user);
		return;
	}
	CHECK(e.argv && e.argv[0] && e.env && e.cwd && e.user);
	CHECK(strlen(e.cwd) <= 4096 && strlen(e.user) <= 256);
	check_strv(e.argv, PROTO_MAX_PAYLOAD);
	check_strv(e.env, PROTO_MAX_PAYLOAD);
	struct proto_buf b = {0};
	proto_encode_exec(&b, &e);
	check_same(&b, f->payload, f->len, true);

	/* And the re-encoding decodes to the same thing again. */
	struct proto_frame g = *f;
	g.payload = b.data;
	struct proto_exec e2;
	CHECK(proto_decode_exec(&g, &e2) == 0);
	struct proto_buf b2 = {0};
	proto_encode_exec(&b2, &e2);
	CHECK(b2.len == b.len && memcmp(b2.data, b.data, b.len) == 0);
	proto_buf_free(&b2);
	proto_exec_free(&e2);
	proto_buf_free(&b);
	proto_exec_free(&e);
}

static void try_hello(const struct proto_frame *f)
{
	struct proto_hello h;
	if (proto_decode_hello(f, &h) < 0) {
		CHECK(!h.kernel_release);
		return;
	}
	CHECK(h.kernel_release && strlen(h.kernel_release) <= 256);
	struct proto_buf b = {0};
	proto_encode_hello(&b, h.version, h.caps, h.kernel_release);
	check_same(&b, f->payload, f->len, false);
	proto_buf_free(&b);
	proto_hello_free(&h);
}

static void try_exit(const struct proto_frame *f)
{
	struct proto_exit x;
	if (proto_decode_exit(f, &x) < 0)
		return;
	CHECK(x.kind <= EXIT_LOST);
	struct proto_buf b = {0};
	proto_encode_exit(&b, x.kind, x.code);
	check_same(&b, f->payload, f->len, true);
	proto_buf_free(&b);
}

static void try_small(const struct proto_frame *f)
{
	uint32_t v;
	CHECK((proto_decode_u32(f, &v) == 0) == (f->len == 4));
	uint16_t r, c;
	CHECK((proto_decode_winsize(f, &r, &c) == 0) == (f->len == 4));
}

/* MSG_MOUNT, as the monitor reads the agent's answer: bounded strings, an absolute path, a round trip. */
static void try_mount(const struct proto_frame *f)
{
	struct proto_mount m;
	if (proto_decode_mount(f, &m) < 0) {
		CHECK(!m.tag && !m.path && !m.msg);
		return;
	}
	CHECK(m.tag && *m.tag && strlen(m.tag) <= PROTO_MOUNT_TAG_MAX);
	CHECK(m.path && m.path[0] == '/' && strlen(m.path) <= PROTO_MOUNT_PATH_MAX);
	CHECK(!m.answer || (m.msg && strlen(m.msg) <= PROTO_MOUNT_MSG_MAX));
	struct proto_buf b = {0};
	if (m.answer)
		proto_encode_mount_answer(&b, &m, m.err, m.msg);
	else
		proto_encode_mount(&b, m.tag, m.path, m.flags);
	check_same(&b, f->payload, f->len, true);
	proto_buf_free(&b);
	proto_mount_free(&m);
}

/* MSG_NETCONF, as the monitor reads the agent's answer (and the agent the host's words): bounded
 * strings, one kind or the other, a round trip. */
static void try_netconf(const struct proto_frame *f)
{
	struct proto_netconf n;
	if (proto_decode_netconf(f, &n) < 0) {
		CHECK(!n.words && !n.msg);
		return;
	}
	CHECK(n.answer ? (n.msg && !n.words && strlen(n.msg) <= PROTO_NETCONF_MSG_MAX)
		       : (n.words && !n.msg && strlen(n.words) <= PROTO_NETCONF_WORDS_MAX));
	struct proto_buf b = {0};
	if (n.answer)
		proto_encode_netconf_answer(&b, n.err, n.msg);
	else
		proto_encode_netconf(&b, n.words);
	check_same(&b, f->payload, f->len, true);
	proto_buf_free(&b);
	proto_netconf_free(&n);
}

/* The generic field readers, as MOUNT / ERROR / ACTIVITY handlers use them. */
static void try_fields(const struct proto_frame *f)
{
	struct proto_cursor c;
	proto_cursor_init(&c, f->payload, f->len);
	char *tag = proto_get_str(&c, 64);
	char *path = proto_get_str(&c, 4096);
	CHECK(c.ok == (tag && path));
	(void)proto_get_u8(&c);
	CHECK(c.left <= f->len);
	free(tag);
	free(path);

	proto_cursor_init(&c, f->payload, f->len);
	char **v = proto_get_strv(&c, PROTO_MAX_ARGS, 4096);
	CHECK(c.ok == (v != NULL));
	if (v)
		check_strv(v, 4096);
	proto_strv_free(v);
	(void)proto_get_u64(&c);
}

static void on_frame(const struct proto_frame *f, struct proto_buf *log)
{
	CHECK(f->type >= 1 && f->type <= MSG_TYPE_MAX);
	CHECK(f->len <= PROTO_MAX_PAYLOAD);
	CHECK(strcmp(proto_type_name(f->type), "?") != 0);
	CHECK(proto_frame_append(log, f->type, f->channel, f->payload, f->len) == 0);
	try_hello(f);
	try_exec(f);
	try_exit(f);
	try_small(f);
	try_mount(f);
	try_netconf(f);
	try_fields(f);
}

/* Drains complete frames; returns the reader's last status (0 = needs more, -1 = malformed). */
static int drain(struct proto_reader *r, struct proto_buf *log, bool decode)
{
	struct proto_frame f;
	int rc;
	while ((rc = proto_reader_next(r, &f)) == 1) {
		if (decode)
			on_frame(&f, log);
		else
			CHECK(proto_frame_append(log, f.type, f.channel, f.payload, f.len) == 0);
	}
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned seed = data[0];
	data++, size--;

	struct proto_reader r;
	struct proto_buf chunked = {0};
	proto_reader_init(&r);
	int rc = 0;
	uint32_t lcg = seed * 2654435761u + 1;
	size_t off = 0;
	while (off < size && rc == 0) {
		size_t n = size - off;
		if (seed) {
			lcg = lcg * 1103515245u + 12345u;
			size_t want = 1 + (lcg >> 16) % seed;
			if (want < n)
				n = want;
		}
		if (proto_reader_feed(&r, data + off, n) < 0)
			break; /* more than one maximal frame buffered: the caller's bound */
		off += n;
		rc = drain(&r, &chunked, true);
	}
	proto_reader_free(&r);

	/* Everything at once must give the same frames and the same verdict. */
	if (off == size || rc < 0) {
		struct proto_buf whole = {0};
		proto_reader_init(&r);
		int rc2 = 0;
		if (proto_reader_feed(&r, data, size) == 0) {
			rc2 = drain(&r, &whole, false);
			CHECK(rc2 == rc);
			CHECK(whole.len == chunked.len);
			CHECK(whole.len == 0 || memcmp(whole.data, chunked.data, whole.len) == 0);
		}
		proto_reader_free(&r);
		proto_buf_free(&whole);
	}
	proto_buf_free(&chunked);
	return 0;
}
