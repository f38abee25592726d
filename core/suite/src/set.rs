//! `--set key=value` overrides: a dotted path into the suite document
//! (`epochs=1`, `dataset.limit_train=1000`, `seeds=[0,1]`, `models.0.args.classes=100`)
//! and a YAML value.

use serde_json::Value;

/// One parsed `--set`.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// Path segments (`["dataset", "limit_train"]`).
    pub path: Vec<String>,
    /// The new value.
    pub value: Value,
    /// The flag as written, for messages.
    pub raw: String,
}

impl Override {
    /// Parses `key=value`; the value is YAML (`3`, `0.5`, `adam`, `[0, 1]`, `{name: adam}`).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let (key, value) = raw
            .split_once('=')
            .ok_or_else(|| format!("--set `{raw}`: expected KEY=VALUE, e.g. --set epochs=1"))?;
        let path: Vec<String> = key.trim().split('.').map(|s| s.trim().to_owned()).collect();
        if path.iter().any(String::is_empty) {
            return Err(format!(
                "--set `{raw}`: `{key}` is not a key path such as `dataset.limit_train`"
            ));
        }
        let value: Value = if value.trim().is_empty() {
            Value::Null
        } else {
            serde_saphyr::from_str(value)
                .map_err(|e| format!("--set `{raw}`: value is not valid YAML: {e}"))?
        };
        Ok(Self {
            path,
            value,
            raw: raw.to_owned(),
        })
    }

    /// Writes the value into `doc`, creating maps on the way; a short
    /// string form met on the way (`dataset: cifar10`) becomes its map form.
    pub fn apply(&self, doc: &mut Value) -> Result<(), String> {
        let mut node = doc;
        for (depth, seg) in self.path.iter().enumerate() {
            let last = depth + 1 == self.path.len();
            if let Value::String(s) = node {
                let field = if self.path[0] == "models" {
                    "file"
                } else {
                    "name"
                };
                let mut map = serde_json::Map::new();
                map.insert(field.to_owned(), Value::String(std::mem::take(s)));
                *node = Value::Object(map);
            }
            node = match node {
                Value::Object(map) => {
                    if last {
                        map.insert(seg.clone(), self.value.clone());
                        return Ok(());
                    }
                    map.entry(seg.clone())
                        .or_insert_with(|| Value::Object(Default::default()))
                }
                Value::Array(items) => {
                    let i: usize = seg.parse().map_err(|_| {
                        format!("--set `{}`: `{seg}` must be a list index", self.raw)
                    })?;
                    let len = items.len();
                    let item = items.get_mut(i).ok_or_else(|| {
                        format!(
                            "--set `{}`: index {i} is past the end (the list has {len})",
                            self.raw
                        )
                    })?;
                    if last {
                        *item = self.value.clone();
                        return Ok(());
                    }
                    item
                }
                Value::Null if !last => {
                    *node = Value::Object(Default::default());
                    match node {
                        Value::Object(map) => map
                            .entry(seg.clone())
                            .or_insert_with(|| Value::Object(Default::default())),
                        _ => unreachable!("just made an object"),
                    }
                }
                _ => {
                    let at = self.path[..depth].join(".");
                    return Err(format!(
                        "--set `{}`: `{at}` is not a map or a list",
                        self.raw
                    ));
                }
            };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Value {
        serde_json::json!({"epochs": 5, "dataset": "cifar10", "models": ["a.acnet", {"file": "b.acnet"}]})
    }

    #[test]
    fn sets_scalars_lists_and_nested_keys() {
        let mut d = doc();
        for s in [
            "epochs=1",
            "seeds=[0, 1]",
            "dataset.limit_train=100",
            "models.1.args.classes=100",
            "models.0.name=x",
        ] {
            Override::parse(s)
                .expect("parses")
                .apply(&mut d)
                .expect("applies");
        }
        assert_eq!(
            d,
            serde_json::json!({
                "epochs": 1, "seeds": [0, 1],
                "dataset": {"name": "cifar10", "limit_train": 100},
                "models": [{"file": "a.acnet", "name": "x"}, {"file": "b.acnet", "args": {"classes": 100}}]
            })
        );
    }

    #[test]
    fn bad_overrides_say_why() {
        assert!(
            Override::parse("epochs")
                .expect_err("must fail")
                .contains("KEY=VALUE")
        );
        assert!(
            Override::parse("a..b=1")
                .expect_err("must fail")
                .contains("key path")
        );
        let mut d = doc();
        let e = Override::parse("models.7.file=x")
            .expect("parses")
            .apply(&mut d)
            .expect_err("must fail");
        assert!(e.contains("past the end"), "{e}");
        let e = Override::parse("epochs.x=1")
            .expect("parses")
            .apply(&mut d)
            .expect_err("must fail");
        assert!(e.contains("not a map"), "{e}");
    }
}
