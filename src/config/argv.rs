//! Script lines from lb.toml split into an argument vector: the crate's
//! one splitter, for `check` (which refuses a line it cannot split, with its
//! position), health checking's (`misc_path`, `notify_up`,
//! `quorum_up`...) and VRRP's (`notify_master`, `notify`...) alike.
//!
//! keepalived runs these scripts itself, without a shell: the line is cut
//! into words at blanks, and single quotes, double quotes and backslashes
//! group or escape characters as in a shell. This does the same and nothing
//! more: no variables, globbing, redirections or pipes, so that no data ever
//! reaches a shell. A line it cannot split (an unclosed quote, a trailing
//! backslash, no word at all) is refused, never run as a guess.

/// Why a command line was refused.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ArgvError {
    /// No word at all.
    Empty,
    /// A quote is never closed.
    UnclosedQuote,
    /// The line ends in a lone backslash.
    TrailingBackslash,
}

impl std::fmt::Display for ArgvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ArgvError::Empty => "empty command",
            ArgvError::UnclosedQuote => "unclosed quote",
            ArgvError::TrailingBackslash => "trailing backslash",
        })
    }
}

/// Splits `line` into words (see the module documentation).
pub fn split(line: &str) -> Result<Vec<String>, ArgvError> {
    let mut words = Vec::new();
    let mut cur = String::new();
    // A word exists once anything (even an empty quoted string) started it.
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\\' => {
                let n = chars.next().ok_or(ArgvError::TrailingBackslash)?;
                cur.push(n);
                in_word = true;
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        None => return Err(ArgvError::UnclosedQuote),
                        Some('\'') => break,
                        Some(x) => cur.push(x),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        None => return Err(ArgvError::UnclosedQuote),
                        Some('"') => break,
                        // Inside double quotes a backslash escapes only
                        // what a shell would let it escape.
                        Some('\\') => match chars.next() {
                            None => return Err(ArgvError::UnclosedQuote),
                            Some(x @ ('"' | '\\' | '$' | '`')) => cur.push(x),
                            Some(x) => {
                                cur.push('\\');
                                cur.push(x);
                            }
                        },
                        Some(x) => cur.push(x),
                    }
                }
            }
            c => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    if words.is_empty() {
        return Err(ArgvError::Empty);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_quotes_and_escapes() {
        let cases: [(&str, &[&str]); 5] = [
            ("/bin/x a  b", &["/bin/x", "a", "b"]),
            ("x 'a b' \"c d\"", &["x", "a b", "c d"]),
            ("x a\\ b", &["x", "a b"]),
            ("x '' \"\"", &["x", "", ""]),
            (
                "x 'it\\s' \"q\\\"q\" $HOME;|",
                &["x", "it\\s", "q\"q", "$HOME;|"],
            ),
        ];
        for (line, want) in cases {
            assert_eq!(split(line).unwrap(), want, "{line:?}");
        }
    }

    #[test]
    fn lines_that_cannot_be_split_are_refused() {
        assert_eq!(split(""), Err(ArgvError::Empty));
        assert_eq!(split(" \t "), Err(ArgvError::Empty));
        assert_eq!(split("x 'a b"), Err(ArgvError::UnclosedQuote));
        assert_eq!(split("x \"a b"), Err(ArgvError::UnclosedQuote));
        assert_eq!(split("x a\\"), Err(ArgvError::TrailingBackslash));
        assert_eq!(ArgvError::UnclosedQuote.to_string(), "unclosed quote");
    }
}
