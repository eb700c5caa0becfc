//! Tests of the FHIR checks against the shipped examples in
//! `examples/records/` (every valid one passes, every invalid one fails at the
//! expected path) and of the summaries people see.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::path::PathBuf;

use proptest::prelude::*;
use serde_json::json;

use super::*;

fn records_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/records")
}

fn kind_of(file_name: &str) -> RecordKind {
    if file_name.starts_with("report-") {
        RecordKind::Report
    } else {
        RecordKind::Phr
    }
}

fn json_files(dir: PathBuf) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    files.sort();
    files
}

fn load(name: &str) -> Vec<u8> {
    std::fs::read(records_dir().join(name)).unwrap()
}

#[test]
fn every_shipped_example_validates() {
    let files = json_files(records_dir());
    let phrs = files.iter().filter(|(n, _)| n.starts_with("phr-")).count();
    let reports = files
        .iter()
        .filter(|(n, _)| n.starts_with("report-"))
        .count();
    assert!(
        phrs >= 2 && reports >= 2,
        "ship at least two of each: {files:?}"
    );
    for (name, bytes) in &files {
        let kind = kind_of(name);
        if let Err(e) = validate(kind, bytes) {
            panic!("{name} should validate as {kind}: {e}");
        }
        assert_eq!(detect_kind(&parse(bytes).unwrap()), Some(kind), "{name}");
    }
}

#[test]
fn every_invalid_example_fails_at_its_path() {
    let expected: &[(&str, &str, &str)] = &[
        ("phr-bad-bundle-type.json", "InvalidCode", "$.type"),
        (
            "phr-is-a-report.json",
            "WrongResourceType",
            "$.resourceType",
        ),
        (
            "phr-observation-bad-status.json",
            "InvalidCode",
            "$.entry[1].resource.status",
        ),
        ("phr-without-patient.json", "NoPatient", "$.entry"),
        ("report-bad-issued.json", "InvalidDate", "$.issued"),
        ("report-missing-subject.json", "Missing", "$.subject"),
        ("report-truncated.json", "NotJson", "$"),
    ];
    let files = json_files(records_dir().join("invalid"));
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    let listed: Vec<&str> = expected.iter().map(|(n, _, _)| *n).collect();
    assert_eq!(names, listed, "every invalid example has an expectation");
    for ((name, bytes), (_, variant, path)) in files.iter().zip(expected) {
        let err = validate(kind_of(name), bytes).unwrap_err();
        let dbg = format!("{err:?}");
        assert!(
            dbg.starts_with(variant),
            "{name}: expected {variant}, got {dbg}"
        );
        assert_eq!(err.path(), *path, "{name}: {err}");
        if *path != "$" {
            assert!(
                err.to_string().contains(path),
                "message names the path: {err}"
            );
        }
    }
}

#[test]
fn error_messages_are_actionable() {
    let bytes = load("invalid/phr-observation-bad-status.json");
    let msg = validate(RecordKind::Phr, &bytes).unwrap_err().to_string();
    assert!(msg.contains("\"done\""), "{msg}");
    assert!(msg.contains("final"), "lists the allowed codes: {msg}");
}

#[test]
fn phr_summary_extracts_patient_and_observations() {
    let summary = validate(RecordKind::Phr, &load("phr-ada-quill.json")).unwrap();
    let RecordSummary::Phr(phr) = summary else {
        panic!("a PHR summary");
    };
    assert_eq!(phr.bundle_type, "collection");
    assert_eq!(
        phr.patient,
        PatientSummary {
            id: Some("ada-quill".into()),
            name: Some("Ada Maren Quill".into()),
            gender: Some("female".into()),
            birth_date: Some("1984-03-12".into()),
        }
    );
    let lines: Vec<(&str, Option<&str>)> = phr
        .observations
        .iter()
        .map(|o| (o.display.as_str(), o.value.as_deref()))
        .collect();
    assert_eq!(
        lines,
        vec![
            ("Blood pressure", Some("128/82 mmHg")),
            ("Heart rate", Some("72 /min")),
            ("HbA1c", Some("6.1 %")),
        ]
    );
    assert_eq!(phr.conditions, vec!["Type 2 diabetes mellitus"]);
    assert_eq!(phr.medications, vec!["Metformin 500 mg ER"]);

    let RecordSummary::Phr(tomas) =
        validate(RecordKind::Phr, &load("phr-tomas-ferrandt.json")).unwrap()
    else {
        panic!("a PHR summary");
    };
    assert_eq!(tomas.patient.name.as_deref(), Some("Tomas Ferrandt"));
    assert_eq!(tomas.observations[0].display, "Body weight");
    assert_eq!(tomas.observations[0].value.as_deref(), Some("86.4 kg"));
    assert_eq!(tomas.medications, vec!["lisinopril 10 MG Oral Tablet"]);
}

