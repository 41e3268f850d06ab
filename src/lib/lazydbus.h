/* libdbus-1, loaded on first use like the libraries in lazylib.h: only a monitor whose guest sends a
 * notification loads it. Include <dbus/dbus.h> first. */
#pragma once

#include "lazylib.h"

int lazy_dbus_load(struct hutch_error *err);

#ifdef DBUS_MAJOR_VERSION
#define LAZY_DBUS_FUNCS(X)                           \
	X(dbus_bus_register)                         \
	X(dbus_connection_close)                     \
	X(dbus_connection_flush)                     \
	X(dbus_connection_get_is_connected)          \
	X(dbus_connection_open_private)              \
	X(dbus_connection_pop_message)               \
	X(dbus_connection_read_write)                \
	X(dbus_connection_send)                      \
	X(dbus_connection_send_with_reply_and_block) \
	X(dbus_connection_set_exit_on_disconnect)    \
	X(dbus_connection_unref)                     \
	X(dbus_error_free)                           \
	X(dbus_error_init)                           \
	X(dbus_message_iter_append_basic)            \
	X(dbus_message_iter_append_fixed_array)      \
	X(dbus_message_iter_close_container)         \
	X(dbus_message_iter_get_arg_type)            \
	X(dbus_message_iter_get_basic)               \
	X(dbus_message_iter_init)                    \
	X(dbus_message_iter_init_append)             \
	X(dbus_message_iter_next)                    \
	X(dbus_message_iter_open_container)          \
	X(dbus_message_iter_recurse)                 \
	X(dbus_message_new_method_call)              \
	X(dbus_message_set_no_reply)                 \
	X(dbus_message_unref)

struct lazy_dbus_table {
	LAZY_DBUS_FUNCS(LAZY_FIELD)
};
const struct lazy_dbus_table *lazy_dbus(void); /* loaded, or exit 127 */
#ifndef LAZY_IMPL
#define dbus_bus_register (*lazy_dbus()->dbus_bus_register)
#define dbus_connection_close (*lazy_dbus()->dbus_connection_close)
#define dbus_connection_flush (*lazy_dbus()->dbus_connection_flush)
#define dbus_connection_get_is_connected (*lazy_dbus()->dbus_connection_get_is_connected)
#define dbus_connection_open_private (*lazy_dbus()->dbus_connection_open_private)
#define dbus_connection_pop_message (*lazy_dbus()->dbus_connection_pop_message)
#define dbus_connection_read_write (*lazy_dbus()->dbus_connection_read_write)
#define dbus_connection_send (*lazy_dbus()->dbus_connection_send)
#define dbus_connection_send_with_reply_and_block (*lazy_dbus()->dbus_connection_send_with_reply_and_block)
#define dbus_connection_set_exit_on_disconnect (*lazy_dbus()->dbus_connection_set_exit_on_disconnect)
#define dbus_connection_unref (*lazy_dbus()->dbus_connection_unref)
#define dbus_error_free (*lazy_dbus()->dbus_error_free)
#define dbus_error_init (*lazy_dbus()->dbus_error_init)
#define dbus_message_iter_append_basic (*lazy_dbus()->dbus_message_iter_append_basic)
#define dbus_message_iter_append_fixed_array (*lazy_dbus()->dbus_message_iter_append_fixed_array)
#define dbus_message_iter_close_container (*lazy_dbus()->dbus_message_iter_close_container)
#define dbus_message_iter_get_arg_type (*lazy_dbus()->dbus_message_iter_get_arg_type)
#define dbus_message_iter_get_basic (*lazy_dbus()->dbus_message_iter_get_basic)
#define dbus_message_iter_init (*lazy_dbus()->dbus_message_iter_init)
#define dbus_message_iter_init_append (*lazy_dbus()->dbus_message_iter_init_append)
#define dbus_message_iter_next (*lazy_dbus()->dbus_message_iter_next)
#define dbus_message_iter_open_container (*lazy_dbus()->dbus_message_iter_open_container)
#define dbus_message_iter_recurse (*lazy_dbus()->dbus_message_iter_recurse)
#define dbus_message_new_method_call (*lazy_dbus()->dbus_message_new_method_call)
#define dbus_message_set_no_reply (*lazy_dbus()->dbus_message_set_no_reply)
#define dbus_message_unref (*lazy_dbus()->dbus_message_unref)
#endif
#endif
