//! iam-pgbroker: a local, privileged broker that gives unprivileged programs
//! on an IAM appliance safe, audited access to the PostgreSQL databases that
//! run there in Docker containers.
//!
//! The flow of a session: a client connects to the Unix socket; the broker
//! reads its identity from the kernel ([`peer`]); the client opens a session
//! and the [`policy`] decides; the container is resolved through Docker
//! ([`docker`]); the password is read ([`secrets`]); a [`session`] connects
//! to PostgreSQL and runs the client's statements in a transaction the
//! broker owns. [`server::run`] is the whole service; `main.rs` only parses
//! arguments and sets up logging.
#![warn(missing_docs)]

pub mod admin;
pub mod analysis;
pub mod approval;
pub mod audit;
pub mod broker;
pub mod client_socket;
pub mod config;
pub mod conn;
pub mod docker;
pub mod error;
pub mod fairness;
pub mod frame;
pub mod generate;
pub mod journal;
pub mod listener;
pub mod live;
pub mod log_writer;
pub mod metrics;
pub mod notices;
pub mod notify;
mod ops;
pub mod peer;
pub mod policy;
pub mod pool;
pub mod read_role;
pub mod secrets;
pub mod server;
pub mod service;
pub mod session;
pub mod settings;
pub mod stats;
pub mod sync;
pub mod types;
