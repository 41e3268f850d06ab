#include "cmd.h"

VERB(shell)
{
	(void)argc;
	(void)argv;
	hutch_error_set(&c->err, ENOTSUP, "not implemented yet");
	return EXIT_ERR;
}
