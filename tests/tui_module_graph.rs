//! The TUI's module graph has no cycles: every file under `src/tui` is read, the `src/tui`
//! modules it names (`use super::x`, `use crate::tui::x::{..}`, `crate::tui::x::` and
//! `super::x::` paths in code, and a file's own `mod x;` children by name: `x::f()`) become
//! edges, and a cycle fails the test naming its modules as `a -> b -> c -> a`.
//!
//! Nodes are files: `src/tui/app.rs` is `app`, `src/tui/ui/list.rs` is `ui::list`, a
//! folder's `mod.rs` is the folder (`ui`), `src/tui/mod.rs` is `tui`; a path names the
//! longest node it starts with (`ui::layout::Column` is `ui::layout`). A file naming a module
//! that contains it (`ui::list` using a helper of `ui`, anything naming `crate::tui`) is not
//! an edge: a folder declares and uses its files, and they may use what it shares. So a
//! feature folder can hold its state and its handlers in separate files, and the rule is that
//! no file reaches, through others, back to itself. `#[cfg(test)]` items are left out: a
//! file's tests may use whatever they need, they are not part of the layering. Comments,
//! strings and char literals are skipped, so doc links do not count.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One lexical token: an identifier or keyword, `::`, or a single punctuation character.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    PathSep,
    Punct(char),
}

/// Splits Rust source into tokens, dropping comments, string, byte-string, raw-string and
/// char literals, lifetimes and numbers.
fn tokenize(source: &str) -> Vec<Token> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == '"' {
            i = skip_string(&chars, i + 1);
        } else if (c == 'r' || c == 'b') && raw_string_start(&chars, i).is_some() {
            let (hashes, body) = raw_string_start(&chars, i).expect("checked above");
            i = skip_raw_string(&chars, body, hashes);
        } else if c == 'b' && next == Some('"') {
            i = skip_string(&chars, i + 2);
        } else if c == 'b' && next == Some('\'') {
            i = skip_char_or_lifetime(&chars, i + 1);
        } else if c == '\'' {
            i = skip_char_or_lifetime(&chars, i);
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push(Token::Ident(chars[start..i].iter().collect()));
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
        } else if c == ':' && next == Some(':') {
            tokens.push(Token::PathSep);
            i += 2;
        } else {
            tokens.push(Token::Punct(c));
            i += 1;
        }
    }
    tokens
}

/// Index after the closing quote of a string whose body starts at `i`.
fn skip_string(chars: &[char], mut i: usize) -> usize {
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            _ => i += 1,
        }
    }
    i
}

/// For `r"`, `r#"`, `br"`...: the number of `#` and the index of the body's first char.
fn raw_string_start(chars: &[char], i: usize) -> Option<(usize, usize)> {
    let mut j = i;
    if chars.get(j) == Some(&'b') {
        j += 1;
    }
    if chars.get(j) != Some(&'r') {
        return None;
    }
    if i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_') {
        return None;
    }
    j += 1;
    let mut hashes = 0;
    while chars.get(j) == Some(&'#') {
        hashes += 1;
        j += 1;
    }
    (chars.get(j) == Some(&'"')).then_some((hashes, j + 1))
}

/// Index after a raw string's closing quote and `hashes` hashes.
fn skip_raw_string(chars: &[char], mut i: usize, hashes: usize) -> usize {
    while i < chars.len() {
        if chars[i] == '"' && (1..=hashes).all(|k| chars.get(i + k) == Some(&'#')) {
            return i + 1 + hashes;
        }
        i += 1;
    }
    i
}

/// `i` is at a `'`: skips a char literal (`'x'`, `'\n'`, `'\u{..}'`) or a lifetime (`'a`).
fn skip_char_or_lifetime(chars: &[char], i: usize) -> usize {
    if chars.get(i + 1) == Some(&'\\') {
        let mut j = i + 2;
        while j < chars.len() && chars[j] != '\'' {
            j += 1;
        }
        return j + 1;
    }
    if chars.get(i + 2) == Some(&'\'') {
        return i + 3;
    }
    // A lifetime: the identifier after it is not a path, skip it too.
    let mut j = i + 1;
    while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
        j += 1;
    }
    j
}

