//! A small, conservative look at SQL text: may running it leave session
//! state behind for the next borrower (F13)?
//!
//! It answers "no" only for text it fully understands and knows to be
//! harmless; everything else (unknown statements, odd lexing, executable
//! comments) counts as changing. A wrong "yes" costs one background reset; a
//! wrong "no" would leak, so every doubt resolves to "yes".
//!
//! `lex.rs` splits the text into tokens; `session.rs` decides.

mod lex;
mod session;

#[cfg(test)]
mod tests;

pub(crate) use lex::{is, is_any, lex, Tok};
pub use session::may_change_session;
pub(crate) use session::tokens_may_change;
