/* The hostile-agent test build's misbehaviours (compiled only with -DHUTCH_TEST_HOSTILE). */
#include "agent.h"

#ifdef HUTCH_TEST_HOSTILE
/* Reads frames until an EXEC, answering PINGs (the monitor asks a quiet agent before an EXEC). */
static void hostile_wait_exec(struct proto_frame *f)
{
	for (;;) {
		int k;
		while ((k = proto_reader_next(&g.rd, f)) == 1) {
			if (f->type == MSG_EXEC)
				return;
			if (f->type == MSG_PING)
				send_pong(f);
		}
		if (proto_reader_read_fd(&g.rd, g.port) <= 0)
			usleep(100000);
	}
}

/* flap: a working agent whose port closes under its first session, as when systemd restarts the
 * agent. `exec -- flap SEC` keeps the port closed SEC seconds (default 20), then a new agent opens
 * it, says HELLO and serves sessions. */
static void hostile_flap(int sigfd)
{
	struct proto_frame f;
	hostile_wait_exec(&f);
	struct proto_exec e;
	unsigned secs = 20;
	if (proto_decode_exec(&f, &e) == 0) {
		if (e.argv[0] && !strcmp(e.argv[0], "flap") && e.argv[1])
			secs = (unsigned)atoi(e.argv[1]);
		proto_exec_free(&e);
	}
	logmsg("flap: closing the port for %u s", secs);
	close(g.port);
	sleep(secs);
	while ((g.port = open_port()) < 0)
		usleep(100000);
	proto_reader_free(&g.rd);
	logmsg("flap: the port is open again");
	send_hello();
	main_loop(sigfd);
}

/* Test build only (hostile-agent): misbehaves on purpose so the tests can show that a hostile guest
 * can't crash, hang or bloat the host. Mode from the kernel command line: hutch.hostile=MODE. */
void hostile_main(const char *cmdline, int sigfd)
{
	const char *m = cmdline ? strstr(cmdline, "hutch.hostile=") : NULL;
	char mode[32] = "garbage";
	if (m)
		sscanf(m + strlen("hutch.hostile="), "%31[a-z]", mode);
	logmsg("hostile mode '%s'", mode);
	if (strcmp(mode, "nohello") != 0 && strcmp(mode, "badhello") != 0)
		send_hello();
	if (!strcmp(mode, "garbage")) {
		static const uint8_t junk[] = {5, 0, 0, 0, 0xee, 1, 0, 0, 0, 'x', 'x', 'x', 'x', 'x'};
		write_all(g.port, junk, sizeof(junk));
	} else if (!strcmp(mode, "oversized")) {
		uint8_t hdr[9] = {0, 0, 0x20, 0, MSG_STDOUT, 1, 0, 0, 0}; /* 2 MiB */
		write_all(g.port, hdr, sizeof(hdr));
		static uint8_t fill[65536];
		for (int i = 0; i < 40; i++)
			write_all(g.port, fill, sizeof(fill));
	} else if (!strcmp(mode, "badhello")) {
		send_frame(MSG_HELLO, 0, "\x01", 1);
	} else if (!strcmp(mode, "flood")) {
		/* Wait for an EXEC, then ignore the credit window entirely. */
		struct proto_frame f;
		hostile_wait_exec(&f);
		uint32_t ch = f.channel;
		static uint8_t fill[65536];
		for (int i = 0; i < 2048; i++)
			send_frame(MSG_STDOUT, ch, fill, sizeof(fill));
	} else if (!strcmp(mode, "flap")) {
		hostile_flap(sigfd);
	}
	/* mute: said HELLO, then never reads or answers again, as an agent under SIGSTOP */
	for (;;)
		pause();
}
#endif
