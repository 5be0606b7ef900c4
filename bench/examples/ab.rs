//! The satsuma / mls-rs-rustcrypto ratio, measured interleaved: each round
//! runs one operation on both providers, alternating which goes first, so
//! a busy neighbour slows both alike. Criterion (`benches/mls.rs`) measures
//! one implementation after the other, which on a shared machine can put a
//! burst of load on one side only; this is the check for the 1.1× goal.
//!
//! Prints a markdown table: per operation and N, the median CPU time per
//! iteration of each, and the median and quartiles of the per-round ratio.
//!
//! `SATSUMA_AB_SAME=1` puts Satsuma's provider on both sides (an A/A run):
//! the spread of its ratios around 1.00 is what this method cannot resolve.
//!
//! ```text
//! cargo run --release -p satsuma-bench --example ab
//! SATSUMA_BENCH_SIZES=2,16 cargo run --release -p satsuma-bench --example ab
//! ```

use std::time::Duration;

use cpu_time::ProcessTime;
use mls_rs_crypto_rustcrypto::RustCryptoProvider;
use satsuma_bench::{BenchError, Fixture, Mls, MlsRs, build_groups, last_leaf};
use satsuma_core::mls::SatsumaCrypto;

const SIZES: [usize; 4] = [2, 16, 128, 1024];

#[derive(Debug, Clone, Copy)]
enum Operation {
    Create,
    Add,
    Remove,
    Process,
    Join,
}

/// One side: an implementation, a member in no group, and its groups.
struct Side<M: Mls> {
    mls: M,
    lonely: M::Saved,
    fixtures: Vec<Fixture<M>>,
}

impl<M: Mls> Side<M> {
    fn new(mls: M, sizes: &[usize]) -> Result<Self, BenchError> {
        let lonely = mls.save(&mls.member(b"creator")?)?;
        let fixtures = build_groups(&mls, sizes)?;
        Ok(Self {
            mls,
            lonely,
            fixtures,
        })
    }

    /// CPU time of one run of `operation` on group `index`; restoring the
    /// input and dropping the output are not counted.
    fn time(&self, operation: Operation, index: usize) -> Result<Duration, BenchError> {
        let mls = &self.mls;
        let fixture = &self.fixtures[index];
        let saved = match operation {
            Operation::Create => &self.lonely,
            Operation::Add | Operation::Remove => &fixture.committer,
            Operation::Process => &fixture.receiver,
            Operation::Join => &fixture.joiner,
        };
        let mut member = mls.restore(saved)?;
        let start = ProcessTime::now();
        let output = match operation {
            Operation::Create => mls.create_group(&mut member).map(|()| Vec::new()),
            Operation::Add => mls.add(&mut member, &fixture.key_package).map(|o| o.commit),
            Operation::Remove => mls.remove(&mut member, last_leaf(fixture.size)?),
            Operation::Process => mls
                .process(&mut member, &fixture.add.commit)
                .map(|()| Vec::new()),
            Operation::Join => mls
                .join(&mut member, &fixture.add.welcome)
                .map(|()| Vec::new()),
        };
        let elapsed = start.elapsed();
        drop((output?, member));
        Ok(elapsed)
    }
}

fn median(values: &mut [f64]) -> f64 {
    quantile(values, 0.5)
}

fn quantile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let last = values.len().saturating_sub(1);
    // An index into a short vector, rounded from a fraction of its length.
    #[allow(clippy::cast_possible_truncation)]
    let index = ((last as f64) * q).round() as usize;
    values.get(index).copied().unwrap_or(f64::NAN)
}

fn rounds(size: usize) -> usize {
    match size {
        0..=16 => 400,
        17..=128 => 100,
        _ => 24,
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() -> Result<(), BenchError> {
    let sizes: Vec<usize> = match std::env::var("SATSUMA_BENCH_SIZES") {
        Ok(list) => list
            .split(',')
            .map(|n| n.trim().parse())
            .collect::<Result<_, _>>()
            .map_err(|_| BenchError::Unexpected("SATSUMA_BENCH_SIZES lists numbers"))?,
        Err(_) => SIZES.to_vec(),
    };
    if sizes.is_empty() {
        return Err(BenchError::Unexpected("no group sizes to measure"));
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|_| BenchError::Unexpected("no OS randomness"))?;
    let a = Side::new(
        MlsRs::new("satsuma", SatsumaCrypto::from_seed(seed)),
        &sizes,
    )?;
    if std::env::var_os("SATSUMA_AB_SAME").is_some() {
        // A/A: the same provider on both sides, to see how far apart two
        // sides measure when nothing differs but their groups and heap.
        seed[0] ^= 1;
        let b = Side::new(
            MlsRs::new("satsuma (again)", SatsumaCrypto::from_seed(seed)),
            &sizes,
        )?;
        compare(&a, &b, &sizes)
    } else {
        let b = Side::new(
            MlsRs::new("mls-rs-rustcrypto", RustCryptoProvider::new()),
            &sizes,
        )?;
        compare(&a, &b, &sizes)
    }
}

fn compare<A: Mls, B: Mls>(a: &Side<A>, b: &Side<B>, sizes: &[usize]) -> Result<(), BenchError> {
    println!(
        "| operation | N | {} µs | {} µs | ratio: median [q1, q3] |",
        a.mls.name(),
        b.mls.name()
    );
    println!("|---|---:|---:|---:|---|");
    let mut cases = vec![(Operation::Create, 0)];
    for operation in [
        Operation::Add,
        Operation::Remove,
        Operation::Process,
        Operation::Join,
    ] {
        cases.extend((0..sizes.len()).map(|index| (operation, index)));
    }
    for (operation, index) in cases {
        let size = sizes[index];
        let n = if matches!(operation, Operation::Create) {
            1
        } else {
            size
        };
        let mut times_a = Vec::new();
        let mut times_b = Vec::new();
        let mut ratios = Vec::new();
        // One untimed round each to warm caches and allocators.
        a.time(operation, index)?;
        b.time(operation, index)?;
        for round in 0..rounds(n) {
            let (ta, tb) = if round % 2 == 0 {
                let ta = a.time(operation, index)?;
                (ta, b.time(operation, index)?)
            } else {
                let tb = b.time(operation, index)?;
                (a.time(operation, index)?, tb)
            };
            times_a.push(micros(ta));
            times_b.push(micros(tb));
            ratios.push(micros(ta) / micros(tb));
        }
        let label = if matches!(operation, Operation::Create) {
            "—".to_owned()
        } else {
            size.to_string()
        };
        println!(
            "| {operation:?} | {label} | {:.0} | {:.0} | {:.2} [{:.2}, {:.2}] |",
            median(&mut times_a),
            median(&mut times_b),
            median(&mut ratios.clone()),
            quantile(&mut ratios.clone(), 0.25),
            quantile(&mut ratios, 0.75),
        );
    }
    Ok(())
}
