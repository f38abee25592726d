//! The crate's modules import one another without a circle, so each can be
//! read (and tested) on top of the ones below it: no two files name each
//! other, through any number of steps (a folder's files included), and no
//! two top-level modules do.
//!
//! A file names a module by a path: `crate::a::b` (the longest prefix that
//! is a module, and each member of `crate::a::{b, c}` that is one),
//! `super::x`, or, in a folder's `mod.rs`, `x::` for one of its own
//! `mod x;`. Test code (from the first `#[cfg(test)]` on) may use anything,
//! as may the crate root and the crate's `tests` module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path inside the crate: `["layers", "conv"]`.
type Module = Vec<String>;

/// Every `.rs` file under `dir`, recursively.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(path) = todo.pop() {
        if path.is_dir() {
            let entries = std::fs::read_dir(&path).expect("readable folder");
            todo.extend(entries.map(|e| e.expect("folder entry").path()));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// The module a file under `src` holds: `layers/mod.rs` is `layers`,
/// `layers/conv.rs` is `layers::conv`, `lib.rs` is the root (empty).
fn module_of(src: &Path, file: &Path) -> Module {
    let rel = file.strip_prefix(src).expect("under src");
    let mut module: Module = rel
        .components()
        .map(|c| c.as_os_str().to_str().expect("UTF-8 name").to_string())
        .collect();
    let last = module.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        module.push(stem.to_string());
    }
    module
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The path that starts at `text`: its `::`-separated names, and the first
/// name of each member when it ends in a `{...}` group.
fn path_at(text: &str) -> (Vec<String>, Vec<String>) {
    let mut names = Vec::new();
    let mut rest = text;
    loop {
        let name: String = rest.chars().take_while(|&c| is_ident(c)).collect();
        if name.is_empty() {
            break;
        }
        rest = &rest[name.len()..];
        names.push(name);
        match rest.strip_prefix("::") {
            Some(r) => rest = r,
            None => return (names, Vec::new()),
        }
    }
    let members = match rest.strip_prefix('{') {
        Some(group) => group
            .split('}')
            .next()
            .unwrap_or_default()
            .split(',')
            .map(|m| m.trim().chars().take_while(|&c| is_ident(c)).collect())
            .filter(|m: &String| !m.is_empty())
            .collect(),
        None => Vec::new(),
    };
    (names, members)
}

/// The longest prefix of `path` that is a module.
fn longest_module(path: &[String], modules: &BTreeSet<Module>) -> Option<Module> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|m| modules.contains(m))
}

/// The modules named in `text`, the code of the file holding `module`.
fn named(module: &Module, is_folder: bool, text: &str, modules: &BTreeSet<Module>) -> Vec<Module> {
    let mut out = Vec::new();
    let mut add = |base: Module, (names, members): (Vec<String>, Vec<String>)| {
        let mut path = base;
        path.extend(names);
        out.extend(longest_module(&path, modules));
        for m in members {
            let mut member = path.clone();
            member.push(m);
            if modules.contains(&member) {
                out.push(member);
            }
        }
    };
    for (i, _) in text.match_indices("crate::") {
        add(Vec::new(), path_at(&text[i + "crate::".len()..]));
    }
    for (i, _) in text.match_indices("super::") {
        let parent = module[..module.len().saturating_sub(1)].to_vec();
        add(parent, path_at(&text[i + "super::".len()..]));
    }
    if is_folder {
        // A folder's `mod.rs` names its own children without a prefix.
        let children = text.lines().filter_map(|line| {
            let line = line.trim();
            let decl = line.strip_prefix("pub(crate) ").unwrap_or(line);
            decl.strip_prefix("mod ")?.strip_suffix(';')
        });
        for child in children {
            let starts_path = |i: usize| {
                let before = &text[..i];
                !before.ends_with(is_ident) && !before.ends_with("::")
            };
            let prefix = format!("{child}::");
            if text.match_indices(&prefix).any(|(i, _)| starts_path(i)) {
                let mut m = module.clone();
                m.push(child.to_string());
                out.push(m);
            }
        }
    }
    out
}

/// Each module of `src` (the root and the crate's `tests` left out) with
/// the other modules it names.
fn imports(src: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
    let files: Vec<(Module, bool, String)> = sources(src)
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("readable source");
            // Test code may use anything.
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            let is_folder = path.file_name().is_some_and(|n| n == "mod.rs");
            (module_of(src, &path), is_folder, code.to_string())
        })
        .filter(|(m, _, _)| m.first().is_some_and(|top| top != "tests"))
        .collect();
    let modules: BTreeSet<Module> = files.iter().map(|(m, _, _)| m.clone()).collect();
    files
        .iter()
        .map(|(m, is_folder, code)| {
            let deps = named(m, *is_folder, code, &modules)
                .into_iter()
                .filter(|d| d != m)
                .collect();
            (m.clone(), deps)
        })
        .collect()
}

/// Peels off modules whose imports are all peeled; what is left imports
/// itself through a circle, and fails the test.
fn assert_no_circle(deps: &BTreeMap<Module, BTreeSet<Module>>) {
    let mut peeled: BTreeSet<&Module> = BTreeSet::new();
    while peeled.len() < deps.len() {
        let next: Vec<&Module> = deps
            .iter()
            .filter(|(m, d)| !peeled.contains(m) && d.iter().all(|n| peeled.contains(n)))
            .map(|(m, _)| m)
            .collect();
        let left: Vec<String> = deps
            .iter()
            .filter(|(m, _)| !peeled.contains(m))
            .map(|(m, d)| {
                let d: Vec<String> = d.iter().map(|n| n.join("::")).collect();
                format!("{} -> {}", m.join("::"), d.join(", "))
            })
            .collect();
        assert!(
            !next.is_empty(),
            "modules import one another in a circle:\n{}",
            left.join("\n")
        );
        peeled.extend(next);
    }
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn files_import_no_circle() {
    let deps = imports(&src());
    let module = |path: &str| path.split("::").map(str::to_string).collect::<Module>();
    // The evaluator sits under both the checks and elaboration.
    assert!(deps[&module("module")].contains(&module("elaborate")));
    assert!(deps[&module("elaborate")].contains(&module("eval")));
    assert!(deps[&module("layers::conv")].contains(&module("layers::args")));
    assert!(deps[&module("layers")].contains(&module("layers::conv")));
    assert_no_circle(&deps);
}

#[test]
fn top_level_modules_import_no_circle() {
    let mut top: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (m, deps) in imports(&src()) {
        let outer = m[..1].to_vec();
        let named = top.entry(outer.clone()).or_default();
        named.extend(
            deps.into_iter()
                .map(|d| d[..1].to_vec())
                .filter(|d| *d != outer),
        );
    }
    assert!(top.contains_key(&vec!["layers".to_string()]));
    assert_no_circle(&top);
}
