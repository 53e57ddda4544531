/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The message summary from a header block (see msg-summary.h).
 *
 * The input comes from anywhere (a local file, a server, an attacker), so
 * everything here is bounded: at most MSG_SUMMARY_SCAN_HEADER bytes are
 * searched for fields, at most MSG_SUMMARY_MAX_HEADER bytes of each value
 * are looked at, every kept value is cut at MSG_SUMMARY_MAX_FIELD bytes, and
 * each pass over the input is linear.  Nothing fails on malformed input;
 * what cannot be read is left empty.
 *
 * Every value handed out is valid UTF-8 (D-Bus strings must be): a byte
 * that does not start a valid UTF-8 sequence is taken as ISO-8859-1, the
 * usual charset of raw 8-bit header bytes.  NUL bytes are dropped; other
 * control characters except TAB become a space.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cpmsync/utf8.h>

#include "util/buf.h"
#include "util/charset.h"
#include "util/cpm-object.h"
#include "util/macro.h"
#include "util/msg-summary.h"
#include "util/text.h"
#include "util/transfer.h"

/* A raw value: a span of the input, folds and all. */
struct span {
	const char *p;
	size_t len;
	bool found;
};

enum {
	F_MESSAGE_ID,
	F_SUBJECT,
	F_FROM,
	F_TO,
	F_CC,
	F_DATE,
	F_CONVERSATION_ID,
	F_CONTRIBUTION_ID,
	F_IMDN_MESSAGE_ID,
	F_CONTENT_TYPE,
	F_CTE,
	F_DIRECTION,
	F_CONTEXT,
	F_IN_REPLY_TO,
	F_CORRELATOR,
	_F_MAX
};

static const char *const field_names[_F_MAX] = {
	[F_MESSAGE_ID] = "Message-ID",
	[F_SUBJECT] = "Subject",
	[F_FROM] = "From",
	[F_TO] = "To",
	[F_CC] = "Cc",
	[F_DATE] = "Date",
	[F_CONVERSATION_ID] = "Conversation-ID",
	[F_CONTRIBUTION_ID] = "Contribution-ID",
	[F_IMDN_MESSAGE_ID] = "IMDN-Message-ID",
	[F_CONTENT_TYPE] = "Content-Type",
	[F_CTE] = "Content-Transfer-Encoding",
	[F_DIRECTION] = "Message-Direction",
	[F_CONTEXT] = "Message-Context",
	[F_IN_REPLY_TO] = "InReplyTo-Contribution-ID",
	[F_CORRELATOR] = "Message-Correlator",
};

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

size_t msg_header_length(const void *data, size_t len)
{
	const char *p = data;
	size_t i = 0;

	if (!p)
		return 0;
	/* Walk line starts; an empty line ("\n" or "\r\n") ends the block. */
	while (i < len) {
		if (p[i] == '\n')
			return i + 1;
		if (p[i] == '\r' && i + 1 < len && p[i + 1] == '\n')
			return i + 2;
		{
			const char *nl = memchr(p + i, '\n', len - i);

			if (!nl)
				return 0;
			i = (size_t)(nl - p) + 1;
		}
	}
	return 0;
}

static char ascii_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* The end of the line starting at i (the index of its '\n', or len). */
static size_t line_end(const char *p, size_t len, size_t i)
{
	const char *nl = memchr(p + i, '\n', len - i);

	return nl ? (size_t)(nl - p) : len;
}

/* Is the line starting at i empty ("", "\r")? */
static bool line_empty(const char *p, size_t len, size_t i)
{
	size_t e = line_end(p, len, i);

	return e == i || (e == i + 1 && p[i] == '\r');
}

/*
 * Finds the first occurrence of each wanted field.  A line without a colon
 * (or with a malformed name) is skipped together with its continuation
 * lines; a continuation line at the very start belongs to nothing.
 */
static void find_fields_of(const char *p, size_t len, const char *const *names, int count,
			   struct span *spans)
{
	size_t i = 0, lens[_F_MAX];

	/* The names' lengths once, not at every line (callgrind, issue 11). */
	if (count > _F_MAX)
		count = _F_MAX;
	for (int f = 0; f < count; f++)
		lens[f] = strlen(names[f]);

	while (i < len && !line_empty(p, len, i)) {
		size_t e = line_end(p, len, i), n = i, end;
		int which = -1;

		if (!is_wsp(p[i])) {
			/* The field name: printable ASCII up to ':', optionally
			 * followed by WSP before the colon (obsolete syntax). */
			while (n < e && p[n] != ':' && (unsigned char)p[n] > 32 &&
			       (unsigned char)p[n] < 127)
				n++;
			size_t name_end = n;

			while (n < e && is_wsp(p[n]))
				n++;
			if (n < e && p[n] == ':' && name_end > i) {
				/* The last name that matches (as the whole list
				 * was walked before), its first letter compared
				 * before the call: the same lengths are common
				 * (Conversation-ID, Contribution-ID,
				 * IMDN-Message-ID), the calls were half of this
				 * function in callgrind (bench-cpm.sh 20000). */
				for (int f = count; f-- > 0;)
					if (lens[f] == name_end - i &&
					    ascii_lower(names[f][0]) == ascii_lower(p[i]) &&
					    strncasecmp(names[f], p + i, lens[f]) == 0) {
						which = f;
						break;
					}
				n++;
			}
		}
		/* The value runs on through the continuation lines. */
		end = e;
		while (end < len) {
			size_t next = end + 1;

			if (next >= len || !is_wsp(p[next]))
				break;
			end = line_end(p, len, next);
		}
		if (which >= 0 && !spans[which].found) {
			spans[which].p = p + n;
			spans[which].len = MIN(end - n, (size_t)MSG_SUMMARY_MAX_HEADER);
			spans[which].found = true;
		}
		i = end < len ? end + 1 : len;
	}
}

static void find_fields(const char *p, size_t len, struct span *spans)
{
	find_fields_of(p, len, field_names, _F_MAX, spans);
}

