//! Drawing a run: a 2-d path over the loss's contours (marching squares, log-spaced levels),
//! or the matrix problem's loss per step.

use std::collections::HashMap;
use std::fmt;

use plotters::prelude::*;

use super::{Problem, Row};
use crate::plot::{line_chart, Series};

/// A contour line: the points of one polyline at one level.
type Polyline = Vec<(f64, f64)>;

/// Contour lines of `values` (a `(n+1) x (n+1)` grid, row-major by `y`, over the window) at
/// `level`, by marching squares, joined into polylines.
///
/// A crossing point lies on a grid edge, so it is named by that edge; two cells that share an
/// edge produce segments ending at the same point, which is how segments are chained.
fn contour_lines(values: &[f64], n: usize, xs: &[f64], ys: &[f64], level: f64) -> Vec<Polyline> {
    let at = |i: usize, j: usize| values[j * (n + 1) + i];
    // Edge ids: horizontal edge (i,j)-(i+1,j) is j*n + i; vertical (i,j)-(i,j+1) follows them.
    let h = |i: usize, j: usize| j * n + i;
    let v = |i: usize, j: usize| n * (n + 1) + j * (n + 1) + i;
    let point = |edge: usize| -> (f64, f64) {
        let ((i0, j0), (i1, j1)) = if edge < n * (n + 1) {
            let (i, j) = (edge % n, edge / n);
            ((i, j), (i + 1, j))
        } else {
            let e = edge - n * (n + 1);
            let (i, j) = (e % (n + 1), e / (n + 1));
            ((i, j), (i, j + 1))
        };
        let (a, b) = (at(i0, j0), at(i1, j1));
        let t = ((level - a) / (b - a)).clamp(0.0, 1.0);
        (xs[i0] + t * (xs[i1] - xs[i0]), ys[j0] + t * (ys[j1] - ys[j0]))
    };
    let mut segments: Vec<(usize, usize)> = Vec::new();
    for j in 0..n {
        for i in 0..n {
            let (a, b, c, d) = (at(i, j), at(i + 1, j), at(i + 1, j + 1), at(i, j + 1));
            let below = |x: f64| x < level;
            let (bottom, right, top, left) = (h(i, j), v(i + 1, j), h(i, j + 1), v(i, j));
            let mut crossed = Vec::with_capacity(4);
            for (edge, p, q) in [(bottom, a, b), (right, b, c), (top, d, c), (left, a, d)] {
                if below(p) != below(q) {
                    crossed.push(edge);
                }
            }
            match crossed.len() {
                2 => segments.push((crossed[0], crossed[1])),
                4 => {
                    // A saddle: a and c on one side, b and d on the other. The centre decides
                    // which pair of opposite corners the level set separates.
                    if below((a + b + c + d) / 4.0) == below(a) {
                        segments.push((bottom, right));
                        segments.push((top, left));
                    } else {
                        segments.push((left, bottom));
                        segments.push((right, top));
                    }
                }
                _ => {}
            }
        }
    }
    let mut by_edge: HashMap<usize, Vec<usize>> = HashMap::new();
    for (s, &(e0, e1)) in segments.iter().enumerate() {
        by_edge.entry(e0).or_default().push(s);
        by_edge.entry(e1).or_default().push(s);
    }
    let mut used = vec![false; segments.len()];
    let mut lines = Vec::new();
    // Open lines start at the window's border (an edge with one segment); closed loops anywhere.
    let open_ends: Vec<usize> =
        segments.iter().flat_map(|&(a, b)| [a, b]).filter(|e| by_edge[e].len() == 1).collect();
    let starts = open_ends.into_iter().chain(segments.iter().map(|&(a, _)| a));
    for start in starts {
        let Some(&first) = by_edge[&start].iter().find(|&&s| !used[s]) else { continue };
        let (mut edge, mut seg) = (start, first);
        let mut line = vec![point(edge)];
        loop {
            used[seg] = true;
            let (e0, e1) = segments[seg];
            edge = if e0 == edge { e1 } else { e0 };
            line.push(point(edge));
            match by_edge[&edge].iter().find(|&&s| !used[s]) {
                Some(&next) => seg = next,
                None => break,
            }
        }
        lines.push(line);
    }
    lines
}

