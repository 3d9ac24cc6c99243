//! Reading a job's options from the environment (or a map in tests): trimmed values, defaults,
//! whole numbers in a range, and errors that name the variable and say what it is for. Each
//! settings module keeps its own table of (variable, default, meaning) and typed struct; this is
//! only the reading, which the ingestion, batch and real-time settings share.

use std::ops::RangeInclusive;

/// What a (variable, default, meaning) table says `k` is for ("" when it is not there).
pub fn doc<'a>(docs: &'a [(&'a str, &'a str, &'a str)], k: &str) -> &'a str {
    docs.iter().find(|(n, _, _)| *n == k).map(|(_, _, d)| *d).unwrap_or("")
}

/// Options read through a lookup, documented by a table of (variable, default, meaning).
pub struct Options<'a, F: Fn(&str) -> Option<String>> {
    lookup: F,
    docs: &'a [(&'a str, &'a str, &'a str)],
}

impl<'a, F: Fn(&str) -> Option<String>> Options<'a, F> {
    pub fn new(lookup: F, docs: &'a [(&'a str, &'a str, &'a str)]) -> Self {
        Self { lookup, docs }
    }

    /// What the table says `k` is for.
    pub fn doc(&self, k: &str) -> &'a str {
        doc(self.docs, k)
    }

    /// The trimmed value of `k`; `None` when unset or blank.
    pub fn get(&self, k: &str) -> Option<String> {
        (self.lookup)(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
    }

    /// The value of `k`, or an error naming it and what it is for.
    pub fn required(&self, k: &str) -> Result<String, String> {
        self.get(k).ok_or_else(|| format!("environment variable {k} is not set: {}", self.doc(k)))
    }

    /// A whole number in `range`, `default` when unset.
    pub fn number(&self, k: &str, default: u64, range: RangeInclusive<u64>) -> Result<u64, String> {
        match self.get(k) {
            None => Ok(default),
            Some(v) => v.parse::<u64>().ok().filter(|n| range.contains(n)).ok_or_else(|| format!("{k}={v:?}: expected a whole number in {}..={}", range.start(), range.end())),
        }
    }

    /// `LAKE_ROOT`: required, `s3://...` (or `file://...` for a local lake).
    pub fn lake_root(&self) -> Result<String, String> {
        let root = self.required("LAKE_ROOT")?;
        if !root.starts_with("s3://") && !root.starts_with("file://") {
            return Err(format!("LAKE_ROOT={root:?}: expected s3://<bucket>"));
        }
        Ok(root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_defaults_and_errors_name_the_variable() {
        let docs = [("LAKE_ROOT", "", "Root of the lake."), ("N", "3", "A count.")];
        let env = |pairs: &'static [(&'static str, &'static str)]| move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
        let o = Options::new(env(&[("LAKE_ROOT", " s3://b "), ("N", "7")]), &docs);
        assert_eq!(o.lake_root().unwrap(), "s3://b");
        assert_eq!(o.number("N", 3, 1..=10).unwrap(), 7);
        assert_eq!(o.number("M", 3, 1..=10).unwrap(), 3);
        let o = Options::new(env(&[("LAKE_ROOT", "http://x"), ("N", "70")]), &docs);
        assert_eq!(o.lake_root().unwrap_err(), "LAKE_ROOT=\"http://x\": expected s3://<bucket>");
        assert_eq!(o.number("N", 3, 1..=10).unwrap_err(), "N=\"70\": expected a whole number in 1..=10");
        let o = Options::new(env(&[("N", " ")]), &docs);
        assert_eq!(o.required("LAKE_ROOT").unwrap_err(), "environment variable LAKE_ROOT is not set: Root of the lake.");
        assert_eq!(o.number("N", 3, 1..=10).unwrap(), 3, "blank is unset");
    }
}
