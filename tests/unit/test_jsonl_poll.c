/* daemon/jsonl.c serving during a long request (mm_jsonl_server_poll):
 * read-only requests of other clients are answered while it runs, a
 * write waits and is handled after it, in order, and clients that ask
 * once and hang up do not keep their slots (a burst of such pings during
 * one long request must not fill max_clients). */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon/jsonl.h"
#include "tests/unit/testmain.h"

#define PINGS 100

static struct mm_jsonl_server *srv;
static atomic_bool in_long, stop, finished;
static int pings_during, pings_after, write_during = -1, order_ok;
static char path[108];

static bool readonly(void *userdata, const json_t *req)
{
	(void)userdata;
	return strcmp(json_string_value(json_object_get(req, "op")), "write") != 0;
}

static json_t *handler(void *userdata, struct mm_jsonl_client *c, const struct mm_jsonl_peer *peer,
		       const json_t *req)
{
	const char *op = json_string_value(json_object_get(req, "op"));

	(void)userdata;
	(void)c;
	(void)peer;
	if (strcmp(op, "long") == 0) {
		in_long = true;
		while (!stop) {
			mm_jsonl_server_poll(srv);
			usleep(1000);
		}
		in_long = false;
		order_ok = write_during < 0;  /* the write did not run inside */
	} else if (strcmp(op, "write") == 0) {
		write_during = in_long;
	} else if (in_long) {
		pings_during++;
	} else {
		pings_after++;
	}
	return mm_jsonl_ok(json_string(op));
}

static int dial(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* One answer line; "" when the connection failed. */
static void answer(int fd, char *buf, size_t size)
{
	size_t len = 0;

	while (len + 1 < size) {
		ssize_t n = recv(fd, buf + len, 1, 0);

		if (n <= 0 || buf[len] == '\n')
			break;
		len++;
	}
	buf[len] = '\0';
}

static void *client(void *arg)
{
	char buf[256];
	int a, b, *ok = arg;

	a = dial();
	ck_assert_int_eq(send(a, "{\"op\":\"long\"}\n", 14, 0), 14);
	while (!in_long)
		usleep(1000);
	b = dial();
	ck_assert_int_eq(send(b, "{\"op\":\"write\"}\n", 15, 0), 15);
	for (int i = 0; i < PINGS; i++) {
		int c = dial();

		(void)send(c, "{\"op\":\"ping\"}\n", 14, MSG_NOSIGNAL);
		answer(c, buf, sizeof(buf));
		*ok += strstr(buf, "\"result\":\"ping\"") != NULL;
		close(c);
	}
	stop = true;
	answer(a, buf, sizeof(buf));
	ck_assert_ptr_nonnull(strstr(buf, "\"result\":\"long\""));
	answer(b, buf, sizeof(buf));
	ck_assert_ptr_nonnull(strstr(buf, "\"result\":\"write\""));
	close(a);
	close(b);
	finished = true;
	return NULL;
}

START_TEST(test_serves_during_long_request)
{
	static const struct mm_jsonl_limits lim = { .max_line = 4096, .max_out = 1 << 20,
						    .max_clients = 8 };
	sd_event *ev;
	pthread_t th;
	int ok = 0;

	snprintf(path, sizeof(path), "/tmp/mmtrust-jsonl-poll-%d.sock", (int)getpid());
	ck_assert_int_eq(sd_event_new(&ev), 0);
	ck_assert_int_eq(mm_jsonl_server_new(ev, path, 0600, (gid_t)-1, &lim, handler, NULL, NULL,
					     &srv), 0);
	mm_jsonl_server_set_readonly(srv, readonly);
	ck_assert_int_eq(pthread_create(&th, NULL, client, &ok), 0);
	for (int i = 0; i < 20000 && !finished; i++)
		ck_assert_int_ge(sd_event_run(ev, 1000), 0);
	pthread_join(th, NULL);
	ck_assert(finished);
	ck_assert_int_eq(ok, PINGS);
	ck_assert_int_eq(pings_during, PINGS);  /* all while the long one ran */
	ck_assert_int_eq(write_during, 0);      /* the write after it */
	ck_assert(order_ok);
	mm_jsonl_server_free(srv);
	sd_event_unref(ev);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("jsonl_poll");
	TCase *tc = tcase_create("poll");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_serves_during_long_request);
	suite_add_tcase(s, tc);
	return mm_test_run(s);
}
