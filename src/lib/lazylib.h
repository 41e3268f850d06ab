/* Lazily loaded libraries. libcurl, libarchive and libcrypto (with what they pull in: TLS,
 * Kerberos, LDAP, ICU, ...) cost ~20 ms of dynamic loading and constructors in every process that
 * links them, and most hutch processes (exec, list, stop, the monitor of a running VM) never touch
 * them. So hutch does not link them: a file that uses one includes its headers and then this one,
 * which routes each function through a table that dlopen fills on first use.
 *
 * lazy_LIB_load(err) loads a library and reports a missing one as an error naming its Debian
 * package; entry points call it first so the failure travels like any other. A call that comes
 * without it still works: it loads the library then, or exits 127 with the same message, which
 * is what the dynamic linker would have done at startup. A function missing from the lists below
 * fails to link, since the library is not on the link line. */
#pragma once

#include "util.h"

int lazy_archive_load(struct hutch_error *err);
int lazy_curl_load(struct hutch_error *err);
int lazy_crypto_load(struct hutch_error *err);

/* Load libarchive on a helper thread while the caller waits for something else (create: while
 * ssh-keygen runs). The caller must not use libarchive until lazy_archive_preload_join(), which
 * is a no-op when nothing was started. */
void lazy_archive_preload_start(void);
void lazy_archive_preload_join(void);

#define LAZY_FIELD(f) __typeof__(f) *f;

#ifdef ARCHIVE_VERSION_NUMBER
#define LAZY_ARCHIVE_FUNCS(X)                    \
	X(archive_entry_copy_pathname)           \
	X(archive_entry_gid)                     \
	X(archive_entry_mode)                    \
	X(archive_entry_mtime)                   \
	X(archive_entry_rdevmajor)               \
	X(archive_entry_rdevminor)               \
	X(archive_entry_size)                    \
	X(archive_entry_size_is_set)             \
	X(archive_entry_symlink)                 \
	X(archive_entry_symlink_utf8)            \
	X(archive_entry_uid)                     \
	X(archive_entry_copy_stat)               \
	X(archive_entry_copy_symlink)            \
	X(archive_entry_filetype)                \
	X(archive_entry_free)                    \
	X(archive_entry_hardlink)                \
	X(archive_entry_hardlink_utf8)           \
	X(archive_entry_new)                     \
	X(archive_entry_pathname)                \
	X(archive_entry_pathname_utf8)           \
	X(archive_entry_set_filetype)            \
	X(archive_entry_set_gid)                 \
	X(archive_entry_set_ino)                 \
	X(archive_entry_set_mode)                \
	X(archive_entry_set_mtime)               \
	X(archive_entry_set_nlink)               \
	X(archive_entry_set_pathname)            \
	X(archive_entry_set_perm)                \
	X(archive_entry_set_rdevmajor)           \
	X(archive_entry_set_rdevminor)           \
	X(archive_entry_set_size)                \
	X(archive_entry_set_symlink)             \
	X(archive_entry_set_uid)                 \
	X(archive_errno)                         \
	X(archive_error_string)                  \
	X(archive_read_data)                     \
	X(archive_read_data_block)               \
	X(archive_read_free)                     \
	X(archive_read_new)                      \
	X(archive_read_next_header)              \
	X(archive_read_open_fd)                  \
	X(archive_read_open_filename)            \
	X(archive_read_support_filter_all)       \
	X(archive_read_support_format_gnutar)    \
	X(archive_read_support_format_raw)       \
	X(archive_read_support_format_tar)       \
	X(archive_write_add_filter_none)         \
	X(archive_write_close)                   \
	X(archive_write_data)                    \
	X(archive_write_data_block)              \
	X(archive_write_disk_new)                \
	X(archive_write_disk_set_options)        \
	X(archive_write_finish_entry)            \
	X(archive_write_free)                    \
	X(archive_write_header)                  \
	X(archive_write_new)                     \
	X(archive_write_open_fd)                 \
	X(archive_write_set_bytes_in_last_block) \
	X(archive_write_set_bytes_per_block)     \
	X(archive_write_set_format_cpio_newc)    \
	X(archive_write_set_format_iso9660)      \
	X(archive_write_set_format_option)       \
	X(archive_write_set_format_pax_restricted)

