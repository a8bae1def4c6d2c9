//! Reading and writing the files of the command line: point tables (CSV)
//! and mixtures (JSON), with errors that name the file and the line.

use crate::reference::Mixture64;
use std::borrow::Cow;
use std::fmt;
use std::io::Read;
use std::path::Path;

/// An error of the command line: one line of text and the process exit
/// code (2 for bad input or usage, 1 for a run that failed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CliError {
    /// Exit code.
    pub code: i32,
    /// The message, one line.
    pub message: String,
}

impl CliError {
    /// Bad input or usage: exit code 2.
    pub fn input(message: impl Into<String>) -> Self {
        Self {
            code: 2,
            message: one_line(message.into()),
        }
    }

    /// A run that could not complete or a check that failed: exit code 1.
    pub fn failed(message: impl Into<String>) -> Self {
        Self {
            code: 1,
            message: one_line(message.into()),
        }
    }
}

fn one_line(s: String) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// The largest coordinate accepted, the core's limit (`gmm_core::MAX_ABS_COORDINATE`).
const MAX_ABS: f64 = 1e12;

/// A table of points read from a CSV file.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// The file it came from, for messages.
    pub path: String,
    /// The points.
    pub points: Vec<[f64; 2]>,
    /// Per-point weights, from `--weights-column`.
    pub weights: Option<Vec<f64>>,
    /// Per-point true labels, from a `label` column of non-negative
    /// integers below 2^20 when there is one (ignored otherwise).
    pub labels: Option<Vec<usize>>,
    /// The file line of each point (1-based, the header is line 1).
    pub lines: Vec<u64>,
}

impl Dataset {
    /// The points as f32, as the core takes them.
    #[must_use]
    pub fn points_f32(&self) -> Vec<[f32; 2]> {
        self.points
            .iter()
            .map(|p| [p[0] as f32, p[1] as f32])
            .collect()
    }

    /// The weights as f32.
    #[must_use]
    pub fn weights_f32(&self) -> Option<Vec<f32>> {
        self.weights
            .as_ref()
            .map(|w| w.iter().map(|&v| v as f32).collect())
    }

    /// The file line of point `index`.
    #[must_use]
    pub fn line_of(&self, index: usize) -> u64 {
        self.lines.get(index).copied().unwrap_or(0)
    }

    /// Number of points with a positive weight.
    #[must_use]
    pub fn n_positive(&self) -> usize {
        match &self.weights {
            Some(w) => w.iter().filter(|&&v| v > 0.0).count(),
            None => self.points.len(),
        }
    }

    /// Sum of the weights (the number of points when unweighted).
    #[must_use]
    pub fn total_weight(&self) -> f64 {
        match &self.weights {
            Some(w) => w.iter().sum(),
            None => self.points.len() as f64,
        }
    }
}

fn parse_number(path: &str, line: u64, column: &str, text: &str) -> Result<f64, CliError> {
    let v: f64 = text.trim().parse().map_err(|_| {
        CliError::input(format!(
            "{path}:{line}: field `{column}` = {text:?} is not a number"
        ))
    })?;
    if !v.is_finite() {
        return Err(CliError::input(format!(
            "{path}:{line}: field `{column}` = {text:?} is not finite"
        )));
    }
    Ok(v)
}

/// What a command needs of a table of points, whichever way it is stored:
/// [`Dataset`] keeps f64 points, labels and every line number (for the
/// reference engine and plots); [`CompactDataset`] keeps the f32 points the
/// core takes and nothing per point beyond them (for core fits on large
/// files).
pub trait PointTable {
    /// The file it came from, for messages.
    fn path(&self) -> &str;
    /// Number of points.
    fn n_points(&self) -> usize;
    /// The file line of point `index` (1-based, the header is line 1).
    fn line_of(&self, index: usize) -> u64;
    /// The points as f32, as the core takes them.
    fn core_points(&self) -> Cow<'_, [[f32; 2]]>;
    /// The weights as f32, when there is a weights column.
    fn core_weights(&self) -> Option<Cow<'_, [f32]>>;
    /// The points as f64, as the reference takes them.
    fn wide_points(&self) -> Cow<'_, [[f64; 2]]>;
    /// The weights as f64, when there is a weights column.
    fn wide_weights(&self) -> Option<Cow<'_, [f64]>>;
    /// Number of points with a positive weight.
    fn n_positive(&self) -> usize;
    /// Sum of the weights (the number of points when unweighted).
    fn total_weight(&self) -> f64;
}

