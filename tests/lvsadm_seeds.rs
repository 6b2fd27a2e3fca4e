//! The seeds' ipvsadm commands (seed 002's commands, seed 004's lvs-DR.sh)
//! parse and apply into the table ipvsadm would list, and `-S` output
//! restores into the same state.

use lvsfwd::admin::apply::{AdminState, apply};
use lvsfwd::admin::cmd::{AdminCommand, parse_args, parse_restore};
use lvsfwd::admin::listing::{ListOptions, list_services, save_rules};
use lvsfwd::service::ServiceTable;

/// Runs shell lines `[/sbin/]ipvsadm ARGS` as lvsadm would, after `$VAR`
/// substitution; comments after `#` are the shell's.
fn run_script(script: &str, vars: &[(&str, &str)]) -> (AdminState, Vec<String>) {
    let mut st = AdminState::default();
    let mut listings = Vec::new();
    for line in script.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut line = line.to_string();
        for (k, v) in vars {
            line = line.replace(&format!("${k}"), v);
        }
        let mut words = line.split_whitespace();
        match words.next() {
            Some(w) if w.ends_with("ipvsadm") => {}
            _ => continue,
        }
        let argv: Vec<String> = words.map(String::from).collect();
        let cmd = parse_args(&argv).unwrap_or_else(|e| panic!("{line}: {e}"));
        if let AdminCommand::List { opts, .. } = &cmd {
            listings.push(listing(&st, opts));
        }
        st = apply(&st, &cmd).unwrap_or_else(|e| panic!("{line}: {e}"));
    }
    (st, listings)
}

fn listing(st: &AdminState, opts: &ListOptions) -> String {
    let mut out = String::new();
    list_services(
        &mut out,
        &ServiceTable::from_specs(&st.services),
        opts,
        4096,
        None,
    )
    .unwrap();
    out
}

fn save(st: &AdminState) -> String {
    let mut out = String::new();
    save_rules(&mut out, &ServiceTable::from_specs(&st.services)).unwrap();
    out
}

fn restore(text: &str) -> AdminState {
    let mut st = AdminState::default();
    for c in parse_restore(text).unwrap() {
        st = apply(&st, &c).unwrap();
    }
    st
}

/// Seed 002, steps 3-5 (`ipvsadm -ln` at the end).
const SEED_002: &str = "\
ipvsadm -A  -t 192.168.150.10:80  -s rr
ipvsadm -a  -t 192.168.150.10:80  -r  192.168.150.2 -g -w 1
ipvsadm -a  -t 192.168.150.10:80  -r  192.168.150.3 -g -w 1
ipvsadm -a  -t 192.168.150.10:80  -r  192.168.150.4 -g -w 1
ipvsadm -ln
";

/// Seed 004's lvs-DR.sh, `start)` branch, ipvsadm lines as written.
const SEED_004: &str = "\
        /sbin/ipvsadm -C   #Clear IPVS table
        #set LVS
        /sbin/ipvsadm -A -t $VIP:10087 -s wrr -p 60 
        /sbin/ipvsadm -a -t $VIP:10087 -r $RIP1 -g -w 2 # -g 为DR模式， -w 为权重
        /sbin/ipvsadm -a -t $VIP:10087 -r $RIP2 -g -w 1
        /sbin/ipvsadm -a -t $VIP:10087 -r $RIP3 -g -w 1

        /sbin/ipvsadm  # 打印 ipvs 信息
";

