//! The layering rules of this crate, checked on its source (see lib.rs and docs/architecture.md):
//! a top-level module imports only modules below it in [`LAYERS`], and sibling modules anywhere
//! in the tree never import each other in a cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules from the bottom up; each may use only the ones before it.
const LAYERS: [&str; 13] = [
    "sync", "model", "http_get", "events", "spec", "platform", "engine", "analysis", "strategy",
    "rollout", "check", "commands", "cli",
];

/// A module path inside the crate, e.g. `["platform", "local", "routers"]`.
type ModulePath = Vec<String>;

struct Source {
    module: ModulePath,
    file: PathBuf,
    text: String,
}

fn sources(dir: &Path, module: &ModulePath, out: &mut Vec<Source>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read src")
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        if path.is_dir() {
            let mut child = module.clone();
            child.push(name);
            sources(&path, &child, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let mut file_module = module.clone();
            if name != "mod" && !(module.is_empty() && (name == "lib" || name == "main")) {
                file_module.push(name);
            }
            let text = std::fs::read_to_string(&path).expect("read source");
            out.push(Source {
                module: file_module,
                file: path,
                text: without_comments(&text),
            });
        }
    }
}

/// The code without `//` comments (doc comments name modules freely).
fn without_comments(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `crate::a::b`, `super::a`, `self::a` and `child::a` path in `source`, resolved to the
/// deepest module that exists.
fn imports(source: &Source, modules: &BTreeSet<ModulePath>) -> Vec<ModulePath> {
    let text = &source.text;
    let parent: ModulePath = source.module[..source.module.len().saturating_sub(1)].to_vec();
    let mut found = Vec::new();
    let bytes = text.as_bytes();
    let mut index = 0;
    while index < text.len() {
        let rest = &text[index..];
        let starts_word = index == 0
            || !(bytes[index - 1].is_ascii_alphanumeric()
                || bytes[index - 1] == b'_'
                || bytes[index - 1] == b':');
        if !starts_word {
            index += rest.chars().next().map_or(1, char::len_utf8);
            continue;
        }
        let path_text: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        let parts: Vec<&str> = path_text.split("::").filter(|p| !p.is_empty()).collect();
        if parts.len() >= 2 {
            let base = match parts[0] {
                "crate" => Some((Vec::new(), &parts[1..])),
                "super" => Some((parent.clone(), &parts[1..])),
                "self" => Some((source.module.clone(), &parts[1..])),
                child => {
                    let mut candidate = source.module.clone();
                    candidate.push(child.to_string());
                    modules
                        .contains(&candidate)
                        .then(|| (source.module.clone(), &parts[..]))
                }
            };
            if let Some((mut path, tail)) = base {
                for part in tail {
                    let mut deeper = path.clone();
                    deeper.push(part.to_string());
                    if !modules.contains(&deeper) {
                        break;
                    }
                    path = deeper;
                }
                if !path.is_empty() {
                    found.push(path);
                }
            }
        }
        index += if path_text.is_empty() {
            rest.chars().next().map_or(1, char::len_utf8)
        } else {
            path_text.len()
        };
    }
    found
}

fn crate_sources() -> (Vec<Source>, BTreeSet<ModulePath>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    sources(&src, &Vec::new(), &mut all);
    let modules = all.iter().map(|s| s.module.clone()).collect();
    (all, modules)
}

#[test]
fn layers_depend_downward_only() {
    let (sources, modules) = crate_sources();
    let rank = |name: &str| LAYERS.iter().position(|layer| *layer == name);
    let mut wrong = Vec::new();
    for source in sources.iter().filter(|s| !s.module.is_empty()) {
        let own = &source.module[0];
        if own == "architecture" {
            continue;
        }
        let own_rank = rank(own).unwrap_or_else(|| panic!("{own} is not in LAYERS"));
        assert!(
            !source.text.contains("crate::{"),
            "{}: import each module on its own line (`use crate::a::...`), not `crate::{{...}}`",
            source.file.display()
        );
        for target in imports(source, &modules) {
            let other = &target[0];
            if other == own {
                continue;
            }
            match rank(other) {
                Some(other_rank) if other_rank < own_rank => {}
                _ => wrong.push(format!(
                    "{} ({own}) uses {} ({other}), which is not below it",
                    source.file.display(),
                    target.join("::")
                )),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn sibling_modules_have_no_import_cycle() {
    let (sources, modules) = crate_sources();
    // Per parent module: which of its children uses which.
    let mut graphs: BTreeMap<ModulePath, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for source in &sources {
        for target in imports(source, &modules) {
            let common = source
                .module
                .iter()
                .zip(&target)
                .take_while(|(a, b)| a == b)
                .count();
            let (Some(from), Some(to)) = (source.module.get(common), target.get(common)) else {
                continue; // an ancestor or a descendant: not a sibling
            };
            graphs
                .entry(source.module[..common].to_vec())
                .or_default()
                .entry(from.clone())
                .or_default()
                .insert(to.clone());
        }
    }
    for (parent, graph) in &graphs {
        // Depth-first search for a back edge.
        fn visit(
            node: &str,
            graph: &BTreeMap<String, BTreeSet<String>>,
            stack: &mut Vec<String>,
            done: &mut BTreeSet<String>,
        ) -> Option<Vec<String>> {
            if let Some(at) = stack.iter().position(|n| n == node) {
                let mut cycle = stack[at..].to_vec();
                cycle.push(node.to_string());
                return Some(cycle);
            }
            if !done.insert(node.to_string()) {
                return None;
            }
            stack.push(node.to_string());
            for next in graph.get(node).into_iter().flatten() {
                if let Some(cycle) = visit(next, graph, stack, done) {
                    return Some(cycle);
                }
            }
            stack.pop();
            None
        }
        let mut done = BTreeSet::new();
        for node in graph.keys() {
            if let Some(cycle) = visit(node, graph, &mut Vec::new(), &mut done) {
                panic!(
                    "import cycle among the modules of crate::{}: {}",
                    parent.join("::"),
                    cycle.join(" → ")
                );
            }
        }
    }
}
