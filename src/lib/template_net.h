/* The micro template's part for netvms: netfilter modules and nft. */
#pragma once
#include "template.h"
#include "util.h"

/* modules plus the netfilter modules (and their dependencies) via modules.dep, without duplicates;
 * unchanged when the kernel lacks them. Takes and returns the strv. */
char **template_net_modules(const char *modules_dir, char **modules);
/* Absolute paths of nft (HUTCH_NFT overrides /usr/sbin/nft; "none" leaves it out), the libraries
 * it links and the loader; NULL when there is no nft. */
char **template_nft_files(void);
