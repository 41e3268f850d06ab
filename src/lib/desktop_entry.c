/* Parsing guest desktop entries. The input comes from the guest, so every field is bounded and
 * checked character by character before it leaves this file; nothing here allocates by a length
 * the guest chose beyond the caps in desktop_entry.h. */
#include "desktop_entry.h"

#include "spec_desktop.h"

#include <ctype.h>
#include <string.h>

static const char *const main_categories[] = {
	"AudioVideo", "Audio",	"Video",   "Development", "Education", "Game",	  "Graphics",
	"Network",    "Office", "Science", "Settings",	  "System",    "Utility",
};

static size_t utf8_len(const unsigned char *p, size_t avail)
{
	static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
	size_t n;
	uint32_t cp;
	if (p[0] < 0x80)
		return 1;
	if ((p[0] & 0xe0) == 0xc0)
		n = 2, cp = p[0] & 0x1f;
	else if ((p[0] & 0xf0) == 0xe0)
		n = 3, cp = p[0] & 0x0f;
	else if ((p[0] & 0xf8) == 0xf0)
		n = 4, cp = p[0] & 0x07;
	else
		return 0;
	if (n > avail)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	/* C1 controls, line and paragraph separators, bidi overrides and isolates: no */
	if ((cp >= 0x80 && cp < 0xa0) || cp == 0x2028 || cp == 0x2029 || (cp >= 0x202a && cp <= 0x202e) ||
	    (cp >= 0x2066 && cp <= 0x2069) || cp == 0xfeff)
		return 0;
	return n;
}

void desktop_sanitize_text(const char *untrusted, size_t len, size_t max_chars, char *out, size_t outlen)
{
	const unsigned char *p = (const unsigned char *)untrusted;
	size_t o = 0, chars = 0;
	for (size_t i = 0; i < len && chars < max_chars;) {
		size_t n = utf8_len(p + i, len - i);
		if (n == 0 || (n == 1 && (p[i] < 0x20 || p[i] == 0x7f))) {
			/* one '?' for a whole refused sequence, its continuation bytes included */
			for (n = 1; p[i] >= 0xc0 && n < 4 && i + n < len && (p[i + n] & 0xc0) == 0x80;)
				n++;
			if (o + 2 > outlen)
				break;
			out[o++] = '?';
		} else {
			if (o + n + 1 > outlen)
				break;
			memcpy(out + o, p + i, n);
			o += n;
		}
		i += n;
		chars++;
	}
	out[o < outlen ? o : outlen - 1] = 0;
	/* no leading or trailing blanks */
	while (o > 0 && out[o - 1] == ' ')
		out[--o] = 0;
	size_t lead = strspn(out, " ");
	if (lead)
		memmove(out, out + lead, strlen(out + lead) + 1);
}

static bool chars_ok(const char *s, size_t n, const char *extra)
{
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && (!s[i] || !strchr(extra, s[i]))) /* strchr finds the NUL */
			return false;
	return true;
}

/* Exec's program: the first word, unquoted; field codes and arguments are dropped. */
static bool exec_program(const char *v, size_t n, char *out, size_t outlen)
{
	size_t i = 0;
	while (i < n && v[i] == ' ')
		i++;
	bool quoted = i < n && v[i] == '"';
	i += quoted;
	size_t start = i;
	while (i < n && (quoted ? v[i] != '"' : v[i] != ' '))
		i++;
	size_t len = i - start;
	const char *p = v + start;
	if (len == 0 || len >= outlen || !chars_ok(p, len, "._+/-") || p[0] == '-' || p[0] == '.')
		return false;
	for (size_t k = 0; k + 1 < len; k++)
		if (p[k] == '.' && p[k + 1] == '.')
			return false;
	if (memchr(p, '/', len) && p[0] != '/')
		return false; /* a relative path means nothing to `hutch run` */
	/* env VAR=x prog and flatpak-style launchers stay what they are: the program is the first word */
	memcpy(out, p, len);
	out[len] = 0;
	return true;
}

static void keep_categories(const char *v, size_t n, char *out, size_t outlen)
{
	size_t o = 0;
	out[0] = 0;
	for (size_t i = 0; i < n;) {
		size_t k = i;
		while (k < n && v[k] != ';')
			k++;
		for (size_t c = 0; c < ARRAY_SIZE(main_categories); c++) {
			size_t cl = strlen(main_categories[c]);
			if (cl == k - i && !memcmp(v + i, main_categories[c], cl) && o + cl + 2 < outlen &&
			    !strstr(out, main_categories[c])) {
				memcpy(out + o, main_categories[c], cl);
				o += cl;
				out[o++] = ';';
				out[o] = 0;
			}
		}
		i = k + 1;
	}
}

