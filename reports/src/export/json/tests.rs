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
    assert_eq!(grid["cells"][0][0]["n"], 2);
    assert_eq!(grid["cells"][1][1]["mean"], serde_json::Value::Null);
    assert_eq!(grid["cells"][1][1]["diverged"], 1);
    let claim = &v["sections"][0]["comparison"]["claims"][2];
    assert_eq!(claim["first"], "arelu");
    assert_eq!(claim["verdict"], "agree");
}