/// Drops every `#[cfg(test)]` item (a `mod tests { .. }` or any other braced item).
fn without_test_items(tokens: &[Token]) -> Vec<Token> {
    let cfg_test = [
        Token::Punct('#'),
        Token::Punct('['),
        Token::Ident("cfg".into()),
        Token::Punct('('),
        Token::Ident("test".into()),
        Token::Punct(')'),
        Token::Punct(']'),
    ];
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if tokens[i..].starts_with(&cfg_test) {
            let mut j = i + cfg_test.len();
            // The item ends at its first `;` before any brace, or at its closing brace.
            while j < tokens.len()
                && tokens[j] != Token::Punct('{')
                && tokens[j] != Token::Punct(';')
            {
                j += 1;
            }
            if tokens.get(j) == Some(&Token::Punct('{')) {
                let mut depth = 0;
                while j < tokens.len() {
                    match tokens[j] {
                        Token::Punct('{') => depth += 1,
                        Token::Punct('}') => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    j += 1;
                }
            }
            i = j + 1;
        } else {
            out.push(tokens[i].clone());
            i += 1;
        }
    }
    out
}

/// The module path (below `crate::tui`) of a file's own module and of its `super`.
struct FileModule {
    own: Vec<String>,
    parent: Option<Vec<String>>,
    /// The modules it declares with `mod name;` (outside `#[cfg(test)]`).
    children: BTreeSet<String>,
}

/// The names a token stream declares with `mod name;`.
fn declared_children(tokens: &[Token]) -> BTreeSet<String> {
    tokens
        .windows(3)
        .filter_map(|w| match w {
            [Token::Ident(kw), Token::Ident(name), Token::Punct(';')] if kw == "mod" => {
                Some(name.clone())
            }
            _ => None,
        })
        .collect()
}

fn file_module(relative: &Path, tokens: &[Token]) -> FileModule {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    let is_mod = parts.last().is_some_and(|p| p == "mod");
    if is_mod {
        parts.pop();
    }
    let parent = if parts.is_empty() {
        None // src/tui/mod.rs: its super is the crate root.
    } else {
        Some(parts[..parts.len() - 1].to_vec())
    };
    FileModule {
        own: parts,
        parent,
        children: declared_children(tokens),
    }
}

/// Every full path (as module segments below `crate::tui`) that a token stream names through
/// `crate::tui::`, `super::` or `self::`, with `use` trees expanded.
fn named_paths(tokens: &[Token], module: &FileModule) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let is_use = tokens[i] == Token::Ident("use".into());
        let start = if is_use { i + 1 } else { i };
        // Skip a leading `::` (`use ::x`): never a tui path.
        let Some(Token::Ident(first)) = tokens.get(start) else {
            i += 1;
            continue;
        };
        let mut child = module.own.clone();
        child.insert(0, "tui".to_string());
        child.push(first.clone());
        let prefix: Option<Vec<String>> = match first.as_str() {
            "crate" => Some(Vec::new()),
            "super" => module.parent.clone().map(|p| {
                let mut v = vec!["tui".to_string()];
                v.extend(p);
                v
            }),
            "self" => Some({
                let mut v = vec!["tui".to_string()];
                v.extend(module.own.clone());
                v
            }),
            name if module.children.contains(name)
                && tokens.get(start + 1) == Some(&Token::PathSep) =>
            {
                Some(child)
            }
            _ => None,
        };
        // A path segment before us (`x::super`) means this is not the path's start.
        let continues = start > 0 && tokens[start - 1] == Token::PathSep;
        let Some(prefix) = prefix.filter(|_| !continues) else {
            i += 1;
            continue;
        };
        let mut out = Vec::new();
        let end = if is_use {
            use_tree(tokens, start + 1, prefix, &mut out)
        } else {
            let (path, end) = plain_path(tokens, start + 1, prefix);
            out.push(path);
            end
        };
        for path in out {
            // Paths from `crate::` must go through `tui`; `super`/`self` paths already do.
            if path.first().is_some_and(|p| p == "tui") {
                paths.push(path[1..].to_vec());
            }
        }
        i = end.max(i + 1);
    }
    paths
}

/// Reads `::a::b::c` from `i`; returns the segments appended to `prefix` and the end index.
fn plain_path(tokens: &[Token], mut i: usize, mut prefix: Vec<String>) -> (Vec<String>, usize) {
    while tokens.get(i) == Some(&Token::PathSep) {
        match tokens.get(i + 1) {
            Some(Token::Ident(name)) if name == "super" => {
                prefix.pop();
                i += 2;
            }
            Some(Token::Ident(name)) => {
                prefix.push(name.clone());
                i += 2;
            }
            _ => break,
        }
    }
    (prefix, i)
}

