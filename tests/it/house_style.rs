//! Checks of the house style that the compiler does not make: every Rust file
//! says what lives in it on its first line.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if name.starts_with('.') || name == "target" || name == "devnet" {
                continue;
            }
            rust_files(&path, out);
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_rust_file_opens_with_a_module_doc_line() {
    let root = qward_tests::workspace_root();
    let mut files = Vec::new();
    for krate in ["core", "node", "tui", "genesis", "tests"] {
        rust_files(&root.join(krate), &mut files);
    }
    assert!(
        files.len() >= 10,
        "found only {} .rs files under {}",
        files.len(),
        root.display()
    );
    let offenders: Vec<String> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            !text.lines().next().is_some_and(|l| l.starts_with("//!"))
        })
        .map(|f| f.strip_prefix(&root).unwrap_or(f).display().to_string())
        .collect();
    assert!(
        offenders.is_empty(),
        "these files do not start with a `//!` line: {offenders:?}"
    );
}

/// The module a source file is (`node/src/node/messages/outbox.rs` ->
/// `["node", "messages", "outbox"]`; `mod.rs` and `lib.rs` name their folder).
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap_or(file);
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// `use` trees expanded to whole paths: `a::{b, c::{d, e}}` -> `a::b`,
/// `a::c::d`, `a::c::e`.
fn expand_use(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        return vec![tree.trim_end_matches("::").to_string()];
    };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let (mut items, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    items
        .into_iter()
        .filter(|i| !i.trim().is_empty())
        .flat_map(|i| expand_use(&format!("{prefix}{}", i.trim())))
        .collect()
}

/// The paths a file names: its `use` trees, and inline `crate::`, `super::`
/// and child-module (`mod x;` then `x::`) paths in its code.
fn paths_named(text: &str) -> Vec<String> {
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut paths = Vec::new();
    // `use` items start a line (after `pub` or `pub(crate)`); a "use " in a
    // string or a comment's words is not one.
    let mut offset = 0;
    for line in code.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let item = trimmed
            .strip_prefix("pub(crate) ")
            .or_else(|| trimmed.strip_prefix("pub "))
            .unwrap_or(trimmed);
        if let Some(tail) = item.strip_prefix("use ") {
            let start = offset + (line.len() - tail.len());
            let rest = &code[start..];
            let end = rest.find(';').unwrap_or(rest.len());
            paths.extend(expand_use(&rest[..end].replace('\n', " ")));
        }
        offset += line.len();
    }
    let children: Vec<&str> = code
        .lines()
        .map(|l| {
            l.trim()
                .trim_start_matches("pub ")
                .trim_start_matches("pub(crate) ")
        })
        .filter_map(|l| l.strip_prefix("mod ").and_then(|m| m.strip_suffix(';')))
        .collect();
    let words: Vec<&str> = code
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| w.contains("::"))
        .collect();
    for w in words {
        let first = w.split("::").next().unwrap_or("");
        if first == "crate" || first == "super" || first == "self" || children.contains(&first) {
            paths.push(w.trim_end_matches("::").to_string());
        }
    }
    paths
}

/// The file a path leads to, from the module `from`: the longest prefix of
/// it that is a module of the crate.
fn resolve(from: &[String], path: &str, modules: &[Vec<String>]) -> Option<Vec<String>> {
    let mut segs = path.split("::").map(str::to_string);
    let mut base: Vec<String> = match segs.next()?.as_str() {
        "crate" => Vec::new(),
        "self" => from.to_vec(),
        "super" => from[..from.len().saturating_sub(1)].to_vec(),
        child => {
            let mut b = from.to_vec();
            b.push(child.to_string());
            b
        }
    };
    let mut best = modules.contains(&base).then(|| base.clone());
    for s in segs {
        if s == "super" {
            base.pop();
        } else {
            base.push(s);
        }
        if modules.contains(&base) {
            best = Some(base.clone());
        }
    }
    best
}

/// A file without its unit tests, which may reach anywhere: a
/// `#[cfg(test)]` module declared on one line is dropped, and an inline one
/// (by convention at the end) ends the file.
fn without_tests(text: &str) -> String {
    let mut out = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() != "#[cfg(test)]" {
            out.push(line);
            continue;
        }
        let mut item = Vec::new();
        for next in lines.by_ref() {
            item.push(next);
            if !next.trim_start().starts_with("#[") {
                break;
            }
        }
        if !item.last().is_some_and(|l| l.trim_end().ends_with(';')) {
            break;
        }
    }
    out.join("\n")
}

/// No two files of the running node import each other, directly or around a
/// circle: each task depends on the state it is handed, not on its callers.
#[test]
fn the_node_has_no_import_circle() {
    let src = qward_tests::workspace_root().join("node/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.retain(|f| !f.to_string_lossy().ends_with("_tests.rs") && !f.ends_with("testkit.rs"));
    let modules: Vec<Vec<String>> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); files.len()];
    for (i, f) in files.iter().enumerate() {
        let text = std::fs::read_to_string(f).unwrap();
        for p in paths_named(&without_tests(&text)) {
            if let Some(target) = resolve(&modules[i], &p, &modules)
                && let Some(j) = modules.iter().position(|m| *m == target)
                && j != i
                // A path through a parent module's re-exports (`super::NetError`)
                // names the parent's facade, not a dependency on the parent's code.
                && !modules[i].starts_with(&modules[j])
            {
                edges[i].push(j);
            }
        }
    }
    // Depth-first search for a back edge.
    fn visit(
        n: usize,
        edges: &[Vec<usize>],
        state: &mut [u8],
        stack: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        state[n] = 1;
        stack.push(n);
        for &m in &edges[n] {
            if state[m] == 1 {
                let from = stack.iter().position(|&s| s == m).unwrap_or(0);
                return Some(stack[from..].to_vec());
            }
            if state[m] == 0
                && let Some(c) = visit(m, edges, state, stack)
            {
                return Some(c);
            }
        }
        stack.pop();
        state[n] = 2;
        None
    }
    let mut state = vec![0u8; files.len()];
    for n in 0..files.len() {
        if state[n] == 0
            && let Some(circle) = visit(n, &edges, &mut state, &mut Vec::new())
        {
            let names: Vec<String> = circle.iter().map(|&i| modules[i].join("::")).collect();
            panic!("an import circle in node/: {}", names.join(" -> "));
        }
    }
    assert!(files.len() > 30, "found only {} files", files.len());
}
