//! End-to-end scenarios shared by the `rig_*` test files: a rig of one mode,
//! `lvsfwd` started on it with a generated lb.toml, traffic through the VIP,
//! and a clean stop.
//!
//! The hosts keep veth's default checksum offload (partial checksums).
//!
//! What every scenario asserts: all requests succeed; the split across real
//! servers is round robin's (each within ±1 of an equal share); every real
//! server saw the address the mode promises (the client's own for DR, TUN
//! and NAT, the local address for FULLNAT); while lvsfwd runs the director
//! still answers ping and a plain TCP service on its DIP; SIGTERM makes it
//! exit 0 with no XDP program left on the NIC.
#![forbid(unsafe_code)]

use std::net::SocketAddr;

use super::daemon::Lvsfwd;
use super::plan::{Proto, Svc};
use super::{BANNER_PORT, Fam, Mode, Rig};

/// Requests per scenario: 20 per real server of the default rig.
pub const REQUESTS: usize = 60;

/// Builds a `mode` rig, runs lvsfwd with the one service `svc` and checks
/// everything listed in the module documentation. The client and the real
/// servers keep veth's default checksum offload, as containers do: every
/// TCP/UDP frame reaches the director with a partial checksum, which
/// lvsfwd completes (without that, no request succeeds).
pub fn balanced_service(mode: Mode, svc: Svc) {
    let rig = Rig::builder(mode).veth_offloads(true).build();
    let config = rig.lb_toml(&[svc]);
    let mut lb = Lvsfwd::start(&rig, &config);
    let what = format!(
        "{} {:?}/{:?} through {}",
        mode.lb_kind(),
        svc.proto,
        svc.fam,
        svc.vaddr()
    );
    let t = match svc.proto {
        Proto::Tcp => rig.http(rig.client(), svc.vaddr(), REQUESTS),
        Proto::Udp => rig.udp(rig.client(), svc.vaddr(), REQUESTS),
    };
    t.assert_all_ok(&what);
    t.assert_even_split(&rig.rs_names(), &what);
    t.assert_client_seen(rig.seen_client_ip(svc.fam), &what);
    lb.assert_running();
    director_reachable(&rig, svc.fam);
    lb.assert_running();
    clean_stop(&rig, &mut lb);
    // The stop line counts the partial checksums lvsfwd completed.
    let err = lb.stderr();
    let stop = err
        .lines()
        .find(|l| l.starts_with("lvsfwd: stopped"))
        .unwrap_or_else(|| panic!("no stop line:\n{err}"));
    let n: u64 = stop
        .split("partial_csum ")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no partial_csum in {stop}"));
    if svc.proto == Proto::Tcp {
        assert!(n > 0, "TCP through veth's offload: {stop}");
    }
}

/// The director's own services keep working next to the data plane: ping on
/// the DIP and a plain TCP connection to DIP:[`BANNER_PORT`], from the client.
pub fn director_reachable(rig: &Rig, fam: Fam) {
    let dip = rig.dip(fam);
    if let Err(e) = rig.ping(rig.client(), dip) {
        panic!("the director does not answer ping on its DIP {dip}: {e}");
    }
    let banner = rig
        .banner(rig.client(), SocketAddr::new(dip, BANNER_PORT))
        .unwrap_or_else(|e| panic!("no TCP banner from the director's {dip}:{BANNER_PORT}: {e}"));
    assert_eq!(
        banner,
        format!("director {}", rig.client_ip(fam)),
        "banner of the director's own TCP service"
    );
}

/// SIGTERM: exit status 0 and no XDP program left on the director's NIC.
pub fn clean_stop(rig: &Rig, lb: &mut Lvsfwd) {
    let st = lb.terminate();
    assert!(
        st.success(),
        "lvsfwd exited with {st} after SIGTERM, want 0"
    );
    assert!(
        !rig.director().xdp_attached(),
        "an XDP program is still attached after lvsfwd exited:\n{}",
        rig.director().link_details()
    );
}

pub fn tcp(fam: Fam) -> Svc {
    Svc::tcp(fam, super::HTTP_PORT)
}

pub fn udp(fam: Fam) -> Svc {
    Svc::udp(fam, super::UDP_PORT)
}