#[test]
fn report_summaries_extract_code_status_conclusion_and_results() {
    let RecordSummary::Report(xray) =
        validate(RecordKind::Report, &load("report-chest-xray-ada.json")).unwrap()
    else {
        panic!("a report summary");
    };
    assert_eq!(xray.code, "Chest X-ray, 2 views");
    assert_eq!(xray.status, "final");
    assert_eq!(xray.subject, "Ada Quill");
    assert_eq!(
        xray.conclusion.as_deref(),
        Some("No acute cardiopulmonary abnormality. Heart size normal.")
    );
    assert!(xray.results.is_empty());

    let RecordSummary::Report(lipids) =
        validate(RecordKind::Report, &load("report-lipid-panel-tomas.json")).unwrap()
    else {
        panic!("a report summary");
    };
    assert_eq!(lipids.code, "Lipid panel");
    let results: Vec<(&str, Option<&str>)> = lipids
        .results
        .iter()
        .map(|o| (o.display.as_str(), o.value.as_deref()))
        .collect();
    assert_eq!(
        results,
        vec![
            ("Total cholesterol", Some("6.3 mmol/L")),
            ("Triglycerides", Some("1.3 mmol/L")),
            ("HDL cholesterol", Some("1.3 mmol/L")),
            ("LDL cholesterol (direct)", Some("4.2 mmol/L")),
        ]
    );
}

fn report_with(field: &str, value: serde_json::Value) -> serde_json::Value {
    let mut r = json!({
        "resourceType": "DiagnosticReport",
        "status": "final",
        "code": { "text": "Lipid panel" },
        "subject": { "reference": "Patient/p1" }
    });
    r[field] = value;
    r
}

#[test]
fn report_rules() {
    assert!(validate_report(&report_with("conclusion", json!("ok"))).is_ok());
    let cases = [
        ("status", json!("done"), "$.status"),
        ("status", json!(3), "$.status"),
        ("code", json!({}), "$.code.coding"),
        (
            "code",
            json!({ "coding": [{ "system": "http://loinc.org" }] }),
            "$.code.coding[0].code",
        ),
        (
            "subject",
            json!({ "display": "Someone" }),
            "$.subject.reference",
        ),
        (
            "subject",
            json!({ "reference": "not a ref" }),
            "$.subject.reference",
        ),
        (
            "effectiveDateTime",
            json!("2026-13-01"),
            "$.effectiveDateTime",
        ),
        (
            "effectiveDateTime",
            json!("2026-10-05T08:00:00"),
            "$.effectiveDateTime",
        ),
        ("issued", json!("2026-10-05"), "$.issued"),
        (
            "result",
            json!([{ "reference": "#a" }, "Observation/1"]),
            "$.result[1]",
        ),
        ("result", json!([]), "$.result"),
        ("conclusion", json!(""), "$.conclusion"),
        (
            "contained",
            json!([{ "resourceType": "Observation", "status": "final", "code": { "text": "x" } }]),
            "$.contained[0].subject",
        ),
    ];
    for (field, value, path) in cases {
        let err = validate_report(&report_with(field, value.clone())).unwrap_err();
        assert_eq!(err.path(), path, "{field} = {value}: {err}");
    }
    for ok in [
        "2026",
        "2026-10",
        "2026-10-05",
        "2026-10-05T08:00:00Z",
        "2026-10-05T08:00:00.5+02:00",
    ] {
        assert!(
            validate_report(&report_with("effectiveDateTime", json!(ok))).is_ok(),
            "{ok}"
        );
    }
    for ok in [
        "Patient/p1",
        "urn:uuid:0b1c",
        "https://fhir.example.org/Patient/7",
        "#p",
    ] {
        let subject = json!({ "reference": ok });
        assert!(
            validate_report(&report_with("subject", subject)).is_ok(),
            "{ok}"
        );
    }
}

#[test]
fn document_bundles_start_with_a_composition() {
    let mut doc: serde_json::Value =
        serde_json::from_slice(&load("phr-tomas-ferrandt.json")).unwrap();
    doc["entry"].as_array_mut().unwrap().swap(0, 1);
    let err = validate_phr(&doc).unwrap_err();
    assert_eq!(err.path(), "$.entry[0].resource.resourceType");
}

#[test]
fn oversized_records_are_refused_before_parsing() {
    let big = vec![b' '; MAX_RECORD_BYTES + 1];
    assert!(matches!(
        validate(RecordKind::Phr, &big),
        Err(FhirError::TooLarge { .. })
    ));
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = validate(RecordKind::Phr, &bytes);
        let _ = validate(RecordKind::Report, &bytes);
    }

    #[test]
    fn arbitrary_json_values_never_panic(s in "[\\[\\]{}\":,a-zA-Z0-9 ]{0,200}") {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&s) {
            let _ = validate_phr(&v);
            let _ = validate_report(&v);
            let _ = summarize(RecordKind::Phr, &v);
            let _ = summarize(RecordKind::Report, &v);
        }
    }

    #[test]
    fn mutated_example_reports_never_panic(field in "(status|code|subject|issued|result|contained|conclusion)", value in prop_oneof![
        Just(json!(null)), Just(json!(1)), Just(json!("x")), Just(json!([])), Just(json!({})), Just(json!([1, "a", {}]))
    ]) {
        let mut r: serde_json::Value = serde_json::from_slice(&load("report-lipid-panel-tomas.json")).unwrap();
        r[&field] = value;
        let _ = validate_report(&r);
        let _ = summarize(RecordKind::Report, &r);
    }
}
