//! MySQL/MariaDB manager for poolwarden (work in progress).