impl PointTable for Dataset {
    fn path(&self) -> &str {
        &self.path
    }
    fn n_points(&self) -> usize {
        self.points.len()
    }
    fn line_of(&self, index: usize) -> u64 {
        Dataset::line_of(self, index)
    }
    fn core_points(&self) -> Cow<'_, [[f32; 2]]> {
        Cow::Owned(self.points_f32())
    }
    fn core_weights(&self) -> Option<Cow<'_, [f32]>> {
        self.weights_f32().map(Cow::Owned)
    }
    fn wide_points(&self) -> Cow<'_, [[f64; 2]]> {
        Cow::Borrowed(&self.points)
    }
    fn wide_weights(&self) -> Option<Cow<'_, [f64]>> {
        self.weights.as_deref().map(Cow::Borrowed)
    }
    fn n_positive(&self) -> usize {
        Dataset::n_positive(self)
    }
    fn total_weight(&self) -> f64 {
        Dataset::total_weight(self)
    }
}

/// A table of points stored as the core takes them: 8 bytes per point,
/// plus 4 per weight when there is a weights column, and no line numbers.
///
/// A point's file line is its index + 2 (after the header) until the CSV
/// reader skips a blank line or a quoted field spans lines; only those
/// shifts are kept, so memory grows with them, not with the points.
#[derive(Clone, Debug, PartialEq)]
pub struct CompactDataset {
    /// The file it came from, for messages.
    pub path: String,
    /// The points, each coordinate the f64 value read rounded to f32.
    pub points: Vec<[f32; 2]>,
    /// Per-point weights, from `--weights-column`, rounded to f32.
    pub weights: Option<Vec<f32>>,
    /// `(index, line)`: from point `index` on, point `i` is on line
    /// `line + (i - index)`, until the next entry.
    line_shifts: Vec<(usize, u64)>,
}

impl PointTable for CompactDataset {
    fn path(&self) -> &str {
        &self.path
    }
    fn n_points(&self) -> usize {
        self.points.len()
    }
    fn line_of(&self, index: usize) -> u64 {
        let at = self.line_shifts.partition_point(|&(i, _)| i <= index);
        match at.checked_sub(1).and_then(|a| self.line_shifts.get(a)) {
            Some(&(i, line)) => line + (index - i) as u64,
            None => 0,
        }
    }
    fn core_points(&self) -> Cow<'_, [[f32; 2]]> {
        Cow::Borrowed(&self.points)
    }
    fn core_weights(&self) -> Option<Cow<'_, [f32]>> {
        self.weights.as_deref().map(Cow::Borrowed)
    }
    fn wide_points(&self) -> Cow<'_, [[f64; 2]]> {
        Cow::Owned(self.points.iter().map(|p| p.map(f64::from)).collect())
    }
    fn wide_weights(&self) -> Option<Cow<'_, [f64]>> {
        self.weights
            .as_ref()
            .map(|w| Cow::Owned(w.iter().map(|&v| f64::from(v)).collect()))
    }
    fn n_positive(&self) -> usize {
        match &self.weights {
            Some(w) => w.iter().filter(|&&v| v > 0.0).count(),
            None => self.points.len(),
        }
    }
    fn total_weight(&self) -> f64 {
        match &self.weights {
            Some(w) => w.iter().map(|&v| f64::from(v)).sum(),
            None => self.points.len() as f64,
        }
    }
}

