//! Fault suite, F12: connections opened together reach `max_lifetime`
//! together unless jittered; an in-use connection is never retired under
//! its borrower. Against a private MariaDB server. See
//! `docs/failure-modes.md`.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use common::{describe_failures, Events, Kind, Load, Select42};
use poolwarden::CloseReason;

const LIFETIME: Duration = Duration::from_secs(3);
const JITTER: f64 = 0.5;

/// F12: ten connections opened together with `max_lifetime` 3 s and jitter
/// 0.5 retire spread over time (more than one 100 ms bucket), each no
/// earlier than `max_lifetime * (1 - jitter)`, under a light load that sees
/// zero errors; a guard held past the lifetime keeps working on the same
/// session, and its connection is retired only when returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f12_lifetime_jitter_spreads_retirement_and_never_retires_under_a_borrower() {
    let _serial = common::serial().await;
    let db = common::start_mariadb(&[]);
    let events = Events::new();
    let pool = common::builder(&db.url(), &events)
        .max_size(10)
        .max_connecting(10)
        .max_lifetime(Some(LIFETIME))
        .lifetime_jitter(JITTER)
        .connect_timeout(Duration::from_secs(2))
        .build()
        .unwrap();

    // Ten opened together.
    let mut guards: Vec<_> = futures_util::future::join_all((0..10).map(|_| pool.get()))
        .await
        .into_iter()
        .map(|r| r.expect("opening ten connections"))
        .collect();
    let created: HashMap<u64, Instant> = events
        .connected()
        .into_iter()
        .map(|(at, id)| (id, at))
        .collect();
    assert_eq!(created.len(), 10);
    let opened_from = *created.values().min().unwrap();
    let opened_to = *created.values().max().unwrap();

    let mut held = guards.pop().unwrap();
    let held_id = held.connection_id();
    let held_session = common::session_id(&mut held).await;
    let others: Vec<u64> = guards.iter().map(|g| g.connection_id()).collect();
    drop(guards);

    // A light load throughout the retirement wave.
    let load = Load::start(&pool, Select42, 2, 1_000_000, Duration::from_secs(30));

    // Every other original connection retires for its lifetime.
    let all_retired = events
        .wait_until(Duration::from_secs(15), |recs| {
            others.iter().all(|id| {
                recs.iter()
                    .any(|r| matches!(r.kind, Kind::Discarded { id: d, .. } if d == *id))
            })
        })
        .await;
    assert!(all_retired, "{:?}", pool.status());

    // The held guard outlives its lifetime and still works, on the same
    // session: not retired under its borrower.
    let held_created = created[&held_id];
    tokio::time::sleep_until((held_created + LIFETIME + Duration::from_millis(500)).into()).await;
    assert_eq!(
        common::select_42(&mut held)
            .await
            .expect("a guard held past max_lifetime must keep working"),
        Some(42)
    );
    assert_eq!(common::session_id(&mut held).await, held_session);
    assert!(
        !events.discarded().iter().any(|(_, id, _)| *id == held_id),
        "the held connection was retired under its borrower"
    );
    let returned_at = Instant::now();
    drop(held);
    let held_retired = events
        .wait_for(
            Duration::from_secs(5),
            |r| matches!(r.kind, Kind::Discarded { id, .. } if id == held_id),
        )
        .await
        .expect("the held connection was not retired when returned");
    assert!(
        matches!(
            held_retired.kind,
            Kind::Discarded {
                reason: CloseReason::Lifetime,
                ..
            }
        ),
        "{held_retired:?}"
    );
    assert!(held_retired.at >= returned_at);

    let ops = load.finish().await;
    assert!(
        ops.iter().all(|op| op.is_ok()),
        "{}",
        describe_failures(&ops, opened_from, 10)
    );

    // The retirements of the nine idle-or-lent originals.
    let retirements: Vec<(u64, Instant, CloseReason)> = events
        .discarded()
        .into_iter()
        .filter(|(_, id, _)| others.contains(id))
        .map(|(at, id, reason)| (id, at, reason))
        .collect();
    assert_eq!(retirements.len(), 9, "{retirements:?}");
    let min_life = LIFETIME.mul_f64(1.0 - JITTER);
    let mut ages = Vec::new();
    for (id, at, reason) in &retirements {
        assert_eq!(*reason, CloseReason::Lifetime, "connection {id}");
        let age = at.duration_since(created[id]);
        assert!(
            age >= min_life,
            "connection {id} retired after only {age:?}"
        );
        ages.push(age);
    }
    let first = retirements.iter().map(|(_, at, _)| *at).min().unwrap();
    let buckets: BTreeSet<u128> = retirements
        .iter()
        .map(|(_, at, _)| at.duration_since(first).as_millis() / 100)
        .collect();
    assert!(
        buckets.len() > 1,
        "all nine retired within the same 100 ms: {retirements:?}"
    );
    ages.sort();
    eprintln!(
        "F12: ten opened within {:?}; nine retired at ages {:?} (spread {:?}, {} distinct 100 ms \
         buckets); the held one was retired at return ({:?} after it). Load: {} ops, zero \
         errors. Status: {:?}",
        opened_to.duration_since(opened_from),
        ages,
        *ages.last().unwrap() - ages[0],
        buckets.len(),
        held_retired.at.duration_since(returned_at),
        ops.len(),
        pool.status(),
    );
}
