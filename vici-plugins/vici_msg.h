/* vici_msg: the VICI wire codec (strongSwan's Versatile IKE Control Interface).
 *
 * Three layers, as on the wire:
 *   frame   = 32-bit big-endian length + payload            (transport)
 *   payload = type byte [+ 8-bit name length + name] [+ message]  (packet)
 *   message = sequence of elements forming a tree            (message)
 *
 * The builder writes a whole frame (length included) ready for write(2).
 * The parser reads a packet payload (vici_packet_parse) and a message into a
 * read-only tree (vici_msg_parse).  The parser treats its input as hostile:
 * every length is checked against the remaining bytes, nesting and sizes are
 * bounded, and anything outside the grammar below is refused with -EBADMSG.
 *
 * Grammar enforced by the parser (and by the builder for what it emits):
 *   - SECTION_START/SECTION_END balanced; depth <= VICI_MSG_DEPTH_MAX;
 *   - a list is opened in a section, holds only LIST_ITEMs, is closed before
 *     anything else happens (lists do not nest; no key or section inside);
 *   - names (sections, keys, lists) are 1..255 bytes, none of them NUL, so
 *     they are returned as C strings;
 *   - values are 0..65535 arbitrary bytes (DER, PEM, numbers as text);
 *   - unknown element types, truncated elements and open sections or lists
 *     at the end are malformed;
 *   - at most VICI_MSG_ELEMS_MAX elements per message.
 * Duplicate key names in one section are not refused (charon never sends
 * them); lookups return the first.
 *
 * Errors: -EBADMSG malformed input, -EMSGSIZE over a size limit, -EINVAL a
 * bad argument or builder misuse, -ENOMEM.  ret_ outputs are written only on
 * success. */
#ifndef MM_VICI_MSG_H
#define MM_VICI_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest packet payload (the frame minus its 4-byte length) we send or
 * accept.  It equals charon's own limit (VICI_MESSAGE_SIZE_MAX, 512 KiB), so
 * nothing charon can legitimately send is refused, and nothing we build is
 * one that charon would drop. */
#define VICI_PACKET_MAX (512u * 1024u)
#define VICI_FRAME_HDR 4u

/* Section nesting: the deepest message mmtrust handles is child-rekey
 * (ike / child-sas / child / old = 4); 16 leaves room and caps recursion. */
#define VICI_MSG_DEPTH_MAX 16u

/* Elements in one message.  Bounds the tree's memory (about 40 bytes per
 * element) to ~2.5 MiB; a list-sa event for an IKE_SA with 100 CHILD_SAs has
 * about 4000. */
#define VICI_MSG_ELEMS_MAX 65536u

#define VICI_NAME_MAX 255u
#define VICI_VALUE_MAX 65535u

enum vici_packet_type {
	VICI_CMD_REQUEST = 0,      /* named, message */
	VICI_CMD_RESPONSE = 1,     /* message */
	VICI_CMD_UNKNOWN = 2,      /* empty */
	VICI_EVENT_REGISTER = 3,   /* named */
	VICI_EVENT_UNREGISTER = 4, /* named */
	VICI_EVENT_CONFIRM = 5,    /* empty */
	VICI_EVENT_UNKNOWN = 6,    /* empty */
	VICI_EVENT = 7,            /* named, message */
	_VICI_PACKET_TYPE_MAX,
};

enum vici_elem_type {
	VICI_SECTION_START = 1,
	VICI_SECTION_END = 2,
	VICI_KEY_VALUE = 3,
	VICI_LIST_START = 4,
	VICI_LIST_ITEM = 5,
	VICI_LIST_END = 6,
};

/* "cmd-request" etc., or NULL for an unknown type. */
const char *vici_packet_type_to_string(int type);

/* ---- builder ---------------------------------------------------------- */

struct vici_builder;

/* Starts a frame of packet `type`.  Named types (CMD_REQUEST,
 * EVENT_REGISTER, EVENT_UNREGISTER, EVENT) need a name of 1..255 bytes;
 * the others take name == NULL.  The caller frees the builder with
 * vici_builder_free() (also after vici_builder_finish()). */
int vici_builder_new(enum vici_packet_type type, const char *name, struct vici_builder **ret);

/* Wipes (private keys pass through here) and frees; NULL is fine. */
void vici_builder_free(struct vici_builder *b);

/* Element adders.  Each returns 0 or a negative errno, and the first error
 * also sticks in the builder so that vici_builder_finish() returns it: a
 * caller may add a run of elements and check only the finish.  Once an error
 * stuck, further adds do nothing and return it again. */
