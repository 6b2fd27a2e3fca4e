//! The harness's results: the record of a run ([`Run`], saved as JSON), its
//! Markdown rendering for perf/README.md, and the PNG plots.
//!
//! Invariants: rendering is a pure function of the [`Run`] (the README can
//! be regenerated from results.json with `lvsperf report`); every number in
//! a table is traceable to one tester result.
//!
//! Deliberately not here: measuring anything.
#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::stats::TesterResult;

/// The device under test of a point.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Dut {
    /// The minimal AF_XDP forwarder: receive, swap MACs, transmit.
    Raw,
    /// lvsfwd, DR virtual service.
    LvsfwdDr,
    /// lvsfwd, NAT virtual service.
    LvsfwdNat,
    /// The kernel: nftables DNAT with numgen round robin, conntrack.
    NftDnat,
}

impl Dut {
    pub fn label(self) -> &'static str {
        match self {
            Dut::Raw => "raw AF_XDP fwd",
            Dut::LvsfwdDr => "lvsfwd DR",
            Dut::LvsfwdNat => "lvsfwd NAT",
            Dut::NftDnat => "nftables DNAT",
        }
    }
    pub const ALL: [Dut; 4] = [Dut::Raw, Dut::LvsfwdDr, Dut::LvsfwdNat, Dut::NftDnat];
}

/// Which question a point answers.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Group {
    /// Throughput against the number of flows.
    Flows,
    /// Throughput against the frame size.
    Size,
    /// Throughput of other traffic mixes.
    Mix,
    /// Throughput with several queues and workers.
    Queues,
    /// Throughput across two NICs: in on one, out of the other.
    Nics,
    /// Latency at half of the DUT's own peak.
    Latency,
}

impl Group {
    fn title(self) -> &'static str {
        match self {
            Group::Flows => "flow count (64-byte frames)",
            Group::Size => "frame size",
            Group::Mix => "traffic mix",
            Group::Queues => "queues and workers",
            Group::Nics => "NICs (in on the first, out of the second)",
            Group::Latency => "latency at half of peak",
        }
    }
}

/// One measurement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub dut: Dut,
    pub group: Group,
    pub flows: u32,
    /// Frame size, FCS included.
    pub size: usize,
    pub mix: String,
    /// Queues carrying traffic, one DUT worker each.
    pub queues: u32,
    /// NICs the DUT serves: 1 (one-armed, out of the NIC a frame came in
    /// on) or 2 (in on the first, out of the second).
    #[serde(default = "one")]
    pub nics: u32,
    /// Rate asked of the generator; 0 = as fast as it can.
    pub rate_pps: u64,
    pub result: TesterResult,
    /// CPU time of the DUT's process (user + system) per forwarded frame;
    /// `None` for the kernel baseline, which has no process.
    pub dut_cpu_ns: Option<f64>,
    /// Busy time of every core of the machine per forwarded frame
    /// (tester and kernel included).
    pub machine_cpu_ns: f64,
    /// Anything the DUT reported (drop counters), for the record.
    pub note: String,
    /// Which repetition of its shape (0: the first; `lvsperf run
    /// --rounds`). The ratio tables pair points of the same round.
    #[serde(default)]
    pub round: u32,
}

fn one() -> u32 {
    1
}

impl Point {
    fn same_shape(&self, o: &Point) -> bool {
        self.flows == o.flows
            && self.size == o.size
            && self.mix == o.mix
            && self.queues == o.queues
            && self.nics == o.nics
            && self.rate_pps == 0
            && o.rate_pps == 0
    }
}

/// The machine and the invocation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Facts {
    pub command: String,
    pub date: String,
    pub kernel: String,
    pub cpu: String,
    pub nproc: usize,
    pub load_before: String,
    pub tester_core: usize,
    pub dut_cores: Vec<usize>,
    pub window_s: f64,
    pub conntrack_max: String,
}

/// A whole run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub facts: Facts,
    pub points: Vec<Point>,
}

fn mpps(pps: f64) -> String {
    format!("{:.3}", pps / 1e6)
}

fn us(ns: u64) -> String {
    format!("{:.1}", ns as f64 / 1e3)
}

