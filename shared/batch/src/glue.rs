//! The columns of every BI table as the Glue catalog lists them. Athena and Trino read a Delta
//! table's schema from its log, but an Athena view is checked against the catalog's columns, so
//! each Glue table in `infra/template.yaml` carries them too. They come from the tables'
//! own schemas ([`columns`]), are written into the template by `alkasba batch glue-columns
//! --write` ([`write_template`]), and the batch integration test fails when the template no
//! longer matches what the lake holds.

use std::collections::BTreeMap;

use alkasba_lake::Lake;
use deltalake::arrow::datatypes::DataType;

use crate::{Error, Result};

/// A table's columns: (name, Hive type).
pub type Columns = Vec<(String, String)>;

/// The Hive type Glue records for an Arrow type.
pub fn hive_type(t: &DataType) -> Result<String> {
    Ok(match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Int64 | DataType::UInt32 => "bigint".into(),
        DataType::Int32 | DataType::UInt16 => "int".into(),
        DataType::Int16 | DataType::UInt8 => "smallint".into(),
        DataType::Int8 => "tinyint".into(),
        DataType::Float64 => "double".into(),
        DataType::Float32 => "float".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Timestamp(_, _) => "timestamp".into(),
        DataType::Decimal128(p, s) => format!("decimal({p},{s})"),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "binary".into(),
        DataType::Dictionary(_, v) => hive_type(v)?,
        DataType::List(f) | DataType::LargeList(f) => format!("array<{}>", hive_type(f.data_type())?),
        DataType::Struct(fields) => format!("struct<{}>", fields.iter().map(|f| Ok(format!("{}:{}", f.name(), hive_type(f.data_type())?))).collect::<Result<Vec<_>>>()?.join(",")),
        DataType::Map(f, _) => match f.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => format!("map<{},{}>", hive_type(kv[0].data_type())?, hive_type(kv[1].data_type())?),
            other => return Err(Error::Config(format!("a map's entries must be a key and a value, not {other}"))),
        },
        other => return Err(Error::Config(format!("no Hive type for the Arrow type {other}"))),
    })
}

/// The columns of the table at `path` (`gold/daily_sales`), read from its current schema;
/// `None` when the table does not exist yet.
pub async fn columns(lake: &Lake, path: &str) -> Result<Option<Columns>> {
    let uri = lake.table(path)?;
    let Some(table) = crate::tables::open(lake, &uri).await? else { return Ok(None) };
    let ctx = crate::tables::session();
    crate::tables::register(&ctx, "t", &table).await?;
    let df = ctx.table("t").await.map_err(|e| Error::query(uri.as_str(), e))?;
    let schema = df.schema().as_arrow().clone();
    Ok(Some(schema.fields().iter().map(|f| Ok((f.name().clone(), hive_type(f.data_type())?))).collect::<Result<Columns>>()?))
}

/// Whether tables of `layer` have Glue definitions (the BI layers).
pub fn catalogued(layer: alkasba_lake::layout::Layer) -> bool {
    use alkasba_lake::layout::Layer;
    matches!(layer, Layer::Silver | Layer::Gold | Layer::Ops)
}

/// The columns of every catalogued table of the registry that exists in `lake`, by path.
pub async fn lake_columns(lake: &Lake) -> Result<BTreeMap<String, Columns>> {
    let mut out = BTreeMap::new();
    for spec in crate::registry::registry().tables().iter().filter(|t| catalogued(t.layer)) {
        if let Some(cols) = columns(lake, &spec.path).await? {
            out.insert(spec.path.clone(), cols);
        }
    }
    Ok(out)
}

/// The tables of `tables` whose columns in `template` are not these (empty: up to date).
pub fn stale(template: &str, tables: &BTreeMap<String, Columns>) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (path, cols) in tables {
        if write_template(template, &BTreeMap::from([(path.clone(), cols.clone())]))? != template {
            out.push(path.clone());
        }
    }
    Ok(out)
}

/// `template` (the SAM template's text) with each table of `tables` (by lake path) given exactly
/// those `Columns` in its Glue definition's storage descriptor: placed before its `Location`,
/// replacing any columns written before. Other text is left as it is; a table with no Glue
/// definition in the template is an error.
pub fn write_template(template: &str, tables: &BTreeMap<String, Columns>) -> Result<String> {
    let mut lines: Vec<String> = template.lines().map(str::to_string).collect();
    for (path, cols) in tables {
        let location = format!("Location: !Sub \"s3://${{LakeBucket}}/{path}/\"");
        let at = lines.iter().position(|l| l.trim() == location).ok_or_else(|| Error::Config(format!("infra/template.yaml has no Glue table located at {path}/")))?;
        let indent: String = lines[at].chars().take_while(|c| *c == ' ').collect();
        // The columns written before: a `Columns:` line right above, with its items.
        let mut start = at;
        while start > 0 && lines[start - 1].starts_with(&format!("{indent}  - ")) {
            start -= 1;
        }
        if start > 0 && lines[start - 1] == format!("{indent}Columns:") {
            start -= 1;
        } else {
            start = at;
        }
        let mut block = vec![format!("{indent}Columns:")];
        block.extend(cols.iter().map(|(name, ty)| format!("{indent}  - {{Name: {name}, Type: \"{ty}\"}}")));
        lines.splice(start..at, block);
    }
    let mut out = lines.join("\n");
    if template.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::arrow::datatypes::{Field, TimeUnit};

    #[test]
    fn arrow_types_map_to_hive() {
        assert_eq!(hive_type(&DataType::Decimal128(18, 2)).unwrap(), "decimal(18,2)");
        assert_eq!(hive_type(&DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))).unwrap(), "timestamp");
        let list = DataType::List(std::sync::Arc::new(Field::new("item", DataType::Utf8, true)));
        assert_eq!(hive_type(&list).unwrap(), "array<string>");
        assert!(hive_type(&DataType::Duration(TimeUnit::Second)).unwrap_err().to_string().contains("Duration"));
    }

    #[test]
    fn columns_are_written_before_the_location_and_replaced_on_a_rerun() {
        let template = "  T:\n    Properties:\n        StorageDescriptor:\n          Location: !Sub \"s3://${LakeBucket}/gold/x/\"\n          SerdeInfo: {}\n";
        let mut t = BTreeMap::new();
        t.insert("gold/x".to_string(), vec![("a".to_string(), "bigint".to_string()), ("b".to_string(), "decimal(18,2)".to_string())]);
        let once = write_template(template, &t).unwrap();
        assert!(once.contains("          Columns:\n            - {Name: a, Type: \"bigint\"}\n            - {Name: b, Type: \"decimal(18,2)\"}\n          Location:"), "{once}");
        assert_eq!(write_template(&once, &t).unwrap(), once, "idempotent");
        t.insert("gold/x".to_string(), vec![("c".to_string(), "string".to_string())]);
        let changed = write_template(&once, &t).unwrap();
        assert!(changed.contains("Columns:\n            - {Name: c, Type: \"string\"}\n          Location:") && !changed.contains("Name: a"), "{changed}");
        t.insert("gold/missing".to_string(), vec![]);
        assert!(write_template(template, &t).unwrap_err().to_string().contains("gold/missing"));
    }
}
