/* hutch-notifyd: org.freedesktop.Notifications on a guest session bus, for the agent.
 *
 * The agent is a static musl binary and cannot link libdbus, and D-Bus is not a protocol to write by
 * hand. So this small helper is built against the real libdbus-1 (dynamically, with glibc), carried
 * inside the agent and started by it from a memfd, as the bus's user: it owns the name, answers
 * Notify, GetCapabilities, GetServerInformation and CloseNotification, and writes each notification
 * to stdout (a pipe to the agent) as a MSG_NOTIFY frame (src/proto/notification.h), cut to the protocol's
 * bounds. It uses the guest's own libdbus-1.so.3, so a guest without one has no notifications, as
 * it has no session bus to send them on. Its first frame, empty, says it owns the name. */
#include "notification.h"

#include <dbus/dbus.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NAME "org.freedesktop.Notifications"
#define PATH "/org/freedesktop/Notifications"

static uint32_t last_id;

static void emit(const void *payload, size_t len)
{
	struct proto_buf b = {0};
	if (proto_frame_append(&b, MSG_NOTIFY, 0, payload, len) < 0 || b.oom)
		exit(1);
	for (size_t off = 0; off < b.len;) {
		ssize_t n = write(1, b.data + off, b.len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			exit(0); /* the agent is gone */
		off += (size_t)n;
	}
	proto_buf_free(&b);
}

/* image-data (iiibiiay), 8 bits a sample, 3 or 4 channels, repacked without row padding; anything
 * else, or bigger than the protocol takes, is left out. */
static void read_image(DBusMessageIter *var, struct proto_notify *n)
{
	DBusMessageIter st;
	char *sig = dbus_message_iter_get_signature(var);
	bool ok = sig && !strcmp(sig, "(iiibiiay)");
	dbus_free(sig);
	if (!ok)
		return;
	dbus_message_iter_recurse(var, &st);
	int32_t v[5];
	dbus_bool_t alpha = 0;
	for (int i = 0; i < 6; i++, dbus_message_iter_next(&st)) {
		if (i == 3)
			dbus_message_iter_get_basic(&st, &alpha);
		else
			dbus_message_iter_get_basic(&st, &v[i < 3 ? i : i - 1]);
	}
	int32_t w = v[0], h = v[1], stride = v[2], bits = v[3], channels = v[4];
	DBusMessageIter arr;
	dbus_message_iter_recurse(&st, &arr);
	const uint8_t *px = NULL;
	int len = 0;
	dbus_message_iter_get_fixed_array(&arr, &px, &len);
	if (w <= 0 || h <= 0 || w > (int)PROTO_NOTIFY_IMAGE_SIDE_MAX || h > (int)PROTO_NOTIFY_IMAGE_SIDE_MAX ||
	    bits != 8 || channels != 3 + !!alpha || stride < w * channels ||
	    (int64_t)stride * (h - 1) + (int64_t)w * channels > len)
		return;
	size_t row = (size_t)w * (size_t)channels;
	n->image = malloc(row * (size_t)h);
	if (!n->image)
		return;
	for (int y = 0; y < h; y++)
		memcpy(n->image + row * (size_t)y, px + (size_t)stride * (size_t)y, row);
	n->width = (uint32_t)w;
	n->height = (uint32_t)h;
	n->has_alpha = !!alpha;
	n->image_len = (uint32_t)(row * (size_t)h);
}

static void read_hints(DBusMessageIter *arr, struct proto_notify *n)
{
	DBusMessageIter ent;
	dbus_message_iter_recurse(arr, &ent);
	for (; dbus_message_iter_get_arg_type(&ent) == DBUS_TYPE_DICT_ENTRY; dbus_message_iter_next(&ent)) {
		DBusMessageIter kv, var;
		const char *key;
		dbus_message_iter_recurse(&ent, &kv);
		dbus_message_iter_get_basic(&kv, &key);
		dbus_message_iter_next(&kv);
		dbus_message_iter_recurse(&kv, &var);
		if (!strcmp(key, "urgency") && dbus_message_iter_get_arg_type(&var) == DBUS_TYPE_BYTE) {
			uint8_t u;
			dbus_message_iter_get_basic(&var, &u);
			n->urgency = u <= 2 ? u : 1;
		} else if (!n->image &&
			   (!strcmp(key, "image-data") || !strcmp(key, "image_data") || !strcmp(key, "icon_data"))) {
			read_image(&var, n);
		}
	}
}

static DBusHandlerResult notify(DBusConnection *c, DBusMessage *msg)
{
	if (!dbus_message_has_signature(msg, "susssasa{sv}i")) {
		DBusMessage *e = dbus_message_new_error(msg, DBUS_ERROR_INVALID_ARGS, "expected susssasa{sv}i");
		dbus_connection_send(c, e, NULL);
		dbus_message_unref(e);
		return DBUS_HANDLER_RESULT_HANDLED;
	}
	struct proto_notify n = {.urgency = 1};
	DBusMessageIter it;
	dbus_message_iter_init(msg, &it);
	const char *str[4];
	uint32_t replaces;
	dbus_message_iter_get_basic(&it, &str[0]); /* app_name */
	dbus_message_iter_next(&it);
	dbus_message_iter_get_basic(&it, &replaces);
	for (int i = 1; i < 4; i++) { /* app_icon, summary, body */
		dbus_message_iter_next(&it);
		dbus_message_iter_get_basic(&it, &str[i]);
	}
	dbus_message_iter_next(&it); /* actions: the host shows none */
	dbus_message_iter_next(&it);
	read_hints(&it, &n);
	dbus_message_iter_next(&it);
	dbus_message_iter_get_basic(&it, &n.expire_ms);
	if (n.expire_ms < -1)
		n.expire_ms = -1;
	n.id = replaces ? replaces : ++last_id;
	if (!last_id) /* 0 is not an id */
		n.id = ++last_id;
	n.app = (char *)str[0];
	/* a theme name only: a path would name a file of the guest's, which the host cannot show */
	n.icon = strchr(str[1], '/') ? "" : (char *)str[1];
	n.summary = (char *)str[2];
	n.body = (char *)str[3];
	struct proto_buf b = {0};
	proto_encode_notify(&b, &n);
	free(n.image);
	emit(b.data, b.len);
	proto_buf_free(&b);
	DBusMessage *r = dbus_message_new_method_return(msg);
	dbus_message_append_args(r, DBUS_TYPE_UINT32, &n.id, DBUS_TYPE_INVALID);
	dbus_connection_send(c, r, NULL);
	dbus_message_unref(r);
	return DBUS_HANDLER_RESULT_HANDLED;
}

static const char introspection[] = DBUS_INTROSPECT_1_0_XML_DOCTYPE_DECL_NODE
	"<node><interface name='" NAME "'>"
	"<method name='Notify'><arg type='s' direction='in'/><arg type='u' direction='in'/>"
	"<arg type='s' direction='in'/><arg type='s' direction='in'/><arg type='s' direction='in'/>"
	"<arg type='as' direction='in'/><arg type='a{sv}' direction='in'/><arg type='i' direction='in'/>"
	"<arg type='u' direction='out'/></method>"
	"<method name='CloseNotification'><arg type='u' direction='in'/></method>"
	"<method name='GetCapabilities'><arg type='as' direction='out'/></method>"
	"<method name='GetServerInformation'><arg type='s' direction='out'/><arg type='s' direction='out'/>"
	"<arg type='s' direction='out'/><arg type='s' direction='out'/></method>"
	"<signal name='NotificationClosed'><arg type='u'/><arg type='u'/></signal>"
	"</interface></node>";

static DBusHandlerResult on_message(DBusConnection *c, DBusMessage *msg, void *data)
{
	(void)data;
	DBusMessage *r = NULL;
	if (dbus_message_is_method_call(msg, NAME, "Notify"))
		return notify(c, msg);
	if (dbus_message_is_method_call(msg, NAME, "GetCapabilities")) {
		/* plain text: the host strips markup, and shows no actions */
		const char *caps[] = {"body"};
		const char **p = caps;
		r = dbus_message_new_method_return(msg);
		dbus_message_append_args(r, DBUS_TYPE_ARRAY, DBUS_TYPE_STRING, &p, 1, DBUS_TYPE_INVALID);
	} else if (dbus_message_is_method_call(msg, NAME, "GetServerInformation")) {
		const char *name = "hutch", *vendor = "hutch", *version = HUTCH_VERSION, *spec = "1.2";
		r = dbus_message_new_method_return(msg);
		dbus_message_append_args(r, DBUS_TYPE_STRING, &name, DBUS_TYPE_STRING, &vendor, DBUS_TYPE_STRING,
					 &version, DBUS_TYPE_STRING, &spec, DBUS_TYPE_INVALID);
	} else if (dbus_message_is_method_call(msg, NAME, "CloseNotification")) {
		r = dbus_message_new_method_return(msg);
	} else if (dbus_message_is_method_call(msg, DBUS_INTERFACE_INTROSPECTABLE, "Introspect")) {
		const char *x = introspection;
		r = dbus_message_new_method_return(msg);
		dbus_message_append_args(r, DBUS_TYPE_STRING, &x, DBUS_TYPE_INVALID);
	} else {
		return DBUS_HANDLER_RESULT_NOT_YET_HANDLED;
	}
	dbus_connection_send(c, r, NULL);
	dbus_message_unref(r);
	return DBUS_HANDLER_RESULT_HANDLED;
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	DBusError e;
	dbus_error_init(&e);
	DBusConnection *c = dbus_bus_get(DBUS_BUS_SESSION, &e);
	if (!c) {
		fprintf(stderr, "hutch-notifyd: session bus: %s\n", e.message);
		return 1;
	}
	static const DBusObjectPathVTable vt = {.message_function = on_message};
	if (!dbus_connection_register_object_path(c, PATH, &vt, NULL))
		return 1;
	/* a notification daemon of the guest's own is replaced: what a VM shows goes to the host */
	int r = dbus_bus_request_name(c, NAME, DBUS_NAME_FLAG_REPLACE_EXISTING | DBUS_NAME_FLAG_DO_NOT_QUEUE, &e);
	if (r != DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER) {
		fprintf(stderr, "hutch-notifyd: cannot own %s: %s\n", NAME,
			dbus_error_is_set(&e) ? e.message : "taken");
		return 1;
	}
	emit(NULL, 0);
	while (dbus_connection_read_write_dispatch(c, -1))
		;
	return 0;
}