fn opt_ns(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.0}"))
}

/// Gbit/s on the wire (frame bytes only, FCS included, no preamble/IFG).
fn gbps(pps: f64, size: usize) -> f64 {
    pps * size as f64 * 8.0 / 1e9
}

fn flows_label(n: u32) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

/// The DUT's label, with the round for a repeated point.
fn dut_round(p: &Point) -> String {
    if p.round == 0 {
        p.dut.label().to_string()
    } else {
        format!("{} (round {})", p.dut.label(), p.round + 1)
    }
}

/// (lvsfwd point, raw point of the same shape and round) pairs, grouped by
/// shape in the order the shapes were measured.
fn by_round(
    run: &Run,
    lvsfwd: impl Fn(&Point) -> bool,
    raw: impl Fn(&Point) -> bool,
) -> Vec<Vec<(&Point, &Point)>> {
    let mut groups: Vec<Vec<(&Point, &Point)>> = Vec::new();
    for p in run.points.iter().filter(|p| lvsfwd(p)) {
        let Some(r) = run
            .points
            .iter()
            .find(|r| r.dut == Dut::Raw && raw(r) && r.round == p.round && p.same_shape(r))
        else {
            continue;
        };
        match groups
            .iter_mut()
            .find(|g| g[0].0.dut == p.dut && g[0].0.same_shape(p))
        {
            Some(g) => g.push((p, r)),
            None => groups.push(vec![(p, r)]),
        }
    }
    groups
}

/// The median of `v` (the mean of the middle two for an even count).
pub fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// One shape's (lvsfwd, raw) rounds, as medians.
struct Medians {
    raw_pps: f64,
    pps: f64,
    /// Median of the rounds' lvsfwd/raw rate ratios, in percent.
    ratio: f64,
    raw_cpu: Option<f64>,
    cpu: Option<f64>,
    /// Median of the rounds' CPU-time ratios (raw/lvsfwd), in percent.
    by_cpu: Option<f64>,
    /// Each round's rate ratio, in round order.
    each: String,
}

