#!/usr/bin/env python3
"""A notification server for the tests (85-notify): owns org.freedesktop.Notifications on the session
bus it is given and writes each Notify it gets to OUT as one JSON line. Plain text: no body-markup."""
import json
import sys

import dbus
import dbus.mainloop.glib
import dbus.service
from gi.repository import GLib

IFACE = "org.freedesktop.Notifications"
dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
out = open(sys.argv[1], "a", buffering=1)


def plain(v):
    if isinstance(v, dbus.Struct):  # image-data (iiibiiay): the numbers and the data's length
        return [int(x) for x in v[:6]] + [len(v[6])]
    if isinstance(v, (dbus.Byte, dbus.Int32, dbus.UInt32, dbus.Boolean)):
        return int(v)
    return str(v)


class Server(dbus.service.Object):
    last = 0

    @dbus.service.method(IFACE, in_signature="susssasa{sv}i", out_signature="u")
    def Notify(self, app, replaces, icon, summary, body, actions, hints, expire):
        self.last += 1
        out.write(json.dumps({"app": str(app), "replaces": int(replaces), "icon": str(icon),
                              "summary": str(summary), "body": str(body), "actions": [str(a) for a in actions],
                              "hints": {str(k): plain(v) for k, v in hints.items()}, "expire": int(expire)}) + "\n")
        return self.last

    @dbus.service.method(IFACE, out_signature="as")
    def GetCapabilities(self):
        return ["body"]

    @dbus.service.method(IFACE, out_signature="ssss")
    def GetServerInformation(self):
        return ("hutch-test", "hutch", "1", "1.2")


bus = dbus.SessionBus()
name = dbus.service.BusName(IFACE, bus)
Server(bus, "/org/freedesktop/Notifications")
GLib.MainLoop().run()
