/* What a micro netvm needs in the initramfs: the netfilter modules for a NAT (the agent loads them
 * only in a netvm), and Debian's nft with the libraries it links, so the agent can write its
 * ruleset as text. nft rather than raw nf_tables netlink in the agent: the rules stay readable and
 * checkable (`nft list ruleset` works in the guest), and the agent stays small. */
#include "template_net.h"

#include "qemu.h"

#include <string.h>
#include <sys/stat.h>

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

/* "what DEV INO SIZE MTIME.NS CTIME.NS" of a file the loader's answer depends on. */
static void sig_line(struct strbuf *sb, const char *what, const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		strbuf_addf(sb, "%s -\n", what);
		return;
	}
	strbuf_addf(sb, "%s %llu %llu %lld %lld.%09ld %lld.%09ld\n", what, (unsigned long long)st.st_dev,
		    (unsigned long long)st.st_ino, (long long)st.st_size, (long long)st.st_mtim.tv_sec,
		    st.st_mtim.tv_nsec, (long long)st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
}

/* The libraries nft links, from the loader's --list (a process: ~0.1 s of every micro start on a
 * loaded host), or from cache_file when nft, the loader and ld.so.cache are as they were then. */
static char *nft_list(const char *nft, const char *cache_file)
{
	struct strbuf sig = STRBUF_INIT;
	strbuf_addf(&sig, "hutch-nft-list 1 %s\n", nft);
	sig_line(&sig, "nft", nft);
	sig_line(&sig, "loader", LOADER);
	sig_line(&sig, "ldcache", "/etc/ld.so.cache");
	_cleanup_free_ char *old = NULL;
	if (cache_file && read_file(cache_file, 64 * 1024, &old, NULL, NULL) == 0 && !strncmp(old, sig.buf, sig.len)) {
		char *list = xstrdup(old + sig.len);
		strbuf_release(&sig);
		return list;
	}
	char *out = NULL;
	struct hutch_error err = {0};
	if (qemu_capture(LOADER, "--list", nft, &out, &err) < 0) {
		hutch_error_clear(&err);
		strbuf_release(&sig);
		return NULL;
	}
	if (cache_file) {
		/* only a cache: a failed write costs the next start the loader run again */
		strbuf_adds(&sig, out);
		write_file_atomic(cache_file, sig.buf, sig.len, 0644, NULL);
	}
	strbuf_release(&sig);
	return out;
}

char **template_nft_files(const char *cache_file)
{
	const char *nft = getenv("HUTCH_NFT");
	if (nft && (!*nft || !strcmp(nft, "none")))
		return NULL;
	if (!nft)
		nft = "/usr/sbin/nft";
	if (access(nft, X_OK) < 0 || access(LOADER, X_OK) < 0 || strchr(nft, '\n'))
		return NULL;
	/* the loader lists what nft links, resolved as it would load them */
	_cleanup_free_ char *out = nft_list(nft, cache_file);
	if (!out)
		return NULL;
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
