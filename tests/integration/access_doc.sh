#!/bin/bash
# access_doc.sh: the permission matrix of docs/ACCESS.md is the source of
# the compiled table (tools/gen_access.awk): the generator accepts the
# document as it is and refuses a damaged copy (an unknown role or action, a
# bad value, a missing row or column, a short row) instead of producing a
# table that differs from the document. Prints ok/not ok lines.
set -u
cd "$(dirname "$0")/../.." || exit 1
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
ok() { echo "ok - access_doc: $1"; }
no() { echo "not ok - access_doc: $1"; }

if awk -f tools/gen_access.awk docs/ACCESS.md >"$T/out.c" 2>"$T/err" && grep -q 'ACCESS_ROLE_RESEARCHER.*ACCESS_ACT_RETRIEVE\] = ACCESS_DEID' "$T/out.c"; then
	ok "the document generates the table (researcher retrieve = deid)"
else
	no "the document generates the table"
fi
bad() {
	local what=$1 sedexpr=$2
	sed "$sedexpr" docs/ACCESS.md >"$T/doc.md"
	if awk -f tools/gen_access.awk "$T/doc.md" >"$T/out.c" 2>"$T/err"; then
		no "refuses $what"
	elif [ -s "$T/err" ]; then
		ok "refuses $what ($(head -c 80 "$T/err"))"
	else
		no "refuses $what with a message"
	fi
}
bad "an unknown role" 's/| auditor |/| janitor |/'
bad "an unknown action" 's/^| delete            |/| destroy           |/'
bad "a bad value" '0,/| yes   | yes         | no        | yes /s//| maybe | yes         | no        | yes /'
bad "a missing row" '/^| share /d'
bad "a short row" 's/^\(| store .*\)| no      |$/\1/'
bad "an action twice" 's/^| delete            |/| share             |/'