int vici_builder_section_start(struct vici_builder *b, const char *name);
int vici_builder_section_end(struct vici_builder *b);
int vici_builder_kv(struct vici_builder *b, const char *key, const void *value, size_t len);
int vici_builder_kv_str(struct vici_builder *b, const char *key, const char *value);
int vici_builder_kv_fmt(struct vici_builder *b, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int vici_builder_list_start(struct vici_builder *b, const char *name);
int vici_builder_list_item(struct vici_builder *b, const void *value, size_t len);
int vici_builder_list_item_str(struct vici_builder *b, const char *value);
int vici_builder_list_end(struct vici_builder *b);
/* A list `name` holding each string of the NULL-terminated `items`
 * (items == NULL: an empty list). */
int vici_builder_list_strv(struct vici_builder *b, const char *name, const char *const *items);

/* Checks that sections and lists are closed and hands out the frame:
 * *ret_frame points into the builder (valid until vici_builder_free()),
 * *ret_len counts the 4-byte length too.  -EINVAL if anything is open. */
int vici_builder_finish(struct vici_builder *b, const uint8_t **ret_frame, size_t *ret_len);

/* ---- packet ----------------------------------------------------------- */

/* A parsed packet.  name and body point into the buffer given to
 * vici_packet_parse() and live as long as it does; name is NOT
 * NUL-terminated (use name_len). */
struct vici_packet {
	enum vici_packet_type type;
	const char *name; /* NULL for unnamed types */
	size_t name_len;
	const uint8_t *body; /* the message; NULL with body_len 0 if none */
	size_t body_len;
};

/* Parses a packet payload (a frame without its 4-byte length).  -EBADMSG:
 * empty, unknown type, a named type without a (non-empty) name or with a
 * name overrunning the payload, a NUL in the name, or trailing bytes after a
 * type that carries no message.  -EMSGSIZE: len > VICI_PACKET_MAX. */
int vici_packet_parse(const void *payload, size_t len, struct vici_packet *ret);

/* The payload length announced by a 4-byte frame header; -EMSGSIZE if it
 * exceeds VICI_PACKET_MAX, -EBADMSG if it is 0 (a packet has a type byte). */
int vici_frame_len(const uint8_t hdr[VICI_FRAME_HDR], size_t *ret_len);

/* ---- message tree ------------------------------------------------------ */

struct vici_msg;
struct vici_node;

enum vici_node_type {
	VICI_NODE_SECTION, /* the root is a section without a name */
	VICI_NODE_KV,
	VICI_NODE_LIST,
	VICI_NODE_ITEM, /* a list item: value, no name */
};

/* Parses a message (a packet body; len 0 is the valid empty message) into a
 * tree the caller frees with vici_msg_free().  The tree copies what it needs:
 * `data` may be freed right after.  Errors: -EBADMSG, -EMSGSIZE (len >
 * VICI_PACKET_MAX, too many elements), -ENOMEM. */
int vici_msg_parse(const void *data, size_t len, struct vici_msg **ret);
void vici_msg_free(struct vici_msg *m);

/* Every node below is borrowed from its vici_msg and lives until
 * vici_msg_free().  Functions taking a node accept NULL and then return
 * NULL (or an error), so lookups chain without checks in between. */
const struct vici_node *vici_msg_root(const struct vici_msg *m);

enum vici_node_type vici_node_type(const struct vici_node *n);
/* NUL-terminated name; NULL for the root and list items. */
const char *vici_node_name(const struct vici_node *n);
/* First child of a section (in message order) or first item of a list;
 * NULL for none or for a key/item. */
const struct vici_node *vici_node_first(const struct vici_node *n);
const struct vici_node *vici_node_next(const struct vici_node *n);
/* The direct child of section `n` named `name` (first one if repeated). */
const struct vici_node *vici_node_child(const struct vici_node *n, const char *name);
/* Walks `path`, names separated by '/', from section `n`: "ike/child-sas"
 * is vici_node_child(vici_node_child(n, "ike"), "child-sas").  Every
 * segment but the last must name a section.  Names that contain '/' need
 * vici_node_child(). */
const struct vici_node *vici_node_find(const struct vici_node *n, const char *path);

/* The value of a key or list item; *ret_len its length.  The bytes are
 * always followed by a NUL that is not counted.  NULL for other nodes. */
const void *vici_node_value(const struct vici_node *n, size_t *ret_len);
/* The value as a C string, or NULL if `n` is not a key/item or the value
 * holds a NUL byte (it would silently truncate). */
const char *vici_node_str(const struct vici_node *n);
/* The value as an unsigned decimal number <= max: 0 and *ret set, -ENOENT
 * if n is NULL, -EINVAL if not a key/item, -EBADMSG if not a plain decimal
 * number (no sign, no space, no empty string), -ERANGE if above max. */
int vici_node_uint(const struct vici_node *n, uint64_t max, uint64_t *ret);
/* "yes"/"no" (charon's booleans): 0 and *ret set; -ENOENT/-EINVAL as above,
 * -EBADMSG for any other text. */
int vici_node_bool(const struct vici_node *n, bool *ret);

/* The string at `path` from the root, or NULL (see vici_node_str()). */
const char *vici_msg_get_str(const struct vici_msg *m, const char *path);

/* The common reply of charon's configuration commands:
 * { success = yes|no, errmsg = <text> }.  Returns 0 for success = yes,
 * -EREMOTEIO for success = no (charon refused; vici_msg_errmsg() says why),
 * -EBADMSG if the reply has no valid success key. */
int vici_msg_check_success(const struct vici_msg *m);
/* charon's errmsg, borrowed from m, or NULL if there is none. */
const char *vici_msg_errmsg(const struct vici_msg *m);

#endif
