use super::*;
use crate::export::tests::small_report;

#[test]
fn json_round_trips_the_numbers() {
    let text = match JsonExporter.render(&small_report(Some("table1"), &[])) {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    };
    let v: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    };
    let grid = &v["sections"][0]["grid"];
    assert_eq!(grid["layout"], "activations_by_model");
    assert_eq!(grid["rows"], serde_json::json!(["relu", "arelu"]));
    assert_eq!(grid["cells"][0][0]["n"], 3);
    assert_eq!(
        grid["cells"][0][0]["values"][2],
        serde_json::json!([2, 0.81])
    );
    assert!((grid["cells"][0][0]["ci"]["lo"].as_f64().unwrap_or(0.0) - 0.785159).abs() < 1e-6);
    assert_eq!(grid["cells"][1][1]["mean"], serde_json::Value::Null);
    assert_eq!(grid["cells"][1][1]["diverged"], 1);
    let pair = &v["sections"][0]["comparison"]["pairs"][0];
    assert_eq!(pair["first"], "arelu");
    let alexnet = &pair["columns"][0];
    assert_eq!(alexnet["verdict"]["verdict"], "supports");
    assert_eq!(alexnet["ours"]["pairing"], "paired");
    assert_eq!(alexnet["ours"]["n"], 3);
    let claim = &v["claims"][1];
    assert_eq!(claim["claim"]["id"], "adaptive-beats-base");
    assert_eq!(claim["outcome"]["outcome"], "inconclusive");
    assert_eq!(claim["paper"], serde_json::json!([19, 24]));
}
