//! `lvsfwd`: the command-line front of the load balancer.
//!
//! Thin by design: argument parsing, file I/O and exit codes. Every decision
//! is made by the library (config validation, the data plane).

#![deny(unsafe_code)]

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use lvsfwd::admin::listing::{self, ListOptions};
use lvsfwd::config;
use lvsfwd::daemon;
use lvsfwd::dataplane::DataplaneConfig;
use lvsfwd::replay;
use lvsfwd::wire::MacAddr;

#[derive(Parser)]
#[command(
    name = "lvsfwd",
    version,
    about = "Userspace Layer-4 load balancer with IPVS's behaviour",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// Run the load balancer in the foreground with this lb.toml.
    #[arg(long, conflicts_with = "interface")]
    config: Option<PathBuf>,
    /// Run on this NIC with an empty service table (services from lvsadm);
    /// repeatable: a two-armed director serves every NIC it is given.
    #[arg(long)]
    interface: Vec<String>,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Internal (`[announce]`): started by lvsfwd; when lvsfwd dies, removes
    /// its routes (protocol PROTOCOL) from kernel table TABLE.
    #[command(hide = true)]
    AnnounceGuard { table: u32, protocol: u8 },
    /// Validate lb.toml and exit: 0 when valid, 1 with `FILE:LINE:COL: error`.
    Check {
        #[arg(long)]
        config: PathBuf,
    },
    /// Print the lb.toml equivalent of a keepalived.conf on stdout,
    /// following its includes; every keyword that cannot be mapped is
    /// named on stderr as FILE:LINE.
    ImportKeepalived {
        /// The keepalived.conf to convert.
        file: PathBuf,
    },
    /// keepalived's genhash: fetch URL from a real server and print the MD5
    /// digest of its body as HTTP_GET / SSL_GET `digest` compares it.
    Genhash {
        /// The server's address.
        #[arg(short = 's', long = "server")]
        server: IpAddr,
        /// The server's port.
        #[arg(short = 'p', long, value_parser = clap::value_parser!(u16).range(1..))]
        port: u16,
        /// The URL path to fetch.
        #[arg(short = 'u', long, default_value = "/")]
        url: String,
        /// Use TLS (the server's certificate is not verified, as genhash).
        #[arg(short = 'S', long = "use-ssl")]
        ssl: bool,
        /// The `Host:` header to send instead of ADDR:PORT.
        #[arg(short = 'V', long = "use-virtualhost")]
        virtualhost: Option<String>,
        /// Print the response header and timing too.
        #[arg(short = 'v', long)]
        verbose: bool,
    },
    /// Run the data-plane pipeline offline over a capture.
    Replay {
        #[arg(long)]
        config: PathBuf,
        /// Frames as received on the data-plane NIC (pcap or pcapng).
        #[arg(long = "in")]
        input: PathBuf,
        /// Frames the data plane transmits.
        #[arg(long)]
        out: PathBuf,
        /// Frames the data plane hands to the kernel.
        #[arg(long)]
        pass: Option<PathBuf>,
        /// The NIC's own MAC address.
        #[arg(long, default_value = "02:00:00:00:00:01", value_parser = parse_mac)]
        mac: MacAddr,
        /// The NIC's own addresses (TUN outer source; repeatable).
        #[arg(long = "ip")]
        ips: Vec<IpAddr>,
        /// The NIC's MTU.
        #[arg(long, default_value_t = 1500, value_parser = clap::value_parser!(u16).range(576..))]
        mtu: u16,
        /// Print the connection table as `lvsadm -L -c -n` would.
        #[arg(long)]
        dump_conns: bool,
        /// Print the services as `lvsadm -L -n --stats --exact` would.
        #[arg(long)]
        stats: bool,
        /// Print every non-zero drop counter, by reason, and the count of
        /// partial checksums completed, on stderr.
        #[arg(long)]
        counters: bool,
    },
}

