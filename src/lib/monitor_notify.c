#include "monitor_notify.h"

#include "color.h"
#include "notify.h"
#include "proto.h"
#include "spec.h"

#include "notification.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#ifdef HAVE_DBUS
#include <dbus/dbus.h>

#include "lazydbus.h"

#define SERVICE "org.freedesktop.Notifications"
#define RETRY_MS 10000	  /* a host without a session bus is not asked again for this long */
#define CAPS_TIMEOUT 3000 /* GetCapabilities, once per connection */

static struct {
	struct notify_rate rate;
	DBusConnection *bus;
	uint64_t retry_at;
	bool markup; /* the server takes body markup: the body is escaped for it */
	uint64_t shown, dropped;
} S;

static uint64_t mono_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void logf_(void (*log)(const char *), const char *fmt, ...) _printf_(2, 3);
static void logf_(void (*log)(const char *), const char *fmt, ...)
{
	char line[300];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (log)
		log(line);
}

/* The user's session bus: DBUS_SESSION_BUS_ADDRESS, else $XDG_RUNTIME_DIR/bus. Never autolaunch. */
static char *bus_address(void)
{
	const char *a = getenv("DBUS_SESSION_BUS_ADDRESS"), *rt = getenv("XDG_RUNTIME_DIR");
	if (a && *a)
		return xstrdup(a);
	if (!rt || !*rt)
		return NULL;
	_cleanup_free_ char *p = xasprintf("%s/bus", rt);
	struct stat st;
	return stat(p, &st) == 0 && S_ISSOCK(st.st_mode) ? xasprintf("unix:path=%s", p) : NULL;
}

static bool server_has_markup(DBusConnection *c)
{
	DBusMessage *q =
		dbus_message_new_method_call(SERVICE, "/org/freedesktop/Notifications", SERVICE, "GetCapabilities");
	DBusError e;
	dbus_error_init(&e);
	DBusMessage *r = q ? dbus_connection_send_with_reply_and_block(c, q, CAPS_TIMEOUT, &e) : NULL;
	bool markup = false;
	DBusMessageIter it, arr;
	if (r && dbus_message_iter_init(r, &it) && dbus_message_iter_get_arg_type(&it) == DBUS_TYPE_ARRAY) {
		dbus_message_iter_recurse(&it, &arr);
		for (; dbus_message_iter_get_arg_type(&arr) == DBUS_TYPE_STRING; dbus_message_iter_next(&arr)) {
			const char *cap;
			dbus_message_iter_get_basic(&arr, &cap);
			markup |= !strcmp(cap, "body-markup");
		}
	}
	dbus_error_free(&e);
	if (q)
		dbus_message_unref(q);
	if (r)
		dbus_message_unref(r);
	return markup;
}

static DBusConnection *bus(void (*log)(const char *))
{
	if (S.bus && dbus_connection_get_is_connected(S.bus))
		return S.bus;
	if (S.bus) {
		dbus_connection_close(S.bus);
		dbus_connection_unref(S.bus);
		S.bus = NULL;
	}
	uint64_t now = mono_now_ms();
	if (now < S.retry_at)
		return NULL;
	S.retry_at = now + RETRY_MS;
	struct hutch_error err = {0};
	if (lazy_dbus_load(&err) < 0) {
		logf_(log, "notifications: %s", err.msg);
		hutch_error_clear(&err);
		return NULL;
	}
	_cleanup_free_ char *addr = bus_address();
	if (!addr) {
		logf_(log, "notifications: no session bus (DBUS_SESSION_BUS_ADDRESS, XDG_RUNTIME_DIR/bus): not shown");
		return NULL;
	}
	DBusError e;
	dbus_error_init(&e);
	DBusConnection *c = dbus_connection_open_private(addr, &e);
	if (c && !dbus_bus_register(c, &e)) {
		dbus_connection_close(c);
		dbus_connection_unref(c);
		c = NULL;
	}
	if (!c) {
		logf_(log, "notifications: session bus: %s", e.message ? e.message : "cannot connect");
		dbus_error_free(&e);
		return NULL;
	}
	dbus_connection_set_exit_on_disconnect(c, 0);
	S.markup = server_has_markup(c);
	return S.bus = c;
}

