#!/usr/bin/env bash
# Captures real Linux traffic for the frame-pipeline fuzz corpus: a client
# namespace talks to a host holding the rigs' VIPs (198.18.0.250,
# 2001:2::250) over a veth pair; tcpdump on the VIP side records both
# directions (checksums complete: TX offload is off on both ends). Written to
# fuzz/seeds/rig.pcap. Needs root; everything lives in two namespaces that
# are removed on exit.
set -euo pipefail
cd "$(dirname "$0")"
tag=$$
C=lfcapc-$tag S=lfcaps-$tag
cleanup() {
  for ns in $C $S; do
    for p in $(ip netns pids $ns 2>/dev/null); do kill -9 $p 2>/dev/null || true; done
    ip netns del $ns 2>/dev/null || true
  done
}
trap cleanup EXIT
ip netns add $C; ip netns add $S
ip -n $C link add lfeth0 address 02:1f:00:00:00:64 type veth peer name lfeth0 netns $S address 02:1f:00:00:00:02
for ns in $C $S; do
  ip netns exec $ns sysctl -qw net.ipv6.conf.all.accept_dad=0
  ip netns exec $ns sysctl -qw net.ipv6.conf.lfeth0.accept_dad=0
  ip -n $ns link set lo up
  ip netns exec $ns ethtool -K lfeth0 tx off >/dev/null
done
ip -n $C addr add 198.18.0.100/24 dev lfeth0
ip -n $C addr add 2001:2::100/64 dev lfeth0 nodad
ip -n $S addr add 198.18.0.250/24 dev lfeth0
ip -n $S addr add 2001:2::250/64 dev lfeth0 nodad
ip -n $C link set lfeth0 up; ip -n $S link set lfeth0 up
PY=$(python3 -c 'import sys; print(sys.executable)')
RIG=../../tests/rig
ip netns exec $S "$PY" $RIG/servers.py --name rs1 --http 80 --udp 9053 > /dev/null &
ip netns exec $S timeout 60 tcpdump -i lfeth0 -U -s 0 -w rig.pcap.tmp 2>/dev/null &
sleep 1.5
run() { ip netns exec $C timeout 20 "$@" || true; }
run "$PY" $RIG/client.py http --target 198.18.0.250:80 --count 2 --timeout 2 --deadline 10
run "$PY" $RIG/client.py http --target '[2001:2::250]:80' --count 2 --timeout 2 --deadline 10
run "$PY" $RIG/client.py udp --target 198.18.0.250:9053 --count 2 --timeout 2 --deadline 10
run "$PY" $RIG/client.py udp --target '[2001:2::250]:9053' --count 1 --timeout 2 --deadline 10
# A closed port (RST), HTTPS port (RST), a UDP port nobody serves.
run "$PY" $RIG/client.py http --target 198.18.0.250:443 --count 1 --timeout 1 --deadline 3
run "$PY" $RIG/client.py http --target '[2001:2::250]:443' --count 1 --timeout 1 --deadline 3
run "$PY" $RIG/client.py udp --target 198.18.0.250:9999 --count 1 --timeout 1 --deadline 3
# ping; record-route (IP options); TTL 1; fragments (v4 and v6).
run ping -c 1 -W 1 198.18.0.250
run ping -c 1 -W 1 -R 198.18.0.250
run ping -c 1 -W 1 -t 1 198.18.0.250
run ping -c 1 -W 1 -s 3000 -M dont 198.18.0.250
run ping -6 -c 1 -W 1 -s 3000 2001:2::250
run ping -6 -c 1 -W 1 2001:2::250
sleep 1
kill %2 2>/dev/null || true
wait %2 2>/dev/null || true
mv rig.pcap.tmp rig.pcap
echo "captured $(tcpdump -r rig.pcap 2>/dev/null | wc -l) frames into $(pwd)/rig.pcap"
