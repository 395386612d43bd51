/* daemon/jsonl.c's peer checks on two threads at once, as the query thread
 * and the main loop run them: a lookup must never see the other thread's
 * user (getpwuid's shared static buffer did: a user was then judged by
 * another user's primary group). */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <pwd.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "daemon/jsonl.h"
#include "tests/unit/testmain.h"

#define ROUNDS 3000

struct worker {
	struct mm_jsonl_peer peer;
	gid_t group;          /* the group asked about */
	bool want;            /* allowed? */
	char name[64];        /* the peer's login name */
	unsigned wrong;
};

static void *work(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < ROUNDS; i++) {
		char name[64];

		if (mm_jsonl_peer_allowed(&w->peer, w->group) != w->want)
			w->wrong++;
		if (mm_jsonl_peer_user(&w->peer, name, sizeof(name), NULL) < 0 ||
		    strcmp(name, w->name))
			w->wrong++;
	}
	return NULL;
}

/* Two users whose only way into the group is their primary group in the
 * user database: each is allowed into its own group and not the other's. */
static bool worker_for(const char *user, struct worker *w)
{
	struct passwd *pw = getpwnam(user);  /* single-threaded here */

	if (!pw || pw->pw_uid == 0 || pw->pw_uid == geteuid())
		return false;
	*w = (struct worker){
		.peer = { .uid = pw->pw_uid, .gid = (gid_t)-2, .pid = 1 },
		.group = pw->pw_gid,
		.want = true,
	};
	snprintf(w->name, sizeof(w->name), "%s", pw->pw_name);
	return true;
}

START_TEST(test_two_threads)
{
	struct worker w[4];
	pthread_t t[4];

	if (!worker_for("daemon", &w[0]) || !worker_for("bin", &w[1]) ||
	    w[0].group == w[1].group) {
		/* Not a pass: the check could not be made on this system. */
		ck_abort_msg("needs users daemon and bin with distinct primary groups");
	}
	/* Each user asked about the other's group too: must be refused. */
	w[2] = w[0];
	w[2].group = w[1].group;
	w[2].want = false;
	w[3] = w[1];
	w[3].group = w[0].group;
	w[3].want = false;
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, work, &w[i]), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < 4; i++)
		ck_assert_msg(w[i].wrong == 0, "%s asking about group %u: %u wrong answers of %d",
			      w[i].name, (unsigned)w[i].group, w[i].wrong, 2 * ROUNDS);
}
END_TEST

START_TEST(test_unknown_user)
{
	struct mm_jsonl_peer p = { .uid = 4000000123u, .gid = (gid_t)-2 };
	char name[64];

	ck_assert_int_eq(mm_jsonl_peer_user(&p, name, sizeof(name), NULL), -ENOENT);
	ck_assert(!mm_jsonl_peer_allowed(&p, 1));
}
END_TEST

START_TEST(test_name_too_long)
{
	struct mm_jsonl_peer p = { .uid = 1 };
	char name[2];

	ck_assert_int_eq(mm_jsonl_peer_user(&p, name, sizeof(name), NULL), -ERANGE);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("jsonl_peer");
	TCase *tc = tcase_create("peer");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_two_threads);
	tcase_add_test(tc, test_unknown_user);
	tcase_add_test(tc, test_name_too_long);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mm_test_run(suite());
}
