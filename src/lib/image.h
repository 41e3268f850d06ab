/* Cloud images: checksum specs and sums files, a verified download cache under
 * cache/images/<sha256(url)>/{image,digest,url,image.part,lock,by-digest/}, and qcow2 overlays on a
 * cached base. Three rooms: image_fetch.c (checksums, sums files, catalog, HTTP download),
 * image_cache.c (the verified cache: ls, rm, prune) and disk.c (overlays with qemu-img).
 * Nothing here prints: progress goes through a callback the caller passes in. */
#pragma once
#include <signal.h>

#include "store.h"
#include "util.h"

#define IMAGE_SUMS_MAX (1024 * 1024) /* a larger sums file is refused */
#define IMAGE_SUMS_LINE_MAX 4096     /* and so is a sums file with a longer line */
#define IMAGE_MAX_REDIRECTS 5
#define IMAGE_STALL_SECONDS 30 /* below 1 KiB/s for this long is a stall (env HUTCH_STALL_SECONDS) */

enum image_algo { IMAGE_SHA256 = 0, IMAGE_SHA512 };

const char *image_algo_name(enum image_algo a); /* "sha256" | "sha512" */
size_t image_algo_hexlen(enum image_algo a);	/* 64 | 128 */

/* A parsed checksum spec: exactly one of hex and sums_url is set. */
struct image_checksum {
	enum image_algo algo;
	char *hex;	/* lowercase digest */
	char *sums_url; /* http(s) URL of a sums file that names the image */
};

/* "sha256:HEX" | "sha512:HEX" | "sha256:URL-of-SUMS" | "sha512:URL-of-SUMS". -EINVAL with a message
 * naming the bad part (unknown algorithm, wrong length, non-hex digit, non-http URL). */
int image_checksum_parse(const char *spec, struct image_checksum *ret, struct hutch_error *err);
void image_checksum_release(struct image_checksum *c);

/* Find FILENAME's digest in a sums file: GNU ("HEX  name", "HEX *name", "\\"-escaped names) or BSD
 * ("SHA256 (name) = HEX"), CRLF or LF, comments and PGP armour skipped. ALGO is "sha256" or "sha512".
 * Returns the lowercase hex. -ENOENT "no entry for 'NAME' in sums file"; -EINVAL for a malformed
 * digest on the matching line, conflicting entries or a line over IMAGE_SUMS_LINE_MAX; -EFBIG over
 * IMAGE_SUMS_MAX. Only ever reads buf[0..len). */
int image_parse_sums(const char *buf, size_t len, const char *algo, const char *filename, char **ret_hex,
		     struct hutch_error *err);

/* The percent-decoded last path segment of an http(s) URL (query and fragment dropped): the name a
 * sums file lists the image under. */
int image_url_filename(const char *url, char **ret, struct hutch_error *err);
/* true for http:// and https:// URLs with a host. */
bool image_url_is_http(const char *url);
/* The protocols a download from URL may use, on the first request and on every redirect:
 * "https" when URL is https (never downgrade), otherwise "http,https". */
const char *image_redirect_protocols(const char *url);

/* The built-in catalog. */
struct image_catalog_entry {
	const char *name;
	const char *url;
	const char *checksum; /* a checksum spec, always a sums-file URL */
};
const struct image_catalog_entry *image_catalog(size_t *ret_n);
/* A catalog name (debian-12, ubuntu-24.04, fedora-41, arch) or an http(s) URL -> URL and checksum
 * spec. For a URL, *ret_checksum is the catalog's spec when the URL is a catalog image, else NULL. */
int image_resolve_catalog(const char *name_or_url, char **ret_url, char **ret_checksum, struct hutch_error *err);

struct image_progress_info {
	uint64_t done;	     /* bytes of the image on disk, resumed ones included */
	uint64_t total;	     /* 0 while unknown */
	uint64_t resumed;    /* bytes that were already there when this transfer began */
	uint64_t elapsed_ms; /* since this transfer began */
	bool finished;	     /* last call, after the final byte */
};

struct image_progress {
	/* Called at most every 100 ms while bytes arrive, and once with finished set. May be NULL. */
	void (*fn)(const struct image_progress_info *info, void *userdata);
	void *userdata;
	/* When it becomes non-zero (a SIGINT handler), the fetch stops with -EINTR and keeps image.part
	 * for the next run to resume. May be NULL. */
	volatile sig_atomic_t *cancel;
};

