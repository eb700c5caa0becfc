//! Checks of the resources a PHR bundle or a report may carry: Patient,
//! Observation, Condition and MedicationStatement (R4 required elements and
//! value sets). Other resource types pass with only their `resourceType`.

use serde_json::Value;

use super::FhirError;
use super::elements::{
    Object, as_object, child, index, is_date, is_date_time, optional_array, optional_code,
    optional_codeable_concept, optional_date, optional_str, required, required_code,
    required_codeable_concept, required_reference, required_str,
};

/// R4 `ObservationStatus`.
pub const OBSERVATION_STATUSES: &[&str] = &[
    "registered",
    "preliminary",
    "final",
    "amended",
    "corrected",
    "cancelled",
    "entered-in-error",
    "unknown",
];

/// R4 `AdministrativeGender`.
pub const GENDERS: &[&str] = &["male", "female", "other", "unknown"];

/// R4 `MedicationStatementStatus`.
pub const MEDICATION_STATEMENT_STATUSES: &[&str] = &[
    "active",
    "completed",
    "entered-in-error",
    "intended",
    "stopped",
    "on-hold",
    "unknown",
    "not-taken",
];

/// Checks a resource object at `path` and returns its `resourceType`.
pub(crate) fn validate_resource<'a>(value: &'a Value, path: &str) -> Result<&'a str, FhirError> {
    let obj = as_object(value, path)?;
    let resource_type = required_str(obj, path, "resourceType")?;
    optional_str(obj, path, "id")?;
    match resource_type {
        "Patient" => patient(obj, path)?,
        "Observation" => observation(obj, path)?,
        "Condition" => condition(obj, path)?,
        "MedicationStatement" => medication_statement(obj, path)?,
        _ => {}
    }
    Ok(resource_type)
}

fn patient(obj: &Object, path: &str) -> Result<(), FhirError> {
    optional_code(obj, path, "gender", GENDERS)?;
    optional_date(
        obj,
        path,
        "birthDate",
        "date (YYYY, YYYY-MM or YYYY-MM-DD)",
        is_date,
    )?;
    let names_path = child(path, "name");
    for (i, name) in optional_array(obj, path, "name")?.iter().enumerate() {
        let p = index(&names_path, i);
        let n = as_object(name, &p)?;
        optional_str(n, &p, "family")?;
        optional_str(n, &p, "text")?;
        let given_path = child(&p, "given");
        for (j, given) in optional_array(n, &p, "given")?.iter().enumerate() {
            if !given.is_string() {
                return Err(FhirError::WrongType {
                    path: index(&given_path, j),
                    expected: "a string",
                });
            }
        }
    }
    Ok(())
}

pub(crate) fn observation(obj: &Object, path: &str) -> Result<(), FhirError> {
    required_code(obj, path, "status", OBSERVATION_STATUSES)?;
    required_codeable_concept(obj, path, "code")?;
    required_reference(obj, path, "subject")?;
    optional_date(obj, path, "effectiveDateTime", "dateTime", is_date_time)?;
    value(obj, path)?;
    let components_path = child(path, "component");
    for (i, component) in optional_array(obj, path, "component")?.iter().enumerate() {
        let p = index(&components_path, i);
        let c = as_object(component, &p)?;
        required_codeable_concept(c, &p, "code")?;
        value(c, &p)?;
    }
    Ok(())
}

/// The `value[x]` of an observation or component; a Quantity needs a number.
fn value(obj: &Object, path: &str) -> Result<(), FhirError> {
    if let Some(q) = obj.get("valueQuantity") {
        let p = child(path, "valueQuantity");
        let q = as_object(q, &p)?;
        let v = required(q, &p, "value")?;
        if !v.is_number() {
            return Err(FhirError::WrongType {
                path: child(&p, "value"),
                expected: "a number",
            });
        }
        optional_str(q, &p, "unit")?;
        optional_str(q, &p, "code")?;
    }
    optional_str(obj, path, "valueString")?;
    optional_codeable_concept(obj, path, "valueCodeableConcept")?;
    Ok(())
}

fn condition(obj: &Object, path: &str) -> Result<(), FhirError> {
    required_reference(obj, path, "subject")?;
    optional_codeable_concept(obj, path, "code")?;
    optional_codeable_concept(obj, path, "clinicalStatus")?;
    optional_codeable_concept(obj, path, "verificationStatus")?;
    optional_date(obj, path, "onsetDateTime", "dateTime", is_date_time)?;
    Ok(())
}

fn medication_statement(obj: &Object, path: &str) -> Result<(), FhirError> {
    required_code(obj, path, "status", MEDICATION_STATEMENT_STATUSES)?;
    required_reference(obj, path, "subject")?;
    match (
        obj.get("medicationCodeableConcept"),
        obj.get("medicationReference"),
    ) {
        (Some(c), _) => {
            super::elements::codeable_concept(c, &child(path, "medicationCodeableConcept"))
        }
        (None, Some(r)) => {
            super::elements::reference(r, &child(path, "medicationReference")).map(|_| ())
        }
        (None, None) => Err(FhirError::Missing {
            path: child(path, "medication[x]"),
        }),
    }
}
