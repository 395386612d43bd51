/* How mmtrust writes times and SPIs in JSON, in one place. */
#ifndef MM_JSONFMT_H
#define MM_JSONFMT_H

#include <jansson.h>
#include <stdint.h>

/* ISO 8601 UTC ("2026-11-28T14:05:04Z"); JSON null for 0. */
json_t *mm_json_time(int64_t t);
/* "0x1234abcd"; JSON null for 0 (no SPI). */
json_t *mm_json_spi(uint32_t spi);

#endif
