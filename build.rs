//! Compiles lvsfwd's XDP program (bpf/xdp_lvsfwd.c) into a BPF object that
//! src/xsk/prog.rs embeds with `include_bytes!`.
//!
//! Needs clang (package `clang`) and libbpf's headers (package
//! `libbpf-dev`, /usr/include/bpf/bpf_helpers.h); the kernel UAPI headers
//! come from `linux-libc-dev` under /usr/include and its multiarch directory
//! (`gcc -dumpmachine`), where `asm/types.h` lives. `CLANG` overrides the
//! compiler. A missing tool fails the build with the package to install.
#![forbid(unsafe_code)]

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const SRC: &str = "bpf/xdp_lvsfwd.c";

fn main() {
    println!("cargo:rerun-if-changed={SRC}");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CLANG");

    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let obj = out.join("xdp_lvsfwd.o");
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_string());

    if !Path::new("/usr/include/bpf/bpf_helpers.h").exists() {
        fail(
            "libbpf's headers are missing (/usr/include/bpf/bpf_helpers.h): install the `libbpf-dev` package",
        );
    }
    if !Path::new("/usr/include/linux/bpf.h").exists() {
        fail(
            "the kernel UAPI headers are missing (/usr/include/linux/bpf.h): install the `linux-libc-dev` package",
        );
    }

    let mut cmd = Command::new(&clang);
    cmd.args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"]);
    if let Some(dir) = multiarch_include() {
        cmd.arg(format!("-I{}", dir.display()));
    }
    cmd.args(["-c", SRC, "-o"]).arg(&obj);

    let output = match cmd.output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fail(&format!(
            "`{clang}` not found: building lvsfwd's XDP program needs clang; install the `clang` package (or set CLANG)"
        )),
        Err(e) => fail(&format!("running `{clang}`: {e}")),
    };
    if !output.status.success() {
        fail(&format!(
            "`{clang}` failed to compile {SRC} ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
}

/// The multiarch include directory (e.g. /usr/include/x86_64-linux-gnu),
/// which the BPF target does not search by itself.
/// Asks gcc for the triple; without gcc, guesses Debian's name for the
/// target architecture.
fn multiarch_include() -> Option<PathBuf> {
    let triple = Command::new("gcc")
        .arg("-dumpmachine")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .or_else(|| {
            env::var("CARGO_CFG_TARGET_ARCH")
                .ok()
                .map(|a| format!("{a}-linux-gnu"))
        })?;
    let dir = Path::new("/usr/include").join(triple);
    dir.is_dir().then_some(dir)
}

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    panic!("{msg}");
}
