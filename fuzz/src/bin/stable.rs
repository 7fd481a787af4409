//! The fuzz targets on stable Rust: mutates seed inputs with a seeded generator and feeds them to
//! every target (or those named), catching panics. Any panic, or an input that runs longer than
//! `--hang-secs`, is a failure: the input is saved under `--out` (default fuzz/findings), and the run
//! exits non-zero.
//!
//! ```text
//! cargo run --release --manifest-path fuzz/Cargo.toml --bin stable -- --inputs 10000000 [--seed 1]
//!     [--targets ses,cms,x509,ofd,xml] [--samples DIR] [--out DIR] [--hang-secs 10]
//! cargo run --release --manifest-path fuzz/Cargo.toml --bin stable -- --replay FILE --targets ofd
//! ```
//!
//! `--inputs` is the total over the targets, shared in proportion to their weights (the quick DER
//! parsers get more than the package readers). The samples come from `--samples`, else
//! $SEALD_SAMPLES, else ../shared/samples beside the repository.

use seald_fuzz::mutate::{mutate, Rng};
use seald_fuzz::{seeds::seeds, Target, TARGETS};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Options {
    inputs: u64,
    seed: u64,
    targets: Vec<&'static Target>,
    samples: Option<PathBuf>,
    out: PathBuf,
    hang: Duration,
    replay: Option<PathBuf>,
}

/// An input slower than this is saved, to be replayed with `--replay`.
const SLOW: Duration = Duration::from_millis(100);

/// Each target's share of the inputs, by name.
fn weight(name: &str) -> u64 {
    match name {
        "x509" => 3,
        "ses" | "cms" => 3,
        _ => 1,
    }
}

fn usage(why: &str) -> ! {
    eprintln!("stable: {why}");
    eprintln!(
        "usage: stable [--inputs N] [--seed S] [--targets a,b] [--samples DIR] [--out DIR] [--hang-secs S] [--replay FILE]"
    );
    std::process::exit(2)
}

fn options() -> Options {
    let mut o = Options {
        inputs: 1_000_000,
        seed: 1,
        targets: TARGETS.iter().collect(),
        samples: std::env::var_os("SEALD_SAMPLES").map(PathBuf::from),
        out: Path::new(env!("CARGO_MANIFEST_DIR")).join("findings"),
        hang: Duration::from_secs(10),
        replay: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage(&format!("{a} needs a value")));
        let number =
            |v: String| v.replace('_', "").parse::<u64>().unwrap_or_else(|_| usage(&format!("{a}: not a number")));
        match a.as_str() {
            "--inputs" => o.inputs = number(value()),
            "--seed" => o.seed = number(value()),
            "--hang-secs" => o.hang = Duration::from_secs(number(value())),
            "--samples" => o.samples = Some(PathBuf::from(value())),
            "--out" => o.out = PathBuf::from(value()),
            "--replay" => o.replay = Some(PathBuf::from(value())),
            "--targets" => {
                let v = value();
                o.targets = v
                    .split(',')
                    .map(|n| TARGETS.iter().find(|t| t.name == n).unwrap_or_else(|| usage(&format!("no target {n}"))))
                    .collect();
            }
            _ => usage(&format!("unknown argument {a}")),
        }
    }
    if o.samples.is_none() {
        let beside = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/samples");
        o.samples = beside.is_dir().then_some(beside);
    }
    o
}

/// What the watchdog sees: the input running, since when, in which target.
struct Running {
    target: &'static str,
    since: Option<Instant>,
    input: Arc<Vec<u8>>,
}

fn save(out: &Path, kind: &str, target: &str, input: &[u8]) -> PathBuf {
    let hash = input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3));
    let _ = std::fs::create_dir_all(out);
    let path = out.join(format!("{kind}-{target}-{hash:016x}.bin"));
    if let Err(e) = std::fs::write(&path, input) {
        eprintln!("stable: cannot save {}: {e}", path.display());
    }
    path
}

/// Ends the process when one input runs longer than `hang`, saving it.
fn watchdog(running: Arc<Mutex<Running>>, hang: Duration, out: PathBuf) {
    let _ = std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(250).min(hang));
        let r = running.lock().unwrap_or_else(|e| e.into_inner());
        if r.since.is_some_and(|s| s.elapsed() > hang) {
            let path = save(&out, "hang", r.target, &r.input);
            eprintln!("stable: HANG in {}: an input ran over {hang:?}; saved to {}", r.target, path.display());
            std::process::exit(1);
        }
    });
}

