/* Container images into a VM. See cp_image.h. */
#include "cp_image.h"

#include "oci.h"
#include "session.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "lazylib.h" /* after <archive.h>: routes archive_*() through the lazy table */

extern char **environ;

#define GUEST_OUT_MAX 4096 /* what is read back of the guest's output */
#define ENGINE_EXIT_NONE 3

/* In the guest: the first of podman and docker on PATH. */
static const char probe_script[] = "for e in podman docker; do\n"
				   "  command -v \"$e\" >/dev/null 2>&1 && { echo \"$e\"; exit 0; }\n"
				   "done\n"
				   "exit 3\n";

/* In the guest: load the archive on stdin, say what was loaded, tag it when asked. "Loaded image:
 * NAME" (podman, docker) or "Loaded image ID: sha256:..." (docker, an archive without a name). */
static const char load_script[] =
	"out=$(\"$1\" load -q) || exit $?\n"
	"img=$(printf '%s\\n' \"$out\" | sed -n 's/^Loaded image[^:]*: *//p' | tail -n 1)\n"
	"img=${img##*,}\n"
	"printf '%s\\n' \"$img\"\n"
	"[ -n \"$2\" ] || exit 0\n"
	"[ -n \"$img\" ] || { echo \"$1 load did not say what it loaded: $out\" >&2; exit 4; }\n"
	"\"$1\" tag \"$img\" \"$2\"\n";

void cp_image_result_release(struct cp_image_result *r)
{
	if (!r)
		return;
	free(r->engine);
	free(r->image);
	free(r->tag);
	memset(r, 0, sizeof(*r));
}

/* What the guest wrote into FD (a memfd), at most GUEST_OUT_MAX bytes, one line of printable
 * ASCII: the last non-empty line. Untrusted until here. */
static char *memfd_last_line(int fd)
{
	char buf[GUEST_OUT_MAX + 1];
	off_t end = lseek(fd, 0, SEEK_END);
	off_t from = end > GUEST_OUT_MAX ? end - GUEST_OUT_MAX : 0;
	ssize_t n = pread(fd, buf, GUEST_OUT_MAX, from);
	if (n <= 0)
		return xstrdup("");
	buf[n] = 0;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		buf[--n] = 0;
	char *line = strrchr(buf, '\n');
	line = line ? line + 1 : buf;
	for (char *c = line; *c; c++)
		if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
			*c = '?';
	return xstrdup(line);
}

static int guest(const struct store *st, const char *vm, char **argv, int in_fd, int *ret_status, int *ret_out,
		 int *ret_err, struct hutch_error *err)
{
	_cleanup_close_ int out = memfd_create("hutch-cp-image-out", MFD_CLOEXEC);
	_cleanup_close_ int errfd = memfd_create("hutch-cp-image-err", MFD_CLOEXEC);
	if (out < 0 || errfd < 0)
		return hutch_error_set(err, errno, "memfd_create: %s", strerror(errno));
	struct exec_opts o = {
		.argv = argv,
		.user = "root",
		.forward_stdin = in_fd >= 0,
		.in_fd = in_fd >= 0 ? in_fd : STDIN_FILENO,
		.out_fd = out,
		.err_fd = errfd,
	};
	int r = exec_session(st, vm, &o, ret_status, err);
	if (r < 0)
		return r;
	*ret_out = TAKE_FD(out);
	*ret_err = TAKE_FD(errfd);
	return 0;
}

static int probe_engine(const struct store *st, const char *vm, char **ret, struct hutch_error *err)
{
	char *argv[] = {"sh", "-c", (char *)probe_script, NULL};
	int status = 0;
	_cleanup_close_ int out = -1, errfd = -1;
	int r = guest(st, vm, argv, -1, &status, &out, &errfd, err);
	if (r < 0)
		return r;
	_cleanup_free_ char *engine = memfd_last_line(out);
	if (status == ENGINE_EXIT_NONE)
		return hutch_error_set(err, ENOENT,
				       "neither podman nor docker is installed in the guest (apt-get install podman)");
	if (status != 0 || (strcmp(engine, "podman") && strcmp(engine, "docker"))) {
		_cleanup_free_ char *why = memfd_last_line(errfd);
		return hutch_error_set(err, EIO, "cannot look for podman in the guest (status %d): %s", status,
				       *why ? why : "no output");
	}
	*ret = TAKE_PTR(engine);
	return 0;
}