/* cache/images/<sha256(url)> */
char *image_cache_dir(const struct store *st, const char *url);

/* Make sure URL is in the cache, verified against CHECKSUM_SPEC (required: an unverified file is
 * never used), and return the path to base overlays on: by-digest/<algo>-<hex>, a hard link to the
 * cached `image` that a later upstream version never replaces. A cached image is reused only when
 * its recorded digest matches; otherwise the download resumes image.part with a Range request (or
 * starts over when the server ignores it or the kept bytes turn out stale), hashes while writing,
 * and renames to `image` only after the digest matches. Concurrent fetches of one URL serialise on
 * the cache dir's lock. prog may be NULL.
 *
 * A sums-file checksum is resolved against upstream once; later fetches of the same URL and
 * checksum reuse the base it resolved to, with no network, unless flags has IMAGE_FETCH_REFRESH. */
#define IMAGE_FETCH_REFRESH 1u
int image_fetch(const struct store *st, const char *url, const char *checksum_spec, unsigned flags,
		const struct image_progress *prog, char **ret_path, struct hutch_error *err);

struct image_entry {
	char *id;	    /* sha256(url): the cache dir's name */
	char *url;	    /* NULL when the url file is missing */
	char *digest;	    /* "sha256:HEX" as verified; NULL when nothing is verified */
	char *path;	    /* the image; NULL when there is none yet */
	uint64_t size;	    /* bytes of the image */
	uint64_t part_size; /* bytes of an interrupted download */
};
/* Every cache entry, sorted by URL. */
int image_list(const struct store *st, struct image_entry **ret, size_t *ret_n, struct hutch_error *err);
void image_entries_free(struct image_entry *v, size_t n);
/* Names of the VMs that use an image: their spec.yml names its URL (or a catalog name for it), or one
 * of their qcow2 disks has it as backing file. */
int image_users(const struct store *st, const struct image_entry *e, char ***ret_vms, struct hutch_error *err);
/* Remove one cache entry, named by URL, catalog name, id or a unique id prefix (at least 8 digits).
 * -EBUSY when a VM uses it (unless force), a running QEMU has it open (even with force), or a
 * download of it is in progress. */
int image_remove(const struct store *st, const char *what, bool force, char **ret_id, struct hutch_error *err);
/* The backing file a qcow2 at PATH names, or NULL (not a qcow2, none, unreadable). */
char *image_qcow2_backing(const char *path);
/* Remove every entry no VM uses, and in the others the earlier versions no disk is based on;
 * ret_removed (may be NULL) gets the URLs (ids when unknown) of the entries removed. */
int image_prune(const struct store *st, char ***ret_removed, struct hutch_error *err);

/* Create OVERLAY as a qcow2 on BASE (qcow2 or raw, detected with qemu-img info), with an absolute
 * backing path and the backing format recorded; SIZE 0 keeps the base's virtual size, a smaller one
 * is refused. O(1) in the image size. Written under a temporary name and renamed; an existing OVERLAY
 * is -EEXIST, a base or overlay locked by another process -EBUSY "... in use ...", no qemu-img
 * -ENOENT naming the Debian package qemu-utils. */
int image_make_overlay(const char *base, const char *overlay, uint64_t size, struct hutch_error *err);
/* The same in two steps, so a caller can do other work while qemu-img runs: start checks and
 * spawns it; finish waits and renames (and frees the job); abort kills it and removes the
 * temporary file. A base in the image cache has its format and size probed once and remembered. */
struct image_overlay_job;
int image_overlay_start(const char *base, const char *overlay, uint64_t size, struct image_overlay_job **ret,
			struct hutch_error *err);
int image_overlay_finish(struct image_overlay_job *j, struct hutch_error *err);
void image_overlay_abort(struct image_overlay_job *j);
/* Create OVERLAY (replacing one there) as a qcow2 of SIZE bytes on BACKING, an absolute path to a
 * qcow2 that may have a backing file of its own (a warm template's disk), without opening BACKING
 * (qemu-img create -u): it need not exist yet. */
int image_make_backed_overlay(const char *backing, const char *overlay, uint64_t size, struct hutch_error *err);