impl Medians {
    fn of(pairs: &[(&Point, &Point)]) -> Medians {
        let rate = |p: &Point| p.result.forwarded_pps();
        let ratio = |(p, r): &(&Point, &Point)| {
            let b = rate(r);
            if b > 0.0 { rate(p) / b * 100.0 } else { 0.0 }
        };
        let by_cpu = |(p, r): &(&Point, &Point)| match (p.dut_cpu_ns, r.dut_cpu_ns) {
            (Some(l), Some(r)) if l > 0.0 => Some(r / l * 100.0),
            _ => None,
        };
        let ratios: Vec<f64> = pairs.iter().map(ratio).collect();
        Medians {
            raw_pps: median(pairs.iter().map(|(_, r)| rate(r)).collect()).unwrap_or(0.0),
            pps: median(pairs.iter().map(|(p, _)| rate(p)).collect()).unwrap_or(0.0),
            ratio: median(ratios.clone()).unwrap_or(0.0),
            raw_cpu: median(pairs.iter().filter_map(|(_, r)| r.dut_cpu_ns).collect()),
            cpu: median(pairs.iter().filter_map(|(p, _)| p.dut_cpu_ns).collect()),
            by_cpu: median(pairs.iter().filter_map(by_cpu).collect()),
            each: ratios
                .iter()
                .map(|r| format!("{r:.1}%"))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

/// The results as Markdown: one throughput table per group, lvsfwd against
/// the raw forwarder, and the latency table.
pub fn render(run: &Run) -> String {
    let mut s = String::new();
    let f = &run.facts;
    let _ = writeln!(s, "Produced by `{}` on {}.", f.command, f.date);
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "Machine: {} x {}, kernel {}; load average before the run: {}. \
         Tester on core {}, DUT workers on cores {:?}; {} s measured per point. \
         nf_conntrack_max: {}.",
        f.nproc,
        f.cpu,
        f.kernel,
        f.load_before,
        f.tester_core,
        f.dut_cores,
        f.window_s,
        f.conntrack_max
    );
    for g in [
        Group::Flows,
        Group::Size,
        Group::Mix,
        Group::Queues,
        Group::Nics,
    ] {
        let pts: Vec<&Point> = run.points.iter().filter(|p| p.group == g).collect();
        if pts.is_empty() {
            continue;
        }
        let _ = writeln!(s, "\n#### Throughput by {}\n", g.title());
        let _ = writeln!(
            s,
            "| DUT | flows | size | mix | queues | offered Mpps | forwarded Mpps | Gbit/s | loss | tester drops | p50 µs | p99 µs | DUT CPU ns/pkt | machine CPU ns/pkt |"
        );
        let _ = writeln!(
            s,
            "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for p in pts {
            let r = &p.result;
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {:.2} | {:.2}% | {} | {} | {} | {} | {:.0} |",
                dut_round(p),
                flows_label(p.flows),
                p.size,
                p.mix,
                p.queues,
                mpps(r.offered_pps()),
                mpps(r.forwarded_pps()),
                gbps(r.forwarded_pps(), p.size),
                r.loss() * 100.0,
                r.rx_kernel_dropped,
                us(r.latency.p50_ns),
                us(r.latency.p99_ns),
                opt_ns(p.dut_cpu_ns),
                p.machine_cpu_ns
            );
        }
    }

    let ratios = by_round(
        run,
        |p| p.dut == Dut::LvsfwdDr && !matches!(p.group, Group::Latency | Group::Nics),
        |r| r.group != Group::Latency,
    );
    if !ratios.is_empty() {
        let _ = writeln!(
            s,
            "\n#### lvsfwd DR against the raw AF_XDP forwarder (target: 90% or more)\n"
        );
        let _ = writeln!(
            s,
            "Forwarded rates, and the same comparison by the DUT process's CPU time per \
             forwarded frame (what one dedicated core would sustain; robust to other load on \
             the machine, which the rates are not). A shape measured in several rounds \
             (`--rounds`) pairs each round's lvsfwd point with the raw point of the same \
             round; the row gives the medians and the last column each round's ratio.\n"
        );
        let _ = writeln!(
            s,
            "| flows | size | mix | queues | raw Mpps | lvsfwd Mpps | lvsfwd / raw | raw CPU ns/pkt | lvsfwd CPU ns/pkt | by CPU: lvsfwd / raw | each round |"
        );
        let _ = writeln!(s, "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|");
        for pairs in ratios {
            let m = Medians::of(&pairs);
            let p = pairs[0].0;
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {:.1}% | {} | {} | {} | {} |",
                flows_label(p.flows),
                p.size,
                p.mix,
                p.queues,
                mpps(m.raw_pps),
                mpps(m.pps),
                m.ratio,
                opt_ns(m.raw_cpu),
                opt_ns(m.cpu),
                m.by_cpu.map_or("-".into(), |r| format!("{r:.1}%")),
                m.each
            );
        }
    }

    let two: Vec<(&Point, &Point)> = run
        .points
        .iter()
        .filter(|p| p.group == Group::Nics && p.dut != Dut::Raw)
        .filter_map(|p| {
            run.points
                .iter()
                .find(|r| {
                    r.dut == Dut::Raw
                        && r.group == Group::Nics
                        && r.round == p.round
                        && p.same_shape(r)
                })
                .map(|r| (p, r))
        })
        .collect();
    if !two.is_empty() {
        let _ = writeln!(
            s,
            "\n#### lvsfwd across two NICs against the raw two-NIC forwarder\n"
        );
        let _ = writeln!(
            s,
            "Received on the first NIC, sent out of the second, one UMEM per worker for \
             both sockets; the raw forwarder rewrites the two MACs, lvsfwd forwards to real \
             servers behind the second NIC.\n"
        );
        let _ = writeln!(
            s,
            "| DUT | flows | size | mix | raw Mpps | lvsfwd Mpps | lvsfwd / raw | raw CPU ns/pkt | lvsfwd CPU ns/pkt | by CPU: lvsfwd / raw |"
        );
        let _ = writeln!(s, "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|");
        for (p, r) in two {
            let (a, b) = (p.result.forwarded_pps(), r.result.forwarded_pps());
            let ratio = if b > 0.0 { a / b * 100.0 } else { 0.0 };
            let by_cpu = match (p.dut_cpu_ns, r.dut_cpu_ns) {
                (Some(l), Some(r)) if l > 0.0 => format!("{:.1}%", r / l * 100.0),
                _ => "-".into(),
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {:.1}% | {} | {} | {} |",
                p.dut.label(),
                flows_label(p.flows),
                p.size,
                p.mix,
                mpps(b),
                mpps(a),
                ratio,
                opt_ns(r.dut_cpu_ns),
                opt_ns(p.dut_cpu_ns),
                by_cpu
            );
        }
    }

