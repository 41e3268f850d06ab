#include "spec_libvirt.h"

#include "domain_xml.h"
#include "spec.h"
#include "ytree.h"

static int libvirt_snippets(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	if (v->type != Y_SEQ)
		return ytree_type_error(c, v, path, "a list of XML snippets");
	if (v->n > SPEC_LIBVIRT_SNIPPETS_MAX)
		return ytree_error(c, v, path, "at most %d snippets", SPEC_LIBVIRT_SNIPPETS_MAX);
	_cleanup_strv_ char **list = xcalloc(v->n + 1, sizeof(*list));
	for (size_t i = 0; i < v->n; i++) {
		const struct ynode *it = v->kids[i];
		_cleanup_free_ char *ipath = xasprintf("%s[%zu]", path, i);
		if (it->type != Y_SCALAR || ynode_is_null(it))
			return ytree_type_error(c, it, ipath, "an XML snippet (a string)");
#ifdef HAVE_LIBVIRT
		struct hutch_error e = {0};
		if (domain_xml_check_snippet(it->str, NULL, &e) < 0) {
			int r = ytree_error(c, it, ipath, "%s", e.msg ? e.msg : "not well-formed XML");
			hutch_error_clear(&e);
			return r;
		}
#endif
		list[i] = xstrdup(it->str);
	}
	struct vm_spec *s = obj;
	strv_free(s->libvirt_snippets);
	s->libvirt_snippets = v->n ? TAKE_PTR(list) : NULL;
	return 0;
}

static const struct ytree_field libvirt_fields[] = {
	{"snippets", libvirt_snippets},
};

int spec_libvirt(struct ytree_ctx *c, void *obj, const struct ynode *v, const char *path)
{
	return ytree_parse_fields(c, v, path, libvirt_fields, ARRAY_SIZE(libvirt_fields), obj);
}
