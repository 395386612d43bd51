/* Events (daemon/log.h, daemon/event.h) and the store's event history
 * (policy/store.h, schema 3): the journal fields of a line, the plain-text
 * context, the kinds and their MESSAGE_IDs, the rate limit over events,
 * the history written in one batch, trimmed to events_keep, filtered, the
 * migration from schema 2 that keeps the audit trail, and a read-only
 * store kept in memory. */
#include <check.h>
#include <ctype.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/event.h"
#include "daemon/log.h"
#include "policy/store.h"
#include "tests/unit/testmain.h"

static char dir[] = "/tmp/mmtrust-test-event-XXXXXX";
static char path[300];

static void setup(void)
{
	strcpy(dir, "/tmp/mmtrust-test-event-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/store.db", dir);
}

static void teardown(void)
{
	char cmd[800];

	snprintf(cmd, sizeof(cmd), "chattr -i %s 2>/dev/null; chmod -R u+w %s; rm -rf %s", path,
		 dir, dir);
	ck_assert_int_eq(system(cmd), 0);
}

static const char *field(const struct log_journal_fields *f, const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; i < f->n; i++) {
		const char *s = f->iov[i].iov_base;

		if (f->iov[i].iov_len > n && !strncmp(s, name, n) && s[n] == '=') {
			ck_assert_uint_eq(strlen(s), f->iov[i].iov_len);  /* no NUL sent */
			return s + n + 1;
		}
	}
	return NULL;
}

START_TEST(test_journal_fields_event)
{
	struct log_journal_fields f;

	log_journal_fields(&f, LOG_NOTICE, MM_EVENT_TUNNEL_UP,
			   &(struct mm_event_ctx){ "ims.a.example", 1000001, 0xc0ffee },
			   "tunnel up: partner ims.a.example");
	ck_assert_str_eq(field(&f, "MESSAGE"), "tunnel up: partner ims.a.example");
	ck_assert_str_eq(field(&f, "PRIORITY"), "5");
	ck_assert_str_eq(field(&f, "MESSAGE_ID"), mm_event_message_id(MM_EVENT_TUNNEL_UP));
	ck_assert_str_eq(field(&f, "MMTRUST_EVENT"), "tunnel-up");
	ck_assert_str_eq(field(&f, "PARTNER"), "ims.a.example");
	ck_assert_str_eq(field(&f, "REQID"), "1000001");
	ck_assert_str_eq(field(&f, "SPI"), "0x00c0ffee");
	ck_assert_uint_eq(f.n, 7);
}
END_TEST

/* A plain line has MESSAGE and PRIORITY only; an event without context
 * names no partner, reqid or SPI (never an empty field). */
