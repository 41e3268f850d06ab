/* Snapshots of a libvirt VM through libvirt's snapshot API (virt_snapshot.h). */
#include "virt_snapshot.h"

#include "snapshot.h"

#include <string.h>

#define SNAP_DISK "snapshots.qcow2"
#define SNAP_XML_MAX (4u << 20) /* the snapshot's XML embeds its domain's: generous, but bounded */
/* in the description of a snapshot whose agent answered when it was taken */
#define AGENT_MARK "; agent: ready"

char *virt_snapshot_disk_path(const struct vm *vm)
{
	if (vm->spec->source != SOURCE_TEMPLATE || vm->spec->disposable)
		return NULL;
	return store_vm_file(vm->store, vm->name, SNAP_DISK);
}

int virt_snapshot_disk_make(const struct vm *vm, struct hutch_error *err)
{
	_cleanup_free_ char *path = virt_snapshot_disk_path(vm);
	if (!path || access(path, F_OK) == 0)
		return 0;
	/* made beside, then linked into place: a half-made qcow2 would stop every later start, and one
	 * made by a racing start must not replace a disk a running domain already uses */
	_cleanup_free_ char *tmp = xasprintf("%s.%d.tmp", path, (int)getpid());
	char *argv[] = {"qemu-img", "create", "-q", "-f", "qcow2", tmp, "16M", NULL};
	int r = snapshot_qemu_img(argv, NULL, err);
	if (r == 0 && link(tmp, path) < 0 && errno != EEXIST)
		r = hutch_error_set(err, errno, "cannot link '%s': %s", path, strerror(errno));
	unlink(tmp);
	return r < 0 ? hutch_error_wrap(err, "the snapshot disk of '%s'", vm->name) : 0;
}

#ifdef HAVE_LIBVIRT

#include "backend_libvirt.h"
#include "ready.h"
#include "virt_channel.h"
#include "virt_conn.h"
#include "vmops.h"

#include <libvirt/libvirt.h>
#include <libxml/parser.h>
#include <libxml/xmlwriter.h>

#include "lazyvirt.h"

int virt_snapshot_xml(const char *tag, const char *vm_name, bool ram, bool agent, char **ret, struct hutch_error *err)
{
	int r = lazy_xml_load(err);
	if (r < 0)
		return r;
	xmlBufferPtr buf = xmlBufferCreate();
	xmlTextWriterPtr x = buf ? xmlNewTextWriterMemory(buf, 0) : NULL;
	if (!x) {
		if (buf)
			xmlBufferFree(buf);
		return hutch_error_set(err, ENOMEM, "cannot make an XML writer");
	}
	_cleanup_free_ char *desc = xasprintf("hutch snapshot of %s%s", vm_name, agent ? AGENT_MARK : "");
	xmlTextWriterSetIndent(x, 1);
	xmlTextWriterSetIndentString(x, BAD_CAST "  ");
	/* the disks keep libvirt's defaults: internal for a writable qcow2, none for the read-only seed */
	bool ok = xmlTextWriterStartElement(x, BAD_CAST "domainsnapshot") >= 0 &&
		  xmlTextWriterWriteElement(x, BAD_CAST "name", BAD_CAST tag) >= 0 &&
		  xmlTextWriterWriteElement(x, BAD_CAST "description", BAD_CAST desc) >= 0 &&
		  xmlTextWriterStartElement(x, BAD_CAST "memory") >= 0 &&
		  xmlTextWriterWriteAttribute(x, BAD_CAST "snapshot", BAD_CAST(ram ? "internal" : "no")) >= 0 &&
		  xmlTextWriterEndElement(x) >= 0 && xmlTextWriterEndElement(x) >= 0 &&
		  xmlTextWriterEndDocument(x) >= 0;
	xmlFreeTextWriter(x); /* flushes into buf */
	if (ok)
		*ret = xstrdup((const char *)xmlBufferContent(buf));
	xmlBufferFree(buf);
	return ok ? 0 : hutch_error_set(err, EIO, "cannot write the snapshot XML of '%s'", vm_name);
}

/* The text of an element's first text child, NULL when it has none. */
static const char *node_text(xmlNodePtr n)
{
	for (xmlNodePtr c = n->children; c; c = c->next)
		if (c->type == XML_TEXT_NODE && c->content)
			return (const char *)c->content;
	return NULL;
}

static const char *node_attr(xmlNodePtr n, const char *name)
{
	for (xmlAttrPtr a = n->properties; a; a = a->next)
		if (a->name && !strcmp((const char *)a->name, name) && a->children)
			return (const char *)a->children->content;
	return NULL;
}

