/* libFuzzer target for the VICI parser: packet layer, message tree, the
 * accessors and every decoder that reads what charon sends.
 *
 * Input: a packet payload (type byte, name, message).  If it is not a valid
 * packet the whole input is parsed as a bare message, so both layers get
 * fuzzed.  Oracle besides the sanitizers: a message that parses re-encodes
 * with the builder to exactly the same bytes (the encoding is canonical), so
 * parser and builder agree on the grammar and on every limit; and what the
 * decoders return keeps the promises of vici.h (check_ike below).  Then the
 * message is the answer to every command, through the commands' own
 * completion code with the connection replaced (commands() below): list-sas
 * hands over all its events or the first failure, never a partial list;
 * get-conns and the { success, errmsg } commands report what the reply
 * says, each exactly once.
 * Seeds: tests/fuzz/corpus/vici/, built with the builder (gen_seeds.c). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vici-plugins/vici.h"
#include "vici-plugins/vici_client.h"
#include "vici-plugins/vici_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void reencode(struct vici_builder *b, const struct vici_node *sec)
{
	for (const struct vici_node *n = vici_node_first(sec); n; n = vici_node_next(n)) {
		const void *v;
		size_t len;

		switch (vici_node_type(n)) {
		case VICI_NODE_SECTION:
			vici_builder_section_start(b, vici_node_name(n));
			reencode(b, n);
			vici_builder_section_end(b);
			break;
		case VICI_NODE_KV:
			v = vici_node_value(n, &len);
			vici_builder_kv(b, vici_node_name(n), v, len);
			break;
		case VICI_NODE_LIST:
			vici_builder_list_start(b, vici_node_name(n));
			for (const struct vici_node *i = vici_node_first(n); i; i = vici_node_next(i)) {
				v = vici_node_value(i, &len);
				vici_builder_list_item(b, v, len);
			}
			vici_builder_list_end(b);
			break;
		case VICI_NODE_ITEM:
			abort(); /* items live in lists only */
		}
	}
}

/* Touches every accessor on every node; looks every name up again. */
static void walk(const struct vici_node *root, const struct vici_node *sec, char *path, size_t plen)
{
	for (const struct vici_node *n = vici_node_first(sec); n; n = vici_node_next(n)) {
		const char *name = vici_node_name(n);
		size_t nlen = strlen(name), len;
		uint64_t u;
		bool b;

		if (name[0] == '\0' || nlen > VICI_NAME_MAX)
			abort();
		(void)vici_node_str(n);
		(void)vici_node_uint(n, UINT64_MAX, &u);
		(void)vici_node_bool(n, &b);
		if (vici_node_type(n) == VICI_NODE_KV) {
			const char *v = vici_node_value(n, &len);

			if (!v || v[len] != '\0')
				abort();
		}
		if (!strchr(name, '/') && plen + 1 + nlen < 4096) {
			size_t l = plen;

			if (l)
				path[l++] = '/';
			memcpy(path + l, name, nlen + 1);
			/* The direct lookup finds this node or an earlier
			 * namesake; the path lookup may miss it when an
			 * ancestor has an earlier namesake (duplicates are
			 * not refused), but never finds a wrong name. */
			const struct vici_node *f = vici_node_child(sec, name);

			if (!f || strcmp(vici_node_name(f), name) != 0)
				abort();
			f = vici_node_find(root, path);
			if (f && strcmp(vici_node_name(f), name) != 0)
				abort();
			if (vici_node_type(n) == VICI_NODE_SECTION)
				walk(root, n, path, l + nlen);
			path[plen] = '\0';
		}
	}
}

/* What every decoded SA promises (vici.h): names are strings, the
 * traffic selector lists NULL-terminated arrays (never NULL) of strings,
 * children[0..n_children), none where the event has none. */
static void check_strv(char **v)
{
	if (!v)
		abort();
	for (; *v; v++)
		(void)strlen(*v);
}

static void check_child(const struct vici_child_sa *c)
{
	if (!c->name)
		abort();
	(void)strlen(c->name);
	check_strv(c->local_ts);
	check_strv(c->remote_ts);
}

static void check_ike(const struct vici_ike_sa *sa, bool children)
{
	if (!sa->name || (sa->n_children && !sa->children) || (!children && sa->n_children))
		abort();
	(void)strlen(sa->name);
	for (size_t i = 0; i < sa->n_children; i++)
		check_child(&sa->children[i]);
}

