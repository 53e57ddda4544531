#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Folder identity beyond UIDVALIDITY (issue 12), on the server SERVER names
# (lib-sync.sh: dovecot, cyrus-alt, cyrus-classic).
#
# 1. The reproduction: RepA and RepB created in the same second (on Cyrus
#    they then share a UIDVALIDITY), 20 and 10 messages, --once; then
#    DELETE RepA, RENAME RepB RepA, --once: RepA must hold RepB's 10
#    messages, as the server does, and a message appended there afterwards
#    must arrive.  On Cyrus only HIGHESTMODSEQ, UIDNEXT and MAILBOXID tell;
#    on Dovecot the UIDVALIDITY changes (a regression test there).
# 2. Local ids, bodies and queued changes survive: RepC's 5 messages are
#    copied into RepD (created in the same second), RepC deleted and RepD
#    renamed to RepC, while a flag change to one of them waits in the
#    journal: the same local ids come back, with the change pushed.
# 4. DELETE B, RENAME A B with a flag change queued on one of A's
#    messages: A's local ids go on under B, and the change is pushed.
# MAILBOXID (RFC 8474): Cyrus advertises OBJECTID, so a second LIST-STATUS
# asks for it (with UIDVALIDITY alone: Cyrus 3.6.1 garbles it beside the
# other items), the store records it, and in 1. the changed MAILBOXID is
# seen in LIST-STATUS before any SELECT (no QRESYNC SELECT naming RepA's
# old UIDs).  Dovecot 2.3 has no OBJECTID: not asked, nothing recorded.
# EMAILID (RFC 8474) likewise: fetched with new messages and kept on Cyrus
# (the same messages keep theirs through the rename), never on Dovecot.
# 3. (Cyrus) EMAILID re-matches: two messages with one Message-ID, size and
#    internal date in RepE (different bodies, so different EMAILIDs) are
#    copied to RepF in the reverse order, RepE deleted, RepF renamed to
#    RepE: each local id must come back with its own message (by Message-ID
#    alone the first local id would take the first UID, the other one).
# 5. A subtree renamed on the server, nothing else changed in it (Tree,
#    Tree/a, Tree/b renamed Grove): its folders are renamed in the store
#    without a SELECT (the LIST-STATUS proves nothing moved in them; they
#    were one QRESYNC SELECT each), the same local ids under the new names.
#    Cyrus raises each renamed folder's HIGHESTMODSEQ (2 -> 3 here), which
#    may be a flag change: there they are SELECTed, one each.
# 7. RenameFolder of the folder the replay's STORE left selected (Sel to
#    Sel2), and of the folder above the selected one (Up to Up2, Up/kid
#    selected): Cyrus answers the RENAME with "* VANISHED" of every UID of
#    the selected folder, which were taken as expunges (the messages gone
#    here for good).  An UNSELECT goes first: 3 messages in Sel2 and in
#    Up2/kid, here and on the server, a second run the same.
# 8. RenameFolder S S2 while another client renamed S to S1, S/kid
#    holding a message: S/kid keeps its local name under S2 and the RENAME
#    S1 S2 takes it there on the server (before, S/kid became S1/kid here,
#    for good, while the server had S2/kid).
# 6. What the default log (no -v) says of it: a subtree renamed on the
#    server is one line (Grove renamed Copse), a subtree deleted there one
#    line with its messages (Copse, Copse/a, Copse/b), a folder deleted
#    one line (Lone).
set -u
# shellcheck source=lib-sync.sh
. "$(dirname "$0")/lib-sync.sh"
lib_init

dc_start srv
CONF=$WORK/identity.conf
DB=$WORK/identity.db
write_conf "$CONF" "$DB"

