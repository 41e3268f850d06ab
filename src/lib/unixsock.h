/* Unix stream sockets by path. Both return the fd (close-on-exec) or < 0 with err set; a path too
 * long for sun_path is an error that says so. */
#pragma once
#include "util.h"

int unix_listen(const char *path, struct hutch_error *err);
int unix_connect(const char *path, struct hutch_error *err);
