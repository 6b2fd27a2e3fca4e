//! `include PATTERN` followed as keepalived's parser (lib/parser.c) does:
//!
//! - A line whose first word is `include` (or its variants `includer`,
//!   `includem`, `includew`, `includeb`, `includea`, which differ only in
//!   which problems keepalived counts as configuration errors) is replaced
//!   by the lines of the files its pattern names, wherever it stands, even
//!   inside a block: keepalived splices text, not statements.
//! - The pattern is a glob(3) pattern with `GLOB_BRACE`: `*`, `?`,
//!   `[...]`, `{a,b}`; a leading `.` is matched only literally; the
//!   matches of each brace alternative are read in sorted order, the
//!   alternatives in the order written.
//! - A relative pattern is relative to the directory of the file holding
//!   the include: keepalived `chdir`s to the directory of each file it
//!   opens (the top file's too) and globs from there.
//! - A pattern with no match, a directory, a file that is not regular or
//!   is executable, a file that cannot be read: keepalived logs it and goes
//!   on; each is a [`Warning`] with the include's file and line.
//! - keepalived has no include loop check (a file including itself is
//!   read again until `fopen` fails for want of descriptors); here a file
//!   already being read is not read again, with a warning, and nesting
//!   stops at [`MAX_DEPTH`] files.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use glob::{MatchOptions, Pattern};

use super::{Origin, Placed, SrcLine, Warning, import_lines, placed};

/// Files open at once along one include chain, the top file included.
pub const MAX_DEPTH: usize = 32;

/// Converts the keepalived.conf at `path` into lb.toml text, following its
/// includes; every warning names the file and line it comes from. Only
/// the top file not being readable is an error.
pub fn import_file(path: &Path) -> std::io::Result<(String, Vec<Warning>)> {
    let text = std::fs::read_to_string(path)?;
    let mut sp = Splicer::default();
    sp.file(Rc::from(path), &text);
    Ok(import_lines(&sp.lines, sp.warnings))
}

#[derive(Default)]
struct Splicer {
    lines: Vec<SrcLine>,
    warnings: Vec<Placed>,
    /// The files being read (canonical paths), outermost first.
    chain: Vec<PathBuf>,
}

impl Splicer {
    fn warn(&mut self, at: &Origin, keyword: &str, message: impl Into<String>) {
        let seq = self.lines.len();
        self.warnings.push(placed(seq, at, keyword, message));
    }

    fn file(&mut self, path: Rc<Path>, text: &str) {
        self.chain
            .push(std::fs::canonicalize(&path).unwrap_or_else(|_| path.to_path_buf()));
        let dir = path.parent().unwrap_or(Path::new("")).to_path_buf();
        for (i, line) in text.lines().enumerate() {
            let at = Origin {
                file: Some(path.clone()),
                line: i + 1,
            };
            match include_line(line) {
                Some((keyword, pattern)) => self.include(&at, &keyword, &pattern, &dir),
                None => self.lines.push(SrcLine {
                    at,
                    text: line.to_string(),
                }),
            }
        }
        self.chain.pop();
    }

    fn include(&mut self, at: &Origin, keyword: &str, pattern: &str, dir: &Path) {
        let mut matched = 0;
        for alt in expand_braces(pattern) {
            // The directory is literal text, the pattern is not.
            let full = if Path::new(&alt).is_absolute() || dir.as_os_str().is_empty() {
                alt.clone()
            } else {
                format!("{}/{alt}", Pattern::escape(&dir.to_string_lossy()))
            };
            let paths = match glob::glob_with(&full, OPTIONS) {
                Ok(paths) => paths,
                Err(e) => {
                    self.warn(at, keyword, format!("bad pattern `{alt}`: {e}, skipped"));
                    continue;
                }
            };
            for entry in paths {
                match entry {
                    Ok(p) => {
                        matched += 1;
                        self.read(at, keyword, &p);
                    }
                    Err(e) => self.warn(at, keyword, format!("{e}, skipped")),
                }
            }
        }
        if matched == 0 {
            self.warn(
                at,
                keyword,
                format!("no file matches `{pattern}`; skipped, as keepalived does"),
            );
        }
    }

