//! Webhook signature checks: HMAC-SHA256 compared in constant time, timestamps within a
//! tolerance. The store signs `"<t>.<body>"` in `X-Alkasba-Signature: t=<unix>,v1=<hex>`
//! (WooCommerce's own `X-WC-Webhook-Signature` signs no timestamp, so alone it cannot stop a
//! replay; when present it must match too).

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Header with the timestamped signature.
pub const SIGNATURE_HEADER: &str = "x-alkasba-signature";
/// WooCommerce's body-only signature (base64).
pub const WOO_SIGNATURE_HEADER: &str = "x-wc-webhook-signature";

/// Why a delivery's signature was refused (each becomes a 401 with this text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing {SIGNATURE_HEADER} header")]
    Missing,
    #[error("{SIGNATURE_HEADER} is not of the form t=<unix seconds>,v1=<64 hex digits>")]
    Malformed,
    #[error("signature does not match the body")]
    Mismatch,
    #[error("signed {age} s ago; deliveries older than {tolerance} s are refused")]
    Stale { age: i64, tolerance: i64 },
    #[error("signed {ahead} s in the future; clocks may differ by at most {tolerance} s")]
    Future { ahead: i64, tolerance: i64 },
}

/// A verified signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The signature's timestamp (unix seconds).
    pub t: i64,
    /// The HMAC, hex: unique per (timestamp, body), so it names one signed delivery for
    /// replay detection.
    pub v1: String,
}

fn mac(secret: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length: this cannot fail.
    <HmacSha256 as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
}

fn parse(header: &str) -> Result<(i64, Vec<u8>), SignatureError> {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => v1 = hex::decode(v).ok().filter(|b| b.len() == 32),
            _ => {}
        }
    }
    match (t, v1) {
        (Some(t), Some(v1)) => Ok((t, v1)),
        _ => Err(SignatureError::Malformed),
    }
}

/// Verifies a delivery: `header` is [`SIGNATURE_HEADER`], `woo` the optional WooCommerce header,
/// `now` unix seconds. Comparisons are constant-time (`Mac::verify_slice`).
pub fn verify(secret: &[u8], header: Option<&str>, woo: Option<&str>, body: &[u8], now: i64, tolerance: i64) -> Result<Signed, SignatureError> {
    let (t, given_v1) = parse(header.ok_or(SignatureError::Missing)?)?;
    let mut m = mac(secret);
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m.verify_slice(&given_v1).map_err(|_| SignatureError::Mismatch)?;
    if let Some(woo) = woo {
        let given = base64::engine::general_purpose::STANDARD.decode(woo.trim()).map_err(|_| SignatureError::Mismatch)?;
        let mut m = mac(secret);
        m.update(body);
        m.verify_slice(&given).map_err(|_| SignatureError::Mismatch)?;
    }
    if now - t > tolerance {
        return Err(SignatureError::Stale { age: now - t, tolerance });
    }
    if t - now > tolerance {
        return Err(SignatureError::Future { ahead: t - now, tolerance });
    }
    Ok(Signed { t, v1: hex::encode(given_v1) })
}

fn header_v1(t: i64, secret: &[u8], body: &[u8]) -> Vec<u8> {
    let mut m = mac(secret);
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m.finalize().into_bytes().to_vec()
}

/// The header a sender puts on `body` at `t` (tests, the benchmark's client).
pub fn sign(secret: &[u8], t: i64, body: &[u8]) -> String {
    format!("t={t},v1={}", hex::encode(header_v1(t, secret, body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"s3cret";

    #[test]
    fn matches_the_simulators_reference_value() {
        // The same reference as the simulator's test (computed with Python's hmac module).
        assert_eq!(sign(SECRET, 1_700_000_000, br#"{"id":1}"#), "t=1700000000,v1=ee0658aa4e37018df69c24227df01e0f680eb3b87c7f1f9bd936e283cfe01d9b");
    }

    #[test]
    fn good_wrong_stale_future_and_malformed() {
        let body = br#"{"id":1}"#;
        let h = sign(SECRET, 1000, body);
        assert_eq!(verify(SECRET, Some(&h), None, body, 1010, 300).unwrap().t, 1000);
        assert_eq!(verify(b"other", Some(&h), None, body, 1010, 300), Err(SignatureError::Mismatch));
        assert_eq!(verify(SECRET, Some(&h), None, br#"{"id":2}"#, 1010, 300), Err(SignatureError::Mismatch));
        assert_eq!(verify(SECRET, Some(&h), None, body, 1400, 300), Err(SignatureError::Stale { age: 400, tolerance: 300 }));
        assert_eq!(verify(SECRET, Some(&h), None, body, 500, 300), Err(SignatureError::Future { ahead: 500, tolerance: 300 }));
        assert_eq!(verify(SECRET, None, None, body, 1000, 300), Err(SignatureError::Missing));
        assert_eq!(verify(SECRET, Some("t=1000"), None, body, 1000, 300), Err(SignatureError::Malformed));
        assert_eq!(verify(SECRET, Some("t=x,v1=zz"), None, body, 1000, 300), Err(SignatureError::Malformed));
        // A signature lifted onto another timestamp does not verify.
        let moved = h.replace("t=1000", "t=1005");
        assert_eq!(verify(SECRET, Some(&moved), None, body, 1010, 300), Err(SignatureError::Mismatch));
    }

    #[test]
    fn the_woocommerce_signature_must_match_when_present() {
        let body = br#"{"id":1}"#;
        let h = sign(SECRET, 1000, body);
        let woo = "Y92rNNpYOOODVF6ckLQPdKTj2qvF3ZqNSaUYda1LJBg=";
        assert!(verify(SECRET, Some(&h), Some(woo), body, 1000, 300).is_ok());
        assert_eq!(verify(SECRET, Some(&h), Some("AAAA"), body, 1000, 300), Err(SignatureError::Mismatch));
    }
}
