use std::collections::HashMap;
use std::sync::Arc;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use chrono::Utc;
use zeroize::Zeroizing;

use crate::keyring::KeyringRow;
use crate::keys::{DataKey, KeyService, KmsContext, aes, nonce};
use crate::{Error, Result};

/// How a sealed value's plaintext was written before sealing, named by its prefix:
/// `<prefix><key id>:<base64(nonce | ciphertext | tag)>`. The prefix is part of the value's
/// associated data (except `pii1`, the first format): a value relabelled does not open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    /// `pii1:` the plaintext as it came (too short to gain from compressing, and every value
    /// sealed before 2026-12-04).
    Plain,
    /// `pii2:` compressed with zstd, no dictionary (values sealed 2026-12-04).
    Zstd,
    /// `pii3:` compressed with zstd against [`DICT_V1`]. A record's personal fields are JSON
    /// that compresses to about half alone (WooCommerce orders: 603 bytes to 305) and to under
    /// a third against a dictionary of their field names (183), while ciphertext does not
    /// compress at all once sealed. The length of a sealed value says how compressible the
    /// person's fields are, as before it said how long they were; one value holds one person's
    /// fields only, and the dictionary holds nobody's, so no content is compressed beside
    /// another person's (no CRIME-style probe across persons).
    ZstdDict1,
}

impl Format {
    const ALL: [Format; 3] = [Format::Plain, Format::Zstd, Format::ZstdDict1];

    fn prefix(self) -> &'static str {
        match self {
            Format::Plain => "pii1:",
            Format::Zstd => "pii2:",
            Format::ZstdDict1 => "pii3:",
        }
    }

    /// The dictionary its plaintext was compressed against, if compressed.
    fn dictionary(self) -> Option<&'static [u8]> {
        match self {
            Format::Plain => None,
            Format::Zstd => Some(&[]),
            Format::ZstdDict1 => Some(DICT_V1),
        }
    }
}

/// The zstd dictionary of `pii3` values (raw content, 1.8 KB): the names and empty shapes of
/// the personal fields of WooCommerce's REST v3 customers, orders and refunds (as the record
/// path writes them: pointers, sorted), and public boilerplate (browser user agents, webmail
/// domains, street words). It holds nobody's data, so it needs no sealing and no erasure. Values
/// depend on its exact bytes: it never changes; a better one becomes `pii4` beside it (a test
/// pins its digest). Written by hand rather than trained (`zstd --train`): a trained dictionary
/// is learned from real records, which would put personal data in it.
const DICT_V1: &[u8] = include_bytes!("zstd_dict_v1.txt");
/// The format new values are sealed in, when compressing makes them smaller.
const COMPRESSED: Format = Format::ZstdDict1;
/// zstd level: a fast (negative) level. On an order's personal fields (631 bytes of JSON, with
/// the dictionary) level 1 writes 238 bytes in 3.8 µs, -1 250 bytes in 2.2 µs, 3 235 bytes in
/// 3.9 µs (2026-12-06, 2 cores AMD EPYC): at small sizes zstd's cost is mostly per frame, and
/// -1 takes 40% of it off for 5% more bytes (bronze stays within issue 20's 1.5× of dlt's).
/// The level is not part of the format: values sealed at any level open alike.
const ZSTD_LEVEL: i32 = -1;
/// An opened value decompresses to at most this many bytes (a crafted value is refused, not
/// expanded without bound).
const MAX_PLAINTEXT: u64 = 16 << 20;

pub(crate) fn seal_with(key: &LessSafeKey, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    seal_with_nonce(key, nonce(&SystemRandom::new())?, aad, plaintext)
}

