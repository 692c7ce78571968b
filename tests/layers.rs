//! The layers hold: no import cycle between the top-level modules of any
//! workspace crate, and the crates depend on each other only downwards
//! (docs/architecture.md). `cargo test --test layers`; no build of the
//! crates themselves is needed, it reads their sources and manifests.
//!
//! Modules: every `crate::NAME` path (in `use` lines, groups such as
//! `use crate::{a, b::c}`, and inline paths), and every `super::` path that
//! climbs to the crate root (from a top-level module, or from an inline
//! `mod` inside one that climbs past it), is an edge from the file's
//! top-level module to module NAME. Comments and string literals are left
//! out. Crates: the `[dependencies]` of each member's Cargo.toml
//! (dev-dependencies may reach further up, for test fixtures).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Where an edge was seen: file and line.
type Evidence = (PathBuf, usize);
/// Per top-level module, the modules it references and where.
type Graph = BTreeMap<String, BTreeMap<String, Evidence>>;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The workspace members, as the root manifest lists them.
fn members() -> Vec<PathBuf> {
    let text = std::fs::read_to_string(root().join("Cargo.toml")).expect("root Cargo.toml");
    let doc: toml::Table = text.parse().expect("root Cargo.toml parses");
    doc["workspace"]["members"]
        .as_array()
        .expect("workspace.members")
        .iter()
        .map(|m| root().join(m.as_str().expect("a member is a path")))
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The source with comments, strings and character literals blanked (same
/// length, newlines kept), so that positions still give line numbers.
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = b.to_vec();
    let blank = |out: &mut Vec<u8>, from: usize, to: usize| {
        for c in &mut out[from..to] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
    };
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                let end = b[i..]
                    .iter()
                    .position(|&c| c == b'\n')
                    .map_or(b.len(), |n| i + n);
                blank(&mut out, i, end);
                i = end;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let (mut depth, mut j) = (1, i + 2);
                while j < b.len() && depth > 0 {
                    if b[j] == b'/' && b.get(j + 1) == Some(&b'*') {
                        depth += 1;
                        j += 2;
                    } else if b[j] == b'*' && b.get(j + 1) == Some(&b'/') {
                        depth -= 1;
                        j += 2;
                    } else {
                        j += 1;
                    }
                }
                blank(&mut out, i, j);
                i = j;
            }
            b'r' if matches!(b.get(i + 1), Some(b'"' | b'#'))
                && (i == 0 || !is_ident(b[i - 1])) =>
            {
                // r"..." or r#"..."#
                let hashes = b[i + 1..].iter().take_while(|&&c| c == b'#').count();
                if b.get(i + 1 + hashes) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let close: Vec<u8> = std::iter::once(b'"')
                    .chain(std::iter::repeat_n(b'#', hashes))
                    .collect();
                let start = i + 2 + hashes;
                let end = b[start..]
                    .windows(close.len())
                    .position(|w| w == close.as_slice())
                    .map_or(b.len(), |n| start + n + close.len());
                blank(&mut out, i, end);
                i = end;
            }
            b'"' => {
                let mut j = i + 1;
                while j < b.len() && b[j] != b'"' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                let end = (j + 1).min(b.len());
                blank(&mut out, i, end);
                i = end;
            }
            b'\'' => {
                // A char literal ('x', '\n', '\u{..}'), not a lifetime ('a).
                let end = if b.get(i + 1) == Some(&b'\\') {
                    b[i + 2..]
                        .iter()
                        .position(|&c| c == b'\'')
                        .map(|n| i + 3 + n)
                } else if b.get(i + 2) == Some(&b'\'') {
                    Some(i + 3)
                } else {
                    // A multi-byte character: find the quote within 5 bytes.
                    b[i + 1..b.len().min(i + 6)]
                        .iter()
                        .position(|&c| c == b'\'')
                        .filter(|&n| n > 1 && !b[i + 1].is_ascii())
                        .map(|n| i + 2 + n)
                };
                match end {
                    Some(end) => {
                        blank(&mut out, i, end);
                        i = end;
                    }
                    None => i += 1,
                }
            }
            _ => i += 1,
        }
    }
    String::from_utf8(out).expect("blanking keeps UTF-8 only when it replaces whole characters")
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

fn ident_at(s: &str, at: usize) -> Option<&str> {
    let b = s.as_bytes();
    let mut i = at;
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    let start = i;
    while i < b.len() && is_ident(b[i]) {
        i += 1;
    }
    (i > start).then(|| &s[start..i])
}

