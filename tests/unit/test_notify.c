/* notify: MSG_NOTIFY's codec (src/proto/notification.c) and what the host does to a notification
 * before it shows it (src/lib/notify.c): text cleaning, icon names, the rate per VM. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "notification.h"
#include "notify.h"

#define UNUSED __attribute__((unused))

static void encode(struct proto_buf *b, const char *summary, const char *body)
{
	struct proto_notify n = {.id = 3,
				 .urgency = 2,
				 .expire_ms = -1,
				 .app = "mail",
				 .icon = "mail-unread",
				 .summary = (char *)summary,
				 .body = (char *)body};
	proto_encode_notify(b, &n);
}

static void test_round_trip(void **state UNUSED)
{
	uint8_t px[2 * 2 * 4] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
	struct proto_notify n = {.id = 9,
				 .urgency = 0,
				 .expire_ms = 5000,
				 .app = "a",
				 .icon = "",
				 .summary = "s",
				 .body = "b",
				 .width = 2,
				 .height = 2,
				 .has_alpha = 1,
				 .image = px,
				 .image_len = sizeof(px)};
	struct proto_buf b = {0};
	proto_encode_notify(&b, &n);
	struct proto_notify d;
	assert_int_equal(proto_decode_notify(b.data, b.len, &d), 0);
	assert_int_equal(d.id, 9);
	assert_int_equal(d.expire_ms, 5000);
	assert_string_equal(d.summary, "s");
	assert_int_equal(d.width, 2);
	assert_int_equal(d.image_len, sizeof(px));
	assert_memory_equal(d.image, px, sizeof(px));
	proto_notify_free(&d);
	/* every strict prefix, and one byte more, is refused */
	for (size_t i = 0; i < b.len; i++)
		assert_int_equal(proto_decode_notify(b.data, i, &d), -1);
	proto_put_u8(&b, 0);
	assert_int_equal(proto_decode_notify(b.data, b.len, &d), -1);
	proto_buf_free(&b);
}

static void test_bounds(void **state UNUSED)
{
	struct proto_buf b = {0};
	struct proto_notify d;
	/* the encoder cuts a long body to the bound, which the decoder then takes */
	char *big = malloc(PROTO_NOTIFY_BODY_MAX + 100);
	memset(big, 'x', PROTO_NOTIFY_BODY_MAX + 99);
	big[PROTO_NOTIFY_BODY_MAX + 99] = 0;
	encode(&b, "s", big);
	assert_int_equal(proto_decode_notify(b.data, b.len, &d), 0);
	assert_int_equal(strlen(d.body), PROTO_NOTIFY_BODY_MAX);
	proto_notify_free(&d);
	proto_buf_free(&b);
	free(big);
	/* an image that does not add up is left out by the encoder */
	uint8_t px[10] = {0};
	struct proto_notify n = {.app = "",
				 .icon = "",
				 .summary = "",
				 .body = "",
				 .width = 2,
				 .height = 2,
				 .image = px,
				 .image_len = sizeof(px)};
	proto_encode_notify(&b, &n);
	assert_int_equal(proto_decode_notify(b.data, b.len, &d), 0);
	assert_null(d.image);
	assert_int_equal(d.width, 0);
	proto_notify_free(&d);
	/* a hand-made one claiming a 1000x1000 image is refused before anything is copied */
	b.data[b.len - 13] = 0xe8, b.data[b.len - 12] = 0x03; /* width 1000 */
	assert_int_equal(proto_decode_notify(b.data, b.len, &d), -1);
	proto_buf_free(&b);
	/* urgency past critical */
	encode(&b, "s", "b");
	b.data[4] = 3;
	assert_int_equal(proto_decode_notify(b.data, b.len, &d), -1);
	proto_buf_free(&b);
}

static void text_is(const char *in, size_t max, bool one_line, bool escape, const char *want)
{
	char *t = notify_text(in, max, one_line, escape);
	assert_string_equal(t, want);
	free(t);
}

static void test_text(void **state UNUSED)
{
	text_is("<b>bold</b> and <a href=\"http://x\">link</a>", 100, true, false, "bold and link");
	text_is("a &lt;b&gt; &amp; &quot;c&quot; &nbsp;", 100, true, false, "a <b> & \"c\" &nbsp;");
	text_is("a &lt;b&gt; & c", 100, true, true, "a &lt;b&gt; &amp; c");
	text_is("unclosed <img src=x onerror=", 100, true, false, "unclosed ");
	/* a right-to-left override could turn "[NAME] ..." around; zero-width and controls go too */
	text_is("\xe2\x80\xae"
		"evil\xe2\x80\x8b\x1b[31m\x7f",
		100, true, false, "evil[31m");
	text_is("line1\nline2\t\tx", 100, true, false, "line1 line2 x");
	text_is("line1\nline2", 100, false, false, "line1\nline2");
	text_is("bad \xff\xfe utf8 \xc0\xaf", 100, true, false,
		"bad \xef\xbf\xbd\xef\xbf\xbd utf8 \xef\xbf\xbd\xef\xbf\xbd");
	text_is("\xed\xa0\x80", 100, true, false, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"); /* a surrogate */
	text_is("h\xc3\xa9llo world", 5, true, false, "h\xc3\xa9llo\xe2\x80\xa6");
	text_is("exact", 5, true, false, "exact");
	text_is(NULL, 5, true, false, "");
}

static void test_icon(void **state UNUSED)
{
	assert_true(notify_icon_ok("mail-unread"));
	assert_true(notify_icon_ok("org.gnome.Evolution"));
	assert_false(notify_icon_ok(""));
	assert_false(notify_icon_ok("/usr/share/icons/x.png"));
	assert_false(notify_icon_ok("../x"));
	assert_false(notify_icon_ok(".hidden"));
	assert_false(notify_icon_ok("file:///etc/passwd"));
	char long_name[NOTIFY_ICON_MAX + 2];
	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = 0;
	assert_false(notify_icon_ok(long_name));
}

static void test_rate(void **state UNUSED)
{
	struct notify_rate r = {0};
	uint64_t t = 1000000;
	int shown = 0;
	for (int i = 0; i < 10000; i++)
		shown += notify_rate_allow(&r, t);
	assert_int_equal(shown, NOTIFY_BURST);
	assert_int_equal(r.dropped, 10000 - NOTIFY_BURST);
	assert_false(notify_rate_allow(&r, t + NOTIFY_REFILL_MS - 1));
	assert_true(notify_rate_allow(&r, t + NOTIFY_REFILL_MS));
	assert_false(notify_rate_allow(&r, t + NOTIFY_REFILL_MS));
	/* a long quiet spell refills the burst, not more */
	shown = 0;
	for (int i = 0; i < 100; i++)
		shown += notify_rate_allow(&r, t + 1000 * NOTIFY_REFILL_MS);
	assert_int_equal(shown, NOTIFY_BURST);
	/* a clock that goes back gives nothing */
	assert_false(notify_rate_allow(&r, t));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip), cmocka_unit_test(test_bounds), cmocka_unit_test(test_text),
		cmocka_unit_test(test_icon),	   cmocka_unit_test(test_rate),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
