#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
# Benchmark: the cost of one body of S bytes in each of the two places
# store-body.c can put it, with each place's own settings, as components
# (no daemon, no server).  Run on demand (not by make check):
#
#   python3 tests/bench/bench-body-threshold.py [DIR]     (DIR default /tmp)
#
#   inline     the store's body_inline table: 1 KiB pages (STORE_PAGE_SIZE),
#              WAL, synchronous=NORMAL
#   bodies db  the bodies database: 4 KiB pages, TRUNCATE journal,
#              synchronous=FULL
# For S from 300 bytes to 64 KiB it prints
#   batch  bytes written (/proc/self/io write_bytes, journal, WAL and its
#          checkpoint included) per body byte, 200 bodies per transaction
#          (an initial sync's batches), at least 8 MiB of bodies
#   push   the median time of a transaction of one body (a pushed message),
#          40 of them: fsyncs included
# Python's sqlite3 module links the system SQLite, as cpm-syncd does.
import os, shutil, sqlite3, sys, time, statistics, tempfile
def wb():
    for l in open('/proc/self/io'):
        if l.startswith('write_bytes'): return int(l.split()[1])
def mk(path, inline):
    db = sqlite3.connect(path, isolation_level=None)
    if inline:
        db.executescript("PRAGMA page_size=1024; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=0;"
                         "CREATE TABLE body_inline (message_id INTEGER PRIMARY KEY, data BLOB NOT NULL);")
    else:
        db.executescript("PRAGMA page_size=4096; PRAGMA journal_mode=TRUNCATE; PRAGMA synchronous=FULL;"
                         "CREATE TABLE body (message_id INTEGER PRIMARY KEY, data BLOB NOT NULL);")
    return db
d = tempfile.mkdtemp(dir=sys.argv[1] if len(sys.argv) > 1 else "/tmp")
print("%6s | %-22s | %-22s" % ("S", "batch: bytes/body byte", "push: median ms/body"))
print("%6s | %10s %11s | %10s %11s" % ("", "inline", "bodies db", "inline", "bodies db"))
for S in [300, 800, 2048, 4096, 8192, 16384, 65536]:
    res = []
    for inline in (True, False):
        p = os.path.join(d, "x%d%d.db" % (S, inline))
        db = mk(p, inline); t = "body_inline" if inline else "body"
        n = max(200, (8 << 20) // S)
        os.sync(); w0 = wb()
        blob = os.urandom(S)
        for i in range(0, n, 200):
            db.execute("BEGIN")
            for k in range(i, min(n, i + 200)):
                db.execute("INSERT INTO %s VALUES (?, ?)" % t, (k + 1, blob))
            db.execute("COMMIT")
        if inline: db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        w1 = wb()
        ts = []
        for k in range(40):
            a = time.perf_counter()
            db.execute("BEGIN"); db.execute("INSERT INTO %s VALUES (?, ?)" % t, (n + k + 1, blob)); db.execute("COMMIT")
            ts.append((time.perf_counter() - a) * 1000)
        if inline: db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        res.append(((w1 - w0) / (n * S), statistics.median(ts)))
    print("%6d | %10.2f %11.2f | %10.2f %11.2f" % (S, res[0][0], res[1][0], res[0][1], res[1][1]))
shutil.rmtree(d)
