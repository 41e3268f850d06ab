#include "virt_ssh.h"

#include "qemu.h"
#include "ready.h"

#include <string.h>

#ifdef HAVE_LIBVIRT
#include <libvirt/libvirt.h>
#include <libxml/xmlwriter.h>

#include "lazyvirt.h"

/* One value of the URI's query (key=value&...), unescaped; NULL when absent. */
static char *query_value(const char *query, const char *key)
{
	size_t klen = strlen(key);
	for (const char *p = query; p && *p;) {
		const char *end = strchr(p, '&');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len > klen && !strncmp(p, key, klen) && p[klen] == '=') {
			/* unescaping only shortens: the value's own length is room enough */
			char *v = xcalloc(1, len - klen);
			if (!xmlURIUnescapeString(p + klen + 1, (int)(len - klen - 1), v)) {
				free(v);
				return NULL;
			}
			return v;
		}
		p = end ? end + 1 : NULL;
	}
	return NULL;
}

/* A word for the shell that runs ProxyCommand: single-quoted, quotes inside escaped. */
static void shell_word(struct strbuf *sb, const char *s)
{
	strbuf_adds(sb, " '");
	for (; *s; s++) {
		if (*s == '\'')
			strbuf_adds(sb, "'\\''");
		else
			strbuf_addf(sb, "%c", *s);
	}
	strbuf_adds(sb, "'");
}

int virt_ssh_proxy(const char *uri, char **ret, struct hutch_error *err)
{
	*ret = NULL;
	int r = lazy_xml_load(err);
	if (r < 0)
		return r;
	xmlURIPtr u = xmlParseURI(uri);
	if (!u)
		return hutch_error_set(err, EINVAL, "cannot parse the libvirt URI '%s'", uri);
	const char *plus = u->scheme ? strchr(u->scheme, '+') : NULL;
	if (!u->server || !u->server[0]) {
		r = 0; /* this host: its loopback is ours */
	} else if (!plus ||
		   (strcmp(plus, "+ssh") != 0 && strcmp(plus, "+libssh") != 0 && strcmp(plus, "+libssh2") != 0)) {
		r = hutch_error_set(
			err, ENOTSUP,
			"the VM runs on '%s' through '%s': hutch ssh reaches a remote VM only through an "
			"ssh URI (qemu+ssh://); use 'hutch exec' or 'hutch shell', which go through libvirt",
			u->server, u->scheme);
	} else {
		_cleanup_free_ char *cmd = query_value(u->query_raw, "command");
		_cleanup_free_ char *key = query_value(u->query_raw, "keyfile");
		struct strbuf sb = STRBUF_INIT;
		shell_word(&sb, cmd && cmd[0] ? cmd : "ssh");
		if (u->port > 0) {
			_cleanup_free_ char *port = xasprintf("%d", u->port);
			strbuf_adds(&sb, " -p");
			shell_word(&sb, port);
		}
		if (key && key[0]) {
			strbuf_adds(&sb, " -i");
			shell_word(&sb, key);
		}
		/* %h:%p: ssh fills in the guest's forward, 127.0.0.1:PORT as seen from that host */
		strbuf_adds(&sb, " -W %h:%p");
		_cleanup_free_ char *dest =
			u->user && u->user[0] ? xasprintf("%s@%s", u->user, u->server) : xstrdup(u->server);
		shell_word(&sb, dest);
		*ret = xstrdup(strbuf_str(&sb) + 1);
		strbuf_release(&sb);
	}
	xmlFreeURI(u);
	return r;
}
#else
int virt_ssh_proxy(const char *uri, char **ret, struct hutch_error *err)
{
	*ret = NULL;
	return hutch_error_set(err, ENOTSUP, "this hutch was built without the libvirt backend");
}
#endif

int virt_ssh_auto_forward(const struct store *st, struct vm_spec *spec, const char *name, struct hutch_error *err)
{
	struct forward f = {.guest = ready_ssh_forward_wanted(st, spec, name, spec->forward)};
	if (!f.guest)
		return 0;
	int r = forward_pick_free(&f, err);
	if (r < 0)
		return hutch_error_wrap(err, "a host port for ssh");
	spec->forward = strv_push(spec->forward, xasprintf("%u:%u/tcp", f.host, f.guest));
	return 0;
}
