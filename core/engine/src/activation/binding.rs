//! Which activation each `act` slot gets: specs parsed from the command
//! line or a suite, and checked against a network and a registry.

use std::collections::BTreeMap;

use acbench_dsl::ir::{Network, Op};
use acbench_plugin_api::ParamScope;

use super::{KnownActivations, Registry};
use crate::error::{Error, Result};

/// One activation choice: a name and initial-value overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct ActSpec {
    /// Activation name.
    pub activation: String,
    /// `(parameter, initial value)` replacing the definition's init.
    pub overrides: Vec<(String, f64)>,
}

impl ActSpec {
    /// Parses `name[:param=value[,param=value...]]`.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |why: &str| Error::Binding(format!("`{s}`: {why}"));
        let (name, rest) = match s.split_once(':') {
            Some((n, r)) => (n.trim(), Some(r)),
            None => (s.trim(), None),
        };
        if name.is_empty() {
            return Err(bad("missing activation name"));
        }
        let mut overrides = Vec::new();
        if let Some(rest) = rest {
            for kv in rest.split(',') {
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| bad("expected `param=value` after `:`"))?;
                let (k, v) = (k.trim(), v.trim());
                let value: f64 = v
                    .parse()
                    .map_err(|_| bad(&format!("`{v}` is not a number (parameter `{k}`)")))?;
                if !value.is_finite() {
                    return Err(bad(&format!("parameter `{k}` must be finite")));
                }
                if overrides.iter().any(|(o, _): &(String, f64)| o == k) {
                    return Err(bad(&format!("parameter `{k}` is set twice")));
                }
                overrides.push((k.to_owned(), value));
            }
        }
        Ok(Self {
            activation: name.to_owned(),
            overrides,
        })
    }
}

/// Which activation every `act` slot of a network gets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ActBindings {
    /// For unnamed `act` nodes and named slots without their own binding.
    pub default: Option<ActSpec>,
    /// Per slot name (`fc` for `act@fc`).
    pub slots: BTreeMap<String, ActSpec>,
}

impl ActBindings {
    /// Every slot gets `activation` with its default initial values.
    pub fn uniform(activation: &str) -> Self {
        Self {
            default: Some(ActSpec {
                activation: activation.to_owned(),
                overrides: Vec::new(),
            }),
            slots: BTreeMap::new(),
        }
    }

    /// Parses CLI-style specs: `arelu` (the default), `fc=relu` (slot `act@fc`),
    /// each optionally with overrides `lrelu:s=0.2`, `fc=prelu:p=0`.
    pub fn parse<S: AsRef<str>>(specs: &[S]) -> Result<Self> {
        let mut b = Self::default();
        for spec in specs {
            let spec = spec.as_ref();
            // `=` before any `:` separates a slot; later `=` belong to overrides.
            let slot_end = spec
                .find('=')
                .filter(|&i| spec.find(':').is_none_or(|c| i < c));
            match slot_end {
                Some(i) => {
                    let slot = spec[..i].trim();
                    if slot.is_empty() {
                        return Err(Error::Binding(format!(
                            "`{spec}`: missing slot name before `=`"
                        )));
                    }
                    let act = ActSpec::parse(&spec[i + 1..])?;
                    if b.slots.insert(slot.to_owned(), act).is_some() {
                        return Err(Error::Binding(format!("slot `{slot}` is bound twice")));
                    }
                }
                None => {
                    if b.default.replace(ActSpec::parse(spec)?).is_some() {
                        return Err(Error::Binding(format!(
                            "`{spec}`: a default activation is already given (use SLOT=NAME for named slots)"
                        )));
                    }
                }
            }
        }
        Ok(b)
    }

    /// The spec an act node with this slot name gets.
    pub fn resolve(&self, slot: Option<&str>) -> Option<&ActSpec> {
        slot.and_then(|s| self.slots.get(s))
            .or(self.default.as_ref())
    }

    /// Checks the bindings against a network and a registry: every slot
    /// named here exists, every act node gets an activation, every
    /// activation and overridden parameter exists.
    pub fn check(&self, net: &Network, registry: &Registry) -> Result<()> {
        let sites = net.act_sites();
        let mut net_slots: Vec<&str> = sites
            .iter()
            .filter_map(|n| match &n.op {
                Op::Act { slot } => slot.as_deref(),
                _ => None,
            })
            .collect();
        net_slots.sort_unstable();
        net_slots.dedup();
        for slot in self.slots.keys() {
            if !net_slots.contains(&slot.as_str()) {
                let known = if net_slots.is_empty() {
                    "the network has no named slots".to_owned()
                } else {
                    format!("the network's slots are {}", net_slots.join(", "))
                };
                return Err(Error::Binding(format!("unknown slot `{slot}`; {known}")));
            }
        }
        for n in &sites {
            let Op::Act { slot } = &n.op else { continue };
            if self.resolve(slot.as_deref()).is_none() {
                return Err(Error::Binding(format!(
                    "no activation for `{}` (slot {}); give a default such as `relu`",
                    n.path,
                    slot.as_deref()
                        .map_or("unnamed".to_owned(), |s| format!("`{s}`"))
                )));
            }
        }
        for spec in self.default.iter().chain(self.slots.values()) {
            registry.check_spec(spec)?;
        }
        Ok(())
    }

    /// Trainable activation parameters these bindings add to `net`: per-layer
    /// parameters count once per act node, per-channel ones once per channel
    /// of the tensor entering the node. Checks the bindings first.
    pub fn param_count(&self, net: &Network, registry: &Registry) -> Result<usize> {
        self.check(net, registry)?;
        let mut total = 0;
        for node in net.act_sites() {
            let Op::Act { slot } = &node.op else { continue };
            let Some(spec) = self.resolve(slot.as_deref()) else {
                continue;
            };
            let act = registry.get(&spec.activation)?;
            total += act
                .def
                .params
                .iter()
                .filter(|p| p.trainable)
                .map(|p| match p.scope {
                    ParamScope::Layer => 1,
                    ParamScope::Channel => node.input.channels(),
                })
                .sum::<usize>();
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_specs_parse() -> Result<()> {
        let b = ActBindings::parse(&["arelu", "fc=prelu:p=0", "conv = lrelu:s=0.2"])?;
        assert_eq!(
            b.default,
            Some(ActSpec {
                activation: "arelu".into(),
                overrides: vec![]
            })
        );
        assert_eq!(
            b.slots["fc"],
            ActSpec {
                activation: "prelu".into(),
                overrides: vec![("p".into(), 0.0)]
            }
        );
        assert_eq!(b.slots["conv"].overrides, [("s".to_owned(), 0.2)]);
        assert_eq!(
            b.resolve(Some("fc")).map(|s| s.activation.as_str()),
            Some("prelu")
        );
        assert_eq!(
            b.resolve(Some("other")).map(|s| s.activation.as_str()),
            Some("arelu")
        );
        assert_eq!(
            b.resolve(None).map(|s| s.activation.as_str()),
            Some("arelu")
        );
        let s = ActSpec::parse("pelu:a=2,b=0.5")?;
        assert_eq!(s.overrides, [("a".to_owned(), 2.0), ("b".to_owned(), 0.5)]);
        for bad in [
            &["relu", "tanh"][..],
            &["fc=relu", "fc=tanh"],
            &["=relu"],
            &["lrelu:s"],
            &["lrelu:s=x"],
            &[":s=1"],
            &["pelu:a=1,a=2"],
        ] {
            assert!(
                matches!(ActBindings::parse(bad), Err(Error::Binding(_))),
                "{bad:?}"
            );
        }
        Ok(())
    }
}