    let lat: Vec<&Point> = run
        .points
        .iter()
        .filter(|p| p.group == Group::Latency)
        .collect();
    if !lat.is_empty() {
        let _ = writeln!(
            s,
            "\n#### Latency at half of each DUT's peak (target for lvsfwd: p99 under 50 µs)\n"
        );
        let _ = writeln!(
            s,
            "Tester to tester through the DUT: both veth hops and the tester's own receive path are included.\n"
        );
        let _ = writeln!(
            s,
            "| DUT | flows | size | rate Mpps | loss | min µs | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for p in lat {
            let r = &p.result;
            let l = &r.latency;
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {:.2}% | {} | {} | {} | {} | {} | {} |",
                p.dut.label(),
                flows_label(p.flows),
                p.size,
                mpps(r.offered_pps()),
                r.loss() * 100.0,
                us(l.min_ns),
                us(l.p50_ns),
                us(l.p90_ns),
                us(l.p99_ns),
                us(l.p999_ns),
                us(l.max_ns)
            );
        }
    }
    let notes: Vec<&Point> = run.points.iter().filter(|p| !p.note.is_empty()).collect();
    if !notes.is_empty() {
        let _ = writeln!(s, "\n<details><summary>DUT counters per point</summary>\n");
        for p in notes {
            let _ = writeln!(
                s,
                "- {} {:?} {} flows {} B {} q{} nics {} rate {}: {}",
                p.dut.label(),
                p.group,
                flows_label(p.flows),
                p.size,
                p.mix,
                p.queues,
                p.nics,
                p.rate_pps,
                p.note
            );
        }
        let _ = writeln!(s, "\n</details>");
    }
    s
}

/// Marker in perf/README.in.md replaced by the results.
pub const RESULTS_MARKER: &str = "<!-- results -->";

/// The README: `template` with [`RESULTS_MARKER`] replaced by the rendered
/// results and the plots.
pub fn readme(template: &str, run: &Run, plots: &[String]) -> anyhow::Result<String> {
    anyhow::ensure!(
        template.contains(RESULTS_MARKER),
        "the README template has no {RESULTS_MARKER} line"
    );
    let mut body = render(run);
    if !plots.is_empty() {
        body.push_str("\n#### Plots\n\n");
        for p in plots {
            let _ = writeln!(body, "![{p}]({p})\n");
        }
    }
    Ok(template.replacen(RESULTS_MARKER, body.trim_end(), 1))
}

const FONT_PATHS: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

/// Registers DejaVu Sans as plotters' "sans-serif" (once).
pub fn register_font() -> anyhow::Result<()> {
    use std::sync::OnceLock;
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let bytes = FONT_PATHS
            .iter()
            .find_map(|p| std::fs::read(p).ok())
            .ok_or_else(|| {
                format!("no DejaVuSans.ttf in {FONT_PATHS:?} (Debian: fonts-dejavu-core)")
            })?;
        // The font lives as long as the process (plotters keeps a reference).
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, bytes)
            .map_err(|_| "DejaVuSans.ttf is not a usable font".to_string())
    })
    .clone()
    .map_err(anyhow::Error::msg)
}

fn color(d: Dut) -> plotters::style::RGBColor {
    use plotters::style::RGBColor;
    match d {
        Dut::Raw => RGBColor(90, 90, 90),
        Dut::LvsfwdDr => RGBColor(0, 114, 178),
        Dut::LvsfwdNat => RGBColor(86, 180, 233),
        Dut::NftDnat => RGBColor(213, 94, 0),
    }
}

type Series = Vec<(Dut, Vec<(f64, f64)>)>;