/// [`seal_with`] under the nonce `n`, which must be fresh from the system generator (a random
/// nonce per value, as every seal here uses: never a counter, whose state a key reused across
/// sessions could not keep).
fn seal_with_nonce(key: &LessSafeKey, n: [u8; NONCE_LEN], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    // Encrypted where it lies after the nonce, the tag appended: one buffer, not a second one
    // for the ciphertext copied back (issue 20: a seal per record).
    let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + AES_256_GCM.tag_len());
    out.extend_from_slice(&n);
    out.extend_from_slice(plaintext);
    let tag = key.seal_in_place_separate_tag(Nonce::assume_unique_for_key(n), Aad::from(aad), &mut out[NONCE_LEN..]).map_err(|_| Error::Crypto("AES-256-GCM seal failed".into()))?;
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

pub(crate) fn open_with(key: &LessSafeKey, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>> {
    if sealed.len() < NONCE_LEN + 16 {
        return Err(Error::Crypto("ciphertext is truncated".into()));
    }
    let (n, ct) = sealed.split_at(NONCE_LEN);
    let n: [u8; NONCE_LEN] = n.try_into().map_err(|_| Error::Crypto("bad nonce".into()))?;
    let mut buf = ct.to_vec();
    let plain = key.open_in_place(Nonce::assume_unique_for_key(n), Aad::from(aad), &mut buf).map_err(|_| Error::Crypto("AES-256-GCM open failed: wrong key, or the ciphertext was altered".into()))?;
    Ok(plain.to_vec())
}

/// A sealed value's key id, base64 body and format.
fn parts(sealed: &str) -> std::result::Result<(&str, &str, Format), &'static str> {
    let (format, rest) = Format::ALL.iter().find_map(|f| sealed.strip_prefix(f.prefix()).map(|rest| (*f, rest))).ok_or("not a sealed value")?;
    let (key_id, b64) = rest.split_once(':').ok_or("malformed sealed value")?;
    Ok((key_id, b64, format))
}

/// Whether a string is a sealed value.
pub fn is_sealed(s: &str) -> bool {
    Format::ALL.iter().any(|f| s.starts_with(f.prefix()))
}

fn wrap_aad(key_id: &str, subject: &str) -> Vec<u8> {
    format!("keyring:{key_id}:{subject}").into_bytes()
}

/// A value's associated data: its key and place, and its format but for the first one
/// (relabelled, a value does not open).
fn value_aad(format: Format, key_id: &str, place: &str) -> Vec<u8> {
    match format {
        Format::Plain => format!("{key_id}:{place}").into_bytes(),
        _ => format!("{}{key_id}:{place}", format.prefix()).into_bytes(),
    }
}

/// `plaintext` compressed with `compressor` (made on first use), when that makes it smaller.
fn compress(compressor: &mut Option<zstd::bulk::Compressor<'static>>, plaintext: &[u8]) -> Option<Vec<u8>> {
    if compressor.is_none() {
        *compressor = zstd::bulk::Compressor::with_dictionary(ZSTD_LEVEL, COMPRESSED.dictionary().unwrap_or_default()).ok();
    }
    compressor.as_mut()?.compress(plaintext).ok().filter(|c| c.len() < plaintext.len())
}

fn decompress(place: &str, dictionary: &[u8], compressed: &[u8]) -> Result<Vec<u8>> {
    use std::io::Read;
    let unreadable = |e: std::io::Error| Error::Crypto(format!("{place}: compressed value unreadable: {e}"));
    let mut out = Vec::new();
    let decoder = zstd::stream::read::Decoder::with_dictionary(compressed, dictionary).map_err(unreadable)?;
    decoder.take(MAX_PLAINTEXT + 1).read_to_end(&mut out).map_err(unreadable)?;
    if out.len() as u64 > MAX_PLAINTEXT {
        return Err(Error::Crypto(format!("{place}: value expands beyond {MAX_PLAINTEXT} bytes")));
    }
    Ok(out)
}

/// Where a sealed value belongs: its table (`<source>.<stream>`), its record's key and its
/// field. It is the value's associated data, so a value copied to another record, table or
/// field does not open there. It is never written beside the value: the reader names the place
/// it found the value in.
pub fn place(table: &str, key: &str, field: &str) -> String {
    format!("{table}/{key}/{field}")
}

