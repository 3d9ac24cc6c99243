//! Issue 18, fuzzing: source files and pagination headers, from inputs no one wrote on purpose.
//! Properties, not examples: whatever the input, parsing answers Ok or a located error and never
//! panics, and pagination answers a page, the end, or an error, within `MAX_PAGES`.
//!
//! Cases per property: `PROPTEST_CASES` (256 by default, as in CI); `scripts/fuzz.sh` runs each
//! with a million (docs/fuzzing.md).

use std::path::PathBuf;

use alkasba_sources::{MAX_PAGES, Next, Page, next_page, page_count, parse, total_pages};
use proptest::prelude::*;
use serde_json::{Value, json};

fn shipped(name: &str) -> String {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string());
    std::fs::read_to_string(PathBuf::from(manifest).join("../../config/sources").join(name)).unwrap()
}

fn config() -> ProptestConfig {
    ProptestConfig { failure_persistence: None, ..ProptestConfig::default() }
}

/// One edit of a text: a byte range replaced by a fragment chosen to hit the parser's corners.
fn edit() -> impl Strategy<Value = (prop::sample::Index, usize, String)> {
    let fragments = prop_oneof![
        Just(String::new()),
        Just("\"".to_string()),
        Just("[[stream]]\n".to_string()),
        Just("= { type = \"none\" }".to_string()),
        Just("18446744073709551616".to_string()),
        Just("-1".to_string()),
        Just("\"/\"".to_string()),
        Just("\"/*/*\"".to_string()),
        Just("${stack}".to_string()),
        Just("in_clear = [\"/_sealed\"]\n".to_string()),
        "[ -~]{0,12}",
        any::<String>(),
    ];
    (any::<prop::sample::Index>(), 0usize..40, fragments)
}

fn apply(text: &str, edits: &[(prop::sample::Index, usize, String)]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for (at, len, frag) in edits {
        let start = at.index(bytes.len() + 1);
        let end = (start + len).min(bytes.len());
        bytes.splice(start..end, frag.bytes());
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_source_files_parse_or_fail_by_name(file in prop::sample::select(vec!["alkasba_store.toml", "competitor_prices.toml", "exchange_rates.toml"]), edits in prop::collection::vec(edit(), 1..4)) {
        let text = apply(&shipped(file), &edits);
        match parse("fuzz.toml", &text) {
            Ok(f) => {
                // Whatever parses holds the invariants validation promises.
                prop_assert!(!f.streams.is_empty());
                for s in &f.streams {
                    prop_assert!(!s.primary_key.is_empty());
                    prop_assert!(s.primary_key.iter().all(|p| alkasba_sources::covers(&s.in_clear, p)));
                }
            }
            Err(e) => prop_assert!(e.to_string().starts_with("fuzz.toml: "), "{e}"),
        }
    }

    #[test]
    fn fuzz_arbitrary_text_is_never_a_panic(text in any::<String>()) {
        let _ = parse("fuzz.toml", &text);
    }
}

fn stream_with(paginator: &str) -> alkasba_sources::Stream {
    let text = format!(
        "[source]\nname = \"s\"\nbase_url = \"http://127.0.0.1:1/api/\"\nauth = {{ type = \"none\" }}\n[[stream]]\nname = \"x\"\npath = \"/items\"\nrecords = \"/data\"\nprimary_key = [\"/id\"]\nin_clear = [\"/id\"]\npaginator = {paginator}\n"
    );
    parse("t.toml", &text).unwrap().streams[0].clone()
}

/// Header values shaped like the real ones, and broken ones.
fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        "[0-9]{1,25}",
        " ?-?[0-9]{0,6} ?",
        "(<[ -~]{0,30}>(; ?rel=\"?(next|prev|last|first|next last)\"?)?(, )?){0,4}",
        "<{0,3}[ -~]{0,40}>{0,3}",
        any::<String>(),
    ]
}

fn page_url() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("http://127.0.0.1:1/api/items".to_string()),
        any::<u64>().prop_map(|n| format!("http://127.0.0.1:1/api/items?page={n}&offset={n}")),
        "[a-z0-9=&%]{0,30}".prop_map(|q| format!("http://127.0.0.1:1/api/items?{q}")),
    ]
}

fn body() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![Just(Value::Null), any::<bool>().prop_map(Value::from), any::<i64>().prop_map(Value::from), any::<u64>().prop_map(Value::from), any::<String>().prop_map(Value::from)];
    (prop::collection::vec(Just(json!({"id": 1})), 0..4), leaf.clone(), leaf).prop_map(|(data, next, total)| json!({"data": data, "next": next, "total": total}))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_pagination_headers_and_bodies(which in 0usize..4, url in page_url(), link in header_value(), total in header_value(), body in body()) {
        let paginator = [
            "{ type = \"page_number\", size = 2, total_pages_header = \"X-WP-TotalPages\" }",
            "{ type = \"offset_limit\", limit = 2, total_pointer = \"/total\" }",
            "{ type = \"body_cursor\", next_pointer = \"/next\", cursor_param = \"cursor\" }",
            "{ type = \"link_header\" }",
        ][which];
        let stream = stream_with(paginator);
        let page = Page::new(&stream, url::Url::parse(&url).unwrap(), vec![("link".into(), link), ("x-wp-totalpages".into(), total)], body.to_string()).unwrap();
        match next_page(&stream, &page) {
            Ok(Next::Done) | Err(_) => {}
            // Never to another origin: the next request carries the source's credentials.
            Ok(Next::Url(u)) => prop_assert_eq!(u.origin(), page.url.origin()),
        }
        if let Ok(Some(n)) = page_count(&stream, &page) {
            prop_assert!((1..=MAX_PAGES).contains(&n));
        }
        let _ = total_pages(&stream, &page);
    }
}
