# cpmsync: top-level, non-recursive GNU Makefile.
#
#   make                      build everything under build/
#   make check                install missing Debian packages, build, run every test
#   make demo                 install missing packages, start a throwaway Dovecot, run the daemon
#   make install PREFIX=/usr DESTDIR=/tmp/stage
#   make SANITIZE=address,undefined check
#   make fuzz                 libFuzzer binaries (clang) under build/fuzz/
#   make check-shell          shellcheck every shell script (part of make check)
#   make check-format         clang-format --dry-run on every C file (part of make check)
#   make V=1                  show full commands
#
# Each directory lists its own sources in Makefile.inc; this file holds the rules.

PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
LIBDIR     ?= $(PREFIX)/lib
LIBEXECDIR ?= $(PREFIX)/libexec
INCLUDEDIR ?= $(PREFIX)/include
MANDIR     ?= $(PREFIX)/share/man
DESTDIR    ?=

VERSION    := 0.1.0
SOVERSION  := 0

CC         ?= cc
CLANG      ?= clang
PKG_CONFIG ?= pkg-config
B          := build$(if $(SANITIZE),/san)

ifeq ($(V),1)
Q :=
else
Q := @
endif

PKGS       := sqlite3 openssl expat
DEP_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
DEP_LIBS   := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)
DBUS_CFLAGS := $(shell $(PKG_CONFIG) --cflags dbus-1 2>/dev/null)
DBUS_LIBS  := $(shell $(PKG_CONFIG) --libs dbus-1 2>/dev/null)
CHECK_CFLAGS := $(shell $(PKG_CONFIG) --cflags check 2>/dev/null)
CHECK_LIBS := $(shell $(PKG_CONFIG) --libs check 2>/dev/null)
# libinotifytools ships no .pc file; agent/ alone links it.
INOTIFY_LIBS ?= -linotifytools

WARN := -Wall -Wextra -Werror -Wformat=2 -Wshadow -Wstrict-prototypes \
	-Wmissing-prototypes -Wundef -Wpointer-arith -Wvla -fno-common

OPT ?= -O2 -g
CFLAGS ?= $(OPT)
# Only the public headers are on every directory's path; libsync/ and tests/
# add -Ilibsync for the private ones (EXTRA_CFLAGS_<dir> in their Makefile.inc),
# so an agent/ or dbus/ file that includes "util/..." does not compile.
ALL_CFLAGS := -std=gnu17 $(WARN) -D_GNU_SOURCE -fPIC \
	-Ilibsync/include $(DEP_CFLAGS) $(CFLAGS)
ifneq ($(SANITIZE),)
ALL_CFLAGS += -fsanitize=$(SANITIZE) -fno-sanitize-recover=all -fno-omit-frame-pointer
LDFLAGS += -fsanitize=$(SANITIZE)
else
ALL_CFLAGS += -D_FORTIFY_SOURCE=2 -fstack-protector-strong
endif

all:

include libsync/Makefile.inc
include dbus/Makefile.inc
include systemd/Makefile.inc
include agent/Makefile.inc
include tests/Makefile.inc

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) $(EXTRA_CFLAGS_$(firstword $(subst /, ,$<))) -MMD -MP -c -o $@ $<

-include $(shell find $(B) -name '*.d' 2>/dev/null)

# make uninstall: every file in INSTALLED, the list each Makefile.inc keeps
# next to its install rule (with the same variables), then the directories
# of cpmsync's own (INSTALLED_DIRS) that are left empty.
# tests/integration/test-install.sh checks that nothing else is left.
uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	$(Q)for d in $(addprefix $(DESTDIR),$(INSTALLED_DIRS)); do \
		if [ -d "$$d" ]; then rmdir --ignore-fail-on-non-empty "$$d" || exit 1; fi; done

deps:
	$(Q)tests/deps.sh

clean:
	rm -rf $(B)

.PHONY: all deps clean check demo install uninstall fuzz check-symbols check-layering
FORCE:
.PHONY: FORCE

# Keep intermediate objects (test and fuzz .o files) between runs.
.SECONDARY:
