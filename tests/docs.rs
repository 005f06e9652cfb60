//! The reference pages in `docs/` that are generated from the code: a
//! test fails when they drift. `HEARSAY_UPDATE_DOCS=1` rewrites them.

use std::path::Path;

const BEGIN: &str = "<!-- settings table: generated from src/settings/declared.rs -->\n";
const END: &str = "<!-- end of settings table -->\n";

#[test]
fn the_settings_table_is_generated_from_the_declaration() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/settings.md");
    let page = std::fs::read_to_string(&path).expect("docs/settings.md exists");
    let (before, rest) = page.split_once(BEGIN).expect("the table's begin marker");
    let (table, after) = rest.split_once(END).expect("the table's end marker");
    let want = hearsay::settings::print::markdown_table();
    if std::env::var_os("HEARSAY_UPDATE_DOCS").is_some() {
        std::fs::write(&path, format!("{before}{BEGIN}{want}{END}{after}")).unwrap();
        return;
    }
    assert!(
        table == want,
        "docs/settings.md differs from the declaration; run\n  \
         HEARSAY_UPDATE_DOCS=1 cargo test --profile ci --test docs\n\
         --- in the page\n{table}\n--- declared\n{want}"
    );
    for s in hearsay::settings::declared::ALL
        .iter()
        .filter(|s| !s.hidden)
    {
        assert!(table.contains(&s.env()), "{} is not in the table", s.name);
    }
}
