//! Plots with plotters: SVG, or PNG drawn with a font shipped inside the
//! binary (DejaVu Sans, subset; see `assets/LICENSE-DejaVu.txt`), so no
//! system font is needed.

use crate::data::CliError;
use crate::reference::{Mixture64, cholesky};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

/// The embedded font.
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans-subset.ttf");

/// Font family name used by every text element.
const FAMILY: &str = "sans-serif";

/// Size of every figure in pixels.
pub const SIZE: (u32, u32) = (900, 700);

/// Sixteen distinguishable colours (matplotlib's tab10, then six more).
const COLOURS: [RGBColor; 16] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(0, 0, 128),
    RGBColor(128, 128, 0),
    RGBColor(0, 128, 128),
    RGBColor(128, 0, 0),
    RGBColor(255, 215, 0),
    RGBColor(70, 240, 240),
];

/// The colour of component or series `i`.
#[must_use]
pub fn colour(i: usize) -> RGBColor {
    COLOURS[i % COLOURS.len()]
}

fn register_font() -> Result<(), CliError> {
    static ONCE: Once = Once::new();
    let mut ok = true;
    ONCE.call_once(|| {
        ok = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok();
    });
    if ok {
        Ok(())
    } else {
        Err(CliError::failed("the embedded font could not be loaded"))
    }
}

type DrawResult = Result<(), String>;

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Draws with `$draw(&root, ..)` into an SVG or PNG file chosen by the
/// extension of `$path`.
macro_rules! render {
    ($path:expr, $draw:ident ( $($arg:expr),* )) => {{
        let path: &Path = $path;
        register_font()?;
        let fail = |e: String| CliError::input(format!("{}: cannot draw: {e}", path.display()));
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("svg") => {
                let root = SVGBackend::new(path, SIZE).into_drawing_area();
                root.fill(&WHITE).map_err(err).map_err(fail)?;
                $draw(&root, $($arg),*).map_err(fail)?;
                root.present().map_err(err).map_err(fail)?;
            }
            Some("png") => {
                let root = BitMapBackend::new(path, SIZE).into_drawing_area();
                root.fill(&WHITE).map_err(err).map_err(fail)?;
                $draw(&root, $($arg),*).map_err(fail)?;
                root.present().map_err(err).map_err(fail)?;
            }
            _ => {
                return Err(CliError::input(format!(
                    "{}: the output must end in .svg or .png",
                    path.display()
                )))
            }
        }
        Ok(())
    }};
}

/// A tick label: at most four decimals, trailing zeros dropped ("2", "0.35", "-3.8").
fn tick(v: &f64) -> String {
    let s = format!("{v:.4}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        &s
    };
    if s == "-0" { "0".into() } else { s.to_string() }
}

/// A range covering `values` with a 5% margin (a unit range when empty or flat).
fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if lo > hi {
        return (0.0, 1.0);
    }
    let pad = if hi > lo { 0.05 * (hi - lo) } else { 0.5 };
    (lo - pad, hi + pad)
}

/// Widens one range so that a unit spans as many pixels on x as on y in
/// the scatter plots' plotting area (about 810 x 590 pixels), so ellipses
/// keep their true shape.
fn equal_aspect(xs: (f64, f64), ys: (f64, f64)) -> ((f64, f64), (f64, f64)) {
    const W: f64 = 810.0;
    const H: f64 = 590.0;
    let (dx, dy) = (xs.1 - xs.0, ys.1 - ys.0);
    if dx / W > dy / H {
        let pad = 0.5 * (dx * H / W - dy);
        (xs, (ys.0 - pad, ys.1 + pad))
    } else {
        let pad = 0.5 * (dy * W / H - dx);
        ((xs.0 - pad, xs.1 + pad), ys)
    }
}

