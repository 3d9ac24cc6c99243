//! A group's valid rows appended straight into Arrow builders as each record is processed, so a
//! group holds its rows once, as the bytes of its future batch, instead of as a `Row` per record
//! (cells, token and clear strings, a map of extra fields) and then again as the batch built from
//! them. Issue 20: a group's memory is what bounds its size, and the size of a group is what
//! sets how many commits a task makes.

use std::collections::BTreeMap;
use std::sync::Arc;

use alkasba_lake::arrow::array::{Array, ArrayRef, BooleanBuilder, Decimal128Builder, Float64Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder};
use alkasba_lake::arrow::datatypes::{DataType, Field, Schema};
use alkasba_lake::arrow::record_batch::RecordBatch;

use crate::record::{Cell, KEY, Prepared, Row, VERSION, meta_columns};
use crate::{Error, Result, SEALED};

/// One typed column being built.
enum Typed {
    Int(Int64Builder),
    Float(Float64Builder),
    Dec(Decimal128Builder),
    Bool(BooleanBuilder),
    Ts(TimestampMicrosecondBuilder),
    Str(StringBuilder),
}

impl Typed {
    fn new(ty: &DataType) -> Result<Self> {
        Ok(match ty {
            DataType::Int64 => Self::Int(Int64Builder::new()),
            DataType::Float64 => Self::Float(Float64Builder::new()),
            DataType::Decimal128(p, s) => Self::Dec(Decimal128Builder::new().with_precision_and_scale(*p, *s).map_err(|e| Error::Batch(e.to_string()))?),
            DataType::Boolean => Self::Bool(BooleanBuilder::new()),
            DataType::Timestamp(_, _) => Self::Ts(TimestampMicrosecondBuilder::new().with_timezone("UTC")),
            _ => Self::Str(StringBuilder::new()),
        })
    }

    /// Appends `cell`; a cell of another type than the column's is null (a record's value that
    /// did not read as the declared type: validation has quarantined such records already).
    fn append(&mut self, cell: &Cell) {
        match self {
            Self::Int(b) => b.append_option(if let Cell::Int(i) = cell { Some(*i) } else { None }),
            Self::Float(b) => b.append_option(if let Cell::Float(f) = cell { Some(*f) } else { None }),
            Self::Dec(b) => b.append_option(if let Cell::Dec(d) = cell { Some(*d) } else { None }),
            Self::Bool(b) => b.append_option(if let Cell::Bool(x) = cell { Some(*x) } else { None }),
            Self::Ts(b) => b.append_option(if let Cell::Ts(x) = cell { Some(*x) } else { None }),
            Self::Str(b) => b.append_option(if let Cell::Str(s) = cell { Some(s.as_ref()) } else { None }),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Self::Int(b) => fitted(b.finish()),
            Self::Float(b) => fitted(b.finish()),
            Self::Dec(b) => fitted(b.finish()),
            Self::Bool(b) => fitted(b.finish()),
            Self::Ts(b) => fitted(b.finish()),
            Self::Str(b) => fitted(b.finish()),
        }
    }
}

/// `builder` emptied into a new one sized for `factor` times what it holds, holding it.
fn regrown(builder: &mut StringBuilder, factor: f64) -> Result<StringBuilder> {
    let done = builder.finish();
    let scaled = |n: usize| (n as f64 * factor).ceil() as usize;
    let mut grown = StringBuilder::with_capacity(scaled(done.len()), scaled(done.value_data().len()));
    grown.append_array(&done).map_err(|e| Error::Batch(e.to_string()))?;
    Ok(grown)
}

/// `array` without the spare capacity its builder grew (buffers double as they fill: up to
/// half of a column is spare, and the batch is held through its Parquet encoding and upload).
fn fitted<A: Array + 'static>(mut array: A) -> ArrayRef {
    array.shrink_to_fit();
    Arc::new(array)
}

/// The builders of a stream's bronze columns.
struct Builders {
    keys: StringBuilder,
    versions: StringBuilder,
    pages: Vec<u64>,
    columns: Vec<Typed>,
    tokens: Vec<StringBuilder>,
    clear: Vec<StringBuilder>,
    sealed: StringBuilder,
    /// Fields kept in clear the stream does not declare, by column name; one that first appears
    /// at row `i` starts with `i` nulls.
    extra: BTreeMap<String, StringBuilder>,
}

impl Builders {
    fn new(prep: &Prepared) -> Result<Self> {
        let strings = |n: usize| (0..n).map(|_| StringBuilder::new()).collect::<Vec<_>>();
        Ok(Self {
            keys: StringBuilder::new(),
            versions: StringBuilder::new(),
            pages: Vec::new(),
            columns: prep.columns().iter().map(|c| Typed::new(&Prepared::column_type(c))).collect::<Result<_>>()?,
            tokens: strings(prep.stream.tokens.len()),
            clear: strings(prep.stream.clear.len()),
            sealed: StringBuilder::new(),
            extra: BTreeMap::new(),
        })
    }
}

/// A group's valid rows, as Arrow builders ([`Prepared::bronze_rows_batch`] makes the batch).
#[derive(Default)]
pub struct BronzeRows {
    /// Made at the first row, from the stream it belongs to.
    builders: Option<Builders>,
}

impl std::fmt::Debug for BronzeRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BronzeRows").field("rows", &self.len()).finish()
    }
}