START_TEST(test_journal_fields_plain)
{
	struct log_journal_fields f;

	log_journal_fields(&f, LOG_ERR, -1, NULL, "refused");
	ck_assert_uint_eq(f.n, 2);
	ck_assert_str_eq(field(&f, "MESSAGE"), "refused");
	ck_assert_str_eq(field(&f, "PRIORITY"), "3");
	ck_assert_ptr_null(field(&f, "MESSAGE_ID"));
	log_journal_fields(&f, LOG_NOTICE, MM_EVENT_START, &(struct mm_event_ctx){ "", 0, 0 },
			   "ready");
	ck_assert_uint_eq(f.n, 4);
	ck_assert_ptr_null(field(&f, "PARTNER"));
	ck_assert_ptr_null(field(&f, "REQID"));
	ck_assert_ptr_null(field(&f, "SPI"));
	/* A message longer than the field holds is cut, never overrun. */
	{
		char big[LOG_JOURNAL_MESSAGE_MAX * 2];

		memset(big, 'x', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		log_journal_fields(&f, LOG_INFO, -1, NULL, big);
		ck_assert_uint_eq(f.iov[0].iov_len, sizeof(f.message) - 1);
	}
}
END_TEST

START_TEST(test_suffix)
{
	char buf[200];

	log_event_suffix(buf, sizeof(buf), MM_EVENT_SA_DELETED,
			 &(struct mm_event_ctx){ "b.example", 7, 0x1234 });
	ck_assert_str_eq(buf, " event=sa-deleted partner=b.example reqid=7 spi=0x00001234");
	log_event_suffix(buf, sizeof(buf), MM_EVENT_STOP, NULL);
	ck_assert_str_eq(buf, " event=stop");
	log_event_suffix(buf, 12, MM_EVENT_SA_DELETED,
			 &(struct mm_event_ctx){ "b.example", 7, 0x1234 });
	ck_assert_uint_eq(strlen(buf), 11);
}
END_TEST

/* Every kind has a name that parses back and its own MESSAGE_ID of 32
 * lower-case hex digits. */
START_TEST(test_kinds)
{
	enum mm_event ev;

	for (int i = 0; i < MM_EVENT__MAX; i++) {
		const char *id = mm_event_message_id(i);

		ck_assert_ptr_nonnull(mm_event_name(i));
		ck_assert_int_eq(mm_event_parse(mm_event_name(i), &ev), 0);
		ck_assert_int_eq(ev, i);
		ck_assert_uint_eq(strlen(id), 32);
		for (const char *c = id; *c; c++)
			ck_assert(isxdigit((unsigned char)*c) && !isupper((unsigned char)*c));
		for (int j = 0; j < i; j++)
			ck_assert_str_ne(id, mm_event_message_id(j));
	}
	ck_assert_int_lt(mm_event_parse("tunnel_up", &ev), 0);
	ck_assert_int_lt(mm_event_parse(NULL, &ev), 0);
	ck_assert_ptr_null(mm_event_name(MM_EVENT__MAX));
}
END_TEST

static unsigned sunk, sunk_suppressed;
static char sunk_last[256];

static void count_sink(void *ud, enum mm_event ev, int prio, const struct mm_event_ctx *ctx,
		       const char *msg, uint32_t suppressed)
{
	(void)ud;
	(void)ev;
	(void)prio;
	(void)ctx;
	sunk++;
	sunk_suppressed += suppressed;
	snprintf(sunk_last, sizeof(sunk_last), "%s", msg);
}

/* A storm of limited events reaches the sink LOG_LIMIT_BURST times; the
 * flush's summary carries the count of the others.  A change goes to the
 * journal only, never to the sink. */
START_TEST(test_limited_events)
{
	log_open(1, 0);
	log_set_event_sink(count_sink, NULL);
	for (int i = 0; i < 1000; i++)
		log_event_limited(LOG_KIND_DRIFT, MM_EVENT_DRIFT_REPAIR, LOG_WARNING,
				  &(struct mm_event_ctx){ .partner = "a.example" }, "drift %d", i);
	ck_assert_uint_eq(sunk, LOG_LIMIT_BURST);
	ck_assert_uint_eq(sunk_suppressed, 0);
	/* The next interval's first line brings the summary. */
	sleep(LOG_LIMIT_INTERVAL + 1);
	log_limit_flush();
	ck_assert_uint_eq(sunk, LOG_LIMIT_BURST + 1);
	ck_assert_uint_eq(sunk_suppressed, 1000 - LOG_LIMIT_BURST);
	ck_assert_ptr_nonnull(strstr(sunk_last, "suppressed"));
	log_event(MM_EVENT_CHANGE, LOG_NOTICE, NULL, "partner.add");
	ck_assert_uint_eq(sunk, LOG_LIMIT_BURST + 1);
	log_set_event_sink(NULL, NULL);
}
END_TEST

static const char *const one_kind[] = { "tunnel-up" };

START_TEST(test_store_events)
{
	struct mm_store *s;
	struct mm_err err = { 0 };
	struct mm_store_event ev[10];
	struct mm_store_filter f = { .until_ms = INT64_MAX };
	json_t *arr;
	char msg[10][16];

	ck_assert_msg(mm_store_open(path, &s, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(mm_store_schema_version(s), MM_STORE_SCHEMA_VERSION);
	for (int i = 0; i < 10; i++) {
		snprintf(msg[i], sizeof(msg[i]), "m%d", i);
		ev[i] = (struct mm_store_event){
			.time_ms = 1700000000000 + i * 1000,
			.kind = i % 2 ? "tunnel-up" : "drift-repair",
			.domain = i < 5 ? "a.example" : "b.example",
			.reqid = i < 5 ? 10 : 0,
			.spi = i == 3 ? 0xabc : 0,
			.message = msg[i],
		};
	}
	ck_assert_int_eq(mm_store_events_write(s, ev, 10, 8, &err), 0);
	ck_assert_int_eq(mm_store_events(s, &f, &arr, &err), 0);
	ck_assert_uint_eq(json_array_size(arr), 8);  /* trimmed to keep: the oldest went */
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(arr, 0), "message")), "m2");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(arr, 1), "spi")),
			 "0x00000abc");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(arr, 0), "time")),
			 "2023-11-14T22:13:22.000Z");
	ck_assert(json_is_null(json_object_get(json_array_get(arr, 7), "reqid")));
	json_decref(arr);
	f.domain = "a.example";
	f.kinds = one_kind;
	f.n_kinds = 1;
	ck_assert_int_eq(mm_store_events(s, &f, &arr, &err), 0);
	ck_assert_uint_eq(json_array_size(arr), 1);  /* m3 (m1 trimmed) */
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(arr, 0), "message")), "m3");
	json_decref(arr);
	f = (struct mm_store_filter){ .since_ms = 1700000005000, .until_ms = 1700000007000,
				      .limit = 2 };
	ck_assert_int_eq(mm_store_events(s, &f, &arr, &err), 0);
	ck_assert_uint_eq(json_array_size(arr), 2);  /* m5..m7, the last 2 */
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(arr, 0), "message")), "m6");
	json_decref(arr);
	/* The audit trail through the same filter: "change" only. */
	f = (struct mm_store_filter){ .until_ms = INT64_MAX, .kinds = one_kind, .n_kinds = 1 };
	ck_assert_int_eq(mm_store_changes(s, &f, &arr, &err), 0);
	ck_assert_uint_eq(json_array_size(arr), 0);
	json_decref(arr);
	mm_store_close(s);
}
END_TEST