/// Seals personal values during one session (one fetcher invocation): one KMS data key, created
/// on first use, and one new key per person seen. The new keys must be committed to the keyring
/// ([`Sealer::take_new_keys`]) before anything sealed under them is committed.
pub struct Sealer<K> {
    keys: Arc<K>,
    context: Arc<KmsContext>,
    rng: SystemRandom,
    data_key: Option<(DataKey, LessSafeKey)>,
    /// By token; foldhash, not SipHash: tokens are HMACs under a secret key, which no sender
    /// can steer into collisions, and this map takes an insert per new person (issue 20).
    persons: HashMap<String, (String, LessSafeKey), foldhash::fast::RandomState>,
    new_rows: Vec<KeyringRow>,
    /// One zstd context for the session, not one per value (`zstd::bulk::compress` makes a
    /// context per call: 110 against 60 µs of CPU per order in `alkasba-bench ingest`'s
    /// in-memory floor).
    compressor: Option<zstd::bulk::Compressor<'static>>,
}

impl<K: KeyService> Sealer<K> {
    /// A session drawing its data key from `keys` under the encryption context `context`
    /// ([`crate::kms_context`]).
    pub fn new(keys: Arc<K>, context: KmsContext) -> Self {
        Self { keys, context: Arc::new(context), rng: SystemRandom::new(), data_key: None, persons: HashMap::default(), new_rows: Vec::new(), compressor: None }
    }

    /// The session's KMS encryption context.
    pub fn context(&self) -> &KmsContext {
        &self.context
    }

    async fn data_key(&mut self) -> Result<&(DataKey, LessSafeKey)> {
        if self.data_key.is_none() {
            let dk = self.keys.generate_data_key(&self.context).await?;
            let cipher = aes(&dk.plaintext)?;
            self.data_key = Some((dk, cipher));
        }
        self.data_key.as_ref().ok_or_else(|| Error::Crypto("data key missing".into()))
    }

    /// Seals `plaintext` for the person `subject` (a token), bound to its `place` ([`place`]):
    /// `pii3:<key id>:<base64>` with the plaintext compressed, or `pii1:` when compressing does
    /// not make it smaller.
    pub async fn seal(&mut self, subject: &str, place: &str, plaintext: &[u8]) -> Result<String> {
        // A new person's key, its id, the nonce wrapping the key and the value's nonce drawn
        // at once; a known person's value, its nonce alone. Each draw from the system
        // generator costs a hardware random instruction or more (issue 20: a new person per
        // record on a first load; three draws were ~1% of a fetcher's CPU, in `rdrand`).
        let mut drawn = Zeroizing::new([0u8; 32 + 16 + 2 * NONCE_LEN]);
        let value_nonce = if self.persons.contains_key(subject) {
            nonce(&self.rng)?
        } else {
            self.rng.fill(drawn.as_mut()).map_err(|_| Error::Crypto("no system randomness".into()))?;
            let (raw, rest) = drawn.split_at(32);
            let (id, nonces) = rest.split_at(16);
            let (wrap_nonce, value_nonce) = nonces.split_at(NONCE_LEN);
            let raw: &[u8; 32] = raw.try_into().map_err(|_| Error::Crypto("person key length".into()))?;
            let as_nonce = |n: &[u8]| <[u8; NONCE_LEN]>::try_from(n).map_err(|_| Error::Crypto("nonce length".into()));
            let key_id = crate::token::hex(id);
            let (dk, wrapper) = self.data_key().await?;
            let wrapped_key = seal_with_nonce(wrapper, as_nonce(wrap_nonce)?, &wrap_aad(&key_id, subject), raw.as_ref())?;
            let row = KeyringRow { subject: subject.to_string(), key_id: key_id.clone(), wrapped_key, kms_blob: dk.blob.clone(), kms_context: Arc::clone(&self.context), created_at: Utc::now() };
            self.new_rows.push(row);
            self.persons.insert(subject.to_string(), (key_id, aes(raw)?));
            as_nonce(value_nonce)?
        };
        let (key_id, cipher) = self.persons.get(subject).ok_or_else(|| Error::Crypto("person key missing".into()))?;
        let compressed = compress(&mut self.compressor, plaintext);
        let (format, body) = match &compressed {
            Some(c) => (COMPRESSED, c.as_slice()),
            None => (Format::Plain, plaintext),
        };
        let sealed = seal_with_nonce(cipher, value_nonce, &value_aad(format, key_id, place), body)?;
        // Written into one string sized for it (not a base64 string, then a formatted copy).
        let mut out = String::with_capacity(format.prefix().len() + key_id.len() + 1 + sealed.len().div_ceil(3) * 4);
        out.push_str(format.prefix());
        out.push_str(key_id);
        out.push(':');
        B64.encode_string(&sealed, &mut out);
        Ok(out)
    }

