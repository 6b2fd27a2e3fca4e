#!/usr/bin/env bash
# The demo: a veth rig with a client, lvsfwd as a DR director and three real
# servers running HTTP servers that answer with their own name; requests go
# through the VIP and the answers show which real server took each.
# Everything lives in network namespaces named lf*<pid>, removed on exit.
# --two-arm: a two-armed NAT director instead (seed 004's NAT): the client
# on lfeth0's network, the real servers alone on a second network behind
# lfeth1, lvsfwd serving both NICs (interface = ["lfeth0", "lfeth1"]).
# Usage: scripts/demo.sh [--two-arm] [REQUESTS]   (run as root)
set -euo pipefail
cd "$(dirname "$0")/.."
two_arm=0
if [ "${1:-}" = "--two-arm" ]; then two_arm=1; shift; fi
requests=${1:-12}
scripts/deps.sh pkg-config clang llvm libelf-dev libclang-dev zlib1g-dev m4 libbpf-dev iproute2 curl python3 ethtool iputils-ping
cargo build --release -q --bin lvsfwd
bin=${CARGO_TARGET_DIR:-$PWD/target}/release/lvsfwd

sfx=$(( $$ % 100000 ))
sw=lfsw$sfx; cl=lfcl$sfx; dir=lfdir$sfx
rs=(lfrs1$sfx lfrs2$sfx lfrs3$sfx)
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for n in "$cl" "$dir" "${rs[@]}" "$sw"; do ip netns del "$n" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

vip=198.18.0.250
ip netns add "$sw"
ip -n "$sw" link add lfbr type bridge
ip -n "$sw" link set lfbr up
ip -n "$sw" link add lfbr1 type bridge   # the internal network (--two-arm)
ip -n "$sw" link set lfbr1 up
plug() { # plug NS NAME [BRIDGE [IF]]: veth IF (lfeth0) in NS, its peer on BRIDGE (lfbr)
  local ifc=${4:-lfeth0}
  ip netns list | grep -qw "$1" || ip netns add "$1"
  ip link add "$ifc" netns "$1" type veth peer name "$2" netns "$sw"
  ip -n "$sw" link set "$2" master "${3:-lfbr}" up
  ip -n "$1" link set "$ifc" up
  ip -n "$1" link set lo up
  # veth's offloads stay as the kernel sets them (as in containers): TCP
  # checksums reach the director partial, and lvsfwd completes them.
}
plug "$cl" lfc$sfx
ip -n "$cl" addr add 198.18.0.100/24 dev lfeth0
plug "$dir" lfd$sfx
ip -n "$dir" addr add 198.18.0.2/24 dev lfeth0
ip -n "$dir" addr add $vip/32 dev lfeth0
if [ $two_arm = 1 ]; then
  # The director's internal NIC; its kernel forwards nothing (lvsfwd does).
  plug "$dir" lfi$sfx lfbr1 lfeth1
  ip -n "$dir" addr add 198.18.1.1/24 dev lfeth1
  ip netns exec "$dir" sysctl -qw net.ipv4.ip_forward=0
  net=198.18.1
else
  net=198.18.0
fi
for i in 1 2 3; do
  n=${rs[$((i-1))]}
  if [ $two_arm = 1 ]; then
    # NAT real servers behind the internal NIC, routed back through it.
    plug "$n" lfr$i$sfx lfbr1
    ip -n "$n" addr add $net.1$i/24 dev lfeth0
    ip -n "$n" route add default via 198.18.1.1
  else
    plug "$n" lfr$i$sfx
    ip -n "$n" addr add $net.1$i/24 dev lfeth0
    # The DR real-server script of the seeds: VIP on lo, no ARP for it.
    ip -n "$n" addr add $vip/32 dev lo
    for k in all lo lfeth0; do
      ip netns exec "$n" sysctl -qw net.ipv4.conf.$k.arp_ignore=1 net.ipv4.conf.$k.arp_announce=2
    done
  fi
  ip netns exec "$n" python3 -c '
import http.server, sys
name = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{name} saw client {self.client_address[0]}\n".encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
http.server.HTTPServer(("0.0.0.0", 80), H).serve_forever()
' "rs$i" &
  pids+=($!)
done

if [ $two_arm = 1 ]; then ifs='["lfeth0", "lfeth1"]'; kind=NAT; else ifs='"lfeth0"'; kind=DR; fi
cat > "$tmp/lb.toml" <<TOML
[global]
router_id = "demo"
interface = $ifs

[[virtual_server]]
address = "$vip:80"
protocol = "TCP"
lb_algo = "wrr"
lb_kind = "$kind"
  [[virtual_server.real_server]]
  address = "$net.11:80"
  weight = 2
  [[virtual_server.real_server]]
  address = "$net.12:80"
  weight = 1
  [[virtual_server.real_server]]
  address = "$net.13:80"
  weight = 1
TOML
echo "lb.toml:"; sed 's/^/  /' "$tmp/lb.toml"

ip netns exec "$dir" "$bin" --config "$tmp/lb.toml" 2> "$tmp/lvsfwd.log" &
lvs=$!
pids+=($lvs)
for _ in $(seq 100); do
  grep -q "lvsfwd: ready" "$tmp/lvsfwd.log" && break
  kill -0 $lvs 2>/dev/null || { cat "$tmp/lvsfwd.log"; exit 1; }
  sleep 0.1
done
grep "lvsfwd: ready" "$tmp/lvsfwd.log" || { cat "$tmp/lvsfwd.log"; exit 1; }

echo; echo "the client's veth keeps its default checksum offload (partial checksums reach lvsfwd):"
ip netns exec "$cl" ethtool -k lfeth0 | grep -E "^tx-checksumming" | sed 's/^/  /'

echo; echo "client 198.18.0.100 -> http://$vip/ ($requests requests, each a new connection):"
ok=0
for i in $(seq "$requests"); do
  printf '  request %2d: ' "$i"
  if ip netns exec "$cl" curl -s --max-time 3 "http://$vip/"; then ok=$((ok + 1)); else echo "FAILED"; fi
done
echo "  $ok of $requests requests answered"
echo; echo "the director still answers ping on its own address:"
ip netns exec "$cl" ping -c 1 -W 1 198.18.0.2 | grep -E "bytes from|loss"

kill -TERM $lvs; rc=0; wait $lvs || rc=$?; echo "lvsfwd exited $rc"
echo "lvsfwd's log:"; sed 's/^/  /' "$tmp/lvsfwd.log"
[ "$ok" = "$requests" ]
