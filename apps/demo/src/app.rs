//! The application: its state, the API router and the operators' router
//! (served on separate listeners: nothing of the admin surface is on the
//! API's).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, FromRef};
use axum::http::Method;
use axum::http::StatusCode;
use axum::middleware;
use axum::routing::{on, MethodFilter};
use axum::Router;
use poolwarden::{Manager, Pool};
use poolwarden_axum::{DeadlineLayer, TxLayer};
use tower_http::timeout::RequestBodyTimeoutLayer;

use crate::api::error::{body, ApiError};
use crate::api::respond::json_errors;
use crate::api::retry::RetryLostRaces;
use crate::api::{accounts, input, orders, reports};
use crate::settings::{HttpSettings, ReportSettings};
use crate::store::Store;

/// What handlers share.
pub(crate) struct AppState<B: Manager> {
    pub(crate) pool: Pool<B>,
    pub(crate) reports: Arc<reports::Reports>,
    /// `Some` only in the incident replay: enables `POST /reports/legacy`.
    pub(crate) legacy_hold: Option<Duration>,
}

impl<B: Manager> Clone for AppState<B> {
    fn clone(&self) -> Self {
        AppState {
            pool: self.pool.clone(),
            reports: self.reports.clone(),
            legacy_hold: self.legacy_hold,
        }
    }
}

impl<B: Manager> FromRef<AppState<B>> for Pool<B> {
    fn from_ref(state: &AppState<B>) -> Self {
        state.pool.clone()
    }
}

impl<B: Manager> AppState<B> {
    pub(crate) fn new(pool: Pool<B>, reports: ReportSettings) -> Self {
        AppState {
            pool,
            reports: Arc::new(reports::Reports::new(reports)),
            legacy_hold: None,
        }
    }
}

/// The API and `/health`, with JSON bodies carrying the request's id on
/// every error status and the request and body timeouts of `http`.
pub(crate) fn router<B: Store>(state: AppState<B>, http: &HttpSettings) -> Router {
    finish(routes(state, http))
}

/// The outermost layer, added last: every error answer, whoever made it,
/// leaves as the one JSON error shape with the request's id
/// (`api/respond.rs`). Layers a caller adds to [`routes`] go inside it.
pub(crate) fn finish(routes: Router) -> Router {
    routes.layer(middleware::from_fn(json_errors))
}

/// A route of the API router. [`ApiRoute::ALL`] is every route [`routes`]
/// serves: the router is built from it (a handler chosen for each by an
/// exhaustive match), so the list can be read elsewhere — the README's API
/// table is checked against it (`tests/readme.rs`). A new route is a new
/// variant here, never a `.route(...)` of its own in [`routes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ApiRoute {
    Health,
    ListAccounts,
    CreateAccount,
    GetAccount,
    UpdateAccount,
    DeleteAccount,
    ListOrders,
    CreateOrder,
    GetOrder,
    UpdateOrder,
    DeleteOrder,
    CreateReport,
    LegacyReport,
    GetReport,
}

impl ApiRoute {
    /// Every route of the API router.
    pub(crate) const ALL: [ApiRoute; 14] = [
        ApiRoute::Health,
        ApiRoute::ListAccounts,
        ApiRoute::CreateAccount,
        ApiRoute::GetAccount,
        ApiRoute::UpdateAccount,
        ApiRoute::DeleteAccount,
        ApiRoute::ListOrders,
        ApiRoute::CreateOrder,
        ApiRoute::GetOrder,
        ApiRoute::UpdateOrder,
        ApiRoute::DeleteOrder,
        ApiRoute::CreateReport,
        ApiRoute::LegacyReport,
        ApiRoute::GetReport,
    ];

    /// Its method.
    pub(crate) fn method(self) -> Method {
        match self {
            ApiRoute::Health
            | ApiRoute::ListAccounts
            | ApiRoute::GetAccount
            | ApiRoute::ListOrders
            | ApiRoute::GetOrder
            | ApiRoute::GetReport => Method::GET,
            ApiRoute::CreateAccount
            | ApiRoute::CreateOrder
            | ApiRoute::CreateReport
            | ApiRoute::LegacyReport => Method::POST,
            ApiRoute::UpdateAccount | ApiRoute::UpdateOrder => Method::PATCH,
            ApiRoute::DeleteAccount | ApiRoute::DeleteOrder => Method::DELETE,
        }
    }

