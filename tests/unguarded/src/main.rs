//! TEST ONLY. The broker's own `main`, built against the daemon with the
//! cargo feature `unguarded-for-tests`: run with
//! `IAM_PGBROKER_UNGUARDED_FOR_TESTS=1`, its guard checks statement kinds
//! but no function, operator, type or relation, so a test can show what
//! PostgreSQL's own privileges hold alone (tests/it/least_privilege.rs).
//! No release build and no package contains it: scripts/test builds it
//! with its own cargo invocation, so the feature never reaches the real
//! `iam-pgbroker` binary.
include!("../../../daemon/src/main.rs");
