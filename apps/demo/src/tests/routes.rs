//! The API's routes, as the router's own list says ([`ApiRoute::ALL`], from
//! which `app::routes` builds the router): the README's API table lists
//! exactly them (issue 11, defect 14c), and the router answers on each
//! listed path with exactly the listed methods.

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};

use super::common::{app, call};
use crate::app::ApiRoute;

/// The section of README.md that documents the API.
const API_HEADING: &str = "## The demo's API";

/// `(method, path)` of every route the service serves (the incident
/// replay's own route left out), paths in axum's syntax (`{id}`).
fn served() -> BTreeSet<(String, String)> {
    ApiRoute::ALL
        .iter()
        .filter(|r| !r.replay_only())
        .map(|r| (r.method().as_str().to_owned(), r.path().to_owned()))
        .collect()
}

/// `(method, path)` of every row of the route table (the table whose header
/// starts with `| route |`) under [`API_HEADING`] in README.md. A row's
/// first cell is `` `METHOD /path?query` `` or, for several methods on one
/// path, `` `GET`/`PATCH`/`DELETE /path` ``; the query is dropped.
fn readme_routes() -> Vec<(String, String)> {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{file}: {e}"));
    let section: Vec<&str> = text
        .lines()
        .skip_while(|l| l.trim() != API_HEADING)
        .skip(1)
        .take_while(|l| !l.starts_with("## "))
        .collect();
    assert!(!section.is_empty(), "no {API_HEADING:?} in README.md");
    let rows: Vec<&str> = section
        .iter()
        .skip_while(|l| !l.starts_with("| route |"))
        .skip(2) // the header and its |---| line
        .take_while(|l| l.starts_with('|'))
        .copied()
        .collect();
    assert!(!rows.is_empty(), "no route table under {API_HEADING:?}");
    let mut routes = Vec::new();
    for row in rows {
        let cell = row.trim_matches('|').split('|').next().unwrap_or("");
        let cell = cell.trim().replace('`', "");
        let (methods, path) = cell
            .split_once(' ')
            .unwrap_or_else(|| panic!("README row without `METHOD /path`: {row}"));
        let path = path.split('?').next().unwrap_or(path).trim();
        for method in methods.split('/') {
            routes.push((method.trim().to_owned(), path.to_owned()));
        }
    }
    routes
}

#[test]
fn the_readme_lists_every_route_of_the_api_and_no_other() {
    let served = served();
    let listed = readme_routes();
    for route in &listed {
        assert!(
            served.contains(route),
            "README.md, {API_HEADING:?}, lists {} {} but the router has no such route (app.rs, ApiRoute)",
            route.0,
            route.1
        );
    }
    let listed: BTreeSet<(String, String)> = listed.into_iter().collect();
    for route in &served {
        assert!(
            listed.contains(route),
            "the router serves {} {} (app.rs, ApiRoute) but README.md, {API_HEADING:?}, does not list it",
            route.0,
            route.1
        );
    }
}

/// Every path of [`ApiRoute::ALL`] is routed, with exactly its listed
/// methods: another method is a 405 (a path the router did not have would
/// be the fallback's 404). Only methods the path does not take are sent, so
/// no handler runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_takes_exactly_the_listed_methods_on_each_listed_path() {
    let app = app().await;
    let methods = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ];
    let paths: BTreeSet<&str> = ApiRoute::ALL.iter().map(|r| r.path()).collect();
    for path in paths {
        let uri = path.replace("{id}", "1");
        for method in &methods {
            if ApiRoute::ALL
                .iter()
                .any(|r| r.path() == path && r.method() == *method)
            {
                continue;
            }
            let (status, body) = call(&app, method.clone(), &uri, None).await;
            assert_eq!(
                (status, body["error"].as_str()),
                (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed")),
                "{method} {uri}: {body}"
            );
        }
    }
    // The fallback, for comparison: a path no route has.
    let (status, _) = call(&app, Method::PUT, "/no-such-route", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
