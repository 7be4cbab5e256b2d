//! Integration tests: the real broker binary, real PostgreSQL containers
//! of the development appliance, real Unix sockets and real other OS users.

mod bad_input;
mod faults;
mod guard;
mod params;
mod pool;
mod read;
mod restart;
mod types;
mod write;
