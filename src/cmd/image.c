/* hutch image ls | pull URL|NAME [--checksum SPEC] | rm [--force] IMAGE... | prune: the image cache,
 * and in ls and prune the root filesystems made from container images (oci_cache.h). */
#include "image.h"
#include "cmd.h"
#include "oci_cache.h"

#include <signal.h>
#include <string.h>

struct image_cli {
	const char *checksum;
	bool force;
};

static int image_pull(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	const char *checksum = ((struct image_cli *)opts)->checksum;
	_cleanup_free_ char *url = NULL, *catalog_checksum = NULL;
	if (image_resolve_catalog(argv[0], &url, &catalog_checksum, &c->err) < 0)
		return EXIT_ERR;
	if (!checksum)
		checksum = catalog_checksum;

	struct cmd_progress prog;
	const struct image_progress *ip = cmd_progress_init(c, &prog);
	_cleanup_free_ char *path = NULL;
	int r = image_fetch(&c->store, url, checksum, IMAGE_FETCH_REFRESH, ip, &path, &c->err);
	bool interrupted = cmd_progress_done(&prog);
	if (r < 0)
		return interrupted ? 130 : EXIT_ERR;
	if (c->json) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "url", json_object_new_string(url));
		json_object_object_add(o, "path", json_object_new_string(path));
		cmd_print_json(o);
	} else {
		printf("%s\n", path);
	}
	return EXIT_OK;
}

static const char *entry_state(const struct image_entry *e)
{
	if (e->path && e->digest)
		return "ready";
	if (e->part_size)
		return "partial";
	return e->path ? "unverified" : "empty";
}

/* Root filesystems made from container images (create --oci), after the downloaded images. */
static int oci_ls(struct cmd_ctx *c, json_object *arr)
{
	struct oci_cache_entry *v = NULL;
	size_t n = 0;
	if (oci_cache_list(&c->store, &v, &n, &c->err) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		const struct oci_cache_entry *e = &v[i];
		if (c->json) {
			json_object *o = json_object_new_object();
			json_object_object_add(o, "id", json_object_new_string(e->key + 7));
			json_object_object_add(o, "kind", json_object_new_string(e->bootc ? "oci-bootc" : "oci"));
			json_object_object_add(o, "url", NULL);
			json_object_object_add(o, "state", json_object_new_string("ready"));
			json_object_object_add(o, "digest", json_object_new_string(e->key));
			json_object_object_add(o, "path", json_object_new_string(e->dir));
			json_object_object_add(o, "size", json_object_new_int64((int64_t)e->size));
			json_object_object_add(o, "partial_bytes", json_object_new_int64(0));
			json_object_object_add(o, "used_by", cmd_json_strv(e->users));
			json_object_array_add(arr, o);
			continue;
		}
		char size[24];
		struct strbuf ub = STRBUF_INIT;
		for (size_t k = 0; e->users[k]; k++)
			strbuf_addf(&ub, "%s%s", k ? "," : "", e->users[k]);
		cmd_human(e->size, size, sizeof(size));
		printf("%-12.12s %10s %-8s %-16s %s %s\n", e->key + 7, size, "ready", ub.len ? ub.buf : "-",
		       e->bootc ? "container image (bootc)" : "container image", e->key);
		strbuf_release(&ub);
	}
	oci_cache_entries_free(v, n);
	return 0;
}

