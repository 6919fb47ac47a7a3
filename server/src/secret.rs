//! The session secret of a data directory: 32 random bytes in
//! `<dataDir>/session_secret`, created on first start and read on every
//! start after, from which session passwords derive
//! (`engine::session::SessionSecret`).
//!
//! Invariant: once a server has handed out a password, the secret it came
//! from is on disk, so the password stays valid across restarts. The file is
//! written to a temp name, synced and renamed into place, then the directory
//! is synced: a crash leaves either no secret or the whole one.

use engine::session::SessionSecret;
use rand::RngCore;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

pub const FILE_NAME: &str = "session_secret";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {why}")]
    Migrated { path: String, why: String },
    #[error("{path}: holds {len} bytes, expected {expected}; restore it from a backup (sessions of clients connected before stay valid only with the same secret) or remove it to start with a new one (every session's password changes)")]
    Malformed {
        path: String,
        len: usize,
        expected: usize,
    },
}

/// Reads the data directory's secret, creating it if there is none.
pub fn load_or_create(data_dir: &Path) -> Result<SessionSecret, SecretError> {
    let path = data_dir.join(FILE_NAME);
    let io = |source| SecretError::Io {
        path: path.display().to_string(),
        source,
    };
    match File::open(&path) {
        Ok(mut file) => {
            let mut bytes = Vec::with_capacity(SessionSecret::LEN);
            // One byte more than the secret is enough to tell a long file.
            Read::by_ref(&mut file)
                .take(SessionSecret::LEN as u64 + 1)
                .read_to_end(&mut bytes)
                .map_err(io)?;
            let array: [u8; SessionSecret::LEN] =
                bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| SecretError::Malformed {
                        path: path.display().to_string(),
                        len: bytes.len(),
                        expected: SessionSecret::LEN,
                    })?;
            Ok(SessionSecret::new(array))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; SessionSecret::LEN];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            let temp = data_dir.join(format!("{FILE_NAME}.tmp"));
            let temp_io = |source| SecretError::Io {
                path: temp.display().to_string(),
                source,
            };
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&temp)
                .map_err(temp_io)?;
            file.write_all(&bytes).map_err(temp_io)?;
            file.sync_all().map_err(temp_io)?;
            fs::rename(&temp, &path).map_err(io)?;
            File::open(data_dir)
                .and_then(|dir| dir.sync_all())
                .map_err(io)?;
            tracing::info!(path = %path.display(), "created the session secret");
            Ok(SessionSecret::new(bytes))
        }
        Err(error) => Err(io(error)),
    }
}

/// The sessions `zk-migrate` brought over from Apache ZooKeeper, whose
/// clients may present Apache's passwords (none if the file is absent).
pub fn migrated_sessions(data_dir: &Path) -> Result<Vec<engine::types::SessionId>, SecretError> {
    let path = data_dir.join(engine::session::MIGRATED_SESSIONS_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(SecretError::Io {
                path: path.display().to_string(),
                source,
            })
        }
    };
    engine::session::decode_migrated_sessions(&text).map_err(|why| SecretError::Migrated {
        path: path.display().to_string(),
        why,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::types::SessionId;

    #[test]
    fn created_once_then_read_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = load_or_create(dir.path()).expect("create");
        let again = load_or_create(dir.path()).expect("read");
        assert_eq!(first.as_bytes(), again.as_bytes());
        let other = tempfile::tempdir().expect("temp dir");
        let elsewhere = load_or_create(other.path()).expect("create");
        assert_ne!(
            first.password(SessionId(42)),
            elsewhere.password(SessionId(42)),
            "two data directories must not share passwords"
        );
        let mode = fs::metadata(dir.path().join(FILE_NAME))
            .expect("stat")
            .permissions();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.mode() & 0o777, 0o600);
    }

    #[test]
    fn a_damaged_secret_stops_start_up() {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::write(dir.path().join(FILE_NAME), b"short").expect("write");
        let error = load_or_create(dir.path()).expect_err("a 5-byte secret");
        assert!(error.to_string().contains("holds 5 bytes"), "{error}");
    }
}
