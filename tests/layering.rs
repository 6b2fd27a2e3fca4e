//! The crate's layering, checked on its source: the core (frames in,
//! verdicts out) imports nothing from the shell, and every module imports
//! only modules below it, so there is no cycle between top-level modules.
//!
//! The module tree is walked from src/lib.rs the way the compiler walks it
//! (`mod` declarations, `#[path]`). Every path that names a crate module
//! counts: `use`, inline paths, and paths inside macro invocations. Test
//! code (`#[cfg(test)]`) may reach sideways inside its layer group, but the
//! core's tests may not import the shell either: they build their fixtures
//! from the core's own types.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;

/// Bottom to top. A module may import modules of a lower rank only.
const LAYERS: &[(&str, u32)] = &[
    // The core.
    ("time", 0),
    ("hint", 0),
    ("hugemem", 0),
    ("counter", 0),
    ("wire", 1),
    ("dest", 2),
    ("sched", 3),
    ("service", 4),
    ("conn", 5),
    ("forward", 6),
    ("view", 6),
    ("dataplane", 7),
    // The shell.
    ("config", 10),
    ("admin", 11),
    ("xsk", 12),
    ("control", 13),
    ("replay", 14),
    ("daemon", 15),
];
const SHELL_FROM: u32 = 10;

fn rank(m: &str) -> Option<u32> {
    LAYERS.iter().find(|(n, _)| *n == m).map(|(_, r)| *r)
}

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.parse_args::<syn::Meta>()
                .is_ok_and(|m| m.path().is_ident("test"))
    })
}

fn path_attr(attrs: &[syn::Attribute]) -> Option<String> {
    attrs.iter().find_map(|a| match &a.meta {
        syn::Meta::NameValue(nv) if nv.path.is_ident("path") => match &nv.value {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => Some(s.value()),
            _ => None,
        },
        _ => None,
    })
}

/// One import found: which module of the crate a path names, and where.
struct Found {
    target: String,
    /// Found in `#[cfg(test)]` code.
    test: bool,
    file: PathBuf,
    line: usize,
}

struct Collector<'a> {
    /// The module the items being visited are in (crate-relative).
    module: Vec<String>,
    file: &'a Path,
    /// Inside `#[cfg(test)]` code (depth of nesting).
    test: u32,
    found: Vec<Found>,
}

impl Collector<'_> {
    /// Resolves a path's leading segments to the top-level module it names.
    fn resolve(&mut self, segs: &[String], line: usize) {
        let mut base: Vec<String> = match segs.first().map(String::as_str) {
            Some("crate") => Vec::new(),
            Some("super") | Some("self") => self.module.clone(),
            _ => return,
        };
        let mut rest = segs;
        if rest[0] == "crate" {
            rest = &rest[1..];
        }
        while let Some(s) = rest.first() {
            match s.as_str() {
                "super" => {
                    base.pop();
                }
                "self" => {}
                _ => break,
            }
            rest = &rest[1..];
        }
        let top = base.first().cloned().or_else(|| rest.first().cloned());
        if let Some(top) = top {
            self.found.push(Found {
                target: top,
                test: self.test > 0,
                file: self.file.to_path_buf(),
                line,
            });
        }
    }

    fn tokens(&mut self, ts: TokenStream) {
        let toks: Vec<TokenTree> = ts.into_iter().collect();
        for (i, t) in toks.iter().enumerate() {
            match t {
                TokenTree::Group(g) => self.tokens(g.stream()),
                TokenTree::Ident(id) if id == "crate" => {
                    // `crate :: name`
                    if let (
                        Some(TokenTree::Punct(a)),
                        Some(TokenTree::Punct(b)),
                        Some(TokenTree::Ident(n)),
                    ) = (toks.get(i + 1), toks.get(i + 2), toks.get(i + 3))
                        && a.as_char() == ':'
                        && b.as_char() == ':'
                    {
                        let line = id.span().start().line;
                        self.resolve(&["crate".to_string(), n.to_string()], line);
                    }
                }
                _ => {}
            }
        }
    }
}

