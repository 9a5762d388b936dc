#!/usr/bin/env bash
# Two "hosts" on this machine: network namespaces joined by a veth pair, each with its own address.
#   scripts/netns_hosts.sh up   [PREFIX]   # creates ${PREFIX}a (10.77.0.1) and ${PREFIX}b (10.77.0.2)
#   scripts/netns_hosts.sh down [PREFIX]
# Run a command on a host with: ip netns exec ${PREFIX}a COMMAND. Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN).
# The distributed tests use it through tests/netns.py (one rank per namespace, a fresh PREFIX each time).
set -euo pipefail
action=${1:-up}
prefix=${2:-wb}
a="${prefix}a" b="${prefix}b"
case "$action" in
  up)
    ip netns add "$a"
    ip netns add "$b"
    ip link add "${prefix}-va" type veth peer name "${prefix}-vb"
    ip link set "${prefix}-va" netns "$a"
    ip link set "${prefix}-vb" netns "$b"
    ip -n "$a" addr add 10.77.0.1/24 dev "${prefix}-va"
    ip -n "$b" addr add 10.77.0.2/24 dev "${prefix}-vb"
    for ns in "$a" "$b"; do ip -n "$ns" link set lo up; done
    ip -n "$a" link set "${prefix}-va" up
    ip -n "$b" link set "${prefix}-vb" up
    echo "$a 10.77.0.1"
    echo "$b 10.77.0.2"
    ;;
  down)
    ip netns del "$a" 2>/dev/null || true
    ip netns del "$b" 2>/dev/null || true
    ip link del "${prefix}-va" 2>/dev/null || true  # only left here if up failed before moving it
    ;;
  *)
    echo "usage: $0 up|down [PREFIX]" >&2
    exit 2
    ;;
esac