static void append_dict_str(DBusMessageIter *dict, const char *key, const char *val)
{
	DBusMessageIter ent, var;
	dbus_message_iter_open_container(dict, DBUS_TYPE_DICT_ENTRY, NULL, &ent);
	dbus_message_iter_append_basic(&ent, DBUS_TYPE_STRING, &key);
	dbus_message_iter_open_container(&ent, DBUS_TYPE_VARIANT, "s", &var);
	dbus_message_iter_append_basic(&var, DBUS_TYPE_STRING, &val);
	dbus_message_iter_close_container(&ent, &var);
	dbus_message_iter_close_container(dict, &ent);
}

static void append_hints(DBusMessageIter *it, const struct proto_notify *n, const char *vm, const struct vm_spec *s)
{
	DBusMessageIter dict, ent, var, st, arr;
	dbus_message_iter_open_container(it, DBUS_TYPE_ARRAY, "{sv}", &dict);
	const char *key = "urgency";
	uint8_t urgency = n->urgency;
	dbus_message_iter_open_container(&dict, DBUS_TYPE_DICT_ENTRY, NULL, &ent);
	dbus_message_iter_append_basic(&ent, DBUS_TYPE_STRING, &key);
	dbus_message_iter_open_container(&ent, DBUS_TYPE_VARIANT, "y", &var);
	dbus_message_iter_append_basic(&var, DBUS_TYPE_BYTE, &urgency);
	dbus_message_iter_close_container(&ent, &var);
	dbus_message_iter_close_container(&dict, &ent);
	append_dict_str(&dict, "x-hutch-vm", vm);
	uint32_t rgb;
	char hex[16];
	if (s->color && color_parse(s->color, &rgb) == 0)
		append_dict_str(&dict, "x-hutch-color", color_hex(rgb, hex, sizeof(hex)));
	if (n->image && n->width <= NOTIFY_IMAGE_SIDE && n->height <= NOTIFY_IMAGE_SIDE) {
		/* decode checked: image_len == width * height * channels, rows unpadded */
		int32_t w = (int32_t)n->width, h = (int32_t)n->height, ch = 3 + n->has_alpha, stride = w * ch, bits = 8;
		dbus_bool_t alpha = n->has_alpha;
		const uint8_t *px = n->image;
		key = "image-data";
		dbus_message_iter_open_container(&dict, DBUS_TYPE_DICT_ENTRY, NULL, &ent);
		dbus_message_iter_append_basic(&ent, DBUS_TYPE_STRING, &key);
		dbus_message_iter_open_container(&ent, DBUS_TYPE_VARIANT, "(iiibiiay)", &var);
		dbus_message_iter_open_container(&var, DBUS_TYPE_STRUCT, NULL, &st);
		dbus_message_iter_append_basic(&st, DBUS_TYPE_INT32, &w);
		dbus_message_iter_append_basic(&st, DBUS_TYPE_INT32, &h);
		dbus_message_iter_append_basic(&st, DBUS_TYPE_INT32, &stride);
		dbus_message_iter_append_basic(&st, DBUS_TYPE_BOOLEAN, &alpha);
		dbus_message_iter_append_basic(&st, DBUS_TYPE_INT32, &bits);
		dbus_message_iter_append_basic(&st, DBUS_TYPE_INT32, &ch);
		dbus_message_iter_open_container(&st, DBUS_TYPE_ARRAY, "y", &arr);
		dbus_message_iter_append_fixed_array(&arr, DBUS_TYPE_BYTE, &px, (int)n->image_len);
		dbus_message_iter_close_container(&st, &arr);
		dbus_message_iter_close_container(&var, &st);
		dbus_message_iter_close_container(&ent, &var);
		dbus_message_iter_close_container(&dict, &ent);
	}
	dbus_message_iter_close_container(it, &dict);
}