uidvalidity() { # FOLDER
	da -f tab mailbox status -u "$USER1" uidvalidity "$1" | tail -n 1 | cut -f2
}
# local_rows FOLDER: the dump's lines of FOLDER (as cpmsync names it)
local_rows() {
	"$CPMCTL" dump --db "$DB" a | awk -F'\t' -v f="$1" '$2 == f'
}
# emailids FOLDER: "MESSAGE-ID EMAILID THREADID" of FOLDER's messages, sorted
# (NULL shown as -)
emailids() {
	"$PY" -c 'import sqlite3, sys
db = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
for r in db.execute("SELECT m.message_id, coalesce(m.emailid, \"-\"), coalesce(m.threadid, \"-\")"
                    " FROM message m JOIN folder f ON f.id = m.folder_id WHERE f.name = ?"
                    " ORDER BY 1", (sys.argv[2],)):
    print(" ".join(r))' "$DB" "$1"
}
# mailboxid FOLDER: the MAILBOXID the store recorded for FOLDER ("" none)
mailboxid() {
	"$PY" -c 'import sqlite3, sys
db = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
row = db.execute("SELECT coalesce(mailboxid, \"\") FROM folder WHERE name = ?", (sys.argv[2],)).fetchone()
print(row[0] if row else "no such folder")' "$DB" "$1"
}

# create_pair A B: both in one session (the same second, as far as can be
# told); on Cyrus they must share a UIDVALIDITY (the point of the test),
# so the pair is made again until they do (5 tries, a second apart).
create_pair() {
	local a=$1 b=$2 try va vb ns
	for try in 1 2 3 4 5 6 7 8 9 10; do
		# Start at a second's beginning: on a loaded machine two
		# CREATEs started anywhere in a second crossed into the next
		# one five times in a row (CI, 2026-12-06).
		ns=$(date +%N)
		sleep "0.$(printf '%09d' $((1000000000 - 10#$ns)))"
		da mailbox create -u "$USER1" "$a" "$b" || return 1
		va=$(uidvalidity "$a") vb=$(uidvalidity "$b")
		if ! is_cyrus || [ "$va" = "$vb" ]; then
			echo "# $a UIDVALIDITY $va, $b UIDVALIDITY $vb (try $try)"
			return 0
		fi
		# Cyrus deletes in "delayed" mode: DELETE renames the folder to
		# DELETED.<name>.<hex seconds>, so a second DELETE of the same
		# name within one second fails "NO Mailbox already exists" (it
		# did, now and then, when the first two tries both missed).
		sleep 1
		da mailbox delete -u "$USER1" "$a" "$b" || return 1
	done
	echo "    $a and $b never got the same UIDVALIDITY in 10 tries"
	return 1
}

# --- 1. the reproduction ------------------------------------------------------
check "RepA and RepB created in the same second" create_pair RepA RepB
fill_ok=1
for i in $(seq 1 20); do msg_save "$USER1" RepA "<a.$i@identity.test>" 400 || fill_ok=; done
for i in $(seq 1 10); do msg_save "$USER1" RepB "<b.$i@identity.test>" 600 || fill_ok=; done
check "20 messages saved in RepA, 10 in RepB" test -n "$fill_ok"
if sync_once "$CONF" "$WORK/sync1.log" && compare "$DB"; then
	ok "first sync equals the server"
else
	not_ok "first sync equals the server"
fi
check "the store holds 20 messages in RepA" test "$(local_rows RepA | wc -l)" -eq 20
mbid_a=$(mailboxid RepA) mbid_b=$(mailboxid RepB)
if is_cyrus; then
	check "LIST-STATUS asks for MAILBOXID (OBJECTID advertised)" grep -qE \
		' C: a[0-9]+ LIST "" "\*" RETURN \(STATUS \(UIDVALIDITY MAILBOXID\)\)$' \
		"$WORK/sync1.log"
	check "RepA's and RepB's MAILBOXIDs recorded, different ($mbid_a, $mbid_b)" \
		test -n "$mbid_a" -a -n "$mbid_b" -a "$mbid_a" != "$mbid_b"
	check "new messages fetched with EMAILID THREADID (OBJECTID)" grep -qE \
		' C: a[0-9]+ UID FETCH 1:\* \(UID FLAGS INTERNALDATE RFC822\.SIZE MODSEQ EMAILID THREADID ' \
		"$WORK/sync1.log"
	# Cyrus without conversations: THREADID (NIL), kept as none.
	n=$(emailids RepB | grep -cE '^<b\.[0-9]+@identity\.test> M[0-9a-f]{24} -$')
	check "RepB's 10 messages have their EMAILID, no THREADID ($n)" test "$n" -eq 10
	emailids_b=$(emailids RepB)
