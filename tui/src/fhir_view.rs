//! Reads a FHIR R4 record (a PHR `Bundle` or a `DiagnosticReport`) into what a
//! person needs to see: patient, observations, conditions, report. Walks the
//! JSON defensively: anything missing or odd becomes "—" or is skipped, never
//! a panic.

use serde_json::Value;

/// Why a record could not be shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FhirViewError {
    #[error("the record is not valid JSON: {0}")]
    NotJson(String),
    #[error("the record is not a FHIR resource (no resourceType)")]
    NotAResource,
}

/// A patient's demographics.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PatientView {
    pub name: String,
    pub gender: String,
    pub birth_date: String,
}

/// One observation: what was measured and the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservationView {
    pub display: String,
    pub value: String,
    pub unit: String,
    pub when: Option<String>,
}

/// A diagnostic report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportView {
    pub code: String,
    pub status: String,
    pub conclusion: String,
    pub issued: Option<String>,
}

/// A record summarised for a person.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordSummary {
    /// `Bundle`, `DiagnosticReport`, ...
    pub resource_type: String,
    pub patients: Vec<PatientView>,
    pub observations: Vec<ObservationView>,
    /// Condition name and clinical status.
    pub conditions: Vec<(String, String)>,
    pub reports: Vec<ReportView>,
    /// Resource types present but not shown.
    pub other: Vec<String>,
}

/// Parses and summarises a FHIR record.
pub fn summarize(json: &str) -> Result<RecordSummary, FhirViewError> {
    let value: Value =
        serde_json::from_str(json).map_err(|e| FhirViewError::NotJson(e.to_string()))?;
    let resource_type = value
        .get("resourceType")
        .and_then(Value::as_str)
        .ok_or(FhirViewError::NotAResource)?;
    let mut summary = RecordSummary {
        resource_type: resource_type.to_string(),
        ..RecordSummary::default()
    };
    visit(&value, &mut summary, 0);
    Ok(summary)
}

/// How deep bundles and contained resources are followed.
const MAX_DEPTH: usize = 4;

fn visit(resource: &Value, out: &mut RecordSummary, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    match resource.get("resourceType").and_then(Value::as_str) {
        Some("Bundle") => {
            for entry in array(resource, "entry") {
                if let Some(r) = entry.get("resource") {
                    visit(r, out, depth + 1);
                }
            }
        }
        Some("Patient") => out.patients.push(patient(resource)),
        Some("Observation") => out.observations.push(observation(resource)),
        Some("Condition") => out.conditions.push((
            concept_text(resource.get("code")).unwrap_or_else(dash),
            concept_text(resource.get("clinicalStatus")).unwrap_or_else(dash),
        )),
        Some("DiagnosticReport") => {
            out.reports.push(ReportView {
                code: concept_text(resource.get("code")).unwrap_or_else(dash),
                status: text(resource, "status").unwrap_or_else(dash),
                conclusion: text(resource, "conclusion")
                    .or_else(|| {
                        array(resource, "conclusionCode")
                            .iter()
                            .find_map(|c| concept_text(Some(c)))
                    })
                    .unwrap_or_else(dash),
                issued: text(resource, "issued").or_else(|| text(resource, "effectiveDateTime")),
            });
            for contained in array(resource, "contained") {
                visit(contained, out, depth + 1);
            }
        }
        Some(other) => out.other.push(other.to_string()),
        None => {}
    }
}

fn dash() -> String {
    "—".to_string()
}

fn array<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
        .filter(|s| !s.trim().is_empty())
}

/// The text of a CodeableConcept: its `text`, else the first coding's
/// display, else its code.
fn concept_text(concept: Option<&Value>) -> Option<String> {
    let c = concept?;
    if let Some(t) = text(c, "text") {
        return Some(t);
    }
    let codings = array(c, "coding");
    codings
        .iter()
        .find_map(|cd| text(cd, "display"))
        .or_else(|| codings.iter().find_map(|cd| text(cd, "code")))
}

fn patient(p: &Value) -> PatientView {
    let name = array(p, "name")
        .first()
        .and_then(|n| {
            text(n, "text").or_else(|| {
                let given: Vec<&str> = array(n, "given").iter().filter_map(Value::as_str).collect();
                let mut parts: Vec<String> = given.iter().map(|s| s.to_string()).collect();
                if let Some(f) = text(n, "family") {
                    parts.push(f);
                }
                (!parts.is_empty()).then(|| parts.join(" "))
            })
        })
        .unwrap_or_else(dash);
    PatientView {
        name,
        gender: text(p, "gender").unwrap_or_else(dash),
        birth_date: text(p, "birthDate").unwrap_or_else(dash),
    }
}

