//! The AWS requests LocalStack served during a stretch of a benchmark, counted from its own
//! request log (`localstack.request.aws : AWS s3.GetObject => 200`, one line per request;
//! localstack/start.sh writes it to `.local/localstack.log`). What the fetchers ask of S3 is
//! most of LocalStack's CPU, and on AWS it is billed per request.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Where LocalStack's log stood when the stretch began.
pub struct Mark {
    path: PathBuf,
    offset: u64,
}

impl Mark {
    /// The end of `path` now; `None` when there is no such log (LocalStack not started by this
    /// project): the figures are then left out, not guessed.
    pub fn now(path: &Path) -> Option<Self> {
        std::fs::metadata(path).ok().map(|m| Self { path: path.to_path_buf(), offset: m.len() })
    }

    /// Requests logged since the mark, by service operation (`s3.GetObject`), all status codes.
    pub fn since(&self) -> std::io::Result<BTreeMap<String, u64>> {
        let mut f = std::fs::File::open(&self.path)?;
        f.seek(SeekFrom::Start(self.offset))?;
        let mut text = String::new();
        f.read_to_string(&mut text)?;
        Ok(count(&text))
    }
}

fn count(log: &str) -> BTreeMap<String, u64> {
    let mut by_op = BTreeMap::new();
    for line in log.lines() {
        let Some((_, rest)) = line.split_once("localstack.request.aws") else { continue };
        let Some(op) = rest.split_once(" AWS ").and_then(|(_, r)| r.split_whitespace().next()) else { continue };
        *by_op.entry(op.to_string()).or_insert(0) += 1;
    }
    by_op
}

/// One line: S3 requests by kind and per 1,000 `records`, then the other services' total.
pub fn summary(by_op: &BTreeMap<String, u64>, records: u64) -> String {
    let s3 = |op: &str| by_op.get(&format!("s3.{op}")).copied().unwrap_or(0);
    let (get, put, list, head) = (s3("GetObject"), s3("PutObject"), s3("ListObjectsV2"), s3("HeadObject"));
    let all_s3: u64 = by_op.iter().filter(|(k, _)| k.starts_with("s3.")).map(|(_, n)| n).sum();
    let other: u64 = by_op.iter().filter(|(k, _)| !k.starts_with("s3.")).map(|(_, n)| n).sum();
    format!(
        "{all_s3} to S3 ({get} GET, {put} PUT, {list} LIST, {head} HEAD, {} other) = {:.1} per 1,000 records; {other} to other services",
        all_s3 - get - put - list - head,
        all_s3 as f64 * 1000.0 / records.max(1) as f64
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_operation_from_localstacks_log() {
        let log = "2026-12-06T04:36:03.357  INFO --- [et.reactor-0] localstack.request.aws     : AWS s3.GetObject => 200\n\
                   2026-12-06T04:36:03.368  INFO --- [et.reactor-0] localstack.request.aws     : AWS s3.GetObject => 404\n\
                   2026-12-06T04:36:03.380  INFO --- [et.reactor-0] localstack.request.aws     : AWS s3.PutObject => 412\n\
                   2026-12-06T04:36:03.391  INFO --- [et.reactor-0] localstack.request.aws     : AWS sqs.ReceiveMessage => 200\n\
                   2026-12-06T04:36:03.400  WARN --- [et.reactor-0] localstack.services.s3     : something else\n";
        let by_op = count(log);
        assert_eq!(by_op.get("s3.GetObject"), Some(&2));
        assert_eq!(by_op.get("s3.PutObject"), Some(&1));
        assert_eq!(by_op.len(), 3);
        assert_eq!(summary(&by_op, 1000), "3 to S3 (2 GET, 1 PUT, 0 LIST, 0 HEAD, 0 other) = 3.0 per 1,000 records; 1 to other services");
    }
}
