//! `ferroni-sim`: runs the seeded simulation outside the test harness, for longer runs.
//!
//! ```text
//! ferroni-sim --seeds 10000            # seeds 0..10000 (add --from N to start elsewhere)
//! ferroni-sim --seed 42 [--log]        # one seed, with its full event log
//! ferroni-sim --nodes 5 --lease-aware --patroni-cadence --standby --no-fencing --show 3
//! ferroni-sim --scenario crates/sim/scenarios/leader_crash_failover.txt
//! ```
//! Exit status 1 when a violation without a known cause was found.

use ferroni_sim::{Cadence, RunOptions, WritableRule, run_seed, run_seeds, scenario};
use std::process::ExitCode;

const USAGE: &str = "usage: ferroni-sim [--seeds N] [--from N] [--seed N] [--log] [--nodes N] [--lease-aware] \
                     [--patroni-cadence] [--standby] [--no-fencing] [--show N] [--scenario FILE]";

struct Args {
    opts: RunOptions,
    seeds: u64,
    from: u64,
    one: Option<u64>,
    log: bool,
    show: usize,
    scenario: Option<String>,
}

fn parse_args() -> Option<Args> {
    let mut a = Args {
        opts: RunOptions::default(),
        seeds: 1000,
        from: 0,
        one: None,
        log: false,
        show: 1,
        scenario: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut number = || args.next().and_then(|v| v.parse::<u64>().ok());
        match flag.as_str() {
            "--seeds" => a.seeds = number()?,
            "--from" => a.from = number()?,
            "--seed" => a.one = Some(number()?),
            "--nodes" => a.opts.nodes = Some(number()? as usize),
            "--show" => a.show = number()? as usize,
            "--log" => a.log = true,
            "--lease-aware" => a.opts.writable = WritableRule::LeaseAware,
            "--patroni-cadence" => a.opts.cadence = Cadence::FromCycleStart,
            "--standby" => a.opts.standby_cluster = true,
            "--no-fencing" => a.opts.fencing = false,
            "--scenario" => a.scenario = Some(args.next()?),
            _ => return None,
        }
    }
    Some(a)
}

fn main() -> ExitCode {
    let Some(Args {
        mut opts,
        seeds,
        from,
        one,
        log,
        show,
        scenario: scenario_file,
    }) = parse_args()
    else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    if let Some(path) = scenario_file {
        return match scenario::run_file(std::path::Path::new(&path), true) {
            Ok(out) => {
                println!("{}", out.log.join("\n"));
                println!("{}", out.summary);
                if out.failures.is_empty() {
                    ExitCode::SUCCESS
                } else {
                    eprintln!("{}", out.failures.join("\n"));
                    ExitCode::FAILURE
                }
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        };
    }
    if let Some(seed) = one {
        opts.full_log = log;
        let report = run_seed(seed, &opts);
        for line in report.log.iter().flatten() {
            println!("{line}");
        }
        println!("{}", report.stats);
        for v in &report.violations {
            println!("{}", v.report);
        }
        return exit(report.violations.iter().all(|v| v.known.is_some()));
    }
    let summary = run_seeds(from..from + seeds, &opts);
    println!("{}", summary.stats);
    println!("violations:\n{}", summary.violation_table());
    for v in summary.unknown().take(show) {
        println!("{}", v.report);
    }
    println!("{} seeds in {:.1} s", seeds, summary.elapsed.as_secs_f64());
    exit(summary.unknown().next().is_none())
}

fn exit(ok: bool) -> ExitCode {
    if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