int virt_snapshot_parse(const char *xml, struct virt_snapshot_info *ret, struct hutch_error *err)
{
	int r = lazy_xml_load(err);
	if (r < 0)
		return r;
	size_t len = xml ? strlen(xml) : 0;
	if (len == 0 || len > SNAP_XML_MAX)
		return hutch_error_set(err, EINVAL, "libvirt's snapshot XML is %s", len ? "too long" : "empty");
	xmlDocPtr doc = xmlReadMemory(xml, (int)len, "snapshot.xml", NULL,
				      XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_HUGE);
	xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL;
	if (!root || strcmp((const char *)root->name, "domainsnapshot") != 0) {
		if (doc)
			xmlFreeDoc(doc);
		return hutch_error_set(err, EINVAL, "libvirt's snapshot XML has no <domainsnapshot>");
	}
	struct virt_snapshot_info info = {0};
	const char *memory = NULL;
	for (xmlNodePtr n = root->children; n; n = n->next) {
		if (n->type != XML_ELEMENT_NODE)
			continue;
		const char *el = (const char *)n->name, *t = node_text(n);
		long long v;
		if (!strcmp(el, "creationTime") && t && parse_ll(t, 0, INT64_MAX, &v) == 0)
			info.created = v;
		else if (!strcmp(el, "state") && t)
			snprintf(info.state, sizeof(info.state), "%.*s", (int)strspn(t, "abcdefghijklmnopqrstuvwxyz-"),
				 t);
		else if (!strcmp(el, "memory"))
			memory = node_attr(n, "snapshot");
		else if (!strcmp(el, "description") && t) {
			size_t tl = strlen(t), ml = strlen(AGENT_MARK);
			info.agent = tl >= ml && !strcmp(t + tl - ml, AGENT_MARK);
		}
	}
	/* older libvirt wrote no <memory>: a running or paused domain's snapshot then held its RAM */
	info.ram = memory ? !strcmp(memory, "internal") || !strcmp(memory, "external")
			  : !strcmp(info.state, "running") || !strcmp(info.state, "paused");
	xmlFreeDoc(doc);
	*ret = info;
	return 0;
}

/* ---- the verbs ---- */

struct snap_ctx {
	virConnectPtr conn;
	virDomainPtr dom;
	char *domain;
};

static void ctx_close(struct snap_ctx *c)
{
	libvirt_domain_close(c->conn, c->dom);
	free(c->domain);
	memset(c, 0, sizeof(*c));
}

static int ctx_open(struct vm *vm, struct snap_ctx *ret, struct hutch_error *err)
{
	void *conn = NULL, *dom = NULL;
	int r = libvirt_domain_lookup(vm, &conn, &dom, err);
	if (r < 0)
		return r;
	*ret = (struct snap_ctx){.conn = conn, .dom = dom, .domain = xstrdup(virDomainGetName(dom))};
	return 0;
}

static bool dom_active(virDomainPtr dom)
{
	int state = VIR_DOMAIN_NOSTATE, reason = 0;
	if (virDomainGetState(dom, &state, &reason, 0) < 0)
		return false;
	return state != VIR_DOMAIN_SHUTOFF && state != VIR_DOMAIN_CRASHED && state != VIR_DOMAIN_NOSTATE;
}

static int snap_info(virDomainSnapshotPtr s, struct virt_snapshot_info *ret, struct hutch_error *err)
{
	char *xml = virDomainSnapshotGetXMLDesc(s, 0);
	if (!xml)
		return hutch_error_set(err, EIO, "cannot read snapshot '%s': %s", virDomainSnapshotGetName(s),
				       virt_last_error("unknown error"));
	int r = virt_snapshot_parse(xml, ret, err);
	free(xml);
	return r;
}

/* TAG of the domain, NULL (and libvirt's error reset) when it has none. */
static virDomainSnapshotPtr snap_find(struct snap_ctx *c, const char *tag)
{
	virDomainSnapshotPtr s = virDomainSnapshotLookupByName(c->dom, tag, 0);
	if (!s)
		virResetLastError();
	return s;
}

/* Whether the agent answers HELLO (a channel held by another session: it is up). Closed again
 * before the snapshot, which then holds no host connection of ours. */
static bool agent_answers(struct snap_ctx *c)
{
	int fd = -1;
	struct hutch_error e = {0};
	int r = virt_channel_open(c->conn, c->dom, 5000, &fd, NULL, 0, &e);
	hutch_error_clear(&e);
	if (r == 0)
		close(fd);
	return r == 0 || r == -EBUSY;
}

