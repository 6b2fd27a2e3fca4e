//! systemd's notification protocol (`sd_notify(3)`), through the sd-notify
//! crate: `READY=1` once lvsfwd serves (every worker bound, the XDP program
//! attached, the admin socket open), `RELOADING=1` + `MONOTONIC_USEC` and
//! `READY=1` around a SIGHUP reload, `STOPPING=1` when it stops, and
//! `WATCHDOG=1` at half of `WATCHDOG_USEC` from the control loop (so a
//! stuck control loop is what the watchdog catches). Without
//! `$NOTIFY_SOCKET` every call is a no-op; a failed send is logged, never
//! fatal (the daemon serves either way).
//!
//! The sends happen on a thread of their own: a datagram to a receiver
//! that does not read blocks once its queue is full (`max_dgram_qlen`), and
//! the control loop must never wait on systemd. The loop hands messages
//! over a bounded queue and drops a watchdog ping when it is full (the
//! next one follows); at exit the thread gets a second to deliver
//! `STOPPING=1`.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use sd_notify::NotifyState;

/// Messages waiting for the sender thread.
const QUEUE: usize = 16;
/// How long the exit waits for the last messages to go out.
const FLUSH: Duration = Duration::from_secs(1);

/// One message for the sender thread.
#[derive(Debug)]
enum Msg {
    Ready(String),
    Reloading,
    Stopping,
    Watchdog,
}

/// The daemon's side of the protocol.
#[derive(Debug)]
pub struct Notifier {
    /// Half of `WATCHDOG_USEC`, when the watchdog is on for this process.
    ping_every: Option<Duration>,
    last_ping: Option<Instant>,
    /// `None` without `$NOTIFY_SOCKET` (nothing to send).
    tx: Option<mpsc::SyncSender<Msg>>,
    /// Closed by the sender thread when it is done.
    done: Option<mpsc::Receiver<()>>,
}

impl Notifier {
    /// Reads `$NOTIFY_SOCKET` and `WATCHDOG_USEC` / `WATCHDOG_PID`
    /// (sd_watchdog_enabled's rules); starts the sender thread when there
    /// is somewhere to send.
    pub fn from_env() -> Notifier {
        let off = Notifier {
            ping_every: None,
            last_ping: None,
            tx: None,
            done: None,
        };
        if std::env::var_os("NOTIFY_SOCKET").is_none() {
            return off;
        }
        let (tx, rx) = mpsc::sync_channel::<Msg>(QUEUE);
        let (done_tx, done) = mpsc::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name("lvsfwd-notify".into())
            .spawn(move || {
                for m in rx {
                    send(&m);
                }
                drop(done_tx);
            });
        match spawned {
            Ok(_) => Notifier {
                ping_every: sd_notify::watchdog_enabled().map(|d| d / 2),
                last_ping: None,
                tx: Some(tx),
                done: Some(done),
            },
            Err(e) => {
                log::warn!("sd_notify: starting the sender thread: {e}");
                off
            }
        }
    }

    /// How often the watchdog is pinged, when it is on.
    pub fn ping_every(&self) -> Option<Duration> {
        self.ping_every
    }

    /// Queues `m`; never blocks.
    fn queue(&self, m: Msg) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(m) {
            Ok(()) | Err(mpsc::TrySendError::Full(Msg::Watchdog)) => {}
            Err(mpsc::TrySendError::Full(m)) => {
                log::warn!("sd_notify: the service manager is not reading; {m:?} dropped")
            }
            Err(mpsc::TrySendError::Disconnected(_)) => {}
        }
    }

    /// `READY=1` with a `STATUS=` line.
    pub fn ready(&mut self, status: &str, now: Instant) {
        self.queue(Msg::Ready(status.to_string()));
        self.last_ping = Some(now);
    }

    /// `RELOADING=1` (with `MONOTONIC_USEC`, which systemd wants with it).
    pub fn reloading(&self) {
        self.queue(Msg::Reloading);
    }

    /// `READY=1` after a reload, with the new status.
    pub fn reloaded(&mut self, status: &str, now: Instant) {
        self.ready(status, now);
    }

    /// `STOPPING=1`.
    pub fn stopping(&self) {
        self.queue(Msg::Stopping);
    }

    /// Pings the watchdog when it is due; call every turn of the loop.
    pub fn tick(&mut self, now: Instant) {
        if watchdog_due(self.ping_every, self.last_ping, now) {
            self.queue(Msg::Watchdog);
            self.last_ping = Some(now);
        }
    }
}

impl Drop for Notifier {
    /// Lets the sender thread deliver what is queued (`STOPPING=1`), for
    /// at most [`FLUSH`].
    fn drop(&mut self) {
        self.tx = None;
        if let Some(done) = self.done.take() {
            let _ = done.recv_timeout(FLUSH);
        }
    }
}

/// Sends one message (on the sender thread).
fn send(m: &Msg) {
    let r = match m {
        Msg::Ready(status) => sd_notify::notify(&[NotifyState::Ready, NotifyState::Status(status)]),
        Msg::Reloading => NotifyState::monotonic_usec_now()
            .and_then(|t| sd_notify::notify(&[NotifyState::Reloading, t])),
        Msg::Stopping => sd_notify::notify(&[NotifyState::Stopping]),
        Msg::Watchdog => sd_notify::notify(&[NotifyState::Watchdog]),
    };
    if let Err(e) = r {
        log::warn!("sd_notify {m:?}: {e}");
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
