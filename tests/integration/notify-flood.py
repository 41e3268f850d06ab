"""Run in a guest by 85-notify: COUNT Notify calls on the session bus in one process, through the
guest's own libdbus-1 (ctypes; the guest has python3 but no python3-dbus), without waiting for
answers; BODY_BYTES long bodies; the last call waits for its answer, so when this returns the guest's
notification server has taken every one. Usage: python3 - SUMMARY COUNT BODY_BYTES"""
import ctypes
import sys

summary, count, body_len = sys.argv[1].encode(), int(sys.argv[2]), int(sys.argv[3])
d = ctypes.CDLL("libdbus-1.so.3")
vp, cp = ctypes.c_void_p, ctypes.c_char_p


class Error(ctypes.Structure):
    _fields_ = [("name", cp), ("message", cp), ("bits", ctypes.c_uint), ("padding", vp)]


class Iter(ctypes.Structure):  # DBusMessageIter is 72 bytes on x86-64; room to spare
    _fields_ = [("opaque", ctypes.c_ubyte * 256)]


for f, res, args in [("dbus_bus_get", vp, [ctypes.c_int, vp]),
                     ("dbus_message_new_method_call", vp, [cp, cp, cp, cp]),
                     ("dbus_message_iter_init_append", None, [vp, vp]),
                     ("dbus_message_iter_append_basic", ctypes.c_uint, [vp, ctypes.c_int, vp]),
                     ("dbus_message_iter_open_container", ctypes.c_uint, [vp, ctypes.c_int, cp, vp]),
                     ("dbus_message_iter_close_container", ctypes.c_uint, [vp, vp]),
                     ("dbus_message_set_no_reply", None, [vp, ctypes.c_uint]),
                     ("dbus_connection_send", ctypes.c_uint, [vp, vp, vp]),
                     ("dbus_connection_send_with_reply_and_block", vp, [vp, vp, ctypes.c_int, vp]),
                     ("dbus_connection_flush", None, [vp]),
                     ("dbus_message_unref", None, [vp])]:
    getattr(d, f).restype = res
    getattr(d, f).argtypes = args

err = Error()
conn = d.dbus_bus_get(0, ctypes.byref(err))  # DBUS_BUS_SESSION
if not conn:
    sys.exit("session bus: %s" % err.message)
body = b"x" * body_len
for i in range(count):
    m = d.dbus_message_new_method_call(b"org.freedesktop.Notifications", b"/org/freedesktop/Notifications",
                                       b"org.freedesktop.Notifications", b"Notify")
    it, sub = Iter(), Iter()
    d.dbus_message_iter_init_append(m, ctypes.byref(it))

    def put(code, value):
        d.dbus_message_iter_append_basic(ctypes.byref(it), ord(code), ctypes.byref(value))

    put("s", cp(b"flood"))
    put("u", ctypes.c_uint32(0))
    put("s", cp(b""))
    put("s", cp(summary))
    put("s", cp(body))
    for sig in (b"s", b"{sv}"):  # no actions, no hints
        d.dbus_message_iter_open_container(ctypes.byref(it), ord("a"), sig, ctypes.byref(sub))
        d.dbus_message_iter_close_container(ctypes.byref(it), ctypes.byref(sub))
    put("i", ctypes.c_int32(-1))
    if i < count - 1:
        d.dbus_message_set_no_reply(m, 1)
        d.dbus_connection_send(conn, m, None)
        if i % 200 == 0:
            d.dbus_connection_flush(conn)
    else:
        r = d.dbus_connection_send_with_reply_and_block(conn, m, 120000, ctypes.byref(err))
        if not r:
            sys.exit("Notify: %s" % err.message)
        d.dbus_message_unref(r)
    d.dbus_message_unref(m)
print(count)
