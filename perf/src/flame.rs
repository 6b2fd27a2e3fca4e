//! Flame graphs from `perf script` output: stacks folded into
//! `comm;outer;...;inner count` lines (what Brendan Gregg's
//! stackcollapse-perf produces), and an SVG flame graph drawn from them.
//!
//! Deliberately small: no interactivity beyond per-frame tooltips, no
//! differential graphs. Symbol offsets (`+0x1f`) are dropped so samples of
//! one function merge.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Folds `perf script` text into sorted `stack count` lines.
pub fn fold(script: &str) -> String {
    fold_comms(script, |_| true)
}

/// [`fold`], keeping only samples whose command name passes `keep`.
pub fn fold_comms(script: &str, keep: impl Fn(&str) -> bool) -> String {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut comm: Option<String> = None;
    let mut frames: Vec<String> = Vec::new();
    let mut flush = |comm: &mut Option<String>, frames: &mut Vec<String>| {
        if let Some(c) = comm.take().filter(|c| keep(c)) {
            let mut stack = vec![c];
            stack.extend(frames.drain(..).rev());
            *counts.entry(stack.join(";")).or_default() += 1;
        }
        frames.clear();
    };
    for line in script.lines() {
        if line.trim().is_empty() {
            flush(&mut comm, &mut frames);
        } else if line.starts_with(char::is_whitespace) {
            if comm.is_some() {
                frames.push(frame_name(line.trim()));
            }
        } else {
            flush(&mut comm, &mut frames);
            comm = Some(header_comm(line));
        }
    }
    flush(&mut comm, &mut frames);
    let mut s = String::new();
    for (k, v) in counts {
        let _ = writeln!(s, "{k} {v}");
    }
    s
}

/// The command name of a sample header (`comm pid[/tid] [cpu] time: ...`):
/// every word before the first numeric one.
fn header_comm(line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    let n = words
        .iter()
        .position(|w| {
            let w = w.split('/').next().unwrap_or("");
            !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit())
        })
        .unwrap_or(words.len().min(1));
    let c = words[..n].join("_");
    if c.is_empty() {
        "[unknown]".into()
    } else {
        c.replace(';', ":")
    }
}

/// `ffffffff8123 func+0x12 ([kernel.kallsyms])` -> `func`; an unknown
/// symbol becomes `[dso]`.
fn frame_name(line: &str) -> String {
    let rest = line
        .split_once(char::is_whitespace)
        .map_or("", |x| x.1)
        .trim();
    let (sym, dso) = match rest.rfind(" (") {
        Some(i) => (&rest[..i], rest[i + 2..].trim_end_matches(')')),
        None => (rest, ""),
    };
    let sym = match sym.rfind("+0x") {
        Some(i) => &sym[..i],
        None => sym,
    };
    let name = if sym.is_empty() || sym == "[unknown]" {
        let base = dso.rsplit('/').next().unwrap_or(dso);
        format!("[{}]", base.trim_matches(|c| c == '[' || c == ']'))
    } else {
        sym.to_string()
    };
    name.replace(';', ":")
}

#[derive(Default)]
struct Node {
    count: u64,
    children: BTreeMap<String, Node>,
}

