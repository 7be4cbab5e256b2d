//! psql's input side for `iam-pg`: the lexer, variables, meta-commands and
//! main loop that let a script written for `psql` run unchanged — `-c`,
//! `-f`, standard input, `\i`, and (driven line by line) the prompt.
//!
//! ```text
//! lexer   statements and meta-commands from lines, variables substituted
//! slash   a meta-command's arguments
//! vars    \set variables and the special ones (ON_ERROR_STOP, AUTOCOMMIT, …)
//! txn     BEGIN / COMMIT / SAVEPOINT … recognised, for the broker's control
//! report  errors and notices laid out as psql does
//! engine  the loop: sends statements, runs meta-commands, keeps the
//!         transaction state
//! ```

pub mod engine;
pub mod lexer;
pub mod report;
pub mod slash;
pub mod txn;
pub mod vars;

pub use engine::{Engine, Flow, Options, TxStatus};
