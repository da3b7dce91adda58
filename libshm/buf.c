/*
 * buf.c - a growable byte buffer, the one output type of the encoders.
 *
 * Invariant: when data is not NULL there is always room for a trailing
 * NUL after len bytes, so text can be handed out without a copy.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int buf_reserve(mb_buf *b, size_t more)
{
	size_t need, cap;
	char *p;

	if (b->failed)
		return MB_ENOMEM;
	if (more > SIZE_MAX / 2 - b->len - 1)
		goto oom;
	need = b->len + more + 1;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	p = realloc(b->data, cap);
	if (!p)
		goto oom;
	b->data = p;
	b->cap = cap;
	return 0;
oom:
	b->failed = true;
	return MB_ENOMEM;
}

int buf_grow_add(mb_buf *b, const void *p, size_t n)
{
	if (buf_reserve(b, n))
		return MB_ENOMEM;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int buf_adds(mb_buf *b, const char *s)
{
	return buf_add(b, s, strlen(s));
}

void buf_free(mb_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof *b);
}

char *buf_take(mb_buf *b, size_t *len)
{
	char *p;

	if (b->failed || buf_reserve(b, 0)) {
		buf_free(b);
		return NULL;
	}
	p = b->data;
	if (len)
		*len = b->len;
	memset(b, 0, sizeof *b);
	return p;
}

void mb_free(void *p)
{
	free(p);
}
