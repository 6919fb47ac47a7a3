//! The one error of configuration reading, and what every reader needs to
//! build it: a [`Setting`] (a value with the file or flag it came from and
//! the key as the user wrote it) and [`read_text`] (a file read as Java
//! reads it).
//!
//! This is not where values are interpreted: the typed readers on
//! [`Setting`] (`int`, `u32`, `strict_bool`) sit with the key table in
//! keys.rs. Every error names where it came from, so a user can find the
//! line to fix.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin}:{line}: {message}")]
    Syntax {
        origin: String,
        line: usize,
        message: String,
    },
    #[error("{origin}: invalid value \"{value}\" for {key}: expected {expected}")]
    InvalidValue {
        origin: String,
        key: String,
        value: String,
        expected: String,
    },
    #[error("{origin}: {key} is not set")]
    Missing { origin: String, key: String },
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
}

/// One value and where it came from, so an error can name both.
pub(super) struct Setting<'a> {
    pub(super) origin: &'a str,
    /// As the user wrote it: the zoo.cfg key, or `-Dname` for a JVM flag.
    pub(super) key: String,
    pub(super) value: &'a str,
}

impl Setting<'_> {
    pub(super) fn invalid(&self, expected: &str) -> ConfigError {
        ConfigError::InvalidValue {
            origin: self.origin.to_string(),
            key: self.key.clone(),
            value: self.value.to_string(),
            expected: expected.to_string(),
        }
    }
}

/// A file as text: UTF-8, or ISO-8859-1 (what Java's `Properties.load`
/// assumes) when it is not valid UTF-8.
pub(super) fn read_text(path: &Path) -> Result<String, ConfigError> {
    let bytes = std::fs::read(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(error) => error.into_bytes().iter().map(|&b| char::from(b)).collect(),
    })
}
