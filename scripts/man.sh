#!/bin/sh
# man.sh BIN INCLUDE OUT: writes the man page callstream(1) to OUT with
# help2man, from `BIN --help` and the --help of each command that it lists,
# so that the page and --help cannot drift: an option added to a command is
# in the next page built. INCLUDE holds the hand-written sections
# (ENVIRONMENT, FILES, SEE ALSO) that no --help has.
set -e
bin=$1
include=$2
out=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
version=$("$bin" --version | sed -n '1s/^callstream //p')
# help2man runs "$bin CMD --help"; no locale or width of the builder's.
export LC_ALL=C COLUMNS=80

# The commands, as `callstream --help` lists them.
cmds=$("$bin" --help | sed -n '/^Commands:/,/^$/s/^  \([a-z][a-z-]*\) .*/\1/p')
[ -n "$cmds" ] || { echo "man.sh: no commands in '$bin --help'" >&2; exit 1; }

# Each command's page, its headings demoted below the section of commands:
# .SH DESCRIPTION and the like become bold paragraph heads, .SS too.
{
        echo "[COMMANDS]"
        for cmd in $cmds; do
                help2man --no-info --version-string="$version" \
                        --name="callstream $cmd" "$bin $cmd" >"$tmp/$cmd.1"
                echo ".SS \"callstream $cmd\""
                sed -n '/^\.SH SYNOPSIS/,$p' "$tmp/$cmd.1" |
                        sed -e '/^\.SH SYNOPSIS/d' \
                                -e 's/^\.SH DESCRIPTION$/.PP/' \
                                -e 's/^\.S[HS] "\{0,1\}\([^"]*\)"\{0,1\}$/.PP\n.B "\1"/'
        done
} >"$tmp/commands.h2m"

help2man --no-info --version-string="$version" \
        --name="police calls for service from Kafka into SQL" \
        --include="$tmp/commands.h2m" --include="$include" \
        "$bin" >"$tmp/out.1"
mv "$tmp/out.1" "$out"
