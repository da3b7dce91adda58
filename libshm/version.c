/*
 * version.c - the library's own version, for programs and bindings that
 * load it at run time and must check it matches what they were built for.
 */
#include "membank.h"

const char *mb_version(int *number)
{
	if (number)
		*number = MB_VERSION_NUMBER;
	return MB_VERSION;
}
