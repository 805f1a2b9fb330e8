//! SVG charts (plotters, SVG backend only), shared by the MySQL and
//! PostgreSQL real-server benchmarks.

use std::path::Path;

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

const POOLWARDEN: RGBColor = RGBColor(0xd9, 0x5f, 0x02);
const OTHER: RGBColor = RGBColor(0x5a, 0x7d, 0x9a);
const LIMIT: RGBColor = RGBColor(0x88, 0x88, 0x88);

/// Line colours, in contender order.
const PALETTE: [RGBColor; 8] = [
    RGBColor(0xd9, 0x5f, 0x02),
    RGBColor(0x1b, 0x9e, 0x77),
    RGBColor(0x75, 0x70, 0xb3),
    RGBColor(0xe7, 0x29, 0x8a),
    RGBColor(0x66, 0xa6, 0x1e),
    RGBColor(0x55, 0x55, 0x55),
    RGBColor(0xa6, 0x76, 0x1d),
    RGBColor(0x1f, 0x78, 0xb4),
];

fn err(e: impl std::fmt::Display) -> String {
    format!("chart: {e}")
}

/// One bar of a bar chart.
pub struct Bar {
    /// The bar's name, left of it.
    pub label: String,
    /// Its length, written at its end.
    pub value: f64,
    /// Drawn in poolwarden's colour.
    pub ours: bool,
    /// Drawn grey (the no-pool limit).
    pub limit: bool,
}

/// Horizontal bars with their values written at the end, the first bar on
/// top, written to `path` as SVG.
///
/// # Errors
/// plotters' error, as text.
pub fn bars(path: &Path, title: &str, x_desc: &str, bars: &[Bar]) -> Result<(), String> {
    // plotters puts the first category at the bottom.
    let bars: Vec<&Bar> = bars.iter().rev().collect();
    let n = bars.len().max(1);
    let height = 90 + 34 * n as u32;
    let root = SVGBackend::new(path, (900, height)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let max = bars.iter().map(|b| b.value).fold(0.0, f64::max).max(1.0);
    let labels: Vec<String> = bars.iter().map(|b| b.label.clone()).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(300)
        .build_cartesian_2d(0.0..max * 1.18, (0..n).into_segmented())
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .x_desc(x_desc)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()
        .map_err(err)?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, b)| {
            let colour = if b.ours {
                POOLWARDEN
            } else if b.limit {
                LIMIT
            } else {
                OTHER
            };
            let mut r = Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(i)),
                    (b.value, SegmentValue::Exact(i + 1)),
                ],
                colour.filled(),
            );
            r.set_margin(5, 5, 0, 0);
            r
        }))
        .map_err(err)?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, b)| {
            Text::new(
                format!(" {:.0}", b.value),
                (b.value, SegmentValue::CenterOf(i)),
                ("sans-serif", 13),
            )
        }))
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// One line of a panel: a name and (tasks, value) points.
pub struct Series {
    /// The legend's name for it.
    pub name: String,
    /// `(x, y)` points, x on a log scale.
    pub points: Vec<(f64, f64)>,
}

/// One panel: a title and its lines.
pub struct Panel {
    /// Shown above it.
    pub title: String,
    /// Its lines.
    pub series: Vec<Series>,
}

/// Panels side by side, x = tasks on a log scale; y linear or log, written
/// to `path` as SVG.
///
/// # Errors
/// plotters' error, as text.
pub fn lines(path: &Path, y_desc: &str, log_y: bool, panels: &[Panel]) -> Result<(), String> {
    let width = 520 * panels.len().max(1) as u32;
    let root = SVGBackend::new(path, (width, 460)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let areas = root.split_evenly((1, panels.len().max(1)));
    for (area, panel) in areas.iter().zip(panels) {
        let xs: Vec<f64> = panel
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .collect();
        let ys: Vec<f64> = panel
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .filter(|y| y.is_finite())
            .collect();
        let x_max = xs.iter().copied().fold(1.0, f64::max) * 1.5;
        let y_max = ys.iter().copied().fold(0.0, f64::max).max(1e-3);
        let mut builder = ChartBuilder::on(area);
        builder
            .caption(&panel.title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(64);
        if log_y {
            let y_min = ys
                .iter()
                .copied()
                .filter(|y| *y > 0.0)
                .fold(f64::INFINITY, f64::min)
                .min(y_max)
                .max(1e-4)
                / 1.5;
            let mut chart = builder
                .build_cartesian_2d((0.8..x_max).log_scale(), (y_min..y_max * 2.0).log_scale())
                .map_err(err)?;
            chart
                .configure_mesh()
                .x_desc("tasks")
                .y_desc(y_desc)
                .x_label_formatter(&|x| format!("{x:.0}"))
                .draw()
                .map_err(err)?;
            for (i, s) in panel.series.iter().enumerate() {
                let colour = PALETTE[i % PALETTE.len()];
                let pts: Vec<(f64, f64)> =
                    s.points.iter().map(|&(x, y)| (x, y.max(y_min))).collect();
                chart
                    .draw_series(LineSeries::new(pts, colour.stroke_width(2)))
                    .map_err(err)?
                    .label(s.name.clone())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
                    });
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(err)?;
        } else {
            let mut chart = builder
                .build_cartesian_2d((0.8..x_max).log_scale(), 0.0..y_max * 1.25)
                .map_err(err)?;
            chart
                .configure_mesh()
                .x_desc("tasks")
                .y_desc(y_desc)
                .x_label_formatter(&|x| format!("{x:.0}"))
                .y_label_formatter(&|y| format!("{y:.0}"))
                .draw()
                .map_err(err)?;
            for (i, s) in panel.series.iter().enumerate() {
                let colour = PALETTE[i % PALETTE.len()];
                chart
                    .draw_series(LineSeries::new(s.points.clone(), colour.stroke_width(2)))
                    .map_err(err)?
                    .label(s.name.clone())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
                    });
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(err)?;
        }
    }
    root.present().map_err(err)?;
    Ok(())
}