static int image_ls(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	struct image_entry *v = NULL;
	size_t n = 0;
	if (image_list(&c->store, &v, &n, &c->err) < 0)
		return EXIT_ERR;
	json_object *arr = c->json ? json_object_new_array() : NULL;
	if (!c->json)
		printf("%-12s %10s %-8s %-16s %s\n", "ID", "SIZE", "STATE", "USED BY", "URL");
	for (size_t i = 0; i < n; i++) {
		const struct image_entry *e = &v[i];
		_cleanup_strv_ char **users = NULL;
		if (image_users(&c->store, e, &users, &c->err) < 0) {
			image_entries_free(v, n);
			json_object_put(arr);
			return EXIT_ERR;
		}
		if (c->json) {
			json_object *o = json_object_new_object();
			json_object *u = cmd_json_strv(users);
			json_object_object_add(o, "id", json_object_new_string(e->id));
			json_object_object_add(o, "kind", json_object_new_string("image"));
			json_object_object_add(o, "url", e->url ? json_object_new_string(e->url) : NULL);
			json_object_object_add(o, "state", json_object_new_string(entry_state(e)));
			json_object_object_add(o, "digest", e->digest ? json_object_new_string(e->digest) : NULL);
			json_object_object_add(o, "path", e->path ? json_object_new_string(e->path) : NULL);
			json_object_object_add(o, "size", json_object_new_int64((int64_t)e->size));
			json_object_object_add(o, "partial_bytes", json_object_new_int64((int64_t)e->part_size));
			json_object_object_add(o, "used_by", u);
			json_object_array_add(arr, o);
			continue;
		}
		char size[24];
		struct strbuf ub = STRBUF_INIT;
		for (size_t k = 0; users[k]; k++)
			strbuf_addf(&ub, "%s%s", k ? "," : "", users[k]);
		cmd_human(e->path ? e->size : e->part_size, size, sizeof(size));
		printf("%-12.12s %10s %-8s %-16s %s\n", e->id, size, entry_state(e), ub.len ? ub.buf : "-",
		       e->url ? e->url : "?");
		strbuf_release(&ub);
	}
	image_entries_free(v, n);
	if (oci_ls(c, arr) < 0) {
		json_object_put(arr);
		return EXIT_ERR;
	}
	if (c->json)
		cmd_print_json(arr);
	return EXIT_OK;
}

static int image_rm(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	bool force = ((struct image_cli *)opts)->force;
	json_object *arr = c->json ? json_object_new_array() : NULL;
	int rc = EXIT_OK;
	for (int i = 0; i < argc; i++) {
		_cleanup_free_ char *id = NULL;
		if (image_remove(&c->store, argv[i], force, &id, &c->err) < 0) {
			rc = EXIT_ERR;
			break;
		}
		if (c->json)
			json_object_array_add(arr, json_object_new_string(id));
		else if (!c->quiet)
			printf("removed %s\n", argv[i]);
	}
	if (c->json && rc == EXIT_OK)
		cmd_print_json(arr);
	else
		json_object_put(arr);
	return rc;
}

static int image_prune_cmd(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	_cleanup_strv_ char **removed = NULL, **oci = NULL;
	if (image_prune(&c->store, &removed, &c->err) < 0 || oci_cache_prune(&c->store, &oci, &c->err) < 0)
		return EXIT_ERR;
	for (size_t i = 0; oci[i]; i++)
		removed = strv_push(removed, xasprintf("container image %s", oci[i]));
	if (c->json) {
		json_object *arr = cmd_json_strv(removed);
		json_object *o = json_object_new_object();
		json_object_object_add(o, "removed", arr);
		cmd_print_json(o);
	} else if (!c->quiet) {
		for (size_t i = 0; removed[i]; i++)
			printf("removed %s\n", removed[i]);
	}
	return EXIT_OK;
}

static const struct opt image_opts[] = {
	OPT_JSON(),
	OPT_END(),
};

static const struct opt pull_opts[] = {
	OPT_STRING(0, "checksum", struct image_cli, checksum, "SPEC", "the sha256:/sha512: digest or sums URL"),
	OPT_END(),
};

static const struct opt rm_opts[] = {
	OPT_BOOL('f', "force", struct image_cli, force, "even when a VM's disk is based on it"),
	OPT_END(),
};

static const struct verb image_subs[] = {
	VERB_SUB(.name = "ls", .fn = image_ls,
		 .summary = "list the cache: id, size, state, users, URL; then container images' disks"),
	VERB_SUB(.name = "pull", .fn = image_pull, .opts = pull_opts, .min_args = 1, .max_args = 1, .args = "URL|NAME",
		 .complete = "image", .summary = "fetch and verify an image"),
	VERB_SUB(.name = "rm", .fn = image_rm, .opts = rm_opts, .min_args = 1, .max_args = -1, .args = "IMAGE...",
		 .summary = "remove images (by URL, catalog name or id)"),
	VERB_SUB(.name = "prune", .fn = image_prune_cmd, .summary = "remove what no disk uses"),
	{0},
};

VERB_DEFINE(image, .name = "image", .opts = image_opts, .opts_size = sizeof(struct image_cli),
	    .summary = "manage the image cache", .subs = image_subs);
