//! The table and the JSON of one report.

use super::*;

#[test]
fn both_renderers() {
    let report = incident_node().run(&incident_probe());
    let table = render_table(&report);
    assert!(table.starts_with("runsc-guard doctor: FAILURES"), "{table}");
    assert!(table.contains("what to do: "), "{table}");
    assert!(table.contains("default/incident"), "{table}");
    assert!(table.contains("sandboxes:"), "{table}");
    let json: serde_json::Value = serde_json::to_value(&report).unwrap();
    assert_eq!(json["status"], "fail");
    assert_eq!(json["exit_code"], 2);
    assert_eq!(json["node"]["sandboxes"][0]["pod"]["name"], "incident");
    assert_eq!(json["node"]["cgroups"]["layout"], "unified");
    assert!(json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["severity"] == "fail" && f["fix"].is_string()));
}
