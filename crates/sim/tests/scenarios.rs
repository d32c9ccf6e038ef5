//! Runs every scripted scenario in `crates/sim/scenarios/*.txt` (the format is described in
//! `src/scenario.rs`). To watch one: `cargo run -p ferroni-sim -- --scenario <file>`.

use std::path::{Path, PathBuf};

fn scenario_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read scenarios/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_scenario_passes() {
    let files = scenario_files();
    assert!(files.len() >= 7, "scenarios are missing: {files:?}");
    let mut failed = Vec::new();
    for f in &files {
        let out = ferroni_sim::scenario::run_file(f, false).unwrap_or_else(|e| panic!("{e}"));
        println!("{}", out.summary.lines().next().unwrap_or_default());
        if !out.failures.is_empty() {
            failed.push(format!("{}:\n{}", f.display(), out.failures.join("\n")));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}

#[test]
fn scenarios_are_deterministic() {
    let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/leader_crash_failover.txt");
    let a = ferroni_sim::scenario::run_file(&f, true).expect("run");
    let b = ferroni_sim::scenario::run_file(&f, true).expect("run");
    assert_eq!(a.log, b.log);
}
