//! The lvsadm binary: client-side refusals, no daemon, and a round trip
//! against an admin socket served in this process with `serve_stream`.

use std::io::Write;
use std::os::unix::net::UnixListener;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use lvsfwd::admin::apply::AdminState;
use lvsfwd::admin::proto::{ListingSource, serve_stream};
use lvsfwd::service::ServiceKey;
use lvsfwd::view::{ConnView, LiveService};

struct NoTraffic;

impl ListingSource for NoTraffic {
    fn conn_tab_size(&self) -> usize {
        4096
    }
    fn live(&self, _key: &ServiceKey) -> Option<LiveService> {
        None
    }
    fn connections(&self) -> Vec<ConnView> {
        Vec::new()
    }
    fn zero_counters(&self, _svc: Option<&ServiceKey>) {}
    fn local_address_nic(&self, addr: std::net::IpAddr) -> Result<String, String> {
        Err(format!("{addr}: this test serves no NIC"))
    }
}

fn lvsadm(args: &[&str], socket: &str, stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lvsadm"))
        .args(args)
        .env("LVSFWD_SOCKET", socket)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn bad_arguments_exit_1_before_connecting() {
    let o = lvsadm(
        &["-A", "-t", "198.18.0.250:80", "-w", "1"],
        "/nonexistent/sock",
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr),
        "Illegal 'weight' option with the 'add-service' command\n"
    );
    let o = lvsadm(
        &["-R"],
        "/nonexistent/sock",
        Some("-A -t 198.18.0.250:80\n-Q\n"),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("line 2 refused"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn no_daemon_exits_2_and_says_so() {
    let o = lvsadm(&["-Ln"], "/nonexistent/lvsfwd.sock", None);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr)
            .starts_with("lvsadm: cannot connect to lvsfwd at /nonexistent/lvsfwd.sock: "),
        "{}",
        text(&o.stderr)
    );
    // --socket wins over the environment.
    let o = Command::new(env!("CARGO_BIN_EXE_lvsadm"))
        .args(["--socket", "/nonexistent/other.sock", "-C"])
        .env("LVSFWD_SOCKET", "/nonexistent/env.sock")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("/nonexistent/other.sock"));
    let o = lvsadm(&["-v"], "/nonexistent/sock", None);
    assert_eq!(o.status.code(), Some(0), "-v is answered locally");
}

#[test]
fn round_trip_against_a_served_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("admin.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let state = Arc::new(Mutex::new(AdminState::default()));
    let served = Arc::clone(&state);
    let server = std::thread::spawn(move || {
        for _ in 0..5 {
            let (mut s, _) = listener.accept().unwrap();
            let mut st = served.lock().unwrap();
            serve_stream(&mut s, &mut st, &NoTraffic).unwrap();
        }
    });
    let sock = path.to_str().unwrap();
    let o = lvsadm(&["-A", "-t", "198.18.0.250:80", "-s", "rr"], sock, None);
    assert_eq!((o.status.code(), text(&o.stderr)), (Some(0), String::new()));
    let o = lvsadm(&["-A", "-t", "198.18.0.250:80", "-s", "rr"], sock, None);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(text(&o.stderr), "Service already exists\n");
    let o = lvsadm(
        &["-R"],
        sock,
        Some("-a -t 198.18.0.250:80 -r 198.18.0.11:80 -g -w 2\n"),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let o = lvsadm(&["-S", "-n"], sock, None);
    assert_eq!(
        text(&o.stdout),
        "-A -t 198.18.0.250:80 -s rr\n-a -t 198.18.0.250:80 -r 198.18.0.11:80 -g -w 2\n"
    );
    let o = lvsadm(&["-L", "--timeout"], sock, None);
    assert_eq!(text(&o.stdout), "Timeout (tcp tcpfin udp): 900 120 300\n");
    server.join().unwrap();
    assert_eq!(state.lock().unwrap().services[0].dests.len(), 1);
}
