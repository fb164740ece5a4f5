#!/bin/sh
# install-deps.sh: installs the Debian packages callstream builds and tests
# with, when any is missing. Runs apt-get as root, or through sudo.
set -e
PKGS="build-essential pkg-config librdkafka-dev libsqlite3-dev libyajl-dev
libpq-dev libcmocka-dev libjansson-dev kcat sqlite3 postgresql"
missing=""
for p in $PKGS; do
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
