/* The micro template's part for netvms: netfilter modules and nft. */
#pragma once
#include "template.h"
#include "util.h"

/* modules plus the netfilter modules (and their dependencies) via modules.dep, without duplicates;
 * unchanged when the kernel lacks them. Takes and returns the strv. */
char **template_net_modules(const char *modules_dir, char **modules);
/* Absolute paths of nft (HUTCH_NFT overrides /usr/sbin/nft; "none" leaves it out), the libraries
 * it links and the loader; NULL when there is no nft. cache_file (optional): where the loader's
 * answer is kept, keyed by the stat of nft, the loader and ld.so.cache. */
char **template_nft_files(const char *cache_file);
/* Where a file of template_nft_files goes in the initramfs, relative to its root: a private
 * directory, TEMPLATE_NFT_DIR. A glibc on the usual library path would be found by the static
 * busybox's NSS lookups (wget, ping) and crash them. */
#define TEMPLATE_NFT_DIR "usr/lib/hutch-nft"
char *template_nft_path(const char *file);
