//! Every name the prose of `docs/` puts in backticks still exists in the code, so a rename
//! cannot leave the tour pointing at nothing.
//!
//! The rule, for each inline code span (`` `...` ``) of every `.md` file under `docs/`,
//! outside ``` fences (fenced blocks are doctests or quoted output, checked elsewhere):
//!
//! - **Flag**: a span starting with `--` (`--beta2`, `--lr 0.01`). Its first word, without an
//!   `=value`, must be parsed somewhere: `Long("beta2")` or a `"--beta2"` literal in the
//!   sources of `examples/`, `src/` or `crates/lab/src/`, or a field of the optimizer options
//!   table (`crates/optim/src/options.rs`, where `weight_decay` is `--weight-decay`).
//! - **File**: a span without spaces that ends in a file extension or in `/`
//!   (`crates/optim/src/adam.rs`, `moments.rs`, `crates/autodiff/src/ops/*.rs`,
//!   `crates/layers/src/`). It must exist from the repository root or the `.md` file's folder,
//!   or be the end of some file's path (`ops/arith.rs`, `moments.rs`); a `*` matches any file
//!   name in its folder. (`1/n` has neither, so it is maths, not a file.)
//! - **Rust name**: after dropping a leading `&`, `&mut `, a trailing `!` (a macro) or a
//!   trailing argument list `(...)`, a span that is a Rust path: identifiers joined by `::`
//!   (`fused_update`, `Tape::push_op`, `adamant_lab::trace`, `options_table!`,
//!   `Hyper::decay_terms(decoupled)`); `#[derive(X)]` checks `X`. The last segment must occur as
//!   an identifier in the code of some `.rs` file (comments removed, string literals kept: the
//!   optimizer's saved buffer names such as `exp_avg` are strings). For `Type::member` the member
//!   must occur in the body of `Type` itself (`struct`, `enum`, `trait`) or of one of its
//!   `impl` blocks, or of a trait it implements. A lowercase first segment must be a crate of the
//!   workspace, a `mod`, or a file or folder of that name.
//! - **Anything else is not a name** and is skipped: spans with spaces or operators (math such
//!   as `m_t = beta1 m + ...`, shell commands, expressions like `loss.backward()`), numbers,
//!   and dotted expressions.
//!
//! Math symbols are written like Rust identifiers (`alpha`, `rho_t`); most of them are also
//! variables of the code. The few that are not are in [`ALLOWED`], each with its reason.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Backticked words that are not names in the code, with the reason each is allowed.
const ALLOWED: &[(&str, &str)] = &[
    // Symbols of the paper's formulas, written as in the paper, not variables of the code.
    ("zeta", "the paper's drift term of section 3"),
    ("psi", "PyTorch's name for NAdam's momentum decay, spelled `momentum_decay` in the code"),
    ("f_t", "Algorithm 1's stochastic objective at step t"),
    ("r_t", "RAdam's rectifier, `rect` in the code"),
    ("theta_0", "Algorithm 1's initial parameters"),
    ("v_max", "AMSGrad's maximum, `vmax` in the code"),
    ("v_t", "Algorithm 1's second moment at step t"),
    ("L", "a loss in the gradient check's Taylor expansion"),
    // Not part of the repository.
    ("grep", "the shell tool"),
    ("runs/quickstart/", "the folder the quickstart run writes"),
    // Command-line flags of other programs.
    ("--ignored", "cargo test's flag for ignored tests"),
    ("--release", "cargo's flag"),
    ("--doc", "cargo test's flag for doctests"),
];

/// One backticked span: its text and the line it starts on (1-based).
#[derive(Debug, PartialEq)]
struct Span {
    text: String,
    line: usize,
}

/// The inline code spans of a markdown text, outside ``` fences.
fn code_spans(markdown: &str) -> Vec<Span> {
    // Blank out fenced lines, keeping line breaks so line numbers stay right.
    let mut prose = String::with_capacity(markdown.len());
    let mut in_fence = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        } else if !in_fence {
            prose.push_str(line);
        }
        prose.push('\n');
    }
    let bytes = prose.as_bytes();
    let mut spans = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => line += 1,
            b'`' => {
                let run = bytes[i..].iter().take_while(|&&b| b == b'`').count();
                let fence = "`".repeat(run);
                if let Some(end) = prose[i + run..].find(&fence) {
                    let text = &prose[i + run..i + run + end];
                    // A span does not cross a blank line (a new paragraph).
                    if !text.contains("\n\n") {
                        spans.push(Span { text: text.trim().replace('\n', " "), line });
                        line += text.matches('\n').count();
                        i += run + end + run;
                        continue;
                    }
                }
                i += run;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    spans
}