/* ---- oci:DIR as an oci-archive, written on the fly ---- */

static int put_entry(struct archive *a, const char *name, mode_t type, int64_t size)
{
	struct archive_entry *e = archive_entry_new();
	archive_entry_copy_pathname(e, name);
	archive_entry_set_filetype(e, type);
	archive_entry_set_perm(e, type == AE_IFDIR ? 0755 : 0644);
	archive_entry_set_size(e, type == AE_IFDIR ? 0 : size);
	archive_entry_set_mtime(e, 0, 0);
	int r = archive_write_header(a, e) == ARCHIVE_OK ? 0 : -EIO;
	archive_entry_free(e);
	return r;
}

static int put_mem(struct archive *a, const char *name, const char *data, size_t len)
{
	if (put_entry(a, name, AE_IFREG, (int64_t)len) < 0 || archive_write_data(a, data, len) < 0)
		return -EIO;
	return 0;
}

/* The blob at PATH, its size as the manifest says (a blob that changed since is cut or refused:
 * the size in the header must hold). */
static int put_blob(struct archive *a, const char *path, const char *digest, char **ret_why)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat sb;
	if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		*ret_why = xasprintf("cannot read blob '%s': %s", path, fd < 0 ? strerror(errno) : "not a file");
		return -EIO;
	}
	_cleanup_free_ char *name = xasprintf("blobs/sha256/%s", digest + 7);
	if (put_entry(a, name, AE_IFREG, sb.st_size) < 0) {
		*ret_why = xasprintf("tar: %s", archive_error_string(a));
		return -EIO;
	}
	char buf[1 << 16];
	ssize_t n;
	int64_t left = sb.st_size;
	while (left > 0 && (n = read(fd, buf, sizeof(buf))) > 0) {
		if (n > left)
			n = (ssize_t)left;
		if (archive_write_data(a, buf, (size_t)n) < 0) {
			*ret_why = xasprintf("writing into the guest: %s", archive_error_string(a));
			return -EIO;
		}
		left -= n;
	}
	if (left > 0) {
		*ret_why = xasprintf("blob '%s' got shorter while it was read", path);
		return -EIO;
	}
	return 0;
}

struct layout_stream {
	const char *dir;
	const struct oci_image *img;
	char *index; /* index.json naming the one manifest */
	char *manifest_path;
};

static int write_layout(int fd, const struct layout_stream *ls, char **ret_why)
{
	struct archive *a = archive_write_new();
	archive_write_set_format_pax_restricted(a);
	archive_write_set_bytes_in_last_block(a, 1);
	if (archive_write_open_fd(a, fd) != ARCHIVE_OK) {
		*ret_why = xasprintf("tar: %s", archive_error_string(a));
		archive_write_free(a);
		return -EIO;
	}
	static const char layout[] = "{\"imageLayoutVersion\":\"1.0.0\"}";
	int r = put_mem(a, "oci-layout", layout, strlen(layout));
	if (r == 0)
		r = put_mem(a, "index.json", ls->index, strlen(ls->index));
	if (r == 0)
		r = put_entry(a, "blobs", AE_IFDIR, 0);
	if (r == 0)
		r = put_entry(a, "blobs/sha256", AE_IFDIR, 0);
	if (r < 0)
		*ret_why = xasprintf("tar: %s", archive_error_string(a));
	if (r == 0)
		r = put_blob(a, ls->manifest_path, ls->img->key, ret_why);
	_cleanup_free_ char *cfg = xasprintf("%s/blobs/sha256/%s", ls->dir, ls->img->config_digest + 7);
	if (r == 0)
		r = put_blob(a, cfg, ls->img->config_digest, ret_why);
	for (size_t i = 0; r == 0 && i < ls->img->n_layers; i++)
		r = put_blob(a, ls->img->layers[i].path, ls->img->layers[i].digest, ret_why);
	if (r == 0 && archive_write_close(a) != ARCHIVE_OK) {
		*ret_why = xasprintf("tar: %s", archive_error_string(a));
		r = -EIO;
	}
	archive_write_free(a);
	return r;
}

