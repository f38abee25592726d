//! The built-in layers: their argument lists (for checking calls before
//! elaboration) and their shape rules.

use crate::ir::Padding;

/// One parameter of a built-in layer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LayerParam {
    pub(crate) name: &'static str,
    pub(crate) required: bool,
}

const fn req(name: &'static str) -> LayerParam {
    LayerParam {
        name,
        required: true,
    }
}

const fn opt(name: &'static str) -> LayerParam {
    LayerParam {
        name,
        required: false,
    }
}

/// A built-in layer's name and parameters, positional order first.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LayerSig {
    pub(crate) name: &'static str,
    pub(crate) params: &'static [LayerParam],
}

/// Every built-in layer. Defaults live in `elaborate.rs`, next to the code
/// that reads each argument.
pub(crate) const LAYERS: &[LayerSig] = &[
    LayerSig {
        name: "conv",
        params: &[
            req("c"),
            opt("k"),
            opt("stride"),
            opt("pad"),
            opt("groups"),
            opt("bias"),
            opt("dilation"),
        ],
    },
    LayerSig {
        name: "bn",
        params: &[opt("eps"), opt("momentum")],
    },
    LayerSig {
        name: "lrn",
        params: &[opt("radius"), opt("alpha"), opt("beta"), opt("bias")],
    },
    LayerSig {
        name: "maxpool",
        params: &[req("k"), opt("stride"), opt("pad")],
    },
    LayerSig {
        name: "avgpool",
        params: &[req("k"), opt("stride"), opt("pad"), opt("count_pad")],
    },
    LayerSig {
        name: "gap",
        params: &[],
    },
    LayerSig {
        name: "dropout",
        params: &[req("p")],
    },
    LayerSig {
        name: "flatten",
        params: &[],
    },
    LayerSig {
        name: "linear",
        params: &[req("n"), opt("bias")],
    },
    LayerSig {
        name: "act",
        params: &[],
    },
];

/// Bare words that are values, not names (`pad=same`).
pub(crate) const WORDS: &[&str] = &["same", "valid"];

pub(crate) fn layer(name: &str) -> Option<&'static LayerSig> {
    LAYERS.iter().find(|l| l.name == name)
}

/// How a window is padded, as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PadSpec {
    /// The same number of zeros on every side.
    Explicit(usize),
    /// TensorFlow `SAME`: output = ceil(input / stride), extra padding at the end.
    Same,
    /// No padding.
    Valid,
}

/// Output length along one axis and the padding before and after, or `None`
/// when the (dilated) window is larger than the padded input.
pub(crate) fn window_axis(
    input: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    pad: PadSpec,
) -> Option<(usize, usize, usize)> {
    let span = kernel
        .checked_sub(1)?
        .checked_mul(dilation)?
        .checked_add(1)?;
    let (before, after) = match pad {
        PadSpec::Valid => (0, 0),
        PadSpec::Explicit(p) => (p, p),
        PadSpec::Same => {
            let out = input.div_ceil(stride);
            let needed = (out - 1).checked_mul(stride)?.checked_add(span)?;
            let total = needed.saturating_sub(input);
            (total / 2, total - total / 2)
        }
    };
    let padded = input.checked_add(before)?.checked_add(after)?;
    if span > padded {
        return None;
    }
    Some(((padded - span) / stride + 1, before, after))
}

/// Padding of a 2-D window from the two axes' results.
pub(crate) fn padding(rows: (usize, usize), cols: (usize, usize)) -> Padding {
    Padding {
        top: rows.0,
        bottom: rows.1,
        left: cols.0,
        right: cols.1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_follows_tensorflow() {
        // 32 -> 16 with a 7x7/2 window: total = (16-1)*2 + 7 - 32 = 5, split 2/3.
        assert_eq!(window_axis(32, 7, 2, 1, PadSpec::Same), Some((16, 2, 3)));
        // 3x3/1 keeps the size with one on each side.
        assert_eq!(window_axis(8, 3, 1, 1, PadSpec::Same), Some((8, 1, 1)));
        // Even window, stride 1: the extra zero goes after.
        assert_eq!(window_axis(8, 2, 1, 1, PadSpec::Same), Some((8, 0, 1)));
        // Window larger than the input still works under SAME (pooling 8x8 on 1x1).
        assert_eq!(window_axis(1, 8, 1, 1, PadSpec::Same), Some((1, 3, 4)));
        // Dilation widens the window: 3x3 dilated 2 spans 5.
        assert_eq!(window_axis(10, 3, 1, 2, PadSpec::Same), Some((10, 2, 2)));
        // 2x2/2 on an odd size: ceil(7/2) = 4 with one zero after.
        assert_eq!(window_axis(7, 2, 2, 1, PadSpec::Same), Some((4, 0, 1)));
    }

    #[test]
    fn valid_and_explicit_padding() {
        assert_eq!(window_axis(32, 11, 2, 1, PadSpec::Valid), Some((11, 0, 0)));
        assert_eq!(
            window_axis(5, 3, 2, 1, PadSpec::Explicit(1)),
            Some((3, 1, 1))
        );
        assert_eq!(window_axis(2, 3, 1, 1, PadSpec::Valid), None);
        assert_eq!(window_axis(2, 5, 1, 1, PadSpec::Explicit(1)), None);
        assert_eq!(
            window_axis(usize::MAX, 3, 1, usize::MAX, PadSpec::Same),
            None
        );
    }
}
