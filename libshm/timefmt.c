/*
 * timefmt.c - timestamps: int64 microseconds since the epoch inside,
 * RFC 3339 UTC with microseconds outside ("2026-11-26T00:29:55.123456Z");
 * the parser also reads offsets, other fractions and naive ISO 8601.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "internal.h"

int64_t mb_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Days from 1970-01-01 of a civil date (Howard Hinnant's algorithm), so
 * that formatting and parsing never depend on the TZ environment. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	int64_t era;
	unsigned doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = (unsigned)(z - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* Years 0000-9999 only: the text has four digits for the year. */
#define MAX_US INT64_C(253402300799999999)

/* @v (0 <= v < 10^n) as exactly @n decimal digits */
static void put_digits(char *p, int64_t v, int n)
{
	while (n-- > 0) {
		p[n] = (char)('0' + v % 10);
		v /= 10;
	}
}

_Static_assert(MB_TIME_LEN == 28, "YYYY-MM-DDTHH:MM:SS.ffffffZ and a NUL");

void mb_format_time(int64_t us, char out[MB_TIME_LEN])
{
	int64_t secs, frac, days, y, rem;
	unsigned m, d;

	us = us < 0 ? 0 : us > MAX_US ? MAX_US : us;
	secs = us / 1000000;
	frac = us % 1000000;

	if (frac < 0) {
		frac += 1000000;
		secs -= 1;
	}
	days = secs / 86400;
	rem = secs % 86400;
	if (rem < 0) {
		rem += 86400;
		days -= 1;
	}
	civil_from_days(days, &y, &m, &d);
	/* "%04lld-%02u-%02uT%02d:%02d:%02d.%06lldZ" by hand (every field is
	 * in range, so each has exactly its width): a snapshot formats one
	 * per page, and snprintf cost more than the rest of the page */
	put_digits(out, y, 4);
	out[4] = '-';
	put_digits(out + 5, m, 2);
	out[7] = '-';
	put_digits(out + 8, d, 2);
	out[10] = 'T';
	put_digits(out + 11, rem / 3600, 2);
	out[13] = ':';
	put_digits(out + 14, rem / 60 % 60, 2);
	out[16] = ':';
	put_digits(out + 17, rem % 60, 2);
	out[19] = '.';
	put_digits(out + 20, frac, 6);
	out[26] = 'Z';
	out[MB_TIME_LEN - 1] = '\0';
}

static bool digits(const char *s, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

/* Reads what membank writes ("2026-01-31T12:00:00.123456Z") and what the
 * original Python class and people write: RFC 3339 with "Z" or any offset
 * "+HH:MM"/"-HH:MM" (converted to UTC), "t"/"z" and a space for "T", with
 * no fraction or a fraction of any number of digits (truncated to
 * microseconds), and naive ISO 8601 (datetime.isoformat(): no offset),
 * read as UTC.  A restored bank writes its times back in membank's form. */
int mb_parse_time(const char *s, size_t len, int64_t *us)
{
	static const unsigned char mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int y, mo, d, h, mi, se, oh = 0, om = 0, sign = 0;
	int64_t fr = 0, scale = 100000, t;
	size_t i = 19;

	if (len < 19 || s[4] != '-' || s[7] != '-' ||
	    (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || s[13] != ':' || s[16] != ':')
		return MB_EINVAL;
	if (!digits(s, 4, &y) || !digits(s + 5, 2, &mo) || !digits(s + 8, 2, &d) ||
	    !digits(s + 11, 2, &h) || !digits(s + 14, 2, &mi) || !digits(s + 17, 2, &se))
		return MB_EINVAL;
	if (i < len && s[i] == '.') {
		if (++i >= len || s[i] < '0' || s[i] > '9')
			return MB_EINVAL;
		for (; i < len && s[i] >= '0' && s[i] <= '9'; i++, scale /= 10)
			fr += (s[i] - '0') * scale;  /* digits past the sixth add 0 */
	}
	if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
		i++;
	} else if (i < len && (s[i] == '+' || s[i] == '-')) {
		sign = s[i] == '+' ? 1 : -1;
		if (len - i != 6 || s[i + 3] != ':' || !digits(s + i + 1, 2, &oh) ||
		    !digits(s + i + 4, 2, &om) || oh > 23 || om > 59)
			return MB_EINVAL;
		i = len;
	}
	if (i != len)
		return MB_EINVAL;
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || se > 59 ||
	    (mo == 2 && d == 29 && (y % 4 || (y % 100 == 0 && y % 400))))
		return MB_EINVAL;
	t = (days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + se -
	     sign * (oh * 3600 + om * 60)) * 1000000 + fr;
	if (t < 0 || t > MAX_US)
		return MB_EINVAL;
	*us = t;
	return 0;
}
