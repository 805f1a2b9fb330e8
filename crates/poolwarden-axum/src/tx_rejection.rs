//! [`TxRejection`]: why a [`Tx`](crate::Tx) could not be extracted.

use std::error::Error as StdError;
use std::fmt;

use axum::response::{IntoResponse, Response};
use http::StatusCode;

use crate::context::RequestContext;
use crate::rejection::{
    json_error, unavailable, DbRejection, DATABASE_UNAVAILABLE, UNAVAILABLE_MESSAGE,
};

/// The `error` code of a request that reached a [`Tx`](crate::Tx) extractor
/// on a route without [`TxLayer`](crate::TxLayer).
pub const INTERNAL_ERROR: &str = "internal_error";

/// Why a [`Tx`](crate::Tx) could not be extracted.
///
/// Every variant answers without internal details: `503`
/// `database_unavailable` when the database is the problem, `500`
/// `internal_error` for a misconfigured route. The details are logged.
#[derive(Debug)]
#[non_exhaustive]
pub enum TxRejection {
    /// No connection could be checked out.
    Checkout(DbRejection),
    /// The connection would not begin a transaction. It was reported to the
    /// pool and will be closed.
    Begin {
        /// The driver's error.
        source: Box<dyn StdError + Send + Sync>,
        /// The request's id.
        request_id: String,
    },
    /// The route has no [`TxLayer`](crate::TxLayer): nothing would commit
    /// the transaction, so none was begun.
    MissingLayer {
        /// The request's id.
        request_id: String,
    },
}

impl TxRejection {
    pub(crate) fn missing_layer(ctx: &RequestContext) -> Self {
        tracing::error!(
            request_id = ctx.request_id(),
            method = %ctx.method(),
            route = ctx.route(),
            "the Tx extractor needs poolwarden_axum::TxLayer on its route (nothing would commit the transaction); answering 500"
        );
        TxRejection::MissingLayer {
            request_id: ctx.request_id().to_owned(),
        }
    }

    pub(crate) fn begin<E>(error: E, ctx: &RequestContext, pool: &str) -> Self
    where
        E: StdError + Send + Sync + 'static,
    {
        tracing::error!(
            pool,
            request_id = ctx.request_id(),
            method = %ctx.method(),
            route = ctx.route(),
            %error,
            "could not begin a transaction; answering 503"
        );
        TxRejection::Begin {
            source: Box::new(error),
            request_id: ctx.request_id().to_owned(),
        }
    }
}

impl fmt::Display for TxRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TxRejection::Checkout(r) => fmt::Display::fmt(r, f),
            TxRejection::Begin { .. } => f.write_str("could not begin a transaction"),
            TxRejection::MissingLayer { .. } => {
                f.write_str("the Tx extractor needs TxLayer on its route")
            }
        }
    }
}

impl StdError for TxRejection {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            TxRejection::Checkout(r) => Some(r),
            TxRejection::Begin { source, .. } => Some(source.as_ref()),
            TxRejection::MissingLayer { .. } => None,
        }
    }
}

impl IntoResponse for TxRejection {
    fn into_response(self) -> Response {
        match self {
            TxRejection::Checkout(r) => r.into_response(),
            TxRejection::Begin { request_id, .. } => {
                unavailable(DATABASE_UNAVAILABLE, UNAVAILABLE_MESSAGE, Some(&request_id))
            }
            TxRejection::MissingLayer { request_id } => json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                INTERNAL_ERROR,
                "The server could not handle this request.",
                Some(&request_id),
            ),
        }
    }
}
