/* SPIs as mmtrust reads and writes them, in one place.
 *
 * Written: always "0x" and eight lower-case hex digits ("0x0000abcd").
 *
 * Read (from the query socket, and anything else that takes an SPI from
 * outside), one of:
 *   - a JSON integer 1 .. 4294967295;
 *   - a string "0x" followed by 1 to 8 hex digits (either case), e.g.
 *     "0xc1a2b3c4", "0x1", "0x0000abcd".
 * Refused, with a message that says which rule was broken:
 *   - 0 in any spelling: RFC 4303 keeps SPI 0 off the wire, so no SA has
 *     it and it would only ever mean "nothing" (and match nothing);
 *   - a string without the "0x" prefix ("abc", "10"): hex or decimal
 *     would be a guess, and a guessed SPI is a wrong answer;
 *   - decimal strings, "0X", signs, white space anywhere, more than 8
 *     digits (even leading zeros), values over 32 bits, JSON reals,
 *     booleans, null. */
#ifndef MM_SPI_H
#define MM_SPI_H

#include <jansson.h>
#include <stdint.h>

#include "err.h"

/* "0x" + 8 digits + NUL */
#define MM_SPI_STRLEN 11

/* The string form above.  Returns 0 and sets *ret, or -EINVAL and fills
 * err (field as given; err may be NULL). */
int mm_spi_parse(const char *s, uint32_t *ret, const char *field, struct mm_err *err);
/* A JSON value: an integer or the string form. */
int mm_spi_from_json(const json_t *v, uint32_t *ret, const char *field, struct mm_err *err);
/* "0x%08x" into buf; returns buf. */
const char *mm_spi_str(uint32_t spi, char buf[MM_SPI_STRLEN]);

#endif
