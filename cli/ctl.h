/* mmtrustctl's own parts: the command table, each command's options, the
 * calls to the daemon and the output helpers.  Internal to cli/.
 *
 * Every command function returns the program's exit status (enum
 * ctl_exit) and prints its own messages; nothing below main() exits.
 * Requests and JSON output are built with jansson, never with printf. */
#ifndef MM_CLI_CTL_H
#define MM_CLI_CTL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ctl_exit { EXIT_OK = 0, EXIT_REFUSED = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3 };

/* Every option any command takes; a command names its set as a bit mask
 * (OPT(O_JSON) | ...).  Two ids may share a long name when the meaning
 * differs between commands (--dst). */
enum opt_id {
	O_HELP, O_JSON, O_SOCKET, O_QUERY_SOCKET,
	O_KIND, O_AGREEMENT, O_RANGE, O_GATEWAY, O_CA, O_ESP, O_PATH, O_ENABLE, O_DISABLE,
	O_ADD_RANGE, O_DEL_RANGE, O_ADD_GATEWAY, O_DEL_GATEWAY, O_DRY_RUN,
	O_OUTPUT, O_DOMAIN, O_LIMIT, O_SPI, O_DST_IN, O_DST_OUT, O_PRIVACY_ID, O_ALLOW_SHRINK,
	O_CRL, O_ADD_CRL, O_DEL_CRL, O_REVOCATION,
	O_CHECK, O_NAGIOS,
	O_SINCE, O_UNTIL, O_EVENT_KIND,
	O__MAX
};
#define OPT(id) (UINT64_C(1) << (id))

/* Settings every command sees: the sockets and the output form, from the
 * environment, the options before the command and the command's own. */
struct ctl {
	const char *admin_socket, *query_socket;
	bool json;
};

/* One option as given on the command line, in the order given. */
struct ctl_optval {
	enum opt_id id;
	const char *value;  /* NULL for a flag */
};

struct command;

/* A command's parsed command line. */
struct ctl_args {
	const struct command *cmd;
	const struct ctl_optval *opts;
	size_t n_opts;
	char **pos;   /* the positional arguments */
	int n_pos;
};

struct command {
	const char *group, *name;  /* "partner", "add"; group NULL for "apply" */
	const char *synopsis;      /* after "mmtrustctl partner add " */
	const char *summary;       /* one line for the command list */
	const char *description;   /* the help's body, paragraphs */
	uint64_t opts;             /* OPT() mask of the options it takes */
	int min_pos, max_pos;      /* positional arguments */
	int (*run)(struct ctl *ctl, const struct ctl_args *a);
};

/* The commands of each file, terminated by an entry with name NULL. */
extern const struct command partner_commands[], inspect_commands[], query_commands[];

/* ---- mmtrustctl.c: arguments ---- */

/* The value of a single-valued option, or NULL when not given (the parser
 * refuses a single-valued option given twice). */
const char *ctl_arg(const struct ctl_args *a, enum opt_id id);
bool ctl_flag(const struct ctl_args *a, enum opt_id id);
/* The option's name as typed in help and messages: "--kind". */
const char *ctl_opt_name(enum opt_id id);
/* A usage error in command a: "mmtrustctl partner add: <message>" and where
 * the help is; returns EXIT_USAGE. */
int ctl_usage(const struct ctl_args *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* yes/true -> 1, no/false -> 0, else a usage error naming the option. */
int ctl_arg_bool(const struct ctl_args *a, enum opt_id id, bool *ret);

/* ---- call.c: the daemon ---- */

/* Send req (stolen; NULL: ctl_pack could not build it and said why, so
 * EXIT_USAGE) to the socket
 * and wait up to timeout_ms.  EXIT_OK with *ret_result (new reference) the
 * answer's "result"; otherwise the message is printed (with --json the
 * refusal answer goes to stdout too) and the exit status returned:
 * EXIT_REFUSED when the daemon refused, EXIT_UNREACHABLE when it could not
 * be reached or did not answer. */
int ctl_call(const struct ctl *ctl, const char *socket, int timeout_ms, json_t *req,
	     json_t **ret_result);
/* ctl_call to the admin socket. */
int ctl_admin(const struct ctl *ctl, json_t *req, json_t **ret_result);
/* A call to the admin or the query socket, then ctl_show of the result. */
int ctl_admin_show(const struct ctl *ctl, json_t *req, void (*human)(const json_t *));
int ctl_query_show(const struct ctl *ctl, json_t *req, void (*human)(const json_t *));

/* json_pack, with a usage error naming the command when a value cannot be
 * packed (a string argument that is not UTF-8); NULL then. */
json_t *ctl_pack(const struct ctl_args *a, const char *fmt, ...);

/* ---- output.c ---- */

/* One JSON value on stdout, by jansson; flags as json_dumpf's. */
void ctl_print_json(const json_t *j, size_t flags);
/* --json: the result as it came; else human(result).  Takes the result
 * (a reference) and returns EXIT_OK. */
int ctl_show(const struct ctl *ctl, json_t *result, void (*human)(const json_t *));
/* The member's string, or "-" when it is absent or not a string. */
const char *jstr(const json_t *obj, const char *key);
const char *jyesno(const json_t *obj, const char *key);
json_int_t jint(const json_t *obj, const char *key);
/* On stdout: an array of strings joined with ','; any value in its
 * human form (absent or null: "-"). */
void print_list(const json_t *arr);
void print_value(const json_t *v);

#endif