fn series(run: &Run, pick: impl Fn(&Point) -> Option<(f64, f64)>) -> Series {
    Dut::ALL
        .iter()
        .filter_map(|&d| {
            let mut v: Vec<(f64, f64)> = run
                .points
                .iter()
                .filter(|p| p.dut == d && p.round == 0)
                .filter_map(&pick)
                .collect();
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
            v.dedup_by(|a, b| a.0 == b.0);
            (!v.is_empty()).then_some((d, v))
        })
        .collect()
}

fn line_chart(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    log_x: bool,
    y_max: Option<f64>,
    data: &Series,
) -> anyhow::Result<()> {
    use plotters::prelude::*;
    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let xs = data.iter().flat_map(|(_, v)| v.iter().map(|p| p.0));
    let (xmin, xmax) = xs.fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
    let ymax = y_max.unwrap_or_else(|| {
        data.iter()
            .flat_map(|(_, v)| v.iter().map(|p| p.1))
            .fold(0.0f64, f64::max)
            * 1.15
            + 1e-9
    });
    let mut b = ChartBuilder::on(&root);
    b.caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(60);
    macro_rules! draw {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(x_desc)
                .y_desc(y_desc)
                .label_style(("sans-serif", 14))
                .draw()
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            for (d, v) in data {
                let c = color(*d);
                chart
                    .draw_series(LineSeries::new(v.iter().copied(), c.stroke_width(2)))
                    .map_err(|e| anyhow::anyhow!("{e}"))?
                    .label(d.label())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                    });
                chart
                    .draw_series(v.iter().map(|&p| Circle::new(p, 4, c.filled())))
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .label_font(("sans-serif", 14))
                .draw()
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }};
    }
    if log_x {
        draw!(
            b.build_cartesian_2d((xmin.max(1e-9)..xmax * 1.5).log_scale(), 0.0..ymax)
                .map_err(|e| anyhow::anyhow!("{e}"))?
        );
    } else {
        let pad = (xmax - xmin) * 0.05 + 1e-9;
        draw!(
            b.build_cartesian_2d((xmin - pad)..(xmax + pad), 0.0..ymax)
                .map_err(|e| anyhow::anyhow!("{e}"))?
        );
    }
    root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

