/* A netvm's DNS forwarder for its clients: UDP queries on each client link's address, port 53,
 * relayed to the netvm's own resolver (the first nameserver of /etc/resolv.conf) under a fresh
 * ID, and the answer relayed back. Queries are untrusted: bounded in size, only queries (QR=0) go
 * out, at most DNS_PENDING are in flight (the oldest is dropped), and an answer is taken only from
 * the resolver's address with an ID we sent. Runs as a child process of the agent. */
#include "agent.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#define DNS_MAX 1232 /* the EDNS payload size resolvers agree on; bigger queries are dropped */
#define DNS_PENDING 256
#define DNS_TIMEOUT_MS 5000

struct pending {
	bool used;
	uint16_t id, orig_id;
	int sock; /* the client link's socket it came in on */
	struct sockaddr_in from;
	uint64_t at;
};

static uint32_t resolver_addr(void)
{
	char *rc = read_small_file("/etc/resolv.conf", 4096);
	uint32_t r = 0;
	for (char *save = NULL, *line = rc ? strtok_r(rc, "\n", &save) : NULL; line && !r;
	     line = strtok_r(NULL, "\n", &save)) {
		char ns[64];
		struct in_addr in;
		if (sscanf(line, "nameserver %63s", ns) == 1 && inet_pton(AF_INET, ns, &in) == 1)
			r = ntohl(in.s_addr);
	}
	free(rc);
	return r;
}

static uint16_t next_id(void)
{
	uint16_t id = 0;
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (read(fd, &id, sizeof(id)) != sizeof(id))
			id = (uint16_t)mono_ms();
		close(fd);
	}
	return id;
}

_Noreturn static void dns_loop(const uint32_t *addrs, size_t n)
{
	int socks[32], ns = 0;
	for (size_t i = 0; i < n && ns < 32; i++) {
		int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		struct sockaddr_in sa = {
			.sin_family = AF_INET, .sin_port = htons(53), .sin_addr.s_addr = htonl(addrs[i])};
		if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			socks[ns++] = fd;
		else if (fd >= 0)
			close(fd);
	}
	int up = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	uint32_t res = resolver_addr();
	struct sockaddr_in rsa = {.sin_family = AF_INET, .sin_port = htons(53), .sin_addr.s_addr = htonl(res)};
	if (!ns || up < 0 || !res) {
		logmsg("dns: not forwarding (%d sockets, resolver %s)", ns, res ? "set" : "missing");
		_exit(1);
	}
	static struct pending pend[DNS_PENDING];
	uint8_t buf[DNS_MAX + 1];
	for (;;) {
		struct pollfd pfd[33];
		for (int i = 0; i < ns; i++)
			pfd[i] = (struct pollfd){.fd = socks[i], .events = POLLIN};
		pfd[ns] = (struct pollfd){.fd = up, .events = POLLIN};
		if (poll(pfd, (nfds_t)ns + 1, 1000) < 0 && errno != EINTR)
			_exit(1);
		uint64_t now = mono_ms();
		for (int i = 0; i < DNS_PENDING; i++)
			if (pend[i].used && now - pend[i].at > DNS_TIMEOUT_MS)
				pend[i].used = false;
		for (int i = 0; i < ns; i++) {
			if (!(pfd[i].revents & POLLIN))
				continue;
			struct sockaddr_in from;
			socklen_t fl = sizeof(from);
			ssize_t got = recvfrom(socks[i], buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
			/* a header, not too big, and a query (QR=0) */
			if (got < 12 || got > DNS_MAX || (buf[2] & 0x80))
				continue;
			int slot = 0;
			for (int k = 0; k < DNS_PENDING; k++) {
				if (!pend[k].used) {
					slot = k;
					break;
				}
				if (pend[k].at < pend[slot].at)
					slot = k;
			}
			uint16_t id = next_id();
			pend[slot] = (struct pending){true, id, (uint16_t)(buf[0] << 8 | buf[1]), socks[i], from, now};
			buf[0] = (uint8_t)(id >> 8);
			buf[1] = (uint8_t)id;
			sendto(up, buf, (size_t)got, MSG_DONTWAIT, (struct sockaddr *)&rsa, sizeof(rsa));
		}
		if (pfd[ns].revents & POLLIN) {
			struct sockaddr_in from;
			socklen_t fl = sizeof(from);
			ssize_t got = recvfrom(up, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
			if (got < 12 || got > DNS_MAX || from.sin_addr.s_addr != rsa.sin_addr.s_addr ||
			    from.sin_port != rsa.sin_port || !(buf[2] & 0x80))
				continue;
			uint16_t id = (uint16_t)(buf[0] << 8 | buf[1]);
			for (int k = 0; k < DNS_PENDING; k++) {
				if (!pend[k].used || pend[k].id != id)
					continue;
				buf[0] = (uint8_t)(pend[k].orig_id >> 8);
				buf[1] = (uint8_t)pend[k].orig_id;
				sendto(pend[k].sock, buf, (size_t)got, MSG_DONTWAIT, (struct sockaddr *)&pend[k].from,
				       sizeof(pend[k].from));
				pend[k].used = false;
				break;
			}
		}
	}
}

void dns_forwarder_start(const uint32_t *addrs, size_t n)
{
	static pid_t running;
	if (running > 0 && kill(running, SIGKILL) == 0) /* set up again: its sockets are to be bound anew */
		waitpid(running, NULL, 0);
	running = 0;
	if (!n)
		return;
	pid_t pid = fork();
	if (pid == 0) {
		/* The agent's blocked signals (SIGTERM among them, for its signalfd) would stay blocked
		 * here: systemd's SIGTERM to the service at shutdown must end this process too, or the
		 * guest's poweroff waits out the stop timeout (90 s) for it. */
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		dns_loop(addrs, n);
	}
	if (pid < 0)
		logmsg("dns: fork: %s", strerror(errno));
	running = pid;
}
