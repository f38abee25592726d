use super::*;
use crate::export::tests::{small_report, small_runs};
use crate::fixtures::run;
use crate::result::RunStatus;
use crate::{ReportSpec, build_report, plot};

/// The page of [`small_runs`] beside `table1`, with its plots.
fn page(deviations: &[&str]) -> (String, usize) {
    let runs = small_runs();
    let plots = match plot::plots(&runs) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    let html = HtmlExporter {
        runs: &runs,
        plots: &plots,
    }
    .render(&small_report(Some("table1"), deviations));
    match html {
        Ok(h) => (h, plots.len()),
        Err(e) => panic!("{e}"),
    }
}

/// The values of attribute `name="..."` in `html`, in order.
fn attributes<'a>(html: &'a str, name: &str) -> Vec<&'a str> {
    let open = format!(" {name}=\"");
    html.match_indices(&open)
        .filter_map(|(i, _)| {
            let rest = &html[i + open.len()..];
            rest.find('"').map(|end| &rest[..end])
        })
        .collect()
}

#[test]
fn escapes_the_five_characters() {
    assert_eq!(
        esc(r#"<a href="x">Tom & Jerry's</a>"#),
        "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#39;s&lt;/a&gt;"
    );
    assert_eq!(esc("plain ± ü"), "plain ± ü");
}

#[test]
fn user_text_is_escaped_everywhere() {
    let mut runs = vec![
        run("<b>net</b>", "relu", 0, RunStatus::Finished, 0.8),
        run("<b>net</b>", "arelu", 0, RunStatus::Finished, 0.9),
    ];
    runs[1].dataset = "a\"b".into();
    let spec = ReportSpec {
        title: "<script>alert('x')</script> & co".into(),
        paper_table: Some("table1".into()),
        deviations: vec!["<i>5</i> epochs".into()],
        ..ReportSpec::default()
    };
    let report = match build_report(&runs, &spec) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    let plots = match plot::plots(&runs) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    let html = match (HtmlExporter {
        runs: &runs,
        plots: &plots,
    })
    .render(&report)
    {
        Ok(h) => h,
        Err(e) => panic!("{e}"),
    };
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(!html.contains("<b>net"), "{html}");
    assert!(!html.contains("<i>5"), "{html}");
    assert!(!html.contains("a\"b"), "{html}");
    assert!(
        html.contains("<title>&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; co</title>")
    );
    assert!(
        html.contains("<li>&lt;i&gt;5&lt;/i&gt; epochs</li>"),
        "{html}"
    );
    // The one script is the page's own.
    assert_eq!(html.matches("<script>").count(), 1);
}

#[test]
fn no_url_but_the_users() {
    let (html, _) = page(&[]);
    assert!(!html.contains("http://"), "{html}");
    assert!(!html.contains("https://"), "{html}");
    assert!(!html.contains(" src="), "nothing is loaded: {html}");
    assert!(html.contains("Content-Security-Policy\" content=\"default-src 'none';"));
    // A URL the suite gave is shown as text, and nowhere else.
    let mut report = small_report(None, &[]);
    report.title = "see https://example.org/x".into();
    let html = match (HtmlExporter {
        runs: &[],
        plots: &[],
    })
    .render(&report)
    {
        Ok(h) => h,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(html.matches("https://").count(), 2, "title and heading");
    assert!(!html.contains("http://"));
}

#[test]
fn tables_are_sortable_and_best_is_marked() {
    let (html, _) = page(&[]);
    // Grid, cells beside the paper, claims, runs.
    assert_eq!(html.matches("<table class=\"sortable ").count(), 4);
    assert!(html.contains(
        "<th scope=\"col\" data-type=\"text\"><button type=\"button\">activation</button></th>\
         <th scope=\"col\" data-type=\"num\"><button type=\"button\">alexnet</button></th>"
    ));
    // The grid: each mean as the sort key, the CI shown, the all-diverged
    // cell without a key (sorted last), bold only where significant.
    assert!(html.contains(
        "<tr><th scope=\"row\" data-sort=\"arelu\">arelu</th>\
         <td class=\"best\" data-sort=\"0.86\">0.8600 ± 0.0100 [0.8352, 0.8848] (n=3, 1 diverged)</td>\
         <td>— (1 diverged)</td></tr>"
    ), "{html}");
    assert!(
        html.contains("<td data-sort=\"0.81\">0.8100 ± 0.0100 [0.7852, 0.8348] (n=3)</td>"),
        "{html}"
    );
    assert_eq!(html.matches("class=\"best\"").count(), 1);
    let report = small_report(Some("table1"), &[]);
    let g = &report.sections[0].grid;
    let best = (0..g.rows.len())
        .flat_map(|r| (0..g.columns.len()).map(move |c| (r, c)))
        .filter(|&(r, c)| g.is_best(r, c))
        .count();
    assert_eq!(best, 1);
    // The claims by their paper count, the runs by seed and accuracy.
    assert!(html.contains(
        "<th scope=\"col\" data-type=\"num\"><button type=\"button\">paper k/n</button></th>"
    ));
    assert!(
        html.contains("<td data-sort=\"0.7916666666666666\">19/24</td>"),
        "{html}"
    );
    assert!(html.contains("<tr id=\"run-7\"><th scope=\"row\" data-sort=\"alexnet\">alexnet</th>"));
    assert!(
        html.contains("<td class=\"lost\" data-sort=\"diverged\">diverged</td><td>—</td>"),
        "{html}"
    );
    assert!(html.contains("table.sortable"), "the script sorts them");
}

#[test]
fn one_inline_svg_per_plot_and_links_resolve() {
    let (html, plots) = page(&[]);
    assert!(plots > 0);
    assert_eq!(html.matches("<svg").count(), plots);
    assert_eq!(html.matches("</svg>").count(), plots);
    assert!(html.contains("<figure id=\"plot-shapes-alexnet-arelu\">"));
    // A finished AReLU run links to its loss curves, shapes and increments;
    // the diverged one has no shapes of its own.
    assert!(html.contains(
        "<a href=\"#plot-loss-alexnet\">loss</a> <a href=\"#plot-shapes-alexnet-arelu\">shapes</a> \
         <a href=\"#plot-increments-alexnet-arelu\">increments</a></td></tr>"
    ), "{html}");
    let diverged = html
        .split("<tr id=\"run-7\">")
        .nth(1)
        .and_then(|s| s.split("</tr>").next())
        .unwrap_or_default();
    assert!(
        diverged.ends_with(
            "<td><a href=\"#plot-loss-alexnet\">loss</a> \
             <a href=\"#plot-increments-alexnet-arelu\">increments</a></td>"
        ),
        "{diverged}"
    );
    let ids = attributes(&html, "id");
    for href in attributes(&html, "href") {
        let target = href.strip_prefix('#').unwrap_or(href);
        assert!(ids.contains(&target), "link to a missing {href}");
    }
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "ids are unique");
}

#[test]
fn verdicts_deviations_and_claims() {
    let (html, _) = page(&["5 epochs instead of 80"]);
    assert!(html.contains(
        "<li>AReLU vs ReLU, alexnet: +0.0500 [+0.0252, +0.0748] (paired, n=3), P(AReLU &gt; ReLU) = 1.00: \
         <span class=\"verdict supports\">supports</span></li>"
    ), "{html}");
    assert!(html.contains(
        "<li>AReLU vs ReLU, vgg: AReLU diverged in every run: <span class=\"verdict contradicts\">contradicts</span></li>"
    ), "{html}");
    assert!(html.contains("<li>AReLU vs LReLU: not run: LReLU (all 2 columns)</li>"));
    assert!(html.contains(
        "<p class=\"differ\">Settings differ from the paper&#39;s: 5 epochs instead of 80."
    ));
    assert!(html.contains("<ul class=\"deviations\">\n<li>5 epochs instead of 80</li>\n</ul>"));
    assert!(html.contains("<details class=\"claim\" id=\"claim-adaptive-beats-base\">"));
    assert!(html.contains(
        "<li class=\"supports\">table1 alexnet: arelu vs relu: +0.0500 [+0.0252, +0.0748] (n=3), P = 1.00: supports; paper no</li>"
    ), "{html}");
    assert!(html.contains("<span class=\"verdict not-judged\">not judged</span>"));
}

#[test]
fn the_same_report_renders_the_same_bytes() {
    assert_eq!(page(&[]).0, page(&[]).0);
}
