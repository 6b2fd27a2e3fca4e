//! `lvsadm`: ipvsadm 1.31's command line against the running lvsfwd.
//!
//! Bad arguments are caught here, with ipvsadm's messages and exit 1,
//! before any connection; `-h` and `-v` are answered locally. Everything
//! else goes to the daemon as raw arguments (see `lvsfwd::admin::proto`)
//! and its answer is printed verbatim. No daemon: a message and exit 2.

#![deny(unsafe_code)]

use std::io::{Read, Write};
use std::process::ExitCode;

use lvsfwd::admin::cmd::{self, AdminCommand};
use lvsfwd::admin::proto::{self, Request};

/// Removes `--socket PATH` / `--socket=PATH` from the arguments.
fn split_socket(args: Vec<String>) -> Result<(Option<String>, Vec<String>), String> {
    let mut socket = None;
    let mut rest = Vec::with_capacity(args.len());
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        if a == "--socket" {
            match it.next() {
                Some(p) => socket = Some(p),
                None => return Err("--socket: missing argument".to_string()),
            }
        } else if let Some(p) = a.strip_prefix("--socket=") {
            socket = Some(p.to_string());
        } else {
            rest.push(a);
        }
    }
    Ok((socket, rest))
}

fn code(c: i32) -> ExitCode {
    ExitCode::from(u8::try_from(c).unwrap_or(1))
}

fn main() -> ExitCode {
    let (socket, argv) = match split_socket(std::env::args().skip(1).collect()) {
        Ok(x) => x,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(1);
        }
    };
    let parsed = match cmd::parse_args(&argv) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return code(e.exit_code());
        }
    };
    let stdin = match parsed {
        AdminCommand::Help => {
            print!("{}", cmd::usage_text());
            return ExitCode::SUCCESS;
        }
        AdminCommand::Version => {
            print!("{}", cmd::version_text());
            return ExitCode::SUCCESS;
        }
        AdminCommand::Restore => {
            let mut text = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut text) {
                eprintln!("{}: cannot read the rules on stdin: {e}", cmd::PROGRAM);
                return ExitCode::from(1);
            }
            if let Err((line, e)) = cmd::parse_restore(&text) {
                eprintln!("{e}");
                eprintln!(
                    "{}: -R input line {line} refused; nothing was changed",
                    cmd::PROGRAM
                );
                return code(e.exit_code());
            }
            Some(text)
        }
        _ => None,
    };
    let path = proto::socket_path(socket.as_deref());
    let mut stream = match proto::connect(&path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "{}: cannot connect to lvsfwd at {}: {e}",
                cmd::PROGRAM,
                path.display()
            );
            return ExitCode::from(2);
        }
    };
    let resp = match proto::exchange(&mut stream, &Request::new(argv, stdin)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "{}: lost the connection to lvsfwd at {}: {e}",
                cmd::PROGRAM,
                path.display()
            );
            return ExitCode::from(2);
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(resp.stdout.as_bytes());
    let _ = out.flush();
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(resp.stderr.as_bytes());
    code(resp.exit_code)
}