static void decoders(const struct vici_msg *m)
{
	struct vici_ike_sa *sa = NULL;
	struct vici_child_updown *cu = NULL;
	struct vici_child_rekey *cr = NULL;
	struct vici_ike_updown *iu = NULL;
	struct vici_ike_rekey *ir = NULL;
	char **conns = NULL;
	const char *errmsg;
	int r;

	if (vici_list_sa_decode(m, &sa) == 0) {
		check_ike(sa, true);
		vici_ike_sa_free(sa);
	}
	if (vici_child_updown_decode(m, &cu) == 0) {
		check_ike(&cu->ike, true);
		vici_child_updown_free(cu);
	}
	if (vici_child_rekey_decode(m, &cr) == 0) {
		check_ike(&cr->ike, false);
		check_child(&cr->old_sa);
		check_child(&cr->new_sa);
		vici_child_rekey_free(cr);
	}
	if (vici_ike_updown_decode(m, &iu) == 0) {
		check_ike(&iu->ike, false);
		vici_ike_updown_free(iu);
	}
	if (vici_ike_rekey_decode(m, &ir) == 0) {
		check_ike(&ir->old_sa, false);
		check_ike(&ir->new_sa, false);
		if (strcmp(ir->old_sa.name, ir->new_sa.name) != 0)
			abort(); /* both named after the config */
		vici_ike_rekey_free(ir);
	}
	if (vici_get_conns_decode(m, &conns) == 0) {
		for (char **c = conns; *c; c++)
			if (!**c)
				abort(); /* an empty name is refused */
		vici_strv_free(conns);
	}
	/* Every command's answer: success = yes, or no with charon's reason. */
	r = vici_msg_check_success(m);
	errmsg = vici_msg_errmsg(m);
	if (r != 0 && r != -EREMOTEIO && r != -EBADMSG)
		abort();
	if (errmsg)
		(void)strlen(errmsg);
}

/* ---- the commands' answer handling, without a connection ----
 *
 * vici_client.c is not linked: this stands in for its one entry point the
 * commands use, keeps what a command queued, and checks the request is a
 * finished CMD_REQUEST of the command's name.  answer() then plays
 * charon: the streamed events (list-sas), then the reply or an error. */
static struct {
	const char *cmd;
	vici_event_fn on_event;
	vici_reply_fn on_reply;
	void *userdata;
	vici_destroy_fn destroy;
	bool queued;
} call;

int vici_client_call_full(struct vici_client *c, struct vici_builder *req, const char *stream_event,
			  vici_event_fn on_event, vici_reply_fn on_reply, void *userdata,
			  vici_destroy_fn destroy)
{
	const uint8_t *frame;
	size_t len;
	struct vici_packet pkt;

	(void)c;
	if (call.queued || vici_builder_finish(req, &frame, &len) < 0 ||
	    vici_packet_parse(frame + VICI_FRAME_HDR, len - VICI_FRAME_HDR, &pkt) < 0 ||
	    pkt.type != VICI_CMD_REQUEST || pkt.name_len != strlen(call.cmd) ||
	    memcmp(pkt.name, call.cmd, pkt.name_len) != 0 || !stream_event != !on_event)
		abort();
	call.on_event = on_event;
	call.on_reply = on_reply;
	call.userdata = userdata;
	call.destroy = destroy;
	call.queued = true;
	return 0;
}

static struct {
	unsigned calls;
	int error;
	size_t n;
	bool errmsg;
} done;

static void answer(const struct vici_msg *m, int n_events, int error)
{
	if (!call.queued)
		abort();
	for (int i = 0; call.on_event && i < n_events; i++)
		call.on_event(NULL, m ? 0 : -EBADMSG, VICI_EVT_LIST_SA, m, call.userdata);
	call.on_reply(NULL, error, error < 0 ? NULL : m, call.userdata);
	if (call.destroy)
		call.destroy(call.userdata);
	call.queued = false;
	if (done.calls != 1)
		abort(); /* exactly one completion */
}

static void on_done(struct vici_client *c, int error, const char *errmsg, void *userdata)
{
	(void)c;
	(void)userdata;
	done.calls++;
	done.error = error;
	done.errmsg = errmsg != NULL;
	if (errmsg)
		(void)strlen(errmsg);
}

static void on_list(struct vici_client *c, int error, struct vici_ike_sa *const *sas, size_t n,
		    void *userdata)
{
	(void)c;
	(void)userdata;
	done.calls++;
	done.error = error;
	done.n = n;
	if (error < 0 && (sas || n))
		abort(); /* a failed listing hands over nothing */
	for (size_t i = 0; i < n; i++)
		check_ike(sas[i], true);
}

static void on_conns(struct vici_client *c, int error, char *const *conns, void *userdata)
{
	(void)c;
	(void)userdata;
	done.calls++;
	done.error = error;
	if ((error < 0) != !conns)
		abort();
	for (size_t i = 0; conns && conns[i]; i++)
		if (!conns[i][0])
			abort();
}

