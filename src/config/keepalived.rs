//! `lvsfwd import-keepalived`: keepalived.conf to lb.toml.
//!
//! Reads keepalived's block syntax (`keyword value... { ... }`, comments
//! starting with `!` or `#` at the start of a word, `"quoted strings"`, a
//! `{` on the keyword's line or alone on the next one) and writes the
//! equivalent lb.toml, whose keys are keepalived's keywords (interface.md
//! §2). Everything lvsfwd cannot express is reported as a [`Warning`] with
//! its line, never silently dropped.
//!
//! Choices:
//! - `include PATTERN` is followed by [`import_file`] as keepalived follows
//!   it (globs, paths relative to the including file's directory, nesting;
//!   see the `include` module); every warning names its file and line.
//!   [`import`] stays pure (text in, text out) and reports each include.
//! - `lvs_timeouts tcp N tcpfin N udp N` (any subset) becomes `[timeouts]`
//!   `tcp`, `tcp_fin`, `udp`.
//! - `nb_get_retry` is written as `retry` (its current keepalived name).
//! - `lvs_sched`/`lvs_method` are keepalived's aliases of `lb_algo` and
//!   `lb_kind`; `sh-port`, `sh-fallback`, `mh-port`, `mh-fallback` become
//!   `sched_flags`.
//! - `vrrp_version` of `global_defs` becomes each instance's `version`
//!   unless the instance sets its own; `vrrp_mcast_group4` /
//!   `vrrp_mcast_group6` become the `[global]` keys of the same names (a
//!   group that is not multicast of its family is refused by `check`).
//! - `[global] interface` (the data-plane NIC, which keepalived has no
//!   keyword for) is taken from the first vrrp_instance, with a comment.
//! - `virtual_ipaddress` options: `dev` naming the instance's interface is
//!   what lvsfwd does anyway; another `dev`, `label`, `brd`, `scope`... are
//!   reported.
//! - A DR or TUN real server whose port differs from the virtual server's
//!   gets the virtual server's port (IPVS ignores it; lb.toml refuses it),
//!   with a warning.
//! - Values are copied as written; ranges and cross-field rules are left
//!   to lb.toml's validation (`lvsfwd check`), which reports them with
//!   lb.toml positions.
//!
//! - `vrrp_script` (script, interval, timeout, weight, fall, rise, user
//!   USER [GROUP]), an instance's `track_script` and `track_interface`
//!   (with `weight W`), and `vrrp_sync_group` (group, notify scripts) map
//!   to their lb.toml keys; a tracked object with a weight is written in
//!   the table form `{ name = "...", weight = W }`; `weight W reverse`
//!   (vrrp_script and track_script) adds `reverse = true`, track_script's
//!   `noreverse` `reverse = false`, and `init_fail` is copied. A
//!   track_interface's `reverse` and the sync group's own tracking are
//!   reported.
//!
//! - Every checker (TCP_CHECK, HTTP_GET, SSL_GET, DNS_CHECK, UDP_CHECK,
//!   PING_CHECK, SMTP_CHECK, MISC_CHECK), any number of each, is written as
//!   an array of tables (`[[virtual_server.real_server.tcp_check]]`); the
//!   timer keys keepalived inherits (retry, delay_before_retry, warmup,
//!   connect_timeout, delay_loop, alpha, virtualhost) keep the level they
//!   were given at. SMTP_CHECK's deprecated `host` blocks become checkers
//!   of their own, as keepalived makes them.
//!
//! - `virtual_server fwmark N` becomes `fwmark = N`, with a warning: the
//!   mark comes from iptables rules that the import cannot read, so a
//!   `[[fwmark]]` rule must be added. `virtual_server group NAME` becomes
//!   `group = "NAME"` and each `virtual_server_group` block a
//!   `[[virtual_server_group]]` (members `ADDR:PORT`, ranges
//!   `A.B.C.D-E:PORT` and `[IPV6-END]:PORT`, `fwmark N`); their DR/TUN real servers are written
//!   without a port (each service's applies).
//!
//! - `enable_script_security` becomes `[global] enable_script_security`.
//!
//! Not done: notification e-mail, and the checker keywords lvsfwd does not
//! implement (regex offsets / regex_stack):
//! all reported with their line. MISC_CHECK's `user USER [GROUP]` becomes
//! the checker's `user` / `group`.

use std::fmt::{self, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;

mod include;

pub use include::import_file;

/// A keepalived keyword that could not be mapped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// The file the line is in: `None` for the text given to [`import`],
    /// the file's path (as the include pattern found it) with
    /// [`import_file`].
    pub file: Option<PathBuf>,
    /// 1-based line in that file.
    pub line: usize,
    pub keyword: String,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(file) => write!(f, "{}:", file.display())?,
            None => f.write_str("line ")?,
        }
        write!(f, "{}: {}: {}", self.line, self.keyword, self.message)
    }
}

/// Where a line comes from: its file (`None`: the text given to
/// [`import`]) and 1-based line there.
#[derive(Clone, Debug, PartialEq, Default)]
struct Origin {
    file: Option<Rc<Path>>,
    line: usize,
}

/// One line of the configuration once includes are spliced in.
#[derive(Clone, Debug)]
struct SrcLine {
    at: Origin,
    text: String,
}

/// A warning and its place in the spliced configuration, by which the
/// warnings are ordered.
type Placed = (usize, Warning);

fn placed(seq: usize, at: &Origin, keyword: &str, message: impl Into<String>) -> Placed {
    (
        seq,
        Warning {
            file: at.file.as_deref().map(Path::to_path_buf),
            line: at.line,
            keyword: keyword.to_string(),
            message: message.into(),
        },
    )
}

/// One statement: a keyword, its values, and its block if it has one.
#[derive(Clone, Debug, PartialEq)]
struct Node {
    /// Line in its file ([`Node::at`] has the file).
    line: usize,
    at: Origin,
    /// Index of the statement's line in the spliced configuration.
    seq: usize,
    words: Vec<String>,
    block: Option<Vec<Node>>,
}

impl Node {
    fn keyword(&self) -> &str {
        self.words.first().map(String::as_str).unwrap_or("")
    }
    fn args(&self) -> &[String] {
        self.words.get(1..).unwrap_or(&[])
    }
    fn arg(&self, i: usize) -> Option<&str> {
        self.words.get(i + 1).map(String::as_str)
    }
    fn children(&self) -> &[Node] {
        self.block.as_deref().unwrap_or(&[])
    }
}

#[derive(Debug, PartialEq)]
enum Tok {
    Word(String),
    Open,
    Close,
}

