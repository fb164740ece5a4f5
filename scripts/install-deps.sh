#!/bin/sh
# install-deps.sh [build|demo|test|bench|check|fuzz|all]...: installs the Debian
# packages that target needs, when any is missing. Runs apt-get as root, or
# through sudo. Without an argument: what `make test` needs.
set -e
BUILD="build-essential pkg-config librdkafka-dev libsqlite3-dev libyajl-dev
libpq-dev"
DEMO="$BUILD sqlite3"
TEST="$BUILD libcmocka-dev libjansson-dev kcat sqlite3 postgresql"
BENCH="$TEST time"
CHECK="$TEST clang-format"
FUZZ="$TEST clang libclang-rt-14-dev"
PKGS=""
for target in "${@:-test}"; do
        case $target in
        build) PKGS="$PKGS $BUILD" ;;
        demo) PKGS="$PKGS $DEMO" ;;
        test) PKGS="$PKGS $TEST" ;;
        bench) PKGS="$PKGS $BENCH" ;;
        check) PKGS="$PKGS $CHECK" ;;
        fuzz) PKGS="$PKGS $FUZZ" ;;
        all) PKGS="$PKGS $CHECK $FUZZ" ;;
        *) echo "install-deps.sh: unknown target '$target'" >&2; exit 2 ;;
        esac
done
missing=""
for p in $PKGS; do
        case " $missing " in *" $p "*) continue ;; esac
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
                grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
