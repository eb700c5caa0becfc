//! FHIR R4 payload checks: a PHR must be a `Bundle` with a `Patient`, a report
//! a `DiagnosticReport`; both are checked for the structure and required
//! elements qward relies on before they are sealed, and summarised for
//! people (the TUI renders a [`RecordSummary`], not raw JSON).
//!
//! This is not a full FHIR validator (no profiles, no terminology server):
//! it checks the R4 structure, cardinality and required codes of the
//! resources qward exchanges, and names the JSON path of every problem, such
//! as `$.entry[2].resource.status`.

mod bundle;
mod elements;
mod report;
mod resources;
mod summary;

use serde_json::Value;

use crate::envelope::RecordKind;

pub use bundle::{BUNDLE_TYPES, validate_phr};
pub use report::{REPORT_STATUSES, validate_report};
pub use resources::{GENDERS, MEDICATION_STATEMENT_STATUSES, OBSERVATION_STATUSES};
pub use summary::{
    ObservationSummary, PatientSummary, PhrSummary, RecordSummary, ReportSummary, summarize,
};

/// The largest record accepted (12 MiB, the envelope payload limit).
pub const MAX_RECORD_BYTES: usize = crate::envelope::MAX_PAYLOAD_BYTES;

/// What is wrong with a record. Every variant after `NotJson` names the JSON
/// path of the problem.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum FhirError {
    #[error("record of {len} bytes exceeds the {limit}-byte limit")]
    TooLarge { len: usize, limit: usize },
    #[error("not valid JSON (line {line}, column {column}): {reason}")]
    NotJson {
        line: usize,
        column: usize,
        reason: String,
    },
    #[error("{path}: required element is missing")]
    Missing { path: String },
    #[error("{path}: must be {expected}")]
    WrongType {
        path: String,
        expected: &'static str,
    },
    #[error("{path}: must not be empty")]
    Empty { path: String },
    #[error("{path}: expected resourceType \"{expected}\", found \"{found}\"")]
    WrongResourceType {
        path: String,
        expected: &'static str,
        found: String,
    },
    #[error("{path}: \"{value}\" is not one of {}", allowed.join(", "))]
    InvalidCode {
        path: String,
        value: String,
        allowed: &'static [&'static str],
    },
    #[error("{path}: \"{value}\" is not a valid FHIR {expected}")]
    InvalidDate {
        path: String,
        value: String,
        expected: &'static str,
    },
    #[error(
        "{path}: \"{value}\" is not a valid reference (e.g. \"Patient/123\", \"urn:uuid:...\", \"#id\")"
    )]
    InvalidReference { path: String, value: String },
    #[error("{path}: a personal health record must contain a Patient resource")]
    NoPatient { path: String },
}

impl FhirError {
    /// The JSON path of the problem (`$` for whole-document problems).
    pub fn path(&self) -> &str {
        match self {
            FhirError::TooLarge { .. } | FhirError::NotJson { .. } => "$",
            FhirError::Missing { path }
            | FhirError::WrongType { path, .. }
            | FhirError::Empty { path }
            | FhirError::WrongResourceType { path, .. }
            | FhirError::InvalidCode { path, .. }
            | FhirError::InvalidDate { path, .. }
            | FhirError::InvalidReference { path, .. }
            | FhirError::NoPatient { path } => path,
        }
    }
}

/// Parses a record's JSON, refusing more than [`MAX_RECORD_BYTES`].
pub fn parse(bytes: &[u8]) -> Result<Value, FhirError> {
    if bytes.len() > MAX_RECORD_BYTES {
        return Err(FhirError::TooLarge {
            len: bytes.len(),
            limit: MAX_RECORD_BYTES,
        });
    }
    serde_json::from_slice(bytes).map_err(|e| FhirError::NotJson {
        line: e.line(),
        column: e.column(),
        reason: e.to_string(),
    })
}

/// The kind a document claims to be, from its `resourceType`.
pub fn detect_kind(record: &Value) -> Option<RecordKind> {
    match record.get("resourceType").and_then(Value::as_str) {
        Some("Bundle") => Some(RecordKind::Phr),
        Some("DiagnosticReport") => Some(RecordKind::Report),
        _ => None,
    }
}

/// Checks a parsed record against the rules for `kind`.
pub fn validate_value(kind: RecordKind, record: &Value) -> Result<(), FhirError> {
    match kind {
        RecordKind::Phr => validate_phr(record),
        RecordKind::Report => validate_report(record),
    }
}

/// Parses, checks and summarises a record before it is sealed.
pub fn validate(kind: RecordKind, bytes: &[u8]) -> Result<RecordSummary, FhirError> {
    let record = parse(bytes)?;
    validate_value(kind, &record)?;
    Ok(summarize(kind, &record))
}

#[cfg(test)]
mod tests;