/// Splits one line into words and braces; a word starting with `!` or `#`
/// ends the line.
fn tokenize(line: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    let mut cur = String::new();
    let mut in_word = false;
    let flush = |cur: &mut String, in_word: &mut bool, out: &mut Vec<Tok>| {
        if *in_word {
            out.push(Tok::Word(std::mem::take(cur)));
            *in_word = false;
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == c {
                        break;
                    }
                    cur.push(q);
                }
            }
            '{' | '}' => {
                flush(&mut cur, &mut in_word, &mut out);
                out.push(if c == '{' { Tok::Open } else { Tok::Close });
            }
            c if c.is_whitespace() => flush(&mut cur, &mut in_word, &mut out),
            '!' | '#' if !in_word => break,
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    flush(&mut cur, &mut in_word, &mut out);
    out
}

/// The lines of `text`, from no file.
fn text_lines(text: &str) -> Vec<SrcLine> {
    text.lines()
        .enumerate()
        .map(|(i, l)| SrcLine {
            at: Origin {
                file: None,
                line: i + 1,
            },
            text: l.to_string(),
        })
        .collect()
}

/// Builds the statement tree of `text`; brace errors become warnings.
#[cfg(test)]
fn parse_tree(text: &str, warnings: &mut Vec<Placed>) -> Vec<Node> {
    parse_lines(&text_lines(text), warnings)
}

/// Builds the statement tree; brace errors become warnings.
fn parse_lines(lines: &[SrcLine], warnings: &mut Vec<Placed>) -> Vec<Node> {
    // Stack of open blocks; the bottom is the file.
    let mut stack: Vec<(Vec<Node>, Option<Node>)> = vec![(Vec::new(), None)];
    for (seq, src) in lines.iter().enumerate() {
        let line_no = src.at.line;
        let node = |words: Vec<String>| Node {
            line: line_no,
            at: src.at.clone(),
            seq,
            words,
            block: None,
        };
        let mut words: Vec<String> = Vec::new();
        for tok in tokenize(&src.text) {
            match tok {
                Tok::Word(w) => words.push(w),
                Tok::Open => {
                    let top = stack.last_mut().map(|t| &mut t.0);
                    let node = if !words.is_empty() {
                        node(std::mem::take(&mut words))
                    } else if let Some(prev) = top.and_then(|t| t.pop_if(|n| n.block.is_none())) {
                        // `{` alone on the line after its keyword.
                        prev
                    } else {
                        warnings.push(placed(
                            seq,
                            &src.at,
                            "{",
                            "block without a keyword, ignored",
                        ));
                        node(Vec::new())
                    };
                    stack.push((Vec::new(), Some(node)));
                }
                Tok::Close => {
                    if !words.is_empty() {
                        let n = node(std::mem::take(&mut words));
                        if let Some(t) = stack.last_mut() {
                            t.0.push(n);
                        }
                    }
                    if stack.len() == 1 {
                        warnings.push(placed(seq, &src.at, "}", "closes no block, ignored"));
                        continue;
                    }
                    if let Some((children, Some(mut node))) = stack.pop() {
                        node.block = Some(children);
                        if let Some(t) = stack.last_mut()
                            && !node.words.is_empty()
                        {
                            t.0.push(node);
                        }
                    }
                }
            }
        }
        if !words.is_empty()
            && let Some(t) = stack.last_mut()
        {
            t.0.push(node(words));
        }
    }
    while stack.len() > 1 {
        if let Some((children, Some(mut node))) = stack.pop() {
            warnings.push(placed(
                node.seq,
                &node.at,
                node.keyword(),
                "block is not closed before the end of the file",
            ));
            node.block = Some(children);
            if let Some(t) = stack.last_mut() {
                t.0.push(node);
            }
        }
    }
    stack.pop().map(|t| t.0).unwrap_or_default()
}

/// A TOML value as text.
fn s(v: &str) -> String {
    toml::Value::String(v.to_string()).to_string()
}

/// lb.toml text being written, with the warnings.
struct Out {
    toml: String,
    warnings: Vec<Placed>,
}

impl Out {
    fn warn(&mut self, n: &Node, message: impl Into<String>) {
        self.warnings
            .push(placed(n.seq, &n.at, n.keyword(), message));
    }
    fn unsupported(&mut self, n: &Node) {
        self.warn(n, "not supported by lvsfwd, dropped");
    }
    /// Writes `key = value` in the current table. A key the table already
    /// has is replaced, as keepalived keeps the last of a repeated keyword
    /// (and TOML refuses a key twice); returns whether one was.
    fn line(&mut self, indent: &str, key: &str, value: &str) {
        self.put(indent, key, value);
    }
    fn put(&mut self, indent: &str, key: &str, value: &str) -> bool {
        let replaced = remove_key(&mut self.toml, key);
        let _ = writeln!(self.toml, "{indent}{key} = {value}");
        replaced
    }
    /// [`Out::line`] for keyword `n`, warning when it repeats.
    fn keyword_line(&mut self, n: &Node, indent: &str, key: &str, value: &str) {
        if self.put(indent, key, value) {
            self.warn(n, "given more than once; the last one is kept");
        }
    }
    /// `key = N` for a numeric keyword, a warning otherwise.
    fn number(&mut self, indent: &str, n: &Node, key: &str, float: bool) {
        match n.arg(0) {
            Some(v) if toml_number(v, float).is_some() => {
                let t = toml_number(v, float).unwrap_or_default();
                self.keyword_line(n, indent, key, &t)
            }
            Some(v) => self.warn(n, format!("`{v}` is not a number, dropped")),
            None => self.warn(n, "needs a value, dropped"),
        }
    }
    fn string(&mut self, indent: &str, n: &Node, key: &str) {
        match n.arg(0) {
            Some(v) => self.keyword_line(n, indent, key, &s(v)),
            None => self.warn(n, "needs a value, dropped"),
        }
    }
    /// Scripts with arguments: every word after the keyword.
    fn script(&mut self, indent: &str, n: &Node, key: &str) {
        if n.args().is_empty() {
            self.warn(n, "needs a script, dropped");
        } else {
            self.keyword_line(n, indent, key, &s(&n.args().join(" ")));
        }
    }
    /// keepalived's check_true_false keywords (`alpha`, `enable_sni`): bare
    /// means true, or a value true/on/yes / false/off/no.
    fn boolean(&mut self, indent: &str, n: &Node, key: &str) {
        let v = match n.arg(0).map(str::to_ascii_lowercase).as_deref() {
            None | Some("true" | "on" | "yes") => "true",
            Some("false" | "off" | "no") => "false",
            Some(v) => {
                let msg = format!("`{v}` is not true or false, dropped");
                return self.warn(n, msg);
            }
        };
        self.keyword_line(n, indent, key, v);
    }
    fn flag(&mut self, indent: &str, n: &Node, key: &str) {
        // keepalived's bare keyword; an explicit value is not its syntax.
        if !n.args().is_empty() {
            self.warn(n, "takes no value; the value is ignored");
        }
        self.keyword_line(n, indent, key, "true");
    }
}

