use super::*;

fn tables() -> PaperTables {
    match PaperTables::load() {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn shipped_tables_load_with_expected_cells() {
    let t = tables();
    let ids: Vec<&str> = t.tables.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "table1", "table2", "table3", "table4", "table5", "table6", "table7"
        ]
    );
    let t1 = &t.tables[0];
    assert_eq!(t1.dataset.as_deref(), Some("cifar10"));
    assert_eq!(t1.optimizer.as_deref(), Some("sgd"));
    assert_eq!(t1.columns.len(), 5);
    let rows: Vec<&str> = t1.rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        rows,
        [
            "sigmoid", "asigmoid", "tanh", "atanh", "relu", "lrelu", "arelu"
        ]
    );
    assert_eq!(
        t1.cell("sigmoid", "alexnet"),
        Some(Some(PaperCell {
            mean: 0.8141,
            spread: Some(1.52e-3)
        }))
    );
    assert_eq!(
        t1.cell("arelu", "densenet").map(|c| c.map(|c| c.mean)),
        Some(Some(0.9538))
    );
    let t2 = match t.get("table2") {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(t2.cell("pelu", "alexnet"), Some(None));
    assert_eq!(t2.cell("pelu", "nosuch"), None);
    let t5 = &t.tables[4];
    assert_eq!(t5.dataset.as_deref(), Some("cifar10"));
    assert_eq!(t5.optimizer, None);
    assert_eq!(
        t5.cell("resnet/arelu", "adam").map(|c| c.map(|c| c.mean)),
        Some(Some(0.8805))
    );
    assert_eq!(t.tables[5].model.as_deref(), Some("resnet50"));
    let settings: Vec<Option<(usize, usize)>> = t
        .tables
        .iter()
        .map(|t| t.settings.map(|s| (s.epochs, s.batch_size)))
        .collect();
    assert_eq!(
        settings,
        [
            Some((80, 64)),
            Some((80, 64)),
            Some((150, 250)),
            Some((150, 250)),
            Some((80, 64)),
            None,
            None
        ]
    );
    let t7 = &t.tables[6];
    assert_eq!(t7.columns.len(), 9);
    assert_eq!(
        t7.cell("arelu", "fcos/coco/map"),
        Some(Some(PaperCell {
            mean: 0.3279,
            spread: None
        }))
    );
}

#[test]
fn fewer_epochs_and_other_batches_are_deviations() {
    let paper = PaperSettings {
        epochs: 80,
        batch_size: 64,
    };
    assert!(paper.deviations(80, 64).is_empty());
    assert!(paper.deviations(100, 64).is_empty());
    assert_eq!(
        paper.deviations(5, 32),
        [
            "5 epochs instead of the paper's 80",
            "batch 32 instead of the paper's 64"
        ]
    );
}

#[test]
fn unknown_table_lists_known_ones() {
    let e = tables().get("table9").err().map(|e| e.to_string());
    assert_eq!(
        e.as_deref(),
        Some(
            "no paper table `table9`; the paper's tables are table1, table2, table3, \
             table4, table5, table6, table7"
        )
    );
}

#[test]
fn errors_name_file_line_and_key() {
    let yaml = "t:\n  title: x\n  columns: [a, b]\n  rows:\n    relu: [[0.5, 0.1], [0.6, 0.1]]\n    tanh: [[0.5, 0.1]]\n";
    let e = PaperTables::parse(yaml, "f.yaml")
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        e.as_deref(),
        Some("f.yaml:6: `t.rows.tanh`: 1 cells for 2 columns (a, b)")
    );
    let yaml = "t:\n  title: x\n  columns: [a]\n  rows:\n    relu: [[1.5, 0.1]]\n";
    let e = PaperTables::parse(yaml, "f.yaml")
        .err()
        .map(|e| e.to_string());
    assert!(
        e.as_deref()
            .is_some_and(|e| e.starts_with("f.yaml:5: `t.rows.relu`: column `a`")),
        "{e:?}"
    );
    let yaml = "t:\n  title: x\n  colums: [a]\n  rows: {}\n";
    match PaperTables::parse(yaml, "f.yaml") {
        Err(ReportError::PaperData {
            file,
            line,
            message,
            ..
        }) => {
            assert_eq!((file.as_str(), line), ("f.yaml", 3), "{message}");
            assert!(message.contains("colums"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}