/// One data row, validated.
struct Row<'a> {
    line: u64,
    point: [f64; 2],
    weight: Option<f64>,
    /// The `label` field when the header has a `label` column.
    label: Option<&'a str>,
}

/// Reads the CSV table from `input` row by row (through the csv crate's
/// small buffer, so the file is never held whole), validating each row
/// and handing it to `on_row`. Returns whether the header has a `label`
/// column and whether a weights column was asked for.
fn scan<R: Read>(
    name: &str,
    input: R,
    weights_column: Option<&str>,
    mut on_row: impl FnMut(Row<'_>),
) -> Result<(), CliError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(input);
    let csv_error = |e: csv::Error| -> CliError {
        let line = e.position().map_or(0, csv::Position::line);
        match e.kind() {
            csv::ErrorKind::UnequalLengths {
                expected_len, len, ..
            } => CliError::input(format!(
                "{name}:{line}: expected {expected_len} fields like the header, found {len}"
            )),
            csv::ErrorKind::Utf8 { .. } => {
                CliError::input(format!("{name}:{line}: the line is not valid UTF-8"))
            }
            csv::ErrorKind::Io(io) => CliError::input(format!("{name}: {io}")),
            _ => CliError::input(format!("{name}:{line}: {e}")),
        }
    };
    let header: Vec<String> = reader
        .headers()
        .map_err(csv_error)?
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    let mut record = csv::StringRecord::new();
    let mut more = true;
    if header.iter().all(String::is_empty) {
        // csv skips blank lines, so a blank header and no record is a
        // file of nothing but white space.
        more = reader.read_record(&mut record).map_err(csv_error)?;
        if !more {
            return Err(CliError::input(format!(
                "{name}: the file is empty (expected a header line such as `x,y`)"
            )));
        }
    }
    if header.len() < 2 {
        return Err(CliError::input(format!(
            "{name}:1: the header has {} column(s); at least two (x,y) are needed",
            header.len()
        )));
    }
    if header.iter().any(|h| h.parse::<f64>().is_ok()) {
        return Err(CliError::input(format!(
            "{name}:1: expected a header line such as `x,y`, found numbers"
        )));
    }
    let find = |c: &str| header.iter().position(|h| h == c);
    let ix = find("x").unwrap_or(0);
    let iy = find("y").unwrap_or(1);
    let il = find("label");
    let iw = match weights_column {
        Some(w) => Some(find(&w.to_ascii_lowercase()).ok_or_else(|| {
            CliError::input(format!(
                "{name}:1: no column named `{w}` for the weights (columns: {})",
                header.join(", ")
            ))
        })?),
        None => None,
    };
    let column = |i: usize| header.get(i).map_or("?", String::as_str);
    let mut rows = 0usize;
    // The blank-header case above has already read the first record.
    let mut fresh = !more;
    loop {
        if !fresh && !reader.read_record(&mut record).map_err(csv_error)? {
            break;
        }
        fresh = false;
        let line = record.position().map_or(0, csv::Position::line);
        let field = |i: usize| record.get(i).unwrap_or("");
        let x = parse_number(name, line, column(ix), field(ix))?;
        let y = parse_number(name, line, column(iy), field(iy))?;
        for (v, i) in [(x, ix), (y, iy)] {
            if v.abs() > MAX_ABS {
                return Err(CliError::input(format!(
                    "{name}:{line}: field `{}` = {v:e} is larger in magnitude than {MAX_ABS:e}",
                    column(i)
                )));
            }
        }
        let weight = match iw {
            Some(i) => {
                let w = parse_number(name, line, column(i), field(i))?;
                if !(0.0..=MAX_ABS).contains(&w) {
                    return Err(CliError::input(format!(
                        "{name}:{line}: weight `{}` = {w} is not in [0, 1e12]",
                        column(i)
                    )));
                }
                Some(w)
            }
            None => None,
        };
        on_row(Row {
            line,
            point: [x, y],
            weight,
            label: il.map(field),
        });
        rows += 1;
    }
    if rows == 0 {
        return Err(CliError::input(format!(
            "{name}: no data rows after the header"
        )));
    }
    Ok(())
}