/// Removes the `key = ...` line of the current (last) table of `toml`, if
/// it has one; returns whether it did.
fn remove_key(toml: &mut String, key: &str) -> bool {
    let table = toml
        .match_indices('\n')
        .map(|(i, _)| i + 1)
        .rfind(|&i| toml[i..].trim_start_matches(' ').starts_with('['))
        .unwrap_or(0);
    let want = format!("{key} = ");
    let mut start = table;
    while start < toml.len() {
        let end = toml[start..]
            .find('\n')
            .map_or(toml.len(), |e| start + e + 1);
        if toml[start..end].trim_start_matches(' ').starts_with(&want) {
            toml.replace_range(start..end, "");
            return true;
        }
        start = end;
    }
    false
}

/// keepalived's number `v` as TOML writes it (`+05` is 5 to keepalived,
/// and no TOML number); `None` when it is not one (a float only if
/// `float`).
fn toml_number(v: &str, float: bool) -> Option<String> {
    if let Ok(i) = v.parse::<i64>() {
        return Some(i.to_string());
    }
    if float && is_float(v) {
        return v
            .parse::<f64>()
            .ok()
            .map(|x| toml::Value::Float(x).to_string());
    }
    None
}

fn is_float(v: &str) -> bool {
    v.parse::<f64>().is_ok_and(|x| x.is_finite()) && !v.contains(['e', 'E', 'i', 'n', 'N'])
}

/// `ADDR PORT` as lb.toml's `ADDR:PORT` (`[V6]:PORT`).
fn addr_port(addr: &str, port: &str) -> String {
    if addr.contains(':') {
        format!("[{addr}]:{port}")
    } else {
        format!("{addr}:{port}")
    }
}

/// Converts keepalived.conf text into lb.toml text and the keywords that
/// could not be mapped.
///
/// `include` cannot be followed from text alone; each is reported
/// ([`import_file`] follows them).
pub fn import(text: &str) -> (String, Vec<Warning>) {
    import_lines(&text_lines(text), Vec::new())
}

/// [`import`] of spliced lines, with the warnings splicing gave.
fn import_lines(lines: &[SrcLine], warnings: Vec<Placed>) -> (String, Vec<Warning>) {
    let mut out = Out {
        toml: String::from("# Converted from keepalived.conf by lvsfwd import-keepalived.\n"),
        warnings,
    };
    let tree = parse_lines(lines, &mut out.warnings);

    let mut router_id: Option<String> = None;
    let mut vrrp_version: Option<String> = None;
    let mut script_user: Option<(String, Option<String>)> = None;
    let mut script_security = false;
    let mut sync_daemon: Option<String> = None;
    // lb.toml's [timeouts] keys and values, in keepalived's order.
    let mut timeouts: [(&str, Option<String>); 3] =
        [("tcp", None), ("tcp_fin", None), ("udp", None)];
    // `vrrp_mcast_group4` / `vrrp_mcast_group6`, copied as written.
    let mut mcast: Vec<(String, String)> = Vec::new();
    for n in &tree {
        match n.keyword() {
            "global_defs" => {
                for c in n.children() {
                    match c.keyword() {
                        "router_id" => match c.arg(0) {
                            Some(v) => router_id = Some(v.to_string()),
                            None => out.warn(c, "needs a value, dropped"),
                        },
                        "script_user" => match c.arg(0) {
                            Some(u) => {
                                script_user = Some((u.to_string(), c.arg(1).map(str::to_string)))
                            }
                            None => out.warn(c, "needs a user, dropped"),
                        },
                        "enable_script_security" => {
                            if !c.args().is_empty() {
                                out.warn(c, "takes no value; the value is ignored");
                            }
                            script_security = true;
                        }
                        "lvs_sync_daemon" => sync_daemon = sync_daemon_toml(&mut out, c),
                        "lvs_timeouts" => lvs_timeouts(&mut out, c, &mut timeouts),
                        "vrrp_mcast_group4" | "vrrp_mcast_group6" => match c.arg(0) {
                            Some(a) => {
                                // keepalived keeps the last one given.
                                mcast.retain(|(k, _)| k != c.keyword());
                                mcast.push((c.keyword().to_string(), a.to_string()));
                            }
                            None => out.warn(c, "needs an address, dropped"),
                        },
                        "vrrp_version" => match c.arg(0) {
                            Some(v) if toml_number(v, false).is_some() => {
                                vrrp_version = toml_number(v, false)
                            }
                            Some(v) => out.warn(c, format!("`{v}` is not a number, dropped")),
                            None => out.warn(c, "needs a value, dropped"),
                        },
                        _ => out.unsupported(c),
                    }
                }
            }
            "vrrp_instance"
            | "virtual_server"
            | "vrrp_script"
            | "vrrp_sync_group"
            | "virtual_server_group" => {}
            "include" => out.warn(
                n,
                "not followed from text; `lvsfwd import-keepalived FILE` follows it",
            ),
            _ => out.unsupported(n),
        }
    }
    let first_if = tree
        .iter()
        .filter(|n| n.keyword() == "vrrp_instance")
        .flat_map(|n| n.children())
        .find(|c| c.keyword() == "interface")
        .and_then(|c| c.arg(0).map(str::to_string));
    if router_id.is_some()
        || first_if.is_some()
        || script_user.is_some()
        || script_security
        || sync_daemon.is_some()
        || !mcast.is_empty()
    {
        out.toml.push_str("\n[global]\n");
        if let Some(r) = &router_id {
            out.line("", "router_id", &s(r));
        }
        if let Some((u, g)) = &script_user {
            out.line("", "script_user", &s(u));
            if let Some(g) = g {
                out.line("", "script_group", &s(g));
            }
        }
        if script_security {
            out.line("", "enable_script_security", "true");
        }
        if let Some(i) = &first_if {
            let _ = writeln!(
                out.toml,
                "interface = {}   # the first vrrp_instance's interface",
                s(i)
            );
        }
        for (k, a) in &mcast {
            out.line("", k, &s(a));
        }
        if let Some(t) = &sync_daemon {
            out.toml.push_str(t);
        }
    }
    if timeouts.iter().any(|t| t.1.is_some()) {
        out.toml.push_str("\n[timeouts]\n");
        for (k, v) in &timeouts {
            if let Some(v) = v {
                out.line("", k, v);
            }
        }
    }
    for n in tree.iter().filter(|n| n.keyword() == "vrrp_instance") {
        vrrp_instance(&mut out, n, vrrp_version.as_deref());
    }
    for n in tree.iter().filter(|n| n.keyword() == "vrrp_script") {
        vrrp_script(&mut out, n);
    }
    for n in tree.iter().filter(|n| n.keyword() == "vrrp_sync_group") {
        sync_group(&mut out, n);
    }
    for n in tree
        .iter()
        .filter(|n| n.keyword() == "virtual_server_group")
    {
        vs_group(&mut out, n);
    }
    for n in tree.iter().filter(|n| n.keyword() == "virtual_server") {
        virtual_server(&mut out, n);
    }
    // Stable: the warnings of one line keep the order they were found in.
    out.warnings.sort_by_key(|w| w.0);
    (out.toml, out.warnings.into_iter().map(|w| w.1).collect())
}

