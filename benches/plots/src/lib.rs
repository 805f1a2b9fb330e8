//! The benchmarks' SVG charts: horizontal bars (throughput) and line panels
//! (scaling), drawn with plotters' SVG backend. One implementation for the
//! MySQL (`poolwarden-bench`) and PostgreSQL (`poolwarden-bench-pg`)
//! real-server benchmarks.

mod charts;

pub use charts::{bars, lines, Bar, Panel, Series};