else
	if grep -q ' C: a[0-9]* .*MAILBOXID' "$WORK/sync1.log"; then
		not_ok "MAILBOXID is not asked for (no OBJECTID)"
	else
		ok "MAILBOXID is not asked for (no OBJECTID)"
	fi
	check "no MAILBOXID recorded (RepA: '$mbid_a', RepB: '$mbid_b')" \
		test -z "$mbid_a" -a -z "$mbid_b"
	if grep -q ' C: a[0-9]* .*EMAILID' "$WORK/sync1.log"; then
		not_ok "EMAILID is not asked for (no OBJECTID)"
	else
		ok "EMAILID is not asked for (no OBJECTID)"
	fi
	n=$(emailids RepB | grep -c ' - -$')
	check "RepB's 10 messages have no EMAILID ($n)" test "$n" -eq 10
fi

ids_b=$("$OP" --db "$DB" ids a RepB | sort -n | tr '\n' ' ')
check "server: DELETE RepA" da mailbox delete -u "$USER1" RepA
check "server: RENAME RepB RepA" da mailbox rename -u "$USER1" RepB RepA
echo "# RepA's UIDVALIDITY after the rename: $(uidvalidity RepA)"
if sync_once "$CONF" "$WORK/sync2.log" && compare "$DB"; then
	ok "after DELETE RepA; RENAME RepB RepA the dump equals the server"
else
	not_ok "after DELETE RepA; RENAME RepB RepA the dump equals the server"
fi
n=$(local_rows RepA | wc -l)
check "RepA holds 10 messages locally (holds $n)" test "$n" -eq 10
want=$(for i in $(seq 1 10); do echo "<b.$i@identity.test>"; done | sort)
got=$(local_rows RepA | cut -f5 | sort)
check "RepA holds exactly RepB's Message-IDs" test "$got" = "$want"
check "RepB is gone locally" test "$(local_rows RepB | wc -l)" -eq 0
ids_a=$("$OP" --db "$DB" ids a RepA | sort -n | tr '\n' ' ')
check "RepA's messages kept RepB's local ids ($ids_b -> $ids_a)" test "$ids_a" = "$ids_b"
if grep -q "RepA is another folder now (" "$WORK/sync2.log"; then
	ok "the engine saw RepA is another folder ($(grep -o 'RepA is another folder now ([^:]*' "$WORK/sync2.log" | head -n 1 | sed 's/.*(//'))"
else
	not_ok "the engine saw RepA is another folder"
	grep -i 'repa' "$WORK/sync2.log" | grep -v ' [CS]: ' | head -n 5 | sed 's/^/    /'
fi
if is_cyrus; then
	# The same UIDVALIDITY: only RepB's MAILBOXID, in LIST-STATUS, tells
	# that the folder now under RepA is RepB renamed.
	check "LIST-STATUS told first: RepA is another folder now (RepB renamed to it)" \
		grep -qF "RepA is another folder now (RepB renamed to it on the server, the old one deleted there): its 20 messages are re-matched against it" \
		"$WORK/sync2.log"
	if grep -qE ' C: a[0-9]+ SELECT "?(INBOX\.)?RepA"? \(QRESYNC' "$WORK/sync2.log"; then
		not_ok "RepA was not SELECTed with QRESYNC (the old folder's UIDs)"
	else
		ok "RepA was not SELECTed with QRESYNC (the old folder's UIDs)"
	fi
	check "RepA's recorded MAILBOXID is RepB's ($(mailboxid RepA))" test "$(mailboxid RepA)" = "$mbid_b"
	check "RepA's messages have the EMAILIDs RepB's had" test "$(emailids RepA)" = "$emailids_b"
fi

check "server: a message appended to RepA afterwards" msg_save "$USER1" RepA "<after.1@identity.test>" 500
if sync_once "$CONF" "$WORK/sync3.log" && compare "$DB"; then
	ok "the message appended afterwards arrives (dump equals the server)"
else
	not_ok "the message appended afterwards arrives (dump equals the server)"
fi
check "RepA holds 11 messages locally" test "$(local_rows RepA | wc -l)" -eq 11
if sync_once "$CONF" "$WORK/sync4.log" && compare "$DB" &&
	! grep -q 'is another folder now' "$WORK/sync4.log"; then
	ok "a run without changes: still equal, no re-read"
else
	not_ok "a run without changes: still equal, no re-read"
fi

