//! Real-server benchmarks: every pool against the same private MariaDB.

pub(crate) mod args;
pub(crate) mod contenders;
pub(crate) mod floors;
pub(crate) mod load;
pub(crate) mod machine;
pub(crate) mod markdown;
pub(crate) mod run;
pub(crate) mod s1_throughput;
pub(crate) mod s2_restart;
pub(crate) mod s3_wait_timeout;
pub(crate) mod s4_kill;
pub(crate) mod s5_cancel;
pub(crate) mod s6_leak;
pub(crate) mod s7_scaling;
pub(crate) mod server;
pub(crate) mod stats;
