//! SQL analysis (stub).
