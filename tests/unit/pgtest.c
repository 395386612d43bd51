/* The store tests' private PostgreSQL cluster (pgtest.h). */
#include "tests/unit/pgtest.h"

#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char pgtest_dir[] = "/tmp/mmtrust-test-pg-XXXXXX";
static char script[PATH_MAX + 64];
static bool cluster_ok;
static char cluster_why[PATH_MAX + 200];

int pgtest_cluster(const char *what)
{
	char cmd[PATH_MAX + 400];

	if (!strcmp(what, "init"))
		snprintf(cmd, sizeof(cmd), "bash %s init %s %d %s", script, pgtest_dir, PGTEST_PORT, PGTEST_PASSWORD);
	else
		snprintf(cmd, sizeof(cmd), "bash %s %s %s", script, what, pgtest_dir);
	return system(cmd);
}

/* The script beside this test's source: from the tree's top (make unit),
 * or next to the binary's build/tests/unit. */
static void find_script(void)
{
	char exe[PATH_MAX];
	ssize_t n;

	if (getenv("MM_PGCLUSTER")) {
		snprintf(script, sizeof(script), "%s", getenv("MM_PGCLUSTER"));
		return;
	}
	snprintf(script, sizeof(script), "tests/unit/pgcluster.sh");
	if (access(script, R_OK) == 0)
		return;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		*strrchr(exe, '/') = '\0';
		snprintf(script, sizeof(script), "%s/../../../tests/unit/pgcluster.sh", exe);
	}
}

void pgtest_up(void)
{
	find_script();
	if (access(script, R_OK) != 0) {
		snprintf(cluster_why, sizeof(cluster_why), "cannot find %s", script);
		return;
	}
	if (!mkdtemp(pgtest_dir)) {
		snprintf(cluster_why, sizeof(cluster_why), "mkdtemp: %s", strerror(errno));
		return;
	}
	if (pgtest_cluster("init") != 0) {
		snprintf(cluster_why, sizeof(cluster_why),
			 "cannot make a PostgreSQL cluster in %s (see the messages above)", pgtest_dir);
		return;
	}
	cluster_ok = true;
}

void pgtest_down(void)
{
	if (pgtest_dir[strlen(pgtest_dir) - 1] != 'X')
		pgtest_cluster("destroy");
}

/* The superuser's connection to db, for setting things up and looking. */
PGconn *pgtest_admin(const char *db)
{
	char info[700];
	PGconn *c;

	snprintf(info, sizeof(info), "host=%s port=%d user=postgres dbname=%s options='-c client_min_messages=warning'", pgtest_dir, PGTEST_PORT, db);
	c = PQconnectdb(info);
	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "admin connection: %s", PQerrorMessage(c));
	return c;
}

void pgtest_exec(const char *db, const char *sql)
{
	PGconn *c = pgtest_admin(db);
	PGresult *res = PQexec(c, sql);

	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK ||
			      PQresultStatus(res) == PGRES_TUPLES_OK,
		      "%s: %s", sql, PQresultErrorMessage(res));
	PQclear(res);
	PQfinish(c);
}

/* The first column of the first row as text (caller frees); "" for none. */
char *pgtest_value(const char *db, const char *sql)
{
	PGconn *c = pgtest_admin(db);
	PGresult *res = PQexec(c, sql);
	char *v;

	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s: %s", sql,
		      PQresultErrorMessage(res));
	v = strdup(PQntuples(res) ? PQgetvalue(res, 0, 0) : "");
	PQclear(res);
	PQfinish(c);
	return v;
}

void pgtest_fresh_db(const char *db, char *uri, size_t size)
{
	char pid[PATH_MAX + 40], sql[200];

	ck_assert_msg(cluster_ok, "no PostgreSQL cluster: %s", cluster_why);
	/* A test that stopped the server and failed before starting it again. */
	snprintf(pid, sizeof(pid), "%s/data/postmaster.pid", pgtest_dir);
	if (access(pid, F_OK) != 0)
		ck_assert_int_eq(pgtest_cluster("start"), 0);
	snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", db);
	pgtest_exec("postgres", sql);
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s OWNER mmtrust", db);
	pgtest_exec("postgres", sql);
	snprintf(uri, size, "postgresql:///%s?host=%s&port=%d&user=mmtrust", db, pgtest_dir,
		 PGTEST_PORT);
}