    /// Reads one match of an include's pattern, as keepalived's
    /// `check_glob_file` and `open_conf_file` accept it.
    fn read(&mut self, at: &Origin, keyword: &str, p: &Path) {
        let shown = p.display();
        let meta = match std::fs::metadata(p) {
            Ok(m) => m,
            Err(e) => return self.warn(at, keyword, format!("{shown}: {e}, skipped")),
        };
        if meta.is_dir() {
            return self.warn(at, keyword, format!("{shown} is a directory, skipped"));
        }
        {
            use std::os::unix::fs::PermissionsExt;
            if !meta.is_file() || meta.permissions().mode() & 0o111 != 0 {
                let msg = format!("{shown} is not a regular non-executable file, skipped");
                return self.warn(at, keyword, msg);
            }
        }
        let canon = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        if self.chain.contains(&canon) {
            let msg = format!("{shown} is already being read (an include loop), not read again");
            return self.warn(at, keyword, msg);
        }
        if self.chain.len() >= MAX_DEPTH {
            let msg = format!("{shown}: includes nested deeper than {MAX_DEPTH} files, skipped");
            return self.warn(at, keyword, msg);
        }
        match std::fs::read_to_string(p) {
            Ok(text) => self.file(Rc::from(p), &text),
            Err(e) => self.warn(at, keyword, format!("{shown}: {e}, skipped")),
        }
    }
}

/// glob(3) without flags beyond `GLOB_BRACE`: case-sensitive, `*` does not
/// cross `/`, a leading `.` only literally.
const OPTIONS: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: true,
};

/// `(keyword, pattern)` when `line` is an include. As keepalived's
/// `decomment` and `check_include` read it: a `!` or `#` outside double
/// quotes ends the line (`\#`, `\!` are the characters), the first word is
/// `include` or a variant, and the pattern is the rest of the line, braces
/// and quotes included.
fn include_line(line: &str) -> Option<(String, String)> {
    let mut text = String::with_capacity(line.len());
    let mut quote = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => quote = !quote,
            '\\' if !quote && matches!(chars.peek(), Some('#' | '!')) => {
                text.extend(chars.next());
                continue;
            }
            '!' | '#' if !quote => break,
            _ => {}
        }
        text.push(c);
    }
    let text = text.trim_matches([' ', '\t']);
    let (kw, rest) = text.split_once([' ', '\t'])?;
    let variant = kw.strip_prefix("include")?;
    let pattern = rest.trim_start_matches([' ', '\t']);
    if !matches!(variant, "" | "r" | "m" | "w" | "b" | "a") || pattern.is_empty() {
        return None;
    }
    Some((kw.to_string(), pattern.to_string()))
}

