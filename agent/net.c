/* Network set-up for netvm links, from words the host wrote (src/lib/netvm.c: net_cmdline):
 *   hutch.netup=A            a client: the NIC with MAC 02:68:A becomes `upstream`, A/31, default
 *                            route and DNS through A+1 (its netvm)
 *   hutch.netvm=1            a netvm: forwarding on, NAT out of `upstream`, nothing between clients,
 *                            and a DNS forwarder on each client link
 *   hutch.netdown=IF:B,...   the netvm's NIC for each client (MAC 02:68:B) becomes IF, B/31
 * QEMU's user-mode NIC (its default MAC) gets slirp's fixed 10.0.2.15/24; it is `upstream` in a
 * netvm and eth0 elsewhere. In micro, PID 1 reads the words from the kernel command line at boot;
 * in an image guest, where the agent is a service and the command line is the image's, they come
 * in MSG_NETCONF after HELLO (the seed turned cloud-init's network set-up off for such a VM, so no
 * DHCP client or other resolver competes). Either way the host gets an answer: what failed, if
 * anything. Links are configured with `ip` (busybox's in micro, iproute2's in an image), the NAT
 * with `nft`: the host's, with its libraries and loader, packed into the initramfs or the seed
 * (/usr/lib/hutch-nft), else the guest's own. */
#include "agent.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#define NET_MAX_DOWN 32
#define SLIRP_MAC "52:54:00:12:34:56"
#define NFT_DIR "/usr/lib/hutch-nft"

struct net_down {
	char ifname[IFNAMSIZ];
	uint32_t addr; /* the netvm's side */
};

/* The outcome of the last set-up, for the host's NETCONF: the first failure, and how many. */
static int net_err;
static char net_msg[PROTO_NETCONF_MSG_MAX + 1];
static char *net_applied; /* the words set up last (service mode: a new NETCONF with the same words is answered) */

static void net_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void net_fail(int err, const char *fmt, ...)
{
	char buf[PROTO_NETCONF_MSG_MAX + 1];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	logmsg("net: %s", buf);
	if (!net_err) {
		net_err = err ? err : EIO;
		snprintf(net_msg, sizeof(net_msg), "%s", buf);
	}
}

static int run(const char *const *argv)
{
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int nul = open("/dev/null", O_RDWR);
		if (nul >= 0) {
			dup2(nul, 0);
			dup2(nul, 1);
		}
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		char what[160] = "";
		for (size_t i = 0; argv[i] && strlen(what) < sizeof(what) - 2; i++)
			snprintf(what + strlen(what), sizeof(what) - strlen(what), "%s%s", i ? " " : "", argv[i]);
		net_fail(EIO, "'%s' failed (%s %d)", what, WIFEXITED(st) ? "status" : "signal",
			 WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
		return -1;
	}
	return 0;
}

