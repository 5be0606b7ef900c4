//! MLS group operations on three stacks, side by side in one run:
//!
//! - `satsuma`: mls-rs on `satsuma_core::mls::SatsumaCrypto`;
//! - `mls-rs-rustcrypto`: the same mls-rs code on
//!   `mls_rs_crypto_rustcrypto::RustCryptoProvider` (the provider is the
//!   only difference; the goal is `satsuma` within 1.1× of it);
//! - `openmls`: OpenMLS 0.9 on `openmls_rust_crypto`.
//!
//! Cipher suite 0x0001, basic credentials, `PublicMessage` handshakes, a
//! path in every commit, the ratchet tree inside the Welcome. Groups are
//! built once per N (see `satsuma_bench::build_groups`: grown one member at
//! a time, every member committed once, so the tree is full) and restored
//! from a snapshot before each timed iteration; restoring is not timed.
//!
//! Benchmarks, each with an id `<operation>/<implementation>/<N>`:
//!
//! - `create`: a member alone starts a group (no N);
//! - `add`: member 0 of N adds one member: parses the key package, builds
//!   the commit and Welcome, merges, encodes both;
//! - `remove`: member 0 of N removes member N-1, commits and merges;
//! - `process`: member N-1 parses member 0's add commit and merges it;
//! - `join`: the added member joins from that Welcome (tree inside).
//!
//! N = 2, 16, 128, 1024 under `cargo bench`; under `cargo test` (criterion's
//! test mode, each benchmark run once) only N = 2 and 4. The message
//! sizes are printed as a markdown table before the benchmarks start.
//! `SATSUMA_BENCH_SIZES=2,16` overrides the sizes (groups are built before
//! criterion applies its filter, so this saves minutes when profiling).
//! OpenMLS's rayon pool is pinned to one thread, the benchmark's own (mls-rs
//! is built without rayon), unless `RAYON_NUM_THREADS` is set.
//!
//! Times are the process's CPU time (`satsuma_bench::BenchClock`): on a
//! shared machine, wall-clock samples count waiting for a core too. Set
//! `SATSUMA_BENCH_CLOCK=wall` for the wall clock (and with it
//! `RAYON_NUM_THREADS` to let OpenMLS use more cores).
//!
//! ```text
//! cargo bench -p satsuma-bench --bench mls
//! cargo bench -p satsuma-bench --bench mls -- 'join/.*/1024'
//! ```

// A benchmark's setup has nothing to recover from: a failure there is a bug
// in the benchmark or a library, and aborting the run with its message is
// the right end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, BenchmarkGroup, BenchmarkId, Criterion, SamplingMode};
use mls_rs_crypto_rustcrypto::RustCryptoProvider;
use satsuma_bench::{
    BenchClock, Fixture, MessageSizes, Mls, MlsRs, OpenMls, build_groups, last_leaf,
};
use satsuma_core::mls::SatsumaCrypto;

/// Group sizes under `cargo bench`.
const BENCH_SIZES: [usize; 4] = [2, 16, 128, 1024];
/// Group sizes under `cargo test`, which runs every benchmark once.
const TEST_SIZES: [usize; 2] = [2, 4];

#[derive(Debug, Clone, Copy)]
enum Operation {
    Add,
    Remove,
    Process,
    Join,
}

impl Operation {
    const ALL: [Self; 4] = [Self::Add, Self::Remove, Self::Process, Self::Join];

    fn name(self) -> &'static str {
        match self {
            Self::Add => "add",
            Self::Remove => "remove",
            Self::Process => "process",
            Self::Join => "join",
        }
    }
}

/// One implementation with its groups.
struct Variant<M: Mls> {
    mls: M,
    /// A member in no group, for `create`.
    lonely: M::Saved,
    fixtures: Vec<Fixture<M>>,
}

impl<M: Mls> Variant<M> {
    fn new(mls: M, sizes: &[usize]) -> Self {
        let started = Instant::now();
        let lonely = mls.save(&mls.member(b"creator").unwrap()).unwrap();
        let fixtures = match build_groups(&mls, sizes) {
            Ok(fixtures) => fixtures,
            Err(e) => {
                eprintln!("building {} groups: {e}", mls.name());
                std::process::exit(1);
            }
        };
        eprintln!(
            "built {} groups of {sizes:?} in {:.1} s",
            mls.name(),
            started.elapsed().as_secs_f64()
        );
        Self {
            mls,
            lonely,
            fixtures,
        }
    }

    fn bench_create(&self, group: &mut BenchmarkGroup<'_, BenchClock>) {
        let mls = &self.mls;
        group.bench_function(mls.name(), |b| {
            b.iter_batched_ref(
                || mls.restore(&self.lonely).unwrap(),
                |member| mls.create_group(member).unwrap(),
                BatchSize::PerIteration,
            );
        });
    }

