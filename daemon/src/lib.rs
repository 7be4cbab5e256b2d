//! Broker (stub).
