//! Short names on a real C++ binary: globs match them, tables show them unique and fit `$COLUMNS`, and
//! `--full-names` brings the demangled names back.
mod common;
use common::*;

fn record_cpp(args: &[&str], columns: &str) -> String {
    let dir = scratch();
    let out = record_to(&dir.path().join("r.data"))
        .env("COLUMNS", columns)
        .args(["--no-calibrate"])
        .args(args)
        .arg("--")
        .arg(fixture("cpp"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn a_glob_on_the_short_name_selects_every_instance_and_the_table_tells_them_apart() {
    let table = record_cpp(&["--function", "shapes::accumulate"], "200");
    assert!(table.contains("traced 2 functions"), "{table}");
    assert!(
        table.contains("shapes::accumulate<double> (cpp)"),
        "{table}"
    );
    assert!(table.contains("shapes::accumulate<int> (cpp)"), "{table}");
    assert!(!table.contains("std::vector"), "{table}");
    let full = record_cpp(&["--function", "shapes::accumulate", "--full-names"], "250");
    assert!(full.contains("double shapes::accumulate<double>(std::vector<double, std::allocator<double> > const&)"), "{full}");
}

#[test]
fn the_table_fits_80_columns_without_cutting_a_number() {
    let table = record_cpp(&["--function", "shapes::*", "--function", "main"], "80");
    for line in table
        .lines()
        .filter(|l| l.starts_with('│') || l.starts_with('┌'))
    {
        assert!(
            line.chars().count() <= 80,
            "{} columns: {line}",
            line.chars().count()
        );
    }
    assert!(table.contains("shapes::Circle::area (cpp)"), "{table}");
    assert!(table.contains("narrow terminal: MAX"), "{table}");
    // Every row still has its TOTAL TIME, SELF TIME and CALLS.
    let rows: Vec<&str> = table.lines().filter(|l| l.contains("(cpp)")).collect();
    assert!(rows.len() >= 10, "{table}");
    for r in rows {
        let numbers = r
            .split_whitespace()
            .filter(|w| w.ends_with("µs") || w.ends_with("ns") || w.ends_with("ms"))
            .count();
        assert!(numbers >= 2, "{r}");
    }
}