/// keepalived's `lvs_timeouts [tcp N] [tcpfin N] [udp N]` (any subset,
/// any order, the last of a repeated one kept) into `timeouts`. As
/// keepalived does, a bad value or an unknown option is reported and the
/// rest read; 0, which keepalived reads as "leave the kernel's value", is
/// left out (lb.toml's default applies, and lb.toml refuses 0).
fn lvs_timeouts(out: &mut Out, n: &Node, timeouts: &mut [(&str, Option<String>); 3]) {
    if n.args().len() < 2 {
        out.warn(n, "needs at least one of tcp N, tcpfin N, udp N");
    }
    let mut words = n.args().iter();
    while let Some(w) = words.next() {
        let slot = match w.as_str() {
            "tcp" => 0,
            "tcpfin" => 1,
            "udp" => 2,
            other => {
                out.warn(n, format!("`{other}`: not an lvs_timeouts option, dropped"));
                continue;
            }
        };
        let Some(v) = words.next() else {
            out.warn(n, format!("{w} needs a value, dropped"));
            continue;
        };
        // keepalived's read_unsigned_strvec: 0 to LVS_MAX_TIMEOUT (31 days).
        match v.parse::<u64>() {
            Ok(0) => out.warn(
                n,
                format!("{w} 0 leaves the timeout unchanged; lb.toml's default applies"),
            ),
            Ok(secs) if secs <= 86400 * 31 => timeouts[slot].1 = Some(secs.to_string()),
            _ => out.warn(
                n,
                format!("{w} `{v}` is not a number of seconds from 0 to 2678400, dropped"),
            ),
        }
    }
}

/// keepalived's `lvs_sync_daemon IF INSTANCE [id N] [maxlen N] [port N]
/// [ttl N] [group ADDR]` as a `[global.lvs_sync_daemon]` table.
fn sync_daemon_toml(out: &mut Out, n: &Node) -> Option<String> {
    let (Some(ifname), Some(inst)) = (n.arg(0), n.arg(1)) else {
        out.warn(n, "needs an interface and a vrrp_instance, dropped");
        return None;
    };
    let mut t = format!(
        "\n[global.lvs_sync_daemon]\ninterface = {}\nvrrp_instance = {}\n",
        s(ifname),
        s(inst)
    );
    let mut words = n.args().iter().skip(2);
    while let Some(w) = words.next() {
        let key = match w.as_str() {
            "id" | "maxlen" | "port" | "ttl" => w.as_str(),
            "group" => {
                match words.next() {
                    Some(g) => t += &format!("group = {}\n", s(g)),
                    None => out.warn(n, "group needs an address, dropped"),
                }
                continue;
            }
            other => {
                out.warn(
                    n,
                    format!("`{other}`: not an lvs_sync_daemon option, dropped"),
                );
                continue;
            }
        };
        match words.next().and_then(|v| toml_number(v, false)) {
            Some(v) => t += &format!("{key} = {v}\n"),
            None => out.warn(n, format!("{key} needs a number, dropped")),
        }
    }
    Some(t)
}

fn vrrp_instance(out: &mut Out, n: &Node, global_version: Option<&str>) {
    out.toml.push_str("\n[[vrrp_instance]]\n");
    match n.arg(0) {
        Some(name) => out.line("", "name", &s(name)),
        None => out.warn(n, "has no name"),
    }
    let interface = n
        .children()
        .iter()
        .find(|c| c.keyword() == "interface")
        .and_then(|c| c.arg(0).map(str::to_string));
    let mut has_version = false;
    let mut auth: Vec<(String, String)> = Vec::new();
    let mut vips: Vec<String> = Vec::new();
    let mut peers: Vec<String> = Vec::new();
    let mut tracks: Vec<(&str, Vec<String>)> = Vec::new();
    for c in n.children() {
        match c.keyword() {
            "track_script" | "track_interface" => {
                let entries = c
                    .children()
                    .iter()
                    .filter_map(|t| tracked(out, t, c.keyword() == "track_script"))
                    .collect();
                tracks.push((c.keyword(), entries));
            }
            "state" | "interface" | "unicast_src_ip" => out.string("", c, c.keyword()),
            "virtual_router_id" | "priority" => out.number("", c, c.keyword(), false),
            "advert_int" | "preempt_delay" => out.number("", c, c.keyword(), true),
            "version" => {
                has_version = true;
                out.number("", c, "version", false)
            }
            "nopreempt" => out.flag("", c, "nopreempt"),
            "notify_master" | "notify_backup" | "notify_fault" | "notify" => {
                out.script("", c, c.keyword())
            }
            "authentication" => {
                for a in c.children() {
                    match (a.keyword(), a.arg(0)) {
                        ("auth_type" | "auth_pass", Some(v)) => {
                            auth.push((a.keyword().to_string(), v.to_string()))
                        }
                        ("auth_type" | "auth_pass", None) => out.warn(a, "needs a value, dropped"),
                        _ => out.unsupported(a),
                    }
                }
            }
            "virtual_ipaddress" => {
                for v in c.children() {
                    vips.push(v.keyword().to_string());
                    let mut opts = v.args().iter();
                    while let Some(o) = opts.next() {
                        let val = opts.next();
                        match (o.as_str(), val) {
                            ("dev", Some(d)) if Some(d) == interface.as_ref() => {}
                            ("dev", Some(d)) => out.warn(
                                v,
                                format!(
                                    "dev {d}: lvsfwd adds the address on the instance's interface"
                                ),
                            ),
                            (o, Some(x)) => {
                                out.warn(v, format!("{o} {x}: not supported by lvsfwd, dropped"))
                            }
                            (o, None) => {
                                out.warn(v, format!("{o}: not supported by lvsfwd, dropped"))
                            }
                        }
                    }
                }
            }
            "unicast_peer" => {
                for p in c.children() {
                    peers.push(p.keyword().to_string());
                    if !p.args().is_empty() {
                        out.warn(p, "peer options are not supported by lvsfwd, dropped");
                    }
                }
            }
            _ => out.unsupported(c),
        }
    }
    if !has_version && let Some(v) = global_version {
        out.line("", "version", v);
    }
    for (k, v) in &auth {
        out.line("", k, &s(v));
    }
    if !vips.is_empty() {
        let list: Vec<String> = vips.iter().map(|v| s(v)).collect();
        out.line("", "virtual_ipaddress", &format!("[{}]", list.join(", ")));
    }
    if !peers.is_empty() {
        let list: Vec<String> = peers.iter().map(|v| s(v)).collect();
        out.line("", "unicast_peer", &format!("[{}]", list.join(", ")));
    }
    for (key, entries) in tracks {
        if !entries.is_empty() {
            out.line("", key, &format!("[{}]", entries.join(", ")));
        }
    }
}

