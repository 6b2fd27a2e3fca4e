//! One command line, from its first option (the command) to the typed
//! [`AdminCommand`]: the options are taken in order, the positional words
//! checked, the legality matrix applied, then one builder per command
//! adds that command's own checks and assembles the result.

use std::time::Duration;

use super::entry::{Entry, timeout_secs};
use super::legal::{Cmd, Optc, generic_opt_check};
use super::options::{CmdOpt, OptId};
use super::scan::Scanner;
use super::{AdminCommand, CmdError, DaemonArgs, ListWhat, fail};
use crate::admin::listing::ListOptions;
use crate::dest::TunType;
use crate::sched::{SchedFlags, SchedKind};
use crate::service::{DestSpec, FwdMethod, Protocol, ServiceKey, ServiceSpec};

/// What the first option of a line is.
enum First {
    /// A command that takes options.
    Cmd(Cmd),
    /// A command complete by itself (`-h`, `-v`), or `--stop-daemon`
    /// whose options are checked against the matrix.
    Done(AdminCommand),
    /// `--start-daemon backup` (`Cmd::StartDaemon` is the master).
    Backup,
}

/// The command a line starts with. `-R` is refused inside `-R` input.
fn first_command(sc: &mut Scanner<'_>, in_restore: bool) -> Result<First, CmdError> {
    let (id, arg) = match sc.next_opt() {
        Ok(Some(s)) => (s.id, s.arg),
        Ok(None) | Err(_) => return Err(CmdError::try_help()),
    };
    let OptId::Command(c) = id else {
        return Err(CmdError::try_help());
    };
    Ok(First::Cmd(match c {
        CmdOpt::Add => Cmd::Add,
        CmdOpt::Edit => Cmd::Edit,
        CmdOpt::Del => Cmd::Del,
        CmdOpt::Clear => Cmd::Flush,
        CmdOpt::List => Cmd::List,
        CmdOpt::Zero => Cmd::Zero,
        CmdOpt::AddDest => Cmd::AddDest,
        CmdOpt::EditDest => Cmd::EditDest,
        CmdOpt::DelDest => Cmd::DelDest,
        CmdOpt::Set => Cmd::Timeout,
        CmdOpt::Restore if in_restore => return Err(CmdError::try_help()),
        CmdOpt::Restore => Cmd::Restore,
        CmdOpt::Save => Cmd::Save,
        CmdOpt::AddLaddr => Cmd::AddLaddr,
        CmdOpt::DelLaddr => Cmd::DelLaddr,
        CmdOpt::GetLaddr => Cmd::GetLaddr,
        CmdOpt::Help => return Ok(First::Done(AdminCommand::Help)),
        CmdOpt::Version => return Ok(First::Done(AdminCommand::Version)),
        CmdOpt::StartDaemon => match arg {
            Some("master") => Cmd::StartDaemon,
            Some("backup") => return Ok(First::Backup),
            _ => return fail("illegal start-daemon parameter specified"),
        },
        CmdOpt::StopDaemon => match arg {
            Some("master") => return Ok(First::Done(AdminCommand::StopDaemon(true))),
            Some("backup") => return Ok(First::Done(AdminCommand::StopDaemon(false))),
            // ipvsadm's message, misspelt as it is.
            _ => return fail("illegal start_daemon specified"),
        },
    }))
}

