//! `lvsfwd genhash` (keepalived's genhash) against real servers on
//! loopback: python's http.server, and a python TLS server with a
//! self-signed certificate (tests/rig/checker_servers.py).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// MD5 of "ok\n" and of "state=up\n", as md5sum prints them.
const OK_MD5: &str = "eff5bc1ef8ec9d03e640fc4370f5eacd";
const STATE_UP_MD5: &str = "eea67a87b91a25a6f2aa43fbcf61ecb4";

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `argv`, waits for a line containing `ready`; its output keeps
/// being drained (the servers log every request).
fn start(argv: &[&str], ready: &str) -> Server {
    let mut c = Command::new(argv[0])
        .args(&argv[1..])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = c.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let ready = ready.to_string();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if l.contains(&ready) {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(std::time::Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("{argv:?} not ready"));
    Server(c)
}

fn genhash(args: &[&str]) -> (bool, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_lvsfwd"))
        .arg("genhash")
        .args(args)
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn genhash_prints_the_body_s_md5_over_http_and_tls() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("health"), "ok\n").unwrap();
    let port = free_port().to_string();
    let _http = start(
        &[
            "python3",
            "-u",
            "-m",
            "http.server",
            &port,
            "--bind",
            "127.0.0.1",
            "--directory",
            dir.path().to_str().unwrap(),
        ],
        "Serving HTTP",
    );
    let (ok, out, err) = genhash(&["-s", "127.0.0.1", "-p", &port, "-u", "/health"]);
    assert!(ok, "{err}");
    assert_eq!(out, format!("{OK_MD5}\n"));
    // A 404 has a body too: genhash prints its digest, as keepalived's.
    let (ok, out, _) = genhash(&["-s", "127.0.0.1", "-p", &port, "-u", "/missing"]);
    assert!(
        ok && out.trim().len() == 32 && out.trim() != OK_MD5,
        "{out}"
    );

    let (crt, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    let st = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=genhash.test", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let state = dir.path().join("state");
    std::fs::write(&state, "up\n").unwrap();
    let tport = free_port().to_string();
    let script = format!(
        "{}/tests/rig/checker_servers.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let tls = start(
        &[
            "python3",
            &script,
            "tls",
            "--port",
            &tport,
            "--cert",
            crt.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
        ],
        "ready",
    );
    let (ok, out, err) = genhash(&[
        "-S",
        "-I",
        "-V",
        "sni.test",
        "-P",
        "1.1",
        "-s",
        "127.0.0.1",
        "-p",
        &tport,
        "-u",
        "/",
    ]);
    assert!(ok, "{err}");
    assert_eq!(out, format!("{STATE_UP_MD5}\n"));
    drop(tls);
    // Nothing listening: an error, exit 1.
    let (ok, out, err) = genhash(&["-s", "127.0.0.1", "-p", &tport, "-u", "/"]);
    assert!(!ok && out.is_empty() && err.contains("connect"), "{err}");
}