/// The `s`-sigma ellipse of a Gaussian: `mu + s L (cos t, sin t)` with
/// `L L^T = S`.
fn ellipse(mean: [f64; 2], cov: &[[f64; 2]; 2], s: f64) -> Vec<(f64, f64)> {
    let Some(l) = cholesky(cov) else {
        return Vec::new();
    };
    (0..=120)
        .map(|i| {
            let t = std::f64::consts::TAU * f64::from(i) / 120.0;
            let (c, d) = (s * t.cos(), s * t.sin());
            (mean[0] + l[0][0] * c, mean[1] + l[1][0] * c + l[1][1] * d)
        })
        .collect()
}

/// Points coloured by a label, with a legend name per label.
pub struct Scatter<'a> {
    /// The points.
    pub points: &'a [[f64; 2]],
    /// A label per point (all 0 when `None`).
    pub labels: Option<&'a [usize]>,
    /// The legend text of label `j` (`None`: "component j").
    pub names: Option<&'a [String]>,
    /// Figure title.
    pub title: &'a str,
}

/// Mixture components drawn as 1/2/3-sigma ellipses.
pub struct Ellipses<'a> {
    /// The fitted mixture, coloured like the labels.
    pub fitted: &'a Mixture64,
    /// A second mixture (the truth) drawn as dashed black 2-sigma ellipses.
    pub truth: Option<&'a Mixture64>,
    /// Legend text of the `fitted` ellipses.
    pub label: &'a str,
}

fn draw_scatter<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    s: &Scatter<'_>,
    ellipses: Option<&Ellipses<'_>>,
) -> DrawResult {
    let (xs, ys) = equal_aspect(
        range(s.points.iter().map(|p| p[0])),
        range(s.points.iter().map(|p| p[1])),
    );
    let mut chart = ChartBuilder::on(root)
        .caption(s.title, (FAMILY, 24))
        .margin(15)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d(xs.0..xs.1, ys.0..ys.1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("x")
        .y_desc("y")
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .label_style((FAMILY, 16))
        .axis_desc_style((FAMILY, 18))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(err)?;
    let labels: std::collections::BTreeSet<usize> = match s.labels {
        Some(l) => l.iter().copied().collect(),
        None => std::iter::once(0).collect(),
    };
    for j in labels {
        let c = colour(j);
        let pts: Vec<(f64, f64)> = s
            .points
            .iter()
            .enumerate()
            .filter(|(i, _)| s.labels.is_none_or(|l| l.get(*i) == Some(&j)))
            .map(|(_, p)| (p[0], p[1]))
            .collect();
        let name = match s.names.and_then(|n| n.get(j)) {
            Some(n) => n.clone(),
            None if s.labels.is_none() => format!("{} points", pts.len()),
            None => format!("component {j} ({} points)", pts.len()),
        };
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 2, c.mix(0.6).filled())))
            .map_err(err)?
            .label(name)
            .legend(move |(x, y)| Circle::new((x + 10, y), 5, c.filled()));
    }
    if let Some(e) = ellipses {
        let m = e.fitted;
        for j in 0..m.k() {
            let c = colour(j);
            for s in 1..=3 {
                let width = if s == 2 { 3 } else { 1 };
                chart
                    .draw_series(LineSeries::new(
                        ellipse(m.means[j], &m.covariances[j], f64::from(s)),
                        c.stroke_width(width),
                    ))
                    .map_err(err)?;
            }
            chart
                .draw_series(std::iter::once(Cross::new(
                    (m.means[j][0], m.means[j][1]),
                    8,
                    BLACK.stroke_width(3),
                )))
                .map_err(err)?;
        }
        chart
            .draw_series(std::iter::once(PathElement::new(
                Vec::<(f64, f64)>::new(),
                BLACK,
            )))
            .map_err(err)?
            .label(e.label)
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(3)));
        if let Some(t) = e.truth {
            for j in 0..t.k() {
                chart
                    .draw_series(DashedLineSeries::new(
                        ellipse(t.means[j], &t.covariances[j], 2.0),
                        6,
                        4,
                        BLACK.stroke_width(2),
                    ))
                    .map_err(err)?;
            }
            chart
                .draw_series(std::iter::once(PathElement::new(
                    Vec::<(f64, f64)>::new(),
                    BLACK,
                )))
                .map_err(err)?
                .label("truth: 2 sigma (dashed)")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 8, y)], BLACK.stroke_width(2)));
        }
    }
    chart
        .configure_series_labels()
        .label_font((FAMILY, 16))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(err)?;
    Ok(())
}