/* The answer m (NULL: charon's reply did not parse) to every command. */
static void commands(const struct vici_msg *m, uint8_t n_events)
{
	static const char *const ts[] = { "10.0.0.0/24", NULL };
	static const char *const addrs[] = { "198.51.100.10", NULL };
	static const char *const cas[] = { "-----BEGIN CERTIFICATE-----\n", NULL };
	const struct vici_child_conf child = { .name = "partner-a", .local_ts = ts,
					       .remote_ts = ts, .reqid = 1000001 };
	const struct vici_conn_conf conn = { .name = "mm-partner-a", .remote_addrs = addrs,
					     .remote_id = "ims.partner-a.example",
					     .remote_cacerts = cas, .children = &child,
					     .n_children = 1 };
	const struct vici_initiate_args ini = { .child = "partner-a", .ike = "mm-partner-a" };
	const struct vici_terminate_args term = { .ike_id = 3,
						  .force = true };
	struct vici_ike_sa *sa = NULL;
	char **conns = NULL;
	int want, decoded;

	/* list-sas: n_events list-sa events of m, then the reply m. */
	memset(&done, 0, sizeof(done));
	call.cmd = "list-sas";
	if (vici_list_sas((struct vici_client *)&call, NULL, on_list, NULL) < 0)
		abort();
	decoded = m ? vici_list_sa_decode(m, &sa) : -EBADMSG;
	vici_ike_sa_free(sa);
	answer(m, n_events, 0);
	if (done.error != (n_events ? (decoded < 0 ? decoded : 0) : 0) ||
	    (done.error == 0 && done.n != n_events))
		abort(); /* all events, or the first failure: never a partial map */

	memset(&done, 0, sizeof(done));
	call.cmd = "get-conns";
	if (vici_get_conns((struct vici_client *)&call, on_conns, NULL) < 0)
		abort();
	want = m ? vici_get_conns_decode(m, &conns) : -ECONNRESET;
	vici_strv_free(conns);
	answer(m, 0, m ? 0 : -ECONNRESET);
	if (done.error != want)
		abort();

	/* The { success, errmsg } commands. */
	want = m ? vici_msg_check_success(m) : -ECONNRESET;
	for (int i = 0; i < 6; i++) {
		int r = -1;

		memset(&done, 0, sizeof(done));
		switch (i) {
		case 0:
			call.cmd = "load-conn";
			r = vici_load_conn((struct vici_client *)&call, &conn, on_done, NULL);
			break;
		case 1:
			call.cmd = "unload-conn";
			r = vici_unload_conn((struct vici_client *)&call, "mm-x", on_done, NULL);
			break;
		case 2:
			call.cmd = "load-cert";
			r = vici_load_cert((struct vici_client *)&call, "x", 1, VICI_CERT_FLAG_CA,
					   on_done, NULL);
			break;
		case 3:
			call.cmd = "load-key";
			r = vici_load_key((struct vici_client *)&call, "k", 1, VICI_KEY_ECDSA,
					  on_done, NULL);
			break;
		case 4:
			call.cmd = "initiate";
			r = vici_initiate((struct vici_client *)&call, &ini, on_done, NULL);
			break;
		case 5:
			call.cmd = "terminate";
			r = vici_terminate((struct vici_client *)&call, &term, on_done, NULL);
			break;
		}
		if (r < 0)
			abort();
		answer(m, 0, m ? 0 : -ECONNRESET);
		if (done.error != want || done.errmsg != (want == -EREMOTEIO && vici_msg_errmsg(m)))
			abort(); /* charon's verdict and reason, as the reply says */
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vici_builder *b = NULL;
	struct vici_packet pkt;
	struct vici_msg *m = NULL;
	const uint8_t *body = data, *frame;
	size_t body_len = size, flen;
	static char path[4096];

	if (vici_packet_parse(data, size, &pkt) == 0) {
		body = pkt.body;
		body_len = pkt.body_len;
	}
	if (vici_msg_parse(body, body_len, &m) < 0) {
		commands(NULL, 1);
		return 0;
	}

	if (body_len + 1 <= VICI_PACKET_MAX) {
		if (vici_builder_new(VICI_CMD_RESPONSE, NULL, &b) < 0)
			abort();
		reencode(b, vici_msg_root(m));
		if (vici_builder_finish(b, &frame, &flen) < 0)
			abort();
		if (flen != VICI_FRAME_HDR + 1 + body_len ||
		    (body_len && memcmp(frame + VICI_FRAME_HDR + 1, body, body_len) != 0))
			abort();
		vici_builder_free(b);
	}
	path[0] = '\0';
	walk(vici_msg_root(m), vici_msg_root(m), path, 0);
	decoders(m);
	commands(m, size ? data[size - 1] % 4 : 0);
	vici_msg_free(m);
	return 0;
}