static int append_latin1(struct buf *b, unsigned char c)
{
	char u[2] = { (char)(0xc0 | (c >> 6)), (char)(0x80 | (c & 0x3f)) };

	return c < 0x80 ? buf_append_char(b, (char)c) : buf_append(b, u, 2);
}

/*
 * Appends n bytes as valid UTF-8 without control characters (see the top
 * of the file), stopping once max bytes are reached, at a character
 * boundary.  Returns 1 if it had to stop there, 0 if all fitted.
 */
static int append_clean(struct buf *b, const char *s, size_t n, size_t max)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;
	int r = 0;

	while (i < n && r >= 0) {
		/* A run of printable ASCII and TAB, kept as it is, in one
		 * append (byte by byte, the appends were most of a header
		 * value's cost in callgrind, issue 11). */
		if ((u[i] >= 32 && u[i] < 127) || u[i] == '\t') {
			size_t j = i, room = b->len < max ? max - b->len : 0;

			while (j < n && ((u[j] >= 32 && u[j] < 127) || u[j] == '\t'))
				j++;
			if (j - i > room) {
				r = buf_append(b, s + i, room);
				return r < 0 ? r : 1;
			}
			r = buf_append(b, s + i, j - i);
			i = j;
			continue;
		}
		size_t k = cpmsync_utf8_decode(s + i, n - i, NULL);
		size_t need = k ? k : (u[i] < 0x80 ? 1 : 2);

		if (b->len + need > max)
			return 1;
		if (u[i] == 0) {
			i++;
			continue;
		}
		if (k == 1) {
			char c = (u[i] < 32 && u[i] != '\t') || u[i] == 127 ? ' ' : (char)u[i];

			r = buf_append_char(b, c);
		} else if (k > 1) {
			r = buf_append(b, s + i, k);
		} else {
			r = append_latin1(b, u[i]);
			k = 1;
		}
		i += k;
	}
	return r;
}

/* Is s (n bytes) printable ASCII and TAB only (what append_clean() keeps
 * as it is)? */
static bool printable_ascii(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;

	for (size_t i = 0; i < n; i++)
		if ((u[i] < 32 && u[i] != '\t') || u[i] >= 127)
			return false;
	return true;
}

/* Unfolds a raw value: CR and LF removed (a fold keeps its WSP). */
static int unfold(const struct span *sp, struct buf *b)
{
	int r = 0;

	/* The runs between line breaks, one append each. */
	for (size_t i = 0; i < sp->len && r >= 0;) {
		size_t j = i;

		while (j < sp->len && sp->p[j] != '\r' && sp->p[j] != '\n')
			j++;
		if (j > i)
			r = buf_append(b, sp->p + i, j - i);
		i = j + 1;
	}
	return r;
}

/* Does the span hold a line break (a folded value)? */
static bool folded(const struct span *sp)
{
	return sp->len && (memchr(sp->p, '\n', sp->len) || memchr(sp->p, '\r', sp->len));
}

/* Is the span's only CR or LF a CR at its end (one line ended by CRLF)? */
static bool one_line_crlf(const struct span *sp)
{
	return sp->len && sp->p[sp->len - 1] == '\r' && !memchr(sp->p, '\n', sp->len - 1) &&
	       !memchr(sp->p, '\r', sp->len - 1);
}

/* Does s (n bytes) hold the start of an RFC 2047 encoded-word? */
static bool has_encoded_word(const char *s, size_t n)
{
	for (const char *q = n ? memchr(s, '=', n) : NULL; q;
	     q = memchr(q + 1, '=', (size_t)(s + n - q - 1)))
		if (q + 1 < s + n && q[1] == '?')
			return true;
	return false;
}

static void trim(const char **s, size_t *n)
{
	while (*n && is_wsp(**s)) {
		(*s)++;
		(*n)--;
	}
	while (*n && is_wsp((*s)[*n - 1]))
		(*n)--;
}

/* RFC 2047 encoded-words. */

/*
 * A lenient base64 decoder: padding optional, stops at '=' or at the
 * first foreign character.  base64_decode() (util/base64.h) is strict
 * about padding, which real encoded-words do not always get right.
 */
static int b64_decode_into(struct buf *b, const char *s, size_t n)
{
	uint32_t acc = 0;
	int bits = 0, r = 0;

	for (size_t i = 0; i < n && r >= 0; i++) {
		int v = transfer_base64_value(s[i]);

		if (v < 0)
			break;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			r = buf_append_char(b, (char)((acc >> bits) & 0xff));
		}
	}
	return r;
}

static int q_decode_into(struct buf *b, const char *s, size_t n)
{
	int r = 0;

	for (size_t i = 0; i < n && r >= 0; i++) {
		if (s[i] == '_') {
			r = buf_append_char(b, ' ');
		} else if (s[i] == '=' && i + 2 < n && transfer_hex_value(s[i + 1]) >= 0 &&
			   transfer_hex_value(s[i + 2]) >= 0) {
			r = buf_append_char(b, (char)(transfer_hex_value(s[i + 1]) * 16 +
						      transfer_hex_value(s[i + 2])));
			i += 2;
		} else {
			r = buf_append_char(b, s[i]);
		}
	}
	return r;
}

/*
 * Is the B text of an encoded-word base64 (RFC 2047 4.1)?  Only the
 * alphabet, '=' only as the padding at its end; the padding itself may be
 * missing (mailers forget it), but not a lone 6 bits at the end.
 */
static bool b64_valid(const char *s, size_t n)
{
	size_t data = 0, pad = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '=') {
			pad++;
			continue;
		}
		if (pad || transfer_base64_value(s[i]) < 0)
			return false;
		data++;
	}
	return pad <= 2 && data % 4 != 1 && (pad == 0 || (data + pad) % 4 == 0);
}

enum charset { CS_OTHER, CS_UTF8, CS_LATIN1 };

static enum charset charset_of(const char *s, size_t n)
{
	static const char *const utf8[] = { "utf-8", "utf8", "us-ascii", "ascii" };
	static const char *const latin1[] = { "iso-8859-1", "iso8859-1", "latin1", "iso_8859-1" };
	const char *star = memchr(s, '*', n); /* RFC 2231 language suffix */

