/* mm_err: a refusal that names the field at fault and says why.
 *
 * Every validation and provisioning function takes an optional
 * struct mm_err *; on failure it fills it (first error wins) and returns
 * a negative errno.  The CLI and the admin socket show field and message
 * verbatim, so messages are complete sentences without a trailing period. */
#ifndef MM_ERR_H
#define MM_ERR_H

#include <stdarg.h>
#include <stddef.h>

/* Codes travel on the admin socket as strings (see mm_err_code_name). */
enum mm_err_code {
	MM_ERR_NONE = 0,
	MM_ERR_INVALID,    /* a field's value is malformed or out of range */
	MM_ERR_CONFLICT,   /* valid alone, but clashes with the table (overlap, duplicate) */
	MM_ERR_NOT_FOUND,  /* the named partner does not exist */
	MM_ERR_EXHAUSTED,  /* a reserved resource (reqid range) is used up */
	MM_ERR_INTERNAL,   /* store or system failure: nothing was changed */
	MM_ERR_DENIED,     /* the caller may not do this */
	MM_ERR__MAX
};

struct mm_err {
	enum mm_err_code code;
	char field[128];
	char msg[512];
};

/* Fill err (if not NULL and still empty); returns -EINVAL, -EEXIST, ...
 * matching the code, so callers can write `return mm_err_set(...)`. */
int mm_err_set(struct mm_err *err, enum mm_err_code code, const char *field,
	       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Prefix err->field with "prefix." (or "prefix" when field is empty). */
void mm_err_prefix(struct mm_err *err, const char *prefix);

const char *mm_err_code_name(enum mm_err_code code);
enum mm_err_code mm_err_code_from_name(const char *name);

#endif
