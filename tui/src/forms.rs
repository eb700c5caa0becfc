//! The small forms: compose a record (kind, recipient, file, with a file
//! picker) and grant consent (grantee, scope, expiry). Data only; the keys
//! that drive them live in `update::forms`.

use std::path::PathBuf;

use qward_core::api::RecordKindName;

/// Where the file picker starts when the path field holds no directory.
pub const DEFAULT_RECORDS_DIR: &str = "examples/records";

/// The fields of the compose form, top to bottom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComposeField {
    Kind,
    Recipient,
    File,
}

impl ComposeField {
    pub fn next(self) -> ComposeField {
        match self {
            ComposeField::Kind => ComposeField::Recipient,
            ComposeField::Recipient => ComposeField::File,
            ComposeField::File => ComposeField::Kind,
        }
    }
    pub fn prev(self) -> ComposeField {
        match self {
            ComposeField::Kind => ComposeField::File,
            ComposeField::Recipient => ComposeField::Kind,
            ComposeField::File => ComposeField::Recipient,
        }
    }
}

/// A directory's `.json` files to pick from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePicker {
    pub dir: PathBuf,
    /// `None` while listing; then the file names or why it failed.
    pub files: Option<Result<Vec<String>, String>>,
    pub sel: usize,
}

/// The compose form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposeForm {
    pub kind: RecordKindName,
    /// Index into `State::other_members()`.
    pub recipient: usize,
    pub path: String,
    pub field: ComposeField,
    pub picker: Option<FilePicker>,
    /// Set while the file is read and sent: the recipient chosen.
    pub sending_to: Option<String>,
    pub error: Option<String>,
}

impl ComposeForm {
    pub fn new(kind: RecordKindName) -> ComposeForm {
        ComposeForm {
            kind,
            recipient: 0,
            path: String::new(),
            field: ComposeField::Kind,
            picker: None,
            sending_to: None,
            error: None,
        }
    }
}

/// The fields of the grant form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantField {
    Grantee,
    Scope,
    ExpiresDays,
}

impl GrantField {
    pub fn next(self) -> GrantField {
        match self {
            GrantField::Grantee => GrantField::Scope,
            GrantField::Scope => GrantField::ExpiresDays,
            GrantField::ExpiresDays => GrantField::Grantee,
        }
    }
    pub fn prev(self) -> GrantField {
        match self {
            GrantField::Grantee => GrantField::ExpiresDays,
            GrantField::Scope => GrantField::Grantee,
            GrantField::ExpiresDays => GrantField::Scope,
        }
    }
}

/// The consent grant form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantForm {
    /// Index into `State::other_members()`.
    pub grantee: usize,
    pub scope: String,
    /// Days from now until the grant expires; empty means no expiry.
    pub expires_days: String,
    pub field: GrantField,
    pub error: Option<String>,
}

impl Default for GrantForm {
    fn default() -> Self {
        GrantForm {
            grantee: 0,
            scope: "records".to_string(),
            expires_days: "365".to_string(),
            field: GrantField::Grantee,
            error: None,
        }
    }
}

/// Milliseconds in a day.
pub const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// Parses the expiry field: empty means none; otherwise a whole number of
/// days from 1 to 36500.
pub fn parse_expiry_days(text: &str) -> Result<Option<u64>, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    match t.parse::<u64>() {
        Ok(d) if (1..=36_500).contains(&d) => Ok(Some(d)),
        _ => Err(format!(
            "expiry must be a number of days from 1 to 36500, not '{t}'"
        )),
    }
}

/// The directory the picker should list for what is typed in the path field:
/// the path itself, its parent when it names a file, or the default.
pub fn picker_dir(path: &str) -> PathBuf {
    let p = path.trim();
    if p.is_empty() {
        return PathBuf::from(DEFAULT_RECORDS_DIR);
    }
    let pb = PathBuf::from(p);
    if p.to_ascii_lowercase().ends_with(".json") {
        match pb.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        }
    } else {
        pb
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_days_parse_or_explain() {
        assert_eq!(parse_expiry_days(""), Ok(None));
        assert_eq!(parse_expiry_days(" 30 "), Ok(Some(30)));
        assert!(parse_expiry_days("0").is_err());
        assert!(
            parse_expiry_days("soon")
                .expect_err("an error")
                .contains("number of days")
        );
    }

    #[test]
    fn picker_starts_in_the_typed_directory() {
        assert_eq!(picker_dir(""), PathBuf::from(DEFAULT_RECORDS_DIR));
        assert_eq!(picker_dir("/tmp/recs"), PathBuf::from("/tmp/recs"));
        assert_eq!(picker_dir("/tmp/recs/a.json"), PathBuf::from("/tmp/recs"));
        assert_eq!(picker_dir("a.json"), PathBuf::from("."));
    }
}
