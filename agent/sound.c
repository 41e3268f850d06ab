/* `--tone [SECONDS]`: play a 440 Hz tone on the first sound card through the kernel's ALSA PCM
 * ioctls, with no libasound (the micro guest has none). It lets tests and users check that sound
 * gets from the guest to the host. The ALSA ABI structures are spelled out here because musl's
 * headers do not carry <sound/asound.h>; their layout is the kernel's stable UAPI. */
#include "agent.h"

#define PCM_ACCESS_RW_INTERLEAVED 3
#define PCM_FORMAT_S16_LE 2
#define HW_FIRST_INTERVAL 8 /* SNDRV_PCM_HW_PARAM_SAMPLE_BITS */
#define HW_CHANNELS 10
#define HW_RATE 11
#define HW_PERIOD_SIZE 13
#define HW_BUFFER_SIZE 17

struct snd_mask_abi {
	uint32_t bits[8];
};
struct snd_interval_abi {
	unsigned int min, max;
	unsigned int openmin : 1, openmax : 1, integer : 1, empty : 1;
};
struct snd_hw_params_abi {
	unsigned int flags;
	struct snd_mask_abi masks[3];
	struct snd_mask_abi mres[5];
	struct snd_interval_abi intervals[12];
	struct snd_interval_abi ires[9];
	unsigned int rmask, cmask, info, msbits, rate_num, rate_den;
	unsigned long fifo_size;
	unsigned char reserved[64];
};
struct snd_xferi_abi {
	long result;
	void *buf;
	unsigned long frames;
};
_Static_assert(sizeof(struct snd_hw_params_abi) == 608, "struct snd_pcm_hw_params is 608 bytes on 64-bit");

#define IOCTL_HW_PARAMS _IOWR('A', 0x11, struct snd_hw_params_abi)
#define IOCTL_PREPARE _IO('A', 0x40)
#define IOCTL_DRAIN _IO('A', 0x44)
#define IOCTL_WRITEI _IOW('A', 0x50, struct snd_xferi_abi)

static void interval_set(struct snd_hw_params_abi *p, int param, unsigned lo, unsigned hi)
{
	struct snd_interval_abi *i = &p->intervals[param - HW_FIRST_INTERVAL];
	i->min = lo;
	i->max = hi;
	i->integer = 1;
}

static void mask_only(struct snd_mask_abi *m, unsigned bit)
{
	memset(m, 0, sizeof(*m));
	m->bits[bit / 32] = 1u << (bit % 32);
}

static int pcm_open(unsigned rate)
{
	int fd = open("/dev/snd/pcmC0D0p", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "hutch-agent: /dev/snd/pcmC0D0p: %s\n", strerror(errno));
		return -1;
	}
	struct snd_hw_params_abi p;
	memset(&p, 0, sizeof(p));
	for (int i = 0; i < 3; i++)
		memset(&p.masks[i], 0xff, sizeof(p.masks[i]));
	for (int i = 0; i < 12; i++)
		p.intervals[i].max = ~0u;
	mask_only(&p.masks[0], PCM_ACCESS_RW_INTERLEAVED);
	mask_only(&p.masks[1], PCM_FORMAT_S16_LE);
	mask_only(&p.masks[2], 0);
	interval_set(&p, HW_CHANNELS, 2, 2);
	interval_set(&p, HW_RATE, rate, rate);
	interval_set(&p, HW_PERIOD_SIZE, 1024, 1024);
	interval_set(&p, HW_BUFFER_SIZE, 4096, 4096);
	p.rmask = ~0u;
	if (ioctl(fd, IOCTL_HW_PARAMS, &p) < 0 || ioctl(fd, IOCTL_PREPARE) < 0) {
		fprintf(stderr, "hutch-agent: cannot set up the PCM (S16_LE, stereo, %u Hz): %s\n", rate,
			strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int tone_tool(int argc, char **argv)
{
	unsigned secs = argc > 0 ? (unsigned)strtoul(argv[0], NULL, 10) : 1;
	const unsigned rate = 48000, hz = 440, chunk = 1024;
	if (secs == 0 || secs > 60)
		secs = 1;
	int fd = pcm_open(rate);
	if (fd < 0)
		return 1;
	int16_t buf[2 * 1024];
	unsigned long t = 0, total = (unsigned long)rate * secs;
	while (t < total) {
		/* a triangle wave: integer-only, and plainly not silence */
		for (unsigned i = 0; i < chunk; i++, t++) {
			unsigned phase = (unsigned)(t * hz * 32768 / rate % 32768);
			int v = phase < 16384 ? (int)phase - 8192 : 24576 - (int)phase;
			buf[2 * i] = buf[2 * i + 1] = (int16_t)(v * 3);
		}
		struct snd_xferi_abi x = {.buf = buf, .frames = chunk};
		if (ioctl(fd, IOCTL_WRITEI, &x) < 0) {
			if (errno == EPIPE && ioctl(fd, IOCTL_PREPARE) == 0)
				continue; /* an underrun under a slow emulator: carry on */
			fprintf(stderr, "hutch-agent: writing to the PCM: %s\n", strerror(errno));
			close(fd);
			return 1;
		}
	}
	ioctl(fd, IOCTL_DRAIN);
	close(fd);
	printf("played %u s of %u Hz at %u Hz\n", secs, hz, rate);
	return 0;
}
