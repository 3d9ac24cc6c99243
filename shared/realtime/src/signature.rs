//! Webhook signature checks, HMAC-SHA256 compared in constant time (`Mac::verify_slice`).
//!
//! WooCommerce signs every delivery with `X-WC-Webhook-Signature`: base64 of HMAC-SHA256 of the
//! body under the webhook's secret (`WC_Webhook::generate_signature`). It carries no time, so it
//! cannot tell a replay from the original: the handler makes replays harmless instead (a payload
//! is accepted once, whatever its delivery). A sender that can sign a timestamp adds
//! `X-Alkasba-Signature: t=<unix>,v1=<hex HMAC of "<t>.<body>">`; [`Mode::Timestamped`] requires
//! it and refuses deliveries signed outside the tolerance. Either header, when present, must match.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Header with the timestamped signature.
pub const SIGNATURE_HEADER: &str = "x-alkasba-signature";
/// WooCommerce's body-only signature (base64).
pub const WOO_SIGNATURE_HEADER: &str = "x-wc-webhook-signature";

/// Which signature a delivery must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// WooCommerce's own deliveries: `X-WC-Webhook-Signature` required (the timestamped one
    /// checked too when present).
    Woocommerce,
    /// Senders that sign a timestamp: `X-Alkasba-Signature` required, within the tolerance.
    Timestamped,
}

impl Mode {
    /// From a setting's text (`woocommerce` or `timestamped`).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "woocommerce" => Some(Mode::Woocommerce),
            "timestamped" => Some(Mode::Timestamped),
            _ => None,
        }
    }
}

/// Why a delivery's signature was refused (each becomes a 401 with this text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing {0} header")]
    Missing(&'static str),
    #[error("{SIGNATURE_HEADER} is not of the form t=<unix seconds>,v1=<64 hex digits>")]
    Malformed,
    #[error("signature does not match the body")]
    Mismatch,
    #[error("signed {age} s ago; deliveries older than {tolerance} s are refused")]
    Stale { age: i64, tolerance: i64 },
    #[error("signed {ahead} s in the future; clocks may differ by at most {tolerance} s")]
    Future { ahead: i64, tolerance: i64 },
}

/// A verified delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The timestamped signature's time (unix seconds), when it carried one.
    pub t: Option<i64>,
    /// HMAC-SHA256 of the body alone, hex: names the payload, so a replay or a resend of the
    /// same payload has the same one (WooCommerce's delivery ids cannot: they are a hash of the
    /// webhook id and the current second, new on every resend and shared by deliveries of the
    /// same second).
    pub payload_id: String,
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

/// Verifies a delivery: `header` is [`SIGNATURE_HEADER`], `woo` [`WOO_SIGNATURE_HEADER`], `now`
/// unix seconds; `mode` says which of the two must be there.
pub fn verify(mode: Mode, secret: &[u8], header: Option<&str>, woo: Option<&str>, body: &[u8], now: i64, tolerance: i64) -> Result<Signed, SignatureError> {
    match mode {
        Mode::Woocommerce if woo.is_none() => return Err(SignatureError::Missing(WOO_SIGNATURE_HEADER)),
        Mode::Timestamped if header.is_none() => return Err(SignatureError::Missing(SIGNATURE_HEADER)),
        _ => {}
    }
    let mut m = mac(secret);
    m.update(body);
    let payload = m.finalize().into_bytes();
    if let Some(woo) = woo {
        let given = base64::engine::general_purpose::STANDARD.decode(woo.trim()).map_err(|_| SignatureError::Mismatch)?;
        let mut m = mac(secret);
        m.update(body);
        m.verify_slice(&given).map_err(|_| SignatureError::Mismatch)?;
    }
    let mut t = None;
    if let Some(header) = header {
        let (at, given_v1) = parse(header)?;
        let mut m = mac(secret);
        m.update(at.to_string().as_bytes());
        m.update(b".");
        m.update(body);
        m.verify_slice(&given_v1).map_err(|_| SignatureError::Mismatch)?;
        if now - at > tolerance {
            return Err(SignatureError::Stale { age: now - at, tolerance });
        }
        if at - now > tolerance {
            return Err(SignatureError::Future { ahead: at - now, tolerance });
        }
        t = Some(at);
    }
    Ok(Signed { t, payload_id: hex::encode(payload) })
}

/// The timestamped header a sender puts on `body` at `t` (tests, the benchmark's client).
pub fn sign(secret: &[u8], t: i64, body: &[u8]) -> String {
    let mut m = mac(secret);
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    format!("t={t},v1={}", hex::encode(m.finalize().into_bytes()))
}