/* A store of schema 2 (the events table dropped from a new one, with an
 * audit row) migrates to 3 and keeps its audit trail. */
START_TEST(test_migration_from_v2)
{
	struct mm_store *s;
	struct mm_err err = { 0 };
	struct mm_store_filter f = { .until_ms = INT64_MAX };
	sqlite3 *db;
	json_t *arr;

	ck_assert_msg(mm_store_open(path, &s, &err) == 0, "%s", err.msg);
	mm_store_close(s);
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db,
				      "DROP TABLE events; ALTER TABLE audit DROP COLUMN time_ms;"
				      "ALTER TABLE audit DROP COLUMN host;"
				      "DELETE FROM meta WHERE key = 'version';"
				      "PRAGMA user_version = 2;"
				      "INSERT INTO audit (time, txn, uid, user, pid, request, action, "
				      "domain, before, after) VALUES (1700000000, 1, 0, 'root', 5, "
				      "'partner.add', 'add', 'old.example', NULL, '{}')",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	ck_assert_msg(mm_store_open(path, &s, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(mm_store_schema_version(s), MM_STORE_SCHEMA_VERSION);
	{
		/* Schema 4: the table version is the last change's txn. */
		uint64_t v = 0;

		ck_assert_int_eq(mm_store_version(s, &v, &err), 0);
		ck_assert_uint_eq(v, 1);
	}
	ck_assert_int_eq(mm_store_changes(s, &f, &arr, &err), 0);
	ck_assert_uint_eq(json_array_size(arr), 1);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(arr, 0), "domain")),
			 "old.example");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(arr, 0), "type")),
			 "change");
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(arr, 0), "time_ms")),
			 1700000000000);
	json_decref(arr);
	f.since_ms = 1700000001000;
	ck_assert_int_eq(mm_store_changes(s, &f, &arr, &err), 0);
	ck_assert_uint_eq(json_array_size(arr), 0);
	json_decref(arr);
	mm_store_close(s);
}
END_TEST

/* The recorder: events wait in memory until the flush, are answered
 * before it, and are in the store after it; a read-only store keeps them
 * in memory and the query says so. */
START_TEST(test_recorder)
{
	struct mm_store *s;
	struct mm_err err = { 0 };
	struct mm_store_filter f = { .until_ms = INT64_MAX };
	bool memory;
	uint64_t dropped;
	json_t *arr;

	log_open(1, 0);
	ck_assert_msg(mm_store_open(path, &s, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(events_start(NULL, s, 100), 0);
	log_event(MM_EVENT_TUNNEL_UP, LOG_NOTICE, &(struct mm_event_ctx){ "a.example", 5, 0x10 },
		  "up");
	ck_assert_int_eq(mm_store_events(s, &f, &arr, &err), 0);
	ck_assert_uint_eq(json_array_size(arr), 0);  /* not written yet */
	json_decref(arr);
	ck_assert_int_eq(events_query(&f, &arr, &memory, &dropped, &err), 0);
	ck_assert_uint_eq(json_array_size(arr), 1);  /* but answered */
	ck_assert(!memory);
	json_decref(arr);
	events_flush();
	ck_assert_int_eq(mm_store_events(s, &f, &arr, &err), 0);
	ck_assert_uint_eq(json_array_size(arr), 1);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(arr, 0), "domain")),
			 "a.example");
	json_decref(arr);
	events_stop();
	mm_store_close(s);

	/* read-only: an immutable file as root, else a chmod'ed one */
	if (geteuid() == 0) {
		char cmd[400];

		snprintf(cmd, sizeof(cmd), "chattr +i %s", path);
		ck_assert_msg(system(cmd) == 0, "chattr +i is not available here");
	} else {
		ck_assert_int_eq(chmod(path, 0444), 0);
	}
	ck_assert_msg(mm_store_open(path, &s, &err) == 0, "%s", err.msg);
	ck_assert_ptr_nonnull(mm_store_readonly(s));
	ck_assert_int_eq(events_start(NULL, s, 100), 0);
	for (int i = 0; i < EVENTS_RING_MAX + 5; i++)
		log_event(MM_EVENT_REKEY, LOG_INFO, NULL, "rekey %d", i);
	events_flush();
	ck_assert_int_eq(events_query(&f, &arr, &memory, &dropped, &err), 0);
	ck_assert(memory);
	ck_assert_uint_eq(json_array_size(arr), EVENTS_RING_MAX);
	ck_assert_uint_eq(dropped, 5);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(arr, 0), "message")),
			 "rekey 5");
	json_decref(arr);
	/* the history from before is not lost, just not read here */
	events_stop();
	mm_store_close(s);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("event");
	TCase *tc = tcase_create("event");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_journal_fields_event);
	tcase_add_test(tc, test_journal_fields_plain);
	tcase_add_test(tc, test_suffix);
	tcase_add_test(tc, test_kinds);
	tcase_add_test(tc, test_limited_events);
	tcase_add_test(tc, test_store_events);
	tcase_add_test(tc, test_migration_from_v2);
	tcase_add_test(tc, test_recorder);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mm_test_run(suite());
}
