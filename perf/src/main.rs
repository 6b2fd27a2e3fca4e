//! `lvsperf`: lvsfwd's performance harness (see perf/README.md).
//!
//! - `lvsperf run [--quick]`: the whole measurement (rig, DUTs, tester,
//!   report); what perf/run.sh runs.
//! - `lvsperf tester ...`: the AF_XDP generator and sink (one point).
//! - `lvsperf rawfwd ...`: the raw AF_XDP forwarder baseline.
//! - `lvsperf soak [--minutes N]`: the long reliability run (perf/soak.sh).
//! - `lvsperf report`: regenerates README.md and the plots from
//!   results.json.
#![forbid(unsafe_code)]

mod orchestrate;
mod rawfwd;
mod rig;
mod soak;
mod tester;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "lvsperf", about = "lvsfwd's performance harness")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the rig, measure every DUT, write the report.
    Run(orchestrate::RunArgs),
    /// Generate and sink traffic for one point (in the tester namespace).
    Tester(tester::TesterArgs),
    /// The raw AF_XDP forwarder (in the DUT namespace).
    Rawfwd(rawfwd::RawArgs),
    /// A long reliability run: two VRRP directors, load, reloads, lvsadm
    /// edits, real servers dying, fail-overs (perf/soak.sh).
    Soak(soak::SoakArgs),
    /// Regenerate README.md and the plots from results.json.
    Report {
        #[arg(long, default_value = "perf")]
        out: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    match Cli::parse().cmd {
        Cmd::Run(a) => orchestrate::run(a),
        Cmd::Tester(a) => tester::run(&a),
        Cmd::Rawfwd(a) => rawfwd::run(&a),
        Cmd::Soak(a) => soak::run(a),
        Cmd::Report { out } => {
            let run: lvsfwd_perf::report::Run = serde_json::from_str(
                &std::fs::read_to_string(out.join("results.json")).context("results.json")?,
            )?;
            let template = std::fs::read_to_string(out.join("README.in.md"))?;
            orchestrate::write_outputs(&out, &template, &run)
        }
    }
}
