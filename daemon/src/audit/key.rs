//! The HMAC key that turns parameter values into searchable, unreadable
//! hashes, as Vault's audit devices do.

use super::AuditError;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Bytes of a new key.
const KEY_BYTES: usize = 32;

/// The audit's HMAC-SHA256 key. `Debug` does not show it.
#[derive(Clone)]
pub struct AuditKey {
    // The keyed state after the key blocks: cloning it is cheaper than
    // keying a new MAC for every parameter.
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(..)")
    }
}

impl AuditKey {
    /// A key from raw bytes.
    pub fn from_bytes(key: &[u8]) -> AuditKey {
        AuditKey {
            // HMAC takes keys of any length.
            mac: Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length"),
        }
    }

    /// Reads the key file: hex digits (at least 32 bytes' worth), one
    /// line. Refuses a file that group or others may read or write.
    pub fn load(path: &Path) -> Result<AuditKey, AuditError> {
        let mut file = std::fs::File::open(path).map_err(|source| AuditError::Read {
            path: path.to_owned(),
            source,
        })?;
        let meta = file.metadata().map_err(|source| AuditError::Read {
            path: path.to_owned(),
            source,
        })?;
        let key_error = |message: String| AuditError::Key {
            path: path.to_owned(),
            message,
        };
        if !meta.is_file() {
            return Err(key_error("is not a regular file".into()));
        }
        if meta.mode() & 0o077 != 0 {
            return Err(key_error(format!(
                "mode {:04o} lets others read or change it; chmod 600 it",
                meta.mode() & 0o7777
            )));
        }
        let mut text = String::new();
        file.read_to_string(&mut text)
            .map_err(|source| AuditError::Read {
                path: path.to_owned(),
                source,
            })?;
        let bytes =
            hex::decode(text.trim()).map_err(|_| key_error("does not hold hex digits".into()))?;
        if bytes.len() < KEY_BYTES {
            return Err(key_error(format!(
                "holds {} bytes; at least {KEY_BYTES} are needed",
                bytes.len()
            )));
        }
        Ok(AuditKey::from_bytes(&bytes))
    }

    /// Reads the key file, creating it first when it does not exist: 32
    /// bytes from `/dev/urandom` as hex, mode 0600, its folder 0700 when
    /// the folder is new. Creation is atomic (a temporary file, then a
    /// link), so two brokers starting at once end up with one key.
    pub fn load_or_create(path: &Path) -> Result<AuditKey, AuditError> {
        match std::fs::symlink_metadata(path) {
            Ok(_) => return AuditKey::load(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(AuditError::Read {
                    path: path.to_owned(),
                    source,
                })
            }
        }
        create(path).map_err(|source| AuditError::KeyCreate {
            path: path.to_owned(),
            source,
        })?;
        tracing::info!(path = %path.display(), "created a new audit HMAC key");
        AuditKey::load(path)
    }

    /// HMAC-SHA256 of `value`, as 64 hex digits.
    pub fn hash(&self, value: &[u8]) -> String {
        let mut hex = Vec::with_capacity(64);
        self.hash_hex_into(value, &mut hex);
        String::from_utf8(hex).unwrap_or_default()
    }

    /// [`AuditKey::hash`], appended to `out` (64 lowercase hex digits).
    pub fn hash_hex_into(&self, value: &[u8], out: &mut Vec<u8>) {
        let mut mac = self.mac.clone();
        mac.update(value);
        let digest: [u8; 32] = mac.finalize().into_bytes().into();
        out.extend_from_slice(&super::hex32(&digest));
    }
}

fn create(path: &Path) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    if !dir.as_os_str().is_empty() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let mut key = [0u8; KEY_BYTES];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
    let tmp = temp_name(path);
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        // The umask may have been looser than 0600's complement: set it.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        file.write_all(format!("{}\n", hex::encode(key)).as_bytes())?;
        file.sync_all()?;
        match std::fs::hard_link(&tmp, path) {
            Ok(()) => {}
            // Another broker was faster: its key wins, ours is dropped.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        if let Ok(d) = std::fs::File::open(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        }) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}

fn temp_name(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp.{}", std::process::id()));
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answer() {
        // RFC 4231, test case 2.
        let key = AuditKey::from_bytes(b"Jefe");
        assert_eq!(
            key.hash(b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn created_once_root_only_and_reloaded() {
        let dir = std::env::temp_dir().join(format!("iam-pgbroker-key-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("state/audit.key");
        let a = AuditKey::load_or_create(&path).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert_eq!(
            std::fs::metadata(path.parent().unwrap()).unwrap().mode() & 0o777,
            0o700
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim().len(), 64);
        let b = AuditKey::load_or_create(&path).unwrap();
        assert_eq!(a.hash(b"x"), b.hash(b"x"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = AuditKey::load(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        std::fs::write(&path, "abcd\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = AuditKey::load(&path).unwrap_err().to_string();
        assert!(err.contains("at least 32"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
