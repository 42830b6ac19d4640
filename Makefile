# sinergi — smart-regency platform. `make` builds ./sinergi; `make run` and `make test` are the
# two commands of the README.
CC      ?= cc
PKGS    := libmicrohttpd jansson sqlite3 libsodium libmosquitto libxml-2.0 libcurl zlib
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
CFLAGS  ?= -O2 -g
# Project flags live apart from CFLAGS so `make CFLAGS=...` (sanitizer builds) keeps them.
BASE_CFLAGS := -std=c17 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Wall -Wextra -Wshadow \
           -Wno-unused-parameter -Werror=implicit-function-declaration -Werror=format-security \
           -Isrc -DSINERGI_VERSION='"$(VERSION)"' \
           $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lcsv -lpthread -lm
BUILD   ?= build/release

SRC      := $(wildcard src/core/*.c src/db/*.c src/http/*.c src/auth/*.c src/regions/*.c \
              src/sensors/*.c src/events/*.c src/mqtt/*.c src/sim/*.c \
              src/ews/*.c src/notify/*.c src/cap/*.c src/publik/*.c)
LIB_OBJ  := $(SRC:%.c=$(BUILD)/%.o)
MAIN_OBJ := $(BUILD)/src/main.o
UNIT_SRC := $(wildcard tests/unit/*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all run test test-release test-asan unit api browser web deps clean bench fmt fuzz
all: sinergi

sinergi: $(BUILD)/sinergi
	@cp $< $@.tmp && mv $@.tmp $@

$(BUILD)/sinergi: $(LIB_OBJ) $(MAIN_OBJ)
	@echo "  LINK $@"
	@$(CC) $(BASE_CFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The version (git describe) is compiled into two objects: they rebuild when it changes.
VERSION_STAMP := $(BUILD)/version.stamp
$(VERSION_STAMP): FORCE
	@mkdir -p $(dir $@)
	@echo '$(VERSION)' | cmp -s - $@ || echo '$(VERSION)' > $@
$(BUILD)/src/http/ops_http.o $(BUILD)/src/notify/webhook_send.o: $(VERSION_STAMP)
.PHONY: FORCE
FORCE:

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC   $<"
	@$(CC) $(BASE_CFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	@echo "  LINK $@"
	@$(CC) $(BASE_CFLAGS) $(CFLAGS) $(LDFLAGS) -Itests -o $@ $^ $(LDLIBS)

-include $(LIB_OBJ:.o=.d) $(MAIN_OBJ:.o=.d)

# ---- fuzzing -----------------------------------------------------------------------------
# Differential fuzzing of the SenML parser against the jansson-based one it replaced
# (tests/fuzz/fuzz_senml.c, docs in tests/fuzz/README.md). `make fuzz` runs libFuzzer for
# FUZZ_TIME seconds (clang with libclang-rt, which scripts/deps.sh installs); inputs it finds
# collect in build/fuzz/corpus. `make unit` replays tests/fuzz/corpus with any compiler.
FUZZ_TIME   ?= 180
FUZZ_ORACLE := tests/fuzz/fuzz_senml.c tests/fuzz/senml_jansson.c
FUZZ_REPLAY := $(BUILD)/tests/fuzz_senml_replay
FUZZ_LIBS   := $(shell pkg-config --libs jansson 2>/dev/null) -lm

$(FUZZ_REPLAY): $(FUZZ_ORACLE) tests/fuzz/senml_jansson.h $(BUILD)/src/sensors/senml.o \
                $(BUILD)/src/core/err.o
	@mkdir -p $(dir $@)
	@echo "  LINK $@"
	@$(CC) $(BASE_CFLAGS) $(CFLAGS) $(LDFLAGS) -Itests/fuzz -o $@ $(filter %.c %.o,$^) $(FUZZ_LIBS)

build/fuzz/fuzz_senml: $(FUZZ_ORACLE) tests/fuzz/senml_jansson.h src/sensors/senml.c \
                       src/sensors/sensors_int.h src/core/err.c
	@mkdir -p $(dir $@)
	clang $(BASE_CFLAGS) -O1 -g -DFUZZ_LIBFUZZER -fsanitize=fuzzer,address,undefined \
	  -fno-sanitize-recover=all -Itests/fuzz -o $@ $(filter %.c,$^) $(FUZZ_LIBS)

fuzz: build/fuzz/fuzz_senml
	@mkdir -p build/fuzz/corpus
	build/fuzz/fuzz_senml -max_total_time=$(FUZZ_TIME) -max_len=8192 \
	  -dict=tests/fuzz/senml.dict build/fuzz/corpus tests/fuzz/corpus

# ---- the two commands --------------------------------------------------------------------
# The MQTT broker of this instance: var/mosquitto, 127.0.0.1:$(MQTT_PORT) (stop it with
# `scripts/mqtt-broker.sh stop var/mosquitto`). `./sinergi simulate --speed 60` feeds it.
MQTT_PORT ?= 18830
run: deps
	$(MAKE) sinergi web
	./sinergi migrate
	scripts/mqtt-broker.sh start var/mosquitto $(MQTT_PORT)
	./sinergi serve --mqtt-enabled 1 --mqtt-port $(MQTT_PORT)

test: deps
	$(MAKE) test-release
	$(MAKE) test-asan
	$(MAKE) browser

deps:
	@scripts/deps.sh

# ---- test levels -------------------------------------------------------------------------
test-release:
	$(MAKE) BUILD=build/release $(BUILD)/sinergi unit-bins
	$(MAKE) BUILD=build/release unit api

test-asan:
	$(MAKE) BUILD=build/asan CC=clang \
	  CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all" \
	  LDFLAGS="-fsanitize=address,undefined" build/asan/sinergi unit-bins
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(MAKE) BUILD=build/asan unit api

unit-bins: $(UNIT_BIN) $(FUZZ_REPLAY)

unit: $(UNIT_BIN) $(FUZZ_REPLAY)
	@set -e; for t in $(UNIT_BIN); do echo "unit: $$t"; $$t; done
	$(FUZZ_REPLAY) tests/fuzz/corpus

api: $(BUILD)/sinergi
	SINERGI_BIN=$(abspath $(BUILD)/sinergi) python3 -m unittest discover -s tests/api -t . -v

# Playwright (playwright-core from npm) driving Debian's /usr/bin/chromium against a real daemon
# that each test file starts on a free port with a temporary database.
browser: sinergi web
	SINERGI_BIN=$(abspath sinergi) node --test --test-concurrency=1 tests/browser/

# ---- web app -----------------------------------------------------------------------------
# Installs the locked npm packages, copies Leaflet and uPlot into web/assets under versioned
# names (served as immutable), checks that the pages name exactly those files, and writes a
# gzip -9 sibling of every file, which sinergi sends to browsers that accept gzip. No CDN.
WEB_ASSETS := web/assets
web: node_modules/.package-lock.json
	@set -e; \
	lv=$$(node -p "require('./node_modules/leaflet/package.json').version"); \
	uv=$$(node -p "require('./node_modules/uplot/package.json').version"); \
	rm -f web/*.gz $(WEB_ASSETS)/*.gz $(WEB_ASSETS)/leaflet-* $(WEB_ASSETS)/uplot-*; \
	cp node_modules/leaflet/dist/leaflet.js $(WEB_ASSETS)/leaflet-$$lv.js; \
	cp node_modules/leaflet/dist/leaflet.css $(WEB_ASSETS)/leaflet-$$lv.css; \
	cp node_modules/uplot/dist/uPlot.iife.min.js $(WEB_ASSETS)/uplot-$$uv.min.js; \
	cp node_modules/uplot/dist/uPlot.min.css $(WEB_ASSETS)/uplot-$$uv.min.css; \
	own=$$(ls web/index.html $(WEB_ASSETS)/*.js | grep -vE '/(leaflet|uplot)-'); \
	for ref in $$(grep -ohE '(leaflet|uplot)-[0-9][0-9.]*[0-9](\.min)?\.(js|css)' $$own | sort -u); do \
	  test -f $(WEB_ASSETS)/$$ref || { echo "web: a page names $$ref but npm installed leaflet $$lv and uplot $$uv"; exit 1; }; \
	done; \
	for f in web/index.html $(WEB_ASSETS)/*; do gzip -9 -k -n -f $$f; done; \
	echo "web: leaflet $$lv, uplot $$uv; $$(ls $(WEB_ASSETS) | grep -vc '\.gz$$') assets, gzip siblings written"

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

bench: sinergi
	bench/http/run.sh

fmt:
	clang-format -i $(SRC) src/main.c $(UNIT_SRC)

clean:
	rm -rf build sinergi
