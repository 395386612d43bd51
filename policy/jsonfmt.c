#include "jsonfmt.h"

#include <time.h>

#include "spi.h"

const char *mm_time_str(int64_t t, char buf[MM_TIME_STRLEN])
{
	time_t tt = t;
	struct tm tm;

	if (!t || !gmtime_r(&tt, &tm) ||
	    strftime(buf, MM_TIME_STRLEN, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		return NULL;
	return buf;
}

json_t *mm_json_time(int64_t t)
{
	char buf[MM_TIME_STRLEN];
	const char *s = mm_time_str(t, buf);

	return s ? json_string(s) : json_null();
}

json_t *mm_json_spi(uint32_t spi)
{
	char buf[MM_SPI_STRLEN];

	return spi ? json_string(mm_spi_str(spi, buf)) : json_null();
}

const char *mm_plain_text(const char *s)
{
	for (const char *c = s; *c; c++)
		if (*c < 0x20 || *c > 0x7e || *c == '"' || *c == '\\')
			return "?";
	return s;
}
