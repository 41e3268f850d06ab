/* Container images: references, JSON, verified blobs, layers onto a directory. See oci.h. */
#include "oci.h"

#include <archive.h>
#include <archive_entry.h>
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <linux/openat2.h>
#include <openssl/evp.h>
#include <spawn.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "lazylib.h" /* after the library headers: routes their calls through the lazy tables */

extern char **environ;

#define PATH_MAX_OCI 4000 /* a longer entry name is refused */

/* ---- references ---- */

void oci_ref_release(struct oci_ref *r)
{
	if (!r)
		return;
	free(r->path);
	free(r->tag);
	r->path = r->tag = NULL;
}

int oci_ref_parse(const char *s, struct oci_ref *ret, struct hutch_error *err)
{
	static const struct {
		const char *prefix;
		enum oci_transport t;
	} kinds[] = {
		{"oci:", OCI_DIR},
		{"oci-archive:", OCI_ARCHIVE},
		{"docker-archive:", OCI_DOCKER_ARCHIVE},
		{"containers-storage:", OCI_CONTAINERS_STORAGE},
	};
	for (size_t i = 0; s && i < ARRAY_SIZE(kinds); i++) {
		size_t n = strlen(kinds[i].prefix);
		if (strncmp(s, kinds[i].prefix, n))
			continue;
		const char *rest = s + n;
		if (!*rest)
			return hutch_error_set(err, EINVAL, "image reference '%s' names nothing after '%s'", s,
					       kinds[i].prefix);
		struct oci_ref r = {.transport = kinds[i].t};
		const char *colon = kinds[i].t == OCI_DIR ? strrchr(rest, ':') : NULL;
		if (colon) {
			if (!colon[1] || colon == rest)
				return hutch_error_set(err, EINVAL, "image reference '%s' has an empty path or tag", s);
			r.path = xstrndup(rest, (size_t)(colon - rest));
			r.tag = xstrdup(colon + 1);
		} else {
			r.path = xstrdup(rest);
		}
		*ret = r;
		return 0;
	}
	return hutch_error_set(err, EINVAL,
			       "unknown image reference '%s' (use oci:DIR[:TAG], oci-archive:FILE, docker-archive:FILE "
			       "or containers-storage:NAME)",
			       s ? s : "");
}

bool oci_digest_valid(const char *d)
{
	if (!d || strncmp(d, "sha256:", 7) || strlen(d) != 7 + 64)
		return false;
	for (const char *p = d + 7; *p; p++)
		if (!isdigit((unsigned char)*p) && !(*p >= 'a' && *p <= 'f'))
			return false;
	return true;
}

/* ---- JSON ---- */

static void json_putp(json_object **o)
{
	if (*o)
		json_object_put(*o);
}
#define _cleanup_json_ _cleanup_(json_putp)

/* One JSON value filling the buffer (trailing white space allowed), at most OCI_JSON_MAX bytes. */
static int json_parse_bounded(const char *untrusted, size_t len, const char *what, json_object **ret,
			      struct hutch_error *err)
{
	if (len > OCI_JSON_MAX)
		return hutch_error_set(err, EFBIG, "%s is %zu bytes: more than %u", what, len, OCI_JSON_MAX);
	json_tokener *tok = json_tokener_new_ex(64);
	if (!tok)
		abort();
	json_object *o = json_tokener_parse_ex(tok, untrusted, (int)len);
	enum json_tokener_error je = json_tokener_get_error(tok);
	size_t end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (!o || je != json_tokener_success) {
		json_object_put(o);
		return hutch_error_set(err, EINVAL, "%s is not valid JSON: %s", what,
				       je == json_tokener_continue ? "it ends early" : json_tokener_error_desc(je));
	}
	for (size_t i = end; i < len; i++)
		if (!isspace((unsigned char)untrusted[i])) {
			json_object_put(o);
			return hutch_error_set(err, EINVAL, "%s has data after its JSON value", what);
		}
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return hutch_error_set(err, EINVAL, "%s is not a JSON object", what);
	}
	*ret = o;
	return 0;
}

static json_object *jget(json_object *o, const char *key, json_type t)
{
	json_object *v = NULL;
	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, t))
		return NULL;
	return v;
}

static const char *jstr(json_object *o, const char *key)
{
	json_object *v = jget(o, key, json_type_string);
	return v ? json_object_get_string(v) : NULL;
}

/* A JSON string array (strings only, no NUL inside) as a strv; NULL when absent or null. */
static int jstrv(json_object *o, const char *key, const char *what, char ***ret, struct hutch_error *err)
{
	json_object *v = NULL;
	*ret = NULL;
	if (!json_object_object_get_ex(o, key, &v) || !v)
		return 0;
	if (!json_object_is_type(v, json_type_array))
		return hutch_error_set(err, EINVAL, "%s: '%s' is not an array of strings", what, key);
	size_t n = json_object_array_length(v);
	char **sv = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		json_object *s = json_object_array_get_idx(v, i);
		if (!json_object_is_type(s, json_type_string) ||
		    strlen(json_object_get_string(s)) != (size_t)json_object_get_string_len(s)) {
			strv_free(sv);
			return hutch_error_set(err, EINVAL, "%s: '%s' is not an array of strings", what, key);
		}
		sv[i] = xstrdup(json_object_get_string(s));
	}
	*ret = sv;
	return 0;
}

void oci_descriptor_release(struct oci_descriptor *d)
{
	if (!d)
		return;
	free(d->media_type);
	free(d->digest);
	d->media_type = d->digest = NULL;
}

static int parse_descriptor(json_object *o, const char *what, struct oci_descriptor *ret, struct hutch_error *err)
{
	const char *mt = jstr(o, "mediaType"), *dg = jstr(o, "digest");
	json_object *sz = jget(o, "size", json_type_int);
	if (!json_object_is_type(o, json_type_object) || !dg || !sz)
		return hutch_error_set(err, EINVAL, "%s is not a descriptor (digest, size)", what);
	if (!oci_digest_valid(dg))
		return hutch_error_set(err, EINVAL, "%s has digest '%.80s': only sha256:<64 hex> is supported", what,
				       dg);
	int64_t size = json_object_get_int64(sz);
	if (size < 0)
		return hutch_error_set(err, EINVAL, "%s has a negative size", what);
	ret->media_type = mt ? xstrdup(mt) : NULL;
	ret->digest = xstrdup(dg);
	ret->size = (uint64_t)size;
	return 0;
}

#define MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"

static bool is_index_type(const char *mt) { return mt && (!strcmp(mt, MT_OCI_INDEX) || !strcmp(mt, MT_DOCKER_LIST)); }

static bool platform_ok(json_object *d)
{
	json_object *p = jget(d, "platform", json_type_object);
	if (!p)
		return true;
	const char *os = jstr(p, "os"), *arch = jstr(p, "architecture");
	return (!os || !strcmp(os, "linux")) && (!arch || !strcmp(arch, "amd64"));
}

