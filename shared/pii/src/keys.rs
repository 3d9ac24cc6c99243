use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_lc_rs::aead::{AES_256_GCM, LessSafeKey, NONCE_LEN, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::{Error, Result};

/// A 256-bit data key: the plaintext (wiped on drop) and its KMS-encrypted blob.
pub struct DataKey {
    /// The key itself; never stored, never logged.
    pub plaintext: Zeroizing<[u8; 32]>,
    /// The key encrypted by KMS; stored beside whatever it protects.
    pub blob: Vec<u8>,
}

/// The KMS encryption context of a data key: what it protects (`source`, `stream`). KMS binds
/// it to the blob (a decrypt must give the same pairs), CloudTrail records it beside every
/// request, and key policies can require it (`kms:EncryptionContext:source`).
pub type KmsContext = BTreeMap<String, String>;

/// The encryption context of the data keys sealing `stream` of `source` (`stream` is `webhook`
/// for the webhook's sessions, which seal every topic of the store).
pub fn kms_context(source: &str, stream: &str) -> KmsContext {
    BTreeMap::from([("source".to_string(), source.to_string()), ("stream".to_string(), stream.to_string())])
}

/// The port to a key management service.
pub trait KeyService: Send + Sync {
    /// A fresh data key bound to `context` (one KMS `GenerateDataKey`).
    fn generate_data_key(&self, context: &KmsContext) -> impl Future<Output = Result<DataKey>> + Send;
    /// The plaintext of a data key's blob, given the context it was made with (one KMS
    /// `Decrypt`).
    fn decrypt_data_key(&self, blob: &[u8], context: &KmsContext) -> impl Future<Output = Result<Zeroizing<[u8; 32]>>> + Send;
    /// KMS requests made so far (for the benchmark's requests-per-1,000-records figure).
    fn requests(&self) -> u64;
}

/// AWS KMS (or LocalStack's).
#[derive(Debug)]
pub struct KmsKeys {
    client: aws_sdk_kms::Client,
    key_id: String,
    requests: AtomicU64,
}

impl KmsKeys {
    /// Keys under `key_id` (an ARN, id or `alias/...`).
    pub fn new(client: aws_sdk_kms::Client, key_id: impl Into<String>) -> Self {
        Self { client, key_id: key_id.into(), requests: AtomicU64::new(0) }
    }

    fn err<E: std::error::Error + 'static, R: std::fmt::Debug>(&self, operation: &'static str, e: aws_sdk_kms::error::SdkError<E, R>) -> Error {
        use aws_sdk_kms::error::SdkError;
        let retryable = matches!(e, SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_)) || format!("{e:?}").contains("Throttl");
        let reason = match &e {
            SdkError::ServiceError(s) => format!("{:?}", s.err()),
            other => other.to_string(),
        };
        Error::Kms { operation, key: self.key_id.clone(), reason, retryable }
    }
}

fn key32(operation: &'static str, key: &str, bytes: Option<&[u8]>) -> Result<Zeroizing<[u8; 32]>> {
    let bytes = bytes.ok_or_else(|| Error::Kms { operation, key: key.into(), reason: "no plaintext in the answer".into(), retryable: false })?;
    let arr: [u8; 32] = bytes.try_into().map_err(|_| Error::Kms { operation, key: key.into(), reason: format!("plaintext is {} bytes, not 32", bytes.len()), retryable: false })?;
    Ok(Zeroizing::new(arr))
}

impl KmsKeys {
    /// Encrypts a short value (KMS `Encrypt`, at most 4 KB) under the key, bound to `context`:
    /// base64 of the ciphertext blob. For values that must cross a queue without their plaintext
    /// (an erasure request's email).
    pub async fn encrypt_value(&self, plaintext: &[u8], context: &KmsContext) -> Result<String> {
        use base64::Engine;
        self.requests.fetch_add(1, Ordering::Relaxed);
        let out = self
            .client
            .encrypt()
            .key_id(&self.key_id)
            .plaintext(aws_sdk_kms::primitives::Blob::new(plaintext))
            .set_encryption_context(Some(sdk_context(context)))
            .send()
            .await
            .map_err(|e| self.err("Encrypt", e))?;
        let blob = out.ciphertext_blob().ok_or_else(|| Error::Kms { operation: "Encrypt", key: self.key_id.clone(), reason: "no ciphertext in the answer".into(), retryable: false })?;
        Ok(base64::engine::general_purpose::STANDARD.encode(blob.as_ref()))
    }

