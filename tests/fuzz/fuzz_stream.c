/*
 * fuzz_stream.c - libFuzzer target: hostile bytes where the journal on a
 * stream meets the outside: a URL typed by a user (mbs_url_parse), and a
 * message body read from the stream, which anyone allowed to publish on its
 * subject may have written (mbs_decode), and an answer to MSG.GET, which
 * comes from the network (mbs_get_answer).
 *
 * Input: byte 0 chooses (odd: body; else bit 1 set: answer; else URL);
 * the rest is the text, body or answer.  These must hold (abort otherwise):
 *  - the parse reads nothing past the NUL-terminated copy; a URL it accepts
 *    has 1..MBS_HOSTS_MAX servers, a stream name of [A-Za-z0-9_-]{1,64},
 *    and a redacted form that holds no '@' (no userinfo is ever shown);
 *  - a body mbs_decode accepts starts with "MBS1", has a type 1..255, and
 *    its payload lies inside the body, no longer than MBJ_MAX_PAYLOAD; one
 *    it refuses is type 0 with no payload;
 *  - an answer gives bytes (no more than 3/4 of the answer's length) only
 *    when it says 0, and none otherwise.
 */
#include <stdlib.h>
#include <string.h>

#include "stream_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void url_case(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), why[256];
	mbs_url *u = malloc(sizeof *u);

	if (!text || !u)
		abort();
	memcpy(text, data, size);
	text[size] = '\0';
	if (mbs_url_parse(text, u, why, sizeof why) == 0) {
		if (u->nhosts < 1 || u->nhosts > MBS_HOSTS_MAX)
			abort();
		size_t n = strlen(u->stream);
		if (n < 1 || n > MBS_STREAM_MAX || strspn(u->stream, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
		    "abcdefghijklmnopqrstuvwxyz0123456789_-") != n)
			abort();
		if (strchr(u->redacted, '@'))
			abort();
	} else if (!memchr(why, '\0', sizeof why)) {
		abort();
	}
	free(u);
	free(text);
}

static void body_case(const uint8_t *data, size_t size)
{
	mbj_record rec;

	if (mbs_decode(data, size, &rec)) {
		if (size < 13 || memcmp(data, "MBS1", 4) || rec.type == 0 ||
		    rec.payload != data + 13 || rec.len != size - 13 || rec.len > MBJ_MAX_PAYLOAD)
			abort();
	} else if (rec.type != 0 || rec.len != 0) {
		abort();
	}
}

static void answer_case(const uint8_t *data, size_t size)
{
	uint8_t *body;
	size_t n;
	int code, rc = mbs_get_answer((const char *)data, size, 7, &body, &n, &code);

	if (rc == 0 ? !body || n > size / 4 * 3 : body != NULL || (rc != 1 && rc != -1))
		abort();
	free(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (data[0] & 1)
		body_case(data + 1, size - 1);
	else if (data[0] & 2)
		answer_case(data + 1, size - 1);
	else
		url_case(data + 1, size - 1);
	return 0;
}