/* index.json for the chosen manifest only, with its media type as the manifest says. */
static int layout_index(struct layout_stream *ls, uint64_t *ret_bytes, struct hutch_error *err)
{
	ls->manifest_path = xasprintf("%s/blobs/sha256/%s", ls->dir, ls->img->key + 7);
	_cleanup_free_ char *m = NULL;
	size_t len = 0;
	int r = read_file(ls->manifest_path, OCI_JSON_MAX, &m, &len, err);
	if (r < 0)
		return r;
	json_object *mo = json_tokener_parse(m), *mt = NULL;
	const char *type =
		mo && json_object_object_get_ex(mo, "mediaType", &mt) && json_object_is_type(mt, json_type_string)
			? json_object_get_string(mt)
			: "application/vnd.oci.image.manifest.v1+json";
	json_object *idx = json_object_new_object(), *arr = json_object_new_array(), *d = json_object_new_object();
	json_object_object_add(d, "mediaType", json_object_new_string(type));
	json_object_object_add(d, "digest", json_object_new_string(ls->img->key));
	json_object_object_add(d, "size", json_object_new_int64((int64_t)len));
	json_object_array_add(arr, d);
	json_object_object_add(idx, "schemaVersion", json_object_new_int(2));
	json_object_object_add(idx, "manifests", arr);
	ls->index = xstrdup(json_object_to_json_string_ext(idx, JSON_C_TO_STRING_PLAIN));
	json_object_put(idx);
	json_object_put(mo);
	uint64_t bytes = len + ls->img->config_len;
	for (size_t i = 0; i < ls->img->n_layers; i++) {
		struct stat sb;
		if (stat(ls->img->layers[i].path, &sb) == 0)
			bytes += (uint64_t)sb.st_size;
	}
	*ret_bytes = bytes;
	return 0;
}

/* ---- the source: a stream on *ret_fd, from a file, a child writing a layout, or podman save ---- */

struct source {
	int fd;	   /* what the guest's stdin reads */
	pid_t pid; /* a writer child or podman save; 0 when fd is a file */
	int why;   /* memfd: the child's error, if any */
	uint64_t bytes;
	char *default_tag;
};

static void source_release(struct source *s)
{
	if (s->fd >= 0)
		close(s->fd);
	if (s->pid > 0) {
		kill(s->pid, SIGTERM);
		waitpid(s->pid, NULL, 0);
	}
	if (s->why >= 0)
		close(s->why);
	free(s->default_tag);
}

static int open_archive_file(const char *path, struct source *s, struct hutch_error *err)
{
	s->fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat sb;
	if (s->fd < 0 || fstat(s->fd, &sb) < 0)
		return hutch_error_set(err, errno, "cannot open '%s': %s", path, strerror(errno));
	if (!S_ISREG(sb.st_mode))
		return hutch_error_set(err, EINVAL, "'%s' is not an archive file", path);
	s->bytes = (uint64_t)sb.st_size;
	return 0;
}

static int open_layout(const struct oci_ref *ref, struct source *s, struct hutch_error *err)
{
	int r = lazy_archive_load(err);
	if (r < 0)
		return r;
	struct oci_image img = {0};
	r = oci_open(ref, NULL, &img, err);
	if (r < 0)
		return r;
	struct layout_stream ls = {.dir = ref->path, .img = &img};
	r = layout_index(&ls, &s->bytes, err);
	int p[2] = {-1, -1};
	if (r == 0 && pipe2(p, O_CLOEXEC) < 0)
		r = hutch_error_set(err, errno, "pipe: %s", strerror(errno));
	if (r == 0 && (s->why = memfd_create("hutch-cp-image-why", MFD_CLOEXEC)) < 0)
		r = hutch_error_set(err, errno, "memfd_create: %s", strerror(errno));
	if (r == 0 && (s->pid = fork()) < 0)
		r = hutch_error_set(err, errno, "fork: %s", strerror(errno));
	if (r == 0 && s->pid == 0) {
		close(p[0]);
		signal(SIGPIPE, SIG_DFL);
		char *why = NULL;
		int wr = write_layout(p[1], &ls, &why);
		if (wr < 0 && why)
			(void)!write(s->why, why, strlen(why));
		_exit(wr < 0 ? 1 : 0);
	}
	if (p[1] >= 0)
		close(p[1]);
	s->fd = p[0];
	free(ls.index);
	free(ls.manifest_path);
	const char *base = strrchr(ref->path, '/') ? strrchr(ref->path, '/') + 1 : ref->path;
	if (r == 0)
		s->default_tag = xasprintf("localhost/%s:%s", *base ? base : "image", ref->tag ? ref->tag : "latest");
	oci_image_release(&img);
	return r;
}