    /// Its path, in axum's syntax (`{id}`: a path parameter).
    pub(crate) fn path(self) -> &'static str {
        match self {
            ApiRoute::Health => "/health",
            ApiRoute::ListAccounts | ApiRoute::CreateAccount => "/accounts",
            ApiRoute::GetAccount | ApiRoute::UpdateAccount | ApiRoute::DeleteAccount => {
                "/accounts/{id}"
            }
            ApiRoute::ListOrders | ApiRoute::CreateOrder => "/accounts/{id}/orders",
            ApiRoute::GetOrder | ApiRoute::UpdateOrder | ApiRoute::DeleteOrder => "/orders/{id}",
            ApiRoute::CreateReport => "/reports",
            ApiRoute::LegacyReport => "/reports/legacy",
            ApiRoute::GetReport => "/reports/{id}",
        }
    }

    /// Whether only the incident replay answers it (it is 404 in the
    /// service: [`AppState::legacy_hold`] is `None` there), so the README's
    /// API reference leaves it out.
    #[cfg(test)]
    pub(crate) fn replay_only(self) -> bool {
        self == ApiRoute::LegacyReport
    }
}

/// [`router`] without its outermost layer (see [`finish`]): every route of
/// [`ApiRoute::ALL`], and nothing else.
pub(crate) fn routes<B: Store>(state: AppState<B>, http: &HttpSettings) -> Router {
    // Each write of `in_tx` is one transaction (the `Tx` extractor begins
    // it, TxLayer rolls it back on an error, the handler commits it itself
    // with `accounts::commit` so a failed commit is answered truthfully),
    // run again whole when it lost a race (RetryLostRaces, outside it).
    let mut plain = Router::new();
    let mut in_tx = Router::new();
    for route in ApiRoute::ALL {
        let path = route.path();
        let method = MethodFilter::try_from(route.method()).expect("a method axum routes");
        match route {
            ApiRoute::Health => plain = plain.route(path, on(method, || async { "ok" })),
            ApiRoute::ListAccounts => plain = plain.route(path, on(method, accounts::list::<B>)),
            ApiRoute::CreateAccount => {
                in_tx = in_tx.route(path, on(method, accounts::create::<B>));
            }
            ApiRoute::GetAccount => plain = plain.route(path, on(method, accounts::get::<B>)),
            ApiRoute::UpdateAccount => {
                plain = plain.route(path, on(method, accounts::update::<B>));
            }
            ApiRoute::DeleteAccount => {
                plain = plain.route(path, on(method, accounts::delete::<B>));
            }
            ApiRoute::ListOrders => plain = plain.route(path, on(method, orders::list::<B>)),
            ApiRoute::CreateOrder => in_tx = in_tx.route(path, on(method, orders::create::<B>)),
            ApiRoute::GetOrder => plain = plain.route(path, on(method, orders::get::<B>)),
            ApiRoute::UpdateOrder => plain = plain.route(path, on(method, orders::update::<B>)),
            ApiRoute::DeleteOrder => plain = plain.route(path, on(method, orders::delete::<B>)),
            ApiRoute::CreateReport => plain = plain.route(path, on(method, reports::create::<B>)),
            ApiRoute::LegacyReport => plain = plain.route(path, on(method, reports::legacy::<B>)),
            ApiRoute::GetReport => plain = plain.route(path, on(method, reports::get::<B>)),
        }
    }
    let in_tx = in_tx.layer(TxLayer::new()).layer(RetryLostRaces);
    plain
        .merge(in_tx)
        .fallback(|| async { ApiError::NotFound("route") })
        .method_not_allowed_fallback(|| async {
            body(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not accept that method",
            )
        })
        .layer(DefaultBodyLimit::max(input::BODY_LIMIT))
        .layer(middleware::from_fn(crate::http::read_body))
        .layer(RequestBodyTimeoutLayer::new(http.body_timeout))
        // The request's deadline: checkouts wait at most until it, the
        // handler is dropped past it (504), its connections are closed.
        .layer(DeadlineLayer::new(http.request_timeout))
        .with_state(state)
}

/// The operators' router: `/debug/pool` and, with a Prometheus handle,
/// `/metrics`. Serve it on the admin listener only.
pub(crate) fn admin_router<M: Manager>(
    pool: Pool<M>,
    metrics: Option<poolwarden_axum::PrometheusHandle>,
) -> Router {
    let mut admin = Router::new().merge(poolwarden_axum::debug_router(pool));
    if let Some(handle) = metrics {
        admin = admin.merge(poolwarden_axum::metrics_router(handle));
    }
    finish(admin.fallback(|| async { ApiError::NotFound("route") }))
}
