//! ipvsadm's legality matrix: the option classes a line sets, its commands
//! and `generic_opt_check`, which says for each command which classes it
//! requires, refuses or takes at most one of (`commands_v_options`).

use super::{CmdError, fail};
use crate::counter::counter_enum;

counter_enum! {
    /// ipvsadm's option classes (`OPTC_*`), in its order, named as in its
    /// messages: `generic_opt_check` walks them in this order, so the first
    /// complaint is the same. Classes lvsfwd refuses outright (sync daemon,
    /// --pe, --tun-info) are never set, but they keep their place: the bit
    /// numbers are the table's.
    pub(super) enum Optc {
        Numeric => "numeric",
        Connection => "connection",
        Service => "service-address",
        Scheduler => "scheduler",
        Persistent => "persistent",
        Netmask => "netmask",
        Server => "real-server",
        Forward => "forwarding-method",
        Weight => "weight",
        UThreshold => "u-threshold",
        LThreshold => "l-threshold",
        Mcast => "mcast-interface",
        Timeout => "timeout",
        Daemon => "daemon",
        Stats => "stats",
        Rate => "rate",
        Thresholds => "thresholds",
        PersistentConn => "persistent-conn",
        NoSort => "nosort",
        SyncId => "syncid",
        Exact => "exact",
        OnePacket => "ops",
        Pe => "pe",
        SchedFlags => "sched-flags",
        McastGroup => "mcast-group",
        McastPort => "mcast-port",
        McastTtl => "mcast-ttl",
        SyncMaxlen => "sync-maxlen",
        TunInfo => "tun-info",
        TunType => "tun-type",
        TunPort => "tun-port",
        TunNocsum => "tun-nocsum",
        TunCsum => "tun-csum",
        TunRemcsum => "tun-remcsum",
        // DPVS's ipvsadm: the FULLNAT local address pool (-P/-Q/-G).
        LocalAddress => "local-address",
        Ifname => "ifname",
    }
}

/// ipvsadm's commands (`CMD_*`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum Cmd {
    Add,
    Edit,
    Del,
    Flush,
    List,
    AddDest,
    DelDest,
    EditDest,
    Timeout,
    Restore,
    Save,
    Zero,
    StartDaemon,
    StopDaemon,
    AddLaddr,
    DelLaddr,
    GetLaddr,
}

impl Cmd {
    /// The command's name in ipvsadm's messages.
    fn name(self) -> &'static str {
        match self {
            Cmd::Add => "add-service",
            Cmd::Edit => "edit-service",
            Cmd::Del => "delete-service",
            Cmd::Flush => "flush",
            Cmd::List => "list",
            Cmd::AddDest => "add-server",
            Cmd::DelDest => "delete-server",
            Cmd::EditDest => "edit-server",
            Cmd::Timeout => "set",
            Cmd::Restore => "restore",
            Cmd::Save => "save",
            Cmd::Zero => "zero",
            Cmd::StartDaemon => "start-daemon",
            Cmd::StopDaemon => "stop-daemon",
            Cmd::AddLaddr => "add-laddr",
            Cmd::DelLaddr => "del-laddr",
            Cmd::GetLaddr => "get-laddr",
        }
    }

    /// Which option classes a command takes, one character per [`Optc`]:
    /// `+` required, `x` refused, `1` at most one of the `1`s, ` ` optional
    /// (ipvsadm's `commands_v_options`).
    fn legal(self) -> &'static [u8; Optc::COUNT] {
        match self {
            Cmd::Add | Cmd::Edit => b"xx+   xxxxxxxxxxxxxxx   xxxxxxxxxxxx",
            Cmd::Del => b"xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            Cmd::Flush | Cmd::Timeout | Cmd::Restore => b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            Cmd::List => b" 11xxxxxxxxx11       xxxxxxx xxxxxxx",
            Cmd::AddDest | Cmd::EditDest => b"xx+xxx+    xxxxxxxxxxxxxxxxxx     xx",
            Cmd::DelDest => b"xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            Cmd::Save => b" xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            Cmd::Zero => b"xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            Cmd::StartDaemon => b"xxxxxxxxxxx xxxxxxx xxxx    xxxxxxxx",
            // DPVS: the service and -z required, -F optional (lvsfwd
            // knows the NIC from the address; when given it must match).
            Cmd::AddLaddr | Cmd::DelLaddr => b"xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx+ ",
            Cmd::GetLaddr => b"xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            Cmd::StopDaemon => b"xxxxxxxxxxxxxxxxxxx xxxxxxxxxxxxxxxx",
        }
    }
}

/// The option classes given on a line (ipvsadm's `options` bits).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct OptSet(u64);

const _: () = assert!(Optc::COUNT <= u64::BITS as usize);

impl OptSet {
    fn bit(c: Optc) -> u64 {
        1u64 << c.index()
    }

    /// ipvsadm's `set_option`: each class at most once.
    pub(super) fn set(&mut self, c: Optc) -> Result<(), CmdError> {
        if self.has(c) {
            return fail(format!("multiple '{}' options specified", c.name()));
        }
        self.0 |= Self::bit(c);
        Ok(())
    }

    pub(super) fn has(self, c: Optc) -> bool {
        self.0 & Self::bit(c) != 0
    }

    /// Whether any of `cs` is set.
    pub(super) fn any(self, cs: &[Optc]) -> bool {
        cs.iter().any(|&c| self.has(c))
    }
}

/// `generic_opt_check`.
pub(super) fn generic_opt_check(cmd: Cmd, options: OptSet) -> Result<(), CmdError> {
    let legal = cmd.legal();
    let mut first_exclusive: Option<Optc> = None;
    for &c in Optc::ALL {
        let rule = legal[c.index()];
        if !options.has(c) {
            if rule == b'+' {
                return fail(format!(
                    "You need to supply the '{}' option for the '{}' command",
                    c.name(),
                    cmd.name()
                ));
            }
            continue;
        }
        if rule == b'x' {
            return fail(format!(
                "Illegal '{}' option with the '{}' command",
                c.name(),
                cmd.name()
            ));
        }
        if rule == b'1' {
            match first_exclusive {
                None => first_exclusive = Some(c),
                Some(last) => {
                    return fail(format!(
                        "The option '{}' conflicts with the '{}' option in the '{}' command",
                        c.name(),
                        last.name(),
                        cmd.name()
                    ));
                }
            }
        }
    }
    Ok(())
}
