//! popt's scanner over the option table: short options cluster (`-Ln`,
//! `-At VIP:80`), long options take `=VAL` or the next word, positional
//! words may appear anywhere (all of them after `--`).

use super::CmdError;
use super::options::{ArgKind, OptId};

/// One item of popt's scan: an option with its argument.
#[derive(Debug)]
pub(super) struct Scanned<'a> {
    pub(super) id: OptId,
    /// The option as written (for "invalid option" messages).
    pub(super) text: String,
    pub(super) arg: Option<&'a str>,
}

/// popt's scanner: yields options in order and collects positional words.
pub(super) struct Scanner<'a> {
    args: &'a [String],
    next: usize,
    /// Remaining characters of a short-option cluster, and its word.
    cluster: Option<(&'a str, usize)>,
    pub(super) positional: Vec<&'a str>,
    rest_positional: bool,
}

impl<'a> Scanner<'a> {
    pub(super) fn new(args: &'a [String]) -> Self {
        Scanner {
            args,
            next: 0,
            cluster: None,
            positional: Vec::new(),
            rest_positional: false,
        }
    }

    /// popt's error text for a missing argument.
    fn missing(text: &str) -> CmdError {
        CmdError::new(format!("{text}: missing argument"))
    }

    fn take_arg(&mut self, id: OptId, text: &str) -> Result<Option<&'a str>, CmdError> {
        match id.arg() {
            ArgKind::None => Ok(None),
            ArgKind::Required => match self.args.get(self.next) {
                Some(a) => {
                    self.next += 1;
                    Ok(Some(a.as_str()))
                }
                None => Err(Self::missing(text)),
            },
            ArgKind::Optional => match self.args.get(self.next) {
                Some(a) if !a.starts_with('-') => {
                    self.next += 1;
                    Ok(Some(a.as_str()))
                }
                _ => Ok(None),
            },
        }
    }

    /// The next option, `Ok(None)` at the end.
    pub(super) fn next_opt(&mut self) -> Result<Option<Scanned<'a>>, CmdError> {
        if let Some((word, pos)) = self.cluster.take() {
            return self.short(word, pos).map(Some);
        }
        loop {
            let Some(word) = self.args.get(self.next) else {
                return Ok(None);
            };
            let word = word.as_str();
            self.next += 1;
            if self.rest_positional || word == "-" || !word.starts_with('-') {
                self.positional.push(word);
                continue;
            }
            if word == "--" {
                self.rest_positional = true;
                continue;
            }
            if let Some(long) = word.strip_prefix("--") {
                return self.long(word, long).map(Some);
            }
            return self.short(word, 1).map(Some);
        }
    }

    /// The long option `word`, which is `--` and `long`.
    fn long(&mut self, word: &str, long: &'a str) -> Result<Scanned<'a>, CmdError> {
        let (name, inline) = match long.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (long, None),
        };
        let Some(id) = OptId::from_long(name) else {
            return Err(CmdError::new(format!("{word}: unknown option")));
        };
        let text = format!("--{name}");
        let arg = match (inline, id.arg()) {
            (Some(_), ArgKind::None) => {
                return Err(CmdError::new(format!(
                    "{text}: option does not take an argument"
                )));
            }
            (Some(v), _) => Some(v),
            (None, _) => self.take_arg(id, &text)?,
        };
        Ok(Scanned { id, text, arg })
    }

    /// The short option at byte `pos` of the cluster `word`.
    fn short(&mut self, word: &'a str, pos: usize) -> Result<Scanned<'a>, CmdError> {
        let rest = &word[pos..];
        let Some(c) = rest.chars().next() else {
            return Err(CmdError::new(format!("{word}: unknown option")));
        };
        let after = pos + c.len_utf8();
        let text = format!("-{c}");
        let Some(id) = OptId::from_short(c) else {
            return Err(CmdError::new(format!("{text}: unknown option")));
        };
        let tail = &word[after..];
        let arg = if id.arg() != ArgKind::None && !tail.is_empty() {
            // popt: the rest of the cluster is the argument (`-p60`, `-ttcp`).
            Some(tail)
        } else {
            if !tail.is_empty() {
                self.cluster = Some((word, after));
            }
            self.take_arg(id, &text)?
        };
        Ok(Scanned { id, text, arg })
    }
}