fn parse_mac(s: &str) -> Result<MacAddr, String> {
    let mut mac = [0u8; 6];
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return Err(format!(
            "`{s}` is not a MAC address (want aa:bb:cc:dd:ee:ff)"
        ));
    }
    for (i, p) in parts.iter().enumerate() {
        mac[i] = u8::from_str_radix(p, 16)
            .ok()
            .filter(|_| p.len() == 2)
            .ok_or_else(|| format!("`{s}` is not a MAC address (want aa:bb:cc:dd:ee:ff)"))?;
    }
    Ok(mac)
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
    let cli = Cli::parse();
    let Some(cmd) = cli.cmd else {
        let source = match (cli.config, cli.interface) {
            (Some(c), i) if i.is_empty() => daemon::Source::Config(c),
            (None, i) if !i.is_empty() => daemon::Source::Interfaces(i),
            _ => {
                eprintln!(
                    "lvsfwd: give --config lb.toml or --interface IFNAME (or a subcommand; see --help)"
                );
                return ExitCode::from(2);
            }
        };
        return match daemon::run(source) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("lvsfwd: {e:#}");
                ExitCode::from(1)
            }
        };
    };
    match cmd {
        Cmd::AnnounceGuard { table, protocol } => {
            match lvsfwd::control::announce::guard_main(table, protocol) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("lvsfwd announce-guard: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
        Cmd::Genhash {
            server,
            port,
            url,
            ssl,
            virtualhost,
            verbose,
        } => {
            let req = lvsfwd::control::health::genhash::Request {
                server,
                port,
                url,
                ssl,
                virtualhost,
                verbose,
            };
            match lvsfwd::control::health::genhash::run(&req) {
                Ok(report) => {
                    print!("{report}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("lvsfwd genhash: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
        Cmd::ImportKeepalived { file } => match config::keepalived::import_file(&file) {
            Ok((toml, warnings)) => {
                print!("{toml}");
                for w in warnings {
                    // FILE:LINE: keyword: message, FILE the one the line is in.
                    let at = w.file.as_deref().unwrap_or(&file);
                    eprintln!("{}:{}: {}: {}", at.display(), w.line, w.keyword, w.message);
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("lvsfwd import-keepalived: {}: {e}", file.display());
                ExitCode::from(1)
            }
        },
        Cmd::Check { config } => match config::load_file(&config) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(1)
            }
        },
        Cmd::Replay {
            config,
            input,
            out,
            pass,
            mac,
            ips,
            mtu,
            dump_conns,
            stats,
            counters,
        } => {
            let args = ReplayArgs {
                config,
                input,
                out,
                pass,
                mac,
                ips,
                mtu,
                dump_conns,
                stats,
                counters,
            };
            match run_replay(&args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("lvsfwd replay: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

struct ReplayArgs {
    config: PathBuf,
    input: PathBuf,
    out: PathBuf,
    pass: Option<PathBuf>,
    mac: MacAddr,
    ips: Vec<IpAddr>,
    mtu: u16,
    dump_conns: bool,
    stats: bool,
    counters: bool,
}

fn run_replay(a: &ReplayArgs) -> Result<()> {
    let cfg = match config::load_file(&a.config) {
        Ok(c) => c,
        Err(e) => bail!("{e}"),
    };
    let frames = replay::read_capture(&a.input)?;
    let mut dp = cfg.dataplane(DataplaneConfig {
        own_macs: vec![a.mac],
        own_addrs: a.ips.clone(),
        mtu: a.mtu,
        ..cfg.dataplane_config()
    });
    let mut out = replay::CaptureWriter::create(&a.out)?;
    let mut pass = a
        .pass
        .as_deref()
        .map(replay::CaptureWriter::create)
        .transpose()?;
    let sum = replay::run(&mut dp, &frames, &mut out, pass.as_mut())?;
    out.finish()?;
    if let Some(p) = pass {
        p.finish()?;
    }
    eprintln!("{sum}");
    if a.counters {
        for (name, n) in dp.counters.drop_reasons() {
            eprintln!("drop {name} {n}");
        }
        for (name, n) in dp.counters.kernel_reasons() {
            eprintln!("kernel {name} {n}");
        }
        if dp.counters.partial_csum > 0 {
            eprintln!("partial_csum {}", dp.counters.partial_csum);
        }
        if dp.counters.icmp_frag_time > 0 {
            eprintln!("icmp_frag_time {}", dp.counters.icmp_frag_time);
        }
    }
    let mut text = String::new();
    if a.dump_conns {
        let views = dp.conn_views(sum.last);
        listing::list_conns(
            &mut text,
            &views,
            &ListOptions {
                numeric: true,
                ..ListOptions::default()
            },
        )
        .context("formatting connections")?;
    }
    if a.stats {
        let opts = ListOptions {
            stats: true,
            exact: true,
            ..ListOptions {
                numeric: true,
                ..ListOptions::default()
            }
        };
        listing::list_services(&mut text, &dp.services, &opts, dp.conns.capacity(), None)
            .context("formatting services")?;
    }
    print!("{text}");
    Ok(())
}
