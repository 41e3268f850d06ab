/* What a micro netvm needs in the initramfs: the netfilter modules for a NAT (the agent loads them
 * only in a netvm), and Debian's nft with the libraries it links, so the agent can write its
 * ruleset as text. nft rather than raw nf_tables netlink in the agent: the rules stay readable and
 * checkable (`nft list ruleset` works in the guest), and the agent stays small. */
#include "template_net.h"

#include "qemu.h"

#include <string.h>

#define LOADER "/lib64/ld-linux-x86-64.so.2"

/* crc32c_generic first: libcrc32c asks the crypto API for crc32c, and the initramfs has no modprobe
 * to load it on demand. */
static const char *const net_module_names[] = {"crc32c_generic", "nft_chain_nat", "nft_masq", "nft_ct", NULL};

char **template_net_modules(const char *modules_dir, char **modules)
{
	char **extra = NULL;
	struct hutch_error err = {0};
	/* a kernel without them (or a test's fake modules) still gets a micro template, minus NAT */
	if (template_resolve_modules(modules_dir, net_module_names, &extra, &err) < 0) {
		hutch_error_clear(&err);
		return modules;
	}
	for (size_t i = 0; extra && extra[i]; i++) {
		bool have = false;
		for (size_t j = 0; modules && modules[j] && !have; j++)
			have = !strcmp(modules[j], extra[i]);
		if (!have)
			modules = strv_push(modules, xstrdup(extra[i]));
	}
	strv_free(extra);
	return modules;
}

char **template_nft_files(void)
{
	const char *nft = getenv("HUTCH_NFT");
	if (nft && (!*nft || !strcmp(nft, "none")))
		return NULL;
	if (!nft)
		nft = "/usr/sbin/nft";
	if (access(nft, X_OK) < 0 || access(LOADER, X_OK) < 0)
		return NULL;
	_cleanup_free_ char *out = NULL;
	struct hutch_error err = {0};
	/* the loader lists what nft links, resolved as it would load them */
	if (qemu_capture(LOADER, "--list", nft, &out, &err) < 0) {
		hutch_error_clear(&err);
		return NULL;
	}
	char **files = strv_push(NULL, xasprintf("%s", nft));
	for (char *save = NULL, *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *arrow = strstr(line, "=> "), *p = arrow ? arrow + 3 : line + strspn(line, " \t");
		if (*p != '/')
			continue;
		p[strcspn(p, " (")] = 0;
		if (strchr(p, '\n') || access(p, R_OK) < 0)
			continue;
		files = strv_push(files, xstrdup(p));
	}
	return files;
}

char *template_nft_path(const char *file)
{
	const char *base = strrchr(file, '/');
	return xasprintf(TEMPLATE_NFT_DIR "/%s", base ? base + 1 : file);
}
