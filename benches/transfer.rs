//! `cargo bench --bench transfer [-- OPTIONS]`: the performance benchmark of issue 6. Prints
//! one Markdown table (see docs/performance.md for the latest one and what each row means).
//!
//! Options (all optional):
//!   --quick            the seconds-long smoke configuration (16 MiB, 200 tracker peers)
//!   --big SIZE         large file size, e.g. 1GiB, 256MiB (default 1GiB)
//!   --small SIZE       small file size (default 64MiB)
//!   --repeat N         transfer rounds; the best counts (default 3)
//!   --sources N        row 2 downloads from 2..=N sources at once (default 3; 1 skips it)
//!   --peers N,N        simulated tracker peers (default 1000,10000)
//!   --sim-peers N,N    simulated peers of the in-process tracker rows (default 10000,100000)
//!   --phase SECS       length of each tracker load phase (default 3)
//!   --only PARTS       run only these parts (comma-separated): transfer (rows 1, 3 for the
//!                      large file, 4), small (row 3 for the small file), hashing (row 4,
//!                      first starts alone), delay (row 6), tracker (row 5), scale (row 5's
//!                      tracker state machine in process, no sockets), folders
//!                      (rows 7 and 8: a folder of small files against rsync, a folder of
//!                      big files against one file of their size)
//!   --proxy            use the delay proxy even where netem or a TUN link works
//!   --dir PATH         where the temporary files go (default: the system temp dir)

#[allow(dead_code)] // the smoke test uses the rest
mod perf;

use std::process::ExitCode;
use std::time::Duration;

fn parse_size(s: &str) -> Result<u64, String> {
    let lower = s.to_ascii_lowercase();
    let (num, mul) = if let Some(n) = lower.strip_suffix("gib") {
        (n, 1u64 << 30)
    } else if let Some(n) = lower.strip_suffix("mib") {
        (n, 1 << 20)
    } else if let Some(n) = lower.strip_suffix("kib") {
        (n, 1 << 10)
    } else {
        (lower.as_str(), 1)
    };
    num.trim()
        .parse::<u64>()
        .map(|n| n * mul)
        .map_err(|_| format!("bad size '{s}'"))
}

fn config(args: &[String]) -> Result<perf::Config, String> {
    let mut cfg = if args.iter().any(|a| a == "--quick") {
        let mut c = perf::Config::smoke();
        c.verbose = true;
        c
    } else {
        perf::Config::full()
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            // cargo bench passes --bench to every benchmark binary.
            "--bench" | "--quick" => {}
            "--big" => cfg.big = parse_size(value()?)?,
            "--small" => cfg.small = parse_size(value()?)?,
            "--repeat" => cfg.repeat = value()?.parse().map_err(|_| "bad --repeat")?,
            "--sources" => cfg.max_sources = value()?.parse().map_err(|_| "bad --sources")?,
            "--peers" => cfg.tracker_peers = peer_counts(value()?)?,
            "--sim-peers" => cfg.sim_peers = peer_counts(value()?)?,
            "--phase" => {
                let secs: f64 = value()?.parse().map_err(|_| "bad --phase")?;
                cfg.load_phase = Duration::from_secs_f64(secs);
            }
            "--only" => {
                let wanted: Vec<&str> = value()?.split(',').map(str::trim).collect();
                for w in &wanted {
                    if ![
                        "transfer", "small", "hashing", "delay", "tracker", "scale", "folders",
                    ]
                    .contains(w)
                    {
                        return Err(format!("unknown part '{w}'"));
                    }
                }
                cfg.parts = perf::Parts {
                    transfer: wanted.contains(&"transfer"),
                    small: wanted.contains(&"small"),
                    hashing: wanted.contains(&"hashing"),
                    delay: wanted.contains(&"delay"),
                    tracker: wanted.contains(&"tracker"),
                    scale: wanted.contains(&"scale"),
                    folders: wanted.contains(&"folders"),
                };
            }
            "--proxy" => cfg.delay_method = perf::DelayMethod::Proxy,
            "--dir" => cfg.dir = Some(value()?.into()),
            other => return Err(format!("unknown option '{other}'")),
        }
    }
    Ok(cfg)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cfg = match config(&args) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let started = std::time::Instant::now();
    match perf::run(&cfg) {
        Ok(results) => {
            println!("{}", perf::header());
            println!("{}", results.table(&cfg));
            eprintln!("[bench] done in {:.0} s", started.elapsed().as_secs_f64());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("benchmark failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A comma-separated list of peer counts (`--peers`, `--sim-peers`).
fn peer_counts(list: &str) -> Result<Vec<usize>, String> {
    list.split(',')
        .map(|n| {
            n.trim()
                .parse()
                .map_err(|_| format!("bad peer count '{n}'"))
        })
        .collect()
}