/// Parses one command line (or one `-R` line) as ipvsadm 1.31 does.
pub(super) fn parse_line(args: &[String], in_restore: bool) -> Result<AdminCommand, CmdError> {
    if args.is_empty() {
        return Ok(AdminCommand::List {
            what: ListWhat::All,
            opts: ListOptions::default(),
            nosort: false,
        });
    }
    let mut sc = Scanner::new(args);
    let mut backup = false;
    let mut stop = None;
    let cmd = match first_command(&mut sc, in_restore)? {
        First::Cmd(cmd) => cmd,
        First::Backup => {
            backup = true;
            Cmd::StartDaemon
        }
        First::Done(AdminCommand::StopDaemon(m)) => {
            stop = Some(m);
            Cmd::StopDaemon
        }
        First::Done(done) => return Ok(done),
    };
    let mut e = Entry::new();
    while let Some(s) = sc.next_opt()? {
        e.take(&s)?;
    }
    let timeouts = positional(cmd, &sc.positional)?;
    // Checked for every command, before the matrix, as ipvsadm does.
    let sched_flags = e.sched_flags()?;
    generic_opt_check(cmd, e.options)?;

    Ok(match cmd {
        Cmd::Add => AdminCommand::AddService(service(&e, sched_flags)?),
        Cmd::Edit => AdminCommand::EditService(service(&e, sched_flags)?),
        Cmd::Del => AdminCommand::DelService(e.required_key()?),
        Cmd::Flush => AdminCommand::Clear,
        Cmd::List => list(&e)?,
        Cmd::AddDest => {
            let (svc, dest) = server(&e)?;
            AdminCommand::AddDest { svc, dest }
        }
        Cmd::EditDest => {
            let (svc, dest) = server(&e)?;
            AdminCommand::EditDest { svc, dest }
        }
        Cmd::DelDest => AdminCommand::DelDest {
            svc: e.required_key()?,
            addr: e.required_dest()?,
            port: e.dest.port,
        },
        Cmd::Timeout => {
            let [tcp, tcp_fin, udp] = timeouts;
            AdminCommand::SetTimeouts { tcp, tcp_fin, udp }
        }
        Cmd::Restore => AdminCommand::Restore,
        Cmd::Save => AdminCommand::Save {
            numeric: e.list.numeric,
        },
        Cmd::Zero => AdminCommand::Zero(e.svc_key()),
        Cmd::StartDaemon => AdminCommand::StartDaemon(DaemonArgs {
            master: !backup,
            ..e.daemon.clone()
        }),
        Cmd::StopDaemon => AdminCommand::StopDaemon(stop.unwrap_or(true)),
        Cmd::AddLaddr | Cmd::DelLaddr => {
            let svc = e.required_key()?;
            let Some(addr) = e.laddr else {
                return fail("illegal local address");
            };
            let ifname = e.ifname.clone();
            if cmd == Cmd::AddLaddr {
                AdminCommand::AddLaddr { svc, addr, ifname }
            } else {
                AdminCommand::DelLaddr { svc, addr, ifname }
            }
        }
        Cmd::GetLaddr => AdminCommand::GetLaddr(e.svc_key()),
    })
}

/// The positional words: `--set`'s three timeouts (0 keeps a value), and
/// nothing else for any command.
fn positional(cmd: Cmd, words: &[&str]) -> Result<[Option<Duration>; 3], CmdError> {
    let mut words = words.iter();
    let mut timeouts = [None; 3];
    if cmd == Cmd::Timeout {
        let (Some(a), Some(b), Some(c)) = (words.next(), words.next(), words.next()) else {
            return fail("--set option requires 3 timeout values");
        };
        let t = |s: &str| -> Result<Option<Duration>, CmdError> {
            let secs = timeout_secs(s, 0)?;
            Ok((secs != 0).then(|| Duration::from_secs(secs)))
        };
        timeouts = [t(a)?, t(b)?, t(c)?];
    }
    if let Some(extra) = words.next() {
        return fail(format!("unexpected argument {extra}"));
    }
    Ok(timeouts)
}

/// `-L`: what to list, after ipvsadm's `list` conflicts.
fn list(e: &Entry) -> Result<AdminCommand, CmdError> {
    let o = e.options;
    let table_fmt = o.any(&[Optc::Stats, Optc::Rate, Optc::Thresholds]);
    if (o.has(Optc::Connection) || o.has(Optc::Timeout)) && table_fmt
        || o.has(Optc::Timeout) && o.has(Optc::PersistentConn)
    {
        return fail("options conflicts in the list command");
    }
    let what = if o.has(Optc::Daemon) {
        ListWhat::Daemon
    } else if o.has(Optc::Connection) {
        ListWhat::Connections
    } else if let Some(k) = e.svc_key() {
        ListWhat::Service(k)
    } else if o.has(Optc::Timeout) {
        ListWhat::Timeouts
    } else {
        ListWhat::All
    };
    Ok(AdminCommand::List {
        what,
        opts: e.list,
        nosort: e.nosort,
    })
}