int oci_parse_index(const char *untrusted, size_t len, const char *tag, struct oci_descriptor *ret,
		    struct hutch_error *err)
{
	_cleanup_json_ json_object *o = NULL;
	int r = json_parse_bounded(untrusted, len, "image index", &o, err);
	if (r < 0)
		return r;
	json_object *ms = jget(o, "manifests", json_type_array);
	if (!ms)
		return hutch_error_set(err, EINVAL, "image index has no 'manifests' array");
	size_t n = json_object_array_length(ms);
	json_object *pick = NULL;
	size_t candidates = 0;
	struct strbuf tags = STRBUF_INIT;
	for (size_t i = 0; i < n; i++) {
		json_object *d = json_object_array_get_idx(ms, i);
		const char *name = jstr(jget(d, "annotations", json_type_object), "org.opencontainers.image.ref.name");
		if (name && tags.len < 512)
			strbuf_addf(&tags, "%s'%.64s'", tags.len ? ", " : "", name);
		if (tag ? !(name && !strcmp(name, tag)) : !platform_ok(d))
			continue;
		if (tag && !platform_ok(d))
			continue;
		candidates++;
		pick = pick ? pick : d;
	}
	if (!pick) {
		r = tag ? hutch_error_set(err, ENOENT, "image index has no manifest tagged '%s'%s%s%s", tag,
					  tags.len ? " (it has " : "", strbuf_str(&tags), tags.len ? ")" : "")
			: hutch_error_set(err, ENOENT, "image index lists no linux/amd64 manifest");
		strbuf_release(&tags);
		return r;
	}
	if (!tag && candidates > 1) {
		r = hutch_error_set(err, EINVAL, "image index lists %zu manifests: name one with oci:DIR:TAG%s%s%s",
				    candidates, tags.len ? " (tags: " : "", strbuf_str(&tags), tags.len ? ")" : "");
		strbuf_release(&tags);
		return r;
	}
	strbuf_release(&tags);
	struct oci_descriptor d = {0};
	r = parse_descriptor(pick, "image index entry", &d, err);
	if (r < 0)
		return r;
	if (d.media_type && !is_index_type(d.media_type) && strcmp(d.media_type, MT_OCI_MANIFEST) &&
	    strcmp(d.media_type, MT_DOCKER_MANIFEST)) {
		r = hutch_error_set(err, EINVAL, "image index entry has media type '%.100s', not an image manifest",
				    d.media_type);
		oci_descriptor_release(&d);
		return r;
	}
	if (d.size > OCI_JSON_MAX) {
		oci_descriptor_release(&d);
		return hutch_error_set(err, EFBIG, "image index names a manifest of %llu bytes",
				       (unsigned long long)d.size);
	}
	*ret = d;
	return 0;
}

void oci_manifest_release(struct oci_manifest *m)
{
	if (!m)
		return;
	oci_descriptor_release(&m->config);
	for (size_t i = 0; i < m->n_layers; i++)
		oci_descriptor_release(&m->layers[i]);
	free(m->layers);
	memset(m, 0, sizeof(*m));
}

static bool layer_type_ok(const char *mt)
{
	static const char *const ok[] = {
		"application/vnd.oci.image.layer.v1.tar",
		"application/vnd.oci.image.layer.v1.tar+gzip",
		"application/vnd.oci.image.layer.v1.tar+zstd",
		"application/vnd.oci.image.layer.nondistributable.v1.tar",
		"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
		"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
		"application/vnd.docker.image.rootfs.diff.tar.gzip",
		"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
	};
	for (size_t i = 0; mt && i < ARRAY_SIZE(ok); i++)
		if (!strcmp(mt, ok[i]))
			return true;
	return false;
}

int oci_parse_manifest(const char *untrusted, size_t len, struct oci_manifest *ret, struct hutch_error *err)
{
	_cleanup_json_ json_object *o = NULL;
	int r = json_parse_bounded(untrusted, len, "image manifest", &o, err);
	if (r < 0)
		return r;
	json_object *sv = jget(o, "schemaVersion", json_type_int);
	if (!sv || json_object_get_int64(sv) != 2)
		return hutch_error_set(err, EINVAL, "image manifest has no schemaVersion 2");
	const char *mt = jstr(o, "mediaType");
	if (mt && strcmp(mt, MT_OCI_MANIFEST) && strcmp(mt, MT_DOCKER_MANIFEST))
		return hutch_error_set(err, EINVAL, "image manifest has media type '%.100s'", mt);
	json_object *cfg = jget(o, "config", json_type_object), *layers = jget(o, "layers", json_type_array);
	if (!cfg)
		return hutch_error_set(err, EINVAL, "image manifest has no config");
	if (!layers)
		return hutch_error_set(err, EINVAL, "image manifest has no layers array");
	struct oci_manifest m = {0};
	r = parse_descriptor(cfg, "image manifest's config", &m.config, err);
	if (r < 0)
		return r;
	if (m.config.size > OCI_JSON_MAX) {
		oci_manifest_release(&m);
		return hutch_error_set(err, EFBIG, "image config is %llu bytes: more than %u",
				       (unsigned long long)m.config.size, OCI_JSON_MAX);
	}
	size_t n = json_object_array_length(layers);
	if (n > OCI_LAYERS_MAX) {
		oci_manifest_release(&m);
		return hutch_error_set(err, EINVAL, "image manifest has %zu layers: more than %d", n, OCI_LAYERS_MAX);
	}
	m.layers = xcalloc(n ? n : 1, sizeof(*m.layers));
	for (size_t i = 0; i < n; i++) {
		char what[64];
		snprintf(what, sizeof(what), "image manifest's layer %zu", i + 1);
		r = parse_descriptor(json_object_array_get_idx(layers, i), what, &m.layers[i], err);
		if (r < 0) {
			oci_manifest_release(&m);
			return r;
		}
		m.n_layers++;
		if (!layer_type_ok(m.layers[i].media_type)) {
			r = hutch_error_set(err, EINVAL, "%s has media type '%.100s', not a tar layer", what,
					    m.layers[i].media_type ? m.layers[i].media_type : "");
			oci_manifest_release(&m);
			return r;
		}
	}
	*ret = m;
	return 0;
}

void oci_config_release(struct oci_config *c)
{
	if (!c)
		return;
	strv_free(c->entrypoint);
	strv_free(c->cmd);
	strv_free(c->env);
	strv_free(c->diff_ids);
	free(c->workdir);
	free(c->user);
	memset(c, 0, sizeof(*c));
}

/* RFC 3339 "2024-01-02T03:04:05[.frac](Z|+hh:mm)" to seconds; 0 when unreadable. */
static int64_t parse_created(const char *s)
{
	struct tm tm = {0};
	const char *p = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
	if (!p)
		return 0;
	time_t t = timegm(&tm);
	return t < 0 ? 0 : (int64_t)t;
}

int oci_parse_config(const char *untrusted, size_t len, struct oci_config *ret, struct hutch_error *err)
{
	_cleanup_json_ json_object *o = NULL;
	int r = json_parse_bounded(untrusted, len, "image config", &o, err);
	if (r < 0)
		return r;
	const char *os = jstr(o, "os"), *arch = jstr(o, "architecture");
	if (os && strcmp(os, "linux"))
		return hutch_error_set(err, EINVAL, "image config is for os '%.40s', not linux", os);
	if (arch && strcmp(arch, "amd64"))
		return hutch_error_set(err, EINVAL, "image config is for architecture '%.40s', not amd64", arch);
	json_object *rootfs = jget(o, "rootfs", json_type_object);
	if (!rootfs)
		return hutch_error_set(err, EINVAL, "image config has no rootfs");
	const char *type = jstr(rootfs, "type");
	if (!type || strcmp(type, "layers"))
		return hutch_error_set(err, EINVAL, "image config's rootfs has type '%.40s', not 'layers'",
				       type ? type : "");
	struct oci_config c = {0};
	r = jstrv(rootfs, "diff_ids", "image config's rootfs", &c.diff_ids, err);
	if (r == 0 && !c.diff_ids)
		r = hutch_error_set(err, EINVAL, "image config's rootfs has no diff_ids");
	for (size_t i = 0; r == 0 && c.diff_ids[i]; i++)
		if (!oci_digest_valid(c.diff_ids[i]))
			r = hutch_error_set(err, EINVAL,
					    "image config's rootfs.diff_ids[%zu] '%.80s' is not a sha256 digest", i,
					    c.diff_ids[i]);
	json_object *cc = jget(o, "config", json_type_object);
	if (r == 0 && cc) {
		const char *wd = jstr(cc, "WorkingDir"), *user = jstr(cc, "User");
		if ((r = jstrv(cc, "Entrypoint", "image config", &c.entrypoint, err)) == 0 &&
		    (r = jstrv(cc, "Cmd", "image config", &c.cmd, err)) == 0)
			r = jstrv(cc, "Env", "image config", &c.env, err);
		c.workdir = wd && *wd ? xstrdup(wd) : NULL;
		c.user = user && *user ? xstrdup(user) : NULL;
	}
	if (r < 0) {
		oci_config_release(&c);
		return r;
	}
	c.created = parse_created(jstr(o, "created"));
	*ret = c;
	return 0;
}

