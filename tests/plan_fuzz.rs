//! Fuzzing the plan loader: every plan in fixtures/plans, mutated at random
//! (numbers replaced by extremes, lines deleted, duplicated, swapped, keys
//! swapped, bytes flipped into invalid UTF-8, strings made huge or odd,
//! tricky lines inserted), goes through `volley_config::plan::from_bytes` in
//! process. Each input must come back as a plan or an error: never a panic,
//! and never a hang (each case runs in a thread of its own and fails the
//! test if it has not answered within PLAN_FUZZ_CASE_TIMEOUT_S seconds).
//!
//! Every refusal must also point at a line and column.
//!
//! PROPTEST_CASES inputs (default 2000) from the seed PLAN_FUZZ_SEED (default:
//! random; printed, with the count, so a failure can be replayed).
//!
//! VU counts (vus, max_vus, pre_allocated_vus, start_vus, a stage's target)
//! stay below 10^7: larger ones are the memory estimate's business, not the
//! parser's.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;
use volley_config::plan::{LoadOptions, from_bytes};
use volley_model::segment::Segment;

/// Extremes for any number in a plan (also inside strings: "30s", "p(95)<500").
const EXTREMES: &[&str] = &[
    "0",
    "-1",
    "0.0",
    "-0",
    "1e-300",
    "1e300",
    "-1e300",
    "1e400",
    "nan",
    "inf",
    "-inf",
    "65536",
    "4294967296",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999999999999999999",
];

/// Extremes for VU counts: kept below 10^7 (see the module's comment).
const VU_EXTREMES: &[&str] = &[
    "0", "-1", "0.0", "-0", "1e-300", "0.5", "nan", "inf", "-inf", "9999999",
];

const VU_KEYS: &[&str] = &["vus", "max_vus", "pre_allocated_vus", "start_vus", "target"];

/// Lines that make a plan say something odd, inserted anywhere.
const TRICKY_LINES: &[&str] = &[
    "duration = \"18446744073709551616s\"",
    "time_unit = \"0s\"",
    "time_unit = \"1e400s\"",
    "start_time = \"99999999999999h\"",
    "graceful_stop = \"36500d\"",
    "think_time = \"3s..1s\"",
    "think_time = \"0s..36500d\"",
    "rate = 1e300",
    "rate = 0",
    "start_rate = nan",
    "flow = \"weighted\"",
    "weight = 0",
    "weight = 1e308",
    "method = \"CONNECT\"",
    "method = \"\"",
    "url = \"\"",
    "url = \"http://[::1\"",
    "base_url = \"http://127.0.0.1:99999\"",
    "room_size = 18446744073709551615",
    "room_size = 0",
    "messages_per_minute = 1e-300",
    "messages_per_minute = 1e300",
    "pool_size = 0",
    "executor = \"ramping-arrival-rate\"",
    "executor = \"ramping-vus\"",
    "stages = []",
    "stages = [{ duration = \"0s\", target = 1 }]",
    "stages = [{ duration = \"36500d\", target = 9999999 }, { duration = \"36500d\", target = 0 }]",
    "iterations = 18446744073709551615",
    "tags = { a = \"b\" }",
    "[thresholds]",
    "http_req_duration = [\"p(nan)<1\", \"max<NaN\", \"avg<inf\"]",
    "\"http_req_duration{name:x}{{ü}}\" = [\"p(95)<200\"]",
    "\"checks{\" = [\"rate>0\"]",
    "x = [{ threshold = \"count<1\", abort_on_fail = true, delay_abort_eval = \"1e300s\" }]",
    "[scenarios.extra]",
    "[[scenarios.extra.requests]]",
    "[data.more]",
    "file = \"/dev/null\"",
    "[monitors.m]",
    "breaking_point = { signal = \"http_req_failed\", threshold = \"rate>nan\" }",
    "recovery = { window = \"0s\", tolerance = \"1e300%\" }",
    "body = \"{{ rand_string(18446744073709551615) }}\"",
    "body = \"{{ rand_int(9223372036854775807, -9223372036854775808) }}\"",
    "body = \"{{ {{ }} }}\"",
    "body = \"${\"",
    "body = \"${NOPE}\"",
    "a = \"\\u0000\"",
    "= 1",
    "[",
    "\"\"\"",
];