/// One `track_script` / `track_interface` entry (`NAME [weight W]`) as a
/// TOML array element; `None` (reported) when it cannot be mapped.
/// `script`: a track_script entry (`weight W reverse|noreverse`), else a
/// track_interface one (lvsfwd has no reverse for it).
fn tracked(out: &mut Out, t: &Node, script: bool) -> Option<String> {
    let name = t.keyword();
    let (v, reverse) = match t.args() {
        [] => return Some(s(name)),
        [w, v] if w == "weight" => (v, None),
        [w, v, r] if w == "weight" && r == "noreverse" => (v, Some(false)),
        [w, v, r] if w == "weight" && r == "reverse" && script => (v, Some(true)),
        _ => {
            let only = if script {
                "`weight W [reverse|noreverse]`"
            } else {
                "`weight W` (no reverse)"
            };
            out.warn(
                t,
                format!(
                    "`{}`: only {only} is supported by lvsfwd, dropped",
                    t.args().join(" ")
                ),
            );
            return None;
        }
    };
    let Some(n) = toml_number(v, false) else {
        out.warn(t, format!("weight `{v}` is not a number, dropped"));
        return None;
    };
    Some(match reverse {
        None => format!("{{ name = {}, weight = {n} }}", s(name)),
        Some(r) => format!("{{ name = {}, weight = {n}, reverse = {r} }}", s(name)),
    })
}

/// `vrrp_script NAME { ... }` as `[[vrrp_script]]`.
fn vrrp_script(out: &mut Out, n: &Node) {
    out.toml.push_str("\n[[vrrp_script]]\n");
    match n.arg(0) {
        Some(name) => out.line("", "name", &s(name)),
        None => out.warn(n, "has no name"),
    }
    for c in n.children() {
        match c.keyword() {
            "script" => out.script("", c, "script"),
            "interval" | "timeout" => out.number("", c, c.keyword(), true),
            "fall" | "rise" => out.number("", c, c.keyword(), false),
            "weight" => match c.arg(1) {
                None | Some("noreverse") => out.number("", c, "weight", false),
                Some("reverse") => {
                    out.number("", c, "weight", false);
                    out.line("", "reverse", "true");
                }
                Some(o) => out.warn(c, format!("unknown weight option `{o}`, dropped")),
            },
            "init_fail" => out.flag("", c, "init_fail"),
            "user" => match (c.arg(0), c.arg(1)) {
                (Some(u), g) => {
                    out.keyword_line(c, "", "user", &s(u));
                    if let Some(g) = g {
                        out.line("", "group", &s(g));
                    }
                }
                (None, _) => out.warn(c, "needs a user, dropped"),
            },
            _ => out.unsupported(c),
        }
    }
}

/// `vrrp_sync_group NAME { group { ... } notify... }` as
/// `[[vrrp_sync_group]]`.
fn sync_group(out: &mut Out, n: &Node) {
    out.toml.push_str("\n[[vrrp_sync_group]]\n");
    match n.arg(0) {
        Some(name) => out.line("", "name", &s(name)),
        None => out.warn(n, "has no name"),
    }
    for c in n.children() {
        match c.keyword() {
            "group" => {
                let list: Vec<String> = c
                    .children()
                    .iter()
                    .flat_map(|m| std::iter::once(m.keyword().to_string()).chain(m.args().to_vec()))
                    .map(|m| s(&m))
                    .collect();
                out.keyword_line(c, "", "group", &format!("[{}]", list.join(", ")));
            }
            "notify_master" | "notify_backup" | "notify_fault" | "notify" => {
                out.script("", c, c.keyword())
            }
            _ => out.unsupported(c),
        }
    }
}

