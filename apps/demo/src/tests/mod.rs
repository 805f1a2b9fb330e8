//! The demo's tests, against private MariaDB servers (never the machine's
//! shared one; those that stop or kill a server start their own) and the
//! machine's shared PostgreSQL, in a schema of the test process's own
//! (`common::pg_url`).

mod api;
mod common;
mod http_limits;
mod logs;
mod lost;
mod races;
mod restart;
mod routes;
mod starvation;
mod writes;