/// glibc's `GLOB_BRACE` expansion: `a{b,c{d,e}}f` is `abf`, `acdf`, `acef`,
/// in that order; a `{` without its `}` is literal.
fn expand_braces(pattern: &str) -> Vec<String> {
    let b = pattern.as_bytes();
    let Some(open) = b.iter().position(|&c| c == b'{') else {
        return vec![pattern.to_string()];
    };
    // The matching `}` and the top-level commas between.
    let mut depth = 0;
    let mut commas = Vec::new();
    let mut close = None;
    for (i, &c) in b.iter().enumerate().skip(open + 1) {
        match c {
            b'{' => depth += 1,
            b'}' if depth == 0 => {
                close = Some(i);
                break;
            }
            b'}' => depth -= 1,
            b',' if depth == 0 => commas.push(i),
            _ => {}
        }
    }
    let Some(close) = close else {
        return vec![pattern.to_string()];
    };
    let (head, tail) = (&pattern[..open], &pattern[close + 1..]);
    let mut starts = vec![open + 1];
    starts.extend(commas.iter().map(|c| c + 1));
    let mut ends = commas.clone();
    ends.push(close);
    starts
        .iter()
        .zip(&ends)
        .flat_map(|(&s, &e)| expand_braces(&format!("{head}{}{tail}", &pattern[s..e])))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn put(dir: &Path, name: &str, text: &str) {
        let p = dir.join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    /// (file name relative to `dir`, line, keyword) of each warning.
    fn places<'a>(dir: &Path, w: &'a [Warning]) -> Vec<(String, usize, &'a str)> {
        w.iter()
            .map(|w| {
                let f = w.file.as_deref().unwrap();
                let f = f.strip_prefix(dir).unwrap_or(f);
                (f.display().to_string(), w.line, w.keyword.as_str())
            })
            .collect()
    }

    #[test]
    fn include_line_and_braces() {
        assert_eq!(
            include_line("  include conf.d/*.conf  # x"),
            Some(("include".into(), "conf.d/*.conf".into()))
        );
        assert_eq!(
            include_line("includew /a/b"),
            Some(("includew".into(), "/a/b".into()))
        );
        assert_eq!(include_line("include"), None);
        assert_eq!(include_line("includex a"), None);
        assert_eq!(include_line("include_x a"), None);
        assert_eq!(
            include_line("include a/{b,c}.conf"),
            Some(("include".into(), "a/{b,c}.conf".into()))
        );
        assert_eq!(
            include_line("\tincluder a\\#1.conf!x"),
            Some(("includer".into(), "a#1.conf".into()))
        );
        assert_eq!(
            expand_braces("a{b,c{d,e}}f"),
            ["abf", "acdf", "acef"].map(String::from)
        );
        assert_eq!(expand_braces("a{b,c"), ["a{b,c"].map(String::from));
        assert_eq!(expand_braces("x{,y}"), ["x", "xy"].map(String::from));
    }

    /// A glob, a relative include in a subdirectory, a nested include, a
    /// brace pattern, an include inside a block, a missing file, a loop,
    /// a directory and an executable matched by a glob.
    #[test]
    fn include_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        put(
            d,
            "keepalived.conf",
            "global_defs {\n router_id A\n}\ninclude conf.d/*.conf\n\
             include missing/*.conf\ninclude keepalived.conf\n\
             include extra/{b,a}.conf\n",
        );
        // conf.d/10-vs.conf includes a file relative to conf.d, not to the
        // top file's directory.
        put(
            d,
            "conf.d/10-vs.conf",
            "virtual_server 198.18.0.250 80 {\n lb_algo rr\n include rs/*.inc\n}\n",
        );
        put(
            d,
            "conf.d/rs/1.inc",
            "real_server 198.18.0.1 80 {\n weight 2\n}\nbogus_rs 1\n",
        );
        put(d, "conf.d/rs/2.inc", "include ../20-loop.conf\n");
        put(d, "conf.d/20-loop.conf", "include rs/2.inc\nbogus_loop 1\n");
        put(d, "conf.d/.hidden.conf", "bogus_hidden 1\n");
        fs::create_dir(d.join("conf.d/30-dir.conf")).unwrap();
        put(d, "conf.d/40-exec.conf", "bogus_exec 1\n");
        let exec = d.join("conf.d/40-exec.conf");
        fs::set_permissions(&exec, fs::Permissions::from_mode(0o755)).unwrap();
        put(d, "extra/a.conf", "bogus_a 1\n");
        put(d, "extra/b.conf", "bogus_b 1\n");

        let (toml, w) = import_file(&d.join("keepalived.conf")).unwrap();
        assert!(toml.contains("router_id = \"A\""), "{toml}");
        assert!(toml.contains("lb_algo = \"rr\""), "{toml}");
        assert!(toml.contains("address = \"198.18.0.1:80\""), "{toml}");
        assert!(toml.contains("weight = 2"), "{toml}");
        assert_eq!(
            places(d, &w),
            [
                // Inside virtual_server: 1.inc, then 2.inc -> 20-loop.conf,
                // whose include of 2.inc is the loop.
                ("conf.d/rs/1.inc".into(), 4, "bogus_rs"),
                ("conf.d/rs/../20-loop.conf".into(), 1, "include"),
                ("conf.d/rs/../20-loop.conf".into(), 2, "bogus_loop"),
                // conf.d's glob: 20-loop.conf read again at top level (no
                // longer on the chain), then the directory, the executable.
                ("conf.d/rs/2.inc".into(), 1, "include"),
                ("conf.d/20-loop.conf".into(), 2, "bogus_loop"),
                ("keepalived.conf".into(), 4, "include"),
                ("keepalived.conf".into(), 4, "include"),
                ("keepalived.conf".into(), 5, "include"),
                ("keepalived.conf".into(), 6, "include"),
                ("extra/b.conf".into(), 1, "bogus_b"),
                ("extra/a.conf".into(), 1, "bogus_a"),
            ],
            "{w:#?}"
        );
        let msgs: Vec<&str> = w.iter().map(|w| w.message.as_str()).collect();
        assert!(msgs[1].contains("include loop"), "{msgs:?}");
        assert!(msgs[3].contains("include loop"), "{msgs:?}");
        assert!(msgs[5].contains("30-dir.conf is a directory"), "{msgs:?}");
        assert!(
            msgs[6].contains("40-exec.conf is not a regular"),
            "{msgs:?}"
        );
        assert!(
            msgs[7].contains("no file matches `missing/*.conf`"),
            "{msgs:?}"
        );
        assert!(
            msgs[8].contains("keepalived.conf is already being read"),
            "{msgs:?}"
        );
        // The hidden file is not matched by `*`.
        assert!(!msgs.iter().any(|m| m.contains("hidden")), "{msgs:?}");
    }

    #[test]
    fn nesting_stops_at_the_depth_limit() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        for i in 0..MAX_DEPTH + 5 {
            put(
                d,
                &format!("{i}.conf"),
                &format!("include {}.conf\n", i + 1),
            );
        }
        let (_, w) = import_file(&d.join("0.conf")).unwrap();
        assert_eq!(w.len(), 1, "{w:#?}");
        assert_eq!(
            w[0].file.as_deref(),
            Some(d.join(format!("{}.conf", MAX_DEPTH - 1)).as_path())
        );
        assert!(w[0].message.contains("nested deeper than 32"), "{w:?}");
    }

    #[test]
    fn an_unreadable_top_file_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(import_file(&tmp.path().join("none.conf")).is_err());
    }
}
