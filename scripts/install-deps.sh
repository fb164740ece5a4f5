#!/bin/sh
# install-deps.sh [build|demo|test|bench|check|fuzz|screenshot|all]...: installs the Debian
# packages that target needs, when any is missing. Runs apt-get as root, or
# through sudo. Without an argument: what `make test` needs.
set -e
# help2man: the man page, built by `make install` from the --help texts.
BUILD="build-essential pkg-config librdkafka-dev libsqlite3-dev libyajl-dev
libpq-dev libmicrohttpd-dev help2man libavro-dev libavro23"
DEMO="$BUILD sqlite3"
# python3: test_report parses CSV with its csv module. man-db: test_install
# renders the man page. (systemd is never installed here: test_install runs
# systemd-analyze verify only where systemd already is.)
TEST="$BUILD libcmocka-dev libjansson-dev kcat sqlite3 postgresql python3
man-db"
# Wanted but not required: test_report renders the HTML report in headless
# chromium, and skips that test when chromium could not be installed.
TEST_OPTIONAL="chromium"
BENCH="$TEST time"
CHECK="$TEST clang-format"
FUZZ="$TEST clang libclang-rt-14-dev"
SHOT="$DEMO chromium"
PKGS=""
OPTIONAL=""
for target in "${@:-test}"; do
        case $target in
        build) PKGS="$PKGS $BUILD" ;;
        demo) PKGS="$PKGS $DEMO" ;;
        test) PKGS="$PKGS $TEST"; OPTIONAL="$TEST_OPTIONAL" ;;
        bench) PKGS="$PKGS $BENCH" ;;
        check) PKGS="$PKGS $CHECK"; OPTIONAL="$TEST_OPTIONAL" ;;
        fuzz) PKGS="$PKGS $FUZZ" ;;
        screenshot) PKGS="$PKGS $SHOT" ;;
        all) PKGS="$PKGS $CHECK $FUZZ"; OPTIONAL="$TEST_OPTIONAL" ;;
        *) echo "install-deps.sh: unknown target '$target'" >&2; exit 2 ;;
        esac
done
missing=""
for p in $PKGS; do
        case " $missing " in *" $p "*) continue ;; esac
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
                grep -q "install ok installed" || missing="$missing $p"
done
optional=""
for p in $OPTIONAL; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
                grep -q "install ok installed" || optional="$optional $p"
done
[ -z "$missing$optional" ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
if [ -n "$missing" ]; then
        echo "installing:$missing"
        $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
if [ -n "$optional" ]; then
        echo "installing (optional):$optional"
        $SUDO apt-get install -y -qq --no-install-recommends $optional \
                >/dev/null ||
                echo "install-deps.sh: could not install$optional; the tests" \
                        "that need it will skip" >&2
fi
