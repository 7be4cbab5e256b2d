//! SQL analysis for iam-pgbroker, on PostgreSQL's own parser
//! ([libpg_query](https://github.com/pganalyze/libpg_query) through the
//! `pg_query` crate).
//!
//! - [`convert_placeholders`] turns psycopg2's `%s` into `$1`, `$2`, …
//!   without touching literals, quoted identifiers or comments.

#![warn(missing_docs)]

mod placeholders;

pub use placeholders::{convert_placeholders, PlaceholderError};
