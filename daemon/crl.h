/* The partners' CRL files as mmtrustd watches them: read, parsed
 * (policy/ca.h mm_crl_check) and re-read when they change on disk.  No
 * logging and no VICI here: ike.c judges the content against the listing
 * partners' CAs (crl_verify_for), hands it to charon (load-cert X509_CRL),
 * logs, and re-authenticates the tunnels of the partners that list a file
 * whose new content revokes a serial anew (newly_revoked).
 *
 * Change detection is a stat of every file once a second (crl_set_poll),
 * not inotify: CRLs are replaced by fetch jobs with rename(2), edited in
 * place, or live on bind mounts and network file systems where inotify
 * sees nothing; their directories may not exist yet when a partner names
 * them; and a stat of a few dozen files a second costs nothing.  A change
 * is a different (device, inode, size, mtime, ctime); the content's
 * SHA-256 then decides whether charon needs it again. */
#ifndef MMTRUSTD_CRL_H
#define MMTRUSTD_CRL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <time.h>

#include "policy/ca.h"
#include "policy/err.h"
#include "policy/table.h"

enum crl_state {
	CRL_UNREAD,    /* not read yet */
	CRL_OK,        /* read and parsed; `data` is the content */
	CRL_MISSING,   /* the file does not exist (revocation by it is off) */
	CRL_BAD,       /* unreadable or not a CRL; the last good content stays */
	CRL_STALE,     /* as OK, but its nextUpdate has passed (crl_file_age) */
};

struct crl_file {
	char *path;
	enum crl_state state;
	char error[512];               /* why, when MISSING or BAD */
	struct stat st;                /* what the last poll saw */
	bool have_st;
	/* The last good content and what it says; kept when the file turns
	 * bad or goes missing (charon keeps the CRL it has). */
	void *data;
	size_t len;
	struct mm_crl_info info;
	bool have_info;
	bool changed;                  /* new good content not yet in charon */
	/* The content revokes a serial the content before it did not (or,
	 * read first after start-up, anything): up tunnels re-authenticate
	 * once it is loaded.  Sticky until a load takes it. */
	bool newly_revoked;
	bool reauth_first;             /* a row made after start-up */
	/* Why no listing partner's CA issued the content ("" when one
	 * did): then charon is not given it. */
	char ca_error[600];
	/* What charon accepted last ("" when none) and when. */
	char charon_sha256[96];
	time_t loaded_at;
	char charon_error[256];        /* charon's refusal of the last load */
	time_t retry_at;               /* after a refusal: not before (monotonic s) */
	unsigned retry_s;              /* the back-off: 1, 2, 4 ... 60 */
	bool used;                     /* scratch for crl_set_sync */
};

struct crl_set {
	struct crl_file *f;
	size_t n;
	bool started;                  /* rows made from now on are reauth_first */
};

/* The union of the CRL paths of every partner: new paths get
 * a row (CRL_UNREAD), paths no partner lists any more lose theirs.
 * -ENOMEM (set unchanged). */
int crl_set_sync(struct crl_set *s, const struct mm_table *t);
void crl_set_clear(struct crl_set *s);
struct crl_file *crl_set_find(const struct crl_set *s, const char *path);

/* Stat one file; read and parse it when it changed (always with force).
 * True when its state or content changed (content: `changed` set too). */
bool crl_file_poll(struct crl_file *f, bool force);
/* Stat every file; read and parse those that changed (all with force).
 * A file whose content differs from what was kept gets `changed`.
 * Returns how many files changed state or content (for logging). */
size_t crl_set_poll(struct crl_set *s, bool force);
/* OK <-> STALE as the nextUpdate is passed at now; true on a change. */
bool crl_file_age(struct crl_file *f, time_t now);

/* Whether partner p may use the CRL data: issued by one of p's CAs
 * (mm_crl_issued_by).  -EINVAL naming field with the reason. */
int crl_verify_for(const void *data, size_t len, const struct mm_partner *p, const char *field,
		   struct mm_err *err);

/* Read and parse one CRL file: the provisioning check (admin) and
 * crl_set_poll's reader.  ret_data (may be NULL) receives the content,
 * which the caller frees.  -ENOENT, -EISDIR, -EFBIG, -EINVAL ... with err
 * naming field and the reason. */
int crl_file_read(const char *path, const char *field, void **ret_data, size_t *ret_len,
		  struct mm_crl_info *ret_info, struct stat *ret_st, struct mm_err *err);

/* The admin check of a change set: every CRL path a changed or added
 * partner lists newly (every path, when its CAs changed) must be a
 * readable file of one CRL, issued by one of the partner's CAs, whose
 * nextUpdate is not past at now (a typo or the wrong file would turn
 * revocation off without a word).  -EINVAL naming <domain>.crls[i]. */
int crl_check_changes(const struct mm_change *changes, size_t n, time_t now,
		      struct mm_err *err);

/* {path, state, error, sha256, issuer, this_update, next_update, revoked,
 * loaded, loaded_at} for status; p (may be NULL): the partner it is shown
 * for, state "bad" when none of p's CAs issued it.  loaded: charon holds
 * the file's current content. */
json_t *crl_file_json(const struct crl_file *f, const char *path, const struct mm_partner *p);

#endif
