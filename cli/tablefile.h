/* The partner table file: the YAML form operators edit, converted to and
 * from the JSON form the daemon speaks (docs/admin-protocol.md).
 *
 *   # comments are allowed
 *   partners:
 *     - domain: ims.partner-a.example
 *       kind: ims
 *       agreement: true
 *       ranges: [192.0.2.0/24, "2001:db8:a::/48"]
 *       gateways:
 *         - 198.51.100.10
 *       esp: encrypt
 *       path: tunnel
 *       enabled: true
 *       ca: |
 *         -----BEGIN CERTIFICATE-----
 *         ...
 *         -----END CERTIFICATE-----
 *
 * The codec types values by schema; it does not validate them (the daemon
 * does, with its own messages).  It does refuse, naming file, line, column
 * and the field path (partners[0].agreement, 0-based like the JSON array):
 *   - a top level other than a mapping with exactly the key "partners", whose
 *     value is a sequence (an empty table is written "partners: []"; an empty
 *     file or "partners:" with no value is refused, so that a truncated file
 *     cannot silently empty the table);
 *   - a partner that is not a mapping, a key other than domain, kind,
 *     agreement, ranges, gateways, ca, ca_file, esp, path, enabled, crls,
 *     revocation, a key given twice, and both ca and ca_file;
 *   - agreement/enabled other than a plain true/false, yes/no, on/off (any
 *     case): a quoted "true" is a string and refused;
 *   - ranges/gateways/crls other than a sequence of scalars ("must be a
 *     list", also for a single scalar);
 *   - ca and ca_file other than a scalar or a sequence of scalars (a CA
 *     rollover lists two; how many is the daemon's to judge);
 *   - the other keys other than a scalar, an empty or null plain scalar
 *     (`domain:`, `ca: ~`), and a string holding a NUL character;
 *   - anchors, aliases, and tags other than the standard !!str, !!bool,
 *     !!seq, !!map of the expected type; more than one YAML document.
 *
 * ca_file: PATH reads the file (relative PATH: against base_dir) into "ca"
 * with tablefile_ca_read() below, the same rule as mmtrustctl's --ca; a
 * list of paths gives "ca" the list of their PEMs.  tablefile_write leaves
 * out crls when empty and revocation when "ifuri" (the defaults), and
 * writes a list-valued ca as a sequence of literal blocks.
 *
 * libyaml 0.2.5 parses colons inside plain flow scalars ([2001:db8::1]) but
 * refuses a flow scalar that starts with a colon ([::1]): quote IPv6
 * addresses, as tablefile_write does. */
#ifndef MM_TABLEFILE_H
#define MM_TABLEFILE_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

/* Largest table file and largest ca_file (or --ca file) accepted.  A table
 * file over TABLEFILE_MAX is refused before anything is parsed or sent
 * (-EFBIG); the daemon's own bound is its admin request line (256 MiB of
 * JSON, docs/admin-protocol.md). */
#define TABLEFILE_MAX    (16u << 20)
#define TABLEFILE_CA_MAX (1u << 20)

/* Parse the table file held in text[0..len) (need not be NUL-terminated).
 * filename_for_messages: how errors name the file (NULL: "<input>").
 * base_dir: the directory relative ca_file paths are resolved against (NULL:
 * the current directory).
 * On success returns 0 and *ret_partners is a new JSON array (the caller owns
 * it, json_decref) of partner objects in file order, each holding only the
 * members the file gives.
 * On failure *ret_partners is untouched and errbuf (if errlen > 0) holds one
 * line without a trailing newline, e.g.
 *   "t.yaml:5:16: partners[0].agreement: expected true or false"
 * Returns -EINVAL for any content error, -ENOMEM, or the -errno of reading a
 * ca_file (-ENOENT, -EACCES, -EFBIG when over TABLEFILE_CA_MAX, ...). */
int tablefile_parse(const char *text, size_t len, const char *filename_for_messages,
		    const char *base_dir, json_t **ret_partners, char *errbuf, size_t errlen);

/* Read the file at path ("-": standard input) and parse it as above, with
 * base_dir the file's directory (standard input: the current directory).
 * Returns what tablefile_parse returns, or the -errno of reading path
 * (-EFBIG over TABLEFILE_MAX), with errbuf "PATH: reason". */
int tablefile_read(const char *path, json_t **ret_partners, char *errbuf, size_t errlen);

/* Write partners (a JSON array of partner objects, e.g. a daemon listing) to
 * out as a table file that tablefile_parse turns back into equal JSON for the
 * config members:
 *   - a first line "# mmtrust partner table, exported by mmtrustctl";
 *   - partners sorted by domain (bytewise), so the output does not depend on
 *     the input order; keys in the order domain, kind, agreement, ranges,
 *     gateways, esp, path, enabled, ca; members absent from a partner are
 *     left out, members other than these nine (reqid, ca_sha256, ...) too;
 *   - strings plain when no YAML reader could take them for anything but a
 *     string, else double-quoted (every IPv6 address); ca as a literal block
 *     (|) unless its characters need escapes (CR, tab, trailing blanks), then
 *     double-quoted.
 * libyaml decides two details itself: sequences inside a mapping are not
 * indented ("partners:\n- domain: ..."), and the document ends with "..."
 * when the last scalar is a block that keeps trailing blank lines (|+).
 * Both are plain YAML and read back unchanged.
 * Nothing is written unless the whole table converts.  On failure errbuf (if
 * errlen > 0) is always set; returns -EINVAL (errbuf names the member by its
 * input index, e.g. "partners[2].ranges[0]: expected a string") for a non-array,
 * a partner without a string domain, two partners with the same domain, a
 * member of the wrong type or a string holding NUL; -ENOMEM; the -errno of
 * writing or flushing out. */
int tablefile_write(FILE *out, const json_t *partners, char *errbuf, size_t errlen);

/* Read the CA certificate file at path (relative: against base_dir; NULL or
 * "": the current directory) as bytes and make the partner's "ca" value, a
 * new JSON string in *ret_value:
 *   - one DER encoding spanning the whole file (an ASN.1 SEQUENCE: only its
 *     framing is looked at) becomes PEM, byte for byte what
 *     `openssl x509 -inform DER -outform PEM` writes; returns 1;
 *   - otherwise UTF-8 text without NUL bytes is the value as it is, every
 *     byte; returns 0;
 *   - anything else is refused with -EINVAL ("binary data that is not one
 *     DER-encoded certificate").
 * This is the only place a file becomes a "ca" value; whether the value is
 * an acceptable certificate is the daemon's decision (policy/ca.h), never
 * this function's.  Other errors: -EFBIG over TABLEFILE_CA_MAX, -ENOMEM, the
 * -errno of reading.  On failure errbuf holds "PATH: reason" (the path
 * sanitised for a terminal) and *ret_value is untouched. */
int tablefile_ca_read(const char *path, const char *base_dir, json_t **ret_value, char *errbuf,
		      size_t errlen);

#endif