/* `ip`: busybox's in micro, else iproute2's (an image may have no busybox), else busybox anywhere. */
static int run_ip(const char *const *args)
{
	static const char *const paths[] = {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip", NULL};
	const char *argv[16];
	size_t n = 0;
	for (size_t i = 0; !g.pid1 && paths[i] && !n; i++)
		if (access(paths[i], X_OK) == 0)
			argv[n++] = paths[i];
	if (!n) {
		argv[n++] = "/bin/busybox";
		argv[n++] = "ip";
	}
	for (size_t i = 0; args[i] && n < 15; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	return run(argv);
}

#define IP(...)                                               \
	do {                                                  \
		const char *const a_[] = {__VA_ARGS__, NULL}; \
		rc |= run_ip(a_);                             \
	} while (0)

static const char *addr_str(uint32_t a, char buf[16])
{
	snprintf(buf, 16, "%u.%u.%u.%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
	return buf;
}

static bool parse_addr(const char *s, size_t n, uint32_t *ret)
{
	char buf[16];
	struct in_addr in;
	if (n == 0 || n >= sizeof(buf))
		return false;
	memcpy(buf, s, n);
	buf[n] = 0;
	if (inet_pton(AF_INET, buf, &in) != 1)
		return false;
	*ret = ntohl(in.s_addr);
	return true;
}

/* The value of KEY= on the command line (up to the next space), or NULL. */
static const char *cmdline_value(const char *cmdline, const char *key, size_t *ret_len)
{
	size_t kl = strlen(key);
	for (const char *p = cmdline; p && (p = strstr(p, key)); p += kl) {
		if ((p == cmdline || p[-1] == ' ') && p[kl] == '=') {
			*ret_len = strcspn(p + kl + 1, " \n");
			return p + kl + 1;
		}
	}
	return NULL;
}

/* The interface whose MAC is mac, into ifname. */
static bool find_by_mac(const char *mac, char ifname[IFNAMSIZ])
{
	DIR *d = opendir("/sys/class/net");
	if (!d)
		return false;
	struct dirent *de;
	bool found = false;
	while (!found && (de = readdir(d))) {
		if (de->d_name[0] == '.' || strlen(de->d_name) >= IFNAMSIZ)
			continue;
		char p[96];
		snprintf(p, sizeof(p), "/sys/class/net/%.15s/address", de->d_name);
		char *v = read_small_file(p, 64);
		if (v && !strncmp(v, mac, 17)) {
			snprintf(ifname, IFNAMSIZ, "%.15s", de->d_name);
			found = true;
		}
		free(v);
	}
	closedir(d);
	return found;
}

static const char *mac_of(uint32_t a, char buf[18])
{
	snprintf(buf, 18, "02:68:%02x:%02x:%02x:%02x", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
	return buf;
}

/* Rename the NIC with MAC to name, give it addr/prefix and bring it up. */
static int link_setup(const char *mac, const char *name, const char *cidr)
{
	char cur[IFNAMSIZ];
	if (!find_by_mac(mac, cur)) {
		net_fail(ENODEV, "no interface with MAC %s for %s", mac, name);
		return -1;
	}
	int rc = 0;
	if (strcmp(cur, name)) {
		IP("link", "set", "dev", cur, "down"); /* an up link cannot be renamed */
		IP("link", "set", "dev", cur, "name", name);
	}
	/* again after an agent restart in an image guest: the same address, not a second one */
	IP("addr", "flush", "dev", name);
	IP("addr", "add", cidr, "dev", name);
	IP("link", "set", "dev", name, "up");
	return rc;
}

/* The one resolver. A symlink there (systemd-resolved's stub, resolvconf) is replaced by a file,
 * so nothing else adds a fallback. */
static void write_resolv(const char *ns)
{
	char buf[64];
	snprintf(buf, sizeof(buf), "nameserver %s\n", ns);
	if (write_text_atomic("/etc/resolv.conf", "/etc/resolv.conf.tmp", buf, 0644) < 0)
		net_fail(errno, "cannot write /etc/resolv.conf: %s", strerror(errno));
}

static int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int r = write_all(fd, s, strlen(s));
	close(fd);
	return r;
}

/* Masquerade out of upstream; forward client -> upstream and the answers, nothing else. The table
 * is created, dropped and made anew in one transaction, so a second run (an agent restarted in an
 * image guest) replaces it. */
static int netvm_nat(void)
{
	static const char rules[] = "table ip hutch\n"
				    "delete table ip hutch\n"
				    "table ip hutch {\n"
				    "  chain forward {\n"
				    "    type filter hook forward priority 0; policy drop;\n"
				    "    ct state established,related accept\n"
				    "    iifname != \"upstream\" oifname \"upstream\" counter accept\n"
				    "  }\n"
				    "  chain postrouting {\n"
				    "    type nat hook postrouting priority 100; policy accept;\n"
				    "    oifname \"upstream\" counter masquerade\n"
				    "  }\n"
				    "}\n";
	/* nft and its libraries sit apart (src/lib/template_net.h): run them through their own loader */
	bool bundled = access(NFT_DIR "/nft", X_OK) == 0 && access(NFT_DIR "/ld-linux-x86-64.so.2", X_OK) == 0;
	const char *own = access("/usr/sbin/nft", X_OK) == 0 ? "/usr/sbin/nft" : NULL;
	if (!bundled && !own) {
		net_fail(ENOENT, "no nft in the guest (%s): this netvm routes nothing",
			 g.pid1 ? "install nftables on the host" : "install nftables in the image, or on the host");
		return -1;
	}
	if (bundled && access("/usr/bin/nft", F_OK) < 0 && !own) {
		/* `nft` for people in the guest, through the same loader */
		static const char wrapper[] = "#!/bin/sh\nexec " NFT_DIR "/ld-linux-x86-64.so.2 --library-path " NFT_DIR
					      " " NFT_DIR "/nft \"$@\"\n";
		int wfd = open("/usr/bin/nft", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
		if (wfd >= 0) {
			write_all(wfd, wrapper, sizeof(wrapper) - 1);
			close(wfd);
		}
	}
	int fd = open("/run/hutch-nat.nft", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		net_fail(errno, "cannot write /run/hutch-nat.nft: %s", strerror(errno));
		return -1;
	}
	write_all(fd, rules, sizeof(rules) - 1);
	close(fd);
	const char *const bundled_argv[] = {NFT_DIR "/ld-linux-x86-64.so.2",
					    "--library-path",
					    NFT_DIR,
					    NFT_DIR "/nft",
					    "-f",
					    "/run/hutch-nat.nft",
					    NULL};
	const char *const own_argv[] = {"/usr/sbin/nft", "-f", "/run/hutch-nat.nft", NULL};
	return run(bundled ? bundled_argv : own_argv);
}

void net_setup(const char *cmdline)
{
	net_err = 0;
	net_msg[0] = 0;
	size_t n;
	const char *v;
	char a[16], mac[18], cidr[24];
	bool netvm = (v = cmdline_value(cmdline, "hutch.netvm", &n)) && n == 1 && v[0] == '1';
	uint32_t up = 0;
	bool has_up = (v = cmdline_value(cmdline, "hutch.netup", &n)) && parse_addr(v, n, &up) && !(up & 1);
	char slirp[IFNAMSIZ];
	if (find_by_mac(SLIRP_MAC, slirp)) {
		/* QEMU's user-mode network: slirp's fixed addresses */
		const char *name = netvm ? "upstream" : slirp;
		if (link_setup(SLIRP_MAC, name, "10.0.2.15/24") == 0) {
			int rc = 0;
			IP("route", "add", "default", "via", "10.0.2.2", "dev", name);
			if (!has_up)
				write_resolv("10.0.2.3");
		}
	}
	if (has_up) {
		snprintf(cidr, sizeof(cidr), "%s/31", addr_str(up, a));
		if (link_setup(mac_of(up, mac), "upstream", cidr) == 0) {
			int rc = 0;
			IP("route", "add", "default", "via", addr_str(up + 1, a), "dev", "upstream");
			/* the netvm answers DNS; no other resolver, so nothing leaks around it */
			write_resolv(a);
		}
	}
	if (!netvm)
		return;
	struct net_down down[NET_MAX_DOWN];
	size_t nd = 0;
	if ((v = cmdline_value(cmdline, "hutch.netdown", &n))) {
		const char *end = v + n;
		while (v < end && nd < NET_MAX_DOWN) {
			const char *comma = memchr(v, ',', (size_t)(end - v)), *stop = comma ? comma : end;
			const char *colon = memchr(v, ':', (size_t)(stop - v));
			if (colon && colon > v && (size_t)(colon - v) < IFNAMSIZ &&
			    parse_addr(colon + 1, (size_t)(stop - colon - 1), &down[nd].addr) && (down[nd].addr & 1)) {
				memcpy(down[nd].ifname, v, (size_t)(colon - v));
				down[nd].ifname[colon - v] = 0;
				nd++;
			}
			v = stop + 1;
		}
	}
	for (size_t i = 0; i < nd; i++) {
		snprintf(cidr, sizeof(cidr), "%s/31", addr_str(down[i].addr, a));
		link_setup(mac_of(down[i].addr, mac), down[i].ifname, cidr);
	}
	/* forwarding only behind the filter: without it clients would reach each other */
	if (netvm_nat() == 0 && write_str("/proc/sys/net/ipv4/ip_forward", "1\n") < 0)
		net_fail(errno, "cannot turn on forwarding: %s", strerror(errno));
	uint32_t addrs[NET_MAX_DOWN];
	for (size_t i = 0; i < nd; i++)
		addrs[i] = down[i].addr;
	dns_forwarder_start(addrs, nd);
}

/* MSG_NETCONF: in an image guest, set up what the words say (once per set of words: the host asks
 * again after it reconnects); in micro, PID 1 did so from the command line at boot. The answer is
 * the outcome either way. */
void handle_netconf(const struct proto_frame *f)
{
	struct proto_netconf nc;
	if (proto_decode_netconf(f, &nc) < 0 || nc.answer) {
		if (nc.answer)
			proto_netconf_free(&nc);
		send_error(0, "malformed NETCONF");
		return;
	}
	if (!g.pid1 && (!net_applied || strcmp(net_applied, nc.words) != 0)) {
		free(net_applied);
		net_applied = strdup(nc.words);
		logmsg("net: setting up%s", nc.words);
		net_setup(nc.words);
	}
	struct proto_buf b = {0};
	proto_encode_netconf_answer(&b, net_err, net_msg);
	send_buf(MSG_NETCONF, 0, &b);
	proto_netconf_free(&nc);
}

bool net_is_netvm(void)
{
	char *c = read_small_file("/proc/cmdline", 4096);
	size_t n;
	const char *v = c ? cmdline_value(c, "hutch.netvm", &n) : NULL;
	bool yes = v && n == 1 && v[0] == '1';
	free(c);
	return yes;
}