/// Reads the rest of a use tree (`::a::{b, c::d}`, `::*`, `::x as y`) from `i`, pushing each
/// leaf path; returns the index after the tree.
fn use_tree(tokens: &[Token], i: usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    let (path, mut i) = plain_path(tokens, i, prefix);
    if tokens.get(i) == Some(&Token::PathSep) && tokens.get(i + 1) == Some(&Token::Punct('{')) {
        i += 2;
        loop {
            match tokens.get(i) {
                Some(Token::Punct('}')) => return i + 1,
                Some(Token::Punct(',')) => i += 1,
                Some(Token::Ident(name)) if name == "self" => {
                    out.push(path.clone());
                    i += 1;
                }
                Some(Token::Ident(name)) => {
                    let mut inner = path.clone();
                    inner.push(name.clone());
                    i = use_tree(tokens, i + 1, inner, out);
                }
                Some(Token::Punct('*')) => {
                    out.push(path.clone());
                    i += 1;
                }
                Some(_) => i += 1,
                None => return i,
            }
        }
    }
    if tokens.get(i) == Some(&Token::PathSep) && tokens.get(i + 1) == Some(&Token::Punct('*')) {
        i += 2;
    }
    out.push(path);
    i
}

/// A file's node name: its module path below `crate::tui` (`ui::list`), `tui` for the root.
fn node_name(own: &[String]) -> String {
    if own.is_empty() {
        "tui".to_string()
    } else {
        own.join("::")
    }
}

/// The node a path names: its longest prefix that is a file's module, else the root (an item
/// of `src/tui/mod.rs` such as `crate::tui::TuiOptions`).
fn node_of(path: &[String], nodes: &BTreeSet<String>) -> String {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|name| nodes.contains(name))
        .unwrap_or_else(|| "tui".to_string())
}

/// Whether `to` is a module that contains `from` (its parent, or further up).
fn is_ancestor(to: &str, from: &str) -> bool {
    to == "tui" || from.starts_with(&format!("{to}::"))
}

/// Module graph: node name to the nodes it refers to (no self edges).
type Graph = BTreeMap<String, BTreeSet<String>>;

/// Builds the graph of the given files (path below `src/tui`, source text).
fn module_graph(files: &[(PathBuf, String)]) -> Graph {
    let parsed: Vec<(FileModule, Vec<Token>)> = files
        .iter()
        .map(|(path, source)| {
            let tokens = without_test_items(&tokenize(source));
            (file_module(path, &tokens), tokens)
        })
        .collect();
    let nodes: BTreeSet<String> = parsed.iter().map(|(m, _)| node_name(&m.own)).collect();
    let mut graph = Graph::new();
    for (module, tokens) in &parsed {
        let from = node_name(&module.own);
        let edges = graph.entry(from.clone()).or_default();
        for path in named_paths(tokens, module) {
            if path.is_empty() {
                continue; // `pub(super)`, `super::*`: a visibility or glob, not a module.
            }
            let to = node_of(&path, &nodes);
            if to != from && !is_ancestor(&to, &from) {
                edges.insert(to);
            }
        }
    }
    graph
}

/// Strongly connected components with more than one node (Tarjan's algorithm).
fn cyclic_components(graph: &Graph) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        let graph = s.graph;
        for w in graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.out.push(component);
            }
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !state.index.contains_key(v.as_str()) {
            visit(&mut state, v);
        }
    }
    state.out
}

/// A shortest cycle through `start` inside `component`, as `a -> b -> a`.
fn cycle_through(graph: &Graph, component: &[String], start: &str) -> String {
    let inside: BTreeSet<&str> = component.iter().map(String::as_str).collect();
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for w in graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if w == start {
                let mut path = vec![start, v];
                let mut at = v;
                while at != start {
                    at = came_from[at];
                    path.push(at);
                }
                path.reverse();
                return path.join(" -> ");
            }
            if inside.contains(w) && !came_from.contains_key(w) {
                came_from.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    unreachable!("a strongly connected component has a cycle through each node")
}

/// One line per cyclic component: its shortest cycle through each member that adds edges.
fn describe_cycles(graph: &Graph) -> Vec<String> {
    let mut lines = Vec::new();
    for component in cyclic_components(graph) {
        let mut seen = BTreeSet::new();
        lines.push(format!("component: {}", component.join(", ")));
        for node in &component {
            let cycle = cycle_through(graph, &component, node);
            // `a -> b -> a` and `b -> a -> b` are one cycle: key it by its sorted members.
            let mut members: Vec<&str> = cycle.split(" -> ").collect();
            members.pop();
            members.sort();
            if seen.insert(members.join(",")) {
                lines.push(format!("  {cycle}"));
            }
        }
        lines.push("  its edges:".to_string());
        for node in &component {
            let inside: Vec<&str> = graph[node]
                .iter()
                .filter(|to| component.contains(to))
                .map(String::as_str)
                .collect();
            lines.push(format!("    {node} -> {}", inside.join(", ")));
        }
    }
    lines
}

fn rust_files(dir: &Path, root: &Path, out: &mut Vec<(PathBuf, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read src/tui")
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let source = std::fs::read_to_string(&path).expect("read a tui source file");
            let relative = path
                .strip_prefix(root)
                .expect("below src/tui")
                .to_path_buf();
            out.push((relative, source));
        }
    }
}

