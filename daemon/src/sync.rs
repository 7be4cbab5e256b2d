//! Locking that survives a panic elsewhere.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, taking the data even when another holder panicked. Every use
/// in the broker keeps its data consistent at each step (a single insert,
/// remove, push, pop or counter change under the lock), so a poisoned lock
/// holds whole data, and refusing it would turn one bug into an outage.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}
