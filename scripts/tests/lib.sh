# What the script checks share: check NAME COMMAND... runs COMMAND, prints ok or FAIL and counts
# it; finish LABEL prints the totals and fails when any check failed. Source it.

PASSED=0
FAILED=0
check() {
    local name=$1
    shift
    if "$@"; then
        PASSED=$((PASSED + 1))
        say "ok   $name"
    else
        FAILED=$((FAILED + 1))
        say "FAIL $name"
    fi
}

finish() {
    say "$1: $PASSED passed, $FAILED failed"
    [ "$FAILED" -eq 0 ]
}