impl BronzeRows {
    /// Sizes the text columns (most of a row's bytes) for `factor` times the rows they hold,
    /// at the bytes per row seen so far. A group calls it after its first page with the
    /// pages it expects: buffers that double as they fill copy all they hold at each doubling
    /// (reallocation copies were a quarter of a fetcher's page faults, `perf record -e
    /// page-faults`), and end up to half spare until `fitted` copies them once more. Sized
    /// from the first page they grow no more when later pages are alike; when they are not,
    /// they double as before. (The processing step's peak memory did not move measurably:
    /// 34-38 MB for 10,000 orders before and after, `alkasba-bench floor --memory 100`; that
    /// peak is the pages' JSON trees and the group's maps more than its columns.)
    pub fn reserve_for(&mut self, factor: f64) -> Result<()> {
        let Some(b) = &mut self.builders else { return Ok(()) };
        if factor <= 1.0 {
            return Ok(());
        }
        for builder in [&mut b.keys, &mut b.versions, &mut b.sealed].into_iter().chain(&mut b.tokens).chain(&mut b.clear).chain(b.extra.values_mut()) {
            *builder = regrown(builder, factor)?;
        }
        for column in &mut b.columns {
            if let Typed::Str(builder) = column {
                *builder = regrown(builder, factor)?;
            }
        }
        Ok(())
    }

    /// Rows appended so far.
    pub fn len(&self) -> usize {
        self.builders.as_ref().map_or(0, |b| b.pages.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `row` (a row of `prep`'s stream), which is dropped.
    pub fn push(&mut self, prep: &Prepared, row: Row) -> Result<()> {
        let b = match &mut self.builders {
            Some(b) => b,
            none => none.insert(Builders::new(prep)?),
        };
        let before = b.pages.len();
        let Row { key, version, page, cells, tokens, clear, extra, sealed } = row;
        b.keys.append_value(key);
        b.versions.append_value(version);
        b.pages.push(page);
        for (builder, cell) in b.columns.iter_mut().zip(&cells) {
            builder.append(cell);
        }
        for (builder, token) in b.tokens.iter_mut().zip(&tokens) {
            builder.append_option(token.as_deref());
        }
        for (builder, value) in b.clear.iter_mut().zip(&clear) {
            builder.append_option(value.as_deref());
        }
        b.sealed.append_option(sealed.as_deref());
        // Both sorted by name: one merge, no lookup per field (20 of them in an order).
        let mut fields = extra.into_iter().peekable();
        let mut first_seen = Vec::new();
        for (name, builder) in b.extra.iter_mut() {
            while let Some(f) = fields.next_if(|(n, _)| n.as_ref() < name.as_str()) {
                first_seen.push(f);
            }
            match fields.next_if(|(n, _)| n.as_ref() == name.as_str()) {
                Some((_, value)) => builder.append_value(value),
                None => builder.append_null(),
            }
        }
        // Fields this row is the first to have: null in every row before it.
        for (name, value) in first_seen.into_iter().chain(fields) {
            let mut builder = StringBuilder::new();
            builder.append_nulls(before);
            builder.append_value(value);
            b.extra.insert(name.into_owned(), builder);
        }
        Ok(())
    }
}

impl Prepared {
    /// The bronze batch of `rows`. Columns: key and version, the typed schema fields, the
    /// tokens and clear columns, the sealed part (`_sealed`), every other field kept in clear as
    /// text (new ones extend the table's schema), then run, page, ingestion time and date.
    pub fn bronze_rows_batch(&self, rows: BronzeRows, run_id: &str, now: chrono::DateTime<chrono::Utc>) -> Result<RecordBatch> {
        let mut b = match rows.builders {
            Some(b) => b,
            None => Builders::new(self)?,
        };
        let n = b.pages.len();
        let mut fields = vec![Field::new(KEY, DataType::Utf8, false), Field::new(VERSION, DataType::Utf8, false)];
        let mut arrays: Vec<ArrayRef> = vec![fitted(b.keys.finish()), fitted(b.versions.finish())];
        for (c, builder) in self.columns().iter().zip(&mut b.columns) {
            fields.push(Field::new(&c.name, Self::column_type(c), true));
            arrays.push(builder.finish());
        }
        for (name, builder) in self.stream.tokens.keys().zip(&mut b.tokens) {
            fields.push(Field::new(name, DataType::Utf8, true));
            arrays.push(fitted(builder.finish()));
        }
        for (name, builder) in self.stream.clear.keys().zip(&mut b.clear) {
            fields.push(Field::new(name, DataType::Utf8, true));
            arrays.push(fitted(builder.finish()));
        }
        fields.push(Field::new(SEALED, DataType::Utf8, true));
        arrays.push(fitted(b.sealed.finish()));
        for (name, mut builder) in b.extra {
            // An undeclared field whose column name is one of the above (`_sealed`, a token's)
            // is not a column of its own.
            if fields.iter().any(|f| *f.name() == name) {
                continue;
            }
            fields.push(Field::new(&name, DataType::Utf8, true));
            arrays.push(fitted(builder.finish()));
        }
        meta_columns(&mut fields, &mut arrays, b.pages.into_iter(), run_id, now, n);
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(|e| Error::Batch(e.to_string()))
    }

    /// The bronze batch of `rows` ([`Prepared::bronze_rows_batch`]).
    pub fn bronze_batch(&self, rows: &[Row], run_id: &str, now: chrono::DateTime<chrono::Utc>) -> Result<RecordBatch> {
        let mut built = BronzeRows::default();
        for row in rows {
            built.push(self, row.clone())?;
        }
        self.bronze_rows_batch(built, run_id, now)
    }
}
