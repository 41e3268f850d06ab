/* auto_forward's guest side: once the host asks (an empty MSG_LISTENERS), the TCP ports listened on
 * beyond loopback, from /proc/net/tcp and tcp6, are reported whenever the set changes (checked every
 * second; at most PROTO_LISTENERS_MAX ports, the rest flagged as truncated). */
#include "agent.h"
#include "listeners.h"

#define LISTEN_POLL_MS 1000
#define PROC_MAX (4u << 20) /* a guest with 10,000 sockets has a /proc/net/tcp of about 1.5 MB */

static struct {
	bool on;
	uint64_t next;
	uint16_t sent[PROTO_LISTENERS_MAX];
	size_t n_sent;
	uint32_t flags_sent;
	bool any_sent;
} L;

static int cmp_u16(const void *a, const void *b) { return (int)*(const uint16_t *)a - (int)*(const uint16_t *)b; }

/* A loopback-only listener cannot be reached through QEMU's user network (slirp connects to the
 * guest's address), so it is not reported. */
static bool loopback(const char *hex, bool v6)
{
	if (!v6)
		return strlen(hex) == 8 && !strncmp(hex + 6, "7F", 2); /* 127.x.y.z, little-endian */
	return !strcmp(hex, "00000000000000000000000001000000") ||     /* ::1 */
	       (!strncmp(hex, "0000000000000000FFFF0000", 24) && !strncmp(hex + 30, "7F", 2)); /* ::ffff:127.x */
}

/* Adds the LISTEN (state 0A) ports of one file to ports[*n] (bounded by max). */
static void scan(const char *path, bool v6, uint16_t *ports, size_t *n, size_t max, bool *truncated)
{
	char *text = read_small_file(path, PROC_MAX);
	if (!text)
		return;
	char *save = NULL;
	strtok_r(text, "\n", &save); /* the header */
	for (char *line; (line = strtok_r(NULL, "\n", &save));) {
		char local[64], remote[64], st[8];
		if (sscanf(line, "%*s %63s %63s %7s", local, remote, st) != 3 || strcmp(st, "0A"))
			continue;
		char *colon = strchr(local, ':');
		if (!colon)
			continue;
		*colon = 0;
		unsigned long port = strtoul(colon + 1, NULL, 16);
		if (port == 0 || port > 65535 || loopback(local, v6))
			continue;
		if (*n == max) {
			*truncated = true;
			break;
		}
		ports[(*n)++] = (uint16_t)port;
	}
	free(text);
}

static void report(bool force)
{
	static uint16_t ports[2 * PROTO_LISTENERS_MAX];
	size_t n = 0, u = 0;
	bool truncated = false;
	scan("/proc/net/tcp", false, ports, &n, PROTO_LISTENERS_MAX * 2, &truncated);
	scan("/proc/net/tcp6", true, ports, &n, PROTO_LISTENERS_MAX * 2, &truncated);
	qsort(ports, n, sizeof(*ports), cmp_u16);
	for (size_t i = 0; i < n; i++)
		if (!u || ports[u - 1] != ports[i])
			ports[u++] = ports[i];
	if (u > PROTO_LISTENERS_MAX) {
		u = PROTO_LISTENERS_MAX;
		truncated = true;
	}
	uint32_t flags = truncated ? PROTO_LISTENERS_TRUNCATED : 0;
	if (!force && L.any_sent && u == L.n_sent && flags == L.flags_sent &&
	    !memcmp(ports, L.sent, u * sizeof(*ports)))
		return;
	struct proto_buf b = {0};
	proto_encode_listeners(&b, flags, ports, u);
	send_buf(MSG_LISTENERS, 0, &b);
	memcpy(L.sent, ports, u * sizeof(*ports));
	L.n_sent = u;
	L.flags_sent = flags;
	L.any_sent = true;
}

void listeners_subscribe(void)
{
	L.on = true;
	L.next = mono_ms() + LISTEN_POLL_MS;
	report(true);
}

int listeners_timeout_ms(void)
{
	if (!L.on)
		return -1;
	uint64_t t = mono_ms();
	return L.next > t ? (int)(L.next - t) : 0;
}

void listeners_tick(void)
{
	if (!L.on || mono_ms() < L.next)
		return;
	L.next = mono_ms() + LISTEN_POLL_MS;
	report(false);
}
