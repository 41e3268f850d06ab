/* What image_fetch.c, image_cache.c and disk.c share; not part of the library's interface.
 * A file that includes this must include <openssl/evp.h> before it and lazylib.h after it. */
#pragma once
#include <openssl/evp.h>

#include "image.h"

#define IMAGE_MAX_HEX 128

/* QEMU's image locking (block/file-posix.c): a process holding permission bit i has a shared OFD
 * lock on byte 100 + i of the file; one that refuses to share it, on byte 200 + i. */
enum { QEMU_LOCK_PERM_BASE = 100, IMAGE_QEMU_PERM_CONSISTENT_READ = 0, IMAGE_QEMU_PERM_WRITE = 1 };

/* image_fetch.c */
const EVP_MD *image_algo_md(enum image_algo a);
void image_hex_encode(const unsigned char *d, size_t n, char *out);

/* image_cache.c */
void image_md_freep(EVP_MD_CTX **p);
bool image_cancelled(const struct image_progress *prog);
/* Feed the first len bytes of fd into md. */
int image_hash_fd(int fd, uint64_t len, EVP_MD_CTX *md, const struct image_progress *prog);
void image_md_final_hex(EVP_MD_CTX *md, char out[IMAGE_MAX_HEX + 1]);
int image_fsync_dir(const char *dir);
/* Take dir/lock, waiting for another fetch of the same URL to finish unless !wait (-EWOULDBLOCK). */
int image_cache_lock(const char *dir, bool wait, const struct image_progress *prog, int *ret_fd,
		     struct hutch_error *err);
/* A small file without its trailing newlines, or NULL. */
char *image_read_small(const char *path, size_t max);
bool image_cache_verified(const char *dir, enum image_algo algo, const char *want, const struct image_progress *prog);
int image_cache_commit(const char *dir, const char *url, const char *digest_line, struct hutch_error *err);
int image_cache_link(const char *dir, const char *digest_line, char **ret_path, struct hutch_error *err);
char *image_resolved_lookup(const char *dir, const char *spec);
void image_resolved_record(const char *dir, const char *spec, const char *digest_line);
char *image_pinned_path(const char *dir, const char *digest_line);
/* Does some QEMU hold permission PERM_BIT on PATH (an exclusive lock on its byte would conflict)? */
bool image_qemu_lock_held(const char *path, int perm_bit);
/* What is kept beside a by-digest base ABS: by-digest/.NAME.SUFFIX; NULL outside a by-digest dir. */
char *image_base_extra_path(const char *abs, const char *suffix);
