//! ipvsadm 1.31's behaviour for the same command lines: the expected
//! values and messages come from reading its parse_options/process_options.
use super::*;

fn args(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

fn ok(s: &str) -> AdminCommand {
    parse_args(&args(s)).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn err(s: &str) -> String {
    match parse_args(&args(s)) {
        Ok(c) => panic!("{s}: accepted as {c:?}"),
        Err(e) => {
            assert_eq!(e.exit_code(), 1);
            e.message().to_string()
        }
    }
}

fn key(proto: Protocol, a: &str, port: u16) -> ServiceKey {
    ServiceKey {
        proto,
        addr: a.parse().unwrap(),
        port,
        fwmark: 0,
    }
}

fn add_spec(s: &str) -> ServiceSpec {
    match ok(s) {
        AdminCommand::AddService(spec) => spec,
        other => panic!("{other:?}"),
    }
}

fn dest_of(s: &str) -> (ServiceKey, DestSpec) {
    match ok(s) {
        AdminCommand::AddDest { svc, dest } | AdminCommand::EditDest { svc, dest } => (svc, dest),
        other => panic!("{other:?}"),
    }
}

#[test]
fn add_service_defaults_are_ipvsadms() {
    let s = add_spec("-A -t 198.18.0.250:80");
    assert_eq!(s.key, key(Protocol::Tcp, "198.18.0.250", 80));
    assert_eq!(s.sched, SchedKind::Wlc);
    assert_eq!(s.persistence, None);
    assert_eq!(s.persistence_prefix, 32);
    assert!(!s.ops && s.dests.is_empty());
    assert_eq!(s.sched_flags, SchedFlags::default());
}

#[test]
fn bare_p_is_360_seconds_and_p_takes_a_following_number() {
    assert_eq!(
        add_spec("-A -t 198.18.0.250:80 -p").persistence,
        Some(Duration::from_secs(360))
    );
    assert_eq!(
        add_spec("-A -t 198.18.0.250:80 -p 60 -s wrr").persistence,
        Some(Duration::from_secs(60))
    );
    // An optional value never swallows the next option.
    let s = add_spec("-A -t 198.18.0.250:80 -p -s rr");
    assert_eq!(s.persistence, Some(Duration::from_secs(360)));
    assert_eq!(s.sched, SchedKind::Rr);
    assert_eq!(
        add_spec("-A -t 198.18.0.250:80 -p90").persistence,
        Some(Duration::from_secs(90))
    );
    assert_eq!(
        add_spec("-A -t 198.18.0.250:80 --persistent=30").persistence,
        Some(Duration::from_secs(30))
    );
    assert_eq!(
        err("-A -t 198.18.0.250:80 -p 0"),
        "invalid timeout value `0' specified"
    );
    assert_eq!(
        err("-A -t 198.18.0.250:80 -p 2678401"),
        "invalid timeout value `2678401' specified"
    );
}

#[test]
fn clusters_and_long_options() {
    assert_eq!(
        ok("-Ln"),
        AdminCommand::List {
            what: ListWhat::All,
            opts: ListOptions {
                numeric: true,
                ..ListOptions::default()
            },
            nosort: false
        }
    );
    let s = add_spec("-At 198.18.0.250:80 -s rr");
    assert_eq!(s.sched, SchedKind::Rr);
    let s = add_spec("--add-service --tcp-service=198.18.0.250:80 --scheduler sh -b sh-port");
    assert_eq!(s.sched, SchedKind::Sh);
    assert!(s.sched_flags.port && !s.sched_flags.fallback);
    assert_eq!(ok(""), ok("-L"));
    assert_eq!(ok("-l"), ok("--list"));
}

#[test]
fn the_command_must_come_first() {
    let try_help = "Try `lvsadm -h' or 'lvsadm --help' for more information.";
    assert_eq!(err("-nL"), try_help);
    assert_eq!(err("-t 198.18.0.250:80 -A"), try_help);
    assert_eq!(err("foo"), try_help);
    assert_eq!(err("--bogus"), try_help);
    assert_eq!(err("-A -t 198.18.0.250:80 -D"), "invalid option `-D'");
    assert_eq!(ok("-h -A"), AdminCommand::Help);
    assert_eq!(ok("-v"), AdminCommand::Version);
}

#[test]
fn popt_errors() {
    assert_eq!(err("-A -t"), "-t: missing argument");
    assert_eq!(err("-L --bogus"), "--bogus: unknown option");
    assert_eq!(err("-L -q"), "-q: unknown option");
    assert_eq!(
        err("-L --stats=1"),
        "--stats: option does not take an argument"
    );
}

#[test]
fn service_addresses_as_ipvsadm_parses_them() {
    assert_eq!(
        add_spec("-A -t [2001:2::1]:443").key,
        key(Protocol::Tcp, "2001:2::1", 443)
    );
    assert_eq!(add_spec("-A -t [2001:2::1]:443").persistence_prefix, 128);
    // inet_aton forms.
    assert_eq!(
        add_spec("-A -u 198.18.1:53").key,
        key(Protocol::Udp, "198.0.0.18", 53).with_addr("198.18.0.1")
    );
    assert_eq!(
        add_spec("-A -t 0xc6.18.0.1:80").key.addr,
        "198.18.0.1".parse::<IpAddr>().unwrap()
    );
    // Service names.
    assert_eq!(add_spec("-A -t 198.18.0.250:http").key.port, 80);
    assert_eq!(add_spec("-A -u 198.18.0.250:domain").key.port, 53);
    let bad = "illegal virtual server address[:port] specified";
    assert_eq!(err("-A -u 198.18.0.250:http"), bad, "http is tcp only");
    assert_eq!(err("-A -t 80"), bad, "all digits");
    assert_eq!(err("-A -t www.example.com:80"), bad, "no resolver");
    assert_eq!(err("-A -t 198.18.0.250:65536"), bad);
    assert_eq!(err("-A -t 198.18.0.250:"), bad);
    assert_eq!(err("-A -t [2001:2::1]"), bad, "brackets need a port");
    assert_eq!(err("-A -t 198.18.0.256:80"), bad);
    // Unbracketed IPv6 is an address without port.
    assert_eq!(
        err("-A -t 2001:2::1"),
        "Zero port specified for non-persistent service"
    );
    assert_eq!(
        add_spec("-A -t 2001:2::1 -p").key,
        key(Protocol::Tcp, "2001:2::1", 0)
    );
}

trait WithAddr {
    fn with_addr(self, a: &str) -> Self;
}
impl WithAddr for ServiceKey {
    fn with_addr(mut self, a: &str) -> Self {
        self.addr = a.parse().unwrap();
        self
    }
}

#[test]
fn inet_aton_matches_glibc() {
    let a = |s| inet_aton(s).map(|a| a.to_string());
    assert_eq!(a("10"), Some("0.0.0.10".into()));
    assert_eq!(a("10.1"), Some("10.0.0.1".into()));
    assert_eq!(a("10.1.2"), Some("10.1.0.2".into()));
    assert_eq!(a("010.0.0.1"), Some("8.0.0.1".into()));
    assert_eq!(a("0x0a.0.0.1"), Some("10.0.0.1".into()));
    assert_eq!(a("1.2.3.4 junk"), Some("1.2.3.4".into()));
    assert_eq!(a("1.2.3.256"), None);
    assert_eq!(a("1.2.65536"), None);
    assert_eq!(a("1..2"), None);
    assert_eq!(a("08.0.0.1"), None);
    assert_eq!(a("1.2.3.4.5"), None);
    assert_eq!(a(""), None);
}

#[test]
fn netmask_follows_the_family_known_at_that_point() {
    let s = add_spec("-A -t 198.18.0.250:80 -p -M 255.255.255.0");
    assert_eq!(s.persistence_prefix, 24);
    let s = add_spec("-A -M 255.255.0.0 -t 198.18.0.250:80 -p");
    assert_eq!(s.persistence_prefix, 16);
    let s = add_spec("-A -t [2001:2::1]:80 -p -M 64");
    assert_eq!(s.persistence_prefix, 64);
    // -t with IPv6 resets the mask, as ipvsadm's parse_service does.
    let s = add_spec("-A -M 255.255.0.0 -t [2001:2::1]:80 -p");
    assert_eq!(s.persistence_prefix, 128);
    assert_eq!(
        err("-A -t [2001:2::1]:80 -p -M 129"),
        "illegal ipv6 netmask specified"
    );
    assert_eq!(
        err("-A -t 198.18.0.250:80 -p -M 255.0.255.0"),
        "illegal virtual server persistent mask specified"
    );
    assert_eq!(
        err("-A -t 198.18.0.250:80 -p -M bogus"),
        "illegal virtual server persistent mask specified"
    );
}

#[test]
fn service_rules() {
    assert_eq!(
        err("-A -t 198.18.0.250"),
        "Zero port specified for non-persistent service"
    );
    assert_eq!(
        err("-A -t 198.18.0.250:80 -o"),
        "One-Packet Scheduling is only for UDP virtual services"
    );
    assert!(add_spec("-A -u 198.18.0.250:53 -o").ops);
    assert_eq!(
        err("-A -t 198.18.0.250:80 -s bogus"),
        "Scheduler or persistence engine not found"
    );
    assert_eq!(
        err("-A -t 198.18.0.250:80 -b sh-port"),
        "incompatible scheduler flag `sh-port'"
    );
    assert_eq!(
        err("-A -t 198.18.0.250:80 -s mh -b mh-port,what"),
        "invalid scheduler flag `what'"
    );
    let s = add_spec("-A -t 198.18.0.250:80 -s rr -b flag-1,flag-3");
    assert!(s.sched_flags.fallback && s.sched_flags.flag3 && !s.sched_flags.port);
    assert_eq!(
        err("-A -t 198.18.0.250:80 -s rr -s wrr"),
        "multiple 'scheduler' options specified"
    );
    assert_eq!(
        err("-A -t 198.18.0.250:80 -r 198.18.0.11"),
        "Illegal 'real-server' option with the 'add-service' command"
    );
    assert_eq!(
        err("-A -s rr"),
        "You need to supply the 'service-address' option for the 'add-service' command"
    );
    assert_eq!(
        err("-A -t 198.18.0.250:80 extra"),
        "unexpected argument extra"
    );
    match ok("-E -t 198.18.0.250:80") {
        AdminCommand::EditService(s) => {
            assert_eq!(s.sched, SchedKind::Wlc, "-E sends ipvsadm's defaults");
            assert_eq!(s.persistence, None);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        ok("-D -t 198.18.0.250:80"),
        AdminCommand::DelService(key(Protocol::Tcp, "198.18.0.250", 80))
    );
    assert_eq!(
        err("-D -t 198.18.0.250:80 -s rr"),
        "Illegal 'scheduler' option with the 'delete-service' command"
    );
}

#[test]
fn real_server_defaults_and_port_rules() {
    let (svc, d) = dest_of("-a -t 198.18.0.250:80 -r 198.18.0.11");
    assert_eq!(svc, key(Protocol::Tcp, "198.18.0.250", 80));
    assert_eq!(d.fwd, FwdMethod::Route, "-g is the default");
    assert_eq!((d.weight, d.u_threshold, d.l_threshold), (1, 0, 0));
    assert_eq!(d.port, 80, "the service's port when none is given");
    // DR and TUN take the service's port whatever -r says.
    assert_eq!(
        dest_of("-a -t 198.18.0.250:80 -r 198.18.0.11:8080").1.port,
        80
    );
    assert_eq!(
        dest_of("-a -t 198.18.0.250:80 -r 198.18.0.11:8080 -i")
            .1
            .port,
        80
    );
    let (_, d) = dest_of("-a -t 198.18.0.250:80 -r 198.18.0.11:8080 -m -w 5 -x 100 -y 50");
    assert_eq!((d.port, d.fwd, d.weight), (8080, FwdMethod::Masq, 5));
    assert_eq!((d.u_threshold, d.l_threshold), (100, 50));
    let (_, d) = dest_of("-a -t 198.18.0.250:80 -r 198.18.0.11:8080 --fullnat");
    assert_eq!((d.port, d.fwd), (8080, FwdMethod::FullNat));
    // Without a port, -r takes the service port known at that point.
    assert_eq!(dest_of("-a -r 198.18.0.11 -t 198.18.0.250:80 -m").1.port, 0);
    assert_eq!(
        err("-a -t 198.18.0.250:80 -r 198.18.0.11 -w 65536"),
        "illegal weight specified"
    );
    assert_eq!(
        err("-a -t 198.18.0.250:80 -r 198.18.0.11 -w -1"),
        "illegal weight specified",
        "a required argument is the next word, even with a dash"
    );
    assert_eq!(
        err("-a -t 198.18.0.250:80 -r 198.18.0.11 -x x"),
        "illegal u_threshold specified"
    );
    assert_eq!(
        err("-a -t 198.18.0.250:80 -r 198.18.0.11 -y 2147483648"),
        "illegal l_threshold specified"
    );
    assert_eq!(
        err("-a -t 198.18.0.250:80 -r 198.18.0.11 -g -m"),
        "multiple 'forwarding-method' options specified"
    );
    assert_eq!(
        err("-a -t 198.18.0.250:80 -r [2001:2::11]:80 -m"),
        "Different address family is allowed only for tunneling servers"
    );
    let (_, d) = dest_of("-a -t 198.18.0.250:80 -r [2001:2::11]:80 -i");
    assert_eq!(d.fwd, FwdMethod::Tunnel);
    assert_eq!(
        err("-a -t 198.18.0.250:80"),
        "You need to supply the 'real-server' option for the 'add-server' command"
    );
    assert_eq!(
        err("-a -t 198.18.0.250:80 -r 198.18.0.11 -s rr"),
        "Illegal 'scheduler' option with the 'add-server' command"
    );
    assert_eq!(
        err("-a -t 198.18.0.250:80 -r 198.18.0.11 --tun-type ipip"),
        "Tunnel options conflict with forward method"
    );
    assert!(
        parse_args(&args(
            "-a -t 198.18.0.250:80 -r 198.18.0.11 -i --tun-type ipip"
        ))
        .is_ok()
    );
    assert_eq!(
        err("-a -t 198.18.0.250:80 -r 198.18.0.11 -i --tun-csum"),
        "Illegal 'tun-csum' option with the 'ipip' tunnel type"
    );
    assert_eq!(
        err("-a -t 198.18.0.250:80 -r 198.18.0.11 -i --tun-type gue"),
        "You need to supply the 'tun-port' option for the 'gue' tunnel type"
    );
    assert_eq!(
        err("-a -t 198.18.0.250:80 -r 198.18.0.11 -i --tun-type foo"),
        "illegal tunnel type specified"
    );
    assert_eq!(
        ok("-d -t 198.18.0.250:80 -r 198.18.0.11:8080"),
        AdminCommand::DelDest {
            svc: key(Protocol::Tcp, "198.18.0.250", 80),
            addr: "198.18.0.11".parse().unwrap(),
            port: 8080
        },
        "-d keeps the port given"
    );
    assert_eq!(
        err("-d -t 198.18.0.250:80 -r 198.18.0.11 -w 2"),
        "Illegal 'weight' option with the 'delete-server' command"
    );
    assert_eq!(
        err("-a -t 198.18.0.250:80 -r 80"),
        "illegal real server address[:port] specified"
    );
}

#[test]
fn unsupported_features_say_so() {
    assert_eq!(
        err("-A --sctp-service 198.18.0.250:80"),
        "SCTP services are not supported by lvsfwd"
    );
    assert_eq!(
        err("-A -t 198.18.0.250:80 --pe sip"),
        "Scheduler or persistence engine not found"
    );
    assert_eq!(err("-A -t 198.18.0.250:80 -6"), "-6 used before -f\n");
}

#[test]
fn list_variants_and_conflicts() {
    assert_eq!(
        ok("-L -n -c"),
        AdminCommand::List {
            what: ListWhat::Connections,
            opts: ListOptions {
                numeric: true,
                ..Default::default()
            },
            nosort: false
        }
    );
    assert_eq!(
        ok("-L --timeout"),
        AdminCommand::List {
            what: ListWhat::Timeouts,
            opts: ListOptions::default(),
            nosort: false
        }
    );
    match ok("-L -t 198.18.0.250:80 --stats --exact --nosort --sort") {
        AdminCommand::List { what, opts, nosort } => {
            assert_eq!(
                what,
                ListWhat::Service(key(Protocol::Tcp, "198.18.0.250", 80))
            );
            assert!(opts.stats && opts.exact && nosort);
        }
        other => panic!("{other:?}"),
    }
    match ok("-Ln --rate --thresholds --persistent-conn -X") {
        AdminCommand::List { opts, .. } => {
            assert!(opts.rate && opts.thresholds && opts.persistent_conn && opts.exact)
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        err("-L -c -t 198.18.0.250:80"),
        "The option 'service-address' conflicts with the 'connection' option in the 'list' command"
    );
    assert_eq!(
        err("-L -c --stats"),
        "options conflicts in the list command"
    );
    assert_eq!(
        err("-L --timeout --persistent-conn"),
        "options conflicts in the list command"
    );
    assert_eq!(
        err("-L -w 1"),
        "Illegal 'weight' option with the 'list' command"
    );
    assert_eq!(
        err("-L --tun-info --tun-info"),
        "multiple 'tun-info' options specified"
    );
}

#[test]
fn set_zero_save_clear() {
    assert_eq!(
        ok("--set 900 0 300"),
        AdminCommand::SetTimeouts {
            tcp: Some(Duration::from_secs(900)),
            tcp_fin: None,
            udp: Some(Duration::from_secs(300))
        }
    );
    assert_eq!(
        err("--set 900 120"),
        "--set option requires 3 timeout values"
    );
    assert_eq!(err("--set 900 x 1"), "invalid timeout value `x' specified");
    assert_eq!(err("--set 1 2 3 4"), "unexpected argument 4");
    assert_eq!(ok("-Z"), AdminCommand::Zero(None));
    assert_eq!(
        ok("-Z -u 198.18.0.250:53"),
        AdminCommand::Zero(Some(key(Protocol::Udp, "198.18.0.250", 53)))
    );
    assert_eq!(ok("-S -n"), AdminCommand::Save { numeric: true });
    assert_eq!(ok("-S"), AdminCommand::Save { numeric: false });
    assert_eq!(ok("-C"), AdminCommand::Clear);
    assert_eq!(
        err("-C -n"),
        "Illegal 'numeric' option with the 'flush' command"
    );
    assert_eq!(ok("-R"), AdminCommand::Restore);
}

#[test]
fn restore_lines() {
    let text = "\
-A -t 198.18.0.250:80 -s wrr -p 60
ipvsadm -a -t 198.18.0.250:80 -r 198.18.0.11:80 -g -w 2

-a -t 198.18.0.250:80 -r 198.18.0.12:80 -i -w 1 --tun-type ipip   # a comment
";
    let cmds = parse_restore(text).unwrap();
    assert_eq!(cmds.len(), 3);
    assert!(matches!(cmds[0], AdminCommand::AddService(_)));
    assert!(
        matches!(&cmds[2], AdminCommand::AddDest { dest, .. } if dest.fwd == FwdMethod::Tunnel)
    );
    let bad = "-A -t 198.18.0.250:80\n-a -t 198.18.0.250:80 -r 198.18.0.11 -w x\n";
    let (line, e) = parse_restore(bad).unwrap_err();
    assert_eq!((line, e.message()), (2, "illegal weight specified"));
    let (line, e) = parse_restore("-C\n-R\n").unwrap_err();
    assert_eq!(line, 2);
    assert!(e.message().starts_with("Try `lvsadm -h'"));
}

#[test]
fn numbers_as_strtol_reads_them() {
    assert_eq!(strtol_whole(" +42"), Some(42));
    assert_eq!(strtol_whole("-3"), Some(-3));
    assert_eq!(strtol_whole("42 "), None);
    assert_eq!(strtol_whole(""), None);
    assert_eq!(strtol_whole("99999999999999999999"), None);
    assert_eq!(atoi("64abc"), 64);
    assert_eq!(atoi("abc"), 0);
}

#[test]
fn sync_daemon_commands_parse_as_ipvsadm_reads_them() {
    assert_eq!(
        ok("--start-daemon master"),
        AdminCommand::StartDaemon(DaemonArgs {
            master: true,
            ifname: "eth0".into(),
            syncid: 0,
            maxlen: None,
            group: None,
            port: None,
            ttl: None,
        })
    );
    assert_eq!(
        ok(
            "--start-daemon backup --mcast-interface lfeth0 --syncid 51 --sync-maxlen 1000 \
            --mcast-group 239.1.2.3 --mcast-port 9000 --mcast-ttl 2"
        ),
        AdminCommand::StartDaemon(DaemonArgs {
            master: false,
            ifname: "lfeth0".into(),
            syncid: 51,
            maxlen: Some(1000),
            group: Some("239.1.2.3".parse().unwrap()),
            port: Some(9000),
            ttl: Some(2),
        })
    );
    assert_eq!(ok("--stop-daemon backup"), AdminCommand::StopDaemon(false));
    assert_eq!(ok("--stop-daemon master"), AdminCommand::StopDaemon(true));
    assert!(matches!(
        ok("-L --daemon"),
        AdminCommand::List {
            what: ListWhat::Daemon,
            ..
        }
    ));
    assert_eq!(
        err("--start-daemon primary"),
        "illegal start-daemon parameter specified"
    );
    assert_eq!(err("--stop-daemon x"), "illegal start_daemon specified");
    assert_eq!(
        err("--start-daemon master --syncid 256"),
        "illegal syncid specified"
    );
    assert_eq!(
        err("--start-daemon master --mcast-ttl 0"),
        "illegal mcast-ttl specified"
    );
    assert_eq!(
        err("--start-daemon master --sync-maxlen 65508"),
        "illegal sync-maxlen specified"
    );
    assert_eq!(
        err("--start-daemon master --mcast-group 198.18.0.1"),
        "illegal mcast-group specified"
    );
    assert_eq!(
        err("--start-daemon master -t 198.18.0.250:80"),
        "Illegal 'service-address' option with the 'start-daemon' command"
    );
    assert_eq!(
        err("--stop-daemon master --mcast-interface eth0"),
        "Illegal 'mcast-interface' option with the 'stop-daemon' command"
    );
}

#[test]
fn tunnel_types_and_their_options() {
    use crate::dest::{TunCsum, TunType, TunnelSpec};
    let tun = |line: &str| dest_of(line).1.tun;
    assert_eq!(
        tun("-a -t 198.18.0.250:80 -r 198.18.0.11 -i"),
        TunnelSpec::default()
    );
    assert_eq!(
        tun("-a -t 198.18.0.250:80 -r 198.18.0.11 -i --tun-type gue --tun-port 6080"),
        TunnelSpec {
            kind: TunType::Gue,
            port: 6080,
            csum: TunCsum::NoCsum
        }
    );
    assert_eq!(
        tun("-e -t 198.18.0.250:80 -r 198.18.0.11 -i --tun-type gue --tun-port 6080 --tun-remcsum"),
        TunnelSpec {
            kind: TunType::Gue,
            port: 6080,
            csum: TunCsum::RemCsum
        }
    );
    assert_eq!(
        tun("-a -t 198.18.0.250:80 -r 198.18.0.11 -i --tun-type gre --tun-csum"),
        TunnelSpec {
            kind: TunType::Gre,
            port: 0,
            csum: TunCsum::Csum
        }
    );
    // ipvsadm's tunnel_opt_check table and messages.
    for (line, msg) in [
        (
            "-a -t 198.18.0.250:80 -r 198.18.0.11 -i --tun-type gue --tun-port 6080 --tun-csum --tun-nocsum",
            "The option 'tun-csum' conflicts with the 'tun-nocsum' option in the 'gue' tunnel type",
        ),
        (
            "-a -t 198.18.0.250:80 -r 198.18.0.11 -i --tun-type gre --tun-port 6080",
            "Illegal 'tun-port' option with the 'gre' tunnel type",
        ),
        (
            "-a -t 198.18.0.250:80 -r 198.18.0.11 -i --tun-type gre --tun-remcsum",
            "Illegal 'tun-remcsum' option with the 'gre' tunnel type",
        ),
        (
            "-a -t 198.18.0.250:80 -r 198.18.0.11 -i --tun-port 6080",
            "Illegal 'tun-port' option with the 'ipip' tunnel type",
        ),
        (
            "-a -t 198.18.0.250:80 -r 198.18.0.11 -i --tun-type gue --tun-port 0",
            "illegal tunnel port specified",
        ),
        (
            "-a -t 198.18.0.250:80 -r 198.18.0.11 -g --tun-type gre",
            "Tunnel options conflict with forward method",
        ),
    ] {
        assert_eq!(err(line), msg, "{line}");
    }
    // --tun-info is a listing option.
    match ok("-L -n --tun-info") {
        AdminCommand::List { opts, .. } => assert!(opts.tun_info),
        other => panic!("{other:?}"),
    }
}

#[test]
fn fwmark_services_as_ipvsadm_parses_them() {
    // -f: no port, so no "Zero port" refusal without -p.
    let s = add_spec("-A -f 1 -s rr");
    assert_eq!(s.key, ServiceKey::fwmark(1, false));
    assert_eq!((s.sched, s.persistence_prefix), (SchedKind::Rr, 32));
    let s = add_spec("-A -f 7 -s rr -p 60");
    assert_eq!(s.persistence, Some(std::time::Duration::from_secs(60)));
    // -6 after -f: the IPv6 service, an IPv6 host mask, -M a prefix.
    let s = add_spec("-A -f 2 -6 -s wlc -p 30 -M 64");
    assert_eq!(s.key, ServiceKey::fwmark(2, true));
    assert_eq!(s.persistence_prefix, 64);
    // ops is not refused for a fwmark service (it covers its UDP).
    assert!(add_spec("-A -f 3 -o").ops);
    // A DR real server keeps the port it is given (ipvsadm: "don't worry
    // about this if fwmark is used"), 0 without one.
    let (k, d) = dest_of("-a -f 1 -r 198.18.2.11 -g");
    assert_eq!(
        (k, d.addr, d.port),
        (
            ServiceKey::fwmark(1, false),
            "198.18.2.11".parse::<std::net::IpAddr>().unwrap(),
            0
        )
    );
    assert_eq!(d.fwd, FwdMethod::Route);
    assert_eq!(dest_of("-e -f 1 -r 198.18.2.11:443 -g -w 3").1.port, 443);
    match ok("-D -f 1") {
        AdminCommand::DelService(k) => assert_eq!(k, ServiceKey::fwmark(1, false)),
        other => panic!("{other:?}"),
    }
    match ok("-d -f 2 -6 -r 2001:2::11") {
        AdminCommand::DelDest { svc, addr, port } => {
            assert_eq!(
                (svc, addr, port),
                (
                    ServiceKey::fwmark(2, true),
                    "2001:2::11".parse::<std::net::IpAddr>().unwrap(),
                    0
                )
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        err("-a -f 1 -r 2001:2::11 -g"),
        "Different address family is allowed only for tunneling servers"
    );
}

#[test]
fn fwmark_values_and_minus_6_are_checked() {
    assert_eq!(err("-A -f 0 -s rr"), "invalid fwmark value `0' specified");
    assert_eq!(err("-A -f x -s rr"), "invalid fwmark value `x' specified");
    assert_eq!(
        err("-A -f 4294967296"),
        "invalid fwmark value `4294967296' specified"
    );
    assert_eq!(err("-A -6 -f 1"), "-6 used before -f\n");
    assert_eq!(err("-A -t 198.18.0.250:80 -6"), "-6 used before -f\n");
}
