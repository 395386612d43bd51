/* A private PostgreSQL cluster for the store's unit tests (test_store_pg,
 * and test_store's backend-neutral tests on PostgreSQL): made with
 * tests/unit/pgcluster.sh in a temporary directory, its Unix socket there,
 * no TCP; never the system's cluster.  Without the PostgreSQL server
 * installed, pgtest_fresh_db fails the test (no skip). */
#ifndef MM_TEST_PGTEST_H
#define MM_TEST_PGTEST_H

#include <libpq-fe.h>
#include <stddef.h>

#define PGTEST_PORT 54329
#define PGTEST_PASSWORD "Pw-7gq2-secret"  /* role mmtrust's */

extern char pgtest_dir[];

/* For tcase_add_unchecked_fixture: make and start it, stop and remove it. */
void pgtest_up(void);
void pgtest_down(void);
/* pgcluster.sh's "start", "stop", "destroy" on it ("init": pgtest_up). */
int pgtest_cluster(const char *what);
/* Database db made anew (owner mmtrust; the server started again if a test
 * left it stopped); uri: its postgresql:// URI for role mmtrust. */
void pgtest_fresh_db(const char *db, char *uri, size_t size);
/* The superuser's connection to db; a statement run there; the first
 * column of its first row (caller frees; "" for none). */
PGconn *pgtest_admin(const char *db);
void pgtest_exec(const char *db, const char *sql);
char *pgtest_value(const char *db, const char *sql);

#endif
