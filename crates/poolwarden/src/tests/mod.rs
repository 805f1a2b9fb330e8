//! Unit tests with a scripted manager and a paused clock.
