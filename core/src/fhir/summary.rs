//! Summaries of records for people: who the patient is, what was measured,
//! what the report concludes. The TUI renders these instead of raw JSON.
//!
//! Summaries are lenient: they assume a validated record and show what is
//! there, with "(unnamed)"-style placeholders rather than errors.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::envelope::RecordKind;

/// A patient as a person reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatientSummary {
    pub id: Option<String>,
    pub name: Option<String>,
    pub gender: Option<String>,
    pub birth_date: Option<String>,
}

/// One measurement: "Heart rate" = "72 /min".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservationSummary {
    pub display: String,
    /// The value with its unit ("128/82 mmHg"), if the observation has one.
    pub value: Option<String>,
    pub status: Option<String>,
    pub effective: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhrSummary {
    pub bundle_type: String,
    pub patient: PatientSummary,
    pub observations: Vec<ObservationSummary>,
    pub conditions: Vec<String>,
    pub medications: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportSummary {
    /// The report's code, as displayed ("Chest X-ray").
    pub code: String,
    pub status: String,
    /// The subject's display name, else its reference.
    pub subject: String,
    pub effective: Option<String>,
    pub issued: Option<String>,
    pub conclusion: Option<String>,
    /// Results found in `contained`, then the other result references.
    pub results: Vec<ObservationSummary>,
}

/// A record as a person reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordSummary {
    Phr(PhrSummary),
    Report(ReportSummary),
}

fn text(v: &Value, name: &str) -> Option<String> {
    v.get(name).and_then(Value::as_str).map(str::to_owned)
}

/// The display of a CodeableConcept: its text, else the first coding's
/// display, else its code.
fn concept(v: Option<&Value>) -> Option<String> {
    let v = v?;
    if let Some(t) = text(v, "text") {
        return Some(t);
    }
    let codings = v.get("coding").and_then(Value::as_array)?;
    codings
        .iter()
        .find_map(|c| text(c, "display"))
        .or_else(|| codings.iter().find_map(|c| text(c, "code")))
}

fn human_name(patient: &Value) -> Option<String> {
    let name = patient.get("name")?.as_array()?.first()?;
    if let Some(t) = text(name, "text") {
        return Some(t);
    }
    let mut parts: Vec<String> = name
        .get("given")
        .and_then(Value::as_array)
        .map(|g| {
            g.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    parts.extend(text(name, "family"));
    (!parts.is_empty()).then(|| parts.join(" "))
}

fn patient(resource: &Value) -> PatientSummary {
    PatientSummary {
        id: text(resource, "id"),
        name: human_name(resource),
        gender: text(resource, "gender"),
        birth_date: text(resource, "birthDate"),
    }
}

fn quantity(q: &Value) -> Option<(String, Option<String>)> {
    let number = q.get("value")?;
    if !number.is_number() {
        return None;
    }
    let unit = text(q, "unit").or_else(|| text(q, "code"));
    Some((number.to_string(), unit))
}

fn with_unit(value: &str, unit: Option<&str>) -> String {
    match unit {
        Some(u) => format!("{value} {u}"),
        None => value.to_owned(),
    }
}

/// The value of an observation or component as text.
fn value(v: &Value) -> Option<String> {
    if let Some((n, unit)) = v.get("valueQuantity").and_then(quantity) {
        return Some(with_unit(&n, unit.as_deref()));
    }
    if let Some(s) = text(v, "valueString") {
        return Some(s);
    }
    if let Some(c) = concept(v.get("valueCodeableConcept")) {
        return Some(c);
    }
    // Components, such as systolic and diastolic blood pressure.
    let components = v.get("component")?.as_array()?;
    let quantities: Vec<(String, Option<String>)> = components
        .iter()
        .filter_map(|c| c.get("valueQuantity").and_then(quantity))
        .collect();
    if quantities.len() == components.len() && !quantities.is_empty() {
        let unit = quantities.first().and_then(|(_, u)| u.clone());
        if quantities.iter().all(|(_, u)| *u == unit) {
            let numbers: Vec<&str> = quantities.iter().map(|(n, _)| n.as_str()).collect();
            return Some(with_unit(&numbers.join("/"), unit.as_deref()));
        }
    }
    let parts: Vec<String> = components
        .iter()
        .filter_map(|c| Some(format!("{}: {}", concept(c.get("code"))?, value(c)?)))
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

fn observation(resource: &Value) -> ObservationSummary {
    ObservationSummary {
        display: concept(resource.get("code")).unwrap_or_else(|| "(uncoded observation)".into()),
        value: value(resource),
        status: text(resource, "status"),
        effective: text(resource, "effectiveDateTime"),
    }
}

fn phr(record: &Value) -> PhrSummary {
    let mut summary = PhrSummary {
        bundle_type: text(record, "type").unwrap_or_default(),
        patient: PatientSummary::default(),
        observations: Vec::new(),
        conditions: Vec::new(),
        medications: Vec::new(),
    };
    let mut found_patient = false;
    let entries = record.get("entry").and_then(Value::as_array);
    for resource in entries
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("resource"))
    {
        match resource.get("resourceType").and_then(Value::as_str) {
            Some("Patient") if !found_patient => {
                summary.patient = patient(resource);
                found_patient = true;
            }
            Some("Observation") => summary.observations.push(observation(resource)),
            Some("Condition") => summary.conditions.push(
                concept(resource.get("code")).unwrap_or_else(|| "(uncoded condition)".into()),
            ),
            Some("MedicationStatement") => summary.medications.push(
                concept(resource.get("medicationCodeableConcept"))
                    .or_else(|| {
                        let r = resource.get("medicationReference")?;
                        text(r, "display").or_else(|| text(r, "reference"))
                    })
                    .unwrap_or_else(|| "(unnamed medication)".into()),
            ),
            _ => {}
        }
    }
    summary
}

fn report(record: &Value) -> ReportSummary {
    let contained: Vec<&Value> = record
        .get("contained")
        .and_then(Value::as_array)
        .map(|c| c.iter().collect())
        .unwrap_or_default();
    let results = record
        .get("result")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|r| {
            let target = text(r, "reference").unwrap_or_default();
            let local = target.strip_prefix('#').and_then(|id| {
                contained
                    .iter()
                    .find(|c| c.get("id").and_then(Value::as_str) == Some(id))
            });
            match local {
                Some(resource) => observation(resource),
                None => ObservationSummary {
                    display: text(r, "display").unwrap_or(target),
                    value: None,
                    status: None,
                    effective: None,
                },
            }
        })
        .collect();
    let subject = record.get("subject");
    ReportSummary {
        code: concept(record.get("code")).unwrap_or_else(|| "(uncoded report)".into()),
        status: text(record, "status").unwrap_or_default(),
        subject: subject
            .and_then(|s| text(s, "display").or_else(|| text(s, "reference")))
            .unwrap_or_default(),
        effective: text(record, "effectiveDateTime"),
        issued: text(record, "issued"),
        conclusion: text(record, "conclusion"),
        results,
    }
}

/// Summarises a (validated) record of `kind`.
pub fn summarize(kind: RecordKind, record: &Value) -> RecordSummary {
    match kind {
        RecordKind::Phr => RecordSummary::Phr(phr(record)),
        RecordKind::Report => RecordSummary::Report(report(record)),
    }
}
