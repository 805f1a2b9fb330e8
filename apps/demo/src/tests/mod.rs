//! The demo's tests, against private MariaDB servers (never the machine's
//! shared one).

mod api;
mod common;
mod http_limits;
mod logs;
mod restart;
mod starvation;
mod writes;
