#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Server-side changes and reads on the throwaway Cyrus of cyrus-ctl.sh, over
IMAP as the mailbox's owner: the subset of doveadm's command line that the
integration tests use, so that tests/integration/lib-sync.sh can run the
same scripts against Dovecot (doveadm) and Cyrus (this).

Reads the instance from the environment written by `cyrus-ctl.sh start`
(CYRUS_DIR/env): IMAP_PORT, CYRUS_NAMESPACE (alt|classic), CYRUS_PASSWORDS
(a file of USER TAB PASSWORD lines), CYRUS_ADMIN / CYRUS_ADMIN_PASS.

Folder names are given and printed as cpmsync shows them: UTF-8, '/'
between levels, relative to the personal namespace (RFC 2342): in the
classic namespace "Archive" given here is "INBOX.Archive" on the server
and is printed as "Archive"; INBOX is INBOX.  The other users' and shared
namespaces are left out of listings (cpmsync hides them by default).

  [-f tab] mailbox create|delete -u USER NAME...
  [-f tab] mailbox rename -u USER OLD NEW
  -f tab mailbox status -u USER FIELDS MASK...   FIELDS: messages uidvalidity
                                                 uidnext highestmodseq (space-separated)
  save -u USER -m FOLDER [-d DATE]               the message on stdin (APPEND), with the
                                                 internal date DATE ("05-Dec-2026
                                                 10:00:00 +0000") if given
  search -u USER mailbox F all | header message-id ID | uid SET
                                                 prints "- UID" lines (doveadm: GUID UID)
  flags add|remove|replace -u USER FLAGS mailbox F uid SET|all
  expunge -u USER mailbox F uid SET|all          only those UIDs (UID EXPUNGE)
  copy|move -u USER DEST mailbox SRC uid SET
  -f tab fetch -u USER 'uid flags hdr.message-id' mailbox F
  import-maildir -u USER FOLDER DIR              APPENDs every file of DIR (a Maildir's
                                                 cur/) in name order, with the flags of its
                                                 ":2,FS" suffix: MULTIAPPEND commands of up
                                                 to 500 messages (8 MB) in one session
  dump USER ACCOUNT                              the cpmctl dump format (unsorted)
  setup                                          create every user of CYRUS_PASSWORDS
                                                 with Sent, Trash, Drafts
  seed USER                                      the sample mail dovecot-ctl.sh seeds
  raw USER COMMAND...                            one command as USER; prints the
                                                 responses (e.g. "DELETE RepA")
Exit status 0, or 1 with the server's answer on stderr.
"""
import base64
import imaplib
import os
import re
import socket
import sys
import time

HOST = "127.0.0.1"


def die(msg):
    sys.stderr.write("cyrus-imap: %s\n" % msg)
    sys.exit(1)


def env(name):
    v = os.environ.get(name)
    if not v:
        die("%s not set (source CYRUS_DIR/env)" % name)
    return v


NAMESPACE = os.environ.get("CYRUS_NAMESPACE", "alt")
DELIM = "." if NAMESPACE == "classic" else "/"


# --- modified UTF-7 (RFC 3501 5.1.3) ---------------------------------------
def mutf7_encode(s):
    out, run = [], []

    def flush():
        if run:
            b = base64.b64encode("".join(run).encode("utf-16-be")).decode()
            out.append("&" + b.rstrip("=").replace("/", ",") + "-")
            run.clear()

    for ch in s:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            run.append(ch)
    flush()
    return "".join(out)


def mutf7_decode(s):
    out, i = [], 0
    while i < len(s):
        if s[i] != "&":
            out.append(s[i])
            i += 1
            continue
        j = s.index("-", i)
        if j == i + 1:
            out.append("&")
        else:
            b = s[i + 1 : j].replace(",", "/")
            b += "=" * (-len(b) % 4)
            out.append(base64.b64decode(b).decode("utf-16-be"))
        i = j + 1
    return "".join(out)


def to_server(name):
    if re.match(r"(?i)^INBOX$", name):
        return "INBOX"
    enc = mutf7_encode(name.replace("/", DELIM))
    return "INBOX." + enc if NAMESPACE == "classic" else enc


def from_server(name):
    """The local name, None for a name in another namespace."""
    if re.match(r"(?i)^INBOX$", name):
        return "INBOX"
    if NAMESPACE == "classic":
        if not re.match(r"(?i)^INBOX\.", name):
            return None
        name = name[6:]
    elif re.match(r"^(Other Users|Shared Folders)(/|$)", name):
        return None
    return mutf7_decode(name).replace(DELIM, "/")


def quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- connections -------------------------------------------------------------
def passwords():
    pw = {}
    with open(env("CYRUS_PASSWORDS"), encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if "\t" in line:
                u, p = line.split("\t", 1)
                pw[u] = p
    return pw


def connect(user, password=None):
    if password is None:
        pw = passwords()
        if user not in pw:
            die("unknown user %s" % user)
        password = pw[user]
    try:
        m = imaplib.IMAP4(HOST, int(env("IMAP_PORT")))
        # imaplib sends a literal's closing CRLF as its own write: without
        # TCP_NODELAY every APPEND waits for a delayed ACK (~40 ms).
        m.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        m.login(user, password)
    except (OSError, imaplib.IMAP4.error) as e:
        die("login as %s: %s" % (user, e))
    return m


def ok(m, what, res):
    typ, data = res
    if typ != "OK":
        die("%s: %s %s" % (what, typ, data))
    return data


def cmd(m, what, name, *args):
    """A command imaplib has no method for, or whose quoting it gets wrong."""
    return ok(m, what, m._simple_command(name, *args))


def select(m, folder):
    data = ok(m, "SELECT " + folder, m._simple_command("SELECT", quote(to_server(folder))))
    m.state = "SELECTED"
    exists = m.untagged_responses.get("EXISTS", [b"0"])[-1]
    del data
    return int(exists)


def flag_list(s):
    return "(" + s + ")"


# --- LIST --------------------------------------------------------------------
LIST_RE = re.compile(rb'^\((?P<attrs>[^)]*)\) (?:"(?:[^"\\]|\\.)*"|NIL) (?P<name>.*)$')


def unquote(b):
    if b.startswith(b'"') and b.endswith(b'"'):
        return re.sub(rb"\\(.)", rb"\1", b[1:-1]).decode()
    return b.decode()


def list_folders(m):
    """[(name as cpmsync shows it, selectable)]"""
    data = ok(m, "LIST", m._simple_command("LIST", '""', '"*"'))
    data = m.untagged_responses.pop("LIST", [])
    out = []
    i = 0
    while i < len(data):
        item = data[i]
        i += 1
        if isinstance(item, tuple):  # a name sent as a literal
            head, lit = item
            mt = LIST_RE.match(head.rstrip())
            attrs = mt.group("attrs") if mt else b""
            name = lit.decode()
        else:
            mt = LIST_RE.match(item)
            if not mt:
                continue
            attrs, name = mt.group("attrs"), unquote(mt.group("name"))
        a = attrs.lower()
        sel = b"\\noselect" not in a and b"\\nonexistent" not in a
        if from_server(name) is not None:
            out.append((from_server(name), sel))
    return out


def selectable(m):
    return [n for n, s in list_folders(m) if s]


# --- FETCH -------------------------------------------------------------------
def fetch_all(m, folder, items):
    """[(uid, flags list, header bytes or None)] for every message of folder."""
    n = select(m, folder)
    if n == 0:
        return []
    want_hdr = any(i.startswith("hdr") for i in items)
    q = "(UID FLAGS%s)" % (" BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]" if want_hdr else "")
    typ, data = m.uid("FETCH", "1:*", q)
    if typ != "OK":
        die("UID FETCH in %s: %s" % (folder, data))
    out = []
    for item in data:
        if isinstance(item, tuple):  # "N (... {len}" and the literal
            out.append([item[0], item[1]])
        elif item is None:
            continue
        elif re.match(rb"^\d+ \(", item):
            out.append([item, None])
        elif out:  # what follows a literal: ")" or " FLAGS (...))"
            out[-1][0] += item
    return [x for x in (finish(meta, hdr) for meta, hdr in out) if x]


def finish(meta, hdr):
    mu = re.search(rb"UID (\d+)", meta)
    mf = re.search(rb"FLAGS \(([^)]*)\)", meta)
    if not mu:
        return None
    flags = mf.group(1).decode().split() if mf else []
    return (int(mu.group(1)), flags, hdr)


def message_id(hdr):
    if not hdr:
        return ""
    text = hdr.decode("utf-8", "replace")
    mt = re.search(r"(?im)^message-id:(.*(?:\r?\n[ \t].*)*)", text)
    if not mt:
        return ""
    return re.sub(r"\r?\n", "\n", mt.group(1)).strip(" \t\r\n")


def dump_flags(flags):
    return " ".join(sorted((f for f in flags if f != "\\Recent"), key=lambda s: s.encode()))


# --- commands ----------------------------------------------------------------
def take_user(args):
    if len(args) < 2 or args[0] != "-u":
        die("expected -u USER")
    return args[1], args[2:]


def uid_set(args, i):
    """args[i:] is "uid SET" or "all" -> (set, rest)"""
    if args[i] == "all":
        return "1:*", args[i + 1 :]
    if args[i] == "uid":
        return args[i + 1], args[i + 2 :]
    die("expected uid SET or all, not %s" % args[i:])


def c_mailbox(args, fmt):
    sub = args[0]
    user, rest = take_user(args[1:])
    m = connect(user)
    if sub == "create":
        for n in rest:
            cmd(m, "CREATE " + n, "CREATE", quote(to_server(n)))
    elif sub == "delete":
        for n in rest:
            cmd(m, "DELETE " + n, "DELETE", quote(to_server(n)))
    elif sub == "rename":
        cmd(m, "RENAME", "RENAME", quote(to_server(rest[0])), quote(to_server(rest[1])))
    elif sub == "status":
        fields = rest[0].split()
        masks = rest[1:]
        names = selectable(m) if "*" in masks else masks
        print("\t".join(["mailbox"] + fields))
        for n in names:
            typ, data = m._simple_command(
                "STATUS", quote(to_server(n)), "(" + " ".join(f.upper() for f in fields) + ")"
            )
            data = m.untagged_responses.pop("STATUS", [])
            if typ != "OK" or not data:
                die("STATUS %s: %s" % (n, typ))
            vals = dict(
                (k.decode().lower(), v.decode())
                for k, v in re.findall(rb"([A-Z]+) (\d+)", data[-1].split(b"(", 1)[-1])
            )
            print("\t".join([n] + [vals.get(f, "") for f in fields]))
    elif sub == "list":
        for n, _ in list_folders(m):
            print(n)
    else:
        die("mailbox %s: not implemented" % sub)
    m.logout()


def c_save(args):
    user, rest = take_user(args)
    if len(rest) not in (2, 4) or rest[0] != "-m" or (len(rest) == 4 and rest[2] != "-d"):
        die("save -u USER -m FOLDER [-d DATE]")
    date = '"%s"' % rest[3] if len(rest) == 4 else None
    data = sys.stdin.buffer.read()
    m = connect(user)
    ok(m, "APPEND " + rest[1], m.append(quote(to_server(rest[1])), None, date, data))
    m.logout()


def c_search(args):
    user, rest = take_user(args)
    if rest[0] != "mailbox":
        die("search: expected mailbox F")
    m = connect(user)
    select(m, rest[1])
    q = rest[2:]
    if q == ["all"]:
        crit = ["ALL"]
    elif len(q) == 3 and q[0] == "header":
        crit = ["HEADER", q[1], quote(q[2])]
    elif len(q) == 2 and q[0] == "uid":
        crit = ["UID", q[1]]
    else:
        die("search %s: not implemented" % q)
    typ, data = m.uid("SEARCH", *crit)
    if typ != "OK":
        die("UID SEARCH: %s" % data)
    for u in sorted(int(x) for x in b" ".join(d for d in data if d).split()):
        print("- %d" % u)
    m.logout()


def c_flags(args):
    op = args[0]
    user, rest = take_user(args[1:])
    flags, rest = rest[0], rest[1:]
    if rest[0] != "mailbox":
        die("flags: expected mailbox F")
    m = connect(user)
    select(m, rest[1])
    s, _ = uid_set(rest, 2)
    item = {"add": "+FLAGS.SILENT", "remove": "-FLAGS.SILENT", "replace": "FLAGS.SILENT"}[op]
    typ, data = m.uid("STORE", s, item, flag_list(flags))
    if typ != "OK":
        die("UID STORE: %s" % data)
    m.logout()


def c_expunge(args):
    user, rest = take_user(args)
    m = connect(user)
    select(m, rest[1])
    s, _ = uid_set(rest, 2)
    for c in (("STORE", s, "+FLAGS.SILENT", "(\\Deleted)"), ("EXPUNGE", s)):
        typ, data = m.uid(*c)
        if typ != "OK":
            die("UID %s: %s" % (c[0], data))
    m.logout()


def c_copy_move(args):
    op = args[0].upper()
    user, rest = take_user(args[1:])
    dest, rest = rest[0], rest[1:]
    m = connect(user)
    select(m, rest[1])
    s, _ = uid_set(rest, 2)
    typ, data = m._simple_command("UID", op, s, quote(to_server(dest)))
    if typ != "OK":
        die("UID %s: %s" % (op, data))
    m.logout()


def c_fetch(args):
    user, rest = take_user(args)
    items = rest[0].split()
    if rest[1] != "mailbox":
        die("fetch: expected mailbox F")
    m = connect(user)
    print("\t".join(items))
    for uid, flags, hdr in fetch_all(m, rest[2], items):
        vals = {"uid": str(uid), "flags": " ".join(flags), "hdr.message-id": message_id(hdr)}
        print("\t".join(vals.get(i, "") for i in items))
    m.logout()


def c_import_maildir(args):
    """MULTIAPPEND (RFC 3502) with LITERAL+ literals, in batches of at most
    IMPORT_BATCH messages or bytes: one round trip per batch instead of one
    per message (3000 single APPENDs took ~50 s at load 15; each batch is
    one command, stored by the server all or nothing)."""
    user, rest = take_user(args)
    if len(rest) != 2:
        die("import-maildir -u USER FOLDER DIR")
    folder, d = rest
    letters = {"D": "\\Draft", "F": "\\Flagged", "R": "\\Answered", "S": "\\Seen", "T": "\\Deleted"}
    try:
        names = sorted(os.listdir(d))
    except OSError as e:
        die("import-maildir: cannot read %s: %s" % (d, e))
    m = connect(user)
    caps = b" ".join(d for d in ok(m, "CAPABILITY", m.capability()) if d).upper().split()
    for c in (b"MULTIAPPEND", b"LITERAL+"):
        if c not in caps:
            die("import-maildir: the server does not offer %s" % c.decode())
    box = quote(to_server(folder)).encode()
    batch, size = [], 0

    def send(batch):
        tag = m._new_tag()
        m.send(tag + b" APPEND " + box + b"".join(batch) + b"\r\n")
        while True:
            line = m._get_line()
            if line.startswith(tag + b" "):
                if line.split(b" ", 2)[1] != b"OK":
                    die("APPEND of %d messages to %s: %s" % (len(batch), folder, line.decode("utf-8", "replace")))
                return

    for name in names:
        info = name.split(":2,", 1)[1] if ":2," in name else ""
        flags = " ".join(letters[c] for c in info if c in letters)
        with open(os.path.join(d, name), "rb") as f:
            # bare CR or LF as CRLF, as imaplib's append() sends them
            data = CRLF_RE.sub(b"\r\n", f.read())
        batch.append(b" (" + flags.encode() + b") {%d+}\r\n" % len(data) + data)
        size += len(data)
        if len(batch) >= IMPORT_BATCH or size >= IMPORT_BATCH_BYTES:
            send(batch)
            batch, size = [], 0
    if batch:
        send(batch)
    m.logout()


IMPORT_BATCH = 500
CRLF_RE = re.compile(rb"\r\n|\r|\n")
IMPORT_BATCH_BYTES = 8 << 20


def c_dump(args):
    user, acct = args
    m = connect(user)
    for f in selectable(m):
        for uid, flags, hdr in fetch_all(m, f, ["hdr.message-id"]):
            print("%s\t%s\t%d\t%s\t%s" % (acct, f, uid, dump_flags(flags), message_id(hdr)))
    m.logout()


def c_setup():
    pw = passwords()
    admin = connect(env("CYRUS_ADMIN"), env("CYRUS_ADMIN_PASS"))
    for user in pw:
        if user == env("CYRUS_ADMIN"):
            continue
        typ, data = admin._simple_command("CREATE", quote("user" + DELIM + user))
        if typ != "OK" and b"exists" not in b" ".join(d or b"" for d in data).lower():
            die("CREATE user%s%s: %s" % (DELIM, user, data))
    admin.logout()
    for user in pw:
        if user == env("CYRUS_ADMIN"):
            continue
        m = connect(user)
        have = [n for n, _ in list_folders(m)]
        for n, use in (("Sent", "\\Sent"), ("Trash", "\\Trash"), ("Drafts", "\\Drafts")):
            shown = from_server(to_server(n))
            if shown not in have:
                cmd(m, "CREATE " + n, "CREATE", quote(to_server(n)), "(USE (%s))" % use)
        m.logout()


def msg(frm, to, subj, body, n):
    return (
        "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%d.%d@cpmsync.test>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n"
        % (frm, to, subj, time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()),
           time.time_ns(), n, body)
    ).encode()


def c_seed(args):
    user = args[0]
    m = connect(user)
    for n in ("Archive", "Projects", "Projects/cpmsync"):
        cmd(m, "CREATE " + n, "CREATE", quote(to_server(n)))
    alice, bob = "Alice <alice@cpmsync.test>", "Bob <bob@cpmsync.test>"
    k = 0
    for folder, frm, to, subj, flags in (
        ("INBOX", bob, alice, "Hello 1", "\\Seen"),
        ("INBOX", bob, alice, "Hello 2", "\\Seen \\Flagged"),
        ("INBOX", bob, alice, "Hello 3", ""),
        ("INBOX", "Carol <carol@cpmsync.test>", alice, "=?UTF-8?Q?R=C3=A9sum=C3=A9?=", ""),
        ("Archive", alice, bob, "Archived 1", "\\Seen"),
        ("Archive", alice, bob, "Archived 2", "\\Seen"),
        ("Projects/cpmsync", alice, "Team <team@cpmsync.test>", "Release plan", ""),
        ("Sent", alice, bob, "Sent one", "\\Seen"),
    ):
        k += 1
        ok(m, "APPEND", m.append(quote(to_server(folder)), flag_list(flags) if flags else None,
                                 None, msg(frm, to, subj, "Message %d." % k, k)))
    m.logout()


def c_raw(args):
    user, words = args[0], args[1:]
    m = connect(user)
    tag = m._new_tag()
    m.send(tag + b" " + " ".join(words).encode() + b"\r\n")
    while True:
        line = m._get_line()
        print(line.decode("utf-8", "replace"))
        if line.startswith(tag + b" "):
            st = line.split(b" ")[1]
            break
    m.logout()
    if st != b"OK":
        sys.exit(1)


def main(argv):
    fmt = None
    if len(argv) >= 2 and argv[0] == "-f":
        fmt, argv = argv[1], argv[2:]
    if not argv:
        die("no command (see the header of %s)" % sys.argv[0])
    c, rest = argv[0], argv[1:]
    if c == "mailbox":
        c_mailbox(rest, fmt)
    elif c == "save":
        c_save(rest)
    elif c == "search":
        c_search(rest)
    elif c == "flags":
        c_flags(rest)
    elif c == "expunge":
        c_expunge(rest)
    elif c in ("copy", "move"):
        c_copy_move(argv)
    elif c == "fetch":
        c_fetch(rest)
    elif c == "dump":
        c_dump(rest)
    elif c == "import-maildir":
        c_import_maildir(rest)
    elif c == "setup":
        c_setup()
    elif c == "seed":
        c_seed(rest)
    elif c == "raw":
        c_raw(rest)
    else:
        die("%s: not implemented for Cyrus" % c)


if __name__ == "__main__":
    main(sys.argv[1:])
