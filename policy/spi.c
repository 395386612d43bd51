#include "spi.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define SPI_FORM "must be \"0x\" followed by 1 to 8 hex digits"
#define SPI_ZERO "must not be 0 (no SA has SPI 0)"

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int mm_spi_parse(const char *s, uint32_t *ret, const char *field, struct mm_err *err)
{
	uint32_t v = 0;
	size_t n = 0;

	if (!s || s[0] != '0' || s[1] != 'x')
		return mm_err_set(err, MM_ERR_INVALID, field, SPI_FORM);
	for (s += 2; s[n]; n++) {
		int d = hex_digit(s[n]);

		if (d < 0 || n == 8)
			return mm_err_set(err, MM_ERR_INVALID, field, SPI_FORM);
		v = v << 4 | (uint32_t)d;
	}
	if (n == 0)
		return mm_err_set(err, MM_ERR_INVALID, field, SPI_FORM);
	if (v == 0)
		return mm_err_set(err, MM_ERR_INVALID, field, SPI_ZERO);
	*ret = v;
	return 0;
}

int mm_spi_from_json(const json_t *v, uint32_t *ret, const char *field, struct mm_err *err)
{
	json_int_t x;

	/* A string with a NUL inside would be read up to the NUL only. */
	if (json_is_string(v) && strlen(json_string_value(v)) != json_string_length(v))
		return mm_err_set(err, MM_ERR_INVALID, field, SPI_FORM);
	if (json_is_string(v))
		return mm_spi_parse(json_string_value(v), ret, field, err);
	if (!json_is_integer(v))
		return mm_err_set(err, MM_ERR_INVALID, field,
				  "must be a number or a string \"0x\" followed by 1 to 8 hex digits");
	x = json_integer_value(v);
	if (x < 1 || x > UINT32_MAX)
		return mm_err_set(err, MM_ERR_INVALID, field,
				  x ? "must be 1 to 4294967295" : SPI_ZERO);
	*ret = (uint32_t)x;
	return 0;
}

const char *mm_spi_str(uint32_t spi, char buf[MM_SPI_STRLEN])
{
	snprintf(buf, MM_SPI_STRLEN, "0x%08" PRIx32, spi);
	return buf;
}
