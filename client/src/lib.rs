//! Client (stub).
