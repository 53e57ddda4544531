#!/usr/bin/env bash
# Folder1.Preview over D-Bus, the daemon on a private bus against a real
# Dovecot (which has no CONVERT, so every preview is made locally):
#  - a JPEG and a PNG stored as messages give images of the requested size
#    and format, checked by their magic bytes and dimensions (image-size
#    reads the file's own header, not libvips);
#  - a second call is answered from the cache: no helper is started (a
#    wrapper counts the helpers started; one is kept started ahead);
#  - the part comes from the stored body or, beyond sync_bodies, is fetched
#    from the server; the text part gives a UTF-8 excerpt;
#  - the hostile corpus (tests/data/preview, plus an 81-megapixel JPEG made
#    here) gives the exact errors, and the daemon keeps running and
#    answering; NotSupported, InvalidArgs and Offline where the contract
#    says.
set -u
. "$(dirname "$0")/lib-sync.sh"
lib_init
DATA=$TOP/tests/data/preview
SIZE=$BDIR/tests/tools/image-size
GEN=$BDIR/tests/tools/image-gen
HELPER=$BDIR/cpm-preview
for f in "$SIZE" "$GEN" "$HELPER"; do
	[ -x "$f" ] || bail "missing $f (make all tests)"
done
dc_start dc

dbus_setup

# The helper behind a wrapper that counts its runs.  The daemon hands it an
# empty environment (so the paths are written in) and RLIMIT_FSIZE 0 (so it
# cannot append to a file: it writes a line into a FIFO, which a reader
# here appends to $RUNS).
RUNS=$WORK/helper-runs
FIFO=$WORK/helper-runs.fifo
mkfifo "$FIFO" || bail "mkfifo"
: >"$RUNS"
exec 7<>"$FIFO" # held open here: the reader never sees EOF, writers never block
cat <&7 >>"$RUNS" &
BG_PIDS+=($!)
cat >"$WORK/cpm-preview" <<EOF
#!/bin/sh
echo run >'$FIFO'
exec '$HELPER' "\$@"
EOF
chmod 0755 "$WORK/cpm-preview"
runs() { sleep 0.1; wc -l <"$RUNS"; }
export CPMSYNC_PREVIEW_HELPER=$WORK/cpm-preview

# mime_msg MSGID TYPE FILE: a multipart/mixed message: 1 a QP Latin-1 text,
# 2 FILE base64 as TYPE, 3 a PDF
mime_msg() {
	printf 'From: bob@example.org\r\nTo: %s@example.org\r\nSubject: preview %s\r\n' "$USER1" "$1"
	printf 'Message-ID: %s\r\nDate: Sat, 05 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n' "$1"
	printf 'Content-Type: multipart/mixed; boundary="=b="\r\n\r\n'
	printf -- '--=b=\r\nContent-Type: text/plain; charset=iso-8859-1\r\n'
	printf 'Content-Transfer-Encoding: quoted-printable\r\n\r\n'
	printf 'Voil=E0 la photo de l=27=E9t=E9,=\r\n prise =E0 Z=FCrich.\r\n\r\nBob\r\n'
	printf -- '--=b=\r\nContent-Type: %s\r\nContent-Transfer-Encoding: base64\r\n\r\n' "$2"
	base64 -w 76 "$3" | sed 's/$/\r/'
	printf -- '--=b=\r\nContent-Type: application/pdf\r\n\r\n%%PDF-1.4\r\n--=b=--\r\n'
}
save() { # save MSGID TYPE FILE
	mime_msg "$@" | da save -u "$USER1" -m INBOX || bail "doveadm save $1"
}

"$GEN" 9000 9000 "$WORK/81mpx.jpg" || bail "image-gen 9000x9000"
save '<jpeg@preview.test>' image/jpeg "$DATA/good.jpg"
save '<png@preview.test>' image/png "$DATA/good.png"
save '<gif@preview.test>' image/gif "$DATA/good.gif"
save '<svg@preview.test>' image/svg+xml "$DATA/image.svg"
for f in truncated.jpg truncated.png corrupt.png huge-dimensions.jpg huge-dimensions.png \
	bomb.png not-an-image.jpg image.svg; do
	case $f in *.png) t=image/png ;; *) t=image/jpeg ;; esac
	save "<$f@preview.test>" "$t" "$DATA/$f"
done
save '<81mpx@preview.test>' image/jpeg "$WORK/81mpx.jpg"

CONF=$XDG_CONFIG_HOME/cpmsync/cpmsync.conf
mkdir -p "$(dirname "$CONF")"
write_conf "$CONF" "$WORK/store.db"
# Bodies up to 8 KiB are stored; the larger ones are fetched for a preview.
printf 'sync_bodies = 8\n' >>"$CONF"
start_daemon || bail "cpm-syncd did not take org.cpmsync: $(tail -n 5 "$WORK/daemon.log")"
check "account reaches State idle" wait_state idle 30

