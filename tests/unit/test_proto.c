/* proto: framing, the incremental reader, bounded payload decoding, every message type. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>
#include <sys/wait.h>

#include "proto.h"
#include "util.h"

#define UNUSED __attribute__((unused))

/* ---- allocation probe ----
 * Records the largest single allocation made while armed, so tests can show that a hostile count
 * is rejected before anything is sized by it. Under ASan through its allocator hooks, otherwise by
 * interposing malloc and calloc in front of glibc's. */
static size_t probe_max;
static int probe_armed;

static void probe_note(size_t n)
{
	if (probe_armed && n > probe_max)
		probe_max = n;
}

#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if defined(__SANITIZE_ADDRESS__) || __has_feature(address_sanitizer)
/* From <sanitizer/allocator_interface.h>, which not every compiler installs. */
int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void *, size_t),
					      void (*free_hook)(const volatile void *));
static void probe_hook(const volatile void *p, size_t n)
{
	(void)p;
	probe_note(n);
}
static void probe_arm(void)
{
	static int installed;
	if (!installed)
		__sanitizer_install_malloc_and_free_hooks(probe_hook, NULL);
	installed = 1;
	probe_max = 0;
	probe_armed = 1;
}
#else
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t m);
void *malloc(size_t n)
{
	probe_note(n);
	return __libc_malloc(n);
}
void *calloc(size_t n, size_t m)
{
	probe_note(m && n > SIZE_MAX / m ? SIZE_MAX : n * m);
	return __libc_calloc(n, m);
}
static void probe_arm(void)
{
	probe_max = 0;
	probe_armed = 1;
}
#endif

static size_t probe_disarm(void)
{
	probe_armed = 0;
	return probe_max;
}

/* ---- helpers ---- */