fn open(path: &Path) -> Result<(String, std::fs::File), CliError> {
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| CliError::input(format!("{name}: {e}")))?;
    Ok((name, file))
}

/// Reads points from a CSV file with a header line.
///
/// The coordinates are the columns named `x` and `y` (else the first two
/// columns); a column named `label` (non-negative integers) gives true
/// labels; `weights_column` names a column of non-negative weights.
///
/// # Errors
/// A [`CliError::input`] naming the file and line for an unreadable or
/// empty file, a missing header or column, a row with the wrong number of
/// fields, a field that is not a finite number, a coordinate beyond 1e12
/// in magnitude, a negative weight, or no data rows.
pub fn read_points(path: &Path, weights_column: Option<&str>) -> Result<Dataset, CliError> {
    let (name, file) = open(path)?;
    points_from(&name, file, weights_column)
}

/// [`read_points`] on bytes already read; `name` is used in messages.
///
/// # Errors
/// As [`read_points`].
pub fn parse_points(
    name: &str,
    text: &[u8],
    weights_column: Option<&str>,
) -> Result<Dataset, CliError> {
    points_from(name, text, weights_column)
}

fn points_from<R: Read>(
    name: &str,
    input: R,
    weights_column: Option<&str>,
) -> Result<Dataset, CliError> {
    let mut data = Dataset {
        path: name.to_string(),
        points: Vec::new(),
        weights: weights_column.map(|_| Vec::new()),
        labels: Some(Vec::new()),
        lines: Vec::new(),
    };
    let mut has_labels = false;
    scan(name, input, weights_column, |row| {
        if let (Some(w), Some(ws)) = (row.weight, data.weights.as_mut()) {
            ws.push(w);
        }
        // Labels only colour plots: a column of anything but small
        // non-negative integers is not a label column, and is ignored.
        if let Some(text) = row.label {
            has_labels = true;
            match text.parse::<usize>() {
                Ok(l) if l < 1 << 20 => {
                    if let Some(ls) = data.labels.as_mut() {
                        ls.push(l);
                    }
                }
                _ => data.labels = None,
            }
        }
        data.points.push(row.point);
        data.lines.push(row.line);
    })?;
    if !has_labels {
        data.labels = None;
    }
    Ok(data)
}

/// Reads points like [`read_points`] straight into f32 storage for the
/// core: the same validation and messages, no f64 copy, no labels, and no
/// line number per point.
///
/// # Errors
/// As [`read_points`].
pub fn read_compact(path: &Path, weights_column: Option<&str>) -> Result<CompactDataset, CliError> {
    let (name, file) = open(path)?;
    compact_from(&name, file, weights_column)
}

/// [`read_compact`] on bytes already read; `name` is used in messages.
///
/// # Errors
/// As [`read_points`].
pub fn parse_compact(
    name: &str,
    text: &[u8],
    weights_column: Option<&str>,
) -> Result<CompactDataset, CliError> {
    compact_from(name, text, weights_column)
}

fn compact_from<R: Read>(
    name: &str,
    input: R,
    weights_column: Option<&str>,
) -> Result<CompactDataset, CliError> {
    let mut data = CompactDataset {
        path: name.to_string(),
        points: Vec::new(),
        weights: weights_column.map(|_| Vec::new()),
        line_shifts: Vec::new(),
    };
    scan(name, input, weights_column, |row| {
        let index = data.points.len();
        let expected = data
            .line_shifts
            .last()
            .map(|&(i, line)| line + (index - i) as u64);
        if expected != Some(row.line) {
            data.line_shifts.push((index, row.line));
        }
        if let (Some(w), Some(ws)) = (row.weight, data.weights.as_mut()) {
            ws.push(w as f32);
        }
        data.points.push([row.point[0] as f32, row.point[1] as f32]);
    })?;
    Ok(data)
}