/// The first names of a `{a, b::c, d::{e}}` group starting at `at` (the `{`).
fn group_heads(s: &str, at: usize) -> Vec<&str> {
    let b = s.as_bytes();
    let (mut depth, mut i, mut heads) = (0, at, Vec::new());
    let mut expect = true;
    while i < b.len() {
        match b[i] {
            b'{' => {
                depth += 1;
                expect = depth == 1;
            }
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            b',' if depth == 1 => expect = true,
            c if expect && depth == 1 && is_ident(c) => {
                if let Some(name) = ident_at(s, i) {
                    heads.push(name);
                    i += name.len();
                    expect = false;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    heads
}

/// The module path of a file inside `src/`: `report/mod.rs` -> [report],
/// `report/chart.rs` -> [report, chart], `lib.rs` -> [].
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).expect("a file under src");
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The top-level modules each file of `src` references.
fn module_graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let tops: BTreeSet<String> = files
        .iter()
        .filter_map(|f| module_path(src, f).into_iter().next())
        .collect();
    let mut graph = Graph::new();
    for file in &files {
        let path = module_path(src, file);
        let Some(top) = path.first().cloned() else {
            continue; // the crate root declares modules; it is not one
        };
        let text = std::fs::read_to_string(file).expect("a source file");
        let code = code_only(&text);
        let line_of = |at: usize| code[..at].matches('\n').count() + 1;
        let mut edge = |to: &str, at: usize| {
            if tops.contains(to) && to != top {
                graph
                    .entry(top.clone())
                    .or_default()
                    .entry(to.to_string())
                    .or_insert_with(|| (file.clone(), line_of(at)));
            }
        };
        // Inline `mod name {` blocks, by the brace depth they open at.
        let b = code.as_bytes();
        let mut inline: Vec<(usize, String)> = Vec::new();
        let mut depth = 0usize;
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'{' => depth += 1,
                b'}' => {
                    depth = depth.saturating_sub(1);
                    if inline.last().is_some_and(|(d, _)| *d == depth) {
                        inline.pop();
                    }
                }
                c if is_ident(c) && (i == 0 || !is_ident(b[i - 1])) => {
                    let word = ident_at(&code, i).expect("an identifier");
                    let after = i + word.len();
                    let rest = &code[after..];
                    if word == "mod" {
                        if let Some(name) = ident_at(&code, after) {
                            let name_end = after + rest.find(name).expect("found") + name.len();
                            if code[name_end..].trim_start().starts_with('{') {
                                inline.push((depth, name.to_string()));
                            }
                        }
                    } else if word == "crate" {
                        // `crate::` and a macro's `$crate::` alike.
                        if let Some(tail) = rest.strip_prefix("::") {
                            let at = after + 2;
                            if tail.trim_start().starts_with('{') {
                                let open = at + tail.find('{').expect("a group");
                                for head in group_heads(&code, open) {
                                    edge(head, i);
                                }
                            } else if let Some(name) = ident_at(&code, at) {
                                edge(name, i);
                            }
                        }
                    } else if word == "super" && rest.starts_with("::") {
                        // Climb from the module this position is in.
                        let mut here: Vec<String> = path.clone();
                        here.extend(inline.iter().map(|(_, n)| n.clone()));
                        let mut at = i;
                        while code[at..].starts_with("super::") {
                            here.pop();
                            at += "super::".len();
                            at += code[at..].len() - code[at..].trim_start().len();
                        }
                        match here.first() {
                            Some(first) => edge(&first.clone(), i),
                            None if code[at..].starts_with('{') => {
                                for head in group_heads(&code, at) {
                                    edge(head, i);
                                }
                            }
                            None => {
                                if let Some(name) = ident_at(&code, at) {
                                    edge(name, i);
                                }
                            }
                        }
                        i = at;
                        continue;
                    }
                    i = after;
                    continue;
                }
                _ => {}
            }
            i += 1;
        }
    }
    graph
}

/// A cycle through the graph, if there is one, as the modules in order.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        graph: &Graph,
        done: &mut BTreeSet<String>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|s| s == n) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.to_string());
        for next in graph.get(n).into_iter().flat_map(|e| e.keys()) {
            if let Some(c) = visit(next, graph, done, stack) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut done, &mut Vec::new()))
}

