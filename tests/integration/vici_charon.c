/* vici-plugins against a real charon (strongSwan 5.9, Debian's
 * strongswan-charon): the client in a real sd-event loop, two connections
 * as in mmtrustd (commands, events), certificates from `pki`, load-conn
 * with policies = no and a reqid, list-conns / get-conns / list-sas,
 * unload-conn, event registration, load-cert of a CRL (X509_CRL), flush-certs,
 * rekey and remote revocation, and a reconnect after charon is killed
 * and started again.
 *
 * charon runs in a private network namespace (it binds nothing on the host)
 * and mount namespace (its /run/charon.pid is on a private tmpfs), with a
 * private strongswan.conf and its VICI socket in a temporary directory.
 * This host's kernel has no ESP, so no SA gets installed; VICI works.
 *
 * Needs root, util-linux unshare and the strongswan-charon and
 * strongswan-pki packages.  It fails, never skips, when charon cannot be
 * started: a skipped test would hide a broken machine. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/unit/certgen.h"
#include "tests/unit/testmain.h"
#include "vici-plugins/vici.h"
#include "vici-plugins/vici_client.h"
#include "vici-plugins/vici_msg.h"

#define CHARON_BIN "/usr/lib/ipsec/charon"
#define CONN "mm-test-partner"
#define CHILD "partner-a"
#define REQID 4242u
#define START_DEADLINE_MS 15000

struct charon {
	char dir[64];
	char conf[128];
	char sock[100];
	char log[128];
	pid_t pid;
};

static struct charon ch;

static uint64_t now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* The last lines of charon's log, for failure messages. */
static const char *charon_log_tail(void)
{
	static char buf[2048];
	FILE *f = fopen(ch.log, "r");
	size_t n = 0;
	long size;

	buf[0] = '\0';
	if (!f)
		return "(no charon log)";
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	fseek(f, size > (long)sizeof(buf) - 1 ? size - (long)sizeof(buf) + 1 : 0, SEEK_SET);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_msg(f, "%s: %s", path, strerror(errno));
	ck_assert_int_ge(fputs(text, f), 0);
	ck_assert_int_eq(fclose(f), 0);
}

static char *read_file(const char *path, size_t *ret_len)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;

	ck_assert_msg(f, "%s: %s", path, strerror(errno));
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = calloc(1, (size_t)n + 1);
	ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*ret_len = (size_t)n;
	return buf;
}

static void charon_setup(void)
{
	char text[1024];

	strcpy(ch.dir, "/tmp/test_vici_charon.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(ch.dir));
	snprintf(ch.conf, sizeof(ch.conf), "%s/strongswan.conf", ch.dir);
	snprintf(ch.sock, sizeof(ch.sock), "%s/charon.vici", ch.dir);
	snprintf(ch.log, sizeof(ch.log), "%s/charon.log", ch.dir);
	/* The ports only matter inside the private namespace; high ones
	 * anyway, so that a run without the namespace could not clash with
	 * a system charon either. */
	snprintf(text, sizeof(text),
		 "charon {\n"
		 "  load = random nonce x509 revocation constraints pubkey pkcs1 pkcs8 pem openssl "
		 "kernel-netlink socket-default vici\n"
		 "  port = 34500\n"
		 "  port_nat_t = 34501\n"
		 "  install_routes = no\n"
		 "  install_virtual_ip = no\n"
		 "  filelog {\n"
		 "    test {\n"
		 "      path = %s\n"
		 "      default = 1\n"
		 "      ike = 2\n"
		 "      cfg = 2\n"
		 "    }\n"
		 "  }\n"
		 "  plugins {\n"
		 "    vici {\n"
		 "      socket = unix://%s\n"
		 "    }\n"
		 "  }\n"
		 "}\n",
		 ch.log, ch.sock);
	write_file(ch.conf, text);
}

static void charon_start(void)
{
	char out[160];
	pid_t pid;
	int fd;

	ck_assert_msg(access(CHARON_BIN, X_OK) == 0, "%s: %s (install strongswan-charon)", CHARON_BIN,
		      strerror(errno));
	snprintf(out, sizeof(out), "%s/charon.out", ch.dir);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* Dies with the test, even when check kills it on a timeout. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		fd = open(out, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		setenv("STRONGSWAN_CONF", ch.conf, 1);
		/* unshare and sh exec in place, so `pid` is charon's. */
		execlp("unshare", "unshare", "--net", "--mount", "sh", "-c",
		       "mount -t tmpfs tmpfs /run && exec " CHARON_BIN, (char *)NULL);
		_exit(127);
	}
	ch.pid = pid;
}

static bool socket_accepts(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

/* Stops our charon, by its pid only. */
static void charon_stop(int sig)
{
	uint64_t end = now_usec() + 5 * 1000 * 1000;
	int status;

	if (ch.pid <= 0)
		return;
	kill(ch.pid, sig);
	while (waitpid(ch.pid, &status, WNOHANG) == 0) {
		if (now_usec() > end) {
			kill(ch.pid, SIGKILL);
			waitpid(ch.pid, &status, 0);
			break;
		}
		usleep(10 * 1000);
	}
	ch.pid = 0;
}

static void charon_teardown(void)
{
	char cmd[160];

	charon_stop(SIGTERM);
	if (ch.dir[0] && !getenv("TEST_VICI_KEEP")) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", ch.dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", ch.dir);
	}
	ch.dir[0] = '\0';
}