#[test]
fn tui_modules_form_no_import_cycle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/tui");
    let mut files = Vec::new();
    rust_files(&root, &root, &mut files);
    assert!(
        files.len() > 20,
        "found only {} files in src/tui",
        files.len()
    );
    let graph = module_graph(&files);
    // The graph is not empty: the reader does see the app's imports.
    assert!(
        graph["update"].contains("app"),
        "update -> app not seen: {graph:?}"
    );
    let cycles = describe_cycles(&graph);
    assert!(
        cycles.is_empty(),
        "src/tui has import cycles (move the shared types into a module both sides use):\n{}",
        cycles.join("\n")
    );
}

fn synthetic(files: &[(&str, &str)]) -> Graph {
    let files: Vec<(PathBuf, String)> = files
        .iter()
        .map(|(p, s)| (PathBuf::from(p), s.to_string()))
        .collect();
    module_graph(&files)
}

#[test]
fn a_ring_of_imports_is_reported_as_a_cycle() {
    let graph = synthetic(&[
        ("a.rs", "use super::b::Thing;"),
        ("b.rs", "use crate::tui::{c::{self, Other}, d};"),
        ("c.rs", "fn f() { super::a::go(); }"),
        ("d.rs", ""),
    ]);
    let lines = describe_cycles(&graph);
    assert_eq!(lines[..2], ["component: a, b, c", "  a -> b -> c -> a"]);
}

#[test]
fn test_modules_comments_and_strings_do_not_count() {
    let graph = synthetic(&[
        ("a.rs", "use super::b::X;"),
        (
            "b.rs",
            "// super::a::x\n/// [`super::a`]\nconst S: &str = \"super::a::x\";\n\
             const R: &str = r#\"crate::tui::a\"#;\nfn f<'a>(_: &'a str) -> char { 'a' }\n\
             #[cfg(test)]\nmod tests { use super::*; use crate::tui::a::Y; }",
        ),
    ]);
    assert!(describe_cycles(&graph).is_empty(), "{graph:?}");
    assert_eq!(graph["b"], BTreeSet::new());
}

#[test]
fn a_file_naming_its_folder_is_no_edge_but_siblings_are() {
    let graph = synthetic(&[
        (
            "ui/mod.rs",
            "use super::app::App; mod list; fn f() { list::g(); }",
        ),
        (
            "ui/list.rs",
            "use super::layout; fn f() { super::mod_fn(); }",
        ),
        ("ui/layout.rs", "use crate::tui::ui::list::Row;"),
        ("app.rs", "use crate::tui::ui::layout::Column;"),
    ]);
    assert_eq!(
        graph["ui"],
        BTreeSet::from(["app".to_string(), "ui::list".to_string()])
    );
    assert_eq!(
        graph["ui::list"],
        BTreeSet::from(["ui::layout".to_string()])
    );
    assert_eq!(graph["app"], BTreeSet::from(["ui::layout".to_string()]));
    assert_eq!(
        describe_cycles(&graph)[..2],
        [
            "component: ui::layout, ui::list",
            "  ui::layout -> ui::list -> ui::layout"
        ]
    );
}

#[test]
fn the_root_names_its_children_and_they_may_name_the_root() {
    let graph = synthetic(&[
        (
            "mod.rs",
            "pub mod app; mod keymap; pub use app::App;\nfn f() { keymap::load(); }",
        ),
        ("app.rs", "fn f(o: crate::tui::TuiOptions) {}"),
        ("keymap.rs", ""),
    ]);
    assert_eq!(
        graph["tui"],
        BTreeSet::from(["app".to_string(), "keymap".to_string()])
    );
    assert_eq!(graph["app"], BTreeSet::new());
}
