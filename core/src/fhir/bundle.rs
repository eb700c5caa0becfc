//! The PHR check: a FHIR R4 `Bundle` of a known type whose entries are
//! resources, with at least one `Patient` (and a `Composition` first when the
//! bundle is a document, R4 invariant bdl-11).

use serde_json::Value;

use super::FhirError;
use super::elements::{
    as_object, child, index, optional_str, required, required_code, required_str,
};
use super::resources::validate_resource;

/// R4 `BundleType`.
pub const BUNDLE_TYPES: &[&str] = &[
    "document",
    "message",
    "transaction",
    "transaction-response",
    "batch",
    "batch-response",
    "history",
    "searchset",
    "collection",
];

/// Checks that `record` is a PHR bundle.
pub fn validate_phr(record: &Value) -> Result<(), FhirError> {
    let path = "$";
    let obj = as_object(record, path)?;
    let resource_type = required_str(obj, path, "resourceType")?;
    if resource_type != "Bundle" {
        return Err(FhirError::WrongResourceType {
            path: child(path, "resourceType"),
            expected: "Bundle",
            found: resource_type.to_owned(),
        });
    }
    required_code(obj, path, "type", BUNDLE_TYPES)?;
    let bundle_type = obj.get("type").and_then(Value::as_str);
    let entries_path = child(path, "entry");
    let entries = required(obj, path, "entry")?
        .as_array()
        .ok_or_else(|| FhirError::WrongType {
            path: entries_path.clone(),
            expected: "a JSON array",
        })?;
    if entries.is_empty() {
        return Err(FhirError::Empty { path: entries_path });
    }
    let mut has_patient = false;
    for (i, entry) in entries.iter().enumerate() {
        let p = index(&entries_path, i);
        let e = as_object(entry, &p)?;
        optional_str(e, &p, "fullUrl")?;
        let resource_path = child(&p, "resource");
        let resource_type = validate_resource(required(e, &p, "resource")?, &resource_path)?;
        if i == 0 && bundle_type == Some("document") && resource_type != "Composition" {
            return Err(FhirError::WrongResourceType {
                path: child(&resource_path, "resourceType"),
                expected: "Composition",
                found: resource_type.to_owned(),
            });
        }
        has_patient |= resource_type == "Patient";
    }
    if !has_patient {
        return Err(FhirError::NoPatient { path: entries_path });
    }
    Ok(())
}