	if (star)
		n = (size_t)(star - s);
	for (size_t i = 0; i < ARRAY_SIZE(utf8); i++)
		if (strlen(utf8[i]) == n && strncasecmp(utf8[i], s, n) == 0)
			return CS_UTF8;
	for (size_t i = 0; i < ARRAY_SIZE(latin1); i++)
		if (strlen(latin1[i]) == n && strncasecmp(latin1[i], s, n) == 0)
			return CS_LATIN1;
	return CS_OTHER;
}

/*
 * Parses an encoded-word "=?charset?X?text?=" at s (n bytes).  Returns
 * its length, 0 if there is none.
 */
static size_t encoded_word(const char *s, size_t n, const char **cs, size_t *cs_len, char *enc,
			   const char **text, size_t *text_len)
{
	size_t i = 2, c0, t0;

	if (n < 8 || s[0] != '=' || s[1] != '?')
		return 0;
	c0 = i;
	while (i < n && s[i] != '?' && !is_wsp(s[i]) && (unsigned char)s[i] > 32)
		i++;
	if (i == c0 || i + 2 >= n || s[i] != '?')
		return 0;
	*cs = s + c0;
	*cs_len = i - c0;
	*enc = s[i + 1];
	if ((*enc != 'B' && *enc != 'b' && *enc != 'Q' && *enc != 'q') || s[i + 2] != '?')
		return 0;
	i += 3;
	t0 = i;
	while (i + 1 < n && !(s[i] == '?' && s[i + 1] == '=')) {
		if (is_wsp(s[i]) || (unsigned char)s[i] <= 32)
			return 0;
		i++;
	}
	if (i + 1 >= n)
		return 0;
	*text = s + t0;
	*text_len = i - t0;
	return i + 2;
}

/*
 * The decoded bytes of adjacent encoded-words in one charset, converted
 * to UTF-8 together: a character may be split over two words (RFC 2047
 * 5 forbids it, mailers do it), and a stateful charset (ISO-2022-JP)
 * carries its shift state from one word to the next.
 */
struct ew_run {
	struct buf bytes;
	enum charset cs;
	struct charset_conv conv; /* open for cs CS_OTHER */
};

/* Appends the run's text to out as UTF-8 (UTF-8 as it is: it is checked
 * once the whole value is joined) and empties it.  -E2BIG once out is
 * full. */
static int run_flush(struct ew_run *run, struct buf *out)
{
	int r = 0;

	if (run->bytes.len == 0)
		return 0;
	if (run->cs == CS_OTHER)
		r = charset_conv_run(&run->conv, run->bytes.data, run->bytes.len, out, out->max);
	else if (run->cs == CS_LATIN1)
		for (size_t j = 0; j < run->bytes.len && r >= 0; j++)
			r = append_latin1(out, (unsigned char)run->bytes.data[j]);
	else
		r = buf_append(out, run->bytes.data, run->bytes.len);
	buf_reset(&run->bytes);
	return r == 1 ? -E2BIG : r;
}

/*
 * Can the word (charset cs, encoding enc, text) be decoded?  Its charset
 * known (for another charset, run->conv is opened for it, the run flushed
 * first if it held another one) and its text well-formed.  only_other:
 * words in UTF-8, US-ASCII and ISO-8859-1 are not (msg_summary_redecode()).
 */
static int word_decodable(struct ew_run *run, struct buf *out, const char *cs, size_t cs_len,
			  char enc, const char *text, size_t text_len, bool only_other,
			  enum charset *ret)
{
	enum charset c = charset_of(cs, cs_len);
	int r;

	if ((enc == 'B' || enc == 'b') && !b64_valid(text, text_len))
		return 0;
	if (only_other && c != CS_OTHER)
		return 0;
	if (c == CS_OTHER && !charset_conv_is(&run->conv, cs, cs_len)) {
		r = run_flush(run, out);
		if (r < 0)
			return r;
		charset_conv_close(&run->conv);
		r = charset_conv_open(&run->conv, cs, cs_len);
		if (r == -ENOMEM)
			return r;
		if (r < 0)
			return 0; /* unknown to iconv: kept as it is */
	}
	if (c != run->cs) {
		r = run_flush(run, out);
		if (r < 0)
			return r;
		run->cs = c;
	}
	*ret = c;
	return 1;
}

/*
 * Decodes the encoded-words of s[0..n) (a Subject, a phrase or comment of
 * an address) into out.  Words that cannot be decoded stay as they are
 * (RFC 2047 6.3): an unknown charset, an unknown encoding, B text that is
 * not base64.  Whitespace between two decoded words is dropped (RFC 2047
 * 6.2), so that a text split over several words joins up again, even in
 * the middle of a character.  Once out is full the rest is left out.
 */
static int decode_2047_words(const char *s, size_t n, bool only_other, struct buf *out)
{
	struct ew_run run = { .bytes = BUF_INIT(MSG_SUMMARY_MAX_HEADER), .cs = CS_UTF8 };
	size_t i = 0, pending_ws = 0;
	bool after_word = false;
	int r = 0;

	run.conv.cd = (iconv_t)-1;
	while (i < n && r >= 0) {
		const char *cs, *text;
		size_t cs_len, text_len, k = 0;
		enum charset c = CS_UTF8;
		char enc;
		int ok = 0;

		if (s[i] == '=' && i + 1 < n && s[i + 1] == '?') {
			k = encoded_word(s + i, n - i, &cs, &cs_len, &enc, &text, &text_len);
			if (k)
				ok = word_decodable(&run, out, cs, cs_len, enc, text, text_len,
						    only_other, &c);
			if (ok < 0) {
				r = ok;
				break;
			}
		}
		if (ok) {
			/* Whitespace between two decoded words disappears. */
			if (!after_word && pending_ws)
				r = buf_append(out, s + i - pending_ws, pending_ws);
			if (r >= 0)
				r = (enc == 'B' || enc == 'b')
					    ? b64_decode_into(&run.bytes, text, text_len)
					    : q_decode_into(&run.bytes, text, text_len);
			i += k;
			pending_ws = 0;
			after_word = true;
			continue;
		}
		if (is_wsp(s[i])) {
			pending_ws++;
			i++;
			continue;
		}
		r = run_flush(&run, out);
		if (r >= 0 && pending_ws)
			r = buf_append(out, s + i - pending_ws, pending_ws);
		pending_ws = 0;
		after_word = false;
		if (r < 0)
			break;
		if (k) {
			/* A word that cannot be decoded: kept verbatim. */
			r = buf_append(out, s + i, k);
			i += k;
		} else {
			r = buf_append_char(out, s[i]);
			i++;
		}
	}
	if (r >= 0)
		r = run_flush(&run, out);
	if (r >= 0 && pending_ws)
		r = buf_append(out, s + n - pending_ws, pending_ws);
	buf_free(&run.bytes);
	charset_conv_close(&run.conv);
	return r == -E2BIG ? 0 : r;
}

