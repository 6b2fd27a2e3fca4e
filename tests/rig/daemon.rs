//! Running the real `lvsfwd` daemon in a rig's director namespace.
//!
//! Contract tested against: `lvsfwd --config FILE` runs in the foreground,
//! logs to stderr, prints a line starting with `lvsfwd: ready` once it
//! serves, and exits 0 on SIGTERM after detaching its XDP program.
//!
//! Invariants: every wait is bounded; the daemon never outlives its handle
//! (SIGKILL on Drop); when the test panics, Drop prints everything the daemon
//! wrote on stderr, so every failing test shows it.
#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use super::{CMD_TIMEOUT, Host, Rig, run, wait_bounded};

/// How long the daemon may take to print `lvsfwd: ready`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long it may take to exit after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Path of the binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_lvsfwd")
}

enum Event {
    Ready,
    Eof,
}

/// A running `lvsfwd`.
pub struct Lvsfwd {
    child: Child,
    stderr: Arc<Mutex<String>>,
    events: Receiver<Event>,
    pub config: PathBuf,
    exited: Option<ExitStatus>,
}

impl Lvsfwd {
    /// Writes `config` to the rig's directory, starts `lvsfwd --config` in
    /// the director's namespace and waits for `lvsfwd: ready`. Panics (with
    /// the daemon's stderr) if it exits first or stays silent for
    /// [`READY_TIMEOUT`].
    pub fn start(rig: &Rig, config: &str) -> Lvsfwd {
        Lvsfwd::start_program(rig, &[binary()], config)
    }

    /// [`Lvsfwd::start`] with another program in the daemon's place (`argv`
    /// then `--config FILE`), for testing this harness itself.
    pub fn start_program(rig: &Rig, argv: &[&str], config: &str) -> Lvsfwd {
        let path = rig.dir().join("lb.toml");
        std::fs::write(&path, config).expect("write lb.toml");
        let mut full: Vec<&str> = argv.to_vec();
        let p = path.to_str().expect("utf-8 temp path");
        full.extend(["--config", p]);
        Lvsfwd::spawn(rig.director(), &full, &[], path.clone(), config)
    }

    /// [`Lvsfwd::start`] in `host`'s namespace (a second director), its
    /// lb.toml written as `name` in the rig's directory.
    #[allow(dead_code)]
    pub fn start_on(rig: &Rig, host: &Host, name: &str, config: &str) -> Lvsfwd {
        let path = rig.dir().join(name);
        std::fs::write(&path, config).expect("write lb.toml");
        let p = path.to_str().expect("utf-8 temp path");
        Lvsfwd::spawn(host, &[binary(), "--config", p], &[], path.clone(), config)
    }

    /// [`Lvsfwd::start`] with extra environment, and `prefix` (e.g. a
    /// `setpriv ...` wrapper that execs its argument) before the binary.
    #[allow(dead_code)]
    pub fn start_env(rig: &Rig, prefix: &[&str], config: &str, env: &[(&str, &str)]) -> Lvsfwd {
        let path = rig.dir().join("lb.toml");
        std::fs::write(&path, config).expect("write lb.toml");
        let p = path.to_str().expect("utf-8 temp path");
        let mut full: Vec<&str> = prefix.to_vec();
        full.extend([binary(), "--config", p]);
        Lvsfwd::spawn(rig.director(), &full, env, path.clone(), config)
    }

    /// `lvsfwd ARGS...` (no lb.toml) in the director's namespace with its
    /// admin socket in the rig's directory (`$LVSFWD_SOCKET`), waiting for
    /// ready; returns it and the socket's path for [`lvsadm`].
    pub fn start_admin(rig: &Rig, args: &[&str]) -> (Lvsfwd, String) {
        let sock = rig.dir().join("admin.sock").to_string_lossy().into_owned();
        let lb = Lvsfwd::start_args(rig, args, &[("LVSFWD_SOCKET", &sock)]);
        (lb, sock)
    }

    /// `lvsfwd ARGS...` (no lb.toml: e.g. `--interface lfeth0`) in the
    /// director's namespace with extra environment, waiting for ready.
    pub fn start_args(rig: &Rig, args: &[&str], env: &[(&str, &str)]) -> Lvsfwd {
        let mut full = vec![binary()];
        full.extend_from_slice(args);
        Lvsfwd::spawn(rig.director(), &full, env, PathBuf::new(), &args.join(" "))
    }

