//! The result: one row per model and activation, as a terminal table and
//! as JSON.

use serde::Serialize;
use tabled::settings::Style;
use tabled::{Table, Tabled};

use super::MISSING;
use super::measure::Measurement;

/// One line of the result: medians of each side's measurements.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(super) struct Row {
    pub model: String,
    pub activation: String,
    pub acbench_img_s: Option<f64>,
    pub pytorch_img_s: Option<f64>,
    /// acbench images/s over PyTorch's: above 1, acbench is faster.
    pub ratio: Option<f64>,
    pub acbench_peak_rss_mb: Option<f64>,
    pub pytorch_peak_rss_mb: Option<f64>,
}

impl Row {
    pub fn new(
        model: &str,
        activation: &str,
        ours: &[Measurement],
        theirs: &[Measurement],
    ) -> Self {
        let img_s = |m: &[Measurement]| median(m.iter().map(|m| m.img_s).collect());
        let rss = |m: &[Measurement]| median(m.iter().filter_map(|m| m.peak_rss_mb).collect());
        let (a, p) = (img_s(ours), img_s(theirs));
        Self {
            model: model.to_owned(),
            activation: activation.to_owned(),
            acbench_img_s: a,
            pytorch_img_s: p,
            ratio: a.zip(p).map(|(a, p)| a / p),
            acbench_peak_rss_mb: rss(ours),
            pytorch_peak_rss_mb: rss(theirs),
        }
    }
}

/// The median, or `None` for no values.
fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

#[derive(Tabled)]
struct TableRow {
    #[tabled(rename = "model")]
    model: String,
    #[tabled(rename = "activation")]
    activation: String,
    #[tabled(rename = "acbench img/s")]
    acbench: String,
    #[tabled(rename = "PyTorch img/s")]
    pytorch: String,
    #[tabled(rename = "acbench/PyTorch")]
    ratio: String,
    #[tabled(rename = "acbench peak RSS MB")]
    acbench_rss: String,
    #[tabled(rename = "PyTorch peak RSS MB")]
    pytorch_rss: String,
}

/// The rows as a terminal table, `—` where a side was not measured.
pub(super) fn render_table(rows: &[Row]) -> String {
    let cell = |v: Option<f64>, digits: usize| {
        v.map_or_else(|| MISSING.to_owned(), |v| format!("{v:.digits$}"))
    };
    let lines: Vec<TableRow> = rows
        .iter()
        .map(|r| TableRow {
            model: r.model.clone(),
            activation: r.activation.clone(),
            acbench: cell(r.acbench_img_s, 1),
            pytorch: cell(r.pytorch_img_s, 1),
            ratio: cell(r.ratio, 2),
            acbench_rss: cell(r.acbench_peak_rss_mb, 1),
            pytorch_rss: cell(r.pytorch_peak_rss_mb, 1),
        })
        .collect();
    let mut table = Table::new(lines);
    table.with(Style::sharp());
    table.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(img_s: f64, rss: f64) -> Measurement {
        Measurement {
            img_s,
            peak_rss_mb: Some(rss),
            params: 1,
            seconds: None,
            final_loss: None,
            torch: None,
        }
    }

    #[test]
    fn medians_and_ratio() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), Some(2.5));
        let row = Row::new(
            "convnet",
            "relu",
            &[m(100.0, 50.0), m(300.0, 70.0), m(200.0, 60.0)],
            &[m(400.0, 90.0)],
        );
        assert_eq!(row.acbench_img_s, Some(200.0));
        assert_eq!(row.pytorch_img_s, Some(400.0));
        assert_eq!(row.ratio, Some(0.5));
        assert_eq!(row.acbench_peak_rss_mb, Some(60.0));
        assert_eq!(row.pytorch_peak_rss_mb, Some(90.0));
        let alone = Row::new("convnet", "relu", &[m(100.0, 50.0)], &[]);
        assert_eq!((alone.pytorch_img_s, alone.ratio), (None, None));
    }

    #[test]
    fn json_rows_have_exactly_the_documented_fields() {
        let row = Row::new("resnet20", "arelu", &[m(10.0, 5.0)], &[]);
        let v = serde_json::to_value(&row).expect("serialises");
        let mut keys: Vec<&str> = v
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "acbench_img_s",
                "acbench_peak_rss_mb",
                "activation",
                "model",
                "pytorch_img_s",
                "pytorch_peak_rss_mb",
                "ratio"
            ]
        );
        assert!(v["pytorch_img_s"].is_null() && v["ratio"].is_null());
    }

    #[test]
    fn table_shows_a_dash_for_what_was_not_measured() {
        let table = render_table(&[Row::new("convnet", "arelu", &[m(1234.56, 80.0)], &[])]);
        assert!(table.contains("acbench/PyTorch"), "{table}");
        assert!(table.contains("1234.6"), "{table}");
        assert!(table.contains(MISSING), "{table}");
    }
}
