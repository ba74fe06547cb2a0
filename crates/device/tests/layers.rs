//! The device crate's layers, as ARCHITECTURE.md lists them: a module may import only core and the modules below it, so no two modules import each other.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Bottom to top; within a layer, a module may import those listed before it.
const LAYERS: &[&[&str]] = &[
    &[
        "names",
        "language",
        "order",
        "reason",
        "audio",
        "payee",
        "history_key",
        "identity",
    ],
    &["wake", "asr", "intent"],
    &["store"],
    &[
        "payees",
        "agents",
        "outbox",
        "phrasebook",
        "feedback",
        "effect",
    ],
    &["profile", "desk", "outlet"],
    &["dialog", "recognizer", "service", "payments"],
    &["control"],
    &["daemon"],
];

fn rank(module: &str) -> Option<(usize, usize)> {
    LAYERS.iter().enumerate().find_map(|(layer, modules)| {
        modules
            .iter()
            .position(|m| *m == module)
            .map(|place| (layer, place))
    })
}

fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The `crate::NAME` paths of a file's code: comments and the test module left out.
fn imports(text: &str) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    let mut found = BTreeSet::new();
    for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
        for (at, _) in line.match_indices("crate::") {
            let name: String = line[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

#[test]
fn every_device_module_imports_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut broken = Vec::new();
    for file in files {
        let relative = file.strip_prefix(&src).expect("under src");
        let module = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .map(|m| m.trim_end_matches(".rs").to_owned())
            .expect("a module");
        if module == "lib" || relative.ends_with("tests.rs") {
            continue;
        }
        let Some(own) = rank(&module) else {
            broken.push(format!(
                "{module} is in no layer: add it to LAYERS and ARCHITECTURE.md"
            ));
            continue;
        };
        let text = std::fs::read_to_string(&file).expect("read");
        for import in imports(&text) {
            if import == module {
                continue;
            }
            match rank(&import) {
                Some(theirs) if theirs < own => {}
                Some(_) => broken.push(format!(
                    "{} imports {import}, which is not below {module}",
                    relative.display()
                )),
                None => broken.push(format!(
                    "{} imports {import}, which is in no layer",
                    relative.display()
                )),
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}