static int open_storage(const char *name, struct source *s, struct hutch_error *err)
{
	if (!*name || name[0] == '-')
		return hutch_error_set(err, EINVAL, "containers-storage name '%s' is not an image name", name);
	_cleanup_free_ char *podman = path_find("podman", NULL);
	if (!podman)
		return hutch_error_set(err, ENOENT, "containers-storage:%s needs podman on the host", name);
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return hutch_error_set(err, errno, "pipe: %s", strerror(errno));
	s->why = memfd_create("hutch-cp-image-why", 0);
	char *argv[] = {podman, "image", "save", "--quiet", "--format", "docker-archive", (char *)name, NULL};
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	if (s->why >= 0)
		posix_spawn_file_actions_adddup2(&fa, s->why, 2);
	int sr = posix_spawn(&s->pid, podman, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	s->fd = p[0];
	if (sr != 0) {
		s->pid = 0;
		return hutch_error_set(err, sr, "cannot run %s: %s", podman, strerror(sr));
	}
	return 0;
}

/* The writer's or podman save's verdict, once the guest is done with the stream. */
static int source_finish(struct source *s, const char *ref, struct hutch_error *err)
{
	if (s->fd >= 0) {
		close(s->fd);
		s->fd = -1;
	}
	if (s->pid <= 0)
		return 0;
	int ws = 0;
	while (waitpid(s->pid, &ws, 0) < 0 && errno == EINTR)
		;
	s->pid = 0;
	if (WIFEXITED(ws) && WEXITSTATUS(ws) == 0)
		return 0;
	_cleanup_free_ char *why = s->why >= 0 ? memfd_last_line(s->why) : xstrdup("");
	return hutch_error_set(err, EIO, "reading '%s' failed: %s", ref, *why ? why : "the writer was cut off");
}

int cp_image(const struct store *st, const char *vm, const char *refs, const struct cp_image_opts *o,
	     struct cp_image_result *ret, struct hutch_error *err)
{
	struct oci_ref ref = {0};
	int r = oci_ref_parse(refs, &ref, err);
	if (r < 0)
		return r;
	_cleanup_free_ char *engine = NULL;
	r = probe_engine(st, vm, &engine, err);
	struct source s = {.fd = -1, .why = -1};
	if (r == 0) {
		switch (ref.transport) {
		case OCI_DIR:
			r = open_layout(&ref, &s, err);
			break;
		case OCI_ARCHIVE:
		case OCI_DOCKER_ARCHIVE:
			r = open_archive_file(ref.path, &s, err);
			break;
		case OCI_CONTAINERS_STORAGE:
			r = open_storage(ref.path, &s, err);
			break;
		default:
			r = hutch_error_set(err, EINVAL, "unknown image transport");
		}
		if (r < 0)
			hutch_error_wrap(err, "image '%s'", refs);
	}
	oci_ref_release(&ref);
	const char *tag = o->as ? o->as : s.default_tag;
	int status = 0;
	_cleanup_close_ int out = -1, errfd = -1;
	if (r == 0) {
		char *argv[] = {"sh", "-c", (char *)load_script, "hutch-cp-image", engine, (char *)(tag ? tag : ""),
				NULL};
		r = guest(st, vm, argv, s.fd, &status, &out, &errfd, err);
	}
	if (r == 0 && status != 0) {
		_cleanup_free_ char *why = memfd_last_line(errfd);
		r = hutch_error_set(err, EIO, "%s load in the guest failed (status %d): %s", engine, status,
				    *why ? why : "no output");
	}
	if (r == 0)
		r = source_finish(&s, refs, err);
	if (r == 0) {
		*ret = (struct cp_image_result){.engine = TAKE_PTR(engine),
						.image = memfd_last_line(out),
						.tag = tag ? xstrdup(tag) : NULL,
						.bytes = s.bytes};
	}
	source_release(&s);
	return r;
}
