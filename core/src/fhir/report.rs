//! The report check: a FHIR R4 `DiagnosticReport` with a valid status, a
//! code and a subject; results must be references, contained resources are
//! checked like bundle entries.

use serde_json::Value;

use super::FhirError;
use super::elements::{
    as_object, child, index, is_date_time, is_instant, optional_array, optional_date, optional_str,
    reference, required_code, required_codeable_concept, required_reference, required_str,
};
use super::resources::validate_resource;

/// R4 `DiagnosticReportStatus`.
pub const REPORT_STATUSES: &[&str] = &[
    "registered",
    "partial",
    "preliminary",
    "final",
    "amended",
    "corrected",
    "appended",
    "cancelled",
    "entered-in-error",
    "unknown",
];

/// Checks that `record` is a diagnostic report.
pub fn validate_report(record: &Value) -> Result<(), FhirError> {
    let path = "$";
    let obj = as_object(record, path)?;
    let resource_type = required_str(obj, path, "resourceType")?;
    if resource_type != "DiagnosticReport" {
        return Err(FhirError::WrongResourceType {
            path: child(path, "resourceType"),
            expected: "DiagnosticReport",
            found: resource_type.to_owned(),
        });
    }
    required_code(obj, path, "status", REPORT_STATUSES)?;
    required_codeable_concept(obj, path, "code")?;
    required_reference(obj, path, "subject")?;
    optional_date(obj, path, "effectiveDateTime", "dateTime", is_date_time)?;
    optional_date(
        obj,
        path,
        "issued",
        "instant (YYYY-MM-DDThh:mm:ss with a zone)",
        is_instant,
    )?;
    optional_str(obj, path, "conclusion")?;
    let contained_path = child(path, "contained");
    for (i, resource) in optional_array(obj, path, "contained")?.iter().enumerate() {
        validate_resource(resource, &index(&contained_path, i))?;
    }
    let results_path = child(path, "result");
    for (i, result) in optional_array(obj, path, "result")?.iter().enumerate() {
        reference(result, &index(&results_path, i))?;
    }
    Ok(())
}