/// Grid cells per axis of the contour plot.
const GRID: usize = 300;

/// Draws the path of `rows` over log-spaced contours of a 2-d `problem`, with the start, the
/// end and the minimum marked, and returns the SVG text; for the matrix problem, whose 12
/// coordinates have no picture, the loss per step on a log scale. `title` is the first line
/// of the header (e.g. the optimizer and its options).
pub fn plot_svg(problem: Problem, rows: &[Row], title: &str) -> Result<String, String> {
    if !problem.is_2d() {
        let points = rows.iter().map(|r| (r.step as f64, r.loss as f64)).collect();
        let series = [Series { label: format!("{}: {}", problem.name(), problem.formula()), points }];
        return line_chart(title, "step", "loss", &series, true);
    }
    let ([mut x0, mut x1], [mut y0, mut y1]) = problem.window();
    let (cx, cy, hw, hh) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0, (x1 - x0) / 2.0, (y1 - y0) / 2.0);
    let path: Vec<(f64, f64)> = rows.iter().map(|r| (r.params[0] as f64, r.params[1] as f64)).collect();
    for &(x, y) in path.iter().filter(|(x, y)| x.is_finite() && y.is_finite()) {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    // A diverging run must not shrink the problem to a dot: the window grows to 20x at most.
    let (mx, my) = (0.05 * (x1 - x0), 0.05 * (y1 - y0));
    (x0, x1) = ((x0 - mx).max(cx - 20.0 * hw), (x1 + mx).min(cx + 20.0 * hw));
    (y0, y1) = ((y0 - my).max(cy - 20.0 * hh), (y1 + my).min(cy + 20.0 * hh));

    let xs: Vec<f64> = (0..=GRID).map(|i| x0 + (x1 - x0) * i as f64 / GRID as f64).collect();
    let ys: Vec<f64> = (0..=GRID).map(|j| y0 + (y1 - y0) * j as f64 / GRID as f64).collect();
    let values: Vec<f64> = ys.iter().flat_map(|&y| xs.iter().map(move |&x| problem.value(x, y))).collect();
    let f_max = values.iter().cloned().fold(f64::MIN, f64::max);
    let f_min = values.iter().cloned().fold(f64::MAX, f64::min);
    // Levels 10^(k/3): three per decade, from the problem's lowest resolvable level (or 1e-5
    // of the largest value, when a diverging run widened the window) up. Log spacing shows
    // both the steep walls and the flat valley floor.
    let lo = f_min.max(f_max * 1e-5).max(problem.lowest_contour());
    let (k_lo, k_hi) = ((3.0 * lo.log10()).ceil() as i32, (3.0 * f_max.log10()).floor() as i32);
    let levels: Vec<(i32, f64)> = (k_lo..=k_hi).map(|k| (k, 10f64.powf(k as f64 / 3.0))).collect();

    let last = rows.last().ok_or("no rows to plot")?;
    let subtitle = format!(
        "{}: {}, {} steps from ({}, {}); loss {} at ({}, {})",
        problem.name(),
        problem.formula(),
        last.step,
        rows[0].params[0],
        rows[0].params[1],
        last.loss,
        last.params[0],
        last.params[1]
    );

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (820, 760)).into_drawing_area();
        let draw = |e: &dyn fmt::Display| e.to_string();
        root.fill(&WHITE).map_err(|e| draw(&e))?;
        let (header, body) = root.split_vertically(64);
        header
            .draw(&Text::new(title.to_string(), (16, 10), ("sans-serif", 22).into_font()))
            .map_err(|e| draw(&e))?;
        header
            .draw(&Text::new(subtitle, (16, 38), ("sans-serif", 15).into_font().color(&RGBColor(70, 70, 70))))
            .map_err(|e| draw(&e))?;
        let mut chart = ChartBuilder::on(&body)
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| draw(&e))?;
        chart.configure_mesh().disable_mesh().x_desc("x0").y_desc("x1").draw().map_err(|e| draw(&e))?;

        let span = (k_hi - k_lo).max(1) as f64;
        let mut contours = Vec::new();
        for &(k, level) in &levels {
            // Dark blue near the minimum, fading towards the walls.
            let t = (k - k_lo) as f64 / span;
            let mix = |a: u8, b: u8| (a as f64 + t * (b as f64 - a as f64)).round() as u8;
            let colour = RGBColor(mix(30, 175), mix(60, 205), mix(150, 235));
            for line in contour_lines(&values, GRID, &xs, &ys, level) {
                contours.push(PathElement::new(line, colour.stroke_width(1)));
            }
        }
        chart.draw_series(contours).map_err(|e| draw(&e))?.label("loss contours, 3 per decade").legend(
            |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RGBColor(80, 110, 190).stroke_width(1)),
        );

        // The path, split where it leaves the window (a diverging run) so nothing is drawn
        // outside the plot.
        let inside = |&(x, y): &(f64, f64)| x >= x0 && x <= x1 && y >= y0 && y <= y1;
        let mut pieces: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
        for p in &path {
            if inside(p) {
                pieces.last_mut().expect("never empty").push(*p);
            } else if !pieces.last().expect("never empty").is_empty() {
                pieces.push(Vec::new());
            }
        }
        let path_colour = RGBColor(215, 40, 40);
        chart
            .draw_series(
                pieces
                    .into_iter()
                    .filter(|p| !p.is_empty())
                    .map(|p| PathElement::new(p, path_colour.stroke_width(2))),
            )
            .map_err(|e| draw(&e))?
            .label(format!("path ({} steps)", last.step))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], path_colour.stroke_width(2)));
        // Dots at the iterates while they are few enough to tell apart.
        if rows.len() <= 201 {
            chart
                .draw_series(
                    path.iter().filter(|p| inside(p)).map(|&p| Circle::new(p, 2, path_colour.filled())),
                )
                .map_err(|e| draw(&e))?;
        }

        let start = path[0];
        let end = *path.last().expect("rows is not empty");
        let [min_x, min_y] = problem.minimum().expect("a 2-d problem has a minimum");
        let min = (min_x as f64, min_y as f64);
        let start_colour = RGBColor(20, 150, 60);
        chart
            .draw_series([start].into_iter().filter(inside).map(|p| Circle::new(p, 7, start_colour.filled())))
            .map_err(|e| draw(&e))?
            .label("start")
            .legend(move |(x, y)| Circle::new((x + 10, y), 6, start_colour.filled()));
        chart
            .draw_series([end].into_iter().filter(inside).map(|p| Circle::new(p, 7, BLACK.filled())))
            .map_err(|e| draw(&e))?
            .label("end")
            .legend(|(x, y)| Circle::new((x + 10, y), 6, BLACK.filled()));
        chart
            .draw_series([min].into_iter().filter(inside).map(|p| Cross::new(p, 8, BLACK.stroke_width(3))))
            .map_err(|e| draw(&e))?
            .label("minimum")
            .legend(|(x, y)| Cross::new((x + 10, y), 6, BLACK.stroke_width(3)));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| draw(&e))?;
        root.present().map_err(|e| draw(&e))?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contours_of_a_circle_are_one_closed_loop_of_the_right_radius() {
        let n = 40;
        let xs: Vec<f64> = (0..=n).map(|i| -2.0 + 4.0 * i as f64 / n as f64).collect();
        let values: Vec<f64> = xs.iter().flat_map(|&y| xs.iter().map(move |&x| x * x + y * y)).collect();
        let lines = contour_lines(&values, n, &xs, &xs, 1.0);
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert_eq!(line.first(), line.last(), "the loop closes");
        for &(x, y) in line {
            assert!(((x * x + y * y).sqrt() - 1.0).abs() < 0.02, "({x}, {y}) is off the unit circle");
        }
        // A level above the window's corners is cut by the border into open lines.
        let open = contour_lines(&values, n, &xs, &xs, 5.0);
        assert_eq!(open.len(), 4);
        assert!(open.iter().all(|l| l.first() != l.last()));
    }
}
