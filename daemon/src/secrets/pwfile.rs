//! The appliance's pwfiles: `{secrets_dir}/{user}.pwfile`, one line, one
//! trailing newline stripped. The same format serves systemd credentials
//! and the files that hold an AppRole's ids.

use super::{Password, PasswordProvider, SecretError};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Where the pwfile of (`db`, `user`) is.
type PathOf = dyn Fn(&str, &str) -> PathBuf + Send + Sync;

/// Reads `{secrets_dir}/{user}.pwfile`: one line, one trailing newline
/// stripped.
pub struct PwfileProvider {
    pattern: Box<PathOf>,
}

impl PwfileProvider {
    /// A provider whose file for (`db`, `user`) is `path_of(db, user)`.
    pub fn new(path_of: impl Fn(&str, &str) -> PathBuf + Send + Sync + 'static) -> Self {
        PwfileProvider {
            pattern: Box::new(path_of),
        }
    }

    /// Reads one pwfile.
    pub fn read(path: &Path) -> Result<Password, SecretError> {
        let bytes = std::fs::read(path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => SecretError::Missing {
                path: path.to_owned(),
            },
            _ => SecretError::Unreadable {
                path: path.to_owned(),
                source,
            },
        })?;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = format_args!("{:o}", meta.permissions().mode() & 0o777),
                    "password file is readable by group or others; it should be 0600"
                );
            }
        }
        let mut text = String::from_utf8(bytes).map_err(|_| SecretError::Malformed {
            path: path.to_owned(),
            problem: "is not UTF-8",
        })?;
        // One trailing newline is the file's line ending, not the password.
        if text.ends_with('\n') {
            text.pop();
            if text.ends_with('\r') {
                text.pop();
            }
        }
        if text.is_empty() {
            return Err(SecretError::Malformed {
                path: path.to_owned(),
                problem: "is empty",
            });
        }
        if text.contains('\n') {
            return Err(SecretError::Malformed {
                path: path.to_owned(),
                problem: "has more than one line",
            });
        }
        Ok(Password::derived(text))
    }
}

impl PasswordProvider for PwfileProvider {
    fn password(&self, db: &str, user: &str) -> Result<Password, SecretError> {
        PwfileProvider::read(&(self.pattern)(db, user))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, content: &[u8]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("iam-pgbroker-secrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    #[test]
    fn strips_exactly_one_newline() {
        assert_eq!(
            PwfileProvider::read(&file("a", b"s3cret\n"))
                .unwrap()
                .expose(),
            "s3cret"
        );
        assert_eq!(
            PwfileProvider::read(&file("b", b"s3cret"))
                .unwrap()
                .expose(),
            "s3cret"
        );
        assert_eq!(
            PwfileProvider::read(&file("c", b" sp ace \r\n"))
                .unwrap()
                .expose(),
            " sp ace "
        );
    }

    #[test]
    fn errors_name_the_path_never_the_content() {
        let path = file("d", b"line1\nline2\n");
        let err = PwfileProvider::read(&path).unwrap_err().to_string();
        assert!(
            err.contains(&path.display().to_string()) && !err.contains("line1"),
            "{err}"
        );
        let err = PwfileProvider::read(&file("e", b"\n"))
            .unwrap_err()
            .to_string();
        assert!(err.ends_with("is empty"), "{err}");
        let missing = PwfileProvider::read(Path::new("/nonexistent/x.pwfile")).unwrap_err();
        assert!(matches!(missing, SecretError::Missing { .. }));
        assert_eq!(
            format!("{:?}", PwfileProvider::read(&file("f", b"pw")).unwrap()),
            "Password(<redacted>)"
        );
    }
}