    fn spawn(
        host: &Host,
        argv: &[&str],
        env: &[(&str, &str)],
        path: PathBuf,
        what: &str,
    ) -> Lvsfwd {
        let config = what;
        let mut child = Command::new("ip")
            .args(["netns", "exec", &host.ns])
            .args(argv)
            .envs(env.iter().copied())
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or("info".into()),
            )
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {argv:?}: {e}"));
        let pipe = child.stderr.take().expect("piped stderr");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, events) = mpsc::channel();
        let buf = Arc::clone(&stderr);
        thread::spawn(move || {
            let mut r = BufReader::new(pipe);
            let mut line = String::new();
            loop {
                line.clear();
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => {
                        let _ = tx.send(Event::Eof);
                        return;
                    }
                    Ok(_) => {
                        buf.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push_str(&line);
                        if line.starts_with("lvsfwd: ready") {
                            let _ = tx.send(Event::Ready);
                        }
                    }
                }
            }
        });
        let mut d = Lvsfwd {
            child,
            stderr,
            events,
            config: path,
            exited: None,
        };
        d.wait_ready(config);
        d
    }

    fn wait_ready(&mut self, config: &str) {
        // The reader thread sends Ready at most once, and Eof after it only
        // when the daemon closes stderr, so one event decides.
        match self.events.recv_timeout(READY_TIMEOUT) {
            Ok(Event::Ready) => {}
            Ok(Event::Eof) | Err(RecvTimeoutError::Disconnected) => {
                let st = wait_bounded(&mut self.child, Duration::from_secs(5));
                self.exited = st;
                panic!(
                    "lvsfwd exited before `lvsfwd: ready` ({}); config:\n{config}",
                    st.map(|s| s.to_string()).unwrap_or("closed stderr".into())
                );
            }
            Err(RecvTimeoutError::Timeout) => {
                panic!(
                    "lvsfwd printed no `lvsfwd: ready` within {READY_TIMEOUT:?}; config:\n{config}"
                );
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything written on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Panics (stderr is printed by Drop) unless the daemon is still running.
    pub fn assert_running(&mut self) {
        if let Ok(Some(st)) = self.child.try_wait() {
            self.exited = Some(st);
            panic!("lvsfwd exited while it should be serving: {st}");
        }
    }

    /// Waits up to `timeout` for the daemon to exit on its own (no signal
    /// sent); its exit status, or None if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = wait_bounded(&mut self.child, timeout);
        }
        self.exited
    }

    /// Sends SIGTERM and waits up to [`STOP_TIMEOUT`]; returns the exit
    /// status. Panics if it does not exit in time.
    pub fn terminate(&mut self) -> ExitStatus {
        if let Some(st) = self.exited {
            return st;
        }
        let pid = self.child.id().to_string();
        run(&["kill", "-TERM", &pid], CMD_TIMEOUT);
        match wait_bounded(&mut self.child, STOP_TIMEOUT) {
            Some(st) => {
                self.exited = Some(st);
                st
            }
            None => panic!("lvsfwd did not exit within {STOP_TIMEOUT:?} of SIGTERM"),
        }
    }
}

impl Drop for Lvsfwd {
    fn drop(&mut self) {
        if self.exited.is_none() {
            if thread::panicking() {
                // A clean stop prints the drop counters by reason: what a
                // failed test most needs to be diagnosed.
                let pid = self.child.id().to_string();
                run(&["kill", "-TERM", &pid], CMD_TIMEOUT);
                if wait_bounded(&mut self.child, STOP_TIMEOUT).is_none() {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                }
            } else {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        if thread::panicking() {
            // Give the reader thread a moment to collect the last lines.
            let _ = self.events.recv_timeout(Duration::from_millis(300));
            eprintln!(
                "----- lvsfwd stderr (config {}) -----\n{}----- end of lvsfwd stderr -----",
                self.config.display(),
                self.stderr()
            );
        }
    }
}

/// Runs `lvsadm ARGS` against the admin socket `sock`; returns (exit,
/// stdout, stderr).
pub fn lvsadm(sock: &str, args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_lvsadm"))
        .args(args)
        .env("LVSFWD_SOCKET", sock)
        .output()
        .expect("run lvsadm");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// [`lvsadm`] that must succeed; its stdout.
pub fn lvsadm_ok(sock: &str, args: &[&str]) -> String {
    let (code, out, err) = lvsadm(sock, args);
    assert_eq!(code, 0, "lvsadm {args:?}: {err}");
    out
}