struct lazy_archive_table {
	LAZY_ARCHIVE_FUNCS(LAZY_FIELD)
};
const struct lazy_archive_table *lazy_archive(void); /* loaded, or exit 127 */
#ifndef LAZY_IMPL
#define archive_entry_copy_pathname (*lazy_archive()->archive_entry_copy_pathname)
#define archive_entry_gid (*lazy_archive()->archive_entry_gid)
#define archive_entry_mode (*lazy_archive()->archive_entry_mode)
#define archive_entry_mtime (*lazy_archive()->archive_entry_mtime)
#define archive_entry_rdevmajor (*lazy_archive()->archive_entry_rdevmajor)
#define archive_entry_rdevminor (*lazy_archive()->archive_entry_rdevminor)
#define archive_entry_size (*lazy_archive()->archive_entry_size)
#define archive_entry_size_is_set (*lazy_archive()->archive_entry_size_is_set)
#define archive_entry_symlink (*lazy_archive()->archive_entry_symlink)
#define archive_entry_symlink_utf8 (*lazy_archive()->archive_entry_symlink_utf8)
#define archive_entry_uid (*lazy_archive()->archive_entry_uid)
#define archive_entry_copy_stat (*lazy_archive()->archive_entry_copy_stat)
#define archive_entry_copy_symlink (*lazy_archive()->archive_entry_copy_symlink)
#define archive_entry_filetype (*lazy_archive()->archive_entry_filetype)
#define archive_entry_free (*lazy_archive()->archive_entry_free)
#define archive_entry_hardlink (*lazy_archive()->archive_entry_hardlink)
#define archive_entry_hardlink_utf8 (*lazy_archive()->archive_entry_hardlink_utf8)
#define archive_entry_new (*lazy_archive()->archive_entry_new)
#define archive_entry_pathname (*lazy_archive()->archive_entry_pathname)
#define archive_entry_pathname_utf8 (*lazy_archive()->archive_entry_pathname_utf8)
#define archive_entry_set_filetype (*lazy_archive()->archive_entry_set_filetype)
#define archive_entry_set_gid (*lazy_archive()->archive_entry_set_gid)
#define archive_entry_set_ino (*lazy_archive()->archive_entry_set_ino)
#define archive_entry_set_mode (*lazy_archive()->archive_entry_set_mode)
#define archive_entry_set_mtime (*lazy_archive()->archive_entry_set_mtime)
#define archive_entry_set_nlink (*lazy_archive()->archive_entry_set_nlink)
#define archive_entry_set_pathname (*lazy_archive()->archive_entry_set_pathname)
#define archive_entry_set_perm (*lazy_archive()->archive_entry_set_perm)
#define archive_entry_set_rdevmajor (*lazy_archive()->archive_entry_set_rdevmajor)
#define archive_entry_set_rdevminor (*lazy_archive()->archive_entry_set_rdevminor)
#define archive_entry_set_size (*lazy_archive()->archive_entry_set_size)
#define archive_entry_set_symlink (*lazy_archive()->archive_entry_set_symlink)
#define archive_entry_set_uid (*lazy_archive()->archive_entry_set_uid)
#define archive_errno (*lazy_archive()->archive_errno)
#define archive_error_string (*lazy_archive()->archive_error_string)
#define archive_read_data (*lazy_archive()->archive_read_data)
#define archive_read_data_block (*lazy_archive()->archive_read_data_block)
#define archive_read_free (*lazy_archive()->archive_read_free)
#define archive_read_new (*lazy_archive()->archive_read_new)
#define archive_read_next_header (*lazy_archive()->archive_read_next_header)
#define archive_read_open_fd (*lazy_archive()->archive_read_open_fd)
#define archive_read_open_filename (*lazy_archive()->archive_read_open_filename)
#define archive_read_support_filter_all (*lazy_archive()->archive_read_support_filter_all)
#define archive_read_support_format_gnutar (*lazy_archive()->archive_read_support_format_gnutar)
#define archive_read_support_format_raw (*lazy_archive()->archive_read_support_format_raw)
#define archive_read_support_format_tar (*lazy_archive()->archive_read_support_format_tar)
#define archive_write_add_filter_none (*lazy_archive()->archive_write_add_filter_none)
#define archive_write_close (*lazy_archive()->archive_write_close)
#define archive_write_data (*lazy_archive()->archive_write_data)
#define archive_write_data_block (*lazy_archive()->archive_write_data_block)
#define archive_write_disk_new (*lazy_archive()->archive_write_disk_new)
#define archive_write_disk_set_options (*lazy_archive()->archive_write_disk_set_options)
#define archive_write_finish_entry (*lazy_archive()->archive_write_finish_entry)
#define archive_write_free (*lazy_archive()->archive_write_free)
#define archive_write_header (*lazy_archive()->archive_write_header)
#define archive_write_new (*lazy_archive()->archive_write_new)
#define archive_write_open_fd (*lazy_archive()->archive_write_open_fd)
#define archive_write_set_bytes_in_last_block (*lazy_archive()->archive_write_set_bytes_in_last_block)
#define archive_write_set_bytes_per_block (*lazy_archive()->archive_write_set_bytes_per_block)
#define archive_write_set_format_cpio_newc (*lazy_archive()->archive_write_set_format_cpio_newc)
#define archive_write_set_format_iso9660 (*lazy_archive()->archive_write_set_format_iso9660)
#define archive_write_set_format_option (*lazy_archive()->archive_write_set_format_option)
#define archive_write_set_format_pax_restricted (*lazy_archive()->archive_write_set_format_pax_restricted)
#endif
#endif

