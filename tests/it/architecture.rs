//! The shape of the code, checked: the harness's modules, and those of the
//! binary's library, depend on each other without a circle
//! (docs/design/architecture.md draws them in layers; a circle is where a
//! refactoring stops being local). The product crate's modules still
//! import each other in a circle; untangling them is the product crate's
//! own work.
//!
//! A module depends on another when its code (not a comment, not its
//! tests) names a path `crate::a::b…`; the longest prefix that is a module
//! of the crate is the one depended on; `super::` and `self::` paths are
//! read from where they stand. A module holds its children: declaring or
//! naming them (`mod x;`, `pub use self::x::…`) is not a dependency, but a
//! child naming its parent's items is.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Every module of the crate under `src`: its path (`sim::extent::guest`)
/// and its code without comment lines and without its `#[cfg(test)] mod
/// tests`.
fn modules(src: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
                continue;
            }
            if p.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let rel = p.strip_prefix(src).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
                parts.pop();
            }
            let text = std::fs::read_to_string(&p).unwrap();
            let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
            let code: String = code
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            out.insert(parts.join("::"), code);
        }
    }
    out
}

/// A path as its code spells it (`crate::a::b`, `super::x`,
/// `self::y`, `super::super::z`) from module `m`, as a path from the
/// crate's root; `None` for any other path.
fn absolute(m: &str, spelled: &str) -> Option<Vec<String>> {
    let mut segs: Vec<&str> = spelled.split("::").filter(|s| !s.is_empty()).collect();
    let mut base: Vec<String> = match segs.first().copied() {
        Some("crate") => {
            segs.remove(0);
            Vec::new()
        }
        Some("self") => {
            segs.remove(0);
            m.split("::")
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        }
        Some("super") => {
            let mut base: Vec<String> = m
                .split("::")
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            while segs.first() == Some(&"super") {
                segs.remove(0);
                base.pop();
            }
            base
        }
        _ => return None,
    };
    base.extend(segs.into_iter().map(String::from));
    Some(base)
}

/// What each module depends on, by the `crate::`, `super::` and `self::`
/// paths its code names.
fn dependencies(mods: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let mut deps = BTreeMap::new();
    for (m, code) in mods {
        let mut set = BTreeSet::new();
        let starts = ["crate::", "super::", "self::"].into_iter().flat_map(|p| {
            code.match_indices(p)
                .filter(|&(i, _)| {
                    // A whole word: not the tail of `foo_crate::` or `super::super::`.
                    i == 0
                        || !code[..i]
                            .chars()
                            .next_back()
                            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
                })
                .map(|(i, _)| i)
        });
        for i in starts {
            let path: String = code[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let Some(segs) = absolute(m, &path) else {
                continue;
            };
            let target = (0..=segs.len())
                .rev()
                .map(|n| segs[..n].join("::"))
                .find(|t| mods.contains_key(t));
            // A module holds its own children: naming them (a facade's
            // `pub use self::child::…`) is not a dependency.
            if let Some(t) = target
                && &t != m
                && !t.starts_with(&format!("{m}::"))
                && (!m.is_empty() || t.is_empty())
            {
                set.insert(t);
            }
        }
        deps.insert(m.clone(), set);
    }
    deps
}

/// A circle of dependencies, if there is one.
fn circle(deps: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        m: &str,
        deps: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == m) {
            let mut c = path[i..].to_vec();
            c.push(m.to_string());
            return Some(c);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_string());
        for d in &deps[m] {
            if let Some(c) = visit(d, deps, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = BTreeSet::new();
    deps.keys()
        .find_map(|m| visit(m, deps, &mut Vec::new(), &mut done))
}

#[test]
fn the_harness_modules_depend_on_each_other_without_a_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/migsim-harness/src");
    let mods = modules(&src);
    assert!(mods.len() > 40, "found only {} modules", mods.len());
    let deps = dependencies(&mods);
    // The checker sees dependencies at all: the byte-level run uses the
    // shared pipeline, the extent mode the pass loop.
    assert!(deps["run"].contains("pipeline::setup"));
    assert!(deps["sim::extent::precopy"].contains("sim::precopy"));
    if let Some(c) = circle(&deps) {
        panic!(
            "the harness's modules depend on each other in a circle: {}",
            c.join(" -> ")
        );
    }
}

#[test]
fn the_binary_library_modules_depend_on_each_other_without_a_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mods = modules(&src);
    let deps = dependencies(&mods);
    assert!(deps["fuzz_cli::argv"].contains("fuzz_cli::model"));
    if let Some(c) = circle(&deps) {
        panic!(
            "the binary's library modules depend on each other in a circle: {}",
            c.join(" -> ")
        );
    }
}

#[test]
fn the_circle_check_finds_a_circle() {
    let deps: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec![]),
    ]
    .into_iter()
    .map(|(m, d)| (m.to_string(), d.into_iter().map(String::from).collect()))
    .collect();
    let c = circle(&deps).expect("a -> b -> c -> a");
    assert_eq!(c, ["a", "b", "c", "a"]);
    let mut acyclic = deps.clone();
    acyclic.get_mut("c").unwrap().clear();
    assert_eq!(circle(&acyclic), None);
}