    /// Keys created since the last call, to append to the keyring.
    pub fn take_new_keys(&mut self) -> Vec<KeyringRow> {
        std::mem::take(&mut self.new_rows)
    }

    /// Seals a whole object (an error response) under the session's data key:
    /// `len(blob) as u16 BE | KMS blob | nonce | ciphertext`.
    pub async fn seal_blob(&mut self, context: &str, plaintext: &[u8]) -> Result<Vec<u8>> {
        let (dk, cipher) = self.data_key().await?;
        seal_blob(dk, cipher, context, plaintext)
    }
}

/// See [`Sealer::seal_blob`].
pub fn seal_blob(dk: &DataKey, cipher: &LessSafeKey, context: &str, plaintext: &[u8]) -> Result<Vec<u8>> {
    let len = u16::try_from(dk.blob.len()).map_err(|_| Error::Crypto("KMS blob too long".into()))?;
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(&dk.blob);
    out.extend(seal_with(cipher, context.as_bytes(), plaintext)?);
    Ok(out)
}

/// Opens an object sealed by [`Sealer::seal_blob`] in a session with `kms` as its KMS
/// encryption context (one KMS `Decrypt`).
pub async fn open_blob<K: KeyService>(keys: &K, context: &str, kms: &KmsContext, sealed: &[u8]) -> Result<Vec<u8>> {
    let len = sealed.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]]) as usize).ok_or_else(|| Error::Crypto("sealed object is truncated".into()))?;
    let blob = sealed.get(2..2 + len).ok_or_else(|| Error::Crypto("sealed object is truncated".into()))?;
    let key = keys.decrypt_data_key(blob, kms).await?;
    open_with(&aes(&key)?, context.as_bytes(), &sealed[2 + len..])
}

/// Opens sealed values, given the keyring rows of their keys. Each data key is decrypted by KMS
/// once.
pub struct Opener<K> {
    keys: Arc<K>,
    rows: HashMap<String, KeyringRow>,
    erased: HashMap<String, chrono::DateTime<Utc>>,
    data_keys: HashMap<Vec<u8>, LessSafeKey>,
    persons: HashMap<String, LessSafeKey>,
}

impl<K: KeyService> Opener<K> {
    /// An opener over `rows` (from [`crate::read_keyring`]).
    pub fn new(keys: Arc<K>, rows: Vec<KeyringRow>) -> Self {
        let rows = rows.into_iter().map(|r| (r.key_id.clone(), r)).collect();
        Self { keys, rows, erased: HashMap::new(), data_keys: HashMap::new(), persons: HashMap::new() }
    }

    /// Names the keys destroyed by an erasure (from the erasure audit), with when: a value
    /// under one of them fails with [`Error::Erased`] rather than [`Error::UnknownKey`].
    pub fn with_erased(mut self, erased: impl IntoIterator<Item = (String, chrono::DateTime<Utc>)>) -> Self {
        self.erased.extend(erased);
        self
    }