/// What a span is, by the rule of the module's doc comment.
#[derive(Debug, PartialEq)]
enum Kind {
    Flag(String),
    File(String),
    Path(Vec<String>),
    NotAName,
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

const EXTENSIONS: &[&str] = &["rs", "md", "sh", "py", "toml", "csv", "svg", "json", "txt", "yml", "lock"];

fn classify(text: &str) -> Kind {
    if let Some(flag) = text.strip_prefix("--") {
        let word = flag.split([' ', '=']).next().unwrap_or("");
        return if !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            Kind::Flag(word.to_string())
        } else {
            Kind::NotAName
        };
    }
    if text.contains(' ') || text.is_empty() {
        // `&mut Param` is a type; anything else with a space is an expression or a command.
        return match text.strip_prefix("&mut ") {
            Some(rest) if !rest.contains(' ') => classify(rest),
            _ => Kind::NotAName,
        };
    }
    let ext = text.rsplit_once('.').map(|(_, e)| e);
    if text.ends_with('/') || ext.is_some_and(|e| EXTENSIONS.contains(&e)) {
        let plausible = text.chars().all(|c| c.is_ascii_alphanumeric() || "/._-*".contains(c));
        return if plausible && !text.starts_with("http") {
            Kind::File(text.to_string())
        } else {
            Kind::NotAName
        };
    }
    if let Some(inner) = text.strip_prefix("#[derive(").and_then(|t| t.strip_suffix(")]")) {
        return classify(inner);
    }
    let mut s = text.strip_prefix('&').unwrap_or(text);
    if let Some(open) = s.find('(') {
        if s.ends_with(')') {
            s = &s[..open];
        }
    }
    let s = s.strip_suffix('!').unwrap_or(s);
    let segments: Vec<&str> = s.split("::").collect();
    if segments.iter().all(|seg| is_ident(seg)) {
        Kind::Path(segments.into_iter().map(String::from).collect())
    } else {
        Kind::NotAName
    }
}

/// Rust source with comments removed (strings and everything else kept, line breaks kept).
fn strip_comments(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if b[i] == b'\n' {
                        out.push(b'\n');
                    }
                    i += 1;
                }
            }
        } else if b[i] == b'"' {
            // Copy a string literal whole, so that a `//` inside it is not a comment.
            out.push(b[i]);
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    out.push(b[i]);
                    i += 1;
                }
                out.push(b[i]);
                i += 1;
            }
            if i < b.len() {
                out.push(b[i]);
                i += 1;
            }
        } else if b[i] == b'\'' && b.get(i + 2) == Some(&b'\'') {
            // A char literal such as '{' or '"' (lifetimes have no closing quote there).
            i += 3;
            out.extend_from_slice(b"' '");
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn identifiers(code: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut start = None;
    let mut words = Vec::new();
    for (i, c) in code.char_indices().chain(std::iter::once((code.len(), ' '))) {
        let part = c.is_ascii_alphanumeric() || c == '_';
        match (part, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                words.push((s, &code[s..i]));
                start = None;
            }
            _ => {}
        }
    }
    words.into_iter()
}

/// What the checker knows about the repository.
struct Index {
    root: PathBuf,
    /// Every identifier of the code (comments removed).
    tokens: HashSet<String>,
    /// Names defined by `struct`, `enum`, `trait`, `type`, `union`, `mod`, `fn`, `const`,
    /// `static` or `macro_rules!`.
    definitions: HashSet<String>,
    /// For each type or trait name: the identifiers of its bodies and impl blocks.
    members: HashMap<String, HashSet<String>>,
    /// For each type: the traits implemented for it.
    traits_of: HashMap<String, HashSet<String>>,
    /// File and folder names anywhere in the repository.
    file_names: HashSet<String>,
    /// Paths of every file from the root, with `/` separators.
    paths: Vec<String>,
    /// Flags the programs parse, without the `--`.
    flags: HashSet<String>,
}