/* Notify(app_name, replaces_id, app_icon, summary, body, actions, hints, expire_timeout). A guest's
 * id never replaces a host notification: replaces_id is 0, so one VM cannot touch what another
 * showed. */
static void show(DBusConnection *c, const struct proto_notify *n, const char *vm, const struct vm_spec *s)
{
	_cleanup_free_ char *app_clean = notify_text(n->app, NOTIFY_APP_CHARS, true, false);
	_cleanup_free_ char *sum_clean = notify_text(n->summary, NOTIFY_SUMMARY_CHARS, true, false);
	_cleanup_free_ char *body = notify_text(n->body, NOTIFY_BODY_CHARS, false, S.markup);
	_cleanup_free_ char *app = xasprintf("[%s] %s", vm, app_clean);
	_cleanup_free_ char *summary = xasprintf("[%s] %s", vm, sum_clean);
	const char *icon = notify_icon_ok(n->icon) ? n->icon : "";
	const char *a = app, *sm = summary, *b = body;
	uint32_t replaces = 0;
	int32_t expire = n->expire_ms > 0 && n->expire_ms <= 60000 ? n->expire_ms : -1;
	DBusMessage *msg = dbus_message_new_method_call(SERVICE, "/org/freedesktop/Notifications", SERVICE, "Notify");
	if (!msg)
		return;
	DBusMessageIter it, actions;
	dbus_message_iter_init_append(msg, &it);
	dbus_message_iter_append_basic(&it, DBUS_TYPE_STRING, &a);
	dbus_message_iter_append_basic(&it, DBUS_TYPE_UINT32, &replaces);
	dbus_message_iter_append_basic(&it, DBUS_TYPE_STRING, &icon);
	dbus_message_iter_append_basic(&it, DBUS_TYPE_STRING, &sm);
	dbus_message_iter_append_basic(&it, DBUS_TYPE_STRING, &b);
	dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "s", &actions); /* none: nothing goes back */
	dbus_message_iter_close_container(&it, &actions);
	append_hints(&it, n, vm, s);
	dbus_message_iter_append_basic(&it, DBUS_TYPE_INT32, &expire);
	dbus_message_set_no_reply(msg, 1);
	dbus_connection_send(c, msg, NULL);
	dbus_message_unref(msg);
	dbus_connection_flush(c);
	/* what the bus sends us (NameAcquired, errors) is read and thrown away, so it cannot pile up */
	dbus_connection_read_write(c, 0);
	for (DBusMessage *in; (in = dbus_connection_pop_message(c));)
		dbus_message_unref(in);
}
#endif

bool mon_notify_wanted(const struct vm_spec *s) { return s->desk.notifications != TRI_FALSE; }

int mon_notify_frame(const char *vm, const struct vm_spec *s, const void *payload, size_t len,
		     void (*log)(const char *line))
{
	struct proto_notify n;
	if (proto_decode_notify(payload, len, &n) < 0)
		return -1;
	if (!mon_notify_wanted(s)) {
		proto_notify_free(&n);
		return 0;
	}
#ifdef HAVE_DBUS
	if (!notify_rate_allow(&S.rate, mono_now_ms())) {
		/* one line per hundred, not per notification: the log is not the thing to flood */
		if (++S.dropped % 100 == 1)
			logf_(log, "notifications: %llu dropped so far (more than %d at once, then one per %d ms)",
			      (unsigned long long)S.dropped, NOTIFY_BURST, NOTIFY_REFILL_MS);
		proto_notify_free(&n);
		return 0;
	}
	DBusConnection *c = bus(log);
	if (c) {
		show(c, &n, vm, s);
		S.shown++;
	}
#else
	if (log)
		log("notifications: this hutch was built without libdbus-1: not shown");
#endif
	proto_notify_free(&n);
	return 0;
}
