/* policy/spi.h: the one SPI reader and writer, against hostile input. */
#include <check.h>
#include <errno.h>
#include <string.h>

#include "policy/jsonfmt.h"
#include "policy/spi.h"
#include "tests/unit/testmain.h"

static const struct {
	const char *s;
	uint32_t want;
} good[] = {
	{ "0x1", 1 },
	{ "0xc1a2b3c4", 0xc1a2b3c4 },
	{ "0xC1A2B3C4", 0xc1a2b3c4 },
	{ "0xffffffff", 0xffffffff },
	{ "0x0000abcd", 0xabcd },
	{ "0x00000001", 1 },
};

/* Each of these was accepted once, or would be by strtoul. */
static const char *const bad[] = {
	"abc",          /* hex without 0x: once 0xabc */
	"c1a2b3c4",
	"10",           /* decimal or hex? neither */
	" 0x1",         /* strtoul skips leading blanks */
	"0x1 ",
	"0x 1",
	"\t0x1",
	"0x1\n",
	"0x",
	"",
	"0",
	"0x0",
	"0x00000000",
	"0x000000001",  /* nine digits, even with the value small */
	"0x100000000",
	"0xfffffffff",
	"-0x1",
	"+0x1",
	"0x-1",
	"0x+1",
	"0X1",
	"0xg",
	"0x1g",
	"0x1.0",
	"1e3",
	"0x1\xff",
	"\xef\xbc\x90x1",  /* fullwidth digit zero */
};

START_TEST(test_good)
{
	uint32_t v = 0;
	struct mm_err err = { 0 };

	ck_assert_msg(mm_spi_parse(good[_i].s, &v, "spi", &err) == 0, "%s: %s", good[_i].s,
		      err.msg);
	ck_assert_uint_eq(v, good[_i].want);
}
END_TEST

START_TEST(test_bad)
{
	uint32_t v = 7;
	struct mm_err err = { 0 };

	ck_assert_msg(mm_spi_parse(bad[_i], &v, "spi", &err) == -EINVAL, "'%s' accepted", bad[_i]);
	ck_assert_uint_eq(v, 7);  /* untouched on failure */
	ck_assert_str_eq(err.field, "spi");
	ck_assert_msg(strlen(err.msg) > 0, "'%s': no message", bad[_i]);
}
END_TEST

START_TEST(test_null_string)
{
	uint32_t v;

	ck_assert_int_eq(mm_spi_parse(NULL, &v, "spi", NULL), -EINVAL);
}
END_TEST

START_TEST(test_zero_says_so)
{
	uint32_t v;
	struct mm_err err = { 0 };

	ck_assert_int_eq(mm_spi_parse("0x00", &v, "spi", &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "0"));
	ck_assert_ptr_nonnull(strstr(err.msg, "not"));
}
END_TEST

START_TEST(test_json)
{
	static const char *const refused[] = {
		"0", "-1", "4294967296", "-4294967295", "1.0", "1e3", "true", "false", "null",
		"[1]", "{}", "\"abc\"", "\" 0x1\"", "\"0x0\"", "\"0x1\\u0000ff\"", "18446744073709551615",
	};
	static const struct {
		const char *json;
		uint32_t want;
	} taken[] = {
		{ "1", 1 }, { "4294967295", 0xffffffff }, { "3248665540", 0xc1a2b3c4 },
		{ "\"0xc1a2b3c4\"", 0xc1a2b3c4 },
	};

	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		json_t *j = json_loads(refused[i], JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
		struct mm_err err = { 0 };
		uint32_t v = 7;

		/* jansson refuses integers beyond int64: that is a refusal too. */
		if (j)
			ck_assert_msg(mm_spi_from_json(j, &v, "spi", &err) == -EINVAL,
				      "%s accepted", refused[i]);
		ck_assert_uint_eq(v, 7);
		if (j)
			ck_assert_str_eq(err.field, "spi");
		json_decref(j);
	}
	ck_assert_int_eq(mm_spi_from_json(NULL, &(uint32_t){ 0 }, "spi", NULL), -EINVAL);
	for (size_t i = 0; i < sizeof(taken) / sizeof(taken[0]); i++) {
		json_t *j = json_loads(taken[i].json, JSON_DECODE_ANY, NULL);
		uint32_t v = 0;

		ck_assert_ptr_nonnull(j);
		ck_assert_msg(mm_spi_from_json(j, &v, "spi", NULL) == 0, "%s refused", taken[i].json);
		ck_assert_uint_eq(v, taken[i].want);
		json_decref(j);
	}
}
END_TEST

/* What is written reads back as the same SPI, and in one form. */
START_TEST(test_round_trip)
{
	static const uint32_t spis[] = { 1, 0xff, 0xabcd, 0xc1a2b3c4, 0xffffffff };
	char buf[MM_SPI_STRLEN];

	for (size_t i = 0; i < sizeof(spis) / sizeof(spis[0]); i++) {
		uint32_t v = 0;
		json_t *j = mm_json_spi(spis[i]);

		mm_spi_str(spis[i], buf);
		ck_assert_uint_eq(strlen(buf), 10);
		ck_assert_str_eq(json_string_value(j), buf);
		ck_assert_int_eq(mm_spi_parse(buf, &v, "spi", NULL), 0);
		ck_assert_uint_eq(v, spis[i]);
		json_decref(j);
	}
	ck_assert_str_eq(mm_spi_str(0xabcd, buf), "0x0000abcd");
	ck_assert(json_is_null(mm_json_spi(0)));
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("spi");
	TCase *tc = tcase_create("spi");

	tcase_add_loop_test(tc, test_good, 0, sizeof(good) / sizeof(good[0]));
	tcase_add_loop_test(tc, test_bad, 0, sizeof(bad) / sizeof(bad[0]));
	tcase_add_test(tc, test_null_string);
	tcase_add_test(tc, test_zero_says_so);
	tcase_add_test(tc, test_json);
	tcase_add_test(tc, test_round_trip);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mm_test_run(suite());
}
