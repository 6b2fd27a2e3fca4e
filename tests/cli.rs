//! `lvsfwd check` and argument errors of `lvsfwd replay`.

mod common;
use common::*;
use std::process::Command;

fn check(text: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("lb.toml");
    std::fs::write(&p, text).unwrap();
    let o = Command::new(lvsfwd())
        .arg("check")
        .arg("--config")
        .arg(&p)
        .output()
        .unwrap();
    assert!(o.stdout.is_empty(), "check prints nothing on stdout");
    let err = String::from_utf8_lossy(&o.stderr).replace(&p.display().to_string(), "lb.toml");
    match o.status.code() {
        Some(0) => (true, err),
        Some(1) => (false, err),
        other => panic!("unexpected exit {other:?}: {err}"),
    }
}

#[test]
fn check_accepts_a_valid_config() {
    let (ok, err) = check(&config(&vs4(
        "198.18.0.250:80",
        "wrr",
        "DR",
        &[(11, 80, 2)],
        "",
    )));
    assert!(ok, "{err}");
}

#[test]
fn check_names_line_and_column_of_an_unknown_key() {
    let text = config(&vs4(
        "198.18.0.250:80",
        "wrr",
        "DR",
        &[(11, 80, 2)],
        "bogus_key = 1",
    ));
    let line = text
        .lines()
        .position(|l| l.starts_with("bogus_key"))
        .unwrap()
        + 1;
    let (ok, err) = check(&text);
    assert!(!ok);
    assert!(err.starts_with(&format!("lb.toml:{line}:1: ")), "{err}");
    assert!(err.contains("bogus_key"), "{err}");
}

#[test]
fn check_names_the_bad_value() {
    let text = config(&vs4("198.18.0.250:80", "nosuch", "DR", &[(11, 80, 2)], ""));
    let line = text.lines().position(|l| l.starts_with("lb_algo")).unwrap() + 1;
    let (ok, err) = check(&text);
    assert!(!ok);
    assert!(err.starts_with(&format!("lb.toml:{line}:")), "{err}");
    assert!(err.contains("nosuch"), "{err}");
}

#[test]
fn every_shipped_config_checks() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            let (ok, err) = check(&std::fs::read_to_string(&p).unwrap());
            assert!(ok, "{}: {err}", p.display());
            n += 1;
        }
    }
    assert!(n >= 4);
}

#[test]
fn replay_refuses_a_bad_config_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("lb.toml");
    std::fs::write(&cfg, "[global]\nnope = 1\n").unwrap();
    let inp = dir.path().join("in.pcap");
    write_pcap(
        &inp,
        &[(1.0, tcp("198.18.100.1", 1, "198.18.0.250", 80, SYN))],
    );
    let out = dir.path().join("out.pcap");
    let o = Command::new(lvsfwd())
        .args(["replay", "--config"])
        .arg(&cfg)
        .arg("--in")
        .arg(&inp)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("lb.toml:2:1"));
    assert!(!out.exists());
}