fn virtual_server(out: &mut Out, n: &Node) {
    let (Some(addr), Some(port)) = (n.arg(0), n.arg(1)) else {
        out.warn(n, "needs an address and a port, dropped");
        return;
    };
    if n.args().len() > 2 {
        out.warn(n, "extra words after the port, ignored");
    }
    // The real servers' port: the virtual server's; none for a group (each
    // member's) or a fwmark service (the packet's).
    let vport = match addr {
        "fwmark" => {
            let Some(mark) = toml_number(port, false) else {
                out.warn(n, format!("fwmark `{port}` is not a number, dropped"));
                return;
            };
            out.toml.push_str("\n[[virtual_server]]\n");
            out.line("", "fwmark", &mark);
            out.warn(
                n,
                format!(
                    "fwmark {mark}: the mark comes from iptables rules this import cannot \
                     read; add a [[fwmark]] rule with mark = {mark} and the frames it matches \
                     (e.g. match = [\"TCP VIP:80\", \"TCP VIP:443\"]) or nothing reaches \
                     this virtual server"
                ),
            );
            None
        }
        "group" => {
            out.toml.push_str("\n[[virtual_server]]\n");
            out.line("", "group", &s(port));
            None
        }
        _ => {
            out.toml.push_str("\n[[virtual_server]]\n");
            out.line("", "address", &s(&addr_port(addr, port)));
            Some(port)
        }
    };
    let kind_node = n
        .children()
        .iter()
        .rev()
        .find(|c| matches!(c.keyword(), "lb_kind" | "lvs_method"));
    let kind = kind_node
        .and_then(|c| c.arg(0))
        .unwrap_or("NAT")
        .to_string();
    // keepalived's real servers start from the virtual server's tunnel.
    let vs_tun = kind_node
        .and_then(|c| tunnel_words(out, c))
        .unwrap_or_default();
    let mut flags: Vec<&str> = Vec::new();
    for c in n.children() {
        match c.keyword() {
            "lb_algo" | "lvs_sched" => out.string("", c, "lb_algo"),
            "lb_kind" | "lvs_method" => out.string("", c, "lb_kind"),
            "protocol" => out.string("", c, "protocol"),
            "delay_loop" | "delay_before_retry" | "warmup" | "connect_timeout" => {
                out.number("", c, c.keyword(), true)
            }
            "retry" => out.number("", c, "retry", false),
            "virtualhost" => out.string("", c, "virtualhost"),
            "quorum" | "hysteresis" => out.number("", c, c.keyword(), false),
            "quorum_up" | "quorum_down" => out.script("", c, c.keyword()),
            "alpha" => out.boolean("", c, "alpha"),
            "persistence_timeout" => match c.arg(0) {
                None => out.line("", "persistence_timeout", "true"),
                Some(_) => out.number("", c, "persistence_timeout", false),
            },
            "persistence_granularity" => match c.arg(0) {
                Some(v) if toml_number(v, false).is_some() => out.line(
                    "",
                    "persistence_granularity",
                    &toml_number(v, false).unwrap_or_default(),
                ),
                Some(v) => out.line("", "persistence_granularity", &s(v)),
                None => out.warn(c, "needs a value, dropped"),
            },
            "sorry_server" => match (c.arg(0), c.arg(1)) {
                (Some(a), Some(p)) => out.line("", "sorry_server", &s(&addr_port(a, p))),
                (Some(a), None) => out.line("", "sorry_server", &s(a)),
                _ => out.warn(c, "needs an address, dropped"),
            },
            "ops" => out.flag("", c, "ops"),
            "sorry_server_inhibit" => out.boolean("", c, "sorry_server_inhibit"),
            "omega" => out.flag("", c, "omega"),
            "weight" => out.number("", c, "weight", false),
            "inhibit_on_failure" => out.flag("", c, "inhibit_on_failure"),
            "ha_suspend" => out.flag("", c, "ha_suspend"),
            "sorry_server_lvs_method" => {
                out.string("", c, "sorry_server_lvs_method");
                if let Some(t) = tunnel_words(out, c)
                    && t.kind != "ipip"
                {
                    out.warn(
                        c,
                        format!("a {} sorry server is not supported by lvsfwd (ipip only), the tunnel type is dropped", t.kind),
                    );
                }
            }
            "sh-port" | "sh-fallback" | "mh-port" | "mh-fallback" => flags.push(c.keyword()),
            "real_server" => {}
            _ => out.unsupported(c),
        }
    }
    if !flags.is_empty() {
        let list: Vec<String> = flags.iter().map(|f| s(f)).collect();
        out.line("", "sched_flags", &format!("[{}]", list.join(", ")));
    }
    if vs_tun.kind != "ipip"
        && let Some(c) = n.children().iter().find(|c| c.keyword() == "sorry_server")
    {
        let method = n
            .children()
            .iter()
            .rev()
            .find(|c| c.keyword() == "sorry_server_lvs_method")
            .and_then(|c| c.arg(0))
            .unwrap_or(&kind);
        if method == "TUN" {
            out.warn(
                c,
                format!(
                    "the sorry server's tunnel is ipip in lvsfwd, not the virtual server's {}",
                    vs_tun.kind
                ),
            );
        }
    }
    for rs in n.children().iter().filter(|c| c.keyword() == "real_server") {
        real_server(out, rs, vport, &kind, &vs_tun);
    }
}

/// A TUN server's tunnel as keepalived's `lvs_method TUN type T port P F`
/// words give it (`svr_forwarding_handler`).
#[derive(Clone, Debug, PartialEq, Eq)]
struct TunWords {
    kind: String,
    port: Option<u16>,
    flags: Option<String>,
}

impl Default for TunWords {
    fn default() -> TunWords {
        TunWords {
            kind: "ipip".into(),
            port: None,
            flags: None,
        }
    }
}

/// The tunnel of `lvs_method` / `lb_kind` line `c`: as keepalived's
/// `svr_forwarding_handler` reads it, each TUN line gives the whole tunnel
/// (ipip, no port, nocsum unless its words say otherwise). `None` for
/// another method, or when the words are wrong: a warning with
/// keepalived's reason names the line, and (as keepalived returns before
/// setting them) the server keeps the tunnel it had.
fn tunnel_words(out: &mut Out, c: &Node) -> Option<TunWords> {
    let args = c.args();
    if args.first().map(String::as_str) != Some("TUN") {
        if args.len() > 1 {
            out.warn(c, "tunnel options without TUN, ignored");
        }
        return None;
    }
    let mut t = TunWords::default();
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "type" => {
                match args.get(i + 1).map(String::as_str) {
                    Some(k @ ("ipip" | "gue" | "gre")) => t.kind = k.to_string(),
                    Some(k) => {
                        out.warn(c, format!("unknown tunnel type {k}, dropped"));
                        return None;
                    }
                    None => {
                        out.warn(c, "missing tunnel type, dropped");
                        return None;
                    }
                }
                i += 2;
            }
            "port" => {
                match args.get(i + 1).and_then(|p| p.parse::<u16>().ok()) {
                    Some(p) if p != 0 => t.port = Some(p),
                    _ => {
                        out.warn(c, "invalid gue tunnel port, dropped");
                        return None;
                    }
                }
                i += 2;
            }
            f @ ("nocsum" | "csum" | "remcsum") => {
                t.flags = Some(f.to_string());
                i += 1;
            }
            w => {
                out.warn(c, format!("invalid tunnel option {w}, dropped"));
                return None;
            }
        }
    }
    let flags = t.flags.as_deref().unwrap_or("nocsum");
    let why = if (t.kind == "gue") != t.port.is_some() {
        Some("gue tunnels require port, otherwise cannot have port")
    } else if t.kind == "ipip" && flags != "nocsum" {
        Some("ipip tunnels do not support checksum option")
    } else if t.kind == "gre" && flags == "remcsum" {
        Some("gre tunnels do not support remote checksum option")
    } else {
        None
    };
    if let Some(why) = why {
        out.warn(c, format!("{why}, dropped"));
        return None;
    }
    Some(t)
}

/// keepalived's `virtual_server_group NAME { ADDR[-END] PORT ... fwmark N }`
/// as a `[[virtual_server_group]]`.
fn vs_group(out: &mut Out, n: &Node) {
    let Some(name) = n.arg(0) else {
        out.warn(n, "needs a name, dropped");
        return;
    };
    let mut members: Vec<String> = Vec::new();
    for m in n.children() {
        match (m.keyword(), m.arg(0)) {
            ("fwmark", Some(mark)) => {
                members.push(s(&format!("fwmark {mark}")));
                out.warn(
                    m,
                    format!(
                        "fwmark {mark}: the mark comes from iptables rules this import cannot \
                         read; add a [[fwmark]] rule with mark = {mark}"
                    ),
                );
            }
            (addr, Some(port)) => members.push(s(&addr_port(addr, port))),
            (_, None) => out.warn(m, "group member without a port, dropped"),
        }
    }
    out.toml.push_str("\n[[virtual_server_group]]\n");
    out.line("", "name", &s(name));
    out.line("", "members", &format!("[{}]", members.join(", ")));
}

