#include "etc_hosts.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

char *etc_hosts_rename(const char *text, const char *old, const char *new_name)
{
	size_t ol = strlen(old), nl = strlen(new_name), tl = strlen(text);
	if (!ol || ol > 255 || nl > 255)
		return NULL;
	/* each match of old (at least one byte) grows by at most nl bytes */
	char *out = malloc(tl + (tl / ol + 1) * nl + 1);
	if (!out)
		return NULL;
	size_t len = 0;
	bool changed = false;
	for (const char *line = text; *line;) {
		size_t n = strcspn(line, "\n");
		bool loopback = n > 9 && !strncmp(line, "127.0.1.1", 9) && (line[9] == ' ' || line[9] == '\t');
		for (size_t i = 0; i < n;) {
			if (loopback && i > 9 && !name_char(line[i - 1]) && line[i - 1] != '.' && i + ol <= n &&
			    !strncmp(line + i, old, ol) && (i + ol == n || !name_char(line[i + ol]))) {
				memcpy(out + len, new_name, nl);
				len += nl;
				i += ol;
				changed = true;
			} else {
				out[len++] = line[i++];
			}
		}
		if (line[n] == '\n')
			out[len++] = '\n';
		line += n + (line[n] == '\n');
	}
	out[len] = 0;
	if (!changed) {
		free(out);
		return NULL;
	}
	return out;
}