fn show(graph: &Graph) -> String {
    graph
        .iter()
        .map(|(from, to)| {
            let to: Vec<&str> = to.keys().map(String::as_str).collect();
            format!("  {from} -> {}", to.join(" "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn no_module_cycle_in_any_crate() {
    let mut failures = Vec::new();
    for member in members() {
        let graph = module_graph(&member.join("src"));
        let name = member
            .strip_prefix(root())
            .unwrap_or(&member)
            .display()
            .to_string();
        let name = if name.is_empty() {
            "volley (.)".into()
        } else {
            name
        };
        println!("{name}:\n{}", show(&graph));
        if let Some(cycle) = find_cycle(&graph) {
            let steps: Vec<String> = cycle
                .windows(2)
                .map(|w| {
                    let (file, line) = &graph[&w[0]][&w[1]];
                    let file = file.strip_prefix(root()).unwrap_or(file);
                    format!("  {} -> {}  ({}:{line})", w[0], w[1], file.display())
                })
                .collect();
            failures.push(format!(
                "{name}: modules in a cycle: {}\n{}",
                cycle.join(" -> "),
                steps.join("\n")
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

/// The volley crates each member depends on (normal dependencies).
fn crate_deps() -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for member in members() {
        let text = std::fs::read_to_string(member.join("Cargo.toml")).expect("a member manifest");
        let doc: toml::Table = text.parse().expect("a member manifest parses");
        let name = doc["package"]["name"]
            .as_str()
            .expect("package.name")
            .to_string();
        let deps: BTreeSet<String> = doc
            .get("dependencies")
            .and_then(|d| d.as_table())
            .into_iter()
            .flat_map(|t| t.keys())
            .filter(|k| k.starts_with("volley"))
            .cloned()
            .collect();
        out.insert(name, deps);
    }
    out
}

#[test]
fn crates_depend_only_downwards() {
    let deps = crate_deps();
    println!("{deps:#?}");
    let layers = [
        "volley-model",
        "volley-config",
        "volley-runtime",
        "volley-results",
    ];
    // (crate, what it may not depend on)
    let rules: &[(&str, &[&str])] = &[
        (
            "volley-protocols",
            &[
                "volley-model",
                "volley-config",
                "volley-runtime",
                "volley-results",
                "volley-serve",
                "volley-seed",
                "volley",
            ],
        ),
        (
            "volley-model",
            &[
                "volley-config",
                "volley-runtime",
                "volley-results",
                "volley-serve",
                "volley-seed",
                "volley",
            ],
        ),
        (
            "volley-config",
            &["volley-runtime", "volley-results", "volley-serve", "volley"],
        ),
        (
            "volley-runtime",
            &["volley-results", "volley-serve", "volley"],
        ),
        (
            "volley-results",
            &["volley-config", "volley-runtime", "volley-serve", "volley"],
        ),
        ("volley-serve", &layers),
        ("volley-seed", &layers),
    ];
    let mut wrong = Vec::new();
    for (krate, banned) in rules {
        let Some(has) = deps.get(*krate) else {
            wrong.push(format!("{krate} is not a workspace member"));
            continue;
        };
        for b in *banned {
            if has.contains(*b) {
                wrong.push(format!("{krate} depends on {b}"));
            }
        }
    }
    // Every layer crate is known to the rules, and the model stands on the protocols alone.
    assert_eq!(
        deps["volley-model"],
        BTreeSet::from(["volley-protocols".to_string()]),
        "volley-model depends on volley-protocols only"
    );
    assert!(wrong.is_empty(), "layers broken: {}", wrong.join("; "));
}

#[test]
fn the_reader_sees_paths_not_text() {
    let dir = std::env::temp_dir().join(format!("volley-layers-{}", std::process::id()));
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("b")).unwrap();
    let write = |p: &str, s: &str| std::fs::write(src.join(p), s).unwrap();
    write("lib.rs", "mod a; mod b; mod c; mod d;\n");
    // A comment and a string name `crate::c`; a group and an inline path name b and d.
    write(
        "a.rs",
        "// crate::c\nconst S: &str = \"crate::c\";\nuse crate::{b::x, d};\nfn f() { crate::b::y(); }\n",
    );
    // super:: from a nested file stays inside b; from an inline mod of b too.
    write(
        "b/mod.rs",
        "mod x;\nmod tests { use super::*; fn t() { super::super::c::z(); } }\n",
    );
    write("b/x.rs", "use super::y;\n");
    write("c.rs", "use super::d::w;\n");
    write("d.rs", "\n");
    let g = module_graph(&src);
    let edges = |m: &str| -> Vec<&str> {
        g.get(m)
            .map(|e| e.keys().map(String::as_str).collect())
            .unwrap_or_default()
    };
    assert_eq!(edges("a"), ["b", "d"]);
    assert_eq!(edges("b"), ["c"]);
    assert_eq!(edges("c"), ["d"]);
    assert!(find_cycle(&g).is_none());
    // d -> a closes a cycle (a -> b -> c -> d -> a, found first, and a -> d -> a).
    write("d.rs", "fn g() { crate::a::f(); }\n");
    let g = module_graph(&src);
    let cycle = find_cycle(&g).expect("a cycle");
    assert_eq!(cycle, ["a", "b", "c", "d", "a"]);
    std::fs::remove_dir_all(&dir).unwrap();
}
