# wait.sh: shared by the shell integration tests (sourced, not run).

# wait_line PID FILE PATTERN [TENTHS]: waits, up to TENTHS tenths of a
# second (100), until FILE has a line that matches PATTERN (grep), while
# process PID runs; returns 0 once it has, 1 otherwise.
wait_line() {
	for _ in $(seq "${4:-100}"); do
		grep -q "$3" "$2" 2>/dev/null && return 0
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	grep -q "$3" "$2" 2>/dev/null
}
