//! Two-person write approval: a change that a second person has seen
//! before it touches the data (`docs/approval.md`).
//!
//! A rule with `mode = "request"` lets people *submit* changes; a rule with
//! `approve = true` lets others approve or reject them. The life of a
//! request ([`lifecycle`]):
//!
//! 1. **submit** — the policy grants `request`; every statement passes the
//!    write-session guard; the broker runs them in one transaction as the
//!    target database user and rolls back (the dry run), keeping each
//!    statement's row count; only a successful dry run is stored, one
//!    sealed file per request ([`store`], sealed by `mac.rs`).
//! 2. **approve** — by another uid with `approve` for that instance and
//!    database user; under the request's lock the state goes `pending` →
//!    `executing` on disk before anything runs; the statements run again
//!    in one transaction; the same rows changed the same way ([`changes`])
//!    commit (`executed`), any difference rolls back (`drifted`).
//! 3. **reject**, **cancel** (the requester), **expire** (lazily, when a
//!    pending request past its time is next read).
//!
//! Every step is an audit record naming the request, the requester and the
//! approver.

pub mod changes;
mod config;
mod grant;
pub mod lifecycle;
mod mac;
pub mod store;

pub use config::{ApprovalConfig, DEFAULT_REQUESTS_DIR};
pub use grant::{approve_rule, submit_rule};
pub use lifecycle::Actor;
pub use store::ApprovalStore;