/// Reads a mixture (`init.json`, `mixture.json`, or a `gmm fit --json`
/// output) and validates it.
///
/// # Errors
/// A [`CliError::input`] naming the file, and the line and column for
/// malformed JSON or the field for invalid parameters.
pub fn read_mixture(path: &Path) -> Result<Mixture64, CliError> {
    let name = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|e| CliError::input(format!("{name}: {e}")))?;
    parse_mixture(&name, &text)
}

/// [`read_mixture`] on text already read; `name` is used in messages.
///
/// # Errors
/// As [`read_mixture`].
pub fn parse_mixture(name: &str, text: &str) -> Result<Mixture64, CliError> {
    let m: Mixture64 = serde_json::from_str(text).map_err(|e| {
        CliError::input(format!(
            "{name}:{}:{}: {}",
            e.line(),
            e.column(),
            strip_position(&e.to_string())
        ))
    })?;
    m.validate()
        .map_err(|e| CliError::input(format!("{name}: {e}")))?;
    Ok(m)
}

/// serde_json's message without its trailing " at line L column C".
pub(crate) fn strip_position(s: &str) -> &str {
    s.rfind(" at line ").map_or(s, |i| &s[..i])
}

/// Writes `text` to `path`, or to stdout when `path` is `None` or `-`.
///
/// # Errors
/// A [`CliError::input`] naming the file when it cannot be written.
pub fn write_output(path: Option<&Path>, text: &str) -> Result<(), CliError> {
    match path {
        Some(p) if p != Path::new("-") => std::fs::write(p, text)
            .map_err(|e| CliError::input(format!("{}: cannot write: {e}", p.display()))),
        _ => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .map_err(|e| CliError::failed(format!("stdout: {e}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse_points("d.csv", text.as_bytes(), None)
            .unwrap_err()
            .message
    }

    #[test]
    fn reads_columns_by_name_and_labels() {
        let d = parse_points("d.csv", b"label,y,x\n2,1.5,-3\n0,0,1e3\n", None).unwrap();
        assert_eq!(d.points, vec![[-3.0, 1.5], [1000.0, 0.0]]);
        assert_eq!(d.labels, Some(vec![2, 0]));
        assert_eq!(d.lines, vec![2, 3]);
    }

    #[test]
    fn a_label_column_of_text_is_ignored() {
        let d = parse_points("d.csv", b"x,y,label\n1,2,0\n3,4,cat\n", None).unwrap();
        assert_eq!(d.labels, None);
        assert_eq!(d.points.len(), 2);
    }

    #[test]
    fn bad_tables_name_file_and_line() {
        assert!(err("").contains("d.csv: the file is empty"));
        assert!(err("x,y\n").contains("no data rows"));
        assert!(err("x,y\n1,2\n3\n").starts_with("d.csv:3: expected 2 fields"));
        assert!(
            err("x,y\n1,2\n3,abc\n").starts_with("d.csv:3: field `y` = \"abc\" is not a number")
        );
        assert!(err("x,y\nnan,2\n").contains("is not finite"));
        assert!(err("x,y\n1,inf\n").contains("is not finite"));
        assert!(err("x,y\n1,2e13\n").contains("larger in magnitude"));
        assert!(err("1,2\n3,4\n").contains("expected a header"));
        assert!(err("x\n1\n").contains("at least two"));
    }

    #[test]
    fn weights_column() {
        let d = parse_points("d.csv", b"x,y,w\n1,2,0.5\n3,4,2\n", Some("w")).unwrap();
        assert_eq!(d.weights, Some(vec![0.5, 2.0]));
        assert_eq!(d.total_weight(), 2.5);
        let e = parse_points("d.csv", b"x,y,w\n1,2,-1\n", Some("w")).unwrap_err();
        assert!(e.message.starts_with("d.csv:2: weight"), "{}", e.message);
        let e = parse_points("d.csv", b"x,y\n1,2\n", Some("w")).unwrap_err();
        assert!(e.message.contains("no column named `w`"));
    }

    #[test]
    fn compact_matches_the_f64_table_and_its_lines() {
        // A quoted field spans two lines: the lines after it shift.
        let text = b"x,y,w\n1,2,0.5\n\n\n3.1,4,2\n\"5\n\",6,1\n7,8,0\n";
        let wide = parse_points("d.csv", text, Some("w")).unwrap();
        let compact = parse_compact("d.csv", text, Some("w")).unwrap();
        // The csv crate dates a record after blank lines from the first blank
        // line (3, not 5); both readers keep its numbering.
        assert_eq!(wide.lines, vec![2, 3, 6, 8]);
        assert_eq!(compact.points, wide.points_f32());
        assert_eq!(compact.weights, wide.weights_f32());
        for i in 0..wide.points.len() {
            assert_eq!(PointTable::line_of(&compact, i), wide.line_of(i));
        }
        assert_eq!(compact.n_positive(), 3);
        assert_eq!(PointTable::total_weight(&compact), 3.5);
        // The start, and after the quoted line break.
        assert_eq!(compact.line_shifts, vec![(0, 2), (2, 6), (3, 8)]);
        let plain = parse_compact("d.csv", b"x,y\n1,2\n3,4\n", None).unwrap();
        assert_eq!(plain.weights, None);
        assert_eq!(plain.line_shifts, vec![(0, 2)]);
    }

    #[test]
    fn compact_errors_are_the_same_as_the_f64_tables() {
        for text in [
            "",
            "  \n",
            "x,y\n",
            "x,y\n1,2\n3\n",
            "x,y\n1,2\n3,abc\n",
            "x,y\nnan,2\n",
            "x,y\n1,2e13\n",
            "1,2\n3,4\n",
            "x\n1\n",
            "x,y\n1,2\n\n4,3,\n",
        ] {
            let a = parse_points("d.csv", text.as_bytes(), None).unwrap_err();
            let b = parse_compact("d.csv", text.as_bytes(), None).unwrap_err();
            assert_eq!(a, b, "{text:?}");
        }
        let bad_utf8 = b"x,y\n1,2\n\xff,3\n";
        let a = parse_points("d.csv", bad_utf8, None).unwrap_err();
        assert_eq!(a, parse_compact("d.csv", bad_utf8, None).unwrap_err());
        assert!(
            a.message
                .starts_with("d.csv:3: the line is not valid UTF-8"),
            "{}",
            a.message
        );
        assert!(err("  \n").contains("the file is empty"));
        let e = parse_compact("d.csv", b"x,y,w\n1,2,1\n1,2,-1\n", Some("w")).unwrap_err();
        assert!(e.message.starts_with("d.csv:3: weight"), "{}", e.message);
    }

    #[test]
    fn mixtures() {
        let ok = r#"{"weights":[1],"means":[[0,0]],"covariances":[[[1,0],[0,1]]],"extra":3}"#;
        assert_eq!(parse_mixture("m.json", ok).unwrap().k(), 1);
        let e = parse_mixture("m.json", "{\"weights\": [1,\n oops").unwrap_err();
        assert!(e.message.starts_with("m.json:2:"), "{}", e.message);
        let e = parse_mixture(
            "m.json",
            r#"{"weights":[1],"means":[[0,0]],"covariances":[[[1,2],[2,1]]]}"#,
        )
        .unwrap_err();
        assert!(
            e.message
                .contains("covariances[0] is not positive definite")
        );
        let e = parse_mixture("m.json", r#"{"weights":[1],"means":[[0,0]]}"#).unwrap_err();
        assert!(
            e.message.contains("missing field `covariances`"),
            "{}",
            e.message
        );
    }
}