/// `-A` and `-E`: the whole service as ipvsadm sends it, defaults filled in.
fn service(e: &Entry, sched_flags: SchedFlags) -> Result<ServiceSpec, CmdError> {
    // A fwmark service has no port and serves every protocol.
    if e.fwmark == 0 && e.svc.port == 0 && e.persistence.is_none() {
        return fail("Zero port specified for non-persistent service");
    }
    if e.ops && e.fwmark == 0 && e.proto != Some(Protocol::Udp) {
        return fail("One-Packet Scheduling is only for UDP virtual services");
    }
    let key = e.required_key()?;
    let Ok(sched) = e.sched_name().parse::<SchedKind>() else {
        return fail("Scheduler or persistence engine not found");
    };
    Ok(ServiceSpec {
        key,
        sched,
        sched_flags,
        persistence: e.persistence.map(Duration::from_secs),
        persistence_prefix: e.mask.prefix_for(key.addr),
        ops: e.ops,
        local_addrs: Vec::new(),
        fwmark_matches: Vec::new(),
        dests: Vec::new(),
    })
}

/// `-a` and `-e`: the service and the whole real server as ipvsadm sends
/// them, defaults filled in.
fn server(e: &Entry) -> Result<(ServiceKey, DestSpec), CmdError> {
    // DR and TUN real servers take the service's port, whatever -r says
    // ("don't worry about this if fwmark is used").
    let port = match e.fwd {
        FwdMethod::Tunnel | FwdMethod::Route if e.fwmark == 0 => e.svc.port,
        _ => e.dest.port,
    };
    if let (Some(sa), Some(da)) = (e.svc_key().map(|k| k.addr), e.dest.addr)
        && sa.is_ipv4() != da.is_ipv4()
        && e.fwd != FwdMethod::Tunnel
    {
        return fail("Different address family is allowed only for tunneling servers");
    }
    const TUN_OPTS: [Optc; 4] = [
        Optc::TunPort,
        Optc::TunNocsum,
        Optc::TunCsum,
        Optc::TunRemcsum,
    ];
    let any_tun = e.options.has(Optc::TunType) || e.options.any(&TUN_OPTS);
    if any_tun && e.fwd != FwdMethod::Tunnel {
        return fail("Tunnel options conflict with forward method");
    }
    tunnel_opt_check(e, &TUN_OPTS)?;
    let svc = e.required_key()?;
    let dest = DestSpec {
        addr: e.required_dest()?,
        port,
        fwd: e.fwd,
        weight: e.weight,
        u_threshold: e.u_threshold,
        l_threshold: e.l_threshold,
        mac: None,
        tun: e.tun,
    };
    Ok((svc, dest))
}

/// ipvsadm's `tunnel_opt_check` with its table of tunnel types against
/// `--tun-port`, `--tun-nocsum`, `--tun-csum`, `--tun-remcsum`: '+' needed,
/// 'x' illegal, '1' at most one of them.
fn tunnel_opt_check(e: &Entry, opts: &[Optc; 4]) -> Result<(), CmdError> {
    let row: [u8; 4] = match e.tun.kind {
        TunType::Ipip => *b"xxxx",
        TunType::Gue => *b"+111",
        TunType::Gre => *b"x11x",
    };
    let name = e.tun.kind.name();
    let mut first: Option<Optc> = None;
    for (&c, legal) in opts.iter().zip(row) {
        if !e.options.has(c) {
            if legal == b'+' {
                return fail(format!(
                    "You need to supply the '{}' option for the '{name}' tunnel type",
                    c.name()
                ));
            }
            continue;
        }
        match (legal, first) {
            (b'x', _) => {
                return fail(format!(
                    "Illegal '{}' option with the '{name}' tunnel type",
                    c.name()
                ));
            }
            (b'1', Some(f)) => {
                return fail(format!(
                    "The option '{}' conflicts with the '{}' option in the '{name}' tunnel type",
                    c.name(),
                    f.name()
                ));
            }
            (b'1', None) => first = Some(c),
            _ => {}
        }
    }
    Ok(())
}