F=org.cpmsync.Folder1
INBOX=$("$DBUS" call "$A" org.cpmsync.Account1 FindFolder s INBOX)
"$DBUS" call "$INBOX" "$F" ListMessages tu 0 1000 >"$WORK/list"
id_of() { grep -F "MessageId=$1;" "$WORK/list" | grep -o '{Id=[0-9]*' | cut -d= -f2; }
has_body() { grep -F "MessageId=$1;" "$WORK/list" | grep -o 'HasBody=[a-z]*' | cut -d= -f2; }
preview() { # preview MSGID SECTION FORMAT W H -> $WORK/out
	"$DBUS" call "$INBOX" "$F" Preview tssuu "$(id_of "$1")" "$2" "$3" "$4" "$5" >"$WORK/out"
}
# expect_image MSGID SECTION FORMAT W H WANT ("jpeg 160x120")
expect_image() {
	local want=$6 got
	preview "$1" "$2" "$3" "$4" "$5" || {
		echo "    $(head -c 300 "$WORK/out")"
		return 1
	}
	got=$("$SIZE" "$WORK/out")
	[ "$got" = "$want" ] || {
		echo "    got '$got', want '$want'"
		return 1
	}
}
# expect_error MSGID SECTION FORMAT W H TEXT: the exact error line
expect_error() {
	local want=$6
	preview "$1" "$2" "$3" "$4" "$5"
	[ "$(cat "$WORK/out")" = "$want" ] || {
		echo "    got:  $(head -c 300 "$WORK/out")"
		echo "    want: $want"
		return 1
	}
}

check "the JPEG message's body is not stored (beyond sync_bodies)" \
	test "$(has_body '<jpeg@preview.test>')" = false
check "the 47-byte not-an-image message's body is stored" \
	test "$(has_body '<not-an-image.jpg@preview.test>')" = true

# --- images --------------------------------------------------------------------
check "JPEG part (200x150) -> image/jpeg 160x120" \
	expect_image '<jpeg@preview.test>' 2 image/jpeg 160 120 "jpeg 160x120"
check "it starts with the JPEG magic bytes" \
	test "$(od -An -tx1 -N3 "$WORK/out" | tr -d ' ')" = ffd8ff
# The library keeps one helper started ahead of the next preview (a spare).
check "helpers started: the one that converted, and a spare" test "$(runs)" -eq 2
cp "$WORK/out" "$WORK/first.jpg"
check "the same preview again -> the same bytes" \
	bash -c "'$DBUS' call '$INBOX' $F Preview tssuu $(id_of '<jpeg@preview.test>') 2 image/jpeg 160 120 | cmp -s - '$WORK/first.jpg'"
check "... from the cache: no helper started" test "$(runs)" -eq 2
check "JPEG part -> image/png 100x100 (aspect kept: 100x75)" \
	expect_image '<jpeg@preview.test>' 2 image/png 100 100 "png 100x75"
check "it starts with the PNG magic bytes" \
	test "$(od -An -tx1 -N8 "$WORK/out" | tr -d ' ')" = 89504e470d0a1a0a
check "PNG part (150x100) -> image/jpeg 60x60 (60x40)" \
	expect_image '<png@preview.test>' 2 image/jpeg 60 60 "jpeg 60x40"
check "PNG part -> image/webp 75x75 (75x50)" \
	expect_image '<png@preview.test>' 2 image/webp 75 75 "webp 75x50"
check "PNG part -> image/png 4096x4096: never enlarged (150x100)" \
	expect_image '<png@preview.test>' 2 image/png 4096 4096 "png 150x100"
check "GIF part (64x48) -> image/png 32x32 (32x24)" \
	expect_image '<gif@preview.test>' 2 image/png 32 32 "png 32x24"
check "five conversions more: five helpers more (each takes the spare, starts one)" \
	test "$(runs)" -eq 7

# --- text, and what cannot be converted ------------------------------------------
printf 'Voil\303\240 la photo de l\047\303\251t\303\251,\nprise \303\240 Z\303\274rich.\n\nBob' >"$WORK/text.want"
check "text part (QP, Latin-1) -> text/plain, 24 characters by 5 lines, UTF-8" \
	bash -c "'$DBUS' call '$INBOX' $F Preview tssuu $(id_of '<jpeg@preview.test>') 1 text/plain 24 5 | cmp - '$WORK/text.want'"
check "PDF part to image/png: NotSupported names the type" \
	expect_error '<jpeg@preview.test>' 3 image/png 160 120 \
	"error org.cpmsync.Error.NotSupported: application/pdf (no image/png preview of it)"
check "the multipart message as a whole: NotSupported names multipart/mixed" \
	expect_error '<jpeg@preview.test>' "" image/jpeg 160 120 \
	"error org.cpmsync.Error.NotSupported: multipart/mixed (no image/jpeg preview of it)"