void oci_docker_manifest_release(struct oci_docker_manifest *m)
{
	if (!m)
		return;
	free(m->config);
	for (size_t i = 0; i < m->n_layers; i++)
		free(m->layers[i]);
	free(m->layers);
	memset(m, 0, sizeof(*m));
}

int oci_parse_docker_manifest(const char *untrusted, size_t len, const char *tag, struct oci_docker_manifest *ret,
			      struct hutch_error *err)
{
	if (len > OCI_JSON_MAX)
		return hutch_error_set(err, EFBIG, "manifest.json is %zu bytes: more than %u", len, OCI_JSON_MAX);
	/* manifest.json is an array: parse it wrapped so json_parse_bounded's object check holds */
	struct strbuf sb = STRBUF_INIT;
	strbuf_adds(&sb, "{\"m\":");
	strbuf_add(&sb, untrusted, len);
	strbuf_adds(&sb, "\n}");
	_cleanup_json_ json_object *o = NULL;
	int r = json_parse_bounded(sb.buf, sb.len, "docker-archive manifest.json", &o, err);
	strbuf_release(&sb);
	if (r < 0)
		return r;
	json_object *arr = jget(o, "m", json_type_array);
	if (!arr || json_object_array_length(arr) == 0)
		return hutch_error_set(err, EINVAL, "docker-archive manifest.json is not a non-empty array");
	size_t n = json_object_array_length(arr);
	json_object *pick = NULL;
	for (size_t i = 0; i < n && !pick; i++) {
		json_object *e = json_object_array_get_idx(arr, i);
		if (!tag) {
			pick = e;
			continue;
		}
		json_object *tags = jget(e, "RepoTags", json_type_array);
		for (size_t j = 0; tags && j < json_object_array_length(tags); j++) {
			json_object *t = json_object_array_get_idx(tags, j);
			if (json_object_is_type(t, json_type_string) && !strcmp(json_object_get_string(t), tag))
				pick = e;
		}
	}
	if (!pick)
		return hutch_error_set(err, ENOENT, "docker-archive has no image tagged '%s'", tag);
	if (!tag && n > 1)
		return hutch_error_set(err, EINVAL, "docker-archive holds %zu images: hutch reads one", n);
	const char *cfg = jstr(pick, "Config");
	if (!cfg || !*cfg)
		return hutch_error_set(err, EINVAL, "docker-archive manifest.json has no Config");
	char **layers = NULL;
	r = jstrv(pick, "Layers", "docker-archive manifest.json", &layers, err);
	if (r < 0)
		return r;
	if (!layers)
		return hutch_error_set(err, EINVAL, "docker-archive manifest.json has no Layers");
	size_t nl = strv_len(layers);
	if (nl > OCI_LAYERS_MAX) {
		strv_free(layers);
		return hutch_error_set(err, EINVAL, "docker-archive image has %zu layers: more than %d", nl,
				       OCI_LAYERS_MAX);
	}
	ret->config = xstrdup(cfg);
	ret->layers = layers;
	ret->n_layers = nl;
	return 0;
}

/* ---- paths beneath a root ---- */

/* An entry name as a clean relative path: leading "/" and "./", empty and "." components dropped.
 * "" is the root. -EINVAL for ".." anywhere or an over-long name. */
static int path_clean(const char *untrusted, char **ret)
{
	if (!untrusted || strlen(untrusted) > PATH_MAX_OCI)
		return -EINVAL;
	struct strbuf sb = STRBUF_INIT;
	const char *p = untrusted;
	while (*p) {
		size_t n = strcspn(p, "/");
		if (n == 2 && !strncmp(p, "..", 2)) {
			strbuf_release(&sb);
			return -EINVAL;
		}
		if (n && !(n == 1 && *p == '.')) {
			if (sb.len)
				strbuf_addch(&sb, '/');
			strbuf_add(&sb, p, n);
		}
		p += n;
		while (*p == '/')
			p++;
	}
	*ret = strbuf_detach(&sb, NULL);
	return 0;
}

/* PATH (clean, relative) beneath DFD, following relative links only while they stay beneath it. */
static int open_beneath(int dfd, const char *path, int flags)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC),
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
	};
	int fd = (int)syscall(SYS_openat2, dfd, *path ? path : ".", &how, sizeof(how));
	return fd < 0 ? -errno : fd;
}