thread_local! {
    static PANIC: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

fn main() {
    let o = options();
    // A panic is recorded, not printed: the driver reports it with the input that caused it.
    std::panic::set_hook(Box::new(|info| {
        let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        PANIC.with(|p| *p.borrow_mut() = Some(format!("{msg}{at}")));
    }));
    if let Some(file) = &o.replay {
        let input = std::fs::read(file).unwrap_or_else(|e| usage(&format!("{}: {e}", file.display())));
        let mut failed = false;
        for t in &o.targets {
            let start = Instant::now();
            let r = std::panic::catch_unwind(|| (t.run)(&input));
            let why = PANIC.with(|p| p.borrow_mut().take()).unwrap_or_default();
            println!("{}: {} in {:?} {why}", t.name, if r.is_ok() { "returned" } else { "PANICKED" }, start.elapsed());
            failed |= r.is_err();
        }
        std::process::exit(i32::from(failed));
    }
    match &o.samples {
        Some(d) => println!("stable: seeds from {} and built here; seed {}", d.display(), o.seed),
        None => println!("stable: no samples found (set SEALD_SAMPLES); seeds built here only; seed {}", o.seed),
    }
    let running = Arc::new(Mutex::new(Running { target: "", since: None, input: Arc::new(Vec::new()) }));
    watchdog(running.clone(), o.hang, o.out.clone());
    let total_weight: u64 = o.targets.iter().map(|t| weight(t.name)).sum();
    let mut rng = Rng::new(o.seed);
    let (mut all_inputs, mut findings) = (0u64, 0u64);
    let started = Instant::now();
    for (i, t) in o.targets.iter().enumerate() {
        let share =
            if i + 1 == o.targets.len() { o.inputs - all_inputs } else { o.inputs * weight(t.name) / total_weight };
        let corpus = seeds(t.name, o.samples.as_deref());
        let (start, mut slowest, mut panics) = (Instant::now(), Duration::ZERO, 0u64);
        let mut slowest_input = Arc::new(Vec::new());
        for n in 0..share {
            // Every seed as it is first, then mutations of seeds picked at random.
            let input = Arc::new(match corpus.get(n as usize) {
                Some(seed) => seed.clone(),
                None => {
                    let seed = &corpus[rng.below(corpus.len())];
                    mutate(&mut rng, seed, t.shape, &corpus)
                }
            });
            let began = Instant::now();
            {
                let mut r = running.lock().unwrap_or_else(|e| e.into_inner());
                (r.target, r.since, r.input) = (t.name, Some(began), input.clone());
            }
            let outcome = std::panic::catch_unwind(|| (t.run)(&input));
            {
                let mut r = running.lock().unwrap_or_else(|e| e.into_inner());
                r.since = None;
            }
            if began.elapsed() > slowest {
                (slowest, slowest_input) = (began.elapsed(), input.clone());
            }
            if outcome.is_err() {
                panics += 1;
                let why = PANIC.with(|p| p.borrow_mut().take()).unwrap_or_default();
                let path = save(&o.out, "panic", t.name, &input);
                eprintln!("stable: PANIC in {}: {why}; input saved to {}", t.name, path.display());
            }
        }
        // A slow input is no failure (the machine may be busy), but it is kept to be replayed.
        if slowest > SLOW {
            let path = save(&o.out, "slow", t.name, &slowest_input);
            println!("stable: the slowest {} input ({slowest:?}) is saved to {}", t.name, path.display());
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{:>5}: {share:>10} inputs in {secs:>8.1} s, {:>9.0} inputs/s, slowest {:>7.1} ms, {} seeds, {panics} panics",
            t.name,
            share as f64 / secs.max(1e-9),
            slowest.as_secs_f64() * 1e3,
            corpus.len()
        );
        all_inputs += share;
        findings += panics;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "total: {all_inputs} inputs in {secs:.1} s ({:.0} inputs/s), {findings} panics",
        all_inputs as f64 / secs.max(1e-9)
    );
    std::process::exit(i32::from(findings > 0));
}