static int decode_2047(const char *s, size_t n, struct buf *out)
{
	return decode_2047_words(s, n, false, out);
}

/* The end of the quoted string, comment or angle-addr that starts at
 * s[i] ('"', '(' or '<'): the index just past its closing character, or n. */
static size_t skip_group(const char *s, size_t n, size_t i)
{
	char open = s[i];
	int depth = 0;

	for (; i < n; i++) {
		char c = s[i];

		if (c == '\\' && open != '<') {
			i++;
			continue;
		}
		if (open == '"') {
			if (c == '"' && depth++ > 0)
				return i + 1;
		} else if (open == '(') {
			if (c == '(')
				depth++;
			else if (c == ')' && --depth == 0)
				return i + 1;
		} else if (c == '>') {
			return i + 1;
		}
	}
	return n;
}

/* The end of the address starting at s[i]: the index of the next
 * top-level ',' or n; *ret_angle: whether it holds an angle-addr. */
static size_t address_end(const char *s, size_t n, size_t i, bool *ret_angle)
{
	*ret_angle = false;
	while (i < n && s[i] != ',') {
		if (s[i] == '"' || s[i] == '(' || s[i] == '<') {
			*ret_angle = *ret_angle || s[i] == '<';
			i = skip_group(s, n, i);
		} else {
			i++;
		}
	}
	return i;
}

/*
 * Appends the quoted string q (n bytes, its quotes included) of a display
 * name with its encoded-words decoded, quoted again.  RFC 2047 5(3) does
 * not allow them there, but mailers put them there ("=?UTF-8?B?...?="
 * <a@x>), and the readers people use (Thunderbird, Evolution, mutt,
 * Python's email) decode them: shown as they are, the name is unreadable.
 */
static int decode_quoted_name(const char *q, size_t n, bool only_other, struct buf *out)
{
	_cleanup_buf_ struct buf raw = BUF_INIT(MSG_SUMMARY_MAX_HEADER);
	_cleanup_buf_ struct buf dec = BUF_INIT(2 * MSG_SUMMARY_MAX_HEADER);
	int r = 0;

	for (size_t i = 1; i + 1 < n && r >= 0; i++) {
		if (q[i] == '\\' && i + 2 < n)
			i++;
		r = buf_append_char(&raw, q[i]);
	}
	if (r >= 0)
		r = decode_2047_words(raw.data ? raw.data : "", raw.len, only_other, &dec);
	if (r >= 0)
		r = buf_append_char(out, '"');
	for (size_t i = 0; i < dec.len && r >= 0; i++) {
		if (dec.data[i] == '"' || dec.data[i] == '\\')
			r = buf_append_char(out, '\\');
		if (r >= 0)
			r = buf_append_char(out, dec.data[i]);
	}
	if (r >= 0)
		r = buf_append_char(out, '"');
	return r;
}

/*
 * Appends an address list (a From value, one address of To) with the
 * encoded-words of its display names and comments decoded: RFC 2047 5(3)
 * allows them in a phrase (the words before an angle-addr), 5(2) in a
 * comment; a quoted string in the phrase gets them decoded too
 * (decode_quoted_name()); never the address itself, which stays as it is
 * (so does the whole of an address without angle brackets, "user@host" or
 * "tel:+1...", its comments apart).
 */
static int decode_addresses(const char *s, size_t n, bool only_other, struct buf *out)
{
	int r = 0;

	for (size_t i = 0; i < n && r >= 0;) {
		bool angle, phrase;
		size_t e = address_end(s, n, i, &angle), seg = i;

		phrase = angle;
		while (i < e && r >= 0) {
			size_t g;

			if (s[i] != '"' && s[i] != '(' && s[i] != '<') {
				i++;
				continue;
			}
			/* The text before: a phrase, or plain. */
			if (i > seg)
				r = phrase ? decode_2047_words(s + seg, i - seg, only_other, out)
					   : buf_append(out, s + seg, i - seg);
			g = skip_group(s, e, i);
			if (r >= 0 && s[i] == '(' && g - i >= 2 && s[g - 1] == ')') {
				r = buf_append_char(out, '(');
				if (r >= 0)
					r = decode_2047_words(s + i + 1, g - i - 2, only_other,
							      out);
				if (r >= 0)
					r = buf_append_char(out, ')');
			} else if (r >= 0 && phrase && s[i] == '"' && g - i >= 2 &&
				   s[g - 1] == '"' && has_encoded_word(s + i + 1, g - i - 2)) {
				r = decode_quoted_name(s + i, g - i, only_other, out);
			} else if (r >= 0) {
				r = buf_append(out, s + i, g - i);
			}
			if (s[i] == '<')
				phrase = false; /* what follows the address is not */
			i = seg = g;
		}
		if (r >= 0 && i > seg)
			r = phrase ? decode_2047_words(s + seg, i - seg, only_other, out)
				   : buf_append(out, s + seg, i - seg);
		if (r >= 0 && e < n)
			r = buf_append_char(out, ',');
		i = e + 1;
	}
	return r == -E2BIG ? 0 : r;
}

