#!/bin/sh
# report-screenshot.sh PAGE PNG: the HTML report PAGE rendered by headless
# chromium into PNG (the README's docs/report.png, via make
# report-screenshot).
set -e
page=$(realpath "$1")
out=$(realpath -m "$2")
mkdir -p "$(dirname "$out")"
# --no-sandbox: chromium's sandbox refuses to run as root (CI, containers).
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
        --window-size=1000,1700 --screenshot="$out" "file://$page" \
        >/dev/null 2>&1
echo "== wrote $2"
