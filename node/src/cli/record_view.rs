//! A received record rendered for people on the command line (`qward inbox
//! show`): who it is about, what was measured, what the report concludes.

use qward_core::api::{RecordContent, RecordKindName};
use qward_core::envelope::RecordKind;
use qward_core::fhir::{ObservationSummary, RecordSummary};

fn line(out: &mut String, label: &str, value: Option<&str>) {
    if let Some(v) = value {
        out.push_str(&format!("{label:<12} {v}\n"));
    }
}

fn observations(out: &mut String, title: &str, list: &[ObservationSummary]) {
    if list.is_empty() {
        return;
    }
    out.push_str(&format!("{title}\n"));
    for o in list {
        out.push_str(&format!(
            "  {:<32} {}{}\n",
            o.display,
            o.value.as_deref().unwrap_or("-"),
            o.effective
                .as_deref()
                .map(|e| format!("  ({e})"))
                .unwrap_or_default()
        ));
    }
}

/// The text shown for a record.
pub fn render(c: &RecordContent) -> String {
    let mut out = String::new();
    let from = c.info.from_name.as_deref().unwrap_or(&c.info.from);
    line(&mut out, "record", Some(&c.info.record_id));
    line(&mut out, "from", Some(from));
    line(&mut out, "status", c.info.detail.as_deref());
    let kind = match c.info.kind {
        RecordKindName::Phr => RecordKind::Phr,
        RecordKindName::Report => RecordKind::Report,
    };
    match qward_core::fhir::validate(kind, c.fhir_json.as_bytes()) {
        Err(e) => out.push_str(&format!("(the record does not read as FHIR: {e})\n")),
        Ok(RecordSummary::Phr(p)) => {
            out.push_str("\nPersonal health record\n");
            line(&mut out, "patient", p.patient.name.as_deref());
            line(&mut out, "gender", p.patient.gender.as_deref());
            line(&mut out, "born", p.patient.birth_date.as_deref());
            observations(&mut out, "observations", &p.observations);
            if !p.conditions.is_empty() {
                line(&mut out, "conditions", Some(&p.conditions.join("; ")));
            }
            if !p.medications.is_empty() {
                line(&mut out, "medications", Some(&p.medications.join("; ")));
            }
        }
        Ok(RecordSummary::Report(r)) => {
            out.push_str(&format!("\nMedical report: {}\n", r.code));
            line(&mut out, "subject", Some(&r.subject));
            line(&mut out, "status", Some(&r.status));
            line(&mut out, "issued", r.issued.as_deref());
            observations(&mut out, "results", &r.results);
            line(&mut out, "conclusion", r.conclusion.as_deref());
        }
    }
    out
}