/* ---- what the test watches ---------------------------------------------- */

struct watch {
	unsigned cmd_connected, cmd_disconnected;
	uint64_t t_cmd_connected;
	unsigned evt_connected, evt_disconnected;
	unsigned registered, registered_ok;
	int last_disconnect;
	unsigned replies;
	int reply_error;
	char daemon[32], version[32];
	unsigned done;
	int done_error;
	char errmsg[256];
	unsigned conn_events;
	bool conn_seen, child_seen;
	char child_mode[32];
	unsigned lists;
	bool listed;
	unsigned listed_sas;
	int list_error;
};

static void on_cmd_connected(struct vici_client *c, void *userdata)
{
	struct watch *w = userdata;

	(void)c;
	w->cmd_connected++;
	w->t_cmd_connected = now_usec();
}

static void on_cmd_disconnected(struct vici_client *c, int error, void *userdata)
{
	struct watch *w = userdata;

	(void)c;
	w->cmd_disconnected++;
	w->last_disconnect = error;
}

static void on_evt_connected(struct vici_client *c, void *userdata)
{
	struct watch *w = userdata;

	(void)c;
	w->evt_connected++;
}

static void on_evt_disconnected(struct vici_client *c, int error, void *userdata)
{
	struct watch *w = userdata;

	(void)c;
	(void)error;
	w->evt_disconnected++;
}

static void on_registered(struct vici_client *c, int error, void *userdata)
{
	struct watch *w = userdata;

	(void)c;
	w->registered++;
	w->registered_ok += error == 0;
}

static void on_sa_event(struct vici_client *c, int error, const char *event,
			const struct vici_msg *msg, void *userdata)
{
	/* No SA comes up on a kernel without ESP; decoding is covered by
	 * test_vici.  Seeing one here is not an error either. */
	(void)c;
	(void)error;
	(void)event;
	(void)msg;
	(void)userdata;
}

static void on_version(struct vici_client *c, int error, const struct vici_msg *reply,
		       void *userdata)
{
	struct watch *w = userdata;
	const char *d = vici_msg_get_str(reply, "daemon");
	const char *v = vici_msg_get_str(reply, "version");

	(void)c;
	w->replies++;
	w->reply_error = error;
	snprintf(w->daemon, sizeof(w->daemon), "%s", d ? d : "");
	snprintf(w->version, sizeof(w->version), "%s", v ? v : "");
}

static void on_done(struct vici_client *c, int error, const char *errmsg, void *userdata)
{
	struct watch *w = userdata;

	(void)c;
	w->done++;
	w->done_error = error;
	snprintf(w->errmsg, sizeof(w->errmsg), "%s", errmsg ? errmsg : "");
}