static void le32_put(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* A frame over a payload buffer, as the reader would hand it out. */
static struct proto_frame frame_of(uint8_t type, const struct proto_buf *b)
{
	return (struct proto_frame){.type = type, .channel = 0, .len = (uint32_t)b->len, .payload = b->data};
}

static struct proto_frame frame_raw(uint8_t type, const void *p, size_t n)
{
	return (struct proto_frame){.type = type, .channel = 0, .len = (uint32_t)n, .payload = p};
}

static void append(struct proto_buf *out, uint8_t type, uint32_t chan, const struct proto_buf *payload)
{
	assert_int_equal(
		proto_frame_append(out, type, chan, payload ? payload->data : NULL, payload ? payload->len : 0), 0);
}

static char *argv_a[] = {"/bin/sh", "-c", "echo 'hi' \"there\"", "", NULL};
static char *env_a[] = {"TERM=xterm-256color", "LANG=C.UTF-8", NULL};

static struct proto_exec sample_exec(void)
{
	return (struct proto_exec){.flags = EXEC_TTY | EXEC_STDIN | EXEC_APP,
				   .rows = 50,
				   .cols = 132,
				   .cwd = "/home/user",
				   .user = "user",
				   .argv = argv_a,
				   .env = env_a};
}

static void assert_strv_equal(char *const *a, char *const *b)
{
	size_t i = 0;
	for (; a[i] && b[i]; i++)
		assert_string_equal(a[i], b[i]);
	assert_null(a[i]);
	assert_null(b[i]);
}

/* One of every message type, on distinct channels. */
static void build_stream(struct proto_buf *out)
{
	struct proto_buf p = {0};

	proto_encode_hello(&p, PROTO_VERSION, 0x5, "6.1.0-13-amd64");
	append(out, MSG_HELLO, 0, &p);
	proto_buf_free(&p);

	struct proto_exec e = sample_exec();
	proto_encode_exec(&p, &e);
	append(out, MSG_EXEC, 1, &p);
	proto_buf_free(&p);

	proto_put_bytes(&p, "in\0put", 6);
	append(out, MSG_STDIN, 1, &p);
	proto_buf_free(&p);
	append(out, MSG_STDIN_EOF, 1, NULL);

	proto_put_bytes(&p, "out", 3);
	append(out, MSG_STDOUT, 1, &p);
	proto_buf_free(&p);
	append(out, MSG_STDOUT, 1, NULL);

	proto_put_bytes(&p, "err", 3);
	append(out, MSG_STDERR, 1, &p);
	proto_buf_free(&p);

	proto_encode_exit(&p, EXIT_SIGNAL, 9);
	append(out, MSG_EXIT, 1, &p);
	proto_buf_free(&p);

	proto_put_u32(&p, 15);
	append(out, MSG_SIGNAL, 2, &p);
	proto_buf_free(&p);

	proto_put_u16(&p, 24);
	proto_put_u16(&p, 80);
	append(out, MSG_WINSIZE, 2, &p);
	proto_buf_free(&p);

	proto_put_u32(&p, PROTO_WINDOW_INIT);
	append(out, MSG_WINDOW, 3, &p);
	proto_buf_free(&p);

	proto_put_u64(&p, 0x0123456789abcdefull);
	append(out, MSG_PING, 0, &p);
	proto_buf_free(&p);
	proto_put_u64(&p, 0xfedcba9876543210ull);
	append(out, MSG_PONG, 0, &p);
	proto_buf_free(&p);

	append(out, MSG_POWEROFF, 0, NULL);

	proto_put_str(&p, "share0");
	proto_put_str(&p, "/mnt/data");
	proto_put_u8(&p, 1);
	append(out, MSG_MOUNT, 0, &p);
	proto_buf_free(&p);

	append(out, MSG_STAT, 0, NULL);

	proto_put_u32(&p, 3);
	proto_put_u32(&p, 7);
	append(out, MSG_ACTIVITY, 0, &p);
	proto_buf_free(&p);

	proto_put_str(&p, "exec: no such file");
	append(out, MSG_ERROR, 4, &p);
	proto_buf_free(&p);

	const char *json = "{\"op\":\"stop\"}";
	proto_put_bytes(&p, json, strlen(json));
	append(out, MSG_CTL, 0xffffffffu, &p);
	proto_buf_free(&p);
	assert_false(out->oom);
}

#define N_STREAM_FRAMES 19

/* Decodes and checks frame number i of build_stream. */
static void check_frame(int i, const struct proto_frame *f)
{
	static const uint8_t types[N_STREAM_FRAMES] = {MSG_HELLO,  MSG_EXEC,	 MSG_STDIN, MSG_STDIN_EOF, MSG_STDOUT,
						       MSG_STDOUT, MSG_STDERR,	 MSG_EXIT,  MSG_SIGNAL,	   MSG_WINSIZE,
						       MSG_WINDOW, MSG_PING,	 MSG_PONG,  MSG_POWEROFF,  MSG_MOUNT,
						       MSG_STAT,   MSG_ACTIVITY, MSG_ERROR, MSG_CTL};
	assert_true(i < N_STREAM_FRAMES);
	assert_int_equal(f->type, types[i]);
	struct proto_cursor c;
	proto_cursor_init(&c, f->payload, f->len);
	switch (f->type) {
	case MSG_HELLO: {
		struct proto_hello h;
		assert_int_equal(proto_decode_hello(f, &h), 0);
		assert_int_equal(h.version, PROTO_VERSION);
		assert_int_equal(h.caps, 5);
		assert_string_equal(h.kernel_release, "6.1.0-13-amd64");
		assert_int_equal(f->channel, 0);
		proto_hello_free(&h);
		proto_hello_free(&h);
		break;
	}
	case MSG_EXEC: {
		struct proto_exec e, want = sample_exec();
		assert_int_equal(proto_decode_exec(f, &e), 0);
		assert_int_equal(e.flags, want.flags);
		assert_int_equal(e.rows, 50);
		assert_int_equal(e.cols, 132);
		assert_string_equal(e.cwd, want.cwd);
		assert_string_equal(e.user, want.user);
		assert_strv_equal(e.argv, want.argv);
		assert_strv_equal(e.env, want.env);
		assert_int_equal(f->channel, 1);
		proto_exec_free(&e);
		proto_exec_free(&e);
		break;
	}
	case MSG_STDIN:
		assert_int_equal(f->len, 6);
		assert_memory_equal(f->payload, "in\0put", 6);
		break;
	case MSG_STDOUT:
		assert_int_equal(f->len, i == 4 ? 3 : 0);
		if (f->len)
			assert_memory_equal(f->payload, "out", 3);
		break;
	case MSG_STDERR:
		assert_int_equal(f->len, 3);
		assert_memory_equal(f->payload, "err", 3);
		break;
	case MSG_STDIN_EOF:
	case MSG_POWEROFF:
	case MSG_STAT:
		assert_int_equal(f->len, 0);
		break;
	case MSG_EXIT: {
		struct proto_exit x;
		assert_int_equal(proto_decode_exit(f, &x), 0);
		assert_int_equal(x.kind, EXIT_SIGNAL);
		assert_int_equal(x.code, 9);
		break;
	}
	case MSG_SIGNAL:
	case MSG_WINDOW: {
		uint32_t v = 0;
		assert_int_equal(proto_decode_u32(f, &v), 0);
		assert_int_equal(v, f->type == MSG_SIGNAL ? 15 : PROTO_WINDOW_INIT);
		assert_int_equal(f->channel, f->type == MSG_SIGNAL ? 2 : 3);
		break;
	}
	case MSG_WINSIZE: {
		uint16_t r = 0, k = 0;
		assert_int_equal(proto_decode_winsize(f, &r, &k), 0);
		assert_int_equal(r, 24);
		assert_int_equal(k, 80);
		break;
	}
	case MSG_PING:
	case MSG_PONG:
		assert_true(proto_get_u64(&c) == (f->type == MSG_PING ? 0x0123456789abcdefull : 0xfedcba9876543210ull));
		assert_true(c.ok && c.left == 0);
		break;
	case MSG_MOUNT: {
		char *tag = proto_get_str(&c, 64), *path = proto_get_str(&c, 4096);
		uint8_t ro = proto_get_u8(&c);
		assert_true(c.ok && c.left == 0);
		assert_string_equal(tag, "share0");
		assert_string_equal(path, "/mnt/data");
		assert_int_equal(ro, 1);
		free(tag);
		free(path);
		break;
	}
	case MSG_ACTIVITY:
		assert_int_equal(proto_get_u32(&c), 3);
		assert_int_equal(proto_get_u32(&c), 7);
		assert_true(c.ok && c.left == 0);
		break;
	case MSG_ERROR: {
		char *m = proto_get_str(&c, 4096);
		assert_true(c.ok && c.left == 0);
		assert_string_equal(m, "exec: no such file");
		assert_int_equal(f->channel, 4);
		free(m);
		break;
	}
	case MSG_CTL:
		assert_int_equal(f->len, strlen("{\"op\":\"stop\"}"));
		assert_memory_equal(f->payload, "{\"op\":\"stop\"}", f->len);
		assert_int_equal(f->channel, 0xffffffffu);
		break;
	default:
		fail_msg("unexpected type %u", f->type);
	}
}

/* ---- framing ---- */

static void test_round_trip_all_types(void **state UNUSED)
{
	struct proto_buf out = {0};
	build_stream(&out);
	struct proto_reader r;
	proto_reader_init(&r);
	assert_int_equal(proto_reader_feed(&r, out.data, out.len), 0);
	struct proto_frame f;
	int n = 0;
	int rc;
	while ((rc = proto_reader_next(&r, &f)) == 1)
		check_frame(n++, &f);
	assert_int_equal(rc, 0);
	assert_int_equal(n, N_STREAM_FRAMES);
	proto_reader_free(&r);
	proto_reader_free(&r);
	proto_buf_free(&out);
}

static void test_byte_at_a_time(void **state UNUSED)
{
	struct proto_buf out = {0};
	build_stream(&out);
	struct proto_reader r;
	proto_reader_init(&r);
	struct proto_frame f;
	int n = 0;
	assert_int_equal(proto_reader_next(&r, &f), 0); /* empty reader */
	for (size_t i = 0; i < out.len; i++) {
		assert_int_equal(proto_reader_feed(&r, out.data + i, 1), 0);
		assert_int_equal(proto_reader_feed(&r, out.data, 0), 0);
		int rc;
		while ((rc = proto_reader_next(&r, &f)) == 1)
			check_frame(n++, &f);
		assert_int_equal(rc, 0);
	}
	assert_int_equal(n, N_STREAM_FRAMES);
	proto_reader_free(&r);
	proto_buf_free(&out);
}

/* The header layout is the wire format the agent speaks: pin it. */
static void test_wire_bytes(void **state UNUSED)
{
	struct proto_buf p = {0}, out = {0};
	proto_encode_exit(&p, EXIT_FAILED, -2);
	assert_int_equal(proto_frame_append(&out, MSG_EXIT, 0x01020304u, p.data, p.len), 0);
	static const uint8_t want[] = {0x05, 0, 0, 0, 0x07, 0x04, 0x03, 0x02, 0x01, 0x02, 0xfe, 0xff, 0xff, 0xff};
	assert_int_equal(out.len, sizeof(want));
	assert_memory_equal(out.data, want, sizeof(want));
	proto_buf_free(&p);
	proto_buf_free(&out);

	proto_put_u16(&p, 0xbeef);
	proto_put_u64(&p, 0x1122334455667788ull);
	proto_put_str(&p, "ab");
	static const uint8_t want2[] = {0xef, 0xbe, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33,
					0x22, 0x11, 2,	  0,	0,    0,    'a',  'b'};
	assert_int_equal(p.len, sizeof(want2));
	assert_memory_equal(p.data, want2, sizeof(want2));
	proto_buf_free(&p);
}

static void test_bad_headers(void **state UNUSED)
{
	struct proto_reader r;
	struct proto_frame f;
	uint8_t h[PROTO_HDR_SIZE] = {0};

	/* Oversized length: rejected from the header alone, before any payload arrives. */
	proto_reader_init(&r);
	le32_put(h, PROTO_MAX_PAYLOAD + 1);
	h[4] = MSG_STDOUT;
	assert_int_equal(proto_reader_feed(&r, h, sizeof(h)), 0);
	assert_int_equal(proto_reader_next(&r, &f), -1);
	proto_reader_free(&r);

	proto_reader_init(&r);
	le32_put(h, 0xffffffffu);
	assert_int_equal(proto_reader_feed(&r, h, sizeof(h)), 0);
	assert_int_equal(proto_reader_next(&r, &f), -1);
	proto_reader_free(&r);

	/* Exactly the maximum is fine: waits for the payload. */
	proto_reader_init(&r);
	le32_put(h, PROTO_MAX_PAYLOAD);
	assert_int_equal(proto_reader_feed(&r, h, sizeof(h)), 0);
	assert_int_equal(proto_reader_next(&r, &f), 0);
	proto_reader_free(&r);

	/* Types outside 1..MSG_TYPE_MAX. */
	static const uint8_t bad_types[] = {0, MSG_TYPE_MAX + 1, 100, 255};
	for (size_t i = 0; i < ARRAY_SIZE(bad_types); i++) {
		proto_reader_init(&r);
		le32_put(h, 0);
		h[4] = bad_types[i];
		assert_int_equal(proto_reader_feed(&r, h, sizeof(h)), 0);
		assert_int_equal(proto_reader_next(&r, &f), -1);
		proto_reader_free(&r);
	}
	for (unsigned t = 1; t <= MSG_TYPE_MAX; t++) {
		proto_reader_init(&r);
		le32_put(h, 0);
		h[4] = (uint8_t)t;
		le32_put(h + 5, 77);
		assert_int_equal(proto_reader_feed(&r, h, sizeof(h)), 0);
		assert_int_equal(proto_reader_next(&r, &f), 1);
		assert_int_equal(f.type, t);
		assert_int_equal(f.channel, 77);
		assert_int_equal(f.len, 0);
		proto_reader_free(&r);
	}

	/* A partial header is not an error. */
	proto_reader_init(&r);
	h[4] = 0;
	assert_int_equal(proto_reader_feed(&r, h, PROTO_HDR_SIZE - 1), 0);
	assert_int_equal(proto_reader_next(&r, &f), 0);
	proto_reader_free(&r);
}

static void test_reader_bound(void **state UNUSED)
{
	/* The reader never holds more than one maximal frame. */
	size_t cap = PROTO_HDR_SIZE + PROTO_MAX_PAYLOAD;
	uint8_t *big = xcalloc(1, cap + 1);
	struct proto_reader r;
	proto_reader_init(&r);
	assert_int_equal(proto_reader_feed(&r, big, cap + 1), -1);
	assert_int_equal(proto_reader_feed(&r, big, cap - 10), 0);
	assert_int_equal(proto_reader_feed(&r, big, 11), -1);
	assert_int_equal(proto_reader_feed(&r, big, 10), 0);
	assert_int_equal(proto_reader_feed(&r, big, 1), -1);
	proto_reader_free(&r);

	/* A maximal frame, then consuming it makes room again. */
	le32_put(big, PROTO_MAX_PAYLOAD);
	big[4] = MSG_STDOUT;
	memset(big + PROTO_HDR_SIZE, 'z', PROTO_MAX_PAYLOAD);
	proto_reader_init(&r);
	assert_int_equal(proto_reader_feed(&r, big, cap), 0);
	struct proto_frame f;
	assert_int_equal(proto_reader_next(&r, &f), 1);
	assert_int_equal(f.len, PROTO_MAX_PAYLOAD);
	assert_int_equal(f.payload[PROTO_MAX_PAYLOAD - 1], 'z');
	assert_int_equal(proto_reader_next(&r, &f), 0);
	assert_int_equal(proto_reader_feed(&r, big, cap), 0);
	assert_int_equal(proto_reader_next(&r, &f), 1);
	proto_reader_free(&r);

	/* The encoder refuses oversized payloads and leaves the buffer alone. */
	struct proto_buf out = {0};
	assert_int_equal(proto_frame_append(&out, MSG_STDOUT, 0, big, PROTO_MAX_PAYLOAD + 1), -1);
	assert_int_equal(out.len, 0);
	assert_int_equal(proto_frame_append(&out, MSG_STDOUT, 0, big, PROTO_MAX_PAYLOAD), 0);
	assert_int_equal(out.len, cap);
	proto_buf_free(&out);
	free(big);
}

/* ---- payload fields ---- */

static void test_get_str(void **state UNUSED)
{
	struct proto_cursor c;
	struct proto_buf b = {0};

	proto_put_str(&b, "hello");
	proto_put_str(&b, "");
	proto_put_str(&b, NULL);
	proto_cursor_init(&c, b.data, b.len);
	char *s1 = proto_get_str(&c, 5), *s2 = proto_get_str(&c, 0), *s3 = proto_get_str(&c, 10);
	assert_true(c.ok);
	assert_int_equal(c.left, 0);
	assert_string_equal(s1, "hello");
	assert_string_equal(s2, "");
	assert_string_equal(s3, "");
	free(s1);
	free(s2);
	free(s3);

	/* Over max. */
	proto_cursor_init(&c, b.data, b.len);
	assert_null(proto_get_str(&c, 4));
	assert_false(c.ok);
	/* The failure latches: later reads give zeros and nothing else. */
	assert_int_equal(proto_get_u32(&c), 0);
	assert_null(proto_get_str(&c, 100));
	assert_false(c.ok);
	proto_buf_free(&b);

	/* Embedded NUL. */
	proto_put_u32(&b, 3);
	proto_put_bytes(&b, "a\0b", 3);
	proto_cursor_init(&c, b.data, b.len);
	assert_null(proto_get_str(&c, 100));
	assert_false(c.ok);
	proto_buf_free(&b);

	/* Truncated: the length says more than is left, and a cut length prefix. */
	proto_put_u32(&b, 10);
	proto_put_bytes(&b, "abcde", 5);
	proto_cursor_init(&c, b.data, b.len);
	assert_null(proto_get_str(&c, 100));
	assert_false(c.ok);
	proto_cursor_init(&c, b.data, 3);
	assert_null(proto_get_str(&c, 100));
	assert_false(c.ok);
	proto_buf_free(&b);

	/* A huge claimed length is rejected without being allocated. */
	proto_put_u32(&b, 0xffffffffu);
	proto_put_bytes(&b, "xy", 2);
	proto_cursor_init(&c, b.data, b.len);
	probe_arm();
	assert_null(proto_get_str(&c, SIZE_MAX));
	assert_true(probe_disarm() < 64);
	assert_false(c.ok);
	proto_buf_free(&b);

	/* Short integer reads. */
	uint8_t one = 7;
	proto_cursor_init(&c, &one, 1);
	assert_int_equal(proto_get_u16(&c), 0);
	assert_false(c.ok);
	proto_cursor_init(&c, &one, 1);
	assert_int_equal(proto_get_u8(&c), 7);
	assert_true(c.ok);
	assert_int_equal(proto_get_u8(&c), 0);
	assert_false(c.ok);
	proto_cursor_init(&c, &one, 1);
	assert_true(proto_get_u64(&c) == 0);
	assert_false(c.ok);
}

static void test_get_strv(void **state UNUSED)
{
	struct proto_cursor c;
	struct proto_buf b = {0};

	/* As many empty strings as the payload holds: fine. */
	proto_put_u32(&b, 3);
	for (int i = 0; i < 3; i++)
		proto_put_u32(&b, 0);
	proto_cursor_init(&c, b.data, b.len);
	char **v = proto_get_strv(&c, 10, 10);
	assert_non_null(v);
	assert_true(c.ok);
	assert_int_equal(strv_len(v), 3);
	proto_strv_free(v);

	/* One more than it can hold: rejected. */
	proto_cursor_init(&c, b.data, b.len);
	b.data[0] = 4;
	assert_null(proto_get_strv(&c, 10, 10));
	assert_false(c.ok);

	/* More than max_n, though the payload would hold them. */
	b.data[0] = 3;
	proto_cursor_init(&c, b.data, b.len);
	assert_null(proto_get_strv(&c, 2, 10));
	assert_false(c.ok);
	proto_buf_free(&b);

	/* A count far beyond the payload (and beyond any limit the caller gave): no big allocation. */
	proto_put_u32(&b, 0xffffffffu);
	proto_put_str(&b, "only");
	proto_cursor_init(&c, b.data, b.len);
	probe_arm();
	assert_null(proto_get_strv(&c, SIZE_MAX, SIZE_MAX));
	assert_true(probe_disarm() < 1024);
	assert_false(c.ok);
	proto_buf_free(&b);

	/* The largest count the EXEC decoder allows, each entry empty: allocated, bounded. */
	proto_put_u32(&b, PROTO_MAX_ARGS);
	for (unsigned i = 0; i < PROTO_MAX_ARGS; i++)
		proto_put_u32(&b, 0);
	proto_cursor_init(&c, b.data, b.len);
	v = proto_get_strv(&c, PROTO_MAX_ARGS, 1);
	assert_non_null(v);
	assert_int_equal(strv_len(v), PROTO_MAX_ARGS);
	proto_strv_free(v);
	proto_cursor_init(&c, b.data, b.len);
	b.data[0]++;
	assert_null(proto_get_strv(&c, PROTO_MAX_ARGS + 1, 1)); /* one short */
	proto_buf_free(&b);

	/* A bad entry in the middle frees the ones before it (ASan checks the leak). */
	proto_put_u32(&b, 3);
	proto_put_str(&b, "good");
	proto_put_str(&b, "too long for max");
	proto_put_str(&b, "never read");
	proto_cursor_init(&c, b.data, b.len);
	assert_null(proto_get_strv(&c, 10, 8));
	assert_false(c.ok);
	proto_buf_free(&b);

	/* Empty vector. */
	proto_put_strv(&b, NULL);
	proto_cursor_init(&c, b.data, b.len);
	v = proto_get_strv(&c, 10, 10);
	assert_non_null(v);
	assert_null(v[0]);
	proto_strv_free(v);
	proto_strv_free(NULL);
	proto_buf_free(&b);
}

/* ---- message decoders ---- */

static void test_exec_rejects(void **state UNUSED)
{
	struct proto_exec e = sample_exec(), got;
	struct proto_buf b = {0};
	struct proto_frame f;

	/* Empty argv, and absent argv (encoded the same way). */
	char *empty[] = {NULL};
	e.argv = empty;
	proto_encode_exec(&b, &e);
	f = frame_of(MSG_EXEC, &b);
	assert_int_equal(proto_decode_exec(&f, &got), -1);
	assert_null(got.argv);
	assert_null(got.cwd);
	proto_buf_free(&b);
	e.argv = NULL;
	proto_encode_exec(&b, &e);
	f = frame_of(MSG_EXEC, &b);
	assert_int_equal(proto_decode_exec(&f, &got), -1);
	proto_buf_free(&b);

	/* Trailing garbage after a valid EXEC. */
	e = sample_exec();
	proto_encode_exec(&b, &e);
	proto_put_u8(&b, 0);
	f = frame_of(MSG_EXEC, &b);
	assert_int_equal(proto_decode_exec(&f, &got), -1);
	proto_buf_free(&b);

	/* Every truncation of a valid EXEC is rejected (and frees what it decoded). */
	proto_encode_exec(&b, &e);
	for (size_t n = 0; n < b.len; n++) {
		f = frame_raw(MSG_EXEC, b.data, n);
		if (proto_decode_exec(&f, &got) != -1)
			fail_msg("EXEC truncated to %zu of %zu bytes was accepted", n, b.len);
	}
	f = frame_of(MSG_EXEC, &b);
	assert_int_equal(proto_decode_exec(&f, &got), 0);
	proto_exec_free(&got);
	proto_buf_free(&b);

	/* Field limits: cwd 4096, user 256. */
	char *cwd = xmalloc(4098);
	memset(cwd, 'c', 4097);
	cwd[4097] = 0;
	e.cwd = cwd;
	proto_encode_exec(&b, &e);
	f = frame_of(MSG_EXEC, &b);
	assert_int_equal(proto_decode_exec(&f, &got), -1);
	proto_buf_free(&b);
	cwd[4096] = 0;
	proto_encode_exec(&b, &e);
	f = frame_of(MSG_EXEC, &b);
	assert_int_equal(proto_decode_exec(&f, &got), 0);
	assert_int_equal(strlen(got.cwd), 4096);
	proto_exec_free(&got);
	proto_buf_free(&b);
	free(cwd);

	e = sample_exec();
	char user[258];
	memset(user, 'u', 257);
	user[257] = 0;
	e.user = user;
	proto_encode_exec(&b, &e);
	f = frame_of(MSG_EXEC, &b);
	assert_int_equal(proto_decode_exec(&f, &got), -1);
	proto_buf_free(&b);

	/* An argument with a NUL byte in it. */
	proto_put_u8(&b, 0);
	proto_put_u16(&b, 0);
	proto_put_u16(&b, 0);
	proto_put_str(&b, "");
	proto_put_str(&b, "");
	proto_put_u32(&b, 1);
	proto_put_u32(&b, 3);
	proto_put_bytes(&b, "a\0b", 3);
	proto_put_u32(&b, 0);
	f = frame_of(MSG_EXEC, &b);
	assert_int_equal(proto_decode_exec(&f, &got), -1);
	proto_buf_free(&b);
}

/* Decoded EXEC re-encodes to the same bytes. */
static void test_exec_reencode(void **state UNUSED)
{
	struct proto_exec e = sample_exec(), got;
	e.cwd = "";
	e.user = "";
	e.env = NULL;
	struct proto_buf a = {0}, b = {0};
	proto_encode_exec(&a, &e);
	struct proto_frame f = frame_of(MSG_EXEC, &a);
	assert_int_equal(proto_decode_exec(&f, &got), 0);
	assert_string_equal(got.cwd, "");
	assert_non_null(got.env);
	assert_null(got.env[0]);
	proto_encode_exec(&b, &got);
	assert_int_equal(a.len, b.len);
	assert_memory_equal(a.data, b.data, a.len);
	proto_exec_free(&got);
	proto_buf_free(&a);
	proto_buf_free(&b);
}

static void test_exit(void **state UNUSED)
{
	struct proto_buf b = {0};
	struct proto_exit x = {.kind = 99, .code = 99};
	struct proto_frame f;
	static const int32_t codes[] = {0, 1, 255, -1, INT32_MIN, INT32_MAX};
	for (uint8_t k = EXIT_CODE; k <= EXIT_LOST; k++)
		for (size_t i = 0; i < ARRAY_SIZE(codes); i++) {
			proto_encode_exit(&b, k, codes[i]);
			f = frame_of(MSG_EXIT, &b);
			assert_int_equal(proto_decode_exit(&f, &x), 0);
			assert_int_equal(x.kind, k);
			assert_int_equal(x.code, codes[i]);
			proto_buf_free(&b);
		}

	x = (struct proto_exit){.kind = 42, .code = 42};
	proto_encode_exit(&b, EXIT_LOST + 1, 0);
	f = frame_of(MSG_EXIT, &b);
	assert_int_equal(proto_decode_exit(&f, &x), -1);
	proto_buf_free(&b);
	proto_encode_exit(&b, 255, 0);
	f = frame_of(MSG_EXIT, &b);
	assert_int_equal(proto_decode_exit(&f, &x), -1);
	proto_buf_free(&b);
	/* Trailing byte, short payload. */
	proto_encode_exit(&b, EXIT_CODE, 0);
	proto_put_u8(&b, 0);
	f = frame_of(MSG_EXIT, &b);
	assert_int_equal(proto_decode_exit(&f, &x), -1);
	f.len = 4;
	assert_int_equal(proto_decode_exit(&f, &x), -1);
	proto_buf_free(&b);
	/* Untouched on failure. */
	assert_int_equal(x.kind, 42);
	assert_int_equal(x.code, 42);
}

static void test_small_decoders(void **state UNUSED)
{
	static const uint8_t p[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
	uint32_t v = 7;
	uint16_t r = 7, k = 7;
	struct proto_frame f;

	f = frame_raw(MSG_SIGNAL, p, 4);
	assert_int_equal(proto_decode_u32(&f, &v), 0);
	assert_int_equal(v, 0x04030201);
	v = 7;
	for (size_t n = 0; n <= sizeof(p); n++) {
		if (n == 4)
			continue;
		f = frame_raw(MSG_WINDOW, p, n);
		assert_int_equal(proto_decode_u32(&f, &v), -1);
	}
	assert_int_equal(v, 7);

	f = frame_raw(MSG_WINSIZE, p, 4);
	assert_int_equal(proto_decode_winsize(&f, &r, &k), 0);
	assert_int_equal(r, 0x0201);
	assert_int_equal(k, 0x0403);
	r = k = 7;
	for (size_t n = 0; n <= sizeof(p); n++) {
		if (n == 4)
			continue;
		f = frame_raw(MSG_WINSIZE, p, n);
		assert_int_equal(proto_decode_winsize(&f, &r, &k), -1);
	}
	assert_int_equal(r, 7);
	assert_int_equal(k, 7);
}

static void test_hello(void **state UNUSED)
{
	struct proto_buf b = {0};
	struct proto_hello h;
	struct proto_frame f;
	char rel[258];
	memset(rel, 'r', 256);
	rel[256] = 0;
	proto_encode_hello(&b, 1, 0, rel);
	f = frame_of(MSG_HELLO, &b);
	assert_int_equal(proto_decode_hello(&f, &h), 0);
	assert_int_equal(strlen(h.kernel_release), 256);
	proto_hello_free(&h);
	proto_buf_free(&b);

	rel[256] = 'r';
	rel[257] = 0;
	proto_encode_hello(&b, 1, 0, rel);
	f = frame_of(MSG_HELLO, &b);
	assert_int_equal(proto_decode_hello(&f, &h), -1);
	assert_null(h.kernel_release);
	f.len = 6;
	assert_int_equal(proto_decode_hello(&f, &h), -1);
	proto_buf_free(&b);

	proto_encode_hello(&b, 2, 0xffffffffu, NULL);
	f = frame_of(MSG_HELLO, &b);
	assert_int_equal(proto_decode_hello(&f, &h), 0);
	assert_int_equal(h.version, 2);
	assert_int_equal(h.caps, 0xffffffffu);
	assert_string_equal(h.kernel_release, "");
	proto_hello_free(&h);
	proto_buf_free(&b);
}

/* MSG_NETCONF: the request and the answer round-trip; a wrong kind, a long message, trailing bytes
 * and a truncated payload are refused. */
static void test_netconf(void **state UNUSED)
{
	struct proto_buf b = {0};
	struct proto_netconf n;
	proto_encode_netconf(&b, " hutch.netup=10.200.0.2 hutch.netvm=1");
	struct proto_frame f = frame_of(MSG_NETCONF, &b);
	assert_int_equal(proto_decode_netconf(&f, &n), 0);
	assert_false(n.answer);
	assert_string_equal(n.words, " hutch.netup=10.200.0.2 hutch.netvm=1");
	proto_netconf_free(&n);
	proto_buf_free(&b);

	proto_encode_netconf_answer(&b, 19, "no interface with MAC 02:68:0a:c8:00:02 for upstream");
	f = frame_of(MSG_NETCONF, &b);
	assert_int_equal(proto_decode_netconf(&f, &n), 0);
	assert_true(n.answer);
	assert_int_equal(n.err, 19);
	assert_string_equal(n.msg, "no interface with MAC 02:68:0a:c8:00:02 for upstream");
	proto_netconf_free(&n);
	/* truncated by one byte, and with one byte too many */
	f.len--;
	assert_int_equal(proto_decode_netconf(&f, &n), -1);
	proto_buf_free(&b);
	proto_encode_netconf_answer(&b, 0, "");
	proto_put_u8(&b, 0);
	f = frame_of(MSG_NETCONF, &b);
	assert_int_equal(proto_decode_netconf(&f, &n), -1);
	proto_buf_free(&b);
	/* an unknown kind */
	proto_put_u8(&b, 2);
	proto_put_str(&b, "x");
	f = frame_of(MSG_NETCONF, &b);
	assert_int_equal(proto_decode_netconf(&f, &n), -1);
	proto_buf_free(&b);
	/* a message over PROTO_NETCONF_MSG_MAX */
	char big[PROTO_NETCONF_MSG_MAX + 2];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	proto_encode_netconf_answer(&b, 1, big);
	f = frame_of(MSG_NETCONF, &b);
	assert_int_equal(proto_decode_netconf(&f, &n), -1);
	proto_buf_free(&b);
}

static void test_type_names(void **state UNUSED)
{
	assert_string_equal(proto_type_name(MSG_HELLO), "HELLO");
	assert_string_equal(proto_type_name(MSG_EXEC), "EXEC");
	assert_string_equal(proto_type_name(MSG_WINSIZE), "WINSIZE");
	assert_string_equal(proto_type_name(MSG_CTL), "CTL");
	assert_string_equal(proto_type_name(0), "?");
	assert_string_equal(proto_type_name(MSG_TYPE_MAX + 1), "?");
	assert_string_equal(proto_type_name(255), "?");
	for (unsigned t = 1; t <= MSG_TYPE_MAX; t++)
		assert_string_not_equal(proto_type_name((uint8_t)t), "?");
}

/* ---- reading from a descriptor ---- */

static int wait_child(pid_t pid)
{
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void test_read_fd_pipe(void **state UNUSED)
{
	/* The stream: all types, two maximal STDOUT frames, all types again; written in odd-sized
	 * pieces by a child so reads split frames anywhere. */
	struct proto_buf out = {0};
	build_stream(&out);
	uint8_t *big = xmalloc(PROTO_MAX_PAYLOAD);
	for (size_t i = 0; i < PROTO_MAX_PAYLOAD; i++)
		big[i] = (uint8_t)(i % 251);
	assert_int_equal(proto_frame_append(&out, MSG_STDOUT, 9, big, PROTO_MAX_PAYLOAD), 0);
	assert_int_equal(proto_frame_append(&out, MSG_STDOUT, 9, big, PROTO_MAX_PAYLOAD), 0);
	size_t first = out.len;
	build_stream(&out);

	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		size_t off = 0, step = 1;
		while (off < out.len) {
			size_t n = step < out.len - off ? step : out.len - off;
			if (write_all(p[1], out.data + off, n) < 0)
				_exit(1);
			off += n;
			step = step * 7 % 100003 + 1;
		}
		_exit(0);
	}
	close(p[1]);
	struct proto_reader r;
	proto_reader_init(&r);
	struct proto_frame f;
	int n = 0, bigs = 0;
	long got;
	size_t total = 0;
	while ((got = proto_reader_read_fd(&r, p[0])) > 0) {
		total += (size_t)got;
		int rc;
		while ((rc = proto_reader_next(&r, &f)) == 1) {
			if (f.channel == 9) {
				assert_int_equal(f.len, PROTO_MAX_PAYLOAD);
				assert_memory_equal(f.payload, big, PROTO_MAX_PAYLOAD);
				bigs++;
				continue;
			}
			check_frame(n++ % N_STREAM_FRAMES, &f);
		}
		assert_int_equal(rc, 0);
	}
	assert_int_equal(got, 0); /* EOF */
	assert_int_equal(total, out.len);
	assert_true(total > first);
	assert_int_equal(n, 2 * N_STREAM_FRAMES);
	assert_int_equal(bigs, 2);
	assert_int_equal(wait_child(pid), 0);
	close(p[0]);

	/* A bad descriptor: -1 with errno. */
	errno = 0;
	assert_int_equal(proto_reader_read_fd(&r, p[0]), -1);
	assert_int_equal(errno, EBADF);
	proto_reader_free(&r);
	proto_buf_free(&out);
	free(big);
}

/* Regression (found by fuzz_proto): a zero-length feed into a reader that has never held data.
 * Runs in a child with stderr captured, so a sanitizer report is seen here instead of as noise. */
static void test_feed_empty_fresh_reader(void **state UNUSED)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(p[1], STDERR_FILENO);
		close(p[0]);
		close(p[1]);
		struct proto_reader r;
		struct proto_frame f;
		proto_reader_init(&r);
		int ok = proto_reader_feed(&r, "", 0) == 0 && proto_reader_next(&r, &f) == 0;
		proto_reader_free(&r);
		proto_reader_init(&r);
		ok = ok && proto_reader_feed(&r, NULL, 0) == 0 && proto_reader_next(&r, &f) == 0;
		proto_reader_free(&r);
		_exit(ok ? 0 : 1);
	}
	close(p[1]);
	struct strbuf out = STRBUF_INIT;
	char buf[4096];
	ssize_t n;
	while ((n = read(p[0], buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
		if (n > 0)
			strbuf_add(&out, buf, (size_t)n);
	close(p[0]);
	assert_int_equal(wait_child(pid), 0);
	/* fuzz_proto found it: memcpy to a NULL buffer for a zero-length feed (UBSan "runtime error").
	 * proto_reader_feed now returns early for len == 0. */
	assert_string_equal(strbuf_str(&out), "");
	strbuf_release(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_all_types),
		cmocka_unit_test(test_byte_at_a_time),
		cmocka_unit_test(test_wire_bytes),
		cmocka_unit_test(test_bad_headers),
		cmocka_unit_test(test_reader_bound),
		cmocka_unit_test(test_get_str),
		cmocka_unit_test(test_get_strv),
		cmocka_unit_test(test_exec_rejects),
		cmocka_unit_test(test_exec_reencode),
		cmocka_unit_test(test_exit),
		cmocka_unit_test(test_small_decoders),
		cmocka_unit_test(test_hello),
		cmocka_unit_test(test_netconf),
		cmocka_unit_test(test_type_names),
		cmocka_unit_test(test_read_fd_pipe),
		cmocka_unit_test(test_feed_empty_fresh_reader),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
