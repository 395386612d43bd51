#include "jsonfmt.h"

#include <inttypes.h>
#include <stdio.h>
#include <time.h>

json_t *mm_json_time(int64_t t)
{
	char buf[32];
	time_t tt = t;
	struct tm tm;

	if (!t || !gmtime_r(&tt, &tm))
		return json_null();
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_string(buf);
}

json_t *mm_json_spi(uint32_t spi)
{
	char buf[16];

	if (!spi)
		return json_null();
	snprintf(buf, sizeof(buf), "0x%08" PRIx32, spi);
	return json_string(buf);
}