int virt_snapshot_save(struct vm *vm, const char *tag, struct hutch_error *err)
{
	struct snap_ctx c;
	int r = ctx_open(vm, &c, err);
	if (r < 0)
		return r;
	bool active = dom_active(c.dom), micro = vm->spec->source == SOURCE_TEMPLATE;
	_cleanup_free_ char *xml = NULL;
	if (!active && micro)
		r = hutch_error_set(err, ENOTSUP,
				    "'%s' is stopped, and a micro VM has no disk: start it to snapshot its memory",
				    vm->name);
	else
		r = virt_snapshot_xml(tag, vm->name, active, active && agent_answers(&c), &xml, err);
	/* a tag saved again replaces the old snapshot, as on the qemu backend */
	virDomainSnapshotPtr old = r == 0 ? snap_find(&c, tag) : NULL;
	if (old) {
		if (virDomainSnapshotDelete(old, 0) < 0)
			r = hutch_error_set(err, EIO, "libvirt could not delete the old snapshot '%s' of '%s': %s", tag,
					    c.domain, virt_last_error("unknown error"));
		virDomainSnapshotFree(old);
	}
	if (r == 0) {
		virDomainSnapshotPtr s = virDomainSnapshotCreateXML(c.dom, xml, VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC);
		if (s)
			virDomainSnapshotFree(s);
		else {
			const char *why = virt_last_error("unknown error");
			r = micro && strstr(why, "all disks")
				    ? hutch_error_set(err, ENOTSUP,
						      "libvirt has no disk of '%s' to keep its RAM in: it was started "
						      "before hutch gave micro VMs one; stop and start it, then save",
						      c.domain)
				    : hutch_error_set(err, EIO, "libvirt could not create the snapshot of '%s': %s",
						      c.domain, why);
		}
	}
	ctx_close(&c);
	return r;
}

/* The restored agent answers HELLO on a fresh channel: the VM is usable once it has (bounded; a
 * snapshot taken before the agent was up has none to come back). */
static void wait_agent_back(struct snap_ctx *c, uint64_t ms)
{
	int fd = -1;
	struct hutch_error e = {0};
	if (virt_channel_open(c->conn, c->dom, ms, &fd, NULL, 0, &e) == 0)
		close(fd);
	hutch_error_clear(&e);
}

int virt_snapshot_restore(struct vm *vm, const char *tag, struct hutch_error *err)
{
	struct snap_ctx c;
	int r = ctx_open(vm, &c, err);
	if (r < 0)
		return r;
	virDomainSnapshotPtr s = snap_find(&c, tag);
	struct virt_snapshot_info info = {0};
	if (!s)
		r = hutch_error_set(err, ENOENT, "'%s' has no snapshot '%s' (see 'hutch snapshot ls %s')", vm->name,
				    tag, vm->name);
	else
		r = snap_info(s, &info, err);
	bool active = r == 0 && dom_active(c.dom);
	if (r == 0 && !info.ram && active)
		r = hutch_error_set(err, EBUSY,
				    "snapshot '%s' of '%s' is disk-only: stop the VM to restore it (a running VM "
				    "restores snapshots with RAM)",
				    tag, vm->name);
	if (r == 0 && info.ram && !active) {
		/* started by hutch first, with all it keeps beside a running domain, then restored in place
		 * (the snapshot replaces whatever the boot does: no need to wait for more than QEMU) */
		struct start_opts so = {.timeout_ms = 120000, .wait = WAIT_NONE};
		struct start_result sr;
		r = vm_start(vm->store, vm->name, &so, &sr, err);
		if (r == -EALREADY) {
			hutch_error_clear(err);
			r = 0;
		}
		if (r < 0)
			r = hutch_error_wrap(err, "starting it");
	}
	/* a running snapshot runs again even when it was taken paused; without FORCE, libvirt refuses a
	 * snapshot whose domain no longer fits the running one rather than killing it */
	if (r == 0 && virDomainRevertToSnapshot(s, info.ram ? VIR_DOMAIN_SNAPSHOT_REVERT_RUNNING : 0) < 0)
		r = hutch_error_set(err, EIO, "libvirt could not revert '%s' to the snapshot: %s", c.domain,
				    virt_last_error("unknown error"));
	if (s)
		virDomainSnapshotFree(s);
	if (r == 0 && info.ram && info.agent)
		wait_agent_back(&c, 60000);
	ctx_close(&c);
	return r;
}

int virt_snapshot_remove(struct vm *vm, const char *tag, struct hutch_error *err)
{
	struct snap_ctx c;
	int r = ctx_open(vm, &c, err);
	if (r < 0)
		return r;
	virDomainSnapshotPtr s = snap_find(&c, tag);
	if (!s)
		r = hutch_error_set(err, ENOENT, "'%s' has no snapshot '%s'", vm->name, tag);
	else if (virDomainSnapshotDelete(s, 0) < 0)
		r = hutch_error_set(err, EIO, "libvirt could not delete the snapshot of '%s': %s", c.domain,
				    virt_last_error("unknown error"));
	if (s)
		virDomainSnapshotFree(s);
	ctx_close(&c);
	return r;
}

