//! The `spine-loadgen` command end to end, on its embedded server: the JSON report holds the
//! documented fields with counts that add up, the plots are written, and a missed threshold
//! sets exit status 3.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

use std::process::Command;

fn loadgen(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_spine-loadgen"))
        .args([
            "--rate",
            "500",
            "--duration",
            "1500ms",
            "--population",
            "1000",
        ])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_report_holds_its_fields_and_thresholds_set_the_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("run.json");
    let output = loadgen(&[
        "--transport",
        "tls",
        "--json",
        json.to_str().unwrap(),
        "--max-p99-ms",
        "2000",
        "--max-error-rate",
        "0.01",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    for field in [
        "profile",
        "transport",
        "rate_target_per_s",
        "duration_s",
        "offered",
        "completed",
        "failed",
        "dropped",
        "throughput_per_s",
        "p50_us",
        "p99_us",
        "errors_by_code",
        "operations",
    ] {
        assert!(report.get(field).is_some(), "no {field} in {report}");
    }
    let count = |field: &str| report[field].as_u64().unwrap();
    assert!(count("offered") > 500);
    assert_eq!(
        count("offered"),
        count("completed") + count("failed") + count("dropped")
    );
    assert_eq!(report["transport"], "tls");
    assert!(
        report["operations"]["pds_retrieve"]["p99_us"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(dir.path().join("run.latency.svg").exists());
    assert!(dir.path().join("run.throughput.svg").exists());

    let missed = loadgen(&["--max-p99-ms", "0.001"]);
    assert_eq!(
        missed.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&missed.stderr)
    );
    assert!(String::from_utf8_lossy(&missed.stderr).contains("missed: p99"));
}
