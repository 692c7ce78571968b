//! `[setup]` and `[teardown]`: their requests run once, on a thread of their
//! own (a VU is not `Send`), recording into the run's registry apart from
//! the workers; the run adds their samples to its totals, where the judge
//! keeps them out of scenario numbers (their `group` is `::setup` or
//! `::teardown`).

use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use volley_config::plan::Phase;
use volley_protocols::duration::format_duration;
use volley_protocols::metrics::{Recorder, Registry, Shard};

/// What a phase did: the values it captured (in the order of its driver's
/// `captures()`), or why it failed; and its samples.
pub struct Outcome {
    pub result: Result<Vec<String>, String>,
    pub shard: Shard,
}

/// Run `phase` to its end, to its `max_duration`, or until `cancel` fires.
pub async fn run(
    phase: &Phase,
    registry: Arc<Registry>,
    seed: u64,
    cancel: CancellationToken,
) -> Outcome {
    let driver = phase.driver.clone();
    let max = phase.max_duration;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("volley-phase".into())
        .spawn(move || {
            let rec = Recorder::new(registry);
            let result = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(async {
                    tokio::select! {
                        r = tokio::time::timeout(max, driver.run_phase(rec.clone(), seed)) => {
                            r.unwrap_or_else(|_| Err(format!(
                                "did not finish within max_duration = \"{}\" (raise it, or look at why the target is slow)",
                                format_duration(max)
                            )))
                        }
                        _ = cancel.cancelled() => Err("interrupted".into()),
                    }
                }),
                Err(e) => Err(format!("cannot start its runtime: {e}")),
            };
            let _ = tx.send(Outcome {
                result,
                shard: rec.take(),
            });
        });
    if let Err(e) = spawned {
        return Outcome {
            result: Err(format!("cannot start its thread: {e}")),
            shard: Shard::default(),
        };
    }
    rx.await.unwrap_or_else(|_| Outcome {
        result: Err("its thread ended without an answer".into()),
        shard: Shard::default(),
    })
}
