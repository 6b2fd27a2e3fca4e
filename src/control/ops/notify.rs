//! systemd's notification protocol (`sd_notify(3)`), through the sd-notify
//! crate: `READY=1` once lvsfwd serves (every worker bound, the XDP program
//! attached, the admin socket open), `RELOADING=1` + `MONOTONIC_USEC` and
//! `READY=1` around a SIGHUP reload, `STOPPING=1` when it stops, and
//! `WATCHDOG=1` at half of `WATCHDOG_USEC` from the control loop (so a
//! stuck control loop is what the watchdog catches). Without
//! `$NOTIFY_SOCKET` every call is a no-op; a failed send is logged, never
//! fatal (the daemon serves either way).

use std::time::{Duration, Instant};

use sd_notify::NotifyState;

/// The daemon's side of the protocol.
#[derive(Debug)]
pub struct Notifier {
    /// Half of `WATCHDOG_USEC`, when the watchdog is on for this process.
    ping_every: Option<Duration>,
    last_ping: Option<Instant>,
}

impl Notifier {
    /// Reads `WATCHDOG_USEC` / `WATCHDOG_PID` (sd_watchdog_enabled's rules).
    pub fn from_env() -> Notifier {
        Notifier {
            ping_every: sd_notify::watchdog_enabled().map(|d| d / 2),
            last_ping: None,
        }
    }

    /// How often the watchdog is pinged, when it is on.
    pub fn ping_every(&self) -> Option<Duration> {
        self.ping_every
    }

    fn send(what: &str, states: &[NotifyState]) {
        if let Err(e) = sd_notify::notify(states) {
            log::warn!("sd_notify {what}: {e}");
        }
    }

    /// `READY=1` with a `STATUS=` line.
    pub fn ready(&mut self, status: &str, now: Instant) {
        Self::send("READY", &[NotifyState::Ready, NotifyState::Status(status)]);
        self.last_ping = Some(now);
    }

    /// `RELOADING=1` (with `MONOTONIC_USEC`, which systemd wants with it).
    pub fn reloading(&self) {
        match NotifyState::monotonic_usec_now() {
            Ok(t) => Self::send("RELOADING", &[NotifyState::Reloading, t]),
            Err(e) => log::warn!("sd_notify RELOADING: reading the monotonic clock: {e}"),
        }
    }

    /// `READY=1` after a reload, with the new status.
    pub fn reloaded(&mut self, status: &str, now: Instant) {
        self.ready(status, now);
    }

    /// `STOPPING=1`.
    pub fn stopping(&self) {
        Self::send("STOPPING", &[NotifyState::Stopping]);
    }

    /// Pings the watchdog when it is due; call every turn of the loop.
    pub fn tick(&mut self, now: Instant) {
        if watchdog_due(self.ping_every, self.last_ping, now) {
            Self::send("WATCHDOG", &[NotifyState::Watchdog]);
            self.last_ping = Some(now);
        }
    }
}

/// Whether a watchdog ping is due: the watchdog is on and `every` passed
/// since the last ping (or none was sent yet).
pub fn watchdog_due(every: Option<Duration>, last: Option<Instant>, now: Instant) -> bool {
    match (every, last) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(e), Some(l)) => now.saturating_duration_since(l) >= e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_pings_at_its_period_only_when_enabled() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let every = Some(Duration::from_millis(500));
        assert!(!watchdog_due(None, None, ms(0)));
        assert!(!watchdog_due(None, Some(t0), ms(10_000)));
        assert!(watchdog_due(every, None, ms(0)));
        assert!(!watchdog_due(every, Some(t0), ms(499)));
        assert!(watchdog_due(every, Some(t0), ms(500)));
    }
}