# --- 2. local ids, bodies and queued changes survive ----------------------------
check "RepC and RepD created in the same second" create_pair RepC RepD
fill_ok=1
for i in 1 2 3 4 5; do msg_save "$USER1" RepC "<c.$i@identity.test>" 700 || fill_ok=; done
check "5 messages saved in RepC" test -n "$fill_ok"
if sync_once "$CONF" "$WORK/sync5.log" && compare "$DB"; then
	ok "RepC synced"
else
	not_ok "RepC synced"
fi
ids_before=$("$OP" --db "$DB" ids a RepC | sort -n | tr '\n' ' ')
id3=$("$OP" --db "$DB" find a RepC "<c.3@identity.test>")
check "a local flag change to <c.3> is queued" "$OP" --db "$DB" flags "$id3" -- +'$Queued'
# The server: RepD gets copies of RepC's messages (same Message-ID, size
# and internal date), RepC goes, RepD takes its name.
check "server: RepC's messages copied to RepD" da copy -u "$USER1" RepD mailbox RepC all
check "server: DELETE RepC" da mailbox delete -u "$USER1" RepC
check "server: RENAME RepD RepC" da mailbox rename -u "$USER1" RepD RepC
if sync_once "$CONF" "$WORK/sync6.log"; then
	ok "sync after RepD took RepC's name"
else
	not_ok "sync after RepD took RepC's name"
fi
ids_after=$("$OP" --db "$DB" ids a RepC | sort -n | tr '\n' ' ')
check "the same local ids ($ids_before) are in RepC ($ids_after)" test "$ids_before" = "$ids_after"
if grep -q 'RepC is another folder now (' "$WORK/sync6.log"; then
	ok "the engine saw RepC is another folder"
else
	not_ok "the engine saw RepC is another folder"
fi
flags=$(da -f tab fetch -u "$USER1" 'uid flags hdr.message-id' mailbox RepC |
	awk -F'\t' '$3 == "<c.3@identity.test>" { print $2 }')
check "the queued flag reached the server's copy of <c.3> (flags: $flags)" \
	grep -qF '$Queued' <<<"$flags"
check "nothing left in the journal" test -z "$("$OP" --db "$DB" pending a)"
if compare "$DB"; then ok "RepC equals the server"; else not_ok "RepC equals the server"; fi
# has_body ID: the store still marks the body of local id ID as stored
has_body() {
	"$PY" -c 'import sqlite3, sys
db = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
row = db.execute("SELECT has_body FROM message WHERE id = ?", (int(sys.argv[2]),)).fetchone()
sys.exit(0 if row and row[0] == 1 else 1)' "$DB" "$1"
}
for i in 1 3 5; do
	id=$("$OP" --db "$DB" find a RepC "<c.$i@identity.test>")
	check "<c.$i> (local id $id) kept its stored body" has_body "$id"
done

# --- 4. DELETE B; RENAME A B: changes queued on A's messages follow A ----------
# A's folder is the one under B now: its messages keep their local ids
# and a flag queued on one of them reaches the server.  (Matched by name,
# B was re-read and A deleted here with its queued change.)
check "server: CREATE WkA WkB" da mailbox create -u "$USER1" WkA WkB
fill_ok=1
for i in 1 2 3; do msg_save "$USER1" WkA "<w.$i@identity.test>" 500 || fill_ok=; done
for i in 1 2; do msg_save "$USER1" WkB "<x.$i@identity.test>" 800 || fill_ok=; done
check "3 messages saved in WkA, 2 in WkB" test -n "$fill_ok"
if sync_once "$CONF" "$WORK/sync9.log" && compare "$DB"; then
	ok "WkA and WkB synced"
else
	not_ok "WkA and WkB synced"
fi
ids_wka=$("$OP" --db "$DB" ids a WkA | sort -n | tr '\n' ' ')
w2=$("$OP" --db "$DB" find a WkA "<w.2@identity.test>")
check "a local flag change to WkA's <w.2> (id $w2) is queued" "$OP" --db "$DB" flags "$w2" -- +'$Kept'
check "server: DELETE WkB" da mailbox delete -u "$USER1" WkB
check "server: RENAME WkA WkB" da mailbox rename -u "$USER1" WkA WkB
if sync_once "$CONF" "$WORK/sync10.log"; then
	ok "sync after WkA took WkB's name"