    /// The plaintext of [`KmsKeys::encrypt_value`]'s output, given the same context.
    pub async fn decrypt_value(&self, encrypted: &str, context: &KmsContext) -> Result<Zeroizing<Vec<u8>>> {
        use base64::Engine;
        let blob = base64::engine::general_purpose::STANDARD.decode(encrypted.trim()).map_err(|e| Error::Crypto(format!("an encrypted value is not base64: {e}")))?;
        self.decrypt(&blob, context).await
    }

    /// One KMS `Decrypt` of `blob` under `context`: its plaintext (empty if KMS gave none).
    async fn decrypt(&self, blob: &[u8], context: &KmsContext) -> Result<Zeroizing<Vec<u8>>> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let out = self
            .client
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(aws_sdk_kms::primitives::Blob::new(blob))
            .set_encryption_context(Some(sdk_context(context)))
            .send()
            .await
            .map_err(|e| self.err("Decrypt", e))?;
        Ok(Zeroizing::new(out.plaintext().map(|b| b.as_ref().to_vec()).unwrap_or_default()))
    }
}

impl KeyService for KmsKeys {
    async fn generate_data_key(&self, context: &KmsContext) -> Result<DataKey> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let out = self
            .client
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(aws_sdk_kms::types::DataKeySpec::Aes256)
            .set_encryption_context(Some(sdk_context(context)))
            .send()
            .await
            .map_err(|e| self.err("GenerateDataKey", e))?;
        let plaintext = key32("GenerateDataKey", &self.key_id, out.plaintext().map(|b| b.as_ref()))?;
        let blob = out.ciphertext_blob().map(|b| b.as_ref().to_vec()).unwrap_or_default();
        Ok(DataKey { plaintext, blob })
    }

    async fn decrypt_data_key(&self, blob: &[u8], context: &KmsContext) -> Result<Zeroizing<[u8; 32]>> {
        let plain = self.decrypt(blob, context).await?;
        key32("Decrypt", &self.key_id, (!plain.is_empty()).then_some(plain.as_slice()))
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

/// A local stand-in for KMS in unit tests and the in-memory benchmark floor: data keys are
/// wrapped by a master key held in memory.
pub struct LocalKeys {
    master: LessSafeKey,
    requests: AtomicU64,
}

impl std::fmt::Debug for LocalKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalKeys(..)")
    }
}

impl LocalKeys {
    /// A service with a random master key.
    pub fn random() -> Result<Self> {
        let mut master = [0u8; 32];
        SystemRandom::new().fill(&mut master).map_err(|_| Error::Crypto("no system randomness".into()))?;
        let key = UnboundKey::new(&AES_256_GCM, &master).map_err(|_| Error::Crypto("bad master key".into()))?;
        Ok(Self { master: LessSafeKey::new(key), requests: AtomicU64::new(0) })
    }
}

impl KeyService for LocalKeys {
    async fn generate_data_key(&self, context: &KmsContext) -> Result<DataKey> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut plaintext = Zeroizing::new([0u8; 32]);
        let rng = SystemRandom::new();
        rng.fill(plaintext.as_mut()).map_err(|_| Error::Crypto("no system randomness".into()))?;
        let blob = crate::envelope::seal_with(&self.master, &local_aad(context), plaintext.as_ref())?;
        Ok(DataKey { plaintext, blob })
    }

    async fn decrypt_data_key(&self, blob: &[u8], context: &KmsContext) -> Result<Zeroizing<[u8; 32]>> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let plain = Zeroizing::new(crate::envelope::open_with(&self.master, &local_aad(context), blob).map_err(|_| Error::Kms {
            operation: "Decrypt",
            key: "local".into(),
            reason: "InvalidCiphertextException (wrong blob or encryption context)".into(),
            retryable: false,
        })?);
        key32("Decrypt", "local", Some(&plain))
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

/// The context as the KMS SDK takes it.
fn sdk_context(context: &KmsContext) -> std::collections::HashMap<String, String> {
    context.clone().into_iter().collect()
}

/// The local service binds the context as KMS does: as associated data of the wrap.
fn local_aad(context: &KmsContext) -> Vec<u8> {
    let mut aad = b"local-kms".to_vec();
    for (k, v) in context {
        aad.extend_from_slice(format!("|{k}={v}").as_bytes());
    }
    aad
}

pub(crate) fn nonce(rng: &SystemRandom) -> Result<[u8; NONCE_LEN]> {
    let mut n = [0u8; NONCE_LEN];
    rng.fill(&mut n).map_err(|_| Error::Crypto("no system randomness".into()))?;
    Ok(n)
}

pub(crate) fn aes(key: &[u8; 32]) -> Result<LessSafeKey> {
    UnboundKey::new(&AES_256_GCM, key).map(LessSafeKey::new).map_err(|_| Error::Crypto("bad AES-256 key".into()))
}