/* Remove NAME in DFD, a whole tree when it is a directory; links are never followed. */
static int remove_at(int dfd, const char *name)
{
	if (unlinkat(dfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return -errno;
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -ENOMEM;
	}
	struct dirent *de;
	int r = 0;
	while (r == 0 && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			r = remove_at(dirfd(d), de->d_name);
	closedir(d);
	if (r == 0 && unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		r = -errno;
	return r;
}

/* ---- the tree: the image's ownership and modes by path ---- */

static uint64_t path_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

void oci_tree_release(struct oci_tree *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++)
		free(t->nodes[i].path);
	free(t->nodes);
	free(t->slots);
	memset(t, 0, sizeof(*t));
}

static ssize_t *tree_slot(const struct oci_tree *t, const char *path, bool for_insert)
{
	if (!t->n_slots)
		return NULL;
	size_t mask = t->n_slots - 1, i = (size_t)path_hash(path) & mask;
	ssize_t *tomb = NULL;
	for (;;) {
		ssize_t *s = &t->slots[i];
		if (*s == -1)
			return for_insert && tomb ? tomb : (for_insert ? s : NULL);
		if (*s == -2) {
			if (!tomb)
				tomb = s;
		} else if (!strcmp(t->nodes[*s].path, path)) {
			return s;
		}
		i = (i + 1) & mask;
	}
}

static void tree_rehash(struct oci_tree *t, size_t n_slots)
{
	free(t->slots);
	t->n_slots = n_slots;
	t->slots = xmalloc(n_slots * sizeof(ssize_t));
	for (size_t i = 0; i < n_slots; i++)
		t->slots[i] = -1;
	size_t live = 0;
	for (size_t i = 0; i < t->n; i++)
		if (t->nodes[i].path)
			t->nodes[live++] = t->nodes[i];
	t->n = live;
	for (size_t i = 0; i < t->n; i++)
		*tree_slot(t, t->nodes[i].path, true) = (ssize_t)i;
}

const struct oci_node *oci_tree_get(const struct oci_tree *t, const char *path)
{
	ssize_t *s = tree_slot(t, path, false);
	return s ? &t->nodes[*s] : NULL;
}

static struct oci_node *tree_put(struct oci_tree *t, const char *path)
{
	ssize_t *s = tree_slot(t, path, false);
	if (s)
		return &t->nodes[*s];
	if ((t->n + 1) * 2 > t->n_slots)
		tree_rehash(t, t->n_slots ? t->n_slots * 2 : 1024);
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 1024;
		t->nodes = xrealloc(t->nodes, t->cap * sizeof(*t->nodes));
	}
	struct oci_node *nd = &t->nodes[t->n];
	memset(nd, 0, sizeof(*nd));
	nd->path = xstrdup(path);
	*tree_slot(t, path, true) = (ssize_t)t->n++;
	return nd;
}

static void tree_del(struct oci_tree *t, const char *path)
{
	ssize_t *s = tree_slot(t, path, false);
	if (!s)
		return;
	struct oci_node *nd = &t->nodes[*s];
	if (S_ISREG(nd->mode) && t->bytes >= 4096)
		t->bytes -= 4096; /* the estimate only ever needs to be generous */
	free(nd->path);
	nd->path = NULL;
	*s = -2;
}

/* Delete PATH and everything beneath it; with below_layer, only the nodes under PATH written
 * before that layer (an opaque dir: PATH itself stays). */
static void tree_del_under(struct oci_tree *t, const char *path, bool include_self, unsigned below_layer)
{
	size_t n = strlen(path);
	for (size_t i = 0; i < t->n; i++) {
		struct oci_node *nd = &t->nodes[i];
		if (!nd->path)
			continue;
		bool self = include_self && !strcmp(nd->path, path);
		bool under = !strncmp(nd->path, path, n) && (n == 0 ? *nd->path != 0 : nd->path[n] == '/');
		if ((self || under) && (self || !below_layer || nd->layer < below_layer)) {
			_cleanup_free_ char *p = xstrdup(nd->path);
			tree_del(t, p);
		}
	}
}

static int node_cmp(const void *a, const void *b)
{
	return strcmp((*(const struct oci_node *const *)a)->path, (*(const struct oci_node *const *)b)->path);
}

const struct oci_node **oci_tree_sorted(const struct oci_tree *t, size_t *ret_n)
{
	const struct oci_node **v = xcalloc(t->n + 1, sizeof(*v));
	size_t k = 0;
	for (size_t i = 0; i < t->n; i++)
		if (t->nodes[i].path)
			v[k++] = &t->nodes[i];
	qsort(v, k, sizeof(*v), node_cmp);
	*ret_n = k;
	return v;
}

/* Each parent of PATH a real directory of the tree (made, root-owned 0755, when missing); a
 * parent the image made a link or a file is refused: what hutch adds lands where its name says. */
static int add_parents(struct oci_tree *t, int rootfd, const char *path, int64_t mtime, int *ret_fd,
		       struct hutch_error *err)
{
	_cleanup_close_ int fd = fcntl(rootfd, F_DUPFD_CLOEXEC, 3);
	for (const char *p = path, *slash; (slash = strchr(p, '/')); p = slash + 1) {
		_cleanup_free_ char *prefix = xstrndup(path, (size_t)(slash - path));
		_cleanup_free_ char *name = xstrndup(p, (size_t)(slash - p));
		struct oci_node *nd = tree_put(t, prefix);
		if (!nd->mode) {
			if (mkdirat(fd, name, 0700) < 0 && errno != EEXIST)
				return hutch_error_set(err, errno, "cannot create '/%s': %s", prefix, strerror(errno));
			*nd = (struct oci_node){
				.path = nd->path, .mode = S_IFDIR | 0755, .mtime = mtime, .on_disk = true};
		} else if (!S_ISDIR(nd->mode)) {
			return hutch_error_set(err, ENOTDIR, "the image has '/%s' as a link or file, not a directory",
					       prefix);
		}
		int next = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0)
			return hutch_error_set(err, errno, "cannot open '/%s': %s", prefix, strerror(errno));
		close(fd);
		fd = next;
	}
	*ret_fd = TAKE_FD(fd);
	return 0;
}

int oci_tree_add(struct oci_tree *t, const char *root, const struct oci_add *a, struct hutch_error *err)
{
	_cleanup_close_ int rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return hutch_error_set(err, errno, "cannot open '%s': %s", root, strerror(errno));
	_cleanup_close_ int dfd = -1;
	int r = add_parents(t, rootfd, a->path, a->mtime, &dfd, err);
	if (r < 0)
		return r;
	const char *base = strrchr(a->path, '/') ? strrchr(a->path, '/') + 1 : a->path;
	const struct oci_node *old = oci_tree_get(t, a->path);
	if (old && S_ISDIR(old->mode))
		return hutch_error_set(err, EISDIR, "the image has a directory at '/%s'", a->path);
	if (unlinkat(dfd, base, 0) < 0 && errno != ENOENT)
		return hutch_error_set(err, errno, "cannot replace '/%s': %s", a->path, strerror(errno));
	if (a->link) {
		if (symlinkat(a->link, dfd, base) < 0)
			return hutch_error_set(err, errno, "cannot link '/%s': %s", a->path, strerror(errno));
	} else {
		_cleanup_close_ int fd = openat(dfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0 || write_all(fd, a->data, a->len) < 0)
			return hutch_error_set(err, errno, "cannot write '/%s': %s", a->path, strerror(errno));
	}
	struct oci_node *nd = tree_put(t, a->path);
	*nd = (struct oci_node){.path = nd->path,
				.mode = (a->link ? S_IFLNK | 0777 : S_IFREG | (a->mode & 07777)),
				.uid = a->uid,
				.gid = a->gid,
				.mtime = a->mtime,
				.on_disk = true};
	t->bytes += a->len + 4096;
	return 0;
}

int oci_tree_add_dir(struct oci_tree *t, const char *root, const struct oci_add *a, struct hutch_error *err)
{
	_cleanup_close_ int rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return hutch_error_set(err, errno, "cannot open '%s': %s", root, strerror(errno));
	_cleanup_free_ char *with_slash = xasprintf("%s/", a->path); /* add_parents makes each component */
	_cleanup_close_ int dfd = -1;
	int r = add_parents(t, rootfd, with_slash, a->mtime, &dfd, err);
	if (r < 0)
		return r;
	struct oci_node *nd = tree_put(t, a->path);
	nd->mode = S_IFDIR | (a->mode & 07777);
	nd->uid = a->uid;
	nd->gid = a->gid;
	return 0;
}

/* ---- blobs ---- */

static void md_freep(EVP_MD_CTX **p)
{
	if (*p)
		EVP_MD_CTX_free(*p);
}

int oci_verify_blob(int fd, const char *digest, uint64_t size, bool check_size, const char *what,
		    struct hutch_error *err)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return hutch_error_set(err, errno, "%s: %s", what, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return hutch_error_set(err, EINVAL, "%s is not a regular file", what);
	if (check_size && (uint64_t)st.st_size != size)
		return hutch_error_set(err, EINVAL,
				       "%s is %llu bytes, but the manifest says %llu (truncated or changed)", what,
				       (unsigned long long)st.st_size, (unsigned long long)size);
	_cleanup_(md_freep) EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL))
		return hutch_error_set(err, ENOMEM, "cannot hash %s", what);
	const size_t bufsz = 1 << 20;
	_cleanup_free_ char *buf = xmalloc(bufsz);
	uint64_t off = 0;
	for (;;) {
		ssize_t n = pread(fd, buf, bufsz, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return hutch_error_set(err, errno, "reading %s: %s", what, strerror(errno));
		if (n == 0)
			break;
		EVP_DigestUpdate(md, buf, (size_t)n);
		off += (uint64_t)n;
	}
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int dn = 0;
	EVP_DigestFinal_ex(md, d, &dn);
	char hex[2 * EVP_MAX_MD_SIZE + 1];
	for (unsigned i = 0; i < dn; i++)
		snprintf(hex + 2 * i, 3, "%02x", d[i]);
	if (strcmp(hex, digest + 7))
		return hutch_error_set(err, EINVAL,
				       "%s has digest sha256:%.12s…, but the manifest says %.19s… "
				       "(corrupt or changed)",
				       what, hex, digest);
	return 0;
}

