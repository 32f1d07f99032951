# Sourced by scripts/demo.sh and bench/*.sh: removing the network
# namespaces a script made, and everything that still runs in them.
#
# Killing the PIDs a script remembered is not enough: `fn args &` runs a
# shell function in a subshell, and `$!` is that subshell, not the program
# it started, which then outlives the namespace (holding deleted files).
# `ip netns pids` lists every process inside a namespace, however started.

# netns_remove NS...: SIGTERM to every process in each namespace, SIGKILL
# to those still there after 2 s, then delete the namespaces.
netns_remove() {
    local ns pids
    for ns in "$@"; do
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        [ -n "$pids" ] && kill $pids 2>/dev/null || true
    done
    for _ in $(seq 20); do
        pids=""
        for ns in "$@"; do pids+=$(ip netns pids "$ns" 2>/dev/null || true); done
        [ -z "$pids" ] && break
        sleep 0.1
    done
    for ns in "$@"; do
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        [ -n "$pids" ] && kill -9 $pids 2>/dev/null || true
        ip netns del "$ns" 2>/dev/null || true
    done
}
