/* bindings/answer.h: the members of struct mmtrust_answer that the Lua and Python bindings
 * hand to scripts: one table, read by both bindings' conversion function
 * (bindings/lua/mmtrust_lua.c answer_push(), bindings/python/mmtrust_py.c
 * answer_dict()).  A member added to struct mmtrust_answer is one line
 * here; its kind (text, flag, number) follows from its C type, and a type
 * the bindings cannot convert does not compile.
 *
 * "pai" is not in the table: both bindings write it themselves, as "keep"
 * only for MMTRUST_PAI_KEEP of an answer that came from the daemon. */
#ifndef MMTRUST_BINDINGS_ANSWER_H
#define MMTRUST_BINDINGS_ANSWER_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "client/mmtrust.h"

enum answer_kind {
	ANSWER_TEXT,   /* char[]: "" (the daemon sent null) is nil / None */
	ANSWER_FLAG,   /* int: a boolean, always present */
	ANSWER_U32,    /* uint32_t: 0 (none) is nil / None */
};

struct answer_field {
	const char *name;      /* the key scripts read */
	enum answer_kind kind;
	size_t offset, size;
};

#define ANSWER_MEMBER(m) (((struct mmtrust_answer *)0)->m)
#define ANSWER_FIELD(name, m) \
	{ name, _Generic(ANSWER_MEMBER(m), char *: ANSWER_TEXT, int: ANSWER_FLAG, \
			 uint32_t: ANSWER_U32), \
	  offsetof(struct mmtrust_answer, m), sizeof(ANSWER_MEMBER(m)) }

/* Key names are the query protocol's (docs/protocol.md), so a script reads
 * what the daemon's JSON says. */
static const struct answer_field answer_fields[] = {
	ANSWER_FIELD("reason", reason),
	ANSWER_FIELD("partner", partner),
	ANSWER_FIELD("kind", kind),
	ANSWER_FIELD("path", path),
	ANSWER_FIELD("agreement", agreement),
	ANSWER_FIELD("enabled", enabled),
	ANSWER_FIELD("protected", protected_),
	ANSWER_FIELD("trusted", trusted),
	ANSWER_FIELD("tunnel", tunnel),
	ANSWER_FIELD("reqid", reqid),
	ANSWER_FIELD("spi_in", spi_in),
	ANSWER_FIELD("spi_out", spi_out),
	ANSWER_FIELD("remote_id", remote_id),
	ANSWER_FIELD("direction", direction),
	ANSWER_FIELD("dst", dst),
	ANSWER_FIELD("src", src),
	ANSWER_FIELD("domain", domain),
	ANSWER_FIELD("source", source),
};

#define ANSWER_N_FIELDS (sizeof(answer_fields) / sizeof(answer_fields[0]))

/* The text of a char[] member, at most size bytes (the library always
 * terminates it; strnlen guards a future member that would not be). */
static inline size_t answer_text_len(const struct mmtrust_answer *a, const struct answer_field *f)
{
	return strnlen((const char *)a + f->offset, f->size);
}

static inline const char *answer_text(const struct mmtrust_answer *a, const struct answer_field *f)
{
	return (const char *)a + f->offset;
}

static inline int answer_flag(const struct mmtrust_answer *a, const struct answer_field *f)
{
	return *(const int *)(const void *)((const char *)a + f->offset);
}

static inline uint32_t answer_u32(const struct mmtrust_answer *a, const struct answer_field *f)
{
	return *(const uint32_t *)(const void *)((const char *)a + f->offset);
}

#endif