    /// The key id a sealed value names, if it is one (either format).
    pub fn key_id(sealed: &str) -> Option<&str> {
        parts(sealed).ok().map(|(id, _, _)| id)
    }

    /// The plaintext of a sealed value found at `place` ([`place`]).
    pub async fn open(&mut self, place: &str, sealed: &str) -> Result<Vec<u8>> {
        let (key_id, b64, format) = parts(sealed).map_err(|e| Error::Crypto(format!("{place}: {e}")))?;
        if !self.persons.contains_key(key_id) {
            let Some(row) = self.rows.get(key_id) else {
                return Err(match self.erased.get(key_id) {
                    Some(at) => Error::Erased { key_id: key_id.to_string(), erased_at: *at },
                    None => Error::UnknownKey { key_id: key_id.to_string() },
                });
            };
            if !self.data_keys.contains_key(&row.kms_blob) {
                let dk = self.keys.decrypt_data_key(&row.kms_blob, &row.kms_context).await?;
                self.data_keys.insert(row.kms_blob.clone(), aes(&dk)?);
            }
            let wrapper = self.data_keys.get(&row.kms_blob).ok_or_else(|| Error::Crypto("data key missing".into()))?;
            let raw = Zeroizing::new(open_with(wrapper, &wrap_aad(key_id, &row.subject), &row.wrapped_key)?);
            let raw: [u8; 32] = raw.as_slice().try_into().map_err(|_| Error::Crypto("person key is not 32 bytes".into()))?;
            self.persons.insert(key_id.to_string(), aes(&raw)?);
        }
        let cipher = self.persons.get(key_id).ok_or_else(|| Error::Crypto("person key missing".into()))?;
        let sealed = B64.decode(b64).map_err(|e| Error::Crypto(format!("{place}: {e}")))?;
        let opened =
            open_with(cipher, &value_aad(format, key_id, place), &sealed).map_err(|_| Error::Crypto(format!("{place}: the value does not open here (sealed for another place, or altered)")))?;
        match format.dictionary() {
            Some(dictionary) => decompress(place, dictionary, &opened),
            None => Ok(opened),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LocalKeys, kms_context};

    #[tokio::test]
    async fn seal_then_open_and_erasure_by_key() {
        let keys = Arc::new(LocalKeys::random().unwrap());
        let ctx = kms_context("shop", "customers");
        let mut s = Sealer::new(keys.clone(), ctx.clone());
        let (pa, pb) = (place("shop.customers", "1", "_sealed"), place("shop.customers", "2", "_sealed"));
        let a1 = s.seal("alice", &pa, b"alice@example.ma").await.unwrap();
        let b1 = s.seal("bob", &pb, b"bob@example.ma").await.unwrap();
        // A known person's value: her key again, a fresh nonce (a new person's nonces are drawn
        // with their key, a known one's alone).
        let a2 = s.seal("alice", &pa, b"alice@example.ma").await.unwrap();
        assert!(is_sealed(&a1) && !a1.contains("alice"));
        assert_eq!(Opener::<LocalKeys>::key_id(&a1), Opener::<LocalKeys>::key_id(&a2));
        assert_ne!(a1, a2, "the same value sealed twice differs: a nonce per value");
        let rows = s.take_new_keys();
        assert_eq!(rows.len(), 2, "one key per person");
        assert!(rows.iter().all(|r| *r.kms_context == ctx), "the rows carry their data key's context");
        assert_eq!(keys.requests(), 1, "one data key for the whole session");
        let blob = s.seal_blob("errors/x", b"raw page").await.unwrap();
        assert_eq!(open_blob(keys.as_ref(), "errors/x", &ctx, &blob).await.unwrap(), b"raw page");
        assert!(open_blob(keys.as_ref(), "errors/y", &ctx, &blob).await.is_err(), "context is bound");
        assert!(open_blob(keys.as_ref(), "errors/x", &kms_context("shop", "orders"), &blob).await.is_err(), "the KMS context is bound");

        let mut o = Opener::new(keys.clone(), rows.clone());
        assert_eq!(o.open(&pa, &a1).await.unwrap(), b"alice@example.ma");
        assert_eq!(o.open(&pa, &a2).await.unwrap(), b"alice@example.ma");
        // One ciphertext character changed (mid-payload: the last base64 character may carry
        // only padding bits, and replacing it with 'A' changed nothing when it already was one).
        let at = b1.rfind(':').unwrap() + 1 + (b1.len() - b1.rfind(':').unwrap()) / 2;
        let swapped = if b1.as_bytes()[at] == b'A' { "B" } else { "A" };
        let tampered = format!("{}{swapped}{}", &b1[..at], &b1[at + 1..]);
        assert_ne!(tampered, b1);
        assert!(o.open(&pb, &tampered).await.is_err(), "a changed ciphertext does not open");

        // A key whose row carries another context does not open: KMS refuses the data key.
        let mut wrong = rows.clone();
        wrong.iter_mut().for_each(|r| r.kms_context = Arc::new(kms_context("shop", "orders")));
        assert!(matches!(Opener::new(keys.clone(), wrong).open(&pa, &a1).await, Err(Error::Kms { .. })));

        // Crypto-shredding: without alice's keyring row her values are gone, bob's are not; an
        // erased key says so.
        let kept: Vec<_> = rows.iter().filter(|r| r.subject != "alice").cloned().collect();
        let mut o = Opener::new(keys.clone(), kept.clone());
        assert!(matches!(o.open(&pa, &a1).await, Err(Error::UnknownKey { .. })));
        assert_eq!(o.open(&pb, &b1).await.unwrap(), b"bob@example.ma");
        let alice_key = Opener::<LocalKeys>::key_id(&a1).unwrap().to_string();
        let mut o = Opener::new(keys, kept).with_erased([(alice_key, Utc::now())]);
        let e = o.open(&pa, &a1).await.unwrap_err();
        assert!(matches!(e, Error::Erased { .. }) && e.to_string().contains("erased"), "{e}");
    }

    /// A value is bound to its table, record and field: copied anywhere else it does not open.
    #[tokio::test]
    async fn a_sealed_value_moved_to_another_record_table_or_field_does_not_open() {
        let keys = Arc::new(LocalKeys::random().unwrap());
        let mut s = Sealer::new(keys.clone(), kms_context("shop", "orders"));
        let home = place("shop.orders", "17", "_sealed");
        let v = s.seal("alice", &home, b"{\"customer_note\":\"ring twice\"}").await.unwrap();
        let mut o = Opener::new(keys, s.take_new_keys());
        assert!(o.open(&home, &v).await.is_ok());
        for elsewhere in [place("shop.orders", "18", "_sealed"), place("shop.customers", "17", "_sealed"), place("shop.orders", "17", "notes")] {
            let e = o.open(&elsewhere, &v).await.unwrap_err();
            assert!(e.to_string().contains("does not open here") && e.to_string().contains(&elsewhere), "{e}");
        }
    }

    /// Issue 20: a record's fields are compressed against the field-name dictionary before
    /// sealing when that makes them smaller (`pii3`), kept as they are otherwise (`pii1`); those
    /// and the dictionary-less `pii2` of 2026-12-04 all open; a value relabelled to another
    /// format does not open, and one that would expand without bound is refused.
    #[tokio::test]
    async fn personal_fields_are_compressed_before_sealing_and_a_crafted_value_is_refused() {
        let keys = Arc::new(LocalKeys::random().unwrap());
        let mut s = Sealer::new(keys.clone(), kms_context("shop", "orders"));
        let home = place("shop.orders", "17", "_sealed");
        let fields = br#"{"/billing":{"address_1":"66 Rue des Consuls","address_2":"","city":"Rabat","company":"","country":"MA","email":"fatima@example.ma","first_name":"Fatima","last_name":"Mansouri","phone":"+212679525777","postcode":"10001","state":""},"/customer_ip_address":"196.102.148.150","/order_key":"wc_order_829a3ce5e407","/shipping":{"address_1":"66 Rue des Consuls","address_2":"","city":"Rabat","company":"","country":"MA","first_name":"Fatima","last_name":"Mansouri","phone":"+212679525777","postcode":"10001","state":""}}"#;
        let big = s.seal("fatima", &home, fields).await.unwrap();
        let small = s.seal("fatima", &home, b"x").await.unwrap();
        assert!(big.starts_with("pii3:") && small.starts_with("pii1:"), "{big} {small}");
        assert!(is_sealed(&big) && is_sealed(&small));
        // Erasure finds a value's key by its id: every format names it.
        assert_eq!(Opener::<LocalKeys>::key_id(&big), Opener::<LocalKeys>::key_id(&small));
        assert!(Opener::<LocalKeys>::key_id(&big).is_some_and(|id| id.len() == 32));
        let b64 = |v: &str| B64.decode(v.rsplit(':').next().unwrap()).unwrap().len();
        let without_dictionary = zstd::bulk::compress(fields, ZSTD_LEVEL).unwrap().len();
        let with_dictionary = b64(&big) - NONCE_LEN - 16;
        assert!(with_dictionary + 60 < without_dictionary, "the dictionary saves: {with_dictionary} bytes against {without_dictionary} compressed alone, of {}", fields.len());
        let rows = s.take_new_keys();
        let mut o = Opener::new(keys.clone(), rows.clone());
        assert_eq!(o.open(&home, &big).await.unwrap(), fields);
        assert_eq!(o.open(&home, &small).await.unwrap(), b"x");
        // A value sealed on 2026-12-04 (compressed without the dictionary) still opens.
        let (key_id, cipher) = s.persons.get("fatima").unwrap();
        let seal_as = |format: Format, body: &[u8]| format!("{}{key_id}:{}", format.prefix(), B64.encode(seal_with(cipher, &value_aad(format, key_id, &home), body).unwrap()));
        let old = seal_as(Format::Zstd, &zstd::bulk::compress(fields, ZSTD_LEVEL).unwrap());
        assert!(is_sealed(&old) && Opener::<LocalKeys>::key_id(&old) == Some(key_id.as_str()) && rows[0].key_id == *key_id);
        assert_eq!(o.open(&home, &old).await.unwrap(), fields);
        for (value, from) in [(&big, "pii3:"), (&old, "pii2:")] {
            for to in ["pii1:", "pii2:", "pii3:"].into_iter().filter(|to| *to != from) {
                let relabelled = value.replacen(from, to, 1);
                assert!(o.open(&home, &relabelled).await.unwrap_err().to_string().contains("does not open here"), "{from} as {to}");
            }
        }
        // A crafted value: 64 MiB of zeros compressed, sealed under the person's real key (an
        // insider who holds it), expands past the limit and is refused, in either format.
        let bomb = zstd::bulk::compress(&vec![0u8; 64 << 20], 3).unwrap();
        for format in [Format::Zstd, Format::ZstdDict1] {
            let e = o.open(&home, &seal_as(format, &bomb)).await.unwrap_err();
            assert!(e.to_string().contains("expands beyond"), "{format:?}: {e}");
        }
    }

    /// `pii3` values depend on the dictionary's exact bytes: it never changes (a new one is a
    /// new format).
    #[test]
    fn the_dictionary_of_sealed_values_never_changes() {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, DICT_V1);
        assert_eq!(
            crate::token::hex(digest.as_ref()),
            "79851559177516b35ccee2fc0fbebb369982fcf1e959211cd81b995fbba50173",
            "zstd_dict_v1.txt changed: values sealed against it no longer open; add a new format instead"
        );
    }
}
