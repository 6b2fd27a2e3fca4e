//! `lvsadm -v` and `lvsadm -h`.

use super::{DEFAULT_PERSISTENCE_SECS, PROGRAM};

/// `lvsadm -v`.
pub fn version_text() -> String {
    format!(
        "{PROGRAM} v{} (ipvsadm v1.31 command line, IPVS v1.2.1 listings)\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// `lvsadm -h`: ipvsadm's usage, in lvsfwd's words.
pub fn usage_text() -> String {
    let p = PROGRAM;
    let mut s = version_text();
    s.push_str(&format!(
        "Usage:
  {p} -A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [-b sched-flags] [-o]
  {p} -D virtual-service
  {p} -C
  {p} -R
  {p} -S [-n]
  {p} -a|e virtual-service -r server-address [options]
  {p} -d virtual-service -r server-address
  {p} -L|l [virtual-service] [options]
  {p} -Z [virtual-service]
  {p} -P|Q virtual-service -z local-address [-F ifname]
  {p} -G [virtual-service]
  {p} --set tcp tcpfin udp
  {p} -h

Commands (long or short form):
  --add-service     -A        add a virtual service
  --edit-service    -E        change a virtual service (unset options revert to defaults)
  --delete-service  -D        remove a virtual service
  --clear           -C        remove every virtual service
  --restore         -R        read commands from stdin, one per line
  --save            -S        print the table as commands
  --add-server      -a        add a real server
  --edit-server     -e        change a real server (unset options revert to defaults)
  --delete-server   -d        remove a real server
  --list            -L|-l     list the table
  --zero            -Z        reset the counters of one or every service
  --add-laddr       -P        add a FULLNAT local address (DPVS)
  --del-laddr       -Q        remove a FULLNAT local address (DPVS)
  --get-laddr       -G        list the FULLNAT local addresses (DPVS)
  --set tcp tcpfin udp        set the connection timeouts (0 keeps a value)
  --help            -h        print this text
  --version         -v        print the version

virtual-service:
  --tcp-service|-t  host[:port]      TCP service (IPv6: [addr]:port)
  --udp-service|-u  host[:port]      UDP service

Options:
  --scheduler    -s scheduler    rr wrr lc wlc lblc lblcr dh sh sed nq mh fo ovf twos (default wlc)
  --persistent   -p [timeout]    persistent service (default timeout {DEFAULT_PERSISTENCE_SECS} s)
  --netmask      -M netmask      persistence granularity (IPv6: prefix length)
  --sched-flags  -b flags        comma-separated scheduler flags
  --ops          -o              one-packet scheduling (UDP)
  --real-server  -r host[:port]  real server
  --gatewaying   -g              direct routing (default)
  --ipip         -i              IP-in-IP tunnel
  --masquerading -m              NAT
  --fullnat                      FULLNAT (lvsfwd)
  --weight       -w weight       0..65535 (default 1)
  --u-threshold  -x uthreshold   upper connection threshold
  --l-threshold  -y lthreshold   lower connection threshold
  --laddr        -z address      FULLNAT local address (-P, -Q)
  --ifname       -F ifname       the NIC the local address is on (-P, -Q)
  --connection   -c              list connections
  --timeout                      list the timeouts
  --stats                        list counters
  --rate                         list rates
  --exact        -X              exact numbers
  --thresholds                   list thresholds
  --persistent-conn              list persistent connections
  --nosort / --sort              accepted; listings are sorted
  --numeric      -n              numeric output (always the case)
  --socket PATH                  the daemon's admin socket
"
    ));
    s
}
