//! The seal on a stored change request: HMAC-SHA256, with the audit key,
//! over the request's canonical JSON. A file edited outside the broker no
//! longer matches its seal and is refused, never executed.

use super::store::StoredRequest;
use crate::audit::AuditKey;

/// Prepended to the content before hashing, so that a seal can never be
/// mistaken for (or made from) a parameter hash of the audit, which uses the
/// same key. The version is the file format's.
const DOMAIN: &[u8] = b"iam-pgbroker change request 1\n";

/// The seal of `content`, 64 hex digits.
pub fn seal(key: &AuditKey, content: &StoredRequest) -> String {
    key.hash(&input(content))
}

/// Whether `mac` is the seal of `content`. Compares in constant time.
pub fn verify(key: &AuditKey, content: &StoredRequest, mac: &str) -> bool {
    let expected = seal(key, content);
    expected.len() == mac.len()
        && expected
            .bytes()
            .zip(mac.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// The bytes sealed: the domain, then the content serialized compactly.
/// Serialization of these types is deterministic (struct fields in
/// declaration order, JSON object keys sorted), so a file read back and
/// serialized again gives the same bytes unless its content changed.
fn input(content: &StoredRequest) -> Vec<u8> {
    let mut bytes = DOMAIN.to_vec();
    // Plain data with string keys: serializing cannot fail.
    bytes.extend(serde_json::to_vec(content).unwrap_or_default());
    bytes
}