/// WooCommerce's `X-WC-Webhook-Signature` for `body` (tests, the benchmark's client).
pub fn sign_woo(secret: &[u8], body: &[u8]) -> String {
    let mut m = mac(secret);
    m.update(body);
    base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"s3cret";
    const WOO: Mode = Mode::Woocommerce;
    const TS: Mode = Mode::Timestamped;

    #[test]
    fn matches_the_simulators_reference_values() {
        // The same references as the simulator's test (computed with Python's hmac module).
        assert_eq!(sign(SECRET, 1_700_000_000, br#"{"id":1}"#), "t=1700000000,v1=ee0658aa4e37018df69c24227df01e0f680eb3b87c7f1f9bd936e283cfe01d9b");
        assert_eq!(sign_woo(SECRET, br#"{"id":1}"#), "Y92rNNpYOOODVF6ckLQPdKTj2qvF3ZqNSaUYda1LJBg=");
    }

    #[test]
    fn woocommerce_mode_needs_the_body_signature_and_names_the_payload() {
        let body = br#"{"id":1}"#;
        let woo = sign_woo(SECRET, body);
        let s = verify(WOO, SECRET, None, Some(&woo), body, 1000, 300).unwrap();
        assert_eq!(s.t, None);
        assert_eq!(s.payload_id.len(), 64);
        // The same payload, whenever and however it comes, has the same id.
        let h = sign(SECRET, 990, body);
        assert_eq!(verify(WOO, SECRET, Some(&h), Some(&woo), body, 1000, 300).unwrap().payload_id, s.payload_id);
        assert_eq!(verify(WOO, SECRET, None, None, body, 1000, 300), Err(SignatureError::Missing(WOO_SIGNATURE_HEADER)));
        assert_eq!(verify(WOO, SECRET, None, Some(&sign_woo(b"other", body)), body, 1000, 300), Err(SignatureError::Mismatch));
        assert_eq!(verify(WOO, SECRET, None, Some(&woo), br#"{"id":2}"#, 1000, 300), Err(SignatureError::Mismatch));
        assert_eq!(verify(WOO, SECRET, None, Some("not base64!"), body, 1000, 300), Err(SignatureError::Mismatch));
        // A timestamped signature, when present, is checked too.
        assert_eq!(verify(WOO, SECRET, Some(&h), Some(&woo), body, 1400, 300), Err(SignatureError::Stale { age: 410, tolerance: 300 }));
    }

    #[test]
    fn timestamped_mode_good_wrong_stale_future_and_malformed() {
        let body = br#"{"id":1}"#;
        let h = sign(SECRET, 1000, body);
        assert_eq!(verify(TS, SECRET, Some(&h), None, body, 1010, 300).unwrap().t, Some(1000));
        assert_eq!(verify(TS, b"other", Some(&h), None, body, 1010, 300), Err(SignatureError::Mismatch));
        assert_eq!(verify(TS, SECRET, Some(&h), None, br#"{"id":2}"#, 1010, 300), Err(SignatureError::Mismatch));
        assert_eq!(verify(TS, SECRET, Some(&h), None, body, 1400, 300), Err(SignatureError::Stale { age: 400, tolerance: 300 }));
        assert_eq!(verify(TS, SECRET, Some(&h), None, body, 500, 300), Err(SignatureError::Future { ahead: 500, tolerance: 300 }));
        assert_eq!(verify(TS, SECRET, None, Some(&sign_woo(SECRET, body)), body, 1000, 300), Err(SignatureError::Missing(SIGNATURE_HEADER)));
        assert_eq!(verify(TS, SECRET, Some("t=1000"), None, body, 1000, 300), Err(SignatureError::Malformed));
        assert_eq!(verify(TS, SECRET, Some("t=x,v1=zz"), None, body, 1000, 300), Err(SignatureError::Malformed));
        // A signature lifted onto another timestamp does not verify.
        let moved = h.replace("t=1000", "t=1005");
        assert_eq!(verify(TS, SECRET, Some(&moved), None, body, 1010, 300), Err(SignatureError::Mismatch));
        // The WooCommerce one must match when present.
        assert_eq!(verify(TS, SECRET, Some(&h), Some("AAAA"), body, 1000, 300), Err(SignatureError::Mismatch));
    }

    #[test]
    fn modes_parse_by_name() {
        assert_eq!(Mode::parse("WooCommerce"), Some(Mode::Woocommerce));
        assert_eq!(Mode::parse(" timestamped "), Some(Mode::Timestamped));
        assert_eq!(Mode::parse("none"), None);
    }
}
