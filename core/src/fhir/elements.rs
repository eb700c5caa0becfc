//! Path-aware checks of FHIR R4 data types: strings, codes, dates,
//! CodeableConcept and Reference, each reporting the JSON path it failed at.

use serde_json::{Map, Value};

use super::FhirError;

pub(crate) type Object = Map<String, Value>;

pub(crate) fn child(path: &str, name: &str) -> String {
    format!("{path}.{name}")
}

pub(crate) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

pub(crate) fn as_object<'a>(value: &'a Value, path: &str) -> Result<&'a Object, FhirError> {
    value.as_object().ok_or_else(|| FhirError::WrongType {
        path: path.to_owned(),
        expected: "a JSON object",
    })
}

/// A required element.
pub(crate) fn required<'a>(
    obj: &'a Object,
    path: &str,
    name: &str,
) -> Result<&'a Value, FhirError> {
    match obj.get(name) {
        Some(Value::Null) | None => Err(FhirError::Missing {
            path: child(path, name),
        }),
        Some(v) => Ok(v),
    }
}

/// A required, non-empty string.
pub(crate) fn required_str<'a>(
    obj: &'a Object,
    path: &str,
    name: &str,
) -> Result<&'a str, FhirError> {
    let value = required(obj, path, name)?;
    string(value, &child(path, name))
}

/// An optional string (must be a non-empty string when present).
pub(crate) fn optional_str<'a>(
    obj: &'a Object,
    path: &str,
    name: &str,
) -> Result<Option<&'a str>, FhirError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => string(v, &child(path, name)).map(Some),
    }
}

fn string<'a>(value: &'a Value, path: &str) -> Result<&'a str, FhirError> {
    let s = value.as_str().ok_or_else(|| FhirError::WrongType {
        path: path.to_owned(),
        expected: "a string",
    })?;
    if s.trim().is_empty() {
        return Err(FhirError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(s)
}

/// An optional array (an empty array is as good as absent: FHIR forbids it).
pub(crate) fn optional_array<'a>(
    obj: &'a Object,
    path: &str,
    name: &str,
) -> Result<&'a [Value], FhirError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(&[]),
        Some(v) => {
            let items = v.as_array().ok_or_else(|| FhirError::WrongType {
                path: child(path, name),
                expected: "a JSON array",
            })?;
            if items.is_empty() {
                return Err(FhirError::Empty {
                    path: child(path, name),
                });
            }
            Ok(items)
        }
    }
}

/// A required code from a fixed value set.
pub(crate) fn required_code(
    obj: &Object,
    path: &str,
    name: &str,
    allowed: &'static [&'static str],
) -> Result<(), FhirError> {
    let value = required_str(obj, path, name)?;
    check_code(value, &child(path, name), allowed)
}

pub(crate) fn optional_code(
    obj: &Object,
    path: &str,
    name: &str,
    allowed: &'static [&'static str],
) -> Result<(), FhirError> {
    match optional_str(obj, path, name)? {
        Some(value) => check_code(value, &child(path, name), allowed),
        None => Ok(()),
    }
}

fn check_code(value: &str, path: &str, allowed: &'static [&'static str]) -> Result<(), FhirError> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(FhirError::InvalidCode {
            path: path.to_owned(),
            value: value.to_owned(),
            allowed,
        })
    }
}

/// A CodeableConcept: an object with a non-empty `coding` array (each coding
/// an object whose `system`, `code` and `display` are strings) or a `text`.
pub(crate) fn codeable_concept(value: &Value, path: &str) -> Result<(), FhirError> {
    let obj = as_object(value, path)?;
    let codings = optional_array(obj, path, "coding")?;
    let coding_path = child(path, "coding");
    for (i, coding) in codings.iter().enumerate() {
        let p = index(&coding_path, i);
        let c = as_object(coding, &p)?;
        for name in ["system", "code", "display"] {
            optional_str(c, &p, name)?;
        }
        if c.get("code").is_none() && c.get("display").is_none() {
            return Err(FhirError::Missing {
                path: child(&p, "code"),
            });
        }
    }
    let text = optional_str(obj, path, "text")?;
    if codings.is_empty() && text.is_none() {
        return Err(FhirError::Missing { path: coding_path });
    }
    Ok(())
}

pub(crate) fn required_codeable_concept(
    obj: &Object,
    path: &str,
    name: &str,
) -> Result<(), FhirError> {
    codeable_concept(required(obj, path, name)?, &child(path, name))
}

pub(crate) fn optional_codeable_concept(
    obj: &Object,
    path: &str,
    name: &str,
) -> Result<(), FhirError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(()),
        Some(v) => codeable_concept(v, &child(path, name)),
    }
}

