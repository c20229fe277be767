//! The command examples of the documentation, run: every ```` ```console ````
//! block of `README.md` and of every page under `docs/` is run by
//! [trycmd](https://docs.rs/trycmd) against the `migsim` binary just
//! built, and its output compared with what the page shows (`[..]` stands
//! for the rest of a line, `...` for whole lines, e.g. timings). So the
//! docs cannot drift from the binary.
//!
//! Each page runs in a fresh directory of its own that looks like the
//! repository's root to the commands: `scenarios/`, `scenarios-huge/` and
//! `tests/data/` are links to the repository's, `docs/examples/` is a copy
//! (the guide blesses a scenario there), and whatever a command writes
//! (`--out`, `-o`) stays in that directory. The blocks of one page run in
//! order in the same directory, so a page can save a file and inspect it.
//!
//! A block marked ```` ```console,qemu ```` starts QEMU: without
//! `qemu-system-x86_64` >= 9.0 it is skipped (and under `CI=true` the test
//! fails instead, as the QEMU tier does).
//!
//! `TRYCMD=overwrite cargo test --release --test cli docs` writes the
//! binary's actual output back into the pages (keeping the elisions where
//! it can); read the diff before committing it.

use std::path::{Path, PathBuf};

/// The pages whose ```console blocks are run: README.md and docs/**/*.md.
fn pages(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![PathBuf::from("README.md")];
    let mut dirs = vec![PathBuf::from("docs")];
    while let Some(d) = dirs.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(root.join(&d))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            if p.is_dir() {
                dirs.push(rel);
            } else if p.extension().is_some_and(|e| e == "md") {
                out.push(rel);
            }
        }
    }
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

/// Whether blocks that start QEMU run: QEMU >= 9.0 found; under `CI=true`
/// a missing QEMU panics (the QEMU tier's rule).
fn qemu_runs() -> bool {
    match migsim_harness::qemu::find() {
        Ok(_) => true,
        Err(why) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("docs: the QEMU examples need qemu-system-x86_64 >= 9.0 under CI=true ({why})")
        }
        Err(why) => {
            eprintln!("docs: QEMU examples skipped ({why})");
            false
        }
    }
}

#[test]
fn docs_command_examples_print_what_the_docs_show() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let sandbox = tempfile::tempdir().unwrap();
    let qemu = qemu_runs();
    let overwrite = std::env::var("TRYCMD").is_ok_and(|v| v == "overwrite");
    let cases = trycmd::TestCases::new();
    cases
        .register_bin("migsim", PathBuf::from(env!("CARGO_BIN_EXE_migsim")))
        .env("NO_COLOR", "1")
        .timeout(std::time::Duration::from_secs(300));
    let mut copies = Vec::new();
    for page in pages(&root) {
        let text = std::fs::read_to_string(root.join(&page)).unwrap();
        if !text.contains("```console") {
            continue;
        }
        // The copy keeps the page's path, so a failure names it.
        let copy = sandbox.path().join(&page);
        std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
        let text = if qemu {
            text
        } else {
            text.replace("```console,qemu", "```console,ignore")
        };
        std::fs::write(&copy, text).unwrap();
        let cwd = copy.with_extension("in");
        std::fs::create_dir_all(cwd.join("tests")).unwrap();
        for link in ["scenarios", "scenarios-huge", "tests/data"] {
            std::os::unix::fs::symlink(root.join(link), cwd.join(link)).unwrap();
        }
        copy_dir(&root.join("docs/examples"), &cwd.join("docs/examples"));
        cases.case(&copy);
        copies.push((page, copy));
    }
    assert!(
        copies.iter().any(|(p, _)| p == Path::new("README.md"))
            && copies.iter().any(|(p, _)| p == Path::new("docs/guide.md")),
        "README.md and docs/guide.md must hold tested examples"
    );
    cases.run();
    if overwrite && qemu {
        for (page, copy) in copies {
            std::fs::copy(copy, root.join(page)).unwrap();
        }
    }
}

/// The relative links of a page: `[text](target)` with no scheme, the
/// `#anchor` cut off.
fn relative_links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        let Some(end) = rest.find(')') else { break };
        let target = &rest[..end];
        rest = &rest[end..];
        if target.contains("://") || target.starts_with('#') || target.starts_with("mailto:") {
            continue;
        }
        let path = target.split('#').next().unwrap_or("");
        if !path.is_empty() && !path.contains(' ') {
            out.push(path.to_string());
        }
    }
    out
}

#[test]
fn docs_links_point_at_files_that_exist() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut broken = Vec::new();
    let mut pages_with_links = 0;
    for page in pages(&root)
        .into_iter()
        .chain([PathBuf::from("fuzz/README.md")])
    {
        let text = std::fs::read_to_string(root.join(&page)).unwrap();
        let links = relative_links(&text);
        pages_with_links += usize::from(!links.is_empty());
        let dir = root.join(&page).parent().unwrap().to_path_buf();
        for l in links {
            if !dir.join(&l).exists() {
                broken.push(format!("{}: {l}", page.display()));
            }
        }
    }
    assert!(
        pages_with_links >= 10,
        "only {pages_with_links} pages have links"
    );
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}
