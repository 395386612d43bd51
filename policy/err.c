#include "err.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char *const code_names[MM_ERR__MAX] = {
	[MM_ERR_NONE] = "ok",
	[MM_ERR_INVALID] = "invalid",
	[MM_ERR_CONFLICT] = "conflict",
	[MM_ERR_NOT_FOUND] = "not-found",
	[MM_ERR_EXHAUSTED] = "exhausted",
	[MM_ERR_INTERNAL] = "internal",
	[MM_ERR_DENIED] = "denied",
};

static const int code_errno[MM_ERR__MAX] = {
	[MM_ERR_NONE] = 0,
	[MM_ERR_INVALID] = EINVAL,
	[MM_ERR_CONFLICT] = EEXIST,
	[MM_ERR_NOT_FOUND] = ENOENT,
	[MM_ERR_EXHAUSTED] = ENOSPC,
	[MM_ERR_INTERNAL] = EIO,
	[MM_ERR_DENIED] = EPERM,
};

int mm_err_set(struct mm_err *err, enum mm_err_code code, const char *field,
	       const char *fmt, ...)
{
	if (code <= MM_ERR_NONE || code >= MM_ERR__MAX)
		code = MM_ERR_INTERNAL;
	if (err && err->code == MM_ERR_NONE) {
		va_list ap;

		err->code = code;
		snprintf(err->field, sizeof(err->field), "%s", field ? field : "");
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return -code_errno[code];
}

void mm_err_prefix(struct mm_err *err, const char *prefix)
{
	char buf[sizeof(err->field)];

	if (!err || err->code == MM_ERR_NONE || !prefix || !*prefix)
		return;
	if (err->field[0])
		snprintf(buf, sizeof(buf), "%.60s.%.66s", prefix, err->field);
	else
		snprintf(buf, sizeof(buf), "%.127s", prefix);
	memcpy(err->field, buf, sizeof(buf));
}

const char *mm_err_code_name(enum mm_err_code code)
{
	if (code < 0 || code >= MM_ERR__MAX)
		return "internal";
	return code_names[code];
}

enum mm_err_code mm_err_code_from_name(const char *name)
{
	for (int i = 0; i < MM_ERR__MAX; i++)
		if (name && strcmp(name, code_names[i]) == 0)
			return i;
	return MM_ERR_INTERNAL;
}