/* Open blob DIGEST of the layout at DFD (blobs/sha256/HEX), beneath it. */
static int open_blob(int dfd, const char *digest, const char *what, int *ret_fd, struct hutch_error *err)
{
	_cleanup_free_ char *p = xasprintf("blobs/sha256/%s", digest + 7);
	int fd = open_beneath(dfd, p, O_RDONLY);
	if (fd == -ENOENT)
		return hutch_error_set(err, ENOENT, "%s %.19s… is not in the image (blobs/sha256/%.12s… is missing)",
				       what, digest, digest + 7);
	if (fd < 0)
		return hutch_error_set(err, -fd, "%s %.19s…: %s", what, digest, strerror(-fd));
	*ret_fd = fd;
	return 0;
}

/* A small file beneath DFD (at most OCI_JSON_MAX bytes) into memory. */
static int read_beneath(int dfd, const char *path, char **ret, size_t *ret_len, struct hutch_error *err)
{
	_cleanup_close_ int fd = open_beneath(dfd, path, O_RDONLY);
	if (fd < 0)
		return hutch_error_set(err, -fd, "cannot open '%s' in the image: %s", path, strerror(-fd));
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return hutch_error_set(err, EINVAL, "'%s' in the image is not a regular file", path);
	if ((uint64_t)st.st_size > OCI_JSON_MAX)
		return hutch_error_set(err, EFBIG, "'%s' in the image is %llu bytes: more than %u", path,
				       (unsigned long long)st.st_size, OCI_JSON_MAX);
	char *buf = xmalloc((size_t)st.st_size + 1);
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t n = pread(fd, buf + got, (size_t)st.st_size - got, (off_t)got);
		if (n <= 0) {
			free(buf);
			return hutch_error_set(err, EIO, "cannot read '%s' in the image", path);
		}
		got += (size_t)n;
	}
	buf[got] = 0;
	*ret = buf;
	*ret_len = got;
	return 0;
}

/* A JSON blob, verified, into memory. */
static int read_blob(int dfd, const struct oci_descriptor *d, const char *what, char **ret, size_t *ret_len,
		     struct hutch_error *err)
{
	_cleanup_close_ int fd = -1;
	int r = open_blob(dfd, d->digest, what, &fd, err);
	if (r < 0)
		return r;
	_cleanup_free_ char *label = xasprintf("%s %.19s…", what, d->digest);
	r = oci_verify_blob(fd, d->digest, d->size, true, label, err);
	if (r < 0)
		return r;
	_cleanup_free_ char *p = xasprintf("blobs/sha256/%s", d->digest + 7);
	return read_beneath(dfd, p, ret, ret_len, err);
}

/* ---- applying a tar stream ---- */

struct unpack {
	int rootfd;
	struct oci_tree *tree;
	unsigned layer;	   /* 1-based */
	bool archive_only; /* unpacking an oci-archive/docker-archive: no devices, no ownership */
	size_t entries;
};

static void node_set(struct oci_node *nd, struct archive_entry *e, unsigned layer, bool on_disk)
{
	nd->mode = (uint32_t)archive_entry_mode(e);
	int64_t uid = archive_entry_uid(e), gid = archive_entry_gid(e);
	nd->uid = uid >= 0 && uid <= UINT32_MAX - 1 ? (uint32_t)uid : 0;
	nd->gid = gid >= 0 && gid <= UINT32_MAX - 1 ? (uint32_t)gid : 0;
	nd->mtime = archive_entry_mtime(e);
	nd->rdev_major = (uint32_t)archive_entry_rdevmajor(e);
	nd->rdev_minor = (uint32_t)archive_entry_rdevminor(e);
	nd->layer = layer;
	nd->on_disk = on_disk;
}

/* The parent dir of PATH beneath the root, made (mode 0755, root-owned in the image) when the
 * layer never named it. */