/// A scatter plot of points coloured by label.
///
/// # Errors
/// [`CliError`] when the file cannot be drawn or has another extension
/// than `.svg` or `.png`.
pub fn scatter(path: &Path, s: &Scatter<'_>) -> Result<(), CliError> {
    render!(path, draw_scatter(s, None))
}

/// Points coloured by label with a mixture's 1/2/3-sigma ellipses over them.
///
/// # Errors
/// As [`scatter`].
pub fn fit(path: &Path, s: &Scatter<'_>, e: &Ellipses<'_>) -> Result<(), CliError> {
    render!(path, draw_scatter(s, Some(e)))
}

/// A named line of (x, y) values.
pub struct Series {
    /// Legend text.
    pub name: String,
    /// The values.
    pub values: Vec<(f64, f64)>,
    /// Drawn dashed (e.g. a reference level).
    pub dashed: bool,
    /// Colour index.
    pub colour: usize,
}

/// A line chart.
pub struct Lines<'a> {
    /// Figure title.
    pub title: &'a str,
    /// x-axis label.
    pub x_desc: &'a str,
    /// y-axis label.
    pub y_desc: &'a str,
    /// The lines.
    pub series: &'a [Series],
    /// Marked points (x, y, text), drawn as large hollow circles.
    pub marks: &'a [(f64, f64, String)],
    /// Where the legend goes.
    pub legend: SeriesLabelPosition,
    /// Empty space added above the data, as a fraction of its range (room
    /// for a legend at the top).
    pub headroom: f64,
}

fn draw_lines<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, l: &Lines<'_>) -> DrawResult {
    let all = || l.series.iter().flat_map(|s| s.values.iter());
    let xs = range(all().map(|v| v.0));
    let ys = range(all().map(|v| v.1).chain(l.marks.iter().map(|m| m.1)));
    // Room above the lines for the legend.
    let ys = (ys.0, ys.1 + l.headroom * (ys.1 - ys.0));
    let mut chart = ChartBuilder::on(root)
        .caption(l.title, (FAMILY, 24))
        .margin(15)
        .x_label_area_size(50)
        .y_label_area_size(90)
        .build_cartesian_2d(xs.0..xs.1, ys.0..ys.1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(l.x_desc)
        .y_desc(l.y_desc)
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .label_style((FAMILY, 16))
        .axis_desc_style((FAMILY, 18))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(err)?;
    for s in l.series {
        let c = colour(s.colour);
        let anno = if s.dashed {
            chart
                .draw_series(DashedLineSeries::new(
                    s.values.iter().copied(),
                    8,
                    5,
                    c.stroke_width(2),
                ))
                .map_err(err)?
        } else {
            chart
                .draw_series(LineSeries::new(s.values.iter().copied(), c.stroke_width(2)))
                .map_err(err)?
        };
        let dashed = s.dashed;
        anno.label(s.name.clone()).legend(move |(x, y)| {
            let len = if dashed { 8 } else { 20 };
            PathElement::new(vec![(x, y), (x + len, y)], c.stroke_width(3))
        });
        if s.values.len() <= 40 && !s.dashed {
            chart
                .draw_series(s.values.iter().map(|&p| Circle::new(p, 3, c.filled())))
                .map_err(err)?;
        }
    }
    for (x, y, text) in l.marks {
        let mark = EmptyElement::at((*x, *y))
            + Circle::new((0, 0), 9, BLACK.stroke_width(2))
            + Text::new(text.clone(), (6, -30), (FAMILY, 18).into_font());
        chart.draw_series(std::iter::once(mark)).map_err(err)?;
    }
    chart
        .configure_series_labels()
        .label_font((FAMILY, 16))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(l.legend.clone())
        .draw()
        .map_err(err)?;
    Ok(())
}