static void on_list_conn(struct vici_client *c, int error, const char *event,
			 const struct vici_msg *msg, void *userdata)
{
	struct watch *w = userdata;
	const struct vici_node *conn = vici_node_child(vici_msg_root(msg), CONN);
	const char *mode;

	(void)c;
	ck_assert_int_eq(error, 0);
	ck_assert_str_eq(event, "list-conn");
	w->conn_events++;
	if (!conn)
		return;
	w->conn_seen = true;
	mode = vici_node_str(vici_node_find(conn, "children/" CHILD "/mode"));
	w->child_seen = vici_node_find(conn, "children/" CHILD) != NULL;
	snprintf(w->child_mode, sizeof(w->child_mode), "%s", mode ? mode : "");
}

static void on_conns_listed(struct vici_client *c, int error, const struct vici_msg *reply,
			    void *userdata)
{
	struct watch *w = userdata;

	(void)c;
	(void)reply;
	w->replies++;
	w->reply_error = error;
}

static void on_get_conns(struct vici_client *c, int error, char *const *conns, void *userdata)
{
	struct watch *w = userdata;

	(void)c;
	w->lists++;
	w->list_error = error;
	w->listed = false;
	for (size_t i = 0; conns && conns[i]; i++)
		if (strcmp(conns[i], CONN) == 0)
			w->listed = true;
}

static void on_sas(struct vici_client *c, int error, struct vici_ike_sa *const *sas, size_t n,
		   void *userdata)
{
	struct watch *w = userdata;

	(void)c;
	w->lists++;
	w->list_error = error;
	w->listed_sas = (unsigned)n;
	fprintf(stderr, "test_vici_charon: list-sas: %zu IKE_SA(s)%s%s\n", n, n ? ", first " : "",
		n ? sas[0]->state : "");
	for (size_t i = 0; i < n; i++) {
		/* Only ours can exist in this private charon. */
		ck_assert_str_eq(sas[i]->name, CONN);
		ck_assert_ptr_nonnull(sas[i]->state);
	}
}

/* Runs the loop until *counter reaches target; fails after ms. */
static void run_until(sd_event *e, const unsigned *counter, unsigned target, unsigned ms,
		      const char *what)
{
	uint64_t end = now_usec() + (uint64_t)ms * 1000;

	while (*counter < target && now_usec() < end)
		ck_assert_int_ge(sd_event_run(e, 20 * 1000), 0);
	ck_assert_msg(*counter >= target, "timed out waiting for %s; charon log:\n%s", what,
		      charon_log_tail());
}

/* Waits until charon's socket accepts connections, running the loop
 * meanwhile; fails if charon exits or the deadline passes. */
static uint64_t wait_charon(sd_event *e)
{
	uint64_t end = now_usec() + START_DEADLINE_MS * 1000ull;
	int status;

	for (;;) {
		pid_t r = waitpid(ch.pid, &status, WNOHANG);

		ck_assert_msg(r == 0, "charon exited (status 0x%x); log:\n%s", status,
			      charon_log_tail());
		if (socket_accepts(ch.sock))
			return now_usec();
		ck_assert_msg(now_usec() < end, "charon's VICI socket %s not up after %d ms; log:\n%s",
			      ch.sock, START_DEADLINE_MS, charon_log_tail());
		if (e)
			ck_assert_int_ge(sd_event_run(e, 20 * 1000), 0);
		else
			usleep(20 * 1000);
	}
}

static void make_creds(char **cert, size_t *cert_len, char **key, size_t *key_len)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd),
		 "cd '%s' && "
		 "pki --gen --type ecdsa --size 256 --outform pem > key.pem 2>>pki.err && "
		 "pki --self --type ecdsa --in key.pem --dn 'CN=sbc.operator.example' "
		 "--san sbc.operator.example --outform pem > cert.pem 2>>pki.err",
		 ch.dir);
	ck_assert_msg(system(cmd) == 0, "pki failed (install strongswan-pki): %s", cmd);
	snprintf(cmd, sizeof(cmd), "%s/key.pem", ch.dir);
	*key = read_file(cmd, key_len);
	snprintf(cmd, sizeof(cmd), "%s/cert.pem", ch.dir);
	*cert = read_file(cmd, cert_len);
	ck_assert_ptr_nonnull(strstr(*cert, "BEGIN CERTIFICATE"));
}