/// Odd string contents, for a quoted value.
const ODD_STRINGS: &[&str] = &[
    "",
    "{{",
    "}}",
    "{{ vars.x }}",
    "${",
    "$${",
    "ü",
    "\\u0000",
    "\\\\",
    "..",
    "1s..",
    "..1s",
    "p(",
    "<",
];

#[derive(Clone, Debug)]
enum Mutation {
    /// The n-th number (mod their count) becomes the e-th extreme.
    Number(usize, usize),
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    /// Swap the keys (text before '=') of two lines.
    SwapKeys(usize, usize),
    /// XOR one byte (often making invalid UTF-8).
    FlipByte(usize, u8),
    /// Set one byte to a value that is never valid UTF-8 on its own.
    BadByte(usize, u8),
    /// Replace the n-th quoted string's contents with an odd or huge one.
    OddString(usize, usize),
    HugeString(usize, usize),
    InsertLine(usize, usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let i = any::<usize>;
    prop_oneof![
        6 => (i(), 0..EXTREMES.len()).prop_map(|(a, b)| Mutation::Number(a, b)),
        1 => i().prop_map(Mutation::DeleteLine),
        1 => i().prop_map(Mutation::DuplicateLine),
        1 => (i(), i()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        1 => (i(), i()).prop_map(|(a, b)| Mutation::SwapKeys(a, b)),
        1 => (i(), 1..=255u8).prop_map(|(a, b)| Mutation::FlipByte(a, b)),
        1 => (i(), prop_oneof![Just(0x80u8), Just(0xc3), Just(0xe2), Just(0xf0), Just(0xff)])
            .prop_map(|(a, b)| Mutation::BadByte(a, b)),
        1 => (i(), 0..ODD_STRINGS.len()).prop_map(|(a, b)| Mutation::OddString(a, b)),
        1 => (i(), prop_oneof![Just(10_000usize), Just(100_000)])
            .prop_map(|(a, b)| Mutation::HugeString(a, b)),
        3 => (i(), 0..TRICKY_LINES.len()).prop_map(|(a, b)| Mutation::InsertLine(a, b)),
        1 => i().prop_map(Mutation::Truncate),
    ]
}

/// Byte ranges of the numbers in `text` (digit runs with inner dots).
fn numbers(text: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < text.len() {
        if text[i].is_ascii_digit() {
            let start = i;
            while i < text.len() && (text[i].is_ascii_digit() || text[i] == b'.') {
                i += 1;
            }
            out.push((start, i));
        } else {
            i += 1;
        }
    }
    out
}

/// The key a number at `at` is the value of, on its line: the word before
/// the nearest '=' to its left.
fn key_before(text: &[u8], at: usize) -> String {
    let line_start = text[..at]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let Some(eq) = text[line_start..at].iter().rposition(|&b| b == b'=') else {
        return String::new();
    };
    let before = String::from_utf8_lossy(&text[line_start..line_start + eq]);
    before
        .trim_end()
        .rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .next()
        .unwrap_or("")
        .to_string()
}

fn lines(text: &[u8]) -> Vec<Vec<u8>> {
    text.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect()
}

fn join(lines: Vec<Vec<u8>>) -> Vec<u8> {
    lines.join(&b'\n')
}

/// Byte ranges of the contents of "..." strings on single lines.
fn strings(text: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut open = None;
    for (i, &b) in text.iter().enumerate() {
        match (b, open) {
            (b'\n', _) => open = None,
            (b'"', None) => open = Some(i + 1),
            (b'"', Some(s)) if text[i - 1] != b'\\' => {
                out.push((s, i));
                open = None;
            }
            _ => {}
        }
    }
    out
}

fn apply(text: &mut Vec<u8>, m: &Mutation) {
    let n = text.len().max(1);
    match *m {
        Mutation::Number(k, e) => {
            let nums = numbers(text);
            if nums.is_empty() {
                return;
            }
            let (a, b) = nums[k % nums.len()];
            let key = key_before(text, a);
            let pool = if VU_KEYS.contains(&key.as_str()) {
                VU_EXTREMES
            } else {
                EXTREMES
            };
            let with = pool[e % pool.len()].as_bytes();
            text.splice(a..b, with.iter().copied());
        }
        Mutation::DeleteLine(k) => {
            let mut l = lines(text);
            let i = k % l.len();
            l.remove(i);
            *text = join(l);
        }
        Mutation::DuplicateLine(k) => {
            let mut l = lines(text);
            let i = k % l.len();
            let dup = l[i].clone();
            l.insert(i, dup);
            *text = join(l);
        }
        Mutation::SwapLines(a, b) => {
            let mut l = lines(text);
            let len = l.len();
            l.swap(a % len, b % len);
            *text = join(l);
        }
        Mutation::SwapKeys(a, b) => {
            let mut l = lines(text);
            let with_eq: Vec<usize> = (0..l.len()).filter(|i| l[*i].contains(&b'=')).collect();
            if with_eq.len() < 2 {
                return;
            }
            let (i, j) = (with_eq[a % with_eq.len()], with_eq[b % with_eq.len()]);
            let split = |line: &[u8]| {
                let p = line.iter().position(|&c| c == b'=').unwrap_or(0);
                (line[..p].to_vec(), line[p..].to_vec())
            };
            let ((ki, vi), (kj, vj)) = (split(&l[i]), split(&l[j]));
            l[i] = [kj, vi].concat();
            l[j] = [ki, vj].concat();
            *text = join(l);
        }
        Mutation::FlipByte(at, x) => {
            if !text.is_empty() {
                text[at % n] ^= x;
            }
        }
        Mutation::BadByte(at, b) => {
            if !text.is_empty() {
                text[at % n] = b;
            }
        }
        Mutation::OddString(k, s) => {
            let all = strings(text);
            if all.is_empty() {
                return;
            }
            let (a, b) = all[k % all.len()];
            text.splice(a..b, ODD_STRINGS[s].bytes());
        }
        Mutation::HugeString(k, len) => {
            let all = strings(text);
            if all.is_empty() {
                return;
            }
            let (a, b) = all[k % all.len()];
            text.splice(a..b, std::iter::repeat_n(b'x', len));
        }
        Mutation::InsertLine(k, t) => {
            let mut l = lines(text);
            let i = k % (l.len() + 1);
            l.insert(i, TRICKY_LINES[t].as_bytes().to_vec());
            *text = join(l);
        }
        Mutation::Truncate(at) => text.truncate(at % n),
    }
}

fn fixtures() -> (PathBuf, Vec<(String, Vec<u8>)>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/plans");
    let mut plans: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .expect("fixtures/plans")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            (name, std::fs::read(&p).expect("fixture"))
        })
        .collect();
    plans.sort();
    assert!(plans.len() >= 10, "found {} plans", plans.len());
    (dir, plans)
}

