use aws_lc_rs::hmac;

use crate::{Error, Result};

/// Keyed deterministic tokens (HMAC-SHA256, truncated to 128 bits, hex) for emails and phones:
/// equal inputs give equal tokens, so analysts count and join people without the plaintext, and
/// nobody without the token key can test a guess.
#[derive(Clone)]
pub struct Tokenizer {
    key: hmac::Key,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokenizer(..)")
    }
}

impl Tokenizer {
    /// A tokenizer from the secret token key (at least 32 bytes of text).
    pub fn new(secret: &str) -> Result<Self> {
        if secret.len() < 32 {
            return Err(Error::TokenKey(format!("is {} bytes; at least 32 are needed", secret.len())));
        }
        Ok(Self { key: hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()) })
    }

    /// The token of `value` after [`normalize`].
    pub fn token(&self, value: &str) -> String {
        let tag = hmac::sign(&self.key, normalize(value).as_bytes());
        hex(&tag.as_ref()[..16])
    }
}

/// Lower-case hex of `bytes` (tokens and key ids are made for every record: no `format!` per byte).
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 0xf) as usize] as char);
    }
    out
}

/// The canonical form tokens are computed from: trimmed and lower-cased; a phone number (no
/// `@`) also loses spaces, dashes, dots and parentheses, so `+212 6-12` and `+2126 12` match.
pub fn normalize(value: &str) -> String {
    let v = value.trim().to_lowercase();
    if v.contains('@') { v } else { v.chars().filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')')).collect() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_keyed_deterministic_and_normalised() {
        let t = Tokenizer::new("0123456789abcdef0123456789abcdef").unwrap();
        let u = Tokenizer::new("another key of at least 32 bytes!!").unwrap();
        assert_eq!(t.token("Ana@Example.ma "), t.token("ana@example.ma"));
        assert_eq!(t.token("+212 6-12.34"), t.token("+212612 34"));
        assert_ne!(t.token("ana@example.ma"), u.token("ana@example.ma"));
        assert_ne!(t.token("ana@example.ma"), t.token("ana@example.com"));
        assert_eq!(t.token("x").len(), 32);
        assert!(Tokenizer::new("short").is_err());
    }
}
