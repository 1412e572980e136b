//! The chart: p50 latency against payload size, log-log, one line per system (PNG, drawn
//! with plotters when the `chart` feature is on).

#![cfg_attr(not(feature = "chart"), allow(dead_code))]

use std::path::Path;

use crate::report::Results;

/// Where the small call sits on the size axis: its two `i32` arguments.
const SMALL_BYTES: f64 = 8.0;

/// (system, [(bytes each way, p50 in µs)]) for every system with at least two sizes, in the
/// order the systems first appear. A system also run on one CPU (`tarpc-1cpu`, `raw-unix-1cpu`)
/// is drawn at its faster placement for each size.
pub fn series(results: &Results) -> Vec<(String, Vec<(f64, f64)>)> {
    use lpc_bench::record::Workload;
    let mut out: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for r in &results.records {
        let x = match r.workload {
            Workload::Small => SMALL_BYTES,
            Workload::Echo(n) => n as f64,
            _ => continue,
        };
        // Only the systems that moved payloads (lpc's one-CPU variants did not).
        if !results
            .records
            .iter()
            .any(|o| o.system == r.system && matches!(o.workload, Workload::Echo(_)))
        {
            continue;
        }
        let Some(s) = &r.summary else { continue };
        let y = s.p50 as f64 / 1000.0;
        let name = r.system.strip_suffix("-1cpu").unwrap_or(&r.system);
        match out.iter_mut().find(|(n, _)| n == name) {
            Some((_, points)) => match points.iter_mut().find(|(px, _)| *px == x) {
                Some(point) => point.1 = point.1.min(y),
                None => points.push((x, y)),
            },
            None => out.push((name.to_owned(), vec![(x, y)])),
        }
    }
    for (_, points) in &mut out {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out.retain(|(_, points)| points.len() >= 2);
    out
}

#[cfg(not(feature = "chart"))]
pub fn draw(_results: &Results, _path: &Path) -> Result<(), String> {
    Err("this lpc-bench was built without the `chart` feature \
         (cargo run --release -p lpc-bench --features chart -- …)"
        .into())
}

#[cfg(feature = "chart")]
pub fn draw(results: &Results, path: &Path) -> Result<(), String> {
    use plotters::prelude::*;

    use lpc_bench::record::size_label;

    load_font()?;
    let (width, height) = (1200u32, 760u32);
    let mut pixels = vec![0u8; width as usize * height as usize * 3];
    let series = series(results);
    if series.is_empty() {
        return Err("no payload results to draw".into());
    }
    let ys = series.iter().flat_map(|(_, p)| p.iter().map(|&(_, y)| y));
    let (ymin, ymax) = ys.fold((f64::MAX, 0f64), |(lo, hi), y| (lo.min(y), hi.max(y)));
    let y_range = (ymin / 2.0).max(0.01)..ymax * 2.0;
    let x_keys = vec![SMALL_BYTES, 1024.0, 65_536.0, 1_048_576.0, 16_777_216.0];
    let e = |e: &dyn std::fmt::Display| format!("drawing the chart: {e}");
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|x| e(&x))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!(
                    "Round-trip latency (p50) against payload size — {} — {}",
                    results.date,
                    results.machine.split(" (").next().unwrap_or("")
                ),
                ("sans-serif", 22),
            )
            .margin(20)
            .x_label_area_size(55)
            .y_label_area_size(80)
            .build_cartesian_2d(
                (4.0f64..33_554_432.0).log_scale().with_key_points(x_keys),
                y_range.log_scale(),
            )
            .map_err(|x| e(&x))?;
        chart
            .configure_mesh()
            .x_desc("bytes each way (the small call `add` at 8 B); socket-based systems at their faster placement")
            .y_desc("p50 round trip (µs)")
            .x_label_formatter(&|x| {
                if *x == SMALL_BYTES {
                    "add (8 B)".into()
                } else {
                    size_label(*x as u64)
                }
            })
            .y_label_formatter(&|y| {
                if *y >= 1.0 {
                    format!("{y:.0}")
                } else {
                    format!("{y}")
                }
            })
            .label_style(("sans-serif", 16))
            .axis_desc_style(("sans-serif", 18))
            .draw()
            .map_err(|x| e(&x))?;
        for (i, (name, points)) in series.iter().enumerate() {
            let color = match name.as_str() {
                "lpc-adaptive" => RGBColor(214, 39, 40).to_rgba(),
                "lpc-block" => RGBColor(255, 127, 14).to_rgba(),
                "memcpy" => RGBColor(0, 0, 0).to_rgba(),
                "raw-unix" => RGBColor(127, 127, 127).to_rgba(),
                "iceoryx2" => RGBColor(31, 119, 180).to_rgba(),
                "tarpc" => RGBColor(44, 160, 44).to_rgba(),
                "ipc-channel" => RGBColor(148, 103, 189).to_rgba(),
                "tonic" => RGBColor(140, 86, 75).to_rgba(),
                "lpc-loan" => RGBColor(227, 119, 194).to_rgba(),
                _ => Palette99::pick(i).to_rgba(),
            };
            let style = if name.starts_with("lpc") {
                color.stroke_width(4)
            } else if name.starts_with("raw") || name == "memcpy" {
                color.stroke_width(2)
            } else {
                color.stroke_width(3)
            };
            chart
                .draw_series(LineSeries::new(points.iter().copied(), style))
                .map_err(|x| e(&x))?
                .label(if name == "memcpy" {
                    "memcpy (n bytes, once)"
                } else {
                    name.as_str()
                })
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))
                .map_err(|x| e(&x))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font(("sans-serif", 16))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|x| e(&x))?;
        root.present().map_err(|x| e(&x))?;
    }
    let file = std::fs::File::create(path).map_err(|x| format!("{}: {x}", path.display()))?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|x| e(&x))?;
    writer.write_image_data(&pixels).map_err(|x| e(&x))?;
    writer.finish().map_err(|x| e(&x))?;
    Ok(())
}

/// Registers a TrueType font as plotters' `sans-serif`: `$LPC_BENCH_FONT`, else what
/// `fc-match` names, else DejaVu Sans or Liberation Sans where Debian puts them
/// (`apt-get install fonts-dejavu-core`; scripts/bench.sh does).
#[cfg(feature = "chart")]
fn load_font() -> Result<(), String> {
    let mut candidates: Vec<std::path::PathBuf> = Vec::new();
    if let Some(path) = std::env::var_os("LPC_BENCH_FONT") {
        candidates.push(path.into());
    }
    if let Ok(out) = std::process::Command::new("fc-match")
        .args(["-f", "%{file}", "sans-serif:style=Book"])
        .output()
    {
        let file = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if file.ends_with(".ttf") {
            candidates.push(file.into());
        }
    }
    for path in [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    ] {
        candidates.push(path.into());
    }
    for path in &candidates {
        if let Ok(bytes) = std::fs::read(path) {
            // plotters keeps fonts for the life of the process.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font(
                "sans-serif",
                plotters::style::FontStyle::Normal,
                bytes,
            )
            .is_ok()
            {
                return Ok(());
            }
        }
    }
    Err(format!(
        "no usable TrueType font (tried {}); install fonts-dejavu-core or set LPC_BENCH_FONT",
        candidates
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}
