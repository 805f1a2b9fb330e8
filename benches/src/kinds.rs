//! The list of contenders and a way to call generic code for each.

/// One contender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Semaphore + `parking_lot::Mutex<Vec<Conn>>`.
    Baseline,
    /// poolwarden, defaults.
    Poolwarden,
    /// deadpool (managed).
    Deadpool,
    /// bb8.
    Bb8,
    /// mobc.
    Mobc,
    /// r2d2 (sync), driven from tokio: `try_get`, else `spawn_blocking(get)`.
    R2d2,
    /// r2d2 with every `get` in `block_in_place` (only on request).
    R2d2BlockInPlace,
}

impl Kind {
    /// Every contender, in table order.
    pub const ALL: [Kind; 6] = [
        Kind::Baseline,
        Kind::Poolwarden,
        Kind::Deadpool,
        Kind::Bb8,
        Kind::Mobc,
        Kind::R2d2,
    ];

    /// The table label.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Baseline => "baseline",
            Kind::Poolwarden => "poolwarden",
            Kind::Deadpool => "deadpool",
            Kind::Bb8 => "bb8",
            Kind::Mobc => "mobc",
            Kind::R2d2 => "r2d2",
            Kind::R2d2BlockInPlace => "r2d2-bip",
        }
    }

    /// The contender with this label (including those not in [`Kind::ALL`]).
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .chain([Kind::R2d2BlockInPlace])
            .find(|k| k.name() == s)
    }
}

/// `with_contender!(kind, C => expr)` evaluates `expr` with the type alias `C`
/// bound to the contender type of `kind`.
#[macro_export]
macro_rules! with_contender {
    ($kind:expr, $c:ident => $body:expr) => {
        match $kind {
            $crate::kinds::Kind::Baseline => {
                type $c = $crate::baseline::Baseline;
                $body
            }
            $crate::kinds::Kind::Poolwarden => {
                type $c = $crate::poolwarden_pool::Poolwarden;
                $body
            }
            $crate::kinds::Kind::Deadpool => {
                type $c = $crate::deadpool_pool::Deadpool;
                $body
            }
            $crate::kinds::Kind::Bb8 => {
                type $c = $crate::bb8_pool::Bb8;
                $body
            }
            $crate::kinds::Kind::Mobc => {
                type $c = $crate::mobc_pool::Mobc;
                $body
            }
            $crate::kinds::Kind::R2d2 => {
                type $c = $crate::r2d2_pool::R2d2;
                $body
            }
            $crate::kinds::Kind::R2d2BlockInPlace => {
                type $c = $crate::r2d2_pool::R2d2BlockInPlace;
                $body
            }
        }
    };
}
