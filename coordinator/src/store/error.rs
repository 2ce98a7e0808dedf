//! Why the store failed: [`StoreError`] on the scheduler's connection,
//! [`FromStoreError`] on a read-only one (reports, the dashboard, export),
//! and the one [`StoreError::Corrupt`] of a stored value that does not parse.

use std::path::PathBuf;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed (I/O, constraint, locked past the busy timeout).
    #[error("state database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database file could not be opened.
    #[error("cannot open state database {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The database was written by a newer coordinator.
    #[error("state database has schema version {found}; this coordinator knows up to {supported}")]
    NewerSchema {
        /// The version found.
        found: u32,
        /// The newest version this build knows.
        supported: u32,
    },
    /// A schema migration would leave the database inconsistent (rolled back).
    #[error("state database: migration to schema {version} refused: {message}")]
    Migration {
        /// The schema version it migrated to.
        version: u32,
        /// What is wrong.
        message: String,
    },
    /// A value could not be encoded for its column.
    #[error("state database: cannot encode {what} as JSON: {message}")]
    Encode {
        /// What was being stored.
        what: &'static str,
        /// The encoder's message.
        message: String,
    },
    /// A stored value does not parse (hand-edited or corrupt database).
    #[error("state database: {table} row {key}: column {column}: {message}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The row's key.
        key: String,
        /// The column.
        column: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// Why the records could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FromStoreError {
    /// The database file does not exist.
    #[error("state database {path} does not exist")]
    Missing {
        /// The path given.
        path: PathBuf,
    },
    /// The database could not be opened.
    #[error("cannot open state database {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The file is not a coordinator store (no schema yet).
    #[error("{path} is not a coordinator state database (schema version 0)")]
    NotAStore {
        /// The file.
        path: PathBuf,
    },
    /// The store was written by a newer coordinator.
    #[error(
        "state database has schema version {found}; this report reader knows up to {supported}"
    )]
    NewerSchema {
        /// The version found.
        found: u32,
        /// The newest known.
        supported: u32,
    },
    /// A query failed.
    #[error("state database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored value does not parse (the store's one check of its rows,
    /// `StoreError::Corrupt`, naming table, row and column).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A [`StoreError::Corrupt`] for a value that does not parse.
pub(crate) fn corrupt(
    table: &'static str,
    key: &str,
    column: &'static str,
    message: impl ToString,
) -> StoreError {
    StoreError::Corrupt {
        table,
        key: key.to_owned(),
        column,
        message: message.to_string(),
    }
}