/* What a header's RFC 2047 encoded-words are decoded in. */
enum decode {
	DECODE_NONE,
	DECODE_TEXT,	  /* everywhere (Subject: unstructured text) */
	DECODE_ADDRESSES, /* display names and comments (decode_addresses()) */
};

/*
 * A header's value: unfolded and trimmed; its RFC 2047 encoded-words
 * decoded as decode says and the result trimmed again; cleaned
 * (append_clean()) and cut to MSG_SUMMARY_MAX_FIELD bytes.
 */
static int header_value(const struct span *sp, enum decode decode, char **ret)
{
	_cleanup_buf_ struct buf raw = BUF_INIT(MSG_SUMMARY_MAX_HEADER);
	_cleanup_buf_ struct buf dec = BUF_INIT(2 * MSG_SUMMARY_MAX_HEADER);
	struct buf out = BUF_INIT(MSG_SUMMARY_MAX_FIELD + 1);
	const char *s;
	size_t n;
	int r;

	/* Most values are one line: read in place, no copy to unfold.  So
	 * is one whose only line break is the CR of its CRLF (what IMAP
	 * serves): unfolding would only drop that last byte, into a buffer
	 * of its own, for every such field (unfold(): 50 M of the plain
	 * twin's and 66 M of the CPM set's initial sync in callgrind,
	 * bench-cpm.sh 20000). */
	if (one_line_crlf(sp)) {
		s = sp->p;
		n = sp->len - 1;
	} else if (folded(sp)) {
		r = unfold(sp, &raw);
		if (r < 0)
			return r;
		s = raw.data ? raw.data : "";
		n = raw.len;
	} else {
		s = sp->len ? sp->p : "";
		n = sp->len;
	}
	trim(&s, &n);
	/* Printable ASCII and TAB only, short enough, no encoded-word (most
	 * values, a CPM object's dozen headers among them): append_clean()
	 * would keep it whole, so it is copied in one allocation (the
	 * buffer's growth and appends were most of a value's cost in
	 * callgrind, issue 11). */
	if (n <= MSG_SUMMARY_MAX_FIELD && printable_ascii(s, n) &&
	    !(decode != DECODE_NONE && has_encoded_word(s, n))) {
		*ret = text_dup(s, n);
		return *ret ? 0 : -ENOMEM;
	}
	/* Without an encoded-word, decoding gives the text as it is. */
	if (decode != DECODE_NONE && has_encoded_word(s, n)) {
		r = decode == DECODE_TEXT ? decode_2047(s, n, &dec)
					  : decode_addresses(s, n, false, &dec);
		if (r < 0)
			return r;
		s = dec.data ? dec.data : "";
		n = dec.len;
		trim(&s, &n);
	}
	r = append_clean(&out, s, n, MSG_SUMMARY_MAX_FIELD);
	if (r < 0) {
		buf_free(&out);
		return r;
	}
	*ret = out.data ? buf_steal(&out) : strdup("");
	return *ret ? 0 : -ENOMEM;
}

/* A plain field: unfolded, trimmed, cleaned, cut. */
static int plain_value(const struct span *sp, char **ret)
{
	return header_value(sp, DECODE_NONE, ret);
}

/* Subject: RFC 2047 encoded-words decoded. */
static int subject_value(const struct span *sp, char **ret)
{
	return header_value(sp, DECODE_TEXT, ret);
}

/* From: those of the display names and comments decoded. */
static int from_value(const struct span *sp, char **ret)
{
	return header_value(sp, DECODE_ADDRESSES, ret);
}

/*
 * Does s[0..n) read as a group's display name (RFC 5322 3.4 "group"): a
 * phrase (words and quoted strings: no '@', '<', '>', ':', ',', ';')?
 */
static bool group_name(const char *s, size_t n)
{
	bool quoted = false, word = false;

	for (size_t i = 0; i < n; i++) {
		if (quoted) {
			if (s[i] == '\\')
				i++;
			else if (s[i] == '"')
				quoted = false;
			continue;
		}
		if (s[i] == '"')
			quoted = word = true;
		else if (strchr("@<>:,;()[]\\", s[i]))
			return false;
		else if (!is_wsp(s[i]))
			word = true;
	}
	return word && !quoted;
}

/*
 * Splits an address list at top-level commas: commas inside quoted strings,
 * comments or angle brackets do not count.  A group ("Team: a@x, b@x;",
 * RFC 5322 3.4) gives its members, without its name; it is told from a
 * URI ("tel:+1...;ext=2", whose scheme also looks like a name and a colon)
 * by the whitespace or ';' that follows a group name's colon and never a
 * URI's scheme.
 */
static int split_addresses(const struct span *sp, struct buf *out)
{
	_cleanup_buf_ struct buf raw = BUF_INIT(MSG_SUMMARY_MAX_HEADER);
	size_t start = 0;
	int depth = 0, r;
	bool quoted = false, angle = false, group = false;
	const char *s;

	r = unfold(sp, &raw);
	if (r < 0 || raw.len == 0)
		return r;
	s = raw.data;
	for (size_t i = 0; i <= raw.len && r >= 0; i++) {
		if (i < raw.len) {
			char c = s[i];

			if (c == '\\' && (quoted || depth > 0)) {
				i++;
				continue;
			}
			if (quoted) {
				quoted = c != '"';
				continue;
			}
			if (c == '"') {
				quoted = true;
				continue;
			}
			if (c == '(') {
				depth++;
				continue;
			}
			if (depth > 0) {
				if (c == ')')
					depth--;
				continue;
			}
			if (c == '<')
				angle = true;
			else if (c == '>')
				angle = false;
			if (c == ':' && !angle && !group &&
			    (i + 1 == raw.len || is_wsp(s[i + 1]) || s[i + 1] == ';') &&
			    group_name(s + start, i - start)) {
				/* A group's name: its members follow. */
				group = true;
				start = i + 1;
				continue;
			}
			if (c == ';' && group && !angle)
				group = false; /* the group's end: ends an item */
			else if (c != ',' || angle)
				continue;
		}
		/* An item ends here. */
		{
			const char *item = s + start;
			size_t len = (i < raw.len ? i : raw.len) - start;

			trim(&item, &len);
			if (len) {
				if (out->len)
					r = buf_append_char(out, '\n');
				if (r >= 0)
					r = buf_append(out, item, len);
			}
			start = i + 1;
		}
	}
	return r;
}

