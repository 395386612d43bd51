/* How mmtrust writes times and SPIs in JSON, in one place. */
#ifndef MM_JSONFMT_H
#define MM_JSONFMT_H

#include <jansson.h>
#include <stdint.h>

/* "YYYY-MM-DDTHH:MM:SSZ" and the NUL */
#define MM_TIME_STRLEN 21

/* ISO 8601 UTC ("2026-11-28T14:05:04Z") into buf; NULL for 0 or a time
 * gmtime cannot represent. */
const char *mm_time_str(int64_t t, char buf[MM_TIME_STRLEN]);
/* mm_time_str() as a JSON string; JSON null for 0. */
json_t *mm_json_time(int64_t t);
/* mm_spi_str()'s "0x1234abcd" (policy/spi.h); JSON null for 0 (no SPI). */
json_t *mm_json_spi(uint32_t spi);

/* A string charon gave us as answers carry it: itself when it is plain
 * printable ASCII without '"' or '\\' (safe unescaped in JSON), else
 * "?" -- anything else is dropped rather than trusted. */
const char *mm_plain_text(const char *s);

#endif
