//! Test harness (stub).
