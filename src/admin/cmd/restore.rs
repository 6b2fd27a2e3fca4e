//! `-R`: commands on stdin, one a line, as `-S` writes them (ipvsadm's
//! `config_stream_read`).

use super::build::parse_line;
use super::{AdminCommand, CmdError, PROGRAM};

/// Splits one `-R` line into words as ipvsadm's `config_stream_read`
/// does (white space separated; a word `ipvsadm` is dropped so that saved
/// shell lines restore). lvsfwd also drops `lvsadm` and treats a word
/// starting with `#` as the start of a comment.
fn restore_words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    for w in line.split([' ', '\t', '\r']) {
        if w.is_empty() || w == "ipvsadm" || w == PROGRAM {
            continue;
        }
        if w.starts_with('#') {
            break;
        }
        out.push(w.to_string());
    }
    out
}

/// Parses `-R` input: one command per line, as `-S` writes them. Blank
/// lines are skipped. The first bad line is returned with its 1-based
/// number; nothing is applied by parsing.
pub fn parse_restore(text: &str) -> Result<Vec<AdminCommand>, (usize, CmdError)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let words = restore_words(line);
        if words.is_empty() {
            continue;
        }
        out.push(parse_line(&words, true).map_err(|e| (i + 1, e))?);
    }
    Ok(out)
}