/// A Reference with a literal `reference` ("Type/id", an absolute URL,
/// "urn:uuid:..." or "#contained-id").
pub(crate) fn reference<'a>(value: &'a Value, path: &str) -> Result<&'a str, FhirError> {
    let obj = as_object(value, path)?;
    let target = required_str(obj, path, "reference")?;
    optional_str(obj, path, "display")?;
    if !is_reference(target) {
        return Err(FhirError::InvalidReference {
            path: child(path, "reference"),
            value: target.to_owned(),
        });
    }
    Ok(target)
}

pub(crate) fn required_reference<'a>(
    obj: &'a Object,
    path: &str,
    name: &str,
) -> Result<&'a str, FhirError> {
    reference(required(obj, path, name)?, &child(path, name))
}

fn is_reference(target: &str) -> bool {
    if target.chars().any(char::is_whitespace) {
        return false;
    }
    if let Some(id) = target.strip_prefix('#') {
        return !id.is_empty();
    }
    if target.starts_with("urn:uuid:") || target.starts_with("urn:oid:") || target.contains("://") {
        return true;
    }
    // Relative: [Type]/[id], Type starting with an upper-case letter.
    let mut parts = target.rsplitn(2, '/');
    match (parts.next(), parts.next()) {
        (Some(id), Some(ty)) => {
            let ty = ty.rsplit('/').next().unwrap_or(ty);
            !id.is_empty()
                && ty.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                && ty.chars().all(|c| c.is_ascii_alphanumeric())
        }
        _ => false,
    }
}

/// FHIR `date`: YYYY, YYYY-MM or YYYY-MM-DD.
pub(crate) fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let in_range = |r: std::ops::Range<usize>, lo: u32, hi: u32| {
        s.get(r)
            .and_then(|v| v.parse::<u32>().ok())
            .is_some_and(|v| (lo..=hi).contains(&v))
    };
    match b.len() {
        4 => digits(0..4),
        7 => digits(0..4) && b.get(4) == Some(&b'-') && digits(5..7) && in_range(5..7, 1, 12),
        10 => {
            digits(0..4)
                && b.get(4) == Some(&b'-')
                && digits(5..7)
                && in_range(5..7, 1, 12)
                && b.get(7) == Some(&b'-')
                && digits(8..10)
                && in_range(8..10, 1, 31)
        }
        _ => false,
    }
}

/// The time part of a dateTime/instant after the 'T': hh:mm:ss(.fff)
/// followed by 'Z' or ±hh:mm.
fn is_time_with_zone(t: &str) -> bool {
    let zone_at = t.find(['Z', '+', '-']);
    let Some(zone_at) = zone_at else {
        return false;
    };
    let (time, zone) = t.split_at(zone_at);
    let (hms, frac) = match time.split_once('.') {
        Some((hms, frac)) => (hms, Some(frac)),
        None => (time, None),
    };
    let mut fields = hms.split(':');
    let ok_field = |f: Option<&str>, max: u32| {
        f.is_some_and(|v| {
            v.len() == 2
                && v.bytes().all(|c| c.is_ascii_digit())
                && v.parse::<u32>().is_ok_and(|n| n <= max)
        })
    };
    let hms_ok = ok_field(fields.next(), 23)
        && ok_field(fields.next(), 59)
        && ok_field(fields.next(), 60)
        && fields.next().is_none();
    let frac_ok = frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|c| c.is_ascii_digit()));
    let zone_ok = zone == "Z"
        || (zone.len() == 6
            && zone
                .get(1..3)
                .is_some_and(|h| h.bytes().all(|c| c.is_ascii_digit()))
            && zone.get(3..4) == Some(":")
            && zone
                .get(4..6)
                .is_some_and(|m| m.bytes().all(|c| c.is_ascii_digit())));
    hms_ok && frac_ok && zone_ok
}

/// FHIR `dateTime`: a date, or a full date with time and zone.
pub(crate) fn is_date_time(s: &str) -> bool {
    match s.split_once('T') {
        None => is_date(s),
        Some((date, time)) => date.len() == 10 && is_date(date) && is_time_with_zone(time),
    }
}

/// FHIR `instant`: a full date, time to the second, and zone.
pub(crate) fn is_instant(s: &str) -> bool {
    s.split_once('T')
        .is_some_and(|(date, time)| date.len() == 10 && is_date(date) && is_time_with_zone(time))
}

pub(crate) fn optional_date(
    obj: &Object,
    path: &str,
    name: &str,
    expected: &'static str,
    check: fn(&str) -> bool,
) -> Result<(), FhirError> {
    match optional_str(obj, path, name)? {
        Some(value) if !check(value) => Err(FhirError::InvalidDate {
            path: child(path, name),
            value: value.to_owned(),
            expected,
        }),
        _ => Ok(()),
    }
}