else
	not_ok "sync after WkA took WkB's name"
fi
check "the log says WkB is WkA now" grep -qF \
	"WkB is another folder now (WkA renamed to it on the server, the old one deleted there): its 2 messages are re-matched against it" \
	"$WORK/sync10.log"
ids_wkb=$("$OP" --db "$DB" ids a WkB | sort -n | tr '\n' ' ')
check "WkB holds WkA's local ids ($ids_wka -> $ids_wkb)" test "$ids_wkb" = "$ids_wka"
check "no WkA locally" test "$(local_rows WkA | wc -l)" -eq 0
flags=$(da -f tab fetch -u "$USER1" 'uid flags hdr.message-id' mailbox WkB |
	awk -F'\t' '$3 == "<w.2@identity.test>" { print $2 }')
check "the queued flag reached <w.2> on the server, in WkB (flags: $flags)" \
	grep -qF '$Kept' <<<"$flags"
check "nothing left in the journal" test -z "$("$OP" --db "$DB" pending a)"
if compare "$DB"; then ok "WkB equals the server"; else not_ok "WkB equals the server"; fi

# --- 3. (Cyrus) two messages with one Message-ID told apart by EMAILID ----------
# local_subject FOLDER SUBJECT: "ID FLAGS" of the local message with SUBJECT
local_subject() {
	"$PY" -c 'import sqlite3, sys
db = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
for r in db.execute("SELECT m.id, ms.flags FROM message m JOIN message_state ms ON ms.id = m.id"
                    " JOIN folder f ON f.id = m.folder_id"
                    " JOIN summary s ON s.id = m.id WHERE f.name = ? AND s.subject = ?",
                    (sys.argv[2], sys.argv[3])):
    print(r[0], r[1])' "$DB" "$1" "$2"
}
if is_cyrus; then
	check "RepE and RepF created in the same second" create_pair RepE RepF
	dup_date="05-Dec-2026 10:00:00 +0000"
	check "server: <dup> saved in RepE as 'dup one'" \
		da save -u "$USER1" -m RepE -d "$dup_date" < <(msg_text "<dup@identity.test>" 600 "dup one")
	check "server: <dup> saved in RepE as 'dup two'" \
		da save -u "$USER1" -m RepE -d "$dup_date" < <(msg_text "<dup@identity.test>" 600 "dup two")
	check "server: \$One on RepE's UID 1" da flags add -u "$USER1" '$One' mailbox RepE uid 1
	check "server: \$Two on RepE's UID 2" da flags add -u "$USER1" '$Two' mailbox RepE uid 2
	if sync_once "$CONF" "$WORK/sync7.log" && compare "$DB"; then
		ok "RepE synced"
	else
		not_ok "RepE synced"
	fi
	n=$(emailids RepE | awk '$1 == "<dup@identity.test>" { print $2 }' | sort -u | wc -l)
	check "RepE's two <dup> messages have two EMAILIDs ($n)" test "$n" -eq 2
	one_before=$(local_subject RepE "dup one") two_before=$(local_subject RepE "dup two")
	check "'dup one' is local '$one_before', with \$One" test "${one_before#* }" = '$One'
	check "'dup two' is local '$two_before', with \$Two" test "${two_before#* }" = '$Two'
	# Same size and internal date: only the EMAILID tells them apart.
	check "server: RepE's UID 2 copied to RepF" da copy -u "$USER1" RepF mailbox RepE uid 2
	check "server: then RepE's UID 1 copied to RepF" da copy -u "$USER1" RepF mailbox RepE uid 1
	check "server: DELETE RepE" da mailbox delete -u "$USER1" RepE
	check "server: RENAME RepF RepE" da mailbox rename -u "$USER1" RepF RepE
	if sync_once "$CONF" "$WORK/sync8.log" && compare "$DB"; then
		ok "after RepF took RepE's name the dump equals the server"
	else
		not_ok "after RepF took RepE's name the dump equals the server"
	fi
	check "the engine saw RepE is another folder" grep -q 'RepE is another folder now (' \
		"$WORK/sync8.log"
	one_after=$(local_subject RepE "dup one") two_after=$(local_subject RepE "dup two")
	check "'dup one' kept its local id and \$One ('$one_before' -> '$one_after')" \
		test "$one_after" = "$one_before"
	check "'dup two' kept its local id and \$Two ('$two_before' -> '$two_after')" \
		test "$two_after" = "$two_before"