/* Issues a { success, errmsg } command through `issue` and waits for it. */
#define EXPECT_DONE(w, e, call, expect)                                                      \
	do {                                                                                 \
		unsigned _n = (w).done + 1;                                                  \
		ck_assert_int_eq((call), 0);                                                 \
		run_until((e), &(w).done, _n, 10000, #call);                                 \
		ck_assert_msg((w).done_error == (expect), "%s: %d (%s)", #call, (w).done_error, \
			      (w).errmsg);                                                   \
	} while (0)

START_TEST(test_charon)
{
	static const struct vici_client_callbacks cmd_cbs = {
		.connected = on_cmd_connected,
		.disconnected = on_cmd_disconnected,
	};
	static const struct vici_client_callbacks evt_cbs = {
		.connected = on_evt_connected,
		.disconnected = on_evt_disconnected,
	};
	static const char *const remote_addrs[] = { "192.0.2.10", NULL };
	static const char *const local_addrs[] = { "203.0.113.5", NULL };
	static const char *const local_ts[] = { "10.1.0.0/24", NULL };
	static const char *const remote_ts[] = { "192.0.2.0/24", NULL };
	static const char *const esp[] = { "aes256gcm16-ecp256", NULL };
	static const char *const ike[] = { "aes256-sha256-ecp256", NULL };
	struct watch w = { 0 };
	struct vici_client *cmd = NULL, *evt = NULL;
	struct vici_builder *b = NULL;
	sd_event *e = NULL;
	char *cert, *key, *ca, *crl;
	const char *cacerts[2];
	size_t cert_len, key_len;
	uint64_t t_ready, t_up;

	charon_start();
	ck_assert_int_ge(sd_event_new(&e), 0);
	wait_charon(NULL);

	/* Two connections, as mmtrustd has them. */
	ck_assert_int_eq(vici_client_new(e, ch.sock, &cmd_cbs, &w, &cmd), 0);
	ck_assert_int_eq(vici_client_new(e, ch.sock, &evt_cbs, &w, &evt), 0);
	ck_assert_int_eq(vici_client_subscribe(evt, VICI_EVT_CHILD_UPDOWN, on_sa_event, on_registered,
					       &w),
			 0);
	ck_assert_int_eq(vici_client_subscribe(evt, VICI_EVT_IKE_UPDOWN, on_sa_event, on_registered,
					       &w),
			 0);
	ck_assert_int_eq(vici_client_start(cmd), 0);
	ck_assert_int_eq(vici_client_start(evt), 0);
	run_until(e, &w.cmd_connected, 1, 5000, "command connection");
	run_until(e, &w.registered, 2, 5000, "event registrations");
	ck_assert_uint_eq(w.registered_ok, 2); /* EVENT_CONFIRM for both */

	/* version */
	ck_assert_int_eq(vici_client_call_simple(cmd, "version", on_version, &w), 0);
	run_until(e, &w.replies, 1, 5000, "version");
	ck_assert_int_eq(w.reply_error, 0);
	ck_assert_str_eq(w.daemon, "charon");
	ck_assert_msg(strncmp(w.version, "5.", 2) == 0, "version '%s'", w.version);

	/* Credentials: ours from pki, the partner CA from certgen. */
	make_creds(&cert, &cert_len, &key, &key_len);
	EXPECT_DONE(w, e, vici_load_cert(cmd, cert, cert_len, VICI_CERT_FLAG_NONE, on_done, &w), 0);
	EXPECT_DONE(w, e, vici_load_key(cmd, key, key_len, VICI_KEY_ECDSA, on_done, &w), 0);
	EXPECT_DONE(w, e, vici_load_key(cmd, key, key_len, VICI_KEY_ANY, on_done, &w), 0);
	EXPECT_DONE(w, e, vici_load_key(cmd, "garbage", 7, VICI_KEY_RSA, on_done, &w), -EREMOTEIO);
	ck_assert_msg(w.errmsg[0], "charon refused without an errmsg");
	ca = certgen_ca_pem("Partner A CA", -3600, 30 * 86400L);
	ck_assert_ptr_nonnull(ca);
	EXPECT_DONE(w, e, vici_load_cert(cmd, ca, strlen(ca), VICI_CERT_FLAG_CA, on_done, &w), 0);
	/* A CRL (load-cert type X509_CRL: charon's own name for it), the
	 * cache flush that makes charon use it, and garbage refused. */
	crl = certgen_crl_pem("Partner A CA", 2, 86400L);
	ck_assert_ptr_nonnull(crl);
	EXPECT_DONE(w, e, vici_load_crl(cmd, crl, strlen(crl), on_done, &w), 0);
	EXPECT_DONE(w, e, vici_load_crl(cmd, "garbage", 7, on_done, &w), -EREMOTEIO);
	EXPECT_DONE(w, e, vici_flush_certs(cmd, "X509_CRL", on_done, &w), 0);

	/* load-conn with policies = no and a fixed reqid. */
	cacerts[0] = ca;
	cacerts[1] = NULL;
	struct vici_child_conf child = {
		.name = CHILD,
		.local_ts = local_ts,
		.remote_ts = remote_ts,
		.esp_proposals = esp,
		.reqid = REQID,
	};
	struct vici_conn_conf conf = {
		.name = CONN,
		.local_addrs = local_addrs,
		.remote_addrs = remote_addrs,
		.proposals = ike,
		.local_id = "sbc.operator.example",
		.local_cert = cert,
		.local_cert_len = cert_len,
		.remote_id = "ims.partner-a.example",
		.remote_cacerts = cacerts,
		.remote_revocation = "strict",
		.dpd_delay = 30,
		.children = &child,
		.n_children = 1,
	};
	EXPECT_DONE(w, e, vici_load_conn(cmd, &conf, on_done, &w), 0);

	/* list-conns (streamed) shows it, with its child in tunnel mode. */
	ck_assert_int_eq(vici_builder_new(VICI_CMD_REQUEST, "list-conns", &b), 0);
	ck_assert_int_eq(vici_client_call(cmd, b, "list-conn", on_list_conn, on_conns_listed, &w), 0);
	vici_builder_free(b);
	b = NULL;
	run_until(e, &w.replies, 2, 5000, "list-conns");
	ck_assert_int_eq(w.reply_error, 0);
	ck_assert_uint_ge(w.conn_events, 1);
	ck_assert(w.conn_seen);
	ck_assert(w.child_seen);
	ck_assert_str_eq(w.child_mode, "TUNNEL");

	/* get-conns too. */
	ck_assert_int_eq(vici_get_conns(cmd, on_get_conns, &w), 0);
	run_until(e, &w.lists, 1, 5000, "get-conns");
	ck_assert_int_eq(w.list_error, 0);
	ck_assert(w.listed);

	/* list-sas decodes whatever start_action = start got going (an IKE_SA
	 * towards a peer that cannot answer, or none). */
	ck_assert_int_eq(vici_list_sas(cmd, NULL, on_sas, &w), 0);
	run_until(e, &w.lists, 2, 5000, "list-sas");
	ck_assert_int_eq(w.list_error, 0);

	/* rekey (reauth) of an IKE_SA that does not exist: refused. */
	EXPECT_DONE(w, e,
		    vici_rekey(cmd, &(struct vici_rekey_args){ .ike_id = 99999, .reauth = true },
			       on_done, &w),
		    -EREMOTEIO);

	/* charon's refusals arrive as -EREMOTEIO with its reason. */
	EXPECT_DONE(w, e,
		    vici_initiate(cmd, &(struct vici_initiate_args){ .child = "no-such-child",
								      .timeout_ms = -1 },
				  on_done, &w),
		    -EREMOTEIO);
	EXPECT_DONE(w, e,
		    vici_terminate(cmd, &(struct vici_terminate_args){ .ike = "no-such-ike",
								       .timeout_ms = -1 },
				   on_done, &w),
		    -EREMOTEIO);

	/* unload-conn: gone from get-conns; a second unload is refused. */
	EXPECT_DONE(w, e, vici_unload_conn(cmd, CONN, on_done, &w), 0);
	ck_assert_int_eq(vici_get_conns(cmd, on_get_conns, &w), 0);
	run_until(e, &w.lists, 3, 5000, "get-conns after unload");
	ck_assert_int_eq(w.list_error, 0);
	ck_assert(!w.listed);
	EXPECT_DONE(w, e, vici_unload_conn(cmd, CONN, on_done, &w), -EREMOTEIO);

	/* Unknown command and unknown event. */
	ck_assert_int_eq(vici_client_call_simple(cmd, "no-such-command", on_version, &w), 0);
	run_until(e, &w.replies, 3, 5000, "unknown command");
	ck_assert_int_eq(w.reply_error, -EOPNOTSUPP);
	ck_assert_int_eq(vici_client_subscribe(evt, "no-such-event", on_sa_event, on_registered, &w),
			 0);
	run_until(e, &w.registered, 3, 5000, "unknown event registration");
	ck_assert_uint_eq(w.registered_ok, 2);
	ck_assert_int_eq(vici_client_unsubscribe(evt, "no-such-event"), 0);
	ck_assert_uint_eq(w.cmd_disconnected, 0);

	/* charon dies.  Both connections notice; commands fail at once. */
	charon_stop(SIGKILL);
	run_until(e, &w.cmd_disconnected, 1, 5000, "command connection drop");
	run_until(e, &w.evt_disconnected, 1, 5000, "event connection drop");
	ck_assert_int_eq(w.last_disconnect, -ECONNRESET);
	ck_assert_int_eq(vici_client_call_simple(cmd, "version", on_version, &w), -ENOTCONN);
	/* Let the back-off grow for a while before charon returns. */
	uint64_t end = now_usec() + 1500 * 1000;
	while (now_usec() < end)
		ck_assert_int_ge(sd_event_run(e, 20 * 1000), 0);
	ck_assert_uint_eq(w.cmd_connected, 1);

	/* charon is back: both clients reconnect within the back-off bound
	 * of its socket accepting, and `connected` fires again. */
	charon_start();
	t_ready = wait_charon(e);
	run_until(e, &w.cmd_connected, 2, (unsigned)(VICI_CLIENT_BACKOFF_MAX_USEC / 1000) + 2000,
		  "reconnect");
	/* The client may even have beaten our own probe to the socket. */
	t_up = w.t_cmd_connected > t_ready ? w.t_cmd_connected - t_ready : 0;
	ck_assert_msg(t_up <= VICI_CLIENT_BACKOFF_MAX_USEC + 500 * 1000,
		      "reconnected %llu us after charon was ready", (unsigned long long)t_up);
	run_until(e, &w.evt_connected, 2, (unsigned)(VICI_CLIENT_BACKOFF_MAX_USEC / 1000) + 2000,
		  "event reconnect");
	/* Subscriptions are registered again on the new connection. */
	run_until(e, &w.registered, 5, 5000, "re-registration");
	ck_assert_uint_eq(w.registered_ok, 4);
	fprintf(stderr, "test_vici_charon: reconnected %llu ms after charon's socket was up\n",
		(unsigned long long)t_up / 1000);

	/* And the owner's reload works on the fresh charon. */
	ck_assert_int_eq(vici_client_call_simple(cmd, "version", on_version, &w), 0);
	run_until(e, &w.replies, 4, 5000, "version after reconnect");
	ck_assert_int_eq(w.reply_error, 0);
	EXPECT_DONE(w, e, vici_load_cert(cmd, cert, cert_len, VICI_CERT_FLAG_NONE, on_done, &w), 0);
	EXPECT_DONE(w, e, vici_load_conn(cmd, &conf, on_done, &w), 0);

	vici_client_free(cmd);
	vici_client_free(evt);
	sd_event_unref(e);
	free(cert);
	explicit_bzero(key, key_len);
	free(key);
	free(ca);
	free(crl);
}
END_TEST

static Suite *charon_suite(void)
{
	Suite *s = suite_create("vici_charon");
	TCase *tc = tcase_create("charon");

	/* Unchecked: set up and torn down in the runner process, so the
	 * directory goes even when a failed assertion ends the forked test
	 * (check skips checked teardowns then; charon dies with the test
	 * through PDEATHSIG). */
	tcase_add_unchecked_fixture(tc, charon_setup, charon_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_charon);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mm_test_run(charon_suite());
}