/// A line chart into an SVG or PNG file.
///
/// # Errors
/// As [`scatter`].
pub fn lines(path: &Path, l: &Lines<'_>) -> Result<(), CliError> {
    render!(path, draw_lines(l))
}

/// The paths of a streaming model's means over its snapshots, over the
/// points it learnt from.
pub struct StreamPaths<'a> {
    /// The points (drawn light grey), possibly empty.
    pub points: &'a [[f64; 2]],
    /// Per component, its mean at each snapshot, in order.
    pub paths: &'a [Vec<(f64, f64)>],
    /// Legend text per component.
    pub names: &'a [String],
    /// The last snapshot's mixture, drawn as 2-sigma ellipses.
    pub last: &'a Mixture64,
    /// Figure title.
    pub title: &'a str,
}

fn draw_stream<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    s: &StreamPaths<'_>,
) -> DrawResult {
    let xy = || {
        s.points
            .iter()
            .map(|p| (p[0], p[1]))
            .chain(s.paths.iter().flatten().copied())
    };
    let (xs, ys) = equal_aspect(range(xy().map(|p| p.0)), range(xy().map(|p| p.1)));
    let mut chart = ChartBuilder::on(root)
        .caption(s.title, (FAMILY, 24))
        .margin(15)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d(xs.0..xs.1, ys.0..ys.1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("x")
        .y_desc("y")
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .label_style((FAMILY, 16))
        .axis_desc_style((FAMILY, 18))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(err)?;
    if !s.points.is_empty() {
        let grey = RGBColor(170, 170, 170);
        chart
            .draw_series(
                s.points
                    .iter()
                    .map(|p| Circle::new((p[0], p[1]), 1, grey.mix(0.5).filled())),
            )
            .map_err(err)?
            .label(format!("{} points", s.points.len()))
            .legend(move |(x, y)| Circle::new((x + 10, y), 4, grey.filled()));
    }
    for (j, path) in s.paths.iter().enumerate() {
        let c = colour(j);
        chart
            .draw_series(LineSeries::new(
                ellipse(s.last.means[j], &s.last.covariances[j], 2.0),
                c.stroke_width(1),
            ))
            .map_err(err)?;
        // One element per segment: a thick polyline's miter joins spike
        // where a noisy path turns back on itself.
        chart
            .draw_series(
                path.windows(2)
                    .map(|w| PathElement::new(vec![w[0], w[1]], c.stroke_width(3))),
            )
            .map_err(err)?
            .label(s.names.get(j).cloned().unwrap_or_default())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3)));
        chart
            .draw_series(path.iter().map(|&p| Circle::new(p, 3, c.filled())))
            .map_err(err)?;
        if let Some(&first) = path.first() {
            chart
                .draw_series(std::iter::once(Circle::new(
                    first,
                    7,
                    BLACK.stroke_width(2),
                )))
                .map_err(err)?;
        }
        if let Some(&last) = path.last() {
            chart
                .draw_series(std::iter::once(Cross::new(last, 8, BLACK.stroke_width(3))))
                .map_err(err)?;
        }
    }
    chart
        .draw_series(std::iter::once(PathElement::new(
            Vec::<(f64, f64)>::new(),
            BLACK,
        )))
        .map_err(err)?
        .label("o first snapshot, x last, thin: last 2-sigma ellipse")
        .legend(|(x, y)| Circle::new((x + 10, y), 5, BLACK.stroke_width(2)));
    chart
        .configure_series_labels()
        .label_font((FAMILY, 16))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(err)?;
    Ok(())
}

/// The means' paths of a stream's snapshots over its points.
///
/// # Errors
/// As [`scatter`].
pub fn stream(path: &Path, s: &StreamPaths<'_>) -> Result<(), CliError> {
    render!(path, draw_stream(s))
}