fi

# --- 5. a subtree renamed on the server, nothing else changed: no SELECT --------
check "server: CREATE Tree Tree/a Tree/b" da mailbox create -u "$USER1" Tree Tree/a Tree/b
fill_ok=1
for f in Tree Tree/a Tree/b; do msg_save "$USER1" "$f" "<t.${f//\//.}@identity.test>" 400 || fill_ok=; done
check "a message saved in each of Tree, Tree/a, Tree/b" test -n "$fill_ok"
if sync_once "$CONF" "$WORK/sync11.log" && compare "$DB"; then
	ok "Tree and its folders synced"
else
	not_ok "Tree and its folders synced"
fi
ids_tree=$(for f in Tree Tree/a Tree/b; do "$OP" --db "$DB" ids a "$f" || echo failed; done | tr '\n' ' ')
check "Tree's folders hold 3 local ids ($ids_tree)" test "$(wc -w <<<"$ids_tree")" -eq 3
check "server: RENAME Tree Grove" da mailbox rename -u "$USER1" Tree Grove
if sync_once "$CONF" "$WORK/sync12.log" && compare "$DB"; then
	ok "after RENAME Tree Grove the dump equals the server"
else
	not_ok "after RENAME Tree Grove the dump equals the server"
fi
n=$(grep -cE ' C: a[0-9]+ SELECT ' "$WORK/sync12.log")
if is_cyrus; then
	check "Tree's 3 folders SELECTed once each (Cyrus raised their HIGHESTMODSEQ; $n SELECTs)" \
		test "$n" -eq 3
else
	check "no folder SELECTed after the rename ($n SELECTs)" test "$n" -eq 0
fi
ids_grove=$(for f in Grove Grove/a Grove/b; do "$OP" --db "$DB" ids a "$f" || echo failed; done | tr '\n' ' ')
check "Grove's folders hold Tree's local ids ($ids_tree -> $ids_grove)" test "$ids_grove" = "$ids_tree"
check "no Tree locally" test "$(local_rows Tree | wc -l)" -eq 0

