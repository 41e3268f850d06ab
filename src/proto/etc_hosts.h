#pragma once
/* /etc/hosts text, shared by the guest agent (which rewrites it in a clone) and the unit tests. */

/* text with the hostname old on its 127.0.1.1 lines renamed to new: old as a whole name, or as the
 * first label of a dotted name ("tmpl.example" -> "new.example"). Debian's cloud images map their
 * hostname there, and sudo warns when the hostname does not resolve. NULL when nothing changes
 * (or out of memory); else a malloc'd string. */
char *etc_hosts_rename(const char *text, const char *old, const char *new_name);
