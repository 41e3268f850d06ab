/* The login user of a bootc image (oci_disk.c): found in the image's /etc/passwd, or added to its
 * /etc/passwd, /etc/group and /etc/shadow. Text in, text out: the image's files are untrusted
 * input, and nothing here touches a file. */
#pragma once
#include "util.h"

#define OCI_LOGIN_FILE_MAX (1u << 20) /* a larger /etc/passwd, group or shadow is refused */
#define OCI_LOGIN_ID_MIN 1000u	      /* the range an added user's uid and gid come from */
#define OCI_LOGIN_ID_MAX 59999u

struct oci_login {
	uint32_t uid, gid;
	char *home;		       /* relative to the root, no leading slash: "home/alice", "root" */
	char *passwd, *group, *shadow; /* the files' new text when the user was added; NULL: unchanged */
};
void oci_login_release(struct oci_login *l);

/* USER (a valid user name) in the image whose /etc/passwd, /etc/group and /etc/shadow hold the given
 * texts (NULL: the image has no such file; each text is LEN bytes, not NUL-terminated). A user the
 * image has keeps its uid, gid and home, which must be a plain absolute path (no "." or ".."
 * component). Otherwise the user is added with the lowest uid from OCI_LOGIN_ID_MIN up that neither
 * passwd nor group uses (and that gid, or the gid of an existing group of that name), home
 * /home/USER, SHELL, and a locked password. Errors name the file and line. */
int oci_login_plan(const char *user, const char *shell, const char *passwd, size_t passwd_len, const char *group,
		   size_t group_len, const char *shadow, size_t shadow_len, struct oci_login *ret,
		   struct hutch_error *err);
