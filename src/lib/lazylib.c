#define LAZY_IMPL
#define CURL_DISABLE_TYPECHECK

#include <archive.h>
#include <archive_entry.h>
#include <dlfcn.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>

#ifdef HAVE_CURL
#include <curl/curl.h>
#endif

#include "lazylib.h"

#ifdef HAVE_DBUS
#include <dbus/dbus.h>

#include "lazydbus.h"
#endif

#ifdef HAVE_LIBVIRT
#include <libvirt/libvirt.h>
#include <libxml/parser.h>
#include <libxml/xmlwriter.h>

#include "lazyvirt.h"
#endif

/* One library: its sonames (tried in order), the Debian package that ships it, and the symbols
 * in table order. hutch is single-threaded but for the preload thread, which the caller joins
 * before it touches the library, so a plain flag guards the load. */
struct lazy_lib {
	const char *const *sonames;
	const char *package;
	const char *const *names;
	void **table;
	size_t n;
	bool loaded;
	char *failure; /* the first failure, repeated to later callers */
};

static int lazy_load(struct lazy_lib *lib, struct hutch_error *err)
{
	if (lib->loaded)
		return 0;
	if (!lib->failure) {
		void *h = NULL;
		const char *why = "not found";
		for (size_t i = 0; lib->sonames[i] && !h; i++) {
			h = dlopen(lib->sonames[i], RTLD_NOW | RTLD_LOCAL);
			if (!h)
				why = dlerror();
		}
		if (!h)
			lib->failure = xasprintf("cannot load %s (install the Debian package %s): %s", lib->sonames[0],
						 lib->package, why);
		for (size_t i = 0; h && i < lib->n && !lib->failure; i++) {
			lib->table[i] = dlsym(h, lib->names[i]);
			if (!lib->table[i])
				lib->failure = xasprintf("%s has no %s (install the Debian package %s)",
							 lib->sonames[0], lib->names[i], lib->package);
		}
		/* The handle stays open for the life of the process. */
		lib->loaded = !lib->failure;
	}
	return lib->loaded ? 0 : hutch_error_set(err, ENOPKG, "%s", lib->failure);
}

static void *lazy_table_or_exit(struct lazy_lib *lib)
{
	if (!lib->loaded) {
		struct hutch_error err = {0};
		if (lazy_load(lib, &err) < 0) {
			fprintf(stderr, "hutch: %s\n", err.msg);
			_exit(127);
		}
	}
	return lib->table;
}

#define LAZY_NAME(f) #f,
#define LAZY_LIB(name, package_, ...)                                                           \
	static struct lazy_##name##_table name##_table;                                         \
	static const char *const name##_sonames[] = {__VA_ARGS__, NULL};                        \
	static const char *const name##_names[] = {LAZY_FUNCS_##name(LAZY_NAME)};               \
	_Static_assert(sizeof(name##_table) == sizeof(name##_names), "one pointer per name");   \
	static struct lazy_lib name##_lib = {                                                   \
		.sonames = name##_sonames,                                                      \
		.package = package_,                                                            \
		.names = name##_names,                                                          \
		.table = (void **)&name##_table,                                                \
		.n = sizeof(name##_names) / sizeof(name##_names[0]),                            \
	};                                                                                      \
	int lazy_##name##_load(struct hutch_error *err) { return lazy_load(&name##_lib, err); } \
	const struct lazy_##name##_table *lazy_##name(void) { return lazy_table_or_exit(&name##_lib); }

#define LAZY_FUNCS_archive LAZY_ARCHIVE_FUNCS
#define LAZY_FUNCS_crypto LAZY_CRYPTO_FUNCS
LAZY_LIB(archive, "libarchive13", "libarchive.so.13")
LAZY_LIB(crypto, "libssl3", "libcrypto.so.3")

#ifdef HAVE_CURL
#define LAZY_FUNCS_curl LAZY_CURL_FUNCS
LAZY_LIB(curl, "libcurl4", "libcurl.so.4", "libcurl-gnutls.so.4")
#else
int lazy_curl_load(struct hutch_error *err)
{
	return hutch_error_set(err, ENOSYS, "this hutch was built without libcurl");
}
#endif

#ifdef HAVE_LIBVIRT
#define LAZY_FUNCS_virt LAZY_VIRT_FUNCS
#define LAZY_FUNCS_xml LAZY_XML_FUNCS
LAZY_LIB(virt, "libvirt0", "libvirt.so.0")
LAZY_LIB(xml, "libxml2", "libxml2.so.2")
#endif

#ifdef HAVE_DBUS
#define LAZY_FUNCS_dbus LAZY_DBUS_FUNCS
LAZY_LIB(dbus, "libdbus-1-3", "libdbus-1.so.3")
#else
int lazy_dbus_load(struct hutch_error *err)
{
	return hutch_error_set(err, ENOSYS, "this hutch was built without libdbus-1");
}
#endif

static pthread_t preload_thread;
static bool preload_running;

static void *archive_preload(void *arg)
{
	(void)lazy_archive_load(NULL); /* a failure is kept and reported by the caller's own load */
	return arg;
}

void lazy_archive_preload_start(void)
{
	if (!preload_running && !archive_lib.loaded)
		preload_running = pthread_create(&preload_thread, NULL, archive_preload, NULL) == 0;
}

void lazy_archive_preload_join(void)
{
	if (preload_running)
		pthread_join(preload_thread, NULL);
	preload_running = false;
}