/* The qcow2 that holds the snapshots' data, as seen from here (a remote URI's is elsewhere). */
static json_object *local_sizes(struct vm *vm)
{
	_cleanup_free_ char *file = virt_snapshot_disk_path(vm);
	if (!file && vm->spec->source == SOURCE_IMAGE)
		file = store_vm_file(vm->store, vm->name, "disk.qcow2");
	json_object *arr = NULL;
	struct hutch_error e = {0};
	if (file && access(file, R_OK) == 0 && snapshot_qcow2_list(file, &arr, &e) < 0)
		arr = NULL;
	hutch_error_clear(&e);
	return arr;
}

static int by_date(const void *a, const void *b)
{
	json_object *x = *(json_object *const *)a, *y = *(json_object *const *)b, *v;
	int64_t dx = json_object_object_get_ex(x, "date", &v) ? json_object_get_int64(v) : 0;
	int64_t dy = json_object_object_get_ex(y, "date", &v) ? json_object_get_int64(v) : 0;
	return dx < dy ? -1 : dx > dy;
}

int virt_snapshot_list(struct vm *vm, json_object **ret_array, struct hutch_error *err)
{
	struct snap_ctx c;
	int r = ctx_open(vm, &c, err);
	if (r < 0)
		return r;
	virDomainSnapshotPtr *snaps = NULL;
	int n = virDomainListAllSnapshots(c.dom, &snaps, 0);
	if (n < 0) {
		r = hutch_error_set(err, EIO, "libvirt could not list the snapshots of '%s': %s", c.domain,
				    virt_last_error("unknown error"));
		ctx_close(&c);
		return r;
	}
	json_object *sizes = local_sizes(vm), *arr = json_object_new_array();
	for (int i = 0; i < n; i++) {
		struct virt_snapshot_info info;
		const char *tag = virDomainSnapshotGetName(snaps[i]);
		if (r == 0 && (r = snap_info(snaps[i], &info, err)) == 0) {
			json_object *o = json_object_new_object(), *q = NULL, *v;
			for (size_t k = 0; sizes && k < json_object_array_length(sizes) && !q; k++) {
				json_object *e = json_object_array_get_idx(sizes, k);
				if (json_object_object_get_ex(e, "tag", &v) && !strcmp(json_object_get_string(v), tag))
					q = e;
			}
			json_object_object_add(o, "tag", json_object_new_string(tag));
			int64_t bytes =
				q && json_object_object_get_ex(q, "vm_state_bytes", &v) ? json_object_get_int64(v) : 0;
			json_object_object_add(o, "vm_state_bytes", json_object_new_int64(bytes));
			json_object_object_add(o, "ram", json_object_new_boolean(info.ram));
			json_object_object_add(o, "date", json_object_new_int64(info.created));
			int64_t clock =
				q && json_object_object_get_ex(q, "vm_clock_s", &v) ? json_object_get_int64(v) : 0;
			json_object_object_add(o, "vm_clock_s", json_object_new_int64(clock));
			json_object_object_add(o, "state", json_object_new_string(info.state));
			json_object_array_add(arr, o);
		}
		virDomainSnapshotFree(snaps[i]);
	}
	free(snaps);
	json_object_put(sizes);
	ctx_close(&c);
	if (r < 0) {
		json_object_put(arr);
		return r;
	}
	json_object_array_sort(arr, by_date);
	*ret_array = arr;
	return 0;
}

#else /* built without libvirt: no VM runs on it (backend_choose refuses) */

static int no_libvirt(struct hutch_error *err)
{
	return hutch_error_set(err, ENOTSUP, "this hutch was built without the libvirt backend");
}

int virt_snapshot_xml(const char *tag, const char *vm_name, bool ram, bool agent, char **ret, struct hutch_error *err)
{
	return no_libvirt(err);
}

int virt_snapshot_parse(const char *xml, struct virt_snapshot_info *ret, struct hutch_error *err)
{
	return no_libvirt(err);
}

int virt_snapshot_save(struct vm *vm, const char *tag, struct hutch_error *err) { return no_libvirt(err); }
int virt_snapshot_restore(struct vm *vm, const char *tag, struct hutch_error *err) { return no_libvirt(err); }
int virt_snapshot_remove(struct vm *vm, const char *tag, struct hutch_error *err) { return no_libvirt(err); }
int virt_snapshot_list(struct vm *vm, json_object **ret_array, struct hutch_error *err) { return no_libvirt(err); }
#endif