static int to_value(const struct span *to, const struct span *cc, char **ret)
{
	_cleanup_buf_ struct buf list = BUF_INIT(4 * MSG_SUMMARY_MAX_HEADER);
	_cleanup_buf_ struct buf dec = BUF_INIT(2 * MSG_SUMMARY_MAX_HEADER);
	struct buf out = BUF_INIT(MSG_SUMMARY_MAX_FIELD + 1);
	int r = 0;

	if (to->found)
		r = split_addresses(to, &list);
	if (r >= 0 && cc->found)
		r = split_addresses(cc, &list);
	if (r < 0)
		return r;
	/* append_clean() turns '\n' into a space, so clean each line on its
	 * own; stop before the first address that does not fit whole. */
	for (size_t i = 0; i < list.len && r >= 0;) {
		const char *nl = memchr(list.data + i, '\n', list.len - i);
		size_t e = nl ? (size_t)(nl - list.data) : list.len;
		size_t before = out.len;

		if (out.len) {
			if (out.len + 2 > MSG_SUMMARY_MAX_FIELD)
				break;
			r = buf_append_char(&out, '\n');
		}
		if (r >= 0 && has_encoded_word(list.data + i, e - i)) {
			buf_reset(&dec);
			r = decode_addresses(list.data + i, e - i, false, &dec);
			if (r >= 0)
				r = append_clean(&out, dec.data ? dec.data : "", dec.len,
						 MSG_SUMMARY_MAX_FIELD);
		} else if (r >= 0) {
			r = append_clean(&out, list.data + i, e - i, MSG_SUMMARY_MAX_FIELD);
		}
		/* Only whole addresses, but for a first one too long. */
		if (r > 0 && before) {
			out.len = before;
			if (out.data)
				out.data[before] = '\0';
			break;
		}
		/* An address of NUL bytes only leaves no empty line behind. */
		if (r == 0 && out.len == before + (before ? 1 : 0)) {
			out.len = before;
			if (out.data)
				out.data[before] = '\0';
		}
		i = e + 1;
	}
	if (r < 0) {
		buf_free(&out);
		return r;
	}
	*ret = out.data ? buf_steal(&out) : strdup("");
	return *ret ? 0 : -ENOMEM;
}

int msg_summary_redecode(const char *field, const char *value, char **ret)
{
	_cleanup_buf_ struct buf dec = BUF_INIT(2 * MSG_SUMMARY_MAX_HEADER);
	struct buf out = BUF_INIT(MSG_SUMMARY_MAX_FIELD + 1);
	size_t n = strlen(value);
	bool lines = strcmp(field, "to") == 0, subject = strcmp(field, "subject") == 0;
	int r = 0;

	if (n > MSG_SUMMARY_MAX_HEADER || !has_encoded_word(value, n)) {
		*ret = strdup(value);
		return *ret ? 0 : -ENOMEM;
	}
	/* One line at a time (To), or the whole value as one. */
	for (size_t i = 0; i <= n && r >= 0;) {
		const char *nl = lines ? memchr(value + i, '\n', n - i) : NULL;
		size_t e = nl ? (size_t)(nl - value) : n;

		size_t before = out.len;

		buf_reset(&dec);
		r = subject ? decode_2047_words(value + i, e - i, true, &dec)
			    : decode_addresses(value + i, e - i, false, &dec);
		if (r >= 0 && i > 0)
			r = buf_append_char(&out, '\n');
		if (r >= 0)
			r = append_clean(&out, dec.data ? dec.data : "", dec.len,
					 MSG_SUMMARY_MAX_FIELD);
		/* Only whole addresses, as to_value() keeps them. */
		if (r > 0) {
			if (before) {
				out.len = before;
				out.data[before] = '\0';
			}
			r = 0;
			break;
		}
		i = e + 1;
	}
	if (r < 0) {
		buf_free(&out);
		return r;
	}
	*ret = out.data ? buf_steal(&out) : strdup("");
	return *ret ? 0 : -ENOMEM;
}

void msg_summary_free(struct msg_summary *s)
{
	if (!s)
		return;
	free(s->message_id);
	free(s->subject);
	free(s->from);
	free(s->to);
	free(s->conversation_id);
	free(s->contribution_id);
	free(s->imdn_message_id);
	free(s->direction);
	free(s->context);
	free(s->in_reply_to);
	free(s->correlator);
	free(s->peer);
	free(s->sender);
	free(s->snippet);
	free(s->imdn_ref);
	free(s->status);
	free(s->participants);
	free(s->file_name);
	free(s->file_type);
	free(s->error);
	*s = (struct msg_summary){ .type = "mail" };
}

int msg_check_nul(const void *data, size_t len, uint64_t offset, char *why, size_t why_size)
{
	const char *p = data, *z = len ? memchr(p, '\0', len) : NULL;

	if (!z)
		return 0;
	snprintf(why, why_size,
		 "byte %" PRIu64 " is NUL: an IMAP message cannot hold NUL bytes (RFC 3501)",
		 offset + (uint64_t)(z - p));
	return -EINVAL;
}

/* "Name:" or "Name :" (RFC 5322 ftext, the obsolete WSP before the colon). */
static bool field_line(const char *p, size_t n)
{
	size_t i = 0;

	while (i < n && p[i] > ' ' && p[i] < 0x7f && p[i] != ':')
		i++;
	if (i == 0)
		return false;
	while (i < n && is_wsp(p[i]))
		i++;
	return i < n && p[i] == ':';
}