check "image part to text/plain: NotSupported" \
	expect_error '<jpeg@preview.test>' 2 text/plain 40 4 \
	"error org.cpmsync.Error.NotSupported: image/jpeg (no text/plain preview of it)"
check "SVG part (image/svg+xml): NotSupported, the helper not run" \
	expect_error '<svg@preview.test>' 2 image/png 160 120 \
	"error org.cpmsync.Error.NotSupported: image/svg+xml (no image/png preview of it)"
check "format image/gif: InvalidArgs naming format" \
	expect_error '<jpeg@preview.test>' 2 image/gif 160 120 \
	'error org.freedesktop.DBus.Error.InvalidArgs: format: "image/jpeg", "image/png", "image/webp" or "text/plain"'
check "width 0: InvalidArgs" \
	expect_error '<jpeg@preview.test>' 2 image/jpeg 0 120 \
	"error org.freedesktop.DBus.Error.InvalidArgs: width: 1 to 4096"
check "a part the message does not have: NotFound" \
	expect_error '<jpeg@preview.test>' 7 image/jpeg 160 120 \
	"error org.cpmsync.Error.NotFound: section: the message has no part '7'"
check "section HEADER: InvalidArgs saying what a body part is" \
	expect_error '<jpeg@preview.test>' HEADER image/jpeg 160 120 \
	"error org.freedesktop.DBus.Error.InvalidArgs: section: 'HEADER' is not a body part: \"\" (the message's own body) or a part number (\"1\", \"1.2\")"

# --- the hostile corpus -----------------------------------------------------------
F_=org.cpmsync.Error.Failed
hostile() { # FILE TEXT
	expect_error "<$1@preview.test>" 2 image/jpeg 160 120 "error $F_: part 2: $2"
}
check "truncated.jpg: damaged" hostile truncated.jpg "damaged image data: VipsJpeg: Premature end of input file"
check "truncated.png: damaged" hostile truncated.png "damaged image data: vipspng: libpng read error"
check "corrupt.png: damaged" hostile corrupt.png "damaged image data: vipspng: libpng read error"
check "huge-dimensions.jpg (60000x60000 header): too large, nothing decoded" \
	hostile huge-dimensions.jpg "image of 60000x60000 pixels: more than the 80-megapixel limit"
check "huge-dimensions.png (100000x100000 header): too large" \
	hostile huge-dimensions.png "image of 100000x100000 pixels: more than the 80-megapixel limit"
check "bomb.png (20000x20000 in 48 KB): too large" \
	hostile bomb.png "image of 20000x20000 pixels: more than the 80-megapixel limit"
check "not-an-image.jpg (text): not an image" \
	hostile not-an-image.jpg "not a JPEG, PNG, WebP or GIF image"
check "image.svg sent as image/jpeg: not an image (the SVG loader is blocked)" \
	hostile image.svg "not a JPEG, PNG, WebP or GIF image"
check "a real 9000x9000 JPEG: too large" \
	expect_error '<81mpx@preview.test>' 2 image/jpeg 160 120 \
	"error $F_: part 2: image of 9000x9000 pixels: more than the 80-megapixel limit"
check "errors are not cached: the corrupt one runs the helper again" \
	bash -c "n=\$(wc -l <'$RUNS'); '$DBUS' call '$INBOX' $F Preview tssuu $(id_of '<corrupt.png@preview.test>') 2 image/png 10 10 >/dev/null; sleep 0.2; test \$(wc -l <'$RUNS') -eq \$((n + 1))"
check "the daemon is still running" kill -0 "$DAEMON_PID"
check "... and idle" wait_state idle 10
check "... and still previews" \
	expect_image '<png@preview.test>' 2 image/jpeg 30 30 "jpeg 30x20"
check "one helper process is left: the spare, waiting" \
	eventually 5 test "$(pgrep -c -f "^$HELPER")" -eq 1

# --- offline -------------------------------------------------------------------------
"$DBUS" set "$A" org.cpmsync.Account1 Online b false >/dev/null
check "account offline" wait_state offline 5
check "offline: a cached preview is still served" \
	expect_image '<jpeg@preview.test>' 2 image/jpeg 160 120 "jpeg 160x120"
check "offline: a stored body still converts" \
	expect_error '<not-an-image.jpg@preview.test>' 2 image/png 10 10 \
	"error $F_: part 2: not a JPEG, PNG, WebP or GIF image"
check "offline: a part to fetch is Offline" \
	expect_error '<png@preview.test>' 2 image/png 11 11 \
	"error org.cpmsync.Error.Offline: the body is not stored and the account is offline"

kill "$DAEMON_PID"
wait "$DAEMON_PID"
DAEMON_PID=
check "after the daemon stops, no helper is left" eventually 5 bash -c "! pgrep -f '^$HELPER'"
finish