fn parse_folded(folded: &str) -> Node {
    let mut root = Node::default();
    for line in folded.lines() {
        let Some((stack, n)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(n) = n.parse::<u64>() else { continue };
        root.count += n;
        let mut node = &mut root;
        for f in stack.split(';') {
            node = node.children.entry(f.to_string()).or_default();
            node.count += n;
        }
    }
    root
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn color(name: &str) -> (u8, u8, u8) {
    // A stable warm colour per name (FNV-1a).
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    (
        200 + (h % 55) as u8,
        80 + ((h >> 8) % 130) as u8,
        ((h >> 16) % 60) as u8,
    )
}

const WIDTH: f64 = 1200.0;
const ROW: f64 = 17.0;

/// An SVG flame graph of folded stacks (root at the bottom); frames
/// narrower than 0.1 % of the samples are left out.
pub fn svg(folded: &str, title: &str) -> String {
    let root = parse_folded(folded);
    let depth = max_depth(&root);
    let height = (depth as f64 + 3.0) * ROW + 10.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="monospace" font-size="11">"#
    );
    let _ = writeln!(
        s,
        r##"<rect width="100%" height="100%" fill="#fafafa"/><text x="{}" y="16" text-anchor="middle" font-size="14">{} ({} samples)</text>"##,
        WIDTH / 2.0,
        esc(title),
        root.count
    );
    if root.count > 0 {
        draw(&mut s, &root, 0.0, 0, root.count, height);
    }
    s.push_str("</svg>\n");
    s
}

fn max_depth(n: &Node) -> usize {
    n.children
        .values()
        .map(|c| 1 + max_depth(c))
        .max()
        .unwrap_or(0)
}

fn draw(s: &mut String, n: &Node, x0: f64, level: usize, total: u64, height: f64) {
    let mut x = x0;
    for (name, c) in &n.children {
        let w = c.count as f64 / total as f64 * WIDTH;
        if c.count * 1000 >= total {
            let y = height - (level as f64 + 1.0) * ROW - 5.0;
            let (r, g, b) = color(name);
            let pct = c.count as f64 * 100.0 / total as f64;
            let _ = writeln!(
                s,
                r#"<g><title>{} ({} samples, {pct:.2}%)</title><rect x="{x:.2}" y="{y:.2}" width="{:.2}" height="{}" fill="rgb({r},{g},{b})" rx="2"/>"#,
                esc(name),
                c.count,
                (w - 0.5).max(0.1),
                ROW - 1.0
            );
            let chars = ((w - 6.0) / 6.6) as usize;
            if chars >= 3 {
                let label: String = if name.chars().count() > chars {
                    name.chars().take(chars - 2).chain("..".chars()).collect()
                } else {
                    name.clone()
                };
                let _ = writeln!(
                    s,
                    r#"<text x="{:.2}" y="{:.2}">{}</text>"#,
                    x + 3.0,
                    y + ROW - 5.0,
                    esc(&label)
                );
            }
            s.push_str("</g>\n");
            draw(s, c, x, level + 1, total, height);
        }
        x += w;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRIPT: &str = "\
lvsfwd-q0  4242/4243 [001] 100.000001:   1001001 cpu-clock:
\tffffffff81000001 xsk_generic_xmit+0x1a ([kernel.kallsyms])
\tffffffff81000002 __sys_sendto+0x22 ([kernel.kallsyms])
\t5555000001 lvsfwd::xsk::engine::Worker::round+0x99 (/usr/bin/lvsfwd)

lvsfwd-q0  4242/4243 [001] 100.000002:   1001001 cpu-clock:
\t5555000003 lvsfwd::dataplane::Dataplane::process+0x10 (/usr/bin/lvsfwd)
\t5555000001 lvsfwd::xsk::engine::Worker::round+0x12 (/usr/bin/lvsfwd)

lvsfwd-q0  4242/4243 [001] 100.000003:   1001001 cpu-clock:
\t5555000003 lvsfwd::dataplane::Dataplane::process+0x44 (/usr/bin/lvsfwd)
\t5555000001 lvsfwd::xsk::engine::Worker::round+0x12 (/usr/bin/lvsfwd)

swapper     0 [000] 100.000004:   1001001 cpu-clock:
\tffffffff81000009 [unknown] ([kernel.kallsyms])
";

    #[test]
    fn perf_script_folds_into_counted_stacks() {
        let f = fold(SCRIPT);
        assert_eq!(
            f,
            "lvsfwd-q0;lvsfwd::xsk::engine::Worker::round;__sys_sendto;xsk_generic_xmit 1\n\
             lvsfwd-q0;lvsfwd::xsk::engine::Worker::round;lvsfwd::dataplane::Dataplane::process 2\n\
             swapper;[kernel.kallsyms] 1\n"
        );
    }

    #[test]
    fn samples_can_be_kept_by_command() {
        let f = fold_comms(SCRIPT, |c| c == "swapper");
        assert_eq!(f, "swapper;[kernel.kallsyms] 1\n");
    }

    #[test]
    fn the_svg_has_one_box_per_frame_sized_by_samples() {
        let out = svg(&fold(SCRIPT), "t <1>");
        assert!(out.starts_with("<svg"));
        assert!(out.contains("t &lt;1&gt; (4 samples)"));
        // comm, round, sendto, xmit, process, swapper, kernel: 7 frames.
        assert_eq!(out.matches("<rect x=").count(), 7);
        assert!(out.contains("<title>lvsfwd-q0 (3 samples, 75.00%)</title><rect x=\"0.00\""));
        assert!(out.contains("<title>lvsfwd::dataplane::Dataplane::process (2 samples, 50.00%)"));
        assert!(out.trim_end().ends_with("</svg>"));
        assert_eq!(svg("", "empty").matches("<rect x=").count(), 0);
    }
}
