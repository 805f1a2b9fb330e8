//! [`Builder`]: configure, validate, build.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{IdleOrder, PoolConfig, WhenUnavailable};
use crate::error::{BuildError, PoolError};
use crate::manager::Manager;
use crate::observe::Observer;
use crate::pool::Pool;
use crate::shared::Shared;

impl<M: Manager> Pool<M> {
    /// Start configuring a pool for `manager`.
    pub fn builder(manager: M) -> Builder<M> {
        Builder::new(manager)
    }
}

/// Configures a [`Pool`]. Start with [`Pool::builder`]; every setting can
/// also come from a [`PoolConfig`] (for example read from a file).
#[must_use = "a builder does nothing until build() is called"]
pub struct Builder<M: Manager> {
    manager: M,
    config: PoolConfig,
    observer: Option<Arc<dyn Observer>>,
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, value: $ty) -> Self {
                self.config.$name = value;
                self
            }
        )*
    };
}

impl<M: Manager> Builder<M> {
    pub(crate) fn new(manager: M) -> Self {
        Builder {
            manager,
            config: PoolConfig::default(),
            observer: None,
        }
    }

    /// Replace every setting with `config`.
    pub fn config(mut self, config: PoolConfig) -> Self {
        self.config = config;
        self
    }

    /// Install an [`Observer`].
    pub fn observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Set the pool's name (logs, metrics).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = name.into();
        self
    }

    setters! {
        /// See [`PoolConfig::max_size`].
        max_size: u32;
        /// See [`PoolConfig::max_overflow`].
        max_overflow: u32;
        /// See [`PoolConfig::min_idle`].
        min_idle: u32;
        /// See [`PoolConfig::checkout_timeout`].
        checkout_timeout: Duration;
        /// See [`PoolConfig::connect_timeout`].
        connect_timeout: Duration;
        /// See [`PoolConfig::validation_timeout`].
        validation_timeout: Duration;
        /// See [`PoolConfig::reset_timeout`].
        reset_timeout: Duration;
        /// See [`PoolConfig::validation_bypass`].
        validation_bypass: Duration;
        /// See [`PoolConfig::skip_validation`].
        skip_validation: bool;
        /// See [`PoolConfig::max_lifetime`].
        max_lifetime: Option<Duration>;
        /// See [`PoolConfig::lifetime_jitter`].
        lifetime_jitter: f64;
        /// See [`PoolConfig::idle_timeout`].
        idle_timeout: Option<Duration>;
        /// See [`PoolConfig::keepalive_interval`].
        keepalive_interval: Option<Duration>;
        /// See [`PoolConfig::leak_threshold`].
        leak_threshold: Option<Duration>;
        /// See [`PoolConfig::leak_backtrace`].
        leak_backtrace: bool;
        /// See [`PoolConfig::idle_order`].
        idle_order: IdleOrder;
        /// See [`PoolConfig::max_connecting`].
        max_connecting: u32;
        /// See [`PoolConfig::connect_backoff_min`].
        connect_backoff_min: Duration;
        /// See [`PoolConfig::connect_backoff_max`].
        connect_backoff_max: Duration;
        /// See [`PoolConfig::fatal_retry_interval`].
        fatal_retry_interval: Duration;
        /// See [`PoolConfig::when_unavailable`].
        when_unavailable: WhenUnavailable;
        /// See [`PoolConfig::close_timeout`].
        close_timeout: Duration;
        /// See [`PoolConfig::maintenance_interval`].
        maintenance_interval: Duration;
    }

    /// Validate the settings and build the pool. Needs no runtime and opens
    /// no connection: connections are opened on demand (or for `min_idle`)
    /// on the runtime of the first checkout. See
    /// [`build_and_connect`](Builder::build_and_connect) to fail fast.
    ///
    /// # Errors
    /// A [`BuildError`] naming the setting that makes no sense.
    pub fn build(self) -> Result<Pool<M>, BuildError> {
        validate(&self.config)?;
        let shared = Arc::new(Shared::new(self.manager, self.config, self.observer));
        shared
            .manager
            .attach(crate::signal::ServerSignal::new(&shared));
        if tokio::runtime::Handle::try_current().is_ok() {
            shared.start_maintenance();
        }
        Ok(Pool { shared })
    }

    /// Build the pool and open its first connections (`min_idle`, at least
    /// one) before returning, so a wrong URL or password fails at start-up
    /// rather than at the first request (F11).
    ///
    /// # Errors
    /// [`StartError::Config`] for a bad setting, [`StartError::Connect`] when
    /// the first connection cannot be opened.
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the future drops the new pool.
    pub async fn build_and_connect(self) -> Result<Pool<M>, StartError> {
        let pool = self.build()?;
        pool.warm_up().await?;
        Ok(pool)
    }
}

/// Why [`Builder::build_and_connect`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A setting makes no sense.
    #[error("invalid pool configuration")]
    Config(#[from] BuildError),
    /// The first connection could not be opened.
    #[error("could not open the pool's first connection")]
    Connect(#[from] PoolError),
}

fn positive(field: &'static str, d: Duration) -> Result<(), BuildError> {
    if d.is_zero() {
        Err(BuildError::ZeroDuration { field })
    } else {
        Ok(())
    }
}

fn longer(
    field: &'static str,
    value: Duration,
    other: &'static str,
    other_value: Duration,
) -> Result<(), BuildError> {
    if value <= other_value {
        Err(BuildError::TooShort {
            field,
            value,
            other,
            other_value,
        })
    } else {
        Ok(())
    }
}

/// The rules `build()` enforces.
pub(crate) fn validate(c: &PoolConfig) -> Result<(), BuildError> {
    if c.max_size == 0 {
        return Err(BuildError::ZeroSize);
    }
    if c.min_idle > c.max_size {
        return Err(BuildError::MinIdleAboveMax {
            min_idle: c.min_idle,
            max_size: c.max_size,
        });
    }
    if c.max_connecting == 0 {
        return Err(BuildError::ZeroConnecting);
    }
    if !(0.0..=0.5).contains(&c.lifetime_jitter) {
        return Err(BuildError::BadJitter(c.lifetime_jitter));
    }
    positive("checkout_timeout", c.checkout_timeout)?;
    positive("connect_timeout", c.connect_timeout)?;
    positive("validation_timeout", c.validation_timeout)?;
    positive("reset_timeout", c.reset_timeout)?;
    positive("maintenance_interval", c.maintenance_interval)?;
    positive("connect_backoff_min", c.connect_backoff_min)?;
    if c.connect_backoff_max < c.connect_backoff_min {
        return Err(BuildError::TooShort {
            field: "connect_backoff_max",
            value: c.connect_backoff_max,
            other: "connect_backoff_min",
            other_value: c.connect_backoff_min,
        });
    }
    if let Some(life) = c.max_lifetime {
        longer(
            "max_lifetime",
            life,
            "validation_timeout",
            c.validation_timeout,
        )?;
        longer("max_lifetime", life, "connect_timeout", c.connect_timeout)?;
    }
    if let Some(idle) = c.idle_timeout {
        longer(
            "idle_timeout",
            idle,
            "validation_bypass",
            c.validation_bypass,
        )?;
    }
    if let Some(k) = c.keepalive_interval {
        longer(
            "keepalive_interval",
            k,
            "validation_timeout",
            c.validation_timeout,
        )?;
    }
    if let Some(t) = c.leak_threshold {
        positive("leak_threshold", t)?;
    }
    Ok(())
}