fn use_paths(tree: &syn::UseTree, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            use_paths(&p.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) => {
            let mut v = prefix.clone();
            v.push(n.ident.to_string());
            out.push(v);
        }
        syn::UseTree::Rename(r) => {
            let mut v = prefix.clone();
            v.push(r.ident.to_string());
            out.push(v);
        }
        syn::UseTree::Glob(_) => out.push(prefix.clone()),
        syn::UseTree::Group(g) => {
            for t in &g.items {
                use_paths(t, prefix, out);
            }
        }
    }
}

impl<'ast> Visit<'ast> for Collector<'_> {
    fn visit_item(&mut self, i: &'ast syn::Item) {
        let test = match i {
            syn::Item::Mod(m) => is_cfg_test(&m.attrs),
            syn::Item::Fn(f) => is_cfg_test(&f.attrs),
            syn::Item::Impl(x) => is_cfg_test(&x.attrs),
            syn::Item::Use(u) => is_cfg_test(&u.attrs),
            _ => false,
        };
        self.test += u32::from(test);
        syn::visit::visit_item(self, i);
        self.test -= u32::from(test);
    }
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if let Some((_, items)) = &m.content {
            self.module.push(m.ident.to_string());
            for it in items {
                self.visit_item(it);
            }
            self.module.pop();
        }
    }
    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        let mut out = Vec::new();
        use_paths(&u.tree, &mut Vec::new(), &mut out);
        let line = u.use_token.span.start().line;
        for p in out {
            self.resolve(&p, line);
        }
    }
    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segs: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        if let Some(first) = p.segments.first() {
            let line = first.ident.span().start().line;
            self.resolve(&segs, line);
        }
        syn::visit::visit_path(self, p);
    }
    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.visit_path(&m.path);
        self.tokens(m.tokens.clone());
    }
}

/// Parses `file` as module `module` and follows its non-test `mod` items.
fn walk(file: &Path, module: Vec<String>, dir: &Path, test: bool, found: &mut Vec<Found>) {
    let src = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let ast = syn::parse_file(&src).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let mut c = Collector {
        module: module.clone(),
        file,
        test: u32::from(test),
        found: Vec::new(),
    };
    for item in &ast.items {
        match item {
            syn::Item::Mod(m) if m.content.is_none() => {
                let name = m.ident.to_string();
                let (child, child_dir) = match path_attr(&m.attrs) {
                    Some(p) => {
                        let f = dir.join(p);
                        let d = f.with_extension("");
                        (f, d)
                    }
                    None => {
                        let flat = dir.join(format!("{name}.rs"));
                        if flat.exists() {
                            (flat, dir.join(&name))
                        } else {
                            (dir.join(&name).join("mod.rs"), dir.join(&name))
                        }
                    }
                };
                let mut m2 = module.clone();
                m2.push(name);
                walk(&child, m2, &child_dir, test || is_cfg_test(&m.attrs), found);
            }
            other => c.visit_item(other),
        }
    }
    found.extend(c.found);
}

#[test]
fn modules_import_only_lower_layers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    walk(&root.join("lib.rs"), Vec::new(), &root, false, &mut found);

    // The modules lib.rs declares are exactly the ones ranked.
    let lib = std::fs::read_to_string(root.join("lib.rs")).unwrap();
    let declared: BTreeSet<String> = syn::parse_file(&lib)
        .unwrap()
        .items
        .iter()
        .filter_map(|i| match i {
            syn::Item::Mod(m) => Some(m.ident.to_string()),
            _ => None,
        })
        .collect();
    let ranked: BTreeSet<String> = LAYERS.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(
        declared, ranked,
        "every top-level module needs a layer in LAYERS"
    );

    let mut bad: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in &found {
        let rel = f.file.strip_prefix(&root).unwrap();
        let from = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if from == f.target || rank(&f.target).is_none() {
            continue;
        }
        let (rf, rt) = (rank(&from).unwrap(), rank(&f.target).unwrap());
        let core_to_shell = rf < SHELL_FROM && rt >= SHELL_FROM;
        if (!f.test && rt >= rf) || (f.test && core_to_shell) {
            let kind = if core_to_shell {
                "core imports the shell"
            } else {
                "upward or sideways import"
            };
            bad.entry(format!("{from} -> {} ({kind})", f.target))
                .or_default()
                .push(format!("src/{}:{}", rel.display(), f.line));
        }
    }
    assert!(
        bad.is_empty(),
        "layering violations:\n{}",
        bad.iter()
            .map(|(k, v)| format!("  {k}: {}", v.join(", ")))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
