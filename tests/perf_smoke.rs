//! The benchmark of `benches/transfer.rs` at smoke size (16 MiB, 200 tracker peers, a 20 ms
//! delayed link): checks that every row is produced and plausible. No speed thresholds: the
//! machines that run tests are noisy. The full benchmark is `cargo bench --bench transfer`.

#[allow(dead_code)]
#[path = "../benches/perf/mod.rs"]
mod perf;

#[test]
fn benchmark_smoke_produces_sane_figures() {
    let cfg = perf::Config::smoke();
    let results = perf::run(&cfg).unwrap_or_else(|e| panic!("benchmark failed: {e}"));
    let table = results.table(&cfg);
    println!("{table}");
    if let Err(why) = results.check_sane(&cfg) {
        panic!("implausible figure: {why}\n{table}");
    }
}
