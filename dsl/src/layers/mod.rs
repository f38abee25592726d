//! The built-in layers: one file per family, each holding its layers'
//! argument structs (names, readers and defaults, see [`args`]) and the
//! rule that turns a call into an IR op and its output shape ([`call`]
//! says what a layer and a call are).
//!
//! - `conv`: `conv`
//! - `norm`: `bn`, `lrn`
//! - `pool`: `maxpool`, `avgpool`, `gap`
//! - `dropout`: `dropout`
//! - `linear`: `flatten`, `linear`
//! - `act`: `act`
//! - `window`: padding and output sizes of sliding windows (conv, pooling)

mod act;
mod args;
mod call;
mod conv;
mod dropout;
mod linear;
mod norm;
mod pool;
mod window;

pub(crate) use call::{Call, Layer};
pub(crate) use norm::BN;

/// Every built-in layer, in the order messages list them.
pub(crate) const LAYERS: &[Layer] = &[
    conv::CONV,
    norm::BN,
    norm::LRN,
    pool::MAXPOOL,
    pool::AVGPOOL,
    pool::GAP,
    dropout::DROPOUT,
    linear::FLATTEN,
    linear::LINEAR,
    act::ACT,
];

/// The built-in layer of this name.
pub(crate) fn layer(name: &str) -> Option<&'static Layer> {
    LAYERS.iter().find(|l| l.sig.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        for (i, l) in LAYERS.iter().enumerate() {
            assert!(
                LAYERS[..i].iter().all(|m| m.sig.name != l.sig.name),
                "{}",
                l.sig.name
            );
            let names = l.sig.names();
            for (j, a) in names.iter().enumerate() {
                assert!(!names[..j].contains(a), "{}: {a}", l.sig.name);
            }
        }
    }

    /// The crate documentation's table of layers shows each signature as
    /// the argument structs declare it.
    #[test]
    fn documented_signatures_match_the_argument_structs() {
        let docs = include_str!("../lib.rs");
        for l in LAYERS {
            let sig = l.sig.signature();
            assert!(docs.contains(&format!("`{sig}`")), "lib.rs lacks `{sig}`");
        }
        assert_eq!(pool::MAXPOOL.sig.signature(), "maxpool(k, stride=k, pad=0)");
    }
}