# --- 7. a RENAME of the selected folder, or of one above it --------------------
# messages FOLDER: the server's message count of FOLDER
messages() {
	da -f tab mailbox status -u "$USER1" messages "$1" | tail -n 1 | cut -f2
}
# renamed_selected FOLDER OLD NEW: FOLDER (Sel, or Up/kid under Up) holds 3
# messages, synced; a flag queued on one of them, OLD renamed NEW here:
# the replay's STORE selects FOLDER, then the RENAME.
renamed_selected() {
	local folder=$1 old=$2 new=$3 id fill_ok=1 i run moved=${1/#$2/$3} n flags
	for i in 1 2 3; do
		msg_save "$USER1" "$folder" "<sel.${folder//\//.}.$i@identity.test>" 400 || fill_ok=
	done
	check "3 messages saved in $folder" test -n "$fill_ok"
	if sync_once "$CONF" "$WORK/sel-$old-1.log" && compare "$DB"; then
		ok "$folder synced"
	else
		not_ok "$folder synced"
	fi
	id=$("$OP" --db "$DB" find a "$folder" "<sel.${folder//\//.}.2@identity.test>")
	check "a flag queued on $folder's <sel.2> (id $id)" "$OP" --db "$DB" flags "$id" -- +'$Sel'
	check "RenameFolder $old $new here" "$OP" --db "$DB" rename a "$old" "$new"
	for run in 2 3; do
		if sync_once "$CONF" "$WORK/sel-$old-$run.log" && compare "$DB"; then
			ok "run $run after the rename: the dump equals the server"
		else
			not_ok "run $run after the rename: the dump equals the server"
		fi
		n=$(local_rows "$moved" | wc -l)
		check "run $run: $moved holds 3 messages here ($n)" test "$n" -eq 3
	done
	n=$(messages "$moved")
	check "$moved holds 3 messages on the server ($n)" test "$n" = 3
	check "the UNSELECT went right before the RENAME" awk -v old="$old" '
		/ C: a[0-9]+ RENAME / { if (index($0, old) && prev ~ / C: a[0-9]+ UNSELECT$/) found = 1 }
		/ C: a[0-9]+ / { prev = $0 }
		END { exit !found }' "$WORK/sel-$old-2.log"
	flags=$(da -f tab fetch -u "$USER1" 'uid flags hdr.message-id' mailbox "$moved" |
		awk -F'\t' -v m="<sel.${folder//\//.}.2@identity.test>" '$3 == m { print $2 }')
	check "the queued flag reached the server (flags: $flags)" grep -qF '$Sel' <<<"$flags"
	check "nothing left in the journal" test -z "$("$OP" --db "$DB" pending a)"
}
check "server: CREATE Sel Up Up/kid" da mailbox create -u "$USER1" Sel Up Up/kid
renamed_selected Sel Sel Sel2
renamed_selected Up/kid Up Up2

# --- 8. a RENAME here of a folder another client renamed too -------------------
check "server: CREATE S S/kid" da mailbox create -u "$USER1" S S/kid
check "a message saved in S/kid" msg_save "$USER1" S/kid "<skid@identity.test>" 400
if sync_once "$CONF" "$WORK/race1.log" && compare "$DB"; then
	ok "S and S/kid synced"
else
	not_ok "S and S/kid synced"
fi
id=$("$OP" --db "$DB" find a S/kid "<skid@identity.test>")
check "server: RENAME S S1 (another client)" da mailbox rename -u "$USER1" S S1
check "RenameFolder S S2 here" "$OP" --db "$DB" rename a S S2
for run in 2 3; do
	if sync_once "$CONF" "$WORK/race$run.log" && compare "$DB"; then
		ok "run $run: the dump equals the server"
	else
		not_ok "run $run: the dump equals the server"
	fi
done
check "S2/kid holds the message here, its local id kept ($id)" \
	test "$("$OP" --db "$DB" find a S2/kid "<skid@identity.test>")" = "$id"
check "no S1/kid here" test "$(local_rows S1/kid | wc -l)" -eq 0
n=$(messages S2/kid)
check "S2/kid holds the message on the server ($n)" test "$n" = 1
check "nothing left in the journal" test -z "$("$OP" --db "$DB" pending a)"

# --- 6. the default log names what the server renamed and deleted -------------
# log_says LOG EXPECTED: LOG's lines about folders renamed or deleted on
# the server are exactly EXPECTED (one per line, in order)
log_says() {
	local got line
	got=$(grep -E 'renamed on the server|deleted on the server' "$1")
	[ "$got" = "$2" ] && return 0
	echo "    the log says:"
	while IFS= read -r line; do echo "      $line"; done <<<"$got"
	return 1
}
check "server: CREATE Lone" da mailbox create -u "$USER1" Lone
check "a message saved in Lone" msg_save "$USER1" Lone "<lone@identity.test>" 400
check "server: RENAME Grove Copse" da mailbox rename -u "$USER1" Grove Copse
if timeout "$SYNC_TIMEOUT" "$SYNCD" -c "$CONF" --once 2>"$WORK/sync13.log" && compare "$DB"; then
	ok "after RENAME Grove Copse the dump equals the server (no -v)"
else
	not_ok "after RENAME Grove Copse the dump equals the server (no -v)"
fi
check "the default log says Grove was renamed Copse, with its folders, in one line" \
	log_says "$WORK/sync13.log" "cpm-syncd: a: folder 'Grove' renamed on the server to 'Copse', with the 2 folders under it"
check "server: DELETE Copse/a Copse/b Copse Lone" da mailbox delete -u "$USER1" Copse/a Copse/b Copse Lone
if timeout "$SYNC_TIMEOUT" "$SYNCD" -c "$CONF" --once 2>"$WORK/sync14.log" && compare "$DB"; then
	ok "after DELETE Copse/a Copse/b Copse Lone the dump equals the server (no -v)"
else
	not_ok "after DELETE Copse/a Copse/b Copse Lone the dump equals the server (no -v)"
fi
check "the default log says Copse (one line, with its folders) and Lone were deleted" \
	log_says "$WORK/sync14.log" "cpm-syncd: a: folder 'Copse' deleted on the server with the 2 folders under it: their 3 messages removed here
cpm-syncd: a: folder 'Lone' deleted on the server: its 1 message removed here"

finish