fn number(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

fn observation(o: &Value) -> ObservationView {
    let (value, unit) = if let Some(q) = o.get("valueQuantity") {
        (
            q.get("value").and_then(number).unwrap_or_else(dash),
            text(q, "unit")
                .or_else(|| text(q, "code"))
                .unwrap_or_default(),
        )
    } else if let Some(s) = text(o, "valueString") {
        (s, String::new())
    } else if let Some(c) = concept_text(o.get("valueCodeableConcept")) {
        (c, String::new())
    } else if let Some(b) = o.get("valueBoolean").and_then(Value::as_bool) {
        (if b { "yes" } else { "no" }.to_string(), String::new())
    } else if let Some(i) = o.get("valueInteger").and_then(number) {
        (i, String::new())
    } else {
        let parts: Vec<String> = array(o, "component")
            .iter()
            .map(|c| {
                let q = c.get("valueQuantity");
                format!(
                    "{} {}{}",
                    concept_text(c.get("code")).unwrap_or_else(dash),
                    q.and_then(|q| q.get("value"))
                        .and_then(number)
                        .unwrap_or_else(dash),
                    q.and_then(|q| text(q, "unit"))
                        .map(|u| format!(" {u}"))
                        .unwrap_or_default()
                )
            })
            .collect();
        (
            if parts.is_empty() {
                dash()
            } else {
                parts.join(", ")
            },
            String::new(),
        )
    };
    ObservationView {
        display: concept_text(o.get("code")).unwrap_or_else(dash),
        value,
        unit,
        when: text(o, "effectiveDateTime").or_else(|| text(o, "issued")),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const PHR: &str = r#"{
      "resourceType": "Bundle", "type": "collection",
      "entry": [
        {"resource": {"resourceType": "Patient", "name": [{"given": ["Amara"], "family": "Nwosu"}],
                      "gender": "female", "birthDate": "1987-04-12"}},
        {"resource": {"resourceType": "Observation", "status": "final",
                      "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
                      "valueQuantity": {"value": 72, "unit": "beats/min"}, "effectiveDateTime": "2026-11-01"}},
        {"resource": {"resourceType": "Observation", "code": {"text": "Blood pressure"},
                      "component": [
                        {"code": {"text": "Systolic"}, "valueQuantity": {"value": 128, "unit": "mmHg"}},
                        {"code": {"text": "Diastolic"}, "valueQuantity": {"value": 82, "unit": "mmHg"}}]}},
        {"resource": {"resourceType": "Condition", "code": {"text": "Type 2 diabetes"},
                      "clinicalStatus": {"coding": [{"code": "active"}]}}},
        {"resource": {"resourceType": "MedicationStatement"}},
        {"nope": 1}, 7
      ]}"#;

    #[test]
    fn a_phr_bundle_reads_as_patient_observations_and_conditions() {
        let s = summarize(PHR).expect("valid bundle");
        assert_eq!(s.resource_type, "Bundle");
        assert_eq!(
            s.patients,
            vec![PatientView {
                name: "Amara Nwosu".into(),
                gender: "female".into(),
                birth_date: "1987-04-12".into()
            }]
        );
        assert_eq!(s.observations.len(), 2);
        assert_eq!(
            (
                s.observations[0].display.as_str(),
                s.observations[0].value.as_str(),
                s.observations[0].unit.as_str()
            ),
            ("Heart rate", "72", "beats/min")
        );
        assert_eq!(
            s.observations[1].value,
            "Systolic 128 mmHg, Diastolic 82 mmHg"
        );
        assert_eq!(
            s.conditions,
            vec![("Type 2 diabetes".to_string(), "active".to_string())]
        );
        assert_eq!(s.other, vec!["MedicationStatement".to_string()]);
    }

    #[test]
    fn a_diagnostic_report_reads_as_code_status_and_conclusion() {
        let json = r#"{"resourceType": "DiagnosticReport", "status": "final",
            "code": {"coding": [{"display": "HbA1c panel"}]}, "issued": "2026-11-02T10:00:00Z",
            "conclusion": "Glycaemic control adequate.",
            "contained": [{"resourceType": "Observation", "code": {"text": "HbA1c"},
                           "valueQuantity": {"value": 6.4, "unit": "%"}}]}"#;
        let s = summarize(json).expect("valid report");
        assert_eq!(s.reports.len(), 1);
        assert_eq!(s.reports[0].code, "HbA1c panel");
        assert_eq!(s.reports[0].status, "final");
        assert_eq!(s.reports[0].conclusion, "Glycaemic control adequate.");
        assert_eq!(s.observations[0].value, "6.4");
    }

    #[test]
    fn bad_input_is_an_error_or_dashes_never_a_panic() {
        assert!(matches!(
            summarize("{not json"),
            Err(FhirViewError::NotJson(_))
        ));
        assert_eq!(summarize("[1,2]"), Err(FhirViewError::NotAResource));
        assert_eq!(
            summarize(r#"{"resourceType": 5}"#),
            Err(FhirViewError::NotAResource)
        );
        let s = summarize(r#"{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Patient","name":"x","gender":3}}]}"#)
            .expect("odd but a resource");
        assert_eq!(s.patients[0].name, "—");
        assert_eq!(s.patients[0].gender, "—");
    }
}