#[test]
fn seed002_lists_as_ipvsadm_would() {
    let (st, listings) = run_script(SEED_002, &[]);
    // Written by hand from ipvsadm 1.31's formats ("%-4s %s", "  -> %-28s
    // %-7s %-6d %-10u %-10u").
    assert_eq!(
        listings,
        ["IP Virtual Server version 1.2.1 (size=4096)\n\
          Prot LocalAddress:Port Scheduler Flags\n  \
          -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
          TCP  192.168.150.10:80 rr\n  \
          -> 192.168.150.2:80             Route   1      0          0         \n  \
          -> 192.168.150.3:80             Route   1      0          0         \n  \
          -> 192.168.150.4:80             Route   1      0          0         \n"]
    );
    assert_eq!(restore(&save(&st)), st);
}

#[test]
fn seed004_lvs_dr_script_lists_as_ipvsadm_would() {
    let vars = [
        ("VIP", "10.15.144.120"),
        ("RIP1", "10.15.144.102"),
        ("RIP2", "10.15.144.103"),
        ("RIP3", "10.15.144.104"),
    ];
    let (st, listings) = run_script(SEED_004, &vars);
    assert_eq!(
        listings,
        ["IP Virtual Server version 1.2.1 (size=4096)\n\
          Prot LocalAddress:Port Scheduler Flags\n  \
          -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
          TCP  10.15.144.120:10087 wrr persistent 60\n  \
          -> 10.15.144.102:10087          Route   2      0          0         \n  \
          -> 10.15.144.103:10087          Route   1      0          0         \n  \
          -> 10.15.144.104:10087          Route   1      0          0         \n"]
    );
    assert_eq!(
        save(&st),
        "-A -t 10.15.144.120:10087 -s wrr -p 60\n\
         -a -t 10.15.144.120:10087 -r 10.15.144.102:10087 -g -w 2\n\
         -a -t 10.15.144.120:10087 -r 10.15.144.103:10087 -g -w 1\n\
         -a -t 10.15.144.120:10087 -r 10.15.144.104:10087 -g -w 1\n"
    );
    assert_eq!(restore(&save(&st)), st);
}

#[test]
fn save_restore_round_trip_of_every_feature() {
    let script = "\
ipvsadm -A -t 198.18.0.250:80 -s sh -b sh-fallback,sh-port -p 120 -M 255.255.255.0
ipvsadm -a -t 198.18.0.250:80 -r 198.18.0.11:80 -g -w 3
ipvsadm -a -t 198.18.0.250:80 -r 198.18.0.12 -i -w 0
ipvsadm -A -u 198.18.0.250:53 -s rr -o
ipvsadm -a -u 198.18.0.250:53 -r 198.18.0.11:5353 -m -w 2
ipvsadm -A -t [2001:2::1]:443 -s mh -b mh-port -p -M 64
ipvsadm -a -t [2001:2::1]:443 -r [2001:2::11]:8443 -m
ipvsadm -a -t [2001:2::1]:443 -r [2001:2::13]:443 -i
ipvsadm -A -t 198.18.0.251 -s wlc -p 30
ipvsadm -a -t 198.18.0.251 -r 198.18.0.14 -g
";
    let (st, _) = run_script(script, &[]);
    let saved = save(&st);
    assert_eq!(
        saved,
        "-A -t 198.18.0.250:80 -s sh -p 120 -M 255.255.255.0 -b sh-fallback,sh-port\n\
         -a -t 198.18.0.250:80 -r 198.18.0.11:80 -g -w 3\n\
         -a -t 198.18.0.250:80 -r 198.18.0.12:80 -i -w 0 --tun-type ipip\n\
         -A -t 198.18.0.251:0 -s wlc -p 30\n\
         -a -t 198.18.0.251:0 -r 198.18.0.14:0 -g -w 1\n\
         -A -u 198.18.0.250:53 -s rr -o\n\
         -a -u 198.18.0.250:53 -r 198.18.0.11:5353 -m -w 2\n\
         -A -t [2001:2::1]:443 -s mh -p 360 -M 64 -b mh-port\n\
         -a -t [2001:2::1]:443 -r [2001:2::11]:8443 -m -w 1\n\
         -a -t [2001:2::1]:443 -r [2001:2::13]:443 -i -w 1 --tun-type ipip\n"
    );
    let back = restore(&saved);
    // Real servers come back in listing order; compare as sets per service.
    assert_eq!(back.services.len(), st.services.len());
    for s in &st.services {
        let b = back.service(&s.key).unwrap();
        let mut x = s.clone();
        let mut y = b.clone();
        x.dests.sort_by_key(|d| (d.addr, d.port));
        y.dests.sort_by_key(|d| (d.addr, d.port));
        assert_eq!(x, y);
    }
    assert_eq!(save(&back), saved, "restoring and saving again is stable");
}
