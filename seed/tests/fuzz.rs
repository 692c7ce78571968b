//! Fuzz: the seed specs of fixtures/seed, mutated (numbers replaced with
//! extremes, lines deleted or doubled, bytes flipped), go through the whole
//! offline path in-process: read, parse, compile, dry-run sizing. Each must
//! end in a report or a refusal that points into the file, never a panic,
//! an abort or a hang (each case runs in a thread with a time limit).
//!
//! A fixed seed keeps CI repeatable; VOLLEY_FUZZ_SEED=N (or `random`) and
//! PROPTEST_CASES=N explore further.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// What a number in a spec becomes.
const EXTREMES: &[&str] = &[
    "0",
    "-1",
    "18446744073709551616",
    "18446744073709551615",
    "9223372036854775807",
    "-9223372036854775808",
    "1e300",
    "-1e300",
    "1e-300",
    "nan",
    "inf",
    "-inf",
    "0.0",
    "100000000000",
];

/// `--scale` a case runs with, mostly 1 (the CLI refuses 0, NaN and inf itself).
fn scale() -> impl Strategy<Value = f64> {
    prop_oneof![
        6 => Just(1.0),
        1 => Just(0.001),
        1 => Just(1e-12),
        1 => Just(1e6),
        1 => Just(1e15),
    ]
}

/// A debug build on a busy machine: far above the slowest honest case.
const LIMIT: Duration = Duration::from_secs(60);

const CASES: u32 = 600;

#[derive(Debug, Clone)]
enum Mutation {
    /// Replace the nth number (mod the count) with an extreme.
    Number(usize, usize),
    DeleteLine(usize),
    DuplicateLine(usize),
    /// Flip one bit of the byte at (mod the length).
    FlipBit(usize, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        6 => (any::<usize>(), 0..EXTREMES.len()).prop_map(|(n, e)| Mutation::Number(n, e)),
        1 => any::<usize>().prop_map(Mutation::DeleteLine),
        1 => any::<usize>().prop_map(Mutation::DuplicateLine),
        1 => (any::<usize>(), 0u8..8).prop_map(|(at, b)| Mutation::FlipBit(at, b)),
    ]
}

/// Byte ranges of the numbers in a spec, inside strings too ("1..5", dates).
fn numbers(text: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < text.len() {
        if text[i].is_ascii_digit() {
            let start = if i > 0 && text[i - 1] == b'-' {
                i - 1
            } else {
                i
            };
            let mut end = i;
            while end < text.len() && (text[end].is_ascii_digit() || text[end] == b'.') {
                // "1..5" is two numbers.
                if text[end] == b'.' && text.get(end + 1) == Some(&b'.') {
                    break;
                }
                end += 1;
            }
            out.push((start, end));
            i = end.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

fn mutate(text: &[u8], m: &Mutation) -> Vec<u8> {
    let lines = || text.split_inclusive(|b| *b == b'\n').collect::<Vec<_>>();
    match m {
        Mutation::Number(n, e) => {
            let nums = numbers(text);
            if nums.is_empty() {
                return text.to_vec();
            }
            let (a, b) = nums[n % nums.len()];
            [&text[..a], EXTREMES[*e].as_bytes(), &text[b..]].concat()
        }
        Mutation::DeleteLine(n) => {
            let mut l = lines();
            if !l.is_empty() {
                l.remove(n % l.len());
            }
            l.concat()
        }
        Mutation::DuplicateLine(n) => {
            let mut l = lines();
            if !l.is_empty() {
                let i = n % l.len();
                l.insert(i, l[i]);
            }
            l.concat()
        }
        Mutation::FlipBit(at, bit) => {
            let mut t = text.to_vec();
            if !t.is_empty() {
                let i = at % t.len();
                t[i] ^= 1 << bit;
            }
            t
        }
    }
}

fn fixtures() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/seed");
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no seed specs in {}", dir.display());
    out
}

/// The fixtures' folder copied (their ddl files included), to write mutants beside.
fn workdir() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/seed");
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, tmp.path().join(p.file_name().unwrap())).unwrap();
    }
    tmp
}

fn config() -> Config {
    let seed = match std::env::var("VOLLEY_FUZZ_SEED").as_deref() {
        Err(_) => 19,
        Ok("random") => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
        Ok(n) => n.parse().expect("VOLLEY_FUZZ_SEED is a number or `random`"),
    };
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(CASES);
    let _ = writeln!(
        std::io::stderr(),
        "seed spec fuzz: VOLLEY_FUZZ_SEED={seed} PROPTEST_CASES={cases}"
    );
    Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        // A hang costs LIMIT per try: keep shrinking short.
        max_shrink_iters: 64,
        ..Config::default()
    }
}

/// One mutant, offline dry run, in a thread: Ok(sized) or why it failed.
fn check(path: PathBuf, scale: f64) -> Result<bool, String> {
    let (tx, rx) = mpsc::channel();
    let p = path.clone();
    std::thread::spawn(move || {
        let opts = volley_seed::Options {
            dry_run: true,
            scale,
            jobs: 1,
            ..Default::default()
        };
        let _ = tx.send(volley_seed::run(&p, &opts).map(|_| ()));
    });
    let file = path.display().to_string();
    match rx.recv_timeout(LIMIT) {
        Ok(Ok(())) => Ok(true),
        Ok(Err(volley_seed::Error::Spec(errs))) => {
            for e in errs {
                let m = e.to_string();
                if e.file != file || e.at.is_none() {
                    return Err(format!("a refusal without file:line:col: {m}"));
                }
            }
            Ok(false)
        }
        Ok(Err(e)) => Err(format!("not a spec refusal (a panic inside?): {e}")),
        Err(mpsc::RecvTimeoutError::Timeout) => Err(format!("no answer within {LIMIT:?} (a hang)")),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err("panicked".into()),
    }
}

#[test]
fn mutated_seed_specs_are_refused_or_sized_never_a_panic_or_hang() {
    let fixtures = fixtures();
    let dir = workdir();
    // Unmutated, every fixture is sized.
    for (name, _) in &fixtures {
        assert_eq!(check(dir.path().join(name), 1.0), Ok(true), "{name}");
    }
    let ran = AtomicUsize::new(0);
    let refused = AtomicUsize::new(0);
    let n = fixtures.len();
    proptest!(config(), |(
        f in 0..n,
        muts in proptest::collection::vec(mutation(), 1..4),
        scale in scale(),
    )| {
        let (name, text) = &fixtures[f];
        let mut t = text.clone();
        for m in &muts {
            t = mutate(&t, m);
        }
        let i = ran.fetch_add(1, Ordering::Relaxed);
        let path = dir.path().join(format!("m{i}-{name}"));
        std::fs::write(&path, &t).unwrap();
        match check(path.clone(), scale) {
            Ok(sized) => {
                if !sized {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
                let _ = std::fs::remove_file(&path);
            }
            Err(why) => {
                return Err(TestCaseError::fail(format!(
                    "{why}\n--- {name} with {muts:?} at --scale {scale}:\n{}",
                    String::from_utf8_lossy(&t)
                )));
            }
        }
    });
    let _ = writeln!(
        std::io::stderr(),
        "seed spec fuzz: {} mutated specs ran ({} refused)",
        ran.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed)
    );
}