int msg_check_head(const void *data, size_t len, uint64_t size, char *why, size_t why_size)
{
	const char *p = data;
	size_t i = 0, line = 1;
	int r;

	r = msg_check_nul(data, len, 0, why, why_size);
	if (r < 0)
		return r;
	while (i < len) {
		size_t e = line_end(p, len, i), n = e - i;
		char shown[48], esc[200];

		if (e == len && len < size)
			return 0; /* cut at len: not judged */
		if (n && p[e - 1] == '\r')
			n--;
		if (n == 0)
			return 0; /* the empty line ending the header */
		if (!(line > 1 && is_wsp(p[i])) && !field_line(p + i, n)) {
			size_t k = MIN(n, sizeof(shown) - 1);

			memcpy(shown, p + i, k);
			shown[k] = '\0';
			text_escape(esc, sizeof(esc), shown);
			snprintf(why, why_size,
				 "line %zu (\"%s%s\") is not a header field (Name: value) or the "
				 "continuation of one; a message starts with its header, ended by "
				 "an empty line (RFC 5322)",
				 line, esc, k < n ? "..." : "");
			return -EINVAL;
		}
		i = e + 1;
		line++;
	}
	return 0;
}

int msg_header_get(const void *data, size_t len, const char *name, char **ret)
{
	struct span sp = { 0 };

	if (!data)
		len = 0;
	if (len > MSG_SUMMARY_SCAN_HEADER)
		len = MSG_SUMMARY_SCAN_HEADER;
	if (len)
		find_fields_of(data, len, &name, 1, &sp);
	return plain_value(&sp, ret);
}

int msg_header_get2(const void *data, size_t len, const char *name1, char **ret1, const char *name2,
		    char **ret2)
{
	const char *names[2] = { name1, name2 };
	struct span sp[2] = { 0 };
	int r;

	if (!data)
		len = 0;
	if (len > MSG_SUMMARY_SCAN_HEADER)
		len = MSG_SUMMARY_SCAN_HEADER;
	if (len)
		find_fields_of(data, len, names, 2, sp);
	r = plain_value(&sp[0], ret1);
	if (r < 0)
		return r;
	r = plain_value(&sp[1], ret2);
	if (r < 0) {
		free(*ret1);
		*ret1 = NULL;
	}
	return r;
}

int msg_summary_parse(const void *data, size_t len, struct msg_summary *ret)
{
	struct span spans[_F_MAX] = { 0 };
	struct msg_summary s = { .type = "mail" };
	_cleanup_free_ char *date = NULL, *ct = NULL, *cte = NULL;
	size_t hlen, full = len;
	int r;

	if (!ret)
		return -EINVAL;
	*ret = (struct msg_summary){ .type = "mail" };
	if (!data)
		full = len = 0;
	if (len > MSG_SUMMARY_SCAN_HEADER)
		len = MSG_SUMMARY_SCAN_HEADER;
	if (len)
		find_fields(data, len, spans);
	hlen = msg_header_length(data, len);

	r = plain_value(&spans[F_MESSAGE_ID], &s.message_id);
	if (r >= 0)
		r = subject_value(&spans[F_SUBJECT], &s.subject);
	if (r >= 0)
		r = from_value(&spans[F_FROM], &s.from);
	if (r >= 0)
		r = to_value(&spans[F_TO], &spans[F_CC], &s.to);
	if (r >= 0)
		r = plain_value(&spans[F_CONVERSATION_ID], &s.conversation_id);
	if (r >= 0)
		r = plain_value(&spans[F_CONTRIBUTION_ID], &s.contribution_id);
	if (r >= 0)
		r = plain_value(&spans[F_IMDN_MESSAGE_ID], &s.imdn_message_id);
	if (r >= 0)
		r = plain_value(&spans[F_DATE], &date);
	if (r >= 0)
		r = plain_value(&spans[F_CONTENT_TYPE], &ct);
	if (r >= 0)
		r = plain_value(&spans[F_CTE], &cte);
	if (r >= 0)
		r = plain_value(&spans[F_DIRECTION], &s.direction);
	if (r >= 0)
		r = plain_value(&spans[F_CONTEXT], &s.context);
	if (r >= 0)
		r = plain_value(&spans[F_IN_REPLY_TO], &s.in_reply_to);
	if (r >= 0)
		r = plain_value(&spans[F_CORRELATOR], &s.correlator);
	if (r < 0) {
		msg_summary_free(&s);
		return -ENOMEM;
	}
	if (msg_parse_date(date, strlen(date), &s.date) < 0) {
		s.date = 0;
		s.no_date = true;
	}
	{
		const char *body = hlen ? (const char *)data + hlen : NULL;
		size_t blen = hlen ? full - hlen : 0;

		if (blen > MSG_SUMMARY_MAX_BODY)
			blen = MSG_SUMMARY_MAX_BODY;
		r = cpm_object_classify(&s, ct, cte, body, blen);
	}
	if (r < 0) {
		msg_summary_free(&s);
		return -ENOMEM;
	}
	*ret = s;
	return 0;
}

/* Dates. */

static const char *const month_names[12] = {
	"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
};
static const char *const day_names[7] = { "mon", "tue", "wed", "thu", "fri", "sat", "sun" };

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static bool leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static bool all_alpha(const char *s, size_t n);

/* Longest alphabetic zone taken as "-0000": RFC 5322 4.3 says they are
 * "usually between 3 and 5" letters; a longer word is not a zone. */
#define DATE_MAX_ZONE_NAME 5

/* Zone names of RFC 5322 4.3 (minutes east of UTC). */
static bool named_zone(const char *s, size_t n, int *ret)
{
	static const struct {
		const char *name;
		int minutes;
	} zones[] = {
		{ "UT", 0 },	    { "UTC", 0 },	{ "GMT", 0 },	    { "Z", 0 },
		{ "EST", -5 * 60 }, { "EDT", -4 * 60 }, { "CST", -6 * 60 }, { "CDT", -5 * 60 },
		{ "MST", -7 * 60 }, { "MDT", -6 * 60 }, { "PST", -8 * 60 }, { "PDT", -7 * 60 },
	};

	for (size_t i = 0; i < ARRAY_SIZE(zones); i++)
		if (strlen(zones[i].name) == n && strncasecmp(zones[i].name, s, n) == 0) {
			*ret = zones[i].minutes;
			return true;
		}
	/* Other military zones, and the other alphabetic zones mailers
	 * write ("MSK", "CET", "CEST", "AEST"), are "-0000" (unknown, taken
	 * as UTC) per RFC 5322 4.3: better a date a few hours off than none.
	 * "J" (local time) is no zone at all. */
	if (n == 1 && (*s == 'j' || *s == 'J'))
		return false;
	if (n <= DATE_MAX_ZONE_NAME && all_alpha(s, n)) {
		*ret = 0;
		return true;
	}
	return false;
}

