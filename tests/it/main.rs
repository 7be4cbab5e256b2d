//! Integration tests: the real broker binary, real PostgreSQL containers
//! of the development appliance, real Unix sockets and real other OS users.

mod approval;
mod audit;
mod bad_input;
mod docs;
mod fair_share;
mod faults;
mod guard;
mod iam_pg_describe;
mod iam_pg_pty;
mod least_privilege;
mod limits;
mod ops_admin;
mod ops_cli;
mod ops_daemon;
mod ops_rpm;
mod ops_sessions;
mod ops_socket;
mod ops_units;
mod params;
mod perf;
mod pool;
mod psql_output;
mod psql_scripts;
mod psql_support;
mod read;
mod reliability;
mod restart;
mod secrets;
mod types;
mod values;
mod write;