/// One real server; `vport` is the virtual server's port, `None` for a
/// group or fwmark virtual server (DR and TUN servers then take each
/// service's port and are written without one).
fn real_server(out: &mut Out, n: &Node, vport: Option<&str>, kind: &str, vs_tun: &TunWords) {
    let Some(addr) = n.arg(0) else {
        out.warn(n, "needs an address, dropped");
        return;
    };
    let dr_tun = matches!(kind, "DR" | "TUN");
    let address = match vport {
        Some(vport) => {
            let mut port = n.arg(1).unwrap_or(vport);
            if dr_tun && port != vport {
                out.warn(
                    n,
                    format!(
                        "port {port}: {kind} keeps the virtual server's port {vport} (IPVS ignores the real server's)"
                    ),
                );
                port = vport;
            }
            addr_port(addr, port)
        }
        None => match n.arg(1) {
            Some(port) if !dr_tun => addr_port(addr, port),
            _ => addr.to_string(),
        },
    };
    const I: &str = "  ";
    out.toml.push_str("\n  [[virtual_server.real_server]]\n");
    out.line(I, "address", &s(&address));
    let mut tun = vs_tun.clone();
    for c in n.children() {
        if !matches!(c.keyword(), "lvs_method" | "lb_kind") {
            continue;
        }
        if c.arg(0) != Some(kind) {
            out.warn(
                c,
                format!(
                    "a real server's own method ({}) is not supported by lvsfwd (one lb_kind per virtual server, {kind}), dropped",
                    c.arg(0).unwrap_or("")
                ),
            );
        } else if let Some(t) = tunnel_words(out, c) {
            tun = t;
        }
    }
    if kind == "TUN" && tun.kind != "ipip" {
        out.line(I, "tun_type", &s(&tun.kind));
        if let Some(p) = tun.port {
            out.line(I, "tun_port", &p.to_string());
        }
        if let Some(f) = &tun.flags {
            out.line(I, "tun_flags", &s(f));
        }
    }
    for c in n.children() {
        match c.keyword() {
            "lvs_method" | "lb_kind" => {}
            "weight" | "uthreshold" | "lthreshold" => out.number(I, c, c.keyword(), false),
            "inhibit_on_failure" => out.flag(I, c, "inhibit_on_failure"),
            "notify_up" | "notify_down" => out.script(I, c, c.keyword()),
            "retry" => out.number(I, c, "retry", false),
            "delay_before_retry" | "warmup" | "connect_timeout" | "delay_loop" => {
                out.number(I, c, c.keyword(), true)
            }
            "alpha" => out.boolean(I, c, "alpha"),
            "virtualhost" => out.string(I, c, "virtualhost"),
            kw if checker_table(kw).is_some() => {}
            _ => out.unsupported(c),
        }
    }
    for c in n.children() {
        let Some(table) = checker_table(c.keyword()) else {
            continue;
        };
        match c.keyword() {
            "SMTP_CHECK" => smtp_check(out, c),
            _ => checker(out, c, table, c.children(), &[]),
        }
    }
}

/// lb.toml's table of keepalived checker `kw`.
fn checker_table(kw: &str) -> Option<&'static str> {
    Some(match kw {
        "TCP_CHECK" => "tcp_check",
        "HTTP_GET" => "http_get",
        "SSL_GET" => "ssl_get",
        "DNS_CHECK" => "dns_check",
        "UDP_CHECK" => "udp_check",
        "PING_CHECK" => "ping_check",
        "SMTP_CHECK" => "smtp_check",
        "MISC_CHECK" => "misc_check",
        _ => return None,
    })
}

/// The keys every checker takes (connection keys except for MISC_CHECK);
/// false when `k` is not one.
fn common_key(out: &mut Out, k: &Node, network: bool) -> bool {
    const I: &str = "  ";
    match k.keyword() {
        "delay_before_retry" | "warmup" | "delay_loop" => out.number(I, k, k.keyword(), true),
        "retry" | "nb_get_retry" => out.number(I, k, "retry", false),
        "alpha" => out.boolean(I, k, "alpha"),
        "log_all_failures" => out.boolean(I, k, "log_all_failures"),
        "fwmark" if network => out.number(I, k, "fwmark", false),
        "connect_timeout" if network => out.number(I, k, "connect_timeout", true),
        "connect_port" | "bind_port" if network => out.number(I, k, k.keyword(), false),
        "connect_ip" | "bindto" | "bind_if" if network => out.string(I, k, k.keyword()),
        _ => return false,
    }
    true
}

/// The connection keys (SMTP_CHECK's `host` blocks hold only these).
fn is_connect_key(kw: &str) -> bool {
    matches!(
        kw,
        "connect_ip" | "connect_port" | "bindto" | "bind_port" | "bind_if" | "connect_timeout"
    )
}

/// One checker table; `extra` are lines written first (SMTP_CHECK's
/// helo_name for a `host` block).
fn checker(out: &mut Out, c: &Node, table: &str, keys: &[Node], extra: &[(&str, String)]) {
    const I: &str = "  ";
    if table == "http_get" || table == "ssl_get" {
        return http_get(out, c, table);
    }
    let _ = writeln!(out.toml, "  [[virtual_server.real_server.{table}]]");
    for (k, v) in extra {
        out.line(I, k, v);
    }
    let network = table != "misc_check";
    for k in keys {
        if common_key(out, k, network) {
            continue;
        }
        match (table, k.keyword()) {
            ("misc_check", "misc_path") => out.script(I, k, "misc_path"),
            ("misc_check", "misc_timeout") => out.number(I, k, "misc_timeout", true),
            ("misc_check", "misc_dynamic") => out.flag(I, k, "misc_dynamic"),
            ("misc_check", "user") => match (k.arg(0), k.arg(1)) {
                (Some(u), g) => {
                    out.keyword_line(k, I, "user", &s(u));
                    match g {
                        Some(g) => out.line(I, "group", &s(g)),
                        None => {
                            remove_key(&mut out.toml, "group");
                        }
                    }
                }
                (None, _) => out.warn(k, "needs a user, dropped"),
            },
            ("dns_check", "type") => out.string(I, k, "type"),
            ("dns_check", "name") => out.string(I, k, "name"),
            ("udp_check", "payload") => match k.args() {
                [] => out.warn(k, "needs a hex string, dropped"),
                a => out.keyword_line(k, I, "payload", &s(&a.join(" "))),
            },
            ("udp_check", "require_reply") => match k.args() {
                [] => out.keyword_line(k, I, "require_reply", "true"),
                a => out.keyword_line(k, I, "require_reply", &s(&a.join(" "))),
            },
            ("udp_check", "min_reply_length" | "max_reply_length") => {
                out.number(I, k, k.keyword(), false)
            }
            ("smtp_check", "helo_name") => out.string(I, k, "helo_name"),
            ("ping_check", "connect_port" | "bind_port") => {
                out.warn(k, "PING_CHECK has no port; dropped")
            }
            _ => out.unsupported(k),
        }
    }
}

