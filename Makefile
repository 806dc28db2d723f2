# PGXS build of the engram extension. The same core sources are also built
# by CMakeLists.txt for the unit tests and benchmarks.
MODULE_big = engram
EXTENSION = engram
DATA = $(wildcard sql/engram--*.sql)

CORE_SRCS = $(wildcard src/core/*.cpp)
PG_SRCS = $(wildcard src/pg/*.cpp)
OBJS = $(CORE_SRCS:.cpp=.o) $(PG_SRCS:.cpp=.o)

# pg_regress inputs live in sql/ beside the install script, so list them by name.
REGRESS = spaces ingest sessions pressure settings bad_input recall forget security prepare wide metrics progress
ISOLATION = recall_snapshot forget_snapshot
REGRESS_OPTS = --temp-instance=tmp_check --temp-config=test/engram.conf --load-extension=engram
# The workers connect to engram.database (test/engram.conf), so isolation
# tests use the same database name as pg_regress.
override ISOLATION_TESTDB = contrib_regression
ISOLATION_OPTS = --inputdir=test/isolation --outputdir=output_iso --temp-instance=tmp_check_iso \
	--temp-config=test/engram.conf --load-extension=engram
PROVE_TESTS = $(sort $(wildcard test/t/*.pl))

PG_CONFIG ?= pg_config
# PostgreSQL's headers are included as system headers: their own warnings
# under C++ (the register keyword, unused parameters of inline functions) stay
# theirs, and every warning of -Wextra applies to engram's code.
PG_CPPFLAGS = -Isrc -isystem $(includedir_server)
PG_CXXFLAGS = -std=c++20 -O2 -Wall -Wextra -fno-strict-aliasing
# CI builds with `make ENGRAM_WERROR=1`, so that a warning fails the build.
ifeq ($(ENGRAM_WERROR),1)
PG_CXXFLAGS += -Werror
endif
SHLIB_LINK = -ltbb -lstdc++

# Debian's server build has with_llvm = yes, which would also compile every
# .cpp to clang bitcode for JIT inlining; that buys nothing here.
override with_llvm = no

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# Rebuild objects when headers change.
override CXXFLAGS += -MMD -MP
-include $(OBJS:.o=.d)

# TAP tests run on their own (PGXS would otherwise fold them into installcheck).
.PHONY: check-tap
check-tap:
	$(prove_installcheck)