static bool all_digits(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static bool all_alpha(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')))
			return false;
	return true;
}

static int64_t number(const char *s, size_t n)
{
	int64_t v = 0;

	for (size_t i = 0; i < n && v < 100000000; i++)
		v = v * 10 + (s[i] - '0');
	return v;
}

/* Matches a 3-letter name (or a longer one starting with it: "July"). */
static int name_index(const char *s, size_t n, const char *const *names, size_t count)
{
	if (n < 3 || !all_alpha(s, n))
		return -1;
	for (size_t i = 0; i < count; i++)
		if (strncasecmp(names[i], s, 3) == 0)
			return (int)i;
	return -1;
}

#define DATE_MAX_TOKENS 12

int msg_parse_date(const char *s, size_t len, int64_t *ret)
{
	char buf[256];
	struct {
		const char *p;
		size_t n;
	} tok[DATE_MAX_TOKENS];
	size_t n = 0, nt = 0, t = 0;
	int depth = 0, zone = 0, month;
	int64_t day, year, hour, min, sec = 0, days;
	const char *tp;
	size_t tn, k;

	if (!s || !ret)
		return -EINVAL;
	/* Comments (nested, with quoted-pairs) become spaces; ',' splits too. */
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (n >= sizeof(buf) - 1)
			return -EINVAL;
		if (depth > 0 && c == '\\') {
			i++;
			continue;
		}
		if (c == '(') {
			depth++;
			c = ' ';
		} else if (depth > 0) {
			if (c == ')')
				depth--;
			c = ' ';
		} else if (c == ',' || c == '\t' || c == '\r' || c == '\n') {
			c = ' ';
		}
		buf[n++] = c;
	}
	buf[n] = '\0';
	for (size_t i = 0; i < n;) {
		size_t j;

		while (i < n && buf[i] == ' ')
			i++;
		if (i >= n)
			break;
		j = i;
		while (j < n && buf[j] != ' ')
			j++;
		if (nt == DATE_MAX_TOKENS)
			return -EINVAL;
		tok[nt].p = buf + i;
		tok[nt].n = j - i;
		nt++;
		i = j;
	}

	/* [day-of-week] */
	if (t < nt && name_index(tok[t].p, tok[t].n, day_names, 7) >= 0)
		t++;
	/* day month year */
	if (t + 3 > nt || !all_digits(tok[t].p, tok[t].n) || tok[t].n > 2)
		return -EINVAL;
	day = number(tok[t].p, tok[t].n);
	month = name_index(tok[t + 1].p, tok[t + 1].n, month_names, 12);
	if (month < 0 || !all_digits(tok[t + 2].p, tok[t + 2].n) || tok[t + 2].n > 4)
		return -EINVAL;
	year = number(tok[t + 2].p, tok[t + 2].n);
	/* Obsolete years (RFC 5322 4.3): 2 digits, 00-49 -> 20xx, 50-99 ->
	 * 19xx; 3 digits -> + 1900. */
	if (tok[t + 2].n == 2)
		year += year < 50 ? 2000 : 1900;
	else if (tok[t + 2].n == 3)
		year += 1900;
	t += 3;

	/* time: hour ":" minute [":" second], maybe with the zone glued on. */
	if (t >= nt)
		return -EINVAL;
	tp = tok[t].p;
	tn = tok[t].n;
	t++;
	for (k = 0; k < tn && tp[k] >= '0' && tp[k] <= '9'; k++)
		;
	if (k == 0 || k > 2 || k >= tn || tp[k] != ':')
		return -EINVAL;
	hour = number(tp, k);
	tp += k + 1;
	tn -= k + 1;
	for (k = 0; k < tn && tp[k] >= '0' && tp[k] <= '9'; k++)
		;
	if (k == 0 || k > 2)
		return -EINVAL;
	min = number(tp, k);
	tp += k;
	tn -= k;
	if (tn && *tp == ':') {
		tp++;
		tn--;
		for (k = 0; k < tn && tp[k] >= '0' && tp[k] <= '9'; k++)
			;
		if (k == 0 || k > 2)
			return -EINVAL;
		sec = number(tp, k);
		tp += k;
		tn -= k;
	}
	if (tn == 0 && t < nt) {
		tp = tok[t].p;
		tn = tok[t].n;
		t++;
	}
	/* zone: +hhmm / -hhmm, or a name; absent: taken as UTC. */
	if (tn) {
		if ((*tp == '+' || *tp == '-') && tn == 5 && all_digits(tp + 1, 4)) {
			int hh = (int)number(tp + 1, 2), mm = (int)number(tp + 3, 2);

			if (mm > 59)
				return -EINVAL;
			zone = (hh * 60 + mm) * (*tp == '-' ? -1 : 1);
		} else if (!named_zone(tp, tn, &zone)) {
			return -EINVAL;
		}
	}
	/* Anything after the zone is ignored (some mailers add junk). */

	{
		static const unsigned mdays[12] = {
			31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
		};

		if (day < 1 || day > mdays[month] || (month == 1 && day == 29 && !leap(year)))
			return -EINVAL;
	}
	if (year < 1900 || hour > 23 || min > 59 || sec > 60)
		return -EINVAL;
	days = days_from_civil(year, (unsigned)month + 1, (unsigned)day);
	*ret = days * 86400 + hour * 3600 + min * 60 + sec - (int64_t)zone * 60;
	return 0;
}
