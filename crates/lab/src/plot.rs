//! Training curves as SVG line charts (plotters, SVG backend only).

use plotters::prelude::*;

/// One line of a chart: a label and its `(x, y)` points.
pub struct Series {
    /// Legend text.
    pub label: String,
    /// Points in x order.
    pub points: Vec<(f64, f64)>,
}

/// Averages `(x, y)` points over consecutive bins of `bin` points: per-iteration losses are
/// noisy, and the paper's figures show the trend. Each bin is placed at its last x.
pub fn binned(points: &[(f64, f64)], bin: usize) -> Vec<(f64, f64)> {
    let bin = bin.max(1);
    points
        .chunks(bin)
        .map(|c| (c[c.len() - 1].0, c.iter().map(|p| p.1).sum::<f64>() / c.len() as f64))
        .collect()
}

/// A short axis label: at most four significant digits, no float noise (`0.6`, not
/// `0.6000000000000001`), scientific notation for very small or large values.
pub fn tick(v: f64) -> String {
    if v == 0.0 {
        return "0".to_string();
    }
    let a = v.abs();
    if !(1e-3..1e5).contains(&a) {
        return format!("{v:.1e}");
    }
    let digits = (3 - a.log10().floor() as i32).max(0) as usize;
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Draws the series on one chart (log-scale y when `log_y` and the values span at least a
/// decade, as in the paper's figures) and returns the SVG text. Non-finite and (for log scale) non-positive points are skipped.
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    log_y: bool,
) -> Result<String, String> {
    line_chart_axes(title, x_label, y_label, series, false, log_y)
}

/// [`line_chart`] with a choice of log-scale x too (`log_x`; points with `x <= 0` are then
/// skipped), for quantities that change over several decades of steps.
pub fn line_chart_axes(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    log_x: bool,
    log_y: bool,
) -> Result<String, String> {
    let valid =
        |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite() && (!log_y || y > 0.0) && (!log_x || x > 0.0);
    let all: Vec<(f64, f64)> = series.iter().flat_map(|s| s.points.iter().copied().filter(valid)).collect();
    if all.is_empty() {
        return Err("nothing to plot: no finite points".to_string());
    }
    let (mut x0, mut x1) = all.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (mut y0, mut y1) = all.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    if x1 <= x0 {
        (x0, x1) = (x0 - 0.5, x1 + 0.5);
    }
    // A log axis that spans less than a decade gets no tick labels: use a linear one.
    let log_y = log_y && y1 >= 10.0 * y0;
    if log_y {
        (y0, y1) = (y0 / 1.2, y1 * 1.2);
    } else {
        let m = ((y1 - y0) * 0.05).max(1e-6);
        (y0, y1) = (y0 - m, y1 + m);
    }
    let colours = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
    ];
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (800, 520)).into_drawing_area();
        let draw = |e: &dyn std::fmt::Display| format!("drawing the chart failed: {e}");
        root.fill(&WHITE).map_err(|e| draw(&e))?;
        let mut builder = ChartBuilder::on(&root);
        builder.caption(title, ("sans-serif", 20)).margin(12).x_label_area_size(40).y_label_area_size(70);
        macro_rules! finish {
            ($chart:expr) => {{
                let mut chart = $chart;
                chart
                    .configure_mesh()
                    .x_desc(x_label)
                    .y_desc(y_label)
                    .x_label_formatter(&|v| tick(*v))
                    .y_label_formatter(&|v| tick(*v))
                    .draw()
                    .map_err(|e| draw(&e))?;
                for (i, s) in series.iter().enumerate() {
                    let colour = colours[i % colours.len()];
                    chart
                        .draw_series(LineSeries::new(
                            s.points.iter().copied().filter(valid),
                            colour.stroke_width(2),
                        ))
                        .map_err(|e| draw(&e))?
                        .label(s.label.clone())
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                        });
                }
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .draw()
                    .map_err(|e| draw(&e))?;
            }};
        }
        match (log_x, log_y) {
            (false, false) => finish!(builder.build_cartesian_2d(x0..x1, y0..y1).map_err(|e| draw(&e))?),
            (false, true) => {
                finish!(builder.build_cartesian_2d(x0..x1, (y0..y1).log_scale()).map_err(|e| draw(&e))?)
            }
            (true, false) => {
                finish!(builder.build_cartesian_2d((x0..x1).log_scale(), y0..y1).map_err(|e| draw(&e))?)
            }
            (true, true) => finish!(builder
                .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
                .map_err(|e| draw(&e))?),
        }
        root.present().map_err(|e| draw(&e))?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_short() {
        assert_eq!(tick(0.6000000000000001), "0.6");
        assert_eq!(tick(2.0), "2");
        assert_eq!(tick(1234.5678), "1235");
        assert_eq!(tick(0.0123456), "0.01235");
        assert_eq!(tick(2.5e-7), "2.5e-7");
        assert_eq!(tick(0.0), "0");
    }

    #[test]
    fn binning_averages_consecutive_points() {
        let pts: Vec<(f64, f64)> = (1..=5).map(|i| (i as f64, i as f64)).collect();
        assert_eq!(binned(&pts, 2), vec![(2.0, 1.5), (4.0, 3.5), (5.0, 5.0)]);
    }

    #[test]
    fn chart_has_every_label_and_skips_bad_points() {
        let series = vec![
            Series { label: "adam".into(), points: vec![(1.0, 2.0), (2.0, 1.0), (3.0, f64::NAN)] },
            Series { label: "sgd".into(), points: vec![(1.0, 2.5), (2.0, 0.0), (3.0, 1.5)] },
        ];
        let svg = line_chart("t", "iterations", "training cost", &series, true).unwrap();
        assert!(svg.contains("<svg") && svg.contains("adam") && svg.contains("sgd"));
        assert!(line_chart("t", "x", "y", &[Series { label: "a".into(), points: vec![] }], false).is_err());
        // A log x axis skips x <= 0 and still draws the rest.
        let log = vec![Series { label: "r".into(), points: vec![(0.0, 1.0), (1.0, 2.0), (1e4, 1.0)] }];
        assert!(line_chart_axes("t", "t", "ratio", &log, true, false).unwrap().contains("<svg"));
    }
}
