#include "notify.h"

#include <string.h>

/* One UTF-8 sequence at s (n bytes left): its code point and length, or -1 when it is not valid
 * UTF-8 (overlong forms, surrogates and values past U+10FFFF included). */
static int utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	int len = (s[0] & 0xe0) == 0xc0 ? 2 : (s[0] & 0xf0) == 0xe0 ? 3 : (s[0] & 0xf8) == 0xf0 ? 4 : 0;
	if (!len || (size_t)len > n)
		return -1;
	uint32_t v = s[0] & (0x7f >> len);
	for (int i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return -1;
		v = (v << 6) | (s[i] & 0x3f);
	}
	static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
	if (v < min[len] || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return -1;
	*cp = v;
	return len;
}

static void put_cp(struct strbuf *sb, uint32_t cp)
{
	char b[4];
	if (cp < 0x80) {
		strbuf_addch(sb, (char)cp);
		return;
	}
	if (cp < 0x800) {
		b[0] = (char)(0xc0 | cp >> 6);
		b[1] = (char)(0x80 | (cp & 0x3f));
		strbuf_add(sb, b, 2);
	} else if (cp < 0x10000) {
		b[0] = (char)(0xe0 | cp >> 12);
		b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		b[2] = (char)(0x80 | (cp & 0x3f));
		strbuf_add(sb, b, 3);
	} else {
		b[0] = (char)(0xf0 | cp >> 18);
		b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		b[3] = (char)(0x80 | (cp & 0x3f));
		strbuf_add(sb, b, 4);
	}
}

static bool dropped_cp(uint32_t cp)
{
	return (cp < 0x20 && cp != '\n' && cp != '\t') || (cp >= 0x7f && cp < 0xa0) ||
	       (cp >= 0x200b && cp <= 0x200f) || /* zero-width characters and direction marks */
	       (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0xfeff;
}

static const struct {
	const char *name;
	char c;
} entities[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};

char *notify_text(const char *untrusted, size_t max_chars, bool one_line, bool escape)
{
	struct strbuf sb = STRBUF_INIT;
	const unsigned char *s = (const unsigned char *)(untrusted ? untrusted : "");
	size_t n = strlen((const char *)s), chars = 0;
	bool space = false; /* collapse runs of blanks that one_line makes */
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		if (s[i] == '<') { /* a tag: dropped up to its '>', or to the end when it has none */
			const unsigned char *gt = memchr(s + i, '>', n - i);
			i = gt ? (size_t)(gt - s) + 1 : n;
			continue;
		}
		int len = 1;
		cp = 0xfffd;
		if (s[i] == '&') {
			for (size_t e = 0; e < ARRAY_SIZE(entities); e++) {
				size_t el = strlen(entities[e].name);
				if (n - i >= el && !memcmp(s + i, entities[e].name, el)) {
					cp = (unsigned char)entities[e].c;
					len = (int)el;
					break;
				}
			}
			if (cp == 0xfffd)
				cp = '&';
		} else {
			int l = utf8_next(s + i, n - i, &cp);
			if (l < 0)
				cp = 0xfffd;
			else
				len = l;
		}
		i += (size_t)len;
		if (one_line && (cp == '\n' || cp == '\t'))
			cp = ' ';
		if (dropped_cp(cp) || (one_line && cp == ' ' && (space || chars == 0)))
			continue;
		space = cp == ' ';
		if (chars == max_chars) {
			put_cp(&sb, 0x2026);
			break;
		}
		chars++;
		if (escape && (cp == '&' || cp == '<' || cp == '>'))
			strbuf_adds(&sb, cp == '&' ? "&amp;" : cp == '<' ? "&lt;" : "&gt;");
		else
			put_cp(&sb, cp);
	}
	return strbuf_detach(&sb, NULL);
}

bool notify_icon_ok(const char *untrusted)
{
	size_t n = untrusted ? strlen(untrusted) : 0;
	if (n == 0 || n > NOTIFY_ICON_MAX || untrusted[0] == '.')
		return false;
	return strspn(untrusted, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

bool notify_rate_allow(struct notify_rate *r, uint64_t now_ms)
{
	if (!r->last_ms) {
		r->tokens = NOTIFY_BURST;
		r->last_ms = now_ms;
	} else if (now_ms > r->last_ms) {
		uint64_t add = (now_ms - r->last_ms) / NOTIFY_REFILL_MS;
		if (add) {
			r->tokens = add >= NOTIFY_BURST - r->tokens ? NOTIFY_BURST : r->tokens + (uint32_t)add;
			r->last_ms += add * NOTIFY_REFILL_MS;
		}
	}
	if (r->tokens == 0) {
		r->dropped++;
		return false;
	}
	r->tokens--;
	return true;
}
