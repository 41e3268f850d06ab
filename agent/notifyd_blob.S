/* hutch-notifyd (agent/notifyd.c), carried inside the agent: agent/notify.c runs it from a memfd.
 * NOTIFYD_PATH is the built helper, given by meson.build. */
	.section .rodata
	.balign 16
	.global hutch_notifyd_start
	.global hutch_notifyd_end
hutch_notifyd_start:
	.incbin NOTIFYD_PATH
hutch_notifyd_end:
	.section .note.GNU-stack,"",@progbits