/// The end of the block whose `{` is at `open` (the index after the matching `}`).
fn block_end(code: &[u8], open: usize) -> usize {
    let mut depth = 0;
    let mut i = open;
    while i < code.len() {
        match code[i] {
            b'"' => {
                i += 1;
                while i < code.len() && code[i] != b'"' {
                    i += if code[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    code.len()
}

impl Index {
    fn new(root: &Path) -> Index {
        let mut index = Index {
            root: root.to_path_buf(),
            tokens: HashSet::new(),
            definitions: HashSet::new(),
            members: HashMap::new(),
            traits_of: HashMap::new(),
            file_names: HashSet::new(),
            paths: Vec::new(),
            flags: HashSet::new(),
        };
        let mut files = Vec::new();
        walk(root, &mut files);
        for path in &files {
            index.paths.push(path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/"));
            if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
                index.file_names.insert(name.to_string());
            }
            for dir in path.strip_prefix(root).unwrap().ancestors().skip(1) {
                if let Some(name) = dir.file_name().and_then(|n| n.to_str()) {
                    index.file_names.insert(name.to_string());
                }
            }
            // The checker's own examples of broken names must not count as uses.
            if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("tests/doc_names.rs") {
                let src = fs::read_to_string(path).unwrap_or_default();
                let rel = path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
                index.add_source(&rel, &strip_comments(&src));
            }
        }
        index
    }

    fn add_source(&mut self, rel: &str, code: &str) {
        let words: Vec<(usize, &str)> = identifiers(code).collect();
        for (k, &(_, w)) in words.iter().enumerate() {
            self.tokens.insert(w.to_string());
            let next = words.get(k + 1).map(|&(_, n)| n);
            if let Some(n) = next {
                let defines = ["struct", "enum", "trait", "type", "union", "mod", "fn", "const", "static"];
                if defines.contains(&w)
                    || (w == "macro_rules" && code[words[k].0..].starts_with("macro_rules!"))
                {
                    self.definitions.insert(n.to_string());
                }
            }
        }
        // Bodies of struct/enum/trait X { ... } and impl blocks.
        let bytes = code.as_bytes();
        for (k, &(pos, w)) in words.iter().enumerate() {
            let owner_trait = match w {
                "struct" | "enum" | "trait" | "union" => {
                    words.get(k + 1).map(|&(_, n)| (n.to_string(), None))
                }
                "impl" => {
                    // `impl<...> [Trait<...> for] Type<...> {`: the header up to the `{`.
                    let header_end = code[pos..].find(['{', ';']).map(|e| pos + e).unwrap_or(code.len());
                    let header = &code[pos + 4..header_end];
                    let (trait_part, type_part) = match header.split_once(" for ") {
                        Some((t, ty)) => (Some(t), ty),
                        None => (None, header),
                    };
                    let last_name = |s: &str| {
                        let s = s.split(" where ").next().unwrap_or(s);
                        // Drop generic arguments, then take the last path segment.
                        let mut depth = 0;
                        let plain: String = s
                            .chars()
                            .filter(|&c| {
                                match c {
                                    '<' => depth += 1,
                                    '>' => depth -= 1,
                                    _ => return depth == 0,
                                }
                                false
                            })
                            .collect();
                        identifiers(&plain).last().map(|(_, n)| n.to_string())
                    };
                    last_name(type_part).map(|ty| (ty, trait_part.and_then(last_name)))
                }
                _ => None,
            };
            let Some((owner, implemented)) = owner_trait else { continue };
            let Some(open) = code[pos..].find(['{', ';']).map(|e| pos + e) else { continue };
            if bytes[open] != b'{' {
                continue;
            }
            let end = block_end(bytes, open);
            let body: HashSet<String> = identifiers(&code[open..end]).map(|(_, n)| n.to_string()).collect();
            self.members.entry(owner.clone()).or_default().extend(body);
            if let Some(t) = implemented {
                self.traits_of.entry(owner).or_default().insert(t);
            }
        }
        // Flags: `Long("name")` and "--name" literals in the programs, and the options table.
        let parses_flags =
            rel.starts_with("examples/") || rel.starts_with("src/") || rel.starts_with("crates/lab/src/");
        if parses_flags {
            for piece in code.split("Long(\"").skip(1).chain(code.split("\"--").skip(1)) {
                let flag: String =
                    piece.chars().take_while(|&c| c.is_ascii_alphanumeric() || c == '-').collect();
                if !flag.is_empty() {
                    self.flags.insert(flag);
                }
            }
        }
        if rel == "crates/optim/src/options.rs" {
            if let Some(table) = code.split("options_table! {").nth(1) {
                for line in table.lines().take_while(|l| !l.starts_with('}')) {
                    if let Some((field, _)) = line.trim().split_once(':') {
                        if is_ident(field) {
                            self.flags.insert(field.replace('_', "-"));
                        }
                    }
                }
            }
        }
    }

    /// Whether `member` belongs to `owner` (its bodies, impls, or the traits it implements).
    fn has_member(&self, owner: &str, member: &str) -> bool {
        let own = self.members.get(owner).is_some_and(|m| m.contains(member));
        own || self
            .traits_of
            .get(owner)
            .is_some_and(|ts| ts.iter().any(|t| self.members.get(t).is_some_and(|m| m.contains(member))))
    }

    /// Why `span` (found in `md`) is stale, or `None` if it names something that exists.
    fn problem(&self, md: &Path, span: &str) -> Option<String> {
        if ALLOWED.iter().any(|&(a, _)| a == span) {
            return None;
        }
        match classify(span) {
            Kind::NotAName => None,
            Kind::Flag(flag) => {
                let allowed = ALLOWED.iter().any(|&(a, _)| a == format!("--{flag}"));
                (!allowed && !self.flags.contains(&flag))
                    .then(|| format!("no program parses the flag --{flag}"))
            }
            Kind::File(file) => (!self.file_exists(md, &file)).then(|| format!("no file {file}")),
            Kind::Path(segments) => {
                if ALLOWED.iter().any(|&(a, _)| a == segments.join("::")) {
                    return None;
                }
                let last = segments.last().unwrap();
                if !self.tokens.contains(last) {
                    return Some(format!("`{last}` occurs nowhere in the code"));
                }
                for (k, seg) in segments[..segments.len() - 1].iter().enumerate() {
                    let next = &segments[k + 1];
                    if seg.starts_with(|c: char| c.is_ascii_uppercase()) {
                        if !self.definitions.contains(seg) {
                            return Some(format!("no type or trait `{seg}`"));
                        }
                        if !self.has_member(seg, next) {
                            return Some(format!("`{seg}` has no `{next}`"));
                        }
                    } else if k == 0 && !self.is_module(seg) {
                        return Some(format!("no crate or module `{seg}`"));
                    }
                }
                None
            }
        }
    }

    fn is_module(&self, name: &str) -> bool {
        let crates = ["adamant", "std", "core", "alloc", "crate", "self", "super"];
        crates.contains(&name)
            || name.strip_prefix("adamant_").is_some_and(|c| self.root.join("crates").join(c).is_dir())
            || self.definitions.contains(name)
            || self.file_names.contains(&format!("{name}.rs"))
            || self.file_names.contains(name)
    }

    fn file_exists(&self, md: &Path, file: &str) -> bool {
        // The team's shared folder (reference scripts, datasets) sits beside the repository,
        // as `shared/...` or `../shared/...` in the docs. It is checked where it is there; a
        // clone elsewhere cannot see it, and these names are not the repository's own.
        if let Some(rest) = file.strip_prefix("../shared/").or_else(|| file.strip_prefix("shared/")) {
            let shared = self.root.parent().unwrap_or(&self.root).join("shared");
            return !shared.is_dir() || shared.join(rest.trim_end_matches('/')).exists();
        }
        let dirs = [self.root.clone(), md.parent().unwrap_or(&self.root).to_path_buf()];
        if !file.contains('/') {
            return self.file_names.contains(file);
        }
        // A partial path (`ops/arith.rs`, named after its crate) is the end of some file's path.
        let partial = file.trim_end_matches('/');
        if !file.contains('*')
            && self
                .paths
                .iter()
                .any(|p| p.ends_with(&format!("/{partial}")) || p.contains(&format!("/{partial}/")))
        {
            return true;
        }
        dirs.iter().any(|dir| {
            let path = dir.join(file.trim_end_matches('/'));
            match path.file_name().and_then(|n| n.to_str()) {
                Some(name) if name.contains('*') => {
                    let (prefix, suffix) = name.split_once('*').unwrap();
                    fs::read_dir(path.parent().unwrap()).is_ok_and(|mut entries| {
                        entries.any(|e| {
                            let n =
                                e.map(|e| e.file_name().to_string_lossy().into_owned()).unwrap_or_default();
                            n.starts_with(prefix) && n.ends_with(suffix)
                        })
                    })
                }
                _ => path.exists(),
            }
        })
    }

    /// Every stale name of `markdown` (the text of `md`), as `file:line: why`.
    fn check(&self, md: &Path, markdown: &str) -> Vec<String> {
        let shown = md.strip_prefix(&self.root).unwrap_or(md).display().to_string();
        code_spans(markdown)
            .into_iter()
            .filter_map(|s| {
                self.problem(md, &s.text).map(|why| format!("{shown}:{}: `{}`: {why}", s.line, s.text))
            })
            .collect()
    }
}

/// Files of the repository, without `target/`, hidden folders and `fuzz/` build output.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name == "target" {
            continue;
        }
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_backticked_name_in_docs_exists() {
    let root = root();
    let index = Index::new(&root);
    let mut files = Vec::new();
    walk(&root.join("docs"), &mut files);
    files.retain(|f| f.extension().is_some_and(|e| e == "md"));
    files.sort();
    assert!(files.len() >= 8, "docs/tour.md and its chapters: {files:?}");
    let stale: Vec<String> =
        files.iter().flat_map(|f| index.check(f, &fs::read_to_string(f).unwrap())).collect();
    assert!(stale.is_empty(), "stale names in docs/:\n{}", stale.join("\n"));
}

#[test]
fn the_checker_reports_broken_names_and_passes_real_ones() {
    let root = root();
    let index = Index::new(&root);
    let md = root.join("docs/tour.md");
    let broken = "Call `stable_sigmoid` (in `crates/nope.rs`), or `Tape::no_such_method`,\n\
                  with `--no-such-flag 3`, and `NoSuchType::new`.\n\
                  ```rust\n\
                  let x = `not_checked_in_a_fence`;\n\
                  ```\n";
    let found = index.check(&md, broken);
    assert_eq!(found.len(), 5, "{found:#?}");
    for (name, line) in [
        ("stable_sigmoid", 1),
        ("crates/nope.rs", 1),
        ("Tape::no_such_method", 1),
        ("--no-such-flag 3", 2),
        ("NoSuchType::new", 2),
    ] {
        let expected = format!("docs/tour.md:{line}: `{name}`");
        assert!(found.iter().any(|f| f.starts_with(&expected)), "{expected} not in {found:#?}");
    }

    let real = "`Tape::push_op` in `crates/autodiff/src/tape.rs`, `fused_update` (`moments.rs`),\n\
                `adamant_lab::trace`, `options_table!`, `#[derive(Module)]`, `Adam::state_dict`,\n\
                `Hyper::decay_terms(decoupled)`, `&mut [&mut Param]`, `--beta2 0.9999`,\n\
                `--weight-decay`, `crates/autodiff/src/ops/*.rs`, `m_t = beta1 m + (1 - beta1) g`,\n\
                `loss.backward()`, `1e-3`, `exp_avg_sq`, `Problem::Quadratic`.";
    assert_eq!(index.check(&md, real), Vec::<String>::new());
}

#[test]
fn spans_skip_fences_and_keep_line_numbers() {
    let text = "a `one`\n```sh\n`two`\n```\nb `three\nfour` ``five``\n";
    let spans = code_spans(text);
    let got: Vec<(&str, usize)> = spans.iter().map(|s| (s.text.as_str(), s.line)).collect();
    assert_eq!(got, [("one", 1), ("three four", 5), ("five", 6)]);
    assert_eq!(classify("m_t = beta1 m"), Kind::NotAName);
    assert_eq!(classify("Tape::push_op"), Kind::Path(vec!["Tape".into(), "push_op".into()]));
    assert_eq!(classify("--lr 0.01"), Kind::Flag("lr".into()));
    assert_eq!(classify("docs/tour.md"), Kind::File("docs/tour.md".into()));
    assert_eq!(classify("0.9999"), Kind::NotAName);
}
