//! Scenario 6: checkouts held past the leak threshold. Does the pool name
//! the holder, and how soon?

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use poolwarden::{CheckoutInfo, Event, Observer};
use poolwarden_mysql::MySqlManager;

use crate::real::markdown::Table;
use crate::real::run::Ctx;
use crate::real::s1_throughput::met;
use crate::real::stats::ms;

/// Holders, each checked out this long after the previous one, so that
/// they fall at different points of the pool's maintenance cycle.
const STAGGER: Duration = Duration::from_millis(53);
const HOLDERS: usize = 5;

/// What the observer saw.
#[derive(Debug, Clone)]
struct Seen {
    at: Instant,
    leak: bool,
    checkout: CheckoutInfo,
}

#[derive(Default)]
struct Capture {
    seen: Mutex<Vec<Seen>>,
}

impl Observer for Capture {
    fn on_event(&self, event: &Event<'_>) {
        let (leak, checkout) = match event {
            Event::Leak { checkout } => (true, *checkout),
            Event::LeakResolved { checkout } => (false, *checkout),
            _ => return,
        };
        self.seen.lock().push(Seen {
            at: Instant::now(),
            leak,
            checkout: checkout.clone(),
        });
    }
}

impl Capture {
    fn find(&self, checkout_id: u64, leak: bool) -> Option<Seen> {
        self.seen
            .lock()
            .iter()
            .find(|s| s.checkout.id == checkout_id && s.leak == leak)
            .cloned()
    }
}

/// One holder's story.
struct Held {
    label: String,
    /// When `get()` returned.
    taken: Instant,
    leak: Option<Seen>,
    resolved: Option<Seen>,
    /// The pool's live checkout list entry for it, once reported.
    live: Option<CheckoutInfo>,
}

pub(crate) async fn run(ctx: &Ctx) -> Result<String, String> {
    let threshold = Duration::from_secs(1);
    let capture = Arc::new(Capture::default());
    let manager = MySqlManager::from_url(ctx.server.url()).map_err(|e| e.to_string())?;
    let pool = poolwarden::Pool::builder(manager)
        .max_size(10)
        .leak_threshold(Some(threshold))
        .observer(capture.clone())
        .build()
        .map_err(|e| e.to_string())?;
    let maintenance = pool.config().maintenance_interval;

    let mut tasks = Vec::new();
    for i in 0..HOLDERS {
        let pool = pool.clone();
        let capture = Arc::clone(&capture);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(STAGGER * i as u32).await;
            let mut guard = pool.get().await.map_err(|e| e.to_string())?;
            let taken = Instant::now();
            let label = format!("report job #{i}");
            guard.label(label.clone());
            let id = guard.checkout_id();
            // Hold it until the pool reports it, 3 s at most.
            while taken.elapsed() < Duration::from_secs(3) && capture.find(id, true).is_none() {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let live = pool.checkouts().into_iter().find(|c| c.id == id);
            drop(guard);
            let back = Instant::now();
            while back.elapsed() < Duration::from_secs(1) && capture.find(id, false).is_none() {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Ok::<_, String>(Held {
                label,
                taken,
                leak: capture.find(id, true),
                resolved: capture.find(id, false),
                live,
            })
        }));
    }
    let mut held = Vec::new();
    for t in tasks {
        held.push(t.await.map_err(|e| e.to_string())??);
    }
    pool.close().await;
    drop(pool);

    let named = held.iter().filter(|h| h.leak.is_some()).count();
    let delays: Vec<Duration> = held
        .iter()
        .filter_map(|h| h.leak.as_ref().map(|s| s.at - h.taken))
        .collect();
    let (lo, hi) = (
        delays.iter().min().copied().unwrap_or_default(),
        delays.iter().max().copied().unwrap_or_default(),
    );
    let mut t = Table::new(&[
        "contender",
        "names the holder",
        "reported after, ms (threshold 1,000)",
        "what it said",
    ]);
    let said = held
        .first()
        .and_then(|h| {
            let s = h.leak.as_ref()?;
            Some(format!(
                "e.g. `Event::Leak` for {:?}: held {} ms, taken at `{}`; the live list (`Pool::checkouts()`) \
                 showed it with `leak_reported: {}`; on return: {}",
                s.checkout.label.as_deref().unwrap_or(&h.label),
                ms(s.checkout.held_for),
                s.checkout.location,
                h.live.as_ref().is_some_and(|c| c.leak_reported),
                h.resolved
                    .as_ref()
                    .map(|r| format!(
                        "`Event::LeakResolved` after {} ms held",
                        ms(r.checkout.held_for)
                    ))
                    .unwrap_or_else(|| "no LeakResolved event".to_owned()),
            ))
        })
        .unwrap_or_else(|| "nothing within 3 s".to_owned());
    t.row(vec![
        "poolwarden (leak_threshold 1 s)".to_owned(),
        format!("yes, {named} of {HOLDERS}"),
        format!("{}–{}", ms(lo), ms(hi)),
        said,
    ]);
    for (peer, closest) in [
        (
            "sqlx",
            "no such feature; `acquire_slow_threshold` warns the task that *waited*, not the holder",
        ),
        (
            "mysql_async Pool",
            "no such feature; optional `hdrhistogram` of active time, filled on return",
        ),
        (
            "deadpool",
            "no such feature; per-object `Metrics` (age, recycle count), no holder location",
        ),
        (
            "bb8",
            "no such feature; `State::statistics` counts, no holder location",
        ),
    ] {
        t.row(vec![
            peer.to_owned(),
            "no".to_owned(),
            "-".to_owned(),
            format!("not run: {closest} (survey, section 2b)"),
        ]);
    }
    let verdict = format!(
        "- poolwarden names every holder: **{}** ({named} of {HOLDERS}), {}–{} ms after the checkout: \
         the threshold plus up to one maintenance pass (`maintenance_interval` {} ms), which is \
         when leaks are scanned",
        met(named == HOLDERS),
        ms(lo),
        ms(hi),
        ms(maintenance)
    );
    Ok(format!(
        "{HOLDERS} checkouts, taken {} ms apart (so they fall at different points of the pool's \
         maintenance cycle) and labelled, are each held until the pool reports them (3 s at most). \
         poolwarden is built with `leak_threshold(Some(1 s))` and an `Observer` that records \
         `Event::Leak` and `Event::LeakResolved`. The peers have no leak report, so they are not \
         run.\n\n{}\n{verdict}\n",
        STAGGER.as_millis(),
        t.render()
    ))
}