bool desktop_entry_parse_one(const char *untrusted_text, size_t len, struct guest_app *app)
{
	const char *p = untrusted_text, *end = untrusted_text + len;
	bool in_group = false, seen_group = false, is_app = false, hidden = false, has_name = false, has_exec = false;
	app->name[0] = app->program[0] = app->icon[0] = app->categories[0] = 0;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		size_t n = (size_t)(le - p);
		if (n && p[n - 1] == '\r')
			n--;
		if (n && p[0] == '[') {
			bool de = n == 15 && !memcmp(p, "[Desktop Entry]", 15);
			if (de && seen_group)
				return false; /* a second [Desktop Entry]: not a valid file */
			in_group = de;
			seen_group |= de;
		} else if (in_group && n && p[0] != '#') {
			const char *eq = memchr(p, '=', n);
			if (eq) {
				size_t kl = (size_t)(eq - p);
				while (kl && p[kl - 1] == ' ')
					kl--;
				const char *v = eq + 1;
				size_t vl = n - (size_t)(v - p);
				while (vl && *v == ' ')
					v++, vl--;
#define KEY(k) (kl == strlen(k) && !memcmp(p, k, kl))
				if (KEY("Type"))
					is_app = vl == 11 && !memcmp(v, "Application", 11);
				else if ((KEY("NoDisplay") || KEY("Hidden")) && vl == 4 && !memcmp(v, "true", 4))
					hidden = true;
				else if (KEY("Name") && !has_name) {
					desktop_sanitize_text(v, vl, GUEST_NAME_MAX, app->name, sizeof(app->name));
					has_name = app->name[0] != 0;
				} else if (KEY("Exec") && !has_exec)
					has_exec = exec_program(v, vl, app->program, sizeof(app->program));
				else if (KEY("Icon") && vl && vl < sizeof(app->icon) && chars_ok(v, vl, "._+-") &&
					 v[0] != '.') {
					memcpy(app->icon, v, vl);
					app->icon[vl] = 0;
				} else if (KEY("Categories"))
					keep_categories(v, vl, app->categories, sizeof(app->categories));
#undef KEY
			}
		}
		p = nl ? nl + 1 : end;
	}
	return is_app && !hidden && has_name && has_exec;
}

int desktop_entries_parse(const char *untrusted_buf, size_t len, struct guest_app **ret, size_t *ret_n)
{
	struct guest_app *apps = NULL;
	size_t n = 0;
	const char *p = untrusted_buf, *end = untrusted_buf + (len > GUEST_ENTRIES_BYTES_MAX ? 0 : len);
	static const char tag[] = "hutch-entry ";
	while (p < end && n < GUEST_APPS_MAX) {
		const char *nl = memchr(p, '\n', (size_t)(end - p) < 256 ? (size_t)(end - p) : 256);
		if (!nl || (size_t)(nl - p) <= sizeof(tag) - 1 || memcmp(p, tag, sizeof(tag) - 1))
			break;
		/* "FILE LEN": FILE is NAME.desktop, LEN decimal, at most GUEST_ENTRY_MAX */
		const char *file = p + sizeof(tag) - 1, *sp = memchr(file, ' ', (size_t)(nl - file));
		if (!sp)
			break;
		char num[16];
		size_t nl_len = (size_t)(nl - sp - 1);
		long long blen;
		if (nl_len == 0 || nl_len >= sizeof(num))
			break;
		memcpy(num, sp + 1, nl_len);
		num[nl_len] = 0;
		if (strspn(num, "0123456789") != nl_len || parse_ll(num, 0, GUEST_ENTRY_MAX, &blen) < 0)
			break;
		const char *body = nl + 1;
		if ((size_t)(end - body) < (size_t)blen + 1 || body[blen] != '\n')
			break;
		size_t fl = (size_t)(sp - file);
		struct guest_app app = {0};
		if (fl > 8 && fl - 8 < sizeof(app.id) && !memcmp(file + fl - 8, ".desktop", 8)) {
			memcpy(app.id, file, fl - 8);
			app.id[fl - 8] = 0;
			if (desktop_app_valid(app.id) && desktop_entry_parse_one(body, (size_t)blen, &app)) {
				bool dup = false;
				for (size_t i = 0; i < n && !dup; i++)
					dup = !strcmp(apps[i].id, app.id);
				if (!dup) {
					apps = xrealloc(apps, (n + 1) * sizeof(*apps));
					apps[n++] = app;
				}
			}
		}
		p = body + blen + 1;
	}
	*ret = apps;
	*ret_n = n;
	return 0;
}
