//! The few DNS messages DNS_CHECK needs (RFC 1035 §4.1): a one-question
//! query, and the verdict keepalived draws from a response's header.
//!
//! Built by hand rather than with a DNS crate: the query is a 12-byte header
//! and one question, and the verdict reads three header fields (id, QR,
//! RCODE); nothing parses records.
//!
//! Query (keepalived's dns_make_query): a random id, only RD set, one
//! question of `qtype`, class IN, no other sections. The name is written
//! label by label; `""` and `"."` are the root, and a trailing dot is
//! allowed.
//!
//! Verdict (keepalived's dns_recv_thread): a datagram shorter than the
//! header, with another id, or that is not a response (QR clear) is not
//! the answer and the probe keeps waiting; a response with a non-zero
//! RCODE fails; any other response passes, whatever its answer sections.

/// The fixed header's length.
pub const HEADER_LEN: usize = 12;
/// Class IN.
pub const CLASS_IN: u16 = 1;
/// RD (recursion desired), in the flags word.
pub const FLAG_RD: u16 = 0x0100;
/// QR (this is a response), in the flags word.
pub const FLAG_QR: u16 = 0x8000;

/// Why a name cannot be queried.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("empty label")]
    EmptyLabel,
    #[error("a label is longer than 63 bytes")]
    LongLabel,
    #[error("the name is longer than 255 bytes")]
    LongName,
}

/// `name` in wire form (length-prefixed labels, then the root's 0).
pub fn encode_name(name: &str) -> Result<Vec<u8>, NameError> {
    let mut out = Vec::with_capacity(name.len() + 2);
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if !trimmed.is_empty() {
        for label in trimmed.split('.') {
            if label.is_empty() {
                return Err(NameError::EmptyLabel);
            }
            if label.len() > 63 {
                return Err(NameError::LongLabel);
            }
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
    }
    out.push(0);
    if out.len() > 255 {
        return Err(NameError::LongName);
    }
    Ok(out)
}

/// The query message for `name` / `qtype` with `id`.
pub fn query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, NameError> {
    let qname = encode_name(name)?;
    let mut m = Vec::with_capacity(HEADER_LEN + qname.len() + 4);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&FLAG_RD.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes()); // QDCOUNT
    m.extend_from_slice(&[0; 6]); // AN, NS, AR counts
    m.extend_from_slice(&qname);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(m)
}

/// What a received datagram means to a probe waiting for answer `id`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not our answer (too short, another id, not a response): keep waiting.
    Ignore,
    /// Our answer, RCODE NOERROR.
    Pass,
    /// Our answer with this RCODE.
    Fail(u8),
}

/// keepalived's reading of a response to query `id`.
pub fn verdict(id: u16, msg: &[u8]) -> Verdict {
    if msg.len() < HEADER_LEN {
        return Verdict::Ignore;
    }
    if u16::from_be_bytes([msg[0], msg[1]]) != id {
        return Verdict::Ignore;
    }
    let flags = u16::from_be_bytes([msg[2], msg[3]]);
    if flags & FLAG_QR == 0 {
        return Verdict::Ignore;
    }
    match (flags & 0x000f) as u8 {
        0 => Verdict::Pass,
        rc => Verdict::Fail(rc),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_written_label_by_label() {
        assert_eq!(encode_name("").unwrap(), [0]);
        assert_eq!(encode_name(".").unwrap(), [0]);
        assert_eq!(
            encode_name("www.example.").unwrap(),
            b"\x03www\x07example\x00".to_vec()
        );
        assert_eq!(
            encode_name("www.example").unwrap(),
            encode_name("www.example.").unwrap()
        );
        assert_eq!(encode_name("a..b"), Err(NameError::EmptyLabel));
        assert_eq!(encode_name(".a"), Err(NameError::EmptyLabel));
        assert_eq!(encode_name(&"x".repeat(64)), Err(NameError::LongLabel));
        let long = vec!["abcdefghij"; 24].join(".");
        assert_eq!(encode_name(&long), Err(NameError::LongName));
    }

    #[test]
    fn the_query_is_keepalived_s() {
        let q = query(0xbeef, "rig.test", 1).unwrap();
        assert_eq!(
            q,
            b"\xbe\xef\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03rig\x04test\x00\x00\x01\x00\x01"
                .to_vec()
        );
    }

    #[test]
    fn the_verdict_reads_id_qr_and_rcode() {
        let mut r = query(7, "", 6).unwrap();
        // The query itself (QR clear) is not an answer.
        assert_eq!(verdict(7, &r), Verdict::Ignore);
        r[2] |= 0x80;
        assert_eq!(verdict(7, &r), Verdict::Pass);
        assert_eq!(verdict(8, &r), Verdict::Ignore);
        assert_eq!(verdict(7, &r[..11]), Verdict::Ignore);
        r[3] |= 3; // NXDOMAIN
        assert_eq!(verdict(7, &r), Verdict::Fail(3));
        r[3] = (r[3] & 0xf0) | 5; // REFUSED
        assert_eq!(verdict(7, &r), Verdict::Fail(5));
    }
}