/// SMTP_CHECK: its own checker, plus one per (deprecated) `host` block
/// with the same helo_name; when only `host` blocks give connection keys,
/// the first host is the checker itself (keepalived's smtp_check_end).
fn smtp_check(out: &mut Out, c: &Node) {
    let hosts: Vec<&Node> = c
        .children()
        .iter()
        .filter(|k| k.keyword() == "host")
        .collect();
    let own: Vec<Node> = c
        .children()
        .iter()
        .filter(|k| k.keyword() != "host")
        .cloned()
        .collect();
    let has_connect = own.iter().any(|k| is_connect_key(k.keyword()));
    let helo: Vec<(&str, String)> = own
        .iter()
        .rev()
        .find(|k| k.keyword() == "helo_name")
        .and_then(|k| k.arg(0))
        .map(|h| vec![("helo_name", s(h))])
        .unwrap_or_default();
    if hosts.is_empty() || has_connect {
        checker(out, c, "smtp_check", &own, &[]);
    }
    for (i, h) in hosts.iter().enumerate() {
        // The timers are the checker's; the host gives the connection.
        let mut keys: Vec<Node> = if i == 0 && !has_connect {
            own.iter()
                .filter(|k| k.keyword() != "helo_name")
                .cloned()
                .collect()
        } else {
            own.iter()
                .filter(|k| !is_connect_key(k.keyword()) && k.keyword() != "helo_name")
                .cloned()
                .collect()
        };
        for k in h.children() {
            if is_connect_key(k.keyword()) {
                keys.push(k.clone());
            } else {
                out.unsupported(k);
            }
        }
        checker(out, h, "smtp_check", &keys, &helo);
    }
}

/// HTTP_GET / SSL_GET (`table`).
fn http_get(out: &mut Out, c: &Node, table: &str) {
    const I: &str = "  ";
    let mut urls: Vec<String> = Vec::new();
    let mut body = String::new();
    let mut scratch = Out {
        toml: String::new(),
        warnings: Vec::new(),
    };
    for k in c.children() {
        match k.keyword() {
            "url" => {
                // (key, value) in order; a repeated keyword keeps its last
                // value, as keepalived does.
                let mut fields: Vec<(&str, String)> = Vec::new();
                let mut set = |scratch: &mut Out, u: &Node, key: &'static str, value: String| {
                    if let Some(f) = fields.iter_mut().find(|(k, _)| *k == key) {
                        f.1 = value;
                        scratch.warn(u, "given more than once; the last one is kept");
                    } else {
                        fields.push((key, value));
                    }
                };
                for u in k.children() {
                    match (u.keyword(), u.arg(0)) {
                        ("path", Some(v)) => set(&mut scratch, u, "path", s(v)),
                        ("digest", Some(v)) => set(&mut scratch, u, "digest", s(v)),
                        ("virtualhost", Some(v)) => set(&mut scratch, u, "virtualhost", s(v)),
                        // keepalived's regex is the rest of the line.
                        ("regex", Some(_)) => set(&mut scratch, u, "regex", s(&u.args().join(" "))),
                        ("regex_no_match", None) => {
                            set(&mut scratch, u, "regex_no_match", "true".into())
                        }
                        ("regex_options", Some(_)) => {
                            let list: Vec<String> = u.args().iter().map(|a| s(a)).collect();
                            set(
                                &mut scratch,
                                u,
                                "regex_options",
                                format!("[{}]", list.join(", ")),
                            )
                        }
                        ("status_code", Some(v))
                            if u.args().len() == 1 && toml_number(v, false).is_some() =>
                        {
                            let n = toml_number(v, false).unwrap_or_default();
                            set(&mut scratch, u, "status_code", n)
                        }
                        // Several codes or min-max ranges: keepalived's own
                        // syntax, kept as one string.
                        ("status_code", Some(_)) => {
                            set(&mut scratch, u, "status_code", s(&u.args().join(" ")))
                        }
                        ("path" | "digest" | "status_code" | "virtualhost" | "regex", _) => {
                            scratch.warn(u, "needs a valid value, dropped")
                        }
                        ("regex_no_match", Some(_)) => scratch.warn(u, "takes no value, dropped"),
                        ("tls_compliant", v) if table == "ssl_get" => {
                            match v.map(str::to_ascii_lowercase).as_deref() {
                                None | Some("true" | "on" | "yes") => {
                                    set(&mut scratch, u, "tls_compliant", "true".into())
                                }
                                Some("false" | "off" | "no") => {
                                    set(&mut scratch, u, "tls_compliant", "false".into())
                                }
                                Some(v) => {
                                    scratch.warn(u, format!("`{v}` is not true or false, dropped"))
                                }
                            }
                        }
                        _ => scratch.unsupported(u),
                    }
                }
                let fields: Vec<String> =
                    fields.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                urls.push(format!("{{ {} }}", fields.join(", ")));
            }
            "virtualhost" => scratch.string(I, k, "virtualhost"),
            "http_protocol" => scratch.string(I, k, "http_protocol"),
            "enable_sni" if table == "ssl_get" => scratch.boolean(I, k, "enable_sni"),
            "sni_name" if table == "ssl_get" => scratch.string(I, k, "sni_name"),
            "tls_compliant" if table == "ssl_get" => scratch.boolean(I, k, "tls_compliant"),
            "fast_recovery" => scratch.boolean(I, k, "fast_recovery"),
            _ => {
                if !common_key(&mut scratch, k, true) {
                    scratch.unsupported(k);
                }
            }
        }
    }
    body.push_str(&scratch.toml);
    out.warnings.append(&mut scratch.warnings);
    let _ = writeln!(out.toml, "  [[virtual_server.real_server.{table}]]");
    if urls.is_empty() {
        out.warn(c, "has no url; lb.toml needs at least one");
    }
    out.line(I, "url", &format!("[{}]", urls.join(", ")));
    out.toml.push_str(&body);
}

#[cfg(test)]
mod tests;