static int ensure_parent(struct unpack *u, const char *parent, int *ret_fd)
{
	int fd = open_beneath(u->rootfd, parent, O_RDONLY | O_DIRECTORY);
	if (fd != -ENOENT) {
		if (fd >= 0)
			*ret_fd = fd;
		return fd < 0 ? fd : 0;
	}
	_cleanup_free_ char *p = xstrdup(parent);
	char *slash = strrchr(p, '/');
	_cleanup_close_ int up = -1;
	const char *name = p;
	if (slash) {
		*slash = 0;
		name = slash + 1;
		int r = ensure_parent(u, p, &up);
		if (r < 0)
			return r;
	} else {
		up = fcntl(u->rootfd, F_DUPFD_CLOEXEC, 3);
	}
	if (mkdirat(up, name, 0700) < 0 && errno != EEXIST)
		return -errno;
	struct oci_node *nd = tree_put(u->tree, parent);
	if (!nd->mode) {
		nd->mode = S_IFDIR | 0755;
		nd->layer = u->layer;
		nd->on_disk = true;
	}
	fd = openat(up, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	*ret_fd = fd;
	return 0;
}

static int write_data(struct archive *a, int fd, int64_t size)
{
	const void *buf;
	size_t len;
	la_int64_t off;
	int ar;
	while ((ar = archive_read_data_block(a, &buf, &len, &off)) == ARCHIVE_OK) {
		const char *p = buf;
		while (len > 0) {
			ssize_t n = pwrite(fd, p, len, (off_t)off);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return n < 0 ? -errno : -EIO;
			p += n;
			len -= (size_t)n;
			off += n;
		}
	}
	if (ar != ARCHIVE_EOF)
		return -EIO;
	if (size >= 0 && ftruncate(fd, (off_t)size) < 0) /* a sparse tail */
		return -errno;
	return 0;
}

static int entry_fail(struct hutch_error *err, int code, const char *untrusted_name, const char *why)
{
	return hutch_error_set(err, code, "entry '%.200s' %s", untrusted_name, why);
}

static int apply_whiteout(struct unpack *u, int pfd, const char *parent, const char *name, const char *untrusted_name,
			  struct hutch_error *err)
{
	if (!strcmp(name, ".wh..wh..opq")) {
		/* An opaque dir: what lower layers put in PARENT is gone; this layer's entries stay. */
		size_t n = 0;
		const struct oci_node **v = oci_tree_sorted(u->tree, &n);
		size_t pl = strlen(parent);
		_cleanup_strv_ char **victims = NULL;
		for (size_t i = 0; i < n; i++) {
			const char *p = v[i]->path;
			bool child = pl ? !strncmp(p, parent, pl) && p[pl] == '/' && !strchr(p + pl + 1, '/')
					: *p && !strchr(p, '/');
			if (child && v[i]->layer < u->layer)
				victims = strv_push(victims, xstrdup(p));
		}
		free(v);
		for (size_t i = 0; victims && victims[i]; i++) {
			const char *base = strrchr(victims[i], '/');
			int r = remove_at(pfd, base ? base + 1 : victims[i]);
			if (r < 0)
				return entry_fail(err, -r, untrusted_name, "(opaque dir): cannot remove what it hides");
			tree_del_under(u->tree, victims[i], true, 0);
		}
		return 0;
	}
	if (!strncmp(name, ".wh..wh.", 8))
		return 0; /* aufs bookkeeping (.wh..wh.plnk and the like): not part of the image */
	const char *victim = name + 4;
	if (!*victim || !strcmp(victim, ".") || !strcmp(victim, ".."))
		return entry_fail(err, EINVAL, untrusted_name, "is a whiteout of nothing");
	int r = remove_at(pfd, victim);
	if (r < 0)
		return entry_fail(err, -r, untrusted_name, "(whiteout): cannot remove what it deletes");
	_cleanup_free_ char *vp = *parent ? xasprintf("%s/%s", parent, victim) : xstrdup(victim);
	tree_del_under(u->tree, vp, true, 0);
	return 0;
}

static int apply_entry(struct unpack *u, struct archive *a, struct archive_entry *e, struct hutch_error *err)
{
	/* names are bytes to the kernel: the UTF-8 form when there is one (in the C locale a pax
	 * header's UTF-8 path has no locale form), else the header's own bytes */
	const char *untrusted_name = archive_entry_pathname_utf8(e);
	if (!untrusted_name)
		untrusted_name = archive_entry_pathname(e);
	_cleanup_free_ char *path = NULL;
	if (!untrusted_name || path_clean(untrusted_name, &path) < 0)
		return entry_fail(err, EINVAL, untrusted_name ? untrusted_name : "", "escapes the root (a '..' in it)");
	if (strchr(path, '\n'))
		return entry_fail(err, EINVAL, untrusted_name, "has a newline in its name");
	mode_t type = archive_entry_filetype(e);
	const char *hardlink = archive_entry_hardlink_utf8(e);
	if (!hardlink)
		hardlink = archive_entry_hardlink(e);
	if (!*path) {
		if (type == AE_IFDIR && !u->archive_only)
			node_set(tree_put(u->tree, ""), e, u->layer, true);
		return 0;
	}
	_cleanup_free_ char *parent = xstrdup(path);
	char *slash = strrchr(parent, '/');
	const char *name = slash ? slash + 1 : path;
	if (slash)
		*slash = 0;
	else
		parent[0] = 0;
	if (!slash)
		name = path;
	else
		name = path + (slash - parent) + 1;
	_cleanup_close_ int pfd = -1;
	int r = ensure_parent(u, parent, &pfd);
	if (r == -EXDEV || r == -ELOOP)
		return entry_fail(err, EXDEV, untrusted_name, "escapes the root (through an absolute or outward link)");
	if (r == -ENOTDIR)
		return entry_fail(err, ENOTDIR, untrusted_name, "is beneath something that is not a directory");
	if (r < 0)
		return entry_fail(err, -r, untrusted_name, strerror(-r));
	if (!strncmp(name, ".wh.", 4) && !u->archive_only)
		return apply_whiteout(u, pfd, parent, name, untrusted_name, err);

	struct stat st;
	bool exists = fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
	if (exists && type == AE_IFDIR && S_ISDIR(st.st_mode) && !hardlink) {
		node_set(tree_put(u->tree, path), e, u->layer, true);
		return 0;
	}
	if (exists && (r = remove_at(pfd, name)) < 0)
		return entry_fail(err, -r, untrusted_name, "replaces something that cannot be removed");
	tree_del_under(u->tree, path, true, 0);

	if (hardlink) {
		_cleanup_free_ char *target = NULL;
		if (path_clean(hardlink, &target) < 0 || !*target)
			return entry_fail(err, EINVAL, untrusted_name, "is a hard link that escapes the root");
		const struct oci_node *tn = oci_tree_get(u->tree, target);
		if (!tn)
			return entry_fail(err, ENOENT, untrusted_name, "is a hard link to something not in the image");
		struct oci_node copy = *tn;
		if (tn->on_disk) {
			_cleanup_free_ char *tparent = xstrdup(target);
			char *ts = strrchr(tparent, '/');
			const char *tname = ts ? target + (ts - tparent) + 1 : target;
			if (ts)
				*ts = 0;
			else
				tparent[0] = 0;
			_cleanup_close_ int tfd = open_beneath(u->rootfd, tparent, O_RDONLY | O_DIRECTORY);
			if (tfd < 0 || linkat(tfd, tname, pfd, name, 0) < 0)
				return entry_fail(
					err, tfd < 0 ? -tfd : errno, untrusted_name,
					"is a hard link that cannot be made (it leaves the root, or names a dir)");
		}
		struct oci_node *nd = tree_put(u->tree, path);
		nd->mode = copy.mode;
		nd->uid = copy.uid;
		nd->gid = copy.gid;
		nd->mtime = copy.mtime;
		nd->rdev_major = copy.rdev_major;
		nd->rdev_minor = copy.rdev_minor;
		nd->layer = u->layer;
		nd->on_disk = copy.on_disk;
		return 0;
	}
	struct timespec ts[2] = {{.tv_sec = archive_entry_mtime(e)}, {.tv_sec = archive_entry_mtime(e)}};
	switch (type) {
	case AE_IFDIR:
		if (mkdirat(pfd, name, 0700) < 0)
			return entry_fail(err, errno, untrusted_name, strerror(errno));
		break;
	case AE_IFREG: {
		_cleanup_close_ int fd = openat(pfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0)
			return entry_fail(err, errno, untrusted_name, strerror(errno));
		int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : -1;
		r = write_data(a, fd, size);
		if (r < 0)
			return entry_fail(err, -r, untrusted_name,
					  r == -EIO ? "cannot be read: the layer is truncated or corrupt"
						    : "cannot be written");
		futimens(fd, ts);
		u->tree->bytes += (uint64_t)(size > 0 ? size : 0) + 4096;
		break;
	}
	case AE_IFLNK: {
		const char *target = archive_entry_symlink_utf8(e);
		if (!target)
			target = archive_entry_symlink(e);
		if (!target || !*target || strlen(target) > PATH_MAX_OCI)
			return entry_fail(err, EINVAL, untrusted_name, "is a link with no or an over-long target");
		/* A link is content: it is stored as is and never followed while unpacking. */
		if (symlinkat(target, pfd, name) < 0)
			return entry_fail(err, errno, untrusted_name, strerror(errno));
		utimensat(pfd, name, ts, AT_SYMLINK_NOFOLLOW);
		break;
	}
	case AE_IFCHR:
	case AE_IFBLK:
		if (u->archive_only)
			return entry_fail(err, EINVAL, untrusted_name, "is a device node in an image archive");
		/* recorded, never created: the root filesystem gets it */
		node_set(tree_put(u->tree, path), e, u->layer, false);
		return 0;
	case AE_IFIFO:
		if (u->archive_only)
			return entry_fail(err, EINVAL, untrusted_name, "is a fifo in an image archive");
		if (mkfifoat(pfd, name, 0600) < 0)
			return entry_fail(err, errno, untrusted_name, strerror(errno));
		break;
	default:
		return 0; /* sockets and the like: nothing an image carries */
	}
	node_set(tree_put(u->tree, path), e, u->layer, true);
	return 0;
}

/* Apply the tar stream in FD (any compression libarchive reads) onto u's root. */
static int apply_tar(struct unpack *u, int fd, struct hutch_error *err)
{
	struct archive *a = archive_read_new();
	if (!a)
		abort();
	archive_read_support_filter_all(a);
	archive_read_support_format_tar(a);
	archive_read_support_format_gnutar(a);
	int r = 0;
	if (lseek(fd, 0, SEEK_SET) < 0 || archive_read_open_fd(a, fd, 1 << 16) != ARCHIVE_OK) {
		r = hutch_error_set(err, EINVAL, "cannot be read as a tar stream: %s", archive_error_string(a));
		archive_read_free(a);
		return r;
	}
	struct archive_entry *e;
	int ar;
	/* ARCHIVE_WARN: a name with no form in the current locale (C under env -i); the entry is whole */
	while (r == 0 && ((ar = archive_read_next_header(a, &e)) == ARCHIVE_OK || ar == ARCHIVE_WARN)) {
		if (u->archive_only && ++u->entries > OCI_ARCHIVE_ENTRIES_MAX)
			r = hutch_error_set(err, EFBIG, "more than %d files in the archive", OCI_ARCHIVE_ENTRIES_MAX);
		else
			r = apply_entry(u, a, e, err);
	}
	if (r == 0 && ar != ARCHIVE_EOF)
		r = hutch_error_set(err, EIO, "the tar stream is truncated or corrupt: %s",
				    archive_error_string(a) ? archive_error_string(a) : "unexpected end");
	archive_read_free(a);
	return r;
}

int oci_unpack(const struct oci_image *img, const char *root, struct oci_tree *ret, struct hutch_error *err)
{
	int r = lazy_archive_load(err);
	if (r < 0 || (r = lazy_crypto_load(err)) < 0)
		return r;
	_cleanup_close_ int rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return hutch_error_set(err, errno, "cannot open '%s': %s", root, strerror(errno));
	struct oci_tree t = {0};
	struct oci_node *rn = tree_put(&t, "");
	rn->mode = S_IFDIR | 0755;
	rn->on_disk = true;
	struct unpack u = {.rootfd = rootfd, .tree = &t};
	for (size_t i = 0; i < img->n_layers && r == 0; i++) {
		const struct oci_layer *l = &img->layers[i];
		u.layer = (unsigned)i + 1;
		_cleanup_free_ char *what = xasprintf("layer %zu (%.19s…)", i + 1, l->digest);
		_cleanup_close_ int fd = open(l->path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			r = hutch_error_set(err, errno, "%s: %s", what, strerror(errno));
		else if ((r = oci_verify_blob(fd, l->digest, l->size, l->check_size, what, err)) == 0 &&
			 (r = apply_tar(&u, fd, err)) < 0)
			hutch_error_wrap(err, "%s", what);
	}
	if (r < 0) {
		oci_tree_release(&t);
		return r;
	}
	*ret = t;
	return 0;
}

/* ---- opening an image ---- */

void oci_image_release(struct oci_image *img)
{
	if (!img)
		return;
	free(img->key);
	free(img->config_digest);
	free(img->config_json);
	oci_config_release(&img->config);
	for (size_t i = 0; i < img->n_layers; i++) {
		free(img->layers[i].path);
		free(img->layers[i].digest);
	}
	free(img->layers);
	if (img->tmpdir)
		rm_rf(img->tmpdir);
	free(img->tmpdir);
	memset(img, 0, sizeof(*img));
}

/* An absolute path for a blob beneath DIR (resolved now, so unpack opens the file checked here). */
static char *blob_path(const char *dir, const char *digest) { return xasprintf("%s/blobs/sha256/%s", dir, digest + 7); }

static int open_layout(const char *dir, const char *tag, struct oci_image *img, struct hutch_error *err)
{
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return hutch_error_set(err, errno, "image layout '%s': %s", dir, strerror(errno));
	_cleanup_free_ char *ibuf = NULL;
	size_t ilen = 0;
	int r = read_beneath(dfd, "index.json", &ibuf, &ilen, err);
	if (r < 0)
		return r;
	struct oci_descriptor md = {0};
	r = oci_parse_index(ibuf, ilen, tag, &md, err);
	for (int depth = 0; r == 0 && is_index_type(md.media_type); depth++) {
		_cleanup_free_ char *nbuf = NULL;
		size_t nlen = 0;
		struct oci_descriptor next = {0};
		if (depth > 2)
			r = hutch_error_set(err, EINVAL, "image indexes nest too deep");
		else if ((r = read_blob(dfd, &md, "nested image index", &nbuf, &nlen, err)) == 0)
			r = oci_parse_index(nbuf, nlen, NULL, &next, err);
		oci_descriptor_release(&md);
		md = next;
	}
	if (r < 0) {
		oci_descriptor_release(&md);
		return r;
	}
	_cleanup_free_ char *mbuf = NULL, *cbuf = NULL;
	size_t mlen = 0, clen = 0;
	struct oci_manifest m = {0};
	r = read_blob(dfd, &md, "image manifest", &mbuf, &mlen, err);
	if (r == 0)
		r = oci_parse_manifest(mbuf, mlen, &m, err);
	if (r == 0)
		r = read_blob(dfd, &m.config, "image config", &cbuf, &clen, err);
	if (r == 0)
		r = oci_parse_config(cbuf, clen, &img->config, err);
	if (r == 0 && strv_len(img->config.diff_ids) != m.n_layers)
		r = hutch_error_set(err, EINVAL, "image config lists %zu diff_ids for %zu layers",
				    strv_len(img->config.diff_ids), m.n_layers);
	for (size_t i = 0; r == 0 && i < m.n_layers; i++) {
		/* present now: a manifest naming a missing blob fails before anything is unpacked */
		_cleanup_close_ int fd = -1;
		char what[32];
		snprintf(what, sizeof(what), "layer %zu", i + 1);
		r = open_blob(dfd, m.layers[i].digest, what, &fd, err);
	}
	if (r == 0) {
		img->config_json = TAKE_PTR(cbuf);
		img->config_len = clen;
		img->key = xstrdup(md.digest);
		img->config_digest = xstrdup(m.config.digest);
		img->layers = xcalloc(m.n_layers ? m.n_layers : 1, sizeof(*img->layers));
		for (size_t i = 0; i < m.n_layers; i++) {
			img->layers[i].path = blob_path(dir, m.layers[i].digest);
			img->layers[i].digest = xstrdup(m.layers[i].digest);
			img->layers[i].size = m.layers[i].size;
			img->layers[i].check_size = true;
		}
		img->n_layers = m.n_layers;
	}
	oci_manifest_release(&m);
	oci_descriptor_release(&md);
	return r;
}

static void sha256_of(const void *data, size_t len, char **ret)
{
	char hex[65];
	sha256_hex(data, len, hex);
	*ret = xasprintf("sha256:%s", hex);
}

static int open_docker(const char *dir, const char *tag, struct oci_image *img, struct hutch_error *err)
{
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return hutch_error_set(err, errno, "'%s': %s", dir, strerror(errno));
	_cleanup_free_ char *mbuf = NULL, *cbuf = NULL, *cpath = NULL;
	size_t mlen = 0, clen = 0;
	struct oci_docker_manifest m = {0};
	int r = read_beneath(dfd, "manifest.json", &mbuf, &mlen, err);
	if (r == 0)
		r = oci_parse_docker_manifest(mbuf, mlen, tag, &m, err);
	if (r == 0 && path_clean(m.config, &cpath) < 0)
		r = hutch_error_set(err, EINVAL, "docker-archive config path '%.100s' escapes the archive", m.config);
	if (r == 0)
		r = read_beneath(dfd, cpath, &cbuf, &clen, err);
	if (r == 0)
		r = oci_parse_config(cbuf, clen, &img->config, err);
	if (r == 0 && strv_len(img->config.diff_ids) != m.n_layers)
		r = hutch_error_set(err, EINVAL, "image config lists %zu diff_ids for %zu layers",
				    strv_len(img->config.diff_ids), m.n_layers);
	if (r < 0) {
		oci_docker_manifest_release(&m);
		return r;
	}
	sha256_of(cbuf, clen, &img->config_digest);
	img->config_json = TAKE_PTR(cbuf);
	img->config_len = clen;
	/* The identity: config and layer digests, in order (there is no manifest digest). */
	struct strbuf id = STRBUF_INIT;
	strbuf_addf(&id, "docker-archive\n%s\n", img->config_digest);
	img->layers = xcalloc(m.n_layers ? m.n_layers : 1, sizeof(*img->layers));
	for (size_t i = 0; r == 0 && i < m.n_layers; i++) {
		_cleanup_free_ char *lp = NULL;
		_cleanup_close_ int fd = -1;
		if (path_clean(m.layers[i], &lp) < 0 || !*lp)
			r = hutch_error_set(err, EINVAL, "docker-archive layer path '%.100s' escapes the archive",
					    m.layers[i]);
		else if ((fd = open_beneath(dfd, lp, O_RDONLY)) < 0)
			r = hutch_error_set(err, -fd, "docker-archive layer %zu '%.100s': %s", i + 1, lp,
					    strerror(-fd));
		if (r < 0)
			break;
		/* a layer here is an uncompressed tar: its digest is the diff_id. Its path is the one the
		 * check above resolved (a newer docker save links legacy names to blobs/). */
		char real[64];
		snprintf(real, sizeof(real), "/proc/self/fd/%d", fd);
		img->layers[i].path = realpath(real, NULL);
		if (!img->layers[i].path)
			img->layers[i].path = xasprintf("%s/%s", dir, lp);
		img->layers[i].digest = xstrdup(img->config.diff_ids[i]);
		img->layers[i].check_size = false;
		img->n_layers = i + 1;
		strbuf_addf(&id, "%s\n", img->config.diff_ids[i]);
	}
	if (r == 0)
		sha256_of(id.buf, id.len, &img->key);
	strbuf_release(&id);
	oci_docker_manifest_release(&m);
	return r;
}

/* Unpack the archive FILE (an OCI layout or a docker save) into a new dir under TMP_PARENT. */
static int unpack_archive(const char *file, const char *tmp_parent, char **ret_dir, struct hutch_error *err)
{
	int r = lazy_archive_load(err);
	if (r < 0)
		return r;
	_cleanup_close_ int fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return hutch_error_set(err, errno, "'%s': %s", file, strerror(errno));
	r = mkdir_p(tmp_parent, 0700);
	if (r < 0)
		return hutch_error_set(err, -r, "cannot create '%s': %s", tmp_parent, strerror(-r));
	_cleanup_free_ char *dir = xasprintf("%s/archive.XXXXXX", tmp_parent);
	if (!mkdtemp(dir))
		return hutch_error_set(err, errno, "cannot create a dir in '%s': %s", tmp_parent, strerror(errno));
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct oci_tree t = {0};
	struct unpack u = {.rootfd = dfd, .tree = &t, .layer = 1, .archive_only = true};
	r = dfd < 0 ? hutch_error_set(err, errno, "'%s': %s", dir, strerror(errno)) : apply_tar(&u, fd, err);
	oci_tree_release(&t);
	if (r < 0) {
		rm_rf(dir);
		return hutch_error_wrap(err, "'%s'", file);
	}
	*ret_dir = TAKE_PTR(dir);
	return 0;
}

/* containers-storage:NAME: podman (or skopeo) saves it as an oci-archive into DIR. */
static int save_from_storage(const char *name, const char *dir, char **ret_file, struct hutch_error *err)
{
	if (!*name || name[0] == '-')
		return hutch_error_set(err, EINVAL, "containers-storage name '%s' is not an image name", name);
	_cleanup_free_ char *podman = path_find("podman", NULL), *skopeo = path_find("skopeo", NULL);
	if (!podman && !skopeo)
		return hutch_error_set(
			err, ENOENT,
			"containers-storage:%s needs podman or skopeo (install the Debian package podman), "
			"or give the image as oci-archive:FILE (podman save --format oci-archive)",
			name);
	_cleanup_free_ char *file = xasprintf("%s/image.oci.tar", dir);
	_cleanup_free_ char *dst = xasprintf("oci-archive:%s", file), *src = xasprintf("containers-storage:%s", name);
	char *pargv[] = {podman, "image", "save", "--quiet", "--format", "oci-archive", "-o", file, (char *)name, NULL};
	char *sargv[] = {skopeo, "copy", "--quiet", src, dst, NULL};
	char **argv = podman ? pargv : sargv;
	_cleanup_free_ char *log = xasprintf("%s/save.log", dir);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	pid_t pid;
	int sr = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (sr != 0)
		return hutch_error_set(err, sr, "cannot run %s: %s", argv[0], strerror(sr));
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		char *out = NULL;
		size_t len = 0;
		read_file(log, 4096, &out, &len, NULL);
		while (out && len && (out[len - 1] == '\n'))
			out[--len] = 0;
		const char *last = out ? strrchr(out, '\n') : NULL;
		int r = hutch_error_set(err, EIO, "%s could not save '%s' from containers-storage: %s",
					podman ? "podman" : "skopeo", name,
					out && *out ? (last ? last + 1 : out) : "it failed");
		free(out);
		return r;
	}
	*ret_file = TAKE_PTR(file);
	return 0;
}

int oci_open(const struct oci_ref *ref, const char *tmp_parent, struct oci_image *ret, struct hutch_error *err)
{
	int r = lazy_crypto_load(err);
	if (r < 0)
		return r;
	struct oci_image img = {0};
	switch (ref->transport) {
	case OCI_DIR:
		r = open_layout(ref->path, ref->tag, &img, err);
		break;
	case OCI_ARCHIVE:
	case OCI_DOCKER_ARCHIVE:
		r = unpack_archive(ref->path, tmp_parent, &img.tmpdir, err);
		if (r == 0)
			r = ref->transport == OCI_ARCHIVE ? open_layout(img.tmpdir, NULL, &img, err)
							  : open_docker(img.tmpdir, NULL, &img, err);
		break;
	case OCI_CONTAINERS_STORAGE: {
		r = mkdir_p(tmp_parent, 0700);
		_cleanup_free_ char *dir = xasprintf("%s/storage.XXXXXX", tmp_parent);
		if (r < 0 || !mkdtemp(dir)) {
			r = hutch_error_set(err, errno, "cannot create a dir in '%s': %s", tmp_parent, strerror(errno));
			break;
		}
		_cleanup_free_ char *file = NULL;
		r = save_from_storage(ref->path, dir, &file, err);
		if (r == 0)
			r = unpack_archive(file, dir, &img.tmpdir, err);
		if (file)
			unlink(file);
		if (r == 0)
			r = open_layout(img.tmpdir, NULL, &img, err);
		if (img.tmpdir) {
			/* the layout lives on inside DIR, which release removes */
			free(img.tmpdir);
			img.tmpdir = TAKE_PTR(dir);
			if (r == 0) {
				for (size_t i = 0; i < img.n_layers; i++)
					if (access(img.layers[i].path, F_OK) < 0)
						r = hutch_error_set(err, ENOENT, "layer %zu vanished", i + 1);
			}
		} else {
			rm_rf(dir);
		}
		break;
	}
	default:
		r = hutch_error_set(err, EINVAL, "unknown image transport");
	}
	if (r < 0) {
		oci_image_release(&img);
		return r;
	}
	*ret = img;
	return 0;
}