    fn bench(
        &self,
        group: &mut BenchmarkGroup<'_, BenchClock>,
        operation: Operation,
        index: usize,
    ) {
        let mls = &self.mls;
        let fixture = &self.fixtures[index];
        let id = BenchmarkId::new(mls.name(), fixture.size);
        match operation {
            Operation::Add => group.bench_function(id, |b| {
                b.iter_batched_ref(
                    || mls.restore(&fixture.committer).unwrap(),
                    |member| mls.add(member, black_box(&fixture.key_package)).unwrap(),
                    BatchSize::PerIteration,
                );
            }),
            Operation::Remove => {
                let leaf = last_leaf(fixture.size).unwrap();
                group.bench_function(id, |b| {
                    b.iter_batched_ref(
                        || mls.restore(&fixture.committer).unwrap(),
                        |member| mls.remove(member, black_box(leaf)).unwrap(),
                        BatchSize::PerIteration,
                    );
                })
            }
            Operation::Process => group.bench_function(id, |b| {
                b.iter_batched_ref(
                    || mls.restore(&fixture.receiver).unwrap(),
                    |member| mls.process(member, black_box(&fixture.add.commit)).unwrap(),
                    BatchSize::PerIteration,
                );
            }),
            Operation::Join => group.bench_function(id, |b| {
                b.iter_batched_ref(
                    || mls.restore(&fixture.joiner).unwrap(),
                    |member| mls.join(member, black_box(&fixture.add.welcome)).unwrap(),
                    BatchSize::PerIteration,
                );
            }),
        };
    }
}

/// Fewer, flat samples for the large groups, where one join takes tens of
/// milliseconds, so the whole run stays within minutes on two cores.
fn configure(group: &mut BenchmarkGroup<'_, BenchClock>, size: usize) {
    if size >= 128 {
        group
            .sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(if size >= 1024 { 4 } else { 3 }));
    } else {
        group
            .sampling_mode(SamplingMode::Auto)
            .sample_size(30)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
    }
}

/// Which message of a [`MessageSizes`] a table row shows.
type SizeOf = fn(&MessageSizes) -> usize;

fn print_sizes<A: Mls, B: Mls, C: Mls>(a: &Variant<A>, b: &Variant<B>, c: &Variant<C>) {
    println!("\nMessage sizes in bytes (MLSMessage encodings):\n");
    println!(
        "| N | message | {} | {} | {} |",
        a.mls.name(),
        b.mls.name(),
        c.mls.name()
    );
    println!("|---:|---|---:|---:|---:|");
    let rows: [(&str, SizeOf); 4] = [
        ("key package", |s| s.key_package),
        ("add commit", |s| s.add_commit),
        ("Welcome (with tree)", |s| s.welcome),
        ("remove commit", |s| s.remove_commit),
    ];
    for ((fa, fb), fc) in a.fixtures.iter().zip(&b.fixtures).zip(&c.fixtures) {
        for (name, get) in rows {
            println!(
                "| {} | {name} | {} | {} | {} |",
                fa.size,
                get(&fa.sizes),
                get(&fb.sizes),
                get(&fc.sizes)
            );
        }
    }
    println!();
}

/// `SATSUMA_BENCH_SIZES` (say `2,16`) if set, else by mode: criterion
/// runs benchmarks when cargo passes `--bench`, and tests otherwise.
fn group_sizes() -> Vec<usize> {
    if let Some(list) = std::env::var_os("SATSUMA_BENCH_SIZES") {
        let list = list.to_str().expect("SATSUMA_BENCH_SIZES is ASCII");
        return list
            .split(',')
            .map(|n| n.trim().parse().expect("SATSUMA_BENCH_SIZES lists numbers"))
            .collect();
    }
    if std::env::args().any(|a| a == "--bench") {
        BENCH_SIZES.to_vec()
    } else {
        TEST_SIZES.to_vec()
    }
}

fn main() {
    let sizes = group_sizes();
    let sizes = sizes.as_slice();
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // One worker, this thread: OpenMLS's parallel iterators run inline.
        rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .use_current_thread()
            .build_global()
            .expect("the global rayon pool is built once, before any use");
    }
    let clock = BenchClock::from_env();
    eprintln!("measuring {}", clock.describe());

    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).expect("the OS has randomness");
    let satsuma = Variant::new(MlsRs::new("satsuma", SatsumaCrypto::from_seed(seed)), sizes);
    let rustcrypto = Variant::new(
        MlsRs::new("mls-rs-rustcrypto", RustCryptoProvider::new()),
        sizes,
    );
    let openmls = Variant::new(OpenMls::new(), sizes);
    print_sizes(&satsuma, &rustcrypto, &openmls);

    let mut criterion = Criterion::default()
        .with_measurement(clock)
        .configure_from_args();
    {
        let mut group = criterion.benchmark_group("create");
        configure(&mut group, 1);
        satsuma.bench_create(&mut group);
        rustcrypto.bench_create(&mut group);
        openmls.bench_create(&mut group);
        group.finish();
    }
    for operation in Operation::ALL {
        let mut group = criterion.benchmark_group(operation.name());
        for (index, &size) in sizes.iter().enumerate() {
            configure(&mut group, size);
            satsuma.bench(&mut group, operation, index);
            rustcrypto.bench(&mut group, operation, index);
            openmls.bench(&mut group, operation, index);
        }
        group.finish();
    }
    criterion.final_summary();
}
