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
//! - `include` is not followed: [`import`] is pure (text in, text out), and
//!   a glob of files would need the file system; each include is reported.
//! - `nb_get_retry` is written as `retry` (its current keepalived name).
//! - `lvs_sched`/`lvs_method` are keepalived's aliases of `lb_algo` and
//!   `lb_kind`; `sh-port`, `sh-fallback`, `mh-port`, `mh-fallback` become
//!   `sched_flags`.
//! - `vrrp_version` of `global_defs` becomes each instance's `version`
//!   unless the instance sets its own.
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
//! Not done: fwmark and group virtual servers, vrrp_script/track_*, sync
//! groups, SSL_GET/SMTP_CHECK/DNS_CHECK, notification e-mail: all reported.

use std::fmt::{self, Write};

/// A keepalived keyword that could not be mapped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// 1-based line in keepalived.conf.
    pub line: usize,
    pub keyword: String,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}: {}", self.line, self.keyword, self.message)
    }
}

/// One statement: a keyword, its values, and its block if it has one.
#[derive(Clone, Debug, PartialEq)]
struct Node {
    line: usize,
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

/// Builds the statement tree; brace errors become warnings.
fn parse_tree(text: &str, warnings: &mut Vec<Warning>) -> Vec<Node> {
    // Stack of open blocks; the bottom is the file.
    let mut stack: Vec<(Vec<Node>, Option<Node>)> = vec![(Vec::new(), None)];
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let mut words: Vec<String> = Vec::new();
        for tok in tokenize(line) {
            match tok {
                Tok::Word(w) => words.push(w),
                Tok::Open => {
                    let top = stack.last_mut().map(|t| &mut t.0);
                    let node = if !words.is_empty() {
                        Node {
                            line: line_no,
                            words: std::mem::take(&mut words),
                            block: None,
                        }
                    } else if let Some(prev) = top.and_then(|t| t.pop_if(|n| n.block.is_none())) {
                        // `{` alone on the line after its keyword.
                        prev
                    } else {
                        warnings.push(Warning {
                            line: line_no,
                            keyword: "{".into(),
                            message: "block without a keyword, ignored".into(),
                        });
                        Node {
                            line: line_no,
                            words: Vec::new(),
                            block: None,
                        }
                    };
                    stack.push((Vec::new(), Some(node)));
                }
                Tok::Close => {
                    if !words.is_empty() {
                        let n = Node {
                            line: line_no,
                            words: std::mem::take(&mut words),
                            block: None,
                        };
                        if let Some(t) = stack.last_mut() {
                            t.0.push(n);
                        }
                    }
                    if stack.len() == 1 {
                        warnings.push(Warning {
                            line: line_no,
                            keyword: "}".into(),
                            message: "closes no block, ignored".into(),
                        });
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
            t.0.push(Node {
                line: line_no,
                words,
                block: None,
            });
        }
    }
    while stack.len() > 1 {
        if let Some((children, Some(mut node))) = stack.pop() {
            warnings.push(Warning {
                line: node.line,
                keyword: node.keyword().to_string(),
                message: "block is not closed before the end of the file".into(),
            });
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
    warnings: Vec<Warning>,
}

impl Out {
    fn warn(&mut self, n: &Node, message: impl Into<String>) {
        self.warnings.push(Warning {
            line: n.line,
            keyword: n.keyword().to_string(),
            message: message.into(),
        });
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
pub fn import(text: &str) -> (String, Vec<Warning>) {
    let mut out = Out {
        toml: String::from("# Converted from keepalived.conf by lvsfwd import-keepalived.\n"),
        warnings: Vec::new(),
    };
    let tree = parse_tree(text, &mut out.warnings);

    let mut router_id: Option<String> = None;
    let mut vrrp_version: Option<String> = None;
    let mut script_user: Option<(String, Option<String>)> = None;
    let mut sync_daemon: Option<String> = None;
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
                        "lvs_sync_daemon" => sync_daemon = sync_daemon_toml(&mut out, c),
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
            "vrrp_instance" | "virtual_server" => {}
            "include" => out.warn(
                n,
                "not followed; import the included files separately and merge them",
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
    if router_id.is_some() || first_if.is_some() || script_user.is_some() || sync_daemon.is_some() {
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
        if let Some(i) = &first_if {
            let _ = writeln!(
                out.toml,
                "interface = {}   # the first vrrp_instance's interface",
                s(i)
            );
        }
        if let Some(t) = &sync_daemon {
            out.toml.push_str(t);
        }
    }
    for n in tree.iter().filter(|n| n.keyword() == "vrrp_instance") {
        vrrp_instance(&mut out, n, vrrp_version.as_deref());
    }
    for n in tree.iter().filter(|n| n.keyword() == "virtual_server") {
        virtual_server(&mut out, n);
    }
    out.warnings.sort_by_key(|w| w.line);
    (out.toml, out.warnings)
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
    for c in n.children() {
        match c.keyword() {
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
}

fn virtual_server(out: &mut Out, n: &Node) {
    let (Some(addr), Some(port)) = (n.arg(0), n.arg(1)) else {
        out.warn(n, "needs an address and a port, dropped");
        return;
    };
    if addr == "fwmark" || addr == "group" {
        out.warn(
            n,
            format!("{addr} virtual servers are not supported by lvsfwd, dropped"),
        );
        return;
    }
    if n.args().len() > 2 {
        out.warn(n, "extra words after the port, ignored");
    }
    out.toml.push_str("\n[[virtual_server]]\n");
    out.line("", "address", &s(&addr_port(addr, port)));
    let kind = n
        .children()
        .iter()
        .rev()
        .find(|c| matches!(c.keyword(), "lb_kind" | "lvs_method"))
        .and_then(|c| c.arg(0))
        .unwrap_or("NAT")
        .to_string();
    let mut flags: Vec<&str> = Vec::new();
    for c in n.children() {
        match c.keyword() {
            "lb_algo" | "lvs_sched" => out.string("", c, "lb_algo"),
            "lb_kind" | "lvs_method" => out.string("", c, "lb_kind"),
            "protocol" => out.string("", c, "protocol"),
            "delay_loop" => out.number("", c, "delay_loop", true),
            "quorum" | "hysteresis" => out.number("", c, c.keyword(), false),
            "quorum_up" | "quorum_down" => out.script("", c, c.keyword()),
            "alpha" => out.flag("", c, "alpha"),
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
            "sh-port" | "sh-fallback" | "mh-port" | "mh-fallback" => flags.push(c.keyword()),
            "real_server" => {}
            _ => out.unsupported(c),
        }
    }
    if !flags.is_empty() {
        let list: Vec<String> = flags.iter().map(|f| s(f)).collect();
        out.line("", "sched_flags", &format!("[{}]", list.join(", ")));
    }
    for rs in n.children().iter().filter(|c| c.keyword() == "real_server") {
        real_server(out, rs, port, &kind);
    }
}

fn real_server(out: &mut Out, n: &Node, vport: &str, kind: &str) {
    let Some(addr) = n.arg(0) else {
        out.warn(n, "needs an address, dropped");
        return;
    };
    let mut port = n.arg(1).unwrap_or(vport);
    if matches!(kind, "DR" | "TUN") && port != vport {
        out.warn(
            n,
            format!(
                "port {port}: {kind} keeps the virtual server's port {vport} (IPVS ignores the real server's)"
            ),
        );
        port = vport;
    }
    const I: &str = "  ";
    out.toml.push_str("\n  [[virtual_server.real_server]]\n");
    out.line(I, "address", &s(&addr_port(addr, port)));
    for c in n.children() {
        match c.keyword() {
            "weight" | "uthreshold" | "lthreshold" => out.number(I, c, c.keyword(), false),
            "inhibit_on_failure" => out.flag(I, c, "inhibit_on_failure"),
            "notify_up" | "notify_down" => out.script(I, c, c.keyword()),
            "TCP_CHECK" | "HTTP_GET" | "MISC_CHECK" => {}
            _ => out.unsupported(c),
        }
    }
    let mut seen: Vec<&str> = Vec::new();
    for c in n.children() {
        let kw = c.keyword();
        if !matches!(kw, "TCP_CHECK" | "HTTP_GET" | "MISC_CHECK") {
            continue;
        }
        if seen.contains(&kw) {
            out.warn(
                c,
                "lvsfwd takes one checker of each kind per real_server; dropped",
            );
            continue;
        }
        seen.push(kw);
        match kw {
            "TCP_CHECK" => {
                out.toml
                    .push_str("  [virtual_server.real_server.tcp_check]\n");
                for k in c.children() {
                    if !connect_key(out, k) {
                        out.unsupported(k);
                    }
                }
            }
            "HTTP_GET" => http_get(out, c),
            _ => {
                out.toml
                    .push_str("  [virtual_server.real_server.misc_check]\n");
                for k in c.children() {
                    match k.keyword() {
                        "misc_path" => out.script(I, k, "misc_path"),
                        "misc_timeout" => out.number(I, k, "misc_timeout", true),
                        "misc_dynamic" => out.flag(I, k, "misc_dynamic"),
                        _ => out.unsupported(k),
                    }
                }
            }
        }
    }
}

/// The keys TCP_CHECK and HTTP_GET share; false when `k` is not one.
fn connect_key(out: &mut Out, k: &Node) -> bool {
    const I: &str = "  ";
    match k.keyword() {
        "connect_timeout" | "delay_before_retry" => out.number(I, k, k.keyword(), true),
        "connect_port" => out.number(I, k, "connect_port", false),
        "retry" | "nb_get_retry" => out.number(I, k, "retry", false),
        "connect_ip" => out.string(I, k, "connect_ip"),
        "bindto" => out.string(I, k, "bindto"),
        _ => return false,
    }
    true
}

fn http_get(out: &mut Out, c: &Node) {
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
                        ("path" | "digest" | "status_code", _) => {
                            scratch.warn(u, "needs a valid value, dropped")
                        }
                        _ => scratch.unsupported(u),
                    }
                }
                let fields: Vec<String> =
                    fields.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                urls.push(format!("{{ {} }}", fields.join(", ")));
            }
            "virtualhost" => scratch.string(I, k, "virtualhost"),
            _ => {
                if !connect_key(&mut scratch, k) {
                    scratch.unsupported(k);
                }
            }
        }
    }
    body.push_str(&scratch.toml);
    out.warnings.append(&mut scratch.warnings);
    out.toml
        .push_str("  [virtual_server.real_server.http_get]\n");
    if urls.is_empty() {
        out.warn(c, "has no url; lb.toml needs at least one");
    }
    out.line(I, "url", &format!("[{}]", urls.join(", ")));
    out.toml.push_str(&body);
}

#[cfg(test)]
mod tests;
