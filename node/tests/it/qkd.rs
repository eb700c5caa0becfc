//! `qward qkd`: simulate's JSON report (fields, equal keys, Eve detection),
//! one-line errors for bad parameters, and the sweep's CSV and PNG files.

use serde_json::Value;

use crate::{qward, stderr, stdout};

/// Runs `qward qkd simulate ARGS --json` and parses its one line per round.
fn simulate_json(args: &[&str]) -> Vec<Value> {
    let tmp = tempfile::tempdir().unwrap();
    let mut all = vec!["qkd", "simulate", "--json"];
    all.extend_from_slice(args);
    let o = qward(tmp.path(), &all);
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn assert_one_line_error(args: &[&str], needle: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let o = qward(tmp.path(), args);
    let err = stderr(&o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "exit code for {args:?}; stderr: {err}"
    );
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line expected: {err}"
    );
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains(needle), "expected '{needle}' in: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(stdout(&o).is_empty(), "no report on error: {}", stdout(&o));
}

#[test]
fn simulate_json_has_the_issue_fields_and_equal_keys() {
    let rounds = simulate_json(&["--qubits", "200000", "--seed", "11", "--rounds", "2"]);
    assert_eq!(rounds.len(), 2);
    for r in &rounds {
        for field in [
            "qubits_sent",
            "detected",
            "sifted",
            "sample_size",
            "qber",
            "qber_upper_bound",
            "leaked_bits",
            "final_key_bits",
            "eve_detected",
            "aborted",
            "abort_reason",
            "keys_equal",
        ] {
            assert!(r.get(field).is_some(), "missing {field}: {r}");
        }
        assert_eq!(r["qubits_sent"], 200_000);
        let detected = r["detected"].as_u64().unwrap();
        let sifted = r["sifted"].as_u64().unwrap();
        assert!(
            detected <= 200_000 && sifted <= detected && sifted > 0,
            "{r}"
        );
        assert!(r["sample_size"].as_u64().unwrap() < sifted);
        let qber = r["qber"].as_f64().unwrap();
        assert!(qber < r["qber_upper_bound"].as_f64().unwrap(), "{r}");
        assert_eq!(r["aborted"], false);
        assert!(r["abort_reason"].is_null(), "{r}");
        assert_eq!(r["eve_detected"], false);
        assert_eq!(r["keys_equal"], true);
        assert!(r["leaked_bits"].as_u64().unwrap() > 0);
        let key = r["final_key_bits"].as_u64().unwrap();
        assert!(key > 0 && key < sifted, "{r}");
    }
}

#[test]
fn simulate_with_the_same_seed_is_deterministic() {
    let a = simulate_json(&["--qubits", "50000", "--seed", "5"]);
    let b = simulate_json(&["--qubits", "50000", "--seed", "5"]);
    assert_eq!(a, b);
}

#[test]
fn full_intercept_resend_is_detected_and_gives_no_key() {
    for seed in ["1", "2", "3"] {
        let r = &simulate_json(&["--qubits", "200000", "--eve", "1.0", "--seed", seed])[0];
        assert_eq!(r["aborted"], true, "{r}");
        assert_eq!(r["eve_detected"], true, "{r}");
        assert_eq!(r["final_key_bits"], 0, "{r}");
        assert_eq!(r["keys_equal"], false, "{r}");
        assert!(r["abort_reason"].as_str().unwrap().contains("eavesdropper"));
        // Intercept-resend on every qubit: about 25% (plus 1% misalignment).
        let qber = r["qber"].as_f64().unwrap();
        assert!((0.20..0.30).contains(&qber), "{r}");
    }
}

#[test]
fn half_intercept_resend_is_detected() {
    // p = 0.5 gives about 12.5% + 1% misalignment: above the 11% threshold.
    let r = &simulate_json(&["--qubits", "200000", "--eve", "0.5", "--seed", "4"])[0];
    assert_eq!(r["eve_detected"], true, "{r}");
    assert_eq!(r["final_key_bits"], 0, "{r}");
    let qber = r["qber"].as_f64().unwrap();
    assert!((0.09..0.18).contains(&qber), "{r}");
}

#[test]
fn bad_parameters_give_one_line_errors() {
    assert_one_line_error(&["qkd", "simulate", "--distance-km", "-1"], "distance_km");
    assert_one_line_error(
        &["qkd", "simulate", "--eve", "1.5"],
        "--eve must be between 0 and 1",
    );
    assert_one_line_error(&["qkd", "simulate", "--qubits", "0"], "qubits must be");
    assert_one_line_error(&["qkd", "simulate", "--qubits", "500"], "too few");
    assert_one_line_error(&["qkd", "simulate", "--rounds", "0"], "--rounds");
}

#[test]
fn eve_sweep_writes_csv_and_png() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sweep");
    let out_s = out.to_str().unwrap();
    let o = qward(
        tmp.path(),
        &[
            "qkd", "sweep", "--over", "eve", "--qubits", "100000", "--points", "5", "--out", out_s,
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let mut csv = 0;
    let mut png = 0;
    for entry in std::fs::read_dir(&out).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        match path.extension().and_then(|e| e.to_str()) {
            Some("csv") => {
                csv += 1;
                let text = String::from_utf8(bytes).unwrap();
                // A header and one row per point.
                assert!(text.lines().count() >= 6, "{}: {text}", path.display());
            }
            Some("png") => {
                png += 1;
                assert!(
                    bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
                    "{}",
                    path.display()
                );
                assert!(bytes.len() > 1000, "{} is nearly empty", path.display());
            }
            _ => {}
        }
    }
    assert!(csv >= 1 && png >= 1, "{csv} CSV and {png} PNG files");
}

/// The standard laser benchmark (GYS channel, mu = 0.5): the simulated runs
/// and the curves for this source give nothing (GLLP), the decoy-state curve
/// gives a key far out, and the PLOB bound lies above it; the plot is drawn
/// although PLOB is infinite at 0 km.
#[test]
fn the_gys_distance_sweep_has_decoy_gllp_and_plob_curves() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("gys");
    let o = qward(
        tmp.path(),
        &[
            "qkd",
            "sweep",
            "--over",
            "distance",
            "--qubits",
            "200000",
            "--points",
            "3",
            "--max-distance-km",
            "100",
            "--loss-db-per-km",
            "0.21",
            "--detector-efficiency",
            "0.045",
            "--dark-count-prob",
            "8.5e-7",
            "--misalignment",
            "0.033",
            "--mu",
            "0.5",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = std::fs::read_to_string(out.join("key_rate_vs_distance.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let rows: Vec<Vec<f64>> = lines
        .map(|l| {
            l.split(',')
                .map(|v| match v {
                    "true" => 1.0,
                    "false" => 0.0,
                    v => v.parse().unwrap(),
                })
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), 3);
    for r in &rows {
        assert_eq!(
            r[col("key_rate")],
            0.0,
            "no key from mu = 0.5 without decoys"
        );
        assert_eq!(r[col("theory_asymptotic")], 0.0);
        assert!(r[col("theory_decoy")] > 0.0, "{r:?}");
        assert!(r[col("plob")] > r[col("theory_decoy")], "{r:?}");
    }
    let png = std::fs::read(out.join("key_rate_vs_distance.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 1000);
}