fn env() -> HashMap<String, String> {
    [
        ("BASE_URL", "http://127.0.0.1:9"),
        ("WS_URL", "ws://127.0.0.1:9/ws/chat"),
        ("STRIPE_WEBHOOK_SECRET", "whsec_test"),
        ("DATABASE_URL", "postgres://postgres@127.0.0.1:9/postgres"),
        ("TARGET_PID", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

#[derive(Default)]
struct Tally {
    inputs: AtomicU64,
    accepted: AtomicU64,
    refused: AtomicU64,
    not_utf8: AtomicU64,
    /// Refusals that point at no line and column, by message (first 120 chars).
    unlocated: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
}

#[test]
fn mutated_fixture_plans_load_or_fail_but_never_panic_or_hang() {
    let cases: u32 = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let timeout = Duration::from_secs(
        std::env::var("PLAN_FUZZ_CASE_TIMEOUT_S")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10),
    );
    let seed: u64 = std::env::var("PLAN_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let (dir, plans) = fixtures();
    let plans = Arc::new(plans);
    let dir = Arc::new(dir);
    let env = Arc::new(env());
    let tally = Arc::new(Tally::default());

    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes);
    let config = Config {
        cases,
        failure_persistence: None,
        // Shrinking re-runs cases; a handful of steps finds a short input.
        max_shrink_iters: 200,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(config, rng);
    let strategy = (0..plans.len(), proptest::collection::vec(mutation(), 1..=4));
    let result = runner.run(&strategy, |(which, mutations)| {
        let mut text = plans[which].1.clone();
        for m in &mutations {
            apply(&mut text, m);
        }
        tally.inputs.fetch_add(1, Ordering::Relaxed);
        let name = plans[which].0.clone();
        let (tx, rx) = mpsc::channel();
        let (dir, env, input, tally) = (dir.clone(), env.clone(), text.clone(), tally.clone());
        let worker = std::thread::Builder::new()
            .name("plan-fuzz-case".into())
            .spawn(move || {
                let opts = LoadOptions {
                    env: (*env).clone(),
                    segment: Segment::default(),
                    ..Default::default()
                };
                let outcome = from_bytes(&name, &input, &dir, &opts);
                let counter = match &outcome {
                    Ok(_) => &tally.accepted,
                    Err(e) if e.message.contains("is not UTF-8") => &tally.not_utf8,
                    Err(_) => &tally.refused,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = &outcome {
                    assert!(
                        e.to_string().starts_with(name.as_str()),
                        "an error names the file: {e}"
                    );
                    if e.position.is_none() {
                        let key: String = e.message.chars().take(120).collect();
                        *tally.unlocated.lock().unwrap().entry(key).or_default() += 1;
                        let _ = tx.send(Err(e.to_string()));
                        return;
                    }
                }
                let _ = tx.send(Ok(()));
            })
            .expect("a case thread starts");
        let show = || {
            format!(
                "{} with {mutations:?}:\n{}",
                plans[which].0,
                String::from_utf8_lossy(&text)
            )
        };
        match rx.recv_timeout(timeout) {
            Ok(Ok(())) => {
                let _ = worker.join();
                Ok(())
            }
            Ok(Err(unlocated)) => {
                let _ = worker.join();
                Err(TestCaseError::fail(format!(
                    "a refusal points at no line and column ({unlocated}) on {}",
                    show()
                )))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let panic = worker.join().err().map(|p| {
                    p.downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default()
                });
                Err(TestCaseError::fail(format!(
                    "the loader panicked ({}) on {}",
                    panic.unwrap_or_default(),
                    show()
                )))
            }
            // The thread is left behind: it cannot be stopped from outside.
            Err(mpsc::RecvTimeoutError::Timeout) => Err(TestCaseError::fail(format!(
                "the loader did not answer within {timeout:?} on {}",
                show()
            ))),
        }
    });
    let unlocated = tally.unlocated.lock().unwrap();
    eprintln!(
        "plan fuzz: {} inputs from {} fixture plans (seed {seed}, PLAN_FUZZ_SEED={seed} to replay): {} loaded, {} refused ({} without a line:col), {} refused as not UTF-8",
        tally.inputs.load(Ordering::Relaxed),
        plans.len(),
        tally.accepted.load(Ordering::Relaxed),
        tally.refused.load(Ordering::Relaxed),
        unlocated.values().sum::<u64>(),
        tally.not_utf8.load(Ordering::Relaxed),
    );
    for (message, n) in unlocated.iter() {
        eprintln!("  without line:col, {n}x: {message}");
    }
    if let Err(e) = result {
        panic!("{e}");
    }
}