#ifdef LIBCURL_VERSION_NUM
#define LAZY_CURL_FUNCS(X)   \
	X(curl_easy_cleanup) \
	X(curl_easy_init)    \
	X(curl_easy_perform) \
	X(curl_easy_setopt)  \
	X(curl_easy_strerror)

struct lazy_curl_table {
	LAZY_CURL_FUNCS(LAZY_FIELD)
};
const struct lazy_curl_table *lazy_curl(void); /* loaded, or exit 127 */
#ifndef LAZY_IMPL
#define curl_easy_cleanup (*lazy_curl()->curl_easy_cleanup)
#define curl_easy_init (*lazy_curl()->curl_easy_init)
#define curl_easy_perform (*lazy_curl()->curl_easy_perform)
#undef curl_easy_setopt /* curl.h's argument-count macro */
#define curl_easy_setopt (*lazy_curl()->curl_easy_setopt)
#define curl_easy_strerror (*lazy_curl()->curl_easy_strerror)
#endif
#endif

#ifdef OPENSSL_VERSION_NUMBER
#define LAZY_CRYPTO_FUNCS(X)  \
	X(EVP_DecodeBlock)    \
	X(EVP_Digest)         \
	X(EVP_DigestFinal_ex) \
	X(EVP_DigestInit_ex)  \
	X(EVP_DigestUpdate)   \
	X(EVP_EncodeBlock)    \
	X(EVP_MD_CTX_free)    \
	X(EVP_MD_CTX_new)     \
	X(EVP_sha256)         \
	X(EVP_sha512)

struct lazy_crypto_table {
	LAZY_CRYPTO_FUNCS(LAZY_FIELD)
};
const struct lazy_crypto_table *lazy_crypto(void); /* loaded, or exit 127 */
#ifndef LAZY_IMPL
#define EVP_DecodeBlock (*lazy_crypto()->EVP_DecodeBlock)
#define EVP_Digest (*lazy_crypto()->EVP_Digest)
#define EVP_DigestFinal_ex (*lazy_crypto()->EVP_DigestFinal_ex)
#define EVP_DigestInit_ex (*lazy_crypto()->EVP_DigestInit_ex)
#define EVP_DigestUpdate (*lazy_crypto()->EVP_DigestUpdate)
#define EVP_EncodeBlock (*lazy_crypto()->EVP_EncodeBlock)
#define EVP_MD_CTX_free (*lazy_crypto()->EVP_MD_CTX_free)
#define EVP_MD_CTX_new (*lazy_crypto()->EVP_MD_CTX_new)
#define EVP_sha256 (*lazy_crypto()->EVP_sha256)
#define EVP_sha512 (*lazy_crypto()->EVP_sha512)
#endif
#endif
