/* CLI side of the monitor socket. */
#pragma once
#include "store.h"
#include "util.h"
#include <json-c/json.h>

int monitor_connect(const struct store *st, const char *name, int *ret_fd, struct hutch_error *err);
/* Send one CTL request and wait (bounded) for the CTL reply. Other frames before it are skipped. */
int monitor_request(int fd, json_object *req, uint64_t timeout_ms, json_object **ret, struct hutch_error *err);
/* Write one frame, blocking. */
int frame_write(int fd, uint8_t type, uint32_t channel, const void *p, size_t len);
/* Wait until the VM's run lock is free, up to timeout_ms. -ETIMEDOUT otherwise. */
int wait_stopped(const struct store *st, const char *name, uint64_t timeout_ms);