/// Writes the PNG plots into `dir` and returns their file names: pps
/// against flow count, pps against frame size, latency CDF. A plot without
/// data is skipped.
pub fn plots(run: &Run, dir: &Path) -> anyhow::Result<Vec<String>> {
    register_font()?;
    let mut out = Vec::new();
    let mut emit = |name: &str, f: &dyn Fn(&Path) -> anyhow::Result<()>| -> anyhow::Result<()> {
        let p: PathBuf = dir.join(name);
        f(&p).with_context(|| format!("plotting {}", p.display()))?;
        out.push(name.to_string());
        Ok(())
    };
    let by_flows = series(run, |p| {
        (p.group == Group::Flows).then(|| (f64::from(p.flows), p.result.forwarded_pps() / 1e6))
    });
    if !by_flows.is_empty() {
        emit("pps_flows.png", &|p| {
            line_chart(
                p,
                "Forwarded Mpps by flow count (64-byte frames, TCP, 1 queue)",
                "flows",
                "Mpps",
                true,
                None,
                &by_flows,
            )
        })?;
    }
    let size_flows = run
        .points
        .iter()
        .find(|p| p.group == Group::Size)
        .map(|p| p.flows);
    let by_size = series(run, |p| {
        let same = Some(p.flows) == size_flows
            && p.mix == "tcp"
            && p.queues == 1
            && p.rate_pps == 0
            && matches!(p.group, Group::Size | Group::Flows);
        same.then(|| (p.size as f64, p.result.forwarded_pps() / 1e6))
    });
    if by_size.iter().any(|(_, v)| v.len() > 1) {
        emit("pps_size.png", &|p| {
            line_chart(
                p,
                "Forwarded Mpps by frame size (TCP, 1 queue)",
                "frame size (bytes, FCS included)",
                "Mpps",
                false,
                None,
                &by_size,
            )
        })?;
    }
    let cdf: Series = Dut::ALL
        .iter()
        .filter_map(|&d| {
            let p = run
                .points
                .iter()
                .find(|p| p.dut == d && p.group == Group::Latency)?;
            let v: Vec<(f64, f64)> = p
                .result
                .latency
                .cdf
                .iter()
                .map(|&(q, ns)| ((ns.max(100)) as f64 / 1e3, q))
                .collect();
            (!v.is_empty()).then_some((d, v))
        })
        .collect();
    if !cdf.is_empty() {
        emit("latency_cdf.png", &|p| {
            line_chart(
                p,
                "Latency CDF at half of each DUT's peak",
                "latency (µs, log scale)",
                "fraction of frames",
                true,
                Some(1.0),
                &cdf,
            )
        })?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Latency;

    fn point(dut: Dut, group: Group, flows: u32, rx: u64, rate: u64) -> Point {
        Point {
            dut,
            group,
            flows,
            size: 64,
            mix: "tcp".into(),
            queues: 1,
            nics: if group == Group::Nics { 2 } else { 1 },
            rate_pps: rate,
            result: TesterResult {
                window_s: 2.0,
                tx: 2_000_000,
                rx,
                rx_kernel_dropped: 7,
                latency: Latency {
                    samples: rx,
                    min_ns: 2_000,
                    p50_ns: 8_000,
                    p90_ns: 9_000,
                    p99_ns: 12_340,
                    p999_ns: 30_000,
                    max_ns: 90_000,
                    ..Latency::default()
                },
                ..TesterResult::default()
            },
            dut_cpu_ns: match dut {
                Dut::NftDnat => None,
                Dut::Raw => Some(649.92),
                _ => Some(812.4),
            },
            machine_cpu_ns: 1999.6,
            note: String::new(),
            round: 0,
        }
    }

    fn run() -> Run {
        Run {
            facts: Facts {
                command: "perf/run.sh".into(),
                date: "2025-01-01T00:00:00Z".into(),
                kernel: "6.18".into(),
                cpu: "AMD EPYC".into(),
                nproc: 2,
                load_before: "0.10 0.20 0.30".into(),
                tester_core: 0,
                dut_cores: vec![1],
                window_s: 2.0,
                conntrack_max: "262144".into(),
            },
            points: vec![
                point(Dut::Raw, Group::Flows, 10_000, 2_000_000, 0),
                point(Dut::LvsfwdDr, Group::Flows, 10_000, 1_900_000, 0),
                point(Dut::NftDnat, Group::Flows, 1_000_000, 1_000_000, 0),
                point(Dut::LvsfwdDr, Group::Latency, 10_000, 1_000_000, 500_000),
                point(Dut::Raw, Group::Nics, 10_000, 1_600_000, 0),
                point(Dut::LvsfwdNat, Group::Nics, 10_000, 1_200_000, 0),
            ],
        }
    }

    #[test]
    fn tables_show_rates_loss_ratio_and_latency() {
        let md = render(&run());
        let lines: Vec<&str> = md.lines().collect();
        assert!(lines[0].starts_with("Produced by `perf/run.sh` on 2025-01-01T00:00:00Z."));
        assert!(md.contains("#### Throughput by flow count (64-byte frames)"));
        for (i, l) in lines.iter().enumerate() {
            if l.starts_with("|---") {
                let cols = |s: &str| s.matches('|').count();
                assert_eq!(cols(l), cols(lines[i - 1]), "separator of {}", lines[i - 1]);
                assert_eq!(
                    cols(l),
                    cols(lines[i + 1]),
                    "first row under {}",
                    lines[i - 1]
                );
            }
        }
        assert!(lines.contains(
            &"| lvsfwd DR | 10k | 64 | tcp | 1 | 1.000 | 0.950 | 0.49 | 5.00% | 7 | 8.0 | 12.3 | 812 | 2000 |"
        ));
        assert!(lines.contains(
            &"| nftables DNAT | 1M | 64 | tcp | 1 | 1.000 | 0.500 | 0.26 | 50.00% | 7 | 8.0 | 12.3 | - | 2000 |"
        ));
        // The ratio pairs lvsfwd with the raw point of the same shape only.
        assert!(
            lines.contains(
                &"| 10k | 64 | tcp | 1 | 1.000 | 0.950 | 95.0% | 650 | 812 | 80.0% | 95.0% |"
            ),
            "{md}"
        );
        // Two-NIC points pair with the two-NIC raw forwarder only.
        assert!(md.contains("#### Throughput by NICs"));
        assert!(
            lines.contains(
                &"| lvsfwd NAT | 10k | 64 | tcp | 0.800 | 0.600 | 75.0% | 650 | 812 | 80.0% |"
            ),
            "{md}"
        );
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.starts_with("| 10k | 64 | tcp | 1 |"))
                .count(),
            1,
            "the one-NIC ratio table has no two-NIC row"
        );
        assert!(
            !md.contains("#### Throughput by frame size"),
            "no size points"
        );
        assert!(lines.contains(
            &"| lvsfwd DR | 10k | 64 | 1.000 | 50.00% | 2.0 | 8.0 | 9.0 | 12.3 | 30.0 | 90.0 |"
        ));
    }

    #[test]
    fn rounds_pair_within_a_round_and_report_medians() {
        let mut r = run();
        // Rounds 2 and 3 of the 10k shape: raw 2.0 then 1.0 Mpps, lvsfwd
        // 1.0 then 1.0 (ratios 50% and 100%; round 1's is 95%).
        for (round, raw, dr) in [(1, 4_000_000, 2_000_000), (2, 2_000_000, 2_000_000)] {
            for (dut, rx) in [(Dut::Raw, raw), (Dut::LvsfwdDr, dr)] {
                r.points.push(Point {
                    round,
                    ..point(dut, Group::Flows, 10_000, rx, 0)
                });
            }
        }
        let md = render(&r);
        let lines: Vec<&str> = md.lines().collect();
        // One row for the shape: medians of the rates (raw 1.0, 1.0, 2.0;
        // lvsfwd 0.95, 1.0, 1.0), of the ratios, and each round's ratio.
        let rows: Vec<&&str> = lines
            .iter()
            .filter(|l| l.starts_with("| 10k | 64 | tcp | 1 |"))
            .collect();
        assert_eq!(
            rows,
            [
                &"| 10k | 64 | tcp | 1 | 1.000 | 1.000 | 95.0% | 650 | 812 | 80.0% | 95.0%, 50.0%, 100.0% |"
            ],
            "{md}"
        );
        // Every point is listed, the repeated ones with their round.
        assert!(lines.contains(
            &"| lvsfwd DR (round 3) | 10k | 64 | tcp | 1 | 1.000 | 1.000 | 0.51 | 0.00% | 7 | 8.0 | 12.3 | 812 | 2000 |"
        ));
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
    }

    #[test]
    fn readme_replaces_the_marker_and_lists_the_plots() {
        let t = format!("# perf\n\nintro\n\n{RESULTS_MARKER}\n\ntail\n");
        let r = readme(&t, &run(), &["pps_flows.png".into()]).unwrap();
        assert!(r.starts_with("# perf\n\nintro\n\nProduced by"));
        assert!(r.contains("![pps_flows.png](pps_flows.png)"));
        assert!(r.ends_with("\n\ntail\n"));
        assert!(!r.contains(RESULTS_MARKER));
        assert!(readme("no marker", &run(), &[]).is_err());
    }

    #[test]
    fn results_round_trip_through_json() {
        let r = run();
        let j = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<Run>(&j).unwrap(), r);
    }

    #[test]
    fn results_without_nics_read_as_one_nic() {
        let mut j = serde_json::to_value(run()).unwrap();
        for p in j["points"].as_array_mut().unwrap() {
            p.as_object_mut().unwrap().remove("nics");
        }
        let r: Run = serde_json::from_value(j).unwrap();
        assert!(r.points.iter().all(|p| p.nics == 1));
    }

    #[test]
    fn labels_and_units() {
        assert_eq!(flows_label(1), "1");
        assert_eq!(flows_label(100), "100");
        assert_eq!(flows_label(10_000), "10k");
        assert_eq!(flows_label(1_000_000), "1M");
        assert_eq!(flows_label(1_500), "1500");
        assert!((gbps(1e6, 1500) - 12.0).abs() < 1e-9);
    }
}
