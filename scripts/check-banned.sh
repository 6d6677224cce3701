#!/bin/bash
# check-banned.sh: fails if a banned function (STYLE.md section 5) is used.
cd "$(dirname "$0")/.."
if grep -nE '\b(strcpy|strcat|sprintf|vsprintf|gets|atoi|atol|strtok|alloca)\s*\(' src include tests/unit fuzz -r --include='*.c' --include='*.h' | grep -v '^\s*//' ; then
	echo "check-banned: banned functions used (see STYLE.md section 5)" >&2
	exit 1
fi
exit 0
